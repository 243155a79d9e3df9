"""``neuralake docs``: build the documentation site from the executed notebooks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from neuralake import docsite

app = typer.Typer(help="The documentation site, built from the executed notebooks.")


@app.callback(invoke_without_command=True)
def usage(ctx: typer.Context) -> None:
    """Without a command, print the usage (exit 2)."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)


@app.command()
def build(
    notebooks: Annotated[
        Path, typer.Option(help="Executed lessons (papermill's copies).")
    ] = docsite.BUILD / "notebooks",
    labs: Annotated[Path, typer.Option(help="Student versions of the labs.")] = docsite.BUILD
    / "labs",
    out: Annotated[Path, typer.Option(help="Where to write the site.")] = docsite.SITE,
    allow_failed: Annotated[
        bool, typer.Option(help="Publish lessons whose executed copy failed (shows the error).")
    ] = False,
) -> None:
    """Stage the executed lessons, student labs, catalog site and API pages; run mkdocs."""
    report = docsite.build(
        notebooks_dir=notebooks, labs_dir=labs, site_dir=out, allow_failed=allow_failed
    )
    typer.echo(
        f"wrote {report.index}: {len(report.lessons)} lessons, {len(report.labs)} labs, "
        f"{len(report.api_modules)} API pages in {report.seconds:.1f} s"
    )


@app.command("run-times")
def run_times(
    notebooks: Annotated[Path, typer.Option(help="Executed notebooks to read.")] = docsite.BUILD
    / "notebooks",
) -> None:
    """Print each executed lesson's run time, from the durations papermill recorded."""
    typer.echo(docsite.run_times_page(sorted(notebooks.glob("*.ipynb"))), nl=False)

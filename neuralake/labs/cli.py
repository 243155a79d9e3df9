"""``neuralake labs``: build the student versions of the labs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from neuralake.labs.build import build_lab, default_output, find_labs

app = typer.Typer(help="Labs: graded exercises. Build the student notebooks.", no_args_is_help=True)


@app.command()
def build(
    labs: Annotated[
        list[str] | None,
        typer.Argument(help="Lab folders to build (e.g. 01_delta); all labs if none given."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: build/labs/ in the project).")
    ] = None,
) -> None:
    """Write each lab's student version: solution cells replaced by stubs."""
    sources = find_labs()
    if labs:
        sources = [s for s in sources if s.parent.name in labs]
        missing = set(labs) - {s.parent.name for s in sources}
        if missing:
            names = ", ".join(s.parent.name for s in find_labs())
            raise typer.BadParameter(f"no lab {sorted(missing)}: choose from {names}")
    for source in sources:
        target = out / source.parent.name / source.name if out else default_output(source)
        typer.echo(f"{source.parent.name}: {build_lab(source, target)}")


@app.command("list")
def list_labs() -> None:
    """Show the labs and their source notebooks."""
    for source in find_labs():
        typer.echo(f"{source.parent.name}\t{source}")

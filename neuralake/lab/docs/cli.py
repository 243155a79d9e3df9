"""``neuralake docs``: build the documentation site from the executed notebooks.

``neuralake docs build`` (``make docs``) first executes every lesson whose copy in
``build/notebooks/`` is missing, failed, or older than the lesson, as ``make run`` would
(starting the stack), so that it works on a fresh clone; ``--plan`` only says which,
and ``--no-run`` builds at once, publishing those lessons without their outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from neuralake.errors import NeuralakeError
from neuralake.lab import notebooks as lesson_notebooks
from neuralake.lab.docs import site as docsite

app = typer.Typer(
    help="The documentation site, built from the executed notebooks.", no_args_is_help=True
)


@app.command()
def build(
    notebooks: Annotated[
        Path, typer.Option(help="Executed lessons (papermill's copies).")
    ] = docsite.BUILD / "notebooks",
    labs: Annotated[Path, typer.Option(help="Student versions of the labs.")] = docsite.BUILD
    / "labs",
    out: Annotated[Path, typer.Option(help="Where to write the site.")] = docsite.SITE,
    bundle: Annotated[
        Path, typer.Option(help="The zip of the student labs (`make labs`), linked if there.")
    ] = docsite.BUILD / "classroom" / "neuralake-labs.zip",
    run: Annotated[
        bool,
        typer.Option(
            "--run/--no-run",
            help="Execute first the lessons without an up-to-date executed copy (starts the "
            "stack); --no-run publishes those lessons without their outputs.",
        ),
    ] = True,
    plan: Annotated[
        bool, typer.Option("--plan", help="Only print which lessons would run first.")
    ] = False,
    allow_failed: Annotated[
        bool, typer.Option(help="Publish lessons whose executed copy failed (shows the error).")
    ] = False,
) -> None:
    """Run the lessons that need it, then stage the executed lessons, student labs,
    catalog site and API pages, and run mkdocs."""
    todo = docsite.plan(notebooks)
    if todo:
        what = "running them first" if run else "publishing them without outputs (--no-run)"
        typer.echo(
            f"{len(todo)} of {len(lesson_notebooks.lessons())} lessons have no up-to-date "
            f"executed copy in {notebooks}: {what}"
        )
        for lesson, why in todo:
            typer.echo(f"  {lesson.stem}: {why}")
    if plan:
        return
    if todo and run:
        failed = _run_lessons([lesson for lesson, _ in todo], notebooks)
        if failed and not allow_failed:
            raise NeuralakeError(
                f"{len(failed)} lesson(s) failed: {', '.join(failed)} (their partly executed "
                f"copies are in {notebooks}): fix them, or publish them as they are with "
                "--allow-failed"
            )
    report = docsite.build(
        notebooks_dir=notebooks,
        labs_dir=labs,
        site_dir=out,
        bundle=bundle,
        allow_failed=allow_failed,
        unexecuted=not run,
    )
    unexecuted = f" ({len(report.unexecuted)} without outputs)" if report.unexecuted else ""
    typer.echo(
        f"wrote {report.index}: {len(report.lessons)} lessons{unexecuted}, "
        f"{len(report.labs)} labs, {len(report.api_modules)} API pages in "
        f"{report.seconds:.1f} s"
    )


def _run_lessons(lessons: list[Path], out_dir: Path) -> list[str]:
    """Execute ``lessons`` into ``out_dir`` against the stack (started if it is down), as
    ``make run`` does; return the names of those that failed (each is reported)."""
    from papermill import PapermillExecutionError

    from neuralake.lab.stack import control
    from neuralake.settings import settings

    control.up(settings("stack"), echo=typer.echo)
    failed = []
    for lesson in lessons:
        try:
            output, seconds = lesson_notebooks.run(lesson, out_dir=out_dir)
        except PapermillExecutionError as err:
            typer.echo(f"{lesson.name:<45} failed in cell {err.exec_count}: {err.ename}")
            failed.append(lesson.stem)
            continue
        typer.echo(f"{lesson.name:<45} {seconds:6.1f} s  -> {output}")
    return failed


@app.command("run-times")
def run_times(
    notebooks: Annotated[Path, typer.Option(help="Executed notebooks to read.")] = docsite.BUILD
    / "notebooks",
) -> None:
    """Print each executed lesson's run time, from the durations papermill recorded."""
    typer.echo(docsite.run_times_page(sorted(notebooks.glob("*.ipynb"))), nl=False)

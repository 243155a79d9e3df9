"""``neuralake labs``: build the student versions, bundle them for a class, export them to
nbgrader, and grade submitted notebooks against the stack."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

import neuralake
from neuralake.lab.graders import grade as grading
from neuralake.lab.graders.build import build_lab, default_output, find_labs
from neuralake.lab.graders.nbgrader import write_course
from neuralake.settings import project_dir

BUILD = project_dir() / "build"

app = typer.Typer(
    help="Labs: graded exercises. Build, bundle, export to nbgrader, grade.",
    no_args_is_help=True,
)

Labs = Annotated[
    list[str] | None,
    typer.Argument(help="Lab folders (e.g. 01_delta); all labs if none given."),
]

STUDENT_README = """\
# Neuralake Lab: the labs

One folder per lab, each with one notebook. Work through a lab from top to bottom in
JupyterLab, against the lab's stack (S3, Kafka, PostgreSQL): the notebooks import the
`neuralake` package, which finds the stack by itself (`neuralake.settings()`).

| lab | notebook |
|---|---|
{rows}

## How a lab works

- Run the **set-up cell** first: it builds every exercise's tables under your `PREFIX`
  (the parameters cell at the top; on a shared stack, put your user name in it).
- Each exercise has a cell that says `# YOUR CODE HERE`: write your answer there.
- Then run the exercise's **check** cell. It reads the real tables and says `PASSED`,
  or what it found and a hint. Each further failure gives a more specific hint
  (concept, then API, then the call); `hint("lab01.ex3", 2)` shows a tier on request.
- Broke an exercise's tables? `lab.reset("ex3")` rebuilds them alone.

## What you need

- The lab's Python environment (in the lab repository: `make setup`; on a class
  JupyterHub it is already installed) and the stack running (`make up`, or the
  class's shared stack: your teacher gives you the `NEURALAKE_*` settings).
- The lessons the lab's header names: read them first. `troubleshooting.md` in this
  folder answers what usually goes wrong (ports, memory, Java, Windows).
"""


@app.command()
def build(
    labs: Labs = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: build/labs/ in the project).")
    ] = None,
) -> None:
    """Write each lab's student version: solution cells replaced by stubs."""
    for source in _chosen(labs):
        target = out / source.parent.name / source.name if out else default_output(source)
        typer.echo(f"{source.parent.name}: {build_lab(source, target)}")


@app.command("list")
def list_labs() -> None:
    """Show the labs and their source notebooks."""
    for source in find_labs():
        typer.echo(f"{source.parent.name}\t{source}")


@app.command()
def bundle(
    labs: Labs = None,
    out: Annotated[Path, typer.Option(help="Folder for the bundle and its zip.")] = BUILD
    / "classroom",
) -> None:
    """The student bundle: every student notebook, a README and the troubleshooting page,
    in one folder and one zip (no solutions)."""
    folder = out / "neuralake-labs"
    if folder.exists():
        shutil.rmtree(folder)
    rows = []
    for source in _chosen(labs):
        student = build_lab(source, folder / source.parent.name / source.name)
        rows.append(f"| {source.parent.name} | `{student.relative_to(folder)}` |")
    (folder / "README.md").write_text(STUDENT_README.format(rows="\n".join(rows)), "utf-8")
    troubleshooting = project_dir() / "docs" / "troubleshooting.md"
    if troubleshooting.exists():
        shutil.copy2(troubleshooting, folder / "troubleshooting.md")
    archive = shutil.make_archive(str(out / "neuralake-labs"), "zip", out, "neuralake-labs")
    typer.echo(f"wrote {folder} ({len(rows)} labs) and {archive}")


@app.command("nbgrader")
def nbgrader_export(
    course: Annotated[Path, typer.Option(help="The nbgrader course directory to write into.")],
    labs: Labs = None,
    course_id: Annotated[str, typer.Option(help="nbgrader's course id.")] = "neuralake-lab",
) -> None:
    """Export the labs as nbgrader assignments: source/<lab>/ and nbgrader_config.py."""
    sources = _chosen(labs)
    config = write_course(sources, course, course_id)
    typer.echo(f"wrote {len(sources)} assignments under {course / 'source'} and {config}")
    typer.echo(f"next, in {course}: nbgrader generate_assignment {sources[0].parent.name}")


@app.command("grade")
def grade_command(
    paths: Annotated[list[Path], typer.Argument(help="Submitted notebooks, or folders of them.")],
    csv: Annotated[
        Path | None, typer.Option(help="Write the class summary CSV here (else print it).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Where the executed copies go.")] = BUILD / "graded",
    keep_tables: Annotated[
        bool, typer.Option(help="Keep each run's tables (grade_<student>_...) for a look.")
    ] = False,
) -> None:
    """Run students' lab notebooks against the stack; a score per check, then the class."""
    settings = neuralake.settings()
    grades = []
    for notebook in grading.submissions(paths):
        result = grading.grade(notebook, out, settings, keep=keep_tables)
        grades.append(result)
        typer.echo(
            f"{result.student} {result.lab}: {result.score}/{result.total} ({result.seconds:.0f} s)"
        )
        for check in result.checks:
            verdict = "PASS" if check.passed else "FAIL"
            typer.echo(f"  {verdict} {check.check}: {check.message[:160]}")
    summary = grading.summary_csv(grades)
    if csv:
        csv.parent.mkdir(parents=True, exist_ok=True)
        csv.write_text(summary, encoding="utf-8")
        typer.echo(f"wrote {csv}")
    else:
        typer.echo(summary, nl=False)


def _chosen(labs: list[str] | None) -> list[Path]:
    sources = find_labs()
    if labs:
        sources = [s for s in sources if s.parent.name in labs]
        missing = set(labs) - {s.parent.name for s in sources}
        if missing:
            names = ", ".join(s.parent.name for s in find_labs())
            raise typer.BadParameter(f"no lab {sorted(missing)}: choose from {names}")
    return sources

"""The ``neuralake`` command. Every error is one line that names the fix, exit status 2."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from neuralake.errors import NeuralakeError
from neuralake.lab import notebooks
from neuralake.lab.api.cli import app as api_app
from neuralake.lab.bench.cli import app as bench_app
from neuralake.lab.cli.catalog import app as catalog_app
from neuralake.lab.cli.spark import app as spark_app
from neuralake.lab.docs.cli import app as docs_app
from neuralake.lab.graders.cli import app as labs_app
from neuralake.lab.stack.cli import app as stack_app
from neuralake.lab.writer.cli import app as writer_app
from neuralake.lab.writer.cli import produce
from neuralake.settings import settings

app = typer.Typer(
    help="Neuralake Lab: a lakehouse you run for real.", no_args_is_help=True, add_completion=False
)
app.add_typer(stack_app, name="stack")
app.add_typer(catalog_app, name="catalog")
app.add_typer(labs_app, name="labs")
app.add_typer(writer_app, name="writer")
app.add_typer(docs_app, name="docs")
app.add_typer(api_app, name="api")
app.add_typer(bench_app, name="bench")
app.add_typer(spark_app, name="spark")
app.command("produce")(produce)


@app.command("settings")
def show_settings(
    profile: Annotated[str | None, typer.Option(help="local, stack or aws.")] = None,
) -> None:
    """Print where the data and services are for a profile (secrets hidden)."""
    s = settings(profile)
    for name, value in vars(s).items():
        hidden = "secret" in name and value
        typer.echo(f"{name:<18} {'****' if hidden else value}")


notebooks_app = typer.Typer(help="Run the lessons headless.", no_args_is_help=True)
app.add_typer(notebooks_app, name="notebooks")


@notebooks_app.command("run")
def run_notebooks(
    names: Annotated[list[str] | None, typer.Argument(help="Lessons to run, e.g. 00 01.")] = None,
) -> None:
    """Execute the lessons in order with papermill into build/notebooks/."""
    chosen = [nb for nb in notebooks.lessons() if not names or nb.name[:2] in names]
    for nb in chosen:
        output, seconds = notebooks.run(nb)
        typer.echo(f"{nb.name:<45} {seconds:6.1f} s  -> {output}")


def main() -> None:
    try:
        # Without standalone mode click returns a command's exit code instead of exiting.
        code = app(standalone_mode=False)
    except NeuralakeError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except typer.TyperException as err:  # a usage error: its message and the usage, no traceback
        err.show()  # type: ignore[attr-defined]  # typer's click errors have show()
        sys.exit(err.exit_code)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)

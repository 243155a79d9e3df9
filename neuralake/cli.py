"""The ``neuralake`` command. Every error is one line that names the fix, exit status 2."""

from __future__ import annotations

import sys

import typer

from neuralake.errors import NeuralakeError
from neuralake.stack.cli import app as stack_app

app = typer.Typer(
    help="Neuralake Lab: a lakehouse you run for real.", no_args_is_help=True, add_completion=False
)
app.add_typer(stack_app, name="stack")


def main() -> None:
    try:
        app(standalone_mode=False)
    except NeuralakeError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        sys.exit(130)

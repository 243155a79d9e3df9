"""``neuralake stack ...``: the command line over :mod:`neuralake.lab.stack.control`."""

from __future__ import annotations

from typing import Annotated

import typer

from neuralake.console import print_table
from neuralake.lab.stack import control, install
from neuralake.settings import settings

app = typer.Typer(help="Start, stop and inspect the lab's services.", no_args_is_help=True)


@app.command()
def up(
    docker: Annotated[bool, typer.Option("--docker", help="Use docker compose.")] = False,
    only: Annotated[list[str] | None, typer.Option(help="Start only these services.")] = None,
) -> None:
    """Start the stack and wait until every service answers (idempotent)."""
    control.up(settings("stack"), docker=docker, only=only, echo=typer.echo)


@app.command()
def down() -> None:
    """Stop the processes the stack started; keep every object and message."""
    control.down(settings("stack"), echo=typer.echo)


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Service, mode, address, pid, health and data folder of each service.

    Exits with status 1 when a service is not healthy, so scripts can wait on it.
    """
    rows = control.status(settings("stack"))
    if as_json:
        typer.echo(control.as_json(rows))
    else:
        print_table(
            ["SERVICE", "MODE", "ADDRESS", "PID", "HEALTHY", "DATA"],
            [
                [
                    r.service,
                    r.mode,
                    r.address,
                    str(r.pid or "-"),
                    "yes" if r.healthy else "no",
                    r.data,
                ]
                for r in rows
            ],
            notes=[f"{r.service}: {r.error}" for r in rows if r.error],
        )
    if not all(r.healthy for r in rows):
        raise typer.Exit(1)


@app.command()
def logs(
    service: str,
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many lines.")] = 50,
) -> None:
    """The last lines a service wrote to its log."""
    typer.echo(control.logs(settings("stack"), service, lines))


@app.command("install")
def install_command() -> None:
    """Build MinIO and resolve the Kafka and Spark jars into the cache (idempotent)."""
    install.install_all(echo=typer.echo)

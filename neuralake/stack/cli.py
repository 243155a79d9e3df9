"""``neuralake stack ...``: the command line over :mod:`neuralake.stack.control`."""

from __future__ import annotations

from typing import Annotated

import typer

from neuralake.settings import settings
from neuralake.stack import control, install

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
        typer.echo(f"{'SERVICE':<9} {'MODE':<7} {'ADDRESS':<24} {'PID':>7} {'HEALTHY':<8} DATA")
        for r in rows:
            pid = str(r.pid) if r.pid else "-"
            ok = "yes" if r.healthy else "no"
            typer.echo(f"{r.service:<9} {r.mode:<7} {r.address:<24} {pid:>7} {ok:<8} {r.data}")
            if r.error:
                typer.echo(f"{'':<9} {r.error}")
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

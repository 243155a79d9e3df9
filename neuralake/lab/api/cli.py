"""``neuralake api``: serve a catalog through ROAPI, reload it, query it.

neuralake api serve -m neuralake.catalog.examples.neuro
neuralake api query "SELECT count(voltage_uv) FROM neural_signals_bronze"
neuralake api reload
"""

from __future__ import annotations

from typing import Annotated

import typer

import neuralake
from neuralake.api.client import RoapiClient
from neuralake.catalog.loader import load_catalog
from neuralake.errors import NeuralakeError
from neuralake.lab.api.serve import reload as reload_roapi
from neuralake.lab.api.serve import serve as serve_catalog

app = typer.Typer(
    help="The hot path: serve the catalog through ROAPI and query it.", no_args_is_help=True
)

Profile = Annotated[str | None, typer.Option(help="Settings profile: stack or aws.")]


@app.command()
def serve(
    module: Annotated[str, typer.Option("--module", "-m", help="Catalog module or .py file.")],
    profile: Profile = None,
) -> None:
    """Write the catalog's ROAPI config for the stack and (re)start ROAPI on it."""
    s = neuralake.settings(profile)
    try:
        names = serve_catalog(load_catalog(module), module, s, echo=typer.echo)
    except NeuralakeError as err:
        raise _fail(err) from err
    for table_id, name in names.items():
        typer.echo(f"served {table_id} as {name}")


@app.command()
def reload(profile: Profile = None) -> None:
    """Restart ROAPI on its current config (after the list of tables changed)."""
    try:
        reload_roapi(neuralake.settings(profile), echo=typer.echo)
    except NeuralakeError as err:
        raise _fail(err) from err


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="SQL to run on ROAPI.")],
    profile: Profile = None,
) -> None:
    """Run SQL on the stack's ROAPI and print the result."""
    try:
        with RoapiClient(settings=neuralake.settings(profile)) as client:
            typer.echo(client.sql(sql))
    except NeuralakeError as err:
        raise _fail(err) from err


def _fail(err: Exception) -> typer.Exit:
    typer.echo(f"error: {err}", err=True)
    return typer.Exit(1)


if __name__ == "__main__":
    app()

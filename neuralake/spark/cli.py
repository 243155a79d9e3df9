"""``neuralake spark ...``: run the ELT, ask who owns a table."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from neuralake.settings import settings
from neuralake.spark import elt, guard
from neuralake.stack.install import spark_jars

app = typer.Typer(help="Spark, the cold path: the ELT job and the write guard.")

_DEFAULTS = elt.Tables()


@app.command("elt")
def run_elt(
    bronze: Annotated[str, typer.Option(help="Bronze table (read only).")] = _DEFAULTS.bronze,
    silver: Annotated[str, typer.Option(help="Silver table Spark writes.")] = _DEFAULTS.silver,
    gold: Annotated[str, typer.Option(help="Gold table Spark writes.")] = _DEFAULTS.gold,
    dims_prefix: Annotated[
        str, typer.Option(help="Prefix of sessions, devices, patients.")
    ] = _DEFAULTS.dims_prefix,
) -> None:
    """Bronze -> silver -> gold for the bronze versions not yet processed; one JSON line."""
    tables = elt.Tables(bronze, silver, gold, dims_prefix)
    typer.echo(elt.run(settings(), tables).to_json())


@app.command()
def owner(table: Annotated[str, typer.Argument(help="Table name in the warehouse.")]) -> None:
    """Say whether the streaming writer owns TABLE (then Spark must not write it)."""
    s = settings()
    uri = s.table_uri(table)
    app_id = guard.writer_app_id(uri, s.storage_options)
    typer.echo(json.dumps({"table": uri, "writer_owned": app_id is not None, "txn": app_id}))


@app.command()
def jars() -> None:
    """Print the Delta and S3A jars, comma-separated, for ``spark-submit --jars``.

    spark-submit starts the driver's JVM before Python runs, so jars given later as
    ``spark.jars`` in the session builder never reach its class path.
    """
    typer.echo(",".join(str(jar) for jar in spark_jars()))

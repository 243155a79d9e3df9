"""``neuralake spark ...``: run the ELT, ask who owns a table, run a standalone cluster."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from neuralake.lab.stack import spark_cluster as cluster
from neuralake.lab.stack.install import spark_jars
from neuralake.settings import settings
from neuralake.spark import elt, guard
from neuralake.spark.session import MASTER_ENV

app = typer.Typer(help="Spark, the cold path: the ELT job, the write guard, a local cluster.")
cluster_app = typer.Typer(
    help="A Spark standalone cluster on this machine (master + workers).", no_args_is_help=True
)
app.add_typer(cluster_app, name="cluster")

_DEFAULTS = elt.Tables()


@app.command("elt")
def run_elt(
    bronze: Annotated[str, typer.Option(help="Bronze table (read only).")] = _DEFAULTS.bronze,
    silver: Annotated[str, typer.Option(help="Silver table Spark writes.")] = _DEFAULTS.silver,
    gold: Annotated[str, typer.Option(help="Gold table Spark writes.")] = _DEFAULTS.gold,
    dims_prefix: Annotated[
        str, typer.Option(help="Prefix of sessions, devices, patients.")
    ] = _DEFAULTS.dims_prefix,
    master: Annotated[
        str | None,
        typer.Option(
            envvar=MASTER_ENV,
            help="Spark master, e.g. spark://127.0.0.1:7077 (`cluster up`); default local[2].",
        ),
    ] = None,
) -> None:
    """Bronze -> silver -> gold for the bronze versions not yet processed; one JSON line."""
    if master:
        os.environ[MASTER_ENV] = master  # the session reads it, as from the shell
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


@cluster_app.command("up")
def cluster_up(
    workers: Annotated[int | None, typer.Option(help="Workers (default 1).")] = None,
    cores: Annotated[int | None, typer.Option(help="Cores per worker (default 2).")] = None,
    memory: Annotated[str | None, typer.Option(help="Memory per worker (default 2g).")] = None,
) -> None:
    """Start a master and N workers on 127.0.0.1; return once all are ALIVE (idempotent)."""
    c = cluster.cluster(settings(), workers=workers, cores=cores, memory=memory)
    cluster.up(c, echo=typer.echo)
    typer.echo(f"use it: neuralake spark elt --master {c.master_url}  (or {MASTER_ENV})")


@cluster_app.command("down")
def cluster_down() -> None:
    """Stop the workers (and their executors) and the master, by pid. Logs are kept."""
    c = cluster.cluster(settings())
    if not cluster.down(c, echo=typer.echo):
        typer.echo("no Spark cluster was running")


@cluster_app.command("status")
def cluster_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Master, workers (pid, state, cores, memory), applications, and the sizing.

    Exits with status 1 unless the master and every worker are ALIVE.
    """
    state = cluster.status(cluster.cluster(settings()))
    if as_json:
        typer.echo(json.dumps(state, indent=2))
    else:
        m = state["master"]
        pid, up = m["pid"] or "-", m["state"] or "down"
        typer.echo(f"master    {m['url']}  pid {pid}  {up}  UI {m['ui']}")
        for w in state["workers"]:
            memory = f"{w['memory_mb']} MiB" if w["memory_mb"] else "-"
            typer.echo(
                f"{w['name']:<9} pid {w['pid'] or '-'}  {w['state'] or '?'}  "
                f"{w['cores'] or '-'} cores  {memory}  UI {w['ui']}"
            )
        for a in state["applications"]:
            typer.echo(f"app       {a['id']}  {a['name']}  {a['cores']} cores  {a['state']}")
        typer.echo(f"sizing    {state['sizing']}")
        if state["error"]:
            typer.echo(f"error     {state['error']}")
    if not state["healthy"]:
        raise typer.Exit(1)

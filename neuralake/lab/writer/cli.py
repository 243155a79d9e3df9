"""``neuralake writer ...`` and ``neuralake produce``: the command line over the streaming core."""

from __future__ import annotations

import json
import logging
import signal
from typing import Annotated

import typer

from neuralake.console import print_table
from neuralake.errors import ConfigError
from neuralake.lab.writer import binary, control
from neuralake.settings import settings
from neuralake.streaming import baseline as baseline_module
from neuralake.streaming.produce import produce as produce_messages
from neuralake.streaming.schemas import DEFAULT_TABLE, DEFAULT_TOPIC

app = typer.Typer(
    help="The Rust writer: Kafka -> Delta exactly once, plus compaction and vacuum.",
    no_args_is_help=True,
)

Topic = Annotated[str, typer.Option(help="Kafka topic.")]
Table = Annotated[str, typer.Option(help="Bronze table name in the warehouse.")]


@app.command()
def up(
    topic: Topic = DEFAULT_TOPIC,
    table: Table = DEFAULT_TABLE,
    flush_ms: Annotated[int | None, typer.Option(help="Flush at least this often.")] = None,
    flush_rows: Annotated[int | None, typer.Option(help="Flush at this many rows.")] = None,
    flush_bytes: Annotated[int | None, typer.Option(help="...or payload bytes.")] = None,
    checkpoint_every: Annotated[
        int | None, typer.Option(help="Checkpoint every N commits.")
    ] = None,
    app_id: Annotated[str | None, typer.Option(help="App id of the txn actions.")] = None,
    offset_reset: Annotated[
        str | None,
        typer.Option(help="Where a partition the table holds nothing of starts: earliest, latest."),
    ] = None,
    give_up_s: Annotated[
        int | None, typer.Option(help="Seconds a permanent failure is retried before exit 1.")
    ] = None,
    decoders: Annotated[
        int | None, typer.Option(help="Ingest's decoder threads (default: one per core).")
    ] = None,
    compact_interval_s: Annotated[int | None, typer.Option(help="Seconds between passes.")] = None,
    target_size: Annotated[int | None, typer.Option(help="Compacted file size, bytes.")] = None,
    min_files: Annotated[int | None, typer.Option(help="Small files that trigger it.")] = None,
    vacuum_interval_s: Annotated[int | None, typer.Option(help="Seconds between passes.")] = None,
    retention_hours: Annotated[float | None, typer.Option(help="Keep old files this long.")] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(help="Start only this process (repeat for several): ingest, compact, vacuum."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Ingest workers sharing the topic (one consumer group); default 1."),
    ] = None,
) -> None:
    """Start ingest, compact and vacuum for a table; return once each one is ready."""
    if offset_reset not in (None, "earliest", "latest"):
        raise typer.BadParameter("use earliest or latest", param_hint="--offset-reset")
    options = {k: v for k, v in locals().items() if k in control.OPTION_VARS}
    control.up(
        settings(),
        topic=topic,
        table=table,
        echo=typer.echo,
        only=only,
        workers=workers,
        **options,
    )


@app.command()
def run(
    name: Annotated[str, typer.Argument(help="compact or vacuum.")],
    once: Annotated[bool, typer.Option("--once", help="One pass in the foreground.")] = False,
    table: Table = DEFAULT_TABLE,
    target_size: Annotated[int | None, typer.Option(help="Compacted file size, bytes.")] = None,
    min_files: Annotated[int | None, typer.Option(help="Small files that trigger it.")] = None,
    retention_hours: Annotated[float | None, typer.Option(help="Keep old files this long.")] = None,
) -> None:
    """One pass of compact or vacuum on a table; prints its JSON report."""
    if not once:
        raise ConfigError(
            f"writer run {name} needs --once (the background process is: "
            f"neuralake writer up --only {name})"
        )
    report = control.run_once(
        settings(),
        name,
        table=table,
        target_size=target_size,
        min_files=min_files,
        retention_hours=retention_hours,
    )
    typer.echo(json.dumps(report))


@app.command()
def forget(
    table: Annotated[str, typer.Argument(help="Bronze table name in the warehouse.")],
) -> None:
    """Drop a table, its dead letters and the writer's state for it (writer stopped first)."""
    control.forget(settings(), table, echo=typer.echo)


@app.command()
def down(
    table: Annotated[str | None, typer.Option(help="Only this table's writer.")] = None,
) -> None:
    """Stop the writer processes this lab started (all tables unless --table)."""
    if not control.down(settings(), table, echo=typer.echo):
        typer.echo("no writer process was running")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Each writer process: table, name, pid, alive, partitions and lag of each ingest worker,
    metrics URL (exit 1 if one is down)."""
    rows = control.status(settings())
    if as_json:
        typer.echo(control.as_json(rows))
    else:
        print_table(
            ["TABLE", "PROCESS", "PID", "ALIVE", "PARTITIONS", "LAG", "METRICS"],
            [
                [
                    r.table,
                    r.name,
                    str(r.pid or "-"),
                    "yes" if r.alive else "no",
                    "-" if r.partitions is None else ",".join(map(str, r.partitions)) or "none",
                    "-" if r.lag is None else str(r.lag),
                    r.metrics_url,
                ]
                for r in rows
            ],
            notes=list(
                dict.fromkeys(
                    f"{r.table}: topic {r.topic} -> {r.table_uri}" for r in rows if r.topic
                )
            ),
        )
    if not all(r.alive for r in rows):
        raise typer.Exit(1)


@app.command()
def build() -> None:
    """Build the Rust writer with cargo into the cache (needs Rust: https://rustup.rs)."""
    typer.echo(f"neuralake-writer: {binary.build()}")


@app.command()
def baseline(
    topic: Topic = DEFAULT_TOPIC,
    table: Table = baseline_module.DEFAULT_TABLE,
    app_id: Annotated[str, typer.Option(help="App id of the txn actions.")] = (
        baseline_module.DEFAULT_APP
    ),
    group_id: Annotated[str | None, typer.Option(help="Group for lag tools.")] = None,
    flush_ms: Annotated[int, typer.Option(help="Flush at least this often.")] = 1000,
    flush_rows: Annotated[int, typer.Option(help="Flush at this many rows.")] = 500_000,
    flush_bytes: Annotated[int, typer.Option(help="...or payload bytes.")] = 64 * 2**20,
    stop_at_end: Annotated[
        bool, typer.Option("--stop-at-end", help="Exit at the end of the topic as seen now.")
    ] = False,
) -> None:
    """The Python consumer baseline: same tables, same exactly-once protocol, in Python."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    writer = baseline_module.Baseline(
        settings(),
        topic=topic,
        table=table,
        app=app_id,
        group_id=group_id,
        flush=baseline_module.FlushRule(ms=flush_ms, rows=flush_rows, bytes=flush_bytes),
    )
    try:
        summary = writer.run(stop_at_end=stop_at_end, should_stop=lambda: bool(stopping))
    finally:
        writer.close()
    typer.echo(summary.to_json())


def produce(
    count: Annotated[int, typer.Option(help="Messages to send.")],
    topic: Topic = DEFAULT_TOPIC,
    rate: Annotated[float | None, typer.Option(help="Messages per second (default: max).")] = None,
    malformed_ratio: Annotated[float, typer.Option(help="Share of broken messages.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Chooses the data and the broken messages.")] = 0,
    partitions: Annotated[int, typer.Option(help="Partitions if the topic is new.")] = 3,
) -> None:
    """Replay the signal generator into a topic: one JSON message per row."""
    result = produce_messages(
        settings(),
        topic=topic,
        count=count,
        rate=rate,
        malformed_ratio=malformed_ratio,
        seed=seed,
        partitions=partitions,
    )
    typer.echo(result.to_json())

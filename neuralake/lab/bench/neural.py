"""The neural-signal suite: the lab's own data, asked five typical questions.

Tables come from :mod:`neuralake.datagen` (``neural_signals`` and ``sessions``), written
under ``bench_neural/<tag>/`` in the warehouse; ``scale`` counts millions of signal rows,
rounded up to the generator's whole blocks (4 sessions x 256 channels x 1,024 samples:
any scale up to 1.048 gives 1,048,576 rows).

The questions, each as SQL (DataFusion, DuckDB, Spark, ROAPI) and as a Polars plan:

- ``scan``       every row: count, mean voltage, mean quality.
- ``filter``     the deep troughs of one channel (a selective predicate).
- ``join``       signals x sessions: samples and spikes per task.
- ``aggregate``  per channel: samples, mean and extreme voltage, spikes.
- ``window``     spike counts per session in 1-second tumbling windows.

Two details keep every engine on the same answer: ``voltage_uv`` is ``float32``, and
engines sum float32 in float32 or float64 as they like, so sums cast to double first;
ROAPI 0.12.7 cannot compare an ``Int16`` column with a literal, so ``channel`` is cast
to ``int`` before comparing.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from neuralake import datagen
from neuralake.lab.bench.data import _is_current, scale_tag
from neuralake.lab.bench.queries import PolarsPlan, Query
from neuralake.settings import Settings

col = pl.col
CHANNEL = 7


def table_uris(settings: Settings, scale: float) -> dict[str, str]:
    """The neural suite's table URIs at ``scale`` (millions of signal rows)."""
    prefix = f"bench_neural/{scale_tag(scale)}/"
    return {n: settings.table_uri(prefix + n) for n in ("neural_signals", "sessions")}


def write_tables(
    settings: Settings, scale: float, echo: Callable[[str], None] = print
) -> dict[str, str]:
    """Generate and write the suite's tables unless they already hold the right rows."""
    simulation = datagen.Simulation(rows=max(int(scale * 1_000_000), 1), sessions=4, seed=7)
    uris = table_uris(settings, scale)
    if not _is_current(uris["neural_signals"], settings, simulation.signal_rows):
        echo(f"writing {simulation.signal_rows:,} neural-signal rows")
        prefix = f"bench_neural/{scale_tag(scale)}/"
        datagen.write_tables(settings, simulation, files=4, prefix=prefix)
    return uris


def _spikes() -> pl.Expr:
    return col("spike").cast(pl.Int64).sum()


QUESTIONS: dict[str, tuple[str, PolarsPlan]] = {
    "scan": (
        """select count(*) as n, avg(cast(voltage_uv as double)) as mean_uv,
            avg(cast(quality as double)) as mean_quality from neural_signals""",
        lambda t: t["neural_signals"].select(
            pl.len().alias("n"),
            col("voltage_uv").cast(pl.Float64).mean().alias("mean_uv"),
            col("quality").cast(pl.Float64).mean().alias("mean_quality"),
        ),
    ),
    "filter": (
        f"""select timestamp, session_id, cast(voltage_uv as double) as voltage_uv
            from neural_signals
            where cast(channel as int) = {CHANNEL} and voltage_uv < -60.0""",
        lambda t: (
            t["neural_signals"]
            .filter((col("channel").cast(pl.Int32) == CHANNEL) & (col("voltage_uv") < -60.0))
            .select("timestamp", "session_id", col("voltage_uv").cast(pl.Float64))
        ),
    ),
    "join": (
        """select s.task, count(*) as samples,
            sum(case when n.spike then 1 else 0 end) as spikes
            from neural_signals n join sessions s on n.session_id = s.session_id
            group by s.task""",
        lambda t: (
            t["neural_signals"]
            .join(t["sessions"], on="session_id")
            .group_by("task")
            .agg(pl.len().alias("samples"), _spikes().alias("spikes"))
        ),
    ),
    "aggregate": (
        """select cast(channel as int) as channel, count(*) as samples,
            avg(cast(voltage_uv as double)) as mean_uv,
            min(cast(voltage_uv as double)) as min_uv,
            max(cast(voltage_uv as double)) as max_uv,
            sum(case when spike then 1 else 0 end) as spikes
            from neural_signals group by cast(channel as int)""",
        lambda t: (
            t["neural_signals"]
            .group_by(col("channel").cast(pl.Int32))
            .agg(
                pl.len().alias("samples"),
                col("voltage_uv").cast(pl.Float64).mean().alias("mean_uv"),
                col("voltage_uv").cast(pl.Float64).min().alias("min_uv"),
                col("voltage_uv").cast(pl.Float64).max().alias("max_uv"),
                _spikes().alias("spikes"),
            )
        ),
    ),
    "window": (
        """select session_id, date_trunc('second', timestamp) as window_start,
            sum(case when spike then 1 else 0 end) as spikes
            from neural_signals group by session_id, date_trunc('second', timestamp)""",
        lambda t: (
            t["neural_signals"]
            .group_by("session_id", col("timestamp").dt.truncate("1s").alias("window_start"))
            .agg(_spikes().alias("spikes"))
        ),
    ),
}


def queries() -> list[Query]:
    """The five neural-signal questions, in a fixed order."""
    return [Query(name, text, plan) for name, (text, plan) in QUESTIONS.items()]

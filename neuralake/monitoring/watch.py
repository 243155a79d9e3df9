"""Sample a running pipeline over time: one row per sample, ready to plot and to alert on.

A dashboard is a list of samples taken at intervals. :class:`Watch` takes one each time
``sample()`` is called, from three sides of the pipeline:

- the writer's ``/metrics`` (Prometheus text, :mod:`neuralake.streaming.metrics`): lag per
  partition summed, its freshness gauge, counters of messages, rows and dead letters;
- the broker (``broker_lag``): high watermark minus the group's committed offset. It keeps
  counting while the writer is down, when the writer's own gauge has no process to serve it;
- a reader (``newest_served``): the newest ``kafka_timestamp`` a query sees, e.g. through
  ROAPI. ``served_age_s``, the time it answered minus ``newest``, is freshness as a user
  meets it;
- the table (``files``): how many data files its current version has, the backlog that
  compaction works down.

A probe that cannot answer (the writer is down: no ``/metrics``; the broker timed out)
gives nulls in its columns and its name in ``down``: absence is data, and an alert rule
can fire on it. Any other exception is a bug in the probe and is raised.

Counters restart at 0 when a process restarts. :func:`increase` follows Prometheus's
``increase()``: a drop means a reset, and the new value is the increase since it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import polars as pl
from confluent_kafka import KafkaException

from neuralake.errors import NeuralakeError
from neuralake.streaming import metrics

T = TypeVar("T")

LAG = "neuralake_writer_consumer_lag"
#: Column of a sample -> the writer metric it comes from (ingest's /metrics).
WRITER_METRICS = {
    "writer_freshness_s": "neuralake_writer_freshness_seconds",
    "messages_total": "neuralake_writer_messages_total",
    "rows_total": "neuralake_writer_rows_total",
    "dead_letters_total": "neuralake_writer_dead_letters_total",
    "batches_total": "neuralake_writer_batches_total",
    "table_version": "neuralake_writer_table_version",
}
COLUMNS = {
    "t_s": pl.Float64(),
    "sampled_at": pl.Datetime("us", "UTC"),
    "phase": pl.String(),
    "writer_lag": pl.Float64(),
    **{name: pl.Float64() for name in WRITER_METRICS},
    "broker_lag": pl.Int64(),
    "served_age_s": pl.Float64(),
    "files": pl.Int64(),
    "down": pl.String(),
}


def writer_columns(values: dict[str, float]) -> dict[str, float | None]:
    """The writer's metrics as sample columns; ``writer_lag`` sums the partitions' gauges."""
    lags = [v for k, v in values.items() if k.startswith(LAG + "{")]
    return {
        "writer_lag": sum(lags) if lags else None,  # absent before the first commit
        **{column: values.get(metric) for column, metric in WRITER_METRICS.items()},
    }


def increase(counter: list[float | None]) -> list[float | None]:
    """How much a counter grew since the previous sample (null where either is missing).

    A counter that went down was reset by a restart: it grew by its new value since then.
    """
    grown: list[float | None] = [None]
    for before, now in itertools.pairwise(counter):
        if before is None or now is None:
            grown.append(None)
        else:
            grown.append(now - before if now >= before else now)
    return grown


def windowed_ratio(
    t_s: list[float],
    part: list[float | None],
    whole: list[float | None],
    window_s: float,
    min_whole: float = 0,
) -> list[float | None]:
    """``sum(part) / sum(whole)`` over the samples of the last ``window_s`` seconds.

    Used with :func:`increase` of two counters (dead letters per message consumed); null
    until the samples span ``window_s``, and while the window holds ``min_whole`` messages
    or fewer. The writer commits a batch's
    dead letters just before its rows, so a sample taken in between sees the dead letters
    before the messages they came with: over a handful of messages the ratio is noise.
    """
    ratios: list[float | None] = []
    for i, now in enumerate(t_s):
        if now - t_s[0] < window_s:  # a ratio over 5 s needs 5 s of samples
            ratios.append(None)
            continue
        inside = [j for j in range(i + 1) if now - t_s[j] <= window_s]
        total = sum(whole[j] or 0 for j in inside)
        ratios.append(sum(part[j] or 0 for j in inside) / total if total > min_whole else None)
    return ratios


@dataclass
class Watch:
    """Samples of one writer's pipeline; each probe is optional.

    ``Watch(ingest_url, broker_lag=..., newest_served=..., files=...)``, then call
    ``sample(phase=...)`` every second or so and read ``frame()``.
    """

    ingest_url: str
    broker_lag: Callable[[], int] | None = None
    newest_served: Callable[[], datetime | None] | None = None
    files: Callable[[], int] | None = None
    samples: list[dict] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def sample(self, phase: str = "") -> dict:
        """Take one sample now (each probe once) and keep it."""
        down: list[str] = []
        row: dict = {"t_s": round(time.monotonic() - self.started, 3), "phase": phase}
        row["sampled_at"] = datetime.now(UTC)
        row.update(writer_columns(self._probe("writer", down, self._writer) or {}))
        row["broker_lag"] = self._probe("broker", down, self.broker_lag)
        newest = self._probe("reader", down, self.newest_served)
        # Age when the reader answered: measured from sampled_at, a row that arrived while
        # the other probes ran came out a fraction of a second "from the future".
        row["served_age_s"] = (
            (datetime.now(UTC) - newest).total_seconds() if newest is not None else None
        )
        row["files"] = self._probe("table", down, self.files)
        row["down"] = ",".join(down)
        self.samples.append(row)
        return row

    def frame(self, ratio_window_s: float = 5.0, ratio_min_messages: int = 100) -> pl.DataFrame:
        """Every sample, plus ``dead_letter_ratio``: dead letters per consumed message over
        the last ``ratio_window_s`` seconds (from the two counters' increases), null while
        fewer than ``ratio_min_messages`` messages were consumed in that window."""
        frame = pl.DataFrame(self.samples, schema=COLUMNS, orient="row")
        dead = increase(frame["dead_letters_total"].to_list())
        consumed = increase(frame["messages_total"].to_list())
        t_s = frame["t_s"].to_list()
        ratio = windowed_ratio(t_s, dead, consumed, ratio_window_s, ratio_min_messages)
        return frame.with_columns(dead_letter_ratio=pl.Series(ratio, dtype=pl.Float64))

    def _writer(self) -> dict[str, float]:
        return metrics.values(self.ingest_url)

    @staticmethod
    def _probe(name: str, down: list[str], probe: Callable[[], T] | None) -> T | None:
        """The probe's answer; None (and its name in ``down``) when its service is away."""
        if probe is None:
            return None
        try:
            return probe()
        except (NeuralakeError, KafkaException):  # no /metrics, ROAPI restarting, broker timeout
            down.append(name)
            return None

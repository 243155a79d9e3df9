"""Where a ROAPI query spends its time: the scan metrics of ``EXPLAIN ANALYZE``.

ROAPI runs ``EXPLAIN ANALYZE <query>`` like any SQL and answers with DataFusion's plan,
every operator annotated with what it did. For the hot path the scan is what matters:

- ``files_scanned`` / ``files_pruned``: Delta files read or skipped on the log's
  min/max statistics (free: the log is in memory);
- ``row_groups_matched_statistics`` / ``row_groups_pruned_statistics``: row groups
  read or skipped on the Parquet footer's statistics (each file's footer is a request);
- ``page_index_rows_pruned``: rows skipped with the page index;
- ``bytes_scanned`` and ``metadata_load_time``: what was fetched from storage, and how
  long the footers and page indexes took (DataFusion 47 caches neither between queries);
- ``partition_sizes``: record batches per partition of a memory table (every query
  filters every batch: a MemTable has no statistics);
- ``elapsed_compute``: CPU time of each operator, summed as ``compute_ms``: what the
  query cost DataFusion itself, as opposed to waiting (for S3, for a core).

:func:`scan_metrics` sums them over the plan into one flat dict, for a table per query.
"""

from __future__ import annotations

import re

from neuralake.api.client import RoapiClient

#: Counters summed over every scan in the plan.
COUNTERS = (
    "files_scanned",
    "files_pruned",
    "row_groups_matched_statistics",
    "row_groups_pruned_statistics",
    "page_index_rows_pruned",
    "bytes_scanned",
)
_DURATION = re.compile(r"metadata_load_time=([0-9.]+)(ns|µs|ms|s)\b")
_COMPUTE = re.compile(r"elapsed_compute=([0-9.]+)(ns|µs|ms|s)\b")
_TO_MS = {"ns": 1e-6, "µs": 1e-3, "ms": 1.0, "s": 1000.0}


def plan(client: RoapiClient, sql: str) -> str:
    """The ``EXPLAIN ANALYZE`` text of ``sql``: the query runs once, with metrics."""
    return "\n".join(client.sql(f"EXPLAIN ANALYZE {sql}")["plan"].to_list())


def scan_metrics(plan_text: str) -> dict[str, float]:
    """The scan counters of an ``EXPLAIN ANALYZE`` plan, summed; durations in ms."""
    metrics: dict[str, float] = {
        name: sum(int(v) for v in re.findall(rf"\b{name}=(\d+)", plan_text)) for name in COUNTERS
    }
    metrics["metadata_load_ms"] = round(
        sum(float(v) * _TO_MS[unit] for v, unit in _DURATION.findall(plan_text)), 1
    )
    metrics["compute_ms"] = round(
        sum(float(v) * _TO_MS[unit] for v, unit in _COMPUTE.findall(plan_text)), 2
    )
    batches = re.findall(r"partition_sizes=\[([0-9, ]*)\]", plan_text)
    metrics["memory_batches"] = sum(
        int(n) for sizes in batches for n in sizes.split(",") if n.strip()
    )
    return metrics

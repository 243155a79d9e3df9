"""Who wrote what, and when: an audit of every commit, read from the Delta log itself.

Each commit file ``_delta_log/<version>.json`` is a list of actions. The audit reads them
as they are (:func:`neuralake.delta.read_commit`) and keeps, per commit:

- ``engine``: ``commitInfo.engineInfo`` (``delta-rs:1.1.3``, ``Apache-Spark/4.x
  Delta-Lake/4.x``), else ``clientVersion``;
- ``writer``: who it was in the lab's terms. A commit with ``txn`` actions was made by the
  streaming writer named in their ``appId`` (``<app>/<topic>/<partition>``); a commit
  whose ``userMetadata`` names an ``app`` (the Spark ELT) by that app; ``OPTIMIZE`` by
  compaction, ``VACUUM`` by vacuum; anything else by its engine;
- ``txn``: the Kafka offsets the commit covers, ``topic p0=347 p1=334`` (exactly-once: the
  data and its offsets are in one commit);
- ``data_change``: false for compaction's rewrites (``dataChange: false`` on every file
  action): the rows are the same, only the files changed, so readers of changes skip it;
- ``files_added``, ``files_removed``, ``rows_added`` (``numRecords`` of the added files'
  statistics, data changes only) and ``bytes_added``;
- ``bronze_version``: for the ELT's commits, the bronze version they cover (from
  ``userMetadata``), which is how :func:`elt_behind` measures the cold path's staleness.

Only commits whose JSON file is still in the log are listed (a checkpoint keeps the state,
not the history; log retention deletes old commit files after 30 days by default).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import polars as pl

from neuralake.delta import log_files, read_commit

COMMIT_FILE = re.compile(r"^(\d{20})\.json$")
SCHEMA = {
    "table": pl.String(),
    "version": pl.Int64(),
    "committed_at": pl.Datetime("us", "UTC"),
    "operation": pl.String(),
    "writer": pl.String(),
    "engine": pl.String(),
    "txn": pl.String(),
    "data_change": pl.Boolean(),
    "files_added": pl.Int64(),
    "files_removed": pl.Int64(),
    "rows_added": pl.Int64(),
    "bytes_added": pl.Int64(),
    "bronze_version": pl.Int64(),
    "user_metadata": pl.String(),
}


def who(operation: str, engine: str, txn_apps: set[str], metadata: dict) -> str:
    """The writer of a commit, in the lab's terms (see the module docstring)."""
    if txn_apps:
        return ",".join(sorted(txn_apps))
    if metadata.get("app"):
        return str(metadata["app"])
    if operation == "OPTIMIZE":
        return "compaction"
    if operation.startswith("VACUUM"):
        return "vacuum"
    return engine or "unknown"


def commit_row(version: int, actions: list[dict]) -> dict:
    """One audit row from the actions of one commit (pure: no I/O)."""
    info: dict[str, Any] = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
    txns = [a["txn"] for a in actions if "txn" in a]
    adds = [a["add"] for a in actions if "add" in a]
    removes = [a["remove"] for a in actions if "remove" in a]
    metadata = _json_object(info.get("userMetadata"))
    engine = info.get("engineInfo") or info.get("clientVersion") or ""
    operation = info.get("operation", "")
    file_actions = adds + removes
    return {
        "version": version,
        "committed_at": datetime.fromtimestamp(info["timestamp"] / 1000, tz=UTC)
        if "timestamp" in info
        else None,
        "operation": operation,
        "writer": who(operation, engine, {t["appId"].rsplit("/", 2)[0] for t in txns}, metadata),
        "engine": engine,
        "txn": _offsets(txns),
        # A commit without file actions (create, metadata) changes what readers see.
        "data_change": any(a.get("dataChange", True) for a in file_actions)
        if file_actions
        else True,
        "files_added": len(adds),
        "files_removed": len(removes),
        "rows_added": sum(
            _json_object(a.get("stats")).get("numRecords", 0)
            for a in adds
            if a.get("dataChange", True)
        ),
        "bytes_added": sum(a.get("size", 0) for a in adds),
        "bronze_version": metadata.get("bronze_version"),
        "user_metadata": info.get("userMetadata"),
    }


def commits(
    uri: str, storage_options: dict[str, str] | None = None, *, name: str | None = None
) -> pl.DataFrame:
    """Every commit of the table at ``uri`` still in its log, oldest first."""
    versions = [
        int(m.group(1))
        for file in log_files(uri, storage_options)["name"]
        if (m := COMMIT_FILE.match(file))
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:  # one small GET per commit
        logs = list(pool.map(lambda v: read_commit(uri, v, storage_options), versions))
    rows = [
        {"table": name or uri.rstrip("/").rsplit("/", 1)[-1], **commit_row(v, actions)}
        for v, actions in zip(versions, logs, strict=True)
    ]
    return pl.DataFrame(rows, schema=SCHEMA, orient="row").sort("version")


def audit(tables: Mapping[str, str], storage_options: dict[str, str] | None = None) -> pl.DataFrame:
    """The commits of several tables (``{name: uri}``) in one frame, in commit-time order."""
    frames = [commits(uri, storage_options, name=name) for name, uri in tables.items()]
    return pl.concat(frames).sort("committed_at", "table", "version")


def summary(audited: pl.DataFrame) -> pl.DataFrame:
    """Per table, writer and operation: commits, rows and bytes added, first and last."""
    return (
        audited.group_by("table", "writer", "operation", "data_change")
        .agg(
            commits=pl.len(),
            rows_added=pl.col("rows_added").sum(),
            mib_added=(pl.col("bytes_added").sum() / 2**20).round(2),
            first=pl.col("committed_at").min().dt.strftime("%H:%M:%S"),
            last=pl.col("committed_at").max().dt.strftime("%H:%M:%S"),
        )
        .sort("table", "first", "writer")
    )


def elt_behind(bronze: pl.DataFrame, silver: pl.DataFrame, now: datetime | None = None) -> dict:
    """How far the cold path is behind bronze, from the two tables' audits.

    ``covered``: the newest bronze version an ELT commit of silver names;
    ``versions_behind``: bronze commits with new data after it; ``seconds_behind``: age of
    the oldest of those (0 when silver covers every data change).
    """
    covered = silver["bronze_version"].drop_nulls().max()
    newer = bronze.filter(pl.col("data_change") & (pl.col("version") > (covered or -1)))
    now = now or datetime.now(UTC)
    oldest = newer["committed_at"].min()
    return {
        "bronze_version": bronze["version"].max(),
        "covered": covered,
        "versions_behind": newer.height,
        "seconds_behind": round((now - oldest).total_seconds(), 1)
        if isinstance(oldest, datetime)
        else 0.0,
    }


def _offsets(txns: list[dict]) -> str | None:
    """``topic p0=12 p1=40``: the Kafka offsets a commit's ``txn`` actions record."""
    if not txns:
        return None
    by_topic: dict[str, list[str]] = {}
    for t in sorted(txns, key=lambda t: t["appId"]):
        _, topic, partition = t["appId"].rsplit("/", 2)
        by_topic.setdefault(topic, []).append(f"p{partition}={t['version']}")
    return "; ".join(f"{topic} {' '.join(parts)}" for topic, parts in by_topic.items())


def _json_object(text: str | None) -> dict:
    """A JSON object from a string field of the log (stats, userMetadata); {} otherwise."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}  # userMetadata is free text: not every writer puts JSON there
    return value if isinstance(value, dict) else {}

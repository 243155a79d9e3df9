"""Spark reads the streaming writer's tables and never writes them: the guard that says so.

Why: a Delta commit is "put ``_delta_log/<version>.json`` if it does not exist yet".
delta-rs does that with S3's conditional put (``If-None-Match: *``), so two delta-rs
writers can never both win one version. Spark's Delta has no such LogStore for S3
(delta-io/delta#3596): its S3 commit checks and then writes, so while the writer is
committing every second, a Spark write could overwrite one of the writer's commits and
silently lose a micro-batch, offsets and all. So Spark writes only its own tables.

How "writer-owned" is known, from the data itself: every commit of the streaming writer
(the Rust ``neuralake-writer`` and the Python baseline alike) carries ``txn`` actions
``appId = "<app>/<topic>/<partition>"`` that record the Kafka offsets it wrote
(:mod:`neuralake.streaming.schemas`). A table whose log holds a ``txn`` action of a
writer app is writer-owned. We chose the log over a catalog declaration because the log
cannot be out of date: a writer pointed at a new table name protects it from its first
commit, with nothing to register, and its dead-letter table too (same ``txn`` scheme).

Cost: the newest commits are read first and the search stops at the first writer
``txn``; a live writer's table answers from its last commit (one small GET). A table
with none is read back to its last checkpoint, whose ``txn`` column holds every
application's latest offset (the Delta protocol requires it there).

Limits, said plainly: the check runs when Spark is about to write; it cannot stop a
writer that starts on a Spark table afterwards. Run writers and Spark on separate names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

import polars as pl

from neuralake import delta
from neuralake.errors import NeuralakeError, TableNotFoundError
from neuralake.settings import Settings
from neuralake.streaming.baseline import DEFAULT_APP as BASELINE_APP
from neuralake.streaming.schemas import DEFAULT_APP as WRITER_APP

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

#: The apps whose ``txn`` actions mark a table as written by the streaming writer.
WRITER_APPS: tuple[str, ...] = (WRITER_APP, BASELINE_APP)

_COMMIT = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint(\..+)?\.parquet$")


class WriterOwnedTableError(NeuralakeError, PermissionError):
    """Spark was asked to write a table that the streaming writer commits to."""


def writer_app_id(
    uri: str, storage_options: dict[str, str] | None = None, apps: Iterable[str] = WRITER_APPS
) -> str | None:
    """The first writer ``txn`` appId found in the table's log, newest first; None if none.

    A table that does not exist yet has no owner: None.
    """
    prefixes = tuple(f"{app}/" for app in apps)
    try:
        names = delta.log_files(uri, storage_options)["name"].to_list()
    except TableNotFoundError:
        return None
    except FileNotFoundError:  # a local folder that does not exist yet
        return None
    commits = sorted((int(m.group(1)), name) for name in names if (m := _COMMIT.match(name)))
    checkpoints = sorted(
        (int(m.group(1)), name) for name in names if (m := _CHECKPOINT.match(name))
    )
    last_checkpoint = checkpoints[-1][0] if checkpoints else -1
    for version, _ in reversed(commits):
        if version <= last_checkpoint:
            break
        for action in delta.read_commit(uri, version, storage_options):
            app = (action.get("txn") or {}).get("appId", "")
            if app.startswith(prefixes):
                return app
    if last_checkpoint >= 0:
        for app in _checkpoint_app_ids(uri, checkpoints, last_checkpoint, storage_options):
            if app.startswith(prefixes):
                return app
    return None


def _checkpoint_app_ids(
    uri: str, checkpoints: list[tuple[int, str]], version: int, storage_options: dict | None
) -> list[str]:
    """The ``txn.appId`` values of the (possibly multi-part) checkpoint at ``version``."""
    parts = [name for v, name in checkpoints if v == version]
    ids: list[str] = []
    for name in parts:
        frame = pl.read_parquet(
            f"{uri.rstrip('/')}/_delta_log/{name}",
            columns=["txn"],
            storage_options=storage_options or None,
        )
        ids += [app for app in frame["txn"].struct.field("appId").to_list() if app]
    return ids


def ensure_spark_may_write(uri: str, settings: Settings, apps: Iterable[str] = WRITER_APPS) -> None:
    """Raise :class:`WriterOwnedTableError` if the streaming writer commits to ``uri``."""
    app = writer_app_id(uri, settings.storage_options, apps)
    if app is not None:
        raise WriterOwnedTableError(
            f"refusing to write {uri} with Spark: the streaming writer owns it (txn "
            f"{json.dumps(app)} in its Delta log) and Spark's Delta has no conditional-put "
            "commit on S3; read it with Spark and write the result to a table of your own"
        )


def write_delta(
    frame: DataFrame,
    uri: str,
    settings: Settings,
    *,
    mode: str = "append",
    partition_by: Iterable[str] = (),
    options: dict[str, str] | None = None,
) -> None:
    """``frame.write.format("delta")...save(uri)``, after the guard: Spark's one write path."""
    ensure_spark_may_write(uri, settings)
    writer = frame.write.format("delta").mode(mode).options(**(options or {}))
    partition_by = list(partition_by)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(spark_path(uri))


def spark_path(uri: str) -> str:
    """The URI as Hadoop reads it: ``s3a://`` (``s3://`` is mapped to S3A too, see settings)."""
    return "s3a://" + uri.removeprefix("s3://") if uri.startswith("s3://") else uri

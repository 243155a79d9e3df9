"""Reading a table's log the way the graders replay it: one commit's data-changing adds.

A compaction's ``add`` actions carry ``dataChange: false``: their rows were already in
the table. Lab 03 (files per commit, rows per version) and lab 04 (freshness per row,
the version that doubled rows) count only the adds that brought new rows.
"""

from __future__ import annotations

import json
from urllib.parse import unquote

import polars as pl

from neuralake import delta


def data_adds(uri: str, version: int, storage_options: dict[str, str]) -> tuple[list[dict], dict]:
    """The ``add`` actions of commit ``version`` that brought new rows, and its commitInfo."""
    actions = delta.read_commit(uri, version, storage_options)
    adds = [a["add"] for a in actions if "add" in a and a["add"].get("dataChange", True)]
    info: dict = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
    return adds, info


def stats(add: dict) -> dict:
    """The statistics an ``add`` action carries (numRecords, minValues, ...)."""
    return json.loads(add["stats"])


def read_added(
    uri: str, adds: list[dict], storage_options: dict[str, str], columns: list[str]
) -> pl.DataFrame:
    """``columns`` of the rows in the files that ``adds`` added."""
    files = [f"{uri.rstrip('/')}/{unquote(add['path'])}" for add in adds]
    return pl.read_parquet(files, columns=columns, storage_options=storage_options or None)

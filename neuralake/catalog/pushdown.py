"""Measure what a lazy scan really reads: files opened, bytes read, time, rows.

The numbers come from the engine and the operating system, not from a model:

* files: Polars' own verbose log, which states how many files a scan starts with
  (``num_files: 8``), how many the predicate lets it skip (``Predicate pushdown allows
  skipping 6 / 8 files``) and how many it opens (``[MultiScanTaskInit]: 2 sources``);
* bytes: the growth of this process's ``read_chars`` counter (``/proc/self/io``) while
  the query runs. It counts reads of local files (the ``local`` profile); S3 responses
  arrive over sockets, which Linux does not count there, so bytes are reported as
  ``None`` for ``s3://`` tables rather than a wrong number.
"""

from __future__ import annotations

import io
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from typing import IO

import polars as pl
import psutil

_SOURCES = re.compile(r"\[MultiScanTaskInit\]: (\d+) sources")
_SKIP = re.compile(r"Predicate pushdown allows skipping (\d+) / (\d+) files")


@dataclass(frozen=True)
class ScanMeasurement:
    """What one ``collect()`` read."""

    rows: int
    seconds: float
    files_opened: int
    files_skipped: int
    bytes_read: int | None

    @property
    def files_total(self) -> int:
        return self.files_opened + self.files_skipped

    def __str__(self) -> str:
        read = "n/a" if self.bytes_read is None else f"{self.bytes_read / 1e6:.2f} MB"
        return (
            f"{self.rows:,} rows in {self.seconds * 1000:.0f} ms; opened {self.files_opened} "
            f"of {self.files_total} files; read {read}"
        )


@contextmanager
def _stderr_to_file() -> Iterator[IO[str]]:
    """Send file descriptor 2 (where Polars' Rust code logs) to a temporary file."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield log
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def measure(frame: pl.LazyFrame, local: bool = True) -> tuple[pl.DataFrame, ScanMeasurement]:
    """Collect ``frame`` and measure what its scans read.

    ``local=False`` (data on S3) reports ``bytes_read=None``: see the module docstring.
    """
    process = psutil.Process()
    python_log = io.StringIO()  # Polars' Python side logs to sys.stderr (a stream in Jupyter)
    with _stderr_to_file() as log, redirect_stderr(python_log), pl.Config(verbose=True):
        before = process.io_counters().read_chars
        started = time.perf_counter()
        result = frame.collect()
        seconds = time.perf_counter() - started
        read = process.io_counters().read_chars - before
        log.seek(0)
        text = log.read() + python_log.getvalue()
    opened = sum(int(n) for n in _SOURCES.findall(text))
    skipped = sum(int(skip) for skip, _ in _SKIP.findall(text))
    return result, ScanMeasurement(result.height, seconds, opened, skipped, read if local else None)

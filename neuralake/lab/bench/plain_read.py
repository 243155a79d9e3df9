"""A plain read of Q1's data, as a reference for the engines' scan rates.

How fast does pyarrow alone (no query engine) fetch and decode the columns TPC-H Q1
needs? Read them from lineitem's current Delta files, file after file, once from the
stack's S3 and once from a copy on local disk, and divide the compressed bytes of
those column chunks by the best time of a few reads. An engine's *figure* is the same
bytes divided by its median Q1 time; the report gives it as a multiple of the plain
read from S3. (Q1 reads 7 of lineitem's 16 columns, all rows, and aggregates into 4
groups: it is the TPC-H query closest to a pure scan.)

This is a reference, not a ceiling: ``read_table`` waits for each file's S3 responses
before decoding, while the engines overlap requests and decoding across files and
row groups, and at SF1 they scan faster than it (multiples above 1).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pyarrow.parquet as pq
from pyarrow import fs

from neuralake.lab.bench.engines import delta_dataset
from neuralake.settings import Settings

Q1_COLUMNS = (
    "l_returnflag", "l_linestatus", "l_quantity", "l_extendedprice",
    "l_discount", "l_tax", "l_shipdate",
)  # fmt: skip


def column_bytes(files: list[str], filesystem: fs.FileSystem, columns: tuple[str, ...]) -> int:
    """Compressed bytes of ``columns`` in ``files``, from the Parquet footers."""
    total = 0
    for path in files:
        with filesystem.open_input_file(path) as handle:
            meta = pq.ParquetFile(handle).metadata
        for group in range(meta.num_row_groups):
            row_group = meta.row_group(group)
            for i in range(row_group.num_columns):
                chunk = row_group.column(i)
                if chunk.path_in_schema in columns:
                    total += chunk.total_compressed_size
    return total


def _best_read_s(
    files: list[str], filesystem: fs.FileSystem, columns: tuple[str, ...], repeats: int
) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for path in files:
            pq.read_table(path, columns=list(columns), filesystem=filesystem)
        best = min(best, time.perf_counter() - started)
    return best


def measure(settings: Settings, lineitem_uri: str, copy_dir: Path, repeats: int = 3) -> dict:
    """Scan-and-decode bytes/s of Q1's columns from the table's storage and local disk."""
    dataset = delta_dataset(lineitem_uri, settings)
    source_fs, files = dataset.filesystem, list(dataset.files)
    nbytes = column_bytes(files, source_fs, Q1_COLUMNS)
    storage_s = _best_read_s(files, source_fs, Q1_COLUMNS, repeats)

    copy_dir.mkdir(parents=True, exist_ok=True)
    local_files = []
    for path in files:
        target = copy_dir / Path(path).name
        if not target.exists():
            with source_fs.open_input_stream(path) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, length=8 << 20)
        local_files.append(str(target))
    local_s = _best_read_s(local_files, fs.LocalFileSystem(), Q1_COLUMNS, repeats)
    return {
        "what": "pyarrow.parquet.read_table of TPC-H Q1's 7 lineitem columns, best of "
        f"{repeats}; bytes are the compressed column chunks",
        "columns": list(Q1_COLUMNS),
        "bytes": nbytes,
        "storage": "s3" if lineitem_uri.startswith("s3://") else "local warehouse",
        "storage_s": round(storage_s, 4),
        "storage_bytes_per_s": round(nbytes / storage_s),
        "local_disk_s": round(local_s, 4),
        "local_disk_bytes_per_s": round(nbytes / local_s),
    }


def multiples(plain_read: dict, results: list[dict]) -> dict[str, float]:
    """Each engine's Q1 bytes/s as a multiple of the plain read's from storage."""
    rate = plain_read["storage_bytes_per_s"]
    return {
        r["engine"]: round(plain_read["bytes"] / r["median_s"] / rate, 3)
        for r in results
        if r["query"] == "q01" and r["median_s"] > 0
    }

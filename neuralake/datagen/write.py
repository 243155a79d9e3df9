"""Write the simulated tables to the warehouse as Delta tables, one atomic commit each.

``files`` sets how many Parquet files a table is written as. Small files are on purpose:
they are what a streaming ingester leaves behind, and lesson 01 measures what they cost
and how ``optimize.compact()`` fixes it.

How one commit gets about ``files`` files: delta-rs closes a Parquet file once the
writer's size estimate reaches ``target_file_size``, checked every 1024 rows. So the
first ``total_rows / files`` rows are encoded in memory (uncompressed) to measure the
size of one file, and that becomes the target. The estimate counts finished pages
compressed (Snappy), so files come out a little bigger and fewer than asked. Measured
on 2 cores, rows: files asked -> written: 2 M: 16 -> 13; 1 M: 40 -> 33; 20 M: 32 -> 25.
(Writing uncompressed gives the exact count, but files 30 % bigger: not a habit to
teach.) ``files=1`` gives one file per writer thread; a partitioned table gets files
per partition value.

All files of a table land in ONE commit, so no reader ever sees a half-written table: if
generation or upload fails half-way, nothing is committed (the uploaded files stay
invisible until ``vacuum`` removes them).
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Iterable, Iterator
from typing import Literal, TypedDict

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import WriterProperties, write_deltalake
from tqdm import tqdm

from neuralake.datagen import schemas
from neuralake.datagen.simulation import Simulation
from neuralake.delta import storage_errors
from neuralake.errors import ConfigError, TableSchemaError
from neuralake.settings import Settings

PROGRESS_ROWS = 20_000_000  # show a progress bar from here on (measured: ~2 s to MinIO)


def write_tables(
    settings: Settings,
    simulation: Simulation,
    *,
    files: int = 8,
    partition_by: list[str] | None = None,
    prefix: str = "",
    progress: bool | None = None,
) -> dict[str, str]:
    """Write patients, devices, sessions, cursor_events and neural_signals; return their URIs.

    Each table is replaced (``mode="overwrite"``), so running twice gives the same tables
    with one more version. ``files`` and ``partition_by`` apply to ``neural_signals``;
    the small tables are one file each. ``prefix`` prepends to every table name, so a
    lesson can keep its own copy (``prefix="l01_"``).
    """
    small = {
        "patients": simulation.patients_table(),
        "devices": simulation.devices_table(),
        "sessions": simulation.sessions_table(),
        "cursor_events": simulation.cursor_events(),
    }
    uris = {}
    for name, frame in small.items():
        uris[name] = settings.table_uri(prefix + name)
        write_frames(uris[name], [frame], schemas.SCHEMAS[name], settings.storage_options)
    uris["neural_signals"] = settings.table_uri(prefix + "neural_signals")
    write_frames(
        uris["neural_signals"],
        simulation.signal_chunks(),
        schemas.NEURAL_SIGNALS,
        settings.storage_options,
        files=files,
        total_rows=simulation.signal_rows,
        partition_by=partition_by,
        progress=progress,
    )
    return uris


def write_frames(
    uri: str,
    frames: Iterable[pl.DataFrame],
    schema: pl.Schema,
    storage_options: dict[str, str] | None = None,
    *,
    files: int = 1,
    total_rows: int | None = None,
    partition_by: list[str] | None = None,
    progress: bool | None = None,
    mode: Literal["overwrite", "append"] = "overwrite",
) -> None:
    """Replace (or append to) the table at ``uri`` with ``frames``, in one commit.

    ``total_rows`` is needed when ``files > 1`` (to size the files) and drives the
    progress bar; ``progress=None`` shows one from ``PROGRESS_ROWS`` rows.
    """
    if files < 1:
        raise ConfigError(f"files={files} must be at least 1")
    if files > 1 and total_rows is None:
        raise ConfigError("write_frames needs total_rows=... to split the rows into files")
    rows_per_file = math.ceil(total_rows / files) if total_rows else None
    show = progress if progress is not None else (total_rows or 0) >= PROGRESS_ROWS
    arrow_schema = pl.DataFrame(schema=schema).to_arrow().schema

    pieces = _regroup(_checked(frames, schema), rows_per_file)
    first = next(pieces, None)
    target_bytes = _parquet_bytes(first) if files > 1 and first is not None else None

    with tqdm(total=total_rows, unit="rows", unit_scale=True, disable=not show) as bar:

        def batches() -> Iterator[pa.RecordBatch]:
            for piece in itertools.chain([first] if first is not None else [], pieces):
                bar.update(piece.height)
                yield from piece.to_arrow().to_batches()

        reader = pa.RecordBatchReader.from_batches(arrow_schema, batches())
        # An overwrite may also change the partitioning (a re-run with other options);
        # an append must match the table's schema, or fails with TableSchemaError.
        schema_mode: Literal["overwrite"] | None = "overwrite" if mode == "overwrite" else None
        # With rows_per_file: one row group per file, so that no early row-group flush
        # shrinks the size estimate; Snappy as delta-rs' default (WriterProperties() alone
        # would write uncompressed files). Without: delta-rs' own writer properties, by
        # leaving the argument out (deltalake's type hints do not take None for it).
        properties: _Properties = {}
        if rows_per_file is not None:
            properties["writer_properties"] = WriterProperties(
                max_row_group_size=rows_per_file, compression="SNAPPY"
            )
        with storage_errors(uri, storage_options):
            write_deltalake(
                uri,
                reader,
                mode=mode,
                schema_mode=schema_mode,
                partition_by=partition_by,
                storage_options=storage_options or None,
                target_file_size=target_bytes,
                **properties,
            )


class _Properties(TypedDict, total=False):
    """Optional keyword arguments of ``write_deltalake``."""

    writer_properties: WriterProperties


def _parquet_bytes(frame: pl.DataFrame) -> int:
    """How many bytes ``frame`` takes as uncompressed Parquet: the size of one file's data
    before the writer compresses its pages."""
    buffer = io.BytesIO()
    pq.write_table(frame.to_arrow(), buffer, compression="none")
    return buffer.tell()


def _checked(frames: Iterable[pl.DataFrame], schema: pl.Schema) -> Iterator[pl.DataFrame]:
    for frame in frames:
        if frame.schema != schema:
            raise TableSchemaError(
                f"a frame's schema {dict(frame.schema)} is not the declared {dict(schema)}: "
                "build the frames with the declared schema (see neuralake.datagen.schemas)"
            )
        yield frame


def _regroup(frames: Iterable[pl.DataFrame], rows: int | None) -> Iterator[pl.DataFrame]:
    """Re-slice a stream of frames into frames of exactly ``rows`` rows (the last: fewer)."""
    if rows is None:
        yield from (f for f in frames if f.height)
        return
    pending: list[pl.DataFrame] = []
    held = 0
    for frame in frames:
        pending.append(frame)
        held += frame.height
        while held >= rows:
            buffer = pl.concat(pending, rechunk=False)
            yield buffer.head(rows)
            rest = buffer.slice(rows)
            pending, held = [rest], rest.height
    if held:
        yield pl.concat(pending, rechunk=False)

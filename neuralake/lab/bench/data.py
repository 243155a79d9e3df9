"""TPC-H data for the benchmark: generated once per scale, stored as Delta tables.

``tpchgen-cli`` (a Rust TPC-H generator from PyPI) writes one Parquet file per table
into the cache (``~/.cache/neuralake/tpch/sf1/``); each file then becomes a Delta table
in the warehouse under ``bench_tpch/sf1/<table>``: on the stack's S3 while the stack is
up, in the local ``file://`` warehouse otherwise. Both steps are skipped when their
output is already there, so the second run of a benchmark starts at the queries.

Two conversions, both so that every engine computes in the same types:

- TPC-H's money columns are ``decimal(15, 2)``. They are stored as ``double`` (what the
  Polars and DataFusion TPC-H suites do): every engine has fast float arithmetic, not
  every engine has the same decimal rules. The answers are therefore compared with a
  float tolerance (:mod:`neuralake.lab.bench.verify`).
- ``tpchgen-cli`` writes Arrow's ``string_view``; Delta (and Spark) want plain strings.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake

from neuralake.errors import ConfigError, StackError
from neuralake.settings import Settings

TABLES = ("region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem")


def scale_tag(scale: float) -> str:
    """A name-safe tag for a scale factor: ``0.01`` -> ``sf0_01``, ``1`` -> ``sf1``."""
    if not 0 < scale <= 1000:
        raise ConfigError(f"scale factor {scale} is out of range: use e.g. 0.01, 1 or 10")
    return "sf" + f"{scale:g}".replace(".", "_")


def parquet_dir(settings: Settings, scale: float) -> Path:
    """Where ``tpchgen-cli`` writes the Parquet files of one scale (in the cache)."""
    return settings.cache_dir / "tpch" / scale_tag(scale)


def table_uris(settings: Settings, scale: float) -> dict[str, str]:
    """The Delta table URI of every TPC-H table at ``scale``, by table name."""
    tag = scale_tag(scale)
    return {name: settings.table_uri(f"bench_tpch/{tag}/{name}") for name in TABLES}


def _tpchgen() -> str:
    beside_python = Path(sys.executable).with_name("tpchgen-cli")
    found = str(beside_python) if beside_python.exists() else shutil.which("tpchgen-cli")
    if not found:
        raise StackError("tpchgen-cli is not installed: run `make setup` (it comes from PyPI)")
    return found


def generate_parquet(settings: Settings, scale: float) -> Path:
    """Run ``tpchgen-cli`` once for ``scale``; later calls return the cached folder."""
    out = parquet_dir(settings, scale)
    done = out / "_SUCCESS"
    if done.exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    cmd = [_tpchgen(), "parquet", "-s", f"{scale:g}", "-o", str(out), "--overwrite"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"tpchgen-cli failed: {result.stderr.strip().splitlines()[-1:]}")
    done.write_text("")
    return out


def _for_delta(frame: pl.DataFrame) -> pl.DataFrame:
    """Decimals become doubles, so all engines add and multiply in the same type."""
    return frame.with_columns(pl.col(pl.Decimal).cast(pl.Float64))


def _is_current(uri: str, settings: Settings, rows: int) -> bool:
    if not DeltaTable.is_deltatable(uri, storage_options=settings.storage_options):
        return False
    table = DeltaTable(uri, storage_options=settings.storage_options)
    actions = pl.DataFrame(table.get_add_actions(flatten=True))
    return int(actions["num_records"].sum()) == rows


def write_tables(
    settings: Settings, scale: float, echo: Callable[[str], None] = lambda _: None
) -> dict[str, str]:
    """Generate (if needed) and write the TPC-H Delta tables; return their URIs.

    A table whose Delta log already counts the generated rows is left alone.
    """
    source = generate_parquet(settings, scale)
    uris = table_uris(settings, scale)
    for name, uri in uris.items():
        path = source / f"{name}.parquet"
        rows = pq.ParquetFile(path).metadata.num_rows
        if _is_current(uri, settings, rows):
            continue
        echo(f"writing {name} ({rows:,} rows) to {uri}")
        write_deltalake(
            uri,
            _for_delta(pl.read_parquet(path)).to_arrow(),
            mode="overwrite",
            schema_mode="overwrite",
            storage_options=settings.storage_options,
        )
    return uris

"""One small adapter per engine: register the Delta tables, run a query, return Polars.

Every adapter has the same three calls, so the runner treats the engines alike::

    engine = ENGINES["duckdb"](settings)
    engine.register({"lineitem": "s3://.../lineitem", ...})   # lazily: nothing is read
    frame = engine.run(query)                                  # -> pl.DataFrame
    engine.close()

How each engine reads a Delta table on S3:

- **Polars**: ``pl.scan_delta`` (delta-rs reads the log; Polars scans the files).
- **DataFusion**: deltalake lists the current files; DataFusion scans them from S3
  with its own object store (see :class:`DataFusionEngine` for why not the provider).
- **DuckDB**: its ``delta`` and ``httpfs`` extensions are downloaded on first use, and
  nothing downloads at run time here; so deltalake lists the table's current files
  (``DeltaTable.file_uris()``), pyarrow opens them on S3, and DuckDB scans that Arrow
  dataset (with filter and projection pushdown). Same files, a different reader.
- **Spark**: ``spark.read.format("delta")`` through S3A, from :func:`neuralake.spark.session`.
- **ROAPI**: its own process, asked over HTTP (see :class:`RoapiEngine`); it agrees with
  the others on all 22 TPC-H queries at SF0.01 and on the neural suite.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import polars as pl

from neuralake import storage
from neuralake.errors import ConfigError, StackError
from neuralake.lab.bench.queries import Query
from neuralake.settings import Settings

if TYPE_CHECKING:
    import pyarrow.dataset as ds


class Engine(Protocol):
    name: str

    def register(self, tables: Mapping[str, str]) -> None: ...
    def run(self, query: Query) -> pl.DataFrame: ...
    def close(self) -> None: ...


class PolarsEngine:
    """Polars LazyFrames from ``scan_delta``; each query is a LazyFrame plan."""

    name = "polars"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tables: dict[str, pl.LazyFrame] = {}

    def register(self, tables: Mapping[str, str]) -> None:
        for name, uri in tables.items():
            self.tables[name] = pl.scan_delta(uri, storage_options=self.settings.storage_options)

    def run(self, query: Query) -> pl.DataFrame:
        return query.polars(self.tables).collect()

    def close(self) -> None:
        self.tables.clear()


class DataFusionEngine:
    """DataFusion SQL over each Delta table's current Parquet files.

    ``deltalake.DeltaTable`` is a DataFusion table provider, but through the FFI between
    deltalake 1.6 and datafusion 55 it cannot see the session's S3 store ("No suitable
    object store found for s3://..."), and only queries answered from statistics work.
    So deltalake lists the current files (``file_uris()``), and DataFusion reads them
    with its own S3 store: one Parquet scan per file, unioned when there are several.
    """

    name = "datafusion"

    def __init__(self, settings: Settings) -> None:
        from datafusion import SessionContext

        self.settings = settings
        self.ctx = SessionContext()

    def _register_s3(self) -> None:
        from datafusion.object_store import AmazonS3

        s = self.settings
        store = AmazonS3(
            bucket_name=s.bucket,
            region=s.region,
            access_key_id=s.access_key_id,
            secret_access_key=s.secret_access_key,
            endpoint=s.s3_endpoint,
            allow_http=bool(s.s3_endpoint and s.s3_endpoint.startswith("http://")),
        )
        self.ctx.register_object_store("s3://", store, s.bucket)

    def register(self, tables: Mapping[str, str]) -> None:
        from deltalake import DeltaTable

        if any(uri.startswith("s3://") for uri in tables.values()):
            self._register_s3()
        for name, uri in tables.items():
            files = DeltaTable(uri, storage_options=self.settings.storage_options).file_uris()
            scans = [self.ctx.read_parquet(f.removeprefix("file://")) for f in files]
            if not scans:
                raise ConfigError(f"Delta table {uri} has no files: write the data first")
            frame = scans[0]
            for scan in scans[1:]:
                frame = frame.union(scan)
            self.ctx.register_view(name, frame)

    def run(self, query: Query) -> pl.DataFrame:
        return pl.DataFrame(self.ctx.sql(query.sql).to_arrow_table())

    def close(self) -> None:
        from datafusion import SessionContext

        self.ctx = SessionContext()  # an empty one: the views and their memory go


def delta_dataset(uri: str, settings: Settings) -> ds.Dataset:
    """A pyarrow dataset over the Delta table's current files (listed by deltalake)."""
    import pyarrow.dataset as ds
    from deltalake import DeltaTable

    files = DeltaTable(uri, storage_options=settings.storage_options).file_uris()
    return ds.dataset(
        [storage.path(f) for f in files],
        filesystem=storage.filesystem(uri, settings.storage_options),
        format="parquet",
    )


class DuckDBEngine:
    """DuckDB SQL over Arrow datasets of each Delta table's current files."""

    name = "duckdb"

    def __init__(self, settings: Settings) -> None:
        import duckdb

        self.settings = settings
        self.con = duckdb.connect()

    def register(self, tables: Mapping[str, str]) -> None:
        for name, uri in tables.items():
            self.con.register(name, delta_dataset(uri, self.settings))

    def run(self, query: Query) -> pl.DataFrame:
        return pl.DataFrame(self.con.sql(query.sql).to_arrow_table())

    def close(self) -> None:
        self.con.close()


class SparkEngine:
    """Spark SQL in local mode over Delta tables read through S3A."""

    name = "spark"

    def __init__(self, settings: Settings, extra: Mapping[str, str] | None = None) -> None:
        from neuralake import spark

        self.settings = settings
        self.spark = spark.session(settings, extra=dict(extra) if extra else None)

    def register(self, tables: Mapping[str, str]) -> None:
        for name, uri in tables.items():
            self.spark.read.format("delta").load(uri).createOrReplaceTempView(name)

    def run(self, query: Query) -> pl.DataFrame:
        return pl.DataFrame(self.spark.sql(query.sql).toArrow())

    def close(self) -> None:
        """The session stays up: a JVM starts once per process (about 12 s)."""


class RoapiEngine:
    """ROAPI over HTTP: a ``roapi`` process on a free port serves the tables; SQL goes
    to ``POST /api/sql`` and the answer comes back as an Arrow stream.

    ROAPI answers from its own DataFusion over the Delta tables (delta-rs 0.31), so its
    time includes HTTP and Arrow IPC, which is what a client of the hot path pays.
    """

    name = "roapi"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server = ExitStack()  # the roapi process, stopped by close()
        self.url = ""

    def register(self, tables: Mapping[str, str]) -> None:
        import httpx

        from neuralake.lab.stack import processes

        binary = Path(sys.executable).with_name("roapi")
        http, pg, flight = processes.free_port(), processes.free_port(), processes.free_port()
        cmd = [str(binary), "-a", f"127.0.0.1:{http}", "-p", f"127.0.0.1:{pg}"]
        cmd += ["--addr-flight-sql", f"127.0.0.1:{flight}"]
        for name, uri in tables.items():
            cmd += ["-t", f"{name}={uri.removeprefix('file://')},format=delta"]
        self.url = f"http://127.0.0.1:{http}"
        folder = self.settings.state_dir / "bench"
        atexit.register(self.close)  # never leave a server behind, even without close()
        self.server.enter_context(
            processes.serving(
                cmd,
                name="roapi",
                check=lambda: httpx.get(f"{self.url}/api/schema", timeout=1).raise_for_status(),
                log_file=folder / "roapi.log",
                pid_file=folder / f"roapi-{http}.pid",
                env={**os.environ, "NO_COLOR": "1", **self.settings.roapi_env},
                timeout=60,
                cwd=folder,
            )
        )

    def run(self, query: Query) -> pl.DataFrame:
        import httpx
        import pyarrow.ipc as ipc

        response = httpx.post(
            f"{self.url}/api/sql",
            content=query.sql,
            headers={"Accept": "application/vnd.apache.arrow.stream"},
            timeout=600,
        )
        if response.status_code != 200:
            raise StackError(f"roapi refused {query.name}: {response.text.strip()[:300]}")
        return pl.DataFrame(ipc.open_stream(response.content).read_all())

    def close(self) -> None:
        self.server.close()


ENGINES: dict[str, type] = {
    "polars": PolarsEngine,
    "datafusion": DataFusionEngine,
    "duckdb": DuckDBEngine,
    "spark": SparkEngine,
    "roapi": RoapiEngine,
}


def engine_names(text: str) -> list[str]:
    """Parse ``"polars,duckdb"``; an unknown name is a one-line error listing the known."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ENGINES]
    if unknown or not names:
        raise ConfigError(
            f"unknown engine {', '.join(unknown) or '(none)'}: choose from {', '.join(ENGINES)}"
        )
    return names

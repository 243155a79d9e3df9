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
- **DuckDB** (``duckdb``): its own reader, ``delta_scan('s3://...')``. The ``delta`` and
  ``httpfs`` extensions come from PyPI packages (``duckdb-extension-delta``,
  ``duckdb-extension-httpfs``, built for DuckDB 1.5.5) and are loaded from those
  packages' files, with auto-install off: nothing downloads at run time.
- **DuckDB over pyarrow** (``duckdb_arrow``): deltalake lists the table's current files
  (``DeltaTable.file_uris()``), pyarrow opens them on S3, and DuckDB scans that Arrow
  dataset (with filter and projection pushdown). The same engine with another reader:
  the difference between the two DuckDB columns is the reader's.
- **Spark** (``spark``): ``spark.read.format("delta")`` through S3A, from
  :func:`neuralake.spark.session`, in local mode; ``spark_cluster`` runs the same on the
  lab's standalone cluster (:mod:`neuralake.lab.stack.spark_cluster`), started for the
  run and stopped after it if the run started it.
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
from urllib.parse import urlparse

import polars as pl

from neuralake import storage
from neuralake.errors import ConfigError, StackError
from neuralake.lab.bench.queries import Query
from neuralake.settings import Settings

if TYPE_CHECKING:
    import duckdb
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


def _duckdb_extension(module: object, name: str) -> str:
    """The ``.duckdb_extension`` file that a ``duckdb-extension-*`` package ships."""
    import duckdb

    folder = Path(str(getattr(module, "__file__", ""))).parent / "extensions"
    found = sorted(folder.glob(f"v{duckdb.__version__}/{name}.duckdb_extension"))
    if not found:
        shipped = sorted(p.parent.name for p in folder.glob(f"v*/{name}.duckdb_extension"))
        raise StackError(
            f"no {name} extension for DuckDB {duckdb.__version__} in {folder} (it has "
            f"{', '.join(shipped) or 'none'}): pin duckdb to the version of "
            f"duckdb-extension-{name} in pyproject.toml and run `make setup`"
        )
    return str(found[0])


def duckdb_connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    """DuckDB with ``httpfs`` and ``delta`` loaded from their PyPI packages' files, and an
    S3 secret for the profile's endpoint and keys. Auto-install is off: a missing
    extension is an error here, never a download."""
    import duckdb
    import duckdb_extension_delta
    import duckdb_extension_httpfs

    con = duckdb.connect(
        config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}
    )
    con.load_extension(_duckdb_extension(duckdb_extension_httpfs, "httpfs"))
    con.load_extension(_duckdb_extension(duckdb_extension_delta, "delta"))
    s = settings
    if s.warehouse_uri.startswith("s3://"):
        secret = {"TYPE": "s3", "REGION": s.region}
        if s.access_key_id and s.secret_access_key:
            secret |= {"KEY_ID": s.access_key_id, "SECRET": s.secret_access_key}
        if s.s3_endpoint:  # the stack's S3 server: host:port, path-style, TLS as the URL says
            url = urlparse(s.s3_endpoint)
            secret |= {"ENDPOINT": url.netloc, "URL_STYLE": "path"}
            secret["USE_SSL"] = "true" if url.scheme == "https" else "false"
        options = ", ".join(
            f"{key} {value}" if key in ("TYPE", "USE_SSL") else f"{key} '{value}'"
            for key, value in secret.items()
        )
        con.execute(f"CREATE OR REPLACE SECRET neuralake_s3 ({options})")
    return con


class DuckDBEngine:
    """DuckDB SQL over ``delta_scan`` views: DuckDB reads the Delta log and the Parquet
    files itself, over ``httpfs``."""

    name = "duckdb"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.con = duckdb_connect(settings)

    def register(self, tables: Mapping[str, str]) -> None:
        for name, uri in tables.items():
            location = storage.path(uri) if uri.startswith("file://") else uri
            self.con.execute(
                f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM delta_scan('{location}')"
            )

    def run(self, query: Query) -> pl.DataFrame:
        return pl.DataFrame(self.con.sql(query.sql).to_arrow_table())

    def close(self) -> None:
        self.con.close()


class DuckDBArrowEngine:
    """DuckDB SQL over Arrow datasets of each Delta table's current files."""

    name = "duckdb_arrow"

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


class SparkClusterEngine(SparkEngine):
    """Spark SQL on a standalone cluster that the lab starts: one master and one worker
    of 2 cores on this machine, i.e. one executor JVM beside the driver's.

    The benchmark's cluster has its own ports and pid files (under ``.state/bench/``), so
    it neither joins nor stops the cluster a lesson may be running. ``close()`` stops the
    session, then the cluster if this engine started it. The executor gets the memory
    that local mode's driver gets (``spark.driver.memory``), so both run the same plans.
    """

    name = "spark_cluster"

    def __init__(self, settings: Settings, extra: Mapping[str, str] | None = None) -> None:
        from dataclasses import replace

        from neuralake import spark
        from neuralake.lab.stack import spark_cluster

        options = dict(extra or {})
        executor = options.pop("spark.driver.memory", "1g")
        worker_mb = spark_cluster.memory_mb(executor) + 512  # the executor's heap + room
        self.cluster = replace(
            spark_cluster.cluster(settings, workers=1, memory=f"{worker_mb}m"),
            state_dir=settings.state_dir / "bench",
            master_port=7177,
            master_ui_port=7180,
            worker_ui_port=7181,
        )
        state = spark_cluster.status(self.cluster)
        self.started = not state["healthy"]
        if self.started:
            spark_cluster.up(self.cluster, echo=lambda _: None)
        elif max(w["memory_mb"] or 0 for w in state["workers"]) < worker_mb:
            raise ConfigError(
                f"the benchmark's Spark cluster ({self.cluster.master_url}) is already up with "
                f"workers too small for {executor} executors (another benchmark run started "
                "it): let that run finish, it stops its cluster"
            )
        spark.stop()  # a local session of this process (its JVM stays; the master changes)
        options |= {"spark.master": self.cluster.master_url, "spark.executor.memory": executor}
        self.settings = settings
        try:
            self.spark = spark.session(settings, extra=options)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        from neuralake import spark
        from neuralake.lab.stack import spark_cluster

        spark.stop()
        if self.started:
            spark_cluster.down(self.cluster, echo=lambda _: None)


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
    "duckdb_arrow": DuckDBArrowEngine,
    "spark": SparkEngine,
    "spark_cluster": SparkClusterEngine,
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

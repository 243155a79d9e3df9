"""Tables backed by files: Delta Lake, Parquet directories and CSV files.

Every table is a small dataclass of metadata (what the site documents) plus one job:
``scan()`` returns a *lazy* Polars frame. Nothing is read until ``.collect()``, so the
filters and columns given to ``scan`` -- and any ``.filter()`` written later on the
LazyFrame -- reach the Parquet reader: hive partitions and per-file min/max statistics
let it skip whole files. (Neuralink's datarepo read Delta tables eagerly, so a filter
written after the read could not be pushed down.)

A table whose ``uri`` is ``None`` (or a relative path) lives in the warehouse: its
location is ``settings().table_uri(name)``, resolved at read time, so the same catalog
module works for the ``local``, ``stack`` and ``aws`` profiles.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import KW_ONLY, dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import polars as pl

import neuralake
from neuralake.catalog.errors import CatalogError
from neuralake.catalog.filters import Conjunction, Filters, bind, normalize, to_expr
from neuralake.catalog.names import check_name
from neuralake.catalog.schema import (
    ColumnInfo,
    SchemaSpec,
    columns_from_spec,
    delta_log_schema,
)
from neuralake.settings import Settings

if TYPE_CHECKING:
    from neuralake.catalog.quality import Check

# The settings of the read in progress: a function table that scans other tables
# without passing settings reads them with the same profile as the outer read.
_active_settings: ContextVar[Settings | None] = ContextVar("catalog_settings", default=None)

# Frames skipped when finding the module that declares a table: this library's own
# constructors (a dataclass __init__ runs with its class module's globals).
_LIBRARY_MODULES = {"neuralake.catalog.tables", "neuralake.catalog.functions", "dataclasses"}


def resolve_settings(settings: Settings | None = None) -> Settings:
    """``settings``, else those of the read in progress, else ``neuralake.settings()``."""
    return settings or _active_settings.get() or neuralake.settings()


@contextmanager
def reading_with(settings: Settings) -> Iterator[None]:
    """Make ``settings`` the default for every table scanned inside the block."""
    token = _active_settings.set(settings)
    try:
        yield
    finally:
        _active_settings.reset(token)


def _declaring_module() -> str | None:
    """The ``__name__`` of the code that called the table's constructor."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__")
        if name not in _LIBRARY_MODULES and frame.f_code.co_name not in (
            "__init__",
            "__post_init__",
        ):
            return name
        frame = frame.f_back
    return None


def _utc(timestamp: datetime | str) -> datetime:
    """A timestamp as an aware UTC datetime; naive values and ISO text without zone are UTC."""
    if isinstance(timestamp, str):
        try:
            timestamp = datetime.fromisoformat(timestamp)
        except ValueError:
            raise CatalogError(
                f"timestamp={timestamp!r} is not ISO 8601: write e.g. '2026-11-01T10:30:00Z'"
            ) from None
    if not isinstance(timestamp, datetime):
        raise CatalogError(
            f"timestamp={timestamp!r} is a {type(timestamp).__name__}: pass a datetime or "
            "ISO text such as '2026-11-01T10:30:00Z'"
        )
    return timestamp.replace(tzinfo=UTC) if timestamp.tzinfo is None else timestamp.astimezone(UTC)


@dataclass(frozen=True)
class DeltaVersion:
    """How new a table's data is: the Delta version and when it was committed."""

    version: int
    committed_at: datetime


@dataclass(eq=False)
class Table:
    """What every table declares. Subclasses add where the data is and how to scan it."""

    kind: ClassVar[str] = "table"
    #: ROAPI can serve this kind of table (it reads files, not databases or functions).
    servable: ClassVar[bool] = False

    name: str
    _: KW_ONLY
    description: str = ""
    schema: SchemaSpec | None = None
    partition_columns: Sequence[str] = ()
    docs_filters: Filters = ()
    tags: Sequence[str] = ()
    owner: str = ""
    upstream: Sequence[str] = ()
    checks: Sequence[Check] = ()

    def __post_init__(self) -> None:
        check_name("table", self.name)
        #: The module whose code declared the table: ``ModuleDatabase`` keeps only its own.
        self.declared_in = _declaring_module()
        self.partition_columns = tuple(self.partition_columns)
        self.docs_filters = tuple(self.docs_filters)
        self.tags = tuple(self.tags)
        self.upstream = tuple(self.upstream)
        self.checks = tuple(self.checks)
        for tag in self.tags:
            if not isinstance(tag, str) or not tag.strip():
                raise CatalogError(f"table {self.name!r} has tag {tag!r}: tags are non-empty text")
        declared = {c.name: c.dtype for c in self.declared_columns()}  # checks schema=
        # A bad example filter fails at import time, not on the site.
        groups = normalize(self.docs_filters)
        self._check_columns({f.column for g in groups for f in g}, declared)
        bind(groups, declared)

    @property
    def docs_filter_groups(self) -> list[Conjunction]:
        """The example filters as OR-of-ANDs groups (``[[Filter, ...], ...]``)."""
        return normalize(self.docs_filters)

    # -- what the site documents (never reads data) ---------------------------------

    def declared_columns(self) -> tuple[ColumnInfo, ...]:
        """The columns written in code (empty if the table declares none)."""
        return columns_from_spec(self.schema)

    def columns(self, settings: Settings | None = None) -> tuple[ColumnInfo, ...]:
        """The documented columns. Tables that can read a schema from storage override it."""
        return self.declared_columns()

    def location(self, settings: Settings | None = None) -> str | None:
        """Where the data lives for ``settings`` (``None`` for computed tables)."""
        return None

    def latest_version(self, settings: Settings | None = None) -> DeltaVersion | None:
        """The latest version and commit time, for tables that have a log."""
        return None

    def history(self, settings: Settings | None = None) -> list[DeltaVersion]:
        """Every version still in the table's log, newest first (Delta tables only)."""
        raise CatalogError(
            f"table {self.name!r} is a {self.kind} table: only Delta tables (and "
            "materialized views) keep versions"
        )

    def version_at(self, timestamp: datetime | str, settings: Settings | None = None) -> int:
        """The version that was current at ``timestamp`` (naive or zone-less text is UTC).

        It is the last version committed at or before ``timestamp``. A time before the
        first commit is an error: delta-rs alone would answer it with version 0.
        """
        when = _utc(timestamp)
        history = self.history(settings)
        before = [v for v in history if v.committed_at <= when]
        if not before:
            first = min(history, key=lambda v: v.version)
            raise CatalogError(
                f"table {self.name!r} has no version at {when.isoformat(timespec='seconds')}: "
                f"its first one was committed at {first.committed_at.isoformat(timespec='seconds')}"
            )
        return max(v.version for v in before)

    # -- reading ----------------------------------------------------------------------

    def scan(
        self,
        filters: Filters | None = None,
        columns: Sequence[str] | None = None,
        settings: Settings | None = None,
        *,
        version: int | None = None,
        timestamp: datetime | str | None = None,
    ) -> pl.LazyFrame:
        """A lazy read of the table; nothing runs until ``.collect()``.

        ``filters``: ``[Filter, ...]`` (AND) or ``[[Filter, ...], ...]`` (OR of ANDs);
        each value is cast to its column's declared type. ``columns``: the columns to
        keep. ``settings``: the profile to read with (default: ``neuralake.settings()``).
        ``version=3`` or ``timestamp="2026-11-01T10:00:00Z"`` (time travel, Delta tables
        only) read the table as it was then; they read the log once, here, to refuse a
        version that does not exist with a clear error.
        """
        s = resolve_settings(settings)
        groups = normalize(filters)  # read once: a generator works like a list
        as_of = self._as_of(version, timestamp, s)
        wanted = {f.column for g in groups for f in g} | set(columns or ())
        known = {c.name: c.dtype for c in self.columns(s)} if wanted else {}
        self._check_columns(wanted, known)
        groups = bind(groups, known)
        lf = self._scan(s, groups, as_of)
        expr = to_expr(groups)
        if expr is not None:
            lf = lf.filter(expr)
        if columns:
            lf = lf.select(list(columns))
        return lf

    def _check_columns(self, wanted: set[str], known: dict[str, pl.DataType]) -> None:
        if known and not wanted <= known.keys():
            missing = ", ".join(sorted(wanted - known.keys()))
            raise CatalogError(
                f"table {self.name!r} has no column {missing}: choose from {', '.join(known)}"
            )

    def _as_of(
        self, version: int | None, timestamp: datetime | str | None, s: Settings
    ) -> int | None:
        """The Delta version to read (checked against the log), or ``None`` for the latest."""
        if version is None and timestamp is None:
            return None
        if version is not None and timestamp is not None:
            raise CatalogError("pass version= or timestamp=, not both")
        if timestamp is not None:
            return self.version_at(timestamp, s)
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise CatalogError(f"version={version!r} is not a version: use an int such as 0")
        kept = sorted(v.version for v in self.history(s))
        if version not in kept:
            raise CatalogError(
                f"table {self.name!r} has no version {version}: its log holds versions "
                f"{kept[0]} to {kept[-1]}"
            )
        return version

    def _scan(
        self, settings: Settings, filters: list[Conjunction], as_of: int | None
    ) -> pl.LazyFrame:
        """The unfiltered lazy frame (``filters`` are given for sources that push them)."""
        raise NotImplementedError


def _storage_options(uri: str, settings: Settings) -> dict[str, str] | None:
    """S3 credentials for ``s3://`` locations; local paths need none."""
    return settings.storage_options or None if uri.startswith("s3://") else None


@dataclass(eq=False)
class _FileTable(Table):
    uri: str | None = None

    def location(self, settings: Settings | None = None) -> str:
        """The table's URI for ``settings``.

        ``uri=None`` is ``settings.table_uri(name)``; a relative ``uri`` such as
        ``"lesson02/signals"`` is a path inside the warehouse; an absolute one
        (``s3://...``, ``file://...``, ``/data/...``) is used as written.
        """
        if self.uri is not None and ("://" in self.uri or self.uri.startswith("/")):
            return self.uri
        return resolve_settings(settings).table_uri(self.uri or self.name)

    @property
    def in_warehouse(self) -> bool:
        """True when the location follows the profile (``uri`` is ``None`` or relative)."""
        return self.uri is None or not ("://" in self.uri or self.uri.startswith("/"))


@dataclass(eq=False)
class DeltalakeTable(_FileTable):
    """A Delta Lake table, read lazily with ``pl.scan_delta``.

    ``DeltalakeTable("neural_signals", schema={...}, partition_columns=["session_date"])``
    lives in the warehouse; pass ``uri="s3://bucket/path"`` to point anywhere else.
    ``schema`` is a ``pyarrow.Schema``, a ``pl.Schema`` or ``{"col": Column(pl.Int64,
    "what it means")}``; without one, the site shows the schema in the Delta log.
    ``scan(version=3)`` / ``scan(timestamp=...)`` read an older version (time travel);
    ``history()`` lists the versions and their commit times.
    ``roapi_memory_table`` chooses how ROAPI serves it: in memory is faster (p50 41 ms vs
    231 ms for a filtered group-by over 1.1M rows) but never sees new versions.
    ``roapi_window_s=60`` also serves the table's last 60 seconds as ``{name}_recent``,
    a small Parquet object kept fresh by :mod:`neuralake.api.window` and held in ROAPI's
    memory (the fresh hot path; see ``docs/api.md``).

    Its old name ``DeltaTable`` shadowed ``deltalake.DeltaTable``, the log it reads; that
    name still works, with a ``DeprecationWarning``.
    """

    kind: ClassVar[str] = "delta"
    servable: ClassVar[bool] = True
    roapi_memory_table: bool = False
    roapi_window_s: float | None = None

    def columns(self, settings: Settings | None = None) -> tuple[ColumnInfo, ...]:
        """Declared columns, or the schema in the Delta log (read once, then cached)."""
        declared = self.declared_columns()
        if declared:
            return declared
        s = resolve_settings(settings)
        uri = self.location(s)
        log_schema = delta_log_schema(uri, _storage_options(uri, s) or {})
        return tuple(ColumnInfo(n, t) for n, t in log_schema.items())

    def _log(self, settings: Settings | None):
        from deltalake import DeltaTable as DeltaLog

        s = resolve_settings(settings)
        uri = self.location(s)
        return DeltaLog(uri, storage_options=_storage_options(uri, s))

    def latest_version(self, settings: Settings | None = None) -> DeltaVersion:
        """The latest version and its commit time, read from the Delta log."""
        return _delta_version(self._log(settings).history(1)[0])

    def history(self, settings: Settings | None = None) -> list[DeltaVersion]:
        """Every version still in the Delta log, newest first, with its commit time."""
        return [_delta_version(commit) for commit in self._log(settings).history()]

    def _scan(
        self, settings: Settings, filters: list[Conjunction], as_of: int | None
    ) -> pl.LazyFrame:
        uri = self.location(settings)
        return pl.scan_delta(uri, version=as_of, storage_options=_storage_options(uri, settings))


def _delta_version(commit: dict[str, Any]) -> DeltaVersion:
    committed = datetime.fromtimestamp(commit["timestamp"] / 1000, tz=UTC)
    return DeltaVersion(version=commit["version"], committed_at=committed)


@dataclass(eq=False)
class ParquetTable(_FileTable):
    """A directory of Parquet files, plain or hive-partitioned (``day=2026-11-01/...``)."""

    kind: ClassVar[str] = "parquet"
    servable: ClassVar[bool] = True
    partitioning: Literal["hive", "none"] = "none"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.partitioning not in ("hive", "none"):
            raise CatalogError(
                f"ParquetTable {self.name!r}: partitioning must be 'hive' or 'none', "
                f"not {self.partitioning!r}"
            )
        if self.partition_columns and self.partitioning != "hive":
            raise CatalogError(
                f"ParquetTable {self.name!r} declares partition_columns: set partitioning='hive'"
            )

    def _scan(
        self, settings: Settings, filters: list[Conjunction], as_of: int | None
    ) -> pl.LazyFrame:
        uri = self.location(settings)
        declared = self.declared_columns()
        kwargs: dict[str, Any] = {}
        if declared and self.partition_columns:
            kwargs["hive_schema"] = {
                c.name: c.dtype for c in declared if c.name in self.partition_columns
            }
        return pl.scan_parquet(
            parquet_source(uri),
            hive_partitioning=self.partitioning == "hive",
            storage_options=_storage_options(uri, settings),
            **kwargs,
        )


def parquet_source(uri: str) -> str:
    """What ``pl.scan_parquet`` reads: a ``.parquet`` file as is, a directory's files."""
    return uri if uri.endswith(".parquet") else f"{uri.rstrip('/')}/**/*.parquet"


@dataclass(eq=False)
class CsvTable(_FileTable):
    """A CSV file (or glob), typed by its declared schema so nothing is guessed."""

    kind: ClassVar[str] = "csv"
    separator: str = ","

    def _scan(
        self, settings: Settings, filters: list[Conjunction], as_of: int | None
    ) -> pl.LazyFrame:
        uri = self.location(settings)
        declared = self.declared_columns()
        return pl.scan_csv(
            uri,
            separator=self.separator,
            schema={c.name: c.dtype for c in declared} if declared else None,
            storage_options=_storage_options(uri, settings),
        )


def __getattr__(name: str) -> type:
    """``DeltaTable``, the old name of :class:`DeltalakeTable`, still works but warns."""
    if name == "DeltaTable":
        return _deprecated_delta_table()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _deprecated_delta_table() -> type[DeltalakeTable]:
    warnings.warn(
        "neuralake.catalog.DeltaTable is now DeltalakeTable (the old name shadowed "
        "deltalake.DeltaTable): import DeltalakeTable instead",
        DeprecationWarning,
        stacklevel=3,  # the line that imported or named it
    )
    return DeltalakeTable

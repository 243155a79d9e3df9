"""Function tables: a Python function that returns a frame is a table.

::

    @table(tags=["derived"], upstream=["neural_signals"])
    def channel_stats() -> pl.LazyFrame:
        \"\"\"Mean and spread of every channel in every session.\"\"\"
        return neural_signals.scan().group_by("session_id", "channel").agg(...)

The docstring is the description. Return a LazyFrame (not a DataFrame) and the
filters given to ``db.table("channel_stats", filters=...)`` are pushed through the
function's plan down to the scans it starts from.

``materialize=True`` turns the function into a materialized view: ``refresh()`` runs it
once and overwrites a Delta table in the warehouse; reads then come from that table
(fast, and ROAPI can serve it) until the next refresh.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import polars as pl

from neuralake.catalog.errors import CatalogError
from neuralake.catalog.filters import Conjunction
from neuralake.catalog.tables import (
    DeltalakeTable,
    DeltaVersion,
    Table,
    reading_with,
    resolve_settings,
)
from neuralake.settings import Settings

FrameFunction = Callable[[], pl.LazyFrame | pl.DataFrame]


@dataclass(eq=False)
class FunctionTable(Table):
    """A table computed by ``function``; see :func:`table`."""

    kind: ClassVar[str] = "function"
    function: FrameFunction | None = None
    materialize: bool = False
    #: Where a materialized view is stored (as for DeltalakeTable: None means the table's name).
    uri: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.function is None:
            raise CatalogError(f"function table {self.name!r} needs a function: use @table")

    @property
    def servable(self) -> bool:  # type: ignore[override]
        """ROAPI serves a materialized view (it is a Delta table), not a bare function."""
        return self.materialize

    @property
    def view(self) -> DeltalakeTable:
        """The Delta table a materialized function writes to (same name, in the warehouse)."""
        if not self.materialize:
            raise CatalogError(
                f"function table {self.name!r} is not materialized: declare "
                "@table(materialize=True) to store it as a Delta table"
            )
        return DeltalakeTable(
            self.name, uri=self.uri, schema=self.schema, partition_columns=self.partition_columns
        )

    @property
    def kind_label(self) -> str:
        return "materialized view" if self.materialize else "function"

    def location(self, settings: Settings | None = None) -> str | None:
        return self.view.location(settings) if self.materialize else None

    def latest_version(self, settings: Settings | None = None) -> DeltaVersion | None:
        return self.view.latest_version(settings) if self.materialize else None

    def history(self, settings: Settings | None = None) -> list[DeltaVersion]:
        """The refreshes of a materialized view, newest first."""
        return self.view.history(settings) if self.materialize else super().history(settings)

    def compute(self) -> pl.LazyFrame:
        """Run the function (lazily when it returns a LazyFrame)."""
        assert self.function is not None
        result = self.function()
        if isinstance(result, pl.DataFrame):
            return result.lazy()
        if isinstance(result, pl.LazyFrame):
            return result
        raise CatalogError(
            f"function table {self.name!r} returned {type(result).__name__}: "
            "return a polars LazyFrame or DataFrame"
        )

    def refresh(self, settings: Settings | None = None) -> DeltaVersion:
        """Recompute a materialized view and overwrite its Delta table; return its version."""
        from deltalake import write_deltalake

        s = resolve_settings(settings)
        view = self.view
        uri = view.location(s)
        with reading_with(s):
            frame = self.compute().collect()
        write_deltalake(
            uri,
            frame.to_arrow(),
            mode="overwrite",
            schema_mode="overwrite",
            partition_by=list(self.partition_columns) or None,
            storage_options=s.storage_options or None if uri.startswith("s3://") else None,
        )
        return view.latest_version(s)

    def _scan(
        self, settings: Settings, filters: list[Conjunction], as_of: int | None
    ) -> pl.LazyFrame:
        if not self.materialize:
            with reading_with(settings):
                return self.compute()
        from deltalake import DeltaTable as DeltaLog
        from deltalake.exceptions import TableNotFoundError

        uri = self.view.location(settings)
        options = settings.storage_options or None if uri.startswith("s3://") else None
        try:
            # Opening the log, not DeltaLog.is_deltatable(): that call holds Python's GIL
            # while it waits for S3, so a reader in this process (delta.RequestLog) hangs.
            DeltaLog(uri, storage_options=options)
        except TableNotFoundError:
            raise CatalogError(
                f"materialized view {self.name!r} has not been built at {uri}: "
                f"run catalog.refresh({self.name!r})"
            ) from None
        return self.view._scan(settings, filters, as_of)


def table(
    function: FrameFunction | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    materialize: bool = False,
    **metadata: Any,
) -> Any:
    """Declare a function table: ``@table`` or ``@table(tags=[...], upstream=[...])``.

    The function's name is the table's name and its docstring the description; every
    other keyword is table metadata (``schema``, ``tags``, ``owner``, ``upstream``,
    ``checks``, ``docs_filters``, ``partition_columns``).
    """

    def wrap(fn: FrameFunction) -> FunctionTable:
        if inspect.signature(fn).parameters:
            raise CatalogError(
                f"@table function {fn.__name__!r} takes arguments: a table function takes none"
            )
        return FunctionTable(
            name or fn.__name__,
            description=description or inspect.cleandoc(fn.__doc__ or ""),
            function=fn,
            materialize=materialize,
            **metadata,
        )

    return wrap(function) if function is not None else wrap

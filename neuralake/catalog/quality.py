"""Data-quality checks declared on a table and run by the catalog.

::

    DeltalakeTable("sessions", checks=[NotNull("session_id"), Unique("session_id"),
                                   AcceptedValues("task", ["rest", "cursor", "typing"]),
                                   Range("duration_s", min=0), Freshness("started_at", days=30)])

Every check is one aggregate expression that counts failing rows (or finds the newest
timestamp), so all checks of a table run in a single lazy ``select``: one scan of the
data however many checks there are.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import polars as pl


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: passed or not, and the evidence in one line."""

    check: str
    column: str
    passed: bool
    detail: str


class Check(Protocol):
    """A check: an aggregate over the table, and a verdict on its value."""

    @property
    def label(self) -> str: ...

    @property
    def column(self) -> str: ...

    def aggregate(self) -> pl.Expr: ...

    def verdict(self, value: Any) -> CheckResult: ...


def _counted(check: Check, failing: int, what: str) -> CheckResult:
    ok = failing == 0
    return CheckResult(check.label, check.column, ok, "ok" if ok else f"{failing} rows {what}")


class RowCheck(ABC):
    """A check every row passes or fails on its own (the ELT keeps the rows that pass).

    A subclass says what a passing row is (:meth:`row_ok`) and how a failing one is
    described (:meth:`failing`); the check's aggregate counts the rows that fail.
    """

    column: str

    @property
    @abstractmethod
    def label(self) -> str: ...

    @abstractmethod
    def row_ok(self) -> pl.Expr:
        """Whether one row passes."""

    @abstractmethod
    def failing(self) -> str:
        """What the failing rows are, e.g. ``are null``."""

    def aggregate(self) -> pl.Expr:
        return (~self.row_ok()).sum()

    def verdict(self, value: int) -> CheckResult:
        return _counted(self, value, self.failing())


@dataclass(frozen=True)
class NotNull(RowCheck):
    """No value of ``column`` is null."""

    column: str

    @property
    def label(self) -> str:
        return f"not_null({self.column})"

    def row_ok(self) -> pl.Expr:
        return pl.col(self.column).is_not_null()

    def failing(self) -> str:
        return "are null"


@dataclass(frozen=True)
class Unique:
    """No two rows share the same value of ``column`` (or of ``also`` columns together)."""

    column: str
    also: Sequence[str] = ()

    @property
    def label(self) -> str:
        return f"unique({', '.join([self.column, *self.also])})"

    def aggregate(self) -> pl.Expr:
        key = pl.struct(self.column, *self.also) if self.also else pl.col(self.column)
        return key.is_duplicated().sum()

    def verdict(self, value: int) -> CheckResult:
        return _counted(self, value, "share a key with another row")


@dataclass(frozen=True)
class Range(RowCheck):
    """Every non-null value of ``column`` lies in ``[min, max]`` (either bound optional)."""

    column: str
    min: Any = None
    max: Any = None

    @property
    def label(self) -> str:
        return f"range({self.column}, {self.min}..{self.max})"

    def row_ok(self) -> pl.Expr:
        """A null passes (``NotNull`` is the check for nulls)."""
        col = pl.col(self.column)
        inside = col.is_not_null()
        if self.min is not None:
            inside = inside & (col >= self.min)
        if self.max is not None:
            inside = inside & (col <= self.max)
        return col.is_null() | inside

    def failing(self) -> str:
        return f"outside [{self.min}, {self.max}]"


@dataclass(frozen=True)
class AcceptedValues(RowCheck):
    """Every non-null value of ``column`` is one of ``values``."""

    column: str
    values: Sequence[Any] = field(default_factory=tuple)

    @property
    def label(self) -> str:
        return f"accepted_values({self.column})"

    def row_ok(self) -> pl.Expr:
        """A null passes (``NotNull`` is the check for nulls)."""
        col = pl.col(self.column)
        return col.is_null() | col.is_in(list(self.values))

    def failing(self) -> str:
        return f"not in {list(self.values)}"


@dataclass(frozen=True)
class Freshness:
    """The newest value of ``column`` (a Datetime or a Date) is at most ``days``/``hours`` old.

    A naive Datetime is taken as UTC. A Date counts from the end of that day (UTC): a
    table whose newest row is dated today is fresh, whatever the hour.
    """

    column: str
    days: float = 0
    hours: float = 0

    @property
    def label(self) -> str:
        return f"freshness({self.column}, max {_age(self.max_age)})"

    @property
    def max_age(self) -> timedelta:
        return timedelta(days=self.days, hours=self.hours)

    def aggregate(self) -> pl.Expr:
        return pl.col(self.column).max()

    def verdict(self, value: datetime | date | None) -> CheckResult:
        if value is None:
            return CheckResult(self.label, self.column, False, "table has no timestamps")
        if isinstance(value, datetime):
            newest = value if value.tzinfo else value.replace(tzinfo=UTC)  # naive means UTC
        elif isinstance(value, date):
            newest = datetime(value.year, value.month, value.day, tzinfo=UTC) + timedelta(days=1)
        else:
            return CheckResult(
                self.label,
                self.column,
                False,
                f"{self.column} holds {type(value).__name__} values: point Freshness at a "
                "Date or Datetime column",
            )
        age = max(datetime.now(UTC) - newest, timedelta(0))
        ok = age <= self.max_age
        return CheckResult(self.label, self.column, ok, f"newest row is {_age(age)} old")


def _age(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


@dataclass(frozen=True)
class QualityReport:
    """All check results for one table, with the rows scanned and the time it took."""

    table: str
    rows: int
    seconds: float
    results: tuple[CheckResult, ...]
    error: str | None = None  # the table could not be read: every check counts as failed

    @property
    def passed(self) -> bool:
        return self.error is None and all(r.passed for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "passed": self.passed,
            "rows": self.rows,
            "seconds": round(self.seconds, 4),
            "results": [asdict(r) for r in self.results],
            "error": self.error,
        }


def run_checks(name: str, frame: pl.LazyFrame, checks: Sequence[Check]) -> QualityReport:
    """Run every check of a table in one lazy pass and collect the verdicts."""
    started = time.perf_counter()
    if not checks:
        return QualityReport(name, frame.select(pl.len()).collect().item(), 0.0, ())
    aggregates = [pl.len().alias("__rows")]
    aggregates += [c.aggregate().alias(f"__check_{i}") for i, c in enumerate(checks)]
    values = frame.select(aggregates).collect().row(0)
    results = tuple(c.verdict(v) for c, v in zip(checks, values[1:], strict=True))
    return QualityReport(name, values[0], time.perf_counter() - started, results)


def unreadable(name: str, checks: Sequence[Check], error: Exception) -> QualityReport:
    """The report of a table that could not be read: each check failed with the reason."""
    reason = f"table not readable: {type(error).__name__}: {str(error).splitlines()[0]}"
    results = tuple(CheckResult(c.label, c.column, False, reason) for c in checks)
    return QualityReport(name, 0, 0.0, results, error=reason)

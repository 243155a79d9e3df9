"""Databases: a named set of tables. A Python module is a database.

``ModuleDatabase(neuro)`` collects every table object declared at the top level of the
module ``neuro`` -- ``DeltalakeTable(...)``, ``ParquetTable(...)``, ``@table`` functions --
so adding a table to the catalog is adding a declaration to a file, reviewed like code.

A table the module merely imports (``from neuro import sessions``) belongs to the
module that declared it: listing it in both would make ``sessions`` ambiguous and give
ROAPI two tables of that name. To re-export a table on purpose, name it in the module's
``__all__``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from types import ModuleType

import polars as pl

from neuralake.catalog.errors import CatalogError, lookup
from neuralake.catalog.filters import Filters
from neuralake.catalog.tables import Table
from neuralake.settings import Settings


class Database(ABC):
    """A set of tables by name. A subclass says which tables (:meth:`tables`); reading
    them by name (:meth:`get`, :meth:`table`) is the same for every database."""

    @abstractmethod
    def tables(self) -> dict[str, Table]:
        """The tables by name, in declaration order."""

    def get(self, name: str) -> Table:
        """The table object ``name``; an unknown name lists the tables that exist."""
        return lookup("table", name, self.tables())

    def table(
        self,
        name: str,
        filters: Filters | None = None,
        columns: Sequence[str] | None = None,
        settings: Settings | None = None,
        *,
        version: int | None = None,
        timestamp: datetime | str | None = None,
    ) -> pl.LazyFrame:
        """A lazy read of table ``name``: see :meth:`Table.scan` for every argument.

        ``db.table("sessions", filters=[Filter("task", "=", "rest")], columns=[...])``;
        ``db.table("sessions", version=0)`` reads the first version (Delta tables).
        """
        return self.get(name).scan(
            filters=filters,
            columns=columns,
            settings=settings,
            version=version,
            timestamp=timestamp,
        )


class ModuleDatabase(Database):
    """The tables a Python module declares (or lists in ``__all__``), in declaration order.

    ``ModuleDatabase(neuro)``; the description is the module's docstring. A notebook is a
    module too: ``ModuleDatabase(sys.modules[__name__])``.
    """

    def __init__(self, module: ModuleType, description: str | None = None):
        self.module = module
        self.description = (module.__doc__ or "").strip() if description is None else description
        exported = set(getattr(module, "__all__", ()))
        found: dict[str, Table] = {}
        for attribute, value in vars(module).items():
            if not isinstance(value, Table):
                continue
            if value.declared_in != module.__name__ and attribute not in exported:
                continue  # imported from the module that declares it
            if value.name in found and found[value.name] is not value:
                raise CatalogError(
                    f"module {module.__name__} declares two tables named {value.name!r} "
                    f"(second one is {attribute}): rename one"
                )
            found[value.name] = value
        self._tables = found

    def __repr__(self) -> str:
        return f"ModuleDatabase({self.module.__name__}, {len(self._tables)} tables)"

    def tables(self) -> dict[str, Table]:
        return dict(self._tables)

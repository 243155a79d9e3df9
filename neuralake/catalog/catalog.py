"""The catalog: databases by name, and the operations that span them.

::

    catalog = Catalog({"neuro": ModuleDatabase(neuro)})
    catalog.dbs()                                   # ['neuro']
    catalog.db("neuro").tables()                    # {'neural_signals': DeltalakeTable(...), ...}
    catalog.db("neuro").table("sessions", filters=[Filter("task", "=", "cursor")])

A table is addressed as ``"db.table"``, or just ``"table"`` when only one database has it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import ModuleType

from neuralake.catalog.database import Database, ModuleDatabase
from neuralake.catalog.errors import CatalogError, UnknownNameError, lookup
from neuralake.catalog.functions import FunctionTable
from neuralake.catalog.names import check_name
from neuralake.catalog.quality import QualityReport, run_checks, unreadable
from neuralake.catalog.tables import DeltaVersion, Table, resolve_settings
from neuralake.settings import Settings


class Catalog:
    """Named databases: ``Catalog({"neuro": ModuleDatabase(neuro)})``.

    Database names are identifiers (they name files and links on the site). See the
    module docstring for reading; ``check()`` runs quality checks, ``refresh()``
    rebuilds a materialized view.
    """

    def __init__(self, databases: Mapping[str, Database]):
        for name, db in databases.items():
            check_name("database", name)  # it becomes a file name and a link on the site
            if not isinstance(db, Database):
                raise CatalogError(
                    f"database {name!r} is a {type(db).__name__}: wrap a module in ModuleDatabase"
                )
        self._dbs = dict(databases)

    @classmethod
    def from_module(cls, module: ModuleType) -> Catalog:
        """The catalog a module declares: its ``catalog`` variable, or the module itself.

        The module becomes one database named after the last part of its name
        (``neuralake.catalog.examples.neuro`` -> ``neuro``).
        """
        declared = getattr(module, "catalog", None)
        if isinstance(declared, Catalog):
            return declared
        name = module.__name__.rpartition(".")[2]
        try:
            check_name("database", name)
        except CatalogError:
            raise CatalogError(
                f"module {module.__name__!r} cannot be a database named {name!r}: rename it "
                "(letters, digits, _) or declare catalog = Catalog({...}) in it"
            ) from None
        return cls({name: ModuleDatabase(module)})

    def __repr__(self) -> str:
        return f"Catalog({', '.join(self._dbs)})"

    def dbs(self) -> list[str]:
        """The database names."""
        return list(self._dbs)

    def db(self, name: str) -> Database:
        """The database ``name``; an unknown name lists the databases that exist."""
        return lookup("database", name, self._dbs)

    def items(self) -> Iterator[tuple[str, Table]]:
        """Every ``(db name, table)`` pair, in declaration order."""
        for db_name, db in self._dbs.items():
            for table in db.tables().values():
                yield db_name, table

    def find(self, ref: str) -> tuple[str, Table]:
        """Resolve ``"db.table"`` or an unambiguous ``"table"`` to ``(db name, table)``."""
        db_name, _, table_name = ref.rpartition(".")
        if db_name:
            tables = self.db(db_name).tables()
            if table_name not in tables:
                raise UnknownNameError("table", ref, (f"{db_name}.{t}" for t in tables))
            return db_name, tables[table_name]
        matches = [(d, t) for d, t in self.items() if t.name == table_name]
        if not matches:
            raise UnknownNameError("table", ref, (f"{d}.{t.name}" for d, t in self.items()))
        if len(matches) > 1:
            raise CatalogError(
                f"table {ref!r} is in several databases: write one of "
                + ", ".join(f"{d}.{t.name}" for d, t in matches)
            )
        return matches[0]

    def check(
        self, ref: str | None = None, settings: Settings | None = None
    ) -> list[QualityReport]:
        """Run the quality checks of one table (``ref``) or of every table that has checks."""
        s = resolve_settings(settings)
        targets = [self.find(ref)] if ref else [(d, t) for d, t in self.items() if t.checks]
        reports = []
        for db_name, table in targets:
            name = f"{db_name}.{table.name}"
            try:
                reports.append(run_checks(name, table.scan(settings=s), table.checks))
            except Exception as error:  # reported as failed checks with the reason, not hidden
                reports.append(unreadable(name, table.checks, error))
        return reports

    def refresh(self, ref: str, settings: Settings | None = None) -> DeltaVersion:
        """Recompute the materialized view ``ref`` and return its new Delta version."""
        db_name, table = self.find(ref)
        if not isinstance(table, FunctionTable):
            raise CatalogError(f"{db_name}.{table.name} is a {table.kind} table, not a view")
        return table.refresh(settings)

"""How long does the catalog site take to build for 500 tables? (budget: under 5 s)

Builds a synthetic catalog of 500 tables in 10 modules -- Delta tables with declared
schemas of 12 described columns, partitioning, docs filters, quality checks and
upstream chains, plus function tables -- then times the export (no I/O: --no-inspect,
as for a catalog whose storage is not reachable) and the HTML rendering separately.
With ``--inspect`` the Delta tables point at one real local table, so every page also
reads a Delta log for freshness.

    python benchmarks/catalog_site.py [--tables 500] [--inspect]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
import types
from pathlib import Path

import polars as pl

import neuralake
from neuralake.catalog import (
    Catalog,
    Column,
    DeltalakeTable,
    Filter,
    ModuleDatabase,
    NotNull,
    Range,
    Unique,
    table,
)
from neuralake.catalog.export import export_catalog
from neuralake.catalog.site import build_site

TYPES = [pl.Int64, pl.Float64, pl.String, pl.Datetime("us", "UTC"), pl.Boolean, pl.Int32]


def synthetic_catalog(tables: int, modules: int, real_uri: str | None) -> Catalog:
    dbs = {}
    per_module = tables // modules
    for m in range(modules):
        module = types.ModuleType(f"bench_{m}")
        module.__doc__ = f"Benchmark database {m}."
        for i in range(per_module):
            name = f"t{m}_{i}"
            schema = {
                f"col_{c}": Column(TYPES[c % len(TYPES)], f"Column {c} of {name}.")
                for c in range(12)
            }
            upstream = [f"t{m}_{i - 1}"] if i else []
            if i % 5 == 4:

                def fn() -> pl.LazyFrame:
                    return pl.LazyFrame({"col_0": [1]})

                fn.__doc__ = f"Derived table {name}: a function over {upstream}."
                fn.__name__ = name
                obj = table(tags=["derived", f"team{m}"], upstream=upstream, schema=schema)(fn)
            else:
                obj = DeltalakeTable(
                    name,
                    uri=real_uri,
                    description=f"Table {name} of module {m}. " * 4,
                    schema=schema,
                    partition_columns=["col_2"],
                    docs_filters=[Filter("col_0", ">", 10), Filter("col_2", "=", "a'b")],
                    tags=["raw", f"team{m}"],
                    owner=f"team{m}@example.org",
                    upstream=upstream,
                    checks=[NotNull("col_0"), Unique("col_0"), Range("col_1", min=0)],
                )
            setattr(module, name, obj)
        # Declared here, not in the module: __all__ makes them the module's tables.
        module.__all__ = [f"t{m}_{i}" for i in range(per_module)]
        dbs[module.__name__] = ModuleDatabase(module)
    return Catalog(dbs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=500)
    parser.add_argument("--modules", type=int, default=10)
    parser.add_argument("--inspect", action="store_true", help="read Delta logs too")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        settings = dataclasses.replace(
            neuralake.settings("local"), warehouse_uri=Path(tmp, "wh").as_uri()
        )
        real_uri = None
        if args.inspect:
            real_uri = str(Path(tmp, "one_table"))
            pl.DataFrame({"col_0": [1, 2]}).write_delta(real_uri)
        catalog = synthetic_catalog(args.tables, args.modules, real_uri)

        started = time.perf_counter()
        data = export_catalog(catalog, "bench", settings, inspect=args.inspect)
        exported = time.perf_counter()
        build_site(data, Path(tmp, "site"))
        built = time.perf_counter()
        pages = len(list(Path(tmp, "site", "tables").iterdir()))

    total = built - started
    print(
        f"{len(data['tables'])} tables ({pages} pages, inspect={args.inspect}): "
        f"export {exported - started:.2f} s + render {built - exported:.2f} s "
        f"= {total:.2f} s ({'within' if total < 5 else 'OVER'} the 5 s budget)"
    )


if __name__ == "__main__":
    main()

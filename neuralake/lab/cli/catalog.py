"""``neuralake catalog``: build the site, the ROAPI config and the JSON export.

::

    M=neuralake.catalog.examples.neuro
    neuralake catalog export -m $M --out catalog.json
    neuralake catalog check  -m $M --out quality.json
    neuralake catalog site   -m $M --out site/ --quality quality.json
    neuralake catalog roapi  -m $M --out roapi.yaml

``--module`` takes a module name or a ``.py`` file. ``--profile`` picks the settings
(default: the stack if it is up, else local).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

import neuralake
from neuralake.catalog.export import export_catalog, write_export
from neuralake.catalog.loader import load_catalog
from neuralake.catalog.roapi import skipped, write_roapi
from neuralake.catalog.site import build_site

app = typer.Typer(
    help="Code as a catalog: site, ROAPI config, export, checks.", no_args_is_help=True
)

Module = Annotated[str, typer.Option("--module", "-m", help="Catalog module name or .py file.")]
Profile = Annotated[str | None, typer.Option(help="Settings profile: local, stack or aws.")]
Inspect = Annotated[
    bool, typer.Option(help="Read Delta logs for undeclared schemas and freshness.")
]
Out = Annotated[
    Path, typer.Option("--out", "-o", help="Where to write: a file, or a folder for `site`.")
]


def _export(
    module: str, profile: str | None, inspect: bool, quality: Path | None = None
) -> dict[str, Any]:
    reports = json.loads(quality.read_text(encoding="utf-8")) if quality else None
    return export_catalog(
        load_catalog(module), module, neuralake.settings(profile), inspect=inspect, quality=reports
    )


@app.command()
def export(module: Module, out: Out, profile: Profile = None, inspect: Inspect = True) -> None:
    """Write the catalog as JSON: the contract behind the site and the ROAPI config."""
    data = _export(module, profile, inspect)
    write_export(data, out)
    typer.echo(f"wrote {out}: {len(data['tables'])} tables")


@app.command()
def site(
    module: Module,
    out: Out,
    profile: Profile = None,
    inspect: Inspect = True,
    quality: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Quality report JSON written by `check`."),
    ] = None,
) -> None:
    """Generate the static HTML site (index with search, one page per table)."""
    started = time.perf_counter()
    data = _export(module, profile, inspect, quality)
    index = build_site(data, out)
    seconds = time.perf_counter() - started
    typer.echo(f"wrote {index} ({len(data['tables'])} tables) in {seconds:.2f} s")


@app.command()
def roapi(module: Module, out: Out, profile: Profile = None) -> None:
    """Write a ROAPI config serving every Delta and Parquet table of the catalog."""
    data = _export(module, profile, inspect=False)
    write_roapi(data, out)
    for table, reason in skipped(data):
        typer.echo(f"skipped {table}: {reason}")
    typer.echo(f"wrote {out}")


@app.command()
def check(
    module: Module,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="JSON report to write.")] = None,
    profile: Profile = None,
) -> None:
    """Run every table's quality checks; exit 1 if any check fails."""
    reports = load_catalog(module).check(settings=neuralake.settings(profile))
    for report in reports:
        if report.error:
            typer.echo(f"FAIL {report.table}: {report.error}")
            continue
        for r in report.results:
            typer.echo(f"{'PASS' if r.passed else 'FAIL'} {report.table} {r.check}: {r.detail}")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps([r.to_dict() for r in reports], indent=2) + "\n", encoding="utf-8"
        )
    if not all(r.passed for r in reports):
        raise typer.Exit(1)


@app.command()
def refresh(module: Module, table: str, profile: Profile = None) -> None:
    """Recompute a materialized view (``db.table`` or ``table``)."""
    version = load_catalog(module).refresh(table, neuralake.settings(profile))
    typer.echo(f"refreshed {table}: version {version.version} at {version.committed_at}")

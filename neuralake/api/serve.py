"""Serve a catalog through the stack's ROAPI: write its config, then reload ROAPI.

After a table is added to the catalog, ``serve(catalog)`` makes it queryable over HTTP,
the PostgreSQL wire protocol and Flight SQL; no API code is written. The config lands
where the native stack looks for it (``.state/roapi/roapi.yml``), so ``make up`` starts
ROAPI on it from then on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from neuralake.catalog import Catalog
from neuralake.catalog.export import export_catalog
from neuralake.catalog.roapi import RELOAD_INTERVAL_S, served_names, skipped, write_roapi
from neuralake.settings import Settings
from neuralake.stack.services import reload_roapi, roapi_config_path


def serve(
    catalog: Catalog,
    module: str,
    settings: Settings,
    *,
    reload_interval_s: int = RELOAD_INTERVAL_S,
    echo: Callable[[str], None] = print,
) -> dict[str, str]:
    """Write ``catalog``'s ROAPI config for the stack, restart ROAPI on it.

    Returns table id -> the name ROAPI serves it as. ``module`` is how snippets load
    the catalog (it names the config's header).
    """
    export = export_catalog(catalog, module, settings, inspect=False)
    path = write_config(export, settings, reload_interval_s)
    for table, reason in skipped(export):
        echo(f"skipped {table}: {reason}")
    echo(f"wrote {path}")
    reload_roapi(settings, echo=echo)
    return served_names(export)


def write_config(export: dict, settings: Settings, reload_interval_s: int) -> Path:
    """The export as ROAPI config at the path the stack starts ROAPI from."""
    return write_roapi(export, roapi_config_path(settings), reload_interval_s=reload_interval_s)


def unserve(settings: Settings) -> bool:
    """Stop the stack's ROAPI and remove its config (True if there was one).

    A config that names dropped tables would stop ROAPI from starting at the next
    ``make up``; tests that serve throw-away tables call this when they are done.
    """
    from neuralake.stack import control, processes

    path = roapi_config_path(settings)
    processes.stop(control._pid_file(settings, "roapi"))
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed

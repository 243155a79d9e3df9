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
from neuralake.errors import StackError
from neuralake.lab.stack import control, processes
from neuralake.lab.stack.services import roapi_config_path
from neuralake.settings import Settings


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
    reload(settings, echo=echo)
    return served_names(export)


def write_config(export: dict, settings: Settings, reload_interval_s: int) -> Path:
    """The export as ROAPI config at the path the stack starts ROAPI from."""
    return write_roapi(export, roapi_config_path(settings), reload_interval_s=reload_interval_s)


def unserve(settings: Settings) -> bool:
    """Stop the stack's ROAPI and remove its config (True if there was one).

    A config that names dropped tables would stop ROAPI from starting at the next
    ``make up``; tests that serve throw-away tables call this when they are done.
    """
    path = roapi_config_path(settings)
    processes.stop(control._pid_file(settings, "roapi"))
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed


def reload(settings: Settings, echo: Callable[[str], None] = print) -> None:
    """Restart the stack's ROAPI on its current config and wait until it answers.

    ROAPI 0.12.7 cannot add a table with options (``format: delta``) at run time
    (``POST /api/table`` takes only a name and a URI), so a new config means a restart:
    provider tables load in well under a second, memory tables as long as a full read.
    """
    if not roapi_config_path(settings).exists():
        raise StackError(
            f"no ROAPI config at {roapi_config_path(settings)}: write one with "
            "`neuralake api serve`"
        )
    if (control._marker(settings) or {}).get("mode") == "docker":
        raise StackError(
            "the stack runs in Docker: reload ROAPI with `docker compose restart roapi`"
        )
    processes.stop(control._pid_file(settings, "roapi"))
    control.up(settings, only=["roapi"], echo=echo)

"""Serve a catalog through the stack's ROAPI: write its config, then reload ROAPI.

After a table is added to the catalog, ``serve(catalog)`` makes it queryable over HTTP,
the PostgreSQL wire protocol and Flight SQL; no API code is written. The config lands
where the native stack looks for it (``.state/roapi/roapi.yml``), so ``make up`` starts
ROAPI on it from then on.

A table declared with ``roapi_window_s`` also gets its serving window
(:mod:`neuralake.api.window`): ``serve`` starts one small process per window that
rewrites it after every commit of the live table, waits for its first write (ROAPI
cannot start on a missing object), then reloads ROAPI.

**One ROAPI per stack.** The stack runs a single ROAPI on fixed ports and ``serve``
writes its whole config: serving a catalog *replaces* what another catalog served, even
when table names carry different ``PREFIX``es. In a classroom that shares one stack,
the last student to call ``serve`` decides what ROAPI serves; ``serve`` names the tables
it stopped serving. Isolated serving needs a ROAPI per student (a stack per student, or
the private servers of :mod:`neuralake.lab.api.server`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml

from neuralake.catalog import Catalog
from neuralake.catalog.export import export_catalog
from neuralake.catalog.roapi import RELOAD_INTERVAL_S, served_names, skipped, windows, write_roapi
from neuralake.errors import StackError
from neuralake.lab.api.windows import (
    WINDOW_REFRESH_S,
    restart_windows,
    start_window,
    stop_windows,
    window_running,
)
from neuralake.lab.stack import control, processes
from neuralake.lab.stack.services import roapi_config_path
from neuralake.settings import Settings

#: Seconds ROAPI gets to exit on SIGTERM before SIGKILL. It holds nothing to flush (it only
#: reads), but its graceful shutdown waits for every open client connection: with another
#: notebook's kept-alive client connected, a restart waited the default 30 s (measured:
#: 37 s between the old ROAPI's last log line and the new one's start).
ROAPI_STOP_S = 3.0

__all__ = [  # the window functions live in neuralake.lab.api.windows (stack up uses them)
    "WINDOW_REFRESH_S",
    "reload",
    "restart_windows",
    "serve",
    "served_tables",
    "start_window",
    "stop_windows",
    "unserve",
    "window_running",
    "write_config",
]


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
    before = served_tables(settings)
    path = write_config(export, settings, reload_interval_s)
    for table, reason in skipped(export):
        echo(f"skipped {table}: {reason}")
    echo(f"wrote {path}")
    gone = sorted(before - served_tables(settings))
    if gone:
        echo(f"no longer served (one ROAPI per stack; PREFIX does not isolate it): {gone}")
    stop_windows(settings)
    for window in windows(export).values():
        start_window(window, settings)
        echo(f"window {window['name']}: last {window['seconds']} s of {window['live_uri']}")
    reload(settings, echo=echo)
    return served_names(export)


def served_tables(settings: Settings) -> set[str]:
    """Names in the stack's current ROAPI config (empty when there is none)."""
    path = roapi_config_path(settings)
    if not path.exists():
        return set()
    return {t["name"] for t in (yaml.safe_load(path.read_text()) or {}).get("tables", [])}


def write_config(export: dict, settings: Settings, reload_interval_s: int) -> Path:
    """The export as ROAPI config at the path the stack starts ROAPI from."""
    return write_roapi(export, roapi_config_path(settings), reload_interval_s=reload_interval_s)


def unserve(settings: Settings) -> bool:
    """Stop the stack's ROAPI and its windows, remove its config (True if there was one).

    A config that names dropped tables would stop ROAPI from starting at the next
    ``make up``; tests that serve throw-away tables call this when they are done.
    """
    path = roapi_config_path(settings)
    processes.stop(control._pid_file(settings, "roapi"), timeout=ROAPI_STOP_S)
    stop_windows(settings)
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
    processes.stop(control._pid_file(settings, "roapi"), timeout=ROAPI_STOP_S)
    control.up(settings, only=["roapi"], echo=echo)

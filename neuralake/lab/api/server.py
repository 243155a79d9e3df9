"""Run a private ROAPI, or the FastAPI baseline, on free ports for a test or a benchmark.

The stack's own ROAPI (``neuralake api serve``) serves the catalog for everyone; a test
that must control the config, or a benchmark that must not disturb the stack, starts
its own process here and stops it when the ``with`` block ends.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from neuralake.catalog.roapi import RELOAD_INTERVAL_S, delta_table_entry
from neuralake.errors import StackError
from neuralake.lab.stack import processes
from neuralake.lab.stack.processes import Tracked, free_port
from neuralake.settings import Settings

ROAPI = Path(sys.executable).parent / "roapi"  # shipped by the roapi wheel


@dataclass(frozen=True)
class Listeners:
    http: str
    postgres: str
    flight_sql: str

    @classmethod
    def free(cls) -> Listeners:
        return cls(*(f"127.0.0.1:{free_port()}" for _ in range(3)))


def roapi_yaml(tables: list[dict], listeners: Listeners, reload_interval_s: int) -> dict:
    """A ROAPI config for ``tables`` (ROAPI's own table entries) on ``listeners``."""
    return {
        "addr": {
            "http": listeners.http,
            "postgres": listeners.postgres,
            "flight_sql": listeners.flight_sql,
        },
        "reload_interval": {"secs": reload_interval_s, "nanos": 0},
        "disable_read_only": True,
        "tables": tables,
    }


def delta_entry(name: str, uri: str, memory: bool = False) -> dict:
    """ROAPI's config entry for one Delta table (provider mode unless ``memory``).

    The same entry the catalog writes (:func:`neuralake.catalog.roapi.delta_table_entry`).
    """
    return delta_table_entry(name, uri, memory)


@contextmanager
def roapi(
    tables: list[dict],
    settings: Settings,
    folder: Path,
    reload_interval_s: int = RELOAD_INTERVAL_S,
    timeout: float = 120,
) -> Iterator[Listeners]:
    """ROAPI serving ``tables`` on free loopback ports until the block ends."""
    import yaml

    listeners = Listeners.free()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "roapi.yml"
    config.write_text(yaml.safe_dump(roapi_yaml(tables, listeners, reload_interval_s)))
    with _serving(
        "roapi",
        [str(ROAPI), "-c", str(config)],
        settings.roapi_env,
        folder,
        f"http://{listeners.http}/api/schema",
        timeout,
    ):
        yield listeners


@contextmanager
def baseline(
    uri: str, name: str, settings: Settings, folder: Path, refresh_s: float = RELOAD_INTERVAL_S
) -> Iterator[str]:
    """The FastAPI + Polars baseline serving ``uri`` as ``name``; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "neuralake.api.baseline", "--uri", uri, "--name", name]
    command += ["--port", str(port), "--refresh-s", str(refresh_s)]
    env = {"NEURALAKE_PROFILE": settings.profile}
    folder.mkdir(parents=True, exist_ok=True)
    with _serving("baseline", command, env, folder, f"http://127.0.0.1:{port}/health", 300):
        yield f"http://127.0.0.1:{port}"


def window_command(live_uri: str, out_uri: str, seconds: float, every_s: float = 1.0) -> list[str]:
    """The command that keeps a serving window (:mod:`neuralake.api.window`) fresh."""
    command = [sys.executable, "-m", "neuralake.api.window", "--live", live_uri, "--out", out_uri]
    return [*command, "--seconds", str(seconds), "--every", str(every_s)]


def window_written(log: Path, since: int = 0) -> Callable[[], None]:
    """A health check: passes once the window process logged its first write."""

    def check() -> None:
        with open(log, "rb") as lines:
            lines.seek(since)
            if b"version " not in lines.read():
                raise StackError(f"the window is not written yet (see {log})")

    return check


@contextmanager
def window(
    live_uri: str, out_uri: str, seconds: float, settings: Settings, folder: Path
) -> Iterator[Path]:
    """The serving window of ``live_uri`` kept fresh until the block ends; yields its log."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "window.log"
    env = {"NEURALAKE_PROFILE": settings.profile}
    command = window_command(live_uri, out_uri, seconds)
    with processes.serving(
        command,
        name="window",
        check=window_written(log),
        log_file=log,
        pid_file=folder / "window.pid",
        env={**os.environ, "NO_COLOR": "1", **env},
        timeout=300,
        cwd=folder,
    ):
        yield log


def _serving(
    name: str, command: list[str], env: dict[str, str], folder: Path, ready: str, timeout: float
) -> AbstractContextManager[Tracked]:
    """``command`` as a pid-tracked process in ``folder``, until ``ready`` answers."""
    return processes.serving(
        command,
        name=name,
        check=lambda: httpx.get(ready, timeout=1).raise_for_status(),
        log_file=folder / f"{name}.log",
        pid_file=folder / f"{name}.pid",
        env={**os.environ, "NO_COLOR": "1", **env},  # plain log lines to quote
        timeout=timeout,
        cwd=folder,
    )

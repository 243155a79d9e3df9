"""Shared fixtures: the running stack, and a second, isolated stack for failure tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import neuralake
from neuralake.lab.stack import control
from neuralake.lab.stack.processes import free_port, port_is_free

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def stack_settings() -> Iterator[neuralake.Settings]:
    """The stack profile's settings, with the stack up (started here if it was down).

    A stack that was already up (``make lab``) is left running, even when one of its
    services was briefly down (a lesson restarting ROAPI): only a stack this fixture
    started from nothing is stopped again at the end of the session.
    """
    s = neuralake.settings("stack")
    rows = control.status(s)
    someone_elses = any(row.healthy for row in rows)
    if not all(row.healthy for row in rows):
        try:
            control.up(s, echo=lambda _: None)  # idempotent: starts only what is down
        except Exception:
            if not someone_elses:
                control.down(s, echo=lambda _: None)  # leave no half-started stack behind
            raise
    yield s
    if not someone_elses:
        control.down(s, echo=lambda _: None)


def free_port_block(size: int) -> int:
    """The first of ``size`` consecutive free ports on 127.0.0.1."""
    for _ in range(50):
        first = free_port()
        if first + size < 65535 and all(port_is_free(first + i) for i in range(size)):
            return first
    raise RuntimeError("no block of free ports found")


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Environment for a throwaway stack: own state folder and free ports."""
    base = free_port_block(8)
    monkeypatch.setenv("NEURALAKE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("NEURALAKE_S3_ENDPOINT", f"http://127.0.0.1:{base}")
    monkeypatch.setenv("NEURALAKE_KAFKA_BOOTSTRAP", f"127.0.0.1:{base + 2}")
    monkeypatch.setenv(
        "NEURALAKE_POSTGRES_DSN",
        f"postgresql://neuralake:neuralake-secret@127.0.0.1:{base + 4}/neuralake",
    )
    monkeypatch.setenv("NEURALAKE_ROAPI_HTTP", f"127.0.0.1:{base + 5}")
    monkeypatch.setenv("NEURALAKE_ROAPI_POSTGRES", f"127.0.0.1:{base + 6}")
    monkeypatch.setenv("NEURALAKE_ROAPI_FLIGHT_SQL", f"127.0.0.1:{base + 7}")
    return tmp_path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The docs site is built from the lessons the notebook tests execute: build it last."""
    items.sort(key=lambda item: item.path.name == "test_docs.py")

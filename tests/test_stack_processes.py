"""Pid-tracked processes and ``stack down``, on harmless processes started here.

These never touch the shared stack: each test has its own state folder, and the
"services" are ``sleep`` processes with pid files where the stack keeps its own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil
import pytest

import neuralake
from neuralake.stack import control, processes
from neuralake.stack.services import native_services, roapi_config_path

SLEEPER = [sys.executable, "-c", "import time; time.sleep(300)"]


@pytest.fixture
def own_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> neuralake.Settings:
    monkeypatch.setenv("NEURALAKE_STATE_DIR", str(tmp_path / "state"))
    return neuralake.settings("stack")


def start_sleeper(s: neuralake.Settings, name: str) -> processes.Tracked:
    """A harmless process recorded as the stack's ``name`` service."""
    return processes.start(
        SLEEPER,
        pid_file=control._pid_file(s, name),
        log_file=control.log_file(s, name),
        env=dict(os.environ),
        cwd=s.state_dir,
    )


def gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_down_stops_a_service_whose_config_was_removed(own_state):
    s = own_state
    # ROAPI was started from its config; then the config went (a test's unserve, a user).
    assert not roapi_config_path(s).exists()
    assert "roapi" not in [svc.name for svc in native_services(s)]
    roapi = start_sleeper(s, "roapi")
    try:
        assert control.down(s, echo=lambda _: None) == ["roapi"]
        assert gone(roapi.pid), "down left a process running that its pid file names"
        assert control.down(s, echo=lambda _: None) == []  # idempotent
    finally:
        if not gone(roapi.pid):
            psutil.Process(roapi.pid).kill()


def test_down_stops_in_reverse_start_order(own_state):
    s = own_state
    started = [start_sleeper(s, name) for name in ("minio", "postgres", "roapi")]
    try:
        assert control.down(s, echo=lambda _: None) == ["roapi", "postgres", "minio"]
        assert all(gone(t.pid) for t in started)
    finally:
        for t in started:
            if not gone(t.pid):
                psutil.Process(t.pid).kill()

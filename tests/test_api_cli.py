"""``neuralake api``: usage without a command, and one-line errors with exit code 1."""

from __future__ import annotations

from typer.testing import CliRunner

from neuralake.lab.api.cli import app

runner = CliRunner()


def test_usage_without_a_command() -> None:
    result = runner.invoke(app, [])
    assert result.exit_code == 2
    assert "serve" in result.output and "query" in result.output


def test_query_on_a_server_that_is_down_is_one_line(monkeypatch) -> None:
    monkeypatch.setenv("NEURALAKE_ROAPI_HTTP", "127.0.0.1:9")
    result = runner.invoke(app, ["query", "SELECT 1", "--profile", "stack"])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: ROAPI is not answering at http://127.0.0.1:9")


def test_serve_needs_a_catalog_module() -> None:
    result = runner.invoke(app, ["serve", "-m", "no_such_module_here", "--profile", "local"])
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot import catalog module 'no_such_module_here'")

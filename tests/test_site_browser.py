"""The generated site in a real headless Chromium: search, tag filters, schema, snippets.

Needs Debian's Chromium at /usr/bin/chromium (``apt-get install chromium``).
"""

from __future__ import annotations

import dataclasses
import functools
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import ARGS, CHROMIUM
from playwright.sync_api import expect

import neuralake
from neuralake.catalog import Catalog, ModuleDatabase
from neuralake.catalog.examples import neuro
from neuralake.catalog.examples.seed import seed
from neuralake.catalog.export import export_catalog
from neuralake.catalog.site import build_site

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install chromium"
)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, neuralake.Settings]]:
    """The neuro site over a seeded local warehouse, served on 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("site")
    settings = dataclasses.replace(neuralake.settings("local"), warehouse_uri=(tmp / "wh").as_uri())
    seed(settings)
    catalog = Catalog({"neuro": ModuleDatabase(neuro)})
    data = export_catalog(
        catalog,
        "neuralake.catalog.examples.neuro",
        settings,
        quality=catalog.check("sessions", settings=settings),
    )
    build_site(data, tmp / "out")
    handler = functools.partial(_QuietHandler, directory=str(tmp / "out"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", settings
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


def _visible_tables(page) -> list[str]:
    return page.locator("tr.table-row:visible td:first-child a").all_inner_texts()


def test_search_and_tags_narrow_the_list(site, browser) -> None:
    url, _ = site
    page = browser.new_page()
    page.goto(f"{url}/index.html")
    assert len(_visible_tables(page)) == 7
    page.fill("#search", "spike")
    assert _visible_tables(page) == ["neural_signals", "session_quality", "channel_stats"]
    assert page.inner_text("#count") == "3 of 7 tables shown"
    page.fill("#search", "")
    page.click("button[data-tag='clinical']")
    assert _visible_tables(page) == ["patients"]
    page.click("button[data-tag='clinical']")
    page.click("button[data-tag='derived']")
    page.fill("#search", "materialized")
    assert _visible_tables(page) == ["channel_stats"]
    page.close()


def test_table_page_shows_columns_quality_and_lineage(site, browser) -> None:
    url, _ = site
    page = browser.new_page()
    page.goto(f"{url}/index.html")
    page.click("tr.table-row a >> text='sessions'")
    assert page.url.endswith("/tables/neuro.sessions.html")
    columns = page.locator("#schema tbody tr td:first-child").all_inner_texts()
    assert columns == [
        "session_id",
        "patient_id",
        "device_id",
        "task",
        "started_at",
        "ended_at",
        "sample_rate_hz",
        "channels",
        "samples",
    ]
    assert "pass" in page.locator("#quality").inner_text()
    assert page.locator("#freshness").inner_text().startswith("version 0, committed")
    assert page.locator("#lineage a").count() >= 3  # devices, patients -> sessions -> ...
    page.close()


@pytest.mark.parametrize("snippet", ["python", "polars"])
def test_a_copied_snippet_runs_and_returns_the_promised_rows(site, browser, snippet) -> None:
    url, settings = site
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.goto(f"{url}/tables/neuro.sessions.html")
    promise = page.locator("text=Each snippet returns the rows where").inner_text()
    assert "task = cursor_control" in promise
    page.click(f"#snippet-{snippet} button.copy")
    # The label changes once the asynchronous clipboard write resolves: wait for it.
    expect(page.locator(f"#snippet-{snippet} button.copy")).to_have_text("Copied")
    code = page.evaluate("navigator.clipboard.readText()")
    context.close()

    check = "\nprint('TASKS', sorted(set(frame['task'])), 'ROWS', frame.height)\n"
    env = {
        **os.environ,
        "NEURALAKE_PROFILE": "local",
        "NEURALAKE_WAREHOUSE_URI": settings.warehouse_uri,
    }
    done = subprocess.run(
        [sys.executable, "-c", code + check], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "TASKS ['cursor_control'] ROWS 2"

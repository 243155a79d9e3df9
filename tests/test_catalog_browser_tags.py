"""Tags holding spaces filter the index in a real headless Chromium (opened from file://).

Needs Debian's Chromium at /usr/bin/chromium (``apt-get install chromium``).
"""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path

import pytest

import neuralake
from neuralake.catalog import Catalog, DeltalakeTable, ModuleDatabase
from neuralake.catalog.export import export_catalog
from neuralake.catalog.site import build_site

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install chromium"
)


def test_a_tag_with_spaces_selects_its_tables(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    module = types.ModuleType("tagged")
    module.visits = DeltalakeTable("visits", tags=["clinical data", "raw"])
    module.devices = DeltalakeTable("devices", tags=["clinical", "data"])  # the same words, apart
    module.__all__ = ["visits", "devices"]
    settings = dataclasses.replace(neuralake.settings("local"), warehouse_uri=tmp_path.as_uri())
    data = export_catalog(Catalog({"tagged": ModuleDatabase(module)}), "tagged", settings)
    index = build_site(data, tmp_path / "site")

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.goto(index.as_uri())
            page.click("button[data-tag='clinical data']")
            rows = page.locator("tr.table-row:visible td:first-child a").all_inner_texts()
            assert rows == ["visits"]
            page.click("button[data-tag='clinical data']")
            page.click("button[data-tag='data']")
            rows = page.locator("tr.table-row:visible td:first-child a").all_inner_texts()
            assert rows == ["devices"]
        finally:
            browser.close()

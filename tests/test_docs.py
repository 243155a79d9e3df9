"""The documentation site: it builds from the executed notebooks, every lesson page shows
its plots, no internal link is broken, nothing loads from off the site, and the API
reference covers the library's public modules.

The site is built from ``build/notebooks/``, which the notebook tests fill. A lesson
whose executed copy is missing, failed, or older than its source is run here first
(against the stack), so this file also works on its own.
"""

from __future__ import annotations

import ast
import base64
import functools
import html
import http.server
import json
import os
import re
import threading
import zipfile
import zlib
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
from browser import ARGS, CHROMIUM
from typer.testing import CliRunner

from neuralake.errors import NeuralakeError
from neuralake.lab import notebooks
from neuralake.lab.docs import cli as docs_cli
from neuralake.lab.docs import hooks as docsite_hooks
from neuralake.lab.docs import site as docsite

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def images(notebook: Path) -> int:
    """How many PNG or SVG outputs an executed notebook holds."""
    nb = nbformat.read(notebook, as_version=4)
    return sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if {"image/png", "image/svg+xml"} & set(out.get("data", {}))
    )


def usable(executed: Path, source: Path) -> bool:
    """An executed copy that ran without error after its source last changed."""
    if not executed.exists() or executed.stat().st_mtime < source.stat().st_mtime:
        return False
    nb = nbformat.read(executed, as_version=4)
    return not any(
        out.output_type == "error"
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )


class Links(HTMLParser):
    """Every ``href``/``src`` of a page, with the tag it sits on, and every ``id``."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str]] = []  # (tag, attribute, url)
        self.rel: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value is not None:
                self.links.append((tag, name, value))
            if name == "id" and value:
                self.ids.add(value)


@functools.cache
def parse(page: Path) -> Links:
    parser = Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def site(request: pytest.FixtureRequest) -> docsite.SiteReport:
    """The site, built into build/site/ from the executed lessons (run here if stale)."""
    stale = [
        lesson
        for lesson in notebooks.lessons()
        if not usable(notebooks.BUILD_DIR / lesson.name, lesson.with_suffix(".py"))
    ]
    if stale:
        request.getfixturevalue("stack_settings")  # the lessons need the running stack
        for lesson in stale:
            notebooks.run(lesson)
    report = docsite.build()
    print(f"site built in {report.seconds:.1f} s")
    return report


def pages() -> list[Path]:
    return sorted(docsite.SITE.rglob("*.html"))


@pytest.mark.stack
def test_site_builds_with_every_lesson_and_lab(site: docsite.SiteReport):
    assert site.index.exists()
    assert site.lessons == [p.stem for p in notebooks.lessons()]
    for lesson in site.lessons:
        assert (docsite.SITE / "lessons" / f"{lesson}.html").exists(), lesson
    from neuralake.lab.graders.build import find_labs

    assert len(site.labs) == len(find_labs())
    for lab in find_labs():
        text = _text(docsite.SITE / "labs" / f"{lab.stem}.html")
        cells = nbformat.read(lab, as_version=4).cells
        solutions = [c.source for c in cells if "solution" in c.metadata.get("tags", [])]
        assert text.count("# YOUR CODE HERE") >= len(solutions), f"{lab.stem}: no stubs"
        for solution in solutions:  # the code under the instructions must not be there
            code = [line for line in solution.splitlines() if line and not line.startswith("#")]
            assert " ".join(" ".join(code).split()) not in text, f"{lab.stem}: a solution shows"


@pytest.mark.stack
def test_every_lesson_page_has_its_plots(site: docsite.SiteReport):
    for lesson in site.lessons:
        expected = images(notebooks.BUILD_DIR / f"{lesson}.ipynb")
        if "matplotlib" in (ROOT / "notebooks" / f"{lesson}.py").read_text():
            assert expected, f"{lesson} plots, but its executed copy holds no image"
        page = docsite.SITE / "lessons" / f"{lesson}.html"
        shown = [
            url
            for tag, _, url in parse(page).links
            if tag == "img" and url.startswith(("data:image/png;base64,", "data:image/svg"))
        ]
        assert len(shown) >= expected, f"{lesson}: {len(shown)} images shown of {expected}"
        pngs = [u for u in shown if u.startswith("data:image/png")]
        assert all(base64.b64decode(u.split(",", 1)[1])[:8] == PNG for u in pngs), lesson


@pytest.mark.stack
def test_no_internal_link_is_broken(site: docsite.SiteReport):
    broken = broken_links(docsite.SITE)
    assert not broken, f"{len(broken)} broken links, e.g. {broken[:5]}"


def broken_links(root: Path) -> list[str]:
    """Every link of every page of the site in ``root`` to a file or an anchor it lacks."""
    broken = []
    for page in sorted(root.rglob("*.html")):
        for _, _, url in parse(page).links:
            parts = urlsplit(url)
            if parts.scheme or parts.netloc or url.startswith("data:"):
                continue
            base = root if parts.path.startswith("/") else page.parent  # 404.html
            path = unquote(parts.path).lstrip("/")
            target = (base / path).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(root)} -> {url}")
            elif (
                parts.fragment
                and target.suffix == ".html"
                and unquote(parts.fragment) not in parse(target).ids
            ):
                broken.append(f"{page.relative_to(root)} -> {url} (no such anchor)")
    return broken


@pytest.mark.stack
def test_nothing_loads_from_off_the_site(site: docsite.SiteReport):
    """Scripts, styles, images and frames come from the site itself: it works offline."""
    loaded = {"script", "link", "img", "iframe", "source", "audio", "video"}
    off_site = []
    for page in pages():
        for tag, attribute, url in parse(page).links:
            is_asset = tag in loaded and not (tag == "link" and attribute != "href")
            if is_asset and tag == "link" and "stylesheet" not in _rel(page, url):
                continue
            if is_asset and urlsplit(url).scheme in ("http", "https"):
                off_site.append(f"{page.relative_to(docsite.SITE)}: <{tag}> {url}")
        text = page.read_text(encoding="utf-8")
        for marker in ("fonts.googleapis.com", "cdnjs.cloudflare.com", "cdn.jsdelivr.net"):
            if marker in text:
                off_site.append(f"{page.relative_to(docsite.SITE)}: {marker}")
    for css in docsite.SITE.rglob("*.css"):
        if "url(http" in css.read_text(encoding="utf-8").replace(" ", ""):
            off_site.append(f"{css.relative_to(docsite.SITE)}: url(http...)")
    assert not off_site, off_site[:5]


def _rel(page: Path, url: str) -> str:
    """The ``rel`` of the ``<link>`` in ``page`` that points at ``url``."""
    text = page.read_text(encoding="utf-8")
    at = text.find(f'href="{url}"')
    start = text.rfind("<link", 0, at)
    return text[start:at] + text[at : text.find(">", at)]


@pytest.mark.stack
def test_api_reference_has_the_public_modules(site: docsite.SiteReport):
    modules = docsite.public_modules()
    for required in ("neuralake.settings", "neuralake.delta", "neuralake.catalog"):
        assert required in modules
    assert set(site.api_modules) == set(modules)
    for module in modules:
        page = docsite.SITE / "reference" / f"{module}.html"
        doc = _module_docstring(module)
        if doc:
            first = doc.strip().splitlines()[0].split("``")[0].split("`")[0][:30]
            assert first in _text(page), f"{module}: its docstring is not on its page"


def _module_docstring(module: str) -> str | None:
    path = ROOT / Path(*module.split("."))
    source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    return ast.get_docstring(ast.parse(source.read_text(encoding="utf-8")))


def _text(page: Path) -> str:
    """A page's visible text, whitespace collapsed."""

    class Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.parts: list[str] = []

        def handle_data(self, data: str) -> None:
            self.parts.append(data)

    parser = Text()
    parser.feed(page.read_text(encoding="utf-8"))
    return " ".join(" ".join(parser.parts).split())


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served(site: docsite.SiteReport) -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(docsite.SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.stack
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
def test_lesson_page_in_chromium_shows_its_plot_and_asks_nothing_off_site(
    served: str, site: docsite.SiteReport, tmp_path: Path
):
    from playwright.sync_api import sync_playwright

    lesson = next(name for name in site.lessons if images(notebooks.BUILD_DIR / f"{name}.ipynb"))
    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda r: requested.append(r.url))
        page.goto(f"{served}/lessons/{lesson}.html", wait_until="networkidle")
        plot = page.locator(".jupyter-wrapper img[src^='data:image/png']").first
        plot.scroll_into_view_if_needed()
        width = plot.evaluate("img => img.naturalWidth")
        plot.screenshot(path=str(tmp_path / "plot.png"))
        page.goto(f"{served}/index.html", wait_until="networkidle")
        # The search index loads in a web worker; a query typed before it is ready is lost.
        page.wait_for_function(
            "() => !/Initializing/.test("
            "document.querySelector('.md-search-result__meta')?.textContent ?? 'Initializing')",
            timeout=30_000,
        )
        search = page.locator("input.md-search__input")
        search.click()
        search.press_sequentially("delta", delay=50)  # key events, as a person types
        results = page.locator(".md-search-result__item")
        results.first.wait_for(state="attached", timeout=20_000)
        browser.close()
    assert width > 100, f"the first plot of {lesson} did not render"
    off_site = [u for u in requested if not u.startswith((served, "data:"))]
    assert not off_site, off_site[:5]


@pytest.mark.stack
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
def test_executed_lesson_pages_fit_code_figures_and_anchors_at_1400px(
    served: str, site: docsite.SiteReport
):
    """At 1400 px every code line of up to 100 characters fits, every figure shows at its
    drawn width (or the page's) with a description, every contents link finds its heading."""
    paths = [f"lessons/{name}.html" for name in site.lessons]
    problems = chromium_problems(served, paths)
    assert not problems, problems[:8]


LAYOUT = """() => {
  const longest = p => Math.max(...p.textContent.split('\\n').map(l => l.length));
  const code = [...document.querySelectorAll('.jupyter-wrapper .jp-InputArea pre')];
  const scrolls = code.filter(p => longest(p) <= 100 && p.scrollWidth > p.clientWidth + 1);
  const toc = [...document.querySelectorAll('.md-sidebar--primary a.md-nav__link[href^="#"]')];
  const figures = [...document.querySelectorAll('.jupyter-wrapper .jp-OutputArea-output img')];
  return {
    code: code.length,
    scrolls: scrolls.map(p => p.textContent.split('\\n')[0].slice(0, 60)),
    toc: toc.length,
    unanchored: toc.map(a => decodeURIComponent(a.hash.slice(1)))
                   .filter(id => !document.getElementById(id)),
    figures: figures.map(i => ({
      shown: i.clientWidth, drawn: i.naturalWidth, alt: i.alt,
      room: i.closest('.jp-OutputArea-output').clientWidth})),
  };
}"""
DEFAULT_ALT = "No description has been provided for this image"


def chromium_problems(served: str, paths: list[str]) -> list[str]:
    """What is wrong with each page at 1400 x 900 in Chromium: code lines of at most 100
    characters that scroll sideways, contents links without a heading, figures shrunk
    below their drawn width or the page's, or without a description."""
    from playwright.sync_api import sync_playwright

    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        for path in paths:
            page.goto(f"{served}/{path}", wait_until="load")
            found = page.evaluate(LAYOUT)
            problems += [f"{path}: code scrolls: {line!r}" for line in found["scrolls"]]
            problems += [f"{path}: no heading {anchor!r}" for anchor in found["unanchored"]]
            for fig in found["figures"]:
                if fig["shown"] + 2 < min(fig["drawn"], fig["room"]) or fig["room"] < 900:
                    problems.append(f"{path}: a figure drawn {fig['drawn']} px shows at {fig}")
                if not fig["alt"] or fig["alt"] == DEFAULT_ALT:
                    problems.append(f"{path}: a figure has no description")
        browser.close()
    return problems


# -- built from the lessons' sources, no stack --------------------------------------------


@pytest.fixture(scope="module")
def draft_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make labs`` then ``make docs --no-run`` on a fresh clone (about 20 s): the build
    folder holds one tiny executed copy, of lesson 00's title cell, that ran 75.4 s; every
    other lesson is published from its source."""
    tmp = tmp_path_factory.mktemp("draft")
    (tmp / "notebooks").mkdir()
    first = notebooks.lessons()[0]
    end = "2026-01-02T03:04:05.678901"
    _executed(first, tmp / "notebooks" / first.name, end_time=end, duration=75.4)
    from neuralake.lab.graders.cli import app as labs_app

    bundled = CliRunner().invoke(labs_app, ["bundle", "--out", str(tmp / "classroom")])
    assert bundled.exit_code == 0, bundled.output
    args = ["build", "--notebooks", tmp / "notebooks", "--out"]  # labs: into build/labs/
    args += [tmp / "site", "--bundle", tmp / "classroom" / "neuralake-labs.zip", "--no-run"]
    done = CliRunner().invoke(docs_cli.app, [str(a) for a in args])
    assert done.exit_code == 0, done.output
    assert f"{len(notebooks.lessons())} lessons ({len(notebooks.lessons()) - 1} without" in (
        done.output
    )
    return tmp / "site"


@pytest.fixture(scope="module")
def draft_served(draft_site: Path) -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(draft_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_fresh_clone_builds_with_every_lesson_marked_unexecuted(draft_site: Path):
    first, *others = notebooks.lessons()
    for lesson in others:
        text = _text(draft_site / "lessons" / f"{lesson.stem}.html")
        assert "Not executed This page shows the lesson without its outputs" in text, lesson
    assert "Not executed" not in _text(draft_site / "lessons" / f"{first.stem}.html")
    run_times = (draft_site.parent / "docs_src" / "run-times.md").read_text()
    assert f"| {first.stem} | 75.4 |" in run_times
    assert not [p for p in others if f"| {p.stem} |" in run_times]


def test_a_lesson_page_says_under_its_title_when_it_ran_and_how_long(draft_site: Path):
    first = notebooks.lessons()[0]
    text = _text(draft_site / "lessons" / f"{first.stem}.html")
    title = docsite.title(first)
    assert f"{title} ¶ Executed 2026-01-02 03:04 UTC in 75 s (papermill)" in text


def test_every_lesson_and_lab_page_offers_its_notebook_and_jupyterlab(draft_site: Path):
    """The download is the lesson without outputs, or the lab's student version; the zip
    holds every lab; the JupyterLab link names a notebook that is in the project."""
    from neuralake.lab.graders.build import find_labs

    pages = {f"lessons/{p.stem}.html": p for p in notebooks.lessons()}
    pages |= {f"labs/{p.stem}.html": p for p in find_labs()}
    for path, source in pages.items():
        page = draft_site / path
        links = [url for tag, _, url in parse(page).links if tag == "a"]
        download = page.parent / "download" / source.name
        assert f"download/{source.name}" in links, f"{path}: no download link"
        cells = nbformat.read(download, as_version=4).cells
        assert not [c for c in cells if c.cell_type == "code" and c.outputs], path
        lab = [u for u in links if u.startswith(f"{docsite.JUPYTERLAB}/lab/tree/")]
        assert len(lab) == 1, f"{path}: {len(lab)} JupyterLab links"
        opened = ROOT / lab[0].removeprefix(f"{docsite.JUPYTERLAB}/lab/tree/")
        assert opened.exists(), f"{path}: JupyterLab would open {opened}, which is not there"
        if path.startswith("labs/"):
            assert "# YOUR CODE HERE" in download.read_text(), f"{path}: not the student one"
            assert "../downloads/neuralake-labs.zip" in links, f"{path}: no zip link"
        else:
            assert [c.source for c in cells] == [
                c.source for c in nbformat.read(source, as_version=4).cells
            ], f"{path}: the download is not the lesson"
    with zipfile.ZipFile(draft_site / "downloads" / "neuralake-labs.zip") as bundle:
        names = bundle.namelist()
    assert len([n for n in names if n.endswith(".ipynb")]) == len(find_labs()), names


def test_notebook_styles_are_served_once_not_in_every_page(draft_site: Path):
    notebook_pages = sorted((draft_site / "lessons").glob("*.html"))
    notebook_pages += sorted((draft_site / "labs").glob("*.html"))
    styles = sorted((draft_site / "assets" / "notebook").glob("*.css"))
    assert sum(p.stat().st_size for p in styles) > 500_000, "the notebook styles are missing"
    for page in notebook_pages:
        text = page.read_text(encoding="utf-8")
        inline = [m for m in re.findall(r"<style[^>]*>(.*?)</style>", text, re.DOTALL)]
        assert max(map(len, inline), default=0) < 2000, f"{page.name} inlines its styles"
        assert all(f"../assets/notebook/{css.name}" in text for css in styles), page.name
        assert page.stat().st_size < 450_000, f"{page.name}: {page.stat().st_size} bytes"


def test_api_pages_show_no_raw_sphinx_roles_and_link_what_they_name(draft_site: Path):
    raw = [
        f"{page.relative_to(draft_site)}: {role}"
        for page in draft_site.rglob("*.html")
        for role in re.findall(
            r":(?:func|class|meth|mod|data|attr|exc):<code>[^<]*", page.read_text()
        )
    ]
    assert not raw, f"{len(raw)} raw roles, e.g. {raw[:3]}"
    linked = re.findall(
        r'<a class="autorefs" href="([^"]+)"><code>',
        (draft_site / "reference" / "neuralake.lab.graders.checks.html").read_text(),
    )
    assert linked, "the roles of neuralake.lab.graders.checks link nowhere"
    index = (draft_site / "search" / "search_index.json").read_text()
    assert not re.search(r":(func|class|meth|mod):<code>", index)


def test_the_navigation_names_every_page_by_its_title(draft_site: Path):
    """No entry is a bare file name (the benchmark report's table fragment was 'table')."""
    nav = re.findall(
        r'<a href="([^"#]+)" class="md-nav__link">\s*<span class="md-ellipsis">\s*([^<]+?)\s*<',
        (draft_site / "index.html").read_text(),
    )
    assert len(nav) > 20, nav
    pages = [(href, name) for href, name in nav if not href.startswith("reference/")]
    bare = [(href, name) for href, name in pages if name == Path(href).stem]
    assert not bare, bare
    # A guide is listed under its own first heading; the home page as "Start here" (seen
    # from another page: a page's own entry is drawn as the active one).
    elsewhere = re.findall(
        r'<a href="([^"#]+)" class="md-nav__link">\s*<span class="md-ellipsis">\s*([^<]+?)\s*<',
        (draft_site / "glossary.html").read_text(),
    )
    assert ("index.html", "Start here") in elsewhere, elsewhere
    assert ("runbook.html", "Runbook: the stack died mid-lesson") in elsewhere, elsewhere


def test_a_fresh_build_has_no_broken_link(draft_site: Path):
    broken = broken_links(draft_site)
    assert not broken, f"{len(broken)} broken links, e.g. {broken[:5]}"


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
def test_lesson_and_lab_pages_in_chromium_fit_their_code_and_find_their_headings(
    draft_served: str,
):
    """Every lesson and lab page at 1400 px: no code line of 100 characters or fewer
    scrolls sideways, every link of the page's contents finds its heading."""
    from neuralake.lab.graders.build import find_labs

    paths = [f"lessons/{p.stem}.html" for p in notebooks.lessons()]
    paths += [f"labs/{p.stem}.html" for p in find_labs()]
    assert not chromium_problems(draft_served, paths)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
def test_dark_mode_and_previous_next_links_work_offline(draft_served: str):
    from playwright.sync_api import sync_playwright

    lesson = notebooks.lessons()[1].stem
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        requested: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        page.goto(f"{draft_served}/lessons/{lesson}.html", wait_until="networkidle")
        scheme = "document.body.getAttribute('data-md-color-scheme')"
        assert page.evaluate(scheme) == "default"
        page.locator("label.md-header__button[for^='__palette']:visible").first.click()
        assert page.evaluate(scheme) == "slate"
        text = page.evaluate(
            "getComputedStyle(document.querySelector('.jupyter-wrapper .jp-RenderedMarkdown"
            " p')).color"
        )
        footer = page.locator("a.md-footer__link").all()
        hrefs = [link.get_attribute("href") for link in footer]
        page.locator("a.md-footer__link--next").click()
        page.wait_for_load_state("load")
        landed = page.url
        browser.close()
    assert _lightness(text) > 0.6, f"dark mode keeps dark text in notebooks: {text}"
    assert len(hrefs) == 2, hrefs  # previous and next
    assert landed.endswith(f"lessons/{notebooks.lessons()[2].stem}.html"), landed
    assert all(u.startswith(draft_served) for u in requested), requested[:5]


def _lightness(css_color: str) -> float:
    """0 (black) to 1 (white), from ``rgb(...)``/``rgba(...)``."""
    r, g, b = (int(x) for x in re.findall(r"[\d.]+", css_color)[:3])
    return (max(r, g, b) + min(r, g, b)) / 2 / 255


def _executed(source: Path, target: Path, **papermill: object) -> None:
    """A tiny stand-in for papermill's copy of a lesson: its first cell, and metadata."""
    nb = nbformat.read(source, as_version=4)
    nb.cells = nb.cells[:1]
    nb.metadata["papermill"] = papermill
    nbformat.write(nb, target)


def test_docs_build_plans_to_run_the_lessons_without_a_good_executed_copy(tmp_path: Path):
    lessons = notebooks.lessons()
    plan = CliRunner().invoke(docs_cli.app, ["build", "--notebooks", str(tmp_path), "--plan"])
    assert plan.exit_code == 0, plan.output
    assert f"{len(lessons)} of {len(lessons)} lessons have no up-to-date" in plan.output
    assert "running them first" in plan.output
    assert all(f"{p.stem}: no executed copy" in plan.output for p in lessons)

    ok, failed, stale = lessons[:3]
    _executed(ok, tmp_path / ok.name, end_time="2026-01-01T00:00:00", duration=1.0)
    _executed(failed, tmp_path / failed.name, end_time="2026-01-01T00:00:00", exception=True)
    _executed(stale, tmp_path / stale.name, end_time="2026-01-01T00:00:00")
    os.utime(tmp_path / stale.name, (0, 0))
    todo = dict((p.stem, why) for p, why in docsite.plan(tmp_path))
    assert ok.stem not in todo
    assert todo[failed.stem] == "failed"
    assert todo[stale.stem] == "older than the lesson"
    assert len(todo) == len(lessons) - 1


def test_a_build_without_executed_lessons_names_both_ways_out(tmp_path: Path):
    with pytest.raises(NeuralakeError, match=r"runs it first.*--no-run"):
        docsite.build(notebooks_dir=tmp_path, site_dir=tmp_path / "site")


def grader_modules() -> list[str]:
    """The labs' graders, found from the files: ``neuralake/lab/graders/labNN.py`` and lab 02's."""
    labs = ROOT / "neuralake" / "lab" / "graders"
    found = [f"neuralake.lab.graders.{p.stem}" for p in sorted(labs.glob("lab[0-9][0-9]*.py"))]
    return [*found, "neuralake.lab.graders.catalog_checks"]


def docstrings(module: str) -> list[str]:
    """Every docstring of a module (its own, its classes' and functions'), one line each."""
    tree = ast.parse((ROOT / Path(*module.split("."))).with_suffix(".py").read_text())
    nodes = [tree] + [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)]
    found = (ast.get_docstring(n) for n in nodes)
    return [" ".join(doc.split()) for doc in found if doc]


def test_the_labs_graders_are_not_in_the_site_nor_its_search(draft_site: Path):
    """A grader's builders tell each exercise's story and its checks compute the answer:
    no page, navigation entry, search entry or cross-reference inventory may hold them."""
    graders = grader_modules()
    assert len(graders) >= 6, graders
    assert not set(graders) & set(docsite.public_modules())
    pages = sorted(draft_site.rglob("*.html"))
    assert len(pages) > 50, "the site did not build"
    for module in graders:
        assert not (draft_site / "reference" / f"{module}.html").exists(), module
        naming = [p.name for p in pages if f'"reference/{module}.html"' in p.read_text()]
        assert not naming, f"{module} is linked from {naming[:3]}"
    index = json.loads((draft_site / "search" / "search_index.json").read_text())
    entries = [
        (doc["location"], html.unescape(" ".join(re.sub(r"<[^>]+>", " ", doc["text"]).split())))
        for doc in index["docs"]
    ]
    assert len(entries) > 100, "the search index is nearly empty"
    for module in graders:
        assert not [loc for loc, _ in entries if module in loc], f"{module} is in the search"
        for doc in docstrings(module):
            told = [loc for loc, text in entries if doc[:80] in text]
            assert not told, f"{module}'s docstring {doc[:60]!r} is searchable at {told[:2]}"
    inventory = zlib.decompress(
        (draft_site / "objects.inv").read_bytes().split(b"\n", 4)[4]
    ).decode()
    assert not [m for m in graders if m in inventory], "a grader is in objects.inv"


# -- pure parts, no stack ----------------------------------------------------------------


def test_hook_drops_off_site_scripts_and_keeps_the_site_s_own():
    page = (
        '<script src="assets/javascripts/bundle.js"></script>'
        '<script src=""> </script>'
        '<script type="module">import("https://cdnjs.cloudflare.com/x.mjs")</script>'
        "<script>var local = 1;</script>"
    )
    kept = docsite_hooks.on_post_page(page, page=None, config=None)
    assert (
        kept
        == '<script src="assets/javascripts/bundle.js"></script><script>var local = 1;</script>'
    )


def test_run_times_come_from_papermill_metadata(tmp_path):
    cells = [nbformat.v4.new_code_cell("a"), nbformat.v4.new_code_cell("b")]
    for cell, seconds in zip(cells, (1.25, 3.5), strict=True):
        cell.metadata["papermill"] = {"duration": seconds}
    done = nbformat.v4.new_notebook(cells=cells)
    done.metadata["papermill"] = {"duration": 6.0, "end_time": "2026-01-02T03:04:05.6"}
    failed = nbformat.v4.new_notebook(cells=cells)
    failed.metadata["papermill"] = {"duration": 2.0, "exception": True, "end_time": "x"}
    nbformat.write(done, tmp_path / "00_done.ipynb")
    nbformat.write(failed, tmp_path / "01_failed.ipynb")
    rows = docsite.run_times([tmp_path / "00_done.ipynb", tmp_path / "01_failed.ipynb"])
    assert rows[0] | {"ran_at": ""} == {
        "notebook": "00_done",
        "run_s": 6.0,
        "cells_s": 4.8,
        "slowest_cell_s": 3.5,
        "code_cells": 2,
        "status": "ok",
        "ran_at": "",
    }
    assert rows[0]["ran_at"] == "2026-01-02 03:04:05"
    assert rows[1]["status"] == "failed"


def test_api_reference_leaves_out_the_command_line_wrappers():
    modules = docsite.public_modules()
    assert "neuralake.settings" in modules and "neuralake.lab.graders.grade" in modules
    assert not [m for m in modules if m.endswith((".cli", "docs_cli", "__main__"))]


def test_a_lesson_that_fails_while_docs_build_runs_it_stops_the_build(tmp_path, monkeypatch):
    """The command's flow only (unit test): the stack start and papermill are stand-ins."""
    from papermill import PapermillExecutionError

    from neuralake.lab.stack import control

    ran: list[str] = []

    def fails(lesson: Path, out_dir: Path) -> tuple[Path, float]:
        ran.append(lesson.stem)
        raise PapermillExecutionError(3, 3, "x", "ValueError", "boom", [])

    monkeypatch.setattr(control, "up", lambda *args, **kwargs: [])
    monkeypatch.setattr(notebooks, "run", fails)
    done = CliRunner().invoke(docs_cli.app, ["build", "--notebooks", str(tmp_path)])
    assert ran == [p.stem for p in notebooks.lessons()]
    assert isinstance(done.exception, NeuralakeError)
    assert f"{len(ran)} lesson(s) failed: {ran[0]}, " in str(done.exception)
    assert "--allow-failed" in str(done.exception)
    assert f"{ran[0]}.ipynb" in done.output and "failed in cell 3: ValueError" in done.output

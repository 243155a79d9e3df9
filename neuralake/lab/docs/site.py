"""Build the documentation site from the executed notebooks: ``neuralake docs build``.

The site is plain static HTML made by mkdocs with three plugins: mkdocs-material (the
theme), mkdocs-jupyter (renders each executed notebook, outputs and plots included, as a
page) and mkdocstrings (the API reference, read from the library's docstrings). All
three are pure Python and installed with the lab, so the site builds offline, in CI, on
a student's laptop. Jupyter Book and mystmd were the alternatives: both render
notebooks well, but mystmd needs Node.js and Jupyter Book 2 is built on it.

What goes in, into a staging folder (``build/docs_src/``):

- the guides in ``docs/`` (glossary, troubleshooting, teacher guide, formats...);
- ``build/notebooks/*.ipynb``: the lessons as papermill executed them (``make run``;
  ``neuralake docs build`` runs the missing ones first, see :mod:`neuralake.lab.docs.cli`);
- ``build/labs/*/*.ipynb``: the labs' student versions (built afresh here);
- the generated catalog site (``build/catalog_site/``, written by lesson 02, or
  generated here with ``neuralake catalog site``), served as is under ``catalog/``;
- ``docs/benchmarks/`` when the benchmark report is there;
- one API reference page per public module (not the labs' graders: they hold the
  answers), and a run-times page computed from the
  cell durations papermill recorded in the executed copies.

Each lesson's page says under its title when and how long it ran (papermill's
metadata) and links to a download of the lesson and to JupyterLab; each lab's page links
to its student notebook and, once ``make labs`` built it, to the zip of all labs.

Then ``mkdocs build --strict`` writes ``build/site/``. Nothing is fetched at build or
view time: the theme's Google fonts are off (``theme.font: false``), and the CDN
scripts nbconvert adds to every notebook page (MathJax, Mermaid, which the lessons do
not use) are removed by :mod:`neuralake.lab.docs.hooks`, the mkdocs hooks that also
fix what the theme and nbconvert leave on the pages. Pages are files
(``use_directory_urls: false``), so the site works from any static file server, and
from ``file://`` except for its search.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from neuralake.errors import NeuralakeError
from neuralake.lab import notebooks
from neuralake.settings import project_dir

ROOT = project_dir()
BUILD = ROOT / "build"
STAGING = BUILD / "docs_src"
SITE = BUILD / "site"
CONFIG = ROOT / "mkdocs.yml"

# The guides, in the order the navigation shows them, each under its own first heading
# (the home page as "Start here"); a missing one is left out.
GUIDES = [
    "index.md",
    "troubleshooting.md",
    "glossary.md",
    "catalog.md",
    "streaming.md",
    "monitoring.md",
]
TEACHING = ["teacher-guide.md", "runbook.md", "lab-format.md", "lesson-frame.md", "run-times.md"]
# Modules the API reference leaves out: command-line wrappers and the entry point.
NOT_API = re.compile(r"(^|\.)(cli|__main__)(\.|$)|^neuralake\.lab\.docs\b|\._")
# The labs' graders (``neuralake.lab.graders.lab01`` ...): their builders script each exercise's
# story and their checks compute the answer, so publishing them would publish the
# solutions. They stay out of the site and its search index; students meet them only
# through the check cells and their hints.
GRADERS = re.compile(r"^neuralake\.lab\.graders\.(lab\d\d\w*|catalog_checks)$")

CATALOG_PAGE = """# The catalog site

`neuralake catalog site` generates a static website from the catalog's Python code:
an index with search and tag filters, and one page per table with its schema, quality
checks, freshness, lineage and copy-paste snippets (lesson 02, section 9).

[Open the catalog site](catalog/index.html){ .md-button }

This copy was generated from `neuralake.catalog.examples.neuro` when the site was built.
"""

# Under the title of a lesson published from its source (``neuralake docs build --no-run``).
UNEXECUTED_NOTE = (
    '<div class="admonition warning unexecuted"><p class="admonition-title">Not executed</p>'
    "<p>This page shows the lesson without its outputs: it had no executed copy when the "
    "site was built. Run <code>make run</code>, then <code>make docs</code>, to publish "
    "it with every output and plot.</p></div>"
)

# Where `make lab` serves JupyterLab, rooted at the project folder.
JUPYTERLAB = "http://127.0.0.1:8888"


@dataclass(frozen=True)
class SiteReport:
    """What :func:`build` made: the site's index, its pages, and how long it took."""

    index: Path
    lessons: list[str]
    unexecuted: list[str]  # lessons published from their source, without outputs
    labs: list[str]
    api_modules: list[str]
    seconds: float


def plan(notebooks_dir: Path = BUILD / "notebooks") -> list[tuple[Path, str]]:
    """The lessons to execute before the site is built, each with the reason: its copy in
    ``notebooks_dir`` is missing, failed, did not finish, or is older than the lesson."""
    todo = []
    for lesson in notebooks.lessons():
        copy = notebooks_dir / lesson.name
        status = _status(_papermill(copy)) if copy.exists() else "no executed copy"
        if status == "ok" and copy.stat().st_mtime < _edited(lesson):
            status = "older than the lesson"
        if status != "ok":
            todo.append((lesson, status))
    return todo


def _edited(lesson: Path) -> float:
    """When a lesson last changed: its notebook or its jupytext ``.py`` twin."""
    pair = [lesson, lesson.with_suffix(".py")]
    return max(p.stat().st_mtime for p in pair if p.exists())


def _papermill(notebook: Path) -> dict:
    return nbformat.read(notebook, as_version=4).metadata.get("papermill", {})


def build(
    notebooks_dir: Path = BUILD / "notebooks",
    labs_dir: Path = BUILD / "labs",
    site_dir: Path = SITE,
    catalog_site: Path = BUILD / "catalog_site",
    bundle: Path = BUILD / "classroom" / "neuralake-labs.zip",
    allow_failed: bool = False,
    unexecuted: bool = False,
    staging: Path | None = None,
) -> SiteReport:
    """Collect everything into the staging folder and run ``mkdocs build --strict``.

    A lesson without a successful executed copy in ``notebooks_dir`` (missing, failed,
    or unfinished) stops the build, as its page would be missing or show a traceback,
    unless ``unexecuted`` (the page shows the lesson's source without outputs, under a
    note that says so) or ``allow_failed`` (a failed copy is published as it is, a
    missing lesson left out). The pages are staged in ``staging``, by default
    ``docs_src/`` next to ``site_dir``.
    """
    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.config import load_config
    from mkdocs.exceptions import Abort

    started = time.perf_counter()
    lessons, sources = _lessons(notebooks_dir, allow_failed, unexecuted)
    staging = staging or site_dir.parent / STAGING.name
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    _copy_guides(ROOT / "docs", staging)
    _dark_notebook_css(staging / "stylesheets" / "notebook-dark.css")
    lesson_nav = _stage_lessons(lessons, staging, sources)
    lab_nav = _stage_labs(_student_labs(labs_dir), staging, bundle)
    catalog = _catalog_site(catalog_site, staging / "catalog")
    executed = [p for p in lessons if p not in sources]
    (staging / "run-times.md").write_text(run_times_page(executed), encoding="utf-8")
    api_modules = public_modules()
    api_nav = _api_reference(staging, api_modules)

    nav: list[Any] = _pages(GUIDES, staging) + _other_guides(staging)
    nav.append({"Lessons": lesson_nav})
    nav.append({"Labs (student versions)": lab_nav})
    if catalog:
        nav.append({"Catalog site": "catalog-site.md"})
    benchmarks, fragments = _benchmarks_nav(staging, "benchmarks")
    if benchmarks:
        nav.append({"Benchmarks": benchmarks})
    nav.append({"For teachers": _pages(TEACHING, staging)})
    nav.append({"API reference": api_nav})
    config = load_config(
        str(CONFIG),
        docs_dir=str(staging),
        site_dir=str(site_dir),
        nav=nav,
        not_in_nav="\n".join(fragments),
        strict=True,
    )
    with _warnings() as warnings:
        try:
            mkdocs_build(config)
        except Abort as err:
            first = warnings[0] if warnings else str(err)
            raise NeuralakeError(
                f"mkdocs --strict stopped on {len(warnings)} warning(s), first: {first}"
            ) from err
    return SiteReport(
        index=site_dir / "index.html",
        lessons=[p.stem for p in lessons],
        unexecuted=sorted(p.stem for p in sources),
        labs=[next(iter(entry.values())) for entry in lab_nav],
        api_modules=api_modules,
        seconds=time.perf_counter() - started,
    )


def _lessons(
    notebooks_dir: Path, allow_failed: bool, unexecuted: bool
) -> tuple[list[Path], set[Path]]:
    """The notebook to publish for each lesson, and which of them are unexecuted sources."""
    chosen, sources = [], set()
    for lesson in notebooks.lessons():
        copy = notebooks_dir / lesson.name
        status = _status(_papermill(copy)) if copy.exists() else "missing"
        if status == "ok" or (allow_failed and status != "missing" and not unexecuted):
            chosen.append(copy)
        elif unexecuted:
            chosen.append(lesson)
            sources.add(lesson)
        elif not allow_failed:
            raise NeuralakeError(
                f"lesson {lesson.stem} has no successful executed copy in {notebooks_dir} "
                f"({status}): `neuralake docs build` runs it first, `neuralake docs build "
                "--no-run` publishes the lesson without its outputs"
            )
    if not chosen:
        raise NeuralakeError(
            f"no executed lessons in {notebooks_dir}: `neuralake docs build` runs them "
            "first, `neuralake docs build --no-run` publishes them without outputs"
        )
    return chosen, sources


@contextmanager
def _warnings() -> Iterator[list[str]]:
    """Collect the warnings mkdocs logs, to say in one line why a strict build stopped."""
    found: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            found.append(" ".join(record.getMessage().split()))

    handler = Collect(logging.WARNING)
    logger = logging.getLogger("mkdocs")
    logger.addHandler(handler)
    try:
        yield found
    finally:
        logger.removeHandler(handler)


def _pages(names: list[str], staging: Path) -> list[dict[str, str]]:
    """Navigation entries for the pages that exist, each titled by its first heading."""
    pages = [staging / name for name in names if (staging / name).exists()]
    return [{"Start here" if p.name == "index.md" else _markdown_title(p): p.name} for p in pages]


def _other_guides(staging: Path) -> list[dict[str, str]]:
    """Guides in ``docs/`` that ``GUIDES`` and ``TEACHING`` do not name."""
    named = {*GUIDES, *TEACHING, "catalog-site.md"}
    return _pages(sorted(p.name for p in staging.glob("*.md") if p.name not in named), staging)


def _copy_guides(docs: Path, staging: Path) -> None:
    """Every Markdown guide and image under ``docs/`` (the benchmark report included)."""
    for source in docs.rglob("*"):
        if source.is_file():
            target = staging / source.relative_to(docs)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _dark_notebook_css(target: Path) -> None:
    """mkdocs-jupyter's dark notebook colours, applied when the reader picks the dark
    palette (its pages otherwise keep dark text on the dark background)."""
    import mkdocs_jupyter

    assets = Path(mkdocs_jupyter.__file__).parent / "templates" / "mkdocs_html" / "assets"
    css = (assets / "theme-dark.css").read_text(encoding="utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        css.replace(".jupyter-wrapper", "[data-md-color-scheme=slate] .jupyter-wrapper"),
        encoding="utf-8",
    )


def _stage_lessons(
    lessons: list[Path], staging: Path, unexecuted: Collection[Path]
) -> list[dict[str, str]]:
    """Each lesson's page (``lessons/NN.ipynb``) with a line under its title: when and how
    long it ran (or a note that it did not), a download of the lesson, and a link that
    opens it in the JupyterLab ``make lab`` serves. The download is the lesson as the
    repository has it, without outputs (``lessons/download/``)."""
    runs = {row["notebook"]: row for row in run_times([p for p in lessons if p not in unexecuted])}
    nav = []
    for lesson in lessons:
        source = notebooks.NOTEBOOK_DIR / lesson.name
        links = [
            _download(f"download/{lesson.name}", "Download the notebook"),
            _jupyterlab(source),
        ]
        if lesson in unexecuted:
            header = UNEXECUTED_NOTE + _meta(links)
        else:
            row = runs[lesson.stem]
            ran = f"Executed {row['ran_at'][:16]} UTC in {_duration(row['run_s'])} (papermill)"
            header = _meta([ran, *links])
        _stage_page(lesson, staging / "lessons" / lesson.name, header)
        _stage_download(source, staging / "lessons" / "download" / lesson.name)
        nav.append({title(lesson): f"lessons/{lesson.name}"})
    return nav


def _stage_labs(labs: list[Path], staging: Path, bundle: Path) -> list[dict[str, str]]:
    """Each student lab's page, with a line under its title: a download of the student
    notebook, of every lab as one zip when ``make labs`` built it, and a JupyterLab link."""
    if bundle.exists():
        _stage_download(bundle, staging / "downloads" / bundle.name)
    nav = []
    for lab in labs:
        links = [_download(f"download/{lab.name}", "Download the student notebook")]
        if bundle.exists():
            links.append(_download(f"../downloads/{bundle.name}", "All labs (zip)"))
        links.append(_jupyterlab(lab))
        _stage_page(lab, staging / "labs" / lab.name, _meta(links))
        _stage_download(lab, staging / "labs" / "download" / lab.name)
        nav.append({title(lab): f"labs/{lab.name}"})
    return nav


def _meta(parts: list[str]) -> str:
    return '<p class="nl-meta">' + " · ".join(p for p in parts if p) + "</p>"


def _download(href: str, text: str) -> str:
    return f'<a href="{href}" download>{text}</a>'


def _jupyterlab(notebook: Path) -> str:
    """A link that opens ``notebook`` in ``make lab``'s JupyterLab, which serves the
    project folder (none for a notebook outside it)."""
    if not notebook.resolve().is_relative_to(ROOT):
        return ""
    path = notebook.resolve().relative_to(ROOT).as_posix()
    return f'<a href="{JUPYTERLAB}/lab/tree/{path}">Open in JupyterLab</a> (<code>make lab</code>)'


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _stage_download(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def _stage_page(source: Path, target: Path, header: str) -> None:
    """Write ``source`` to ``target`` with the HTML ``header`` right under its title."""
    nb = nbformat.read(source, as_version=4)
    titled = next(
        (c for c in nb.cells if c.cell_type == "markdown" and _title_line(c.source) is not None),
        None,
    )
    if titled is None:
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(header))
    else:
        lines = titled.source.splitlines()
        at = _title_line(titled.source)
        assert at is not None
        titled.source = "\n".join([*lines[: at + 1], "", header, "", *lines[at + 1 :]])
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)


def _title_line(markdown: str) -> int | None:
    return next((i for i, line in enumerate(markdown.splitlines()) if line.startswith("# ")), None)


def title(notebook: Path) -> str:
    """A notebook's first ``# `` heading (``00 · Welcome``), else its file name."""
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return notebook.stem


def _student_labs(labs_dir: Path) -> list[Path]:
    """The student notebooks, built afresh into ``labs_dir`` (as ``make labs`` does).

    Building takes well under a second, and a copy left from an older ``labs/`` would
    show old exercises, or worse, a solution added since.
    """
    from neuralake.lab.graders.build import build_lab, find_labs

    return [
        build_lab(source, labs_dir / source.parent.name / source.name) for source in find_labs()
    ]


def _catalog_site(built: Path, target: Path) -> bool:
    """The generated catalog site: lesson 02's copy, else a fresh ``catalog site`` build."""
    if not (built / "index.html").exists():
        import neuralake
        from neuralake.catalog.export import export_catalog
        from neuralake.catalog.loader import load_catalog
        from neuralake.catalog.site import build_site

        module = "neuralake.catalog.examples.neuro"
        build_site(export_catalog(load_catalog(module), module, neuralake.settings()), built)
    shutil.copytree(built, target, ignore=shutil.ignore_patterns("*.log", "*.yaml"))
    (target.parent / "catalog-site.md").write_text(CATALOG_PAGE, encoding="utf-8")
    return True


def _benchmarks_nav(staging: Path, name: str) -> tuple[list[dict[str, str]], list[str]]:
    """The benchmark report's pages (``docs/benchmarks/``, written by ``benchmarks/``):
    the folder's index first, then every report under it; and the fragments left out of
    the navigation, files without a title (``tpch-sf1/table.md``, the bare table)."""
    folder, first = staging / name, ("index.md", "README.md")
    pages = sorted(folder.rglob("*.md"), key=lambda p: (p.parent != folder, p.name not in first, p))
    titled = [(page.relative_to(staging).as_posix(), _heading(page)) for page in pages]
    nav = [{title: path} for path, title in titled if title]
    fragments = [f"/{path}" for path, title in titled if not title]
    return nav, fragments


def _heading(page: Path) -> str | None:
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return None


def _markdown_title(page: Path) -> str:
    """A Markdown page's first ``# `` heading, else its file name."""
    return _heading(page) or page.stem


def public_modules(package: Path = ROOT / "neuralake") -> list[str]:
    """The library's modules a student imports: every module but the CLI wrappers and
    the labs' graders (:data:`GRADERS`).

    Found from the files, without importing anything (importing would start Spark's
    and Kafka's clients just to list names).
    """
    names = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        if not NOT_API.search(name) and not GRADERS.match(name) and ".examples" not in name:
            names.append(name)
    return sorted(names)


def _api_reference(staging: Path, modules: list[str]) -> list[Any]:
    """One page per module (``::: module``, filled in by mkdocstrings) in ``reference/``;
    the navigation groups each package's modules under the package."""
    folder = staging / "reference"
    folder.mkdir(parents=True, exist_ok=True)
    groups: dict[str, list[dict[str, str]]] = {}
    for module in modules:
        page = folder / f"{module}.md"
        page.write_text(f"# `{module}`\n\n::: {module}\n", encoding="utf-8")
        parts = module.split(".")
        is_package = any(m.startswith(f"{module}.") for m in modules)
        group = ".".join(parts[:2]) if len(parts) > 2 or is_package else parts[0]
        groups.setdefault(group, []).append({module: f"reference/{page.name}"})
    return [{name: entries} for name, entries in groups.items()]


def cell_seconds(notebook: Path) -> list[float]:
    """The duration papermill recorded for each code cell of an executed notebook."""
    nb = nbformat.read(notebook, as_version=4)
    return [
        float(cell.metadata.get("papermill", {}).get("duration") or 0.0)
        for cell in nb.cells
        if cell.cell_type == "code"
    ]


def run_times(executed: list[Path]) -> list[dict[str, Any]]:
    """Per executed notebook: total run time, its slowest cell, and when it ran."""
    rows = []
    for path in executed:
        meta = nbformat.read(path, as_version=4).metadata.get("papermill", {})
        seconds = cell_seconds(path)
        rows.append(
            {
                "notebook": path.stem,
                "run_s": round(float(meta.get("duration") or sum(seconds)), 1),
                "cells_s": round(sum(seconds), 1),
                "slowest_cell_s": round(max(seconds, default=0.0), 1),
                "code_cells": len(seconds),
                "status": _status(meta),
                "ran_at": str(meta.get("end_time") or meta.get("start_time") or "")[:19].replace(
                    "T", " "
                ),
            }
        )
    return rows


def _status(papermill_meta: dict) -> str:
    """``ok``, ``failed`` (a cell raised) or ``unfinished`` (still running, or killed)."""
    if papermill_meta.get("exception"):
        return "failed"
    return "ok" if papermill_meta.get("end_time") else "unfinished"


def run_times_page(executed: list[Path]) -> str:
    """Markdown: the run-times table of this build's executed lessons."""
    lines = [
        "# Run times",
        "",
        "How long each lesson took to execute headless (papermill, default parameters)",
        "in the run this site was built from. `run` includes the kernel's start;",
        "`cells` is the sum of the code cells' durations. A student reading, running",
        "and trying the exercises needs the time each lesson's header states; these",
        "numbers say how long the machine part takes.",
        "",
        "| lesson | run (s) | cells (s) | slowest cell (s) | code cells | status | ran at (UTC) |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for row in run_times(executed):
        lines.append(
            f"| {row['notebook']} | {row['run_s']} | {row['cells_s']} | "
            f"{row['slowest_cell_s']} | {row['code_cells']} | {row['status']} | {row['ran_at']} |"
        )
    return "\n".join(lines) + "\n"


def summary(report: SiteReport) -> str:
    """One line for the CLI."""
    return json.dumps(
        {
            "site": str(report.index),
            "lessons": len(report.lessons),
            "labs": len(report.labs),
            "api_modules": len(report.api_modules),
            "seconds": round(report.seconds, 1),
        }
    )

"""Build the documentation site from the executed notebooks: ``neuralake docs build``.

The site is plain static HTML made by mkdocs with three plugins: mkdocs-material (the
theme), mkdocs-jupyter (renders each executed notebook, outputs and plots included, as a
page) and mkdocstrings (the API reference, read from the library's docstrings). All
three are pure Python and installed with the lab, so the site builds offline, in CI, on
a student's laptop. Jupyter Book and mystmd were the alternatives: both render
notebooks well, but mystmd needs Node.js and Jupyter Book 2 is built on it.

What goes in, into a staging folder (``build/docs_src/``):

- the guides in ``docs/`` (glossary, troubleshooting, teacher guide, formats...);
- ``build/notebooks/*.ipynb``: the lessons as papermill executed them (``make run``);
- ``build/labs/*/*.ipynb``: the labs' student versions (built here if missing);
- the generated catalog site (``build/catalog_site/``, written by lesson 02, or
  generated here with ``neuralake catalog site``), served as is under ``catalog/``;
- ``docs/benchmarks/`` when the benchmark report is there;
- one API reference page per public module, and a run-times page computed from the
  cell durations papermill recorded in the executed copies.

Then ``mkdocs build --strict`` writes ``build/site/``. Nothing is fetched at build or
view time: the theme's Google fonts are off (``theme.font: false``), and the CDN
scripts nbconvert adds to every notebook page (MathJax, Mermaid, which the lessons do
not use) are removed by :func:`on_post_page`, a mkdocs hook. Pages are files
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

from neuralake import notebooks
from neuralake.errors import NeuralakeError
from neuralake.settings import project_dir

ROOT = project_dir()
BUILD = ROOT / "build"
STAGING = BUILD / "docs_src"
SITE = BUILD / "site"
CONFIG = ROOT / "mkdocs.yml"

# The guides, in the order the navigation shows them; a missing one is left out.
GUIDES = {
    "Start here": "index.md",
    "Troubleshooting": "troubleshooting.md",
    "Glossary": "glossary.md",
    "Code as a catalog": "catalog.md",
    "Streaming into Delta": "streaming.md",
    "Monitoring and governance": "monitoring.md",
}
TEACHING = {
    "Teacher guide": "teacher-guide.md",
    "The lab format": "lab-format.md",
    "The lesson frame": "lesson-frame.md",
    "Run times": "run-times.md",
}
# Modules the API reference leaves out: command-line wrappers and the entry point.
NOT_API = re.compile(r"(^|\.)(cli|docs_cli|__main__|docsite)$|\._")
# The labs' graders (``neuralake.labs.lab01`` ...): their builders script each exercise's
# story and their checks compute the answer, so publishing them would publish the
# solutions. They stay out of the site and its search index; students meet them only
# through the check cells and their hints.
GRADERS = re.compile(r"^neuralake\.labs\.(lab\d\d\w*|catalog_checks)$")

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

# nbconvert writes into every notebook page a MathJax loader (with an empty URL, as
# mkdocs-jupyter sets none) and a Mermaid loader that imports from a CDN. The lessons use
# neither; on_post_page removes both, so no page refers to anything off the site.
SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.DOTALL)
OFF_SITE = re.compile(r"""src=["']\s*["']|https?://""")


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
    lesson_nav = _copy_notebooks(lessons, staging, "lessons", sources)
    lab_nav = _copy_notebooks(_student_labs(labs_dir), staging, "labs")
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
    benchmarks = _benchmarks_nav(staging, "benchmarks")
    if benchmarks:
        nav.append({"Benchmarks": benchmarks})
    nav.append({"For teachers": _pages(TEACHING, staging)})
    nav.append({"API reference": api_nav})
    config = load_config(
        str(CONFIG), docs_dir=str(staging), site_dir=str(site_dir), nav=nav, strict=True
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


def _pages(titles: dict[str, str], staging: Path) -> list[dict[str, str]]:
    return [{title: page} for title, page in titles.items() if (staging / page).exists()]


def _other_guides(staging: Path) -> list[dict[str, str]]:
    """Guides in ``docs/`` that ``GUIDES`` and ``TEACHING`` do not name, by their title."""
    named = {*GUIDES.values(), *TEACHING.values(), "catalog-site.md"}
    return [
        {_markdown_title(page): page.name}
        for page in sorted(staging.glob("*.md"))
        if page.name not in named
    ]


def _copy_guides(docs: Path, staging: Path) -> None:
    """Every Markdown guide and image under ``docs/`` (the benchmark report included)."""
    for source in docs.rglob("*"):
        if source.is_file():
            target = staging / source.relative_to(docs)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _copy_notebooks(
    sources: list[Path], staging: Path, folder: str, unexecuted: Collection[Path] = ()
) -> list[dict[str, str]]:
    """Copy notebooks to ``staging/folder``, with a note under the title of each one in
    ``unexecuted``; return their nav entries titled by their first heading."""
    (staging / folder).mkdir(parents=True, exist_ok=True)
    nav = []
    for source in sources:
        target = staging / folder / source.name
        if source in unexecuted:
            _with_note(source, target, UNEXECUTED_NOTE)
        else:
            shutil.copy2(source, target)
        nav.append({title(source): f"{folder}/{source.name}"})
    return nav


def _with_note(source: Path, target: Path, note: str) -> None:
    """Write ``source`` to ``target`` with a Markdown cell ``note`` after its title's cell."""
    nb = nbformat.read(source, as_version=4)
    at = next(
        (i + 1 for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "# " in c.source),
        0,
    )
    nb.cells.insert(at, nbformat.v4.new_markdown_cell(note))
    nbformat.write(nb, target)


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
    from neuralake.labs.build import build_lab, find_labs

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


def _benchmarks_nav(staging: Path, name: str) -> list[dict[str, str]]:
    """The benchmark report's pages (``docs/benchmarks/``, written by ``benchmarks/``):
    the folder's index first, then every report under it."""
    folder, first = staging / name, ("index.md", "README.md")
    pages = sorted(folder.rglob("*.md"), key=lambda p: (p.parent != folder, p.name not in first, p))
    return [{_markdown_title(p): str(p.relative_to(staging))} for p in pages]


def _markdown_title(page: Path) -> str:
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return page.stem


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


def on_post_page(output: str, page: Any, config: Any) -> str:
    """mkdocs hook: drop the scripts that load code from off the site (see ``SCRIPT``)."""
    return SCRIPT.sub(lambda m: "" if OFF_SITE.search(m.group(0)) else m.group(0), output)


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

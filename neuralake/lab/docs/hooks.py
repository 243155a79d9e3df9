"""The documentation site's mkdocs hooks (``hooks:`` in ``mkdocs.yml``): what the theme,
mkdocs-jupyter and nbconvert leave to fix on the pages :mod:`neuralake.lab.docs.site` stages.

- A notebook page's table of contents links to its headings' real ids: nbconvert keeps
  a heading's inline code in its id (``2-the-transaction-log-_delta_log``) while the
  table of contents mkdocs-jupyter builds leaves it out (``2-the-transaction-log``).
- No page loads a script from off the site: nbconvert writes a MathJax loader (with an
  empty URL) and a Mermaid loader from a CDN into every notebook page; the lessons use
  neither.
- The notebook styles nbconvert inlines into every notebook page (about 590 KB) are
  written once, under ``assets/notebook/``, and linked.
- Notebook pages get the body class ``nl-notebook`` (``stylesheets/neuralake.css`` makes
  them wide enough for 100-character code lines).
- A figure without a description gets one: an SVG's own ``<title>``, else its section's
  heading and the first comment of the cell that drew it.
- The Sphinx roles of the library's docstrings (``:func:`name```, ``:class:``...), which
  mkdocstrings prints as they are, become links to the API page that documents the
  name, or plain code where the site does not document it.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from pathlib import Path
from typing import Any

SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.DOTALL)
OFF_SITE = re.compile(r"""src=["']\s*["']|https?://""")
STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.DOTALL)
HEADING = re.compile(r"<h([1-6]) id=\"([^\"]+)\"[^>]*>(.*?)</h\1>", re.DOTALL)
NO_ALT = 'alt="No description has been provided for this image"'
IMAGE = re.compile(rf'<img {NO_ALT}[^>]*? src="data:image/([a-z+]+);base64,([^"]+)"')
CELL_SOURCE = re.compile(r'<div class="clipboard-copy-txt" id="cell-\d+">(.*?)</div>', re.DOTALL)
ROLE = re.compile(
    r":(?:py:)?(func|class|meth|mod|data|attr|exc|obj|const):<code>(~?)([\w.]+)</code>"
)
API_ID = re.compile(r'id="(neuralake(?:\.\w+)*)"')


def is_notebook(page: Any) -> bool:
    return page is not None and page.file.src_uri.endswith(".ipynb")


def on_page_content(content: str, page: Any, config: Any, files: Any) -> str:
    """Point a notebook page's table of contents at its headings' ids."""
    if is_notebook(page) and page.toc:
        _match_toc(page.toc, [anchor for _, anchor, _ in HEADING.findall(content)])
    return content


def _match_toc(toc: Any, ids: list[str]) -> None:
    """Give each table-of-contents entry the id of the next heading whose words include
    its own, in order (the entry's id lacks the words of the heading's inline code)."""
    at = 0
    for link in _flatten(toc):
        words = link.id.split("-")
        found = next((i for i in range(at, len(ids)) if _within(words, ids[i].split("-"))), None)
        if found is not None:
            link.id, at = ids[found], found + 1


def _within(words: list[str], longer: list[str]) -> bool:
    """Whether ``words`` appear in ``longer`` in the same order (gaps allowed)."""
    rest = iter(longer)
    return all(word in rest for word in words)


def _flatten(links: Any) -> list[Any]:
    return [x for link in links for x in (link, *_flatten(link.children))]


def on_post_page(output: str, page: Any, config: Any) -> str:
    """Drop off-site scripts; on notebook pages, link the styles, mark the body, and
    describe the figures."""
    output = SCRIPT.sub(lambda m: "" if OFF_SITE.search(m.group(0)) else m.group(0), output)
    if not is_notebook(page):
        return output
    output = output.replace("<body ", '<body class="nl-notebook" ', 1)
    output = _link_styles(output, Path(config["site_dir"]), "../" * page.url.count("/"))
    return describe_figures(output)


def _link_styles(output: str, site: Path, root: str) -> str:
    """Write each large inline style block once, under ``assets/notebook/``; link it."""

    def link(match: re.Match[str]) -> str:
        css = match.group(1)
        if len(css) < 2000:  # a page's own small rules stay where they are
            return match.group(0)
        name = f"assets/notebook/{hashlib.sha256(css.encode()).hexdigest()[:16]}.css"
        if not (site / name).exists():
            (site / name).parent.mkdir(parents=True, exist_ok=True)
            (site / name).write_text(css, encoding="utf-8")
        return f'<link rel="stylesheet" href="{root}{name}">'

    return STYLE.sub(link, output)


def describe_figures(output: str) -> str:
    """Give every figure nbconvert left undescribed an ``alt`` text (see the module)."""

    def alt(match: re.Match[str]) -> str:
        kind, data = match.groups()
        text = _svg_title(data) if kind == "svg+xml" else None
        if not text:
            before = output[: match.start()]
            section = _last(HEADING, before, 3)
            code = _last(CELL_SOURCE, before, 1)
            comment = next(
                (
                    line.strip("# ").strip()
                    for line in html.unescape(code or "").splitlines()
                    if line.startswith("#")
                ),
                None,
            )
            text = f"Figure in “{_plain(section or 'this page')}”" + (
                f": {comment}" if comment else ""
            )
        return match.group(0).replace(NO_ALT, f'alt="{html.escape(text)}"')

    return IMAGE.sub(alt, output)


def _svg_title(data: str) -> str | None:
    svg = base64.b64decode(data).decode("utf-8", "replace")
    found = re.search(r"<title>(.*?)</title>", svg, re.DOTALL)
    return " ".join(html.unescape(found.group(1)).split()) if found else None


def _last(pattern: re.Pattern[str], text: str, group: int) -> str | None:
    matches = list(pattern.finditer(text))
    return matches[-1].group(group) if matches else None


def _plain(fragment: str) -> str:
    """Visible text of an HTML fragment, without the heading's ``¶`` anchor."""
    text = re.sub(r"<a class=\"anchor-link\".*?</a>|<[^>]+>", "", fragment)
    return " ".join(html.unescape(text).split())


def on_post_build(config: Any) -> None:
    """Turn the Sphinx roles of every page, and of the search index, into links or code."""
    site = Path(config["site_dir"])
    documented = {
        name: page.relative_to(site).as_posix()
        for page in sorted((site / "reference").glob("*.html"))
        for name in API_ID.findall(page.read_text(encoding="utf-8"))
    }
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        if ":<code>" in text:
            here = page.relative_to(site).as_posix()
            fixed = resolve_roles(text, documented, here)
            if fixed != text:
                page.write_text(fixed, encoding="utf-8")
    index = site / "search" / "search_index.json"
    if index.exists():
        data = json.loads(index.read_text(encoding="utf-8"))
        for doc in data["docs"]:
            doc["text"] = ROLE.sub(lambda m: f"<code>{_shown(m)}</code>", doc["text"])
        index.write_text(json.dumps(data), encoding="utf-8")


def _shown(match: re.Match[str]) -> str:
    """What a role shows: ``~a.b.c`` shows ``c``; anything else as written."""
    _, short, target = match.groups()
    return target.rsplit(".", 1)[-1] if short else target.lstrip(".")


def resolve_roles(text: str, documented: dict[str, str], here: str) -> str:
    """Replace each ``:role:<code>target</code>`` in a page at ``here`` (relative to the
    site) with a link to the page documenting ``target`` (``documented``: full name ->
    page), found as written, then relative to the page's module and its parents."""
    module = here.removeprefix("reference/").removesuffix(".html").split(".")
    depth = "../" * here.count("/")

    def link(match: re.Match[str]) -> str:
        target = match.group(3).lstrip(".")
        scopes = [".".join(module[:n]) for n in range(len(module), 0, -1)]
        candidates = [target] + [f"{scope}.{target}" for scope in scopes if scope]
        name = next((c for c in candidates if c in documented), None)
        code = f"<code>{_shown(match)}</code>"
        if name is None:
            return code
        page = documented[name]
        anchor = "" if name == page.removeprefix("reference/").removesuffix(".html") else name
        href = f"{depth}{page}" + (f"#{anchor}" if anchor else "")
        return f'<a class="autorefs" href="{href}">{code}</a>'

    return ROLE.sub(link, text)

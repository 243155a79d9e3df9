"""Every hint of every lab, read from the graders' source (no stack).

A hint that sends a student to "lesson 03, section 2" must point at a section that
exists and shows what the hint names there; and the first tier, the one a student sees
on the first failure, must not hand over the answer's call.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GRADERS = ROOT / "neuralake" / "lab" / "graders"
LESSONS = ROOT / "notebooks"

# "lesson 02", then "section 3", "sections 9 and 10", "sections 3, 5 and 6".
REFERENCE = re.compile(r"lesson (\d\d[a-z]?)|sections? (\d+(?:(?:,? and |, )\d+)*)", re.IGNORECASE)
SECTION = re.compile(r"^# ## (\d+) · ")
# What a hint names as code: calls and attributes (restore(, .merge), command-line
# options (--min-files), and identifiers no English word looks like (read_commit,
# dropDuplicates, deletionTimestamp).
CODE_NAME = re.compile(
    r"(\w{3,})\(|\.([A-Za-z_]\w{2,})|(--[a-z][a-z-]+)|\b([a-z]+_\w+|[a-z]+[A-Z]\w*)\b"
)


@dataclass(frozen=True)
class FoundHint:
    where: str  # grader file and line
    concept: str
    api: str
    call: str


def _text(node: ast.expr) -> str:
    """A hint's text as written: f-string fields kept as ``{expression}``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            part.value if isinstance(part, ast.Constant) else f"{{{ast.unparse(part.value)}}}"  # type: ignore[attr-defined]
            for part in node.values
        )
    raise AssertionError(f"a hint's text is not a string: {ast.unparse(node)}")


@cache
def hints() -> list[FoundHint]:
    """Every ``Hint(...)`` in the graders, module-level or built inside a check."""
    found = []
    for path in sorted(GRADERS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Hint":
                tiers = dict(zip(("concept", "api", "call"), map(_text, node.args), strict=False))
                tiers |= {k.arg: _text(k.value) for k in node.keywords if k.arg}
                found.append(FoundHint(f"{path.name}:{node.lineno}", **tiers))
    return found


@cache
def sections(lesson: str) -> dict[int, str]:
    """A lesson's numbered ``## N · ...`` sections: number -> text, from its .py source."""
    (source,) = LESSONS.glob(f"{lesson}_*.py")
    found: dict[int, list[str]] = {}
    current = None
    for line in source.read_text(encoding="utf-8").splitlines():
        heading = SECTION.match(line)
        if heading:
            current = int(heading.group(1))
            found[current] = []
        elif line.startswith("# ## "):
            current = None
        elif current is not None:
            found[current].append(line)
    return {number: "\n".join(lines) for number, lines in found.items()}


def references(text: str) -> list[tuple[str | None, int, str]]:
    """(lesson, section, what the hint says just before it) for every section a text
    names; a section belongs to the lesson named last before it."""
    found, lesson, since = [], None, 0
    for match in REFERENCE.finditer(text):
        if match.group(1):
            lesson = match.group(1)
            continue
        before = text[since : match.start()]
        found += [(lesson, int(n), before) for n in re.findall(r"\d+", match.group(2))]
        since = match.end()
    return found


def code_names(text: str) -> set[str]:
    return {name for groups in CODE_NAME.findall(text) for name in groups if name}


def test_hints_are_data_declared_beside_their_checks_not_inside_them():
    """Each hint is a module-level constant, so that a lab's hints read as one list."""
    inline = []
    for path in sorted(GRADERS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                inline += [
                    f"{path.name}:{call.lineno} in {node.name}()"
                    for call in ast.walk(node)
                    if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Hint"
                ]
    assert not inline, inline


def test_the_hints_are_found_with_three_tiers():
    assert len(hints()) >= 60, len(hints())
    for found in hints():
        assert found.concept and found.api and found.call, found.where


def test_every_lesson_section_a_hint_names_exists_and_shows_what_it_names():
    problems = []
    for found in hints():
        for tier in ("concept", "api", "call"):
            for lesson, number, before in references(getattr(found, tier)):
                where = f"{found.where} ({tier}): lesson {lesson}, section {number}"
                if lesson is None:
                    problems.append(f"{where}: which lesson?")
                    continue
                shown = sections(lesson).get(number)
                if shown is None:
                    problems.append(f"{where} does not exist")
                    continue
                named = code_names(before)
                if named and not [name for name in named if name in shown]:
                    problems.append(f"{where} shows none of {sorted(named)}")
    assert not problems, "\n".join(problems)


def test_a_first_tier_hint_never_contains_the_answers_call():
    """Tier 1 is the concept: no function or method tier 3 calls may appear in it as code
    (a column it names, such as ``kafka_offset``, may: that is the data, not the call)."""
    leaks = []
    for found in hints():
        calls = set(re.findall(r"(\w{3,})\s*\(", found.call))
        for name in sorted(calls):
            as_code = rf"(\.{name}\b|(?<![\w.]){name}\s*\(|`{name}`)"
            looks_like_code = "_" in name or re.search("[a-z][A-Z]", name)
            if re.search(as_code, found.concept) or (
                looks_like_code and re.search(rf"(?<!\w){name}(?!\w)", found.concept)
            ):
                leaks.append(f"{found.where}: {name!r} in {found.concept!r}")
    assert not leaks, "\n".join(leaks)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x() (lesson 02, section 3).", [("02", 3)]),
        ("a (lesson 01b section 7); b (sections 9 and 10)", [("01b", 7), ("01b", 9), ("01b", 10)]),
        ("c (sections 3, 5 and 6)", [(None, 3), (None, 5), (None, 6)]),
    ],
)
def test_references_are_read_with_their_lesson(text, expected):
    assert [(lesson, number) for lesson, number, _ in references(text)] == expected


def test_a_leaked_call_and_a_missing_section_would_be_caught():
    """The checks above can fail: a concept that names the call, a section that is not."""
    assert "restore" in code_names("DeltaTable(uri).restore(1)")
    assert "restore" in code_names("use .restore(version) here")
    assert 99 not in sections("01")
    assert "read_commit" in code_names("delta.read_commit (add actions)")

"""Acceptance targets of the writer's and ROAPI's benchmarks, and the report's section on them.

Each benchmark keeps its targets and how to read one of its runs beside it, in
:mod:`neuralake.lab.bench.targets` (one module per script in ``benchmarks/``). This module holds
what they share: a :class:`Check` (one figure of one run against its target), a
:class:`Benchmark` (where a result lives, how to regenerate it, how to check a run), and
:func:`section`, which turns whichever results exist in ``docs/benchmarks/`` into Markdown:
one small table per benchmark with each figure, its target and whether it is met, and the
load average the run recorded (on a shared 2-core machine the load moves every number). A
missing file is reported as "not run", never left out. ``neuralake bench report`` writes
that Markdown between two marker lines of the TPC-H report (:func:`update_section`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from neuralake.errors import ConfigError

MARK_START = "<!-- neuralake bench report: the writer's and ROAPI's figures start -->"
MARK_END = "<!-- neuralake bench report: the writer's and ROAPI's figures end -->"


@dataclass(frozen=True)
class Check:
    """One figure of one run: its value as text, the target, and whether the run meets it.

    ``met`` is None for a figure reported without a target (a baseline, a file count).
    """

    measure: str
    value: str
    target: str = ""
    met: bool | None = None


@dataclass(frozen=True)
class Benchmark:
    """Where one benchmark's result lives, how to regenerate it, how to read one run."""

    title: str
    name: str  # the result is docs/benchmarks/<name>.json
    command: str
    checks: Callable[[dict], list[Check]]

    @property
    def file(self) -> str:
        return f"{self.name}.json"


def at_least(measure: str, value: float, target: float, fmt: str, unit: str = "") -> Check:
    return Check(
        measure, fmt.format(value) + unit, ">= " + fmt.format(target) + unit, value >= target
    )


def below(measure: str, value: float | None, target: float, fmt: str, unit: str = "") -> Check:
    if value is None:
        return Check(measure, "nothing measured", "< " + fmt.format(target) + unit, False)
    return Check(
        measure, fmt.format(value) + unit, "< " + fmt.format(target) + unit, value < target
    )


def load_runs(path: Path) -> list[dict] | None:
    """The runs saved in a benchmark's result file; None when the file does not exist.

    The file holds a script's stdout: one JSON object, a JSON list of runs, or several runs
    one after the other (``>>``); text lines around them (``compaction_read.py`` prints a
    table before its JSON line) are skipped.
    """
    if not path.exists():
        return None
    text, decoder, runs, at = path.read_text(), json.JSONDecoder(), [], 0
    while at < len(text):
        if text[at] in "{[":
            try:
                value, at = decoder.raw_decode(text, at)
            except json.JSONDecodeError as err:
                raise ConfigError(
                    f"{path}: broken JSON ({err.msg}, line {err.lineno}): re-run the benchmark"
                ) from None
            runs.extend(value if isinstance(value, list) else [value])
        else:
            end = text.find("\n", at)
            at = len(text) if end < 0 else end + 1
    if not runs or not all(isinstance(run, dict) for run in runs):
        raise ConfigError(f"{path} holds no JSON result: save the benchmark's output there")
    return runs


def _checks(benchmark: Benchmark, path: Path, runs: list[dict]) -> list[list[Check]]:
    try:
        return [benchmark.checks(run) for run in runs]
    except (KeyError, TypeError) as err:
        raise ConfigError(
            f"{path} lacks the field {err}: it is not the output of {benchmark.command.split()[0]}"
        ) from None


def _load(run: dict) -> str:
    """The 1-minute load average the run recorded: at its end, or at its start and end."""
    if "load_average_1m_start_end" in run:
        start, end = run["load_average_1m_start_end"]
        return f"{start:g} -> {end:g}"
    load = run.get("load_average_1m")
    return "not recorded" if load is None else f"{load:g}"


def _verdict(per_run: list[list[Check]]) -> str:
    """ "met", or "not met: " and the figures that missed (with the runs, if several)."""
    missed: dict[str, list[int]] = {}
    for number, checks in enumerate(per_run, 1):
        for check in checks:
            if check.met is False:
                missed.setdefault(check.measure, []).append(number)
    if not missed:
        return "**met**"
    if len(per_run) == 1:
        return "**not met**: " + "; ".join(missed)
    return "**not met**: " + "; ".join(
        f"{measure} (run{'s' if len(runs) > 1 else ''} {', '.join(map(str, runs))})"
        for measure, runs in missed.items()
    )


def _table(per_run: list[list[Check]], runs: list[dict]) -> list[str]:
    """Rows: figures; columns: the target, then one per run."""
    measures: dict[str, str] = {}
    cells: list[dict[str, str]] = []
    for checks in per_run:
        row = {}
        for check in checks:
            measures.setdefault(check.measure, check.target)
            mark = {True: " **met**", False: " **not met**", None: ""}[check.met]
            row[check.measure] = check.value + mark
        cells.append(row)
    heads = ["value"] if len(runs) == 1 else [f"run {n}" for n in range(1, len(runs) + 1)]
    lines = [
        "| figure | target | " + " | ".join(heads) + " |",
        "|---|---|" + "---:|" * len(heads),
    ]
    for measure, target in measures.items():
        values = " | ".join(row.get(measure, "") for row in cells)
        lines.append(f"| {measure} | {target} | {values} |")
    lines.append("| load average, 1 min (2 cores) | | " + " | ".join(map(_load, runs)) + " |")
    return lines


def section(benchmarks: Sequence[Benchmark], folder: Path, linked_from: Path | None = None) -> str:
    """The report's section on ``benchmarks``' figures, as Markdown.

    Reads ``folder/<name>.json`` for each benchmark; links to them relative to
    ``linked_from`` (the folder of the page the section goes in; default ``folder``).
    """
    base = linked_from or folder
    summary = [
        "| benchmark | result | runs | target | load average, 1 min |",
        "|---|---|---:|---|---|",
    ]
    details: list[str] = []
    for benchmark in benchmarks:
        path = folder / benchmark.file
        link = f"[`{benchmark.file}`]({Path(os.path.relpath(path, base)).as_posix()})"
        save = f"`.venv/bin/python {benchmark.command} > {path.as_posix()}`"
        runs = load_runs(path)
        details += ["", f"### {benchmark.title}", ""]
        if runs is None:
            summary.append(f"| {benchmark.title} | `{benchmark.file}` | 0 | **not run** | |")
            details.append(f"**Not run**: no `{benchmark.file}` yet. Run {save}.")
            continue
        per_run = _checks(benchmark, path, runs)
        loads = ", ".join(map(_load, runs))
        summary.append(
            f"| {benchmark.title} | {link} | {len(runs)} | {_verdict(per_run)} | {loads} |"
        )
        details.append(f"From {link}; regenerate: {save}.")
        details += ["", *_table(per_run, runs)]
    return "\n".join(summary + details)


def update_section(
    readme: Path, section: str, marks: tuple[str, str] = (MARK_START, MARK_END)
) -> None:
    """Replace the text between the two ``marks`` (by default :data:`MARK_START` and
    :data:`MARK_END`) in ``readme``."""
    mark_start, mark_end = marks
    text = readme.read_text() if readme.exists() else ""
    start, end = text.find(mark_start), text.find(mark_end)
    if start < 0 or end < start:
        raise ConfigError(
            f"{readme} has no generated section: add the lines {mark_start} and {mark_end}"
        )
    head, tail = text[: start + len(mark_start)], text[end:]
    readme.write_text(f"{head}\n\n{section}\n\n{tail}")

"""What every grader uses: fail with a hint, or say what passed.

A hint names what the grader found in the real table and the next step, e.g. "the
table has 14 files; run optimize.compact() until it has fewer than 4". "Wrong" alone
teaches nothing.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from neuralake.errors import CheckFailed


def expect(condition: bool, hint: str) -> None:
    """Raise :class:`CheckFailed` with ``hint`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(hint)


def passed(message: str) -> None:
    """Print the line a check cell shows when the exercise is done."""
    print(f"PASSED: {message}")


def check_outputs(executed: Path) -> list[dict]:
    """What each check cell of an executed lab notebook showed, in order.

    A check cell is one that calls a ``check_*`` grader. Each entry holds the cell's
    ``error`` output (None when it passed) and its printed ``text``: enough to grade a
    submitted notebook, and what the lab tests assert on.
    """
    notebook = nbformat.read(executed, as_version=4)
    checks = [c for c in notebook.cells if c.cell_type == "code" and ".check_" in c.source]
    return [
        {
            "error": next((o for o in c.outputs if o.output_type == "error"), None),
            "text": "".join(o.get("text", "") for o in c.outputs if o.output_type == "stream"),
        }
        for c in checks
    ]

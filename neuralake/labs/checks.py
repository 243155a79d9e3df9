"""What every grader uses: fail with a hint, or say what passed.

A hint names what the grader found in the real table and the next step, e.g. "the
table has 14 files; run optimize.compact() until it has fewer than 4". "Wrong" alone
teaches nothing.
"""

from __future__ import annotations

from neuralake.errors import CheckFailed


def expect(condition: bool, hint: str) -> None:
    """Raise :class:`CheckFailed` with ``hint`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(hint)


def passed(message: str) -> None:
    """Print the line a check cell shows when the exercise is done."""
    print(f"PASSED: {message}")

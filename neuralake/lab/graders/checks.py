"""What every grader uses: fail with a tiered hint, or say what passed.

A failed check says what the grader found in the real table, then one hint. Hints come
in three tiers, revealed as the same exercise keeps failing:

1. **concept**: the idea to think about ("an overwrite is a new version; the old one is
   still in the log");
2. **api**: the API to look up, and where the lesson shows it;
3. **call**: the call itself.

The first failure of an exercise shows tier 1, the second tier 2, the third and later
tier 3. ``hint(key, level)`` shows a tier on request. Attempts are counted per exercise
``key`` (e.g. ``"lab01.ex3"``) in this process: restarting the kernel starts over, and a
lab's ``setup()`` forgets its counts with ``reset_attempts("lab01.")``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import nbformat

from neuralake.errors import CheckFailed, NeuralakeError

TIERS = ("concept", "api", "call")
_attempts: dict[str, int] = {}  # failures so far, per exercise key
_last_hint: dict[str, Hint] = {}  # the hint of each key's latest failure, for hint()


@dataclass(frozen=True)
class Hint:
    """Three hints for one way an exercise can fail, from the vaguest to the call itself."""

    concept: str  # tier 1: the idea to think about
    api: str  # tier 2: the API to look up (name + where the lesson shows it)
    call: str  # tier 3: the call itself

    def tier(self, level: int) -> str:
        """``Hint <level>/3 (<tier name>): <text>``."""
        if level not in (1, 2, 3):
            raise NeuralakeError(f"hint level {level!r} does not exist: use 1, 2 or 3")
        return f"Hint {level}/3 ({TIERS[level - 1]}): {getattr(self, TIERS[level - 1])}"


def expect(condition: bool, found: str, hint: Hint, *, key: str) -> None:
    """Raise :class:`CheckFailed` unless ``condition`` holds.

    The message is one line: what the grader ``found``, then the tier of ``hint`` that
    this failure of exercise ``key`` has earned (1 on the first failure, 3 from the third).
    """
    if condition:
        return
    _attempts[key] = _attempts.get(key, 0) + 1
    _last_hint[key] = hint
    level = min(_attempts[key], 3)
    more = " Run the check again for a more specific hint." if level < 3 else ""
    raise CheckFailed(f"{found}. {hint.tier(level)}{more}")


@dataclass(frozen=True)
class Grading:
    """The checks of one exercise: :func:`expect` with its attempt key filled in.

    ``grading = Lab07.grading("ex1")``, then ``grading.expect(condition, found, HINT)``
    in place of ``expect(condition, found, HINT, key="lab07.ex1")`` at every check.
    """

    key: str

    def expect(self, condition: bool, found: str, hint: Hint) -> None:
        expect(condition, found, hint, key=self.key)

    def expect_a(self, value: object, kind: type, name: str, hint: Hint) -> None:
        """Fail unless the student's ``name`` holds a ``kind`` (None says it was not set)."""
        self.expect(value is not None, f"{name} is None", hint)
        self.expect(
            isinstance(value, kind),
            f"{name} is a {type(value).__name__}, not a {kind.__name__}",
            hint,
        )

    def fail(self, found: str, hint: Hint) -> NoReturn:
        """Fail the check unconditionally (a branch already knows it is wrong)."""
        expect(False, found, hint, key=self.key)
        raise AssertionError("unreachable")  # expect(False, ...) always raises


def hint(key: str, level: int = 3) -> str:
    """Tier ``level`` of the hint the latest failed check of exercise ``key`` gave."""
    if key not in _last_hint:
        failed = ", ".join(sorted(_last_hint)) or "none yet"
        raise NeuralakeError(
            f"no check of {key!r} has failed in this kernel (failed so far: {failed}): "
            "run the exercise's check cell first"
        )
    return _last_hint[key].tier(level)


def attempts(key: str) -> int:
    """How many times the checks of exercise ``key`` have failed in this kernel."""
    return _attempts.get(key, 0)


def reset_attempts(prefix: str = "") -> None:
    """Forget the attempts (and last hints) of every key that starts with ``prefix``."""
    for counts in (_attempts, _last_hint):
        for key in [k for k in counts if k.startswith(prefix)]:
            del counts[key]


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

"""Labs: graded exercises on the real stack.

A lab is one source notebook in ``labs/NN_topic/`` whose solution cells are tagged
``solution``. :mod:`neuralake.lab.graders.build` turns it into the student version (solutions
replaced by stubs); the check cells call graders such as :mod:`neuralake.lab.graders.lab01`,
which inspect the real tables and raise :class:`~neuralake.errors.CheckFailed` with what
they found and a tiered hint (concept, API, call) that gets more specific each time the
same exercise fails; :func:`hint` shows a tier on request. See docs/lab-format.md.
"""

from neuralake.errors import CheckFailed
from neuralake.lab.graders.base import Lab
from neuralake.lab.graders.build import build_lab, find_labs
from neuralake.lab.graders.checks import Hint, expect, hint, passed, reset_attempts

__all__ = [
    "CheckFailed",
    "Hint",
    "Lab",
    "build_lab",
    "expect",
    "find_labs",
    "hint",
    "passed",
    "reset_attempts",
]

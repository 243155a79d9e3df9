"""Labs: graded exercises on the real stack.

A lab is one source notebook in ``labs/NN_topic/`` whose solution cells are tagged
``solution``. :mod:`neuralake.labs.build` turns it into the student version (solutions
replaced by stubs); the check cells call graders such as :mod:`neuralake.labs.lab01`,
which inspect the real tables and raise :class:`~neuralake.errors.CheckFailed` with a
hint that says what to do next. See docs/lab-format.md.
"""

from neuralake.errors import CheckFailed
from neuralake.labs.build import build_lab, find_labs
from neuralake.labs.checks import expect, passed

__all__ = ["CheckFailed", "build_lab", "expect", "find_labs", "passed"]

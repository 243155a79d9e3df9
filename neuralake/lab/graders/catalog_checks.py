"""Lab 02's grader under its first name, for notebooks that import it so: this module
is :mod:`neuralake.lab.graders.lab02` itself (the graders are named by lab number)."""

import sys

from neuralake.lab.graders import lab02

sys.modules[__name__] = lab02

"""Neuralake Lab: the thin support library behind the notebooks.

Start here: ``neuralake.settings()`` says where the data and the services are.
"""

from neuralake.errors import ConfigError, NeuralakeError, StackError
from neuralake.settings import Settings, settings

__all__ = ["ConfigError", "NeuralakeError", "Settings", "StackError", "settings"]

"""The catalog's errors: one line that says what is wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from neuralake.errors import NeuralakeError


class CatalogError(NeuralakeError):
    """A table, database or filter is declared or used in a way the catalog cannot serve."""


class UnknownNameError(CatalogError, LookupError):
    """A database or table name that does not exist; the message lists the ones that do."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        choices = ", ".join(sorted(known)) or "(none)"
        super().__init__(f"unknown {kind} {name!r}: choose one of {choices}")
        self.name = name


T = TypeVar("T")


def lookup(kind: str, name: str, known: Mapping[str, T]) -> T:
    """``known[name]``; an unknown name raises :class:`UnknownNameError` listing the known ones."""
    try:
        return known[name]
    except KeyError:
        raise UnknownNameError(kind, name, known) from None

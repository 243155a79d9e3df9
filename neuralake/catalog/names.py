"""Names of databases, tables and columns: identifiers, checked when declared.

A name becomes a file path (``tables/<db>.<table>.html``), part of a URL, a ROAPI table
name and a SQL identifier. In PostgreSQL queries psycopg reads a ``%`` anywhere in the
query text, quoted identifiers included, as the start of a placeholder; a space breaks
the site's tag and search attributes. Letters, digits and ``_`` are safe everywhere.
"""

from __future__ import annotations

import re
from typing import Any

from neuralake.catalog.errors import CatalogError

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_name(kind: str, name: Any) -> str:
    """Return ``name`` if it is an identifier, else raise a one-line ``CatalogError``."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise CatalogError(
            f"{kind} name {name!r} is not an identifier: use letters, digits and _ "
            "(not starting with a digit)"
        )
    return name

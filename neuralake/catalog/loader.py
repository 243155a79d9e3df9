"""Load a catalog from a module name (``neuralake.catalog.examples.neuro``) or a ``.py`` file."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from neuralake.catalog.catalog import Catalog
from neuralake.catalog.errors import CatalogError

#: Catalog files are registered under this prefix, never under their bare file name: a
#: file named ``site.py`` or ``json.py`` must not replace the standard module.
FILE_MODULES = "neuralake_catalog_files"


def load_module(spec: str) -> ModuleType:
    """Import ``spec``: a dotted module name, or a path to a ``.py`` file.

    A file ``catalogs/site.py`` is imported as ``neuralake_catalog_files.site``: its
    database is still named ``site``, and ``sys.modules["site"]`` is left alone.
    """
    if spec.endswith(".py"):
        path = Path(spec).resolve()
        if not path.is_file():
            raise CatalogError(f"catalog file {spec} does not exist: pass a .py file or a module")
        name = f"{FILE_MODULES}.{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as error:
        raise CatalogError(
            f"cannot import catalog module {spec!r} ({error}): check the name or pass a .py path"
        ) from error


def load_catalog(spec: str) -> Catalog:
    """The catalog declared by a module (its ``catalog`` variable, or the module itself)."""
    return Catalog.from_module(load_module(spec))

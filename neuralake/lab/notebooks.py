"""Run the lessons headless with papermill: the same code for ``make run`` and the tests.

Executed copies land in ``build/notebooks/`` (for the rendered docs and for
debugging); the committed ``.ipynb`` files stay without outputs.

Plots must land in the executed copies as ``image/png`` outputs, so the kernel uses
matplotlib's inline backend, Jupyter's default. A non-interactive ``MPLBACKEND=agg``
(which CI machines and some shells set) would make ``plt.show()`` draw nothing, so the
runner overrides it for the kernel it starts, and only for that kernel.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from neuralake.settings import project_dir, state_dir

NOTEBOOK_DIR = project_dir() / "notebooks"
BUILD_DIR = project_dir() / "build" / "notebooks"
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"

# "00_welcome", "01_delta_lake_fundamentals", "01b_delta_lake_in_production": two digits,
# an optional letter for a lesson split in parts, then an underscore.
LESSON_NAME = re.compile(r"^(?P<number>\d\d)(?P<part>[a-z]?)_")


def lessons(folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered lessons, in order: ``00_welcome``, ``01_...``, ``01b_...``, ``02_...``.

    A lesson split in parts keeps its number and adds a letter; the part without a letter
    comes first, and ``neuralake notebooks run 01`` (which matches the first two
    characters) runs every part of lesson 01.
    """
    found = [p for p in folder.glob("*.ipynb") if LESSON_NAME.match(p.name)]
    return sorted(found, key=_order)


def _order(notebook: Path) -> tuple[str, str]:
    match = LESSON_NAME.match(notebook.name)
    assert match is not None
    return match["number"], match["part"]


def jupyter_env() -> dict[str, str]:
    """Keep Jupyter's runtime, data and config inside the state folder, not in $HOME."""
    jupyter = state_dir() / "jupyter"
    jupyter.mkdir(parents=True, exist_ok=True)
    return {
        "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
        "JUPYTER_DATA_DIR": str(jupyter / "data"),
        "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
        "IPYTHONDIR": str(jupyter / "ipython"),
    }


def kernel_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The variables to set for a lesson kernel, given the caller's environment.

    Jupyter folders are only defaults (a variable already set wins); ``MPLBACKEND``, if
    set at all, is replaced by the inline backend so that figures become outputs.
    """
    env = {k: v for k, v in jupyter_env().items() if k not in environ}
    if "MPLBACKEND" in environ:
        env["MPLBACKEND"] = INLINE_BACKEND
    return env


@contextmanager
def _environment(overrides: dict[str, str]) -> Iterator[None]:
    """Set ``overrides`` in ``os.environ`` (which the kernel inherits), then restore."""
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run(
    notebook: Path,
    out_dir: Path = BUILD_DIR,
    parameters: dict | None = None,
    timeout: int = 900,
) -> tuple[Path, float]:
    """Execute ``notebook`` into ``out_dir``; return the output path and seconds taken.

    A failing cell raises ``papermill.PapermillExecutionError`` naming the cell and
    its error; the partly executed notebook is still written for debugging.
    """
    import papermill

    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / notebook.name
    started = time.perf_counter()
    with _environment(kernel_env()):
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=parameters or {},
            cwd=str(notebook.parent),
            kernel_name="python3",
            execution_timeout=timeout,
            progress_bar=False,
        )
    return output, time.perf_counter() - started

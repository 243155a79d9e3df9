"""Run the lessons headless with papermill: the same code for ``make run`` and the tests.

Executed copies land in ``build/notebooks/`` (for the rendered docs and for
debugging); the committed ``.ipynb`` files stay without outputs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from neuralake.settings import project_dir, state_dir

NOTEBOOK_DIR = project_dir() / "notebooks"
BUILD_DIR = project_dir() / "build" / "notebooks"


def lessons(folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered lessons, in order: ``00_welcome.ipynb``, ``01_...``."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def jupyter_env() -> dict[str, str]:
    """Keep Jupyter's runtime, data and config inside the state folder, not in $HOME."""
    jupyter = state_dir() / "jupyter"
    jupyter.mkdir(parents=True, exist_ok=True)
    return {
        "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
        "JUPYTER_DATA_DIR": str(jupyter / "data"),
        "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
        "IPYTHONDIR": str(jupyter / "ipython"),
        "MPLBACKEND": "agg",
    }


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

    os.environ.update({k: v for k, v in jupyter_env().items() if k not in os.environ})
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / notebook.name
    started = time.perf_counter()
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

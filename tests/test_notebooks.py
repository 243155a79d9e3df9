"""The notebooks are the product and the tests.

Static checks: every lesson and lab is a jupytext pair in sync, committed without
outputs, with exactly one ``parameters`` cell. Then every lesson runs, in numbered
order, with papermill against the stack; executed copies land in build/notebooks/.
"""

from __future__ import annotations

import os
from pathlib import Path

import jupytext
import nbformat
import pytest

from neuralake.lab import notebooks
from neuralake.lab.stack import processes
from neuralake.lab.stack import spark_cluster as cluster
from neuralake.lab.writer import control

ROOT = Path(__file__).resolve().parents[1]
PAIRED = sorted(
    p
    for folder in ("notebooks", "labs")
    for p in (ROOT / folder).rglob("*.ipynb")
    if ".ipynb_checkpoints" not in p.parts and not p.name.endswith(".student.ipynb")
)


def ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


def cells(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_there_are_lessons():
    assert [p.name[:2] for p in notebooks.lessons()][:1] == ["00"]


def test_lesson_parts_sort_after_their_lesson(tmp_path):
    names = ["02_catalog", "01b_production", "00_welcome", "01_fundamentals", "notes", "1_x"]
    for name in names:
        (tmp_path / f"{name}.ipynb").write_text("{}")
    found = [p.stem for p in notebooks.lessons(tmp_path)]
    assert found == ["00_welcome", "01_fundamentals", "01b_production", "02_catalog"]


def test_kernel_gets_the_inline_backend_when_agg_is_set():
    assert notebooks.kernel_env({"MPLBACKEND": "agg"})["MPLBACKEND"] == notebooks.INLINE_BACKEND
    assert "MPLBACKEND" not in notebooks.kernel_env({})  # Jupyter's default is inline already


def images(nb: nbformat.NotebookNode) -> int:
    """How many image outputs (PNG or SVG) an executed notebook holds."""
    return sum(
        1
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type in ("display_data", "execute_result")
        and {"image/png", "image/svg+xml"} & set(o.get("data", {}))
    )


def plots(source: Path) -> bool:
    """Whether a lesson's source draws with matplotlib."""
    return "matplotlib" in source.read_text()


@pytest.mark.notebook
def test_runner_keeps_plots_even_when_agg_is_set(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "agg")
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("N = 3", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(
                "import matplotlib.pyplot as plt\nplt.plot(range(N))\nplt.show()"
            ),
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    source = tmp_path / "plot.ipynb"
    nbformat.write(nb, source)
    output, _ = notebooks.run(source, out_dir=tmp_path / "out", parameters={"N": 4})
    assert images(nbformat.read(output, as_version=4)) == 1, "plt.show() drew no image"
    assert os.environ["MPLBACKEND"] == "agg", "the runner must restore the caller's environment"


@pytest.mark.parametrize("ipynb", PAIRED, ids=ids(PAIRED))
def test_pair_is_in_sync(ipynb: Path):
    source = ipynb.with_suffix(".py")
    assert source.exists(), (
        f"{ipynb.name} has no py:percent pair: jupytext --set-formats ipynb,py:percent"
    )
    from_py = jupytext.read(source)
    from_ipynb = nbformat.read(ipynb, as_version=4)
    assert cells(from_py) == cells(from_ipynb), (
        f"{ipynb.name} and {source.name} differ: run jupytext --sync {source.relative_to(ROOT)}"
    )


@pytest.mark.parametrize("ipynb", PAIRED, ids=ids(PAIRED))
def test_committed_without_outputs(ipynb: Path):
    nb = nbformat.read(ipynb, as_version=4)
    dirty = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.outputs or c.execution_count)
    ]
    assert not dirty, f"{ipynb.name}: cells {dirty} carry outputs; clear them before committing"


@pytest.mark.parametrize("ipynb", PAIRED, ids=ids(PAIRED))
def test_exactly_one_parameters_cell(ipynb: Path):
    nb = nbformat.read(ipynb, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{ipynb.name} has {len(tagged)} cells tagged 'parameters'"
    assert nb.metadata.kernelspec.name == "python3"


@pytest.mark.stack
@pytest.mark.notebook
@pytest.mark.parametrize("lesson", notebooks.lessons(), ids=[p.name for p in notebooks.lessons()])
def test_lesson_runs_against_the_stack(lesson: Path, stack_settings):
    before = {row.table for row in control.status(stack_settings) if row.alive}
    spark_cluster = cluster.cluster(stack_settings)
    cluster_was_up = processes.running(spark_cluster.pid_file("master")) is not None
    try:
        output, seconds = notebooks.run(lesson)
    except Exception:
        # A lesson that fails half way leaves its writer processes (and lesson 06 its Spark
        # cluster) running; stop what it started so the next lesson starts from a quiet
        # stack (and CI can exit).
        after = {row.table for row in control.status(stack_settings) if row.alive}
        for table in sorted(after - before):
            control.down(stack_settings, table)
        if not cluster_was_up:
            cluster.down(spark_cluster)
        raise
    executed = nbformat.read(output, as_version=4)
    errors = [
        o
        for c in executed.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]
    assert not errors
    if plots(lesson.with_suffix(".py")):
        assert images(executed), f"{lesson.name} plots, but its executed copy holds no image"
    print(f"{lesson.name}: {seconds:.1f} s")

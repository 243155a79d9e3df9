"""The notebooks are the product and the tests.

Static checks: every lesson and lab is a jupytext pair in sync, committed without
outputs, with exactly one ``parameters`` cell. Then every lesson runs, in numbered
order, with papermill against the stack; executed copies land in build/notebooks/.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest

from neuralake import notebooks

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
    output, seconds = notebooks.run(lesson)
    executed = nbformat.read(output, as_version=4)
    errors = [
        o
        for c in executed.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]
    assert not errors
    print(f"{lesson.name}: {seconds:.1f} s")

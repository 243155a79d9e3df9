"""JupyterLab, the students' real tool, started as ``make lab`` starts it and driven in
a real headless Chromium.

Lesson 00 runs through the UI (*Run > Run All Cells*) against the running stack, and
its outputs show in the page. Lab 01's student notebook fails its first check with the
hint, then passes once the solution is typed into the exercise cell.

The server gets the ``lab`` target's own arguments, read from the Makefile, with a free
port, a token, and a temporary root folder holding copies of the notebooks (JupyterLab
saves what it runs: the checkout's notebooks stay untouched). Needs Debian's Chromium at
/usr/bin/chromium (``make setup`` installs it).
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nbformat
import pytest
from browser import ARGS, CHROMIUM
from playwright.sync_api import Browser, Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

import neuralake
from neuralake.lab.graders import build_lab, lab01
from neuralake.lab.graders.build import SOLUTION_TAG
from neuralake.lab.stack.processes import free_port, serving

ROOT = Path(__file__).resolve().parents[1]
LESSON = "notebooks/00_welcome.ipynb"
LAB = "labs/01_delta/01_delta.ipynb"
# Errors, and anything else a cell writes to stderr, show with this type.
STDERR = "application/vnd.jupyter.stderr"
ERRORS = f".jp-OutputArea-output[data-mime-type='{STDERR}']"
# Generous: the lab machine runs other jobs; every wait ends as soon as its condition holds.
START_S = 120  # JupyterLab answering
RUN_S = 150  # a notebook's cells (lab 01's set-up cell builds six exercises' tables)

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install chromium"
    ),
]


def make_lab_command(root_dir: Path, port: int) -> tuple[list[str], dict[str, str]]:
    """The Makefile's ``lab`` command and Jupyter environment, for another root and port.

    Returns the ``jupyter lab`` arguments (the venv's ``jupyter`` in place of ``uv run``)
    and the ``JUPYTER_*``/``IPYTHONDIR`` variables, pointed into ``root_dir``'s sibling
    ``jupyter-state`` folder as the Makefile points them into ``.state/jupyter``.
    """
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^lab:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe, "the Makefile has no lab target"
    line = recipe.group(1).replace("\\\n", " ")
    words = shlex.split(line)
    assert words[:4] == ["$(JUPYTER_ENV)", "$(RUN)", "jupyter", "lab"], line
    allow_root = ["--allow-root"] if os.geteuid() == 0 else []
    args = [str(Path(sys.executable).with_name("jupyter")), "lab"]
    for word in words[4:]:
        if word == "$(ALLOW_ROOT)":
            args += allow_root
        elif word.startswith("--ServerApp.root_dir="):
            args.append(f"--ServerApp.root_dir={root_dir}")
        else:
            assert "$(" not in word, f"the lab target uses {word}: teach this test about it"
            args.append(word)
    assert args.count("--port") == 1 and "--ip" in args, line
    args[args.index("--port") + 1] = str(port)
    state = root_dir.parent / "jupyter-state"
    jupyter_env = re.findall(r"(\w+)=\$\(JUPYTER_STATE\)/(\w+)", makefile)
    assert {name for name, _ in jupyter_env} >= {"JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR"}
    return args, {name: str(state / folder) for name, folder in jupyter_env}


def test_the_test_starts_jupyterlab_as_make_lab_does(tmp_path: Path) -> None:
    args, env = make_lab_command(tmp_path / "root", 8899)
    assert args[1:] == [
        "lab",
        "--ip",
        "127.0.0.1",
        "--port",
        "8899",
        "--no-browser",
        *(["--allow-root"] if os.geteuid() == 0 else []),
        f"--ServerApp.root_dir={tmp_path / 'root'}",
        "--LabApp.default_url=/lab/tree/notebooks/00_welcome.ipynb",
    ]
    assert set(env) == {
        "JUPYTER_RUNTIME_DIR",
        "JUPYTER_DATA_DIR",
        "JUPYTER_CONFIG_DIR",
        "IPYTHONDIR",
    }


@dataclass(frozen=True)
class Lab:
    url: str  # the server, with no trailing slash
    token: str
    root: Path  # what it serves: copies of the notebooks
    prefix: str  # lab 01's tables in this run


@pytest.fixture(scope="module")
def jupyterlab(
    stack_settings: neuralake.Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    """JupyterLab serving copies of lesson 00 and lab 01's student notebook."""
    tmp = tmp_path_factory.mktemp("jupyterlab")
    root = tmp / "root"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / LESSON, root / LESSON)
    (root / "docs" / "img").mkdir(parents=True)  # lesson 00 draws ../docs/img/architecture.svg
    shutil.copy(ROOT / "docs/img/architecture.svg", root / "docs/img/architecture.svg")
    prefix = f"jlab_{uuid.uuid4().hex[:8]}_"  # not the students' lab01_ tables
    student = build_lab(ROOT / LAB, root / LAB)
    notebook = nbformat.read(student, as_version=4)
    parameters = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    assert 'PREFIX = "lab01_"' in parameters.source
    parameters.source = parameters.source.replace('PREFIX = "lab01_"', f'PREFIX = "{prefix}"')
    nbformat.write(notebook, student)

    port, token = free_port(), secrets.token_hex(16)
    args, jupyter_env = make_lab_command(root, port)
    url = f"http://127.0.0.1:{port}"

    def answers() -> None:
        response = httpx.get(
            f"{url}/api/status", headers={"Authorization": f"token {token}"}, timeout=5
        )
        response.raise_for_status()

    try:
        with serving(
            [*args, f"--IdentityProvider.token={token}"],
            name="jupyterlab",
            check=answers,
            log_file=tmp / "jupyterlab.log",
            pid_file=tmp / "jupyterlab.pid",
            env={**os.environ, **jupyter_env},
            timeout=START_S,
            cwd=root,
        ):
            yield Lab(url, token, root, prefix)
    finally:
        lab01.drop(stack_settings, prefix)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    expect.set_options(timeout=30_000)  # for what is already on the page: load slows drawing
    yield page
    expect.set_options(timeout=5_000)  # Playwright's default, for other modules
    context.close()


def open_notebook(page: Page, lab: Lab, path: str) -> Locator:
    """Open ``path`` in JupyterLab; return its panel once its kernel is idle.

    Each test opens its notebook in a workspace of its own, so JupyterLab does not
    restore the notebooks an earlier test left open (and their kernels).
    """
    workspace = uuid.uuid4().hex[:8]
    page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{path}?token={lab.token}")
    panel = page.locator(".jp-NotebookPanel:visible")
    expect(panel).to_have_count(1, timeout=START_S * 1000)
    # The status bar shows the current notebook's kernel; the toolbar's indicator says idle
    # before the kernel is even connected, and Run All then runs nothing.
    ready = re.compile(rf"Python 3 \(ipykernel\)\W+Idle.*{re.escape(Path(path).name)}", re.S)
    expect(page.locator("#jp-main-statusbar")).to_contain_text(ready, timeout=START_S * 1000)
    return panel


def run_all_cells(page: Page) -> None:
    """*Run > Run All Cells*, from the menu bar."""
    page.locator("#jp-MainMenu .lm-MenuBar-item:has(.lm-MenuBar-itemLabel:text-is('Run'))").click()
    page.locator(".lm-Menu-item:has(.lm-Menu-itemLabel:text-is('Run All Cells'))").click()


def wait_until_finished(page: Page, panel: Locator) -> None:
    """Until the kernel is idle with no cell queued or running, and some cell has run."""
    try:
        page.wait_for_function(
            """(panel) => {
                const status = panel.querySelector('.jp-Notebook-ExecutionIndicator');
                const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
                    .map((p) => p.textContent);
                return status?.dataset.status === 'idle'
                    && !prompts.some((t) => t.includes('*'))
                    && prompts.some((t) => /\\[\\d+\\]/.test(t));
            }""",
            arg=panel.element_handle(),
            timeout=RUN_S * 1000,
            polling=500,
        )
    except PlaywrightTimeoutError:
        status = panel.locator(".jp-Notebook-ExecutionIndicator").get_attribute("data-status")
        prompts = panel.locator(".jp-CodeCell .jp-InputArea-prompt").all_text_contents()
        pytest.fail(f"the notebook did not finish in {RUN_S} s: kernel {status}, prompts {prompts}")


def code_cell(panel: Locator, text: str) -> Locator:
    """The code cell whose source contains ``text`` (exactly one)."""
    cell = panel.locator(
        ".jp-CodeCell", has=panel.page.locator(".jp-InputArea-editor", has_text=text)
    )
    expect(cell).to_have_count(1)
    return cell


def test_lesson_00_runs_in_jupyterlab(jupyterlab: Lab, page: Page) -> None:
    panel = open_notebook(page, jupyterlab, LESSON)
    run_all_cells(page)
    wait_until_finished(page, panel)

    prompts = panel.locator(".jp-CodeCell .jp-InputArea-prompt").all_text_contents()
    assert prompts and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts), prompts
    outputs = panel.locator(".jp-OutputArea-output")
    expect(outputs.filter(has_text="profile: stack")).to_have_count(1)
    expect(outputs.filter(has_text="warehouse: s3://neuralake/warehouse")).to_have_count(1)
    checks = outputs.filter(has_text="S3 get object")  # the round-trip table
    expect(checks).to_contain_text("10 bytes: 'hello lake'")
    expect(checks).to_contain_text("HTTP 200")
    expect(outputs.filter(has_text="xl.meta")).to_contain_text("welcome/hello-")
    for figure in ("image/svg+xml", "image/png"):  # the architecture drawing, the latency plot
        shown = panel.locator(f".jp-OutputArea-output[data-mime-type='{figure}'] :is(img, svg)")
        expect(shown).to_have_count(1)
    expect(panel.locator(ERRORS)).to_have_count(0)


def test_a_lab_check_fails_with_its_hint_then_passes(jupyterlab: Lab, page: Page) -> None:
    panel = open_notebook(page, jupyterlab, LAB)
    run_all_cells(page)  # stops at the first failed check: exercise 1's
    wait_until_finished(page, panel)

    check = code_cell(panel, "lab01.check_changed_in(lab, changed_in)")
    failure = check.locator(".jp-OutputArea-output")
    expect(failure).to_have_attribute("data-mime-type", STDERR)  # its only output: the error
    expect(panel.locator(ERRORS)).to_have_count(1)  # set-up and exercise cells ran clean
    expect(failure).to_contain_text("CheckFailed")
    expect(failure).to_contain_text(f"changed_in is None. {lab01.AUDIT.tier(1)}")
    tables = f"tables under s3://neuralake/warehouse/{jupyterlab.prefix}"
    expect(panel.locator(".jp-OutputArea-output", has_text=tables)).to_have_count(1)

    source = nbformat.read(ROOT / LAB, as_version=4)
    solution = next(
        c.source
        for c, after in zip(source.cells, source.cells[1:], strict=False)
        if SOLUTION_TAG in c.metadata.get("tags", []) and "check_changed_in" in after.source
    )
    exercise = check.locator("xpath=preceding-sibling::*[1]")  # the cell the student fills in
    expect(exercise.locator(".cm-content")).to_contain_text("# YOUR CODE HERE")
    expect(exercise.locator(".cm-content")).to_contain_text("changed_in = None")
    exercise.locator(".cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(solution)
    expect(exercise.locator(".cm-content")).to_contain_text("changed_in = next(")
    page.keyboard.press("Shift+Enter")  # runs the exercise, selects the check
    page.keyboard.press("Shift+Enter")  # runs the check
    expect(check.locator(".jp-OutputArea-output")).to_have_text(
        "PASSED: version 2 changed session 1's task", timeout=RUN_S * 1000
    )
    expect(check.locator(".jp-OutputArea-output")).to_have_count(1)
    wait_until_finished(page, panel)
    expect(exercise.locator(".jp-OutputArea-output")).to_have_count(0)
    expect(panel.locator(ERRORS)).to_have_count(0)

"""Find and build ``neuralake-writer``, the Rust binary in ``rust-writer/``.

The build lands in the cache (``<cache>/rust-writer/target``), outside the checkout,
like every other download and build of the lab; ``make setup`` runs :func:`build`.
Starting a writer never compiles: a missing binary is an error naming ``make setup``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from neuralake.errors import StackError
from neuralake.settings import cache_dir, project_dir

NAME = "neuralake-writer"


def target_dir(cache: Path | None = None) -> Path:
    """Cargo's ``CARGO_TARGET_DIR`` for the writer."""
    return (cache or cache_dir()) / "rust-writer" / "target"


def path(cache: Path | None = None) -> Path:
    """Where the release binary is once built (it may not exist yet)."""
    return target_dir(cache) / "release" / NAME


def find(cache: Path | None = None) -> Path:
    """The built binary, or a ``StackError`` saying how to build it."""
    binary = path(cache)
    if not binary.exists():
        raise StackError(
            f"the Rust writer is not built ({binary} is missing): run `make setup` "
            "(or `neuralake writer build`)"
        )
    return binary


def build(cache: Path | None = None) -> Path:
    """``cargo build --release --locked``: a no-op in about a second when up to date.

    Cargo's progress goes to this process's stderr (a cold build takes minutes).
    """
    if shutil.which("cargo") is None:
        raise StackError(
            "`cargo` is not on PATH: Rust is a prerequisite of the writer; "
            "install it with rustup (https://rustup.rs), then run `make setup` again"
        )
    manifest = project_dir() / "rust-writer" / "Cargo.toml"
    cmd = ["cargo", "build", "--release", "--locked", "--manifest-path", str(manifest)]
    env = {**os.environ, "CARGO_TARGET_DIR": str(target_dir(cache))}
    result = subprocess.run(cmd, env=env)
    if result.returncode != 0:
        raise StackError(
            f"building the Rust writer failed (cargo exit code {result.returncode}): "
            "see cargo's messages above"
        )
    return find(cache)

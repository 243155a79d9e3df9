"""Install the stack's servers into the cache folder, once: nothing downloads at run time.

- MinIO: built from its Go module with ``go install`` (about 3 minutes cold on 2 cores,
  a few seconds once the Go caches are warm).
- Kafka and Spark's extra jars: resolved by Maven from Maven Central into the local
  Maven repository; we keep only the resulting classpath, so nothing is copied twice.

Every step is idempotent: a finished install is found and reused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from neuralake.errors import StackError
from neuralake.lab.stack import versions
from neuralake.settings import Settings, cache_dir, project_dir


def minio_binary(cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / "minio" / versions.MINIO_GO_VERSION / "minio"


def install_minio(cache: Path | None = None) -> Path:
    """Build the pinned MinIO with ``go install`` unless it is already in the cache."""
    target = minio_binary(cache)
    if target.exists():
        return target
    _require("go", "install Go 1.24 or newer (https://go.dev/doc/install), or use --docker")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as gobin:
        # GOTOOLCHAIN=local: build with the Go on this machine, never fetch another one.
        env = {**os.environ, "GOBIN": gobin, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
        module = f"{versions.MINIO_GO_MODULE}@{versions.MINIO_GO_VERSION}"
        _run(["go", "install", "-trimpath", "-ldflags=-s -w", module], env=env, what="MinIO")
        Path(gobin, "minio").rename(target)  # atomic: a half-built binary is never found
    return target


def kafka_classpath(cache: Path | None = None) -> str:
    """The broker's Java classpath, resolved by :func:`install_kafka`."""
    return _read_classpath(_classpath_file("kafka", versions.KAFKA_VERSION, cache), "Kafka")


def install_kafka(cache: Path | None = None) -> str:
    return _install_classpath("kafka", versions.KAFKA_VERSION, cache, "Kafka")


def spark_jars(cache: Path | None = None) -> list[Path]:
    """Jars to hand to Spark with ``spark.jars``: Delta Lake and S3A."""
    classpath = _read_classpath(
        _classpath_file("spark", versions.DELTA_SPARK_VERSION, cache), "Spark's Delta/S3 jars"
    )
    return [Path(jar) for jar in classpath.split(os.pathsep)]


def spark_conf(settings: Settings) -> dict[str, str]:
    """Everything a Spark session needs: the profile's ``spark_options`` plus the jars.

    ``SparkSession.builder.config(map=spark_conf(neuralake.settings())).getOrCreate()``.
    It lives here, not in settings, so that settings never import the installer.
    """
    jars = ",".join(str(jar) for jar in spark_jars(settings.cache_dir))
    return {**settings.spark_options, "spark.jars": jars}


def install_spark_jars(cache: Path | None = None) -> list[Path]:
    _install_classpath("spark", versions.DELTA_SPARK_VERSION, cache, "Spark's Delta/S3 jars")
    return spark_jars(cache)


def install_all(cache: Path | None = None, echo: Callable[[str], None] = print) -> None:
    """Everything the native stack needs. Safe to run again: done steps are skipped."""
    echo(f"MinIO   {versions.MINIO_GO_VERSION}: {install_minio(cache)}")
    echo(f"Kafka   {versions.KAFKA_VERSION}: {len(install_kafka(cache).split(os.pathsep))} jars")
    echo(
        f"Spark   delta-spark {versions.DELTA_SPARK_VERSION}: {len(install_spark_jars(cache))} jars"
    )


def _classpath_file(name: str, version: str, cache: Path | None) -> Path:
    return (cache or cache_dir()) / name / version / "classpath.txt"


def _install_classpath(name: str, version: str, cache: Path | None, what: str) -> str:
    out = _classpath_file(name, version, cache)
    try:
        return _read_classpath(out, what)
    except StackError:
        pass  # not installed yet, or the Maven repository was cleaned: resolve again
    _require("mvn", "install Apache Maven 3.8+ (apt-get install maven), or use --docker")
    out.parent.mkdir(parents=True, exist_ok=True)
    pom = project_dir() / "deps" / name / "pom.xml"
    tmp = out.with_suffix(".tmp")
    _run(
        [
            "mvn",
            "-B",
            "-q",
            "-Dstyle.color=never",
            "-f",
            str(pom),
            "dependency:build-classpath",
            f"-Dmdep.outputFile={tmp}",
        ],
        what=what,
    )
    tmp.rename(out)
    return _read_classpath(out, what)


def _read_classpath(path: Path, what: str) -> str:
    """The saved classpath, if every jar on it still exists."""
    if not path.exists():
        raise StackError(f"{what} are not installed: run `make setup`")
    classpath = path.read_text().strip()
    missing = [jar for jar in classpath.split(os.pathsep) if not Path(jar).exists()]
    if missing:
        raise StackError(f"{what}: {missing[0]} is gone from the Maven cache: run `make setup`")
    return classpath


def _require(tool: str, fix: str) -> None:
    if shutil.which(tool) is None:
        raise StackError(f"`{tool}` is not on PATH: {fix}")


def _run(cmd: list[str], what: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise StackError(f"installing {what} failed ({' '.join(cmd[:3])}...): {' | '.join(tail)}")

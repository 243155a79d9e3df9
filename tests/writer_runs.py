"""What the writer's integration tests share: an ``ingest`` process started by hand, a
producer in a thread, and the clean-up that stops a test's writer and removes its topic,
state and tables."""

from __future__ import annotations

import shutil
import subprocess
import threading

from neuralake.delta import drop_table
from neuralake.lab.stack.processes import free_port
from neuralake.lab.writer import binary, control
from neuralake.settings import Settings
from neuralake.streaming import produce, topics
from neuralake.streaming.schemas import dead_letter_uri


def quiet(_: str) -> None:
    pass


def start_ingest(
    s: Settings, topic: str, table: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """``neuralake-writer ingest *args`` on ``table``, a process of its own with a free metrics
    port; ``env`` adds or overrides its variables (``NEURALAKE_WRITER_GROUP_ID``, ...)."""
    full = {
        **control.process_env(s, topic=topic, table_uri=s.table_uri(table)),
        "NEURALAKE_WRITER_METRICS_ADDR": f"127.0.0.1:{free_port()}",
        **(env or {}),
    }
    return subprocess.Popen(
        [str(binary.find()), "ingest", *args],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def remove_run(s: Settings, topic: str, table: str) -> None:
    """Stop ``table``'s writer processes, then delete its state, ``topic`` and both tables."""
    control.down(s, table, echo=quiet)
    shutil.rmtree(s.state_dir / "writer" / table, ignore_errors=True)
    topics.delete_topic(s, topic)
    uri = s.table_uri(table)
    for target in (uri, dead_letter_uri(uri)):
        drop_table(target, s.storage_options)


def produce_in_background(s: Settings, **kwargs) -> tuple[threading.Thread, list]:
    """Run :func:`produce.produce` in a thread; its result (or error) lands in the list."""
    out: list = []

    def run() -> None:
        try:
            out.append(produce.produce(s, **kwargs))
        except Exception as err:  # re-raised by the test through the list
            out.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out

"""One message contract for Python and Rust: the shared corpus ``tests/data/wire_corpus.json``.

Each case is ``{"name", "payload" | "payload_hex" | "generate", "verdict", "field",
"timestamp_us"?}``. ``verdict`` is ``"good"`` or ``"malformed"``; ``field`` is the column the
reason must name (a reason about one field starts with ``field '<name>'``), or null for a
problem with the whole payload. ``generate`` builds large payloads instead of storing them:
``template`` with its ``@@`` replaced by ``n - 1`` opening and closing brackets (``nested``:
the message then nests ``n`` levels, itself being level 1), by the ``x`` padding that makes the
payload ``n`` bytes long (``padded``), or by ``n`` nines (``digits``).

The Rust writer runs the same cases (``rust-writer/tests/wire_corpus.rs``); the verdicts and
fields of both must match the corpus, so they match each other.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from neuralake.streaming import wire
from neuralake.streaming.schemas import MESSAGE

CORPUS = Path(__file__).parent / "data" / "wire_corpus.json"
CASES = json.loads(CORPUS.read_text(encoding="utf-8"))
FIELD = re.compile(r"field '([^']+)'")


def payload_of(case: dict) -> bytes:
    if "payload_hex" in case:
        return bytes.fromhex(case["payload_hex"])
    if "payload" in case:
        return case["payload"].encode("utf-8")
    spec = case["generate"]
    template, n = spec["template"], spec["n"]
    filler = {
        "nested": lambda: "[" * (n - 1) + "]" * (n - 1),
        "padded": lambda: "x" * (n - len(template.encode()) + 2),
        "digits": lambda: "9" * n,
    }[spec["kind"]]()
    return template.replace("@@", filler).encode("utf-8")


def reason_field(reason: str) -> str | None:
    """The field a reason names: the rule both decoders follow (prefix ``field '<name>'``)."""
    found = FIELD.match(reason)
    return found.group(1) if found else None


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_python_decoder_agrees_with_the_corpus(case):
    payload = payload_of(case)
    try:
        row = wire.decode(payload)
    except wire.Malformed as err:
        reason = str(err)
        assert case["verdict"] == "malformed", f"rejected a good message: {reason}"
        assert reason_field(reason) == case["field"], reason
        assert "\n" not in reason and len(reason) < 300, reason
        assert case["field"] is not None or "field '" not in reason, reason
        return
    assert case["verdict"] == "good", f"accepted a malformed message: {row}"
    assert row["timestamp"] == case["timestamp_us"]


def test_the_corpus_covers_both_verdicts_and_every_field():
    assert len({c["name"] for c in CASES}) == len(CASES), "case names must be unique"
    fields = {c["field"] for c in CASES if c["verdict"] == "malformed"}
    assert fields == {None, *MESSAGE.names()}
    assert all(c["verdict"] == "good" or "timestamp_us" not in c for c in CASES)
    generated = [len(payload_of(c)) for c in CASES if "generate" in c]
    assert max(generated) >= 1_000_000


def test_a_null_payload_is_malformed():
    with pytest.raises(wire.Malformed, match="null payload"):
        wire.decode(None)


def test_any_bytes_give_a_row_or_malformed_and_nothing_else():
    """Random mutations of corpus payloads: decode returns or raises Malformed, never more."""
    rng = random.Random(14)
    seeds = [payload_of(c) for c in CASES if "generate" not in c]
    outcomes = {"good": 0, "malformed": 0}
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data) + 1)
            action = rng.randrange(3)
            if action == 0 and data:
                del data[min(at, len(data) - 1)]
            elif action == 1:
                data.insert(at, rng.choice(b'{}[]",:\\0123456789eE.-+ntfuaNI\x00\xff'))
            elif data:
                data[min(at, len(data) - 1)] = rng.randrange(256)
        try:
            wire.decode(bytes(data))
            outcomes["good"] += 1
        except wire.Malformed:
            outcomes["malformed"] += 1
    assert outcomes["good"] > 0 and outcomes["malformed"] > 0, outcomes

"""The message format on the wire: encode rows in bulk, decode and check one message.

Encoding is for the producer, so it works on whole DataFrames: Polars formats the
timestamps and writes NDJSON in one call, about 20x faster than ``json.dumps`` per row.
Decoding is what a consumer does per message; :func:`decode` is the readable reference
for what "malformed" means (see :mod:`neuralake.streaming.schemas`), and the Rust writer
(``rust-writer/src/decode.rs``) follows it: both run the shared corpus
``tests/data/wire_corpus.json`` and must give every case the same verdict and field.

The rules, checked in this order (the first one broken is the reason):

1. the payload is UTF-8 (no null payload);
2. it is strict JSON: no ``NaN``/``Infinity`` (Python's ``json`` accepts them, JSON does not);
3. it nests at most :data:`MAX_DEPTH` levels of objects and arrays (the message is level 1),
   so a hostile payload cannot exhaust a decoder's recursion;
4. it is an object;
5. no field of the message appears twice (``json`` would silently keep the last one);
   repeated unknown keys are ignored like any unknown key;
6. each field, in schema order: present, not null, of its type and within its column's range.
   ``timestamp`` is RFC 3339 (``YYYY-MM-DDTHH:MM:SS[.fraction]`` then ``Z`` or ``+HH:MM``,
   uppercase ``T`` and ``Z``, 1 to 9 fraction digits, truncated to microseconds) or an integer
   of epoch **microseconds**; either way the instant must fall in years 1..9999 UTC, the
   range of a Delta ``date`` partition. An integer is never guessed to be milliseconds or
   nanoseconds: epoch nanoseconds are out of range (malformed), epoch milliseconds are read
   as microseconds and land in January 1970.

A reason that concerns one field starts with ``field '<name>'``; a reason about the whole
payload names no field.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime

import polars as pl

from neuralake.streaming.schemas import MESSAGE

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.6fZ"  # RFC 3339, microseconds, UTC
MAX_DEPTH = 64  # levels of nested objects and arrays, the message object counting as 1

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FLOAT32_MAX = 3.4028234663852886e38
_MIN_US, _MAX_US = -62_135_596_800_000_000, 253_402_300_799_999_999  # years 1..9999
# The shape of an RFC 3339 timestamp, with hours, minutes and seconds in range (no leap
# second: neither Python nor Delta has one). Dates are checked by `datetime` afterwards.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_TOO_DEEP = f"not JSON this writer accepts: nested deeper than {MAX_DEPTH} levels"


class Malformed(ValueError):
    """A message that cannot become a row; ``str(error)`` is the dead letter's reason."""


def encode(frame: pl.DataFrame) -> tuple[list[bytes], list[bytes]]:
    """(values, keys) for the rows of ``frame`` (columns as in MESSAGE): one message each."""
    text = frame.select(MESSAGE.names()).with_columns(
        pl.col("timestamp").dt.strftime(TIMESTAMP_FORMAT)
    )
    buffer = io.BytesIO()
    text.write_ndjson(buffer)
    values = buffer.getvalue().splitlines()
    keys = (
        frame.select(pl.format("{}:{}", "session_id", "channel").cast(pl.Binary))
        .to_series()
        .to_list()
    )
    return values, keys


def decode(payload: bytes | None) -> dict:
    """The row in one message: column -> value, ``timestamp`` as epoch microseconds.

    Raises :class:`Malformed` (and nothing else, whatever the bytes) with a one-line reason
    that names the field and the problem.
    """
    if payload is None:
        raise Malformed("message has no value (null payload)")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as err:
        raise Malformed(f"not UTF-8: {err.reason} at byte {err.start}") from None
    message = _parse(text)
    if not isinstance(message, dict):
        raise Malformed(f"not a JSON object but {_kind(message)}")
    for name in getattr(message, "repeated", ()):
        if name in _CHECKS:
            raise Malformed(f"field {name!r} appears more than once")
    row = {}
    for name, check in _CHECKS.items():
        value = message.get(name)
        if value is None:
            raise Malformed(f"field {name!r} is {'null' if name in message else 'missing'}")
        row[name] = check(name, value)
    return row


class _Repeated(dict[str, object]):
    """A JSON object that had repeated keys: ``repeated`` lists them in the order they recur."""

    __slots__ = ("repeated",)
    repeated: list[str]


class _HugeInt(int):
    """An integer literal longer than Python converts (4,300 digits): out of every range."""

    def __repr__(self) -> str:
        return "an integer of more than 4300 digits"


def _object(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    repeated, seen = _Repeated(pairs), set()
    repeated.repeated = []
    for key, _ in pairs:
        if key in seen and key not in repeated.repeated:
            repeated.repeated.append(key)
        seen.add(key)
    return repeated


def _no_constant(name: str) -> None:
    raise Malformed(f"not JSON: {name} is not a JSON number")


def _huge_int(digits: str) -> int:
    try:
        return int(digits)
    except ValueError:
        return _HugeInt(-1 if digits.startswith("-") else 1)


# Module-level decoders: json.loads with options builds a new decoder on every call.
_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_no_constant)
_HUGE_DECODER = json.JSONDecoder(
    object_pairs_hook=_object, parse_constant=_no_constant, parse_int=_huge_int
)


def _parse(text: str) -> object:
    """Strict JSON, nested at most MAX_DEPTH levels."""
    try:
        value = _loads(_DECODER, text)
    except Malformed:
        raise
    except ValueError:  # an integer too long for int(): parse again, keeping it as _HugeInt
        value = _loads(_HUGE_DECODER, text)
    # Cheap first: a message without a second '{' or any '[' cannot nest.
    if ("[" in text or text.find("{", text.find("{") + 1) >= 0) and _deeper_than(value, MAX_DEPTH):
        raise Malformed(_TOO_DEEP)
    return value


def _loads(decoder: json.JSONDecoder, text: str) -> object:
    try:
        return decoder.decode(text)
    except json.JSONDecodeError as err:
        raise Malformed(f"not JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    except RecursionError:
        raise Malformed(_TOO_DEEP) from None


def _deeper_than(value: object, limit: int) -> bool:
    """Does ``value`` nest objects and arrays more than ``limit`` levels deep?"""
    level, current = 1, [value]
    while True:
        inner: list[object] = []
        for item in current:
            if isinstance(item, dict):
                inner.extend(v for v in item.values() if isinstance(v, dict | list))
            elif isinstance(item, list):
                inner.extend(v for v in item if isinstance(v, dict | list))
        if not inner:
            return False
        level += 1
        if level > limit:
            return True
        current = inner


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a string" if isinstance(value, str) else "an array"


def _boolean(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise Malformed(f"field {name!r} must be true or false, got {value!r:.40}")
    return value


def _integer(low: int, high: int, type_name: str) -> Callable[[str, object], int]:
    def check(name: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Malformed(f"field {name!r} must be an integer, got {value!r:.40}")
        if isinstance(value, _HugeInt) or not low <= value <= high:
            raise Malformed(
                f"field {name!r} = {value!r:.40} is out of range for {type_name} ({low}..{high})"
            )
        return value

    return check


def _float32(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Malformed(f"field {name!r} must be a number, got {value!r:.40}")
    try:
        # Rounded to float64 first, as any JSON parser reads a number, then compared.
        wide = float(value) if not isinstance(value, _HugeInt) else math.inf
    except OverflowError:  # an integer beyond float64
        wide = math.inf
    if not math.isfinite(wide) or abs(wide) > _FLOAT32_MAX:
        raise Malformed(f"field {name!r} = {value!r:.40} is out of range for Float32")
    return wide


def _timestamp(name: str, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if isinstance(value, _HugeInt) or not _MIN_US <= value <= _MAX_US:
            raise Malformed(
                f"field 'timestamp' = {value!r:.40} is out of range for epoch microseconds "
                "(years 1..9999)"
            )
        return value
    if not isinstance(value, str):
        raise Malformed(
            f"field 'timestamp' must be an RFC 3339 string or epoch microseconds, got {value!r:.40}"
        )
    if _RFC3339.fullmatch(value) is None:
        raise Malformed(
            f"field 'timestamp' is not RFC 3339 with a UTC offset "
            f"(like 2026-11-23T19:14:44.123456Z): {value!r:.40}"
        )
    try:
        moment = datetime.fromisoformat(value)  # the shape is checked: this checks the date
    except ValueError as err:
        raise Malformed(f"field 'timestamp' is not a valid date ({err}): {value!r:.40}") from None
    delta = moment - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if not _MIN_US <= micros <= _MAX_US:
        raise Malformed(f"field 'timestamp' is out of range (years 1..9999 in UTC): {value!r:.40}")
    return micros


# One check per field, looked up once: comparing Polars dtypes per message is slow.
_BY_TYPE = {
    "Boolean": _boolean,
    "Int16": _integer(-(2**15), 2**15 - 1, "Int16"),
    "Int32": _integer(-(2**31), 2**31 - 1, "Int32"),
    "Float32": _float32,
}
_CHECKS = {
    name: _timestamp if name == "timestamp" else _BY_TYPE[str(dtype)]
    for name, dtype in MESSAGE.items()
}

"""Request bodies decoded at a bounded cost: JSON and YAML with limits on nesting and size.

Owns: turning a body's bytes into a value for every API: JSON (and YAML for
the declarative API) nested at most ``MAX_DEPTH`` levels and holding at most
``MAX_NODES`` values, counted as the value would be written out again (so a
YAML alias "bomb", small as text and huge once expanded, is refused). Every
refusal is a ``ValueError`` whose message says why, which each API already
renders as its own 400.

Must never: recurse over a body (a deep one would exhaust the stack), or let
a body past its limits reach a handler.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from typing import Any

import yaml

from schemas.documents import StrictLoader

#: the deepest nesting of lists and objects a body may have (Compute bodies need 6)
MAX_DEPTH = 32
#: the most values (scalars, lists and objects) one body may hold, aliases expanded
MAX_NODES = 200_000
#: bodies longer than this are decoded in a worker thread, off the event loop
OFF_LOOP_BYTES = 64 * 1024


class BodyTooComplex(ValueError):
    """A body nested too deep or holding too many values."""


def bounded(value: Any) -> Any:
    """``value`` itself, after checking its depth and size without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise BodyTooComplex(f"the body holds more than {MAX_NODES} values")
        if isinstance(node, float) and not math.isfinite(node):
            raise ValueError(f"{node} is not a JSON number")
        if isinstance(node, dict | list):
            if depth > MAX_DEPTH:
                raise BodyTooComplex(f"the body is nested deeper than {MAX_DEPTH} levels")
            items = node.values() if isinstance(node, dict) else node
            stack.extend((item, depth + 1) for item in items)
    return value


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range for a number")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def loads_json(raw: str | bytes, *, unique: bool = False) -> Any:
    """The JSON value of ``raw``; ValueError when it is not JSON (NaN and Infinity, which
    Python's parser takes, are not; nor is a number too large for a float) or past the
    limits; with ``unique``, also when an object gives one key twice."""
    hook = _unique_keys if unique else None
    try:
        return bounded(
            json.loads(raw, parse_constant=_not_json, parse_float=_finite, object_pairs_hook=hook)
        )
    except RecursionError:
        raise BodyTooComplex(f"the body is nested deeper than {MAX_DEPTH} levels") from None


def loads_yaml(raw: str | bytes) -> Any:
    """The YAML value of ``raw`` (safe types only, through libyaml where PyYAML has it:
    the pure-Python parser spends seconds on a few thousand "["); ValueError when it is not
    YAML, gives a key twice, or is past the limits."""
    try:
        return bounded(yaml.load(raw, Loader=StrictLoader))
    except RecursionError:
        raise BodyTooComplex(f"the body is nested deeper than {MAX_DEPTH} levels") from None
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None


async def decode(raw: bytes, loads: Callable[[bytes], Any] = loads_json) -> Any:
    """``loads(raw)``, in a worker thread when ``raw`` is long."""
    if len(raw) > OFF_LOOP_BYTES:
        return await asyncio.to_thread(loads, raw)
    return loads(raw)

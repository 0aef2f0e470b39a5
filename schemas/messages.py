"""Human messages for jsonschema's errors: the field at fault and what was expected.

Owns: turning one ``ValidationError`` into ``(path, message)`` pairs, where
the path is dotted with ``[i]`` for list items and points at the field at
fault (each missing one for ``required``, each unknown one for
``additionalProperties``), and the message says what a valid value is
(a schema's ``title`` says it for patterns and alternatives), then what was
given.

Must never: import anything else from the project, or show a whole value
(long values are cut short).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from typing import Any

from jsonschema.exceptions import ValidationError

from schemas.formats import FORMATS

_TYPES = {"array": "list", "object": "object"}


def path_of(parts: Iterable[str | int], base: str = "") -> str:
    """``spec``, ``["rules", 0, "protocol"]`` -> ``spec.rules[0].protocol``."""
    out = base
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out = f"{out}.{p}" if out else p
    return out


def type_name(value: Any) -> str:
    """The JSON type of a Python value, as messages name it."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "null" if value is None else type(value).__name__


def show(value: Any) -> str:
    """A short rendering of a value: JSON for scalars, the type for lists and objects."""
    if isinstance(value, (dict, list)) or not isinstance(value, (str, int, float, bool)):
        return type_name(value)
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:36] + '..."'


def _got_type(value: Any) -> str:
    name = type_name(value)
    shown = show(value)
    return name if shown == name or value is None else f"{name} {shown}"


def _duplicate(items: list[Any]) -> str:
    seen: set[str] = set()
    for item in items:
        key = json.dumps(item, sort_keys=True)
        if key in seen:
            return show(item)
        seen.add(key)
    return "an item"


def _unknown(err: ValidationError, base: str) -> list[tuple[str, str]]:
    allowed = sorted(err.schema.get("properties") or {})
    listed = f" (allowed: {', '.join(allowed)})" if allowed else ""
    out = []
    for name in err.instance:
        if name in allowed:
            continue
        close = difflib.get_close_matches(str(name), allowed, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        out.append((path_of([*err.absolute_path, str(name)], base), f"unknown field{listed}{hint}"))
    return out


def _expected(err: ValidationError) -> str:
    """What a valid value is, without what was given."""
    value, title = err.validator_value, err.schema.get("title")
    match err.validator:
        case "type":
            names = [value] if isinstance(value, str) else value
            return "expected " + " or ".join(_TYPES.get(t, t) for t in names)
        case "pattern" | "anyOf" if isinstance(title, str):
            return f"must be {title}"
        case "pattern":
            return f"must match {value}"
        case "anyOf":
            return "must match one of the allowed forms"
        case "format":
            return (
                f"must be {FORMATS[value][1]}" if value in FORMATS else f"must be a valid {value}"
            )
        case "enum":
            return "must be one of: " + ", ".join(str(x) for x in value)
        case "const":
            return f"must be {show(value)}"
        case "minimum":
            return f"must be at least {value}"
        case "maximum":
            return f"must be at most {value}"
        case "exclusiveMinimum":
            return f"must be greater than {value}"
        case "minLength":
            return (
                "must not be empty" if value == 1 else f"must be at least {value} characters long"
            )
        case "maxLength":
            return f"must be at most {value} characters long"
        case "maxItems":
            return f"must have at most {value} items"
        case "uniqueItems":
            return f"must not repeat an item ({_duplicate(err.instance)} is repeated)"
        case "not" if isinstance(value, dict) and "required" in value:
            return f"must not set both {' and '.join(value['required'])}"
    return err.message


#: keywords whose message ends with the value given
_SHOW_VALUE = {
    "enum",
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "pattern",
    "format",
    "anyOf",
}
#: keywords whose message ends with the length given
_SHOW_LENGTH = {"maxLength", "maxItems"}


def humanise(err: ValidationError, base: str = "") -> list[tuple[str, str]]:
    """``(path, message)`` for each field ``err`` is about; ``base`` prefixes paths."""
    if err.validator == "required":
        missing = [
            n
            for n in err.validator_value
            if isinstance(err.instance, dict) and n not in err.instance
        ]
        return [(path_of([*err.absolute_path, n], base), "is required") for n in missing]
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        return _unknown(err, base)
    path = path_of(err.absolute_path, base)
    message = _expected(err)
    if (
        err.relative_schema_path
        and len(err.relative_schema_path) >= 2
        and (err.relative_schema_path[-2] == "propertyNames")
    ):
        return [(path, f"invalid key {show(err.instance)}: {message}")]
    if err.validator == "type":
        message += f", got {_got_type(err.instance)}"
    elif err.validator in _SHOW_VALUE:
        message += f" (got {show(err.instance)})"
    elif err.validator in _SHOW_LENGTH:
        message += f" (got {len(err.instance)})"
    return [(path, message)]

"""Human messages for jsonschema's errors: the field path and what was expected.

Owns: turning one ``ValidationError`` into ``(path, message)`` where the path
is dotted with ``[i]`` for list items and points at the field at fault (the
missing one for ``required``, the unknown one for ``additionalProperties``).

Must never: import anything else from the project.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from jsonschema.exceptions import ValidationError

_TYPES = {
    "object": "object",
    "array": "list",
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "null": "null",
}


def _path(parts: Iterable[Any], base: str = "") -> str:
    out = base
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out = f"{out}.{p}" if out else str(p)
    return out


def _type_name(value: Any) -> str:
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


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, (dict, list)) else _type_name(value)
    return text if len(text) <= 40 else text[:37] + "..."


def humanise(err: ValidationError, base: str = "") -> tuple[str, str]:
    path = _path(err.absolute_path, base)
    v = err.validator
    value = err.validator_value
    inst = err.instance
    if v == "required":
        missing = [name for name in value if isinstance(inst, dict) and name not in inst]
        return _path([*err.absolute_path, missing[0] if missing else "?"], base), "is required"
    if v == "additionalProperties":
        allowed = sorted((err.schema.get("properties") or {}).keys())
        extra = sorted(k for k in inst if k not in allowed) if isinstance(inst, dict) else []
        where = _path([*err.absolute_path, extra[0]], base) if extra else path
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return where, f"unknown field{hint}"
    if v == "type":
        want = value if isinstance(value, str) else " or ".join(value)
        want = " or ".join(_TYPES.get(t, t) for t in want.split(" or "))
        return path, f"expected {want}, got {_type_name(inst)} {_show(inst)}"
    if v == "enum":
        return path, f"must be one of: {', '.join(str(x) for x in value)} (got {_show(inst)})"
    if v == "const":
        return path, f"must be {_show(value)} (got {_show(inst)})"
    if v == "minimum":
        return path, f"must be at least {value} (got {inst})"
    if v == "maximum":
        return path, f"must be at most {value} (got {inst})"
    if v == "exclusiveMinimum":
        return path, f"must be greater than {value} (got {inst})"
    if v == "minLength":
        return (
            path,
            "must not be empty" if value == 1 else f"must be at least {value} characters long",
        )
    if v == "maxLength":
        return path, f"must be at most {value} characters long"
    if v == "maxItems":
        return path, f"must have at most {value} items"
    if v == "pattern":
        return path, f"must match {value} (got {_show(inst)})"
    if v == "format":
        return path, f"must be a valid {value} (got {_show(inst)})"
    if v == "propertyNames":
        return path, f"has an invalid key: {err.message}"
    if v == "not" and isinstance(value, dict) and "required" in value:
        return path, f"must not set both {' and '.join(value['required'])}"
    if v == "anyOf":
        described = err.schema.get("description", "").rstrip(".")
        want = f"must be {described}" if described else "matches none of the allowed forms"
        return path, f"{want} (got {_show(inst)})"
    return path, err.message

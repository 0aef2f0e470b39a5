"""JSON Schemas of the Compute API's request bodies, at each microversion.

Owns: ``compute_requests.yaml`` (one schema per request body, by name),
resolving a schema at a microversion (properties marked ``x-since`` or
``x-until`` outside their range are dropped, so they count as additional;
``x-required-since`` adds required properties), and checking a body against
it: the first error found, as (field, value, message); a compiled validator
(fastjsonschema) for the common case of a valid body, jsonschema for the
error.

Must never: import anything else from the project; accept what its schema
refuses.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match

from schemas.names import PRINTABLE, printable, printable_name
from schemas.text import unstorable

_FILE = Path(__file__).parent / "compute_requests.yaml"

Version = tuple[int, int]


@dataclass(frozen=True)
class BodyError:
    #: the field the error is in ("" for the body itself)
    field: str
    value: Any
    message: str


@cache
def _document() -> dict[str, Any]:
    return dict(yaml.safe_load(_FILE.read_text()))


def request_names() -> list[str]:
    return sorted(_document()["requests"])


def _version(text: str) -> Version:
    major, minor = text.split(".")
    return int(major), int(minor)


def _at(node: Any, version: Version) -> Any:
    if isinstance(node, list):
        return [_at(n, version) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("x-since", "x-until", "x-required-since"):
            continue
        if key == "properties" and isinstance(value, dict):
            value = {
                name: prop
                for name, prop in value.items()
                if not (isinstance(prop, dict) and _outside(prop, version))
            }
        out[key] = _at(value, version)
    for since, names in (node.get("x-required-since") or {}).items():
        if version >= _version(since):
            out["required"] = [*out.get("required", []), *names]
    return out


def _outside(prop: dict[str, Any], version: Version) -> bool:
    since, until = prop.get("x-since"), prop.get("x-until")
    return bool((since and version < _version(since)) or (until and version > _version(until)))


@cache
def request_schema(name: str, version: Version) -> dict[str, Any]:
    """The schema of request body ``name`` at ``version`` (KeyError for an unknown name)."""
    doc = _document()
    schema = _at(copy.deepcopy(doc["requests"][name]), version)
    return {"$defs": doc["$defs"], **schema}


_FORMATS = {"printable-name": printable_name, "printable": printable}
_FORMAT_CHECKER = FormatChecker()
for _name, _check in _FORMATS.items():
    _FORMAT_CHECKER.checks(_name)(lambda v, check=_check: not isinstance(v, str) or check(v))
#: Nova's words for a name that is not printable (its InvalidName)
_INVALID_NAME = f"An invalid 'name' value was provided. The name must be: {PRINTABLE}"


@cache
def _validator(name: str, version: Version) -> Draft202012Validator:
    return Draft202012Validator(request_schema(name, version), format_checker=_FORMAT_CHECKER)


@cache
def _fast(name: str, version: Version) -> Any:
    return fastjsonschema.compile(request_schema(name, version), formats=_FORMATS)


def check_request(name: str, version: Version, body: Any) -> BodyError | None:
    """The first error of ``body`` against request schema ``name`` at ``version`` (a
    compiled validator says whether there is one; jsonschema, the reference, finds it).
    Text that cannot be stored (``schemas.text``) is an error wherever it is."""
    bad = unstorable(body)
    if bad:
        field, why = bad[0]
        return BodyError(field.rsplit(".", 1)[-1], _at_path(body, field), why)
    try:
        _fast(name, version)(body)
        return None
    except fastjsonschema.JsonSchemaException:
        pass
    error = best_match(_validator(name, version).iter_errors(body))
    if error is None:
        return None
    if error.validator == "format" and error.validator_value == "printable-name":
        return BodyError("", error.instance, _INVALID_NAME)
    path = [p for p in error.path]
    return BodyError(str(path[-1]) if path else "", error.instance, error.message)


def _at_path(body: Any, field: str) -> Any:
    """The value at a dotted ``field`` path of ``body`` (the field itself when a key is at
    fault, as the path then names the key)."""
    node = body
    for part in re.split(r"\.|\[(\d+)\]", field):
        if not part:
            continue
        if isinstance(node, list) and part.isdigit():
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return field
    return node

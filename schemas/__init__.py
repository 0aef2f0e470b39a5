"""JSON Schemas of every kind desired serves, and the one validator.

Owns: ``kinds/<Kind>.yaml`` (each kind's scope, description and ``spec``
schema, JSON Schema 2020-12) and ``envelope.yaml``; loading and compiling
them once; validating objects and reporting every error with its field path
and what was expected; filling in defaults.

Must never: import anything else from the project (it is the bottom layer),
or accept an object with an unknown field in a strict part of a spec.
"""

from __future__ import annotations

import copy
import ipaddress
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from schemas.messages import humanise

API_VERSION = "desired/v1"
_HERE = Path(__file__).parent


class SchemaError(Exception):
    """An object breaks its schema: ``errors`` lists (field path, message), sorted."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = sorted(set(errors))
        super().__init__("; ".join(f"{p}: {m}" if p else m for p, m in self.errors))


class UnknownKindError(Exception):
    def __init__(self, kind: str, known: tuple[str, ...], what: str = "kind") -> None:
        self.kind = kind
        self.known = known
        self.what = what
        super().__init__(f"unknown {what} {kind!r}; known: {', '.join(known)}")


_formats = FormatChecker()


@_formats.checks("ipv4-network", raises=ValueError)
def _ipv4_network(value: object) -> bool:
    if not isinstance(value, str):
        return True
    ipaddress.IPv4Network(value, strict=True)
    return True


@_formats.checks("ipv4", raises=ValueError)
def _ipv4(value: object) -> bool:
    if not isinstance(value, str):
        return True
    ipaddress.IPv4Address(value)
    return True


def _format(check: type) -> Any:
    def test(value: str) -> bool:
        try:
            check(value)
        except ValueError:
            return False
        return True

    return test


#: the same formats for the compiled fast path
_FAST_FORMATS = {
    "ipv4-network": _format(ipaddress.IPv4Network),
    "ipv4": _format(ipaddress.IPv4Address),
}


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    return data


_DOCS: dict[str, dict[str, Any]] = {
    p.stem: _load(p) for p in sorted((_HERE / "kinds").glob("*.yaml"))
}

#: every kind, sorted
KINDS: tuple[str, ...] = tuple(sorted(_DOCS))
#: kind -> "project" | "cluster" | "either"
SCOPES: dict[str, str] = {k: str(d["scope"]) for k, d in _DOCS.items()}
_ENVELOPE = _load(_HERE / "envelope.yaml")


@cache
def _validator(kind: str) -> Draft202012Validator:
    schema = dict(_ENVELOPE)
    schema["properties"] = dict(_ENVELOPE["properties"], spec=_DOCS[kind]["spec"])
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=_formats)


@cache
def _fast(kind: str) -> Any:
    """A compiled validator for the common case (a valid object): about 10x faster.

    It only says yes or no; on no, ``jsonschema`` finds every error with its path.
    The schemas use only keywords both read the same way.
    """
    schema = {k: v for k, v in _ENVELOPE.items() if k != "$schema"}
    schema["properties"] = dict(_ENVELOPE["properties"], spec=_DOCS[kind]["spec"])
    return fastjsonschema.compile(schema, formats=_FAST_FORMATS, use_default=False)


@cache
def _spec_validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(_DOCS[kind]["spec"], format_checker=_formats)


def _check_kind(obj: dict[str, Any]) -> str:
    api_version = obj.get("apiVersion", API_VERSION)
    if api_version != API_VERSION:
        raise UnknownKindError(str(api_version), (API_VERSION,), "apiVersion")
    kind = obj.get("kind")
    if kind not in _DOCS:
        raise UnknownKindError(str(kind), KINDS)
    return str(kind)


def _errors(validator: Draft202012Validator, instance: Any, base: str) -> list[tuple[str, str]]:
    found: list[ValidationError] = list(validator.iter_errors(instance))
    return [humanise(e, base) for e in found]


def validate(obj: dict[str, Any]) -> None:
    """Validates a whole object: envelope, scope and its kind's spec."""
    if not isinstance(obj, dict):
        raise SchemaError([("", "expected an object (a mapping)")])
    kind = _check_kind(obj)
    errors: list[tuple[str, str]] = []
    try:
        _fast(kind)(obj)
    except fastjsonschema.JsonSchemaException as exc:
        errors = _errors(_validator(kind), obj, "") or [("", str(exc))]
    project = (
        (obj.get("metadata") or {}).get("project")
        if isinstance(obj.get("metadata"), dict)
        else None
    )
    scope = SCOPES[kind]
    if scope == "project" and not project:
        errors.append(("metadata.project", f"is required: {kind} is project-scoped"))
    if scope == "cluster" and project:
        errors.append(("metadata.project", f"must be absent: {kind} is cluster-scoped"))
    if errors:
        raise SchemaError(errors)


def validate_spec(kind: str, spec: dict[str, Any]) -> None:
    if kind not in _DOCS:
        raise UnknownKindError(kind, KINDS)
    errors = _errors(_spec_validator(kind), spec, "spec")
    if errors:
        raise SchemaError(errors)


def schema_for(kind: str) -> dict[str, Any]:
    """The spec schema of ``kind`` (with its description and scope), for explain and OpenAPI."""
    if kind not in _DOCS:
        raise UnknownKindError(kind, KINDS)
    return copy.deepcopy(_DOCS[kind])


def _fill(schema: dict[str, Any], value: Any) -> Any:
    if not isinstance(value, dict) or schema.get("type") != "object":
        if isinstance(value, list) and isinstance(schema.get("items"), dict):
            return [_fill(schema["items"], v) for v in value]
        return value
    out = dict(value)
    for name, sub in (schema.get("properties") or {}).items():
        if name not in out and "default" in sub:
            out[name] = copy.deepcopy(sub["default"])
        elif name in out:
            out[name] = _fill(sub, out[name])
    return out


def apply_defaults(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``spec`` with the schema's defaults filled in, nested objects included."""
    if kind not in _DOCS:
        raise UnknownKindError(kind, KINDS)
    result = _fill(_DOCS[kind]["spec"], spec)
    assert isinstance(result, dict)
    return result

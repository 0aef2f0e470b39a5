"""JSON Schemas of every kind desired serves, and the one validator of objects.

Owns: ``kinds/<Kind>.yaml`` (each kind's description, scope, and ``spec``
and ``status`` schemas, JSON Schema 2020-12), ``envelope.yaml`` (what every
object shares) and ``defs.yaml`` (definitions they share); loading them once,
compiling each kind's validator once, validating whole objects and specs
with every error reported by field path, and filling in defaults.

Every string of an object, keys included, must be storable text
(``schemas.text``: no lone surrogate, no NUL) whatever its schema says.
Validation is two-step: a compiled validator (fastjsonschema) says whether
an object is valid, which is the common case and fast; only when it is not
does jsonschema, the reference, find every error. Rules JSON Schema cannot
say (scope, relations between fields) live in ``schemas.checks``.

Must never: import anything else from the project (it is the bottom layer),
change the objects it validates, or accept an unknown field in a strict
part of a spec.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema
import yaml
from jsonschema import Draft202012Validator, FormatChecker, validators

from schemas.checks import scope_rules, spec_rules
from schemas.formats import FORMATS
from schemas.messages import humanise, type_name
from schemas.text import unstorable

__all__ = [
    "API_VERSION",
    "KINDS",
    "SCOPES",
    "SchemaError",
    "UnknownKindError",
    "apply_defaults",
    "schema_for",
    "validate",
    "validate_spec",
]

API_VERSION = "desired/v1"
_HERE = Path(__file__).parent
_DEFS_REF = "defs.yaml#/$defs/"
_SCOPE_NAMES = ("project", "cluster", "either")


class SchemaError(Exception):
    """An object breaks its schema: ``errors`` lists every (field path, message), sorted by path."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = sorted(set(errors), key=_by_path)
        super().__init__("; ".join(f"{p}: {m}" if p else m for p, m in self.errors))


class UnknownKindError(Exception):
    """An object names a kind (or, with ``what="apiVersion"``, an apiVersion) desired does not serve."""

    def __init__(self, kind: str, known: tuple[str, ...], what: str = "kind") -> None:
        self.kind = kind
        self.known = known
        self.what = what
        super().__init__(f"unknown {what} {kind!r}; known: {', '.join(known)}")


def _by_path(error: tuple[str, str]) -> tuple[list[str | int], str]:
    """Sort key: paths in order, with list indexes compared as numbers (rules[2] < rules[10])."""
    path, message = error
    parts = re.split(r"\[(\d+)\]", path)
    return [int(p) if i % 2 else p for i, p in enumerate(parts)], message


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping")
    return data


_DEFS: dict[str, Any] = _load(_HERE / "defs.yaml")["$defs"]


def _inline(node: Any) -> Any:
    """``node`` with each ``$ref`` to ``defs.yaml`` replaced by the definition itself."""
    if isinstance(node, list):
        return [_inline(n) for n in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if ref is None:
        return {k: _inline(v) for k, v in node.items()}
    beside = set(node) - {"$ref", "description"}
    if not isinstance(ref, str) or not ref.startswith(_DEFS_REF) or beside:
        raise ValueError(
            f"unsupported $ref {ref!r} (only {_DEFS_REF}<name>, with only a description)"
        )
    rest = {k: v for k, v in node.items() if k != "$ref"}
    return {**_inline(_DEFS[ref.removeprefix(_DEFS_REF)]), **rest}


def _kind_doc(path: Path) -> dict[str, Any]:
    doc = _inline(_load(path))
    if set(doc) != {"description", "scope", "spec", "status"} or doc["scope"] not in _SCOPE_NAMES:
        raise ValueError(
            f"{path}: needs exactly description, scope ({'|'.join(_SCOPE_NAMES)}), spec, status"
        )
    return doc


_DOCS: dict[str, dict[str, Any]] = {
    p.stem: _kind_doc(p) for p in sorted((_HERE / "kinds").glob("*.yaml"))
}
_ENVELOPE: dict[str, Any] = _inline(_load(_HERE / "envelope.yaml"))

#: every kind, sorted
KINDS: tuple[str, ...] = tuple(sorted(_DOCS))
#: kind -> "project" | "cluster" | "either"
SCOPES: dict[str, str] = {k: d["scope"] for k, d in _DOCS.items()}

# 1.0 is not an integer here (it is in JSON Schema): the compiled validator
# agrees, and counts stay Python ints downstream.
_Validator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, v: isinstance(v, int) and not isinstance(v, bool)
    ),
)
_FORMAT_CHECKER = FormatChecker(formats=())
for _name, (_check, _) in FORMATS.items():
    _FORMAT_CHECKER.checks(_name)(lambda v, check=_check: not isinstance(v, str) or check(v))


@dataclass(frozen=True)
class _Compiled:
    """One schema, compiled both ways."""

    #: raises fastjsonschema.JsonSchemaException if the value is invalid
    fast: Callable[[Any], Any]
    #: the reference, run only to find the errors
    full: Draft202012Validator
    #: prefix of error paths
    base: str

    def errors(self, value: Any) -> list[tuple[str, str]]:
        try:
            self.fast(value)
        except fastjsonschema.JsonSchemaException:
            return self._full_errors(value)
        if _integral_float(value):
            # the compiled check takes 1.0 for an integer; only the reference can tell
            return self._full_errors(value)
        return []

    def _full_errors(self, value: Any) -> list[tuple[str, str]]:
        return [pair for e in self.full.iter_errors(value) for pair in humanise(e, self.base)]


def _integral_float(value: Any) -> bool:
    """Whether ``value`` holds a float like 1.0 anywhere (rare: the slow path checks it)."""
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, dict):
        return any(_integral_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_integral_float(v) for v in value)
    return False


@cache
def _compiled(kind: str, part: str) -> _Compiled:
    """The validator of a whole object (``part="object"``) or of a spec (``"spec"``) of ``kind``."""
    doc = _DOCS[kind]
    if part == "object":
        properties = dict(_ENVELOPE["properties"], spec=doc["spec"], status=doc["status"])
        schema, base = dict(_ENVELOPE, properties=properties), ""
    else:
        schema, base = dict(doc["spec"], **{"$schema": _ENVELOPE["$schema"]}), "spec"
    _Validator.check_schema(schema)
    # fastjsonschema knows drafts up to 7; the schemas use only keywords both read alike
    fast = fastjsonschema.compile(
        {k: v for k, v in schema.items() if k != "$schema"},
        formats={name: check for name, (check, _) in FORMATS.items()},
        use_default=False,
    )
    return _Compiled(fast, _Validator(schema, format_checker=_FORMAT_CHECKER), base)


def _known(kind: str) -> str:
    if kind not in _DOCS:
        raise UnknownKindError(kind, KINDS)
    return kind


def _kind_of(obj: dict[str, Any]) -> str:
    api_version = obj.get("apiVersion", API_VERSION)
    if api_version != API_VERSION:
        raise UnknownKindError(str(api_version), (API_VERSION,), "apiVersion")
    kind = obj.get("kind")
    if kind is None:
        raise SchemaError([("kind", f"is required (one of: {', '.join(KINDS)})")])
    if not isinstance(kind, str):
        raise SchemaError([("kind", f"expected string, got {type_name(kind)}")])
    return _known(kind)


def validate(obj: dict[str, Any]) -> None:
    """Checks a whole object: envelope, its kind's spec and the kind's scope.

    An absent apiVersion means desired/v1. Raises UnknownKindError for an
    unknown kind or apiVersion, SchemaError with every error otherwise.
    """
    if not isinstance(obj, dict):
        raise SchemaError([("", f"expected object, got {type_name(obj)}")])
    kind = _kind_of(obj)
    errors = unstorable(obj) + _compiled(kind, "object").errors(obj)
    errors += scope_rules(kind, SCOPES[kind], obj)
    errors += spec_rules(kind, obj.get("spec"))
    if errors:
        raise SchemaError(errors)


def validate_spec(kind: str, spec: dict[str, Any]) -> None:
    """Checks a spec alone (paths start with ``spec``); scope is not checked."""
    errors = unstorable(spec, "spec") + _compiled(_known(kind), "spec").errors(spec)
    errors += spec_rules(kind, spec)
    if errors:
        raise SchemaError(errors)


def schema_for(kind: str) -> dict[str, Any]:
    """A copy of the kind's document: ``description``, ``scope``, and the ``spec`` and
    ``status`` schemas (standalone: shared definitions inlined), for explain and OpenAPI."""
    return copy.deepcopy(_DOCS[_known(kind)])


def _fill(schema: dict[str, Any], value: Any) -> Any:
    if isinstance(value, dict) and "properties" in schema:
        out = dict(value)
        for name, sub in schema["properties"].items():
            if name in out:
                out[name] = _fill(sub, out[name])
            elif "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_fill(schema["items"], v) for v in value]
    return value


def apply_defaults(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A new spec: ``spec`` with the schema's defaults filled in, inside present nested
    objects and list items too. ``spec`` is not changed; values it has are shared."""
    filled: dict[str, Any] = _fill(_DOCS[_known(kind)]["spec"], spec)
    return filled

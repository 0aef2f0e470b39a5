"""Validation of whole objects against ``schemas``, in the hierarchy of ``state.errors``.

Owns: turning ``schemas``' errors into ``Invalid`` (with field paths) and
``UnknownKind``, and filling in schema defaults. Every writer of specs (the
APIs, gitsync) validates through here.

Must never: write anything.
"""

from __future__ import annotations

import schemas
from state.envelope import Obj
from state.errors import BadRequest, FieldError, Invalid, UnknownKind


def validate(obj: Obj) -> Obj:
    """Checks an object against its kind's schema; returns it with defaults filled in."""
    try:
        schemas.validate(obj)
    except schemas.UnknownKindError as exc:
        if exc.what != "kind":
            raise BadRequest(str(exc)) from None
        raise UnknownKind(exc.kind, list(exc.known)) from None
    except schemas.SchemaError as exc:
        name = (obj.get("metadata") or {}).get("name")
        errors = [FieldError(path, message) for path, message in exc.errors]
        raise Invalid(f"{obj.get('kind')} {name!r} is invalid", errors) from None
    obj["spec"] = schemas.apply_defaults(obj["kind"], obj.get("spec") or {})
    return obj

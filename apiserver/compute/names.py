"""Nova's free-text names, and the object names desired keeps them under.

Owns: checking a display name as Nova does (1 to 255 printable characters,
no white space at either end; Nova's 400 otherwise), and the readable part of an
object name made from one (lowercase letters, digits and "-"), which the
callers complete with a random or derived suffix.

Must never: decide uniqueness (the store does, by object name).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from apiserver.compute.faults import ComputeFault
from schemas.names import PRINTABLE, printable_name


def display_name(value: Any, field: str = "name") -> str:
    """``value`` if it is a name Nova accepts, else Nova's 400 naming ``field`` (its
    InvalidName for characters that are not printable)."""
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise ComputeFault(400, f"Invalid input for field/attribute {field}.")
    if not printable_name(value):
        raise ComputeFault(
            400, f"An invalid '{field}' value was provided. The {field} must be: {PRINTABLE}"
        )
    return value


#: what an object's name may be (schemas' ``defs.yaml#/$defs/name``)
_OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$")


def is_object_name(text: str, limit: int = 253) -> bool:
    return bool(_OBJECT_NAME.match(text)) and len(text) <= limit


def object_name_for(text: str, fallback: str) -> str:
    """The object for a name users give: the name itself when it is a valid object name,
    else its readable part and a digest of it (so one name is always one object)."""
    if is_object_name(text):
        return text
    # surrogatepass: a name that is not storable text still has a digest, and is then
    # refused where every spec is checked (schemas.text), not here
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{slug(text, fallback)}-{digest}"


def slug(text: str, fallback: str, limit: int = 40) -> str:
    """The readable part of an object name for ``text`` (``fallback`` when none is left)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-") or fallback

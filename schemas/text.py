"""The one rule for text that desired stores.

Owns: what makes a string storable (valid Unicode that both SQLite and
PostgreSQL keep as text: no lone surrogate, which UTF-8 cannot encode, and
no NUL, which PostgreSQL refuses), and finding every such string in a JSON
value (keys included) by field path, with every number JSON cannot write
(NaN, infinities).

Must never: import anything else from the project, or change a value: a
string is refused, never repaired.
"""

from __future__ import annotations

import math
from typing import Any

from schemas.messages import path_of


def unstorable_reason(text: str) -> str | None:
    """Why ``text`` cannot be stored; None when it can."""
    if "\x00" in text:
        return f"must not contain NUL (U+0000, at character {text.index(chr(0)) + 1})"
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        return f"must be valid Unicode: a lone surrogate U+{code:04X} at character {exc.start + 1}"
    return None


def unstorable(value: Any, base: str = "") -> list[tuple[str, str]]:
    """(field path, message) for every string in ``value`` (a JSON value: dicts, lists,
    strings, numbers) that cannot be stored, and every number that is not finite; a bad
    key is reported at its own path."""
    errors: list[tuple[str, str]] = []
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        node, at = stack.pop()
        if isinstance(node, str):
            if (why := unstorable_reason(node)) is not None:
                errors.append((path_of(at, base), why))
        elif isinstance(node, float) and not math.isfinite(node):
            errors.append((path_of(at, base), f"must be a finite number (got {node})"))
        elif isinstance(node, dict):
            for key, item in node.items():
                if isinstance(key, str) and (why := unstorable_reason(key)) is not None:
                    shown = key.encode("unicode_escape", "backslashreplace").decode()
                    errors.append((path_of([*at, shown], base), f"key {why}"))
                stack.append((item, [*at, key]))
        elif isinstance(node, list):
            stack.extend((item, [*at, i]) for i, item in enumerate(node))
    return sorted(errors)

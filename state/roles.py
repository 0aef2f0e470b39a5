"""Roles: the built-in ones, what they imply, and every role's Keystone id.

Owns: the built-in roles (``admin``, ``member``, ``reader``, ``service``),
Keystone's default implications among them (admin implies member, member
implies reader), and the Keystone id of any role, built in or a ``Role``
object: a name-based UUID, the same on every API server and after a restart.

Must never: do I/O.
"""

from __future__ import annotations

import uuid

#: each built-in role and the roles it implies (itself included)
IMPLIED: dict[str, tuple[str, ...]] = {
    "admin": ("admin", "member", "reader"),
    "member": ("member", "reader"),
    "reader": ("reader",),
    "service": ("service",),
}
BUILTIN = tuple(IMPLIED)


def implied(roles: set[str]) -> tuple[str, ...]:
    """``roles`` with every role they imply, sorted."""
    out: set[str] = set()
    for r in roles:
        out.update(IMPLIED.get(r, (r,)))
    return tuple(sorted(out))


def role_id(name: str) -> str:
    """The Keystone id of the role named ``name`` (32 hex digits)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"desired:role:{name}").hex

"""Roles: the built-in ones, what they imply, and every role's Keystone id.

Owns: the built-in roles (``admin``, ``member``, ``reader``, ``service``),
Keystone's default implications among them (admin implies member, member
implies reader), and the Keystone id of any role, built in or a ``Role``
object: a name-based UUID, the same on every API server and after a restart.

Must never: do I/O.
"""

from __future__ import annotations

import uuid

#: the built-in roles
BUILTIN = ("admin", "member", "reader", "service")
#: the roles each role implies directly (Keystone's default implied roles)
IMPLIES: dict[str, tuple[str, ...]] = {"admin": ("member",), "member": ("reader",)}


def implied(roles: set[str]) -> tuple[str, ...]:
    """``roles`` with every role they imply, directly or through others, sorted."""
    out: set[str] = set()
    todo = list(roles)
    while todo:
        role = todo.pop()
        if role not in out:
            out.add(role)
            todo.extend(IMPLIES.get(role, ()))
    return tuple(sorted(out))


def role_id(name: str) -> str:
    """The Keystone id of the role named ``name`` (32 hex digits)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"desired:role:{name}").hex

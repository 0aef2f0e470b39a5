"""etcd's users and roles made as desired needs them, and its authentication turned on.

Owns: granting a role exactly the key ranges asked (what it held beyond them
is revoked), making a user with its password and roles, the root user, and
``AuthEnable``; every step may run again on an etcd where it was done (each
start of ``desired up`` does).

Must never: know which component needs which keys (``state.etcd_roles``), or
leave a role holding a range it was not asked for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from state.errors import Unavailable
from state.etcd import EtcdClient, prefix_end
from state.etcd_wire import MESSAGE, PERMISSION_TYPE

ROOT = "root"


@dataclass(frozen=True, order=True)
class Grant:
    """One permission: ``access`` (READ, WRITE or READWRITE) on ``key`` alone, or on
    every key from ``key`` up to ``range_end``."""

    access: str
    key: bytes
    range_end: bytes = b""

    @staticmethod
    def prefix(access: str, prefix: bytes) -> Grant:
        return Grant(access, prefix, prefix_end(prefix))

    @staticmethod
    def between(access: str, key: bytes, range_end: bytes) -> Grant:
        return Grant(access, key, range_end)


async def _tolerating(client: EtcdClient, method: str, already: str, **fields: object) -> None:
    """An Auth call whose "already so" answer counts as done."""
    try:
        await client.auth(method, **fields)
    except Unavailable as exc:
        if already not in exc.message:
            raise


async def ensure_role(client: EtcdClient, name: str, grants: Iterable[Grant]) -> None:
    """Role ``name`` holds exactly ``grants``."""
    await _tolerating(client, "RoleAdd", "already exists", name=name)
    held = {
        Grant(_access(p.permType), p.key, p.range_end)
        for p in (await client.auth("RoleGet", role=name)).perm
    }
    wanted = set(grants)
    for g in sorted(held - wanted):
        await client.auth("RoleRevokePermission", role=name, key=g.key, range_end=g.range_end)
    for g in sorted(wanted - held):
        perm = MESSAGE["Permission"](
            permType=PERMISSION_TYPE[g.access], key=g.key, range_end=g.range_end
        )
        await client.auth("RoleGrantPermission", name=name, perm=perm)


def _access(number: int) -> str:
    return next(name for name, n in PERMISSION_TYPE.items() if n == number)


async def ensure_user(client: EtcdClient, name: str, password: str, roles: Iterable[str]) -> None:
    """User ``name`` exists with ``password`` and (at least) ``roles``."""
    await _tolerating(client, "UserAdd", "already exists", name=name, password=password)
    await client.auth("UserChangePassword", name=name, password=password)
    for role in roles:
        await _tolerating(client, "UserGrantRole", "already", user=name, role=role)


async def enable(client: EtcdClient, root_password: str) -> None:
    """The root user (with ``root_password``, the one ``client`` presents) and role made,
    and etcd's authentication on."""
    await _tolerating(client, "RoleAdd", "already exists", name=ROOT)
    await ensure_user(client, ROOT, root_password, [ROOT])
    await client.auth("AuthEnable")

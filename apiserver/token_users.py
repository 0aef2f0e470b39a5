"""The users tokens stand for, as they are now: a token dies with its user's account or roles.

Owns: a cache of every User (kept by a watch of the kind) with what a token
needs of it — its id, whether it is enabled, its role assignments — and the
check that a token's user still exists as the same user, is enabled, and
still holds every role the token carries for its scope. Until the watch has
listed every user, a check reads the user from etcd instead.

Must never: accept a token of a deleted, re-created or disabled user, or one
carrying a role its user no longer holds; write anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from apiserver.tokens import Token
from state.envelope import Obj, Ref
from state.errors import DesiredError
from state.store import Store
from state.watch import ADDED, BOOKMARK, DELETED, MODIFIED, ObjectWatch


@dataclass(frozen=True)
class Holder:
    """What tokens need of one user."""

    uid: str
    enabled: bool
    #: (role, project) pairs; project "" for a role on the whole cloud
    roles: frozenset[tuple[str, str]]

    @staticmethod
    def of(user: Obj) -> Holder:
        spec = user.get("spec") or {}
        pairs = {
            (str(a.get("role", "")), str(a.get("project") or ""))
            for a in spec.get("roles") or []
            if isinstance(a, dict)
        }
        return Holder(
            str(user["metadata"]["uid"]), bool(spec.get("enabled", True)), frozenset(pairs)
        )

    def roles_for(self, project: str, implied: Callable[[set[str]], tuple[str, ...]]) -> set[str]:
        """The roles (with those they imply) this user holds for a token scoped to ``project``
        ("" for the whole cloud, or unscoped)."""
        held = {role for role, on in self.roles if not on or (project and on == project)}
        return set(implied(held))


class TokenUsers:
    """Every user, as a watch keeps them; ``holds`` says whether a token is still good."""

    def __init__(self, store: Store, implied: Callable[[set[str]], tuple[str, ...]]) -> None:
        self.store = store
        self.implied = implied
        self.users: dict[str, Holder] = {}
        self.synced = asyncio.Event()

    async def follow(self) -> None:
        """Keeps ``users`` equal to etcd's Users until cancelled, retrying while etcd is away."""
        while True:
            try:
                seen: dict[str, Holder] = {}
                listing = True
                async for ev in ObjectWatch(self.store.etcd, "User"):
                    if ev.type == BOOKMARK:
                        if listing:  # the whole list is in: users missing from it are gone
                            self.users, listing = seen, False
                            self.synced.set()
                        continue
                    if ev.object is None:
                        continue
                    name = str(ev.object["metadata"]["name"])
                    into = seen if listing else self.users
                    if ev.type == DELETED:
                        into.pop(name, None)
                    elif ev.type in (ADDED, MODIFIED):
                        into[name] = Holder.of(ev.object)
            except DesiredError:
                await asyncio.sleep(1.0)

    async def _holder(self, name: str) -> Holder | None:
        if self.synced.is_set():
            return self.users.get(name)
        user = await self.store.get_or_none(Ref("User", None, name))
        return Holder.of(user) if user is not None else None

    async def holds(self, token: Token, keystone_id_of: Callable[[str], str]) -> bool:
        """Whether ``token``'s user is still the same, enabled user with its roles."""
        holder = await self._holder(token.user)
        if holder is None or not holder.enabled:
            return False
        if keystone_id_of(holder.uid) != token.user_id:
            return False  # deleted, and another user made under the name
        return set(token.roles) <= holder.roles_for(token.project, self.implied)

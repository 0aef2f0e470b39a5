"""The users tokens stand for, as they are now: a token dies with its user's account or roles.

Owns: what a token needs of each User — its id, whether it is enabled, its
role assignments — kept by a watch of the kind (``apiserver.kind_cache``),
and the check that a token's user still exists as the same user, is
enabled, and still holds every role the token carries for its scope.

Must never: accept a token of a deleted, re-created or disabled user, or one
carrying a role its user no longer holds; write anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from apiserver.kind_cache import KindCache
from apiserver.tokens import Token
from state.envelope import Obj
from state.store import Store


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
        self.implied = implied
        self.users = KindCache(store, "User", Holder.of)

    async def follow(self) -> None:
        """Keeps the users equal to etcd's until cancelled, retrying while etcd is away."""
        await self.users.follow()

    async def holds(self, token: Token, keystone_id_of: Callable[[str], str]) -> bool:
        """Whether ``token``'s user is still the same, enabled user with its roles."""
        holder = await self.users.get(token.user)
        if holder is None or not holder.enabled:
            return False
        if keystone_id_of(holder.uid) != token.user_id:
            return False  # deleted, and another user made under the name
        return set(token.roles) <= holder.roles_for(token.project, self.implied)

"""The projects tokens are scoped to, as they are now: a token dies with its project.

Owns: what a token needs of each Project — its id, whether it is enabled,
whether its deletion has begun — kept by a watch of the kind
(``apiserver.kind_cache``), and the check that a project-scoped token's
project still exists as the same project (the id the token carries: a
project deleted and made again under its name is another) and is enabled
and not being deleted. Tokens scoped to no project pass.

Must never: accept a token scoped to a deleted, deleting, re-created or
disabled project; write anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from apiserver.kind_cache import KindCache
from apiserver.tokens import Token
from state.envelope import Obj, is_deleting
from state.store import Store


@dataclass(frozen=True)
class Scope:
    """What tokens need of one project."""

    uid: str
    #: enabled and not being deleted
    usable: bool

    @staticmethod
    def of(project: Obj) -> Scope:
        enabled = bool((project.get("spec") or {}).get("enabled", True))
        return Scope(str(project["metadata"]["uid"]), enabled and not is_deleting(project))


class TokenProjects:
    """Every project, as a watch keeps them; ``holds`` says whether a token's scope is
    still good."""

    def __init__(self, store: Store) -> None:
        self.projects = KindCache(store, "Project", Scope.of)

    async def follow(self) -> None:
        """Keeps the projects equal to etcd's until cancelled, retrying while etcd is away."""
        await self.projects.follow()

    async def holds(self, token: Token, keystone_id_of: Callable[[str], str]) -> bool:
        """Whether ``token``'s project (if it has one) is still the same, usable project."""
        if not token.project_id:
            return True
        scope = await self.projects.get(token.project)
        return scope is not None and scope.usable and keystone_id_of(scope.uid) == token.project_id

"""The kinds the declarative API serves and their URL names.

Owns: kind <-> plural mapping and scope checks for URLs and bodies, derived
from ``schemas`` so a new schema is served without further wiring.

Must never: do I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import schemas
from state.errors import BadRequest, UnknownKind


@dataclass(frozen=True)
class KindInfo:
    kind: str
    plural: str
    #: "project", "cluster" or "either"
    scope: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "plural": self.plural, "scope": self.scope}


KINDS: dict[str, KindInfo] = {
    k: KindInfo(k, k.lower() + "s", schemas.SCOPES[k]) for k in schemas.KINDS
}
BY_PLURAL: dict[str, KindInfo] = {i.plural: i for i in KINDS.values()}


def by_plural(plural: str) -> KindInfo:
    info = BY_PLURAL.get(plural.lower())
    if info is None:
        raise UnknownKind(plural, sorted(BY_PLURAL))
    return info


def by_kind(kind: str) -> KindInfo:
    info = KINDS.get(kind)
    if info is None:
        raise UnknownKind(kind, sorted(KINDS))
    return info


def check_scope(info: KindInfo, project: str | None) -> None:
    """Raises BadRequest if ``project`` is not allowed (or missing) for this kind."""
    if info.scope == "project" and not project:
        raise BadRequest(
            f"{info.kind} is project-scoped: set metadata.project "
            f"or use /apis/v1/projects/<project>/{info.plural}"
        )
    if info.scope == "cluster" and project:
        raise BadRequest(f"{info.kind} is cluster-scoped: it has no project (got {project!r})")

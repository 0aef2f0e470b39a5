"""Who may read and write what in the declarative API: a policy rule per kind, scope and verb.

Owns: the rules (in ``apiserver.policy``'s syntax, with Nova's base rules and
Keystone's role implication, as the Compute API's), their names
(``desired:<plural>:read|write``; ``...:cluster`` for the cluster-scoped
objects of a kind that has both, as public images; ``desired:<plural>:list:
all_projects`` for a list or watch across every project), and the check of
one request: 403 Forbidden, in the API's Status, naming what was refused.
The policy's ``project_id`` here is the project's name, as objects and URLs
name projects.

The table (docs/desiredctl.md shows it): a project's readers read its
objects, its members also write them, except Quotas (which would raise a
project's own limits: Nova's ``os-quota-sets:update`` is admin's) and
GitSources (gitsync applies a repository's objects with the cloud's rights);
of the cluster-scoped kinds, readers read Flavors and public Images (Nova
and Glance show them to every user), the others (Host: ``os-hypervisors``,
Aggregate, QuotaClass, Project, User, Role, a cluster GitSource) are admin's alone;
every cluster-scoped object is admin's to write; a list or watch across
every project is admin's (Kubernetes' 403 for a cluster-wide list).
Some fields are admin's to set even on a member's object (``ADMIN_FIELDS``):
a Network's ``shared``, ``external``, ``bridge`` and ``vlan`` (Neutron's
``shared``, ``router:external`` and provider attributes), an Instance's
``evacuate`` (Nova's ``os-evacuate``), an Image's ``file://`` url (hosts
read it from their own disk, as root).

Must never: allow an action it has no rule for; do I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apiserver.auth import Principal
from apiserver.kinds import KINDS, KindInfo
from apiserver.policy import ADMIN, MEMBER_OR_ADMIN, READER_OR_ADMIN, Creds, Policy
from state.envelope import Obj
from state.errors import Forbidden

READ, WRITE = "read", "write"
#: any reader of any project (or of the whole cloud)
ANY_READER = "role:reader or rule:context_is_admin"
#: cluster-scoped kinds readers may read
_READABLE_CLUSTER_KINDS = {"Flavor", "Image"}
#: project-scoped kinds only admins write
_ADMIN_WRITTEN_PROJECT_KINDS = {"Quota", "GitSource"}


def _defaults() -> dict[str, str]:
    rules: dict[str, str] = {}
    for info in KINDS.values():
        base = f"desired:{info.plural}"
        if info.scope != "cluster":  # objects in a project
            rules[f"{base}:{READ}"] = READER_OR_ADMIN
            rules[f"{base}:{WRITE}"] = (
                ADMIN if info.kind in _ADMIN_WRITTEN_PROJECT_KINDS else MEMBER_OR_ADMIN
            )
            rules[f"{base}:list:all_projects"] = ADMIN
        if info.scope != "project":  # cluster-scoped objects
            cluster = base if info.scope == "cluster" else f"{base}:cluster"
            rules[f"{cluster}:{READ}"] = (
                ANY_READER if info.kind in _READABLE_CLUSTER_KINDS else ADMIN
            )
            rules[f"{cluster}:{WRITE}"] = ADMIN
    return rules


def _set(value: Any) -> bool:
    return value not in (None, False)


def _local_file(value: Any) -> bool:
    return isinstance(value, str) and value.lower().startswith("file:")


#: per kind, the spec fields only admins may set, and what counts as setting one
ADMIN_FIELDS: dict[str, tuple[tuple[str, Callable[[Any], bool]], ...]] = {
    "Network": (("shared", _set), ("external", _set), ("bridge", _set), ("vlan", _set)),
    "Instance": (("evacuate", _set),),
    "Image": (("url", _local_file),),
}

DEFAULTS = _defaults()
POLICY = Policy(DEFAULTS)


def action(info: KindInfo, verb: str, project: str | None, *, listing: bool = False) -> str:
    """The rule's name for ``verb`` on ``info``'s objects in ``project`` (None: the
    cluster-scoped ones, or with ``listing`` every project's of a project-scoped kind)."""
    base = f"desired:{info.plural}"
    if project:
        return f"{base}:{verb}"
    if info.scope == "project" or (listing and info.scope == "either"):
        return f"{base}:list:all_projects"
    return f"{base}:{verb}" if info.scope == "cluster" else f"{base}:cluster:{verb}"


def authorize(
    who: Principal, info: KindInfo, verb: str, project: str | None, *, listing: bool = False
) -> None:
    """Raises Forbidden unless ``who`` may ``verb`` (read or write) ``info``'s objects in
    ``project`` (see ``action``)."""
    if who.is_admin:
        return
    rule = action(info, verb, project, listing=listing)
    creds = Creds(who.user, who.project or "", who.roles)
    if POLICY.allows(rule, creds, {"project_id": project or ""}):
        return
    raise Forbidden(_refusal(who, info, verb, project, rule))


def _refusal(who: Principal, info: KindInfo, verb: str, project: str | None, rule: str) -> str:
    what = f"{info.plural} in project {project!r}" if project else f"cluster-scoped {info.plural}"
    if rule.endswith(":list:all_projects"):
        what = f"{info.plural} of every project (name one: /apis/v1/projects/<project>/...)"
    scope = f"project {who.project!r}" if who.project else "no project"
    held = ", ".join(sorted(who.roles)) or "none"
    return (
        f"user {who.user!r} (token scoped to {scope}, roles: {held}) may not {verb} {what}; "
        f"policy {rule!r}"
    )


def guards_fields(who: Principal, obj: Obj) -> bool:
    """Whether ``check_fields`` has anything to check of ``who`` writing ``obj``."""
    return not who.is_admin and str(obj.get("kind")) in ADMIN_FIELDS


def check_fields(who: Principal, obj: Obj, stored: Obj | None) -> None:
    """Raises Forbidden when a caller who is not an admin sets a field of ``ADMIN_FIELDS``
    to a value ``stored`` (the object as it is now, None when new) does not already hold."""
    if not guards_fields(who, obj):
        return
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = {}
    before = (stored or {}).get("spec") or {}
    refused = [
        f"spec.{name}"
        for name, sets in ADMIN_FIELDS[str(obj["kind"])]
        if sets(spec.get(name)) and spec.get(name) != before.get(name)
    ]
    if refused:
        raise Forbidden(
            f"user {who.user!r} may not set {', '.join(refused)} of a {obj['kind']}: "
            "only an admin may"
        )

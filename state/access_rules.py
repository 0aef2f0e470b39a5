"""Keystone access rules: which calls a token of an application credential may make.

Owns: the ``AccessRule`` record (service type, HTTP method, path pattern, its
Keystone id) of a user under ``keys.access_rule(<user uid>, <id>)``, making,
reading, listing and deleting them, and the match of a call against one
(keystonemiddleware's: ``*`` and ``{name}`` match one path segment, ``**``
any number). A rule belongs to its user, not to a credential: credentials
that ask for the same rule share it, and it stays when they go, until its
user deletes it (not while a credential uses it: the caller checks that).

Must never: let a rule match a call of another service or method, or a path
its pattern does not cover.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from state import keys
from state.etcd import EtcdClient, prefix_end

#: the methods a rule may name (Keystone's schema)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})

_PATTERN_PARTS = re.compile(
    r"(?P<tag>\{[^}]*\})|(?P<wild>\*(?=$|[^*]))|(?P<recursive>\*\*)|(?P<literal>[^{}*])"
)


@dataclass(frozen=True)
class AccessRule:
    #: its Keystone id (32 hex digits)
    id: str
    #: the service type it allows calls to (compute, image, network, identity)
    service: str
    method: str
    #: the path it allows, below the service's endpoint ("/v2.1/servers/*/ips")
    path: str

    @property
    def what(self) -> tuple[str, str, str]:
        """What it allows, without its id: rules that allow the same are one rule."""
        return (self.service, self.method, self.path)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @staticmethod
    def from_json(data: bytes) -> AccessRule:
        return AccessRule(**json.loads(data))


def allows(rule: tuple[str, str, str], service: str, method: str, path: str) -> bool:
    """Whether ``rule`` (service, method, path pattern) allows ``method`` ``path`` to
    ``service``."""
    want_service, want_method, pattern = rule
    if (want_service, want_method) != (service, method):
        return False
    regex = ""
    for part in _PATTERN_PARTS.finditer(pattern):
        if part["tag"] or part["wild"]:
            regex += r"[^/]+"
        elif part["recursive"]:
            regex += r".*"
        else:
            regex += re.escape(part["literal"])
    return re.fullmatch(regex, path) is not None


class AccessRules:
    def __init__(self, etcd: EtcdClient) -> None:
        self.etcd = etcd

    async def of_user(self, user: str) -> list[AccessRule]:
        """User ``user``'s (by uid) rules."""
        prefix = keys.access_rules_prefix(user)
        res = await self.etcd.range(prefix, prefix_end(prefix))
        return [AccessRule.from_json(kv.value) for kv in res.kvs]

    async def put(self, user: str, rule: AccessRule) -> None:
        await self.etcd.put(keys.access_rule(user, rule.id), rule.to_json())

    async def delete(self, user: str, rule: AccessRule) -> None:
        await self.etcd.delete(keys.access_rule(user, rule.id))

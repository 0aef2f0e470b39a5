"""Keystone application credentials, kept under the identity keys.

Owns: the ``AppCredential`` record (its owner's uid, name, project, roles,
expiry, whether it is restricted, its access rules, its secret's salted hash) and its keys
(``keys.app_credential``, with ``keys.app_credential_name`` making a name
unique per user in the same transaction): make, read, list a user's, delete.
They live under ``/desired/v1/identity/``, which only API servers' etcd
users reach, not as objects: nothing else needs them.

Must never: keep a secret (only its hash, made by the caller); let two of a
user's credentials share a name.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from state import keys
from state.access_rules import AccessRule
from state.errors import AlreadyExists
from state.etcd import Delete, EtcdClient, Put, absent, prefix_end


@dataclass(frozen=True)
class AppCredential:
    #: its Keystone id (32 hex digits)
    id: str
    #: its owner's uid
    user: str
    name: str
    description: str
    #: the salted hash of its secret (``state.passwords``)
    secret_hash: str
    #: the project its tokens are scoped to, by name
    project: str
    #: the roles its tokens carry (at most those its owner holds on the project)
    roles: tuple[str, ...]
    #: when it stops working (epoch seconds), or None
    expires_at: float | None
    #: may its tokens make application credentials (and trusts)
    unrestricted: bool
    #: the only calls its tokens may make (``state.access_rules``); none: any call
    access_rules: tuple[AccessRule, ...] = ()

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and time.time() >= self.expires_at

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @staticmethod
    def from_json(data: bytes) -> AppCredential:
        doc = json.loads(data)
        rules = tuple(AccessRule(**r) for r in doc.get("access_rules") or ())
        return AppCredential(**{**doc, "roles": tuple(doc["roles"]), "access_rules": rules})


class AppCredentials:
    def __init__(self, etcd: EtcdClient) -> None:
        self.etcd = etcd

    async def create(self, cred: AppCredential) -> None:
        """Stores ``cred``; AlreadyExists when its owner has one of that name."""
        name_key = keys.app_credential_name(cred.user, cred.name)
        res = await self.etcd.txn(
            [absent(name_key)],
            [Put(name_key, cred.id.encode()), Put(keys.app_credential(cred.id), cred.to_json())],
        )
        if not res.succeeded:
            raise AlreadyExists(f"application credential {cred.name!r} exists already")

    async def get(self, cred_id: str) -> AppCredential | None:
        kv = await self.etcd.get(keys.app_credential(cred_id))
        return AppCredential.from_json(kv.value) if kv is not None else None

    async def of_user(self, user: str) -> list[AppCredential]:
        """User ``user``'s (by uid) credentials, by name."""
        prefix = keys.app_credentials_prefix()
        res = await self.etcd.range(prefix, prefix_end(prefix))
        found = [AppCredential.from_json(kv.value) for kv in res.kvs]
        return sorted((c for c in found if c.user == user), key=lambda c: c.name)

    async def delete(self, cred: AppCredential) -> None:
        await self.etcd.txn(
            [],
            [
                Delete(keys.app_credential(cred.id)),
                Delete(keys.app_credential_name(cred.user, cred.name)),
            ],
        )

"""Keystone EC2 credentials: an access key and its secret, for a user and a project.

Owns: the ``Ec2Credential`` record (access key, secret, owner's uid,
project name) under ``keys.ec2_credential(<access>)``, its Keystone
credential id (the SHA-256 of the access key it was made with, as Keystone's:
the id stays when the blob changes), and making, reading, listing, changing
(a new access key or secret) and deleting them. The secret is kept as it is: an EC2
request's signature is checked with it (as Keystone keeps it, encrypted
there; here only the API servers' etcd user reaches the identity keys).

Must never: let two credentials share an access key, or change one another
writer changed first.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from state import keys
from state.errors import AlreadyExists, Conflict
from state.etcd import Delete, EtcdClient, Put, absent, mod_revision_is, prefix_end


@dataclass(frozen=True)
class Ec2Credential:
    access: str
    secret: str
    #: its owner's uid
    user: str
    #: the project it acts in, by name
    project: str
    #: its Keystone credential id when its access key changed since it was made
    made_as: str = ""

    @property
    def id(self) -> str:
        """Its Keystone credential id: the SHA-256 of the access key it was made with."""
        if self.made_as:
            return self.made_as
        return hashlib.sha256(self.access.encode("utf-8", "surrogatepass")).hexdigest()

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @staticmethod
    def from_json(data: bytes) -> Ec2Credential:
        return Ec2Credential(**json.loads(data))


class Ec2Credentials:
    def __init__(self, etcd: EtcdClient) -> None:
        self.etcd = etcd

    async def create(self, cred: Ec2Credential) -> None:
        """Stores ``cred``; AlreadyExists when its access key is taken."""
        key = keys.ec2_credential(cred.access)
        res = await self.etcd.txn([absent(key)], [Put(key, cred.to_json())])
        if not res.succeeded:
            raise AlreadyExists(f"an EC2 credential with access key {cred.access!r} exists")

    async def every(self) -> list[Ec2Credential]:
        prefix = keys.ec2_credentials_prefix()
        res = await self.etcd.range(prefix, prefix_end(prefix))
        return [Ec2Credential.from_json(kv.value) for kv in res.kvs]

    async def get(self, access: str) -> Ec2Credential | None:
        kv = await self.etcd.get(keys.ec2_credential(access))
        return Ec2Credential.from_json(kv.value) if kv is not None else None

    async def replace(self, old: Ec2Credential, new: Ec2Credential) -> None:
        """Puts ``new`` in place of ``old`` at once, if ``old`` is still as read:
        AlreadyExists when ``new``'s access key is another's, Conflict when ``old``
        changed or went meanwhile."""
        old_key, new_key = keys.ec2_credential(old.access), keys.ec2_credential(new.access)
        kv = await self.etcd.get(old_key)
        if kv is None or Ec2Credential.from_json(kv.value) != old:
            raise Conflict(f"the EC2 credential {old.id} changed meanwhile; retry")
        compare = [mod_revision_is(old_key, kv.mod_revision)]
        ops: list[Put | Delete] = [Put(new_key, new.to_json())]
        if new_key != old_key:
            compare.append(absent(new_key))
            ops.insert(0, Delete(old_key))
        res = await self.etcd.txn(compare, ops)
        if not res.succeeded:
            if new_key != old_key and await self.etcd.get(new_key) is not None:
                raise AlreadyExists(f"an EC2 credential with access key {new.access!r} exists")
            raise Conflict(f"the EC2 credential {old.id} changed meanwhile; retry")

    async def delete(self, cred: Ec2Credential) -> None:
        await self.etcd.delete(keys.ec2_credential(cred.access))

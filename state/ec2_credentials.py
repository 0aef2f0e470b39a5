"""Keystone EC2 credentials: an access key and its secret, for a user and a project.

Owns: the ``Ec2Credential`` record (access key, secret, owner's uid,
project name) under ``keys.ec2_credential(<access>)``, its Keystone
credential id (the SHA-256 of the access key, as Keystone's), and making,
reading, listing and deleting them. The secret is kept as it is: an EC2
request's signature is checked with it (as Keystone keeps it, encrypted
there; here only the API servers' etcd user reaches the identity keys).

Must never: let two credentials share an access key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from state import keys
from state.errors import AlreadyExists
from state.etcd import EtcdClient, Put, absent, prefix_end


@dataclass(frozen=True)
class Ec2Credential:
    access: str
    secret: str
    #: its owner's uid
    user: str
    #: the project it acts in, by name
    project: str

    @property
    def id(self) -> str:
        """Its Keystone credential id: the SHA-256 of its access key, in hex."""
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

    async def delete(self, cred: Ec2Credential) -> None:
        await self.etcd.delete(keys.ec2_credential(cred.access))

"""The etcd ``desired up`` runs, secured: TLS to its CA alone, and a user per component.

Owns: starting up's etcd with its certificates (``fixtures.etcd`` with a
``pki`` directory under the data directory), making its users and roles
(``state.etcd_roles``) and turning its authentication on, on every start (a
role changed since is set right), and the credential directory of each of
up's parts.

Must never: start etcd without TLS and authentication, or give a part
another part's credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fixtures.etcd import EtcdServer
from state import etcd_auth, etcd_roles
from state.etcd import EtcdClient
from state.etcd_tls import Credentials


@dataclass(frozen=True)
class UpCredentials:
    """The credentials of each of up's parts."""

    apiserver: Credentials
    reconcilers: Credentials
    hostd: Credentials


def pki_dir(data_dir: Path) -> Path:
    return data_dir / "etcd-pki"


def credentials_of(data_dir: Path, user: str) -> Credentials:
    """The credential directory up made for etcd user ``user``."""
    return Credentials.read(pki_dir(data_dir) / "clients" / user)


def start_etcd(data_dir: Path) -> EtcdServer:
    """up's etcd, started on its data and certificates (made on the first start)."""
    return EtcdServer(data_dir / "etcd", die_with_parent=True, pki=pki_dir(data_dir)).start()


async def secure(server: EtcdServer, host: str, timeout: float) -> UpCredentials:
    """Makes etcd's users and roles for up's parts (hostd's for ``host`` and its simulated
    hosts), turns authentication on, and answers each part's credentials."""
    root = server.credentials(etcd_auth.ROOT)
    made = UpCredentials(
        server.credentials(etcd_roles.APISERVER),
        server.credentials(etcd_roles.RECONCILERS),
        server.credentials(etcd_roles.hostd_user(host)),
    )
    async with EtcdClient(server.url, timeout=timeout, credentials=root) as client:
        await etcd_auth.ensure_role(client, etcd_roles.RECONCILERS, etcd_roles.reconciler_grants())
        await etcd_auth.ensure_role(client, made.hostd.user, etcd_roles.hostd_grants(host))
        for creds, role in (
            (made.apiserver, etcd_auth.ROOT),
            (made.reconcilers, etcd_roles.RECONCILERS),
            (made.hostd, made.hostd.user),
        ):
            await etcd_auth.ensure_user(client, creds.user, creds.password, [role])
        await etcd_auth.enable(client, root.password)
    return made

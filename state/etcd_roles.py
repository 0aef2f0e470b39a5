"""Which etcd keys each of desired's components may touch: the roles of its etcd users.

Owns: the users' names and the key ranges of their roles. The API server is
etcd's root (it issues hosts' credentials, which takes etcd's user and role
calls); the central reconcilers read and write every key but the identity
service's (token key, revocations, login failures); a host's hostd reads its
own assignments and console requests, reads instances' specs (its status
writes are guarded on them), writes instances' statuses, events and console
answers, and its own host record, liveness key and Host object. A credential
for host ``h`` covers ``h`` and its simulated hosts ``h-sim-<n>``
(``hostd.run``).

Must never: grant a hostd a spec it could write beyond its own Host, another
host's assignments, or the identity keys.
"""

from __future__ import annotations

from state import keys
from state.etcd import prefix_end
from state.etcd_auth import Grant

APISERVER = "desired-apiserver"
RECONCILERS = "desired-reconcilers"
#: simulated hosts of host ``h`` are named ``h`` + this + their number
SIMULATED = "-sim-"

READ, WRITE, READWRITE = "READ", "WRITE", "READWRITE"


def hostd_user(host: str) -> str:
    """The etcd user (and role) of the hostd of ``host``."""
    return f"desired-hostd-{host}"


def reconciler_grants() -> list[Grant]:
    root, identity = keys.root(), keys.identity_prefix()
    return [
        Grant.between(READWRITE, root, identity),
        Grant.between(READWRITE, prefix_end(identity), prefix_end(root)),
    ]


def hostd_grants(host: str) -> list[Grant]:
    sims = host + SIMULATED
    grants = [
        Grant.prefix(READ, keys.spec_prefix("Instance")),
        Grant.prefix(READWRITE, keys.status_prefix("Instance")),
        Grant.prefix(WRITE, keys.events_prefix()),
        Grant.prefix(WRITE, keys.console_output("")),
    ]
    for one, named in (
        (keys.assign_prefix(host), keys.assign_named(sims)),
        (keys.console_requests_prefix(host + "/"), keys.console_requests_prefix(sims)),
    ):
        grants += [Grant.prefix(READ, one), Grant.prefix(READ, named)]
    for single, named in (
        (keys.host(host), keys.hosts_named(sims)),
        (keys.alive(host), keys.alive_named(sims)),
        (keys.spec("Host", None, host), keys.spec("Host", None, sims)),
        (keys.status("Host", None, host), keys.status("Host", None, sims)),
    ):
        grants += [Grant(READWRITE, single), Grant.prefix(READWRITE, named)]
    return grants

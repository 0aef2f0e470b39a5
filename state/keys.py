"""The etcd key layout of desired, documented in ``docs/etcd.md``.

Owns: every etcd key string. Other modules build keys only through these
functions, so the layout that integrations watch is spelled out once.

Must never: talk to etcd or know what values look like.

Layout (``ROOT`` is ``/desired/v1``)::

    ROOT/spec/<kind>/<project|_>/<name>     desired object (envelope without status)
    ROOT/status/<kind>/<project|_>/<name>   observed status, written only by reconcilers
    ROOT/events/<project|_>/<time>-<id>     events about objects, on a one-hour lease
    ROOT/hosts/<host>                       host record: capacity, traits, zone
    ROOT/alive/<host>                       bound to the host's lease: liveness
    ROOT/assign/<host>/<uid>                what that host must run: the rendered spec
    ROOT/alloc/<host>                       resources claimed on the host
    ROOT/usage/<project>                    quota usage
    ROOT/ipam/<network uid>/<address>       an address held by an instance's port or a
                                            floating IP
    ROOT/leader/<reconciler>                leader election

``<kind>`` is the kind in lower case (``instance``); ``_`` stands for "no
project" (cluster-scoped objects such as flavors and hosts).
"""

from __future__ import annotations

import hashlib

ROOT = "/desired/v1"
CLUSTER = "_"


_UTF8 = "utf-8"
#: a key built from text that is not storable (a lone surrogate in a name someone looks up)
#: is still a key, of no object, as no such name can be written (schemas.text)
_ANY = "surrogatepass"


def _seg(project: str | None) -> str:
    return project or CLUSTER


def _kind(kind: str) -> str:
    return kind.lower()


def spec(kind: str, project: str | None, name: str) -> bytes:
    return f"{ROOT}/spec/{_kind(kind)}/{_seg(project)}/{name}".encode(_UTF8, _ANY)


def status(kind: str, project: str | None, name: str) -> bytes:
    return f"{ROOT}/status/{_kind(kind)}/{_seg(project)}/{name}".encode(_UTF8, _ANY)


def spec_prefix(kind: str | None = None, project: str | None = None) -> bytes:
    """Prefix of every spec of ``kind`` (all kinds if None), in ``project`` if given."""
    if kind is None:
        return f"{ROOT}/spec/".encode(_UTF8, _ANY)
    if project is None:
        return f"{ROOT}/spec/{_kind(kind)}/".encode(_UTF8, _ANY)
    return f"{ROOT}/spec/{_kind(kind)}/{_seg(project)}/".encode(_UTF8, _ANY)


def status_prefix(kind: str | None = None, project: str | None = None) -> bytes:
    if kind is None:
        return f"{ROOT}/status/".encode(_UTF8, _ANY)
    if project is None:
        return f"{ROOT}/status/{_kind(kind)}/".encode(_UTF8, _ANY)
    return f"{ROOT}/status/{_kind(kind)}/{_seg(project)}/".encode(_UTF8, _ANY)


def status_for_spec(spec_key: bytes) -> bytes:
    """The status key that belongs to a spec key."""
    head = f"{ROOT}/spec/".encode(_UTF8, _ANY)
    if not spec_key.startswith(head):
        raise ValueError(f"not a spec key: {spec_key!r}")
    return f"{ROOT}/status/".encode(_UTF8, _ANY) + spec_key[len(head) :]


def spec_for_status(status_key: bytes) -> bytes:
    head = f"{ROOT}/status/".encode(_UTF8, _ANY)
    if not status_key.startswith(head):
        raise ValueError(f"not a status key: {status_key!r}")
    return f"{ROOT}/spec/".encode(_UTF8, _ANY) + status_key[len(head) :]


def parse_object_key(key: bytes) -> tuple[str, str, str | None, str]:
    """Splits a spec or status key into (``spec``|``status``, kind, project, name)."""
    parts = key.decode().split("/")
    # ['', 'desired', 'v1', 'spec', kind, project, name]
    if len(parts) != 7 or parts[3] not in ("spec", "status") or "/".join(parts[:3]) != ROOT:
        raise ValueError(f"not an object key: {key!r}")
    project = None if parts[5] == CLUSTER else parts[5]
    return parts[3], parts[4], project, parts[6]


def events_prefix(project: str | None = None) -> bytes:
    if project is None:
        return f"{ROOT}/events/".encode(_UTF8, _ANY)
    return f"{ROOT}/events/{_seg(project)}/".encode(_UTF8, _ANY)


def event(project: str | None, stamp: str, ident: str) -> bytes:
    return f"{ROOT}/events/{_seg(project)}/{stamp}-{ident}".encode(_UTF8, _ANY)


def root() -> bytes:
    """Every key of desired."""
    return f"{ROOT}/".encode(_UTF8, _ANY)


def hosts_named(prefix: str) -> bytes:
    """The host records of hosts whose names start with ``prefix``."""
    return f"{ROOT}/hosts/{prefix}".encode(_UTF8, _ANY)


def alive_named(prefix: str) -> bytes:
    return f"{ROOT}/alive/{prefix}".encode(_UTF8, _ANY)


def host(name: str) -> bytes:
    return f"{ROOT}/hosts/{name}".encode(_UTF8, _ANY)


def hosts_prefix() -> bytes:
    return f"{ROOT}/hosts/".encode(_UTF8, _ANY)


def alive_prefix() -> bytes:
    return f"{ROOT}/alive/".encode(_UTF8, _ANY)


def alloc_prefix() -> bytes:
    return f"{ROOT}/alloc/".encode(_UTF8, _ANY)


def last_segment(key: bytes) -> str:
    """The last path segment of a key: the host of a hosts/alive/alloc key, the uid of an assignment."""
    return key.decode().rsplit("/", 1)[1]


def alive(name: str) -> bytes:
    return f"{ROOT}/alive/{name}".encode(_UTF8, _ANY)


def assign(host_name: str, uid: str) -> bytes:
    return f"{ROOT}/assign/{host_name}/{uid}".encode(_UTF8, _ANY)


def assign_named(prefix: str) -> bytes:
    """The assignments of hosts whose names start with ``prefix``."""
    return f"{ROOT}/assign/{prefix}".encode(_UTF8, _ANY)


def assign_prefix(host_name: str) -> bytes:
    return f"{ROOT}/assign/{host_name}/".encode(_UTF8, _ANY)


def alloc(host_name: str) -> bytes:
    return f"{ROOT}/alloc/{host_name}".encode(_UTF8, _ANY)


def usage(project: str) -> bytes:
    return f"{ROOT}/usage/{project}".encode(_UTF8, _ANY)


def leader(reconciler: str) -> bytes:
    return f"{ROOT}/leader/{reconciler}".encode(_UTF8, _ANY)


def token_key() -> bytes:
    """The identity service's token signing key (shared by every API server)."""
    return f"{ROOT}/identity/token-key".encode(_UTF8, _ANY)


def identity_prefix() -> bytes:
    """The identity service's own keys: the token key, revocations, login failures."""
    return f"{ROOT}/identity/".encode(_UTF8, _ANY)


def admin_token() -> bytes:
    """The bootstrap admin token's record (its hash and when it was made), which every API
    server watches: a rotation is one write here."""
    return f"{ROOT}/identity/admin-token".encode(_UTF8, _ANY)


def revoked_prefix() -> bytes:
    return f"{ROOT}/identity/revoked/".encode(_UTF8, _ANY)


def revoked(audit_id: str) -> bytes:
    """A revoked token's audit id, on a lease that ends when the token would have."""
    return revoked_prefix() + audit_id.encode()


def user_revocations_prefix() -> bytes:
    return f"{ROOT}/identity/revoked-users/".encode()


def user_revocation(user_uid: str, project: str = "") -> bytes:
    """When a user's tokens (scoped to ``project``, if given) issued before were revoked,
    on a lease that ends when the last of them would have."""
    return user_revocations_prefix() + (f"{user_uid}/{project}" if project else user_uid).encode(
        _UTF8, _ANY
    )


def login_failures(user_uid: str) -> bytes:
    """A user's recent failed password logins (count and time of the last), for lockout."""
    return f"{ROOT}/identity/failures/{user_uid}".encode()


def app_credentials_prefix() -> bytes:
    """Keystone application credentials (their secrets hashed), by id."""
    return f"{ROOT}/identity/app-credentials/".encode()


def app_credential(cred_id: str) -> bytes:
    return app_credentials_prefix() + cred_id.encode()


def app_credential_name(user_uid: str, name: str) -> bytes:
    """Holds the id of user ``user_uid``'s application credential named ``name`` (one name
    per user)."""
    digest = hashlib.sha256(name.encode(_UTF8, _ANY)).hexdigest()
    return f"{ROOT}/identity/app-credential-names/{user_uid}/{digest}".encode()


def access_rules_prefix(user_uid: str = "") -> bytes:
    """Keystone access rules of application credentials, by owner's uid and rule id (every
    user's, or user ``user_uid``'s)."""
    return f"{ROOT}/identity/access-rules/{user_uid + '/' if user_uid else ''}".encode()


def access_rule(user_uid: str, rule_id: str) -> bytes:
    return access_rules_prefix(user_uid) + rule_id.encode(_UTF8, _ANY)


def ec2_credentials_prefix() -> bytes:
    """Keystone EC2 credentials (access key and secret), by access key."""
    return f"{ROOT}/identity/ec2-credentials/".encode()


def ec2_credential(access: str) -> bytes:
    return ec2_credentials_prefix() + access.encode(_UTF8, _ANY)


def console_requests_prefix(hosts: str = "") -> bytes:
    """Console requests to every host, or to the hosts whose names start with ``hosts``
    (``"<host>/"`` for one host)."""
    return f"{ROOT}/console/request/{hosts}".encode(_UTF8, _ANY)


def console_request(host_name: str, uid: str) -> bytes:
    """An API server asks the hostd of ``host_name`` for the console log of ``uid`` (on a
    short lease)."""
    return f"{ROOT}/console/request/{host_name}/{uid}".encode(_UTF8, _ANY)


def console_output(uid: str) -> bytes:
    """hostd's answer: the tail of the instance's serial console log (on a lease)."""
    return f"{ROOT}/console/output/{uid}".encode(_UTF8, _ANY)


def ipam_root() -> bytes:
    """Every network's addresses (IPAM)."""
    return f"{ROOT}/ipam/".encode(_UTF8, _ANY)


def ipam_prefix(network_uid: str) -> bytes:
    """The addresses allocated on one network (IPAM)."""
    return f"{ROOT}/ipam/{network_uid}/".encode(_UTF8, _ANY)


def ipam(network_uid: str, address: str) -> bytes:
    """One address of a network, held by an instance's port."""
    return f"{ROOT}/ipam/{network_uid}/{address}".encode(_UTF8, _ANY)

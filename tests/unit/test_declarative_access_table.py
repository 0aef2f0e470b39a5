"""The declarative API's access rules: every request has a rule, and the table holds."""

from __future__ import annotations

import pytest

from apiserver.auth import Principal
from apiserver.declarative_access import DEFAULTS, READ, WRITE, action, authorize, check_fields
from apiserver.kinds import KINDS
from state.errors import Forbidden

MEMBER = Principal.of("demo", ("member",), "demo")
READER = Principal.of("viewer", ("reader",), "demo")
ADMIN = Principal.of("boss", ("admin",), None)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_request_has_a_rule(kind: str) -> None:
    info = KINDS[kind]
    projects = {"project": ["demo", None], "cluster": [None], "either": ["demo", None]}[info.scope]
    for project in projects:
        for verb in (READ, WRITE):
            assert action(info, verb, project) in DEFAULTS
        assert action(info, READ, project, listing=True) in DEFAULTS


def allowed(who: Principal, kind: str, verb: str, project: str | None, **kw: bool) -> bool:
    try:
        authorize(who, KINDS[kind], verb, project, **kw)
    except Forbidden:
        return False
    return True


def test_the_table() -> None:
    assert allowed(MEMBER, "Instance", WRITE, "demo")
    assert not allowed(MEMBER, "Instance", WRITE, "other")
    assert not allowed(MEMBER, "Instance", READ, "other")
    assert not allowed(MEMBER, "Instance", READ, None, listing=True)
    assert allowed(READER, "Instance", READ, "demo")
    assert not allowed(READER, "Instance", WRITE, "demo")
    assert allowed(MEMBER, "Quota", READ, "demo") and not allowed(MEMBER, "Quota", WRITE, "demo")
    assert not allowed(MEMBER, "GitSource", WRITE, "demo")
    assert allowed(READER, "Flavor", READ, None) and not allowed(MEMBER, "Flavor", WRITE, None)
    assert allowed(READER, "Image", READ, None)  # a public image, by name
    assert not allowed(MEMBER, "Image", READ, None, listing=True)  # every project's images
    for kind in ("Host", "Aggregate", "QuotaClass", "Project", "User", "Role"):
        assert not allowed(MEMBER, kind, READ, None), kind
        assert allowed(ADMIN, kind, WRITE, None), kind
    assert allowed(ADMIN, "Instance", READ, None, listing=True)
    # a token without roles (unscoped) reads nothing
    assert not allowed(Principal.of("x", (), None), "Flavor", READ, None)


def test_admin_fields() -> None:
    net = {"kind": "Network", "metadata": {"name": "n", "project": "demo"}, "spec": {}}
    check_fields(MEMBER, net, None)
    shared = {**net, "spec": {"shared": True}}
    with pytest.raises(Forbidden, match=r"spec\.shared"):
        check_fields(MEMBER, shared, None)
    check_fields(MEMBER, shared, shared)  # the value an admin set, unchanged
    check_fields(ADMIN, {**net, "spec": {"vlan": {"id": 2, "interface": "eth1"}}}, None)
    image = {"kind": "Image", "metadata": {"name": "i"}, "spec": {"url": "http://x/i.img"}}
    check_fields(MEMBER, image, None)
    with pytest.raises(Forbidden, match=r"spec\.url"):
        check_fields(MEMBER, {**image, "spec": {"url": "FILE:///etc/shadow"}}, None)

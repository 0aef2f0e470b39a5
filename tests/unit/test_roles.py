"""Built-in roles, their implications and role ids (``state.roles``)."""

from __future__ import annotations

from state import roles


def test_implications_are_keystones_defaults() -> None:
    assert roles.implied({"admin"}) == ("admin", "member", "reader")
    assert roles.implied({"member"}) == ("member", "reader")
    assert roles.implied({"reader", "service"}) == ("reader", "service")
    assert roles.implied({"auditor"}) == ("auditor",)  # a custom role implies nothing
    assert roles.implied(set()) == ()


def test_role_ids_derive_from_names() -> None:
    ids = {roles.role_id(name) for name in (*roles.BUILTIN, "auditor")}
    assert len(ids) == len(roles.BUILTIN) + 1
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert roles.role_id("member") == roles.role_id("member")

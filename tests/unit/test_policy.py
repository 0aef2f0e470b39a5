"""The policy engine: oslo.policy's rule syntax, Nova's base rules, role implication."""

from __future__ import annotations

from pathlib import Path

import pytest

from apiserver.policy import ADMIN, MEMBER_OR_ADMIN, READER_OR_ADMIN, Creds, Policy, PolicyError

DEFAULTS = {"servers:index": READER_OR_ADMIN, "servers:create": MEMBER_OR_ADMIN, "services": ADMIN}
MINE = {"project_id": "p1"}
THEIRS = {"project_id": "p2"}


def test_defaults_for_admin_member_and_reader() -> None:
    policy = Policy(DEFAULTS)
    admin = Creds.of("u0", "p0", ["admin"])
    member = Creds.of("u1", "p1", ["member"])
    reader = Creds.of("u2", "p1", ["reader"])
    assert policy.allows("services", admin, {}) and not policy.allows("services", member, {})
    # admin implies member implies reader; members act only in their own project
    assert policy.allows("servers:create", admin, THEIRS)
    assert policy.allows("servers:create", member, MINE)
    assert not policy.allows("servers:create", member, THEIRS)
    assert policy.allows("servers:index", member, MINE)
    assert policy.allows("servers:index", reader, MINE)
    assert not policy.allows("servers:create", reader, MINE)
    assert not policy.allows("servers:index", reader, THEIRS)
    # no rule, no access
    assert not policy.allows("servers:nope", admin, MINE)


def test_rule_syntax() -> None:
    creds = Creds.of("u1", "p1", ["member"])
    allows = {
        "": True,
        "@": True,
        "!": False,
        "role:Member": True,
        "not role:admin": True,
        "role:admin or (role:member and project_id:%(project_id)s)": True,
        "role:admin or role:member and project_id:%(project_id)s and not user_id:%(user_id)s": True,
        "user_id:%(user_id)s": False,  # the target has no user id: never matches
        "project_id:p1": True,
        "is_admin:True": False,
        "is_admin:False": True,
    }
    for rule, expected in allows.items():
        assert Policy({"x": rule}).allows("x", creds, MINE) is expected, rule


@pytest.mark.parametrize(
    "rule",
    ["role:admin or", "(role:admin", "role:admin)", "admin", "flavor:x", "rule:missing", "and"],
)
def test_bad_rules_are_refused(rule: str) -> None:
    with pytest.raises(PolicyError):
        Policy({"x": rule})


def test_a_policy_file_overrides_defaults(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text('"servers:create": "rule:context_is_admin"\n"services": "role:reader"\n')
    policy = Policy.load(DEFAULTS, path)
    member = Creds.of("u1", "p1", ["member"])
    assert not policy.allows("servers:create", member, MINE)
    assert policy.allows("services", member, {})
    path.write_text('"a": "rule:b"\n"b": "rule:a"\n')
    with pytest.raises(PolicyError, match="circle"):
        Policy.load(DEFAULTS, path)
    path.write_text("- not a mapping\n")
    with pytest.raises(PolicyError, match="mapping"):
        Policy.load(DEFAULTS, path)

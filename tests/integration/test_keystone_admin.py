"""The Keystone v3 admin API: projects, users, roles, role assignments and domains, by hand
against a real API server and etcd, with Keystone's status codes and error bodies."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from apiserver.app import make_app
from fixtures.keystone import password_login
from state.admission import admit
from state.app_credentials import AppCredentials
from state.envelope import Ref
from state.errors import FieldError, Invalid
from state.etcd import EtcdClient
from state.passwords import hash_password
from state.sql.migrate import upgrade
from state.store import Store
from tests.conftest import serving


@dataclass
class Api:
    http: aiohttp.ClientSession
    base: str

    async def login(self, user: str, password: str, project: str | None = None) -> str:
        body = password_login(user, password, project)
        async with self.http.post(f"{self.base}/identity/v3/auth/tokens", json=body) as resp:
            assert resp.status == 201, await resp.text()
            return resp.headers["X-Subject-Token"]

    async def call(
        self, method: str, path: str, token: str, body: Any = None, **params: str
    ) -> tuple[int, Any]:
        async with self.http.request(
            method,
            f"{self.base}/identity/v3/{path}",
            json=body,
            params=params,
            headers={"X-Auth-Token": token},
        ) as resp:
            text = await resp.text()
            return resp.status, (await resp.json() if text else None)

    async def valid(self, token: str) -> bool:
        headers = {"X-Auth-Token": token, "X-Subject-Token": token}
        async with self.http.get(f"{self.base}/identity/v3/auth/tokens", headers=headers) as resp:
            return resp.status == 200


@contextlib.asynccontextmanager
async def _api(store: Store, tmp_path: Path) -> AsyncIterator[Api]:
    """An API server with project admin and user admin (the cloud's admin, password
    ``admin-secret``)."""
    sql_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    await asyncio.to_thread(upgrade, sql_url)
    await store.create({"kind": "Project", "metadata": {"name": "admin"}, "spec": {}})
    await store.create(
        {
            "kind": "User",
            "metadata": {"name": "admin"},
            "spec": {
                "passwordHash": hash_password("admin-secret", iterations=1000),
                "roles": [{"role": "admin"}, {"role": "admin", "project": "admin"}],
            },
        }
    )
    app = make_app(
        EtcdClient(store.etcd.url, credentials=store.etcd.credentials), "t", sql_url=sql_url
    )
    async with serving(app) as base, aiohttp.ClientSession() as http:
        yield Api(http, base)


@pytest.fixture
async def api(store: Store, tmp_path: Path) -> AsyncIterator[Api]:
    async with _api(store, tmp_path) as a:
        yield a


def error(code: int, body: Any) -> tuple[int, int, str]:
    """(status, error code, title) of a Keystone error answer."""
    return code, body["error"]["code"], body["error"]["title"]


async def test_projects_create_update_list_show_delete(api: Api, store: Store) -> None:
    admin = await api.login("admin", "admin-secret", "admin")
    code, made = await api.call(
        "POST", "projects", admin, {"project": {"name": "p1", "description": "first"}}
    )
    assert code == 201, made
    pid = made["project"]["id"]
    assert made["project"]["domain_id"] == "default" and made["project"]["enabled"] is True
    assert (await store.get(Ref("Project", None, "p1")))["spec"]["description"] == "first"
    assert error(*await api.call("POST", "projects", admin, {"project": {"name": "p1"}})) == (
        409,
        409,
        "Conflict",
    )
    for bad in (
        {"name": " padded"},
        {"name": "a" * 65},
        {"name": 3},
        {},
        {"name": "p2", "enabled": "yes"},
    ):
        assert error(*await api.call("POST", "projects", admin, {"project": bad})) == (
            400,
            400,
            "Bad Request",
        ), bad
    code, changed = await api.call(
        "PATCH", f"projects/{pid}", admin, {"project": {"enabled": False, "description": "x"}}
    )
    assert code == 200 and changed["project"]["enabled"] is False
    code, listed = await api.call("GET", "projects", admin, enabled="false")
    assert [p["name"] for p in listed["projects"]] == ["p1"]
    code, listed = await api.call("GET", "projects", admin, name="admin", domain_id="default")
    assert [p["name"] for p in listed["projects"]] == ["admin"]
    code, listed = await api.call("GET", "projects", admin, domain_id="other")
    assert listed["projects"] == []
    code, shown = await api.call("GET", f"projects/{pid}", admin)
    assert code == 200 and shown["project"]["description"] == "x"
    assert (await api.call("DELETE", f"projects/{pid}", admin))[0] == 204
    assert error(*await api.call("GET", f"projects/{pid}", admin)) == (404, 404, "Not Found")
    assert await store.get_or_none(Ref("Project", None, "p1")) is None


async def test_users_create_login_update_password_delete(api: Api, store: Store) -> None:
    admin = await api.login("admin", "admin-secret", "admin")
    await api.call("POST", "projects", admin, {"project": {"name": "p1"}})
    code, listed = await api.call("GET", "projects", admin, name="p1")
    pid = listed["projects"][0]["id"]
    code, made = await api.call(
        "POST",
        "users",
        admin,
        {
            "user": {
                "name": "alice",
                "password": "alice-pass",
                "default_project_id": pid,
                "email": "alice@example.org",
            }
        },
    )
    assert code == 201, made
    uid = made["user"]["id"]
    assert made["user"]["default_project_id"] == pid and "password" not in made["user"]
    stored = (await store.get(Ref("User", None, "alice")))["spec"]
    assert stored["passwordHash"].startswith("pbkdf2_sha256$") and "alice-pass" not in str(stored)
    assert stored["defaultProject"] == "p1"
    dup = await api.call("POST", "users", admin, {"user": {"name": "alice"}})
    assert error(*dup) == (409, 409, "Conflict")
    for bad in ({"name": ""}, {"name": "zed", "password": ""}, {"name": "zed", "email": 1}):
        assert error(*await api.call("POST", "users", admin, {"user": bad}))[0] == 400, bad
    # no role yet: no token on p1; unscoped is fine
    alice = await api.login("alice", "alice-pass")
    assert error(*await api.call("GET", "users", alice)) == (403, 403, "Forbidden")
    code, me = await api.call("GET", f"users/{uid}", alice)
    assert code == 200 and me["user"]["email"] == "alice@example.org"
    code, admin_user = await api.call("GET", "users", admin, name="admin")
    other = admin_user["users"][0]["id"]
    assert error(*await api.call("GET", f"users/{other}", alice))[0] == 403
    # a user changes its own password with the original; a wrong original is 401
    wrong = {"user": {"password": "new-pass", "original_password": "nope"}}
    assert error(*await api.call("POST", f"users/{uid}/password", alice, wrong))[0] == 401
    right = {"user": {"password": "new-pass", "original_password": "alice-pass"}}
    assert (await api.call("POST", f"users/{uid}/password", alice, right))[0] == 204
    assert not await api.valid(alice)  # a password changed revokes the tokens made before
    alice = await api.login("alice", "new-pass")
    # an admin sets it (the same again), disables the user: its tokens die at once
    code, _ = await api.call("PATCH", f"users/{uid}", admin, {"user": {"password": "third"}})
    assert code == 200
    assert not await api.valid(alice) and await api.valid(admin)
    alice = await api.login("alice", "third")
    code, listed = await api.call("GET", "users", admin, enabled="true")
    assert {u["name"] for u in listed["users"]} == {"admin", "alice"}
    await api.call("PATCH", f"users/{uid}", admin, {"user": {"enabled": False}})
    assert not await api.valid(alice)  # at once
    code, listed = await api.call("GET", "users", admin, enabled="false")
    assert [u["name"] for u in listed["users"]] == ["alice"]
    assert (await api.call("DELETE", f"users/{uid}", admin))[0] == 204
    assert error(*await api.call("GET", f"users/{uid}", admin))[0] == 404
    assert error(*await api.call("PATCH", f"users/{uid}", admin, {"user": {}}))[0] == 404


async def test_roles_assignments_and_tokens_dying_with_their_grant(api: Api) -> None:
    admin = await api.login("admin", "admin-secret", "admin")
    await api.call("POST", "projects", admin, {"project": {"name": "p1"}})
    pid = (await api.call("GET", "projects", admin, name="p1"))[1]["projects"][0]["id"]
    uid = (
        await api.call("POST", "users", admin, {"user": {"name": "bob", "password": "bob-pass"}})
    )[1]["user"]["id"]
    code, listed = await api.call("GET", "roles", admin)
    by_name = {r["name"]: r["id"] for r in listed["roles"]}
    assert {"admin", "member", "reader", "service"} <= set(by_name)
    code, made = await api.call("POST", "roles", admin, {"role": {"name": "auditor"}})
    assert code == 201
    auditor = made["role"]["id"]
    assert error(*await api.call("POST", "roles", admin, {"role": {"name": "member"}}))[0] == 409
    assert error(*await api.call("DELETE", f"roles/{by_name['member']}", admin))[0] == 403
    grant = f"projects/{pid}/users/{uid}/roles"
    assert (await api.call("HEAD", f"{grant}/{by_name['member']}", admin))[0] == 404
    for role in (by_name["member"], auditor):
        assert (await api.call("PUT", f"{grant}/{role}", admin))[0] == 204
    assert (await api.call("HEAD", f"{grant}/{by_name['member']}", admin))[0] == 204
    code, held = await api.call("GET", grant, admin)
    assert sorted(r["name"] for r in held["roles"]) == ["auditor", "member"]
    assert error(*await api.call("PUT", f"{grant}/{'0' * 32}", admin))[0] == 404
    # the user's token on p1 carries member (and reader) and auditor
    bob = await api.login("bob", "bob-pass", "p1")
    code, mine = await api.call("GET", f"users/{uid}/projects", bob)
    assert [p["name"] for p in mine["projects"]] == ["p1"]
    code, listed = await api.call(
        "GET", "role_assignments", admin, **{"user.id": uid, "include_names": "True"}
    )
    rows = {(a["role"]["name"], a["scope"]["project"]["name"]) for a in listed["role_assignments"]}
    assert rows == {("member", "p1"), ("auditor", "p1")}
    assert listed["role_assignments"][0]["user"]["name"] == "bob"
    code, listed = await api.call(
        "GET", "role_assignments", admin, **{"scope.project.id": pid, "effective": ""}
    )
    assert {a["role"]["id"] for a in listed["role_assignments"]} == {
        by_name["member"],
        by_name["reader"],
        auditor,
    }
    code, listed = await api.call("GET", "role_assignments", admin, **{"role.id": auditor})
    assert [a["user"]["id"] for a in listed["role_assignments"]] == [uid]
    # revoking a role kills the token carrying it; deleting the custom role takes its grants
    assert (await api.call("DELETE", f"{grant}/{by_name['member']}", admin))[0] == 204
    assert not await api.valid(bob)  # at once
    assert error(*await api.call("DELETE", f"{grant}/{by_name['member']}", admin))[0] == 404
    bob = await api.login("bob", "bob-pass", "p1")
    assert (await api.call("DELETE", f"roles/{auditor}", admin))[0] == 204
    assert not await api.valid(bob)  # at once
    assert error(*await api.call("GET", f"roles/{auditor}", admin))[0] == 404
    # a project's deletion takes its assignments along
    assert (await api.call("PUT", f"{grant}/{by_name['reader']}", admin))[0] == 204
    bob = await api.login("bob", "bob-pass", "p1")
    assert (await api.call("DELETE", f"projects/{pid}", admin))[0] == 204
    assert not await api.valid(bob)  # at once
    code, listed = await api.call("GET", "role_assignments", admin, **{"user.id": uid})
    assert listed["role_assignments"] == []
    assert error(*await api.call("GET", "role_assignments", bob))[0] == 401


async def test_domains_and_who_may_do_what(api: Api) -> None:
    admin = await api.login("admin", "admin-secret", "admin")
    code, listed = await api.call("GET", "domains", admin)
    assert code == 200
    assert [(d["id"], d["name"]) for d in listed["domains"]] == [("default", "Default")]
    assert (await api.call("GET", "domains", admin, name="Other"))[1]["domains"] == []
    assert error(*await api.call("GET", "domains/other", admin)) == (404, 404, "Not Found")
    await api.call("POST", "users", admin, {"user": {"name": "carol", "password": "carol-pass"}})
    carol = await api.login("carol", "carol-pass")
    assert (await api.call("GET", "domains/default", carol))[0] == 200
    for method, path, body in (
        ("GET", "domains", None),
        ("POST", "projects", {"project": {"name": "mine"}}),
        ("POST", "users", {"user": {"name": "dave"}}),
        ("POST", "roles", {"role": {"name": "boss"}}),
        ("GET", "roles", None),
        ("GET", "role_assignments", None),
    ):
        assert error(*await api.call(method, path, carol, body)) == (403, 403, "Forbidden"), path
    assert error(*await api.call("GET", "projects", "not-a-token")) == (401, 401, "Unauthorized")
    async with api.http.post(
        f"{api.base}/identity/v3/projects", data=b"{", headers={"X-Auth-Token": admin}
    ) as resp:
        assert resp.status == 400 and (await resp.json())["error"]["code"] == 400


async def test_application_credentials(api: Api, store: Store) -> None:
    admin = await api.login("admin", "admin-secret", "admin")
    await api.call("POST", "projects", admin, {"project": {"name": "p1"}})
    pid = (await api.call("GET", "projects", admin, name="p1"))[1]["projects"][0]["id"]
    made = await api.call("POST", "users", admin, {"user": {"name": "erin", "password": "e-pass"}})
    uid = made[1]["user"]["id"]
    member = (await api.call("GET", "roles", admin, name="member"))[1]["roles"][0]["id"]
    await api.call("PUT", f"projects/{pid}/users/{uid}/roles/{member}", admin)
    erin = await api.login("erin", "e-pass", "p1")
    creds = f"users/{uid}/application_credentials"
    code, made = await api.call("POST", creds, erin, {"application_credential": {"name": "ci"}})
    assert code == 201, made
    cred = made["application_credential"]
    assert cred["project_id"] == pid and {r["name"] for r in cred["roles"]} == {"member", "reader"}
    assert cred["secret"] and cred["unrestricted"] is False
    dup = await api.call("POST", creds, erin, {"application_credential": {"name": "ci"}})
    assert error(*dup) == (409, 409, "Conflict")
    asked = {"name": "admin-please", "roles": [{"name": "admin"}]}
    assert error(*await api.call("POST", creds, erin, {"application_credential": asked}))[0] == 404
    someone_else = await api.call("POST", creds, admin, {"application_credential": {"name": "x"}})
    assert error(*someone_else)[0] == 403
    # a role granted after the token was made counts: Keystone checks the assignments
    deployer = (await api.call("POST", "roles", admin, {"role": {"name": "deployer"}}))[1]
    await api.call("PUT", f"projects/{pid}/users/{uid}/roles/{deployer['role']['id']}", admin)
    asked = {"name": "deploy", "roles": [{"id": deployer["role"]["id"]}]}
    code, made = await api.call("POST", creds, erin, {"application_credential": asked})
    assert code == 201 and [r["name"] for r in made["application_credential"]["roles"]] == [
        "deployer"
    ]
    deploy = made["application_credential"]["id"]
    assert (await api.call("DELETE", f"{creds}/{deploy}", erin))[0] == 204
    code, listed = await api.call("GET", creds, erin)
    assert [c["name"] for c in listed["application_credentials"]] == ["ci"]
    assert "secret" not in listed["application_credentials"][0]
    assert (await api.call("GET", f"{creds}/{cred['id']}", admin))[0] == 200

    async def login(by: dict[str, Any]) -> tuple[int, Any, str]:
        methods = {"methods": ["application_credential"], "application_credential": by}
        body = {"auth": {"identity": methods}}
        async with api.http.post(f"{api.base}/identity/v3/auth/tokens", json=body) as resp:
            return resp.status, await resp.json(), resp.headers.get("X-Subject-Token", "")

    code, body, token = await login({"id": cred["id"], "secret": cred["secret"]})
    assert code == 201, body
    assert body["token"]["methods"] == ["application_credential"]
    assert body["token"]["project"]["id"] == pid and body["token"]["application_credential"] == {
        "id": cred["id"],
        "restricted": True,
    }
    by_name = {"name": "ci", "secret": cred["secret"], "user": {"id": uid}}
    assert (await login(by_name))[0] == 201
    assert (await login({"id": cred["id"], "secret": "wrong"}))[0] == 401
    # a restricted credential's token makes no other
    nested = await api.call("POST", creds, token, {"application_credential": {"name": "more"}})
    assert error(*nested)[0] == 403
    # deleting the credential kills its tokens; so does revoking the role it carries
    assert (await api.call("DELETE", f"{creds}/{cred['id']}", erin))[0] == 204
    assert not await api.valid(token)
    assert (await login({"id": cred["id"], "secret": cred["secret"]}))[0] == 401
    made = await api.call("POST", creds, erin, {"application_credential": {"name": "ci2"}})
    second = made[1]["application_credential"]
    _, _, token = await login({"id": second["id"], "secret": second["secret"]})
    assert await api.valid(token)
    await api.call("DELETE", f"projects/{pid}/users/{uid}/roles/{member}", admin)
    assert not await api.valid(token)  # at once
    assert (await login({"id": second["id"], "secret": second["secret"]}))[0] == 401
    # the user's deletion takes its credentials along
    assert (await api.call("DELETE", f"users/{uid}", admin))[0] == 204
    assert await AppCredentials(store.etcd).get(second["id"]) is None


async def test_ec2_credentials(api: Api) -> None:
    admin = await api.login("admin", "admin-secret", "admin")
    await api.call("POST", "projects", admin, {"project": {"name": "p1"}})
    pid = (await api.call("GET", "projects", admin, name="p1"))[1]["projects"][0]["id"]
    made = await api.call("POST", "users", admin, {"user": {"name": "fay", "password": "f-pass"}})
    uid = made[1]["user"]["id"]
    fay = await api.login("fay", "f-pass")
    ec2 = f"users/{uid}/credentials/OS-EC2"
    code, made = await api.call("POST", ec2, fay, {"tenant_id": pid})
    assert code == 201, made
    cred = made["credential"]
    assert cred["tenant_id"] == pid and cred["user_id"] == uid and cred["access"] and cred["secret"]
    assert error(*await api.call("POST", ec2, fay, {"tenant_id": "0" * 32}))[0] == 404
    assert error(*await api.call("POST", ec2, fay, {}))[0] == 400
    code, listed = await api.call("GET", ec2, fay)
    assert [c["access"] for c in listed["credentials"]] == [cred["access"]]
    code, shown = await api.call("GET", f"{ec2}/{cred['access']}", admin)
    assert code == 200 and shown["credential"]["secret"] == cred["secret"]
    # the same credential through /v3/credentials, and one made there with a given blob
    code, listed = await api.call("GET", "credentials", fay, type="ec2")
    (generic,) = listed["credentials"]
    assert json.loads(generic["blob"]) == {"access": cred["access"], "secret": cred["secret"]}
    assert generic["project_id"] == pid and generic["user_id"] == uid
    blob = json.dumps({"access": "my-access", "secret": "my-secret"})
    body = {"credential": {"type": "ec2", "blob": blob, "user_id": uid, "project_id": pid}}
    code, made = await api.call("POST", "credentials", fay, body)
    assert code == 201, made
    assert error(*await api.call("POST", "credentials", fay, body)) == (409, 409, "Conflict")
    totp = {"credential": {**body["credential"], "type": "totp"}}
    assert error(*await api.call("POST", "credentials", fay, totp))[0] == 400
    code, listed = await api.call("GET", f"credentials/{made['credential']['id']}", fay)
    assert code == 200 and json.loads(listed["credential"]["blob"])["access"] == "my-access"
    # a new blob: the id stays, the new access key signs, the old one is gone
    mine = made["credential"]["id"]
    fresh = {"credential": {"blob": json.dumps({"access": "new-access", "secret": "new-secret"})}}
    code, changed = await api.call("PATCH", f"credentials/{mine}", fay, fresh)
    assert code == 200 and changed["credential"]["id"] == mine, changed
    code, shown = await api.call("GET", f"credentials/{mine}", fay)
    assert json.loads(shown["credential"]["blob"]) == {
        "access": "new-access",
        "secret": "new-secret",
    }
    assert error(*await api.call("GET", f"{ec2}/my-access", fay))[0] == 404
    assert (await api.call("GET", f"{ec2}/new-access", fay))[0] == 200
    taken = {"credential": {"blob": json.dumps({"access": cred["access"], "secret": "s"})}}
    assert error(*await api.call("PATCH", f"credentials/{mine}", fay, taken))[0] == 409
    moved = {"credential": {"project_id": "0" * 32}}
    assert error(*await api.call("PATCH", f"credentials/{mine}", fay, moved))[0] == 400
    # another user sees none of them and may make none for fay
    await api.call("POST", "users", admin, {"user": {"name": "gus", "password": "g-pass"}})
    gus = await api.login("gus", "g-pass")
    assert (await api.call("GET", "credentials", gus))[1]["credentials"] == []
    assert error(*await api.call("GET", ec2, gus))[0] == 403
    assert error(*await api.call("POST", "credentials", gus, body))[0] == 403
    assert (
        error(*await api.call("DELETE", f"credentials/{made['credential']['id']}", gus))[0] == 403
    )
    assert error(*await api.call("PATCH", f"credentials/{mine}", gus, fresh))[0] == 403
    assert (await api.call("DELETE", f"{ec2}/{cred['access']}", fay))[0] == 204
    assert error(*await api.call("GET", f"{ec2}/{cred['access']}", fay))[0] == 404
    # the project's deletion takes the rest along
    assert (await api.call("DELETE", f"projects/{pid}", admin))[0] == 204
    assert (await api.call("GET", "credentials", admin))[1]["credentials"] == []


async def test_implied_roles_system_grants_role_updates_and_unknown_routes(api: Api) -> None:
    admin = await api.login("admin", "admin-secret", "admin")
    ids = {r["name"]: r["id"] for r in (await api.call("GET", "roles", admin))[1]["roles"]}
    code, listed = await api.call("GET", "role_inferences", admin)
    assert code == 200
    rules = {
        r["prior_role"]["name"]: [i["name"] for i in r["implies"]]
        for r in listed["role_inferences"]
    }
    assert rules == {"admin": ["member"], "member": ["reader"]}
    code, one = await api.call("GET", f"roles/{ids['admin']}/implies", admin)
    assert [i["name"] for i in one["role_inference"]["implies"]] == ["member"]
    implies = f"roles/{ids['member']}/implies/{ids['reader']}"
    assert (await api.call("HEAD", implies, admin))[0] == 204
    implies = f"roles/{ids['reader']}/implies/{ids['admin']}"
    assert (await api.call("HEAD", implies, admin))[0] == 404
    # a custom role's description changes; a built-in one's does not
    auditor = (await api.call("POST", "roles", admin, {"role": {"name": "auditor"}}))[1]["role"]
    code, changed = await api.call(
        "PATCH", f"roles/{auditor['id']}", admin, {"role": {"description": "reads logs"}}
    )
    assert code == 200 and changed["role"]["description"] == "reads logs"
    shown = (await api.call("GET", f"roles/{auditor['id']}", admin))[1]["role"]
    assert shown["description"] == "reads logs"
    built_in = await api.call("PATCH", f"roles/{ids['reader']}", admin, {"role": {"name": "x"}})
    assert error(*built_in)[0] == 403
    # a role on the whole cloud (Keystone's system scope)
    made = await api.call("POST", "users", admin, {"user": {"name": "hal", "password": "h-pass"}})
    uid = made[1]["user"]["id"]
    assert (await api.call("PUT", f"system/users/{uid}/roles/{ids['reader']}", admin))[0] == 204
    assert (await api.call("HEAD", f"system/users/{uid}/roles/{ids['reader']}", admin))[0] == 204
    code, listed = await api.call("GET", "role_assignments", admin, **{"user.id": uid})
    assert [(a["role"]["id"], a["scope"]) for a in listed["role_assignments"]] == [
        (ids["reader"], {"system": {"all": True}})
    ]
    assert (await api.call("DELETE", f"system/users/{uid}/roles/{ids['reader']}", admin))[0] == 204
    # what is not served answers in Keystone's shape too
    assert error(*await api.call("GET", "no-such-thing", admin)) == (404, 404, "Not Found")
    assert error(*await api.call("PUT", "projects", admin))[:2] == (405, 405)


async def test_admission_of_users_roles_and_roles_names(store: Store) -> None:
    """What every writer (desiredctl, gitsync, this API) is refused: a user holding a role
    that does not exist, a Role named as a built-in one."""
    user = {
        "kind": "User",
        "metadata": {"name": "ivy"},
        "spec": {"roles": [{"role": "member"}, {"role": "auditor", "project": "p1"}]},
    }
    with pytest.raises(Invalid) as refused:
        await admit(store, user)
    assert refused.value.errors == [FieldError("spec.roles[1].role", "there is no role 'auditor'")]
    await store.create({"kind": "Role", "metadata": {"name": "auditor"}, "spec": {}})
    await admit(store, user)
    with pytest.raises(Invalid):
        await admit(store, {"kind": "Role", "metadata": {"name": "admin"}, "spec": {}})


async def test_keystone_names_are_free_text_and_change(api: Api, store: Store) -> None:
    """Keystone's names (capitals, spaces) live beside object names that never change."""
    admin = await api.login("admin", "admin-secret", "admin")
    code, made = await api.call("POST", "projects", admin, {"project": {"name": "My Project"}})
    assert code == 201 and made["project"]["name"] == "My Project"
    pid = made["project"]["id"]
    (obj,) = [p for p in (await store.list("Project")).items if p["metadata"]["name"] != "admin"]
    assert obj["metadata"]["name"].startswith("my-project-")
    assert obj["spec"]["displayName"] == "My Project"
    dup = await api.call("POST", "projects", admin, {"project": {"name": "My Project"}})
    assert error(*dup) == (409, 409, "Conflict")
    code, made = await api.call(
        "POST",
        "users",
        admin,
        {"user": {"name": "Carol C", "password": "carol-pass", "project_id": pid}},
    )
    assert code == 201 and made["user"]["name"] == "Carol C", made
    assert made["user"]["project_id"] == pid  # an extra attribute, answered back
    uid = made["user"]["id"]
    member = (await api.call("GET", "roles", admin, name="member"))[1]["roles"][0]["id"]
    assert (await api.call("PUT", f"projects/{pid}/users/{uid}/roles/{member}", admin))[0] == 204
    carol = await api.login("Carol C", "carol-pass", "My Project")
    headers = {"X-Auth-Token": carol, "X-Subject-Token": carol}
    async with api.http.get(f"{api.base}/identity/v3/auth/tokens", headers=headers) as resp:
        token = (await resp.json())["token"]
    assert (token["user"]["name"], token["project"]["name"]) == ("Carol C", "My Project")
    # renames change the Keystone name only; the old name is free again, the new one taken
    code, changed = await api.call("PATCH", f"projects/{pid}", admin, {"project": {"name": "P2"}})
    assert code == 200 and changed["project"]["name"] == "P2"
    assert (await store.get(Ref("Project", None, obj["metadata"]["name"])))["spec"][
        "displayName"
    ] == "P2"
    code, listed = await api.call("GET", "projects", admin, name="P2")
    assert [p["id"] for p in listed["projects"]] == [pid]
    code, again = await api.call("POST", "projects", admin, {"project": {"name": "My Project"}})
    assert code == 201 and again["project"]["id"] != pid
    clash = await api.call("PATCH", f"projects/{pid}", admin, {"project": {"name": "My Project"}})
    assert error(*clash)[0] == 409
    code, changed = await api.call("PATCH", f"users/{uid}", admin, {"user": {"name": "carol"}})
    assert code == 200 and changed["user"]["name"] == "carol"
    (carol_obj,) = [u for u in (await store.list("User")).items if u["metadata"]["name"] != "admin"]
    assert carol_obj["metadata"]["name"].startswith("carol-c-")
    assert carol_obj["spec"]["displayName"] == "carol"
    await api.login("carol", "carol-pass", "P2")
    # a member lists no projects (its own are at /v3/auth/projects); a domain is not found
    assert error(*await api.call("GET", "projects", carol))[0] == 403
    nowhere = {"user": {"name": "dan", "domain_id": "f" * 32}}
    assert error(*await api.call("POST", "users", admin, nowhere))[0] == 404


async def test_a_system_reader_reads_and_writes_nothing(api: Api, store: Store) -> None:
    await store.create(
        {
            "kind": "User",
            "metadata": {"name": "auditor"},
            "spec": {
                "passwordHash": hash_password("auditor-secret", iterations=1000),
                "roles": [{"role": "reader"}],
            },
        }
    )
    body = password_login("auditor", "auditor-secret", None)
    body["auth"]["scope"] = {"system": {"all": True}}
    async with api.http.post(f"{api.base}/identity/v3/auth/tokens", json=body) as resp:
        assert resp.status == 201
        assert (await resp.json())["token"]["system"] == {"all": True}
        auditor = resp.headers["X-Subject-Token"]
    for path in ("projects", "users", "roles", "domains", "role_assignments"):
        assert (await api.call("GET", path, auditor))[0] == 200, path
    made = await api.call("POST", "projects", auditor, {"project": {"name": "nope"}})
    assert error(*made) == (403, 403, "Forbidden")


async def test_a_token_rescoped_keeps_its_expiry(api: Api) -> None:
    """Keystone's rescoping: an unscoped token buys a scoped one that expires with it."""
    admin = await api.login("admin", "admin-secret")
    async with api.http.get(
        f"{api.base}/identity/v3/auth/tokens",
        headers={"X-Auth-Token": admin, "X-Subject-Token": admin},
    ) as resp:
        unscoped = (await resp.json())["token"]
    assert unscoped["methods"] == ["password"] and "project" not in unscoped
    body = {
        "auth": {
            "identity": {"methods": ["token"], "token": {"id": admin}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
        }
    }
    async with api.http.post(f"{api.base}/identity/v3/auth/tokens", json=body) as resp:
        assert resp.status == 201
        scoped = (await resp.json())["token"]
    assert scoped["expires_at"] == unscoped["expires_at"]
    assert scoped["methods"] == ["password", "token"] and scoped["project"]["name"] == "admin"


async def test_access_rules_limit_an_application_credentials_tokens(api: Api) -> None:
    admin = await api.login("admin", "admin-secret", "admin")
    uid = (await api.call("GET", "users", admin, name="admin"))[1]["users"][0]["id"]
    creds, rules = f"users/{uid}/application_credentials", f"users/{uid}/access_rules"
    ips = {"service": "compute", "method": "GET", "path": "/v2.1/servers/*/ips"}
    asked = {"name": "ips-only", "access_rules": [ips]}
    code, made = await api.call("POST", creds, admin, {"application_credential": asked})
    assert code == 201, made
    cred = made["application_credential"]
    (rule,) = cred["access_rules"]
    assert {k: v for k, v in rule.items() if k != "id"} == ips
    # the same rule again is the same rule; an unknown id is 404; a bad method 400
    again = {"name": "ips-too", "access_rules": [{"id": rule["id"]}, ips]}
    code, made = await api.call("POST", creds, admin, {"application_credential": again})
    assert code == 201 and [r["id"] for r in made["application_credential"]["access_rules"]] == [
        rule["id"]
    ]
    await api.call("DELETE", f"{creds}/{made['application_credential']['id']}", admin)
    unknown = {"name": "x", "access_rules": [{"id": "0" * 32}]}
    assert (
        error(*await api.call("POST", creds, admin, {"application_credential": unknown}))[0] == 404
    )
    bad = {"name": "x", "access_rules": [{**ips, "method": "FETCH"}]}
    assert error(*await api.call("POST", creds, admin, {"application_credential": bad}))[0] == 400
    code, listed = await api.call("GET", rules, admin)
    assert [r["id"] for r in listed["access_rules"]] == [rule["id"]]
    assert (await api.call("GET", rules, admin, service="image"))[1]["access_rules"] == []
    # its token makes the calls the rule allows, and no other (keystonemiddleware's 401)
    body = {
        "auth": {
            "identity": {
                "methods": ["application_credential"],
                "application_credential": {"id": cred["id"], "secret": cred["secret"]},
            }
        }
    }
    async with api.http.post(f"{api.base}/identity/v3/auth/tokens", json=body) as resp:
        assert resp.status == 201
        assert (await resp.json())["token"]["application_credential"]["access_rules"] == [ips]
        token = resp.headers["X-Subject-Token"]
    headers = {"X-Auth-Token": token}
    async with api.http.get(
        f"{api.base}/compute/v2.1/servers/{'0' * 32}/ips", headers=headers
    ) as r:
        assert r.status == 404  # allowed through: no such server
    for path in ("/compute/v2.1/servers", "/identity/v3/projects", "/image/v2/images"):
        async with api.http.get(f"{api.base}{path}", headers=headers) as r:
            assert r.status == 401, path
            assert (await r.json())["error"]["title"] == "Unauthorized"
    # a rule in use stays; once its credential is gone it goes when its user deletes it
    assert error(*await api.call("DELETE", f"{rules}/{rule['id']}", admin)) == (
        403,
        403,
        "Forbidden",
    )
    assert (await api.call("DELETE", f"{creds}/{cred['id']}", admin))[0] == 204
    assert (await api.call("GET", f"{rules}/{rule['id']}", admin))[0] == 200
    assert (await api.call("DELETE", f"{rules}/{rule['id']}", admin))[0] == 204
    assert error(*await api.call("GET", f"{rules}/{rule['id']}", admin))[0] == 404


async def test_projects_below_projects_and_tags(api: Api, store: Store) -> None:
    admin = await api.login("admin", "admin-secret", "admin")
    top = (await api.call("POST", "projects", admin, {"project": {"name": "top"}}))[1]["project"]
    asked = {"name": "Below", "parent_id": top["id"], "tags": ["a", "b"]}
    code, made = await api.call("POST", "projects", admin, {"project": asked})
    assert code == 201, made
    below = made["project"]
    assert (below["parent_id"], below["tags"]) == (top["id"], ["a", "b"])
    assert (await store.get(Ref("Project", None, "top")))["metadata"]["name"] == "top"
    code, listed = await api.call("GET", "projects", admin, parent_id=top["id"])
    assert [p["id"] for p in listed["projects"]] == [below["id"]]
    code, listed = await api.call("GET", "projects", admin, **{"tags-any": "b,z"})
    assert [p["id"] for p in listed["projects"]] == [below["id"]]
    assert (await api.call("GET", "projects", admin, tags="a,z"))[1]["projects"] == []
    nowhere = {"project": {"name": "x", "parent_id": "0" * 32}}
    assert error(*await api.call("POST", "projects", admin, nowhere))[0] == 404
    moved = {"project": {"parent_id": "default"}}
    assert error(*await api.call("PATCH", f"projects/{below['id']}", admin, moved))[0] == 403
    for bad in (["a/b"], ["a", "a"], "a", [""]):
        tagged = {"project": {"name": "y", "tags": bad}}
        assert error(*await api.call("POST", "projects", admin, tagged))[0] == 400, bad
    # a parent goes only after what is below it
    assert error(*await api.call("DELETE", f"projects/{top['id']}", admin))[0] == 403
    # /tags: list, add, check, replace, remove
    tags = f"projects/{below['id']}/tags"
    assert (await api.call("GET", tags, admin))[1] == {"tags": ["a", "b"]}
    assert (await api.call("PUT", f"{tags}/c", admin))[0] == 201
    assert (await api.call("HEAD", f"{tags}/c", admin))[0] == 204
    assert (await api.call("GET", f"{tags}/z", admin))[0] == 404
    assert (await api.call("PUT", tags, admin, {"tags": ["x"]}))[1] == {"tags": ["x"]}
    assert (await api.call("DELETE", f"{tags}/x", admin))[0] == 204
    assert (await api.call("GET", f"projects/{below['id']}", admin))[1]["project"]["tags"] == []
    assert (await api.call("DELETE", f"projects/{below['id']}", admin))[0] == 204
    assert (await api.call("DELETE", f"projects/{top['id']}", admin))[0] == 204


async def test_a_login_without_scope_gets_the_default_project(api: Api) -> None:
    admin = await api.login("admin", "admin-secret", "admin")
    pid = (await api.call("POST", "projects", admin, {"project": {"name": "home"}}))[1]["project"][
        "id"
    ]
    asked = {"user": {"name": "hal", "password": "h-pass", "default_project_id": pid}}
    uid = (await api.call("POST", "users", admin, asked))[1]["user"]["id"]

    async def scope_of(token: str) -> Any:
        headers = {"X-Auth-Token": token, "X-Subject-Token": token}
        async with api.http.get(f"{api.base}/identity/v3/auth/tokens", headers=headers) as resp:
            return (await resp.json())["token"].get("project")

    assert await scope_of(await api.login("hal", "h-pass")) is None  # no role there yet
    reader = (await api.call("GET", "roles", admin, name="reader"))[1]["roles"][0]["id"]
    assert (await api.call("PUT", f"projects/{pid}/users/{uid}/roles/{reader}", admin))[0] == 204
    assert (await scope_of(await api.login("hal", "h-pass")))["id"] == pid
    await api.call("PATCH", f"projects/{pid}", admin, {"project": {"enabled": False}})
    assert await scope_of(await api.login("hal", "h-pass")) is None

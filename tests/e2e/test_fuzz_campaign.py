"""A fuzz campaign against ``desired up``: hostile input through every API, then the cloud is whole.

Hypothesis draws requests for the Compute, declarative, identity, image,
Neutron and metadata APIs, as a member and as an admin: arbitrary Unicode
(lone surrogates, NUL, controls, right-to-left marks, 64 KiB strings),
numbers (negative, huge, floats where integers go), deep nesting and broken
bodies. No answer may be a server error. Afterwards every process of the
cloud is alive, SQL holds exactly what etcd holds, and a plain server still
becomes ACTIVE. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from fixtures.keystone import password_login
from state import keys
from state.etcd import prefix_end
from tests.conftest import eventually
from tests.e2e.up_process import Up

#: examples drawn per run (each one request)
EXAMPLES = int(os.environ.get("DESIRED_FUZZ_EXAMPLES", "300"))
#: the same examples every run (CI), unless asked to explore
EXPLORE = bool(os.environ.get("DESIRED_FUZZ_EXPLORE"))

NASTY = [
    "\ud800",
    "x\udfffy",
    "\x00",
    "nul\x00in",
    "\u202eevil",
    "\u200b",
    "\ufeff",
    "\t",
    " ",
    "",
    "a" * 65536,
    "../../etc/passwd",
    "%00",
    "\\",
    "'\"",
    "(a+)+$",
    "\U0001f600",
    "0.0.0.0/0",
    "127.0.0.1/8",
    "nova:host",
    "::::",
]
texts = st.one_of(
    st.sampled_from(NASTY),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=24),
    st.text(max_size=8),
)
numbers = st.one_of(
    st.sampled_from([-1, 0, 1, 2**31, 2**63, -(2**63), 10**30, 0.5, 1.0, -0.0]),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
)
scalars = st.one_of(texts, numbers, st.booleans(), st.none())
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


def _fields(**sensible: Any) -> st.SearchStrategy[dict[str, Any]]:
    """An object with some of these fields, each hostile or sensible (so that handlers get
    past their first check), and perhaps an extra field."""
    return st.fixed_dictionaries(
        {}, optional={k: st.one_of(values, st.just(v)) for k, v in sensible.items()}
    ).flatmap(
        lambda d: st.dictionaries(texts, values, max_size=1).map(lambda extra: {**d, **extra})
    )


Request = tuple[str, str, str, Any]  # who, method, path, body (JSON value, or bytes as they are)


@st.composite
def requests_(draw: st.DrawFn, ids: dict[str, str]) -> Request:
    who = draw(st.sampled_from(["demo", "admin"]))
    sid, image, flavor = ids["server"], ids["image"], ids["flavor"]
    word = draw(texts)
    q = quote(word.encode("utf-8", "surrogatepass"), safe="")
    choices: list[Callable[[], Request]] = [
        lambda: (
            who,
            "POST",
            "/compute/v2.1/servers",
            {
                "server": draw(
                    _fields(
                        name="fz",
                        imageRef=image,
                        flavorRef=flavor,
                        networks="none",
                        metadata={"k": "v"},
                        availability_zone="nova",
                        user_data="aGk=",
                        min_count=1,
                        max_count=1,
                        key_name="k",
                        description="d",
                        security_groups=[{"name": "default"}],
                    )
                )
            },
        ),
        lambda: (
            who,
            "PUT",
            f"/compute/v2.1/servers/{sid}",
            {"server": draw(_fields(name="n", description="d"))},
        ),
        lambda: (who, "PUT", f"/compute/v2.1/servers/{sid}/tags", {"tags": draw(values)}),
        lambda: (who, "PUT", f"/compute/v2.1/servers/{sid}/tags/{q}", None),
        lambda: (who, "PUT", f"/compute/v2.1/servers/{sid}/metadata", {"metadata": draw(values)}),
        lambda: (
            who,
            "POST",
            f"/compute/v2.1/servers/{sid}/action",
            draw(
                st.dictionaries(
                    st.sampled_from(
                        [
                            "os-stop",
                            "reboot",
                            "resize",
                            "rebuild",
                            "createImage",
                            "addSecurityGroup",
                            "lock",
                            word,
                        ]
                    ),
                    values,
                    max_size=1,
                )
            ),
        ),
        lambda: (
            who,
            "GET",
            f"/compute/v2.1/servers/detail?name={q}&ip={q}&limit={q}&marker={q}&changes-since={q}&sort_key={q}",
            None,
        ),
        lambda: (who, "GET", f"/compute/v2.1/servers/{q}", None),
        lambda: (
            who,
            "POST",
            "/compute/v2.1/os-keypairs",
            {"keypair": draw(_fields(name="k", public_key="ssh-ed25519 AAAA", type="ssh"))},
        ),
        lambda: (
            who,
            "POST",
            "/compute/v2.1/flavors",
            {
                "flavor": draw(
                    _fields(name="f", ram=64, vcpus=1, disk=1, id="x", swap=0, rxtx_factor=1.0)
                )
            },
        ),
        lambda: (
            who,
            "POST",
            "/compute/v2.1/os-server-groups",
            {
                "server_group": draw(
                    _fields(name="g", policies=["anti-affinity"], policy="affinity", rules={})
                )
            },
        ),
        lambda: (
            who,
            "POST",
            "/compute/v2.1/os-aggregates",
            {"aggregate": draw(_fields(name="a", availability_zone="z"))},
        ),
        lambda: (
            who,
            "POST",
            "/network/v2.0/networks",
            {"network": draw(_fields(name="n", shared=False, admin_state_up=True))},
        ),
        lambda: (
            who,
            "POST",
            "/network/v2.0/subnets",
            {
                "subnet": draw(
                    _fields(
                        name="s",
                        network_id=ids["network"],
                        cidr="10.9.0.0/24",
                        ip_version=4,
                        gateway_ip="10.9.0.1",
                        enable_dhcp=True,
                        allocation_pools=[{"start": "10.9.0.5", "end": "10.9.0.9"}],
                    )
                )
            },
        ),
        lambda: (
            who,
            "POST",
            "/network/v2.0/security-group-rules",
            {
                "security_group_rule": draw(
                    _fields(
                        security_group_id=ids["group"],
                        direction="ingress",
                        protocol="tcp",
                        port_range_min=1,
                        port_range_max=2,
                        remote_ip_prefix="10.0.0.0/8",
                    )
                )
            },
        ),
        lambda: (who, "GET", f"/network/v2.0/networks?name={q}&id={q}", None),
        lambda: (
            who,
            "POST",
            "/network/v2.0/floatingips",
            {
                "floatingip": draw(
                    _fields(
                        floating_network_id=ids["network"],
                        floating_ip_address="10.231.0.77",
                        port_id=ids["server"],
                        fixed_ip_address="10.231.0.5",
                    )
                )
            },
        ),
        lambda: (
            who,
            "POST",
            "/network/v2.0/security-groups",
            {"security_group": draw(_fields(name="g", description="d"))},
        ),
        lambda: (
            who,
            "POST",
            "/image/v2/images",
            draw(
                _fields(
                    name="i",
                    disk_format="raw",
                    container_format="bare",
                    visibility="private",
                    min_disk=0,
                    tags=["t"],
                )
            ),
        ),
        lambda: (who, "GET", f"/image/v2/images?name={q}&limit={q}&marker={q}", None),
        lambda: (
            "",
            "POST",
            "/identity/v3/auth/tokens",
            {
                "auth": {
                    "identity": {
                        "methods": ["password"],
                        "password": {
                            "user": draw(
                                _fields(name="demo", password="x", domain={"id": "default"}, id="x")
                            )
                        },
                    },
                    "scope": draw(values),
                }
            },
        ),
        lambda: (
            who,
            "POST",
            "/apis/v1/apply",
            {
                "kind": draw(
                    st.sampled_from(
                        [
                            "Flavor",
                            "Instance",
                            "Network",
                            "KeyPair",
                            "Image",
                            "SecurityGroup",
                            "ServerGroup",
                            word,
                        ]
                    )
                ),
                "metadata": draw(
                    _fields(name="fz", project="demo", labels={"a": "b"}, annotations={"a": "b"})
                ),
                "spec": draw(values),
            },
        ),
        lambda: (
            who,
            "GET",
            f"/apis/v1/projects/demo/instances?labelSelector={q}&limit={q}&continue={q}",
            None,
        ),
        lambda: (
            who,
            "GET",
            f"/apis/v1/projects/demo/instances?watch=true&timeoutSeconds=0&resourceVersion={q}",
            None,
        ),
        lambda: (
            "metadata",
            "GET",
            "/openstack/latest/meta_data.json",
            {"X-Instance-ID": word, "X-Instance-ID-Signature": draw(texts)},
        ),
        lambda: (
            who,
            "POST",
            draw(
                st.sampled_from(
                    [
                        "/compute/v2.1/servers",
                        "/apis/v1/apply",
                        "/network/v2.0/networks",
                        "/image/v2/images",
                        "/identity/v3/auth/tokens",
                    ]
                )
            ),
            draw(
                st.sampled_from(
                    [
                        b"[" * 100_000,
                        b"{" * 5000,
                        b"\xff\xfe\x00",
                        b'{"a":',
                        b"[NaN]",
                        b"[1e999]",
                        b'"\\ud800"',
                        b"a: &a [1,1]\nb: [*a,*a]",
                    ]
                )
            ),
        ),
    ]
    return draw(st.sampled_from(choices))()


class Cloud:
    """Callers of a running ``desired up``: tokens for demo and admin, the endpoints."""

    def __init__(self, up: Up) -> None:
        self.up = up
        # a connection per request: a server may close one after refusing a body unread
        self.http = requests
        banner = "".join(up.output)
        found = re.search(r"metadata\s+(http://\S+)", banner)
        assert found is not None, banner
        self.metadata = found.group(1)
        clouds = yaml.safe_load((up.data_dir / "clouds.yaml").read_text())["clouds"]
        self.tokens = {
            user: self._token(clouds[f"desired-{user}"]["auth"]) for user in ("demo", "admin")
        }
        self.bootstrap = yaml.safe_load((up.data_dir / "desiredctl.yaml").read_text())["token"]

    def _token(self, auth: dict[str, str]) -> str:
        body = password_login(auth["username"], auth["password"], auth["project_name"])
        resp = self.http.post(f"{self.up.url}/identity/v3/auth/tokens", json=body, timeout=30)
        assert resp.status_code == 201, resp.text
        return resp.headers["X-Subject-Token"]

    def send(self, who: str, method: str, path: str, body: Any) -> requests.Response:
        if who == "metadata":
            headers = {k: v.encode("utf-8", "surrogatepass") for k, v in body.items()}
            return self.http.get(self.metadata + path, headers=headers, timeout=30)
        if "watch=true" in path:  # a watch that starts streams on: its status is the answer
            with self.http.get(
                self.up.url + path,
                headers={"Authorization": f"Bearer {self.bootstrap}"},
                stream=True,
                timeout=30,
            ) as resp:
                return resp
        headers = {"OpenStack-API-Version": "compute 2.47"}
        if who:
            headers["X-Auth-Token"] = self.tokens[who]
            if path.startswith("/apis/v1"):
                headers["Authorization"] = f"Bearer {self.bootstrap}"
        if isinstance(body, bytes):
            headers["Content-Type"] = "application/json"
            return self.http.request(
                method, self.up.url + path, data=body, headers=headers, timeout=30
            )
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        return self.http.request(method, self.up.url + path, data=data, headers=headers, timeout=30)

    def compute(self, who: str, method: str, path: str, body: Any = None) -> Any:
        resp = self.send(who, method, "/compute/v2.1" + path, body)
        assert resp.status_code < 300, resp.text
        return resp.json() if resp.text else None


@pytest.fixture
def up_on(sql_url: str, tmp_path: Path) -> Iterator[Up]:
    """``desired up --simulate`` on SQLite (its own) or on a fresh PostgreSQL database."""
    env = {} if sql_url.startswith("sqlite") else {"DESIRED_SQL_URL": sql_url}
    u = Up(tmp_path / "desired", "--simulate", "1", env=env)
    try:
        yield u
    finally:
        if u.proc.poll() is None:
            u.stop()


def _server_active(cloud: Cloud, name: str, image: str, flavor: str) -> str:
    made = cloud.compute(
        "demo",
        "POST",
        "/servers",
        {"server": {"name": name, "imageRef": image, "flavorRef": flavor, "networks": "none"}},
    )
    sid = str(made["server"]["id"])

    async def active() -> bool:
        shown = await asyncio.to_thread(cloud.compute, "demo", "GET", f"/servers/{sid}")
        return bool(shown["server"]["status"] == "ACTIVE")

    asyncio.run(eventually(active, timeout=60))
    return sid


async def _etcd_objects(up: Up) -> dict[str, int]:
    """uid -> resourceVersion of every object in etcd (the later of spec and status)."""
    etcd = up.etcd()
    try:
        spec_p, status_p = keys.spec_prefix(), keys.status_prefix()
        specs = (await etcd.range(spec_p, prefix_end(spec_p))).kvs
        statuses = {kv.key: kv for kv in (await etcd.range(status_p, prefix_end(status_p))).kvs}
    finally:
        await etcd.close()
    out = {}
    for kv in specs:
        uid = json.loads(kv.value)["metadata"]["uid"]
        st_kv = statuses.get(keys.status_for_spec(kv.key))
        rv = kv.mod_revision
        if st_kv is not None and json.loads(st_kv.value).get("uid") == uid:
            rv = max(rv, st_kv.mod_revision)
        out[uid] = rv
    return out


def _sql_objects(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT uid, resource_version FROM resources WHERE deleted_at IS NULL")
            )
            return {str(uid): int(rv) for uid, rv in rows}
    finally:
        engine.dispose()


def test_fuzz_campaign_leaves_the_cloud_whole(up_on: Up, sql_url: str) -> None:
    cloud = Cloud(up_on)
    conductor = up_on.conductor_pid()
    images = cloud.send("demo", "GET", "/image/v2/images", None).json()["images"]
    image = next(i["id"] for i in images if i["name"] == "tiny")
    flavor = next(
        f["id"]
        for f in cloud.compute("demo", "GET", "/flavors")["flavors"]
        if f["name"] == "m1.tiny"
    )
    network = cloud.send("demo", "GET", "/network/v2.0/networks", None).json()["networks"][0]["id"]
    group = cloud.send("demo", "GET", "/network/v2.0/security-groups", None).json()[
        "security_groups"
    ][0]["id"]
    ids = {
        "server": _server_active(cloud, "target", image, flavor),
        "image": image,
        "flavor": flavor,
        "network": network,
        "group": group,
    }
    errors: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=not EXPLORE,
    )
    @given(requests_(ids))
    def one(req: Request) -> None:
        try:
            resp = cloud.send(*req)
        except (requests.exceptions.InvalidHeader, ValueError):
            assume(False)  # not a request an HTTP client can send (a header with a line break)
        if resp.status_code >= 500:
            errors.append(
                f"{req[0]} {req[1]} {req[2][:200]} {req[3]!r:.500} -> {resp.status_code}"
                f" {resp.text[:300]}"
            )

    one()  # every example runs: the failures are listed together below
    assert not errors, f"{len(errors)} server errors:\n" + "\n".join(errors[:30])
    # every process of the cloud is alive
    assert up_on.proc.poll() is None, "".join(up_on.output[-50:])
    os.kill(conductor, 0)
    # SQL holds exactly what etcd holds
    sql = (
        sql_url
        if not sql_url.startswith("sqlite")
        else f"sqlite:///{up_on.data_dir / 'desired.sqlite'}"
    )

    async def same() -> bool:
        want = await _etcd_objects(cloud.up)
        have = await asyncio.to_thread(_sql_objects, sql)
        assert have == want, (
            f"etcd only: {sorted(set(want) - set(have))[:5]}, SQL only: {sorted(set(have) - set(want))[:5]}, "
            f"older in SQL: {[u for u in want if u in have and have[u] != want[u]][:5]}"
        )
        return True

    asyncio.run(eventually(same, timeout=30, interval=0.5))
    # and a plain server still becomes ACTIVE
    _server_active(cloud, "after-the-storm", image, flavor)

"""Subnets of every size through the Neutron API: a /0 costs what a /30 does.

Starts its own etcd and ``desired apiserver`` as a separate process, makes an
admin (of projects ``bench`` and ``bench0``: a /0 overlaps every other network,
so it has a project of its own) and a member; then, for a /30, /24, /16, /8 and
/0 in turn, an external network and over HTTP:

1. ``POST /subnets`` (one, timed);
2. ``GET /subnets`` (p50 and max of ``--lists``; it lists every subnet so far);
3. ``GET /subnets/{id}``;
4. ``POST /floatingips`` (``--fips`` of them: each allocates an address of the
   subnet in the API process, as a port's allocation does in the reconciler;
   a /30 has one address, so the others are 409, after reading the pool);

and the API process's peak RSS growth over those steps (its high-water mark,
reset through ``/proc/<pid>/clear_refs`` before each size). Then a member's
``POST /subnets`` of ``0.0.0.0/0`` (refused: 400), and, in this process,
tracemalloc's peak while building the Neutron view of a /0 subnet. Before
issue 13 the pool was a list of every address: a /12 took 1.1 s and a /0
grew the API server to 22 GB in three minutes.

    .venv/bin/python -m benchmarks.big_subnets
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import aiohttp

from apiserver.network.common import Projects
from apiserver.network.networks import subnet_view
from fixtures.etcd import EtcdServer
from fixtures.keystone import password_login
from state.etcd import EtcdClient
from state.passwords import hash_password
from state.sql.migrate import upgrade
from state.store import Store

BIN = Path(sys.executable).parent
SIZES = (
    ("bench", "10.0.0.0/30"),
    ("bench", "10.1.0.0/24"),
    ("bench", "10.2.0.0/16"),
    ("bench", "11.0.0.0/8"),
    ("bench0", "0.0.0.0/0"),
)


async def seed(store: Store) -> None:
    for project in ("bench", "bench0"):
        await store.create({"kind": "Project", "metadata": {"name": project}, "spec": {}})
        await store.create(
            {
                "kind": "Quota",
                "metadata": {"name": "default", "project": project},
                "spec": {"limits": {"floating_ips": -1}},
            }
        )
    for user, roles in (
        (
            "admin",
            [{"role": "admin"}, *({"role": "admin", "project": p} for p in ("bench", "bench0"))],
        ),
        ("member", [{"role": "member", "project": "bench"}]),
    ):
        await store.create(
            {
                "kind": "User",
                "metadata": {"name": user},
                "spec": {
                    "passwordHash": hash_password(f"{user}-secret", iterations=1000),
                    "roles": roles,
                },
            }
        )


async def token(http: aiohttp.ClientSession, base: str, user: str, project: str) -> str:
    body = password_login(user, f"{user}-secret", project)
    async with http.post(f"{base}/identity/v3/auth/tokens", json=body) as resp:
        assert resp.status == 201, await resp.text()
        return resp.headers["X-Subject-Token"]


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_peak(pid: int) -> int:
    """Sets the process's RSS high-water mark to its RSS now; returns that (KiB)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _kib(pid, "VmRSS")


class Api:
    """Timed calls of the Neutron subset as one caller."""

    def __init__(self, http: aiohttp.ClientSession, base: str, tok: str) -> None:
        self.http, self.base, self.headers = http, f"{base}/network/v2.0", {"X-Auth-Token": tok}

    async def __call__(
        self, method: str, path: str, body: object = None
    ) -> tuple[int, dict, float]:
        t0 = time.perf_counter()
        async with self.http.request(
            method, self.base + path, json=body, headers=self.headers
        ) as resp:
            data = await resp.json()
        return resp.status, data, (time.perf_counter() - t0) * 1000


async def one_size(
    args: argparse.Namespace, api: Api, api_pid: int, cidr: str
) -> tuple[float, list[float], float, list[float], int]:
    """(create ms, list ms samples, show ms, floating IP ms samples, peak RSS growth KiB)."""
    code, net, _ = await api(
        "POST", "/networks", {"network": {"name": f"n{cidr}", "router:external": True}}
    )
    assert code == 201, net
    before = _reset_peak(api_pid)
    body = {"subnet": {"network_id": net["network"]["id"], "cidr": cidr}}
    code, made, create_ms = await api("POST", "/subnets", body)
    assert code == 201, made
    lists = []
    for _ in range(args.lists):
        code, listed, ms = await api("GET", "/subnets")
        assert code == 200 and any(s["cidr"] == cidr for s in listed["subnets"])
        lists.append(ms)
    code, _, show_ms = await api("GET", f"/subnets/{made['subnet']['id']}")
    assert code == 200
    fips = []
    for _ in range(args.fips):
        fip_body = {"floatingip": {"floating_network_id": net["network"]["id"]}}
        code, fip, ms = await api("POST", "/floatingips", fip_body)
        assert code == 201 or (code == 409 and fips), fip  # a /30 has one address
        fips.append(ms)
    return create_ms, lists, show_ms, fips, _kib(api_pid, "VmHWM") - before


def view_peak() -> tuple[float, int]:
    """(ms, tracemalloc peak bytes) of building the Neutron view of a /0 subnet here."""
    net = {
        "kind": "Network",
        "metadata": {"name": "n", "project": "p", "uid": "0" * 32, "generation": 1},
        "spec": {"cidr": "0.0.0.0/0"},
    }
    projects = Projects([])
    subnet_view(net, projects)  # imports and caches warm
    tracemalloc.start()
    t0 = time.perf_counter()
    subnet_view(net, projects)
    ms = (time.perf_counter() - t0) * 1000
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return ms, peak


async def run(args: argparse.Namespace, etcd_url: str, base: str, api_pid: int) -> None:
    etcd = EtcdClient(etcd_url)
    await seed(Store(etcd))
    async with aiohttp.ClientSession() as http:
        tokens = {p: await token(http, base, "admin", p) for p in ("bench", "bench0")}
        print(
            "| subnet | POST /subnets | GET /subnets p50 (max) | GET /subnets/{id} | POST /floatingips p50 (max) | API peak RSS growth |"
        )
        print("|---|---|---|---|---|---|")
        for project, cidr in SIZES:
            create, lists, show, fips, grown = await one_size(
                args, Api(http, base, tokens[project]), api_pid, cidr
            )
            print(
                f"| {cidr} | {create:.1f} ms | {statistics.median(lists):.1f} ({max(lists):.1f}) ms"
                f" | {show:.1f} ms | {statistics.median(fips):.1f} ({max(fips):.1f}) ms | {grown} KiB |"
            )
        member = Api(http, base, await token(http, base, "member", "bench"))
        code, net, _ = await member("POST", "/networks", {"network": {"name": "mine"}})
        body = {"subnet": {"network_id": net["network"]["id"], "cidr": "0.0.0.0/0"}}
        code, refused, ms = await member("POST", "/subnets", body)
        assert code == 400, refused
        print(
            f"a member's POST /subnets of 0.0.0.0/0: {code} {refused['NeutronError']['type']}"
            f" in {ms:.1f} ms"
        )
    ms, peak = view_peak()
    print(
        f"Neutron view of a /0 subnet, in process: {ms:.2f} ms, tracemalloc peak {peak / 1024:.1f} KiB"
    )
    await etcd.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lists", type=int, default=20, help="GET /subnets per size")
    p.add_argument("--fips", type=int, default=5, help="floating IPs allocated per size")
    args = p.parse_args()
    with contextlib.ExitStack() as stack:
        etcd = stack.enter_context(EtcdServer())
        data = stack.enter_context(tempfile.TemporaryDirectory())
        sql_url = f"sqlite:///{data}/desired.sqlite"
        upgrade(sql_url)
        env = dict(
            os.environ,
            DESIRED_ETCD_URL=etcd.url,
            DESIRED_DATA_DIR=data,
            DESIRED_SQL_URL=sql_url,
            DESIRED_API_PORT="0",
            DESIRED_METADATA_PORT="0",
        )
        api = subprocess.Popen(
            [str(BIN / "desired"), "apiserver"], env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            assert api.stdout is not None
            line = api.stdout.readline()
            found = re.search(r"http://\S+", line)
            if found is None:
                raise SystemExit(f"the API server did not start: {line!r}")
            asyncio.run(run(args, etcd.url, found.group(0), api.pid))
        finally:
            api.terminate()
            api.wait(30)


if __name__ == "__main__":
    main()

"""The worst-case ``name=`` pattern over 10,000 servers, and what it costs other requests.

Starts its own etcd and a ``desired apiserver`` process (SQLite, or with
``--postgresql`` a PostgreSQL it starts), makes a project with a member, and
writes ``--servers`` servers' rows straight into SQL (as the conductor
projects them) named ``a…a!`` (20 to 24 ``a``: Python ``re``'s worst case for
``(a+)+$``, about a second per name). Then, over HTTP:

1. alone: ``GET /compute/v2.1/`` (the version document) and
   ``GET /servers?limit=10`` (p50, p99 of ``--requests`` each);
2. ``GET /servers?name=(a+)+$&limit=1000`` (p50, p99, max of ``--lists``);
3. the same lists from ``--listers`` clients without pause, while the two
   requests of 1 are timed again.

    .venv/bin/python -m benchmarks.list_patterns --servers 10000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from urllib.parse import quote

import aiohttp

from benchmarks import sql_backend
from benchmarks.accounts import project_with_member
from fixtures.apiserver import ApiServerProcess
from fixtures.etcd import EtcdServer
from fixtures.keystone import password_login
from fixtures.servers import instance_objects, project_servers
from state.etcd import EtcdClient
from state.sql.migrate import upgrade
from state.store import Store

PROJECT = "bench"
WORST = "(a+)+$"


def quantiles(ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return f"p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms, max {max(ms):.1f} ms"


async def seed(etcd_url: str, sql_url: str, servers: int) -> None:
    etcd = EtcdClient(etcd_url)
    store = Store(etcd)
    await project_with_member(store, PROJECT)
    await etcd.close()
    await asyncio.to_thread(upgrade, sql_url)
    names = [f"{'a' * (20 + i % 5)}!" for i in range(servers)]
    t0 = time.perf_counter()
    await asyncio.to_thread(project_servers, sql_url, instance_objects(names, PROJECT))
    print(f"wrote {servers} servers' rows in {time.perf_counter() - t0:.1f} s")


async def token(http: aiohttp.ClientSession, base: str) -> str:
    body = password_login("bench", "bench-secret", PROJECT)
    async with http.post(f"{base}/identity/v3/auth/tokens", json=body) as resp:
        assert resp.status == 201, await resp.text()
        return resp.headers["X-Subject-Token"]


async def timed(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], n: int
) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        async with http.get(url, headers=headers) as resp:
            await resp.read()
            assert resp.status == 200, resp.status
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def run(args: argparse.Namespace, base: str) -> None:
    compute = f"{base}/compute/v2.1"
    worst = f"{compute}/servers?limit=1000&name={quote(WORST, safe='')}"
    async with aiohttp.ClientSession() as http:
        headers = {"X-Auth-Token": await token(http, base)}
        async with http.get(worst, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            print(f"{WORST} matches {len((await resp.json())['servers'])} servers")

        async def others(label: str) -> None:
            versions = await timed(http, f"{compute}/", {}, args.requests)
            print(f"{label}: GET /compute/v2.1/ ({args.requests}): {quantiles(versions)}")
            lists = await timed(http, f"{compute}/servers?limit=10", headers, args.requests)
            print(f"{label}: GET /servers?limit=10 ({args.requests}): {quantiles(lists)}")

        await others("alone")
        lists = await timed(http, worst, headers, args.lists)
        print(f"GET /servers?name={WORST}&limit=1000 ({args.lists}, alone): {quantiles(lists)}")

        stop = asyncio.Event()
        busy: list[float] = []

        async def lister() -> None:
            while not stop.is_set():
                busy.extend(await timed(http, worst, headers, 1))

        listers = [asyncio.create_task(lister()) for _ in range(args.listers)]
        await asyncio.sleep(0.5)
        await others(f"with {args.listers} clients listing {WORST}")
        stop.set()
        await asyncio.gather(*listers)
        print(f"GET /servers?name={WORST} meanwhile ({len(busy)}): {quantiles(busy)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--servers", type=int, default=10_000)
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--lists", type=int, default=50)
    p.add_argument("--listers", type=int, default=2)
    p.add_argument(
        "--postgresql", action="store_true", help="read from a PostgreSQL it starts, not SQLite"
    )
    args = p.parse_args()
    with contextlib.ExitStack() as stack:
        etcd = stack.enter_context(EtcdServer())
        data = stack.enter_context(tempfile.TemporaryDirectory())
        sql_url = sql_backend.sql_url(stack, data, args.postgresql)
        print(f"SQL: {sql_url.split(':', 1)[0]}")
        asyncio.run(seed(etcd.url, sql_url, args.servers))
        env = {"DESIRED_SQL_URL": sql_url}
        api = stack.enter_context(ApiServerProcess(etcd.url, data, "bench-token", env=env))
        asyncio.run(run(args, api.url))


if __name__ == "__main__":
    main()

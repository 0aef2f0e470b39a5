"""The Compute API with many servers: list and show latency, create throughput, token checks.

Starts its own etcd, ``desired reconcilers`` running only the conductor
(into SQLite, or with ``--postgresql`` into a PostgreSQL it starts) and ``desired apiserver`` as separate processes, makes a
project with a member, puts ``--servers`` Instances into etcd (32 writers)
and waits until SQL has them all, then times over HTTP:

1. ``GET /servers/detail?limit=1000`` (p50, p99 of ``--lists`` requests);
2. ``GET /servers/{id}`` of random servers (p50, p99 of ``--shows``);
3. ``POST /servers``: ``--creates`` servers from ``--clients`` concurrent
   clients (accepted per second; no scheduler runs, so they stay BUILD);
4. token validation: ``GET /identity/v3/auth/tokens`` (p50, p99), and the
   API server's own check of a token in this process (``Identity.check``).

    .venv/bin/python -m benchmarks.compute_api --servers 10000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from apiserver.identity import Identity
from benchmarks import sql_backend
from benchmarks.accounts import project_with_member
from benchmarks.bench_etcd import BenchEtcd, bench_etcd
from fixtures.keystone import password_login
from state import keys
from state.envelope import USER_ANNOTATION, Ref
from state.sql.projection import Projection
from state.store import Store

BIN = Path(sys.executable).parent
PROJECT = "bench"


def quantiles(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return f"p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms"


async def seed(store: Store, servers: int) -> None:
    await project_with_member(store, PROJECT)
    await store.create(
        {
            "kind": "Flavor",
            "metadata": {"name": "m1.tiny"},
            "spec": {"vcpus": 1, "ramMiB": 128, "diskGiB": 1},
        }
    )
    await store.create(
        {"kind": "Image", "metadata": {"name": "tiny"}, "spec": {"visibility": "public"}}
    )
    unlimited = {"instances": -1, "cores": -1, "ram": -1}
    await store.create(
        {
            "kind": "Quota",
            "metadata": {"name": "default", "project": PROJECT},
            "spec": {"limits": unlimited},
        }
    )
    sem = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        async with sem:
            await store.create(
                {
                    "kind": "Instance",
                    "metadata": {
                        "name": f"seed-{i:05d}",
                        "project": PROJECT,
                        "annotations": {USER_ANNOTATION: "bench"},
                    },
                    "spec": {"flavor": "m1.tiny", "image": "tiny", "metadata": {"i": str(i)}},
                }
            )

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(servers)))
    print(f"seeded {servers} servers into etcd in {time.perf_counter() - t0:.1f} s")


async def token(http: aiohttp.ClientSession, base: str) -> str:
    body = password_login("bench", "bench-secret", PROJECT)
    async with http.post(f"{base}/identity/v3/auth/tokens", json=body) as resp:
        assert resp.status == 201, await resp.text()
        return resp.headers["X-Subject-Token"]


async def timed_gets(http: aiohttp.ClientSession, urls: list[str], headers: dict) -> list[float]:
    out = []
    for url in urls:
        t0 = time.perf_counter()
        async with http.get(url, headers=headers) as resp:
            await resp.read()
            assert resp.status == 200, resp.status
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def run(args: argparse.Namespace, bench: BenchEtcd, base: str, sql_url: str) -> None:
    etcd = bench.client()
    store = Store(etcd)
    await seed(store, args.servers)
    view = Projection(sql_url)
    t0 = time.perf_counter()
    target = await etcd.revision(keys.root())
    while await asyncio.to_thread(view.progress) < target:
        await asyncio.sleep(0.05)
    view.close()
    print(f"SQL caught up {time.perf_counter() - t0:.1f} s after the last write")

    async with aiohttp.ClientSession() as http:
        tok = await token(http, base)
        headers = {"X-Auth-Token": tok, "OpenStack-API-Version": f"compute {args.microversion}"}
        compute = f"{base}/compute/v2.1"
        async with http.get(f"{compute}/servers?limit=1000", headers=headers) as resp:
            ids = [s["id"] for s in (await resp.json())["servers"]]

        lists = await timed_gets(
            http, [f"{compute}/servers/detail?limit=1000"] * args.lists, headers
        )
        print(f"GET /servers/detail?limit=1000 ({args.lists}): {quantiles(lists)}")
        shows = await timed_gets(
            http, [f"{compute}/servers/{random.choice(ids)}" for _ in range(args.shows)], headers
        )
        print(f"GET /servers/{{id}} ({args.shows}): {quantiles(shows)}")
        checks = await timed_gets(
            http,
            [f"{base}/identity/v3/auth/tokens"] * args.shows,
            {**headers, "X-Subject-Token": tok},
        )
        print(f"GET /identity/v3/auth/tokens ({args.shows}): {quantiles(checks)}")

        image_ref = (await store.get(Ref("Image", None, "tiny")))["metadata"]["uid"]
        queue = list(range(args.creates))
        accepted = 0

        async def client() -> None:
            nonlocal accepted
            while queue:
                i = queue.pop()
                body = {
                    "server": {
                        "name": f"new-{i:05d}",
                        "imageRef": image_ref,
                        "flavorRef": "m1.tiny",
                        "networks": [],
                    }
                }
                async with http.post(f"{compute}/servers", json=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status == 202:
                        accepted += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(args.clients)))
        elapsed = time.perf_counter() - t0
        print(
            f"POST /servers: {accepted} of {args.creates} accepted in {elapsed:.2f} s with "
            f"{args.clients} clients = {accepted / elapsed:.0f}/s"
        )

    identity = Identity(store, 3600)
    following = asyncio.create_task(identity.follow_grants())  # as the API server does
    await identity.grants_listed()
    n = 10_000
    t0 = time.perf_counter()
    for _ in range(n):
        assert await identity.check(tok) is not None
    print(f"Identity.check in process: {(time.perf_counter() - t0) / n * 1e6:.0f} µs per token")
    following.cancel()
    await asyncio.gather(following, return_exceptions=True)
    await etcd.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--servers", type=int, default=10_000)
    p.add_argument("--lists", type=int, default=20)
    p.add_argument("--shows", type=int, default=500)
    p.add_argument("--creates", type=int, default=1000)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument(
        "--microversion",
        default="2.47",
        help="the Compute API microversion asked (2.47: as clients ask)",
    )
    p.add_argument(
        "--postgresql", action="store_true", help="project into a PostgreSQL it starts, not SQLite"
    )
    p.add_argument(
        "--secure",
        action="store_true",
        help="etcd with TLS and authentication, a user per part (as desired up runs it)",
    )
    args = p.parse_args()
    with contextlib.ExitStack() as stack:
        etcd = stack.enter_context(bench_etcd(args.secure))
        print(f"etcd: {'TLS and authentication' if args.secure else 'plain HTTP, no users'}")
        data = stack.enter_context(tempfile.TemporaryDirectory())
        sql_url = sql_backend.sql_url(stack, data, args.postgresql)
        env = dict(
            os.environ,
            DESIRED_DATA_DIR=data,
            DESIRED_SQL_URL=sql_url,
            DESIRED_RECONCILERS_RUN="conductor",
            DESIRED_API_PORT="0",
        )
        conductor = subprocess.Popen(
            [str(BIN / "desired"), "reconcilers"],
            env={**env, **etcd.env("reconcilers")},
            stdout=subprocess.DEVNULL,
        )
        api = subprocess.Popen(
            [str(BIN / "desired"), "apiserver"],
            env={**env, **etcd.env("apiserver")},
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert api.stdout is not None
            line = api.stdout.readline()
            found = re.search(r"http://\S+", line)
            if found is None:
                raise SystemExit(f"the API server did not start: {line!r}")
            print(f"SQL: {sql_url.split(':', 1)[0]}")
            asyncio.run(run(args, etcd, found.group(0), sql_url))
        finally:
            for proc in (api, conductor):
                proc.terminate()
            for proc in (api, conductor):
                proc.wait(30)


if __name__ == "__main__":
    main()

"""Wrong passwords from many clients, and what they cost everybody else.

Starts its own etcd and a ``desired apiserver`` process (identity settings
from the environment, defaults otherwise), makes a user whose hash has the
full ``ITERATIONS``, then over HTTP:

1. alone: ``GET /compute/v2.1/`` (p50, p99 of ``--requests``, 10 ms apart);
   a wrong login of the known user and of an unknown one (median of 10 each:
   the same work, so the time does not tell whether a user exists);
2. for ``--seconds``: ``--clients`` clients each sending ``--rate`` wrong
   logins a second for users that do not exist (no lockout stops those),
   without waiting for the answers, while ``GET /compute/v2.1/`` is timed as
   in 1 and the known user logs in with the right password once a second;
3. the same with the wrong logins all for the known user (locked out after
   ``identity.lockout_failure_attempts``).

    .venv/bin/python -m benchmarks.login_flood --clients 20 --rate 5 --seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections import Counter
from typing import Any

import aiohttp

from fixtures.apiserver import ApiServerProcess
from fixtures.etcd import EtcdServer
from fixtures.keystone import password_login
from state.etcd import EtcdClient
from state.passwords import hash_password
from state.store import Store


def quantiles(ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return f"p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms, max {max(ms):.1f} ms ({len(ms)})"


async def seed(etcd_url: str) -> None:
    etcd = EtcdClient(etcd_url)
    store = Store(etcd)
    await store.create({"kind": "Project", "metadata": {"name": "bench"}, "spec": {}})
    await store.create(
        {
            "kind": "User",
            "metadata": {"name": "bench"},
            "spec": {
                "passwordHash": hash_password("bench-secret"),  # the full ITERATIONS
                "roles": [{"role": "member", "project": "bench"}],
            },
        }
    )
    await etcd.close()


async def login(http: aiohttp.ClientSession, base: str, user: str, password: str) -> int:
    body: dict[str, Any] = password_login(user, password)
    async with http.post(f"{base}/identity/v3/auth/tokens", json=body) as resp:
        await resp.read()
        return resp.status


async def timed_versions(http: aiohttp.ClientSession, base: str, until: float) -> list[float]:
    took = []
    while time.monotonic() < until:
        t0 = time.perf_counter()
        async with http.get(f"{base}/compute/v2.1/") as resp:
            await resp.read()
            assert resp.status == 200
        took.append((time.perf_counter() - t0) * 1000)
        await asyncio.sleep(0.01)
    return took


async def flood(
    args: argparse.Namespace, http: aiohttp.ClientSession, base: str, known: bool
) -> None:
    answers: Counter[int] = Counter()
    logins: list[tuple[int, float]] = []
    stop = asyncio.Event()

    async def one(user: str) -> None:
        answers[await login(http, base, user, "wrong")] += 1

    async def client(c: int) -> None:
        tries = []
        i = 0
        while not stop.is_set():
            user = "bench" if known else f"nobody-{c}-{i}"
            tries.append(asyncio.create_task(one(user)))
            i += 1
            await asyncio.sleep(1 / args.rate)
        await asyncio.gather(*tries)

    async def rightful() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            code = await login(http, base, "bench", "bench-secret")
            logins.append((code, (time.perf_counter() - t0) * 1000))
            await asyncio.sleep(1.0)

    t0 = time.monotonic()
    tasks = [asyncio.create_task(client(c)) for c in range(args.clients)]
    tasks.append(asyncio.create_task(rightful()))
    await asyncio.sleep(1.0)
    took = await timed_versions(http, base, time.monotonic() + args.seconds)
    stop.set()
    await asyncio.gather(*tasks)
    sent = sum(answers.values())
    whose = "the known user" if known else "unknown users"
    print(
        f"{sent} wrong logins for {whose} in {time.monotonic() - t0:.1f} s "
        f"({args.clients} clients x {args.rate}/s): answers {dict(sorted(answers.items()))}"
    )
    print(f"  meanwhile GET /compute/v2.1/: {quantiles(took)}")
    codes = Counter(code for code, _ in logins)
    print(
        f"  meanwhile the right password: answers {dict(sorted(codes.items()))}, "
        f"median {statistics.median(ms for _, ms in logins):.0f} ms"
    )


async def run(args: argparse.Namespace, base: str) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        took = await timed_versions(http, base, time.monotonic() + args.requests / 100)
        print(f"alone: GET /compute/v2.1/: {quantiles(took)}")
        for user in ("bench", "nobody"):
            times = []
            for _ in range(10):
                t0 = time.perf_counter()
                assert await login(http, base, user, "wrong") == 401
                times.append((time.perf_counter() - t0) * 1000)
                if user == "bench":  # a success clears the count: no lockout here
                    assert await login(http, base, user, "bench-secret") == 201
            print(f"alone: a wrong login of {user}: median {statistics.median(times):.1f} ms")
        await asyncio.sleep(0.1)
        await flood(args, http, base, known=False)
        await flood(args, http, base, known=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--rate", type=float, default=5.0, help="wrong logins a second per client")
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--requests", type=int, default=500)
    args = p.parse_args()
    with contextlib.ExitStack() as stack:
        etcd = stack.enter_context(EtcdServer())
        data = stack.enter_context(tempfile.TemporaryDirectory())
        asyncio.run(seed(etcd.url))
        env: dict[str, str] = {}
        api = stack.enter_context(ApiServerProcess(etcd.url, data, "bench-token", env=env))
        asyncio.run(run(args, api.url))


if __name__ == "__main__":
    main()

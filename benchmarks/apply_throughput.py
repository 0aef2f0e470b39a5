"""Server-side apply throughput: N objects applied by C concurrent clients.

Starts its own etcd and ``desired apiserver`` (a separate process, as in
production), then applies ``--objects`` distinct Flavors through
``POST /apis/v1/apply`` from ``--clients`` concurrent connections, then the
same objects again (all ``unchanged``), and prints objects/s and latency
percentiles for both passes.

    .venv/bin/python -m benchmarks.apply_throughput --objects 5000 --clients 32
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

import aiohttp

from benchmarks.bench_etcd import bench_etcd
from fixtures.apiserver import ApiServerProcess

TOKEN = "bench-token"


def flavor(i: int) -> dict:
    return {
        "apiVersion": "desired/v1",
        "kind": "Flavor",
        "metadata": {"name": f"bench-{i:06d}", "labels": {"bench": "apply"}},
        "spec": {"vcpus": 1 + i % 8, "ramMiB": 512, "diskGiB": 1, "extraSpecs": {"n": str(i)}},
    }


async def run_pass(
    url: str, objects: int, clients: int
) -> tuple[float, list[float], dict[str, int]]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(objects):
        queue.put_nowait(i)
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(
        connector=connector, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as session:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                t0 = time.perf_counter()
                async with session.post(url + "/apis/v1/apply", json=flavor(i)) as resp:
                    body = await resp.json()
                    if resp.status >= 300:
                        raise RuntimeError(f"apply failed: {resp.status} {body}")
                latencies.append(time.perf_counter() - t0)
                outcomes[body["outcome"]] = outcomes.get(body["outcome"], 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return elapsed, latencies, outcomes


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100)[int(p) - 1] * 1000


def report(label: str, objects: int, elapsed: float, lat: list[float], outcomes: dict) -> None:
    print(
        f"{label:10s} {objects / elapsed:8.0f} objects/s   "
        f"p50 {pct(lat, 50):6.1f} ms   p99 {pct(lat, 99):6.1f} ms   {outcomes}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objects", type=int, default=5000)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument(
        "--secure",
        action="store_true",
        help="etcd with TLS and authentication, a user per part (as desired up runs it)",
    )
    args = p.parse_args()
    with (
        bench_etcd(args.secure) as etcd,
        tempfile.TemporaryDirectory() as data,
        ApiServerProcess(etcd.url, data, TOKEN, etcd.env("apiserver")) as api,
    ):
        print(f"etcd: {'TLS and authentication' if args.secure else 'plain HTTP, no users'}")
        print(f"apply: {args.objects} Flavors, {args.clients} concurrent clients, 2-core machine")
        for label in ("create", "unchanged"):
            elapsed, lat, outcomes = asyncio.run(run_pass(api.url, args.objects, args.clients))
            report(label, args.objects, elapsed, lat, outcomes)


if __name__ == "__main__":
    main()

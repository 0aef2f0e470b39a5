"""Fault injection: kill -9 the reconcilers and hostd in the middle of a burst of 200 instances.

The real processes (`desired reconcilers`, as one process or with the
conductor in a second one, and `desired hostd --simulate 4`) run against a
real etcd; each is killed with SIGKILL mid-burst and started again. Afterwards every instance must be Ready, placed on exactly one host,
no host over-committed, every host's allocation equal to what its instances
use, and SQL (the conductor's projection) equal to etcd.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.up_etcd import secure
from fixtures.etcd import EtcdServer
from state import keys
from state.envelope import condition
from state.etcd import EtcdClient, prefix_end
from state.sql.projection import Projection
from state.store import Store

BIN = Path(sys.executable).parent
BURST = 200


class Proc:
    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.args, self.env = args, env
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [str(BIN / "desired"), *self.args],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill9_and_restart(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = self._start()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def ready_count(store: Store) -> int:
    items = (await store.list("Instance", "burst")).items
    return sum(1 for o in items if (c := condition(o, "Ready")) and c["status"] == "True")


async def burst_with_faults(
    etcd: EtcdClient, data: Path, first: list[Proc], then: list[Proc]
) -> None:
    """Kills ``first`` once 20 instances are Ready, ``then`` a second after the rest of the
    burst was created (each with SIGKILL, each started again at once)."""
    store = Store(etcd)
    await store.create(
        {
            "kind": "Flavor",
            "metadata": {"name": "small"},
            "spec": {"vcpus": 1, "ramMiB": 256, "diskGiB": 1},
        }
    )
    await store.create(
        {"kind": "Image", "metadata": {"name": "tiny"}, "spec": {"visibility": "public"}}
    )
    sem = asyncio.Semaphore(32)

    async def create(i: int) -> None:
        async with sem:
            await store.create(
                {
                    "kind": "Instance",
                    "metadata": {"name": f"vm{i:03d}", "project": "burst"},
                    "spec": {"flavor": "small", "image": "tiny"},
                }
            )

    await asyncio.gather(*(create(i) for i in range(BURST // 2)))
    deadline = time.monotonic() + 60
    while await ready_count(store) < 20:  # mid-burst: some placed and running, most not
        assert time.monotonic() < deadline, "nothing became Ready"
        await asyncio.sleep(0.05)
    for proc in first:
        proc.kill9_and_restart()
    await asyncio.gather(*(create(i) for i in range(BURST // 2, BURST)))
    await asyncio.sleep(1.0)
    for proc in then:
        proc.kill9_and_restart()

    deadline = time.monotonic() + 90
    while await ready_count(store) < BURST:
        if time.monotonic() > deadline:
            stuck = [
                (o["metadata"]["name"], o["metadata"].get("finalizers"), o["status"])
                for o in (await store.list("Instance", "burst")).items
                if not ((c := condition(o, "Ready")) and c["status"] == "True")
            ]
            raise AssertionError(f"{len(stuck)} of {BURST} not Ready, e.g. {stuck[:3]}")
        await asyncio.sleep(0.2)

    items = {o["metadata"]["uid"]: o for o in (await store.list("Instance", "burst")).items}
    res = await etcd.range(keys.alloc_prefix(), prefix_end(keys.alloc_prefix()))
    placed: dict[str, str] = {}
    for kv in res.kvs:
        host = keys.last_segment(kv.key)
        alloc = json.loads(kv.value)
        for uid in alloc["instances"]:
            assert uid not in placed, f"{uid} allocated on {placed[uid]} and {host}"
            placed[uid] = host
        assert alloc["used"]["vcpus"] == len(alloc["instances"])
        assert alloc["used"]["ramMiB"] == 256 * len(alloc["instances"])
    assert set(placed) == set(items)
    for uid, obj in items.items():
        assert obj["status"]["host"] == placed[uid]
        assignment = await etcd.get(keys.assign(placed[uid], uid))
        assert assignment is not None
    view = Projection(f"sqlite:///{data / 'desired.sqlite'}")
    deadline = time.monotonic() + 30
    while True:
        # status keeps moving after Ready (hosts marked UP again after hostd's restart):
        # compare with etcd as it is now
        items = {o["metadata"]["uid"]: o for o in (await store.list("Instance", "burst")).items}
        rows = {r.uid: r for r in await asyncio.to_thread(view.rows, "Instance", "burst")}
        same = set(rows) == set(items) and all(
            rows[u].resource_version == int(o["metadata"]["resourceVersion"])
            for u, o in items.items()
        )
        if same:
            break
        differ = {
            u: (rows[u].resource_version if u in rows else None, o["metadata"]["resourceVersion"])
            for u, o in items.items()
            if u not in rows or rows[u].resource_version != int(o["metadata"]["resourceVersion"])
        }
        assert time.monotonic() < deadline, (
            f"SQL does not match etcd: {len(differ)} rows differ, e.g. {list(differ.items())[:3]}"
            f"; extra rows: {len(set(rows) - set(items))}"
        )
        await asyncio.sleep(0.2)
    view.close()
    await etcd.close()


@pytest.mark.parametrize("layout", ["one process", "conductor apart"])
def test_kill9_mid_burst_converges(tmp_path: Path, layout: str) -> None:
    """One ``desired reconcilers`` killed mid-burst, then hostd; or, with the conductor in a
    process of its own (the layout docs/reconcilers.md recommends), the scheduler's
    process, then the conductor's and hostd. etcd is secured as ``desired up``'s, each
    process with its part's etcd user."""
    with EtcdServer(tmp_path / "etcd", pki=tmp_path / "pki") as etcd:
        creds = asyncio.run(secure(etcd, "fault", 10.0))
        env = dict(
            os.environ,
            DESIRED_ETCD_URL=etcd.url,
            DESIRED_ETCD_CREDENTIALS=str(creds.reconcilers.ca_file.parent),
            DESIRED_DATA_DIR=str(tmp_path),
            DESIRED_HOSTD_NAME="fault",
        )
        env.update(
            DESIRED_RECONCILERS_LEADER_TTL="2",
            DESIRED_HOSTD_LEASE_TTL="3",
            DESIRED_HOSTD_RESYNC="2",
        )
        if layout == "one process":
            reconcilers = [Proc(["reconcilers"], env)]
        else:
            reconcilers = [
                Proc(["reconcilers"], {**env, "DESIRED_RECONCILERS_RUN": run})
                for run in ("scheduler,gitsync,network", "conductor")
            ]
        hostd = Proc(
            ["hostd", "--simulate", "4"],
            {**env, "DESIRED_ETCD_CREDENTIALS": str(creds.hostd.ca_file.parent)},
        )
        first, then = reconcilers[:1], [*reconcilers[1:], hostd]
        try:
            client = EtcdClient(etcd.url, credentials=creds.apiserver)
            asyncio.run(burst_with_faults(client, tmp_path, first, then))
        finally:
            for proc in [*reconcilers, hostd]:
                proc.stop()

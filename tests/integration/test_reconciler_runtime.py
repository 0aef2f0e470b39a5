"""The reconciler runtime against a real etcd: convergence, retries, resync, no concurrency per key, failover."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reconcilers.runtime.controller import Controller, Requeue
from reconcilers.runtime.informer import Informer
from reconcilers.runtime.leader import LeaderElector
from reconcilers.runtime.manager import Manager
from state import keys
from state.envelope import Ref
from state.errors import Conflict, Unavailable
from state.etcd import EtcdClient
from state.store import Store
from tests.conftest import eventually

ROOT = Path(__file__).resolve().parents[2]


def flavor(name: str, vcpus: int = 1) -> dict:
    return {
        "kind": "Flavor",
        "metadata": {"name": name},
        "spec": {"vcpus": vcpus, "ramMiB": 1, "diskGiB": 0},
    }


class Mirror:
    """A toy reconciler: copies spec.vcpus into status, with fault injection."""

    name = "mirror"

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: Counter[str] = Counter()
        self.inside: Counter[str] = Counter()
        self.max_inside = 0
        self.fail_times: dict[str, int] = {}
        self.conflict_times: dict[str, int] = {}
        self.delay = 0.0

    async def reconcile(self, key: Ref) -> Requeue | None:
        self.calls[key.name] += 1
        self.inside[key.name] += 1
        self.max_inside = max(self.max_inside, self.inside[key.name])
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.fail_times.get(key.name, 0) > 0:
                self.fail_times[key.name] -= 1
                raise Unavailable("injected")
            if self.conflict_times.get(key.name, 0) > 0:
                self.conflict_times[key.name] -= 1
                raise Conflict("injected")
            obj = await self.store.get_or_none(key)
            if obj is None:
                return None
            want = obj["spec"]["vcpus"]
            gen = obj["metadata"]["generation"]

            def mutate(status: dict) -> bool:
                if status.get("vcpus") == want and status.get("observedGeneration") == gen:
                    return False
                status.update(vcpus=want, observedGeneration=gen)
                return True

            await self.store.patch_status(key, mutate)
            return None
        finally:
            self.inside[key.name] -= 1


@contextlib.asynccontextmanager
async def running(store: Store, mirror: Mirror, **kw: object) -> AsyncIterator[Controller]:
    informer = Informer(store.etcd, "Flavor")
    controller = Controller(mirror, [informer], **kw)  # type: ignore[arg-type]
    task = asyncio.create_task(Manager([informer], [controller]).run())
    try:
        yield controller
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def converged(store: Store, n: int) -> bool:
    items = (await store.list("Flavor")).items
    assert len(items) == n
    for o in items:
        assert o["status"].get("vcpus") == o["spec"]["vcpus"], o["metadata"]["name"]
    return True


async def test_converges_objects_before_and_after_start(store: Store) -> None:
    for i in range(5):
        await store.create(flavor(f"before{i}", i + 1))
    mirror = Mirror(store)
    async with running(store, mirror):
        for i in range(5):
            await store.create(flavor(f"after{i}", i + 1))
        await eventually(lambda: converged(store, 10))
        obj = await store.get(Ref("Flavor", None, "after0"))
        obj["spec"]["vcpus"] = 8
        await store.update(obj)
        await eventually(lambda: converged(store, 10))


async def test_transient_errors_back_off_then_succeed(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    mirror = Mirror(store)
    mirror.fail_times["flaky"] = 4
    mirror.conflict_times["racy"] = 2
    await store.create(flavor("flaky"))
    await store.create(flavor("racy"))
    async with running(store, mirror) as controller:
        await eventually(lambda: converged(store, 2))
        errors = controller.metrics.errors
        assert errors.labels("mirror", "Unavailable")._value.get() == 4
        assert errors.labels("mirror", "conflict")._value.get() == 2
        assert mirror.calls["flaky"] >= 5 and mirror.calls["racy"] >= 3
        assert controller.queue.failures(Ref("Flavor", None, "flaky")) == 0  # forgotten on success
    assert not [r for r in caplog.records if r.getMessage() == "worker error"]
    assert any("reconcile failed" in r.getMessage() for r in caplog.records)


async def test_resync_reconciles_unchanged_keys(store: Store) -> None:
    mirror = Mirror(store)
    await store.create(flavor("steady"))
    async with running(store, mirror, resync=0.2):
        await eventually(lambda: converged(store, 1))
        before = mirror.calls["steady"]

        async def resynced() -> bool:
            return mirror.calls["steady"] >= before + 2

        await eventually(resynced, timeout=5)


async def test_one_key_is_never_reconciled_concurrently(store: Store) -> None:
    mirror = Mirror(store)
    mirror.delay = 0.01
    await store.create(flavor("hot"))
    async with running(store, mirror, workers=4):
        await eventually(lambda: converged(store, 1))
        for v in range(2, 30):
            obj = await store.get(Ref("Flavor", None, "hot"))
            obj["spec"]["vcpus"] = v
            await store.update(obj)
        await eventually(lambda: converged(store, 1))
    assert mirror.max_inside == 1
    assert mirror.calls["hot"] < 60  # dedup: far fewer reconciles than events


async def test_clean_shutdown_waits_for_reconciles_in_hand(store: Store) -> None:
    mirror = Mirror(store)
    mirror.delay = 0.5
    await store.create(flavor("slow"))
    informer = Informer(store.etcd, "Flavor")
    controller = Controller(mirror, [informer])
    task = asyncio.create_task(Manager([informer], [controller]).run())

    async def started() -> bool:
        return mirror.inside["slow"] == 1

    await eventually(started)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert mirror.inside["slow"] == 0
    assert (await store.get(Ref("Flavor", None, "slow")))["status"]["vcpus"] == 1


class Replica:
    def __init__(self, etcd: EtcdClient, identity: str, ttl: int) -> None:
        creds = (
            {"DESIRED_ETCD_CREDENTIALS": str(etcd.credentials.ca_file.parent)}
            if etcd.credentials
            else {}
        )
        self.identity = identity
        self.lines: list[tuple[float, str]] = []
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tests/integration/leader_proc.py"),
                etcd.url,
                identity,
                str(ttl),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT), **creds),
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.strip()))

    def said(self, word: str) -> float | None:
        for t, line in self.lines:
            if line == f"{word} {self.identity}":
                return t
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


async def wait_for(cond, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("how", ["kill -9", "clean stop"])
async def test_leader_failover_between_processes(etcd: EtcdClient, how: str) -> None:
    ttl = 2
    a = Replica(etcd, "a", ttl)
    await wait_for(lambda: a.said("LEADER"), 10)
    b = Replica(etcd, "b", ttl)
    try:
        await wait_for(lambda: b.said("STARTED"), 10)
        await asyncio.sleep(0.5)
        assert b.said("LEADER") is None  # only one leads
        holder = await etcd.get(keys.leader("failover-test"))
        assert holder is not None and holder.value == b"a"
        stopped_at = time.monotonic()
        if how == "kill -9":
            os.kill(a.proc.pid, signal.SIGKILL)
        else:
            os.kill(a.proc.pid, signal.SIGTERM)
        await wait_for(lambda: b.said("LEADER"), ttl + 3)
        took = b.said("LEADER") - stopped_at  # type: ignore[operator]
        if how == "kill -9":
            assert took <= ttl + 1, took
        else:
            assert took < ttl / 2, took  # the lease was revoked: no waiting for expiry
        holder = await etcd.get(keys.leader("failover-test"))
        assert holder is not None and holder.value == b"b"
    finally:
        a.stop()
        b.stop()


async def test_a_leader_that_loses_its_lease_stops_leading(etcd: EtcdClient) -> None:
    states: list[bool] = []
    elector = LeaderElector(etcd, "lose", "x", ttl=1, on_change=states.append)
    started = asyncio.Event()

    async def lead() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(elector.run(lead))
    await asyncio.wait_for(started.wait(), 5)
    await etcd.lease_revoke(elector._lease)  # the lease vanishes under it (etcd lost it)
    await wait_for(lambda: states[-2:] == [False, True] or states.count(False) >= 1, 5)
    assert states[0] is True and False in states
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

"""One key's failure is that key's alone: a terminal failure is recorded and not retried
until its object changes; any other is backed off and counted while other keys go on; no
exception a reconcile raises ends a worker."""

from __future__ import annotations

import asyncio

import pytest

from reconcilers.runtime.controller import Controller, Requeue
from reconcilers.runtime.informer import Informer
from reconcilers.runtime.manager import Manager
from state.envelope import Ref
from state.errors import Terminal
from state.store import Store
from tests.conftest import eventually
from tests.integration.test_reconciler_runtime import Mirror, converged, flavor, running


class Failing(Mirror):
    """Mirror, but the keys named in ``raises`` fail with what they map to."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.raises: dict[str, BaseException] = {}

    async def reconcile(self, key: Ref) -> Requeue | None:
        exc = self.raises.get(key.name)
        if exc is not None:
            self.calls[key.name] += 1
            raise exc
        return await super().reconcile(key)


def errors(controller: object, reason: str) -> float:
    return controller.metrics.errors.labels("mirror", reason)._value.get()  # type: ignore[attr-defined]


async def test_terminal_failure_is_recorded_and_waits_for_a_change(store: Store) -> None:
    mirror = Failing(store)
    mirror.raises["bad"] = Terminal("flavor 'bad' can never be mirrored")
    await store.create(flavor("bad"))
    await store.create(flavor("good"))
    async with running(store, mirror, resync=0.1, events=store) as controller:

        async def recorded() -> bool:
            events = await store.events_for(Ref("Flavor", None, "bad"))
            assert [(e["reason"], e["message"]) for e in events] == [
                ("Terminal", "flavor 'bad' can never be mirrored")
            ]
            return True

        await eventually(recorded)
        # resyncs bring the good key back again and again, never the terminal one
        good = mirror.calls["good"]
        await eventually(lambda: _at_least(mirror.calls, "good", good + 5))
        assert mirror.calls["bad"] == 1
        assert errors(controller, "Terminal") == 1
        # a change of the object is a new input: reconciled again
        del mirror.raises["bad"]
        obj = await store.get(Ref("Flavor", None, "bad"))
        obj["spec"]["vcpus"] = 3
        await store.update(obj)
        await eventually(lambda: converged(store, 2))


async def test_failing_key_backs_off_while_others_go_on(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    mirror = Failing(store)
    mirror.raises["boom"] = RuntimeError("a bug in one reconcile")
    mirror.raises["cancelled"] = asyncio.CancelledError()  # not the worker's cancellation
    await store.create(flavor("boom"))
    await store.create(flavor("cancelled"))
    async with running(store, mirror, workers=1) as controller:
        for i in range(5):
            await store.create(flavor(f"ok{i}", i + 1))

        async def others_converged() -> bool:
            items = {o["metadata"]["name"]: o for o in (await store.list("Flavor")).items}
            for i in range(5):
                assert items[f"ok{i}"]["status"].get("vcpus") == i + 1
            return True

        await eventually(others_converged)
        await asyncio.sleep(1.0)
        # backed off: a handful of tries in a second and more, not one per event loop turn
        assert 3 <= mirror.calls["boom"] <= 14, mirror.calls["boom"]
        assert controller.queue.failures(Ref("Flavor", None, "boom")) >= 3
        assert errors(controller, "RuntimeError") == mirror.calls["boom"]
        assert errors(controller, "WorkerError") == mirror.calls["cancelled"] >= 3
        # the one worker lived through all of it: a new object still converges
        await store.create(flavor("late", 7))
        await eventually(lambda: _status_is(store, "late", 7))


async def test_a_failure_that_keeps_coming_back_is_recorded_on_its_object(store: Store) -> None:
    mirror = Failing(store)
    mirror.raises["stuck"] = RuntimeError("the disk is away")
    await store.create(flavor("stuck"))
    async with running(store, mirror, workers=1, events=store):

        async def recorded() -> bool:
            events = await store.events_for(Ref("Flavor", None, "stuck"))
            assert [e["reason"] for e in events] == ["ReconcileFailed"]
            assert events[0]["message"].startswith("mirror: the disk is away (3 failures in a row")
            return True

        await eventually(recorded)
        # the same failure again is not said again within the minute; a new one is
        mirror.raises["stuck"] = RuntimeError("the disk is back, but read-only")
        calls = mirror.calls["stuck"]
        await eventually(lambda: _at_least(mirror.calls, "stuck", calls + 1))

        async def said_again() -> bool:
            events = await store.events_for(Ref("Flavor", None, "stuck"))
            assert [e["message"].split(" (")[0] for e in events] == [
                "mirror: the disk is away",
                "mirror: the disk is back, but read-only",
            ]
            return True

        await eventually(said_again)


def _at_least(calls: dict[str, int], name: str, n: int) -> asyncio.Future[bool]:
    fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    fut.set_result(calls[name] >= n)
    return fut


async def _status_is(store: Store, name: str, vcpus: int) -> bool:
    return (await store.get(Ref("Flavor", None, name)))["status"].get("vcpus") == vcpus


async def test_a_manager_whose_informer_stops_ends_with_its_error(store: Store) -> None:
    class Broken(Informer):
        async def run(self) -> None:  # a failure injected at the informer's edge
            await asyncio.sleep(0.1)
            raise RuntimeError("the watch is gone")

    informer = Broken(store.etcd, "Flavor")
    informer.synced.set()
    controller = Controller(Mirror(store), [informer])
    with pytest.raises(RuntimeError, match="the watch is gone"):
        await asyncio.wait_for(Manager([informer], [controller]).run(), 10)

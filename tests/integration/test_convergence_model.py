"""Hypothesis state machine: random apply/delete/reconciler-restart sequences converge like a model.

The system under test is the real thing: server-side apply into a real etcd,
and a reconciler run by the runtime (informer, queue, controller, manager)
that owns a finalizer, mirrors spec into status and releases deleted
objects. The model is a dict of name -> vcpus. After any sequence, once the
reconciler has had time to converge, etcd must hold exactly the model's
objects, each with its status caught up with its spec, and nothing deleting.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from fixtures.etcd import EtcdServer
from reconcilers.runtime.controller import Controller, Requeue
from reconcilers.runtime.informer import Informer
from reconcilers.runtime.manager import Manager
from state.apply import apply
from state.envelope import Ref
from state.errors import NotFound
from state.store import Store
from state.validation import validate

NAMES = st.sampled_from(["a", "b", "c", "d"])
FINALIZER = "test/mirror"


class Mirror:
    """Adds its finalizer, copies spec.vcpus into status, lets deleted objects go."""

    name = "mirror"

    def __init__(self, store: Store) -> None:
        self.store = store

    async def reconcile(self, key: Ref) -> Requeue | None:
        obj = await self.store.get_or_none(key)
        if obj is None:
            return None
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            await self.store.remove_finalizer(key, FINALIZER)
            return None
        if FINALIZER not in (meta.get("finalizers") or []):
            meta["finalizers"] = [*(meta.get("finalizers") or []), FINALIZER]
            await self.store.update(obj, current=obj)
            return None
        want, gen = obj["spec"]["vcpus"], meta["generation"]

        def mutate(status: dict) -> bool:
            if (status.get("vcpus"), status.get("observedGeneration")) == (want, gen):
                return False
            status.update(vcpus=want, observedGeneration=gen)
            return True

        await self.store.patch_status(key, mutate, uid=meta["uid"])
        return None


class Convergence(RuleBasedStateMachine):
    server: EtcdServer | None = None

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        assert self.server is not None
        self.etcd = self.server.client()
        self.store = Store(self.etcd)
        self.model: dict[str, int] = {}
        self.runner.run(self.etcd.delete(b"\0", b"\0"))
        self.manager: asyncio.Task[None] | None = None
        self.runner.run(self._start())

    async def _start(self) -> None:
        informer = Informer(self.etcd, "Flavor")
        controller = Controller(Mirror(self.store), [informer], workers=2, resync=1.0)
        self.manager = asyncio.create_task(Manager([informer], [controller]).run())
        await asyncio.sleep(0)

    async def _stop(self) -> None:
        if self.manager is not None:
            self.manager.cancel()
            await asyncio.gather(self.manager, return_exceptions=True)
            self.manager = None

    @rule(name=NAMES, vcpus=st.integers(1, 4))
    def apply_flavor(self, name: str, vcpus: int) -> None:
        obj = {
            "apiVersion": "desired/v1",
            "kind": "Flavor",
            "metadata": {"name": name},
            "spec": {"vcpus": vcpus, "ramMiB": 64, "diskGiB": 0},
        }
        # an object still deleting cannot change: apply then fails, and the model agrees
        try:
            self.runner.run(apply(self.store, obj, validate=validate))
            self.model[name] = vcpus
        except Exception as exc:  # Conflict: deleting
            assert name not in self.model, exc

    @rule(name=NAMES)
    def delete_flavor(self, name: str) -> None:
        try:
            self.runner.run(self.store.delete(Ref("Flavor", None, name)))
        except NotFound:
            assert name not in self.model
        self.model.pop(name, None)

    @rule()
    def restart_reconciler(self) -> None:
        self.runner.run(self._stop())
        self.runner.run(self._start())

    @rule(seconds=st.sampled_from([0.0, 0.01, 0.05]))
    def let_time_pass(self, seconds: float) -> None:
        self.runner.run(asyncio.sleep(seconds))

    async def _converged(self) -> None:
        deadline = time.monotonic() + 15
        while True:
            items = (await self.store.list("Flavor")).items
            state = {
                o["metadata"]["name"]: (
                    o["spec"]["vcpus"],
                    o["status"].get("vcpus"),
                    o["status"].get("observedGeneration") == o["metadata"]["generation"],
                    bool(o["metadata"].get("deletionTimestamp")),
                )
                for o in items
            }
            want = {n: (v, v, True, False) for n, v in self.model.items()}
            if state == want:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"did not converge: etcd {state} model {want}")
            await asyncio.sleep(0.05)

    def teardown(self) -> None:
        try:
            self.runner.run(self._converged())
        finally:
            self.runner.run(self._stop())
            self.runner.run(self.etcd.close())
            self.runner.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_random_histories_converge_like_the_model(etcd_server: EtcdServer) -> None:
    Convergence.server = etcd_server
    run_state_machine_as_test(
        Convergence, settings=settings(max_examples=20, stateful_step_count=15, deadline=None)
    )

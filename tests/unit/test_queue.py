"""The work queue's guarantees: dedup, one worker per key, backoff, delayed adds, shutdown."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcilers.runtime.queue import ShutDown, WorkQueue


async def test_a_queued_key_is_queued_once() -> None:
    q: WorkQueue[str] = WorkQueue()
    for k in "abab":
        q.add(k)
    assert len(q) == 2
    assert [await q.get(), await q.get()] == ["a", "b"]


async def test_a_key_added_while_processing_comes_back_after_done() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")  # while a worker holds it
    assert len(q) == 0
    q.done(key)
    assert len(q) == 1 and await q.get() == "a"


def test_backoff_doubles_caps_and_resets() -> None:
    q: WorkQueue[str] = WorkQueue(base_delay=0.01, max_delay=0.05)
    delays = []
    for _ in range(5):
        delays.append(q.backoff("k"))
        q._failures["k"] = q.failures("k") + 1
    assert delays == [0.01, 0.02, 0.04, 0.05, 0.05]
    q.forget("k")
    assert q.backoff("k") == 0.01


async def test_add_after_and_rate_limited_deliver_later() -> None:
    q: WorkQueue[str] = WorkQueue(base_delay=0.05)
    q.add_after("late", 0.1)
    q.add_rate_limited("retry")
    assert len(q) == 0
    got = await asyncio.wait_for(q.get(), 1)
    assert got == "retry"
    assert await asyncio.wait_for(q.get(), 1) == "late"
    # an earlier add wins over a later delayed one
    q.add_after("x", 5)
    q.add("x")
    assert await asyncio.wait_for(q.get(), 1) == "x"


async def test_shutdown_wakes_getters() -> None:
    q: WorkQueue[str] = WorkQueue()
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.shutdown()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(getter, 1)


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 3)), min_size=1, max_size=40))
def test_no_key_in_two_workers_and_no_add_lost(ops: list[tuple[str, int]]) -> None:
    """Workers pick keys while adds keep coming; every add after a key's last get is handled."""

    async def scenario() -> None:
        q: WorkQueue[str] = WorkQueue()
        holding: set[str] = set()
        pending: dict[str, int] = {}  # adds not yet covered by a later get
        handled: list[str] = []

        async def worker() -> None:
            while True:
                try:
                    key = await q.get()
                except ShutDown:
                    return
                assert key not in holding, f"{key} handed to two workers"
                holding.add(key)
                pending[key] = 0
                await asyncio.sleep(0)
                handled.append(key)
                holding.discard(key)
                q.done(key)

        workers = [asyncio.create_task(worker()) for _ in range(3)]
        for key, yields in ops:
            q.add(key)
            pending[key] = pending.get(key, 0) + 1
            for _ in range(yields):
                await asyncio.sleep(0)
        for _ in range(50):
            await asyncio.sleep(0)
        assert all(n == 0 for n in pending.values()), pending
        q.shutdown()
        await asyncio.gather(*workers)

    asyncio.run(scenario())


async def test_discard_drops_every_pending_add() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.add("b")
    q.discard("a")
    assert await q.get() == "b"
    q.add("b")  # while processing: dirty
    q.discard("b")
    q.done("b")
    q.add_after("c", 0.01)
    q.discard("c")
    await asyncio.sleep(0.03)
    assert len(q) == 0
    q.add("a")
    assert await q.get() == "a"

"""Full garbage collections only when the process is quiet."""

from __future__ import annotations

import asyncio
import gc

from reconcilers.runtime.garbage import collect_when_quiet


def _full_collections() -> int:
    return int(gc.get_stats()[2]["collections"])


async def test_full_collections_wait_for_quiet_and_thresholds_come_back() -> None:
    before = gc.get_threshold()
    collector = asyncio.create_task(
        collect_when_quiet(check_every=0.05, quiet_below=3, at_most_every=0.1, at_least=60)
    )
    try:
        await asyncio.sleep(0.01)
        assert gc.get_threshold()[2] > 10**9  # CPython's own full collections are off
        # busy: many young collections a check apart, so no full collection runs
        fulls = _full_collections()
        loop = asyncio.get_running_loop()
        end = loop.time() + 0.4
        while loop.time() < end:
            [[i] for i in range(50_000)]  # containers enough for several young collections
            await asyncio.sleep(0)
        assert _full_collections() == fulls
        # quiet: one runs within a few checks
        await asyncio.sleep(0.3)
        assert _full_collections() > fulls
        # quiet with nothing new to collect: none runs
        fulls = _full_collections()
        await asyncio.sleep(0.3)
        assert _full_collections() == fulls
    finally:
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
    assert gc.get_threshold() == before

"""Full garbage collections moved to the moments a process is quiet.

CPython's own full (generation 2) collection runs whenever enough objects
have survived, which in a busy reconciler is in the middle of a burst: it
scans every tracked object while holding the GIL, and with a few thousand
cached objects that stopped the conductor's event loop and its SQL thread
for 60 to 240 ms (measured with ``gc.callbacks`` during the burst benchmark).

Owns: switching CPython's automatic full collections off and running the
ones it would have run when the process is quiet (the young-generation
collections, which CPython still runs, count the allocations: few of them in
a second means little work), or at the latest ``at_least`` seconds on.

Must never: switch off the young generations' collections.
"""

from __future__ import annotations

import asyncio
import gc
import time

#: CPython counts young collections up to this before it considers a full one: never
_NEVER = 2**31 - 1


def _young_collections() -> int:
    return int(gc.get_stats()[0]["collections"])


async def collect_when_quiet(
    *,
    check_every: float = 1.0,
    quiet_below: int = 3,
    at_most_every: float = 10.0,
    at_least: float = 120.0,
) -> None:
    """Runs until cancelled. A second with fewer than ``quiet_below`` young collections
    is quiet. A full collection is due when CPython would have considered one (its
    middle generation was collected as often as the full threshold says); it runs in a
    quiet second, at most every ``at_most_every`` seconds, or in any second once
    ``at_least`` seconds have passed without one."""
    young, middle, full = gc.get_threshold()
    gc.set_threshold(young, middle, _NEVER)
    try:
        last_full = time.monotonic()
        seen = _young_collections()
        while True:
            await asyncio.sleep(check_every)
            now, count = time.monotonic(), _young_collections()
            quiet = count - seen < quiet_below
            due = gc.get_count()[2] >= full
            waited = now - last_full
            if due and ((quiet and waited >= at_most_every) or waited >= at_least):
                gc.collect()
                last_full = time.monotonic()
                count = _young_collections()
            seen = count
    finally:
        gc.set_threshold(young, middle, full)

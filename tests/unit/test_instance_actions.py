"""Which instance states can finish an action: the conductor looks up open actions only
for those, so ``may_finish`` must hold wherever ``outcome`` finds one finished."""

from __future__ import annotations

import itertools

from state.instance_actions import EVENTS, may_finish, outcome


def test_may_finish_holds_wherever_an_action_finishes() -> None:
    statuses = [
        {
            k: v
            for k, v in {
                "vmState": vm,
                "taskState": task,
                "domainState": domain,
                "observedGeneration": observed,
            }.items()
            if v is not None
        }
        for vm, task, domain, observed in itertools.product(
            [None, "building", "active", "stopped", "error", "deleted"],
            [None, "spawning", "deleting", "resize_prep"],
            [None, "running", "removed"],
            [None, 0, 1, 3],
        )
    ]
    finishing = 0
    for status, action, generation in itertools.product(statuses, [*EVENTS, "lock"], [1, 2, 3]):
        obj = {"metadata": {"generation": generation}, "status": status}
        if outcome(action, generation, obj) is not None:
            finishing += 1
            assert may_finish(obj), (action, generation, status)
    assert finishing > 0 and may_finish(None)
    assert not may_finish({"status": {}})  # just created: nothing observed yet
    assert not may_finish({"status": {"vmState": "building", "observedGeneration": 1}})

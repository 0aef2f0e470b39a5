"""Nova's vm_state / task_state / power_state / status from desired's spec and status."""

from __future__ import annotations

import pytest

from state.instance_states import PAUSED, RUNNING, SHUTDOWN, SUSPENDED, nova_state


def inst(power: str = "running", domain: str | None = None, **status: object) -> dict:
    st = dict(status)
    if domain is not None:
        st["domainState"] = domain
    return {"spec": {"powerState": power}, "status": st, "metadata": {}}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (inst(), ("building", "scheduling", 0, "BUILD")),
        (inst(host="h1"), ("building", "spawning", 0, "BUILD")),
        (inst(domain="running"), ("active", None, RUNNING, "ACTIVE")),
        (inst("stopped", "running"), ("active", "powering-off", RUNNING, "ACTIVE")),
        (inst("stopped", "stopped"), ("stopped", None, SHUTDOWN, "SHUTOFF")),
        (inst("paused", "paused"), ("paused", None, PAUSED, "PAUSED")),
        (inst("suspended", "suspended"), ("suspended", None, SUSPENDED, "SUSPENDED")),
        (inst("running", "stopped"), ("stopped", "powering-on", SHUTDOWN, "SHUTOFF")),
    ],
)
def test_states(obj: dict, expected: tuple) -> None:
    s = nova_state(obj)
    assert (s["vmState"], s["taskState"], s["powerState"], s["novaStatus"]) == expected


def test_reboot_and_delete_and_error() -> None:
    rebooting = inst(domain="running", rebootGeneration=0)
    rebooting["spec"]["reboot"] = {"generation": 1, "type": "HARD"}
    assert nova_state(rebooting)["novaStatus"] == "HARD_REBOOT"
    deleting = inst(domain="running")
    deleting["metadata"]["deletionTimestamp"] = "2026-11-24T00:00:00Z"
    assert (nova_state(deleting)["vmState"], nova_state(deleting)["taskState"]) == (
        "active",
        "deleting",
    )
    deleting["status"]["domainState"] = "removed"
    assert nova_state(deleting)["novaStatus"] == "DELETED"
    failed = inst(conditions=[{"type": "Scheduled", "status": "False", "reason": "NoValidHost"}])
    assert (nova_state(failed)["vmState"], nova_state(failed)["novaStatus"]) == ("error", "ERROR")


def test_resize_and_rebuild() -> None:
    def with_spec(obj: dict, **spec: object) -> dict:
        obj["spec"].update(spec)
        return obj

    resizing = with_spec(inst(domain="running", flavor="m1.tiny"), flavor="m1.small")
    assert (nova_state(resizing)["taskState"], nova_state(resizing)["novaStatus"]) == (
        "resize_prep",
        "RESIZE",
    )
    verifying = with_spec(
        inst(domain="running", flavor="m1.small", resize={"from": "m1.tiny", "to": "m1.small"}),
        flavor="m1.small",
    )
    assert (nova_state(verifying)["vmState"], nova_state(verifying)["novaStatus"]) == (
        "resized",
        "VERIFY_RESIZE",
    )
    reverting = with_spec(
        inst(domain="running", flavor="m1.small", resize={"from": "m1.tiny", "to": "m1.small"}),
        flavor="m1.tiny",
        resize={"generation": 1, "action": "revert"},
    )
    assert nova_state(reverting)["novaStatus"] == "REVERT_RESIZE"
    confirmed = with_spec(
        inst(domain="running", flavor="m1.small", resizeGeneration=1),
        flavor="m1.small",
        resize={"generation": 1, "action": "confirm"},
    )
    assert nova_state(confirmed)["novaStatus"] == "ACTIVE"
    rebuilding = with_spec(inst(domain="running", rebuildGeneration=0), rebuild={"generation": 1})
    assert (nova_state(rebuilding)["taskState"], nova_state(rebuilding)["novaStatus"]) == (
        "rebuilding",
        "REBUILD",
    )

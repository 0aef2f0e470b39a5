"""The conductor's Compute views on SQLite and PostgreSQL: instances, actions, compute nodes.

A simulated host, the scheduler and the conductor run against a real etcd;
an instance goes through create, stop, start, reboot, resize with confirm,
and delete, and the SQL rows say so as Nova's os-instance-actions and
os-hypervisors would.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from state.envelope import Ref
from state.errors import NotFound
from state.sql.migrate import upgrade
from state.sql.models import ComputeNode, InstanceAction, InstanceActionEvent, InstanceRow
from state.sql.projection import Projection
from state.store import Store
from tests.conftest import eventually
from tests.integration.test_conductor import conductor
from tests.integration.test_hostd import VM, cloud, set_spec


async def test_instance_actions_and_compute_nodes(
    store: Store, sql_url: str, tmp_path: Path
) -> None:
    upgrade(sql_url)
    view = Projection(sql_url)
    await store.create(
        {
            "kind": "Flavor",
            "metadata": {"name": "large"},
            "spec": {"vcpus": 2, "ramMiB": 512, "diskGiB": 2},
        }
    )

    def sql(stmt):  # type: ignore[no-untyped-def]
        with view.sessions() as s:
            return list(s.scalars(stmt))

    async def settled(status: str, generation: int) -> bool:
        obj = await store.get(VM)
        assert obj["status"].get("novaStatus") == status, obj["status"]
        assert obj["status"].get("observedGeneration") == generation
        return True

    async def actions() -> list[tuple[str, str | None]]:
        rows = await asyncio.to_thread(sql, select(InstanceAction).order_by(InstanceAction.id))
        return [(a.action, a.finish_time and "done") for a in rows]

    try:
        async with cloud(store, tmp_path), conductor(store.etcd, sql_url):
            await store.create(
                {
                    "kind": "Instance",
                    "metadata": {"name": "vm", "project": "demo"},
                    "spec": {"flavor": "small", "image": "tiny"},
                }
            )
            await eventually(lambda: settled("ACTIVE", 1))
            await set_spec(store, powerState="stopped")
            await eventually(lambda: settled("SHUTOFF", 2))
            await set_spec(store, powerState="running")
            await eventually(lambda: settled("ACTIVE", 3))
            await set_spec(store, reboot={"generation": 1, "type": "SOFT"})
            await eventually(lambda: settled("ACTIVE", 4))
            await set_spec(store, flavor="large")
            await eventually(lambda: settled("VERIFY_RESIZE", 5))
            await set_spec(store, resize={"generation": 1, "action": "confirm"})
            await eventually(lambda: settled("ACTIVE", 6))
            uid = (await store.get(VM))["metadata"]["uid"]

            async def all_done() -> bool:
                assert await actions() == [
                    (a, "done")
                    for a in ("create", "stop", "start", "reboot", "resize", "confirmResize")
                ]
                return True

            await eventually(all_done)
            [row] = await asyncio.to_thread(sql, select(InstanceRow))
            assert (row.uid, row.status, row.vm_state, row.flavor, row.host) == (
                uid,
                "ACTIVE",
                "active",
                "large",
                "sim-1",
            )
            events = await asyncio.to_thread(sql, select(InstanceActionEvent))
            assert {e.event for e in events} >= {
                "compute_stop_instance",
                "compute_finish_resize",
            }
            assert {e.result for e in events} == {"Success"}, [(e.event, e.result) for e in events]

            async def node_counts() -> bool:
                nodes = await asyncio.to_thread(sql, select(ComputeNode))
                assert len(nodes) == 1, nodes
                node = nodes[0]
                assert (node.host, node.vcpus, node.vcpus_used, node.ram_mib_used) == (
                    "sim-1",
                    8,
                    2,
                    512,
                )
                assert node.running_vms == 1 and node.alive and node.virt_type == "test"
                return True

            await eventually(node_counts)
            await store.delete(VM)

            async def deleted() -> bool:
                try:
                    await store.get(Ref("Instance", "demo", "vm"))
                    return False
                except NotFound:
                    pass
                [row] = await asyncio.to_thread(sql, select(InstanceRow))
                assert row.deleted_at is not None
                assert (await actions())[-1] == ("delete", "done")
                nodes = await asyncio.to_thread(sql, select(ComputeNode))
                return nodes[0].running_vms == 0 and nodes[0].vcpus_used == 0

            await eventually(deleted)
    finally:
        view.close()

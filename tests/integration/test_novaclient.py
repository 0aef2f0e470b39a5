"""python-novaclient, unmodified, against the Compute API on a simulated host."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from novaclient import client as nova_client
from novaclient import exceptions as nova_exceptions

from state.envelope import Ref
from state.store import Store
from tests.integration.test_compute_api import password_session
from tests.integration.test_hostd import cloud as hostd_cloud
from tests.integration.test_identity import api_cloud


def _nova(base: str, user: str, password: str, project: str) -> Any:
    return nova_client.Client("2.1", session=password_session(base, user, password, project))


def _until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _drive(base: str, image_id: str, flavor_id: str) -> None:
    nova = _nova(base, "demo", "demo-secret", "demo")
    admin = _nova(base, "admin", "admin-secret", "admin")
    assert flavor_id in [f.id for f in nova.flavors.list()]
    server = nova.servers.create("Nova VM", image=image_id, flavor=flavor_id)
    _until(lambda: nova.servers.get(server.id).status == "ACTIVE")
    assert [s.id for s in nova.servers.list(search_opts={"name": "^Nova"})] == [server.id]
    nova.servers.stop(server)
    _until(lambda: nova.servers.get(server.id).status == "SHUTOFF")
    nova.servers.start(server)
    _until(lambda: nova.servers.get(server.id).status == "ACTIVE")
    nova.servers.update(server, name="Renamed")
    assert nova.servers.get(server.id).name == "Renamed"
    nova.servers.lock(server)
    try:
        nova.servers.stop(server)
        raise AssertionError("a locked server was stopped")
    except nova_exceptions.Conflict as exc:
        assert "is locked" in str(exc)
    nova.servers.unlock(server)
    nova.servers.set_meta(server, {"role": "web"})
    assert nova.servers.get(server.id).metadata == {"role": "web"}
    assert isinstance(nova.servers.ips(server), dict)
    assert nova.servers.get_password(server) == ""
    nova.servers.clear_password(server)
    _, diagnostics = admin.servers.diagnostics(server)
    assert diagnostics["memory"] > 0
    assert len(nova.flavors.list(limit=1)) == 1
    assert all(f.ram >= 1 for f in nova.flavors.list(min_ram=1))
    actions = [a.action for a in nova.instance_action.list(server)]
    assert {"create", "stop", "start", "lock", "unlock"} <= set(actions)

    key = nova.keypairs.create("k1")
    assert key.private_key.startswith("-----BEGIN")
    assert [k.name for k in nova.keypairs.list()] == ["k1"]
    nova.keypairs.delete("k1")
    group = nova.server_groups.create(name="g", policies=["affinity"])
    assert [g.id for g in nova.server_groups.list()] == [group.id]
    nova.server_groups.delete(group.id)
    project_id = nova.servers.get(server.id).tenant_id
    assert nova.quotas.get(project_id).instances == 10
    assert nova.limits.get().absolute
    assert [z.zoneName for z in nova.availability_zones.list(detailed=False)] == ["nova"]

    _until(lambda: [h.running_vms for h in admin.hypervisors.list(detailed=True)] == [1])
    (hypervisor,) = admin.hypervisors.list()
    assert hypervisor.hypervisor_hostname == "sim-1"
    assert [s.binary for s in admin.services.list()] == ["nova-compute"]
    aggregate = admin.aggregates.create("Fast", "london")
    admin.aggregates.add_host(aggregate, "sim-1")
    assert admin.aggregates.get(aggregate).hosts == ["sim-1"]
    admin.aggregates.remove_host(aggregate, "sim-1")
    admin.aggregates.delete(aggregate)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    usages = admin.usage.list(now - dt.timedelta(hours=1), now + dt.timedelta(hours=1))
    assert [u.tenant_id for u in usages] == [project_id]
    try:
        nova.hypervisors.list()
        raise AssertionError("a member listed hypervisors")
    except nova_exceptions.Forbidden:
        pass

    nova.servers.delete(server)

    def gone() -> bool:
        try:
            nova.servers.get(server.id)
            return False
        except nova_exceptions.NotFound:
            return True

    _until(gone)
    assert nova.servers.list() == []


async def test_novaclient(store: Store, tmp_path: Path) -> None:
    sql_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    async with hostd_cloud(store, tmp_path), api_cloud(store, sql_url) as base:
        image_id = (await store.get(Ref("Image", None, "tiny")))["metadata"]["uid"]
        flavor_id = (await store.get(Ref("Flavor", None, "small")))["metadata"]["uid"]
        await asyncio.to_thread(_drive, base, image_id, flavor_id)

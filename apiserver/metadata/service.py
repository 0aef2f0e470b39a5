"""The metadata service (its own listener): what an instance may read about itself.

The caller is the instance named by ``X-Instance-ID`` when
``X-Instance-ID-Signature`` is its HMAC-SHA256 with the shared secret, as the
metadata proxy of its host sends them (the proxy knows the guest by its
source address on its network). Anything else is refused: one instance can
never read another's data.

Owns: checking the signature, gathering one instance's facts (its spec and
ports, key pair, image and kernel/ramdisk ids, floating IPs, project) into
``content.InstanceFacts``, serving the trees of ``content``, and the
password a guest may set once (``POST /openstack/<ver>/password``).

Must never: answer without a valid signature; read another instance's data.
"""

from __future__ import annotations

from aiohttp import web

from apiserver.body_deadline import DEFAULT_SECONDS, body_deadline
from apiserver.identity import keystone_id_of
from apiserver.metadata import content
from state import ec2_ids, instance_signature, ipam, keys
from state.envelope import LAUNCH_INDEX_ANNOTATION, RESERVATION_ANNOTATION, Obj, Ref, ref
from state.errors import Conflict
from state.sql.views import ComputeViews
from state.store import Store

STORE = web.AppKey("metadata_store", Store)
VIEWS = web.AppKey("metadata_views", ComputeViews)
SECRET = web.AppKey("metadata_secret", str)
#: the password a guest set (Nova keeps it in system metadata; here an annotation)
PASSWORD_ANNOTATION = "desired/guest-password"
#: the longest password a guest may set, as Nova
MAX_PASSWORD = 256


async def _instance(request: web.Request) -> Obj:
    uid = request.headers.get("X-Instance-ID", "")
    sig = request.headers.get("X-Instance-ID-Signature", "")
    if not instance_signature.valid(request.app[SECRET], uid, sig):
        raise web.HTTPForbidden(text="the instance id is not signed by a host\n")
    views, store = request.app[VIEWS], request.app[STORE]
    where = await views.server_ref(uid)
    if where is None:
        await views.caught_up(await store.etcd.revision(keys.root()))
        where = await views.server_ref(uid)
    inst = await store.get_or_none(Ref("Instance", where.project, where.name)) if where else None
    if inst is None or inst["metadata"]["uid"] != uid:
        raise web.HTTPNotFound(text="no such instance\n")
    return inst


async def _image_ids(store: Store, project: str, name: str) -> tuple[str, str, str]:
    """EC2 ids of the image, its kernel and its ramdisk ("" for what there is not)."""
    image = await store.get_or_none(Ref("Image", project, name)) or await store.get_or_none(
        Ref("Image", None, name)
    )
    if image is None:
        return "", "", ""
    ids = [ec2_ids.of_image(image)]
    for part in ("kernelImage", "ramdiskImage"):
        ref_name = image["spec"].get(part)
        found = (
            (
                await store.get_or_none(Ref("Image", project, ref_name))
                or await store.get_or_none(Ref("Image", None, ref_name))
            )
            if ref_name
            else None
        )
        ids.append(ec2_ids.of_image(found) if found else "")
    return ids[0], ids[1], ids[2]


async def facts(store: Store, inst: Obj) -> content.InstanceFacts:
    meta, spec, status = inst["metadata"], inst["spec"], inst.get("status") or {}
    project = meta["project"]
    keys: tuple[tuple[str, str, str], ...] = ()
    if spec.get("keyName"):
        pair = await store.get_or_none(Ref("KeyPair", project, spec["keyName"]))
        if pair is not None:
            shown = pair["spec"].get("displayName") or spec["keyName"]
            keys = ((shown, pair["spec"].get("type", "ssh"), pair["spec"]["publicKey"]),)
    ports = []
    for p in status.get("ports") or []:
        net = await store.get_or_none(Ref("Network", project, p["network"]))
        if net is None:
            continue
        ports.append(
            content.Port(
                mac=p["mac"],
                address=p["address"],
                cidr=net["spec"]["cidr"],
                gateway=str(ipam.gateway(net["spec"])),
                network_uid=p["networkUid"],
                dns_servers=tuple(net["spec"].get("dnsServers", [])),
            )
        )
    floating = tuple(
        sorted(
            f["status"]["address"]
            for f in (await store.list("FloatingIP", project)).items
            if f["spec"].get("instance") == meta["name"] and (f.get("status") or {}).get("address")
        )
    )
    owner = await store.get_or_none(Ref("Project", None, project))
    image, kernel, ramdisk = await _image_ids(store, project, spec["image"])
    annotations = meta.get("annotations") or {}
    return content.InstanceFacts(
        uuid=meta["uid"],
        ec2_id=ec2_ids.of_instance(inst),
        name=spec.get("displayName") or meta["name"],
        hostname=spec.get("hostname") or meta["name"],
        project_id=keystone_id_of(owner["metadata"]["uid"]) if owner else project,
        zone=spec.get("availabilityZone") or "nova",
        flavor=spec["flavor"],
        launch_index=int(annotations.get(LAUNCH_INDEX_ANNOTATION, 0)),
        reservation_id=annotations.get(RESERVATION_ANNOTATION, ""),
        image_ec2_id=image,
        kernel_ec2_id=kernel,
        ramdisk_ec2_id=ramdisk,
        keys=keys,
        meta=dict(spec.get("metadata") or {}),
        user_data=content.decode_user_data(spec.get("userData")),
        ports=tuple(ports),
        floating_ips=floating,
        security_groups=tuple(spec.get("securityGroups") or ["default"]),
        password=annotations.get(PASSWORD_ANNOTATION, ""),
    )


async def serve(request: web.Request) -> web.Response:
    inst = await _instance(request)
    path = request.match_info["tail"]
    if request.method == "PUT" and path.strip("/") == "latest/api/token":
        # EC2's IMDSv2 token: harmless to grant; nothing here asks for it back
        return web.Response(text=inst["metadata"]["uid"])
    if request.method == "POST":
        return await _set_password(request, inst, path)
    body = content.lookup(content.tree(await facts(request.app[STORE], inst)), path)
    if body is None:
        raise web.HTTPNotFound(text="not found\n")
    kind = "application/json" if path.endswith(".json") else "text/plain"
    return web.Response(body=body, content_type=kind)


async def _set_password(request: web.Request, inst: Obj, path: str) -> web.Response:
    parts = [p for p in path.split("/") if p]
    if len(parts) != 3 or parts[0] != "openstack" or parts[2] != "password":
        raise web.HTTPMethodNotAllowed("POST", ["GET"])
    body = await request.text()
    if len(body) > MAX_PASSWORD:
        raise web.HTTPBadRequest(text=f"the password is longer than {MAX_PASSWORD} bytes\n")
    store, where = request.app[STORE], ref(inst)
    for _ in range(5):
        annotations = inst["metadata"].setdefault("annotations", {})
        if annotations.get(PASSWORD_ANNOTATION):
            raise web.HTTPConflict(text="the password is set already\n")
        annotations[PASSWORD_ANNOTATION] = body
        try:
            await store.update(inst)
            return web.Response(text="")
        except Conflict:  # changed meanwhile: read it again
            inst = await store.get(where)
    raise web.HTTPServiceUnavailable(text="the instance keeps changing; try again\n")


def make_app(
    store: Store, views: ComputeViews, secret: str, body_timeout: float = DEFAULT_SECONDS
) -> web.Application:
    """The metadata service; a request body that stalls ``body_timeout`` seconds is
    answered 408 (``apiserver.body_deadline``)."""
    app = web.Application(middlewares=[body_deadline(body_timeout)])
    app[STORE] = store
    app[VIEWS] = views
    app[SECRET] = secret
    app.router.add_route("*", "/{tail:.*}", serve)

    async def close(app: web.Application) -> None:
        await store.etcd.close()
        views.close()

    app.on_cleanup.append(close)
    return app

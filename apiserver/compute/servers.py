"""Compute API servers: create, show, delete, metadata and the power and resize actions.

Owns: turning Nova's requests into Instance specs (imperative verbs become
spec changes: ``powerState``, ``reboot.generation``, ``flavor`` and
``resize``), finding a server by id (SQL says where, etcd what it is now),
and the 409 for an action the server's state does not allow. A server's id
is its Instance's uid; its name is the Instance's ``displayName`` (free
text, not unique, as Nova's), and the Instance is named after it with a
random suffix.

Must never: show or touch another project's servers (admins excepted).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import datetime as dt
import json
import re
import secrets
import time
import uuid
from typing import Any

from aiohttp import web

from apiserver import netops
from apiserver.compute import (
    flavors,
    keypairs,
    network_proxies,
    server_groups,
    server_lists,
    server_locks,
    server_snapshots,
)
from apiserver.compute.context import (
    CREATES,
    VIEWS,
    allowed,
    authorize,
    caller,
    json_body,
    own_project,
    store_of,
)
from apiserver.compute.faults import ComputeFault
from apiserver.compute.microversions import since
from apiserver.compute.names import display_name, slug
from apiserver.compute.server_lists import refs_for
from apiserver.compute.server_views import (
    KEY_NAME_ANNOTATION,
    basic,
    links,
    view,
)
from apiserver.compute.zones import known_zones
from apiserver.identity import keystone_id_of
from apiserver.images import is_active
from state import keys, quota
from state.envelope import (
    LAUNCH_INDEX_ANNOTATION,
    RESERVATION_ANNOTATION,
    USER_ANNOTATION,
    Obj,
    Ref,
)
from state.errors import AlreadyExists, Conflict, NotFound
from state.etcd import Compare, Op
from state.instance_actions import actions_between, request_id
from state.sql.server_lists import ServerRef
from state.validation import validate

#: draws of a random object name suffix before giving up
_NAME_TRIES = 3
#: Nova's default quota of metadata items per server
METADATA_ITEMS = 128
#: what Nova's boolean request fields take as true
_TRUE = ("true", "1", "on", "yes", "y", "t")


def _counts(server: dict[str, Any]) -> tuple[int, int]:
    """``min_count`` and ``max_count`` of a create (1 and 1 when not given)."""
    counts = []
    for field in ("min_count", "max_count"):
        value = server.get(field, 1)
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ComputeFault(400, f"Invalid input for field/attribute {field}.")
        counts.append(value)
    low, high = counts
    if "max_count" not in server:
        high = max(low, high)
    if low > high:
        raise ComputeFault(400, "min_count must be <= max_count")
    return low, high


async def _fitting(
    request: web.Request, project: str, size: dict[str, int], low: int, high: int
) -> int:
    """How many of ``high`` servers of ``size`` the project's quota has room for now; 403
    as Nova words it when fewer than ``low``."""
    store = store_of(request)
    used, _ = await quota.usage(store, project)
    limits = await quota.limits(store, project)
    fit = high
    for resource, each in size.items():
        limit = limits.get(resource, -1)
        if limit >= 0 and each > 0:
            fit = min(fit, max(0, (limit - used.get(resource, 0)) // each))
    if fit < low:
        short = next(
            r for r, each in size.items() if 0 <= limits.get(r, -1) < used.get(r, 0) + each * low
        )
        raise ComputeFault(
            403,
            f"Quota exceeded for {short}: Requested {size[short] * low}, but already used "
            f"{used.get(short, 0)} of {limits[short]} {short}",
        )
    return fit


async def _create_one(
    request: web.Request,
    project: str,
    spec: dict[str, Any],
    name: str,
    size: dict[str, int],
    noted: dict[str, str],
) -> Obj:
    """One server's Instance, named after ``name``, committed with the project's other
    creates of the moment (403 when over quota); ``noted``: more annotations."""
    spec = {**spec, "displayName": name}
    hostname = guest_hostname(name)
    if hostname:
        spec["hostname"] = hostname
    annotations = {
        USER_ANNOTATION: caller(request).user_id,
        quota.ANNOTATION: json.dumps(size, sort_keys=True),
        **noted,
    }
    for _ in range(_NAME_TRIES):
        obj: Obj = {
            "apiVersion": "desired/v1",
            "kind": "Instance",
            "metadata": {"name": object_name(name), "project": project, "annotations": annotations},
            "spec": spec,
        }
        try:
            return await request.app[CREATES].create(project, validate(obj), size)
        except AlreadyExists:
            continue  # the random suffix was taken: draw another
    raise ComputeFault(409, "No free object name for this server; retry")


def object_name(display: str) -> str:
    """An Instance name for a server named ``display``: its readable part and a random
    suffix (Nova's names are free text and need not be unique)."""
    return f"{slug(display, 'server')}-{secrets.token_hex(3)}"


def guest_hostname(display: str) -> str | None:
    """The guest's host name from the server's name, as Nova makes it (None if nothing
    of it is usable)."""
    name = re.sub(r"[ _.]", "-", display)
    name = re.sub(r"[^A-Za-z0-9-]+", "", name).lower().strip("-")[:63].strip("-")
    return name or None


async def _located(request: web.Request, ident: str) -> ServerRef | None:
    """Where SQL says the server is, once SQL has this API server's own writes; if it
    does not know the server, once it has caught up with etcd (another API server may
    have just made it). An id that is no UUID names no server: no wait."""
    try:
        uuid.UUID(ident)
    except ValueError:
        return None
    views, store = request.app[VIEWS], store_of(request)
    await views.caught_up(store.written)
    where = await views.server_ref(ident)
    if where is None:
        await views.caught_up(await store.etcd.revision(keys.root()))
        where = await views.server_ref(ident)
    return where


async def find_located(request: web.Request, ident: str, rule: str) -> tuple[Obj, dt.datetime]:
    """The server as etcd has it now, and when SQL saw it change, once the policy lets
    the caller do ``rule`` to it. A server the caller may not even see is not found."""
    where = await _located(request, ident)
    if where is not None:
        project_id = keystone_id_of(where.project_uid)
        if allowed(request, "os_compute_api:servers:show", project_id):
            authorize(request, rule, project_id)
            store, views = store_of(request), request.app[VIEWS]
            inst = await store.get_or_none(Ref("Instance", where.project, where.name))
            if inst is not None and inst["metadata"]["uid"] == ident:
                # what this answer shows, a list shows from now on (SQL has it too)
                await views.caught_up(int(inst["metadata"]["resourceVersion"]))
                return inst, where.updated_at
            await _deletion_in_sql(request, ident)
    raise ComputeFault(404, f"Instance {ident} could not be found.")


async def _deletion_in_sql(request: web.Request, ident: str, timeout: float = 5.0) -> None:
    """Waits (briefly) until SQL has the deletion etcd shows, so that a list after this
    404 does not show the server."""
    views = request.app[VIEWS]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await views.server_ref(ident) is None:
            return
        await asyncio.sleep(0.01)


async def find(request: web.Request, ident: str, rule: str) -> Obj:
    return (await find_located(request, ident, rule))[0]


async def show(request: web.Request) -> web.Response:
    inst, updated = await find_located(
        request, request.match_info["server_id"], "os_compute_api:servers:show"
    )
    refs = (await refs_for(request, [inst]))[inst["metadata"]["uid"]]
    refs = dataclasses.replace(refs, updated=updated)
    return web.json_response({"server": view(request, inst, refs)})


def _ref_id(value: Any) -> str:
    """An id from a ref that may be a URL (``.../flavors/1``)."""
    if not isinstance(value, str) or not value:
        return ""
    return value.rstrip("/").rsplit("/", 1)[-1]


async def image_by_id(request: web.Request, image_id: str, project: str) -> Obj:
    """The image by id or name: the project's own first, then a public one."""
    images = (await store_of(request).list("Image")).items
    own = [i for i in images if i["metadata"].get("project") == project]
    public = [i for i in images if not i["metadata"].get("project")]
    for img in own + public:
        if image_id in (img["metadata"]["uid"], img["metadata"]["name"]):
            if not is_active(img):
                raise ComputeFault(400, f"Image {image_id} is not active.")
            return img
    raise ComputeFault(400, f"Image {image_id} could not be found.")


async def _zone(request: web.Request, asked: str) -> str:
    """The availability zone a create asks for, checked as Nova checks it: ``zone``,
    ``zone:host``, ``zone:host:node`` or ``zone::node``, where a host or node (forcing
    one, which only admins may) is refused, as this cloud's scheduler places by zone alone;
    the zone must be one a host is in."""
    if asked.count(":") > 2:
        raise ComputeFault(400, "Invalid input received: Unable to parse availability_zone")
    zone, _, forced = asked.partition(":")
    if forced:
        authorize(request, "os_compute_api:servers:create:forced_host")
        raise ComputeFault(
            400,
            "Invalid input received: forcing a host or node through availability_zone"
            " is not supported; ask for the zone alone",
        )
    if zone not in await known_zones(request):
        raise ComputeFault(400, "The requested availability zone is not available")
    return zone


async def create(request: web.Request) -> web.Response:
    body = await json_body(request)
    server = body.get("server")
    if not isinstance(server, dict):
        raise ComputeFault(400, "Invalid input for field/attribute server.")
    name = display_name(server.get("name"))
    project = own_project(request, "servers")
    authorize(request, "os_compute_api:servers:create")
    image_id = _ref_id(server.get("imageRef"))
    for bdm in server.get("block_device_mapping_v2") or []:
        if isinstance(bdm, dict) and bdm.get("source_type") == "image" and not image_id:
            image_id = str(bdm.get("uuid", ""))
    if not image_id:
        raise ComputeFault(400, "Invalid input for field/attribute imageRef.")
    flavor_id = _ref_id(server.get("flavorRef"))
    try:
        flavor = await flavors.find(request, flavor_id)
    except ComputeFault:
        raise ComputeFault(400, f"Flavor {flavor_id} could not be found.") from None
    image = await image_by_id(request, image_id, project)
    spec: dict[str, Any] = {
        "flavor": flavor["metadata"]["name"],
        "image": image["metadata"]["name"],
    }
    _keep_shown(spec, server)
    noted: dict[str, str] = {}
    if server.get("key_name"):
        key = keypairs.object_name(str(server["key_name"]))
        if await store_of(request).get_or_none(Ref("KeyPair", project, key)) is None:
            raise ComputeFault(400, "Invalid key_name provided.")
        spec["keyName"] = key
        if key != server["key_name"]:
            noted[KEY_NAME_ANNOTATION] = str(server["key_name"])
    ports = await _networks(request, server, project)
    if ports is not None:
        spec["networks"] = ports
    if "description" in server and since(request, "2.19"):
        _describe(spec, server["description"])
    if server.get("availability_zone"):
        spec["availabilityZone"] = await _zone(request, str(server["availability_zone"]))
    if isinstance(server.get("metadata"), dict):
        await metadata_within_quota(request, project, len(server["metadata"]))
        spec["metadata"] = {str(k): str(v) for k, v in server["metadata"].items()}
    if server.get("user_data"):
        try:
            base64.b64decode(server["user_data"], validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise ComputeFault(400, "User data needs to be valid base 64.") from None
        spec["userData"] = server["user_data"]
    groups = [g.get("name") for g in server.get("security_groups") or [] if isinstance(g, dict)]
    if groups:
        refs = [str(g) for g in groups if g]
        spec["securityGroups"] = await netops.group_names(store_of(request), project, refs)
    low, high = _counts(server)
    hints = body.get("os:scheduler_hints") or {}
    if not isinstance(hints, dict):
        raise ComputeFault(400, "Invalid input for field/attribute os:scheduler_hints.")
    if hints.get("group"):
        spec["serverGroup"] = await server_groups.group_for_server(
            request, str(hints["group"]), project, high
        )
    if {k: v for k, v in hints.items() if k != "group"}:
        spec["schedulerHints"] = {k: v for k, v in hints.items() if k != "group"}
    size = {"instances": 1, "cores": flavor["spec"]["vcpus"], "ram": flavor["spec"]["ramMiB"]}
    count = await _fitting(request, project, size, low, high)
    names = [name] if count == 1 else [f"{name}-{i}" for i in range(1, count + 1)]
    reservation = f"r-{secrets.token_hex(4)}"
    made = await asyncio.gather(
        *(
            _create_one(
                request,
                project,
                spec,
                n,
                size,
                {**noted, RESERVATION_ANNOTATION: reservation, LAUNCH_INDEX_ANNOTATION: str(i)},
            )
            for i, n in enumerate(names)
        )
    )
    created = made[0]
    uid = created["metadata"]["uid"]
    if str(server.get("return_reservation_id", False)).lower() in _TRUE:
        answer = web.json_response({"reservation_id": reservation}, status=202)
        return with_request_id(answer, None, created)
    answer = web.json_response(
        {
            "server": {
                "id": uid,
                "links": links(request, "servers", uid),
                "OS-DCF:diskConfig": spec.get("diskConfig", "MANUAL"),
                "security_groups": [{"name": g} for g in spec.get("securityGroups", ["default"])],
                "adminPass": secrets.token_urlsafe(9),
            }
        },
        status=202,
    )
    return with_request_id(answer, None, created)


def _description(value: Any) -> str:
    """A server's description (2.19): text of at most 255 characters."""
    if not isinstance(value, str) or len(value) > 255 or not value.isprintable():
        raise ComputeFault(400, "Invalid input for field/attribute description.")
    return value


#: the request fields Nova keeps and shows without acting on them -> their spec fields
_SHOWN_ONLY = {
    "accessIPv4": "accessIPv4",
    "accessIPv6": "accessIPv6",
    "OS-DCF:diskConfig": "diskConfig",
}


def _keep_shown(spec: dict[str, Any], body: dict[str, Any]) -> None:
    """Copies the access addresses and disk config a body asks for into ``spec``."""
    for field, key in _SHOWN_ONLY.items():
        if field in body:
            spec[key] = body[field]


def _describe(spec: dict[str, Any], value: Any) -> None:
    """Sets (or, for null, removes) the description in ``spec``."""
    if value is None:
        spec.pop("description", None)
    else:
        spec["description"] = _description(value)


async def _networks(
    request: web.Request, server: dict[str, Any], project: str
) -> list[dict[str, Any]] | None:
    """The ports a create asks for, as ``spec.networks`` (None: the project's default
    network, when it has one): "none" is no port, "auto" (or nothing, or an empty list
    before 2.37) the default, a list names networks by uuid (with a ``fixed_ip``)."""
    if "networks" not in server:
        if since(request, "2.37"):
            raise ComputeFault(
                400, "Invalid input for field/attribute server. 'networks' is a required property"
            )
        return None
    nets = server["networks"]
    if nets in ("auto", "none") and since(request, "2.37"):
        return [] if nets == "none" else None
    if not isinstance(nets, list) or not all(isinstance(n, dict) for n in nets):
        raise ComputeFault(400, "Invalid input for field/attribute networks.")
    if not nets:
        return None
    known = [
        n
        for n in (await store_of(request).list("Network")).items
        if n["metadata"].get("project") == project or n["spec"].get("shared")
    ]
    out = []
    for net in nets:
        if net.get("port"):
            raise ComputeFault(400, f"Port {net['port']} could not be found.")
        if since(request, "2.37") and "uuid" in net:
            try:
                uuid.UUID(str(net["uuid"]))
            except ValueError:
                raise ComputeFault(
                    400, f"Invalid input for field/attribute uuid. Value: {net['uuid']}."
                ) from None
        found = [n for n in known if n["metadata"]["uid"] == net.get("uuid")]
        if not found:
            raise ComputeFault(400, f"Network {net.get('uuid')} could not be found.")
        port: dict[str, Any] = {"network": found[0]["metadata"]["name"]}
        if net.get("fixed_ip"):
            port["fixedAddress"] = str(net["fixed_ip"])
        out.append(port)
    return out


async def delete(request: web.Request) -> web.Response:
    """Marks the server deleted and gives its quota back, in one transaction.

    A delete always wins: when other writers (hostd, the scheduler, reconcilers,
    other creates and deletes of the project) change the server or the project's
    usage meanwhile, the store re-reads both and tries again; it never answers 409.
    """
    store = store_of(request)
    inst = await find(request, request.match_info["server_id"], "os_compute_api:servers:delete")
    server_locks.unlocked(request, inst)
    meta = inst["metadata"]

    async def give_back(current: Obj) -> list[tuple[Compare, Op]]:
        release = {k: -v for k, v in quota.charged(current).items()}
        if not release:
            return []
        guard, put, _used = await quota.charge(store, current["metadata"]["project"], release)
        return [(guard, put)]

    try:
        await store.delete(Ref("Instance", meta["project"], meta["name"]), extra_for=give_back)
    except NotFound:
        pass
    return web.Response(status=204)


#: action -> (Nova statuses it is allowed in, the spec change, status code)
_POWER = {
    "os-start": ({"SHUTOFF"}, "running"),
    "os-stop": ({"ACTIVE", "ERROR"}, "stopped"),
    "pause": ({"ACTIVE"}, "paused"),
    "unpause": ({"PAUSED"}, "running"),
    "suspend": ({"ACTIVE"}, "suspended"),
    "resume": ({"SUSPENDED"}, "running"),
}


#: the policy rule of each server action
_ACTION_RULES = {
    "os-start": "os_compute_api:servers:start",
    "os-stop": "os_compute_api:servers:stop",
    "reboot": "os_compute_api:servers:reboot",
    "resize": "os_compute_api:servers:resize",
    "confirmResize": "os_compute_api:servers:confirm_resize",
    "revertResize": "os_compute_api:servers:revert_resize",
    "pause": "os_compute_api:os-pause-server:pause",
    "unpause": "os_compute_api:os-pause-server:unpause",
    "suspend": "os_compute_api:os-suspend-server:suspend",
    "resume": "os_compute_api:os-suspend-server:resume",
    "rebuild": "os_compute_api:servers:rebuild",
    "lock": "os_compute_api:os-lock-server:lock",
    "unlock": "os_compute_api:os-lock-server:unlock",
    "os-getConsoleOutput": "os_compute_api:os-console-output",
    "createImage": "os_compute_api:servers:create_image",
    "createBackup": "os_compute_api:os-create-backup",
}
#: seconds to wait for a host's answer to a console request
_CONSOLE_WAIT = 10.0


async def action(request: web.Request) -> web.Response:
    body = await json_body(request)
    if len(body) != 1:
        raise ComputeFault(400, "There is either no action or more than one in the request")
    ((name, arg),) = body.items()
    proxied = network_proxies.ACTIONS.get(name)
    rule = proxied[0] if proxied else _ACTION_RULES.get(name, "os_compute_api:servers:show")
    inst = await find(request, request.match_info["server_id"], rule)  # unknown ones: 400 below
    if proxied:
        return await network_proxies.server_action(request, inst, name, arg)
    if name == "os-getConsoleOutput":
        return await _console_output(request, inst, arg)
    if name in server_locks.ACTIONS:
        return await server_locks.ACTIONS[name](request, inst, arg)
    server_locks.unlocked(request, inst)
    if name in server_snapshots.ACTIONS:
        return await server_snapshots.ACTIONS[name](request, inst, arg)
    status = inst.get("status", {}).get("novaStatus", "BUILD")
    spec = dict(inst["spec"])
    code = 202

    def refuse() -> ComputeFault:
        return ComputeFault(
            409,
            f"Cannot '{name}' instance {inst['metadata']['uid']} while it is in "
            f"vm_state {inst.get('status', {}).get('vmState', 'building')}",
        )

    if name in _POWER:
        allowed, power = _POWER[name]
        if status not in allowed:
            raise refuse()
        spec["powerState"] = power
    elif name == "reboot":
        kind = (arg or {}).get("type", "SOFT") if isinstance(arg, dict) else "SOFT"
        if kind not in ("SOFT", "HARD"):
            raise ComputeFault(400, "Invalid input for field/attribute type.")
        if status not in ("ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED", "ERROR", "REBOOT"):
            raise refuse()
        generation = int((spec.get("reboot") or {}).get("generation", 0)) + 1
        spec["reboot"] = {"generation": generation, "type": kind}
    elif name == "resize":
        if status not in ("ACTIVE", "SHUTOFF"):
            raise refuse()
        flavor_id = _ref_id((arg or {}).get("flavorRef") if isinstance(arg, dict) else None)
        try:
            flavor = await flavors.find(request, flavor_id)
        except ComputeFault:
            raise ComputeFault(400, f"Flavor {flavor_id} could not be found.") from None
        if flavor["metadata"]["name"] == spec["flavor"]:
            raise ComputeFault(400, "When resizing, instances must change flavor!")
        spec["flavor"] = flavor["metadata"]["name"]
    elif name in ("confirmResize", "revertResize"):
        if status != "VERIFY_RESIZE":
            raise refuse()
        generation = int((spec.get("resize") or {}).get("generation", 0)) + 1
        if name == "revertResize":
            spec["flavor"] = inst["status"]["resize"]["from"]
            spec["resize"] = {"generation": generation, "action": "revert"}
        else:
            spec["resize"] = {"generation": generation, "action": "confirm"}
            code = 204
    elif name == "rebuild":
        return await _rebuild(request, inst, arg)
    else:
        raise ComputeFault(400, f"There is no such action: {name}")
    extra = []
    if spec["flavor"] != inst["spec"]["flavor"]:  # a resize or its revert: charge the change
        extra = [await _charge_resize(request, inst, spec["flavor"])]
    before, inst = inst, dict(inst, spec=spec)
    try:
        written = await store_of(request).update(inst, extra=extra)
    except Conflict:
        raise ComputeFault(409, "The server changed meanwhile; try again") from None
    return with_request_id(web.Response(status=code), before, written)


def with_request_id(response: web.Response, before: Obj | None, after: Obj | None) -> web.Response:
    """``response`` carrying the request id the action log gives the action that turned
    ``before`` into ``after`` (None: a create), as Nova's answer carries the id its log
    records: a client finds the action by the id it was answered."""
    found = actions_between(before, after) if after is not None else []
    if len(found) == 1:
        meta = after["metadata"] if after is not None else {}
        rid = request_id(meta["uid"], int(meta.get("generation", 1)), found[0])
        response.headers["x-openstack-request-id"] = rid
    return response


async def _console_output(request: web.Request, inst: Obj, arg: Any) -> web.Response:
    """The end of the server's serial console log, asked of its host through etcd: the
    last ``length`` lines (all when absent or -1)."""
    length = arg.get("length") if isinstance(arg, dict) else None
    if isinstance(length, str) and length.lstrip("-").isdigit():
        length = int(length)
    if length is not None and (not isinstance(length, int) or length < -1):
        raise ComputeFault(400, "Invalid input for field/attribute length.")
    uid, host = inst["metadata"]["uid"], inst.get("status", {}).get("host")
    if not host:
        raise ComputeFault(409, f"Instance {uid} is not ready")
    etcd = store_of(request).etcd
    lease = await etcd.lease_grant(int(_CONSOLE_WAIT) + 5)
    asked = await etcd.put(keys.console_request(host, uid), b"{}", lease=lease)
    try:
        deadline = time.monotonic() + _CONSOLE_WAIT
        while (answer := await etcd.get(keys.console_output(uid))) is None or (
            answer.mod_revision < asked
        ):
            if time.monotonic() > deadline:
                raise ComputeFault(409, f"Console log of instance {uid} is not available now")
            await asyncio.sleep(0.05)
    finally:
        await etcd.lease_revoke(lease)
    lines = answer.value.decode("utf-8", errors="replace").splitlines(keepends=True)
    if length is not None and length >= 0:
        lines = lines[-length:] if length else []
    return web.json_response({"output": "".join(lines)})


async def _rebuild(request: web.Request, inst: Obj, arg: Any) -> web.Response:
    """A fresh root disk from ``imageRef`` (the same image or another), optionally with a
    new name and metadata; answers with the basic view and a new admin password."""
    status = inst.get("status", {}).get("novaStatus", "BUILD")
    if status not in ("ACTIVE", "SHUTOFF", "ERROR"):
        vm_state = inst.get("status", {}).get("vmState", "building")
        raise ComputeFault(
            409,
            f"Cannot 'rebuild' instance {inst['metadata']['uid']} while it is in "
            f"vm_state {vm_state}",
        )
    if not isinstance(arg, dict):
        raise ComputeFault(400, "Invalid input for field/attribute rebuild.")
    image_id = _ref_id(arg.get("imageRef"))
    if not image_id:
        raise ComputeFault(400, "Invalid input for field/attribute imageRef.")
    image = await image_by_id(request, image_id, inst["metadata"]["project"])
    spec = dict(inst["spec"])
    spec["image"] = image["metadata"]["name"]
    spec["rebuild"] = {"generation": int((spec.get("rebuild") or {}).get("generation", 0)) + 1}
    if "name" in arg:
        spec["displayName"] = display_name(arg["name"])
    if "metadata" in arg:
        spec["metadata"] = pairs(arg, "metadata")
    _keep_shown(spec, arg)
    if "description" in arg and since(request, "2.19"):
        _describe(spec, arg["description"])
    updated = await write_spec(request, inst, spec)
    refs = (await refs_for(request, [updated]))[updated["metadata"]["uid"]]
    body = basic(request, updated, refs)
    body["adminPass"] = secrets.token_urlsafe(9)
    return with_request_id(web.json_response({"server": body}, status=202), inst, updated)


async def write_spec(request: web.Request, inst: Obj, spec: dict[str, Any]) -> Obj:
    """Writes ``spec`` over the server's, if nobody changed the server meanwhile."""
    try:
        written = await store_of(request).update(
            dict(inst, spec=validate(dict(inst, spec=spec))["spec"])
        )
    except Conflict:
        raise ComputeFault(409, "The server changed meanwhile; try again") from None
    assert written is not None
    return written


async def update(request: web.Request) -> web.Response:
    """PUT /servers/{id}: a new name, access addresses, disk config or (from 2.19)
    description."""
    inst = await find(request, request.match_info["server_id"], "os_compute_api:servers:update")
    body = (await json_body(request)).get("server")
    fields = {"name", "accessIPv4", "accessIPv6", "OS-DCF:diskConfig"}
    if since(request, "2.19"):
        fields.add("description")
    if not isinstance(body, dict) or set(body) - fields:
        raise ComputeFault(400, "Invalid input for field/attribute server.")
    spec = dict(inst["spec"])
    if "name" in body:
        spec["displayName"] = display_name(body["name"])
    if "description" in body:
        _describe(spec, body["description"])
    _keep_shown(spec, body)
    updated = await write_spec(request, inst, spec) if spec != inst["spec"] else inst
    refs = (await refs_for(request, [updated]))[updated["metadata"]["uid"]]
    return web.json_response({"server": basic(request, updated, refs)})


async def _charge_resize(request: web.Request, inst: Obj, flavor_name: str) -> tuple[Any, Any]:
    """The usage change of moving ``inst`` to ``flavor_name``; records it on the instance."""
    store = store_of(request)
    flavor = await store.get(Ref("Flavor", None, flavor_name))
    had = quota.charged(inst)
    now = {
        "instances": had.get("instances", 1),
        "cores": flavor["spec"]["vcpus"],
        "ram": flavor["spec"]["ramMiB"],
    }
    delta = {k: now[k] - had.get(k, 0) for k in ("cores", "ram")} if had else {}
    guard, put, _used = await quota.charge(store, inst["metadata"]["project"], delta)
    annotations = dict(inst["metadata"].get("annotations") or {})
    annotations[quota.ANNOTATION] = json.dumps(now, sort_keys=True)
    inst["metadata"] = dict(inst["metadata"], annotations=annotations)
    return guard, put


async def metadata_within_quota(request: web.Request, project: str, count: int) -> None:
    """Nova's 403 when ``count`` metadata items exceed the project's ``metadata_items``
    limit (-1: no limit), as for a create and for every change of a server's metadata."""
    if count == 0:
        return
    allowed = (await quota.limits(store_of(request), project)).get("metadata_items", METADATA_ITEMS)
    if 0 <= allowed < count:
        raise ComputeFault(403, f"Maximum number of metadata items exceeds {allowed}")


async def _set_metadata(request: web.Request, inst: Obj, metadata: dict[str, str]) -> None:
    server_locks.unlocked(request, inst)
    await metadata_within_quota(request, inst["metadata"]["project"], len(metadata))
    try:
        await store_of(request).update(dict(inst, spec=dict(inst["spec"], metadata=metadata)))
    except Conflict:
        raise ComputeFault(409, "The server changed meanwhile; try again") from None


def pairs(body: Any, field: str) -> dict[str, str]:
    items = body.get(field) if isinstance(body, dict) else None
    if not isinstance(items, dict) or not all(
        isinstance(k, str) and 0 < len(k) <= 255 and isinstance(v, str) and len(v) <= 255
        for k, v in items.items()
    ):
        raise ComputeFault(400, f"Invalid input for field/attribute {field}.")
    return dict(items)


async def get_metadata(request: web.Request) -> web.Response:
    inst = await find(
        request, request.match_info["server_id"], "os_compute_api:server-metadata:index"
    )
    return web.json_response({"metadata": dict(inst["spec"].get("metadata") or {})})


async def change_metadata(request: web.Request) -> web.Response:
    """POST merges, PUT replaces."""
    verb = "create" if request.method == "POST" else "update_all"
    inst = await find(
        request, request.match_info["server_id"], f"os_compute_api:server-metadata:{verb}"
    )
    given = pairs(await json_body(request), "metadata")
    merged = (
        {**(inst["spec"].get("metadata") or {}), **given} if request.method == "POST" else given
    )
    await _set_metadata(request, inst, merged)
    return web.json_response({"metadata": merged})


async def get_item(request: web.Request) -> web.Response:
    inst = await find(
        request, request.match_info["server_id"], "os_compute_api:server-metadata:show"
    )
    key = request.match_info["key"]
    metadata = inst["spec"].get("metadata") or {}
    if key not in metadata:
        raise ComputeFault(404, "Metadata item was not found")
    return web.json_response({"meta": {key: metadata[key]}})


async def put_item(request: web.Request) -> web.Response:
    inst = await find(
        request, request.match_info["server_id"], "os_compute_api:server-metadata:update"
    )
    key = request.match_info["key"]
    meta = pairs(await json_body(request), "meta")
    if list(meta) != [key]:
        raise ComputeFault(400, "Request body and URI mismatch")
    await _set_metadata(request, inst, {**(inst["spec"].get("metadata") or {}), **meta})
    return web.json_response({"meta": meta})


async def delete_item(request: web.Request) -> web.Response:
    inst = await find(
        request, request.match_info["server_id"], "os_compute_api:server-metadata:delete"
    )
    key = request.match_info["key"]
    metadata = dict(inst["spec"].get("metadata") or {})
    if key not in metadata:
        raise ComputeFault(404, "Metadata item was not found")
    del metadata[key]
    await _set_metadata(request, inst, metadata)
    return web.Response(status=204)


async def security_groups(request: web.Request) -> web.Response:
    inst = await find(
        request, request.match_info["server_id"], "os_compute_api:os-security-groups:list"
    )
    return await network_proxies.server_groups(request, inst)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2.1/servers/{server_id}/os-security-groups", security_groups)
    app.router.add_get("/v2.1/servers/{server_id}/metadata", get_metadata)
    app.router.add_post("/v2.1/servers/{server_id}/metadata", change_metadata)
    app.router.add_put("/v2.1/servers/{server_id}/metadata", change_metadata)
    app.router.add_get("/v2.1/servers/{server_id}/metadata/{key}", get_item)
    app.router.add_put("/v2.1/servers/{server_id}/metadata/{key}", put_item)
    app.router.add_delete("/v2.1/servers/{server_id}/metadata/{key}", delete_item)
    app.router.add_get("/v2.1/servers", server_lists.list_servers)
    app.router.add_post("/v2.1/servers", create)
    app.router.add_get("/v2.1/servers/detail", server_lists.list_detail)
    app.router.add_get("/v2.1/servers/{server_id}", show)
    app.router.add_put("/v2.1/servers/{server_id}", update)
    app.router.add_delete("/v2.1/servers/{server_id}", delete)
    app.router.add_post("/v2.1/servers/{server_id}/action", action)

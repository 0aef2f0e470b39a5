"""Compute API key pairs: ``/os-keypairs`` (import, generate, list, show, delete) at 2.1.

Owns: KeyPair objects of the caller's project made from Nova's requests (a
generated key is RSA 2048, its private half returned once and never kept),
OpenSSH fingerprints (MD5 of the key blob, as Nova shows them) and Nova's
2.1 views and status codes (200 on create, 202 on delete).

Must never: keep a private key, or show another project's keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from apiserver.compute.context import authorize, caller, own_project, store_of
from apiserver.compute.faults import ComputeFault
from apiserver.compute.names import slug
from state.envelope import Obj, Ref
from state.errors import AlreadyExists, Invalid, NotFound
from state.validation import validate


def fingerprint(public_key: str) -> str:
    """The MD5 fingerprint of an OpenSSH public key, as ``aa:bb:...``."""
    try:
        blob = base64.b64decode(public_key.split()[1], validate=True)
    except (IndexError, binascii.Error, ValueError):
        raise ComputeFault(400, "Keypair data is invalid: failed to generate fingerprint") from None
    digest = hashlib.md5(blob).hexdigest()  # a fingerprint, as Nova shows them
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def generate() -> tuple[str, str]:
    """A new key pair: (OpenSSH public key, PEM private key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return public.decode() + " Generated-by-Nova\n", private


def _project(request: web.Request, verb: str) -> str:
    """The caller's project, once the policy lets it do ``verb`` to key pairs there."""
    project = own_project(request, "key pairs")
    authorize(request, f"os_compute_api:os-keypairs:{verb}")
    return project


#: Nova's key pair names at 2.1
_NAME = re.compile(r"^(?! )[a-zA-Z0-9. _@-]+(?<! )$")
_OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$")


def object_name(name: str) -> str:
    """The KeyPair object of a key pair name: the name itself when it is a valid object
    name, else its readable part and a digest of it (so one name is one object)."""
    if _OBJECT_NAME.match(name) and len(name) <= 253:
        return name
    return f"{slug(name, 'key')}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _brief(kp: Obj) -> dict[str, Any]:
    return {
        "name": kp["spec"].get("displayName") or kp["metadata"]["name"],
        "public_key": kp["spec"]["publicKey"],
        "fingerprint": kp["spec"].get("fingerprint", ""),
    }


async def _get(request: web.Request, name: str, verb: str) -> Obj:
    kp = await store_of(request).get_or_none(
        Ref("KeyPair", _project(request, verb), object_name(name))
    )
    if kp is None:
        raise ComputeFault(404, f"Keypair {name} not found for user {caller(request).user_id}")
    return kp


async def list_keypairs(request: web.Request) -> web.Response:
    pairs = (await store_of(request).list("KeyPair", _project(request, "index"))).items
    return web.json_response({"keypairs": [{"keypair": _brief(kp)} for kp in pairs]})


async def show(request: web.Request) -> web.Response:
    kp = await _get(request, request.match_info["name"], "show")
    body = _brief(kp)
    body.update(
        {
            "user_id": caller(request).user_id,
            "id": int(hashlib.sha256(kp["metadata"]["uid"].encode()).hexdigest()[:7], 16),
            "created_at": kp["metadata"].get("creationTimestamp", "").rstrip("Z"),
            "updated_at": None,
            "deleted": False,
            "deleted_at": None,
        }
    )
    return web.json_response({"keypair": body})


async def create(request: web.Request) -> web.Response:
    project = _project(request, "create")
    try:
        body = await request.json()
        wanted = body["keypair"]
        name = wanted["name"]
    except (ValueError, KeyError, TypeError):
        raise ComputeFault(400, "Invalid input for field/attribute keypair.") from None
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise ComputeFault(400, "Keypair data is invalid: Keypair name must be a string")
    if not _NAME.match(name):
        raise ComputeFault(400, "Keypair data is invalid: Keypair name contains unsafe characters")
    private = None
    public = wanted.get("public_key")
    if public is None:
        public, private = generate()
    elif not isinstance(public, str):
        raise ComputeFault(400, "Invalid input for field/attribute public_key.")
    obj = {
        "apiVersion": "desired/v1",
        "kind": "KeyPair",
        "metadata": {"name": object_name(name), "project": project},
        "spec": {
            "publicKey": public,
            "type": "ssh",
            "fingerprint": fingerprint(public),
            **({"displayName": name} if object_name(name) != name else {}),
        },
    }
    try:
        await store_of(request).create(validate(obj))
    except Invalid:
        raise ComputeFault(400, "Keypair data is invalid: failed to generate fingerprint") from None
    except AlreadyExists:
        raise ComputeFault(409, f"Key pair '{name}' already exists.") from None
    out = _brief(obj)
    out["user_id"] = caller(request).user_id
    if private is not None:
        out["private_key"] = private
    return web.json_response({"keypair": out})


async def delete(request: web.Request) -> web.Response:
    kp = await _get(request, request.match_info["name"], "delete")
    try:
        await store_of(request).delete(
            Ref("KeyPair", kp["metadata"]["project"], kp["metadata"]["name"])
        )
    except NotFound:
        pass
    return web.Response(status=202)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2.1/os-keypairs", list_keypairs)
    app.router.add_post("/v2.1/os-keypairs", create)
    app.router.add_get("/v2.1/os-keypairs/{name}", show)
    app.router.add_delete("/v2.1/os-keypairs/{name}", delete)

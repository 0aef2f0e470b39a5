"""Compute API key pairs: ``/os-keypairs`` (import, generate, list, show, delete).

Owns: KeyPair objects of the caller's project made from Nova's requests (a
generated key is RSA 2048, or for type x509 a self-signed certificate; its
private half returned once and never kept), fingerprints (MD5 of an OpenSSH
key blob, SHA-1 of a certificate, as Nova shows them), the user each key
pair belongs to (``desired/user-id``; the users of a project share their
key pairs, where Nova keeps them per user), and Nova's views and status
codes at each microversion: 2.2's ``type`` (201 on create, 204 on delete),
2.10's ``user_id`` by which admins act on one user's key pairs, 2.35's paging
by name.

Must never: keep a private key, or show another project's keys.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from apiserver.compute.context import allowed, authorize, caller, own_project, store_of
from apiserver.compute.faults import ComputeFault
from apiserver.compute.microversions import since
from apiserver.compute.names import object_name_for
from apiserver.compute.paging import page
from apiserver.request_text import decode
from state.envelope import USER_ANNOTATION, Obj, Ref
from state.errors import AlreadyExists, Invalid, NotFound
from state.validation import validate


def fingerprint(public_key: str, kind: str = "ssh") -> str:
    """The fingerprint of a key as ``aa:bb:...``: MD5 of an OpenSSH key's blob, SHA-1 of
    an X.509 certificate (as Nova shows them)."""
    try:
        if kind == "x509":
            cert = x509.load_pem_x509_certificate(public_key.encode())
            digest = cert.fingerprint(hashes.SHA1()).hex()  # as Nova shows them
        else:
            blob = base64.b64decode(public_key.split()[1], validate=True)
            digest = hashlib.md5(blob).hexdigest()  # a fingerprint, as Nova shows them
    except (IndexError, binascii.Error, ValueError):
        raise ComputeFault(400, "Keypair data is invalid: failed to generate fingerprint") from None
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def generate_x509(name: str) -> tuple[str, str]:
    """A new self-signed certificate for ``name``: (PEM certificate, PEM private key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64])])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), private


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


def object_name(name: str) -> str:
    """The KeyPair object of a key pair name."""
    return object_name_for(name, "key")


def _owner(kp: Obj) -> str:
    return (kp["metadata"].get("annotations") or {}).get(USER_ANNOTATION, "")


def _name(kp: Obj) -> str:
    return str(kp["spec"].get("displayName") or kp["metadata"]["name"])


def _brief(request: web.Request, kp: Obj) -> dict[str, Any]:
    out = {
        "name": _name(kp),
        "public_key": kp["spec"]["publicKey"],
        "fingerprint": kp["spec"].get("fingerprint", ""),
    }
    if since(request, "2.2"):
        out["type"] = kp["spec"].get("type", "ssh")
    return out


def _user(request: web.Request, given: Any = None) -> str | None:
    """The user a request names (from 2.10, ``user_id``: only admins may name another
    than themselves); None when it names none."""
    if given is None:
        given = request.query.get("user_id")
    if given is None or not since(request, "2.10"):
        return None
    if not isinstance(given, str) or not given:
        raise ComputeFault(400, "Invalid input for field/attribute user_id.")
    if given != caller(request).user_id and not allowed(request, "context_is_admin"):
        raise ComputeFault(403, "Policy doesn't allow os_compute_api:os-keypairs to be performed.")
    return given


def _mine(kp: Obj, user: str | None) -> bool:
    """Whether the key pair belongs to ``user`` (None: to anyone of its project, whose
    users share their key pairs here)."""
    return user is None or _owner(kp) == user


async def _get(request: web.Request, name: str, verb: str) -> Obj:
    user = _user(request)
    kp = await store_of(request).get_or_none(
        Ref("KeyPair", _project(request, verb), object_name(name))
    )
    if kp is None or not _mine(kp, user):
        raise ComputeFault(
            404, f"Keypair {name} not found for user {user or caller(request).user_id}"
        )
    return kp


async def list_keypairs(request: web.Request) -> web.Response:
    user = _user(request)
    pairs = (await store_of(request).list("KeyPair", _project(request, "index"))).items
    mine = sorted((kp for kp in pairs if _mine(kp, user)), key=lambda kp: _name(kp))
    body: dict[str, Any] = {}
    if since(request, "2.35"):
        mine, body["keypairs_links"] = page(request, mine, _name, "os-keypairs")
        if not body["keypairs_links"]:
            del body["keypairs_links"]
    body["keypairs"] = [{"keypair": _brief(request, kp)} for kp in mine]
    return web.json_response(body)


async def show(request: web.Request) -> web.Response:
    kp = await _get(request, request.match_info["name"], "show")
    body = _brief(request, kp)
    body.update(
        {
            "user_id": _owner(kp) or caller(request).user_id,
            "id": int(hashlib.sha256(kp["metadata"]["uid"].encode()).hexdigest()[:7], 16),
            "created_at": kp["metadata"].get("creationTimestamp", "").rstrip("Z"),
            "updated_at": None,
            "deleted": False,
            "deleted_at": None,
        }
    )
    return web.json_response({"keypair": body})


def _kind(request: web.Request, wanted: dict[str, Any]) -> str:
    kind = wanted.get("type", "ssh") if since(request, "2.2") else "ssh"
    if kind not in ("ssh", "x509"):
        raise ComputeFault(400, f"Invalid input for field/attribute type. Value: {kind}.")
    return str(kind)


async def create(request: web.Request) -> web.Response:
    project = _project(request, "create")
    try:
        body = await decode(await request.read())
        wanted = body["keypair"]
        name = wanted["name"]
    except (ValueError, KeyError, TypeError):
        raise ComputeFault(400, "Invalid input for field/attribute keypair.") from None
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise ComputeFault(400, "Keypair data is invalid: Keypair name must be a string")
    if not _NAME.match(name):
        raise ComputeFault(400, "Keypair data is invalid: Keypair name contains unsafe characters")
    kind = _kind(request, wanted)
    user = _user(request, wanted.get("user_id")) or caller(request).user_id
    private = None
    public = wanted.get("public_key")
    if public is None:
        public, private = generate_x509(name) if kind == "x509" else generate()
    elif not isinstance(public, str):
        raise ComputeFault(400, "Invalid input for field/attribute public_key.")
    obj = {
        "apiVersion": "desired/v1",
        "kind": "KeyPair",
        "metadata": {
            "name": object_name(name),
            "project": project,
            "annotations": {USER_ANNOTATION: user},
        },
        "spec": {
            "publicKey": public,
            "type": kind,
            "fingerprint": fingerprint(public, kind),
            **({"displayName": name} if object_name(name) != name else {}),
        },
    }
    try:
        await store_of(request).create(validate(obj))
    except Invalid:
        raise ComputeFault(400, "Keypair data is invalid: failed to generate fingerprint") from None
    except AlreadyExists:
        raise ComputeFault(409, f"Key pair '{name}' already exists.") from None
    out = _brief(request, obj)
    out["user_id"] = user
    if private is not None:
        out["private_key"] = private
    return web.json_response({"keypair": out}, status=201 if since(request, "2.2") else 200)


async def delete(request: web.Request) -> web.Response:
    kp = await _get(request, request.match_info["name"], "delete")
    try:
        await store_of(request).delete(
            Ref("KeyPair", kp["metadata"]["project"], kp["metadata"]["name"])
        )
    except NotFound:
        pass
    return web.Response(status=204 if since(request, "2.2") else 202)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2.1/os-keypairs", list_keypairs)
    app.router.add_post("/v2.1/os-keypairs", create)
    app.router.add_get("/v2.1/os-keypairs/{name}", show)
    app.router.add_delete("/v2.1/os-keypairs/{name}", delete)

"""desiredctl's login from ``clouds.yaml``, as the OpenStack clients log in.

Owns: finding ``clouds.yaml`` where openstacksdk looks (``$OS_CLIENT_CONFIG_FILE``,
``./clouds.yaml``, ``~/.config/openstack/clouds.yaml``,
``/etc/openstack/clouds.yaml``: the first that exists), reading one cloud's
password auth (user and project by name or id, their domains), logging in
with it (``POST <auth_url>/v3/auth/tokens``, scoped to the project) and
what desiredctl then uses: the token, the API's URL (``auth_url``'s server,
where ``desired up`` serves ``/identity`` beside ``/apis/v1``) and the
token's project as the default ``-p``.

Must never: print the password or the token; send the password anywhere but
the cloud's ``auth_url``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml

from cli.ctl_config import ConfigMissing, CtlConfig


class LoginFailed(Exception):
    """The cloud's identity service refused the login, or could not be reached."""


def clouds_files() -> list[Path]:
    """Where clouds.yaml is looked for, in openstacksdk's order."""
    home = Path(os.path.expanduser("~"))
    config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    found = [Path("clouds.yaml"), config / "openstack/clouds.yaml"]
    found.append(Path("/etc/openstack/clouds.yaml"))
    if os.environ.get("OS_CLIENT_CONFIG_FILE"):
        found.insert(0, Path(os.environ["OS_CLIENT_CONFIG_FILE"]))
    return found


def cloud_auth(name: str) -> tuple[Path, dict[str, Any]]:
    """The ``auth`` mapping of cloud ``name`` and the file it is in."""
    tried = clouds_files()
    for path in tried:
        if not path.is_file():
            continue
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigMissing(f"cannot read {path}: {exc}") from None
        clouds = data.get("clouds") if isinstance(data, dict) else None
        if not isinstance(clouds, dict) or name not in clouds:
            known = ", ".join(sorted(clouds)) if isinstance(clouds, dict) else "none"
            raise ConfigMissing(f"{path} has no cloud {name!r} (its clouds: {known})")
        cloud = clouds[name]
        auth = cloud.get("auth") if isinstance(cloud, dict) else None
        if not isinstance(auth, dict) or not auth.get("auth_url"):
            raise ConfigMissing(f"cloud {name!r} in {path} has no auth.auth_url")
        if cloud.get("auth_type", "password") not in ("password", "v3password"):
            raise ConfigMissing(
                f"cloud {name!r} in {path}: auth_type {cloud['auth_type']!r} is not supported "
                "(desiredctl logs in with a password)"
            )
        return path, auth
    raise ConfigMissing(
        f"no clouds.yaml with cloud {name!r}: looked in " + ", ".join(str(p) for p in tried)
    )


def _named(auth: dict[str, Any], what: str) -> dict[str, Any]:
    """``{"id": ...}`` or ``{"name": ..., "domain": ...}`` of the user or project."""
    if auth.get(f"{what}_id"):
        return {"id": str(auth[f"{what}_id"])}
    if what == "user":
        name = auth.get("username") or auth.get("user_name")
    else:
        name = auth.get("project_name") or auth.get("tenant_name")
    if not name:
        raise ConfigMissing(f"the cloud's auth names no {what} ({what}_id or its name)")
    domain_id = auth.get(f"{what}_domain_id") or auth.get("domain_id")
    domain_name = auth.get(f"{what}_domain_name") or auth.get("domain_name") or "Default"
    domain = {"id": str(domain_id)} if domain_id else {"name": str(domain_name)}
    return {"name": str(name), "domain": domain}


def _tokens_url(auth_url: str) -> str:
    base = auth_url.rstrip("/")
    return (base if base.endswith("/v3") else base + "/v3") + "/auth/tokens"


def _api_url(auth_url: str) -> str:
    parts = urlsplit(auth_url)
    return f"{parts.scheme}://{parts.netloc}"


async def login(name: str, url: str | None = None) -> CtlConfig:
    """Logs in as cloud ``name``; ``url``: the API's URL when not ``auth_url``'s server."""
    path, auth = cloud_auth(name)
    user = _named(auth, "user")
    user["password"] = str(auth.get("password") or "")
    body = {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"project": _named(auth, "project")},
        }
    }
    target = _tokens_url(str(auth["auth_url"]))
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
            http.post(target, json=body) as resp,
        ):
            text = await resp.text()
            token = resp.headers.get("X-Subject-Token", "")
            status = resp.status
    except aiohttp.ClientError as exc:
        raise LoginFailed(f"cloud {name!r}: cannot reach {target}: {exc}") from None
    try:
        answer = json.loads(text)
    except ValueError:
        answer = {}
    if status != 201 or not token:
        said = (answer.get("error") or {}).get("message") or text[:200]
        raise LoginFailed(f"cloud {name!r} ({path}): login refused by {target}: {status} {said}")
    project = (answer.get("token") or {}).get("project") or {}
    api = url or _api_url(str(auth["auth_url"]))
    return CtlConfig(api.rstrip("/"), token, project.get("name"))

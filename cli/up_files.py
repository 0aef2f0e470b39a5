"""The files ``desired up`` writes so that clients work at once.

Owns: ``<data-dir>/env`` (shell exports), ``<data-dir>/desiredctl.yaml``
(desiredctl's config) and ``<data-dir>/clouds.yaml`` (OpenStack clients),
written atomically with owner-only permissions since they hold credentials;
writing them again with a new bootstrap token (``desired
rotate-admin-token``); ``<data-dir>/etcd-url``, where ``up``'s etcd listens
while it runs, for the commands that write to it.

Must never: write outside the data dir.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from state.private_files import write_private


def _write_token_files(data_dir: Path, api_url: str, token: str) -> list[Path]:
    """``env`` and ``desiredctl.yaml``: the files that hold the bootstrap token."""
    env = data_dir / "env"
    ctl = data_dir / "desiredctl.yaml"
    write_private(
        env,
        "# written by `desired up`; source it: . " + shlex.quote(str(env)) + "\n"
        f"export DESIRED_URL={shlex.quote(api_url)}\n"
        f"export DESIRED_TOKEN={shlex.quote(token)}\n"
        f"export OS_CLIENT_CONFIG_FILE={shlex.quote(str(data_dir / 'clouds.yaml'))}\n",
    )
    write_private(ctl, yaml.safe_dump({"url": api_url, "token": token}))
    return [env, ctl]


def rewrite_token(data_dir: Path, token: str) -> list[Path]:
    """``env`` and ``desiredctl.yaml`` again, with ``token`` and the API's URL they had;
    nothing when ``desired up`` never wrote them."""
    try:
        written = yaml.safe_load((data_dir / "desiredctl.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    api_url = written.get("url") if isinstance(written, dict) else None
    return _write_token_files(data_dir, str(api_url), token) if api_url else []


def etcd_url_file(data_dir: Path) -> Path:
    return data_dir / "etcd-url"


def record_etcd_url(data_dir: Path, etcd_url: str) -> Path:
    """Says where ``up``'s etcd listens (a new port at each start)."""
    path = etcd_url_file(data_dir)
    write_private(path, etcd_url + "\n")
    return path


def write_client_files(
    data_dir: Path, api_url: str, token: str, passwords: dict[str, str]
) -> list[Path]:
    clouds = data_dir / "clouds.yaml"
    env, ctl = _write_token_files(data_dir, api_url, token)
    write_private(
        clouds,
        yaml.safe_dump(
            {
                "clouds": {
                    f"desired-{user}": {
                        "auth_type": "password",
                        "auth": {
                            "auth_url": f"{api_url}/identity",
                            "username": user,
                            "password": password,
                            "project_name": user,
                            "user_domain_name": "Default",
                            "project_domain_name": "Default",
                        },
                        "identity_api_version": 3,
                        "region_name": "RegionOne",
                    }
                    for user, password in sorted(passwords.items())
                }
            }
        ),
    )
    return [env, ctl, clouds]

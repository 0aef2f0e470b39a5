"""The files ``desired up`` writes so that clients work at once.

Owns: ``<data-dir>/env`` (shell exports), ``<data-dir>/desiredctl.yaml``
(desiredctl's config) and ``<data-dir>/clouds.yaml`` (OpenStack clients),
written atomically with owner-only permissions since they hold credentials.

Must never: write outside the data dir.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import yaml


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_client_files(
    data_dir: Path, api_url: str, token: str, passwords: dict[str, str]
) -> list[Path]:
    env = data_dir / "env"
    ctl = data_dir / "desiredctl.yaml"
    clouds = data_dir / "clouds.yaml"
    _write_private(
        env,
        "# written by `desired up`; source it: . " + shlex.quote(str(env)) + "\n"
        f"export DESIRED_URL={shlex.quote(api_url)}\n"
        f"export DESIRED_TOKEN={shlex.quote(token)}\n"
        f"export OS_CLIENT_CONFIG_FILE={shlex.quote(str(clouds))}\n",
    )
    _write_private(ctl, yaml.safe_dump({"url": api_url, "token": token}))
    _write_private(
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

"""The users and projects ``desired up`` makes on its first start, and their passwords.

Owns: the projects ``admin`` and ``demo``, the users ``admin`` (admin of the
cloud and of project admin), ``demo`` (member of project demo) and ``hostd``
(role service on the whole cloud: hostd reads images' data with it), with
random passwords kept in ``<data-dir>/passwords.yaml`` (owner-only) so that
``clouds.yaml`` can be written again at every start.

Must never: overwrite a user or project that exists, or print a password.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import yaml

from state.passwords import hash_password
from state.store import Store

USERS = {
    "admin": [{"role": "admin"}, {"role": "admin", "project": "admin"}],
    "demo": [{"role": "member", "project": "demo"}],
    "hostd": [{"role": "service"}],
}
#: the users clouds.yaml has entries for
CLIENT_USERS = ("admin", "demo")
HOSTD_USER = "hostd"


def _passwords(data_dir: Path) -> dict[str, str]:
    path = data_dir / "passwords.yaml"
    if path.exists():
        known = yaml.safe_load(path.read_text()) or {}
        if set(USERS) <= set(known):
            return {k: str(v) for k, v in known.items()}
    made = {user: secrets.token_urlsafe(18) for user in USERS}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(yaml.safe_dump(made))
    return made


async def ensure_identity(store: Store, data_dir: Path) -> dict[str, str]:
    """Creates what is missing; returns each user's password for the client files."""
    passwords = _passwords(data_dir)
    for project in ("admin", "demo"):
        await store.create_or_get({"kind": "Project", "metadata": {"name": project}, "spec": {}})
    for user, roles in USERS.items():
        await store.create_or_get(
            {
                "kind": "User",
                "metadata": {"name": user},
                "spec": {
                    "passwordHash": hash_password(passwords[user]),
                    **({"defaultProject": user} if user in CLIENT_USERS else {}),
                    # a daemon: wrong passwords for its name must not lock it out
                    **({} if user in CLIENT_USERS else {"ignoreLockoutFailureAttempts": True}),
                    "roles": roles,
                },
            }
        )
    return passwords

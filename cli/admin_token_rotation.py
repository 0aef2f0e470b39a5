"""``desired rotate-admin-token``: a new bootstrap admin token, the old one refused at once.

Owns: making the new token, writing its record into etcd (``etcd.url``, else
the etcd a running ``desired up`` recorded in ``<data-dir>/etcd-url``) so that
every API server watching it refuses the old token from then on, and writing
the token into ``<data-dir>/admin-token`` and the client files ``desired up``
wrote (``env``, ``desiredctl.yaml``).

Must never: print the token; change any file when etcd did not take the record.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from apiserver.admin_token import rotate
from apiserver.auth import admin_token_file
from cli.up_etcd import credentials_of, pki_dir
from cli.up_files import etcd_url_file, rewrite_token
from state.config import Config
from state.errors import DesiredError, Unavailable
from state.etcd import EtcdClient
from state.etcd_roles import APISERVER
from state.etcd_tls import Credentials
from state.private_files import write_private


class NoEtcd(DesiredError):
    """No etcd to write the new token's record to."""


def _etcd_url(cfg: Config) -> str:
    if cfg.etcd.url:
        return cfg.etcd.url
    try:
        return etcd_url_file(cfg.data_dir).read_text().strip()
    except OSError:
        raise NoEtcd(
            f"no etcd to rotate the token in: set etcd.url (DESIRED_ETCD_URL), or run "
            f"`desired up` with data dir {cfg.data_dir} first"
        ) from None


def _credentials(cfg: Config) -> Credentials | None:
    """``etcd.credentials``, else those ``desired up`` made for its API server (the token's
    record is the API server's to write)."""
    if cfg.etcd.credentials:
        return Credentials.read(Path(cfg.etcd.credentials))
    if not cfg.etcd.url and pki_dir(cfg.data_dir).exists():
        return credentials_of(cfg.data_dir, APISERVER)
    return None


async def rotate_admin_token(cfg: Config) -> list[Path]:
    """Rotates the token; returns the files written (the token's first)."""
    url = _etcd_url(cfg)
    token = secrets.token_urlsafe(32)
    etcd = EtcdClient(url, timeout=cfg.etcd.timeout, credentials=_credentials(cfg))
    try:
        await rotate(etcd, token)
    except Unavailable as exc:
        raise Unavailable(
            f"etcd at {url} did not take the new token ({exc.message}); is `desired up` "
            "running? nothing was changed"
        ) from None
    finally:
        await etcd.close()
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    path = admin_token_file(cfg.data_dir)
    write_private(path, token + "\n")
    return [path, *rewrite_token(cfg.data_dir, token)]

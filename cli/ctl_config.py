"""Where desiredctl finds its API server and token.

Owns: the lookup order: ``--token`` (with ``--url``), else ``--os-cloud`` (a
login from clouds.yaml: ``cli.ctl_clouds``), else ``DESIRED_TOKEN`` (with
``DESIRED_URL``), else ``$OS_CLOUD``, else a YAML file (``--config``,
``$DESIRED_CONFIG``, ``~/.config/desired/desiredctl.yaml``, then the one
``desired up`` writes: ``$XDG_DATA_HOME/desired/desiredctl.yaml``) with keys
``url`` and ``token``.

Must never: print the token.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml


class ConfigMissing(Exception):
    pass


@dataclass(frozen=True)
class CtlConfig:
    url: str
    token: str
    #: the project of project-scoped objects when ``-p`` names none (a cloud's project)
    project: str | None = None


def cloud_to_use(token: str | None, os_cloud: str | None) -> str | None:
    """The clouds.yaml cloud to log in as, or None when a token is given first."""
    if token:
        return None
    if os_cloud:
        return os_cloud
    if os.environ.get("DESIRED_TOKEN"):
        return None
    return os.environ.get("OS_CLOUD") or None


def _candidates(explicit: str | None) -> list[Path]:
    if explicit:
        return [Path(explicit)]
    if os.environ.get("DESIRED_CONFIG"):
        return [Path(os.environ["DESIRED_CONFIG"])]
    home = Path(os.path.expanduser("~"))
    data = Path(os.environ.get("XDG_DATA_HOME") or home / ".local/share")
    config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    return [config / "desired/desiredctl.yaml", data / "desired/desiredctl.yaml"]


def load(url: str | None, token: str | None, config_file: str | None) -> CtlConfig:
    url = url or os.environ.get("DESIRED_URL")
    token = token or os.environ.get("DESIRED_TOKEN")
    if not (url and token):
        for path in _candidates(config_file):
            if path.is_file():
                try:
                    data = yaml.safe_load(path.read_text()) or {}
                except (OSError, yaml.YAMLError) as exc:
                    raise ConfigMissing(f"cannot read {path}: {exc}") from None
                url = url or data.get("url")
                token = token or data.get("token")
                break
            if config_file:
                raise ConfigMissing(f"config file {path} does not exist")
    if not url or not token:
        raise ConfigMissing(
            "no API server configured: set DESIRED_URL and DESIRED_TOKEN "
            "(`. <data-dir>/env` after `desired up`), or pass --url and --token, "
            "or --os-cloud NAME (clouds.yaml), "
            "or write url: and token: into ~/.config/desired/desiredctl.yaml"
        )
    return CtlConfig(url.rstrip("/"), token)

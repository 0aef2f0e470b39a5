"""desired's configuration: one frozen dataclass tree, loaded once.

Owns: every setting, its default and its documentation; loading them from a
YAML file and from ``DESIRED_*`` environment variables (environment wins).

Must never: be read from a global; it is loaded in the CLI and passed in.

Environment variables name a field by its path in upper case:
``DESIRED_ETCD_URL`` sets ``etcd.url``, ``DESIRED_API_PORT`` sets ``api.port``.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from state.errors import BadRequest


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/desired``, else ``~/.local/share/desired``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return Path(base) / "desired"


@dataclass(frozen=True)
class EtcdConfig:
    #: client URL of etcd's JSON gateway; empty: ``desired up`` starts its own etcd
    url: str = ""
    #: seconds before an etcd request is given up as unavailable
    timeout: float = 10.0
    #: a credential directory for an etcd with TLS and authentication: ``ca.pem`` (the CA
    #: etcd's certificate is checked against), ``cert.pem`` and ``key.pem`` (this client's),
    #: ``user`` and ``password`` (its etcd user); empty: plain HTTP, no user. ``desired up``
    #: makes its own etcd's (docs/etcd.md)
    credentials: str = ""
    #: the directory of the CA etcd trusts (``ca.pem``, ``ca-key.pem``), with which the API
    #: server issues hosts' etcd credentials (``POST /apis/v1/hosts/<host>/credentials``;
    #: its etcd user must then be etcd's root); empty: it issues none. ``desired up`` sets
    #: its own
    issuer: str = ""


@dataclass(frozen=True)
class ApiConfig:
    #: address the API server listens on (loopback by default)
    host: str = "127.0.0.1"
    #: port of the API server; 0 picks a free one
    port: int = 8775
    #: the bootstrap admin token; empty: generated at first start and kept in the data dir
    admin_token: str = ""
    #: seconds the bootstrap admin token lives after it was made (or rotated); after them
    #: it is refused until ``desired rotate-admin-token`` makes a new one; 0: for ever
    admin_token_ttl: int = 0
    #: seconds an identity token lives
    token_ttl: int = 3600
    #: the most servers one Compute API list answers (Nova's ``[api] max_limit``)
    max_limit: int = 1000
    #: a YAML file of policy rules in oslo.policy's syntax over the Compute API's defaults
    policy_file: str = ""
    #: an external Keystone (its base URL) whose tokens the Compute and image APIs take
    #: instead of this identity service's; empty: this one's
    keystone_url: str = ""
    #: seconds a token the external Keystone vouched for is taken without asking again
    keystone_cache_seconds: float = 300.0
    #: seconds a request body may stall (no byte arriving) before the request is answered
    #: 408 and its connection closed, on the API server's and the metadata service's listeners
    body_timeout: float = 10.0
    #: the largest image one upload may store, in bytes (Glance's ``image_size_cap``); 0: any
    image_size_cap: int = 10 * 2**30
    #: bytes of image data one project may store (Glance's ``user_storage_quota``); 0: any
    image_storage_quota: int = 50 * 2**30


@dataclass(frozen=True)
class IdentityConfig:
    #: failed password logins in a row that lock a user out (Keystone's
    #: ``[security_compliance] lockout_failure_attempts``); 0: never locked out
    lockout_failure_attempts: int = 5
    #: seconds a locked-out user stays locked after the last failure (Keystone's
    #: ``lockout_duration``); a failure this long after the previous one starts the count
    #: again
    lockout_duration: float = 300.0
    #: threads that check passwords (each check is about 40 ms of one CPU), at a lower CPU
    #: priority than the API server's event loop
    password_check_workers: int = 1
    #: logins that may wait for a checking thread; more at once are refused with 503
    password_check_queue: int = 32


@dataclass(frozen=True)
class MetadataConfig:
    #: address the metadata service listens on (hosts' metadata proxies reach it there)
    host: str = "127.0.0.1"
    #: port of the metadata service; 0 picks a free one
    port: int = 8776
    #: the secret hosts sign instance ids with; empty: made once and kept in the data dir
    #: (every hostd must be given the same)
    secret: str = ""


@dataclass(frozen=True)
class SqlConfig:
    #: SQLAlchemy URL; empty: SQLite in the data dir
    url: str = ""


@dataclass(frozen=True)
class ReconcilerConfig:
    #: seconds between full re-reconciles of every object
    resync: float = 300.0
    #: TTL of the leader lease in seconds; a new leader takes over within it
    leader_ttl: int = 10
    #: worker tasks per controller
    workers: int = 16
    #: how the scheduler picks among fitting hosts: "spread" (most free RAM) or "pack"
    weigher: str = "spread"
    #: which central reconcilers this process runs, comma-separated, from scheduler,
    #: gitsync, conductor, network; each set is leader-elected on its own, so run each
    #: reconciler in exactly one set (the conductor apart keeps its SQL work off the
    #: scheduler's CPU)
    run: str = "scheduler,gitsync,conductor,network"
    #: seconds an instance that fits on no host is retried (Scheduled=False, reason
    #: Unschedulable) before it gets Nova's "No valid host was found" fault and ERROR
    no_valid_host_after: float = 30.0
    #: port of ``desired reconcilers``' /metrics on loopback, without a token; 0: not
    #: served (``desired up`` serves them on the API server's /metrics, for admins)
    metrics_port: int = 0
    #: the nice value (-20 to 19) a ``desired reconcilers`` process that runs the
    #: conductor alone takes: readers wait for the conductor's progress to see their own
    #: writes, so it must not queue for a CPU behind hostd and the scheduler; below 0
    #: needs root (or CAP_SYS_NICE), without which it says so and keeps its priority
    conductor_nice: int = -10


@dataclass(frozen=True)
class HostdConfig:
    #: this host's name; empty: the machine's hostname
    name: str = ""
    #: availability zone of this host
    zone: str = "nova"
    #: libvirt URI for real guests
    libvirt_uri: str = "qemu:///system"
    #: where real guests' image cache and disks live; empty: ``<data-dir>/hostd`` when QEMU
    #: (its own user) can reach it, else /var/lib/desired/hostd
    storage_dir: str = ""
    #: domain type of real guests: "kvm", "qemu" (TCG, no hardware help) or "auto" (kvm when
    #: /dev/kvm exists and the CPU has VMX or SVM, else qemu)
    virt_type: str = "auto"
    #: the API server real guests' images without a url are read from (its /identity and
    #: /image); empty: none (``desired up`` uses its own)
    api_url: str = ""
    #: hostd's user there (role ``service`` on the whole cloud) and its password
    user: str = "hostd"
    password: str = ""
    #: the metadata service guests' requests are passed on to; empty: none (``desired up``
    #: uses its own)
    metadata_url: str = ""
    #: port of the metadata proxy on each network's gateway (169.254.169.254:80 goes there)
    metadata_proxy_port: int = 8781
    #: the network namespace guests' bridges, DHCP and firewall live in: "auto" (libvirtd's,
    #: where its QEMU processes make the taps) or a path like /run/netns/NAME
    network_namespace: str = "auto"
    #: seconds of the host's liveness lease
    lease_ttl: int = 10
    #: seconds between full re-reconciles of every assignment and stray domain
    resync: float = 30.0
    #: seconds an instance's image may stay unreadable (its file or server away) before
    #: the instance is put in ERROR with Nova's fault "Image <id> could not be found."
    image_fetch_timeout: float = 300.0
    #: seconds before the second try to read an unreadable image; each further wait is
    #: twice the last, up to 60 s (every try is an ImageFetchFailed event on the instance)
    image_retry_delay: float = 2.0
    #: vCPUs, RAM (MiB) and disk (GiB) of each simulated host
    simulated_vcpus: int = 16
    simulated_ram_mib: int = 65536
    simulated_disk_gib: int = 1000


@dataclass(frozen=True)
class Config:
    #: where ``desired up`` keeps etcd's data, SQLite, images and credentials
    data_dir: Path = field(default_factory=default_data_dir)
    etcd: EtcdConfig = field(default_factory=EtcdConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    sql: SqlConfig = field(default_factory=SqlConfig)
    metadata: MetadataConfig = field(default_factory=MetadataConfig)
    reconcilers: ReconcilerConfig = field(default_factory=ReconcilerConfig)
    hostd: HostdConfig = field(default_factory=HostdConfig)

    def sql_url(self) -> str:
        return self.sql.url or f"sqlite:///{self.data_dir / 'desired.sqlite'}"

    def hostd_storage_dir(self) -> Path:
        if self.hostd.storage_dir:
            return Path(self.hostd.storage_dir)
        below_data = self.data_dir.resolve() / "hostd"
        reachable = all(p.stat().st_mode & 0o001 for p in below_data.parents if p.exists())
        return below_data if reachable else Path("/var/lib/desired/hostd")


def _coerce(tp: Any, value: Any, path: str) -> Any:
    try:
        if tp is Path:
            return Path(os.path.expanduser(str(value)))
        if tp is bool:
            if isinstance(value, str):
                return value.lower() in ("1", "true", "yes", "on")
            return bool(value)
        if tp in (int, float, str):
            return tp(value)
    except (TypeError, ValueError):
        raise BadRequest(f"config {path}: expected {tp.__name__}, got {value!r}") from None
    return value


def _build(cls: type, data: dict[str, Any], env: dict[str, str], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        known = ", ".join(f.name for f in dataclasses.fields(cls))
        where = prefix.lower().replace("_", ".").strip(".") or "top level"
        raise BadRequest(f"config {where}: unknown setting(s) {sorted(unknown)}; known: {known}")
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        env_name = f"{prefix}{f.name.upper()}"
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = _build(tp, data.get(f.name) or {}, env, env_name + "_")  # type: ignore[arg-type]
        elif env_name in env:
            kwargs[f.name] = _coerce(tp, env[env_name], env_name)
        elif f.name in data:
            kwargs[f.name] = _coerce(tp, data[f.name], f.name)
    return cls(**kwargs)


def load(
    path: str | Path | None = None, env: dict[str, str] | None = None, **overrides: Any
) -> Config:
    """Loads the config from ``path`` (YAML, optional) and the environment."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise BadRequest(f"cannot read config file {path}: {exc}") from None
    cfg: Config = _build(Config, data, dict(os.environ if env is None else env), "DESIRED_")
    return dataclasses.replace(cfg, **overrides) if overrides else cfg

"""The ``desired`` command: run the cloud's processes.

Owns: ``desired up`` (everything on this machine with embedded defaults:
etcd and the conductor as child processes, SQLite, the API server, the other
reconcilers, and a hostd: real guests through libvirtd when it answers, else
simulated hosts, said at start; on the first start, a demo guest) and the separate
production processes ``desired apiserver``, ``desired reconcilers`` and
``desired hostd``; ``desired rotate-admin-token`` (``cli.admin_token_rotation``); signal handling and orderly shutdown; the files ``up`` writes
for clients (``env``, ``clouds.yaml``, ``desiredctl.yaml``).

Must never: keep running half-started: if a part fails to start, everything
started so far is stopped and the command exits non-zero; nor end ``up``
because a part died once started: it is started again
(``cli.up_supervise``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web

from apiserver.app import make_app
from apiserver.auth import bootstrap_token, kept_secret
from apiserver.image_data import ImageData, ImageLimits
from apiserver.metadata import service as metadata_service
from cli.admin_token_rotation import rotate_admin_token
from cli.join import join
from cli.up_demo import create_demo
from cli.up_etcd import UpCredentials, secure, start_etcd
from cli.up_files import record_etcd_url, write_client_files
from cli.up_identity import CLIENT_USERS, HOSTD_USER, ensure_identity
from cli.up_supervise import ChildProcess, EtcdChild, InProcess, Part, supervise
from fixtures.children import dying_with_parent
from fixtures.etcd import EtcdServer
from hostd.agent import HostAgent
from hostd.run import host_name, real_agent, run_agents, simulated_agents, try_real_agent
from reconcilers.runtime.garbage import collect_when_quiet
from reconcilers.runtime.metrics import Metrics
from reconcilers.wiring import parts_of, run_reconcilers
from state import config as config_mod
from state.config import Config
from state.errors import DesiredError
from state.etcd import EtcdClient
from state.etcd_tls import Authority, Credentials
from state.sql.migrate import upgrade
from state.sql.views import ComputeViews
from state.store import Store

log = logging.getLogger("desired")


def _etcd(cfg: Config, url: str = "", credentials: Credentials | None = None) -> EtcdClient:
    """A client of ``url`` (else ``etcd.url``) with ``credentials`` (else those of
    ``etcd.credentials``, if set)."""
    if credentials is None and cfg.etcd.credentials:
        credentials = Credentials.read(Path(cfg.etcd.credentials))
    return EtcdClient(url or cfg.etcd.url, timeout=cfg.etcd.timeout, credentials=credentials)


async def _serve_api(
    cfg: Config,
    etcd_url: str,
    token: str,
    metrics: Metrics | None = None,
    credentials: Credentials | None = None,
    issuer: Authority | None = None,
) -> web.AppRunner:
    if issuer is None and cfg.etcd.issuer:
        issuer = Authority(Path(cfg.etcd.issuer))
    app = make_app(
        _etcd(cfg, etcd_url, credentials),
        token,
        metrics.text if metrics is not None else None,
        token_ttl=cfg.api.token_ttl,
        admin_token_ttl=cfg.api.admin_token_ttl,
        sql_url=cfg.sql_url(),
        max_limit=cfg.api.max_limit,
        policy_file=Path(cfg.api.policy_file) if cfg.api.policy_file else None,
        image_dir=cfg.data_dir / "images",
        keystone_url=cfg.api.keystone_url,
        keystone_cache_seconds=cfg.api.keystone_cache_seconds,
        body_timeout=cfg.api.body_timeout,
        identity_config=cfg.identity,
        image_limits=ImageLimits(cfg.api.image_size_cap, cfg.api.image_storage_quota),
        host_issuer=issuer,
    )
    # the rest of a body a handler did not read is drained no longer than a stall may last
    runner = web.AppRunner(app, access_log=None, lingering_time=cfg.api.body_timeout)
    await runner.setup()
    site = web.TCPSite(runner, cfg.api.host, cfg.api.port)
    await site.start()
    return runner


async def _serve_metadata(
    cfg: Config, etcd_url: str, secret: str, credentials: Credentials | None = None
) -> web.AppRunner:
    """The metadata service on its own listener (``metadata.host``/``metadata.port``)."""
    app = metadata_service.make_app(
        Store(_etcd(cfg, etcd_url, credentials)),
        ComputeViews(cfg.sql_url()),
        secret,
        body_timeout=cfg.api.body_timeout,
    )
    # the rest of a body a handler did not read is drained no longer than a stall may last
    runner = web.AppRunner(app, access_log=None, lingering_time=cfg.api.body_timeout)
    await runner.setup()
    await web.TCPSite(runner, cfg.metadata.host, cfg.metadata.port).start()
    return runner


def _with_metadata_secret(cfg: Config) -> Config:
    """The config with the metadata secret filled in (kept in the data dir when not set)."""
    secret = kept_secret(cfg.metadata.secret, cfg.data_dir / "metadata-secret")
    return dataclasses.replace(cfg, metadata=dataclasses.replace(cfg.metadata, secret=secret))


def _bound_port(runner: web.AppRunner) -> int:
    for site in runner.sites:
        server = site._server  # aiohttp keeps the listening sockets here
        sockets = getattr(server, "sockets", None)
        if sockets:
            return int(sockets[0].getsockname()[1])
    raise RuntimeError("the API server is not listening")


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _start_conductor(
    cfg: Config, etcd_url: str, config_path: str | None, credentials: Credentials | None
) -> asyncio.subprocess.Process:
    """The conductor in a ``desired reconcilers`` child process of its own: the layout for
    speed (docs/reconcilers.md), where it takes ``reconcilers.conductor_nice``. It reads the
    same config file and environment as ``up``, with ``up``'s etcd and SQL."""
    args = ["--config", config_path] if config_path else []
    env = {
        **os.environ,
        "DESIRED_ETCD_URL": etcd_url,
        "DESIRED_DATA_DIR": str(cfg.data_dir),
        "DESIRED_SQL_URL": cfg.sql_url(),
        "DESIRED_RECONCILERS_RUN": "conductor",
    }
    if credentials is not None:
        env["DESIRED_ETCD_CREDENTIALS"] = str(credentials.ca_file.parent)
    cmd = [
        sys.executable,
        "-P",  # the installed desired, not a cli/ of the working directory
        "-m",
        "cli.desired",
        *args,
        "reconcilers",
        "--identity",
        "up-conductor",
    ]
    return await asyncio.create_subprocess_exec(
        *dying_with_parent(cmd),  # an up killed -9 leaves no conductor behind
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
    )


def _hostd_factory(
    cfg: Config,
    etcd_url: str,
    simulate: int,
    metrics: Metrics,
    credentials: Credentials | None = None,
) -> tuple[Callable[[], Coroutine[Any, Any, None]], HostAgent | None, list[HostAgent], str]:
    """What runs ``up``'s hostd (a coroutine made anew at each start, with new agents and
    client), the real agent (None: simulated hosts), the first agents and why not real."""
    etcd = _etcd(cfg, etcd_url, credentials)
    real, why_not = (None, "asked for") if simulate else try_real_agent(cfg, etcd, metrics)
    agents = [real] if real is not None else simulated_agents(cfg, etcd, simulate or 1, metrics)
    first: list[tuple[list[HostAgent], EtcdClient] | None] = [(agents, etcd)]

    def run() -> Coroutine[Any, Any, None]:
        made = first.pop() if first else None
        if made is not None:
            return run_agents(*made)
        again = _etcd(cfg, etcd_url, credentials)
        if real is not None:
            return run_agents([real_agent(cfg, again, metrics)], again)
        return run_agents(simulated_agents(cfg, again, simulate or 1, metrics), again)

    return run, real, agents, why_not


async def up(
    cfg: Config, simulate: int = 0, demo: bool = True, config_path: str | None = None
) -> int:
    """Runs everything until SIGINT or SIGTERM. A part that dies after the start (etcd, the
    conductor's process, the other reconcilers, hostd) is started again with backoff
    (``cli.up_supervise``), said on stderr; the API keeps serving meanwhile."""
    data_dir = cfg.data_dir
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # secrets below: etcd's data and credentials, SQLite, passwords
    etcd_server: EtcdServer | None = None
    #: the credentials of up's parts for its own etcd (None: ``etcd.url``'s, from the config)
    creds: UpCredentials | None = None
    runner: web.AppRunner | None = None
    metadata: web.AppRunner | None = None
    parts: list[Part] = []
    supervisors: list[asyncio.Task[None]] = []
    cfg = _with_metadata_secret(cfg)
    try:
        if cfg.etcd.url:
            etcd_url = cfg.etcd.url
        else:
            etcd_server = start_etcd(data_dir)
            etcd_url = etcd_server.url
            parts.append(EtcdChild(etcd_server))
            creds = await secure(etcd_server, host_name(cfg), cfg.etcd.timeout)
        upgrade(cfg.sql_url())
        token = bootstrap_token(cfg.api.admin_token, data_dir)
        metrics = Metrics()
        runner = await _serve_api(
            cfg,
            etcd_url,
            token,
            metrics,
            creds.apiserver if creds else None,
            etcd_server.authority if etcd_server is not None else None,
        )
        api_url = f"http://{cfg.api.host}:{_bound_port(runner)}"
        metadata = await _serve_metadata(
            cfg, etcd_url, cfg.metadata.secret, creds.apiserver if creds else None
        )
        metadata_url = f"http://{cfg.metadata.host}:{_bound_port(metadata)}"
        names = parts_of(cfg.reconcilers.run)
        conductor: ChildProcess | None = None
        if "conductor" in names:

            async def start_conductor() -> asyncio.subprocess.Process:
                return await _start_conductor(
                    cfg, etcd_url, config_path, creds.reconcilers if creds else None
                )

            conductor = ChildProcess(
                "the conductor's process", start_conductor, await start_conductor()
            )
            parts.append(conductor)
            names = tuple(p for p in names if p != "conductor")
        if names:
            here = dataclasses.replace(cfg.reconcilers, run=",".join(names))
            central = dataclasses.replace(cfg, reconcilers=here)
            parts.append(
                InProcess(
                    "the reconcilers (" + ", ".join(names) + ")",
                    lambda: run_reconcilers(
                        central,
                        _etcd(cfg, etcd_url, creds.reconcilers if creds else None),
                        identity="up",
                        metrics=metrics,
                    ),
                )
            )
        setup_store = Store(_etcd(cfg, etcd_url, creds.apiserver if creds else None))
        try:
            passwords = await ensure_identity(setup_store, data_dir)
            if not cfg.hostd.api_url:  # hostd reads images from this API server, as hostd
                hostd_cfg = dataclasses.replace(
                    cfg.hostd, api_url=api_url, password=passwords[HOSTD_USER]
                )
                cfg = dataclasses.replace(cfg, hostd=hostd_cfg)
            if not cfg.hostd.metadata_url:  # guests' metadata requests come here
                hostd_cfg = dataclasses.replace(cfg.hostd, metadata_url=metadata_url)
                cfg = dataclasses.replace(cfg, hostd=hostd_cfg)
            run_hostd, real, agents, why_not = _hostd_factory(
                cfg, etcd_url, simulate, metrics, creds.hostd if creds else None
            )
            parts.append(InProcess("hostd", run_hostd))
            demo_said = (
                await create_demo(setup_store, data_dir, ImageData(data_dir / "images"))
                if demo
                else "not asked for"
            )
        finally:
            await setup_store.etcd.close()
        clients = {u: p for u, p in passwords.items() if u in CLIENT_USERS}
        files = write_client_files(data_dir, api_url, token, clients)
        files.append(record_etcd_url(data_dir, etcd_url))
        print(f"desired is up (data in {data_dir})", flush=True)
        print(f"  declarative API  {api_url}/apis/v1/", flush=True)
        print(f"  identity         {api_url}/identity (users admin, demo: clouds.yaml)", flush=True)
        print(
            f"  metrics          {api_url}/metrics (admin role: "
            f"'Authorization: Bearer $DESIRED_TOKEN' with the env file below)",
            flush=True,
        )
        print(f"  metadata         {metadata_url} (guests: http://169.254.169.254)", flush=True)
        secured = (
            f" (TLS to its own CA, a user per part: credentials in {creds.apiserver.ca_file.parent.parent})"
            if creds
            else ""
        )
        print(f"  etcd             {etcd_url}{secured}", flush=True)
        print(f"  SQL              {cfg.sql_url()}", flush=True)
        if conductor is not None and conductor.child is not None:
            print(
                f"  conductor        process {conductor.child.pid} (desired reconcilers)",
                flush=True,
            )
        if real is not None:
            print(
                f"  hostd            host {real.host}: REAL guests through libvirtd "
                f"({cfg.hostd.libvirt_uri}, virt type {real.driver.capabilities.virt_type}; "
                f"disks in {cfg.hostd_storage_dir()})",
                flush=True,
            )
        else:
            print(
                f"  hostd            SIMULATED host(s) {', '.join(a.host for a in agents)} "
                f"(libvirt's test driver; real guests: {why_not})",
                flush=True,
            )
        print(f"  demo             {demo_said}", flush=True)
        for f in files:
            print(f"  wrote            {f}", flush=True)
        print(f"  use it:          . {data_dir / 'env'} && desiredctl get flavors", flush=True)
        supervisors = [asyncio.create_task(supervise(p)) for p in parts]
        await _until_signalled()  # a part that dies is started again meanwhile
        print("desired: stopping", flush=True)
        return 0
    finally:
        try:
            for task in supervisors:  # each stops its part
                task.cancel()
            await asyncio.gather(*supervisors, return_exceptions=True)
            for part in parts if not supervisors else ():  # failed before supervision began
                await part.stop()
            for serving in (runner, metadata):
                if serving is not None:
                    await serving.cleanup()
        finally:
            if etcd_server is not None:
                etcd_server.stop()  # whatever else failed: etcd is this process's child


async def apiserver(cfg: Config) -> int:
    if not cfg.etcd.url:
        raise DesiredError("desired apiserver needs etcd.url (DESIRED_ETCD_URL)")
    token = bootstrap_token(cfg.api.admin_token, cfg.data_dir)
    cfg = _with_metadata_secret(cfg)
    runner = await _serve_api(cfg, cfg.etcd.url, token)
    metadata = await _serve_metadata(cfg, cfg.etcd.url, cfg.metadata.secret)
    print(f"desired apiserver listening on http://{cfg.api.host}:{_bound_port(runner)}", flush=True)
    print(
        f"desired metadata service listening on http://{cfg.metadata.host}:{_bound_port(metadata)}",
        flush=True,
    )
    try:
        await _until_signalled()
    finally:
        await runner.cleanup()
        await metadata.cleanup()
    return 0


async def _serve_metrics(metrics: Metrics, port: int) -> web.AppRunner | None:
    """Serves Prometheus' /metrics on loopback when a port is configured."""
    if not port:
        return None

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=metrics.text(), content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def take_conductor_priority(cfg: Config) -> None:
    """A process that runs the conductor alone takes ``reconcilers.conductor_nice``; called
    before the process starts a thread (Linux keeps a nice value per thread, and new
    threads take their creator's)."""
    nice = cfg.reconcilers.conductor_nice
    if not -20 <= nice <= 19:
        raise DesiredError(f"reconcilers.conductor_nice must be from -20 to 19, not {nice}")
    if parts_of(cfg.reconcilers.run) != ("conductor",):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except PermissionError:
        print(
            f"desired reconcilers: cannot take nice {nice} for the conductor (it needs root "
            f"or CAP_SYS_NICE); running at {os.getpriority(os.PRIO_PROCESS, 0)}",
            file=sys.stderr,
        )


async def reconcilers_cmd(cfg: Config, identity: str) -> int:
    if not cfg.etcd.url:
        raise DesiredError("desired reconcilers needs etcd.url (DESIRED_ETCD_URL)")
    if "conductor" in parts_of(cfg.reconcilers.run):  # only the conductor writes SQL
        upgrade(cfg.sql_url())
    metrics = Metrics()
    task = asyncio.create_task(run_reconcilers(cfg, _etcd(cfg), identity, metrics))
    metrics_runner = await _serve_metrics(metrics, cfg.reconcilers.metrics_port)
    waiter = asyncio.create_task(_until_signalled())
    done, _ = await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    if metrics_runner is not None:
        await metrics_runner.cleanup()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if task in done and not task.cancelled() and task.exception():
        raise task.exception()  # type: ignore[misc]
    return 0


async def hostd_cmd(cfg: Config, simulate: int) -> int:
    if not cfg.etcd.url:
        raise DesiredError("desired hostd needs etcd.url (DESIRED_ETCD_URL)")
    if cfg.hostd.metadata_url and not cfg.metadata.secret:
        raise DesiredError(
            "desired hostd: hostd.metadata_url needs metadata.secret, the metadata service's"
        )
    etcd = _etcd(cfg)
    if simulate > 0:
        agents = simulated_agents(cfg, etcd, simulate)
        print(f"desired hostd: {simulate} simulated host(s): {agents[0].host} ...", flush=True)
    else:
        agents = [real_agent(cfg, etcd)]
        print(
            f"desired hostd: host {agents[0].host}, real guests through {cfg.hostd.libvirt_uri} "
            f"(virt type {agents[0].driver.capabilities.virt_type})",
            flush=True,
        )
    task = asyncio.create_task(run_agents(agents, etcd))
    waiter = asyncio.create_task(_until_signalled())
    await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return 0


async def rotate_cmd(cfg: Config) -> int:
    written = await rotate_admin_token(cfg)
    print(f"desired: a new admin token is in {written[0]}; the old one is refused", flush=True)
    for path in written[1:]:
        print(f"  rewrote          {path}", flush=True)
    if cfg.api.admin_token:
        print(
            "desired: api.admin_token (the config or DESIRED_API_ADMIN_TOKEN) still holds the "
            f"old token: replace it with the one in {written[0]}",
            file=sys.stderr,
        )
    return 0


async def _daemon(command: Coroutine[Any, Any, int]) -> int:
    """Runs a long-lived command with full garbage collections kept to its quiet moments."""
    collector = asyncio.create_task(collect_when_quiet())
    try:
        return await command
    finally:
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="desired", description="desired: a declarative compute cloud")
    p.add_argument("--config", help="YAML config file (settings: see docs/config.md)")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = p.add_subparsers(dest="command", required=True)
    up_p = sub.add_parser("up", help="run everything on this machine with embedded defaults")
    up_p.add_argument(
        "--data-dir", type=Path, help="where state is kept (default: ~/.local/share/desired)"
    )
    up_p.add_argument("--port", type=int, help="API port (default 8775; 0 picks a free port)")
    up_p.add_argument(
        "--simulate",
        type=int,
        default=0,
        metavar="N",
        help="run N simulated hosts instead of real guests through libvirtd",
    )
    up_p.add_argument(
        "--no-demo",
        action="store_true",
        help="do not create the demo flavors, tiny images and instance on the first start",
    )
    api_p = sub.add_parser("apiserver", help="run an API server against an existing etcd")
    api_p.add_argument("--port", type=int, help="API port")
    host_p = sub.add_parser("hostd", help="run the host daemon against an existing etcd")
    host_p.add_argument(
        "--simulate",
        type=int,
        default=0,
        metavar="N",
        help="run N simulated hosts (libvirt's test driver)",
    )
    join_p = sub.add_parser(
        "join", help="get a host's etcd credential from the API (admin) for its hostd"
    )
    join_p.add_argument("--url", required=True, help="the API server's URL")
    join_p.add_argument("--token", required=True, help="an admin's token")
    join_p.add_argument("--host", required=True, help="the host's name (hostd.name)")
    join_p.add_argument("--into", type=Path, required=True, help="the credential directory")
    rot_p = sub.add_parser(
        "rotate-admin-token",
        help="make a new bootstrap admin token: every API server refuses the old one at once",
    )
    rot_p.add_argument(
        "--data-dir",
        type=Path,
        help="where the token and client files are kept (default: ~/.local/share/desired)",
    )
    rec_p = sub.add_parser("reconcilers", help="run the central reconcilers (leader-elected)")
    rec_p.add_argument("--identity", default="", help="this replica's name in leader election")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        cfg = config_mod.load(args.config)
        overrides: dict[str, object] = {}
        if getattr(args, "data_dir", None):
            overrides["data_dir"] = args.data_dir
        if getattr(args, "port", None) is not None:
            overrides["api"] = dataclasses.replace(cfg.api, port=args.port)
        if overrides:
            cfg = dataclasses.replace(cfg, **overrides)  # type: ignore[arg-type]
        if args.command == "up":
            return asyncio.run(_daemon(up(cfg, args.simulate, not args.no_demo, args.config)))
        if args.command == "apiserver":
            return asyncio.run(_daemon(apiserver(cfg)))
        if args.command == "hostd":
            return asyncio.run(_daemon(hostd_cmd(cfg, args.simulate)))
        if args.command == "join":
            print(
                f"credential in {args.into}; run: {join(args.url, args.token, args.host, args.into)}"
            )
            return 0
        if args.command == "rotate-admin-token":
            return asyncio.run(rotate_cmd(cfg))
        identity = args.identity or f"{socket.gethostname()}-{os.getpid()}"
        take_conductor_priority(cfg)
        return asyncio.run(_daemon(reconcilers_cmd(cfg, identity)))
    except DesiredError as exc:
        print(f"desired: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

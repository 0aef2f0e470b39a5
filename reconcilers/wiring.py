"""Which reconcilers the central ``desired reconcilers`` process runs, wired explicitly.

Owns: building informers and controllers from the config (``reconcilers.run``:
all of them, or a subset) and running them under one leader election
(``/desired/v1/leader/reconcilers``, or one named after the subset).

Must never: hold reconcile logic; each reconciler is its own module.
"""

from __future__ import annotations

from reconcilers.catalog import Catalog
from reconcilers.cluster_view import ClusterView
from reconcilers.conductor import Conductor
from reconcilers.floating_ips import FloatingIPReconciler
from reconcilers.gitsync import GitSync
from reconcilers.network import controller as network_controller
from reconcilers.network import sweep
from reconcilers.port_render import NetworkCatalog
from reconcilers.runtime.controller import Controller
from reconcilers.runtime.informer import Informer
from reconcilers.runtime.leader import LeaderElector
from reconcilers.runtime.manager import Manager, Runnable
from reconcilers.runtime.metrics import Metrics
from reconcilers.scheduler import Scheduler, requeue_on_liveness, requeue_unplaced
from state.config import Config
from state.envelope import Ref
from state.errors import BadRequest
from state.etcd import EtcdClient
from state.store import Store

PARTS = ("scheduler", "gitsync", "conductor", "network")


def parts_of(setting: str) -> tuple[str, ...]:
    """The reconcilers named in ``reconcilers.run``, in PARTS order."""
    asked = {p.strip() for p in setting.split(",") if p.strip()}
    unknown = asked - set(PARTS)
    if unknown or not asked:
        raise BadRequest(
            f"reconcilers.run: unknown {sorted(unknown) or 'empty'}; choose from {', '.join(PARTS)}"
        )
    return tuple(p for p in PARTS if p in asked)


def election_name(parts: tuple[str, ...]) -> str:
    """All of them elect ``reconcilers``; a subset elects a leader of its own."""
    return "reconcilers" if parts == PARTS else "reconcilers-" + "-".join(parts)


def scheduler(
    store: Store,
    instances: Informer,
    *,
    workers: int = 4,
    resync: float = 300.0,
    weigher: str = "spread",
    no_valid_host_after: float = 30.0,
    metrics: Metrics | None = None,
) -> tuple[Controller[Ref], list[Runnable]]:
    """The scheduler's controller and the informers it needs besides ``instances`` (the
    cluster view, flavors and images, networks, security groups and floating IPs), with
    the handlers that requeue instances when those change."""
    cluster = ClusterView(store.etcd)
    catalog = Catalog(store, store.etcd)
    networks = NetworkCatalog(store.etcd, instances)
    controller = Controller(
        Scheduler(
            store,
            cluster,
            catalog,
            instances,
            networks,
            weigher=weigher,
            no_valid_host_after=no_valid_host_after,
        ),
        [instances],
        workers=workers,
        resync=resync,
        metrics=metrics,
        events=store,
    )
    cluster.add_liveness_handler(requeue_on_liveness(controller, instances))
    catalog.on_change(requeue_unplaced(controller, instances))
    networks.on_change(controller.queue.add)
    return controller, [cluster, *catalog.informers, *networks.informers]


def build(cfg: Config, etcd: EtcdClient, identity: str, metrics: Metrics) -> Manager:
    store = Store(etcd)
    rc = cfg.reconcilers
    parts = parts_of(rc.run)
    informers: list[Runnable] = []
    controllers: list[Controller[Ref]] = []
    streams = []
    instances = Informer(etcd, "Instance")
    if "scheduler" in parts or "network" in parts:
        informers.append(instances)
    if "scheduler" in parts:
        controller, needs = scheduler(
            store,
            instances,
            workers=rc.workers,
            resync=rc.resync,
            weigher=rc.weigher,
            no_valid_host_after=rc.no_valid_host_after,
            metrics=metrics,
        )
        informers += needs
        controllers.append(controller)
    if "gitsync" in parts:
        gitsources = Informer(etcd, "GitSource")
        gitsync = Controller(
            GitSync(store, cfg.data_dir / "gitsync"),
            [gitsources],
            workers=rc.workers,
            resync=rc.resync,
            metrics=metrics,
            events=store,
        )
        informers.append(gitsources)
        controllers.append(gitsync)
    if "conductor" in parts:
        streams.append(Conductor(etcd, cfg.sql_url(), metrics).run)
    if "network" in parts:
        networks = Informer(etcd, "Network")
        controllers.append(
            network_controller(
                store,
                instances,
                networks,
                workers=rc.workers,
                resync=rc.resync,
                metrics=metrics,
            )
        )
        informers.append(networks)
        floating_ips = Informer(etcd, "FloatingIP")
        controllers.append(
            Controller(
                FloatingIPReconciler(store),
                [floating_ips],
                workers=rc.workers,
                resync=rc.resync,
                metrics=metrics,
                events=store,
            )
        )
        informers.append(floating_ips)
        streams.append(lambda: sweep(store, rc.resync))
    name = election_name(parts)
    elector = LeaderElector(
        etcd,
        name,
        identity,
        ttl=rc.leader_ttl,
        on_change=lambda leading: metrics.leader.labels(name).set(int(leading)),
    )
    return Manager(informers, controllers, elector=elector, streams=streams)


async def run_reconcilers(cfg: Config, etcd: EtcdClient, identity: str, metrics: Metrics) -> None:
    """Runs the central reconcilers until cancelled."""
    try:
        await build(cfg, etcd, identity, metrics).run()
    finally:
        await etcd.close()

"""Which reconcilers the central ``desired reconcilers`` process runs, wired explicitly.

Owns: building informers and controllers from the config and running them
under one leader election (``/desired/v1/leader/reconcilers``).

Must never: hold reconcile logic; each reconciler is its own module.
"""

from __future__ import annotations

from reconcilers.catalog import Catalog
from reconcilers.cluster_view import ClusterView
from reconcilers.conductor import Conductor
from reconcilers.gitsync import GitSync
from reconcilers.runtime.controller import Controller
from reconcilers.runtime.informer import Informer
from reconcilers.runtime.leader import LeaderElector
from reconcilers.runtime.manager import Manager
from reconcilers.runtime.metrics import Metrics
from reconcilers.scheduler import Scheduler, requeue_on_liveness, requeue_unplaced
from state.config import Config
from state.etcd import EtcdClient
from state.store import Store


def build(cfg: Config, etcd: EtcdClient, identity: str, metrics: Metrics) -> Manager:
    store = Store(etcd)
    rc = cfg.reconcilers
    instances = Informer(etcd, "Instance")
    cluster = ClusterView(etcd)
    catalog = Catalog(store, etcd)
    scheduler = Controller(
        Scheduler(
            store,
            cluster,
            catalog,
            instances,
            weigher=rc.weigher,
            no_valid_host_after=rc.no_valid_host_after,
        ),
        [instances],
        workers=rc.workers,
        resync=rc.resync,
        metrics=metrics,
    )
    cluster.add_liveness_handler(requeue_on_liveness(scheduler, instances))
    catalog.on_change(requeue_unplaced(scheduler, instances))
    gitsources = Informer(etcd, "GitSource")
    gitsync = Controller(
        GitSync(store, cfg.data_dir / "gitsync"),
        [gitsources],
        workers=rc.workers,
        resync=rc.resync,
        metrics=metrics,
    )
    elector = LeaderElector(
        etcd,
        "reconcilers",
        identity,
        ttl=rc.leader_ttl,
        on_change=lambda leading: metrics.leader.labels("reconcilers").set(int(leading)),
    )
    conductor = Conductor(etcd, cfg.sql_url())
    return Manager(
        [instances, cluster, *catalog.informers, gitsources],
        [scheduler, gitsync],
        elector=elector,
        streams=[conductor.run],
    )


async def run_reconcilers(cfg: Config, etcd: EtcdClient, identity: str, metrics: Metrics) -> None:
    """Runs the central reconcilers until cancelled."""
    try:
        await build(cfg, etcd, identity, metrics).run()
    finally:
        await etcd.close()

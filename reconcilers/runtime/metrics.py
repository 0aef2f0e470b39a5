"""Prometheus metrics of the reconciler runtime.

Owns: one ``CollectorRegistry`` per process (passed in, never the global
default) with queue depth, reconcile latency, errors and requeues per
controller, and whether this replica leads.

Must never: be a module-level singleton.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.depth = Gauge("desired_workqueue_depth", "Keys waiting", ["controller"], registry=r)
        self.latency = Histogram(
            "desired_reconcile_seconds",
            "Time per reconcile",
            ["controller"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "desired_reconcile_errors_total",
            "Failed reconciles",
            ["controller", "reason"],
            registry=r,
        )
        self.requeues = Counter(
            "desired_reconcile_requeues_total",
            "Requeues asked by reconcilers",
            ["controller"],
            registry=r,
        )
        self.leader = Gauge(
            "desired_leader", "1 while this replica leads", ["election"], registry=r
        )

    def text(self) -> bytes:
        return generate_latest(self.registry)

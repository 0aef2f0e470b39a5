"""What the text rule costs a server create: the checks of every string, timed in process.

A ``POST /servers`` passes three checks of its strings (``schemas.text``):
the request body's (``schemas.requests.check_request``), the Instance's
(``schemas.validate``) and the spec key's bytes (``state.store.spec_bytes``).
This times each on a create with a name, metadata, user data and a
description, in ASCII and in other scripts, and prints the cost beside the
time a create takes at ``--creates-per-second`` (the throughput
``benchmarks.compute_api`` measures), as a share of it.

    .venv/bin/python -m benchmarks.text_rule --creates-per-second 750
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from schemas.requests import check_request
from schemas.text import unstorable
from state.store import dumps, spec_bytes

OBJECT_WALK = "whole object's strings (unstorable)"


OBJECT_WALK = "whole object's strings (unstorable)"
SPEC_BYTES = "spec key's bytes (spec_bytes)"


def _body(name: str) -> dict[str, Any]:
    return {
        "server": {
            "name": name,
            "imageRef": "5d3b5ba8-6f31-4d6b-9e2a-0e3a2b7c1f10",
            "flavorRef": "1",
            "networks": [{"uuid": "7a1c1b3e-4d5f-4e6a-8b9c-0d1e2f3a4b5c"}],
            "metadata": {f"key-{i}": f"{name} value {i}" for i in range(8)},
            "user_data": "IyEvYmluL3NoCmVjaG8gaGVsbG8K",
            "description": f"{name}: a server of the benchmark",
            "security_groups": [{"name": "default"}],
        }
    }


def _instance(body: dict[str, Any]) -> dict[str, Any]:
    server = body["server"]
    return {
        "apiVersion": "desired/v1",
        "kind": "Instance",
        "metadata": {
            "name": "web-1-3f2a9c1e",
            "project": "bench",
            "uid": "0d2f8f0c-6b8e-4c1e-9d0a-3b1c2d4e5f60",
            "generation": 1,
            "creationTimestamp": "2026-12-04T17:00:00Z",
            "annotations": {"desired.dev/reservation": "r-1a2b3c4d", "desired.dev/user": "u1"},
            "finalizers": ["scheduler", "hostd"],
        },
        "spec": {
            "flavor": "m1.tiny",
            "image": "tiny",
            "displayName": server["name"],
            "metadata": server["metadata"],
            "userData": server["user_data"],
            "description": server["description"],
            "networks": [{"network": "default"}],
            "securityGroups": ["default"],
            "powerState": "running",
        },
    }


def _per_call(fn: Callable[[], Any], seconds: float = 1.0) -> float:
    """Microseconds one call of ``fn`` takes (the best of three runs of ``seconds``)."""
    best = float("inf")
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            for _ in range(100):
                fn()
            n += 100
        best = min(best, elapsed / n * 1e6)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--creates-per-second", type=float, default=750.0)
    args = p.parse_args()
    budget = 1e6 / args.creates_per_second
    print(f"a create at {args.creates_per_second:.0f}/s takes {budget:.0f} µs of the API server")
    for label, name in (("ASCII", "web server 1"), ("Cyrillic and emoji", "веб-сервер 😀 1")):
        body = _body(name)
        obj = _instance(body)
        costs = {
            "request body (check_request)": _per_call(
                lambda body=body: check_request("servers.create", (2, 47), body)
            ),
            OBJECT_WALK: _per_call(lambda obj=obj: unstorable(obj)),
            SPEC_BYTES: _per_call(lambda obj=obj: spec_bytes(obj)),
        }
        walk = _per_call(lambda body=body: unstorable(body))
        plain = _per_call(lambda obj=obj: dumps(obj))  # a spec write's cost before the rule
        guard = costs[SPEC_BYTES] - plain
        rule = walk + costs[OBJECT_WALK] + guard
        print(f"{label}:")
        for what, us in costs.items():
            print(f"  {what}: {us:.1f} µs")
        print(
            f"  the text rule's own cost: body walk {walk:.1f} + object walk"
            f" {costs[OBJECT_WALK]:.1f} + spec bytes beyond plain dumps {guard:.1f}"
            f" = {rule:.1f} µs, {rule / budget * 100:.1f} % of a create"
        )


if __name__ == "__main__":
    main()

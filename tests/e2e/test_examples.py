"""The shipped examples applied onto ``desired up --simulate``: they change none of the demo's
objects, and every example instance becomes ACTIVE and Ready."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import schemas
from tests.e2e.up_process import ROOT, Up, ctl

EXAMPLES = ROOT / "fixtures/specs/examples.yaml"


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    # the metadata listener on a free port: other ups on this machine may hold the default
    u = Up(tmp_path / "desired", "--simulate", "1", env={"DESIRED_METADATA_PORT": "0"})
    try:
        yield u
    finally:
        if u.proc.poll() is None:
            u.stop()


def everything(up: Up) -> dict[tuple[str, str | None, str], dict[str, Any]]:
    """Every object of every kind: what its writers set (resourceVersion, spec, labels,
    annotations, finalizers), by (kind, project, name)."""
    out = {}
    for kind in schemas.KINDS:
        r = ctl(up, "get", kind.lower() + "s", "-A", "-o", "json")
        assert r.returncode == 0, r.stderr
        for obj in json.loads(r.stdout)["items"]:
            meta = obj["metadata"]
            out[(kind, meta.get("project"), meta["name"])] = {
                "resourceVersion": meta["resourceVersion"],
                "spec": obj.get("spec"),
                **{k: meta.get(k) for k in ("labels", "annotations", "finalizers")},
            }
    return out


def test_examples_leave_the_demo_alone_and_their_instances_run(up: Up) -> None:
    if not any("demo             created" in line for line in up.output):
        pytest.skip("desired up made no demo here: " + "".join(up.output[-5:]))
    r = ctl(
        up, "wait", "instance", "tiny-1", "-p", "demo", "--for=condition=Ready", "--timeout=120s"
    )
    assert r.returncode == 0, r.stderr
    before = everything(up)
    demo = {
        ("Flavor", None, "m1.tiny"),
        ("Flavor", None, "m1.small"),
        ("Image", None, "tiny"),
        ("Image", None, "tiny-kernel"),
        ("Image", None, "tiny-ramdisk"),
        ("Network", "demo", "default"),
        ("Instance", "demo", "tiny-1"),
        ("Project", None, "demo"),
        ("User", None, "demo"),
        ("User", None, "admin"),
    }
    assert demo <= set(before)

    r = ctl(up, "apply", "-f", str(EXAMPLES))
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    examples = [d for d in yaml.safe_load_all(EXAMPLES.read_text()) if d]
    assert r.stdout.splitlines() == [
        f"{d['kind'].lower()}/{d['metadata']['name']} created" for d in examples
    ]

    instances = [d["metadata"] for d in examples if d["kind"] == "Instance"]
    assert instances
    for meta in instances:
        r = ctl(
            up,
            "wait",
            "instance",
            meta["name"],
            "-p",
            meta["project"],
            "--for=condition=Ready",
            "--timeout=120s",
        )
        assert r.returncode == 0, r.stderr
        r = ctl(up, "get", "instance", meta["name"], "-p", meta["project"], "-o", "json")
        assert json.loads(r.stdout)["status"]["novaStatus"] == "ACTIVE"

    after = everything(up)
    changed = {k: (v, after.get(k)) for k, v in before.items() if after.get(k) != v}
    assert changed == {}

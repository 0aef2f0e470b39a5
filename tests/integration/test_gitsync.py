"""GitOps: a GitSource's repository applied, pruned and kept applied, with real git and etcd."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reconcilers.gitsync import LABEL, GitSync
from reconcilers.runtime.controller import Requeue
from state.envelope import Ref, condition
from state.errors import NotFound
from state.store import Store

FLAVORS = """
apiVersion: desired/v1
kind: Flavor
metadata: {name: m1.tiny}
spec: {vcpus: 1, ramMiB: 512, diskGiB: 1}
---
apiVersion: desired/v1
kind: Flavor
metadata: {name: m1.small}
spec: {vcpus: 2, ramMiB: 2048, diskGiB: 20}
"""

KEYPAIR = """
apiVersion: desired/v1
kind: KeyPair
metadata: {name: ops}
spec: {publicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOps ops@desired"}
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "specs"
    (r / "cloud").mkdir(parents=True)
    git(r, "init", "-q", "-b", "main")
    git(r, "config", "user.email", "t@desired")
    git(r, "config", "user.name", "t")
    (r / "cloud/flavors.yaml").write_text(FLAVORS)
    (r / "cloud/keys.yaml").write_text(KEYPAIR)
    (r / "README.md").write_text("not a spec\n")
    commit(r, "initial")
    return r


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


async def source(store: Store, repo: Path, **spec: object) -> Ref:
    obj = {
        "kind": "GitSource",
        "metadata": {"name": "platform", "project": "ops"},
        "spec": {
            "repository": str(repo),
            "branch": "main",
            "path": "cloud",
            "intervalSeconds": 30,
            **spec,
        },
    }
    await store.create(obj)
    return Ref("GitSource", "ops", "platform")


async def test_applies_records_prunes_and_repairs_drift(
    store: Store, repo: Path, tmp_path: Path
) -> None:
    key = await source(store, repo)
    sync = GitSync(store, tmp_path / "work")
    assert await sync.reconcile(key) == Requeue(after=30)
    status = (await store.get(key))["status"]
    head = git(repo, "rev-parse", "HEAD")
    assert status["commit"] == head
    assert condition({"status": status}, "Ready")["status"] == "True"  # type: ignore[index]
    assert sorted((r["kind"], r["name"], r["outcome"]) for r in status["results"]) == [
        ("Flavor", "m1.small", "created"),
        ("Flavor", "m1.tiny", "created"),
        ("KeyPair", "ops", "created"),
    ]
    keypair = await store.get(Ref("KeyPair", "ops", "ops"))  # project taken from the GitSource
    uid = (await store.get(key))["metadata"]["uid"]
    assert keypair["metadata"]["labels"][LABEL] == uid

    # someone changes an object behind git's back: the next sync puts it back and says so
    tiny = await store.get(Ref("Flavor", None, "m1.tiny"))
    tiny["spec"]["vcpus"] = 64
    await store.update(tiny)
    await sync.reconcile(key)
    assert (await store.get(Ref("Flavor", None, "m1.tiny")))["spec"]["vcpus"] == 1
    status = (await store.get(key))["status"]
    assert status["drift"] == ["Flavor/m1.tiny"]
    events = await store.events_for(Ref("Flavor", None, "m1.tiny"))
    assert [e["reason"] for e in events] == ["DriftCorrected"]

    # a commit that removes an object prunes it; unchanged objects stay unchanged
    (repo / "cloud/flavors.yaml").write_text(FLAVORS.split("---")[0])
    new_head = commit(repo, "drop m1.small")
    await sync.reconcile(key)
    with pytest.raises(NotFound):
        await store.get(Ref("Flavor", None, "m1.small"))
    status = (await store.get(key))["status"]
    assert status["commit"] == new_head and status["pruned"] == ["Flavor/m1.small"]
    assert {r["outcome"] for r in status["results"]} == {"unchanged"}
    assert status["drift"] == []


async def test_objects_not_from_the_repository_are_never_pruned(
    store: Store, repo: Path, tmp_path: Path
) -> None:
    await store.create(
        {
            "kind": "Flavor",
            "metadata": {"name": "by-hand"},
            "spec": {"vcpus": 1, "ramMiB": 1, "diskGiB": 0},
        }
    )
    key = await source(store, repo)
    await GitSync(store, tmp_path / "work").reconcile(key)
    assert await store.get(Ref("Flavor", None, "by-hand"))


async def test_broken_commit_changes_nothing(store: Store, repo: Path, tmp_path: Path) -> None:
    key = await source(store, repo)
    sync = GitSync(store, tmp_path / "work")
    await sync.reconcile(key)
    good = (await store.get(key))["status"]["commit"]
    (repo / "cloud/flavors.yaml").write_text("kind: Flavor\nmetadata: {name: x\n")  # broken YAML
    commit(repo, "broken")
    await sync.reconcile(key)
    source_obj = await store.get(key)
    ready = condition(source_obj, "Ready")
    assert ready is not None and ready["status"] == "False" and ready["reason"] == "ParseError"
    assert "flavors.yaml:" in ready["message"]
    assert source_obj["status"]["commit"] == good
    # nothing was pruned although flavors.yaml no longer parses
    assert await store.get(Ref("Flavor", None, "m1.small"))


async def test_a_commit_with_one_bad_document_applies_none(
    store: Store, repo: Path, tmp_path: Path
) -> None:
    """A key given twice or a wrong apiVersion in one document: no document of the commit
    is applied (not even the good ones), nothing is pruned, and the condition says where."""
    key = await source(store, repo)
    sync = GitSync(store, tmp_path / "work")
    await sync.reconcile(key)
    good = (await store.get(key))["status"]["commit"]
    small = await store.get(Ref("Flavor", None, "m1.small"))
    for broken, reason, message in (
        (
            "kind: Flavor\nmetadata: {name: m1.small}\nspec:\n  vcpus: 1\n  vcpus: 8\n"
            "  ramMiB: 512\n  diskGiB: 1\n",
            "ParseError",
            "flavors.yaml: document 1 (line 5): duplicate key 'vcpus' (first given on line 4)",
        ),
        (
            FLAVORS.replace("vcpus: 2", "vcpus: 4")
            + "---\napiVersion: v2\nkind: Flavor\nmetadata: {name: m1.third}\n",
            "Invalid",
            "flavors.yaml: document 3 (line 12): unknown apiVersion 'v2'",
        ),
    ):
        (repo / "cloud/flavors.yaml").write_text(broken)
        commit(repo, "broken")
        await sync.reconcile(key)
        source_obj = await store.get(key)
        ready = condition(source_obj, "Ready")
        assert ready is not None and ready["status"] == "False", ready
        assert ready["reason"] == reason and message in ready["message"], ready
        assert source_obj["status"]["commit"] == good
        # the good documents were not applied either, nor anything pruned
        assert await store.get(Ref("Flavor", None, "m1.small")) == small
        assert await store.get_or_none(Ref("Flavor", None, "m1.third")) is None
        assert await store.get(Ref("KeyPair", "ops", "ops"))


async def test_a_commit_the_stored_objects_refuse_applies_none(
    store: Store, repo: Path, tmp_path: Path
) -> None:
    """A network overlapping one already stored: the commit's other documents wait too."""
    await store.create(
        {
            "kind": "Network",
            "metadata": {"name": "old", "project": "ops"},
            "spec": {"cidr": "10.9.0.0/24"},
        }
    )
    (repo / "cloud/net.yaml").write_text(
        "kind: Network\nmetadata: {name: new}\nspec: {cidr: 10.9.0.128/25}\n"
    )
    commit(repo, "overlapping network")
    key = await source(store, repo)
    await GitSync(store, tmp_path / "work").reconcile(key)
    ready = condition(await store.get(key), "Ready")
    assert ready is not None and ready["reason"] == "Refused", ready
    assert ready["message"].startswith("net.yaml: document 1 (line 3): spec.cidr: "), ready
    assert await store.get_or_none(Ref("Flavor", None, "m1.small")) is None
    assert await store.get_or_none(Ref("Network", "ops", "new")) is None


async def test_unreachable_repository_is_reported(store: Store, tmp_path: Path) -> None:
    key = await source(store, tmp_path / "nowhere")
    result = await GitSync(store, tmp_path / "work").reconcile(key)
    assert result == Requeue(after=30)
    ready = condition(await store.get(key), "Ready")
    assert ready is not None and ready["reason"] == "FetchFailed"

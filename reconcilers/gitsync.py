"""The gitsync reconciler: GitOps from spec repositories.

Inputs: GitSource objects (``spec.repository``, ``branch``, ``path``,
``intervalSeconds``, ``prune``); the repository, fetched with the git CLI
into ``<workdir>/<uid>``.

Outputs: every object in the repository's path applied with server-side
apply and labelled ``desired/gitsource=<GitSource uid>``; with ``prune``,
objects carrying that label that left the repository deleted; the
GitSource's status: ``commit``, ``lastSyncTime``, per-object ``results``,
``drift`` (objects changed behind its back and put back at an unchanged
commit), ``observedGeneration`` and a ``Ready`` condition; events for drift
and failures.

Invariants: a repository that cannot be fetched or parsed, or with any
document that breaks its schema (a key given twice, an unknown kind or
apiVersion, a bad field; ``schemas.documents``) or that the objects already
stored refuse (``state.admission``), changes nothing: no
partial apply of a broken commit, no pruning; the condition names each
document by file, number and line; every step is safe to
repeat; the reconcile is re-run every ``intervalSeconds``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import schemas
from reconcilers.runtime.controller import Requeue
from schemas import documents
from schemas.documents import Document, Problem
from state import selectors
from state.admission import admit
from state.apply import CONFIGURED, apply, prune_candidates
from state.envelope import Obj, Ref, now, ref, set_condition
from state.errors import DesiredError, Invalid
from state.store import Store
from state.validation import validate

LABEL = "desired/gitsource"
_GIT_TIMEOUT = 120.0
_SUFFIXES = (".yaml", ".yml", ".json")


class SyncError(DesiredError):
    """The repository could not be fetched or read; ``reason`` says which."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


async def git(*args: str, cwd: Path | None = None) -> str:
    """Runs ``git`` without a shell or a terminal prompt; raises SyncError on failure."""
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true", LC_ALL="C")
    proc = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), _GIT_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise SyncError(
            "FetchFailed", f"git {args[0]} timed out after {_GIT_TIMEOUT:.0f}s"
        ) from None
    if proc.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        raise SyncError("FetchFailed", f"git {args[0]}: {lines[-1] if lines else 'failed'}")
    return out.decode().strip()


async def fetch(repository: str, branch: str, checkout: Path) -> str:
    """Brings ``checkout`` to the tip of ``branch``; returns the commit id."""
    if not (checkout / ".git").is_dir():
        checkout.parent.mkdir(parents=True, exist_ok=True)
        tmp = checkout.with_name(checkout.name + ".tmp")
        if tmp.exists():  # left by an interrupted clone
            shutil.rmtree(tmp)
        await git(
            "clone", "--quiet", "--depth", "1", "--branch", branch, "--", repository, str(tmp)
        )
        tmp.rename(checkout)
    else:
        await git("fetch", "--quiet", "--depth", "1", "origin", branch, cwd=checkout)
        await git("reset", "--quiet", "--hard", "FETCH_HEAD", cwd=checkout)
        await git("clean", "--quiet", "-fdx", cwd=checkout)
    return await git("rev-parse", "HEAD", cwd=checkout)


def load_documents(root: Path) -> list[tuple[str, Document]]:
    """Every document under ``root``: (``file`` or ``file#N``, document); raises SyncError
    naming every document that cannot be read (YAML, a key given twice)."""
    if not root.exists():
        raise SyncError("PathNotFound", f"path {root.name!r} does not exist in the repository")
    files = (
        [root]
        if root.is_file()
        else sorted(p for p in root.rglob("*") if p.suffix in _SUFFIXES and ".git" not in p.parts)
    )
    docs: list[tuple[str, Document]] = []
    problems: list[Problem] = []
    for f in files:
        rel = f.relative_to(root.parent if root.is_file() else root)
        text = f.read_text()
        read, unreadable = documents.read(text, str(rel))
        problems += unreadable
        several = len(read) > 1 or any(doc.number > 1 for doc in read)
        for doc in read:
            docs.append((f"{rel}#{doc.number}" if several else str(rel), doc))
    if problems:
        raise SyncError("ParseError", _summary(problems))
    return docs


def check_documents(docs: list[tuple[str, Document]]) -> None:
    """Raises SyncError (``Invalid``) naming every document that breaks its schema (kind,
    apiVersion, fields); run on all before any is applied."""
    problems = [p for _, doc in docs for p in documents.check(doc)]
    if problems:
        raise SyncError("Invalid", _summary(problems))


def _summary(problems: list[Problem], shown: int = 5) -> str:
    lines = [str(p) for p in problems[:shown]]
    if len(problems) > shown:
        lines.append(f"and {len(problems) - shown} more")
    return "; ".join(lines)


@dataclass
class GitSync:
    """Reconciles GitSource objects; see the module docstring."""

    store: Store
    workdir: Path
    name: str = "gitsync"

    async def reconcile(self, key: Ref) -> Requeue | None:
        source = await self.store.get_or_none(key)
        if source is None or source["metadata"].get("deletionTimestamp"):
            return None
        spec = source["spec"]
        interval = float(spec.get("intervalSeconds", 60))
        uid = source["metadata"]["uid"]
        try:
            commit = await fetch(spec["repository"], spec.get("branch", "main"), self.workdir / uid)
            docs = load_documents((self.workdir / uid / spec.get("path", ".")).resolve())
            for _, doc in docs:
                self._own(source, doc.obj)
            check_documents(docs)  # all or nothing: one bad document and none is applied
            await self._admit_all(docs)
        except SyncError as exc:
            await self._fail(source, exc.reason, exc.message)
            return Requeue(after=interval)
        results, drift = await self._apply_all(source, docs, commit)
        pruned = await self._prune(source, docs) if spec.get("prune", True) else []
        failed = [r for r in results if r.get("error")]
        await self._record(source, commit, results, drift, pruned, failed)
        return Requeue(after=interval)

    async def _admit_all(self, docs: list[tuple[str, Document]]) -> None:
        """Raises SyncError (``Refused``) naming every document the objects already stored
        refuse (``state.admission``: a network overlapping another), before any is applied."""
        problems = []
        for _, doc in docs:
            try:
                await admit(self.store, doc.obj)
            except Invalid as exc:
                problems += [doc.problem(f"{e.path}: {e.message}", e.path) for e in exc.errors]
                if not exc.errors:
                    problems.append(doc.problem(exc.message))
            except DesiredError as exc:
                problems.append(doc.problem(exc.message))
        if problems:
            raise SyncError("Refused", _summary(problems))

    async def _apply_all(
        self, source: Obj, docs: list[tuple[str, Document]], commit: str
    ) -> tuple[list[dict[str, Any]], list[str]]:
        same_commit = source.get("status", {}).get("commit") == commit
        results: list[dict[str, Any]] = []
        drift: list[str] = []
        for where, document in docs:
            doc = document.obj
            meta = doc["metadata"]
            entry: dict[str, Any] = {
                "source": where,
                "kind": doc.get("kind"),
                "name": meta.get("name"),
            }
            if meta.get("project"):
                entry["project"] = meta["project"]
            try:
                await admit(self.store, doc)
                result = await apply(self.store, doc, validate=validate)
            except DesiredError as exc:
                entry["error"] = exc.message
                results.append(entry)
                continue
            entry["outcome"] = result.outcome
            results.append(entry)
            if same_commit and result.outcome == CONFIGURED:
                drift.append(str(ref(result.object)))
                await self.store.record_event(
                    result.object,
                    "Warning",
                    "DriftCorrected",
                    f"changed outside GitSource {source['metadata']['name']}; put back to commit {commit[:12]}",
                )
        return results, drift

    @staticmethod
    def _own(source: Obj, doc: Any) -> None:
        """Labels ``doc`` as the source's and gives it the source's project when it is
        project-scoped and names none (a document that is no object is left to the check)."""
        if not isinstance(doc, dict):
            return
        meta = doc.setdefault("metadata", {})
        if not isinstance(meta, dict):
            return
        labels = meta.setdefault("labels", {})
        if isinstance(labels, dict):
            labels[LABEL] = source["metadata"]["uid"]
        project = source["metadata"].get("project")
        if project and schemas.SCOPES.get(str(doc.get("kind"))) == "project":
            meta.setdefault("project", project)

    async def _prune(self, source: Obj, docs: list[tuple[str, Document]]) -> list[str]:
        selector = selectors.parse(f"{LABEL}={source['metadata']['uid']}")
        wanted = {ref(doc.obj) for _, doc in docs}
        live: list[Obj] = []
        for kind in schemas.KINDS:
            live += (await self.store.list(kind, selector=selector)).items
        pruned = []
        for r in prune_candidates(live, wanted):
            await self.store.delete(r)
            pruned.append(str(r))
        return pruned

    async def _fail(self, source: Obj, reason: str, message: str) -> None:
        generation = source["metadata"]["generation"]

        def mutate(status: dict[str, Any]) -> bool:
            changed = set_condition(status, "Ready", False, reason, message)
            if status.get("observedGeneration") != generation:
                status["observedGeneration"] = generation
                changed = True
            return changed

        updated = await self.store.patch_status(ref(source), mutate, uid=source["metadata"]["uid"])
        if updated is not None:
            await self.store.record_event(source, "Warning", reason, message)

    async def _record(
        self,
        source: Obj,
        commit: str,
        results: list[dict[str, Any]],
        drift: list[str],
        pruned: list[str],
        failed: list[dict[str, Any]],
    ) -> None:
        generation = source["metadata"]["generation"]
        if failed:
            reason, message = "ApplyFailed", f"{len(failed)} of {len(results)} objects failed"
        else:
            reason, message = "Synced", f"{len(results)} objects applied from {commit[:12]}"

        def mutate(status: dict[str, Any]) -> bool:
            status.update(
                commit=commit,
                lastSyncTime=now(),
                results=results,
                drift=drift,
                pruned=pruned,
                observedGeneration=generation,
            )
            set_condition(status, "Ready", not failed, reason, message)
            return True

        await self.store.patch_status(ref(source), mutate, uid=source["metadata"]["uid"])

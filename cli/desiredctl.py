"""desiredctl: the command line of desired's declarative API.

Owns: the commands (apply, diff, get, describe, delete, watch, wait,
explain, version), what they print, and their exit codes: 0 success, 1 the
operation failed (invalid object, not found, conflict, unreachable server,
timeout; ``diff``: differences found), 2 usage or configuration errors.
Results go to stdout, one line per error to stderr.

Must never: print a traceback for an expected error.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import io
import json
import re
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import yaml

from cli import ctl_clouds, ctl_config, ctl_files
from cli.ctl_client import ApiError, Client, Kind
from cli.ctl_output import age, kind_cells, kind_columns, ready_column, table

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
LAST_APPLIED = "desired/last-applied"


def err(message: str) -> None:
    print(f"desiredctl: {message}", file=sys.stderr)


def ref_text(obj: dict[str, Any]) -> str:
    return f"{obj['kind'].lower()}/{obj['metadata']['name']}"


def api_error_lines(where: str, exc: ApiError) -> list[str]:
    if exc.causes:
        return [f"{where}: {c.get('field')}: {c.get('message')}" for c in exc.causes]
    return [f"{where}: {exc}"]


def doc_error_lines(doc: ctl_files.Document, exc: ApiError) -> list[str]:
    """The server's refusal of a document: one line each, on the line of the field."""
    name = ref_text(doc.obj)
    if exc.causes:
        return [
            str(doc.problem(f"{name}: {c.get('field')}: {c.get('message')}", c.get("field") or ""))
            for c in exc.causes
        ]
    return [str(doc.problem(f"{name}: {exc}"))]


def _preparer(kinds: dict[str, Kind], project: str | None) -> Callable[[ctl_files.Document], None]:
    """What spells a document's kind as the server does (any case, singular or plural) and
    gives a project-scoped object ``project`` when it names none."""
    by_name = {n: k for k in kinds.values() for n in (k.kind.lower(), k.plural)}

    def prepare(doc: ctl_files.Document) -> None:
        name = doc.obj.get("kind")
        kind = by_name.get(name.lower()) if isinstance(name, str) else None
        if kind is None:
            return  # the check says it is unknown, with the file and line
        doc.obj["kind"] = kind.kind
        meta = doc.obj.get("metadata")
        if project and kind.scope == "project" and isinstance(meta, dict):
            meta.setdefault("project", project)

    return prepare


async def _checked(
    client: Client, filenames: list[str], project: str | None, schema: bool = True
) -> list[ctl_files.Document]:
    """Every document of the files, all checked before any is sent: YAML, duplicate keys,
    kind, apiVersion and (with ``schema``) the kind's schema. Raises SpecFileError with
    every problem found."""
    loaded = ctl_files.load(filenames)
    try:
        kinds = await client.kinds()
    except ApiError:
        if loaded.problems:  # what can be said without the server comes first
            raise ctl_files.SpecFileError([str(p) for p in loaded.problems]) from None
        raise
    prepare = _preparer(kinds, project)
    if schema:
        ctl_files.check(loaded, prepare)
        return loaded.docs
    problems = [str(p) for p in loaded.problems]
    for doc in loaded.docs:
        if not isinstance(doc.obj, dict):
            problems.append(str(doc.problem("expected a mapping (an object)")))
            continue
        prepare(doc)
        meta = doc.obj.get("metadata")
        if doc.obj.get("kind") not in kinds:
            problems.append(str(doc.problem(f"unknown kind {doc.obj.get('kind')!r}", "kind")))
        elif not isinstance(meta, dict) or not meta.get("name"):
            problems.append(str(doc.problem("has no metadata.name", "metadata")))
    if problems:
        raise ctl_files.SpecFileError(problems)
    return loaded.docs


async def cmd_apply(client: Client, args: argparse.Namespace) -> int:
    """Applies every document or none: each is checked here first (``_checked``) and then by
    the server (a dry run of all); only when none is refused is any written."""
    docs = await _checked(client, args.filename, args.project)
    checks = await asyncio.gather(
        *(client.apply(d.obj, True) for d in docs), return_exceptions=True
    )
    refused = 0
    for doc, res in zip(docs, checks, strict=True):
        if isinstance(res, ApiError):
            refused += 1
            for line in doc_error_lines(doc, res):
                err(line)
        elif isinstance(res, BaseException):
            raise res
    if refused:
        err(f"nothing applied: the server refused {refused} of {len(docs)} objects")
        return EXIT_FAILED
    suffix = " (dry run)" if args.dry_run else ""
    results = checks
    if not args.dry_run:
        results = await asyncio.gather(
            *(client.apply(d.obj, False) for d in docs), return_exceptions=True
        )
    failed = False
    for doc, res in zip(docs, results, strict=True):
        if isinstance(res, ApiError):
            failed = True  # changed on the server since its check
            for line in doc_error_lines(doc, res):
                err(line)
        elif isinstance(res, BaseException):
            raise res
        else:
            print(f"{ref_text(doc.obj)} {res['outcome']}{suffix}")
    if args.prune and not failed:
        failed = not await _prune(client, docs, args.selector, args.dry_run, args.project)
    return EXIT_FAILED if failed else EXIT_OK


async def _prune(
    client: Client,
    docs: list[ctl_files.Document],
    selector: str,
    dry_run: bool,
    project: str | None,
) -> bool:
    """Deletes what an earlier apply made, the selector matches and the files no longer
    hold, among what the caller may list: ``project``'s objects (every project's when
    None) and the cluster's."""
    applied = {
        (d.obj["kind"], d.obj["metadata"].get("project") or None, d.obj["metadata"]["name"])
        for d in docs
    }
    ok = True
    for kind in (await client.kinds()).values():
        try:
            items, _ = await client.list(kind, project, selector)
        except ApiError as exc:
            if exc.status == 403:
                continue  # not the caller's to read, so none of it the caller's to prune
            raise
        for obj in items:
            meta = obj["metadata"]
            key = (kind.kind, meta.get("project") or None, meta["name"])
            if key in applied or LAST_APPLIED not in (meta.get("annotations") or {}):
                continue
            if meta.get("deletionTimestamp"):
                continue
            try:
                if not dry_run:
                    await client.delete(kind, meta.get("project"), meta["name"])
                print(f"{ref_text(obj)} pruned{' (dry run)' if dry_run else ''}")
            except ApiError as exc:
                ok = False
                err(f"{ref_text(obj)}: {exc}")
    return ok


def _comparable(obj: dict[str, Any]) -> str:
    meta = {
        k: v
        for k, v in obj.get("metadata", {}).items()
        if k in ("labels", "annotations", "finalizers")
    }
    if "annotations" in meta:
        meta["annotations"] = {k: v for k, v in meta["annotations"].items() if k != LAST_APPLIED}
        if not meta["annotations"]:
            del meta["annotations"]
    return yaml.safe_dump({"metadata": meta, "spec": obj.get("spec", {})}, sort_keys=True)


async def cmd_diff(client: Client, args: argparse.Namespace) -> int:
    docs = await _checked(client, args.filename, args.project)
    differs = False
    for doc in docs:
        kind = await client.kind(doc.obj["kind"])
        meta = doc.obj["metadata"]
        try:
            live = await client.get(kind, meta.get("project"), meta["name"])
            before = _comparable(live)
        except ApiError as exc:
            if exc.status != 404:
                raise
            before = ""
        after = _comparable((await client.apply(doc.obj, True))["object"])
        if before != after:
            differs = True
            name = ref_text(doc.obj)
            sys.stdout.writelines(
                difflib.unified_diff(
                    before.splitlines(True),
                    after.splitlines(True),
                    f"live/{name}",
                    f"applied/{name}",
                )
            )
    return EXIT_FAILED if differs else EXIT_OK


async def cmd_get(client: Client, args: argparse.Namespace) -> int:
    kind = await client.kind(args.kind)
    project = None if args.all_projects else args.project
    if args.name:
        items = [await client.get(kind, project, args.name)]
    else:
        items, _ = await client.list(kind, project, args.selector)
    output(items, args.output, kind, listing=not args.name, all_projects=args.all_projects)
    return EXIT_OK


def output(
    items: list[dict[str, Any]], fmt: str | None, kind: Kind, *, listing: bool, all_projects: bool
) -> None:
    if fmt == "json":
        data: Any = {"items": items} if listing else items[0]
        print(json.dumps(data, indent=2, sort_keys=True))
    elif fmt == "yaml":
        print(
            yaml.safe_dump_all(items, sort_keys=False)
            if listing
            else yaml.safe_dump(items[0], sort_keys=False),
            end="",
        )
    elif fmt == "name":
        for o in items:
            print(ref_text(o))
    else:
        wide = fmt == "wide"
        headers = (
            ["NAME"]
            + (["PROJECT"] if all_projects or (kind.scope != "cluster" and wide) else [])
            + ["READY", "AGE"]
        )
        extra = kind_columns(kind.kind, wide)
        headers += [h for h, _ in extra]
        if wide:
            headers += ["GENERATION", "OBSERVED", "RESOURCEVERSION"]
        rows = []
        for o in items:
            m = o["metadata"]
            row = [m["name"]]
            if "PROJECT" in headers:
                row.append(m.get("project") or "-")
            row += [ready_column(o), age(m.get("creationTimestamp")), *kind_cells(o, extra)]
            if wide:
                row += [
                    str(m.get("generation", "")),
                    str(o.get("status", {}).get("observedGeneration", "-")),
                    m.get("resourceVersion", ""),
                ]
            rows.append(row)
        print(table(headers, rows), end="")


async def cmd_describe(client: Client, args: argparse.Namespace) -> int:
    kind = await client.kind(args.kind)
    obj = await client.get(kind, args.project, args.name)
    meta = {k: v for k, v in obj["metadata"].items() if k != "annotations"}
    annotations = {
        k: v for k, v in (obj["metadata"].get("annotations") or {}).items() if k != LAST_APPLIED
    }
    if annotations:
        meta["annotations"] = annotations
    print(
        yaml.safe_dump(
            {
                "kind": obj["kind"],
                "metadata": meta,
                "spec": obj.get("spec"),
                "status": obj.get("status"),
            },
            sort_keys=False,
        ),
        end="",
    )
    events = await client.events(kind, args.project, args.name)
    print("events:" if events else "events: <none>")
    for ev in events:
        print(f"  {ev['timestamp']}  {ev['type']:8s} {ev['reason']:20s} {ev['message']}")
    return EXIT_OK


async def cmd_delete(client: Client, args: argparse.Namespace) -> int:
    targets: list[tuple[Kind, str | None, str]] = []
    if args.filename:
        docs = await _checked(client, args.filename, args.project, schema=False)
        for d in docs:
            targets.append(
                (
                    await client.kind(d.obj["kind"]),
                    d.obj["metadata"].get("project"),
                    d.obj["metadata"]["name"],
                )
            )
    else:
        if not args.kind or not args.names:
            err("delete needs KIND NAME... or -f FILE")
            return EXIT_USAGE
        kind = await client.kind(args.kind)
        targets = [(kind, args.project, n) for n in args.names]
    failed = False
    for kind, project, name in targets:
        try:
            res = await client.delete(kind, project, name)
        except ApiError as exc:
            failed = True
            err(f"{kind.kind.lower()}/{name}: {exc}")
            continue
        state = "deleting" if res.get("kind") != "Status" else "deleted"
        if args.wait and state == "deleting":
            if not await _wait_gone(client, kind, project, name, args.timeout):
                err(f"timed out waiting for {kind.kind.lower()}/{name} to be deleted")
                failed = True
                continue
            state = "deleted"
        print(f"{kind.kind.lower()}/{name} {state}")
    return EXIT_FAILED if failed else EXIT_OK


async def _wait_gone(
    client: Client, kind: Kind, project: str | None, name: str, timeout: float
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await client.get(kind, project, name)
        except ApiError as exc:
            if exc.status == 404:
                return True
            raise
        await asyncio.sleep(0.2)
    return False


async def follow(
    client: Client, kind: Kind, project: str | None, selector: str | None, revision: str | None
) -> Any:
    """Yields watch events forever, resuming after breaks and re-listing after 410."""
    seen: dict[str, str] = {}  # uid -> resourceVersion already shown
    if revision is None:
        items, revision = await client.list(kind, project, selector)
        for obj in items:
            seen[obj["metadata"]["uid"]] = obj["metadata"]["resourceVersion"]
            yield {"type": "ADDED", "object": obj}
    while True:
        try:
            async for ev in client.watch(kind, project, selector, revision):
                obj = ev["object"]
                revision = obj["metadata"]["resourceVersion"]
                if ev["type"] == "BOOKMARK":
                    continue
                uid = obj["metadata"]["uid"]
                if ev["type"] == "DELETED":
                    seen.pop(uid, None)
                elif seen.get(uid) == revision:
                    continue
                else:
                    seen[uid] = revision
                yield ev
        except ApiError as exc:
            if exc.status != 410:
                if exc.status not in (502, 503, 504):
                    raise
                await asyncio.sleep(1)
                continue
            items, revision = await client.list(kind, project, selector)
            current = {o["metadata"]["uid"]: o for o in items}
            for uid in list(seen):
                if uid not in current:
                    seen.pop(uid)
                    yield {
                        "type": "DELETED",
                        "object": {"kind": kind.kind, "metadata": {"name": "?", "uid": uid}},
                    }
            for uid, obj in current.items():
                if seen.get(uid) != obj["metadata"]["resourceVersion"]:
                    yield {"type": "ADDED" if uid not in seen else "MODIFIED", "object": obj}
                    seen[uid] = obj["metadata"]["resourceVersion"]


async def cmd_watch(client: Client, args: argparse.Namespace) -> int:
    kind = await client.kind(args.kind)
    project = None if args.all_projects else args.project
    async for ev in follow(client, kind, project, args.selector, args.resource_version):
        obj = ev["object"]
        obj.setdefault("kind", kind.kind)
        if args.output == "json":
            print(json.dumps(ev, sort_keys=True), flush=True)
        elif args.output == "yaml":
            print(yaml.safe_dump(ev, sort_keys=False) + "---", flush=True)
        else:
            print(f"{ev['type']} {kind.kind.lower()}/{obj['metadata']['name']}", flush=True)
    return EXIT_OK


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use 500ms, 30s, 2m, 1h or seconds"
        )
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def _condition_true(obj: dict[str, Any], name: str) -> bool:
    return any(
        c.get("type") == name and c.get("status") == "True"
        for c in obj.get("status", {}).get("conditions", []) or []
    )


async def cmd_wait(client: Client, args: argparse.Namespace) -> int:
    kind = await client.kind(args.kind)
    what = args.for_
    if what != "delete" and not what.startswith("condition="):
        err(f"--for must be condition=NAME or delete, not {what!r}")
        return EXIT_USAGE
    cond = what.removeprefix("condition=")
    target = f"{kind.kind.lower()}/{args.name}"

    async def reached() -> bool:
        async for ev in follow(client, kind, args.project, None, None):
            if ev["object"].get("metadata", {}).get("name") != args.name:
                continue
            if what == "delete":
                if ev["type"] == "DELETED":
                    return True
            elif ev["type"] != "DELETED" and _condition_true(ev["object"], cond):
                return True
        return False

    if what == "delete":
        try:
            await client.get(kind, args.project, args.name)
        except ApiError as exc:
            if exc.status == 404:
                print(f"{target} deleted")
                return EXIT_OK
            raise
    try:
        await asyncio.wait_for(reached(), args.timeout)
    except TimeoutError:
        err(
            f"timed out waiting for {'deletion' if what == 'delete' else 'condition ' + cond} on {target}"
        )
        return EXIT_FAILED
    print(f"{target} {'deleted' if what == 'delete' else 'condition met: ' + cond}")
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    import schemas

    kind_name, _, path = args.target.partition(".")
    matches = [
        k for k in schemas.KINDS if k.lower() in (kind_name.lower(), kind_name.lower().rstrip("s"))
    ]
    if not matches:
        err(f"unknown kind {kind_name!r}; known kinds: {', '.join(schemas.KINDS)}")
        return EXIT_FAILED
    doc = schemas.schema_for(matches[0])
    node: dict[str, Any] = doc["spec"]
    label = f"{matches[0]}.spec"
    parts = [p for p in path.split(".") if p]
    if parts and parts[0] == "spec":
        parts = parts[1:]
    for p in parts:
        if node.get("type") == "array":
            node = node.get("items", {})
        props = node.get("properties") or {}
        if p not in props:
            err(f"{label} has no field {p!r}; fields: {', '.join(sorted(props)) or 'none'}")
            return EXIT_FAILED
        node, label = props[p], f"{label}.{p}"
    print(f"{label}: {node.get('type') or 'one of ' + ', '.join(map(str, node.get('enum', [])))}")
    print(f"  {node.get('description') or doc.get('description', '')}")
    if not parts:
        print(f"  scope: {doc.get('scope')}")
    props = node.get("properties") or (node.get("items") or {}).get("properties") or {}
    required = set(node.get("required") or (node.get("items") or {}).get("required") or [])
    for name, sub in props.items():
        typ = sub.get("type") or ("enum" if "enum" in sub else "any")
        print(
            f"  {name}{' (required)' if name in required else ''}: {typ} - {sub.get('description', '')}"
        )
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="desiredctl",
        description="Apply, read and watch desired's objects.",
        epilog="exit codes: 0 success; 1 the operation failed (or diff found differences); 2 usage or configuration error",
    )
    p.add_argument("--url", help="API server URL (default: $DESIRED_URL or the config file)")
    p.add_argument("--token", help="API token (default: $DESIRED_TOKEN or the config file)")
    p.add_argument("--config", help="config file with url: and token:")
    p.add_argument(
        "--os-cloud",
        help="log in as this cloud of clouds.yaml (default: $OS_CLOUD); "
        "the API is at its auth_url's server unless --url says otherwise",
    )
    sub = p.add_subparsers(dest="command", required=True)

    def scoped(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("-p", "--project", help="project of project-scoped objects")

    ap = sub.add_parser("apply", help="create or update objects from files (server-side apply)")
    ap.add_argument(
        "-f", "--filename", action="append", required=True, help="file, directory or - (repeatable)"
    )
    ap.add_argument("--dry-run", action="store_true", help="show what would change; change nothing")
    ap.add_argument(
        "--prune",
        action="store_true",
        help="delete applied objects (matching -l) missing from the files",
    )
    ap.add_argument("-l", "--selector", help="label selector for --prune")
    scoped(ap)
    dp = sub.add_parser("diff", help="show what apply would change")
    dp.add_argument("-f", "--filename", action="append", required=True)
    scoped(dp)
    gp = sub.add_parser("get", help="list or show objects")
    gp.add_argument("kind")
    gp.add_argument("name", nargs="?")
    gp.add_argument("-A", "--all-projects", action="store_true")
    gp.add_argument("-l", "--selector")
    gp.add_argument("-o", "--output", choices=["yaml", "json", "wide", "name"])
    scoped(gp)
    dsp = sub.add_parser("describe", help="show an object and its events")
    dsp.add_argument("kind")
    dsp.add_argument("name")
    scoped(dsp)
    dlp = sub.add_parser("delete", help="delete objects")
    dlp.add_argument("kind", nargs="?")
    dlp.add_argument("names", nargs="*")
    dlp.add_argument("-f", "--filename", action="append")
    dlp.add_argument("--wait", action="store_true", help="wait until they are gone")
    dlp.add_argument("--timeout", type=parse_duration, default=60.0)
    scoped(dlp)
    wp = sub.add_parser("watch", help="print changes as they happen")
    wp.add_argument("kind")
    wp.add_argument("-A", "--all-projects", action="store_true")
    wp.add_argument("-l", "--selector")
    wp.add_argument("--resource-version", help="start after this revision (default: list first)")
    wp.add_argument("-o", "--output", choices=["json", "yaml", "name"])
    scoped(wp)
    wt = sub.add_parser("wait", help="wait for a condition or a deletion")
    wt.add_argument("kind")
    wt.add_argument("name")
    wt.add_argument("--for", dest="for_", required=True, help="condition=NAME or delete")
    wt.add_argument("--timeout", type=parse_duration, default=30.0)
    scoped(wt)
    ep = sub.add_parser("explain", help="describe a kind's fields: KIND[.field.path]")
    ep.add_argument("target")
    sub.add_parser("version", help="print the version")
    return p


COMMANDS = {
    "apply": cmd_apply,
    "diff": cmd_diff,
    "get": cmd_get,
    "describe": cmd_describe,
    "delete": cmd_delete,
    "watch": cmd_watch,
    "wait": cmd_wait,
}


async def run(args: argparse.Namespace) -> int:
    cloud = ctl_config.cloud_to_use(args.token, args.os_cloud)
    if cloud:
        cfg = await ctl_clouds.login(cloud, args.url)
    else:
        cfg = ctl_config.load(args.url, args.token, args.config)
    if cfg.project and getattr(args, "project", "") is None:
        args.project = cfg.project  # the cloud's project, unless -p names another
    client = Client(cfg)
    try:
        return await COMMANDS[args.command](client, args)
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "version":
        from importlib.metadata import version

        print(f"desiredctl {version('desired')}")
        return EXIT_OK
    if args.command == "explain":
        return cmd_explain(args)
    if args.command == "apply" and args.prune and not args.selector:
        err("--prune needs -l SELECTOR")
        return EXIT_USAGE
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for stream in (sys.stdout, sys.stderr):  # a stored name no UTF-8 can hold is shown escaped
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    try:
        return asyncio.run(run(args))
    except ctl_config.ConfigMissing as exc:
        err(str(exc))
        return EXIT_USAGE
    except ctl_clouds.LoginFailed as exc:
        err(str(exc))
        return EXIT_FAILED
    except ctl_files.SpecFileError as exc:
        for line in exc.lines:
            err(line)
        return EXIT_FAILED
    except ApiError as exc:
        err(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

"""Tempest against ``desired up --simulate``: the conformance run of ``./dev tempest``.

Owns: starting the cloud (``tests.e2e.up_process.Up``: simulated hosts, no
demo), preparing it and Tempest's workspace (``tests.tempest.cloud``), running
``tempest run`` on the chosen suites with the tests of ``skip.txt`` left out
(each with its reason), and reading the counts off the run: passed, failed,
skipped per suite, printed, and the failed tests listed.

Must never: take a ``skip.txt`` entry without a reason, or report counts it
did not read from Tempest's own results. Exits non-zero when a test not in
``skip.txt`` failed; with ``--all`` the listed tests run too, and those that
pass are named, so that they leave the list.

    python -m tests.tempest.run --suite compute --concurrency 2
"""

from __future__ import annotations

import argparse
import collections
import csv
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.e2e.up_process import Up
from tests.tempest.cloud import prepare

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
#: suite name -> the regex of its tests
SUITES = {
    "compute": r"^tempest\.api\.compute\.",
    "image": r"^tempest\.api\.image\.v2\.",
    "network": r"^tempest\.api\.network\.",
    "identity": r"^tempest\.api\.identity\.",
}


def tempest_env() -> dict[str, str]:
    """The environment of Tempest's commands: without PYTHONPATH, as this project's
    packages (``cli`` among them) would shadow Tempest's own."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def tempest_bin() -> Path:
    found = os.environ.get("TEMPEST_BIN") or str(ROOT / ".venv-tempest/bin/tempest")
    if not Path(found).exists():
        raise SystemExit(f"no tempest at {found}: ./dev tempest installs it")
    return Path(found)


def skip_list() -> list[tuple[str, str]]:
    """(regex, reason) of every entry of skip.txt; an entry without a reason is an error."""
    entries = []
    for n, line in enumerate((HERE / "skip.txt").read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        regex, _, reason = line.partition("#")
        if not reason.strip():
            raise SystemExit(f"skip.txt:{n}: {regex.strip()!r} has no reason")
        entries.append((regex.strip(), reason.strip()))
    return entries


def results(workspace: Path, tempest: Path) -> dict[str, str]:
    """test id -> success, failure or skip, from stestr's record of the last run."""
    stestr = tempest.with_name("stestr")
    out = subprocess.run(
        [str(stestr), "last", "--subunit"],
        cwd=workspace,
        capture_output=True,
        check=False,
        env=tempest_env(),
    )
    table = subprocess.run(
        [str(tempest.with_name("subunit2csv"))],
        input=out.stdout,
        capture_output=True,
        check=False,  # (it exits 1 when a test failed)
        env=tempest_env(),
    )
    found: dict[str, str] = {}
    rows = csv.reader(io.StringIO(table.stdout.decode(errors="replace")))
    for test, status, *_ in list(rows)[1:]:
        fixture = re.match(r"(?:setUpClass|tearDownClass) \((.*)\)$", test)
        found[fixture.group(1) if fixture else re.sub(r"\[.*\]$", "", test)] = status
    return found


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", action="append", choices=sorted(SUITES), help="default: all")
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--hosts", type=int, default=4, help="simulated hosts")
    p.add_argument("--keep", type=Path, help="keep the workspace (and the cloud's data) there")
    p.add_argument("--regex", help="run these tests only (within the suites)")
    p.add_argument(
        "--all",
        action="store_true",
        help="run the tests of skip.txt too, and say which of them pass (to shorten the list)",
    )
    args = p.parse_args()
    suites = args.suite or sorted(SUITES)
    tempest = tempest_bin()
    top = args.keep or Path(tempfile.mkdtemp(prefix="desired-tempest-"))
    workspace = top / "workspace"
    top.mkdir(parents=True, exist_ok=True)
    subprocess.run(  # a registry of its own: Tempest's default is shared in ~/.tempest
        [str(tempest), "init", "--workspace-path", str(top / "workspaces.yaml"), str(workspace)],
        check=True,
        capture_output=True,
        env=tempest_env(),
    )
    up = Up(top / "desired", "--simulate", str(args.hosts), "--no-demo")
    try:
        prepare(up, workspace)
        exclude = top / "exclude.txt"
        skips = skip_list()
        exclude.write_text("".join(f"{regex}\n" for regex, _ in ([] if args.all else skips)))
        regex = "|".join(f"({SUITES[s]})" for s in suites)
        if args.regex:
            regex = f"(?=.*{args.regex})({regex})"
        subprocess.run(
            [
                str(tempest),
                "run",
                "--regex",
                regex,
                "--exclude-list",
                str(exclude),
                "--concurrency",
                str(args.concurrency),
            ],
            cwd=workspace,
            check=False,
            env=tempest_env(),
        )
        found = results(workspace, tempest)
    finally:
        up.stop()
        if args.keep is None:
            shutil.rmtree(top, ignore_errors=True)
    counts: dict[str, collections.Counter[str]] = {s: collections.Counter() for s in suites}
    for test, status in found.items():
        suite = next((s for s in suites if re.match(SUITES[s], test)), None)
        if suite is not None:
            counts[suite][status] += 1
    print("\nsuite      passed  failed  skipped (by Tempest)")
    for suite in suites:
        c = counts[suite]
        print(f"{suite:10s} {c['success']:6d}  {c['failure']:6d}  {c['skip']:7d}")
    listed = [re.compile(regex) for regex, _ in skips]
    failed = sorted(t for t, s in found.items() if s == "failure")
    for test in failed:
        print(
            f"FAILED {test}{' (listed in skip.txt)' if any(r.search(test) for r in listed) else ''}"
        )
    for test in sorted(t for t, s in found.items() if s == "success"):
        if args.all and any(r.search(test) for r in listed):
            print(f"PASSED, listed in skip.txt: {test}")
    return 1 if any(not any(r.search(t) for r in listed) for t in failed) else 0


if __name__ == "__main__":
    sys.exit(main())

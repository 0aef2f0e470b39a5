"""What etcd's TLS and authentication cost: three benchmarks run with them off, then on.

Runs, each as a process of its own, ``--rounds`` times both ways in turn
(plain etcd, then etcd as ``desired up`` runs it: TLS, authentication, a user
per part), so that what else the machine does falls on both alike:
``benchmarks.apply_throughput`` (apply throughput), ``benchmarks.compute_api``
(``POST /servers`` throughput, token validation p50) and
``benchmarks.instance_burst`` (the burst over simulated hosts). Prints each
round's figures both ways, then their medians and the secured one's share of
the plain one.

    .venv/bin/python -m benchmarks.etcd_security
    .venv/bin/python -m benchmarks.etcd_security --quick   # smaller runs, for a look
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys

#: benchmark -> its arguments (full, quick) and the figures read off its output
RUNS: dict[str, tuple[list[str], list[str], dict[str, str]]] = {
    "apply_throughput": (
        ["--objects", "5000"],
        ["--objects", "1000"],
        {"apply, objects/s": r"^create\s+(\d+) objects/s"},
    ),
    "compute_api": (
        ["--servers", "2000", "--creates", "1000", "--shows", "500"],
        ["--servers", "500", "--creates", "300", "--shows", "200"],
        {
            "POST /servers, /s": r"POST /servers: .* = (\d+)/s",
            "token validation p50, ms": r"GET /identity/v3/auth/tokens \(\d+\): p50 ([\d.]+) ms",
        },
    ),
    "instance_burst": (
        ["--hosts", "100", "--burst", "1000", "--single", "20"],
        ["--hosts", "20", "--burst", "200", "--single", "10"],
        {"burst, instances/s": r"= (\d+) instances/s"},
    ),
}


def figures(name: str, args: list[str], secure: bool) -> dict[str, float]:
    cmd = [sys.executable, "-m", f"benchmarks.{name}", *args, *(["--secure"] if secure else [])]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    found = {}
    for label, pattern in RUNS[name][2].items():
        m = re.search(pattern, out.stdout, re.MULTILINE)
        if m is None:
            raise SystemExit(f"no {label!r} in the output of {name}:\n{out.stdout}")
        found[label] = float(m.group(1))
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller runs")
    p.add_argument("--rounds", type=int, default=3, help="runs of each, both ways in turn")
    args = p.parse_args()
    print(f"{'figure':34s} {'plain':>10s} {'TLS+auth':>10s} {'share':>7s}")
    for name, (full, quick, _) in RUNS.items():
        chosen = quick if args.quick else full
        runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        for i in range(args.rounds):
            for secure in (False, True):
                runs[secure].append(figures(name, chosen, secure))
            for label in runs[False][-1]:
                plain, secured = runs[False][-1][label], runs[True][-1][label]
                print(
                    f"{label + f' (round {i + 1})':34s} {plain:10.1f} {secured:10.1f}", flush=True
                )
        for label in runs[False][0]:
            plain = statistics.median(r[label] for r in runs[False])
            secured = statistics.median(r[label] for r in runs[True])
            share = secured / plain * 100 if plain else 0.0
            print(
                f"{label + ', median':34s} {plain:10.1f} {secured:10.1f} {share:6.0f} %", flush=True
            )


if __name__ == "__main__":
    main()

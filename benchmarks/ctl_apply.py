"""``desiredctl apply -f DIR`` of a directory of N objects, timed from the shell's view.

Starts its own etcd and ``desired apiserver``, writes ``--objects`` Flavors
and KeyPairs into ``--files`` YAML files, then times the real ``desiredctl``
executable: first apply (all created), second (all unchanged), and a dry run.

    .venv/bin/python -m benchmarks.ctl_apply --objects 1000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.apply_throughput import TOKEN
from fixtures.apiserver import ApiServerProcess
from fixtures.etcd import EtcdServer

BIN = Path(sys.executable).parent


def write_specs(root: Path, objects: int, files: int) -> None:
    per_file = max(objects // files, 1)
    n = 0
    for f in range(files):
        docs = []
        for _ in range(per_file):
            if n % 2:
                docs.append(
                    f"kind: KeyPair\nmetadata: {{name: key-{n:05d}, project: bench, labels: {{bench: ctl}}}}\n"
                    f'spec: {{publicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{n:05d} k@bench"}}\n'
                )
            else:
                docs.append(
                    f"kind: Flavor\nmetadata: {{name: flavor-{n:05d}, labels: {{bench: ctl}}}}\n"
                    f"spec: {{vcpus: {1 + n % 8}, ramMiB: 512, diskGiB: 1}}\n"
                )
            n += 1
        (root / f"specs-{f:03d}.yaml").write_text("---\n".join(docs))


def timed(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run([str(BIN / "desiredctl"), *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(res.stderr)
    return elapsed, res.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objects", type=int, default=1000)
    p.add_argument("--files", type=int, default=20)
    args = p.parse_args()
    with (
        EtcdServer() as etcd,
        tempfile.TemporaryDirectory() as tmp,
        ApiServerProcess(etcd.url, tmp, TOKEN) as api,
    ):
        specs = Path(tmp) / "specs"
        specs.mkdir()
        write_specs(specs, args.objects, args.files)
        ctl_env = dict(os.environ, DESIRED_URL=api.url, DESIRED_TOKEN=TOKEN)
        print(f"desiredctl apply -f DIR: {args.objects} objects in {args.files} files")
        for label, extra in (("create", []), ("unchanged", []), ("dry run", ["--dry-run"])):
            elapsed, out = timed(["apply", "-f", str(specs), *extra], ctl_env)
            outcomes = sorted({line.split(" ", 1)[1] for line in out.splitlines()})
            print(f"  {label:10s} {elapsed:6.2f} s   {len(out.splitlines())} objects {outcomes}")


if __name__ == "__main__":
    main()

"""The conductor's projection lag, sampled from a process of its own.

Every ``--every`` seconds it reads etcd's current revision and times until
the conductor's progress row in SQLite reaches it (samples overlap; the row
is polled every millisecond). A process of its own, doing nothing else, so
that what it times is the system's delay rather than its own: sampled from
the benchmark's event loop, the samples included that loop's waits.

Says ``ready`` once it reaches both, runs until its standard input closes,
then prints one lag in milliseconds per line. Used by ``benchmarks.instance_burst``.

    python -m benchmarks.lag_sampler --etcd http://127.0.0.1:2379 --db desired.sqlite
"""

from __future__ import annotations

import argparse
import base64
import collections
import http.client
import json
import sqlite3
import ssl
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from state.etcd_tls import Credentials


def progress(db: sqlite3.Connection) -> int:
    """The revision SQL reflects etcd up to: the conductor's progress row."""
    row = db.execute("SELECT revision FROM watch_progress WHERE name = 'conductor'").fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--etcd", required=True, help="etcd's client URL")
    p.add_argument("--db", required=True, help="the conductor's SQLite file")
    p.add_argument("--every", type=float, default=0.01)
    p.add_argument("--credentials", help="a credential directory, for an etcd with TLS")
    args = p.parse_args()
    url = urlsplit(args.etcd)
    conn: http.client.HTTPConnection
    headers = {"Content-Type": "application/json"}
    if args.credentials:
        creds = Credentials.read(Path(args.credentials))
        context = ssl.create_default_context(cafile=str(creds.ca_file))
        context.load_cert_chain(str(creds.cert_file), str(creds.key_file))
        conn = http.client.HTTPSConnection(
            url.hostname or "127.0.0.1", url.port or 2379, timeout=10, context=context
        )
        login = json.dumps({"name": creds.user, "password": creds.password})
        conn.request("POST", "/v3/auth/authenticate", login, headers)
        headers["Authorization"] = json.loads(conn.getresponse().read())["token"]
    else:
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 2379, timeout=10)
    body = json.dumps({"key": base64.b64encode(b"/desired/v1/").decode(), "count_only": True})
    db = sqlite3.connect(args.db, check_same_thread=False)

    def revision() -> int:
        conn.request("POST", "/v3/kv/range", body, headers)
        return int(json.loads(conn.getresponse().read())["header"]["revision"])

    revision()
    print("ready", flush=True)
    stop = threading.Event()
    pending: collections.deque[tuple[int, float]] = collections.deque()
    lags: list[float] = []

    def sample() -> None:
        """Every ``--every`` seconds, the revision etcd is at and when it was read."""
        due = time.perf_counter()
        while not stop.is_set():
            pending.append((revision(), time.perf_counter()))
            due += args.every
            time.sleep(max(0.0, due - time.perf_counter()))

    def resolve() -> None:
        """Every millisecond, times the samples SQL's progress has reached (in a thread of
        its own: a slow answer from etcd must not delay it)."""
        while not stop.is_set():
            done, now = progress(db), time.perf_counter()
            while pending and pending[0][0] <= done:
                lags.append((now - pending.popleft()[1]) * 1000)
            time.sleep(0.001)

    workers = [threading.Thread(target=sample), threading.Thread(target=resolve)]
    for worker in workers:
        worker.start()
    sys.stdin.read()
    stop.set()
    for worker in workers:
        worker.join()
    print("\n".join(f"{lag:.1f}" for lag in lags))


if __name__ == "__main__":
    main()

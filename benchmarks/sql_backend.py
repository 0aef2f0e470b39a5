"""The SQL database a benchmark's conductor or API server uses: SQLite, or a PostgreSQL it starts.

Owns: choosing between the two from ``--postgresql`` and making the database.

Must never: outlive the benchmark (the PostgreSQL stops with the caller's stack).
"""

from __future__ import annotations

import contextlib

from fixtures.postgres import PostgresServer


def sql_url(stack: contextlib.ExitStack, data_dir: str, postgresql: bool) -> str:
    """SQLite in ``data_dir``, or a fresh database of a PostgreSQL started on ``stack``."""
    if not postgresql:
        return f"sqlite:///{data_dir}/desired.sqlite"
    postgres = stack.enter_context(PostgresServer())
    postgres.create_database("bench")
    return postgres.url.rsplit("/", 1)[0] + "/bench"

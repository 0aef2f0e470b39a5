"""Engines and sessions for SQLite (default) and PostgreSQL.

Owns: creating an engine from a URL with the settings each backend needs
(SQLite: WAL checkpointed by ``checkpoint`` rather than inside commits,
foreign keys, a busy timeout; PostgreSQL: pre-ping), and transaction scopes.

Must never: create tables (alembic does).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            # no checkpoint inside a commit (it stalled the conductor's commits for hundreds
            # of ms); the writer calls ``checkpoint`` on its own schedule instead
            cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose transaction commits at the end, or rolls back on error."""
    with factory() as session, session.begin():
        yield session


def checkpoint(engine: Engine) -> None:
    """Moves SQLite's write-ahead log into the database without blocking writers; nothing to
    do on PostgreSQL."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

"""Engines and sessions for SQLite (default) and PostgreSQL.

Owns: creating an engine from a URL with the settings each backend needs
(SQLite: WAL checkpointed by ``checkpoint`` rather than inside commits,
foreign keys, a busy timeout, ``REGEXP`` by RE2 (``state.patterns``) instead of
the Python ``re`` SQLAlchemy registers; PostgreSQL: pre-ping), transaction
scopes, and a time limit on the statements of one block (``time_limit``).

Must never: create tables (alembic does).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from state import patterns
from state.errors import TimeLimitExceeded

#: SQLite virtual machine steps between two looks at a block's deadline
_STEPS = 1000


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
            # users' patterns: RE2 (linear time) instead of SQLAlchemy's Python re
            conn.create_function("regexp", 2, patterns.sqlite_regexp, deterministic=True)

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


@contextmanager
def time_limit(session: Session, seconds: float) -> Iterator[None]:
    """Stops the statements the block runs in ``session`` once ``seconds`` have passed
    (``TimeLimitExceeded``): SQLite through a progress handler that interrupts its virtual
    machine, PostgreSQL through the transaction's ``statement_timeout``."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SET LOCAL statement_timeout = {max(1, int(seconds * 1000))}"))
        try:
            yield
        except OperationalError as exc:
            if getattr(exc.orig, "pgcode", None) == "57014":  # query_canceled
                raise TimeLimitExceeded(f"stopped after {seconds} s") from None
            raise
        # (after an error the transaction rolls back, and the setting with it)
        conn.execute(text("SET LOCAL statement_timeout = DEFAULT"))
        return
    if conn.dialect.name != "sqlite":
        yield
        return
    raw: Any = conn.connection.driver_connection
    deadline = time.monotonic() + seconds

    def past() -> bool:
        return time.monotonic() > deadline

    raw.set_progress_handler(past, _STEPS)
    try:
        yield
    except OperationalError as exc:
        if "interrupted" in str(exc.orig) and past():
            raise TimeLimitExceeded(f"stopped after {seconds} s") from None
        raise
    finally:
        raw.set_progress_handler(None, 0)

"""SQL on SQLite and a real PostgreSQL: migrations from empty, models equal to migrations."""

from __future__ import annotations

import datetime as dt
import os

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select

from fixtures.postgres import PostgresServer
from state.sql.engine import make_engine, make_sessionmaker, session_scope
from state.sql.migrate import current_revision, upgrade
from state.sql.models import Base, Resource, WatchProgress


def test_migrate_from_empty_to_head(sql_url: str) -> None:
    assert current_revision(sql_url) is None
    upgrade(sql_url)
    assert current_revision(sql_url) == "0009"
    upgrade(sql_url)  # again: nothing to do
    assert current_revision(sql_url) == "0009"


def test_models_match_the_migrations(sql_url: str) -> None:
    upgrade(sql_url)
    engine = make_engine(sql_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_rows_round_trip_with_json(sql_url: str) -> None:
    upgrade(sql_url)
    engine = make_engine(sql_url)
    factory = make_sessionmaker(engine)
    now = dt.datetime.now(dt.UTC)
    with session_scope(factory) as s:
        s.add(
            Resource(
                uid="u1",
                kind="Instance",
                project="demo",
                name="vm1",
                resource_version=7,
                generation=1,
                labels={"app": "web"},
                spec={"flavor": "m1.tiny"},
                status={"vmState": "active"},
                created_at=now,
                updated_at=now,
            )
        )
        s.add(WatchProgress(name="conductor", revision=7))
    with session_scope(factory) as s:
        row = s.scalars(select(Resource).where(Resource.kind == "Instance")).one()
        assert (row.name, row.labels, row.spec["flavor"]) == ("vm1", {"app": "web"}, "m1.tiny")
        assert s.get(WatchProgress, "conductor").revision == 7  # type: ignore[union-attr]
    engine.dispose()


def test_postgres_fixture_stops_its_process() -> None:
    server = PostgresServer().start()
    pid = server.pid
    assert pid is not None and os.path.exists(f"/proc/{pid}")
    server.stop()
    assert not os.path.exists(f"/proc/{pid}")

"""Schema migrations, run from code: no alembic.ini needed.

Owns: the alembic configuration pointing at ``state/sql/migrations`` and the
two operations desired needs: upgrade to a revision, read the current one.

Must never: create tables any other way.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from state.sql.engine import make_engine

_MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Brings the database at ``url`` to ``revision``. A SQLite file (made here when absent)
    is its owner's alone: it holds password hashes (its journals take its mode)."""
    if not url.startswith("sqlite:///"):
        command.upgrade(alembic_config(url), revision)
        return
    path = Path(url.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    for file in (path, *(path.with_name(path.name + end) for end in ("-wal", "-shm"))):
        if file.exists():
            file.chmod(0o600)
    command.upgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()

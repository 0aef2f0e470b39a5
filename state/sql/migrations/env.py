"""alembic's environment for desired: online migrations on the configured URL."""

from __future__ import annotations

from alembic import context

from state.sql.engine import make_engine
from state.sql.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "sqlalchemy.url is not set"
engine = make_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()

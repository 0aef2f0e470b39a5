"""SQL: the conductor's projection of etcd for list views, and the action log.

Owns: the engine and session setup (``engine``), the models (``models``) and
the schema, which changes only through alembic migrations (``migrations``,
run by ``migrate``).

Must never: be written by anything but the conductor's projection (and
migrations), or be treated as the source of truth: etcd is.
"""

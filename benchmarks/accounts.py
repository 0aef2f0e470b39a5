"""The project and member user a benchmark logs in as (password ``<user>-secret``).

Owns: making them, with a cheap hash (1,000 rounds) unless the benchmark times real checks.

Must never: be used outside benchmarks (its passwords are written here).
"""

from __future__ import annotations

from state.passwords import hash_password
from state.store import Store


async def project_with_member(
    store: Store, project: str, user: str = "bench", iterations: int = 1000
) -> None:
    """Project ``project`` and user ``user``, a member of it, with password ``<user>-secret``."""
    await store.create({"kind": "Project", "metadata": {"name": project}, "spec": {}})
    await store.create(
        {
            "kind": "User",
            "metadata": {"name": user},
            "spec": {
                "passwordHash": hash_password(f"{user}-secret", iterations=iterations),
                "roles": [{"role": "member", "project": project}],
            },
        }
    )

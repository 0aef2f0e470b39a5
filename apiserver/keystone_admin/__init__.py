"""The Keystone v3 admin API under ``/identity``: projects, users, roles, role assignments,
domains, application credentials and their access rules, EC2 credentials, over the
``Project``, ``User`` and ``Role`` objects that ``desiredctl`` writes.

Owns: wiring each part's routes into the identity sub-app (``add_routes``).

Must never: serve a route of its own here: each part is its module.
"""

from __future__ import annotations

from aiohttp import web

from apiserver.keystone_admin import (
    access_rules,
    app_credentials,
    domains,
    ec2_credentials,
    grants,
    project_tags,
    projects,
    roles,
    users,
)


def add_routes(app: web.Application) -> None:
    """Adds the admin API's routes to ``app``, the ``/identity`` sub-app."""
    for part in (
        projects,
        project_tags,
        users,
        roles,
        grants,
        domains,
        app_credentials,
        access_rules,
        ec2_credentials,
    ):
        part.add_routes(app)

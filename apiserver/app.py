"""The API server process: one root application with one sub-app per API.

Owns: mounting the sub-apps (declarative ``/apis/v1``, identity
``/identity``, Compute ``/compute``, image ``/image``, the Neutron subset
``/network``; EC2 as it lands; the metadata service has its own listener),
the health endpoint and the metrics one (admins' alone:
``apiserver.metrics_endpoint``), Keystone's access rules in front of them all
(``apiserver.access_rule_guard``), and the lifecycle of what they share (the etcd client).

Must never: hold handlers of its own beyond health and metrics.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from apiserver import (
    access_rule_guard,
    declarative,
    host_credentials,
    identity,
    image_service,
    keystone_admin,
)
from apiserver.admin_token import AdminToken
from apiserver.body_deadline import DEFAULT_SECONDS, body_deadline
from apiserver.compute import app as compute_app
from apiserver.external_identity import ExternalTokens
from apiserver.image_data import ImageData, ImageLimits
from apiserver.metrics_endpoint import metrics_handler
from apiserver.network import app as network_app
from apiserver.tokens import TokenChecker
from state import keys
from state.config import IdentityConfig
from state.errors import DesiredError
from state.etcd import EtcdClient
from state.etcd_tls import Authority
from state.lockout import LockoutPolicy
from state.passwords import PasswordChecks
from state.sql.views import ComputeViews
from state.store import Store

ETCD = web.AppKey("etcd", EtcdClient)


async def healthz(request: web.Request) -> web.Response:
    try:
        await request.app[ETCD].revision(keys.root())
    except DesiredError as exc:
        return web.Response(status=503, text=f"etcd: {exc.message}\n")
    return web.Response(text="ok\n")


def make_app(
    etcd: EtcdClient,
    admin_token: str,
    metrics_text: Callable[[], bytes] | None = None,
    token_ttl: int = 3600,
    sql_url: str | None = None,
    max_limit: int = 1000,
    policy_file: Path | None = None,
    image_dir: Path | None = None,
    keystone_url: str = "",
    keystone_cache_seconds: float = 300.0,
    body_timeout: float = DEFAULT_SECONDS,
    identity_config: IdentityConfig | None = None,
    image_limits: ImageLimits | None = None,
    host_issuer: Authority | None = None,
    admin_token_ttl: int = 0,
) -> web.Application:
    """The root app; ``metrics_text`` (Prometheus text) is served at ``/metrics`` when given,
    to admins alone (``apiserver.metrics_endpoint``);
    identity tokens live ``token_ttl`` seconds; ``sql_url`` is the conductor's database,
    which the Compute API reads (no Compute API without it); a server list answers at
    most ``max_limit`` servers; ``policy_file`` overrides the Compute API's policy;
    ``image_dir`` keeps uploaded images' data (None: the image service stores none);
    ``keystone_url``: an external Keystone whose tokens the Compute and image APIs take
    (kept ``keystone_cache_seconds``) instead of this identity service's; a request body
    that stalls ``body_timeout`` seconds is answered 408 (``apiserver.body_deadline``);
    ``identity_config``: lockout and password checks (defaults: ``IdentityConfig()``);
    ``image_limits``: how much image data may be stored (defaults: ``ImageLimits()``);
    ``host_issuer``: the CA etcd trusts, with which hosts' etcd credentials are issued
    (``apiserver.host_credentials``; ``etcd`` is then etcd's root);
    ``admin_token``, the bootstrap token, lives ``admin_token_ttl`` seconds (0: for ever)
    and is replaced by a rotation (``apiserver.admin_token``)."""
    idc = identity_config or IdentityConfig()
    ident = identity.Identity(
        Store(etcd),
        token_ttl,
        LockoutPolicy(idc.lockout_failure_attempts, idc.lockout_duration),
        PasswordChecks(idc.password_check_workers, idc.password_check_queue),
    )
    root = web.Application(
        middlewares=[body_deadline(body_timeout), access_rule_guard.guard(ident)]
    )
    root[ETCD] = etcd
    root.router.add_get("/healthz", healthz)
    root[identity.IDENTITY] = ident  # (also here: tests read its password checks)
    identity_app = identity.make_app(ident)
    keystone_admin.add_routes(identity_app)
    root.add_subapp("/identity", identity_app)
    tokens: TokenChecker = (
        ExternalTokens(Store(etcd), keystone_url, keystone_cache_seconds) if keystone_url else ident
    )
    admin = AdminToken(etcd, admin_token, admin_token_ttl)
    declarative_app = declarative.make_app(Store(etcd), admin, tokens)
    host_credentials.add_routes(declarative_app, etcd, host_issuer)
    root.add_subapp("/apis/v1", declarative_app)
    if metrics_text is not None:
        root.router.add_get("/metrics", metrics_handler(metrics_text, admin, tokens))
    views = ComputeViews(sql_url) if sql_url else None
    data = ImageData(image_dir) if image_dir is not None else None
    if views is not None:
        root.add_subapp(
            "/compute",
            compute_app.make_app(
                Store(etcd),
                tokens,
                views,
                max_limit=max_limit,
                policy_file=policy_file,
                image_data=data,
            ),
        )
    root.add_subapp("/image", image_service.make_app(Store(etcd), tokens, data, image_limits))
    root.add_subapp("/network", network_app.make_app(Store(etcd), tokens))

    async def close_etcd(app: web.Application) -> AsyncIterator[None]:
        yield
        await app[ETCD].close()
        if views is not None:
            views.close()

    root.cleanup_ctx.append(close_etcd)
    return root

"""The Compute API's OpenAPI document, made from its routes and its request body schemas.

Owns: ``GET /compute/openapi.json`` (OpenAPI 3.1, no token needed): every
``/compute/v2.1`` route with its path parameters, its request body's schema
at the maximum microversion (an action route's body is one of its actions'),
the ``X-Auth-Token`` header as its security, and the microversion headers.

Must never: describe a route the app does not serve.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from aiohttp import web

from apiserver.compute.bodies import ACTIONS, ROUTES
from apiserver.compute.microversions import MAX, Version
from apiserver.urls import base_url
from schemas.requests import request_names, request_schema

_PREFIX = "/compute"


def _components(node: Any) -> Any:
    """``node`` with its ``#/$defs/`` references pointing into the components."""
    if isinstance(node, list):
        return [_components(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _components(v) for k, v in node.items() if k != "$defs"}
    if isinstance(out.get("$ref"), str):
        out["$ref"] = out["$ref"].replace("#/$defs/", "#/components/schemas/")
    return out


def _body(method: str, route: str) -> dict[str, Any] | None:
    name = ROUTES.get((method, route))
    if name is not None:
        return _components(request_schema(name, MAX))
    if method == "POST" and route in ACTIONS:
        prefix = f"{ACTIONS[route]}."
        actions = [n for n in request_names() if n.startswith(prefix)]
        return {"oneOf": [_components(request_schema(n, MAX)) for n in actions]}
    return None


@cache
def _paths(routes: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for method, path in routes:
        route = path.removeprefix(_PREFIX)
        params = re.findall(r"{([^}]+)}", route)
        operation: dict[str, Any] = {
            "operationId": f"{method.lower()}{re.sub(r'[^A-Za-z0-9]+', '_', route)}",
            "parameters": [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in params
            ],
            "responses": {"default": {"description": "Nova's answer, or its fault"}},
        }
        body = _body(method, route)
        if body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body}},
            }
        paths.setdefault(path, {})[method.lower()] = operation
    return paths


def _routes(app: web.Application) -> tuple[tuple[str, str], ...]:
    out = []
    for resource in app.router.resources():
        path = resource.canonical
        if not path.startswith(f"{_PREFIX}/v2.1/"):
            continue
        for route in resource:
            if route.method in ("GET", "POST", "PUT", "DELETE"):
                out.append((route.method, path))
    return tuple(sorted(out))


async def document(request: web.Request) -> web.Response:
    any_schema = request_schema(request_names()[0], MAX)
    return web.json_response(
        {
            "openapi": "3.1.0",
            "info": {"title": "desired Compute API", "version": str(Version(*MAX))},
            "servers": [{"url": base_url(request)}],
            "paths": _paths(_routes(request.app)),
            "components": {
                "schemas": _components(any_schema["$defs"]),
                "securitySchemes": {
                    "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}
                },
            },
            "security": [{"token": []}],
        }
    )

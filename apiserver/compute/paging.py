"""Compute API paging of lists held in memory: ``limit``, ``marker`` and the "next" link.

Owns: reading ``limit`` (digits, capped by ``api.max_limit``) and ``marker``
(the key of the last item of the previous page) as Nova does, and Nova's
``<collection>_links`` "next" link when a page is as long as its limit (for
the server lists, which page in SQL, too).

Must never: drop an item between two pages or show one twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar
from urllib.parse import urlencode

from aiohttp import web

from apiserver.compute.context import MAX_LIMIT
from apiserver.compute.faults import ComputeFault
from apiserver.urls import base_url

T = TypeVar("T")


def limit_of(request: web.Request) -> int:
    """The page size asked (``api.max_limit`` when not asked, and at most that)."""
    max_limit = request.app[MAX_LIMIT]
    raw = request.query.get("limit")
    if raw is None:
        return max_limit
    if not raw.isdigit():
        raise ComputeFault(
            400,
            f"Invalid input for query parameters limit. Value: {raw}. "
            f"'{raw}' does not match '^[0-9]*$'",
        )
    return min(int(raw), max_limit)


def next_links(request: web.Request, count: int, path: str, marker: str) -> list[dict[str, str]]:
    """Nova's "next" link to ``/compute/v2.1/<path>`` after ``marker``, when a page of
    ``count`` items is as long as its limit; the request's other parameters (every
    repeated one too) kept."""
    if not count or count != limit_of(request):
        return []
    params = [(k, v) for k, v in request.query.items() if k != "marker"]
    params.append(("marker", marker))
    return [{"rel": "next", "href": f"{base_url(request)}/compute/v2.1/{path}?{urlencode(params)}"}]


def page(
    request: web.Request,
    items: Sequence[T],
    key: Callable[[T], str],
    path: str,
    missing: str = "Marker {marker} could not be found.",
) -> tuple[list[T], list[dict[str, str]]]:
    """The page of ``items`` (already in order) after the item whose ``key`` is the
    ``marker`` (400 with ``missing`` when none is), and its "next" link to
    ``/compute/v2.1/<path>``."""
    marker = request.query.get("marker")
    start = 0
    if marker is not None:
        keys = [key(i) for i in items]
        if marker not in keys:
            raise ComputeFault(400, missing.format(marker=marker))
        start = keys.index(marker) + 1
    out = list(items[start : start + limit_of(request)])
    return out, next_links(request, len(out), path, key(out[-1]) if out else "")

"""Compute API microversions: what a request asks for, what every response says.

Owns: reading ``OpenStack-API-Version: compute X.Y`` or the legacy
``X-OpenStack-Nova-API-Version`` (``latest`` is the maximum; neither header
is 2.1), refusing versions out of range (406), the version a handler asks
``since`` about, and the headers every v2.1 response carries (the version,
``Vary`` and the request id as ``x-openstack-request-id`` and
``x-compute-request-id``).

Must never: answer a request at a version other than the one it was asked at.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

from aiohttp import web

from apiserver.compute.faults import ComputeFault

#: the highest microversion complete for every implemented resource
MAX = (2, 47)
MIN = (2, 1)


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


_LOWEST = Version(*MIN)
#: the version a request was asked at (set before its handler runs)
VERSION = web.RequestKey("compute_version", Version)


@cache
def _version(text: str) -> Version:
    major, minor = (int(p) for p in text.split("."))
    return Version(major, minor)


def since(request: web.Request, version: str) -> bool:
    """Whether the request was asked at ``version`` ("2.47") or later."""
    asked: Version = request.get(VERSION, _LOWEST)
    return asked >= _version(version)


def require(request: web.Request, version: str) -> None:
    """Nova's 404 for a route that does not exist below ``version``."""
    if not since(request, version):
        raise ComputeFault(404, "The resource could not be found.")


def _parse(text: str) -> Version:
    text = text.strip()
    if text == "latest":
        return Version(*MAX)
    try:
        major, minor = (int(p) for p in text.split("."))
    except ValueError:
        raise ComputeFault(400, f"Invalid API version request string {text!r}") from None
    return Version(major, minor)


def requested(headers: Any) -> Version:
    new = headers.get("OpenStack-API-Version", "")
    if new:
        service, _, value = new.strip().partition(" ")
        if service.lower() == "compute":
            return _parse(value)
    legacy = headers.get("X-OpenStack-Nova-API-Version", "")
    return _parse(legacy) if legacy else Version(*MIN)


def check(version: Version) -> Version:
    if not Version(*MIN) <= version <= Version(*MAX):
        raise ComputeFault(
            406,
            f"Version {version} is not supported by the API. "
            f"Minimum is {Version(*MIN)} and maximum is {Version(*MAX)}.",
        )
    return version


def stamp(response: web.StreamResponse, version: Version | None) -> None:
    """The headers every v2.1 response carries."""
    request_id = response.headers.setdefault("x-openstack-request-id", f"req-{uuid.uuid4()}")
    response.headers["x-compute-request-id"] = request_id
    if version is not None:
        response.headers["OpenStack-API-Version"] = f"compute {version}"
        response.headers["X-OpenStack-Nova-API-Version"] = str(version)
        response.headers["Vary"] = "OpenStack-API-Version, X-OpenStack-Nova-API-Version"

"""Human output of desiredctl: aligned tables, ages, the READY column.

Owns: formatting only. Must never: talk to the server.
"""

from __future__ import annotations

import datetime as dt
from typing import Any


def table(headers: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return "No objects found.\n"
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "   ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [headers, *rows]
    ]
    return "\n".join(lines) + "\n"


def age(stamp: str | None, now: dt.datetime | None = None) -> str:
    if not stamp:
        return "-"
    try:
        then = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return "-"
    secs = int(((now or dt.datetime.now(dt.UTC)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}"
    return f"{max(secs, 0)}s"


def ready_column(obj: dict[str, Any]) -> str:
    for c in obj.get("status", {}).get("conditions", []) or []:
        if c.get("type") == "Ready":
            return c.get("status", "Unknown")
    return "-"


def _path(obj: dict[str, Any], dotted: str) -> str:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "-" if value in (None, "") else str(value)


#: columns of a kind beyond NAME, READY and AGE: (header, field path, wide only)
KIND_COLUMNS: dict[str, list[tuple[str, str, bool]]] = {
    "Instance": [
        ("STATUS", "status.novaStatus", False),
        ("HOST", "status.host", False),
        ("FLAVOR", "spec.flavor", True),
        ("IMAGE", "spec.image", True),
    ],
    "Flavor": [("VCPUS", "spec.vcpus", False), ("RAM", "spec.ramMiB", False)],
}


def kind_columns(kind: str, wide: bool) -> list[tuple[str, str]]:
    return [(h, p) for h, p, only_wide in KIND_COLUMNS.get(kind, []) if wide or not only_wide]


def kind_cells(obj: dict[str, Any], columns: list[tuple[str, str]]) -> list[str]:
    return [_path(obj, path) for _, path in columns]

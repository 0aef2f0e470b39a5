"""How Nova writes the times of its views that carry microseconds and no zone.

Owns: ``2016-01-29T13:42:02.000000`` from a datetime (in UTC when it knows
its zone) or from an object's RFC 3339 timestamp.
"""

from __future__ import annotations

import datetime as dt


def nova_time(when: dt.datetime) -> str:
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")


def nova_time_of(stamp: str | None) -> str | None:
    """An object's timestamp (``...Z``) as Nova writes it; None stays None."""
    if not stamp:
        return None
    return nova_time(dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")))

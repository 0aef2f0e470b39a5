"""Which objects of a failed batch SQL refuses, and why: the projection's isolation of poison.

Owns: telling an error of one object's rows (a string the driver cannot
encode, a NUL PostgreSQL will not store, a value a column cannot hold, a
field the row builders cannot read) from an error of the database itself
(unreachable, locked: ``refusable`` is False, the caller retries the whole
batch later); splitting a failed batch in halves until each refused unit is
alone (``isolate``), so that every other unit is written; and a short,
printable account of the refusal.

Must never: change an object to make SQL take it (a refused object is
reported, never sanitised), or swallow an error of the database itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import exc as sa_exc

U = TypeVar("U")

#: longest account of a refusal kept (events and logs stay readable)
_MESSAGE_MAX = 300


@dataclass(frozen=True)
class Refused(Generic[U]):
    """A unit SQL would not take, and why."""

    unit: U
    #: the error's class name (the metric's reason)
    reason: str
    #: the error, printable: no lone surrogates, no NULs, at most _MESSAGE_MAX characters
    message: str


def refusable(exc: BaseException) -> bool:
    """Whether ``exc`` may be about the rows written rather than the database: errors of
    the connection or the database's state (OperationalError, InterfaceError, an
    invalidated connection) are not."""
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        return False
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return False
    return isinstance(exc, Exception)


def describe(exc: BaseException) -> tuple[str, str]:
    """(reason, message) of a refusal: the driver's own error rather than SQLAlchemy's
    wrapper (whose text repeats the statement and its parameters)."""
    inner = exc.orig if isinstance(exc, sa_exc.StatementError) and exc.orig else exc
    text = f"{type(inner).__name__}: {inner}".replace("\0", "\\x00")
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    first = text.strip().splitlines()[0] if text.strip() else type(inner).__name__
    if len(first) > _MESSAGE_MAX:
        first = first[: _MESSAGE_MAX - 3] + "..."
    return type(inner).__name__, first


def isolate(units: Sequence[U], write: Callable[[Sequence[U]], Any]) -> list[Refused[U]]:
    """Writes ``units`` with ``write`` (one transaction per call), halving what fails until
    each refused unit is alone: every unit SQL takes is written, the refused ones are
    returned. An error that is not ``refusable`` is raised at once."""
    if not units:
        return []
    try:
        write(units)
        return []
    except Exception as exc:
        if not refusable(exc):
            raise
        if len(units) == 1:
            reason, message = describe(exc)
            return [Refused(units[0], reason, message)]
    half = len(units) // 2
    return isolate(units[:half], write) + isolate(units[half:], write)

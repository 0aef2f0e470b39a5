"""Regular expressions that users send: the Compute API's ``name`` and ``ip`` list filters.

Owns: compiling a user's pattern with RE2 (``google-re2``), whose matching
time grows linearly with the text whatever the pattern (Python's ``re``
backtracks: ``(a+)+$`` against ``aaaa…!`` doubles its time with each ``a``,
holding the GIL all along); refusing what RE2 cannot compile (backreferences,
lookaround, invalid syntax, programs over ``MAX_MEM``) as ``BadPattern``; the
``regexp`` function SQLite calls for ``REGEXP``; and ``BUDGET``, the seconds a
query with a user's pattern may run (``state.sql.engine.time_limit`` enforces
it), since even a linear scan of many rows with a large program has a cost.

Must never: run a user's pattern through Python's ``re``.
"""

from __future__ import annotations

import functools
from typing import Any

import re2

from state.errors import BadRequest

#: bytes RE2 may use for one pattern's program and its DFA caches: a larger program is
#: refused (compiling one this size takes about 25 ms)
MAX_MEM = 1 << 20
#: seconds a list query with a user's pattern may take before it is abandoned
BUDGET = 1.0

_OPTIONS = re2.Options()
_OPTIONS.max_mem = MAX_MEM
_OPTIONS.never_capture = True  # only "is there a match": no groups to track
_OPTIONS.log_errors = False


class BadPattern(BadRequest):
    """A filter's pattern that RE2 does not take, or whose query ran past ``BUDGET``."""

    def __init__(self, field: str, pattern: str, why: str) -> None:
        super().__init__(f"Invalid input for query parameters {field}. Value: {pattern}. {why}")
        self.field = field
        self.pattern = pattern


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> Any:
    return re2.compile(pattern.encode(), _OPTIONS)


def compiled(field: str, pattern: str) -> Any:
    """``pattern`` compiled by RE2 (kept for the next query with it), or ``BadPattern``."""
    try:
        return _compiled(pattern)
    except (re2.error, UnicodeEncodeError) as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        raise BadPattern(
            field, pattern, f"'{pattern}' is not a 'regex' that RE2 takes: {reason}"
        ) from None


@functools.lru_cache(maxsize=256)
def _matcher(pattern: str) -> Any:
    """Whether bytes contain a match of ``pattern``: RE2's own ``Match`` under the
    ``re2`` module's ``search``, which also maps byte offsets back to characters and builds
    a match object (``benchmarks.list_patterns``: 30 ms for 10,000 names through
    ``search``, 21 ms through ``Match``). Either gives the same answer: ``search`` takes
    over if that inner object goes away."""
    regexp = getattr(_compiled(pattern), "_regexp", None)
    match = getattr(regexp, "Match", None)
    unanchored = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)
    if match is None or unanchored is None:
        search = _compiled(pattern).search
        return lambda text: search(text) is not None
    return lambda text: match(unanchored, text, 0, len(text))[0][0] != -1


def sqlite_regexp(pattern: str | None, text: str | None) -> bool | None:
    """SQLite's ``pattern REGEXP text``: whether ``text`` contains a match (NULL with NULL)."""
    if pattern is None or text is None:
        return None
    return bool(_matcher(pattern)(text.encode()))

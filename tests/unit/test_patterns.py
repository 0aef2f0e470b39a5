"""Users' patterns: RE2 takes what it can match in linear time and refuses the rest."""

from __future__ import annotations

import sqlite3
import time

import pytest

from state import patterns


def test_worst_case_for_backtracking_is_linear() -> None:
    regexp = patterns.compiled("name", "(a+)+$")
    t0 = time.perf_counter()
    for n in range(20, 60):
        assert patterns.sqlite_regexp("(a+)+$", "a" * n + "!") is False
    assert regexp.search(b"a" * 30) is not None
    assert time.perf_counter() - t0 < 0.5  # Python's re: hours for these 40 names


@pytest.mark.parametrize("pattern", [r"(a)\1", "a(?=b)", "(?<=a)b", "(?!a)", "(a", "a{2,1}"])
def test_what_re2_does_not_take_is_a_bad_pattern(pattern: str) -> None:
    with pytest.raises(patterns.BadPattern) as caught:
        patterns.compiled("name", pattern)
    assert caught.value.status == 400
    assert caught.value.message.startswith(
        f"Invalid input for query parameters name. Value: {pattern}. '{pattern}' is not a 'regex'"
    )


def test_a_program_over_max_mem_is_refused() -> None:
    with pytest.raises(patterns.BadPattern, match="pattern too large"):
        patterns.compiled("name", r"\pL{200}")


def test_sqlite_regexp_searches_like_re_search() -> None:
    db = sqlite3.connect(":memory:")
    db.create_function("regexp", 2, patterns.sqlite_regexp, deterministic=True)
    rows = ["web-1", "db-1", "Web-2", None, "żółw"]
    db.execute("CREATE TABLE t (name TEXT)")
    db.executemany("INSERT INTO t VALUES (?)", [(r,) for r in rows])

    def names(pattern: str) -> list[str]:
        found = db.execute("SELECT name FROM t WHERE name REGEXP ? ORDER BY rowid", (pattern,))
        return [r[0] for r in found]

    assert names("^web") == ["web-1"]
    assert names("(?i)^web") == ["web-1", "Web-2"]
    assert names("-1$") == ["web-1", "db-1"]
    assert names("^ż.ł") == ["żółw"]
    assert names("(?m)^1$") == []

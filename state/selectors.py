"""Label selectors in Kubernetes' syntax: ``app=web,tier!=db,env in (a,b),!legacy,owner``.

Owns: parsing a selector string into a ``Selector`` and matching objects'
``metadata.labels`` against it.

Must never: do I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from state.errors import BadRequest

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = re.compile(rf"^\s*(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)\s*$")
_EQ = re.compile(rf"^\s*(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})\s*$")
_EXISTS = re.compile(rf"^\s*(?P<neg>!?)\s*(?P<key>{_KEY})\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "in":
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...]

    def matches(self, obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(_render(r) for r in self.requirements)


def _render(r: Requirement) -> str:
    if r.op == "exists":
        return r.key
    if r.op == "!exists":
        return "!" + r.key
    return f"{r.key} {r.op} ({','.join(sorted(r.values))})"


def _split(text: str) -> list[str]:
    """Splits on commas that are not inside parentheses."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse(text: str | None) -> Selector | None:
    """Parses a selector; None or blank means "everything". Raises BadRequest."""
    if text is None or not text.strip():
        return None
    reqs: list[Requirement] = []
    for part in _split(text):
        if m := _SET.match(part):
            values = frozenset(v.strip() for v in m["values"].split(",") if v.strip())
            reqs.append(Requirement(m["key"], m["op"], values))
        elif m := _EQ.match(part):
            reqs.append(
                Requirement(m["key"], "notin" if m["op"] == "!=" else "in", frozenset([m["value"]]))
            )
        elif m := _EXISTS.match(part):
            reqs.append(Requirement(m["key"], "!exists" if m["neg"] else "exists"))
        else:
            raise BadRequest(
                f"invalid label selector {part.strip()!r}: expected key=value, key!=value, "
                "key in (a,b), key notin (a,b), key or !key"
            )
    return Selector(tuple(reqs))

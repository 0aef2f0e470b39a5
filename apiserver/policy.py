"""Policy: a rule per API action, with defaults, overridable by a YAML file in oslo.policy's
rule syntax.

Owns: parsing rules (``role:admin``, ``project_id:%(project_id)s``,
``rule:other``, ``@``, ``!``, the empty rule, ``and``, ``or``, ``not`` and
parentheses), the base rules Nova defines (``context_is_admin``,
``project_member_api``, ``project_reader_or_admin``, ...), Keystone's role
implication (admin implies member implies reader), and deciding whether
credentials may do an action on a target.

Must never: allow an action it has no rule for; accept a policy file with a
rule it cannot parse (the API server refuses to start, naming the rule).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from state.errors import BadRequest

#: Keystone's default role implications
IMPLIED = {"admin": ("member", "reader"), "member": ("reader",), "manager": ("member", "reader")}

#: Nova's base rules (nova/policies/base.py), which the action defaults refer to
BASE_RULES = {
    "context_is_admin": "role:admin",
    "admin_api": "is_admin:True",
    "project_member_api": "role:member and project_id:%(project_id)s",
    "project_reader_api": "role:reader and project_id:%(project_id)s",
    "project_member_or_admin": "rule:project_member_api or rule:context_is_admin",
    "project_reader_or_admin": "rule:project_reader_api or rule:context_is_admin",
}
ADMIN = "rule:context_is_admin"
MEMBER_OR_ADMIN = "rule:project_member_or_admin"
READER_OR_ADMIN = "rule:project_reader_or_admin"
ANY = "@"


class PolicyError(BadRequest):
    """A rule that does not parse, or refers to a rule that does not exist."""


@dataclass(frozen=True)
class Creds:
    """What a rule can check of the caller."""

    user_id: str
    project_id: str
    roles: frozenset[str]

    @staticmethod
    def of(user_id: str, project_id: str, roles: tuple[str, ...] | list[str]) -> Creds:
        expanded = {r.lower() for r in roles}
        for role in list(expanded):
            expanded.update(IMPLIED.get(role, ()))
        return Creds(user_id, project_id, frozenset(expanded))


Check = Callable[[Creds, Mapping[str, Any], "Policy"], bool]

#: "(", ")", or a word (a check may hold a "%(name)s" of the target)
_TOKEN = re.compile(r"\(|\)|(?:%\([^)]*\)|[^\s()])+")


def _atom(text: str) -> Check:
    if text == "@":
        return lambda c, t, p: True
    if text == "!":
        return lambda c, t, p: False
    kind, sep, match = text.partition(":")
    if not sep or not kind:
        raise PolicyError(f"cannot parse the check {text!r} (expected kind:match, @ or !)")
    if kind == "rule":
        return lambda c, t, p: p.allows(match, c, t)
    if kind == "role":
        return lambda c, t, p: match.lower() in c.roles
    if kind == "is_admin":
        wanted = match.lower() == "true"
        return lambda c, t, p: p.allows("context_is_admin", c, t) == wanted

    def generic(c: Creds, t: Mapping[str, Any], p: Policy) -> bool:
        try:
            expected = match % t
        except (KeyError, TypeError, ValueError):
            return False
        return str(getattr(c, kind, "")) == expected and expected != ""

    if kind not in ("project_id", "user_id"):
        raise PolicyError(f"unknown check kind {kind!r} in {text!r}")
    return generic


def parse(rule: str) -> Check:
    """A rule in oslo.policy's syntax as a function of (creds, target, policy)."""
    tokens = _TOKEN.findall(rule)
    if not tokens:
        return lambda c, t, p: True  # the empty rule allows everyone, as oslo.policy's
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def or_expr() -> Check:
        parts = [and_expr()]
        while peek() == "or":
            take()
            parts.append(and_expr())
        if len(parts) == 1:
            return parts[0]
        return lambda c, t, p: any(f(c, t, p) for f in parts)

    def and_expr() -> Check:
        parts = [not_expr()]
        while peek() == "and":
            take()
            parts.append(not_expr())
        if len(parts) == 1:
            return parts[0]
        return lambda c, t, p: all(f(c, t, p) for f in parts)

    def not_expr() -> Check:
        if peek() == "not":
            take()
            inner = not_expr()
            return lambda c, t, p: not inner(c, t, p)
        return atom()

    def atom() -> Check:
        token = peek()
        if token is None or token in (")", "and", "or"):
            raise PolicyError(f"cannot parse the rule {rule!r}: unexpected {token or 'end'}")
        take()
        if token == "(":
            inner = or_expr()
            if peek() != ")":
                raise PolicyError(f"cannot parse the rule {rule!r}: missing ')'")
            take()
            return inner
        return _atom(token)

    check = or_expr()
    if pos != len(tokens):
        raise PolicyError(f"cannot parse the rule {rule!r}: unexpected {tokens[pos]!r}")
    return check


def _no_cycles(refs: Mapping[str, list[str]]) -> None:
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise PolicyError(
                f"rules refer to each other in a circle: {' -> '.join((*path, name))}"
            )
        if name in done:
            return
        for ref in refs.get(name, []):
            visit(ref, (*path, name))
        done.add(name)

    for name in refs:
        visit(name, ())


class Policy:
    def __init__(self, defaults: Mapping[str, str], overrides: Mapping[str, str] | None = None):
        """``defaults``: the action rules (the base rules are added); ``overrides``: a
        policy file's rules, which win."""
        self.rules = {**BASE_RULES, **defaults, **(overrides or {})}
        self._checks = {name: parse(rule) for name, rule in self.rules.items()}
        refs = {name: re.findall(r"rule:([^\s()]+)", rule) for name, rule in self.rules.items()}
        for name, named in refs.items():
            for ref in named:
                if ref not in self.rules:
                    raise PolicyError(f"rule {name!r} refers to the unknown rule {ref!r}")
        _no_cycles(refs)

    @staticmethod
    def load(defaults: Mapping[str, str], path: Path | None) -> Policy:
        """The defaults with the rules of a YAML (or JSON) policy file, if given."""
        if path is None:
            return Policy(defaults)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise PolicyError(f"policy file {path}: {exc}") from None
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise PolicyError(f"policy file {path}: expected a mapping of rule names to rules")
        return Policy(defaults, data)

    def allows(self, name: str, creds: Creds, target: Mapping[str, Any]) -> bool:
        check = self._checks.get(name)
        return check is not None and check(creds, target, self)

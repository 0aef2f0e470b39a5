"""Spec documents as users write them: multi-document YAML (or JSON) with where each came from.

Owns: ``StrictLoader`` (YAML's safe loader that refuses a mapping key given
twice, naming both lines: ``vcpus: 1`` then ``vcpus: 8`` is a mistake, not
an override); ``read``, which splits a text into ``Document`` records (file,
document number, first line, object); ``check``, which finds every problem
of one document (not a mapping, no or unknown kind, wrong apiVersion, no
``metadata.name``, every schema error) and places each on the line of the
field it is about; and ``Problem``, rendered as one line:
``FILE: document N (line L): problem``. ``desiredctl apply`` and gitsync
read and check every document with these before they write anything.

Must never: read files, talk to a server, or change the objects it checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from schemas import API_VERSION, KINDS, SchemaError, UnknownKindError, validate

__all__ = ["Document", "Problem", "StrictLoader", "check", "field_line", "read"]

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"


class StrictLoader(_Base):  # type: ignore[misc,valid-type]
    """The safe loader, refusing a mapping that gives one key twice (merge keys ``<<`` may
    still be overridden, as YAML means them)."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: the base class says so
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first given on line {first + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark.line
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


@dataclass(frozen=True)
class Problem:
    """Something wrong with a document; ``str()`` is the line users see."""

    source: str
    #: the document's position in its file (1 for the first)
    document: int
    #: the line of what is wrong (1 for the first)
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}: document {self.document} (line {self.line}): {self.message}"


@dataclass(frozen=True)
class Document:
    """One non-empty document of a file."""

    source: str
    #: its position in the file (1 for the first; empty documents count)
    number: int
    #: the line it starts on
    line: int
    obj: Any
    #: its YAML node, for the lines of its fields
    node: yaml.Node

    def problem(self, message: str, path: str = "") -> Problem:
        """A problem of this document, on the line of the field at ``path`` (dotted, with
        ``[i]`` for list items) as far as the document has it."""
        return Problem(self.source, self.number, field_line(self.node, path), message)


def read(text: str, source: str) -> tuple[list[Document], list[Problem]]:
    """Every non-empty document of ``text`` (from ``source``), and the problems of those that
    could not be read. A document that is not YAML ends the file (what follows cannot be
    told apart); a duplicate key spoils only its own document."""
    docs: list[Document] = []
    problems: list[Problem] = []
    loader = StrictLoader(text)
    number = 0
    try:
        while True:
            number += 1
            try:
                if not loader.check_node():
                    break
                node = loader.get_node()
            except yaml.YAMLError as exc:
                problems.append(_yaml_problem(exc, source, number))
                break
            if node is None:
                continue
            line = node.start_mark.line + 1
            try:
                obj = loader.construct_document(node)
            except yaml.YAMLError as exc:
                problems.append(_yaml_problem(exc, source, number, line))
                continue
            if obj is not None:
                docs.append(Document(source, number, line, obj, node))
    finally:
        loader.dispose()
    return docs, problems


def _yaml_problem(exc: yaml.YAMLError, source: str, number: int, line: int = 1) -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"{context}: {problem}" if context and "duplicate key" not in problem else problem
    return Problem(source, number, mark.line + 1 if mark is not None else line, message)


def check(doc: Document) -> list[Problem]:
    """Every problem of one document (its kind must be spelled as ``schemas`` has it)."""
    obj = doc.obj
    if not isinstance(obj, dict):
        return [doc.problem(f"expected a mapping (an object), got {type(obj).__name__}")]
    problems: list[Problem] = []
    try:
        validate(obj)
    except UnknownKindError as exc:
        if exc.what == "apiVersion":
            message = f"unknown apiVersion {exc.kind!r}; desired serves {API_VERSION}"
            return [*problems, doc.problem(message, "apiVersion")]
        message = f"unknown kind {exc.kind!r}; known kinds: {', '.join(KINDS)}"
        return [*problems, doc.problem(message, "kind")]
    except SchemaError as exc:
        problems += [
            doc.problem(f"{path}: {message}" if path else message, path)
            for path, message in exc.errors
        ]
    return problems


_STEP = re.compile(r"\[(\d+)\]\.?")


def field_line(node: yaml.Node, path: str) -> int:
    """The line of the field at ``path`` in ``node``, or of the deepest part of it there."""
    line = node.start_mark.line + 1
    rest = path
    while rest:
        step = _STEP.match(rest)
        if step is not None:
            index = int(step.group(1))
            if not isinstance(node, yaml.SequenceNode) or index >= len(node.value):
                break
            node = node.value[index]
            line = node.start_mark.line + 1
            rest = rest[step.end() :]
            continue
        if not isinstance(node, yaml.MappingNode):
            break
        found = None
        for key, value in node.value:
            name = str(key.value)
            if rest == name or rest.startswith((name + ".", name + "[")):
                if found is None or len(name) > len(str(found[0].value)):
                    found = (key, value)  # the longest: a key may hold a dot
        if found is None:
            break
        line = found[0].start_mark.line + 1
        node = found[1]
        rest = rest[len(str(found[0].value)) :].removeprefix(".")
    return line

"""Reading spec files for desiredctl: files, directories, stdin, multi-document YAML.

Owns: expanding ``-f`` arguments into documents tagged with where they came
from (``schemas.documents``: duplicate keys refused), and checking every
document of every file before anything is sent: each problem becomes one
line ``FILE: document N (line L): problem``, all of them reported together.

Must never: send anything to the server.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from schemas import documents
from schemas.documents import Document, Problem

SUFFIXES = (".yaml", ".yml", ".json")

__all__ = ["SUFFIXES", "Document", "Loaded", "SpecFileError", "check", "load"]


class SpecFileError(Exception):
    """Files that cannot be used; ``lines`` are the problems, one line each, in file order."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))


def _files(arg: str) -> list[tuple[str, str]]:
    if arg == "-":
        return [("<stdin>", sys.stdin.read())]
    path = Path(arg)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
        return [(str(p), p.read_text()) for p in found]
    if not path.exists():
        raise SpecFileError([f"{arg}: no such file or directory"])
    return [(arg, path.read_text())]


@dataclass(frozen=True)
class Loaded:
    """What ``-f`` arguments hold."""

    #: every non-empty document, in file order
    docs: list[Document]
    #: the problems of documents that could not be read
    problems: list[Problem]
    #: the files, in the order they were read
    sources: list[str]


def load(args: list[str]) -> Loaded:
    """Every document of every file, in order, and the problems of those that could not be
    read; raises SpecFileError for a file that does not exist."""
    loaded = Loaded([], [], [])
    for arg in args:
        for name, text in _files(arg):
            docs, problems = documents.read(text, name)
            loaded.docs.extend(docs)
            loaded.problems.extend(problems)
            loaded.sources.append(name)
    return loaded


def check(loaded: Loaded, prepare: Callable[[Document], None] = lambda _doc: None) -> None:
    """Checks every document (after ``prepare``, which may spell its kind as the server does
    and fill in its project); raises SpecFileError with every problem (those ``load`` found
    too), in file and document order."""
    found = list(loaded.problems)
    for doc in loaded.docs:
        if isinstance(doc.obj, dict):
            prepare(doc)
        found += documents.check(doc)
    if found:
        order = {source: i for i, source in enumerate(loaded.sources)}
        found.sort(key=lambda p: (order[p.source], p.document, p.line))
        raise SpecFileError([str(p) for p in found])

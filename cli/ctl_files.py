"""Reading spec files for desiredctl: files, directories, stdin, multi-document YAML.

Owns: expanding ``-f`` arguments into documents tagged with where they came
from, and reporting broken YAML as ``FILE:LINE: problem``.

Must never: send anything to the server.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SUFFIXES = (".yaml", ".yml", ".json")


class SpecFileError(Exception):
    pass


@dataclass(frozen=True)
class Document:
    source: str
    obj: dict[str, Any]


def _files(arg: str) -> list[tuple[str, str]]:
    if arg == "-":
        return [("<stdin>", sys.stdin.read())]
    path = Path(arg)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
        return [(str(p), p.read_text()) for p in found]
    if not path.exists():
        raise SpecFileError(f"{arg}: no such file or directory")
    return [(arg, path.read_text())]


def load(args: list[str]) -> list[Document]:
    """Every document of every file, in order; raises SpecFileError on the first broken one."""
    docs: list[Document] = []
    for arg in args:
        for name, text in _files(arg):
            try:
                loaded = list(yaml.safe_load_all(text))
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                line = f":{mark.line + 1}" if mark is not None else ""
                problem = getattr(exc, "problem", None) or str(exc)
                raise SpecFileError(f"{name}{line}: {problem}") from None
            for n, doc in enumerate(loaded, 1):
                if doc is None:
                    continue
                where = f"{name}: document {n}"
                if not isinstance(doc, dict):
                    raise SpecFileError(f"{where}: expected a mapping, got {type(doc).__name__}")
                if not doc.get("kind"):
                    raise SpecFileError(f"{where}: has no kind")
                if not isinstance(doc.get("metadata"), dict) or not doc["metadata"].get("name"):
                    raise SpecFileError(f"{where}: has no metadata.name")
                docs.append(Document(name, doc))
    return docs

"""Nova's rule for names: printable characters, no white space at either end.

Owns: which characters are printable as Nova counts them (none of Unicode's
"other" categories: control, format, surrogate, private use, unassigned; of
the separators only the plain space kind), and the check of a whole name.

Must never: import anything (``schemas.formats`` uses it).
"""

from __future__ import annotations

import unicodedata

#: what a valid name is, in Nova's words
PRINTABLE = "printable characters. Can not start or end with whitespace."


def _printable(char: str) -> bool:
    category = unicodedata.category(char)
    return not category.startswith("C") and (not category.startswith("Z") or category == "Zs")


def printable(text: str) -> bool:
    """Whether every character of ``text`` is printable as Nova counts them."""
    if text.isascii():
        return text.isprintable()
    return all(_printable(c) for c in text)


def printable_name(text: str) -> bool:
    """Whether ``text`` is a name as Nova takes it: printable characters, not starting or
    ending with white space (the empty string passes: length is the schema's to say)."""
    if text and (text[0].isspace() or text[-1].isspace()):
        return False
    return printable(text)

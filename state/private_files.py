"""Files only their owner may read: secrets, keys, credentials, the files clients log in with.

Owns: writing such a file whole (a reader never sees half of it) with mode
0600, in a directory of mode 0700.

Must never: leave a moment in which the file or its directory is open to others.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, data: bytes | str) -> None:
    """Writes ``data`` to ``path``, readable and writable by this user alone, in a 0700
    directory; the old file, if any, is replaced in one rename."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    part = path.with_name(path.name + ".part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data.encode() if isinstance(data, str) else data)
    finally:
        os.close(fd)
    part.replace(path)

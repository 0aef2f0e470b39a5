"""Who may open hostd's files: root, and QEMU as libvirt runs it.

Owns: the owners and modes of hostd's storage tree (the image cache and the
instances' directories): every directory ``0710 root:<QEMU's group>`` (QEMU
passes through, nobody else enters, not even to list), every file ``0640``
of group QEMU's and owned by root or by QEMU's user (libvirt's dynamic
ownership gives a running guest's disk, images and kernel to QEMU's user
while the domain runs, and writes through that); setting them on what hostd
makes, before it is renamed into place, and checking and repairing the whole
tree when hostd starts. QEMU's user and group are what libvirt says it runs
QEMU as (its DAC security label); a driver without one (libvirt's test
driver) gets root's, the same code.

Must never: leave a file of the tree readable, or a directory enterable, by
anyone but root and QEMU's user and group; follow a symbolic link; change
anything outside the tree it is given.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

#: root's, and QEMU's group's: pass through (not list)
DIRECTORY_MODE = 0o710
#: root writes, QEMU's group reads (its user, owning a running guest's files, writes)
FILE_MODE = 0o640


@dataclass(frozen=True)
class Repaired:
    """One path whose owner or mode was not as it must be, and what it was."""

    path: Path
    uid: int
    gid: int
    mode: int

    def __str__(self) -> str:
        return f"{self.path} (was {self.mode:04o} {self.uid}:{self.gid})"


@dataclass(frozen=True)
class FileAccess:
    """QEMU's user and group, as libvirt runs QEMU; ``ROOT_ONLY`` when it says none."""

    uid: int
    gid: int

    def directory(self, path: Path) -> None:
        """``path`` made when missing (its parent must exist) and given the tree's access."""
        path.mkdir(exist_ok=True)
        self._set(path, os.lstat(path), directory=True)

    def file(self, path: Path) -> None:
        """A file hostd made (before it is renamed into place) given the tree's access."""
        self._set(path, os.lstat(path), directory=False)

    def repair(self, root: Path) -> list[Repaired]:
        """Every directory and regular file under ``root`` (itself included, made when
        missing) given the tree's access; what had another. Symbolic links and other
        special files are left alone."""
        root.mkdir(parents=True, exist_ok=True)
        repaired = []
        # os.walk does not descend into links to directories; links to files are lstat'ed
        for here, _dirs, files in os.walk(root):
            for name in (here, *(os.path.join(here, f) for f in files)):
                try:
                    st = os.lstat(name)
                except FileNotFoundError:
                    continue  # removed while we walked
                is_dir = stat.S_ISDIR(st.st_mode)
                if (is_dir or stat.S_ISREG(st.st_mode)) and self._set(
                    Path(name), st, directory=is_dir
                ):
                    repaired.append(
                        Repaired(Path(name), st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
                    )
        return repaired

    def _set(self, path: Path, st: os.stat_result, *, directory: bool) -> bool:
        """Sets what differs; whether anything did."""
        mode = DIRECTORY_MODE if directory else FILE_MODE
        # a running guest's files belong to QEMU's user (dynamic ownership): kept so
        uid = st.st_uid if not directory and st.st_uid == self.uid else 0
        changed = False
        if (st.st_uid, st.st_gid) != (uid, self.gid):
            os.chown(path, uid, self.gid, follow_symlinks=False)
            changed = True
        if stat.S_IMODE(st.st_mode) != mode:
            os.chmod(path, mode)
            changed = True
        return changed


#: for a hypervisor that runs no QEMU (libvirt's test driver): root alone
ROOT_ONLY = FileAccess(0, 0)

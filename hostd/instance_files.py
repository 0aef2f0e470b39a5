"""The files of each real guest on this host: its disk overlay and its console log.

Owns: ``<instances>/<uid>/`` holding ``disk`` (a qcow2 overlay on the cached
image, made with ``qemu-img``), ``console.log`` (the serial console),
``disk.resize-backup`` (the disk as it was before a resize, until the resize
is confirmed or reverted), ``source`` (which image and rebuild the disk
was made from, so that a rebuild makes a fresh one) and ``snapshot.qcow2``
(the disk flattened into one qcow2 for an upload, while it is made and sent),
each given the tree's owner and mode (``hostd.file_access``: root's and
QEMU's alone) before it is renamed into place; ``console.log`` is virtlogd's
(root's alone).

Must never: shrink a disk, or touch files outside the instance's directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

from hostd.file_access import ROOT_ONLY, FileAccess
from state.errors import Transient


class DiskError(Transient):
    """qemu-img failed; retried with backoff."""


async def _qemu_img(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "qemu-img",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise DiskError(f"qemu-img {args[0]}: {err.decode(errors='replace').strip()}")
    return out.decode()


class InstanceFiles:
    def __init__(self, root: Path, access: FileAccess = ROOT_ONLY) -> None:
        """``access``: who may open the files besides root (QEMU)."""
        self.root = root
        self.access = access

    def directory(self, uid: str) -> Path:
        return self.root / uid

    def disk(self, uid: str) -> Path:
        return self.directory(uid) / "disk"

    def console_log(self, uid: str) -> Path:
        return self.directory(uid) / "console.log"

    def _backup(self, uid: str) -> Path:
        return self.directory(uid) / "disk.resize-backup"

    def _source(self, uid: str) -> Path:
        return self.directory(uid) / "source"

    async def prepare_disk(
        self, uid: str, base: Path, base_format: str, size_gib: int, source: str
    ) -> Path:
        """The instance's disk: made from ``base`` when absent or when ``source`` (the image
        and rebuild it stands for) changed, grown to ``size_gib`` (0: the image's size)."""
        d = self.directory(uid)
        for p in (self.root, d):
            self.access.directory(p)
        disk = self.disk(uid)
        source_file = self._source(uid)
        have = source_file.read_text() if source_file.exists() else None
        if not disk.exists() or have != source:
            tmp = disk.with_suffix(".new")
            args = ["create", "-q", "-f", "qcow2", "-F", base_format, "-b", str(base), str(tmp)]
            await _qemu_img(*args)
            self.access.file(tmp)
            os.replace(tmp, disk)
            self._write(source_file, source)
        if size_gib:
            info = json.loads(await _qemu_img("info", "--output=json", "-U", str(disk)))
            if info["virtual-size"] < size_gib << 30:
                await _qemu_img("resize", "-q", str(disk), f"{size_gib}G")
        return disk

    def _write(self, path: Path, text: str) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        self.access.file(tmp)
        os.replace(tmp, path)

    def backup_for_resize(self, uid: str) -> None:
        """Keeps the disk as it is now, for a revert; the first call of a resize wins."""
        disk, backup = self.disk(uid), self._backup(uid)
        if disk.exists() and not backup.exists():
            tmp = backup.with_suffix(".tmp")
            shutil.copy2(disk, tmp)
            self.access.file(tmp)
            os.replace(tmp, backup)

    def revert_resize(self, uid: str) -> None:
        """Puts back the disk kept by ``backup_for_resize``, if there is one."""
        backup = self._backup(uid)
        if backup.exists():
            os.replace(backup, self.disk(uid))

    def confirm_resize(self, uid: str) -> None:
        self._backup(uid).unlink(missing_ok=True)

    async def snapshot(self, uid: str) -> Path:
        """The disk flattened into a standalone qcow2 (its image below it included), read
        while the guest may hold it (``-U``); the caller removes the file."""
        out = self.directory(uid) / "snapshot.qcow2"
        out.unlink(missing_ok=True)
        await _qemu_img("convert", "-U", "-O", "qcow2", str(self.disk(uid)), str(out))
        self.access.file(out)
        return out

    def remove(self, uid: str) -> None:
        shutil.rmtree(self.directory(uid), ignore_errors=True)

    def known(self) -> list[str]:
        """The uids that have a directory here."""
        if not self.root.exists():
            return []
        return [p.name for p in self.root.iterdir() if p.is_dir()]

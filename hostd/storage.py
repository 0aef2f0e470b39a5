"""What a real guest boots from: the image cache and the instance's own files, together.

Owns: turning an assignment's image (and its kernel and ramdisk, for direct
kernel boot) into paths on this host: the images fetched into the cache, the
disk overlay made or grown, the console log's place; the owners and modes of
the whole tree checked and repaired (``hostd.file_access``) when hostd starts.

Must never: be used by simulated hosts (they have no files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hostd.file_access import ROOT_ONLY, FileAccess, Repaired
from hostd.images import ImageCache, ImageError, Source
from hostd.instance_files import InstanceFiles

#: Image diskFormat -> the format QEMU reads it as
_QEMU_FORMATS = {"qcow2": "qcow2", "raw": "raw", "ami": "raw", "vmdk": "vmdk", "vdi": "vdi"}


@dataclass(frozen=True)
class BootFiles:
    disk: str
    kernel: str
    initrd: str
    cmdline: str
    console_log: str


@dataclass(frozen=True)
class Storage:
    root: Path
    images: ImageCache
    files: InstanceFiles
    access: FileAccess

    @classmethod
    def under(
        cls, directory: Path, service: Source | None = None, access: FileAccess = ROOT_ONLY
    ) -> Storage:
        """``service``: where images without a url come from (the image service);
        ``access``: who may open the files besides root (QEMU, as libvirt runs it)."""
        return cls(
            directory,
            ImageCache(directory / "images", service, access),
            InstanceFiles(directory / "instances", access),
            access,
        )

    def repair(self) -> list[Repaired]:
        """The tree (made when missing) with the owners and modes it must have; what had
        others. Blocks: run it in a thread."""
        return self.access.repair(self.root)

    def boot_files(self, a: dict[str, Any]) -> BootFiles:
        """Where the assignment's files are (or will be): a pure function of the assignment."""
        uid, image = a["uid"], a["image"]
        kernel, ramdisk = image.get("kernel"), image.get("ramdisk")
        return BootFiles(
            disk=str(self.files.disk(uid)),
            kernel=str(self.images.path(kernel)) if kernel else "",
            initrd=str(self.images.path(ramdisk)) if kernel and ramdisk else "",
            cmdline=image.get("kernelCmdline", "") if kernel else "",
            console_log=str(self.files.console_log(uid)),
        )

    async def prepare(self, a: dict[str, Any]) -> None:
        """Fetches the images and makes or grows the disk; raises ImageError when they cannot
        be used."""
        image = a["image"]
        fmt = _QEMU_FORMATS.get(image.get("diskFormat", "qcow2"))
        if fmt is None:
            raise ImageError(
                f"image {image.get('name')!r} of format {image.get('diskFormat')!r} cannot be a root disk"
            )
        base = await self.images.fetch(image)
        for part in ("kernel", "ramdisk"):
            if image.get(part):
                await self.images.fetch(image[part])
        source = f"{image['uid']}:{a.get('rebuild', {}).get('generation', 0)}"
        await self.files.prepare_disk(a["uid"], base, fmt, a["flavor"]["diskGiB"], source)

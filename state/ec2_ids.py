"""EC2's ids of desired's objects: a prefix and 17 hex digits of the object's uid.

Owns: ``i-`` for instances, ``ami-``/``aki-``/``ari-`` for images by their
disk format (as EC2 and Nova name machine, kernel and ramdisk images).

Must never: change an id once given (it is derived from the uid alone).
"""

from __future__ import annotations

from state.envelope import Obj

_IMAGE_PREFIX = {"aki": "aki", "ari": "ari"}


def _hex(uid: str) -> str:
    return uid.replace("-", "")[:17]


def of_instance(inst: Obj) -> str:
    return "i-" + _hex(inst["metadata"]["uid"])


def of_image(image: Obj) -> str:
    prefix = _IMAGE_PREFIX.get(image["spec"].get("diskFormat", ""), "ami")
    return f"{prefix}-{_hex(image['metadata']['uid'])}"

"""What ``desired up`` creates on its first start, so that a guest boots at once.

Owns: the tiny guest built from Debian packages (``fixtures.guest_image``)
under ``<data-dir>/guest-image``, its three public Images (``tiny-kernel``,
``tiny-ramdisk``, ``tiny``), the flavors ``m1.tiny`` and ``m1.small``, and
the instance ``demo/tiny-1``; and ``<data-dir>/demo-created``, which says
they were made once (deleting them later is the user's choice, not undone).

Must never: overwrite an object that already exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fixtures.guest_image import GuestImageError, build
from state.store import Store

FLAVORS = [
    {"name": "m1.tiny", "vcpus": 1, "ramMiB": 128, "diskGiB": 1},
    {"name": "m1.small", "vcpus": 1, "ramMiB": 256, "diskGiB": 2},
]
INSTANCE = {"project": "demo", "name": "tiny-1"}


def demo_objects(data_dir: Path) -> list[dict[str, Any]]:
    image = build(data_dir / "guest-image")
    flavors = [
        {
            "kind": "Flavor",
            "metadata": {"name": f["name"]},
            "spec": {k: v for k, v in f.items() if k != "name"},
        }
        for f in FLAVORS
    ]
    instance = {
        "kind": "Instance",
        "metadata": {"name": INSTANCE["name"], "project": INSTANCE["project"]},
        "spec": {"flavor": "m1.tiny", "image": "tiny"},
    }
    return [*flavors, *image.image_objects("tiny"), instance]


async def create_demo(store: Store, data_dir: Path) -> str:
    """Creates the demo objects once; says what it did, for ``up`` to print."""
    marker = data_dir / "demo-created"
    if marker.exists():
        return "demo objects were created at the first start"
    try:
        objects = demo_objects(data_dir)
    except GuestImageError as exc:
        return f"no demo guest: {exc}"
    for obj in objects:
        await store.create_or_get(obj)
    marker.write_text("flavors m1.tiny, m1.small; images tiny*; instance demo/tiny-1\n")
    return "created flavors m1.tiny and m1.small, images tiny*, and instance demo/tiny-1"

"""What ``desired up`` creates on its first start, so that a guest boots at once.

Owns: the tiny guest built from Debian packages (``fixtures.guest_image``)
under ``<data-dir>/guest-image``, its three public Images (``tiny-kernel``,
``tiny-ramdisk``, ``tiny``) registered in the image service (their data
stored there, which hostd reads back with its own credentials), the
flavors ``m1.tiny`` and ``m1.small``, the
network ``demo/default`` and the instance ``demo/tiny-1`` on it; and ``<data-dir>/demo-created``, which says
they were made once (deleting them later is the user's choice, not undone).

Must never: overwrite an object that already exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from apiserver.image_data import ImageData
from apiserver.images import is_active, queued, store_data
from fixtures.guest_image import GuestImageError, build
from state.store import Store

FLAVORS = [
    {"name": "m1.tiny", "vcpus": 1, "ramMiB": 128, "diskGiB": 1},
    {"name": "m1.small", "vcpus": 1, "ramMiB": 256, "diskGiB": 2},
]
INSTANCE = {"project": "demo", "name": "tiny-1"}
#: the demo project's network "default" (in the guests' namespace; nothing routes it out)
NETWORK = {"cidr": "10.231.0.0/24", "dhcpRange": {"start": "10.231.0.10", "end": "10.231.0.250"}}


def demo_objects(data_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    """The demo's objects, and the files of its images by image name (the Images carry no
    url: their data goes to the image service)."""
    image = build(data_dir / "guest-image")
    flavors = [
        {
            "kind": "Flavor",
            "metadata": {"name": f["name"]},
            "spec": {k: v for k, v in f.items() if k != "name"},
        }
        for f in FLAVORS
    ]
    network = {
        "kind": "Network",
        "metadata": {"name": "default", "project": INSTANCE["project"]},
        "spec": NETWORK,
    }
    instance = {
        "kind": "Instance",
        "metadata": {"name": INSTANCE["name"], "project": INSTANCE["project"]},
        "spec": {"flavor": "m1.tiny", "image": "tiny", "networks": [{"network": "default"}]},
    }
    images, files = [], {}
    for obj in image.image_objects("tiny"):
        spec = {k: v for k, v in obj["spec"].items() if k not in ("url", "checksum", "sizeBytes")}
        files[obj["metadata"]["name"]] = Path(unquote(urlparse(obj["spec"]["url"]).path))
        images.append(queued(dict(obj, spec=spec)))
    return [*flavors, *images, network, instance], files


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, 1 << 20):
            yield chunk


async def create_demo(store: Store, data_dir: Path, data: ImageData) -> str:
    """Creates the demo objects once, with the images' data in ``data``; says what it did,
    for ``up`` to print."""
    marker = data_dir / "demo-created"
    if marker.exists():
        return "demo objects were created at the first start"
    try:
        objects, files = demo_objects(data_dir)
    except GuestImageError as exc:
        return f"no demo guest: {exc}"
    for obj in objects:
        made, _ = await store.create_or_get(obj)
        if obj["kind"] == "Image" and not is_active(made):
            await store_data(store, data, made, _chunks(files[obj["metadata"]["name"]]))
    marker.write_text(
        "flavors m1.tiny, m1.small; images tiny*; network demo/default; instance demo/tiny-1\n"
    )
    return (
        "created flavors m1.tiny and m1.small, images tiny*, network demo/default "
        f"({NETWORK['cidr']}) and instance demo/tiny-1 on it"
    )

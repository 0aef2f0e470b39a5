"""Keystone's names of users and projects, and the objects that keep them.

Keystone takes any name (a project's up to 64 characters, a user's up to 255,
with something other than white space), unique in its domain, and lets it
change; an object's name is a lowercase DNS-like name that never changes (a
project's is what every object of the project names in ``metadata.project``).
So a User or Project has two names: its object name, and its Keystone name,
which is the object name unless ``spec.displayName`` says otherwise. A name
Keystone's API creates becomes the object name itself when it is a valid one
(``openstack project create demo`` makes the object ``demo``, as ``desiredctl``
would); otherwise its readable part and a digest of it (``My Project`` ->
``my-project-4f1c2a9e``), so that two racing creates of one name meet at one
key and the second gets Keystone's 409. A rename changes ``spec.displayName``
only.

Owns: the name an object shows
(``shown``), the object name a new one gets (``object_name``), the spec field
a name needs (``display``), and finding an object by its Keystone name
(``find``).

Must never: change an object's name; decide uniqueness alone (a name is
refused when ``find`` sees it; a create of a name another object was renamed
to at the same moment is the one race left, as a rename is a change of
``spec.displayName``).
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from apiserver.compute.names import is_object_name, slug
from state.envelope import Obj, Ref
from state.store import Store


def shown(obj: Obj) -> str:
    """The Keystone name of a User or Project."""
    return str((obj.get("spec") or {}).get("displayName") or obj["metadata"]["name"])


def object_name(name: str, kind: str, fresh: bool = False) -> str:
    """The object name for a new ``kind`` named ``name``: the name itself when it is a
    valid object name, else its readable part and a digest; with ``fresh``, its readable
    part and a random suffix (when that one is taken by an object renamed since)."""
    if fresh:
        return f"{slug(name, kind.lower())}-{secrets.token_hex(4)}"
    return _derived(name, kind)


def _derived(name: str, kind: str) -> str:
    """The name itself when it is a valid object name of at most 63 characters, else its
    readable part and a digest of it (one name, one object)."""
    if is_object_name(name, limit=63):
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{slug(name, kind.lower())}-{digest}"


def display(name: str, object_name: str) -> dict[str, str]:
    """The spec fields that give object ``object_name`` the Keystone name ``name``."""
    return {} if name == object_name else {"displayName": name}


def rename(spec: dict[str, Any], name: str, object_name: str) -> None:
    """Gives the spec of object ``object_name`` the Keystone name ``name``."""
    spec.pop("displayName", None)
    spec.update(display(name, object_name))


async def find(store: Store, kind: str, name: str) -> Obj | None:
    """The ``kind`` whose Keystone name is ``name``, if there is one."""
    candidates = {_derived(name, kind)}
    if is_object_name(name):
        candidates.add(name)  # made by desiredctl, or before names were derived
    for candidate in candidates:
        obj = await store.get_or_none(Ref(kind, None, candidate))
        if obj is not None and shown(obj) == name:
            return obj
    # renamed since it was made: its object name says nothing of its name
    return next((o for o in (await store.list(kind)).items if shown(o) == name), None)

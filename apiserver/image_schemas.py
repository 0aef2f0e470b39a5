"""The image service's JSON Schemas of its documents (``GET /image/v2/schemas/...``).

Owns: Glance's schema documents of an image and a page of images, of an image
member and the members list, and of the metadata definitions' documents
(namespace, object, property, tag, resource type association, and the lists of
each), in the form Glance serves them (``name``, ``properties``, ``links`` of
the lists). They describe what this service's documents hold.

Must never: describe a field the documents do not have.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.images import VISIBILITIES, ImageFault

_STRING = {"type": "string"}
_STAMP = {"type": "string", "format": "date-time", "readOnly": True}
_LIST_LINKS = [
    {"rel": "first", "href": "{first}"},
    {"rel": "next", "href": "{next}"},
    {"rel": "describedby", "href": "{schema}"},
]

IMAGE = {
    "name": "image",
    "additionalProperties": {"type": "string"},
    "properties": {
        "id": {"type": "string", "readOnly": True, "description": "The image's id (a UUID)."},
        "name": {"type": ["null", "string"], "maxLength": 255},
        "status": {
            "type": "string",
            "readOnly": True,
            "enum": ["queued", "uploading", "active", "deactivated"],
        },
        "visibility": {"type": "string", "enum": list(VISIBILITIES)},
        "protected": {"type": "boolean"},
        "os_hidden": {"type": "boolean"},
        "checksum": {"type": ["null", "string"], "readOnly": True, "maxLength": 32},
        "os_hash_algo": {"type": ["null", "string"], "readOnly": True},
        "os_hash_value": {"type": ["null", "string"], "readOnly": True},
        "owner": {"type": ["null", "string"], "maxLength": 255},
        "size": {"type": ["null", "integer"], "readOnly": True},
        "virtual_size": {"type": ["null", "integer"], "readOnly": True},
        "container_format": {"type": "string", "enum": ["bare", "ami", "aki", "ari", "ovf"]},
        "disk_format": {
            "type": "string",
            "enum": ["qcow2", "raw", "ami", "aki", "ari", "vmdk", "vdi", "iso"],
        },
        "min_disk": {"type": "integer", "minimum": 0},
        "min_ram": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 255}},
        "kernel_id": {"type": ["null", "string"]},
        "ramdisk_id": {"type": ["null", "string"]},
        "created_at": _STAMP,
        "updated_at": _STAMP,
        "self": {"type": "string", "readOnly": True},
        "file": {"type": "string", "readOnly": True},
        "schema": {"type": "string", "readOnly": True},
    },
    "links": [
        {"rel": "self", "href": "{self}"},
        {"rel": "enclosure", "href": "{file}"},
        {"rel": "describedby", "href": "{schema}"},
    ],
}

MEMBER = {
    "name": "member",
    "properties": {
        "image_id": {"type": "string", "readOnly": True},
        "member_id": {"type": "string", "readOnly": True},
        "status": {"type": "string", "enum": ["pending", "accepted", "rejected"]},
        "created_at": _STAMP,
        "updated_at": _STAMP,
        "schema": {"type": "string", "readOnly": True},
    },
}

METADEF_PROPERTY = {
    "name": "property",
    "required": ["name", "title", "type"],
    "properties": {
        "name": {"type": "string", "maxLength": 80},
        "title": _STRING,
        "description": _STRING,
        "type": {
            "type": "string",
            "enum": ["array", "boolean", "integer", "number", "object", "string"],
        },
        "default": {},
        "enum": {"type": "array"},
        "items": {"type": "object"},
        "minimum": {"type": "number"},
        "maximum": {"type": "number"},
        "minLength": {"type": "integer", "minimum": 0},
        "maxLength": {"type": "integer", "minimum": 0},
        "pattern": {"type": "string", "format": "regex"},
        "readonly": {"type": "boolean"},
        "operators": {"type": "array", "items": _STRING},
    },
}
METADEF_OBJECT = {
    "name": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "maxLength": 80},
        "description": _STRING,
        "required": {"type": "array", "items": _STRING},
        "properties": {"type": "object", "additionalProperties": {"type": "object"}},
        "schema": {"type": "string", "readOnly": True},
        "self": {"type": "string", "readOnly": True},
        "created_at": _STAMP,
        "updated_at": _STAMP,
    },
}
METADEF_TAG = {
    "name": "tag",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "maxLength": 255},
        "created_at": _STAMP,
        "updated_at": _STAMP,
    },
}
METADEF_RESOURCE_TYPE = {
    "name": "resource_type_association",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "maxLength": 80},
        "prefix": {"type": "string", "maxLength": 80},
        "properties_target": {"type": "string", "maxLength": 80},
        "created_at": _STAMP,
        "updated_at": _STAMP,
    },
}
METADEF_NAMESPACE = {
    "name": "namespace",
    "required": ["namespace"],
    "properties": {
        "namespace": {"type": "string", "maxLength": 80},
        "display_name": {"type": "string", "maxLength": 80},
        "description": {"type": "string", "maxLength": 500},
        "visibility": {"type": "string", "enum": ["public", "private"]},
        "protected": {"type": "boolean"},
        "owner": {"type": "string", "maxLength": 255},
        "resource_type_associations": {"type": "array", "items": METADEF_RESOURCE_TYPE},
        "properties": {"type": "object", "additionalProperties": METADEF_PROPERTY},
        "objects": {"type": "array", "items": METADEF_OBJECT},
        "tags": {"type": "array", "items": METADEF_TAG},
        "self": {"type": "string", "readOnly": True},
        "schema": {"type": "string", "readOnly": True},
        "created_at": _STAMP,
        "updated_at": _STAMP,
    },
}


def _listing(name: str, item: dict[str, Any], key: str = "") -> dict[str, Any]:
    """Glance's schema of a list of ``item`` under ``key`` (``name`` when empty)."""
    return {
        "name": name,
        "properties": {
            key or name: {"type": "array", "items": item},
            "first": _STRING,
            "next": _STRING,
            "schema": _STRING,
        },
        "links": _LIST_LINKS,
    }


def _properties_listing() -> dict[str, Any]:
    return {
        "name": "properties",
        "properties": {"properties": {"type": "object", "additionalProperties": METADEF_PROPERTY}},
    }


#: every schema, by its path under ``/v2/schemas/``
SCHEMAS: dict[str, dict[str, Any]] = {
    "image": IMAGE,
    "images": _listing("images", IMAGE),
    "member": MEMBER,
    "members": {
        "name": "members",
        "properties": {"members": {"type": "array", "items": MEMBER}, "schema": _STRING},
    },
    "metadefs/namespace": METADEF_NAMESPACE,
    "metadefs/namespaces": _listing("namespaces", METADEF_NAMESPACE),
    "metadefs/object": METADEF_OBJECT,
    "metadefs/objects": _listing("objects", METADEF_OBJECT),
    "metadefs/property": METADEF_PROPERTY,
    "metadefs/properties": _properties_listing(),
    "metadefs/tag": METADEF_TAG,
    "metadefs/tags": _listing("tags", METADEF_TAG),
    "metadefs/resource_type": METADEF_RESOURCE_TYPE,
    "metadefs/resource_types": _listing(
        "resource_type_associations", METADEF_RESOURCE_TYPE, "resource_type_associations"
    ),
}


async def show_schema(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in SCHEMAS:
        raise ImageFault(404, f"No schema {name}")
    return web.json_response(SCHEMAS[name])


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2/schemas/{name:.+}", show_schema)

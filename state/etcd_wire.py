"""etcd's v3 gRPC messages, the part desired speaks, as protobuf classes built at import.

Owns: the layouts of the messages (names, field numbers and types as etcd's
``api/etcdserverpb/rpc.proto`` and ``api/mvccpb/kv.proto`` define them; fields
desired never sends or reads are left out, which the wire allows) and the
method paths of the KV, Lease and Auth services (watches go through etcd's JSON
gateway: see ``state.etcd``). The classes are built with
protobuf's descriptor API from the table below: no generated code, no protoc.

Must never: change a field number (they are etcd's wire, not ours).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
BYTES, INT64, UINT64, BOOL, STRING, ENUM = (
    _F.TYPE_BYTES,
    _F.TYPE_INT64,
    _F.TYPE_UINT64,
    _F.TYPE_BOOL,
    _F.TYPE_STRING,
    _F.TYPE_INT32,  # an enum on the wire is a varint; desired reads and writes the numbers
)
REPEATED = "repeated"

#: message -> its fields: (name, number, scalar type or message name[, REPEATED or oneof name])
_MESSAGES: dict[str, list[tuple[Any, ...]]] = {
    "ResponseHeader": [("cluster_id", 1, UINT64), ("member_id", 2, UINT64), ("revision", 3, INT64)],
    "KeyValue": [
        ("key", 1, BYTES),
        ("create_revision", 2, INT64),
        ("mod_revision", 3, INT64),
        ("version", 4, INT64),
        ("value", 5, BYTES),
        ("lease", 6, INT64),
    ],
    "RangeRequest": [
        ("key", 1, BYTES),
        ("range_end", 2, BYTES),
        ("limit", 3, INT64),
        ("revision", 4, INT64),
        ("keys_only", 8, BOOL),
        ("count_only", 9, BOOL),
    ],
    "RangeResponse": [
        ("header", 1, "ResponseHeader"),
        ("kvs", 2, "KeyValue", REPEATED),
        ("more", 3, BOOL),
        ("count", 4, INT64),
    ],
    "PutRequest": [("key", 1, BYTES), ("value", 2, BYTES), ("lease", 3, INT64)],
    "PutResponse": [("header", 1, "ResponseHeader")],
    "DeleteRangeRequest": [("key", 1, BYTES), ("range_end", 2, BYTES)],
    "DeleteRangeResponse": [("header", 1, "ResponseHeader"), ("deleted", 2, INT64)],
    "RequestOp": [
        ("request_range", 1, "RangeRequest", "request"),
        ("request_put", 2, "PutRequest", "request"),
        ("request_delete_range", 3, "DeleteRangeRequest", "request"),
    ],
    "ResponseOp": [
        ("response_range", 1, "RangeResponse", "response"),
        ("response_put", 2, "PutResponse", "response"),
        ("response_delete_range", 3, "DeleteRangeResponse", "response"),
    ],
    "Compare": [
        ("result", 1, ENUM),
        ("target", 2, ENUM),
        ("key", 3, BYTES),
        ("version", 4, INT64, "target_union"),
        ("create_revision", 5, INT64, "target_union"),
        ("mod_revision", 6, INT64, "target_union"),
        ("value", 7, BYTES, "target_union"),
    ],
    "TxnRequest": [
        ("compare", 1, "Compare", REPEATED),
        ("success", 2, "RequestOp", REPEATED),
        ("failure", 3, "RequestOp", REPEATED),
    ],
    "TxnResponse": [
        ("header", 1, "ResponseHeader"),
        ("succeeded", 2, BOOL),
        ("responses", 3, "ResponseOp", REPEATED),
    ],
    "CompactionRequest": [("revision", 1, INT64), ("physical", 2, BOOL)],
    "CompactionResponse": [("header", 1, "ResponseHeader")],
    "LeaseGrantRequest": [("TTL", 1, INT64), ("ID", 2, INT64)],
    "LeaseGrantResponse": [
        ("header", 1, "ResponseHeader"),
        ("ID", 2, INT64),
        ("TTL", 3, INT64),
        ("error", 4, STRING),
    ],
    "LeaseRevokeRequest": [("ID", 1, INT64)],
    "LeaseRevokeResponse": [("header", 1, "ResponseHeader")],
    "LeaseKeepAliveRequest": [("ID", 1, INT64)],
    "LeaseKeepAliveResponse": [
        ("header", 1, "ResponseHeader"),
        ("ID", 2, INT64),
        ("TTL", 3, INT64),
    ],
    # authentication and its users and roles (etcd's Auth service; Permission is authpb's)
    "Permission": [("permType", 1, ENUM), ("key", 2, BYTES), ("range_end", 3, BYTES)],
    "AuthEnableRequest": [],
    "AuthenticateRequest": [("name", 1, STRING), ("password", 2, STRING)],
    "AuthenticateResponse": [("header", 1, "ResponseHeader"), ("token", 2, STRING)],
    "AuthUserAddRequest": [("name", 1, STRING), ("password", 2, STRING)],
    "AuthUserChangePasswordRequest": [("name", 1, STRING), ("password", 2, STRING)],
    "AuthUserGrantRoleRequest": [("user", 1, STRING), ("role", 2, STRING)],
    "AuthRoleAddRequest": [("name", 1, STRING)],
    "AuthRoleGetRequest": [("role", 1, STRING)],
    "AuthRoleGetResponse": [
        ("header", 1, "ResponseHeader"),
        ("perm", 2, "Permission", REPEATED),
    ],
    "AuthRoleGrantPermissionRequest": [("name", 1, STRING), ("perm", 2, "Permission")],
    "AuthRoleRevokePermissionRequest": [
        ("role", 1, STRING),
        ("key", 2, BYTES),
        ("range_end", 3, BYTES),
    ],
    #: every Auth call desired makes but Authenticate and RoleGet answers only a header
    "AuthResponse": [("header", 1, "ResponseHeader")],
}

#: authpb.Permission's types, by etcd's numbers
PERMISSION_TYPE = {"READ": 0, "WRITE": 1, "READWRITE": 2}

#: Compare's enums, by etcd's numbers
COMPARE_RESULT = {"EQUAL": 0, "GREATER": 1, "LESS": 2, "NOT_EQUAL": 3}
COMPARE_TARGET = {"VERSION": 0, "CREATE": 1, "MOD": 2, "VALUE": 3}

#: method path -> the names of its request and response messages
METHODS = {
    "/etcdserverpb.KV/Range": ("RangeRequest", "RangeResponse"),
    "/etcdserverpb.KV/Put": ("PutRequest", "PutResponse"),
    "/etcdserverpb.KV/DeleteRange": ("DeleteRangeRequest", "DeleteRangeResponse"),
    "/etcdserverpb.KV/Txn": ("TxnRequest", "TxnResponse"),
    "/etcdserverpb.KV/Compact": ("CompactionRequest", "CompactionResponse"),
    "/etcdserverpb.Lease/LeaseGrant": ("LeaseGrantRequest", "LeaseGrantResponse"),
    "/etcdserverpb.Lease/LeaseRevoke": ("LeaseRevokeRequest", "LeaseRevokeResponse"),
    "/etcdserverpb.Lease/LeaseKeepAlive": ("LeaseKeepAliveRequest", "LeaseKeepAliveResponse"),
    "/etcdserverpb.Auth/AuthEnable": ("AuthEnableRequest", "AuthResponse"),
    "/etcdserverpb.Auth/Authenticate": ("AuthenticateRequest", "AuthenticateResponse"),
    "/etcdserverpb.Auth/UserAdd": ("AuthUserAddRequest", "AuthResponse"),
    "/etcdserverpb.Auth/UserChangePassword": ("AuthUserChangePasswordRequest", "AuthResponse"),
    "/etcdserverpb.Auth/UserGrantRole": ("AuthUserGrantRoleRequest", "AuthResponse"),
    "/etcdserverpb.Auth/RoleAdd": ("AuthRoleAddRequest", "AuthResponse"),
    "/etcdserverpb.Auth/RoleGet": ("AuthRoleGetRequest", "AuthRoleGetResponse"),
    "/etcdserverpb.Auth/RoleGrantPermission": ("AuthRoleGrantPermissionRequest", "AuthResponse"),
    "/etcdserverpb.Auth/RoleRevokePermission": ("AuthRoleRevokePermissionRequest", "AuthResponse"),
}


def _file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name="desired/etcd_wire.proto", package="etcdserverpb", syntax="proto3"
    )
    for name, fields in _MESSAGES.items():
        msg = proto.message_type.add(name=name)
        oneofs: list[str] = []
        for field_name, number, kind, *extra in fields:
            field = msg.field.add(name=field_name, number=number, label=_F.LABEL_OPTIONAL)
            if isinstance(kind, str):
                field.type, field.type_name = _F.TYPE_MESSAGE, f".etcdserverpb.{kind}"
            else:
                field.type = kind
            if extra and extra[0] == REPEATED:
                field.label = _F.LABEL_REPEATED
            elif extra:  # a member of a oneof: written even when zero (Compare's revision 0)
                if extra[0] not in oneofs:
                    oneofs.append(extra[0])
                    msg.oneof_decl.add(name=extra[0])
                field.oneof_index = oneofs.index(extra[0])
    return proto


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file())
#: message name -> its class
MESSAGE: dict[str, Any] = {
    name: message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"etcdserverpb.{name}"))
    for name in _MESSAGES
}

"""The signature a host's metadata proxy puts on the instance id it vouches for.

Owns: ``X-Instance-ID-Signature``: HMAC-SHA256 of the instance id with the
secret the metadata service and the hosts share, in hex (as Nova's), and
checking it in constant time.

Must never: accept a signature made with another secret.
"""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: str, instance_id: str) -> str:
    return hmac.new(secret.encode(), instance_id.encode(), hashlib.sha256).hexdigest()


def valid(secret: str, instance_id: str, signature: str) -> bool:
    """Whether ``signature`` signs ``instance_id``. Headers arrive as any bytes (decoded with
    surrogates): an id or a signature that is not ASCII is simply not valid (ids and hex
    signatures are ASCII; hmac.compare_digest refuses other str)."""
    if not (secret and instance_id and instance_id.isascii() and signature.isascii()):
        return False
    return hmac.compare_digest(signature, sign(secret, instance_id))

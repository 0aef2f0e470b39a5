"""IPv4's special-purpose blocks where no guest's address can work, and which a network touches.

Owns: the blocks (of RFC 6890's registry, those a host on a bridge cannot
use as its own address): ``0.0.0.0/8`` ("this network": the unspecified
address and its kin), ``127.0.0.0/8`` (loopback), ``169.254.0.0/16``
(link-local: the metadata service's ``169.254.169.254`` lives there),
``224.0.0.0/4`` (multicast) and ``240.0.0.0/4`` (reserved, with the limited
broadcast address); and, by arithmetic on at most five blocks, which of them
a network lies inside or overlaps. Private, shared (100.64/10) and
documentation ranges are not special here: guests can use them.

Used by ``schemas.checks`` (no network inside a block, for every writer), by
the API server (a caller who is not an admin may not even overlap one) and
by ``state.ipam`` (a pool skips them).

Must never: import anything else from the project; enumerate a network's
addresses.
"""

from __future__ import annotations

from ipaddress import IPv4Network

#: (block, what it is), in address order
SPECIAL_BLOCKS: tuple[tuple[IPv4Network, str], ...] = (
    (IPv4Network("0.0.0.0/8"), "'this network', the unspecified addresses"),
    (IPv4Network("127.0.0.0/8"), "loopback"),
    (IPv4Network("169.254.0.0/16"), "link-local, kept for the metadata service"),
    (IPv4Network("224.0.0.0/4"), "multicast"),
    (IPv4Network("240.0.0.0/4"), "reserved, with the broadcast address"),
)


def inside(net: IPv4Network) -> tuple[IPv4Network, str] | None:
    """The special block ``net`` lies inside, if any."""
    for block, what in SPECIAL_BLOCKS:
        if net.subnet_of(block):
            return block, what
    return None


def overlapped(net: IPv4Network) -> list[tuple[IPv4Network, str]]:
    """The special blocks ``net`` shares addresses with (all of them for ``0.0.0.0/0``)."""
    return [(block, what) for block, what in SPECIAL_BLOCKS if net.overlaps(block)]


def described(blocks: list[tuple[IPv4Network, str]]) -> str:
    """``blocks`` in words, for messages: ``127.0.0.0/8 (loopback), ...``."""
    return ", ".join(f"{block} ({what})" for block, what in blocks)

"""The string formats the schemas use, shared by both validators.

Owns: each ``format`` keyword value the kind schemas use (``ipv4``,
``ipv4-network``, ``ipv6-network``, ``base64``, ``printable``, ``printable-name``), the check behind it and the
words an error message uses for it. jsonschema (which reports errors) and
the compiled fast path (which only says yes or no) get the same checks, so
they cannot disagree about a format.

Must never: import anything else from the project, or accept a network with
host bits set or without an explicit prefix length.
"""

from __future__ import annotations

import binascii
import ipaddress
from collections.abc import Callable

from schemas.names import printable, printable_name


def _ipv4(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def _ipv6(value: str) -> bool:
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def _network(
    version: type[ipaddress.IPv4Network] | type[ipaddress.IPv6Network],
) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        _, slash, prefix = value.partition("/")
        if not slash or not prefix.isdigit():
            return False
        try:
            version(value, strict=True)
        except ValueError:
            return False
        return True

    return check


def _base64(value: str) -> bool:
    # line breaks are allowed, as `base64` wraps its output at 76 characters
    try:
        binascii.a2b_base64("".join(value.split()), strict_mode=True)
    except ValueError:  # binascii.Error, or a character outside ASCII
        return False
    return True


#: format name -> (check of a string, what a valid value is, for messages)
FORMATS: dict[str, tuple[Callable[[str], bool], str]] = {
    "ipv4": (_ipv4, "an IPv4 address, like 10.0.0.1"),
    "ipv6": (_ipv6, "an IPv6 address, like fd00::1"),
    "ipv4-network": (
        _network(ipaddress.IPv4Network),
        "an IPv4 network in CIDR notation without host bits, like 10.0.0.0/24",
    ),
    "ipv6-network": (
        _network(ipaddress.IPv6Network),
        "an IPv6 network in CIDR notation without host bits, like fd00::/64",
    ),
    "base64": (_base64, "base64-encoded"),
    "printable": (printable, "printable characters"),
    "printable-name": (
        printable_name,
        "a name of printable characters, not starting or ending with white space",
    ),
}

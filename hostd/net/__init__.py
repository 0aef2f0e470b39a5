"""hostd's network driver: bridges, DHCP, iptables and the metadata proxy of one host."""

from state.errors import DesiredError


class NetworkError(DesiredError):
    """The host's network cannot be made as its assignments ask; the message says why."""

"""Access rules match calls as keystonemiddleware's do: service and method exactly, ``*``
and ``{name}`` one path segment, ``**`` any number."""

from __future__ import annotations

from apiserver.access_rule_guard import service_of
from state.access_rules import allows


def test_a_rule_allows_its_service_method_and_paths_alone() -> None:
    rule = ("compute", "GET", "/v2.1/servers/*/ips")
    assert allows(rule, "compute", "GET", "/v2.1/servers/abc/ips")
    assert not allows(rule, "compute", "GET", "/v2.1/servers/abc/def/ips")
    assert not allows(rule, "compute", "GET", "/v2.1/servers//ips")
    assert not allows(rule, "compute", "POST", "/v2.1/servers/abc/ips")
    assert not allows(rule, "image", "GET", "/v2.1/servers/abc/ips")
    assert not allows(rule, "compute", "GET", "/v2.1/servers/abc/ips/more")
    assert allows(("image", "GET", "/v2/images/**"), "image", "GET", "/v2/images/a/file")
    assert allows(("image", "GET", "/v2/images/{id}"), "image", "GET", "/v2/images/a")
    assert not allows(("image", "GET", "/v2/images/{id}"), "image", "GET", "/v2/images/a/file")
    # a pattern's other characters are literal, not regular expressions
    assert not allows(("network", "GET", "/v2.0/ports.json"), "network", "GET", "/v2.0/portsxjson")


def test_a_path_is_below_its_service_mount() -> None:
    assert service_of("/compute/v2.1/servers") == ("compute", "/v2.1/servers")
    assert service_of("/identity") == ("identity", "/")
    assert service_of("/computer/x") == ("", "/computer/x")
    assert service_of("/apis/v1/instances") == ("", "/apis/v1/instances")

"""Compute API ``/extensions`` and ``/extensions/{alias}``: Nova's legacy extension list.

Owns: the fixed list of the v2 extensions whose behaviour desired serves,
by Nova's names, aliases and descriptions, in Nova's shape (the fake XML
namespace and date every v2.1 extension carried, no links), sorted by alias.

Must never: list an extension whose routes or fields desired does not serve.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.compute.context import authorize
from apiserver.compute.faults import ComputeFault

_NAMESPACE = "http://docs.openstack.org/compute/ext/fake_xml"
_UPDATED = "2014-12-03T00:00:00Z"

#: alias -> (name, description)
_EXTENSIONS: dict[str, tuple[str, str]] = {
    "OS-DCF": ("DiskConfig", "Disk Management Extension."),
    "OS-EXT-AZ": ("ExtendedAvailabilityZone", "Extended Availability Zone support."),
    "OS-EXT-IPS": ("ExtendedIps", ""),
    "OS-EXT-IPS-MAC": ("ExtendedIpsMac", ""),
    "OS-EXT-SRV-ATTR": ("ExtendedServerAttributes", "Extended Server Attributes support."),
    "OS-EXT-STS": ("ExtendedStatus", ""),
    "OS-FLV-DISABLED": ("FlavorDisabled", ""),
    "OS-FLV-EXT-DATA": ("FlavorExtraData", ""),
    "OS-SCH-HNT": ("SchedulerHints", "Pass arbitrary key/value pairs to the scheduler."),
    "OS-SRV-USG": ("ServerUsage", "Adds launched_at and terminated_at on Servers."),
    "os-aggregates": ("Aggregates", "Admin-only aggregate administration."),
    "os-availability-zone": (
        "AvailabilityZone",
        "1. Add availability_zone to the Create Server API.\n2. Add availability zones describing.\n",
    ),
    "os-console-output": ("ConsoleOutput", "Console log output support, with tailing ability."),
    "os-create-backup": ("CreateBackup", "Create a backup of a server."),
    "os-extended-volumes": ("ExtendedVolumes", "Extended Volumes support."),
    "os-flavor-access": ("FlavorAccess", "Flavor access support."),
    "os-flavor-extra-specs": ("FlavorExtraSpecs", "Flavors extra specs support."),
    "os-flavor-manage": ("FlavorManage", "Flavor create/delete API support."),
    "os-flavor-rxtx": ("FlavorRxtx", "Support to show the rxtx status of a flavor."),
    "os-flavor-swap": ("FlavorSwap", ""),
    "os-floating-ip-pools": ("FloatingIpPools", "Floating IPs support."),
    "os-floating-ips": ("FloatingIps", "Floating IPs support."),
    "os-hosts": ("Hosts", "Admin-only host administration."),
    "os-hypervisors": ("Hypervisors", "Admin-only hypervisor administration."),
    "os-instance-actions": (
        "InstanceActions",
        "View a log of actions and events taken on an instance.",
    ),
    "os-instance_usage_audit_log": ("OSInstanceUsageAuditLog", "Admin-only Task Log Monitoring."),
    "os-keypairs": ("Keypairs", "Keypair Support."),
    "os-lock-server": ("LockServer", "Enable lock/unlock server actions."),
    "os-migrations": ("Migrations", "Provide data on migrations."),
    "os-multiple-create": (
        "MultipleCreate",
        "Allow multiple create in the Create Server v2.1 API.",
    ),
    "os-networks": ("Networks", "Admin-only Network Management Extension."),
    "os-pause-server": ("PauseServer", "Enable pause/unpause server actions."),
    "os-quota-class-sets": ("QuotaClasses", "Quota classes management support."),
    "os-quota-sets": ("Quotas", "Quotas management support."),
    "os-security-groups": ("SecurityGroups", "Security group support."),
    "os-server-diagnostics": (
        "ServerDiagnostics",
        "Allow Admins to view server diagnostics through server action.",
    ),
    "os-server-groups": ("ServerGroups", "Server group support."),
    "os-server-password": ("ServerPassword", "Server password support."),
    "os-server-start-stop": ("ServerStartStop", ""),
    "os-services": ("Services", "Services support."),
    "os-simple-tenant-usage": ("SimpleTenantUsage", "Simple tenant usage extension."),
    "os-suspend-server": ("SuspendServer", "Enable suspend/resume server actions."),
    "os-tenant-networks": ("TenantNetworks", "Tenant-based Network Management Extension."),
    "os-used-limits": ("UsedLimits", "Provide data on limited resources that are being used."),
    "os-user-data": ("UserData", "Add user_data to the Create Server API."),
}


def _view(alias: str) -> dict[str, Any]:
    name, description = _EXTENSIONS[alias]
    return {
        "alias": alias,
        "description": description,
        "links": [],
        "name": name,
        "namespace": _NAMESPACE,
        "updated": _UPDATED,
    }


async def index(request: web.Request) -> web.Response:
    authorize(request, "os_compute_api:extensions")
    return web.json_response({"extensions": [_view(a) for a in sorted(_EXTENSIONS)]})


async def show(request: web.Request) -> web.Response:
    authorize(request, "os_compute_api:extensions")
    alias = request.match_info["alias"]
    if alias not in _EXTENSIONS:
        raise ComputeFault(404, "The resource could not be found.")
    return web.json_response({"extension": _view(alias)})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2.1/extensions", index)
    app.router.add_get("/v2.1/extensions/{alias}", show)

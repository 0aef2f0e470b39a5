"""The Compute API's policy rules and their defaults, named as Nova names them.

Owns: the default rule of every Compute action (project readers read,
members change, admins do everything and the admin-only resources); a
policy file (``api.policy_file``) overrides any of them.

Must never: leave an action of the Compute API without a rule here.
"""

from __future__ import annotations

from apiserver.policy import ADMIN, ANY, MEMBER_OR_ADMIN, READER_OR_ADMIN

_SERVERS = "os_compute_api:servers"

DEFAULTS: dict[str, str] = {
    # servers
    f"{_SERVERS}:index": READER_OR_ADMIN,
    f"{_SERVERS}:detail": READER_OR_ADMIN,
    f"{_SERVERS}:index:get_all_tenants": ADMIN,
    f"{_SERVERS}:detail:get_all_tenants": ADMIN,
    f"{_SERVERS}:allow_all_filters": ADMIN,
    f"{_SERVERS}:show": READER_OR_ADMIN,
    f"{_SERVERS}:show:flavor-extra-specs": READER_OR_ADMIN,
    f"{_SERVERS}:show:host_status": ADMIN,
    f"{_SERVERS}:create": MEMBER_OR_ADMIN,
    f"{_SERVERS}:delete": MEMBER_OR_ADMIN,
    f"{_SERVERS}:start": MEMBER_OR_ADMIN,
    f"{_SERVERS}:stop": MEMBER_OR_ADMIN,
    f"{_SERVERS}:reboot": MEMBER_OR_ADMIN,
    f"{_SERVERS}:resize": MEMBER_OR_ADMIN,
    f"{_SERVERS}:confirm_resize": MEMBER_OR_ADMIN,
    f"{_SERVERS}:revert_resize": MEMBER_OR_ADMIN,
    f"{_SERVERS}:rebuild": MEMBER_OR_ADMIN,
    f"{_SERVERS}:update": MEMBER_OR_ADMIN,
    f"{_SERVERS}:create_image": MEMBER_OR_ADMIN,
    "os_compute_api:os-create-backup": MEMBER_OR_ADMIN,
    "os_compute_api:os-lock-server:lock": MEMBER_OR_ADMIN,
    "os_compute_api:os-console-output": MEMBER_OR_ADMIN,
    "os_compute_api:os-lock-server:unlock": MEMBER_OR_ADMIN,
    "os_compute_api:os-lock-server:unlock:unlock_override": ADMIN,
    "os_compute_api:os-pause-server:pause": MEMBER_OR_ADMIN,
    "os_compute_api:os-pause-server:unpause": MEMBER_OR_ADMIN,
    "os_compute_api:os-suspend-server:suspend": MEMBER_OR_ADMIN,
    "os_compute_api:os-suspend-server:resume": MEMBER_OR_ADMIN,
    "os_compute_api:os-extended-server-attributes": ADMIN,
    "os_compute_api:server-metadata:index": READER_OR_ADMIN,
    "os_compute_api:server-metadata:show": READER_OR_ADMIN,
    "os_compute_api:server-metadata:create": MEMBER_OR_ADMIN,
    "os_compute_api:server-metadata:update": MEMBER_OR_ADMIN,
    "os_compute_api:server-metadata:update_all": MEMBER_OR_ADMIN,
    "os_compute_api:server-metadata:delete": MEMBER_OR_ADMIN,
    "os_compute_api:os-server-tags:index": READER_OR_ADMIN,
    "os_compute_api:os-server-tags:show": READER_OR_ADMIN,
    "os_compute_api:os-server-tags:update": MEMBER_OR_ADMIN,
    "os_compute_api:os-server-tags:update_all": MEMBER_OR_ADMIN,
    "os_compute_api:os-server-tags:delete": MEMBER_OR_ADMIN,
    "os_compute_api:os-server-tags:delete_all": MEMBER_OR_ADMIN,
    "os_compute_api:os-instance-actions:list": READER_OR_ADMIN,
    "os_compute_api:os-instance-actions:show": READER_OR_ADMIN,
    "os_compute_api:os-instance-actions:events": ADMIN,
    "os_compute_api:ips:index": READER_OR_ADMIN,
    "os_compute_api:ips:show": READER_OR_ADMIN,
    "os_compute_api:os-server-password:show": READER_OR_ADMIN,
    "os_compute_api:os-server-password:clear": MEMBER_OR_ADMIN,
    "os_compute_api:os-server-diagnostics": ADMIN,
    "os_compute_api:extensions": ANY,
    # network proxies (security groups, floating IPs, networks)
    **{
        f"os_compute_api:os-security-groups:{verb}": READER_OR_ADMIN
        for verb in ("get", "show", "list")
    },
    **{
        f"os_compute_api:os-security-groups:{verb}": MEMBER_OR_ADMIN
        for verb in ("create", "update", "delete", "rule:create", "rule:delete", "add", "remove")
    },
    **{f"os_compute_api:os-floating-ips:{verb}": READER_OR_ADMIN for verb in ("list", "show")},
    **{
        f"os_compute_api:os-floating-ips:{verb}": MEMBER_OR_ADMIN
        for verb in ("create", "delete", "add", "remove")
    },
    "os_compute_api:os-floating-ip-pools:list": READER_OR_ADMIN,
    "os_compute_api:os-networks:list": READER_OR_ADMIN,
    "os_compute_api:os-networks:view": READER_OR_ADMIN,
    "os_compute_api:os-tenant-networks:list": READER_OR_ADMIN,
    "os_compute_api:os-tenant-networks:show": READER_OR_ADMIN,
    # server groups
    "os_compute_api:os-server-groups:index": READER_OR_ADMIN,
    "os_compute_api:os-server-groups:index:all_projects": ADMIN,
    "os_compute_api:os-server-groups:show": READER_OR_ADMIN,
    "os_compute_api:os-server-groups:create": MEMBER_OR_ADMIN,
    "os_compute_api:os-server-groups:delete": MEMBER_OR_ADMIN,
    # usage
    "os_compute_api:os-simple-tenant-usage:list": ADMIN,
    "os_compute_api:os-simple-tenant-usage:show": READER_OR_ADMIN,
    # flavors, key pairs, quotas, limits, zones
    "os_compute_api:os-flavor-access": ADMIN,
    "os_compute_api:os-flavor-access:add_tenant_access": ADMIN,
    "os_compute_api:os-flavor-access:remove_tenant_access": ADMIN,
    "os_compute_api:os-flavor-manage:create": ADMIN,
    "os_compute_api:os-flavor-manage:delete": ADMIN,
    "os_compute_api:os-flavor-extra-specs:index": READER_OR_ADMIN,
    "os_compute_api:os-flavor-extra-specs:show": READER_OR_ADMIN,
    "os_compute_api:os-flavor-extra-specs:create": ADMIN,
    "os_compute_api:os-flavor-extra-specs:update": ADMIN,
    "os_compute_api:os-flavor-extra-specs:delete": ADMIN,
    "os_compute_api:os-keypairs:index": READER_OR_ADMIN,
    "os_compute_api:os-keypairs:show": READER_OR_ADMIN,
    "os_compute_api:os-keypairs:create": MEMBER_OR_ADMIN,
    "os_compute_api:os-keypairs:delete": MEMBER_OR_ADMIN,
    "os_compute_api:os-quota-sets:show": READER_OR_ADMIN,
    "os_compute_api:os-quota-sets:detail": READER_OR_ADMIN,
    "os_compute_api:os-quota-sets:defaults": ANY,
    "os_compute_api:os-quota-sets:update": ADMIN,
    "os_compute_api:os-quota-sets:delete": ADMIN,
    "os_compute_api:os-quota-class-sets:show": ADMIN,
    "os_compute_api:os-quota-class-sets:update": ADMIN,
    "os_compute_api:limits": ANY,
    "os_compute_api:os-availability-zone:list": ANY,
    "os_compute_api:os-availability-zone:detail": ADMIN,
    # admin resources
    **{
        f"os_compute_api:os-hypervisors:{verb}": ADMIN
        for verb in ("list", "list-detail", "show", "statistics", "search", "servers", "uptime")
    },
    "os_compute_api:os-migrations:index": ADMIN,
    "os_compute_api:servers:migrations:index": ADMIN,
    "os_compute_api:servers:migrations:show": ADMIN,
    **{
        f"os_compute_api:os-hosts:{verb}": ADMIN
        for verb in ("list", "show", "update", "start", "shutdown", "reboot")
    },
    "os_compute_api:os-instance-usage-audit-log:list": ADMIN,
    "os_compute_api:os-instance-usage-audit-log:show": ADMIN,
    "os_compute_api:os-services:list": ADMIN,
    "os_compute_api:os-services:update": ADMIN,
    **{
        f"os_compute_api:os-aggregates:{verb}": ADMIN
        for verb in (
            "index",
            "create",
            "show",
            "update",
            "delete",
            "add_host",
            "remove_host",
            "set_metadata",
        )
    },
}

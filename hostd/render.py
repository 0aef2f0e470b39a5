"""Pure rendering of an instance assignment into a libvirt domain definition.

Owns: the ``DomainSpec`` record (what hostd wants a domain to be) and its
libvirt XML, including desired's own metadata element so that hostd can
recognise its domains after a restart. The same spec always renders the
same XML (hostd compares renders to detect drift).

Must never: import libvirt or touch the filesystem.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

NAMESPACE = "https://desired.dev/xmlns/instance/v1"
PREFIX = "desired"
DOMAIN_PREFIX = "desired-"


def domain_name(uid: str) -> str:
    """libvirt name of an instance's domain; its libvirt UUID is the uid itself."""
    return DOMAIN_PREFIX + uid


@dataclass(frozen=True)
class Interface:
    mac: str
    bridge: str
    target: str = ""


@dataclass(frozen=True)
class DomainSpec:
    uid: str
    name: str
    project: str
    generation: int
    vcpus: int
    ram_mib: int
    #: "qemu" (TCG) or "kvm"
    virt_type: str = "qemu"
    disk_path: str = ""
    disk_format: str = "qcow2"
    kernel: str = ""
    initrd: str = ""
    cmdline: str = ""
    console_log: str = ""
    interfaces: tuple[Interface, ...] = field(default_factory=tuple)
    vnc: bool = True
    #: the emulator binary; empty for libvirt's test driver, which needs none
    emulator: str = ""
    #: the hostd host that owns the domain (several may share one libvirt)
    host: str = ""


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def render(spec: DomainSpec) -> str:
    """The domain XML of ``spec``: deterministic, byte for byte."""
    dom = ET.Element("domain", {"type": spec.virt_type})
    _sub(dom, "name", domain_name(spec.uid))
    _sub(dom, "uuid", spec.uid)
    _sub(dom, "title", f"{spec.project}/{spec.name}")
    meta = _sub(dom, "metadata")
    inst = ET.SubElement(meta, f"{{{NAMESPACE}}}instance")
    for tag, value in (
        ("uid", spec.uid),
        ("project", spec.project),
        ("name", spec.name),
        ("generation", str(spec.generation)),
        ("host", spec.host),
    ):
        _sub(inst, f"{{{NAMESPACE}}}{tag}", value)
    _sub(dom, "memory", str(spec.ram_mib * 1024), unit="KiB")
    _sub(dom, "currentMemory", str(spec.ram_mib * 1024), unit="KiB")
    _sub(dom, "vcpu", str(spec.vcpus), placement="static")
    os_el = _sub(dom, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine="pc")
    if spec.kernel:
        _sub(os_el, "kernel", spec.kernel)
        if spec.initrd:
            _sub(os_el, "initrd", spec.initrd)
        if spec.cmdline:
            _sub(os_el, "cmdline", spec.cmdline)
    else:
        _sub(os_el, "boot", dev="hd")
    features = _sub(dom, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")
    devices = _sub(dom, "devices")
    if spec.emulator:
        _sub(devices, "emulator", spec.emulator)
    if spec.disk_path:
        disk = _sub(devices, "disk", type="file", device="disk")
        _sub(disk, "driver", name="qemu", type=spec.disk_format, cache="none")
        _sub(disk, "source", file=spec.disk_path)
        _sub(disk, "target", dev="vda", bus="virtio")
    for nic in spec.interfaces:
        iface = _sub(devices, "interface", type="bridge")
        _sub(iface, "mac", address=nic.mac)
        _sub(iface, "source", bridge=nic.bridge)
        if nic.target:
            _sub(iface, "target", dev=nic.target)
        _sub(iface, "model", type="virtio")
    if spec.console_log:
        serial = _sub(devices, "serial", type="file")
        _sub(serial, "source", path=spec.console_log, append="on")
        _sub(serial, "target", port="0")
        console = _sub(devices, "console", type="file")
        _sub(console, "source", path=spec.console_log, append="on")
        _sub(console, "target", type="serial", port="0")
    if spec.vnc:
        gfx = _sub(devices, "graphics", type="vnc", port="-1", autoport="yes", listen="127.0.0.1")
        _sub(gfx, "listen", type="address", address="127.0.0.1")
    ET.register_namespace(PREFIX, NAMESPACE)
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode")


def read_metadata(xml: str) -> dict[str, str] | None:
    """desired's metadata of a domain's XML, or None if the domain is not ours."""
    root = ET.fromstring(xml)
    inst = root.find(f"metadata/{{{NAMESPACE}}}instance")
    if inst is None:
        return None
    return {child.tag.split("}", 1)[1]: child.text or "" for child in inst}

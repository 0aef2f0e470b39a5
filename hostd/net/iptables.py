"""Applying the firewall's chains to the kernel through python-iptables.

Owns: making the kernel's chains that desired owns equal to the rendered
ones, with one commit per table; the jumps from the built-in chains; deleting
owned chains nothing renders any more; noticing drift cheaply. After each
commit it keeps, per chain, what it rendered and a digest of the chain's
entries as the kernel holds them (counters left out); a chain whose render
and kernel digest are both unchanged is left alone, so a resync with nothing
to do reads the tables once and writes nothing, while a flushed or edited
chain is rewritten and reported.

Must never: touch a chain that is not desired's, beyond inserting or keeping
its one jump in the built-in chains; run outside the namespace thread it is
called on (libiptc acts in the calling thread's namespace).
"""

from __future__ import annotations

import ctypes
import hashlib

import iptc
from iptc.ip4tc import ipt_entry

from hostd.net import NetworkError
from hostd.net.firewall import JUMPS, OWNED_PREFIXES, IptRule

TABLES = ("filter", "nat")
_MASKED = (
    (ipt_entry.counters.offset, ipt_entry.counters.size),
    (ipt_entry.comefrom.offset, ipt_entry.comefrom.size),
)
#: bytes of a match's or target's name (struct xt_entry_match/xt_entry_target)
_NAME_LEN = 29
#: bytes of a match's or target's header: its size, name and revision
_HEADER_LEN = 32


class FirewallError(NetworkError):
    """A rule could not be built or committed; the message names it."""


def _encode(spec: IptRule) -> iptc.Rule:
    """A python-iptables rule, checked by the xtables modules (an error names the rule)."""
    rule = iptc.Rule()
    for attr in ("src", "dst", "protocol", "in_iface", "out_iface"):
        value = getattr(spec, attr)
        if value:
            setattr(
                rule,
                {"in_iface": "in_interface", "out_iface": "out_interface"}.get(attr, attr),
                value,
            )
    try:
        for name, params in spec.matches:
            match = rule.create_match(name)
            for key, value in params:
                match.set_parameter(key, value)
        target = rule.create_target(spec.target)
        for key, value in spec.target_args:
            target.set_parameter(key, value)
        rule.final_check()
    except (ValueError, iptc.IPTCError, iptc.XTablesError) as exc:
        raise FirewallError(f"cannot build rule {spec}: {exc}") from None
    return rule


class _Entries:
    """Rules as the bytes libiptc appends, each built once: building one through the
    xtables modules costs a third of a millisecond, and a host's chains repeat most."""

    LIMIT = 100_000

    def __init__(self) -> None:
        self._built: dict[IptRule, bytes] = {}

    def append(self, table: iptc.Table, chain: str, spec: IptRule) -> None:
        raw = self._built.get(spec)
        if raw is None:
            if len(self._built) >= self.LIMIT:
                self._built.clear()
            raw = self._built[spec] = bytes(_encode(spec).rule)
        table.append_entry(chain, ctypes.create_string_buffer(raw, len(raw)))


def _canonical(entry: ipt_entry) -> bytes:
    """An entry's bytes without what changes when nothing does: counters, the back
    pointer, whatever follows the NUL in its matches' and target's names (the
    kernel keeps those bytes as the last writer left them) and a jump's offset
    (it moves when other chains change; ``_digest`` adds the name jumped to)."""
    raw = bytearray(ctypes.string_at(ctypes.addressof(entry), entry.next_offset))
    for offset, size in _MASKED:
        raw[offset : offset + size] = bytes(size)
    at = ctypes.sizeof(ipt_entry)
    while at < len(raw):
        size = int.from_bytes(raw[at : at + 2], "little") or len(raw)
        name = raw[at + 2 : at + 2 + _NAME_LEN]
        end = name.find(0)
        if end >= 0:
            raw[at + 2 + end : at + 2 + _NAME_LEN] = bytes(_NAME_LEN - end)
        if end == 0 and at == entry.target_offset:  # the standard target: a verdict
            raw[at + _HEADER_LEN : at + size] = bytes(size - _HEADER_LEN)
        at += size
    return bytes(raw)


def _digest(table: iptc.Table, chain: str) -> bytes:
    """The chain's entries as the kernel holds them (``_canonical``)."""
    h = hashlib.blake2b(digest_size=16)
    entry = table.first_rule(chain)
    while entry:
        h.update(_canonical(entry))
        h.update(table.get_target(entry) or b"")
        entry = table.next_rule(entry)
    return h.digest()


def _owned(name: str) -> bool:
    return name.startswith(OWNED_PREFIXES)


def owned_chains() -> dict[str, int]:
    """desired's chains in this thread's namespace, ``table/chain`` -> how many rules."""
    found = {}
    for name in TABLES:
        table = iptc.Table(name, autocommit=False)
        table.refresh()
        for chain in table.chains:
            if _owned(chain.name):
                count, entry = 0, table.first_rule(chain.name)
                while entry:
                    count, entry = count + 1, table.next_rule(entry)
                found[f"{name}/{chain.name}"] = count
    return found


class Iptables:
    """The kernel's side of the firewall, in the namespace of the calling thread."""

    def __init__(self) -> None:
        #: (table, chain) -> (the rules last written, the kernel's digest right after)
        self._written: dict[tuple[str, str], tuple[tuple[IptRule, ...], bytes]] = {}
        self._entries = _Entries()

    def converge(self, wanted: dict[str, dict[str, list[IptRule]]]) -> list[str]:
        """Makes the kernel match ``wanted``; says what drift it repaired."""
        repaired: list[str] = []
        for table_name in TABLES:
            repaired += self._table(table_name, wanted.get(table_name, {}))
        return repaired

    def remove_all(self) -> None:
        """Takes every chain desired owns, and the jumps to them, out of the kernel."""
        self.converge({})

    def _table(self, name: str, chains: dict[str, list[IptRule]]) -> list[str]:
        table = iptc.Table(name, autocommit=False)  # with autocommit, even a read commits
        table.refresh()
        present = {c.name for c in table.chains}
        repaired: list[str] = []
        changed = False
        refill: list[str] = []
        for chain, rules in chains.items():
            before = self._written.get((name, chain))
            if chain not in present:
                if before is not None:
                    repaired.append(f"chain {name}/{chain} was deleted behind hostd's back")
                table.create_chain(chain)  # every chain first: rules may jump to any
                refill.append(chain)
            elif before is None or before[0] != tuple(rules):
                refill.append(chain)
            elif before[1] != _digest(table, chain):
                repaired.append(f"chain {name}/{chain} was changed behind hostd's back")
                refill.append(chain)
        for chain in refill:
            if chain in present:
                iptc.Chain(table, chain).flush()
            for rule in chains[chain]:
                self._entries.append(table, chain, rule)
            changed = True
        for (table_name, builtin), chain in JUMPS.items():
            if table_name != name:
                continue
            jumps = [r for r in iptc.Chain(table, builtin).rules if r.target.name == chain]
            if chain in chains and not jumps:
                if (name, chain) in self._written:
                    repaired.append(f"jump from {name}/{builtin} to {chain} was removed")
                table.insert_entry(builtin, _encode(IptRule(chain)).rule, 0)
                changed = True
            elif chain not in chains:
                for rule in jumps:
                    iptc.Chain(table, builtin).delete_rule(rule)
                    changed = True
        stale = [c for c in present if _owned(c) and c not in chains]
        for chain in stale:
            iptc.Chain(table, chain).flush()
        for chain in stale:
            table.delete_chain(chain)
            self._written.pop((name, chain), None)
            changed = True
        if changed:
            try:
                table.commit()
            except iptc.IPTCError as exc:
                raise FirewallError(f"commit of table {name} failed: {exc}") from None
            table.refresh()
            for chain, rules in chains.items():
                self._written[(name, chain)] = (tuple(rules), _digest(table, chain))
        return repaired

"""The handover state of the data plane (docs/design.md §1, steps 4-5), changed by the protocol layer's hooks
(``fmipfast.ar`` through ``Engine``): the NAR's PROXY entries and their buffers, the route-switch holds after
an Attach, the PAR's tunnels, and the buffer keys they use.

Each hook keeps its dicts and the forwarding node's handover columns in step (:meth:`Handover.sync`: the
``entry_key`` column holds a PROXY or HOLD entry's buffer key, ``entry_peer`` a TUNNEL entry's index into
:attr:`Handover.peer_table`), so the node decides BUFFER and TUNNEL per frame without Python.

Ownership: the engine's thread calls every hook and is the one writer of these tables, the neighbor cache,
the node's columns and the handover buffer (docs/conventions.md §3).

May import: keys, ports, config, backend, constants (tests/test_imports.py holds the rules).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import TYPE_CHECKING

import numpy as np

from fmipfast.config import RouterConfig
from fmipfast.constants import NeighborFlag, NeighborState
from fmipfast.dataplane.counters import FLUSHED, REORDER_RELEASED, Books
from fmipfast.dataplane.tables import access_iface, address_key, find_neighbor, set_neighbor
from fmipfast.dataplane.types import Interface, Reinject
from fmipfast.keys import KeyPool

if TYPE_CHECKING:
    from fmipfast.backend import NeighborCache, Node, PacketBuffer

__all__ = ["Handover", "Hold"]

_F_HOLD = int(NeighborFlag.HOLD)
#: Flags of neighbor entries that are not an MN's delivered address (tunnel_add leaves them alone).
_NOT_AN_MN = int(NeighborFlag.LOCAL | NeighborFlag.STATIC | NeighborFlag.PROXY | NeighborFlag.ROUTER)
#: Frames a flush sends before it runs the rest of the buffer through the pipeline (see Handover.flush_buffer).
_FIRST_FLUSHED = 1


@dataclass(slots=True)
class Hold:
    """NAR, after an Attach: direct traffic to the NCoA ``address`` waits in buffer ``key`` while the PAR's
    tunnel still delivers packets for the MN's other addresses (``aliases``: ncache indexes, the PCoA's)."""

    address: IPv6Address
    aliases: tuple[int, ...]
    key: int
    started_ns: int
    last_inner_ns: int


class Handover:
    """The handover hooks and their tables (see the module's docstring)."""

    def __init__(self, cfg: RouterConfig, clock: Callable[[], int], ncache: NeighborCache, node: Node,
                 buffer: PacketBuffer, buffer_keys: KeyPool, interfaces: Sequence[Interface],
                 by_name: Mapping[str, Interface], books: Books, reinject: Reinject) -> None:
        self.cfg = cfg
        self.clock = clock
        self.ncache = ncache
        self.node = node
        self.buffer = buffer
        self.buffer_keys = buffer_keys
        self.interfaces = interfaces
        self.by_name = by_name
        self.books = books
        self.reinject = reinject
        #: Called as ``on_event(name, fields)`` for what the engine does on its own (a route-switch hold
        #: released).
        self.on_event: Callable[[str, dict[str, object]], None] | None = None
        self.proxy_key: dict[int, int] = {}  # ncache index of a PROXY entry -> buffer key
        self.proxy_aliases: dict[IPv6Address, tuple[IPv6Address, ...]] = {}  # NCoA -> also-proxied (PCoA)
        self.tunnel_peer: dict[int, IPv6Address] = {}  # ncache index of a TUNNEL entry -> NAR address
        self.hold: dict[int, Hold] = {}  # ncache index of a HOLD entry (an NCoA) -> its hold
        self.hold_alias: dict[int, int] = {}  # ncache index of a held NCoA's alias (PCoA) -> the NCoA's index
        #: After an Attach: the NCoA -> the addresses delivered on this link with it (its PCoA from the HI),
        #: while its neighbor entry lives.  A handover of the MN away from here tunnels them with the NCoA.
        self.delivered_aliases: dict[IPv6Address, tuple[IPv6Address, ...]] = {}
        #: ncache index of a tunnelled PCoA -> the indexes of its aliases tunnelled with it (tunnel_add).
        self.tunnel_aliases: dict[int, tuple[int, ...]] = {}
        #: NAR addresses of tunnels, by the row the ``entry_peer`` column holds (None: a free row).  A row is
        #: taken for a NAR while a tunnel entry refers to it (``peer_refs``) and reused once none does; at most
        #: ``cfg.tunnel_peers`` rows (:meth:`tunnel_add` refuses a new NAR beyond them).
        self.peer_table: list[IPv6Address | None] = []
        self.peer_index: dict[IPv6Address, int] = {}
        self.peer_refs: list[int] = []  # tunnel entries per row
        self.peer_arrays: list[np.ndarray] = []  # the rows as the node has them (set_tunnel_peers)
        self._free_rows: list[int] = []

    # ------------------------------------------------------------------ NAR: proxy entries and their buffer
    def proxy_add(self, address: str | IPv6Address, key: int | None, lifetime_ms: int, iface: str | None = None,
                  *, also: Iterable[str | IPv6Address] = (), buffer: bool = True) -> int:
        """See ``Engine.proxy_add``."""
        if isinstance(lifetime_ms, bool) or not isinstance(lifetime_ms, int) or not 0 < lifetime_ms < 1 << 32:
            raise ValueError(f"lifetime_ms: need an integer in 1..{(1 << 32) - 1}, got {lifetime_ms!r}")
        if key is None:
            key = self.buffer_keys.acquire()
            if key is None:
                return -1
        elif isinstance(key, bool) or not isinstance(key, int) or not 0 <= key < self.buffer_keys.capacity:
            raise ValueError(f"key: need an integer in 0..{self.buffer_keys.capacity - 1}, got {key!r}")
        else:
            self.buffer_keys.claim(key)
        ifc = self.by_name[iface] if iface else access_iface(self.interfaces)
        expiry = self.clock() + lifetime_ms * 1_000_000
        first = -1
        replaced: set[int] = set()
        for n, addr in enumerate((address, *also)):
            idx = set_neighbor(self.ncache, IPv6Address(addr), bytes(6), ifc.index, NeighborState.INCOMPLETE,
                               NeighborFlag.PROXY, expiry)
            if idx >= 0:
                old = self.proxy_key.get(idx)
                if old is not None and old >= 0 and old != key:
                    replaced.add(old)
                self.proxy_key[idx] = key if buffer else -1
                self.sync(idx)
            if n == 0:
                first = idx
        self.proxy_aliases[IPv6Address(address)] = tuple(IPv6Address(a) for a in also)
        for old in replaced:
            self.key_done(old)
        self.key_done(key)  # returned at once unless an entry now buffers under it
        return first

    def sync(self, *entries: int) -> None:
        """Write the handover state of neighbor ``entries`` (their buffer key, their tunnel's NAR) into the
        node's columns; every hook that changes ``proxy_key``, ``hold`` or ``tunnel_peer`` calls it."""
        for idx in entries:
            if not 0 <= idx < self.node.entry_key.shape[0]:
                continue
            key = self.proxy_key.get(idx)
            if key is None:
                h = self.hold.get(idx)
                key = -1 if h is None else h.key
            self.node.entry_key[idx] = key
            old = int(self.node.entry_peer[idx])
            peer = self.tunnel_peer.get(idx)
            if old >= 0 and (peer is None or self.peer_table[old] != peer):
                self._peer_unref(old)  # first: the row it frees may be the one the new NAR takes
                old = -1
            row = old if old >= 0 or peer is None else self._peer_ref(peer)
            self.node.entry_peer[idx] = row

    # ---------------------------------------------------------------- the tunnel peer rows
    def peer_room(self, peer: IPv6Address, pcoa: IPv6Address) -> bool:
        """True if a tunnel from ``pcoa`` to ``peer`` can have a row: ``peer`` has one, one is free, or the row
        ``pcoa``'s tunnel holds now is its own and its aliases' alone (the move to ``peer`` frees it first)."""
        if peer in self.peer_index or self._free_rows or len(self.peer_table) < self.cfg.tunnel_peers:
            return True
        idx = find_neighbor(self.ncache, pcoa)
        column = self.node.entry_peer
        if idx < 0 or idx not in self.tunnel_peer or not 0 <= idx < column.shape[0]:
            return False
        row = int(column[idx])
        own = 1 + sum(1 for j in self.tunnel_aliases.get(idx, ()) if int(column[j]) == row)
        return row >= 0 and self.peer_refs[row] == own

    def _peer_ref(self, peer: IPv6Address) -> int:
        row = self.peer_index.get(peer)
        if row is None:  # callers asked peer_room first (tunnel_add): a row is free
            row = self._free_rows.pop() if self._free_rows else len(self.peer_table)
            array = np.frombuffer(peer.packed, dtype=np.uint8)
            if row == len(self.peer_table):
                self.peer_table.append(peer)
                self.peer_refs.append(0)
                self.peer_arrays.append(array)
            else:
                self.peer_table[row] = peer
                self.peer_arrays[row] = array
            self.peer_index[peer] = row
            self.node.set_tunnel_peers(np.stack(self.peer_arrays))  # at most tunnel_peers rows
        self.peer_refs[row] += 1
        return row

    def _peer_unref(self, row: int) -> None:
        self.peer_refs[row] -= 1
        if self.peer_refs[row] == 0:  # no tunnel entry refers to the row: free it (no node write needed)
            peer = self.peer_table[row]
            if peer is not None:
                del self.peer_index[peer]
            self.peer_table[row] = None
            self._free_rows.append(row)

    def _key_referenced(self, key: int) -> bool:
        return key in self.proxy_key.values() or any(h.key == key for h in self.hold.values())

    def key_done(self, key: int | None) -> None:
        """A user of ``key`` let it go: once no proxy entry and no hold refers to it, what it still buffers
        is dropped and the key returns to the pool."""
        if key is None or key < 0 or self._key_referenced(key):
            return
        if self.buffer_keys.in_use(key):
            self.buffer.drop(key)
            self.buffer_keys.release(key)

    def drop_buffer(self, key: int) -> int:
        """See ``Engine.drop_buffer``."""
        if isinstance(key, bool) or not isinstance(key, int) or not self.buffer_keys.in_use(key):
            return 0
        if self._key_referenced(key):
            return 0
        dropped = int(self.buffer.drop(key))
        self.buffer_keys.release(key)
        return dropped

    def proxy_complete(self, address: str | IPv6Address, mac: bytes) -> int:
        """See ``Engine.proxy_complete``."""
        a = IPv6Address(address)
        keys = []
        entries = []
        addrs = []
        for addr in (a, *self.proxy_aliases.pop(a, ())):
            idx = find_neighbor(self.ncache, addr)
            if idx < 0:
                continue
            addrs.append(addr)
            keys.append(self.proxy_key.pop(idx, None))
            self.sync(idx)
            entries.append(set_neighbor(self.ncache, addr, mac, int(self.ncache.ifindex[idx]),
                                        NeighborState.REACHABLE, 0,
                                        self.clock() + self.cfg.reachable_time_ms * 1_000_000))
        if len(entries) > 1 and entries[0] >= 0:
            self._deliver_aliases(a, tuple(addr for addr, e in zip(addrs[1:], entries[1:]) if e >= 0))
        key = next((k for k in keys if k is not None and k >= 0), None)
        flushed = 0 if key is None else self.flush_buffer(key)
        if key is not None and len(entries) > 1 and entries[0] >= 0 and self.cfg.reorder_hold_idle_ms > 0:
            self._hold_start(a, entries[0], tuple(e for e in entries[1:] if e >= 0), key)
        for k in set(keys):
            self.key_done(k)
        return flushed

    def proxy_remove(self, address: str | IPv6Address) -> None:
        """See ``Engine.proxy_remove``."""
        a = IPv6Address(address)
        for addr in (a, *self.proxy_aliases.pop(a, ())):
            idx = find_neighbor(self.ncache, addr)
            if idx >= 0 and idx in self.proxy_key:
                key = self.proxy_key.pop(idx)
                self.sync(idx)
                self.ncache.delete(address_key(addr))
                self.key_done(key)

    def flush_buffer(self, key: int) -> int:
        """See ``Engine.flush_buffer``.  The oldest frame goes through the pipeline and out on its own first,
        then the rest: the MN's first packet does not wait for the node to rewrite and queue the whole buffer
        (hundreds of frames after a 30 ms gap at 20 000 packets/s)."""
        arena, offsets, lengths = self.buffer.flush(key, self.clock())
        n = int(offsets.shape[0])
        if n == 0:
            return 0
        # both implementations return a private copy of the frames, which the pipeline rewrites in place
        self.books.now.c[FLUSHED] += n
        iface = self.interfaces[0]
        if n > _FIRST_FLUSHED:
            self.reinject(iface, arena, offsets[:_FIRST_FLUSHED], lengths[:_FIRST_FLUSHED])
            self.reinject(iface, arena, offsets[_FIRST_FLUSHED:], lengths[_FIRST_FLUSHED:])
        else:
            self.reinject(iface, arena, offsets, lengths)
        return n

    # The route switch.  Packets the CN sent to the PCoA reach the MN through the PAR's tunnel, one path
    # longer than the direct one its packets to the NCoA take once the binding has moved: without care the
    # first direct packets overtake the last tunnelled ones.  Nothing on the wire says "the tunnel is empty"
    # (the CN is outside the draft), so the NAR holds direct traffic to the NCoA until the tunnel has been idle
    # for reorder_hold_idle_ms — every packet the CN sent before switching has then arrived, as long as the
    # idle time exceeds the two paths' delay difference — and never longer than reorder_hold_max_ms.
    def _hold_start(self, address: IPv6Address, ncoa: int, aliases: tuple[int, ...], key: int) -> None:
        now = self.clock()
        self.ncache.update(np.array([ncoa], dtype=np.int64),
                           flags=np.array([int(self.ncache.flags[ncoa]) | _F_HOLD], dtype=np.uint8))
        self.hold[ncoa] = Hold(address, aliases, key, now, now)
        self.sync(ncoa)
        for alias in aliases:
            self.hold_alias[alias] = ncoa

    def hold_end(self, ncoa: int) -> int:
        """Release a hold: the NCoA's entry forwards again and what was held is sent, in arrival order."""
        h = self.hold.pop(ncoa)
        self.sync(ncoa)
        for alias in h.aliases:
            self.hold_alias.pop(alias, None)
        if self.ncache.in_use[ncoa]:
            self.ncache.update(np.array([ncoa], dtype=np.int64),
                               flags=np.array([int(self.ncache.flags[ncoa]) & ~_F_HOLD], dtype=np.uint8))
        released = self.flush_buffer(h.key) if h.key not in self.proxy_key.values() else 0
        self.key_done(h.key)
        self.books.now.c[REORDER_RELEASED] += released
        if self.on_event is not None:
            now = self.clock()
            self.on_event("route_switch_released", {"ncoa": str(h.address), "count": released,
                                                    "held_ms": (now - h.started_ns) / 1e6,
                                                    "tunnel_idle_ms": (now - h.last_inner_ns) / 1e6})
        return released

    def holds(self) -> list[dict[str, object]]:
        """The NCoAs whose direct traffic is held at the route switch (the control API's view)."""
        now = self.clock()
        return [{"ncoa": str(h.address), "held": int(self.buffer.queued(h.key)),
                 "age_ms": (now - h.started_ns) / 1e6, "tunnel_idle_ms": (now - h.last_inner_ns) / 1e6}
                for h in self.hold.values()]

    def holds_due(self, now: int) -> None:
        """End the holds whose tunnel has been idle long enough, or that lasted the longest allowed."""
        idle = self.cfg.reorder_hold_idle_ms * 1_000_000
        most = self.cfg.reorder_hold_max_ms * 1_000_000
        for ncoa in [n for n, h in self.hold.items() if now - h.last_inner_ns >= idle or now - h.started_ns >= most]:
            self.hold_end(ncoa)

    def tunnel_delivered(self, entries: np.ndarray, now: int) -> None:
        """The PAR's tunnel delivered packets for neighbor ``entries`` (-1: none): the holds of these MNs go on."""
        for alias in set(entries[entries >= 0].tolist()) & self.hold_alias.keys():
            self.hold[self.hold_alias[alias]].last_inner_ns = now

    def _deliver_aliases(self, ncoa: IPv6Address, aliases: tuple[IPv6Address, ...]) -> None:
        """Remember what is delivered on this link with ``ncoa`` (bounded: the entries of NCoAs whose neighbor
        entry is gone are forgotten first when the table reaches the neighbor cache's size)."""
        if aliases:
            if ncoa not in self.delivered_aliases and len(self.delivered_aliases) >= self.ncache.capacity:
                self._forget_delivered()
            self.delivered_aliases[ncoa] = aliases
        else:
            self.delivered_aliases.pop(ncoa, None)

    def _forget_delivered(self) -> None:
        """Forget what was delivered with NCoAs whose neighbor entry is gone (one lookup for them all)."""
        if not self.delivered_aliases:
            return
        ncoas = list(self.delivered_aliases)
        keys = np.frombuffer(b"".join(n.packed for n in ncoas), dtype=np.uint8).reshape(-1, 16)
        for ncoa, row in zip(ncoas, np.asarray(self.ncache.lookup(keys)).tolist()):
            if row < 0:
                del self.delivered_aliases[ncoa]

    # ------------------------------------------------------------------ PAR: tunnels
    def _aliases_of(self, idx: int, pcoa: IPv6Address) -> list[int]:
        """The neighbor entries of the addresses delivered on this link with ``pcoa`` (entry ``idx``) that are
        still the same MN's: the same interface and link-layer address, not the router's own, configured or
        proxied."""
        out: list[int] = []
        for alias in self.delivered_aliases.get(pcoa, ()):
            j = find_neighbor(self.ncache, alias)
            if (j >= 0 and j != idx and not int(self.ncache.flags[j]) & _NOT_AN_MN
                    and int(self.ncache.ifindex[j]) == int(self.ncache.ifindex[idx])
                    and bytes(self.ncache.macs[j]) == bytes(self.ncache.macs[idx])):
                out.append(j)
        return out

    def _tunnel_entry(self, idx: int, peer: IPv6Address) -> None:
        self.ncache.update(np.array([idx], dtype=np.int64),
                           flags=np.array([int(self.ncache.flags[idx]) | NeighborFlag.TUNNEL], dtype=np.uint8))
        self.tunnel_peer[idx] = peer
        self.sync(idx)

    def _untunnel_entry(self, idx: int) -> None:
        if idx in self.tunnel_peer:
            del self.tunnel_peer[idx]
            self.sync(idx)
            self.ncache.update(np.array([idx], dtype=np.int64),
                               flags=np.array([int(self.ncache.flags[idx]) & ~NeighborFlag.TUNNEL], dtype=np.uint8))

    def tunnel_add(self, pcoa: str | IPv6Address, nar: str | IPv6Address) -> int:
        """See ``Engine.tunnel_add``."""
        a = IPv6Address(pcoa)
        peer = IPv6Address(nar)
        if not self.peer_room(peer, a):
            return -1
        idx = find_neighbor(self.ncache, a)
        if idx < 0:
            ifc = access_iface(self.interfaces)
            idx = set_neighbor(self.ncache, a, bytes(6), ifc.index, NeighborState.STALE, NeighborFlag.TUNNEL)
            if idx >= 0:
                self.tunnel_peer[idx] = peer
                self.sync(idx)
            return idx
        for j in self.tunnel_aliases.pop(idx, ()):  # a tunnel of this PCoA already: its aliases follow anew
            self._untunnel_entry(j)
        self._tunnel_entry(idx, peer)
        aliases = self._aliases_of(idx, a)
        for j in aliases:
            self._tunnel_entry(j, peer)
        if aliases:
            self.tunnel_aliases[idx] = tuple(aliases)
        return idx

    def tunnel_remove(self, pcoa: str | IPv6Address) -> None:
        """See ``Engine.tunnel_remove``."""
        idx = find_neighbor(self.ncache, IPv6Address(pcoa))
        if idx < 0:
            return
        for j in self.tunnel_aliases.pop(idx, ()):
            self._untunnel_entry(j)
        self._untunnel_entry(idx)

    # ------------------------------------------------------------------ expiry
    def forget_expired(self) -> None:
        """After the neighbor cache expired entries: the tunnels, proxies and holds of those entries end."""
        live = set(np.flatnonzero(np.asarray(self.ncache.in_use)).tolist())
        for idx in [k for k in self.tunnel_aliases if k not in live]:  # the PCoA's entry went: its aliases too
            for j in self.tunnel_aliases.pop(idx):
                if j in live:
                    self._untunnel_entry(j)
        self._forget_delivered()
        for idx in [k for k in self.tunnel_peer if k not in live]:
            del self.tunnel_peer[idx]
            self.sync(idx)
        for idx in [k for k in self.proxy_key if k not in live]:
            self.key_done(self.proxy_key.pop(idx))
            self.sync(idx)
        for idx in [k for k in self.hold if k not in live]:
            self.hold_end(idx)

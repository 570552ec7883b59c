"""The routing table: the interfaces' own prefixes and the configured routes, as a longest-prefix-match table
(``Fib``) the forwarding node looks up per block, and the lookups the control path makes (the route of one
address, of a batch, of a tunnel's NAR).

Ownership: built once by the engine's constructor; the engine's thread is its one user (docs/conventions.md
§3).

May import: backend, constants (tests/test_imports.py holds the rules).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import TYPE_CHECKING

import numpy as np

from fmipfast import backend

if TYPE_CHECKING:
    from fmipfast.backend import Node

__all__ = ["Route", "Routes"]

_MASK64 = (1 << 64) - 1


@dataclass
class Route:
    hi: int
    lo: int
    mask_hi: int
    mask_lo: int
    plen: int
    iface: int
    via: IPv6Address | None  # None: on-link

    @classmethod
    def to(cls, net: ipaddress.IPv6Network, iface: int, via: IPv6Address | None) -> Route:
        """The route to ``net`` through interface ``iface``, via ``via`` (None: on-link)."""
        value = int(net.network_address)
        mask = int(net.netmask)
        return cls(value >> 64, value & _MASK64, mask >> 64, mask & _MASK64, net.prefixlen, iface, via)


class Routes:
    """The routes of an engine whose forwarding node is ``node``, in the order they were configured; the FIB
    built from them is handed to the node."""

    def __init__(self, node: Node, routes: list[Route]) -> None:
        self.node = node
        self.routes = routes
        # by peer row, with the NAR it was looked up for (a row is reused for another NAR); build() clears it
        self._peer_routes: dict[int, tuple[IPv6Address, tuple[int, IPv6Address] | None]] = {}
        self.build()

    def build(self) -> None:
        """The routes as a longest-prefix-match table (``Fib``: at most ceil(log2(lengths + 1)) probes a
        destination, whatever the number of routes) over columns a lookup indexes: output interface, next hop,
        whether the route has one.  Of two routes for the same prefix the first configured wins (an interface's
        own prefix before a route)."""
        self.routes.sort(key=lambda r: -r.plen)
        first: dict[tuple[int, int, int], int] = {}
        for i, r in enumerate(self.routes):
            first.setdefault((r.hi, r.lo, r.plen), i)
        rows = sorted(first.values())
        routes = [self.routes[i] for i in rows]
        prefixes = np.zeros((len(routes), 16), dtype=np.uint8)
        for k, r in enumerate(routes):
            prefixes[k] = np.frombuffer(((r.hi << 64) | r.lo).to_bytes(16, "big"), dtype=np.uint8)
        self.fib = backend.impl.Fib(prefixes, np.array([r.plen for r in routes], dtype=np.uint8),
                                    np.arange(len(routes), dtype=np.int32))
        self.fib_iface = np.array([r.iface for r in routes] + [-1], dtype=np.int64)  # [-1]: no route
        self.fib_via = np.zeros((len(routes) + 1, 16), dtype=np.uint8)
        self.fib_has_via = np.zeros(len(routes) + 1, dtype=bool)
        self.fib_routes = routes
        for k, r in enumerate(routes):
            if r.via is not None:
                self.fib_via[k] = np.frombuffer(r.via.packed, dtype=np.uint8)
                self.fib_has_via[k] = True
        self._peer_routes = {}
        m = len(routes)
        self.node.set_routes(self.fib, self.fib_iface[:m].astype(np.int32), self.fib_via[:m],
                             self.fib_has_via[:m].astype(np.uint8))

    def lookup_route(self, dst: IPv6Address) -> tuple[int, IPv6Address] | None:
        """(output interface index, next hop) for ``dst``, or None."""
        k = int(self.fib.lookup(np.frombuffer(dst.packed, dtype=np.uint8).reshape(1, 16))[0])
        if k < 0:
            return None
        r = self.fib_routes[k]
        return r.iface, (r.via if r.via is not None else dst)

    def peer_route(self, p: int, peer: IPv6Address) -> tuple[int, IPv6Address] | None:
        """The route to tunnel peer ``peer`` in row ``p`` (cached by row, at most one entry per row: the FIB
        only changes in build, which clears it; a row reused for another NAR is looked up again)."""
        cached = self._peer_routes.get(p)
        if cached is None or cached[0] != peer:
            cached = self._peer_routes[p] = (peer, self.lookup_route(peer))
        return cached[1]

    def route_batch(self, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Longest-prefix match of a batch: output interface (-1 = no route) and next hop [n,16]."""
        k = self.fib.lookup(np.ascontiguousarray(dst, dtype=np.uint8))
        k = np.where(k < 0, len(self.fib_routes), k)  # the sentinel row: no route
        next_hop = dst.copy()
        via = self.fib_has_via[k]
        if via.any():
            next_hop[via] = self.fib_via[k[via]]
        return self.fib_iface[k], next_hop

"""One-entry access to the neighbor cache (``NeighborCache``, a batch table) in the form the control path needs
it: an address in, a row index out, and the interface hooks that do not belong to one part of the engine.

Ownership: the engine's thread is the one writer of the neighbor cache (docs/conventions.md §3); these
functions run on it.

May import: backend, constants (tests/test_imports.py holds the rules).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from ipaddress import IPv6Address
from typing import TYPE_CHECKING

import numpy as np

from fmipfast.dataplane.types import Interface

if TYPE_CHECKING:
    from fmipfast.backend import NeighborCache

__all__ = ["address_key", "find_neighbor", "set_neighbor", "access_iface"]


def address_key(address: IPv6Address) -> np.ndarray:
    """``address`` as a neighbor-cache key batch of one (uint8 [1, 16])."""
    return np.frombuffer(address.packed, dtype=np.uint8).reshape(1, 16)


def find_neighbor(ncache: NeighborCache, address: IPv6Address) -> int:
    """The row of ``address`` in the neighbor cache, or -1."""
    return int(ncache.lookup(address_key(address))[0])


def set_neighbor(ncache: NeighborCache, address: IPv6Address, mac: bytes, iface: int, state: int, flags: int,
                 expiry: int = 0) -> int:
    """Insert or overwrite the entry of ``address``; its row, or -1 if the table is full.  The integers go in as
    plain ints (``NeighborState``/``NeighborFlag`` members are int subclasses): the compiled upsert takes any
    other type to the reference's argument check, pure Python on the NAR's path to its first flushed datagram."""
    return ncache.insert_one(address.packed, mac, operator.index(state), flags=operator.index(flags),
                             ifindex=operator.index(iface), expiry=operator.index(expiry))


def access_iface(interfaces: Sequence[Interface]) -> Interface:
    """The first access interface (where MNs attach), else the first interface."""
    for i in interfaces:
        if i.cfg.role == "access":
            return i
    return interfaces[0]

"""The access router's session table: the MNs authenticated on its link (docs/design.md §1, initial attach).

A session is an MN's address, the sub-option 7 key it shares with this router and, when the ticket it came from
has an end, that end on the machine's clock.  :class:`SessionTable` owns the sessions (a dict inside, not a dict
itself): it is read like a mapping and written only through :meth:`SessionTable.put` and
:meth:`SessionTable.remove`, so its bound (``max_sessions``) holds in one place, and it keeps the heap of the
sessions' ends.

Ownership: the :class:`~fmipfast.ar.AccessRouter` that holds the table is its only writer (its driver thread);
a driver may read it (``RouterAgent`` writes it to its session file when :attr:`SessionTable.version` moved).
"""

from __future__ import annotations

import heapq
from collections.abc import ItemsView, Iterator, ValuesView
from dataclasses import dataclass
from ipaddress import IPv6Address

from fmipfast.errors import CapacityError

__all__ = ["Session", "SessionTable"]


@dataclass
class Session:
    """An MN authenticated on this router's link: its address, the sub-option 7 key and its EUI-64."""

    address: IPv6Address
    mac_key: bytes
    eui64: bytes | None = None
    expires_ns: int | None = None  # the ticket's endtime on the machine's clock: the key is not used after


class SessionTable:
    """``address -> Session`` for at most ``capacity`` MNs.

    Reading: ``table[address]``, ``address in table``, :meth:`get`, ``len``, iteration over the addresses,
    :meth:`values`, :meth:`items`.  Writing: :meth:`put` (refuses a new address when the table is full:
    ask :meth:`has_room` first) and :meth:`remove`; nothing else changes the table.  :attr:`version` moves on
    every change.  :meth:`due` and :meth:`next_expiry` give the sessions whose ticket ended, from a heap with
    one entry per :meth:`put` of a session with an end (entries of replaced or removed sessions are skipped).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a session table holds at least 1 session, got capacity {capacity}")
        self._capacity = capacity
        self._by_address: dict[IPv6Address, Session] = {}
        self._ends: list[tuple[int, IPv6Address]] = []  # a heap of (expires_ns, address)
        self._version = 0

    @property
    def capacity(self) -> int:
        """The most sessions the table holds (``AccessRouter(max_sessions=...)``)."""
        return self._capacity

    @property
    def version(self) -> int:
        """Moves on every change, so a driver that keeps the table across restarts
        (``RouterAgent(session_file=...)``) knows when to write it."""
        return self._version

    # ------------------------------------------------------------------ reading
    def __getitem__(self, address: IPv6Address) -> Session:
        return self._by_address[address]

    def __contains__(self, address: object) -> bool:
        return address in self._by_address

    def __len__(self) -> int:
        return len(self._by_address)

    def __iter__(self) -> Iterator[IPv6Address]:
        return iter(self._by_address)

    def get(self, address: IPv6Address) -> Session | None:
        return self._by_address.get(address)

    def values(self) -> ValuesView[Session]:
        return self._by_address.values()

    def items(self) -> ItemsView[IPv6Address, Session]:
        return self._by_address.items()

    def __repr__(self) -> str:
        return f"SessionTable({len(self)}/{self._capacity} sessions)"  # never the keys (docs/conventions.md §7)

    # ------------------------------------------------------------------ writing: the bound is held here
    def has_room(self, address: IPv6Address) -> bool:
        """True if :meth:`put` would take a session for ``address``: it has one already (a renewal replaces
        it), or the table is not full."""
        return address in self._by_address or len(self._by_address) < self._capacity

    def put(self, session: Session) -> None:
        """Add ``session``, or replace the one its address has.  :class:`CapacityError` when the table is full
        and the address has none: the table never grows past :attr:`capacity`."""
        if not self.has_room(session.address):
            raise CapacityError(f"session table full ({self._capacity} sessions): no room for {session.address}")
        self._by_address[session.address] = session
        if session.expires_ns is not None:
            heapq.heappush(self._ends, (session.expires_ns, session.address))
        self._version += 1

    def remove(self, address: IPv6Address) -> Session:
        """Take the session of ``address`` out and return it; KeyError if there is none."""
        session = self._by_address.pop(address)
        self._version += 1
        return session

    # ------------------------------------------------------------------ ends of tickets
    def _current(self, when: int, address: IPv6Address) -> Session | None:
        session = self._by_address.get(address)
        return session if session is not None and session.expires_ns == when else None

    def next_expiry(self) -> int | None:
        """The earliest end (ns) of a session in the table, or None (stale heap entries are dropped)."""
        ends = self._ends
        while ends:
            if self._current(*ends[0]) is not None:
                return ends[0][0]
            heapq.heappop(ends)  # that session ended otherwise (a handover away) or was replaced
        return None

    def due(self, now_ns: int) -> list[Session]:
        """The sessions whose ticket ended at or before ``now_ns``, in the order they ended, each once: their
        heap entries are used up, and the caller removes the ones it ends (it may keep one a handover still
        uses, and end it with that handover)."""
        ends = self._ends
        if not ends or ends[0][0] > now_ns:
            return []  # the common case: the machine asks on every event
        found: list[Session] = []
        seen: set[IPv6Address] = set()  # a session put twice with the same end has two entries
        while ends and ends[0][0] <= now_ns:
            session = self._current(*heapq.heappop(ends))
            if session is not None and session.address not in seen:
                seen.add(session.address)
                found.append(session)
        return found

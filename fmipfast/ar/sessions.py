"""The access router's session table: the MNs authenticated on its link (docs/design.md §1, initial attach).

Ownership: the :class:`~fmipfast.ar.AccessRouter` that holds the table is its only writer (its driver thread);
a driver may read it (``RouterAgent`` writes it to its session file).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address

__all__ = ["Session", "SessionTable"]


class SessionTable(dict[IPv6Address, "Session"]):
    """``address -> Session``; :attr:`version` moves on every change, so a driver that keeps the table across
    restarts (``RouterAgent(session_file=...)``) knows when to write it."""

    def __init__(self) -> None:
        super().__init__()
        self.version = 0

    def __setitem__(self, key: IPv6Address, value: "Session") -> None:
        super().__setitem__(key, value)
        self.version += 1

    def __delitem__(self, key: IPv6Address) -> None:
        super().__delitem__(key)
        self.version += 1

    def pop(self, key, *default):  # type: ignore[override]
        self.version += 1
        return super().pop(key, *default)


@dataclass
class Session:
    """An MN authenticated on this router's link: its address, the sub-option 7 key and its EUI-64."""

    address: IPv6Address
    mac_key: bytes
    eui64: bytes | None = None
    expires_ns: int | None = None  # the ticket's endtime on the machine's clock: the key is not used after

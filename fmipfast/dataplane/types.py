"""The data plane's shared types: the interfaces the engine owns (:class:`Interface`), the frames it hands to
the control path (:class:`ControlFrame`), the token bucket of its rate limits, the refusal a control handler
raises, and the few addresses and limits more than one part of the engine uses.

Ownership: an Interface belongs to its Engine; its Router Advertisement state is written by the engine's
thread only (docs/conventions.md §3).  Nothing here touches a port, a socket or a clock.

May import: ports, config, constants (tests/test_imports.py holds the rules).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv6Address

import numpy as np

from fmipfast._linux import TP_STATUS_CSUMNOTREADY
from fmipfast.config import InterfaceConfig
from fmipfast.constants import DropReason
from fmipfast.ports import FrameBatch, Port

__all__ = ["Interface", "ControlFrame", "FrameBatch", "TokenBucket", "Refused", "Reinject", "TP_STATUS_CSUMNOTREADY",
           "ALL_NODES", "ALL_ROUTERS", "SOLICITED_RA_RATE", "SOLICITED_RA_BURST"]

ALL_NODES = IPv6Address("ff02::1")
ALL_ROUTERS = IPv6Address("ff02::2")
#: Router Advertisements answering solicitations, per interface (token bucket): an RS flood is not answered
#: one for one.  Multicast answers are also spaced by MIN_DELAY_BETWEEN_RAS_NS (fmipfast.dataplane.nd).
SOLICITED_RA_RATE = 100.0
SOLICITED_RA_BURST = 20.0


class Refused(Exception):
    """Raised by a control-path handler that finds the frame invalid after the data plane's checks: the frame
    is dropped under ``reason`` instead of being counted as delivered."""

    def __init__(self, reason: DropReason) -> None:
        super().__init__(reason.name)
        self.reason = reason


@dataclass
class TokenBucket:
    rate: float
    burst: float
    tokens: float
    last_ns: int = 0

    def take(self, now_ns: int) -> bool:
        self.tokens = min(self.burst, self.tokens + (now_ns - self.last_ns) / 1e9 * self.rate)
        self.last_ns = now_ns
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def _solicited_ra_bucket() -> TokenBucket:
    return TokenBucket(SOLICITED_RA_RATE, SOLICITED_RA_BURST, SOLICITED_RA_BURST)


@dataclass
class Interface:
    """An interface the engine owns: its port, addresses and Router Advertisement state."""

    index: int
    cfg: InterfaceConfig
    port: Port
    mac: bytes
    link_local: IPv6Address
    addresses: list[tuple[IPv6Address, int]]
    next_ra_ns: int = 0
    last_multicast_ra_ns: int = -(1 << 62)
    solicited_ra_bucket: TokenBucket = field(default_factory=_solicited_ra_bucket)

    @property
    def name(self) -> str:
        return self.cfg.name

    @property
    def source(self) -> IPv6Address:
        """The address this router speaks from on the link: the first global one, else link-local."""
        return self.addresses[0][0] if self.addresses else self.link_local

    def __post_init__(self) -> None:
        # the kernels' forms of what the data path hands them per block (uint8 arrays, made once)
        self.mac_array = np.frombuffer(self.mac, dtype=np.uint8)
        self.source_array = np.frombuffer(self.source.packed, dtype=np.uint8)


@dataclass
class ControlFrame:
    """A frame the data plane handed to the control path, with what classify found."""

    iface: Interface
    frame: bytes
    src: IPv6Address
    dst: IPv6Address
    hop_limit: int
    has_ah: bool
    l3_offset: int
    l4_offset: int
    icmp_type: int
    icmp_code: int
    fmip_code: int
    now_ns: int


#: How a part of the engine hands frames leaving a queue (a flushed handover buffer, a resolved next hop's
#: queue) back to the pipeline: ``reinject(iface, arena, offsets, lengths)`` (fmipfast.dataplane.pipeline).
Reinject = Callable[[Interface, np.ndarray, np.ndarray, np.ndarray], None]

"""The vocabulary shared by the I/O-free protocol machines (``fmipfast.ar``, ``fmipfast.mn``) and their drivers.

Implements the event/action interface of the handover state machines (docs/design.md §1, draft §2-§7, App. A):
drivers feed :class:`Event` objects with the current time in nanoseconds into ``handle(event, now_ns)`` and
carry out the :class:`Action` objects it returns; ``next_deadline()`` says when to feed a :class:`Tick`.
The machines never read a clock, a socket or netlink (docs/conventions.md §6).

Also here: the retransmission policy (:class:`Backoff`), the common receive checks (:func:`parse_received`:
checksum, hop limit, AH), the MAC sub-option helpers (:func:`sign`, :func:`mac_ok`) and small pure address
derivations (docs/design.md §3) — ``ar``/``mn`` may not import ``backend``, so they derive through these, which
call the kernels ``fmipfast.backend`` picks (the compiled core in a built package, never its pure-Python oracle),
taking and giving ``IPv6Address``; ``tests/test_handover_fsm.py`` checks them against an independent statement.

Ownership: plain values only; no state.  Imports messages, constants, errors, config, security and
``backend``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from enum import Enum
from ipaddress import IPv6Address
from typing import Any, Union

from fmipfast import backend
from fmipfast.constants import DEFAULT_CODEPOINTS, ND_HOP_LIMIT, SUBOPT_HDR_LEN, Codepoints, SubOptType
from fmipfast.errors import BadChecksum, DerivationError, MalformedPacket
from fmipfast.messages import (
    FmipMessage,
    decode,
    encode,
    mac_offset_of,
    mac_value_offset,
    refill_checksum,
)
from fmipfast.messages.suboptions import iter_suboptions
from fmipfast.security import mac as _mac
from fmipfast.security.lwkerb import ApContext, Credentials, HandoverBinding, Principal

__all__ = [
    # events
    "Event", "Received", "Tick", "Trigger", "Verified", "LinkUp", "LinkDown", "TicketReady", "Start",
    "AdjacentRealms", "Reachability",
    # actions
    "Action", "Send", "Verify", "ProxyAdd", "ProxyComplete", "ProxyRemove", "BufferDrop", "TunnelAdd",
    "TunnelRemove", "ProbeNeighbor", "ForwardPacket", "GetTicket", "ConfigureAddress", "PreloadNeighbor",
    "SetDefaultRoute", "RemoveAddress", "ReadyToSwitch", "Precache", "Note",
    # policy and helpers
    "Backoff", "DEFAULT_BACKOFF", "Kind", "STATUS_ACCEPTED", "LINK_MESSAGES", "ROUTER_MESSAGES", "DEFAULT_LIFETIME_MS",
    "ROUTER_HOP_LIMIT", "parse_received", "attach_fields", "sign", "mac_ok", "mac_ok_at", "eui64_from_mac48",
    "mac48_from_eui64", "ncoa_from_prefix", "nar_link_local", "mac48_from_address", "Counters", "addr_text",
]

#: Status value of a Handover Error that *accepts* the HI (RFC 5568 HAck code 0, "Handover Accepted"):
#: the project's HE doubles as the HI acknowledgement (docs/protocol.md §3).
STATUS_ACCEPTED = 0
#: Default proxy / forwarding lifetime of a handover (ms) when the Trigger or the HI gives none.
DEFAULT_LIFETIME_MS = 3000
#: Hop limit of router-to-router messages (HI, HE); any value is valid for them (docs/design.md §2).
ROUTER_HOP_LIMIT = 64
#: Messages that travel over one link only and must arrive with hop limit 255 (docs/design.md §2, RFC 4861 §6.1).
LINK_MESSAGES = frozenset({"handover_redirect", "handover_redirect_ack", "authenticated_mn", "attach",
                           "forwarding_disable"})
#: Router-to-router messages: accepted only when the driver verified AH on them (docs/design.md §4).
ROUTER_MESSAGES = frozenset({"handover", "handover_error"})

Counters = dict[str, int]


# ============================================================================================ events


@dataclass(frozen=True, slots=True)
class Received:
    """One fmipfast ICMPv6 message as received: the raw octets from the Type octet; the machine decodes and
    checks it (checksum over ``src``/``dst``, hop limit, MAC).  ``ah_verified`` only if the driver verified AH."""

    icmp: bytes
    src: IPv6Address
    dst: IPv6Address
    hop_limit: int = ND_HOP_LIMIT
    iface: str = ""
    ah_verified: bool = False


@dataclass(frozen=True, slots=True)
class Tick:
    """The deadline from ``next_deadline()`` passed (feeding it early is harmless)."""


@dataclass(frozen=True, slots=True)
class Trigger:
    """AR only, docs/design.md §1 step 1: move the MN at ``pcoa`` to the NAR at ``nar_address``.

    ``nar_mac`` (6-octet MAC or 8-octet EUI-64) sets M in the Redirect, ``ncoa`` sets C; ``buffer`` is the
    U flag of the HI's handover control; ``lifetime_ms`` bounds the NAR's proxy entry and the PAR's tunnel."""

    pcoa: IPv6Address
    nar_address: IPv6Address
    nar_principal: Principal
    nar_prefix_size: int = 64
    nar_mac: bytes | None = None
    ncoa: IPv6Address | None = None
    buffer: bool = True
    lifetime_ms: int = DEFAULT_LIFETIME_MS


@dataclass(frozen=True, slots=True)
class Verified:
    """AR only: the result of a :class:`Verify` — an :class:`ApContext` or an error text."""

    request_id: int
    context: ApContext | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Reachability:
    """AR only: the result of a :class:`ProbeNeighbor` -- True when ``address`` answered on the access link
    (a solicited Neighbor Advertisement), False when it did not, None when the driver could not probe it."""

    address: IPv6Address
    reachable: bool | None


@dataclass(frozen=True, slots=True)
class LinkUp:
    """MN only: layer 2 is up on ``link`` (a name the driver chooses; the same name means the same link)."""

    link: str


@dataclass(frozen=True, slots=True)
class LinkDown:
    """MN only: layer 2 is down."""


@dataclass(frozen=True, slots=True)
class TicketReady:
    """MN only: the answer to a :class:`GetTicket` — credentials or an error text."""

    request_id: int
    creds: Credentials | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Start:
    """MN only: attach to the router at ``router_address`` (initial attach, docs/design.md §1): the MN is on
    ``link`` with the care-of address ``coa`` (already configured)."""

    router_address: IPv6Address
    router_principal: Principal
    coa: IPv6Address
    link: str = "link0"


@dataclass(frozen=True, slots=True)
class AdjacentRealms:
    """MN only: a Router Advertisement listed adjacent realms (draft §6.1.1)."""

    realms: tuple[str, ...]


Event = Union[Received, Tick, Trigger, Verified, LinkUp, LinkDown, TicketReady, Start, AdjacentRealms,
              Reachability]


# ============================================================================================ actions


@dataclass(frozen=True, slots=True)
class Send:
    """A fully encoded ICMPv6 message (checksum over src/dst, MAC filled); the driver wraps it in IPv6
    with ``hop_limit`` (and AH when ``ah``) and sends it (on ``iface`` when given)."""

    icmp: bytes
    src: IPv6Address
    dst: IPv6Address
    hop_limit: int
    ah: bool = False
    iface: str | None = None


@dataclass(frozen=True, slots=True)
class Verify:
    """AR: verify ``ap_req`` bound to ``binding`` (``ApVerifier.verify``), answer with :class:`Verified`."""

    request_id: int
    ap_req: bytes
    binding: HandoverBinding


@dataclass(frozen=True, slots=True)
class ProxyAdd:
    """NAR: proxy ``ncoa`` (answer NS for it) and buffer its traffic under ``key`` (engine ``proxy_add``).

    Emitted when an AH-verified HI is admitted, before the AP-REQ is verified: the draft (§3) lets the NAR
    buffer packets destined to the MN before it authenticates, and the PAR already tunnels.  ``pcoa`` is
    buffered under the same key (the PAR tunnels the PCoA's packets); ``buffer`` is the HI's U flag."""

    ncoa: IPv6Address
    key: int
    lifetime_ms: int
    pcoa: IPv6Address | None = None
    buffer: bool = True


@dataclass(frozen=True, slots=True)
class ProxyComplete:
    """NAR: the MN attached; the entry becomes REACHABLE with ``mac`` (48-bit) and the buffer is flushed."""

    ncoa: IPv6Address
    mac: bytes


@dataclass(frozen=True, slots=True)
class ProxyRemove:
    """NAR: the handover expired; remove the proxy entry for ``ncoa``."""

    ncoa: IPv6Address


@dataclass(frozen=True, slots=True)
class BufferDrop:
    """NAR: drop (and count) the packets buffered under ``key``."""

    key: int


@dataclass(frozen=True, slots=True)
class TunnelAdd:
    """PAR: tunnel packets for ``pcoa`` to ``nar`` (RFC 2473; engine ``tunnel_add``)."""

    pcoa: IPv6Address
    nar: IPv6Address


@dataclass(frozen=True, slots=True)
class TunnelRemove:
    """PAR: stop tunnelling ``pcoa``; normal delivery again (engine ``tunnel_remove``)."""

    pcoa: IPv6Address


@dataclass(frozen=True, slots=True)
class ProbeNeighbor:
    """PAR: is ``address`` still on the access link?  RFC 4861 Neighbor Unreachability Detection (engine
    ``probe_neighbor``: unicast Neighbor Solicitations, a few retransmissions); answered with a
    :class:`Reachability` event."""

    address: IPv6Address


@dataclass(frozen=True, slots=True)
class ForwardPacket:
    """NAR: send this IPv6 packet on unchanged (the Binding Update from an Attach; engine ``send_packet``)."""

    packet: bytes


@dataclass(frozen=True, slots=True)
class GetTicket:
    """MN: obtain credentials for ``server`` (ticket cache / KDC), answer with :class:`TicketReady`."""

    request_id: int
    server: Principal


@dataclass(frozen=True, slots=True)
class ConfigureAddress:
    """MN: configure ``address`` on ``iface`` without DAD (the NCoA; the NAR proxies it)."""

    address: IPv6Address
    iface: str


@dataclass(frozen=True, slots=True)
class PreloadNeighbor:
    """MN: a neighbor entry ``address`` -> ``mac`` (48-bit) on ``iface`` (the NAR, from the Redirect)."""

    address: IPv6Address
    mac: bytes
    iface: str


@dataclass(frozen=True, slots=True)
class SetDefaultRoute:
    """MN: default route via ``via`` (the NAR's link-local address) on ``iface``."""

    via: IPv6Address
    iface: str


@dataclass(frozen=True, slots=True)
class RemoveAddress:
    """MN: remove ``address``: the PCoA once the NAR authenticated the MN and forwarded the BU (``retired``),
    or an NCoA given up on a link reversal.  A host may keep a retired PCoA until its binding update completes
    (packets still addressed to it keep arriving through the NAR's proxy); see ``MnAgent(keep_pcoa=True)``."""

    address: IPv6Address
    retired: bool = False


@dataclass(frozen=True, slots=True)
class ReadyToSwitch:
    """MN: the HRA is sent; the lower layer may move to the NAR now."""

    nar_address: IPv6Address


@dataclass(frozen=True, slots=True)
class Precache:
    """MN: fetch cross-realm TGTs for ``realms`` in the background (``TicketCache.precache``)."""

    realms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Note:
    """A timeline entry (message sent/received, state change, failure) for the demo and metrics."""

    name: str
    fields: dict[str, Any] = field(default_factory=dict, compare=True)


Action = Union[Send, Verify, ProxyAdd, ProxyComplete, ProxyRemove, BufferDrop, TunnelAdd, TunnelRemove,
               ProbeNeighbor, ForwardPacket, GetTicket, ConfigureAddress, PreloadNeighbor, SetDefaultRoute,
               RemoveAddress, ReadyToSwitch, Precache, Note]


class Kind(str, Enum):
    """What happened to one handover/attach record: the column of the transition tables."""

    TRIGGER = "trigger"
    START = "start"
    HRD = "hrd"
    HRA = "hra"
    HI = "hi"
    HE = "he"
    ATTACH = "attach"
    AMN = "amn"
    FD = "fd"
    VERIFIED = "verified"
    TICKET = "ticket"
    LINK_UP = "link_up"
    LINK_DOWN = "link_down"
    TIMEOUT = "timeout"  # a retransmission timer fired
    LIFETIME = "lifetime"  # a lifetime ran out

    def __str__(self) -> str:
        return self.value


# ============================================================================================ retransmission


@dataclass(frozen=True, slots=True)
class Backoff:
    """Bounded exponential backoff: try 1 at once, try *n* after ``initial_ms * factor**(n-2)`` more;
    after ``max_tries`` tries and one more wait without an answer the exchange fails.

    Defaults (docs/protocol.md §4): 150 ms, ×2, 4 tries — the first answer wait (150 ms) is well above
    an access-link round trip plus a case-2 KDC round trip, and the whole exchange gives up after
    150+300+600+1200 = 2.25 s, inside the default 3 s handover lifetime."""

    initial_ms: int = 150
    factor: int = 2
    max_tries: int = 4

    def __post_init__(self) -> None:
        if self.initial_ms < 1 or self.factor < 1 or self.max_tries < 1:
            raise ValueError("backoff: initial_ms, factor and max_tries must be >= 1")

    def wait_ns(self, tries: int) -> int:
        """How long to wait for an answer after the ``tries``-th transmission (1-based)."""
        return self.initial_ms * self.factor ** (tries - 1) * 1_000_000

    def total_ms(self) -> int:
        return sum(self.wait_ns(n) for n in range(1, self.max_tries + 1)) // 1_000_000


#: The default retransmission policy (a module-level singleton so constructors can default to it).
DEFAULT_BACKOFF = Backoff()


# ============================================================================================ receive checks


def parse_received(ev: Received, codepoints: Codepoints, counters: Counters) -> FmipMessage | None:
    """Decode ``ev`` and apply the checks every receiver makes (docs/design.md §2, §4), in this order: checksum
    (RFC 4443 §2.3), well-formedness, hop limit 255 for link messages (RFC 4861 §6.1 style), AH for
    router-to-router messages.  Returns the message, or None after bumping the counter of the reason."""
    try:
        msg = decode(ev.icmp, ev.src, ev.dst, codepoints=codepoints)
    except BadChecksum:
        _count(counters, "bad_checksum")
        return None
    except MalformedPacket:
        _count(counters, "malformed")
        return None
    if not isinstance(msg, FmipMessage):
        _count(counters, "not_fmip")
        return None
    if msg.KEY in LINK_MESSAGES and ev.hop_limit != ND_HOP_LIMIT:
        _count(counters, "bad_hop_limit")
        return None
    if msg.KEY in ROUTER_MESSAGES and not ev.ah_verified:
        _count(counters, "missing_ah")
        return None
    return msg


@functools.lru_cache(maxsize=4096)
def addr_text(address: object) -> str:
    """``str(address)`` for notes and bindings, cached: ``IPv6Address.__str__`` (hextet compression) cost a
    fifth of a handover in the protocol machines (bench/bench_protocol.py), and a router names the same few
    addresses over and over.  Bounded (LRU)."""
    return str(address)


def _count(counters: Counters, name: str, n: int = 1) -> None:
    counters[name] = counters.get(name, 0) + n


def sign(msg: FmipMessage, key: bytes, src: IPv6Address, dst: IPv6Address,
         codepoints: Codepoints = DEFAULT_CODEPOINTS) -> bytes:
    """Encode ``msg`` (which carries a zero :class:`MessageAuthCode`) with the MAC value filled in, then the
    checksum (security/mac.py: MAC first, checksum last).  One encoding: the MAC value is written into it in
    place and the checksum computed again."""
    draft = bytearray(encode(msg, src, dst, codepoints=codepoints))
    offset = mac_offset_of(msg, draft)
    if offset is None:
        raise ValueError(f"{msg.NAME}: no MAC sub-option to fill")
    draft[offset:offset + _mac.MAC_LEN] = _mac.message_mac(key, src.packed, dst.packed, bytes(draft), offset)
    return refill_checksum(draft, src, dst)


#: The octets an Attach's fixed part takes before its sub-options (type, code, checksum, reserved, Length;
#: the codec's own layout of a message of sub-options only, fmipfast.messages.fmipv6).
_ATTACH_OPTIONS_AT = 10
_SUBOPT_IDENTIFIER, _SUBOPT_MAC, _SUBOPT_LLA = int(SubOptType.IDENTIFIER), int(SubOptType.MAC), \
    int(SubOptType.LINK_LAYER_ADDRESS)


def attach_fields(ev: Received, codepoints: Codepoints = DEFAULT_CODEPOINTS) -> tuple[int, bytes | None, int] | None:
    """The framing of an Attach read without decoding it, for a receiver that authenticates its octets before
    it believes (or parses) any of them: ``(identifier, the link-layer address sub-option's EUI-64 or None, the
    offset of the MAC value)`` when ``ev`` came with hop limit 255, carries the profile's Attach type and
    code, a checksum that verifies, a Length that is the message's, and sub-options framed inside it with
    exactly one Identifier and one MAC (and at most one link-layer address) of their sizes; None otherwise.
    Nothing in the result is to be trusted before :func:`mac_ok_at` said yes; the decode of the message
    (:func:`parse_received`) makes every other check."""
    icmp = ev.icmp
    n = len(icmp)
    if ev.hop_limit != ND_HOP_LIMIT or n < _ATTACH_OPTIONS_AT or icmp[0] != codepoints.type \
            or icmp[1] != codepoints.code("attach") or (icmp[8] << 8 | icmp[9]) != n:
        return None
    if not backend.icmp6_checksum_ok(ev.src.packed, ev.dst.packed, bytes(icmp)):
        return None
    identifier = mac_at = -1
    eui64 = None
    try:
        for kind, at, value in iter_suboptions(icmp, _ATTACH_OPTIONS_AT):
            if kind == _SUBOPT_IDENTIFIER:
                if identifier >= 0 or len(value) != 4:
                    return None
                identifier = value[0] << 8 | value[1]
            elif kind == _SUBOPT_MAC:
                if mac_at >= 0 or len(value) != _mac.MAC_LEN:
                    return None
                mac_at = at + SUBOPT_HDR_LEN
            elif kind == _SUBOPT_LLA:
                if eui64 is not None or len(value) != 8:
                    return None
                eui64 = bytes(value)
    except MalformedPacket:
        return None
    if identifier < 0 or mac_at < 0:
        return None
    return identifier, eui64, mac_at


def mac_ok_at(icmp: bytes, key: bytes | _mac.MacKey, src: IPv6Address, dst: IPv6Address, offset: int) -> bool:
    """:func:`mac_ok` for a MAC value whose offset is known (:func:`attach_fields`): no decoding.  ``key``
    may be prepared (:class:`fmipfast.security.mac.MacKey`)."""
    return _mac.verify_message_mac(key, src.packed, dst.packed, icmp, offset)


def mac_ok(icmp: bytes, key: bytes, src: IPv6Address, dst: IPv6Address,
           codepoints: Codepoints = DEFAULT_CODEPOINTS, message: FmipMessage | None = None) -> bool:
    """True if ``icmp`` carries a MAC sub-option that verifies under ``key`` (no sub-option: False).
    ``message``: ``icmp`` already decoded (by :func:`parse_received`), which saves decoding it again."""
    try:
        offset = mac_value_offset(icmp, codepoints=codepoints) if message is None else mac_offset_of(message, icmp)
    except MalformedPacket:
        return False
    if offset is None:
        return False
    return _mac.verify_message_mac(key, src.packed, dst.packed, icmp, offset)


# ======================================================================================= addresses (docs/design.md §3)
# The derivations themselves are the backend's kernels (ar/mn may not import the backend; the compiled core in a
# built package: its pure-Python oracle is for the tests and FMIPFAST_PUREPYTHON): these wrappers only take and
# give IPv6Address and say what a failure means here.


def eui64_from_mac48(mac: bytes) -> bytes:
    """EUI-64 of a 48-bit MAC: FF-FE inserted in the middle (docs/design.md §3).  ValueError unless 6 octets."""
    return backend.eui64_from_mac48(mac)


def mac48_from_eui64(eui: bytes) -> bytes:
    """The 48-bit MAC inside an FF-FE based EUI-64; :class:`DerivationError` otherwise, ValueError unless 8
    octets."""
    try:
        return backend.mac48_from_eui64(eui)
    except DerivationError:
        raise DerivationError(f"EUI-64 {bytes(eui).hex()} is not built from a 48-bit MAC (octets 3-4 not FF-FE)") \
            from None


def ncoa_from_prefix(nar: IPv6Address, prefix_size: int, coa: IPv6Address) -> IPv6Address:
    """NCoA without C: the first ``prefix_size`` bits of the NAR address, the rest of ``coa`` (draft §5).
    ValueError for a prefix size outside 0..128."""
    return IPv6Address(backend.ncoa_from_prefix(nar.packed, prefix_size, coa.packed))


def nar_link_local(nar: IPv6Address, prefix_size: int) -> IPv6Address:
    """FE80::/64 + the NAR address's interface identifier; only prefix size 64 (docs/design.md §3): any other
    in 0..128 is a :class:`DerivationError`."""
    try:
        return IPv6Address(backend.nar_link_local(nar.packed, prefix_size))
    except DerivationError:
        raise DerivationError(f"NAR link-local derivation needs prefix size 64, got {prefix_size}") from None


def mac48_from_address(address: IPv6Address, prefix_size: int) -> bytes:
    """The 48-bit MAC behind an address's modified EUI-64 interface identifier (M not set, docs/design.md §3).
    :class:`DerivationError` when the prefix is longer than 64 or the IID is not FF-FE based (privacy or
    stable IIDs, RFC 8981 / RFC 7217): the sender must set M.  ValueError for a prefix size outside 0..128."""
    try:
        eui = backend.eui64_from_address(address.packed, prefix_size)
    except DerivationError:
        raise DerivationError(f"prefix size {prefix_size} leaves no 64-bit interface identifier") from None
    try:
        return backend.mac48_from_eui64(eui)
    except DerivationError:
        raise DerivationError(f"interface identifier {address.packed[8:].hex()} of {address} is not EUI-64 based: "
                              "the NAR's MAC cannot be derived, the Redirect must carry it (M)") from None

"""Wire vocabulary: every codepoint, flag and size fmipfast uses, as IntEnums and named ints.

Sources: docs/design.md §2 (the project's default codepoint profile for the draft's TBD types), the draft
(draft-koodli-mobileip-fastv6-02) §5-§7 for layouts, RFC 4443 / RFC 4861 / RFC 6275 / RFC 8200 for the
surrounding protocols.  The compiled core sees them as the ``cdef enum`` ints of ``includes/consts.pxi``,
which ``python -m fmipfast._genconsts`` writes from this module (docs/conventions.md §5).

Imports nothing from fmipfast.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import TYPE_CHECKING

__all__ = [
    "EtherType",
    "IpProto",
    "Icmp6Type",
    "FmipCode",
    "SubOptType",
    "AddressKind",
    "HandoverStatus",
    "NdOptType",
    "NdFmipSubtype",
    "MhType",
    "HrdFlag",
    "HiFlag",
    "HandoverControlFlag",
    "DEFAULT_FMIP_TYPE",
    "IP6_HDR_LEN",
    "ETH_HDR_LEN",
    "ICMP6_HDR_LEN",
    "SUBOPT_HDR_LEN",
    "SUBOPT_MAX_LEN",
    "LKB_FRAGMENT_MAX",
    "EUI64_LEN",
    "MAC48_LEN",
    "ADDR_LEN",
    "MAC_VALUE_LEN",
    "ND_HOP_LIMIT",
]


class EtherType(IntEnum):
    IPV6 = 0x86DD
    VLAN = 0x8100
    QINQ = 0x88A8


class IpProto(IntEnum):
    """IPv6 next-header values (IANA protocol numbers) that fmipfast walks or emits."""

    HOPOPTS = 0
    TCP = 6
    UDP = 17
    IPV6 = 41  # IPv6-in-IPv6, RFC 2473
    ROUTING = 43
    FRAGMENT = 44
    ESP = 50
    AH = 51  # RFC 4302
    ICMPV6 = 58
    NONE = 59
    DSTOPTS = 60
    MH = 135  # Mobility Header, RFC 6275


class Icmp6Type(IntEnum):
    DEST_UNREACH = 1
    PACKET_TOO_BIG = 2
    TIME_EXCEEDED = 3
    PARAM_PROBLEM = 4
    ECHO_REQUEST = 128
    ECHO_REPLY = 129
    ROUTER_SOLICITATION = 133
    ROUTER_ADVERTISEMENT = 134
    NEIGHBOR_SOLICITATION = 135
    NEIGHBOR_ADVERTISEMENT = 136
    REDIRECT = 137
    FMIP = 200  # docs/design.md §2 default: RFC 4443 private experimentation, informational range


DEFAULT_FMIP_TYPE = int(Icmp6Type.FMIP)


class FmipCode(IntEnum):
    """docs/design.md §2: the Code octet tells the seven fmipfast messages apart (default profile)."""

    HANDOVER_REDIRECT = 1  # HRD, draft §5, PAR -> MN
    HANDOVER_REDIRECT_ACK = 2  # HRA, draft §6.1, MN -> PAR
    HANDOVER = 3  # HI, draft §6, PAR -> NAR, under AH
    AUTHENTICATED_MN = 4  # AMN, draft §6.1, NAR -> MN
    ATTACH = 5  # draft Fig. 4 message 5 (project-defined), MN -> NAR
    HANDOVER_ERROR = 6  # HE, draft §7, NAR -> PAR, under AH
    FORWARDING_DISABLE = 7  # draft App. A (project-defined), MN -> PAR


class SubOptType(IntEnum):
    """docs/design.md §2 sub-options: 1-octet type, 1-octet length in octets including the header."""

    PRINCIPAL = 1  # draft §5.1 Kerberos principal name / realm
    LKB = 2  # draft §6.1 light-weight Kerberos message (fragmented over 253 octets)
    HANDOVER_CONTROL = 3  # flags (U), max buffered packets, lifetime in ms
    ADDRESS = 4  # kind + reserved + 128-bit address
    ENCAPSULATED = 5  # a whole IPv6 packet (the Binding Update)
    IDENTIFIER = 6  # 2-octet handover identifier + 2 reserved
    MAC = 7  # 16-octet HMAC-SHA-256-128
    STATUS = 8  # 1-octet reason (HandoverStatus)
    LINK_LAYER_ADDRESS = 9  # 8-octet EUI-64


class AddressKind(IntEnum):
    PCOA = 1
    NCOA = 2
    NAR = 3


class HandoverStatus(IntEnum):
    """Handover Error reasons (docs/design.md §2, values after RFC 5568 HAck codes)."""

    NCOA_IN_USE = 1
    UNSPECIFIED = 128
    ADMINISTRATIVELY_PROHIBITED = 129
    INSUFFICIENT_RESOURCES = 130
    AUTHENTICATION_FAILED = 131


class NdOptType(IntEnum):
    """RFC 4861 §4.6 ND options (length in units of 8 octets) plus the project's experiment type."""

    SOURCE_LL_ADDR = 1
    TARGET_LL_ADDR = 2
    PREFIX_INFORMATION = 3
    REDIRECTED_HEADER = 4
    MTU = 5
    FMIP = 253  # RFC 4727 experiment codepoint, docs/design.md §2 RS/RA options


class NdFmipSubtype(IntEnum):
    ADJACENT_REALMS_REQUEST = 1  # in an RS, draft §6.1.1
    ADJACENT_REALMS = 2  # in an RA, draft §6.1.1


class MhType(IntEnum):
    BINDING_REFRESH_REQUEST = 0
    BINDING_UPDATE = 5  # RFC 6275 §6.1.7
    BINDING_ACK = 6


class HrdFlag(IntFlag):
    """Flags octet of the Handover Redirect (draft §5), the octet after Prefix Size."""

    M = 0x80  # NAR MAC address field present
    C = 0x40  # New Care-of Address field present
    S = 0x20  # Kerberos principal/realm sub-option present


class HiFlag(IntFlag):
    """Flags octet of the ICMP Handover (draft §6)."""

    M = 0x80  # Mobile Node MAC address field present


class HandoverControlFlag(IntFlag):
    U = 0x80  # buffer packets for the MN at the NAR


ETH_HDR_LEN = 14
IP6_HDR_LEN = 40
ICMP6_HDR_LEN = 4
SUBOPT_HDR_LEN = 2
SUBOPT_MAX_LEN = 255
LKB_FRAGMENT_MAX = SUBOPT_MAX_LEN - SUBOPT_HDR_LEN  # 253 value octets per type-2 sub-option
ADDR_LEN = 16
EUI64_LEN = 8
MAC48_LEN = 6
MAC_VALUE_LEN = 16  # HMAC-SHA-256-128
ND_HOP_LIMIT = 255  # RFC 4861: link-local-only messages are sent and checked with hop limit 255


# --- The codepoint profile -------------------------------------------------------------------------

#: Message keys in the order of docs/design.md §2's table; ``Codepoints`` has one field per key.
MESSAGE_KEYS = (
    "handover_redirect",
    "handover_redirect_ack",
    "handover",
    "authenticated_mn",
    "attach",
    "handover_error",
    "forwarding_disable",
)


class Codepoints:
    """The ICMPv6 type and the seven Codes fmipfast messages use (docs/design.md §2; configurable).

    Immutable and hashable.  ``Codepoints()`` is the default profile (type 200, codes 1-7).  Validation:
    the type must be informational (128-255, RFC 4443 §2.1) and not a type ND or echo already uses
    (128-137); codes must be 0-255 and pairwise distinct.  Violations raise ``ValueError`` naming the field.
    """

    __slots__ = ("type", "_codes", "_by_code", "_hash")
    type: int
    _codes: dict[str, int]
    _by_code: dict[int, str]
    _hash: int

    def __init__(self, type: int = DEFAULT_FMIP_TYPE, **codes: int) -> None:  # noqa: A002 - draft name
        unknown = set(codes) - set(MESSAGE_KEYS)
        if unknown:
            raise ValueError(f"unknown message key(s) {sorted(unknown)}; known: {', '.join(MESSAGE_KEYS)}")
        if not isinstance(type, int) or isinstance(type, bool) or not 128 <= type <= 255:
            raise ValueError(f"type: {type!r} is not an informational ICMPv6 type (128-255)")
        if 128 <= type <= 137:
            raise ValueError(f"type: {type} is already used by echo/ND (128-137)")
        merged = {k: int(FmipCode[k.upper()]) for k in MESSAGE_KEYS}
        for key, code in codes.items():
            if not isinstance(code, int) or isinstance(code, bool) or not 0 <= code <= 255:
                raise ValueError(f"{key}: code {code!r} is not an integer 0-255")
            merged[key] = code
        by_code: dict[int, str] = {}
        for key, code in merged.items():
            if code in by_code:
                raise ValueError(f"{key}: code {code} is also used by {by_code[code]}")
            by_code[code] = key
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "_codes", merged)
        object.__setattr__(self, "_by_code", by_code)
        # computed once: classify() looks its code table up by profile on every batch
        object.__setattr__(self, "_hash", hash((type, *sorted(merged.items()))))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Codepoints is immutable")

    def code(self, key: str) -> int:
        """The Code of message ``key`` (one of MESSAGE_KEYS)."""
        return self._codes[key]

    def key(self, code: int) -> str | None:
        """The message key for ``code``, or None if this profile has no such code."""
        return self._by_code.get(code)

    def as_dict(self) -> dict[str, int]:
        return {"type": self.type, **self._codes}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Codepoints) and self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        changed = {k: v for k, v in self._codes.items() if v != int(FmipCode[k.upper()])}
        args = [f"type={self.type}"] + [f"{k}={v}" for k, v in changed.items()]
        return f"Codepoints({', '.join(args)})"


DEFAULT_CODEPOINTS = Codepoints()
__all__ += ["MESSAGE_KEYS", "Codepoints", "DEFAULT_CODEPOINTS"]


# --- The batch core (docs/design.md §5, §7) ----------------------------------------------------------------


class Verdict(IntEnum):
    """Next stage of a frame after ``classify``. One uint8 per frame (docs/conventions.md §2).

    ``classify`` yields DROP, FORWARD, DECAP or CONTROL; the forwarding node then decides each frame's
    :class:`Action` (where an unresolved next hop becomes ``Action.RESOLVE``).
    """

    DROP = 0  # counted under a DropReason
    FORWARD = 1  # routed: the node rewrites it, or tunnels / buffers / resolves it (Action)
    DECAP = 3  # IPv6-in-IPv6 (the node checks that a peer router sent it); 3 as Action.DECAP
    CONTROL = 5  # ND, fmipfast messages, AH, traffic for the router itself: handed to Python


class Action(IntEnum):
    """What the forwarding node (``Node``) did or left to the control path for a frame: the verdicts, and
    the three ICMPv6 errors a forwarded frame can cause (RFC 4443 §3.1, §3.2, §3.3), which Python originates."""

    DROP = 0
    FORWARD = 1  # rewritten in place and in its output interface's TX vector
    TUNNEL = 2  # to be tunnelled by Python: the node has no tunnel set up, or the NAR's next hop is unresolved
    DECAP = 3  # decapsulated in place (RFC 2473 §3.2): the inner frame is in the node's decap vector
    BUFFER = 4  # to be buffered by Python: the node has no PacketBuffer
    CONTROL = 5
    RESOLVE = 6
    NO_ROUTE = 7  # Destination Unreachable is due, then the frame is dropped (NO_ROUTE)
    TIME_EXCEEDED = 8  # Time Exceeded is due, then the frame is dropped (HOP_LIMIT_EXCEEDED)
    BUFFERED = 9  # pushed into the node's PacketBuffer under its key
    TUNNELLED = 10  # encapsulated toward its NAR (RFC 2473) into the node's tunnel TX vectors
    DECAPPED = 11  # decapsulated in place and its inner packet finished by the node (``Node.inner_action``)
    PACKET_TOO_BIG = 12  # larger than its output interface's MTU: Packet Too Big is due (aux: that MTU), then the
    #                      frame is dropped (FRAME_TOO_BIG); a router never fragments (RFC 8200 §5, RFC 4443 §3.2)


#: What ``Node.stats`` counts for the last block, in this order: frames dropped (also in ``drops`` by reason),
#: frames held at the route switch, checksums completed, frames taken, frames pushed into the node's buffer,
#: frames decapsulated whose inner packet the node finished itself (DECAPPED; their inner packets' drops and
#: buffer pushes are in "dropped" and "buffered", as the block's own).
NODE_STATS = ("dropped", "reorder_held", "csum_completed", "frames", "buffered", "decapped")


class Severity(IntEnum):
    INFO = 0  # expected on a healthy network (e.g. not IPv6)
    WARNING = 1  # a peer or the path is misbehaving
    ERROR = 2  # resource exhaustion or a bug


class DropReason(IntEnum):
    """Why a frame was dropped; each has a description and a severity, and a counter in the engine.

    Values are stable (they are stored in uint8 arrays and exported as metrics): append, never renumber.
    """

    description: str
    severity: Severity

    if not TYPE_CHECKING:  # type checkers keep Enum's __new__, so that DropReason(value) (a lookup) type-checks

        def __new__(cls, value: int, description: str, severity: Severity) -> "DropReason":
            obj = int.__new__(cls, value)
            obj._value_ = value
            obj.description = description
            obj.severity = severity
            return obj

    NONE = 0, "not dropped", Severity.INFO
    ETH_TRUNCATED = 1, "frame shorter than an Ethernet header (or its VLAN tags)", Severity.WARNING
    NOT_IPV6 = 2, "EtherType is not IPv6 (ARP, IPv4, ...): this is an IPv6-only data plane", Severity.INFO
    TOO_MANY_VLANS = 3, "more than two VLAN tags", Severity.WARNING
    IP6_TRUNCATED = 4, "shorter than the 40-octet IPv6 header", Severity.WARNING
    IP6_BAD_VERSION = 5, "IP version field is not 6", Severity.WARNING
    IP6_BAD_PAYLOAD_LENGTH = 6, "IPv6 payload length runs past the end of the frame", Severity.WARNING
    IP6_BAD_SOURCE = 7, "source address is multicast or loopback (RFC 4291 §2.5.3, §2.7)", Severity.WARNING
    IP6_BAD_DESTINATION = 8, "destination address is unspecified or loopback (RFC 4291 §2.5.2-3)", Severity.WARNING
    EXT_TRUNCATED = 9, "an extension header runs past the IPv6 payload", Severity.WARNING
    EXT_CHAIN_TOO_LONG = 10, "more extension headers than the engine walks", Severity.WARNING
    HBH_NOT_FIRST = 11, "hop-by-hop options header not directly after the IPv6 header (RFC 8200 §4.3)", \
        Severity.WARNING
    ICMP6_TRUNCATED = 12, "ICMPv6 message shorter than the minimum for its type and code", Severity.WARNING
    ICMP6_BAD_CHECKSUM = 13, "ICMPv6 checksum does not verify (RFC 4443 §2.3)", Severity.WARNING
    ICMP6_BAD_HOP_LIMIT = 14, "link-only ICMPv6 message (ND, fmipfast to/from an MN) with hop limit != 255", \
        Severity.WARNING
    ICMP6_BAD_CODE = 15, "ICMPv6 code not valid for its type (ND code != 0, unknown fmipfast code)", Severity.WARNING
    ND_BAD_OPTION = 16, "ND option of length 0 or past the end of the message (RFC 4861 §4.6)", Severity.WARNING
    ND_INVALID = 17, "Neighbor Discovery message fails an RFC 4861 validity check", Severity.WARNING
    FMIP_BAD_SUBOPTION = 18, "fmipfast sub-option of length < 2 or past the end (docs/design.md §2)", Severity.WARNING
    FMIP_BAD_LENGTH = 19, "fmipfast flags or Length field disagree with the message length", Severity.WARNING
    FMIP_NO_AH = 20, "router-to-router fmipfast message (HI, HE) without AH (docs/design.md §4)", Severity.WARNING
    HOP_LIMIT_EXCEEDED = 21, "hop limit would reach 0 when forwarded: ICMPv6 Time Exceeded is due", Severity.INFO
    NEIGHBOR_TABLE_FULL = 22, "neighbor cache full: no entry could be created", Severity.ERROR
    BUFFER_FULL = 23, "buffer cap reached: oldest packet dropped (RFC 4861 §7.2.2)", Severity.WARNING
    BUFFER_EXPIRED = 24, "buffered packet outlived the buffer lifetime", Severity.INFO
    FRAME_TOO_BIG = 25, "frame larger than a buffer slot or the link MTU", Severity.WARNING
    NO_ROUTE = 26, "no route to the destination: ICMPv6 Destination Unreachable is due", Severity.INFO
    TX_RING_FULL = 27, "the output interface's TX ring was full", Severity.ERROR
    RESOLVE_FAILED = 28, "the next hop did not answer Neighbor Solicitations (RFC 4861 §7.2.2)", Severity.INFO
    DECAP_NOT_FROM_PEER = 29, "IPv6-in-IPv6 from a router that is not a configured peer (docs/design.md §1)", \
        Severity.WARNING
    KERNEL_RING_DROP = 30, "the kernel dropped the frame: the RX ring was full (PACKET_STATISTICS)", Severity.ERROR
    RING_WALK_ERROR = 31, "malformed TPACKET_V3 block: frames after the damage were not read", Severity.ERROR
    CONTROL_REJECTED = 32, "the control path rejected the frame (AH, MAC, state) after the data plane", \
        Severity.WARNING
    OTHER_HOST = 33, "Ethernet destination is another station's unicast address (PACKET_OTHERHOST)", Severity.INFO
    NOT_BUFFERED = 34, "for an MN mid-handover whose handover asked for no buffering (U clear)", Severity.INFO
    CONTROL_ERROR = 35, "handling the frame on the control path failed unexpectedly (logged, rate-limited)", \
        Severity.ERROR
    INTERNAL_ERROR = 36, "the engine's pass over a block failed unexpectedly: its frames without a disposition " \
        "yet are counted here (logged, rate-limited)", Severity.ERROR
    DECAP_TOO_DEEP = 37, "IPv6-in-IPv6 nested deeper than the engine decapsulates (RFC 2473 §4.1.1)", \
        Severity.WARNING
    ADDRESS_NOT_FORWARDED = 38, "a packet to forward whose source or destination a router never forwards: " \
        "link-local (RFC 4291 §2.5.6), IPv4-mapped (§2.5.5.2), multicast (the router does no multicast routing)", \
        Severity.WARNING
    LINK_MULTICAST_NOT_FORWARDED = 39, "a unicast packet to forward that came in a link-layer broadcast or " \
        "multicast frame: every router on the link would forward it (RFC 1812 §5.3.4's rule)", Severity.WARNING
    VLAN_TAGGED = 40, "an IEEE 802.1Q/802.1ad-tagged frame from the wire (its tag in the frame or stripped by the " \
        "kernel): the router's links are untagged, so it is another VLAN's -- neither answered nor forwarded (a tag " \
        "kept on the way out would put the packet in a VLAN its sender chose)", Severity.WARNING
    FRAGMENT_NOT_REASSEMBLED = 41, "a fragment addressed to the router: it reassembles nothing, and only a whole " \
        "packet's upper layer is validated (RFC 8200 §4.5)", Severity.WARNING


class NeighborState(IntEnum):
    """RFC 4861 §7.3.2 reachability states (0 = no entry)."""

    NONE = 0
    INCOMPLETE = 1
    REACHABLE = 2
    STALE = 3
    DELAY = 4
    PROBE = 5


class NeighborFlag(IntFlag):
    """Flags of a neighbor-cache entry beside its RFC 4861 state."""

    ROUTER = 0x01  # IsRouter (RFC 4861 §7.3.2)
    PROXY = 0x02  # the NAR proxies this NCoA for an MN mid-handover: answer NS, buffer traffic
    LOCAL = 0x04  # an address of the router itself: deliver to the control path
    TUNNEL = 0x08  # the PAR tunnels this PCoA's traffic to the NAR of a live handover
    STATIC = 0x10  # configured; never expires
    HOLD = 0x20  # NAR after the Attach: direct traffic to this NCoA waits until the PAR's tunnel has drained


class EngineCounter(IntEnum):
    """What the engine counts, one int64 row each (``Engine.counters`` names them in lower case; the
    ``fmipfast_engine_frames_total`` metric labels them so).  The first eight rows are the terms of the
    conservation equation (docs/design.md §5): RECEIVED, then the dispositions, so that FORWARDED..DROPPED is
    one contiguous slice; the rest count the engine's other work.

    Values are stable (rows of the engine's arrays): append, never renumber.
    """

    RECEIVED = 0
    FORWARDED = 1
    TUNNELLED = 2
    DECAPSULATED = 3
    BUFFERED = 4
    QUEUED_RESOLVE = 5
    DELIVERED = 6
    DROPPED = 7
    ORIGINATED = 8
    FLUSHED = 9
    RESOLVED_SENT = 10
    CSUM_COMPLETED = 11
    ICMP_ERRORS_SENT = 12
    ICMP_ERRORS_LIMITED = 13
    NS_SENT = 14
    NA_SENT = 15
    RA_SENT = 16
    ECHO_REPLIES = 17
    CONTROL_UNHANDLED = 18
    RECEIVED_INNER = 19
    REORDER_HELD = 20
    REORDER_RELEASED = 21
    ORIGINATED_QUEUED = 22
    ORIGINATED_DROPPED = 23
    ORIGINATED_UNRESOLVED = 24
    CONTROL_ERRORS = 25
    INTERNAL_ERRORS = 26
    RA_LIMITED = 27
    ND_LEARN_LIMITED = 28


__all__ += ["Verdict", "Action", "NODE_STATS", "Severity", "DropReason", "NeighborState", "NeighborFlag",
            "EngineCounter"]


# --- The LKB sub-option's mechanisms ---------------------------------------------------------------------


class LkbSubtype(IntEnum):
    """The first octet of the PDU a sub-option 2 carries says which Kerberos mechanism made it, so both share
    the wire: below 0x80 it is a light-weight Kerberos message type (``lwkerb.MsgType``: 10-41, unchanged);
    0x80 and up are standard Kerberos through GSS-API (RFC 2743, RFC 4121; ``security.gss``)."""

    GSSAPI_TOKEN = 0x80  # MN -> router: the GSS-API initiator token (an RFC 4120 AP-REQ), channel-bound
    GSSAPI_REPLY = 0x81  # router -> MN: the acceptor's GSS MIC (RFC 4121 §4.2.6.1) over the binding


#: First octets from this one up are GSS-API sub-types; below it, lwkerb message types.
LKB_GSSAPI_MIN = 0x80


def lkb_mechanism(pdu: bytes) -> str:
    """``"gssapi"`` or ``"lwkerb"`` by the PDU's first octet (``"empty"`` for no octets)."""
    if not pdu:
        return "empty"
    return "gssapi" if pdu[0] >= LKB_GSSAPI_MIN else "lwkerb"


__all__ += ["LkbSubtype", "LKB_GSSAPI_MIN", "lkb_mechanism"]

"""IP Authentication Header (RFC 4302) in transport mode over IPv6, ICV HMAC-SHA-256-128 (RFC 4868).

docs/design.md §4 "Router to router": HI, HE and every other router-to-router message travel under AH with
manual SAs per peer; the anti-replay window (64 packets) moves only after the ICV checks; mutable fields
are zeroed as RFC 4302 §3.3.3.1 says.  scapy's ``scapy.layers.ipsec`` is the independent check (tests).

Wire layout of the header this module inserts (RFC 4302 §2, 32 octets with HMAC-SHA-256-128)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    | Next Header   |  Payload Len  |          RESERVED             |   0
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                 Security Parameters Index (SPI)               |   4
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                    Sequence Number Field                      |   8
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                ICV (16 octets, HMAC-SHA-256-128)              |  12
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                Padding (4 zero octets, 64-bit alignment)      |  28
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Payload Len = 32/4 - 2 = 6 (RFC 4302 §2.2).  IPv6 needs the header to be a multiple of 8 octets
(RFC 4302 §3.3.3.2.1), hence the 4 octets of padding after the 16-octet ICV.

Manual keys and restarts: RFC 4302 §3.3.2 allows anti-replay on a manually keyed SA only if "the sequence
number counter at the sender [is] correctly maintained across local reboots, etc., until the key is
replaced".  docs/design.md §4 has both (manual SAs, a 64-packet window), so an outbound SA may be given a
:class:`SequenceStore`: the counter is reserved ahead in blocks of :data:`SEQ_BLOCK` and the reservation is
written (fsync'd, atomically renamed) *before* a number from the block is used, so after a restart the SA
resumes above every number it may have sent.  Without one, a restarted router's messages (sequence 1, 2, ...)
fall left of its peer's window and are dropped as replays until the peer is restarted too.

Ownership/threading: an :class:`SADatabase` and its SAs belong to one thread (the engine thread); the
sequence counter and the replay window are mutated without locks.

Imports only ``fmipfast.errors``, the standard library and ``cryptography`` (docs/conventions.md §9).
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
import ipaddress
import json
import os
import struct
from dataclasses import dataclass, field

from fmipfast.errors import MalformedPacket, SecurityError, Truncated
from fmipfast.security.statefile import read_private, write_private

__all__ = [
    "AH_HEADER_LEN",
    "AH_PROTO",
    "ICV_LEN",
    "KEY_LEN",
    "REPLAY_WINDOW",
    "SEQ_MAX",
    "AhBadIcv",
    "AhCounters",
    "AhError",
    "AhMalformed",
    "AhMissing",
    "AhPeerMismatch",
    "AhReplay",
    "AhSequenceExhausted",
    "AhSequenceNotPersisted",
    "SEQ_BLOCK",
    "SequenceStore",
    "AhTruncated",
    "AhUnknownSpi",
    "SADatabase",
    "SecurityAssociation",
    "compute_icv",
    "protect",
    "verify",
]

AH_PROTO = 51
ICV_LEN = 16  # RFC 4868 §2.3: HMAC-SHA-256-128 truncates to 128 bits
KEY_LEN = 32  # RFC 4868 §2.1.1: HMAC-SHA-256-128 keys are 256 bits
_AH_FIXED = 12
AH_HEADER_LEN = _AH_FIXED + ICV_LEN + (-(_AH_FIXED + ICV_LEN) % 8)  # 32: RFC 4302 §3.3.3.2.1 (IPv6)
_AH_PAYLOAD_LEN = AH_HEADER_LEN // 4 - 2  # 6, RFC 4302 §2.2
REPLAY_WINDOW = 64  # RFC 4302 §3.4.3: default (and minimum) window of 32; docs/design.md §4 fixes 64
SEQ_MAX = 0xFFFFFFFF  # RFC 4302 §2.5: without ESN the counter MUST NOT cycle
SEQ_BLOCK = 1024  # sequence numbers reserved per write of a SequenceStore

_IP6_LEN = 40
_HOPOPTS, _ROUTING, _FRAGMENT, _DSTOPTS = 0, 43, 44, 60
_MUTABLE_OPT = 0x20  # RFC 8200 §4.2: third-highest bit of the option type: data may change en route


# --------------------------------------------------------------------------------------------- errors


class AhError(SecurityError):
    """An AH failure.  ``code`` names the counter (see :class:`AhCounters`) the failure moved."""

    code = "error"


class AhMalformed(AhError, MalformedPacket):
    """The IPv6 packet or its AH header is malformed (bad lengths, unsupported headers)."""

    code = "malformed"


class AhTruncated(AhMalformed, Truncated):
    """The packet ends before a header or field that must be there."""

    code = "truncated"


class AhMissing(AhError):
    """The packet carries no AH where one is required (docs/design.md §4: dropped and counted)."""

    code = "no_ah"


class AhUnknownSpi(AhError):
    """No inbound SA has the packet's SPI (RFC 4302 §3.4.2: discard, auditable event)."""

    code = "unknown_spi"


class AhPeerMismatch(AhError):
    """The SA exists but the packet's source or destination is not the SA's peer/local address."""

    code = "peer_mismatch"


class AhBadIcv(AhError):
    """The ICV does not verify (RFC 4302 §3.4.4)."""

    code = "bad_icv"


class AhReplay(AhError):
    """Anti-replay check failed (RFC 4302 §3.4.3): ``code`` is ``replay_duplicate`` or ``replay_too_old``
    (also ``replay_zero`` for sequence number 0, which a sender never uses)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class AhSequenceExhausted(AhError):
    """The outbound SA has sent sequence number 2**32-1; without ESN it must be replaced (RFC 4302 §2.5)."""

    code = "seq_exhausted"


class AhSequenceNotPersisted(AhError):
    """The outbound SA's next block of sequence numbers could not be written to its :class:`SequenceStore`;
    nothing is sent with a number a restart could reuse (RFC 4302 §3.3.2)."""

    code = "seq_not_persisted"


# --------------------------------------------------------------------------------------------- SAs


@dataclass(eq=False)
class SecurityAssociation:
    """One manual AH SA with HMAC-SHA-256-128 (RFC 4868).

    ``spi``: 32-bit SPI, 256..2**32-1 (0..255 are reserved, RFC 4302 §2.4).  ``key``: 32 octets, never
    shown in ``repr``.  ``peer``: the remote router's IPv6 address (source of inbound packets, destination
    of outbound ones); ``local`` optionally the local address (destination of inbound packets).
    ``seq`` is the last sequence number sent (outbound use); ``replay_top``/``replay_bitmap`` the
    receiver's window state (inbound use): bit *i* of the bitmap set means ``replay_top - i`` was accepted.
    """

    spi: int
    key: bytes = field(repr=False)
    peer: str | None = None
    local: str | None = None
    seq: int = 0
    replay_window: int = REPLAY_WINDOW
    replay_top: int = 0
    replay_bitmap: int = 0
    store: "SequenceStore | None" = field(default=None, repr=False)
    reserved: int = field(default=0, init=False, repr=False)  # with a store: the highest number written ahead
    _peer16: bytes | None = field(default=None, init=False, repr=False)
    _local16: bytes | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.spi, int) or not 256 <= self.spi <= 0xFFFFFFFF:
            raise ValueError(f"spi must be 256..2**32-1 (RFC 4302 §2.4), got {self.spi!r}")
        if not isinstance(self.key, (bytes, bytearray)) or len(self.key) != KEY_LEN:
            raise ValueError(f"HMAC-SHA-256-128 key must be {KEY_LEN} octets (RFC 4868 §2.1.1)")
        self.key = bytes(self.key)
        if not 0 <= self.seq <= SEQ_MAX:
            raise ValueError("seq must be 0..2**32-1")
        if not 1 <= self.replay_window <= 1024:
            raise ValueError("replay_window must be 1..1024")
        self._peer16 = ipaddress.IPv6Address(self.peer).packed if self.peer is not None else None
        self._local16 = ipaddress.IPv6Address(self.local).packed if self.local is not None else None
        if self.store is not None:
            self.store.attach(self)

    # -- outbound
    def next_seq(self) -> int:
        """Advance and return the outbound sequence number; refuse to pass 2**32-1 (no ESN)."""
        if self.seq >= SEQ_MAX:
            raise AhSequenceExhausted(f"SA spi={self.spi:#x}: sequence number space exhausted, rekey the SA")
        if self.store is not None and self.seq >= self.reserved:
            self.store.reserve(self)
        self.seq += 1
        return self.seq

    def key_id(self) -> str:
        """Names this SA in a :class:`SequenceStore`: peer, SPI and a digest of the key (a new key is a new SA
        whose counter starts again at 0; the digest of a 256-bit random key reveals nothing of it)."""
        return f"{self.peer or '-'}|{self.spi:#010x}|{hashlib.sha256(b'fmipfast-ah-seq' + self.key).hexdigest()[:16]}"

    # -- inbound (RFC 4302 §3.4.3 and Appendix B)
    def replay_check(self, seq: int) -> None:
        """Raise :class:`AhReplay` if ``seq`` must be dropped; changes nothing."""
        if seq == 0:
            raise AhReplay("sequence number 0 is never sent (RFC 4302 §3.3.2)", "replay_zero")
        if seq > self.replay_top:
            return
        diff = self.replay_top - seq
        if diff >= self.replay_window:
            raise AhReplay(f"sequence number {seq} is left of the window (top {self.replay_top})",
                           "replay_too_old")
        if (self.replay_bitmap >> diff) & 1:
            raise AhReplay(f"sequence number {seq} already received", "replay_duplicate")

    def replay_update(self, seq: int) -> None:
        """Record ``seq`` as received; call only after the ICV verified (RFC 4302 §3.4.3)."""
        mask = (1 << self.replay_window) - 1
        if seq > self.replay_top:
            shift = seq - self.replay_top
            self.replay_bitmap = ((self.replay_bitmap << shift) | 1) & mask if shift < self.replay_window else 1
            self.replay_top = seq
        else:
            self.replay_bitmap |= 1 << (self.replay_top - seq)


def _peer_key(peer: str | bytes | ipaddress.IPv6Address) -> bytes:
    """The outbound table's key: the peer's 16 octets (given as text, as 16 octets or as an address)."""
    if isinstance(peer, bytes):
        return peer
    if isinstance(peer, ipaddress.IPv6Address):
        return peer.packed
    return ipaddress.IPv6Address(peer).packed


class SADatabase:
    """The SAD: inbound SAs keyed by SPI, outbound SAs keyed by peer address (manual keying).  A router keeps
    all its SAs here, both directions: ``ah.verify`` looks up the inbound one, the send path the outbound one."""

    def __init__(self) -> None:
        self._inbound: dict[int, SecurityAssociation] = {}
        self._outbound: dict[bytes, SecurityAssociation] = {}

    def add_inbound(self, sa: SecurityAssociation) -> None:
        if sa.spi in self._inbound:
            raise ValueError(f"duplicate inbound SPI {sa.spi:#x}")
        self._inbound[sa.spi] = sa

    def add_outbound(self, sa: SecurityAssociation) -> None:
        if sa._peer16 is None:
            raise ValueError("an outbound SA needs a peer address")
        self._outbound[sa._peer16] = sa

    def inbound(self, spi: int) -> SecurityAssociation:
        try:
            return self._inbound[spi]
        except KeyError:
            raise AhUnknownSpi(f"no inbound SA for SPI {spi:#x}") from None

    def outbound(self, peer: str | bytes | ipaddress.IPv6Address) -> SecurityAssociation:
        key = _peer_key(peer)
        try:
            return self._outbound[key]
        except KeyError:
            raise KeyError(f"no outbound SA for peer {ipaddress.IPv6Address(key)}") from None

    def find_outbound(self, peer: str | bytes | ipaddress.IPv6Address) -> SecurityAssociation | None:
        """The outbound SA for ``peer``, or None (the send path counts a miss instead of catching KeyError)."""
        return self._outbound.get(_peer_key(peer))

    def remove_inbound(self, spi: int) -> None:
        self._inbound.pop(spi, None)

    def inbound_sas(self) -> list[SecurityAssociation]:
        return list(self._inbound.values())

    def outbound_sas(self) -> list[SecurityAssociation]:
        return list(self._outbound.values())

    def __len__(self) -> int:
        return len(self._inbound) + len(self._outbound)

    def __repr__(self) -> str:  # SPIs only, never keys
        return f"SADatabase(inbound={sorted(self._inbound)}, outbound={len(self._outbound)})"


class SequenceStore:
    """Outbound sequence counters of manual SAs kept in a file across restarts (module docstring).

    The file (JSON, mode 0600, written to a temporary file, fsync'd and renamed over the old one, then the
    directory fsync'd) maps :meth:`SecurityAssociation.key_id` to the highest number reserved.  A missing file
    is an empty store; an unreadable or malformed one raises ``ValueError`` naming the file at start, so a
    router never silently restarts its counters.  A failed write raises :class:`AhSequenceNotPersisted` from
    the send that needed it (counted ``seq_not_persisted``); the next send tries again.
    """

    FORMAT = "fmipfast-ah-seq/1"

    def __init__(self, path: str | os.PathLike[str], *, block: int = SEQ_BLOCK) -> None:
        if not 1 <= block <= 1 << 20:
            raise ValueError("block must be 1..2**20")
        self.path = os.fspath(path)
        self.block = block
        self.writes = 0
        self.marks: dict[str, int] = self._load()

    def _load(self) -> dict[str, int]:
        raw = read_private(self.path, 1 << 20, private=False)  # StateFileError is a ValueError
        if raw is None:
            return {}
        try:
            doc = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{self.path}: not JSON: {exc}") from None
        except RecursionError:  # json's parser recurses per level of nesting
            raise ValueError(f"{self.path}: not JSON: nested too deeply") from None
        marks = doc.get("counters") if isinstance(doc, dict) and doc.get("format") == self.FORMAT else None
        if not isinstance(marks, dict) or not all(
                isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= SEQ_MAX
                for k, v in marks.items()):
            raise ValueError(f"{self.path}: not an AH sequence file ({self.FORMAT!r} with counters 0..2**32-1)")
        return dict(marks)

    def attach(self, sa: SecurityAssociation) -> None:
        """Start ``sa`` above every number it may have used before the restart."""
        sa.seq = max(sa.seq, self.marks.get(sa.key_id(), 0))
        sa.reserved = sa.seq
        sa.store = self

    def reserve(self, sa: SecurityAssociation) -> None:
        """Write the next block of ``sa``'s numbers ahead; raises :class:`AhSequenceNotPersisted`."""
        mark = min(sa.seq + self.block, SEQ_MAX)
        marks = dict(self.marks)
        marks[sa.key_id()] = mark
        try:
            self._write(marks)
        except OSError as exc:
            raise AhSequenceNotPersisted(f"SA spi={sa.spi:#x}: cannot write {self.path}: {exc}") from None
        self.marks = marks
        sa.reserved = mark
        self.writes += 1

    def _write(self, marks: dict[str, int]) -> None:
        write_private(self.path, json.dumps({"format": self.FORMAT, "counters": marks}, sort_keys=True).encode())


class AhCounters(dict):
    """Every outcome of :func:`protect`/:func:`verify`, by name (a plain ``dict[str, int]``)."""

    NAMES = ("protected", "verified", "no_ah", "unknown_spi", "peer_mismatch", "bad_icv", "replay_zero",
             "replay_duplicate", "replay_too_old", "truncated", "malformed", "seq_exhausted", "seq_not_persisted")

    def __init__(self) -> None:
        super().__init__((n, 0) for n in self.NAMES)


# --------------------------------------------------------------------------------------------- parsing


def _ext_len(pkt: bytes, off: int, name: str) -> int:
    if off + 8 > len(pkt):
        raise AhTruncated(f"need 8 octets, have {len(pkt) - off}", field=name, offset=off)
    n = (pkt[off + 1] + 1) * 8
    if off + n > len(pkt):
        raise AhTruncated(f"header length {n} runs past the end", field=name, offset=off)
    return n


def _zero_mutable_options(buf: bytearray, off: int, n: int, name: str) -> None:
    """RFC 4302 §3.3.3.1.2.1 / RFC 8200 §4.2: zero the data of options whose type has bit 0x20 set."""
    i, end = off + 2, off + n
    while i < end:
        t = buf[i]
        if t == 0:  # Pad1
            i += 1
            continue
        if i + 2 > end:
            raise AhMalformed("option header runs past the end of its header", field=name, offset=i)
        ln = buf[i + 1]
        if i + 2 + ln > end:
            raise AhMalformed("option data runs past the end of its header", field=name, offset=i)
        if t & _MUTABLE_OPT:
            buf[i + 2:i + 2 + ln] = bytes(ln)
        i += 2 + ln


def _predict_routing(buf: bytearray, off: int, n: int) -> None:
    """RFC 4302 §3.3.3.1.2.2: the routing header is mutable but predictable; rewrite it (and the
    destination address) as it will appear at the final destination.  Types 0 and 2 (RFC 6275) carry
    16-octet addresses after 8 octets; other types are refused."""
    rtype, segleft = buf[off + 2], buf[off + 3]
    if rtype not in (0, 2):
        raise AhMalformed(f"routing header type {rtype} is not supported with AH", field="routing",
                          offset=off + 2)
    naddr = (n - 8) // 16
    if segleft > naddr:
        raise AhMalformed(f"segments left {segleft} > {naddr} addresses", field="routing", offset=off + 3)
    dst = bytes(buf[24:40])
    for k in range(naddr - segleft, naddr):
        a = off + 8 + 16 * k
        addr = bytes(buf[a:a + 16])
        buf[a:a + 16] = dst
        dst = addr
    buf[24:40] = dst
    buf[off + 3] = 0


def _check_ip6(pkt: bytes) -> bytes:
    if len(pkt) < _IP6_LEN:
        raise AhTruncated(f"need 40 octets, have {len(pkt)}", field="ipv6 header", offset=0)
    if pkt[0] >> 4 != 6:
        raise AhMalformed(f"version {pkt[0] >> 4}, not 6", field="version", offset=0)
    plen = int.from_bytes(pkt[4:6], "big")
    if _IP6_LEN + plen > len(pkt):
        raise AhTruncated(f"payload length {plen} but {len(pkt) - _IP6_LEN} octets follow",
                          field="payload length", offset=4)
    return pkt[:_IP6_LEN + plen]  # drop link-layer padding


def _icv(key: bytes, data: bytes | bytearray) -> bytes:
    # the standard library's one-shot HMAC (OpenSSL's, one C call): ~5x faster than cryptography's HMAC object
    # for a packet this size, on the PAR's and the NAR's path of every HI and HE
    return _hmac.digest(key, bytes(data), "sha256")[:ICV_LEN]


def compute_icv(key: bytes, pkt: bytes, ah_off: int) -> bytes:
    """The ICV of an AH-bearing IPv6 packet whose AH header starts at ``ah_off``: HMAC-SHA-256-128 over the
    packet with traffic class, flow label, hop limit, mutable option data and the ICV field zeroed and the
    routing header and destination address as they appear at the final destination (RFC 4302 §3.3.3.1)."""
    buf = bytearray(pkt)
    buf[0] = 0x60  # version kept; traffic class and flow label zeroed (RFC 4302 §3.3.3.1.2)
    buf[1] = buf[2] = buf[3] = 0
    buf[7] = 0  # hop limit
    nh, off = buf[6], _IP6_LEN
    while off < ah_off:
        n = (buf[off + 1] + 1) * 8
        if nh in (_HOPOPTS, _DSTOPTS):
            _zero_mutable_options(buf, off, n, "hop-by-hop" if nh == _HOPOPTS else "destination options")
        elif nh == _ROUTING:
            _predict_routing(buf, off, n)
        nh, off = buf[off], off + n
    buf[ah_off + 12:ah_off + 12 + ICV_LEN] = bytes(ICV_LEN)
    return _icv(key, buf)


# --------------------------------------------------------------------------------------------- API


def _bump(counters: dict | None, name: str) -> None:
    if counters is not None:
        counters[name] = counters.get(name, 0) + 1


def protect(ipv6_packet: bytes, sa: SecurityAssociation, counters: dict | None = None) -> bytes:
    """Outbound processing (RFC 4302 §3.3): insert AH in transport mode and return the new packet.

    AH goes after the IPv6 header, the hop-by-hop header, a routing header and any destination options
    header that precedes a routing header (RFC 4302 §3.1.1; the placement Linux and scapy use); a
    destination options header after the routing header stays after AH.  Payload Length and the
    next-header chain are fixed.  Raises :class:`AhSequenceExhausted` past 2**32-1, :class:`AhMalformed`
    for packets it cannot protect (fragments, AH already present, unsupported routing header).
    """
    try:
        pkt = _check_ip6(bytes(ipv6_packet))
        nh_at, nh, off, seen_rt = 6, pkt[6], _IP6_LEN, False
        while nh in (_HOPOPTS, _ROUTING, _DSTOPTS):
            if nh == _DSTOPTS and seen_rt:
                break
            name = {0: "hop-by-hop", 43: "routing", 60: "destination options"}[nh]
            n = _ext_len(pkt, off, name)
            if nh == _ROUTING:
                seen_rt = True
            nh_at, nh, off = off, pkt[off], off + n
        if nh in (_FRAGMENT, AH_PROTO):
            raise AhMalformed("AH transport mode is applied before fragmentation and only once",
                              field="next header", offset=nh_at)
        if len(pkt) - _IP6_LEN + AH_HEADER_LEN > 0xFFFF:
            raise AhMalformed("protected packet would exceed 65535 octets of payload", field="payload length",
                              offset=4)
        seq = sa.next_seq()
    except AhError as exc:
        _bump(counters, exc.code)
        raise
    ah = struct.pack("!BBHII", nh, _AH_PAYLOAD_LEN, 0, sa.spi, seq) + bytes(AH_HEADER_LEN - _AH_FIXED)
    out = bytearray(pkt[:off] + ah + pkt[off:])
    out[4:6] = (len(out) - _IP6_LEN).to_bytes(2, "big")
    out[nh_at] = AH_PROTO
    out[off + 12:off + 12 + ICV_LEN] = compute_icv(sa.key, bytes(out), off)
    _bump(counters, "protected")
    return bytes(out)


def _find_ah(pkt: bytes) -> tuple[int, int]:
    """Return (offset of the next-header octet that names AH, offset of AH)."""
    nh_at, nh, off = 6, pkt[6], _IP6_LEN
    while nh != AH_PROTO:
        if nh in (_HOPOPTS, _ROUTING, _DSTOPTS):
            name = {0: "hop-by-hop", 43: "routing", 60: "destination options"}[nh]
            n = _ext_len(pkt, off, name)
            nh_at, nh, off = off, pkt[off], off + n
        elif nh == _FRAGMENT:
            raise AhMalformed("fragments must be reassembled before AH processing (RFC 4302 §3.4.1)",
                              field="fragment", offset=off)
        else:
            raise AhMissing(f"no AH before next header {nh}")
    return nh_at, off


def verify(ipv6_packet: bytes, sad: SADatabase, counters: dict | None = None) -> bytes:
    """Inbound processing (RFC 4302 §3.4): check AH and return the packet with AH removed.

    Order: parse, SA lookup by SPI (:class:`AhUnknownSpi`), peer check (:class:`AhPeerMismatch`), replay
    pre-check (:class:`AhReplay`), ICV (:class:`AhBadIcv`, constant-time compare), then — only now — the
    replay window advances.  Every outcome bumps one counter in ``counters`` (an :class:`AhCounters`).

    For any octets it returns the packet or raises an :class:`AhError` subclass — :class:`AhMalformed` /
    :class:`AhTruncated` (also ``MalformedPacket``) for what does not parse, the others for what parses but
    fails — never another exception, and a refusal leaves the SA's replay window as it was.
    """
    try:
        pkt = _check_ip6(bytes(ipv6_packet))
        nh_at, off = _find_ah(pkt)
        if off + _AH_FIXED > len(pkt):
            raise AhTruncated(f"need {_AH_FIXED} octets, have {len(pkt) - off}", field="ah", offset=off)
        inner_nh, plen_words, _res, spi, seq = struct.unpack_from("!BBHII", pkt, off)
        ah_len = (plen_words + 2) * 4
        if ah_len != AH_HEADER_LEN:
            raise AhMalformed(f"AH length {ah_len}, HMAC-SHA-256-128 over IPv6 needs {AH_HEADER_LEN}",
                              field="ah payload length", offset=off + 1)
        if off + ah_len > len(pkt):
            raise AhTruncated(f"AH of {ah_len} octets runs past the end", field="ah", offset=off)
        sa = sad.inbound(spi)
        if (sa._peer16 is not None and pkt[8:24] != sa._peer16) or (
                sa._local16 is not None and pkt[24:40] != sa._local16):
            raise AhPeerMismatch(f"SPI {spi:#x} is not the SA of {ipaddress.IPv6Address(pkt[8:24])}"
                                 f" -> {ipaddress.IPv6Address(pkt[24:40])}")
        sa.replay_check(seq)
        want = compute_icv(sa.key, pkt, off)
        if not _hmac.compare_digest(want, pkt[off + 12:off + 12 + ICV_LEN]):
            raise AhBadIcv(f"ICV does not verify (SPI {spi:#x}, seq {seq})")
    except AhError as exc:
        _bump(counters, exc.code)
        raise
    sa.replay_update(seq)
    out = bytearray(pkt[:off] + pkt[off + ah_len:])
    out[nh_at] = inner_nh
    out[4:6] = (len(out) - _IP6_LEN).to_bytes(2, "big")
    _bump(counters, "verified")
    return bytes(out)

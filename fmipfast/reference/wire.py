"""Batch classification of received Ethernet frames: the readable oracle of ``_kernels/parse.pxi``.

Implements the first stage of the engine's batch pipeline (docs/design.md §5, §7): every frame of one
AF_PACKET block is walked from its Ethernet header (IEEE 802.1Q/802.1ad tags) through the IPv6 header
(RFC 8200 §3) and its extension headers (RFC 8200 §4, RFC 4302 §2.2) to its upper layer, validated, and
given a :class:`~fmipfast.constants.Verdict` and, when dropped, a :class:`~fmipfast.constants.DropReason`.
ICMPv6 Neighbor Discovery (RFC 4861 §6.1, §7.1, §8.1; RFC 6980) and the fmipfast messages
(draft-koodli-mobileip-fastv6-02 §5-§7 with the docs/design.md §2 codepoints) are checked in full; the parsed
fields land in a :class:`Batch` of numpy arrays, one row per frame.

The checks run in one fixed order, and the first that fails names the drop reason.  The compiled kernel
follows the identical order (a test compares every array of both), so the numbered comments below are
the specification of both:

1. Ethernet      ETH_TRUNCATED, TOO_MANY_VLANS, NOT_IPV6
2. IPv6 header   IP6_TRUNCATED, IP6_BAD_VERSION, IP6_BAD_PAYLOAD_LENGTH, IP6_BAD_SOURCE, IP6_BAD_DESTINATION
3. Extensions    EXT_CHAIN_TOO_LONG, HBH_NOT_FIRST, EXT_TRUNCATED, ND_INVALID (fragmented ND)
4. ICMPv6        ICMP6_TRUNCATED, then for ND / fmipfast: (a) ICMP6_BAD_CODE, (b) ICMP6_TRUNCATED /
                 FMIP_BAD_LENGTH, (c) ICMP6_BAD_HOP_LIMIT, (d) ICMP6_BAD_CHECKSUM, (e) ND_BAD_OPTION /
                 FMIP_BAD_SUBOPTION, (f) ND_INVALID / FMIP_NO_AH
5. IPv6-in-IPv6  IP6_TRUNCATED, IP6_BAD_VERSION of the inner header
6. the rest      FORWARD (CONTROL for a link-scope multicast destination)

Fields are filled as far as the walk got: on a DROP the fields of the checks before the failing one are
set and the others keep their defaults (0, ``identifier`` -1, ``checksum_ok`` True).

Speed does not matter in this module; clarity does (docs/conventions.md §4).
"""

from __future__ import annotations

import operator
import struct
import sys
from typing import Any

import numpy as np

from fmipfast.constants import (
    DEFAULT_CODEPOINTS,
    ETH_HDR_LEN,
    IP6_HDR_LEN,
    MESSAGE_KEYS,
    ND_HOP_LIMIT,
    Codepoints,
    DropReason,
    EtherType,
    FmipCode,
    HiFlag,
    HrdFlag,
    Icmp6Type,
    IpProto,
    SubOptType,
    Verdict,
)

__all__ = ["Batch", "classify"]

# The values of constants.py as plain ints under short local names, so the oracle reads on its own.
_ETH_HDR_LEN = ETH_HDR_LEN
_IP6_HDR_LEN = IP6_HDR_LEN
_ETYPE_IPV6, _ETYPE_VLAN, _ETYPE_QINQ = int(EtherType.IPV6), int(EtherType.VLAN), int(EtherType.QINQ)
_MAX_VLAN_TAGS = 2
_MAX_EXT_HEADERS = 16  # frames.MAX_EXT_HEADERS: an attacker's 1000-header chain costs at most this
_HOPOPTS, _ROUTING, _FRAGMENT = int(IpProto.HOPOPTS), int(IpProto.ROUTING), int(IpProto.FRAGMENT)
_AH, _DSTOPTS = int(IpProto.AH), int(IpProto.DSTOPTS)
_ICMPV6, _IPV6 = int(IpProto.ICMPV6), int(IpProto.IPV6)
_RS, _RA = int(Icmp6Type.ROUTER_SOLICITATION), int(Icmp6Type.ROUTER_ADVERTISEMENT)
_NS, _NA = int(Icmp6Type.NEIGHBOR_SOLICITATION), int(Icmp6Type.NEIGHBOR_ADVERTISEMENT)
_REDIRECT = int(Icmp6Type.REDIRECT)
_ND_HOP_LIMIT = ND_HOP_LIMIT

#: RFC 4861 §6.1.1 / §6.1.2 / §7.1.1 / §7.1.2 / §8.1: the smallest valid message of each ND type ("ICMP
#: length (derived from the IP length) is N or more octets"); the ND options start right after it.
_ND_MIN_LEN = {_RS: 8, _RA: 16, _NS: 24, _NA: 24, _REDIRECT: 40}
#: RFC 4861 §4.6: the link-layer address option each ND type carries (Source in RS/RA/NS, Target in NA
#: and Redirect).
_ND_LLA_OPTION = {_RS: 1, _RA: 1, _NS: 1, _NA: 2, _REDIRECT: 2}

# Canonical fmipfast codes (constants.FmipCode): the kernel maps the wire code through the profile first.
_HRD, _HRA, _HI = int(FmipCode.HANDOVER_REDIRECT), int(FmipCode.HANDOVER_REDIRECT_ACK), int(FmipCode.HANDOVER)
_AMN, _ATTACH = int(FmipCode.AUTHENTICATED_MN), int(FmipCode.ATTACH)
_HE, _FD = int(FmipCode.HANDOVER_ERROR), int(FmipCode.FORWARDING_DISABLE)
#: docs/design.md §2 "Hop limit" column: the codes that travel on one link only.
_FMIP_HOP255 = {_HRD, _HRA, _AMN, _ATTACH, _FD}
#: docs/design.md §4: the router-to-router codes that must arrive under AH.
_FMIP_NEEDS_AH = {_HI, _HE}
_HRD_M, _HRD_C, _HI_M = int(HrdFlag.M), int(HrdFlag.C), int(HiFlag.M)
_SUBOPT_IDENTIFIER, _SUBOPT_LINK_LAYER_ADDRESS = int(SubOptType.IDENTIFIER), int(SubOptType.LINK_LAYER_ADDRESS)

_N_REASONS = len(DropReason)

#: (attribute, dtype, shape of one row) of every per-frame array of a Batch, in documentation order.
FIELDS: tuple[tuple[str, Any, tuple[int, ...]], ...] = (
    ("verdict", np.uint8, ()),
    ("drop_reason", np.uint8, ()),
    ("checksum_ok", np.bool_, ()),
    ("icmp_type", np.uint8, ()),
    ("icmp_code", np.uint8, ()),
    ("fmip_code", np.uint8, ()),
    ("next_header", np.uint8, ()),
    ("hop_limit", np.uint8, ()),
    ("has_ah", np.bool_, ()),
    ("l3_offset", np.uint32, ()),
    ("l4_offset", np.uint32, ()),
    ("l4_length", np.uint32, ()),
    ("src", np.uint8, (16,)),
    ("dst", np.uint8, (16,)),
    ("ncoa", np.uint8, (16,)),
    ("target", np.uint8, (16,)),
    ("eth_src", np.uint8, (6,)),
    ("eth_dst", np.uint8, (6,)),
    ("lladdr", np.uint8, (6,)),
    ("has_lladdr", np.bool_, ()),
    ("identifier", np.int32, ()),
)
__all__ += ["FIELDS"]


class Batch:
    """Per-frame results of :func:`classify`: numpy arrays of ``n`` rows over ``capacity``-row storage.

    ``Batch(capacity)`` preallocates the storage once; pass it as ``out=`` to reuse it (each call
    overwrites the first ``n`` rows and every attribute is a view of them).  Reference of the compiled
    ``fmipfast._core.Batch``: same attribute names, dtypes, shapes and values.  This one writes every
    column of every row; the compiled one writes the class columns (target, ncoa, lladdr, has_lladdr,
    identifier, fmip_code) only in the rows of ND and fmipfast frames and completes the other rows when
    the attribute is first read (docs/api/batch.md "Class columns").
    """

    def __init__(self, capacity: int) -> None:
        capacity = operator.index(capacity)  # TypeError for a float or a str, as the compiled Batch
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        if capacity > sys.maxsize:
            raise ValueError(f"capacity {capacity} is too large")
        self.capacity = capacity
        self.n = 0
        self._store = {name: np.zeros((capacity, *row), dtype=dtype) for name, dtype, row in FIELDS}
        self._drop_counts = np.zeros(_N_REASONS, dtype=np.uint64)

    def _reset(self, n: int) -> None:
        self.n = n
        for name, _dtype, _row in FIELDS:
            self._store[name][:n] = 0
        self._store["checksum_ok"][:n] = True
        self._store["identifier"][:n] = -1
        self._drop_counts[:] = 0

    def __getattr__(self, name: str) -> Any:
        store = self.__dict__.get("_store")
        if store is not None and name in store:
            return store[name][: self.n]
        raise AttributeError(name)

    @property
    def drop_counts(self) -> np.ndarray:
        """uint64[len(DropReason)]: the frames of this batch dropped under each reason."""
        return self._drop_counts

    def __dir__(self) -> list[str]:
        return sorted(set(object.__dir__(self)) | set(self._store))

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"Batch(n={self.n}, capacity={self.capacity})"


# ---------------------------------------------------------------------------------------------------
# Argument checks (identical messages and exception types to the compiled wrapper)

_SIGNED, _UNSIGNED = "bhilqn", "BHILQN"


def dtype_error(name: str, kinds: str, itemsize: int, fmt: str) -> TypeError:
    """The error for a buffer of the wrong element type, in the words every kernel uses (both
    implementations): ``offsets: need dtype int64, got int32``."""
    want = f"{'uint' if kinds[0].isupper() else 'int'}{itemsize * 8}"
    try:
        got = np.dtype(fmt).name
    except TypeError:
        got = f"format {fmt!r}"
    return TypeError(f"{name}: need dtype {want}, got {got}")


def _array(value: Any, name: str, kinds: str, itemsize: int, writable: bool = False) -> memoryview:
    """A 1-D C-contiguous buffer of ``itemsize``-octet integers of ``kinds`` (what ``T[::1]`` accepts):
    TypeError without the buffer protocol or for a wrong element type, ValueError for a wrong dimension count
    or layout."""
    view = memoryview(value)  # TypeError without the buffer protocol
    if view.ndim != 1:
        raise ValueError(f"{name}: Buffer has wrong number of dimensions (expected 1, got {view.ndim})")
    fmt = view.format.lstrip("@=<>!")
    if fmt not in kinds or view.itemsize != itemsize:
        raise dtype_error(name, kinds, itemsize, view.format)
    if not view.c_contiguous:
        raise ValueError(f"{name}: Buffer not C contiguous.")
    if writable and view.readonly:
        raise ValueError(f"{name}: buffer is read-only")
    return view


def _fmip_code_map(codepoints: Codepoints) -> dict[int, int]:
    """Wire code -> canonical FmipCode (1-7) under ``codepoints``."""
    return {codepoints.code(key): index + 1 for index, key in enumerate(MESSAGE_KEYS)}


def classify(arena: Any, offsets: Any, lengths: Any, *, codepoints: Codepoints = DEFAULT_CODEPOINTS,
             out: Batch | None = None, counters: Any = None) -> Batch:
    """Classify a batch of Ethernet frames held in one arena; one verdict and one parsed row per frame.

    Parameters
    ----------
    arena : 1-D C-contiguous uint8 buffer
        The frames (e.g. one TPACKET_V3 block).
    offsets : int64[n]
        Where each frame starts in ``arena``; ``0 <= offsets[i]``.
    lengths : uint32[n]
        Each frame's length; ``offsets[i] + lengths[i] <= len(arena)``.
    codepoints : Codepoints
        The fmipfast ICMPv6 type and codes (docs/design.md §2); ``fmip_code`` reports canonical codes 1-7.
    out : Batch, optional
        Storage to reuse (``n <= out.capacity``); None allocates a Batch of capacity ``n``.
    counters : uint64[len(DropReason)], optional
        Cumulative drop counters; this batch's ``drop_counts`` are added to it.

    Returns
    -------
    Batch
        ``out`` (or a new Batch) holding ``n`` rows.

    Raises
    ------
    ValueError
        Wrong dtypes, dimensions or lengths; a frame outside the arena (the message names its index);
        ``n`` above ``out.capacity``; ``counters`` of the wrong size or read-only.
    TypeError
        An argument without the buffer protocol, ``out`` not a Batch, ``codepoints`` not a Codepoints.

    Reference: fmipfast.reference.wire.classify
    """
    data = _array(arena, "arena", "B", 1)
    offs = _array(offsets, "offsets", _SIGNED, 8)
    lens = _array(lengths, "lengths", _UNSIGNED, 4)
    if not isinstance(codepoints, Codepoints):
        raise TypeError(f"codepoints: expected Codepoints, got {type(codepoints).__name__}")
    if out is not None and not isinstance(out, Batch):
        raise TypeError(f"out: expected Batch, got {type(out).__name__}")
    count = None
    if counters is not None:
        count = _array(counters, "counters", _UNSIGNED, 8, writable=True)
        if len(count) != _N_REASONS:
            raise ValueError(f"counters: need {_N_REASONS} entries (one per DropReason), got {len(count)}")
    n = len(offs)
    if len(lens) != n:
        raise ValueError(f"offsets and lengths differ in length ({n} != {len(lens)})")
    size = len(data)
    for i in range(n):
        if offs[i] < 0 or offs[i] + lens[i] > size:
            raise ValueError(f"frame {i}: offset {offs[i]} + length {lens[i]} is outside the "
                             f"{size}-octet arena")
    if out is None:
        out = Batch(n)
    elif n > out.capacity:
        raise ValueError(f"out: batch of {n} frames exceeds its capacity of {out.capacity}")
    out._reset(n)
    codes = _fmip_code_map(codepoints)
    raw = data.tobytes()
    for i in range(n):
        frame = raw[offs[i]:offs[i] + lens[i]]
        row = _Row()
        verdict, reason = _classify_one(frame, row, codepoints.type, codes)
        row.values["verdict"] = verdict
        row.values["drop_reason"] = reason
        for name, value in row.values.items():
            out._store[name][i] = value
        if verdict == Verdict.DROP:
            out._drop_counts[reason] += 1
    if count is not None:
        target = np.frombuffer(count, dtype=np.uint64)
        target += out._drop_counts
    return out


class _Row:
    """The fields one frame sets (the others keep the Batch defaults)."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def __setitem__(self, name: str, value: Any) -> None:
        self.values[name] = np.frombuffer(value, dtype=np.uint8) if isinstance(value, bytes) else value


# ---------------------------------------------------------------------------------------------------
# One frame


def _is_multicast(addr: bytes) -> bool:
    return addr[0] == 0xFF  # RFC 4291 §2.7


_UNSPECIFIED = bytes(16)
_LOOPBACK = bytes(15) + b"\x01"
_SOLICITED_NODE_PREFIX = bytes.fromhex("ff0200000000000000000001ff")  # RFC 4291 §2.7.1, ff02::1:ff00:0/104


def _is_link_scope_multicast(addr: bytes) -> bool:
    """RFC 4291 §2.7: a multicast scope of interface-local (1), link-local (2) or reserved (0)."""
    return addr[0] == 0xFF and (addr[1] & 0x0F) <= 2


def _drop(reason: DropReason) -> tuple[int, int]:
    return int(Verdict.DROP), int(reason)


def _pass(verdict: Verdict, dst: bytes) -> tuple[int, int]:
    """FORWARD unless the destination is link-scope multicast, which a router never forwards (RFC 4291
    §2.7): that is CONTROL."""
    if verdict == Verdict.FORWARD and _is_link_scope_multicast(dst):
        verdict = Verdict.CONTROL
    return int(verdict), int(DropReason.NONE)


def _classify_one(frame: bytes, row: _Row, fmip_type: int, codes: dict[int, int]) -> tuple[int, int]:
    length = len(frame)
    # 1. Ethernet (IEEE 802.3): destination, source, EtherType.
    if length < _ETH_HDR_LEN:
        return _drop(DropReason.ETH_TRUNCATED)
    row["eth_dst"] = frame[0:6]
    row["eth_src"] = frame[6:12]
    pos = 12
    (ethertype,) = struct.unpack_from("!H", frame, pos)
    tags = 0
    # IEEE 802.1Q (0x8100) / 802.1ad (0x88A8) tags: TPID, TCI, then the next EtherType.
    while ethertype in (_ETYPE_VLAN, _ETYPE_QINQ):
        tags += 1
        if tags > _MAX_VLAN_TAGS:
            return _drop(DropReason.TOO_MANY_VLANS)
        if length < pos + 6:
            return _drop(DropReason.ETH_TRUNCATED)
        (ethertype,) = struct.unpack_from("!H", frame, pos + 4)
        pos += 4
    if ethertype != _ETYPE_IPV6:
        return _drop(DropReason.NOT_IPV6)
    l3 = pos + 2

    # 2. IPv6 header (RFC 8200 §3).
    if length - l3 < _IP6_HDR_LEN:
        return _drop(DropReason.IP6_TRUNCATED)
    if frame[l3] >> 4 != 6:
        return _drop(DropReason.IP6_BAD_VERSION)
    payload_len, next_header, hop_limit = struct.unpack_from("!HBB", frame, l3 + 4)
    src = frame[l3 + 8:l3 + 24]
    dst = frame[l3 + 24:l3 + 40]
    row["l3_offset"] = l3
    row["hop_limit"] = hop_limit
    row["next_header"] = next_header
    row["src"] = src
    row["dst"] = dst
    # RFC 8200 §3: Payload Length counts the octets after the header; octets past it are link padding.
    # A zero is a zero-length payload: jumbograms (RFC 2675) are not accepted.
    end = l3 + _IP6_HDR_LEN + payload_len
    if end > length:
        return _drop(DropReason.IP6_BAD_PAYLOAD_LENGTH)
    # RFC 4291 §2.7: multicast is never a source; §2.5.3: loopback never leaves a node.
    if _is_multicast(src) or src == _LOOPBACK:
        return _drop(DropReason.IP6_BAD_SOURCE)
    # RFC 4291 §2.5.2: the unspecified address is never a destination; §2.5.3 loopback as above.
    if dst in (_UNSPECIFIED, _LOOPBACK):
        return _drop(DropReason.IP6_BAD_DESTINATION)

    # 3. Extension headers (RFC 8200 §4).
    pos = l3 + _IP6_HDR_LEN
    walked = 0
    fragmented = False
    while next_header in (_HOPOPTS, _DSTOPTS, _ROUTING, _FRAGMENT, _AH):
        if walked >= _MAX_EXT_HEADERS:
            return _drop(DropReason.EXT_CHAIN_TOO_LONG)
        # RFC 8200 §4.3: the hop-by-hop options header only ever follows the IPv6 header.
        if next_header == _HOPOPTS and walked != 0:
            return _drop(DropReason.HBH_NOT_FIRST)
        # Every extension header is at least 8 octets (RFC 8200 §4.3-§4.6, RFC 4302 §2.2).
        if end - pos < 8:
            return _drop(DropReason.EXT_TRUNCATED)
        walked += 1
        nxt, hlen = frame[pos], frame[pos + 1]
        if next_header == _FRAGMENT:
            # RFC 8200 §4.5: 8 octets; Fragment Offset (13 bits) and M (the low bit) in octets 2-3.
            (off_m,) = struct.unpack_from("!H", frame, pos + 2)
            fragmented = True
            if off_m >> 3 != 0 or off_m & 1:
                # Not a whole packet: the upper layer is not parsed (only the first fragment has it).
                row["next_header"] = nxt
                row["l4_offset"] = pos + 8
                row["l4_length"] = end - pos - 8
                # RFC 6980 §5: ND messages must not be fragmented.  Only a first fragment shows its type.
                if (nxt == _ICMPV6 and off_m >> 3 == 0 and end - pos > 8
                        and frame[pos + 8] in _ND_MIN_LEN):
                    return _drop(DropReason.ND_INVALID)
                return _pass(Verdict.FORWARD, dst)
            size = 8
        elif next_header == _AH:
            size = (hlen + 2) * 4  # RFC 4302 §2.2: Payload Len in 32-bit words, minus 2
            row["has_ah"] = True
        else:
            size = (hlen + 1) * 8  # RFC 8200 §4.3-§4.6: Hdr Ext Len in 8-octet units, not counting the first
        if pos + size > end:
            return _drop(DropReason.EXT_TRUNCATED)
        pos += size
        next_header = nxt
    row["next_header"] = next_header
    row["l4_offset"] = pos
    row["l4_length"] = end - pos
    message = frame[pos:end]

    if next_header == _ICMPV6:
        return _icmp6(message, row, src, dst, hop_limit, fragmented, fmip_type, codes, frame, pos)
    if next_header == _IPV6:
        # 5. IPv6-in-IPv6 (RFC 2473 §3): the inner packet must at least hold an IPv6 header.
        if len(message) < _IP6_HDR_LEN:
            return _drop(DropReason.IP6_TRUNCATED)
        if message[0] >> 4 != 6:
            return _drop(DropReason.IP6_BAD_VERSION)
        return _pass(Verdict.DECAP, dst)
    # 6. Everything else (UDP, TCP, ESP, No Next Header, ...) is forwarded as it is.
    return _pass(Verdict.FORWARD, dst)


def _checksum_ok(src: bytes, dst: bytes, message: bytes) -> bool:
    """RFC 4443 §2.3 / RFC 1071 §2(A): the sum over pseudo-header and message folds to all ones."""
    data = src + dst + struct.pack("!IxxxB", len(message), _ICMPV6) + message
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def _icmp6(msg: bytes, row: _Row, src: bytes, dst: bytes, hop_limit: int, fragmented: bool, fmip_type: int,
           codes: dict[int, int], frame: bytes, l4: int) -> tuple[int, int]:
    # 4. ICMPv6 (RFC 4443 §2.1): type, code, checksum.
    if len(msg) < 4:
        return _drop(DropReason.ICMP6_TRUNCATED)
    icmp_type, code = msg[0], msg[1]
    row["icmp_type"] = icmp_type
    row["icmp_code"] = code
    if icmp_type in _ND_MIN_LEN:
        return _nd(msg, row, src, dst, hop_limit, fragmented)
    if icmp_type == fmip_type:
        return _fmip(msg, row, src, dst, hop_limit, codes, has_ah=bool(row.values.get("has_ah")))
    # Other ICMPv6 (echo, errors, ...): end to end, so a bad checksum is reported, never dropped here.
    if not _checksum_ok(src, dst, msg):
        row["checksum_ok"] = False
    return _pass(Verdict.FORWARD, dst)


def _nd(msg: bytes, row: _Row, src: bytes, dst: bytes, hop_limit: int, fragmented: bool) -> tuple[int, int]:
    icmp_type = msg[0]
    # (a) RFC 4861 §6.1.1, §6.1.2, §7.1.1, §7.1.2, §8.1: "ICMP Code is 0".
    if msg[1] != 0:
        return _drop(DropReason.ICMP6_BAD_CODE)
    # (b) same clauses: "ICMP length (derived from the IP length) is N or more octets".
    start = _ND_MIN_LEN[icmp_type]
    if len(msg) < start:
        return _drop(DropReason.ICMP6_TRUNCATED)
    # (c) same clauses: "The IP Hop Limit field has a value of 255" (the message came from the link).
    if hop_limit != _ND_HOP_LIMIT:
        return _drop(DropReason.ICMP6_BAD_HOP_LIMIT)
    # (d) same clauses: "The ICMP checksum is valid" (RFC 4443 §2.3).
    if not _checksum_ok(src, dst, msg):
        row["checksum_ok"] = False
        return _drop(DropReason.ICMP6_BAD_CHECKSUM)
    target = msg[8:24] if icmp_type in (_NS, _NA, _REDIRECT) else None
    if target is not None:
        row["target"] = target
    # (e) RFC 4861 §4.6: options are 8-octet units; a length of 0 or one past the end invalidates the
    # message; the first link-layer address option of the expected type and 6 octets is kept.
    lla_type = _ND_LLA_OPTION[icmp_type]
    saw_slla = False
    got_lla = False
    pos = start
    end = len(msg)
    while pos < end:
        if end - pos < 2:
            return _drop(DropReason.ND_BAD_OPTION)
        opt_type, units = msg[pos], msg[pos + 1]
        if units == 0 or pos + units * 8 > end:
            return _drop(DropReason.ND_BAD_OPTION)
        if opt_type == 1:
            saw_slla = True
        if opt_type == lla_type and not got_lla:
            got_lla = True
            if units == 1:
                row["lladdr"] = msg[pos + 2:pos + 8]
                row["has_lladdr"] = True
        pos += units * 8
    # (f) validity.
    if fragmented:
        return _drop(DropReason.ND_INVALID)  # RFC 6980 §5: no fragmented ND, atomic fragments included
    if icmp_type in (_NS, _NA) and target is not None and _is_multicast(target):
        return _drop(DropReason.ND_INVALID)  # RFC 4861 §7.1.1 / §7.1.2: "Target Address is not a multicast"
    if icmp_type == _NS and src == _UNSPECIFIED:
        # RFC 4861 §7.1.1: from :: (DAD), the destination is a solicited-node address and there is no SLLA.
        if dst[:13] != _SOLICITED_NODE_PREFIX or saw_slla:
            return _drop(DropReason.ND_INVALID)
    if icmp_type == _NA and msg[4] & 0x40 and _is_multicast(dst):
        return _drop(DropReason.ND_INVALID)  # RFC 4861 §7.1.2: multicast destination => Solicited flag 0
    if icmp_type == _RS and src == _UNSPECIFIED and saw_slla:
        return _drop(DropReason.ND_INVALID)  # RFC 4861 §6.1.1: from :: => no source link-layer option
    if icmp_type in (_RA, _REDIRECT) and not (src[0] == 0xFE and src[1] & 0xC0 == 0x80):
        return _drop(DropReason.ND_INVALID)  # RFC 4861 §6.1.2 / §8.1: "IP Source Address is a link-local"
    return int(Verdict.CONTROL), int(DropReason.NONE)


def _fmip(msg: bytes, row: _Row, src: bytes, dst: bytes, hop_limit: int, codes: dict[int, int],
          has_ah: bool) -> tuple[int, int]:
    # (a) docs/design.md §2 "Receivers check ... code known": the profile maps the wire code to a message.
    code = codes.get(msg[1], 0)
    if code == 0:
        return _drop(DropReason.ICMP6_BAD_CODE)
    row["fmip_code"] = code
    # (b) docs/design.md §2 "minimum length per code ... flags consistent with lengths" (layouts: draft §5
    # HRD, §6 HI, §7 HE, §6.1 HRA-shaped with its 16-bit Length equal to the message length).
    size = len(msg)
    if code in (_HRD, _HI, _HE):
        if size < 24:
            return _drop(DropReason.FMIP_BAD_LENGTH)
        flags = msg[5]
        start = 24
        if code == _HRD:
            start += (8 if flags & _HRD_M else 0) + (16 if flags & _HRD_C else 0)
        elif code == _HI:
            start += 8 if flags & _HI_M else 0
        if size < start:
            return _drop(DropReason.FMIP_BAD_LENGTH)
    else:
        if size < 10 or struct.unpack_from("!H", msg, 8)[0] != size:
            return _drop(DropReason.FMIP_BAD_LENGTH)
        start = 10
    # (c) docs/design.md §2 "hop limit 255 where the table says so".
    if code in _FMIP_HOP255 and hop_limit != _ND_HOP_LIMIT:
        return _drop(DropReason.ICMP6_BAD_HOP_LIMIT)
    # (d) docs/design.md §2 "checksum (RFC 4443 pseudo-header)".
    if not _checksum_ok(src, dst, msg):
        row["checksum_ok"] = False
        return _drop(DropReason.ICMP6_BAD_CHECKSUM)
    got_lla = False
    if code == _HRD:
        flags = msg[5]
        mac_at = 24 if flags & _HRD_M else None
        if flags & _HRD_C:
            row["ncoa"] = msg[24 + (8 if mac_at is not None else 0):][:16]
    elif code == _HI:
        mac_at = 24 if msg[5] & _HI_M else None
        row["ncoa"] = msg[8:24]
    elif code == _HE:
        mac_at = None
        row["ncoa"] = msg[8:24]
    else:
        mac_at = None
    if mac_at is not None:
        got_lla = _eui64_lladdr(msg[mac_at:mac_at + 8], row)
    # (e) docs/design.md §2 sub-options: type, length in octets with the header; a length below 2 or past the
    # end invalidates the message; unknown types are skipped; the first Identifier (6) and the first
    # Link-layer address (9) are kept.
    pos = start
    saw_identifier = saw_lla = False
    while pos < size:
        if size - pos < 2:
            return _drop(DropReason.FMIP_BAD_SUBOPTION)
        opt_type, opt_len = msg[pos], msg[pos + 1]
        if opt_len < 2 or pos + opt_len > size:
            return _drop(DropReason.FMIP_BAD_SUBOPTION)
        if opt_type == _SUBOPT_IDENTIFIER and not saw_identifier:
            saw_identifier = True
            if opt_len == 6:
                row["identifier"] = struct.unpack_from("!H", msg, pos + 2)[0]
        elif opt_type == _SUBOPT_LINK_LAYER_ADDRESS and not saw_lla:
            saw_lla = True
            if opt_len == 10 and not got_lla:
                got_lla = _eui64_lladdr(msg[pos + 2:pos + 10], row)
        pos += opt_len
    # (f) docs/design.md §4: HI and HE travel between routers under AH; without one they are dropped.
    if code in _FMIP_NEEDS_AH and not has_ah:
        return _drop(DropReason.FMIP_NO_AH)
    return int(Verdict.CONTROL), int(DropReason.NONE)


def _eui64_lladdr(eui: bytes, row: _Row) -> bool:
    """docs/design.md §3: an EUI-64 whose octets 3-4 are FF-FE holds a 48-bit MAC (the other six octets)."""
    if eui[3] == 0xFF and eui[4] == 0xFE:
        row["lladdr"] = eui[0:3] + eui[5:8]
        row["has_lladdr"] = True
        return True
    return False

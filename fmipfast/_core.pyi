"""Typing stub of fmipfast._core (STYLE.md rule 4); docstrings mirror fmipfast/_core.pyx.

Generated from the compiled module's docstrings; keep the two in step when a signature changes.
"""

from typing import SupportsIndex

from typing_extensions import Buffer

__all__ = [
    "internet_checksum",
    "upper_layer_checksum",
    "icmp6_checksum",
    "icmp6_checksum_ok",
    "icmp6_checksum_fill",
    "ncoa_from_prefix",
    "nar_link_local",
    "link_local_from_mac48",
    "eui64_from_mac48",
    "mac48_from_eui64",
    "iid_from_eui64",
    "eui64_from_iid",
    "eui64_from_address",
    "mac48_from_address",
]

def internet_checksum(data: Buffer) -> int:
    """RFC 1071 Internet checksum of ``data``: the complement of the folded one's-complement sum.

    Parameters
    ----------
    data : bytes-like
        Any number of octets; an odd trailing octet is padded with a zero octet.

    Returns
    -------
    int
        The 16-bit checksum (0xFFFF for empty input).

    Reference: fmipfast.reference.cksum.internet_checksum
    """

def upper_layer_checksum(
    src: Buffer, dst: Buffer, next_header: SupportsIndex, payload: Buffer, checksum_offset: SupportsIndex
) -> int:
    """Checksum of an IPv6 upper-layer packet over the RFC 8200 §8.1 pseudo-header.

    Parameters
    ----------
    src, dst : bytes-like, 16 octets
        IPv6 source and (final) destination address.
    next_header : int
        Upper-layer protocol number, 0..255.
    payload : bytes-like
        The upper-layer packet; its length is the pseudo-header's 32-bit length (may exceed 65535).
    checksum_offset : int
        Offset of the packet's own 16-bit checksum field, whose two octets are counted as zero;
        ``0 <= checksum_offset <= len(payload) - 2``.

    Returns
    -------
    int
        The checksum to store.  For UDP (17) a computed 0 is returned as 0xFFFF (RFC 8200 §8.1).

    Raises
    ------
    ValueError
        Wrong address lengths, ``next_header`` outside 0..255, ``checksum_offset`` out of range, or a
        payload longer than the 32-bit length field.

    Reference: fmipfast.reference.cksum.upper_layer_checksum
    """

def icmp6_checksum(src: Buffer, dst: Buffer, message: Buffer) -> int:
    """RFC 4443 §2.3 checksum of an ICMPv6 ``message`` (its octets 2-3 are counted as zero).

    Parameters
    ----------
    src, dst : bytes-like, 16 octets
        The IPv6 source and destination of the packet carrying the message.
    message : bytes-like, at least 4 octets
        The ICMPv6 message from its Type octet to its end.

    Returns
    -------
    int
        The 16-bit checksum.

    Raises
    ------
    ValueError
        Wrong address lengths or a message shorter than the 4-octet ICMPv6 header.

    Reference: fmipfast.reference.cksum.icmp6_checksum
    """

def icmp6_checksum_ok(src: Buffer, dst: Buffer, message: Buffer) -> bool:
    """True iff ``message``'s stored checksum verifies (RFC 4443 §2.3, RFC 1071 §2(A) verification).

    The one's-complement sum over the pseudo-header and the whole message, checksum field included,
    must fold to 0xFFFF.  A stored 0x0000 and a stored 0xFFFF are both accepted wherever the
    arithmetic makes them equivalent (they are the two zeros of one's complement).

    Parameters
    ----------
    src, dst : bytes-like, 16 octets
    message : bytes-like, at least 4 octets

    Returns
    -------
    bool

    Raises
    ------
    ValueError
        Wrong address lengths or a message shorter than 4 octets.

    Reference: fmipfast.reference.cksum.icmp6_checksum_ok
    """

def icmp6_checksum_fill(src: Buffer, dst: Buffer, buf: Buffer) -> int:
    """Compute the ICMPv6 checksum of ``buf`` and store it big-endian in ``buf[2:4]``, in place.

    Parameters
    ----------
    src, dst : bytes-like, 16 octets
    buf : writable bytes-like (bytearray, writable memoryview, numpy uint8), at least 4 octets

    Returns
    -------
    int
        The checksum written.

    Raises
    ------
    TypeError
        ``buf`` is read-only (``bytes``, a read-only memoryview).
    ValueError
        Wrong address lengths or a message shorter than 4 octets.

    Reference: fmipfast.reference.cksum.icmp6_checksum_fill
    """

def ncoa_from_prefix(nar_address: Buffer, prefix_len: SupportsIndex, coa: Buffer) -> bytes:
    """New care-of address: the first ``prefix_len`` bits of ``nar_address``, the rest from ``coa``.

    Draft §5 with the C bit clear (DESIGN.md §3): the NAR's routing prefix prepended to the lower-order
    bits of the mobile node's current care-of address.

    Parameters
    ----------
    nar_address : bytes-like, 16 octets
    prefix_len : int, 0..128
    coa : bytes-like, 16 octets
        The mobile node's current care-of address.

    Returns
    -------
    bytes
        16 octets.

    Raises
    ------
    ValueError
        Wrong lengths or ``prefix_len`` outside 0..128.

    Reference: fmipfast.reference.derive.ncoa_from_prefix
    """

def nar_link_local(nar_address: Buffer, prefix_len: SupportsIndex) -> bytes:
    """NAR link-local address: FE80::/64 followed by the low 64 bits of ``nar_address``.

    Draft §5 replaces the routing prefix with FE80::; DESIGN.md §3 allows that only for prefix size 64.

    Parameters
    ----------
    nar_address : bytes-like, 16 octets
    prefix_len : int, 0..128

    Returns
    -------
    bytes
        16 octets.

    Raises
    ------
    ValueError
        Wrong length or ``prefix_len`` outside 0..128.
    DerivationError
        ``prefix_len`` is not 64.

    Reference: fmipfast.reference.derive.nar_link_local
    """

def link_local_from_mac48(mac6: Buffer) -> bytes:
    """FE80::/64 + the modified EUI-64 interface identifier of a 48-bit MAC (RFC 4291 Appendix A).

    Example: 00:1b:63:84:45:e6 -> fe80::21b:63ff:fe84:45e6.

    Parameters
    ----------
    mac6 : bytes-like, 6 octets

    Returns
    -------
    bytes
        16 octets.

    Raises
    ------
    ValueError
        ``mac6`` is not 6 octets.

    Reference: fmipfast.reference.derive.link_local_from_mac48
    """

def eui64_from_mac48(mac6: Buffer) -> bytes:
    """The EUI-64 of a 48-bit MAC: FF FE inserted after octet 2, U/L bit untouched (DESIGN.md §3).

    Parameters
    ----------
    mac6 : bytes-like, 6 octets

    Returns
    -------
    bytes
        8 octets.

    Raises
    ------
    ValueError
        ``mac6`` is not 6 octets.

    Reference: fmipfast.reference.derive.eui64_from_mac48
    """

def mac48_from_eui64(eui8: Buffer) -> bytes:
    """The 48-bit MAC inside an EUI-64 whose octets 3-4 are FF FE (inverse of eui64_from_mac48).

    Parameters
    ----------
    eui8 : bytes-like, 8 octets

    Returns
    -------
    bytes
        6 octets.

    Raises
    ------
    ValueError
        ``eui8`` is not 8 octets.
    DerivationError
        Octets 3-4 are not FF FE, so the EUI-64 is not built from a 48-bit MAC.

    Reference: fmipfast.reference.derive.mac48_from_eui64
    """

def iid_from_eui64(eui8: Buffer) -> bytes:
    """Modified EUI-64 interface identifier of an EUI-64: the U/L bit (0x02 of octet 0) inverted.

    Parameters
    ----------
    eui8 : bytes-like, 8 octets

    Returns
    -------
    bytes
        8 octets.

    Raises
    ------
    ValueError
        ``eui8`` is not 8 octets.

    Reference: fmipfast.reference.derive.iid_from_eui64
    """

def eui64_from_iid(iid8: Buffer) -> bytes:
    """The EUI-64 behind a modified EUI-64 interface identifier: the U/L bit inverted back.

    Parameters
    ----------
    iid8 : bytes-like, 8 octets

    Returns
    -------
    bytes
        8 octets.

    Raises
    ------
    ValueError
        ``iid8`` is not 8 octets.

    Reference: fmipfast.reference.derive.eui64_from_iid
    """

def eui64_from_address(address16: Buffer, prefix_len: SupportsIndex) -> bytes:
    """The EUI-64 behind an address's interface identifier: its low 64 bits with the U/L bit inverted.

    Parameters
    ----------
    address16 : bytes-like, 16 octets
    prefix_len : int, 0..128

    Returns
    -------
    bytes
        8 octets.

    Raises
    ------
    ValueError
        Wrong length or ``prefix_len`` outside 0..128.
    DerivationError
        ``prefix_len`` > 64: the interface identifier is shorter than an EUI-64.

    Reference: fmipfast.reference.derive.eui64_from_address
    """

def mac48_from_address(address16: Buffer, prefix_len: SupportsIndex) -> bytes:
    """The 48-bit MAC behind an address's FF-FE based interface identifier (DESIGN.md §3, draft §5/§6).

    Equals ``mac48_from_eui64(eui64_from_address(address16, prefix_len))``.

    Parameters
    ----------
    address16 : bytes-like, 16 octets
    prefix_len : int, 0..128

    Returns
    -------
    bytes
        6 octets.

    Raises
    ------
    ValueError
        Wrong length or ``prefix_len`` outside 0..128.
    DerivationError
        ``prefix_len`` > 64, or the interface identifier is not FF-FE based (a privacy or stable IID,
        RFC 8981 / RFC 7217): the MAC cannot be derived and the sender must set M.

    Reference: fmipfast.reference.derive.mac48_from_address
    """

def _struct_sizes() -> dict[str, int]:
    """sizeof() of the packed wire structs of includes/wire.pxd, by struct name."""

def _consts() -> dict[str, int]:
    """Every enum constant of includes/consts.pxi and includes/wire.pxd, by name, as compiled."""

# ---- The batch core (issue #3). Each room adds its stubs in its own section. ----

# [parse] classify and Batch

# (keep this line: it separates the sections for clean merges)

# [ncache] NeighborCache and batch derivations

# (keep this line: it separates the sections for clean merges)

# [bufq+rewrite] PacketBuffer and the rewrite kernels

import numpy as np  # noqa: E402
from numpy.typing import ArrayLike, NDArray  # noqa: E402

class PacketBuffer:
    """Bounded per-key FIFO queues of frames in one preallocated arena (DESIGN.md §5 "Buffers").

    Keys are ``0 .. max_keys - 1`` (one per MN mid-handover); all parameters are keyword-only.

    Bounds, each counted: a frame longer than ``slot_size`` (or ``per_key_bytes``) is refused
    (FRAME_TOO_BIG, ``dropped_too_big``); a key at its packet or byte cap drops its OLDEST frame and queues
    the new one (RFC 4861 §7.2.2; ``dropped_oldest``, reason BUFFER_FULL); with no free slot the key's own
    oldest frame makes room, or, if the key holds none, the new frame is refused (BUFFER_FULL,
    ``refused_global``); frames older than ``lifetime_ns`` are dropped at ``flush``/``expire``
    (BUFFER_EXPIRED, ``dropped_expired``); ``drop(key)`` counts ``dropped_by_drop``.  Conservation:
    ``pushed == queued + flushed + dropped_oldest + refused_global + dropped_too_big + dropped_expired +
    dropped_by_drop``.

    Single writer: one thread per PacketBuffer.  Each call runs its kernel without the GIL.

    Reference: fmipfast.reference.bufq.PacketBuffer
    """

    def __init__(
        self,
        *,
        slots: SupportsIndex = 4096,
        slot_size: SupportsIndex = 2048,
        max_keys: SupportsIndex = 1024,
        per_key_packets: SupportsIndex = 64,
        per_key_bytes: SupportsIndex = 65536,
        lifetime_ns: SupportsIndex = 3_000_000_000,
    ) -> None: ...
    @property
    def slots(self) -> int: ...
    @property
    def slot_size(self) -> int: ...
    @property
    def max_keys(self) -> int: ...
    @property
    def per_key_packets(self) -> int: ...
    @property
    def per_key_bytes(self) -> int: ...
    @property
    def lifetime_ns(self) -> int: ...
    @property
    def counters(self) -> dict[str, int]:
        """Counters since creation (``queued``, ``queued_bytes``: held now); see the class docstring."""
    def __len__(self) -> int: ...
    def queued(self, key: SupportsIndex) -> int:
        """Frames held for ``key``."""
    def queued_bytes(self, key: SupportsIndex) -> int:
        """Octets held for ``key``."""
    def push(
        self, keys: ArrayLike, arena: Buffer, offsets: ArrayLike, lengths: ArrayLike, now_ns: SupportsIndex
    ) -> NDArray[np.uint8]:
        """Queue frame ``i`` (``arena[offsets[i]:offsets[i] + lengths[i]]``) under ``keys[i]``, in order.

        Parameters
        ----------
        keys : int32[n], each in 0..max_keys-1
        arena : uint8 (any bytes-like), offsets : int64[n], lengths : uint32[n]
        now_ns : int >= 0, the arrival time stamped on the queued frames

        Returns
        -------
        uint8[n]
            0 if the frame is held when push returns, else its DropReason: FRAME_TOO_BIG, or BUFFER_FULL
            (refused for want of a slot, or queued and then evicted by a later frame of this call).

        Raises
        ------
        TypeError, ValueError
            Wrong dtype / shape (naming the argument), a frame outside the arena or a key out of range
            (naming the index); nothing is queued then.

        Reference: fmipfast.reference.bufq.PacketBuffer.push
        """
    def flush(
        self, key: SupportsIndex, now_ns: SupportsIndex
    ) -> tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.uint32]]:
        """Empty ``key``'s queue: its unexpired frames as a packed batch in arrival order.

        Returns
        -------
        (arena uint8[m], offsets int64[k], lengths uint32[k])
            A copy; frames older than lifetime_ns are dropped (BUFFER_EXPIRED) instead of returned.

        Reference: fmipfast.reference.bufq.PacketBuffer.flush
        """
    def drop(self, key: SupportsIndex) -> int:
        """Discard ``key``'s queue (handover failed or ended); returns the frames dropped (``dropped_by_drop``).

        Reference: fmipfast.reference.bufq.PacketBuffer.drop
        """
    def expire(self, now_ns: SupportsIndex) -> int:
        """Drop every frame, of every key, older than lifetime_ns at ``now_ns``; returns how many.

        Reference: fmipfast.reference.bufq.PacketBuffer.expire
        """

def forward_rewrite(
    arena: Buffer, offsets: ArrayLike, l3_offsets: ArrayLike, sel: ArrayLike, dst_macs: ArrayLike, src_mac: ArrayLike
) -> NDArray[np.uint8]:
    """Forward the selected frames IN PLACE: new Ethernet destination and source, hop limit - 1.

    Parameters
    ----------
    arena : writable uint8[size]
    offsets : int64[n]
    l3_offsets : uint32[n]
        IPv6 header offset inside each frame (>= 14: the Ethernet addresses come first).
    sel : int64[m]
        Frames to rewrite; an index may repeat (each occurrence is applied in order).
    dst_macs : uint8[m, 6] (or [6] for all)
    src_mac : uint8[6] (or [m, 6])

    Returns
    -------
    uint8[m]
        0 = rewritten; HOP_LIMIT_EXCEEDED = hop limit <= 1 (RFC 8200 §3, RFC 4443 §3.3), frame untouched.

    Raises
    ------
    TypeError
        Wrong dtype, or a read-only arena.
    ValueError
        Wrong shapes, a ``sel`` index outside the batch, or a selected frame whose Ethernet + IPv6 headers
        are not inside the arena; nothing is written then.

    Reference: fmipfast.reference.rewrite.forward_rewrite
    """

def encapsulate(
    arena: Buffer,
    offsets: ArrayLike,
    lengths: ArrayLike,
    l3_offsets: ArrayLike,
    sel: ArrayLike,
    outer_src: ArrayLike,
    outer_dst: ArrayLike,
    dst_mac: ArrayLike,
    src_mac: ArrayLike,
    *,
    hop_limit: SupportsIndex = 64,
    mtu: SupportsIndex = 1500,
) -> tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.uint32], NDArray[np.uint8]]:
    """Tunnel the selected frames' IPv6 packets in IPv6 (RFC 2473 §3-§5) into a fresh packed batch.

    The inner packet (``l3_offset`` to the end of its IPv6 payload; Ethernet padding and VLAN tags are left
    behind) is first forwarded (its hop limit decremented in the copy, RFC 2473 §3.1), then wrapped:
    Ethernet (``dst_mac``, ``src_mac``, 0x86DD) + outer IPv6 (version 6, traffic class copied from the
    inner packet, flow label 0, payload length = inner length, next header 41, ``hop_limit``,
    ``outer_src``, ``outer_dst``) + the inner packet.  No tunnel encapsulation limit option is added.

    Parameters
    ----------
    arena, offsets, lengths : the batch (uint8, int64[n], uint32[n]); the input is not modified
    l3_offsets : uint32[n]
    sel : int64[m]
    outer_src, outer_dst : uint8[16] (or [m, 16])
    dst_mac, src_mac : uint8[6] (or [m, 6])
    hop_limit : int, 1..255, outer hop limit
    mtu : int, 1280..65535, the tunnel MTU: largest outer IPv6 packet (without Ethernet)

    Returns
    -------
    (out_arena uint8, out_offsets int64[m], out_lengths uint32[m], status uint8[m])
        Entry ``j`` is the tunnel frame of ``sel[j]``, zero-length when ``status[j]`` != 0:
        IP6_TRUNCATED / IP6_BAD_VERSION / IP6_BAD_PAYLOAD_LENGTH (inner packet malformed),
        HOP_LIMIT_EXCEEDED (inner hop limit <= 1: Time Exceeded is due), FRAME_TOO_BIG (40 + inner length
        > mtu: Packet Too Big is due, RFC 2473 §7).

    Reference: fmipfast.reference.rewrite.encapsulate
    """

def decapsulate(
    arena: Buffer, offsets: ArrayLike, lengths: ArrayLike, l3_offsets: ArrayLike, l4_offsets: ArrayLike, sel: ArrayLike
) -> tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.uint32], NDArray[np.uint8]]:
    """Strip the outer IPv6 header of the selected tunnel frames (RFC 2473 §3.2) into a fresh packed batch.

    The inner packet starts at ``l4_offsets[i]`` (where next header 41's payload begins, after any outer
    extension headers) and ends where its own payload length says; it must lie inside the outer packet.
    Each output frame is an Ethernet header with zero MACs and EtherType 0x86DD followed by the inner packet
    (hop limit unchanged), ready to be classified again.

    Returns
    -------
    (out_arena uint8, out_offsets int64[m], out_lengths uint32[m], status uint8[m])
        Zero-length entries where ``status[j]`` != 0: IP6_TRUNCATED (outer header, or fewer than 40 octets
        of inner packet), IP6_BAD_PAYLOAD_LENGTH (outer or inner payload length runs past the frame / the
        outer packet), IP6_BAD_VERSION (inner version is not 6).

    Raises
    ------
    ValueError
        Besides the batch checks: ``l4_offsets[i] < l3_offsets[i] + 40`` for a selected frame (the inner
        packet cannot start inside the outer header; the classifier never reports that).

    Reference: fmipfast.reference.rewrite.decapsulate
    """

def _bufq_reasons() -> dict[str, int]:
    """The DropReason values the bufq/rewrite kernels use, by name, as compiled (tests check them)."""


# (end of the batch-core sections)

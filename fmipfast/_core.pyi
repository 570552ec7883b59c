"""Typing stub of fmipfast._core (STYLE.md rule 4); docstrings mirror fmipfast/_core.pyx.

Generated from the compiled module's docstrings; keep the two in step when a signature changes.
"""

from typing import SupportsIndex

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

from fmipfast.constants import Codepoints

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

__all__ += ["classify", "Batch"]

class Batch:
    """Per-frame results of :func:`classify`: numpy arrays of ``n`` rows over ``capacity``-row storage.

    Reference: fmipfast.reference.wire.Batch
    """

    capacity: int
    n: int
    verdict: npt.NDArray[np.uint8]
    drop_reason: npt.NDArray[np.uint8]
    checksum_ok: npt.NDArray[np.bool_]
    icmp_type: npt.NDArray[np.uint8]
    icmp_code: npt.NDArray[np.uint8]
    fmip_code: npt.NDArray[np.uint8]
    next_header: npt.NDArray[np.uint8]
    hop_limit: npt.NDArray[np.uint8]
    has_ah: npt.NDArray[np.bool_]
    l3_offset: npt.NDArray[np.uint32]
    l4_offset: npt.NDArray[np.uint32]
    l4_length: npt.NDArray[np.uint32]
    src: npt.NDArray[np.uint8]
    dst: npt.NDArray[np.uint8]
    ncoa: npt.NDArray[np.uint8]
    target: npt.NDArray[np.uint8]
    eth_src: npt.NDArray[np.uint8]
    eth_dst: npt.NDArray[np.uint8]
    lladdr: npt.NDArray[np.uint8]
    has_lladdr: npt.NDArray[np.bool_]
    identifier: npt.NDArray[np.int32]
    drop_counts: npt.NDArray[np.uint64]
    def __init__(self, capacity: SupportsIndex) -> None: ...
    def __len__(self) -> int: ...

def classify(
    arena: Buffer,
    offsets: Buffer,
    lengths: Buffer,
    *,
    codepoints: Codepoints = ...,
    out: Batch | None = None,
    counters: Buffer | None = None,
) -> Batch:
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
        The fmipfast ICMPv6 type and codes (DESIGN.md §2); ``fmip_code`` reports canonical codes 1-7.
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

def _parse_consts() -> dict[str, int]:
    """The VERDICT_* and DROP_* constants of includes/consts.pxi, by name, as compiled."""

def _py_classify_frame(frame: Buffer, codepoints: Codepoints = ...) -> tuple[int, int]:
    """Test hook (STYLE.md rule 34): ``(verdict, drop_reason)`` of classify_frame() on one frame."""

# (keep this line: it separates the sections for clean merges)

# [ncache] NeighborCache and batch derivations

# (keep this line: it separates the sections for clean merges)

# [bufq+rewrite] PacketBuffer and the rewrite kernels

# (end of the batch-core sections)

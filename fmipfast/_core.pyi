"""Typing stub of fmipfast._core (docs/conventions.md §1); docstrings mirror fmipfast/_core.pyx.

Generated from the compiled module's docstrings; keep the two in step when a signature changes.
"""

from typing import Any, SupportsIndex, TypeAlias

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

from fmipfast.constants import Codepoints

#: What a kernel takes where the buffer protocol is enough: bytes-like objects and numpy arrays.  (numpy's stubs
#: declare ``ndarray.__buffer__`` only for Python >= 3.12, so ``Buffer`` alone would refuse arrays on 3.11.)
_BufferLike: TypeAlias = Buffer | npt.NDArray[Any]

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

def internet_checksum(data: _BufferLike) -> int:
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
    src: _BufferLike, dst: _BufferLike, next_header: SupportsIndex, payload: _BufferLike, checksum_offset: SupportsIndex
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

def icmp6_checksum(src: _BufferLike, dst: _BufferLike, message: _BufferLike) -> int:
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

def icmp6_checksum_ok(src: _BufferLike, dst: _BufferLike, message: _BufferLike) -> bool:
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

def icmp6_checksum_fill(src: _BufferLike, dst: _BufferLike, buf: _BufferLike) -> int:
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

def ncoa_from_prefix(nar_address: _BufferLike, prefix_len: SupportsIndex, coa: _BufferLike) -> bytes:
    """New care-of address: the first ``prefix_len`` bits of ``nar_address``, the rest from ``coa``.

    Draft §5 with the C bit clear (docs/design.md §3): the NAR's routing prefix prepended to the lower-order
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

def nar_link_local(nar_address: _BufferLike, prefix_len: SupportsIndex) -> bytes:
    """NAR link-local address: FE80::/64 followed by the low 64 bits of ``nar_address``.

    Draft §5 replaces the routing prefix with FE80::; docs/design.md §3 allows that only for prefix size 64.

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

def link_local_from_mac48(mac6: _BufferLike) -> bytes:
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

def eui64_from_mac48(mac6: _BufferLike) -> bytes:
    """The EUI-64 of a 48-bit MAC: FF FE inserted after octet 2, U/L bit untouched (docs/design.md §3).

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

def mac48_from_eui64(eui8: _BufferLike) -> bytes:
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

def iid_from_eui64(eui8: _BufferLike) -> bytes:
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

def eui64_from_iid(iid8: _BufferLike) -> bytes:
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

def eui64_from_address(address16: _BufferLike, prefix_len: SupportsIndex) -> bytes:
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

def mac48_from_address(address16: _BufferLike, prefix_len: SupportsIndex) -> bytes:
    """The 48-bit MAC behind an address's FF-FE based interface identifier (docs/design.md §3, draft §5/§6).

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
    """Every constant of includes/consts.pxi, by name, as compiled (tests/test_core_consts.py)."""

def _wire_consts() -> dict[str, int]:
    """Every enum constant of includes/wire.pxd, by name, as compiled (includes/consts.pxi has its own hook,
    ``_consts()``)."""

# ---- The batch core. Each room adds its stubs in its own section. ----

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
    arena: _BufferLike,
    offsets: _BufferLike,
    lengths: _BufferLike,
    *,
    codepoints: Codepoints = ...,
    out: Batch | None = None,
    counters: _BufferLike | None = None,
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
        Wrong dimensions, layout (a non-contiguous array or memoryview) or lengths; a frame outside the
        arena (the message names its index); ``n`` above ``out.capacity``; ``counters`` of the wrong size
        or read-only.
    TypeError
        An argument without the buffer protocol or of the wrong dtype (``offsets: need dtype int64, got
        int32``), ``out`` not a Batch, ``codepoints`` not a Codepoints.

    Thread safety: ``offsets`` and ``lengths`` are copied once, then checked and used from the copy, so
    another thread writing them meanwhile cannot move a frame outside the arena.

    Reference: fmipfast.reference.wire.classify
    """

def _py_icmp6_ok_short(src: _BufferLike, dst: _BufferLike, message: _BufferLike) -> bool:
    """Test hook: _icmp6_ok_short() on one message (16-octet addresses; at most 65 535 octets)."""

def _py_classify_frame(frame: _BufferLike, codepoints: Codepoints = ...) -> tuple[int, int]:
    """Test hook (docs/conventions.md §10): ``(verdict, drop_reason)`` of classify_frame() on one frame."""

# (keep this line: it separates the sections for clean merges)

# [ncache] NeighborCache and batch derivations

import numpy as _np  # noqa: E402  (kept inside the [ncache] section for clean merges)
import numpy.typing as _npt  # noqa: E402

__all__ += ["ncoa_batch", "nar_link_local_batch", "mac48_from_address_batch", "eui64_from_mac48_batch"]
__all__ += ["NeighborCache"]

def ncoa_batch(
    nar_addresses: _npt.ArrayLike, prefix_len: SupportsIndex, coas: _npt.ArrayLike
) -> _npt.NDArray[_np.uint8]:
    """New care-of addresses for many mobile nodes: row i = ``ncoa_from_prefix(nar[i], prefix_len, coas[i])``.

    Parameters
    ----------
    nar_addresses : numpy uint8 array, shape (16,) (one NAR for every row) or (n, 16)
    prefix_len : int, 0..128
    coas : numpy uint8 array, shape (n, 16)
        The mobile nodes' current care-of addresses.

    Returns
    -------
    numpy.ndarray
        uint8, shape (n, 16).

    Raises
    ------
    TypeError
        An array is not uint8 (the message names it), or ``prefix_len`` is not an integer.
    ValueError
        A wrong shape, a row count that differs from ``coas``'s, or ``prefix_len`` outside 0..128.

    Reference: fmipfast.reference.derive.ncoa_batch
    """

def nar_link_local_batch(nar_addresses: _npt.ArrayLike, prefix_len: SupportsIndex) -> _npt.NDArray[_np.uint8]:
    """NAR link-local addresses: row i = ``nar_link_local(nar_addresses[i], prefix_len)``.

    Parameters
    ----------
    nar_addresses : numpy uint8 array, shape (n, 16)
    prefix_len : int, 0..128

    Returns
    -------
    numpy.ndarray
        uint8, shape (n, 16).

    Raises
    ------
    TypeError
        ``nar_addresses`` is not uint8, or ``prefix_len`` is not an integer.
    ValueError
        A wrong shape or ``prefix_len`` outside 0..128.
    DerivationError
        ``prefix_len`` is not 64 (also for an empty batch, as the scalar function).

    Reference: fmipfast.reference.derive.nar_link_local_batch
    """

def mac48_from_address_batch(
    addresses: _npt.ArrayLike, prefix_len: SupportsIndex
) -> tuple[_npt.NDArray[_np.uint8], _npt.NDArray[_np.bool_]]:
    """48-bit MACs behind many addresses' FF-FE based interface identifiers, without one exception per row.

    Parameters
    ----------
    addresses : numpy uint8 array, shape (n, 16)
    prefix_len : int, 0..128

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``macs`` uint8 (n, 6) and ``ok`` bool (n,): where ``ok`` is False the interface identifier is
        not FF-FE based (a privacy or stable IID: the sender must set M) and the row is zero; where it
        is True the row equals ``mac48_from_address(addresses[i], prefix_len)``.

    Raises
    ------
    TypeError
        ``addresses`` is not uint8, or ``prefix_len`` is not an integer.
    ValueError
        A wrong shape or ``prefix_len`` outside 0..128.
    DerivationError
        ``prefix_len`` > 64: the interface identifier is shorter than an EUI-64 (for every row alike).

    Reference: fmipfast.reference.derive.mac48_from_address_batch
    """

def eui64_from_mac48_batch(macs: _npt.ArrayLike) -> _npt.NDArray[_np.uint8]:
    """EUI-64s of many 48-bit MACs: row i = ``eui64_from_mac48(macs[i])``.

    Parameters
    ----------
    macs : numpy uint8 array, shape (n, 6)

    Returns
    -------
    numpy.ndarray
        uint8, shape (n, 8).

    Raises
    ------
    TypeError
        ``macs`` is not uint8.
    ValueError
        A wrong shape.

    Reference: fmipfast.reference.derive.eui64_from_mac48_batch
    """

class NeighborCache:
    """Bounded neighbor cache keyed by 128-bit IPv6 addresses; one writer: the engine thread.

    Ownership and threading (docs/conventions.md §3): only the engine thread calls the methods of a table,
    lookup/get included (they count); other threads may only read the exported arrays.  Each call
    releases the GIL around its whole batch.  docs/design.md §5, §7; RFC 4861 §5.1.

    Open addressing over a keyed multilinear hash (keys derived from a random 128-bit seed, rehashed
    under new keys when an insert's probe run grows too long); fixed capacity; a full
    table refuses new keys (index -1, counted) and never evicts.  Storage: read-only numpy arrays of
    ``capacity`` rows, indexed by what insert/lookup return.

    Reference: fmipfast.reference.ncache.NeighborCache
    """

    def __init__(self, capacity: SupportsIndex, *, seed: _BufferLike | None = None) -> None: ...
    def __len__(self) -> int: ...
    @property
    def capacity(self) -> int:
        """Number of entries (fixed)."""
    @property
    def keys(self) -> _npt.NDArray[_np.uint8]:
        """uint8 (capacity, 16), read-only: the address of each entry (zeros where free)."""
    @property
    def macs(self) -> _npt.NDArray[_np.uint8]:
        """uint8 (capacity, 6), read-only: the link-layer address of each entry."""
    @property
    def states(self) -> _npt.NDArray[_np.uint8]:
        """uint8 (capacity,), read-only: NeighborState of each entry (0 = NONE where free)."""
    @property
    def flags(self) -> _npt.NDArray[_np.uint8]:
        """uint8 (capacity,), read-only: NeighborFlag bits of each entry."""
    @property
    def ifindex(self) -> _npt.NDArray[_np.uint32]:
        """uint32 (capacity,), read-only: interface index of each entry."""
    @property
    def expiry(self) -> _npt.NDArray[_np.int64]:
        """int64 (capacity,), read-only: expiry time in ns (0 = never) of each entry."""
    @property
    def in_use(self) -> _npt.NDArray[_np.bool_]:
        """bool (capacity,), read-only: True where the entry holds a key."""
    @property
    def counters(self) -> dict[str, int]:
        """dict: inserted, updated, refused_full, lookups, hits, misses, deleted, expired, max_probe."""
    def insert(
        self,
        keys: _npt.ArrayLike,
        macs: _npt.ArrayLike,
        states: _npt.ArrayLike,
        *,
        flags: _npt.ArrayLike | None = None,
        ifindex: _npt.ArrayLike | None = None,
        expiry: _npt.ArrayLike | None = None,
    ) -> _npt.NDArray[_np.int64]:
        """Insert or update (upsert) one entry per key; return int64 entry indices, -1 where refused.

        Rows are processed in order.  A key already in the table (or earlier in the same batch) is
        updated in place: same index, ``updated`` counted, the last write wins.  A new key takes the
        next free index (initially ascending, freed indices reused last-in first-out) and counts
        ``inserted``; when every entry is in use it is refused: index -1, ``refused_full`` counted,
        nothing evicted.  ``flags`` / ``ifindex`` / ``expiry`` left as None keep an updated entry's
        values and give a new entry 0 (no flags, ifindex 0, never expires).

        Parameters
        ----------
        keys : numpy uint8 (n, 16)
        macs : numpy uint8 (n, 6)
        states : numpy uint8 (n,), NeighborState 1..5
        flags : numpy uint8 (n,), NeighborFlag bits, optional
        ifindex : numpy uint32 (n,), optional
        expiry : numpy int64 (n,), ns, 0 = never, >= 0, optional

        Returns
        -------
        numpy.ndarray
            int64 (n,).

        Raises
        ------
        TypeError
            An argument is not an array of its dtype (the message names it).
        ValueError
            A wrong shape, a row count other than n, or a value outside its range (all checked before
            anything is written).

        Reference: fmipfast.reference.ncache.NeighborCache.insert
        """
    def lookup(self, keys: _npt.ArrayLike) -> _npt.NDArray[_np.int64]:
        """Entry index of each key, -1 where absent; counts lookups, hits and misses.

        Parameters
        ----------
        keys : numpy uint8 (n, 16)

        Returns
        -------
        numpy.ndarray
            int64 (n,).

        Raises
        ------
        TypeError, ValueError
            ``keys`` is not a uint8 (n, 16) array.

        Reference: fmipfast.reference.ncache.NeighborCache.lookup
        """
    def get(self, key: _BufferLike) -> int:
        """Entry index of one key (scalar lookup, counted like lookup); KeyError when absent.

        Parameters
        ----------
        key : bytes-like, 16 octets

        Raises
        ------
        KeyError
            ``key`` is not in the table (the argument is the key as bytes).
        ValueError
            ``key`` is not 16 octets.

        Reference: fmipfast.reference.ncache.NeighborCache.get
        """
    def update(
        self,
        indices: _npt.ArrayLike,
        *,
        macs: _npt.ArrayLike | None = None,
        states: _npt.ArrayLike | None = None,
        flags: _npt.ArrayLike | None = None,
        ifindex: _npt.ArrayLike | None = None,
        expiry: _npt.ArrayLike | None = None,
    ) -> None:
        """Overwrite the given fields of the entries at ``indices`` (as returned by insert/lookup).

        Rows are applied in order (a repeated index: the last write wins); ``updated`` counts every row.
        Fields left as None are not touched.

        Parameters
        ----------
        indices : numpy int64 (n,), each an entry in use
        macs, states, flags, ifindex, expiry : as for :meth:`insert`, n rows each, optional

        Raises
        ------
        TypeError
            An argument is not an array of its dtype.
        ValueError
            A wrong shape, an index out of range or not in use, or a value outside its range (all
            checked before anything is written).

        Reference: fmipfast.reference.ncache.NeighborCache.update
        """
    def delete(self, keys: _npt.ArrayLike) -> _npt.NDArray[_np.bool_]:
        """Remove each key; bool (n,), True where an entry was removed (a repeated key: only its first).

        Freed indices are reused last-in first-out; ``deleted`` counts the removals.

        Reference: fmipfast.reference.ncache.NeighborCache.delete
        """
    def expire(self, now_ns: SupportsIndex) -> int:
        """Remove the entries with ``0 < expiry <= now_ns`` that are not STATIC; return how many.

        Entries are removed in ascending index order (their indices are reused last-in first-out).  A
        PROXY entry whose expiry lies in the future survives (docs/design.md §1: a handover's proxy entry
        lives until its lifetime ends).  Kernels never read a clock: the caller passes ``now_ns``
        (docs/conventions.md §2).

        Raises
        ------
        TypeError
            ``now_ns`` is not an integer.
        ValueError
            ``now_ns`` outside 0..2**63-1.

        Reference: fmipfast.reference.ncache.NeighborCache.expire
        """
    # Test hooks
    @property
    def _nslots(self) -> int:
        """Size of the slot table (a power of two >= 2 * capacity)."""
    @property
    def _generation(self) -> int:
        """How many times the table rehashed under new keys (the hash is _nc_hash(key, seed, generation))."""
    def _home_slot(self, key: _BufferLike) -> int:
        """Slot the key hashes to (before probing): _nc_hash(key, seed, generation) & (nslots - 1).
        """
    def _slot_of(self, key: _BufferLike) -> int:
        """Slot holding the key, or -1; touches no counter.
        """
    def _probe_lengths(self) -> _npt.NDArray[_np.int64]:
        """int64 (capacity,): slots a successful lookup of each entry examines (0 where free).
        """
    def _check_invariants(self) -> bool:
        """Raise AssertionError unless slots, free stack and arrays agree (tests only).
        """

def _nc_hash(key: _BufferLike, seed: _BufferLike, generation: SupportsIndex = 0) -> int:
    """The table's hash of a 16-octet ``key`` under ``seed`` at ``generation`` (see the module comment).

    Reference: fmipfast.reference.ncache._nc_hash
    """

def _siphash24(data: _BufferLike, seed: _BufferLike) -> int:
    """SipHash-2-4 of ``data`` (any length) under the 16-octet ``seed``, as the table computes it.

    Reference: fmipfast.reference.ncache._siphash24
    """

def _ncache_consts() -> dict[str, int]:
    """The compiled table's probe limit (tests compare it with the reference's)."""

# (keep this line: it separates the sections for clean merges)

# [bufq+rewrite] PacketBuffer and the rewrite kernels

from numpy.typing import ArrayLike, NDArray  # noqa: E402

__all__ += ["forward_rewrite", "encapsulate", "decapsulate", "PacketBuffer"]

class PacketBuffer:
    """Bounded per-key FIFO queues of frames in one preallocated arena (docs/design.md §5 "Buffers").

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
        self, keys: ArrayLike, arena: _BufferLike, offsets: ArrayLike, lengths: ArrayLike, now_ns: SupportsIndex
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
    arena: _BufferLike,
    offsets: ArrayLike,
    l3_offsets: ArrayLike,
    sel: ArrayLike,
    dst_macs: ArrayLike,
    src_mac: ArrayLike,
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
    arena: _BufferLike,
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
    arena: _BufferLike,
    offsets: ArrayLike,
    lengths: ArrayLike,
    l3_offsets: ArrayLike,
    l4_offsets: ArrayLike,
    sel: ArrayLike,
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



# (end of the batch-core sections)

# [ring] AF_PACKET TPACKET_V3 block walk and TX fill

__all__ += ["ring_walk_block", "ring_block_status", "ring_release_block", "ring_tx_fill"]

RING_WALK_ERRORS: tuple[str, ...]

def ring_walk_block(
    ring: _BufferLike, block_offset: int, block_size: int, *, max_frames: SupportsIndex | None = None
) -> dict[str, Any]:
    """Walk one TPACKET_V3 RX block that user space owns.

    Parameters
    ----------
    ring : uint8 buffer
        The whole RX ring mapping (or any buffer holding a block).
    block_offset, block_size : int
        Where the block starts in ``ring`` and its size (``tp_block_size``).
    max_frames : int, optional
        Upper bound of frames reported (default: every frame the block announces).

    Returns
    -------
    dict
        ``offsets`` int64 (frame starts, relative to ``ring``), ``lengths`` uint32 (captured lengths),
        ``status`` uint32 (``tp_status``: TP_STATUS_CSUMNOTREADY and friends), ``ts_ns`` int64,
        ``vlan_tci`` uint32 (0xFFFFFFFF when no tag was stripped), ``announced`` (num_pkts),
        ``dropped`` (announced frames not reported), ``error`` (index into RING_WALK_ERRORS).

    Raises
    ------
    TypeError
        ``ring`` without the buffer protocol or not of uint8; a non-integer offset, size or ``max_frames``.
    ValueError
        ``ring`` not a 1-D C-contiguous buffer; the block not inside the ring (negative, or past its end: any
        size, up to and beyond 2**63); ``max_frames`` negative.

    Reference: fmipfast.reference.ring.ring_walk_block
    """

def ring_block_status(ring: _BufferLike, block_offset: int) -> int:
    """``block_status`` of the block at ``block_offset``, read with acquire ordering (so the frames it
    covers are visible once TP_STATUS_USER is seen).  ValueError unless the whole 48-octet descriptor lies
    inside ``ring``.  Reference: fmipfast.reference.ring.ring_block_status
    """

def ring_release_block(ring: _BufferLike, block_offset: int) -> None:
    """Hand the block back to the kernel (TP_STATUS_KERNEL, release ordering: every read of its frames
    happens before).  ValueError for a read-only ring or a descriptor not inside it.
    Reference: fmipfast.reference.ring.ring_release_block
    """

def ring_tx_fill(
    tx: _BufferLike, frame_size: int, head: int, arena: _BufferLike, offsets: _BufferLike, lengths: _BufferLike
) -> tuple[int, int, int, int]:
    """Copy frames into free slots of a TPACKET_V3 TX ring, starting at slot ``head``.

    Stops at the first slot the kernel still owns (ring full).  Returns ``(consumed, sent, new_head,
    too_big)``: how many of the given frames were dealt with (the rest must be offered again), how many
    were queued (TP_STATUS_SEND_REQUEST), the next slot to use, and how many were skipped because they do
    not fit a slot (``frame_size`` minus the 48-octet header).  The caller then calls ``send()`` once.

    ``offsets`` (int64) and ``lengths`` (uint32) are copied once before they are checked, so another
    thread writing them meanwhile changes nothing: the frames copied are the frames checked.

    Raises
    ------
    TypeError
        A buffer argument without the buffer protocol or of the wrong dtype; a non-integer ``frame_size`` or
        ``head``.
    ValueError
        ``tx`` read-only or not 1-D C-contiguous; ``arena``, ``offsets``, ``lengths`` of the wrong dimension
        count or layout; a bad ``frame_size`` or ``head``; counts that differ; a frame not inside the arena
        (negative offset, or offset + length past its end, at any magnitude).

    Reference: fmipfast.reference.ring.ring_tx_fill
    """

def _linux_consts() -> dict[str, int]:
    """The Linux ABI numbers of fmipfast/_linux.py as the system headers give them to the compiler, by the
    same names (tests/test_core_consts.py checks the two agree)."""

# (keep this line: it separates the sections for clean merges)

# [fib] longest-prefix-match FIB

__all__ += ["Fib"]

class Fib:
    """Longest-prefix-match table of IPv6 prefixes, immutable once built; lookups cost the same for 10 or
    1 000 000 prefixes.

    Parameters
    ----------
    prefixes : numpy uint8 [n,16]
    lengths : numpy uint8 [n], each 0..128
        Host bits of a prefix beyond its length are ignored.
    values : numpy int32 [n], each >= 0
        What a lookup returns for a destination that prefix matches longest (e.g. a route index).
    seed : bytes-like, 16 octets, optional (keyword only)
        Key of the table's hash; ``None`` draws one from ``os.urandom``.

    ``n`` may be 0 (every lookup gives -1) up to 2**24.  Binary search on prefix lengths with markers
    (Waldvogel et al., SIGCOMM 1997): at most ceil(log2(k + 1)) hash probes per destination for k distinct
    lengths (8 for all 129), in a table the Fib owns (``memory_bytes``).

    Raises
    ------
    TypeError
        An argument is not a numpy array of its dtype (the message names it).
    ValueError
        A wrong shape or row count, a length above 128, a negative value, or a duplicate prefix (same
        masked prefix and length: the message names both rows).

    Reference: fmipfast.reference.fib.Fib
    """

    def __init__(
        self,
        prefixes: npt.NDArray[np.uint8],
        lengths: npt.NDArray[np.uint8],
        values: npt.NDArray[np.int32],
        *,
        seed: _BufferLike | None = None,
    ) -> None: ...
    @property
    def size(self) -> int:
        """Number of prefixes."""
    @property
    def memory_bytes(self) -> int:
        """Bytes of the lookup table the Fib owns (slots and the length array)."""
    def lookup(
        self, dst: npt.NDArray[np.uint8], out: npt.NDArray[np.int32] | None = None
    ) -> npt.NDArray[np.int32]:
        """The value of the longest prefix matching each destination, -1 where none matches.

        Parameters
        ----------
        dst : numpy uint8 [m,16], C-contiguous
        out : numpy int32 [m], C-contiguous and writable, optional
            Where to write the result (not overlapping ``dst``); a new array when None.

        Returns
        -------
        numpy.ndarray
            int32 [m] (``out`` when given).

        Raises
        ------
        TypeError, ValueError
            ``dst`` or ``out`` is not as described (the message names it).

        Reference: fmipfast.reference.fib.Fib.lookup
        """
    # Test hooks
    @property
    def _nslots(self) -> int: ...
    @property
    def _max_probe(self) -> int: ...
    @property
    def _entries(self) -> int: ...
    def _hash(self, hi: int, lo: int, length: int) -> int:
        """The slot hash of one masked key under this table's seed (compare with the reference's)."""

def _fib_consts() -> dict[str, int]:
    """sizeof(fib_slot) and the free-slot marker, as compiled (tests compare them with the reference)."""

# (keep this line: it separates the sections for clean merges)

# [node] the forwarding node

__all__ += ["Node"]

class Node:
    """The forwarding node: see fmipfast/reference/node.py, whose ``Node`` this is, output for output.

    One ``run`` per classified block takes each frame through the neighbor cache, the FIB and the handover
    columns to its :class:`~fmipfast.constants.Action`, rewrites the forwarded frames in place and fills one
    TX vector per output interface.  The outputs (``action`` .. ``stats``) are read-only views of the node's
    own arrays, overwritten by the next ``run``.  One thread (the engine's) calls ``run`` and the setters.

    Reference: fmipfast.reference.node.Node
    """

    def __init__(self, ncache: NeighborCache, capacity: int, interfaces: int) -> None:
        """``capacity``: the most frames one ``run`` takes (1..2**20); ``interfaces``: output interfaces
        (1..4096).  Other values are a ``ValueError``; ``ncache`` not a NeighborCache a ``TypeError``."""
    @property
    def capacity(self) -> int: ...
    @property
    def interfaces(self) -> int: ...
    @property
    def entry_key(self) -> NDArray[np.int32]:
        """int32 (ncache.capacity,), writable: the buffer key of each PROXY / HOLD neighbor entry (-1: none)."""
    @property
    def entry_peer(self) -> NDArray[np.int32]:
        """int32 (ncache.capacity,), writable: the peer index of each TUNNEL neighbor entry (-1: none)."""
    last_drops: NDArray[np.uint64] | None
    @property
    def iface_mac(self) -> NDArray[np.uint8]:
        """uint8 (interfaces, 6), read-only."""
    @property
    def action(self) -> NDArray[np.uint8]:
        """uint8 (capacity,), read-only: the Action of each frame of the last run."""
    @property
    def aux(self) -> NDArray[np.int32]:
        """int32 (capacity,), read-only: buffer key (BUFFER), peer index (TUNNEL), drop reason (DROP), else -1."""
    @property
    def entry(self) -> NDArray[np.int64]:
        """int64 (capacity,), read-only: the destination's neighbor index or -1."""
    @property
    def out_if(self) -> NDArray[np.int32]:
        """int32 (capacity,), read-only: output interface (FORWARD, RESOLVE) or -1."""
    @property
    def next_hop(self) -> NDArray[np.uint8]:
        """uint8 (capacity, 16), read-only: next hop (FORWARD, RESOLVE)."""
    @property
    def tx_count(self) -> NDArray[np.int64]:
        """int64 (interfaces,), read-only: frames in each interface's TX vector."""
    @property
    def tx_offsets(self) -> NDArray[np.int64]:
        """int64 (interfaces, capacity), read-only: ``tx_offsets[k, :tx_count[k]]`` in block order."""
    @property
    def tx_lengths(self) -> NDArray[np.uint32]:
        """uint32 (interfaces, capacity), read-only."""
    @property
    def stats(self) -> NDArray[np.uint64]:
        """uint64 (4,), read-only: dropped, reorder_held, csum_completed, frames (``NODE_STATS``)."""
    @property
    def ncache(self) -> NeighborCache: ...
    def set_interfaces(self, macs: ArrayLike) -> None:
        """The MAC of each output interface, ``uint8[interfaces, 6]``."""
    def set_routes(self, fib: Fib, route_if: ArrayLike, route_via: ArrayLike, route_has_via: ArrayLike) -> None:
        """The FIB and its columns (see the reference)."""
    def set_peers(self, peers: ArrayLike) -> None:
        """The routers whose IPv6-in-IPv6 packets are decapsulated, ``uint8[p, 16]``."""
    def run(
        self,
        batch: Batch,
        arena: NDArray[np.uint8],
        offsets: NDArray[np.int64],
        lengths: NDArray[np.uint32],
        status: NDArray[np.uint32],
        iface: int | np.integer[Any],
        *,
        from_wire: bool = True,
        inner: bool = False,
        drops: NDArray[np.uint64] | None = None,
    ) -> int:
        """See the reference: decide and act on one classified block; returns the bit set of actions."""

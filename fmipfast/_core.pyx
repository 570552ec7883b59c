"""fmipfast._core: the compiled per-packet kernels (docs/conventions.md §1, §2, §8).

Checksums: RFC 1071 (Internet checksum), RFC 8200 §8.1 (IPv6 upper-layer pseudo-header, UDP zero rule),
RFC 4443 §2.3 (ICMPv6 checksum).  Derivations: docs/design.md §3 on draft-koodli-mobileip-fastv6-02 §5-§6
(new care-of address, NAR link-local address, MAC from an interface identifier), EUI-64 and modified
EUI-64 per RFC 4291 §2.5.1 and Appendix A.

One extension built from include-only fragments: ``_kernels/cksum.pxi`` and ``_kernels/derive.pxi`` hold
the ``noexcept nogil`` kernels; this file holds the ``def`` wrappers, which validate, run the kernel
without the GIL and turn a kernel status into an exception in one place, :func:`_raise_for_status`.
Every function here has the same signature, results and exception types as its pure-Python oracle in
``fmipfast.reference`` (the test suite runs both).

Inputs accept any bytes-like object (bytes, bytearray, memoryview, contiguous numpy uint8); outputs are
``bytes``.  Only ``fmipfast.errors`` is imported at run time.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport UINT32_MAX, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from fmipfast.includes.debug cimport FMIPFAST_ASSERT, FMIPFAST_DEBUG
from fmipfast.includes.wire cimport (
    ADDR_LEN,
    EUI64_LEN,
    ICMP6_CKSUM_OFFSET,
    ICMP6_HDR_LEN,
    IID_LEN,
    MAC48_LEN,
    eth_hdr,
    htonl,
    htons,
    icmp6_hdr,
    ip6_hdr,
    load_be16,
    ntohs,
    store_be16,
)
cimport fmipfast.includes.wire as wire

from operator import index as _index

from fmipfast.errors import DerivationError
from fmipfast.reference.wire import dtype_error as _dtype_error

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

include "includes/consts.pxi"
include "_kernels/cksum.pxi"
include "_kernels/derive.pxi"
# The batch core: each fragment holds its kernels AND its def wrappers / cdef classes, appends
# its public names to __all__, and declares its cdef classes in the matching _kernels/*.pxd.pxi that
# _core.pxd includes.  One fragment per room, so work on one never touches another.
include "_kernels/parse.pxi"
include "_kernels/ncache.pxi"
include "_kernels/bufq.pxi"
include "_kernels/rewrite.pxi"
include "_kernels/ring.pxi"      # AF_PACKET TPACKET_V3 block walk and TX fill
include "_kernels/fib.pxi"       # longest-prefix-match FIB (after ncache.pxi: uses its prefetch declaration)
include "_kernels/node.pxi"      # the forwarding node (after parse, ncache, fib: uses their tables)


# Stands in for the data pointer of an empty buffer (never read: the kernels read n = 0 octets), so no
# kernel sees NULL and `&view[0]` is never taken on an empty view.
cdef uint8_t _EMPTY[1]


# ---------------------------------------------------------------------------------------------------
# Status -> exception, in one place (docs/conventions.md §8).  The messages are word for word those of
# fmipfast.reference; tests compare them.

cdef int _raise_for_status(int status, str name=None, object found=None, object detail=None) except -1:
    """Raise the exception that kernel or wrapper status ``status`` stands for.

    ``name`` is the argument at fault, ``found`` the offending length or value, ``detail`` the expected
    size (ST_WRONG_SIZE), the payload length (ST_BAD_CKSUM_OFFSET) or the octets concerned
    (ST_NOT_FFFE: the EUI-64; ST_IID_NOT_EUI64: the interface identifier).
    """
    if status == ST_WRONG_SIZE:
        raise ValueError(f"{name}: need {detail} octets, got {found}")
    if status == ST_SHORT_MESSAGE:
        raise ValueError(f"{name}: need at least {ICMP6_HDR_LEN} octets, got {found}")
    if status == ST_BAD_LENGTH:
        raise ValueError(f"{name}: {found} octets exceed the 32-bit upper-layer length")
    if status == ST_BAD_NEXT_HEADER:
        raise ValueError(f"next_header must be in 0..255, got {found}")
    if status == ST_BAD_CKSUM_OFFSET:
        raise ValueError(
            f"checksum_offset {found} out of range for a {detail}-octet payload "
            "(need 0 <= offset <= len - 2)"
        )
    if status == ST_BAD_PREFIX_LEN:
        raise ValueError(f"prefix_len must be in 0..128, got {found}")
    if status == ST_READONLY:
        raise TypeError(f"{name}: read-only buffer; icmp6_checksum_fill writes the checksum in place")
    if status == ST_LL_PREFIX_NOT_64:
        raise DerivationError(f"link-local derivation needs prefix size 64, got {found}")
    if status == ST_NOT_FFFE:
        raise DerivationError(
            f"{name}: octets 3-4 are {detail[3]:02X}-{detail[4]:02X}, not FF-FE: not built from a 48-bit MAC"
        )
    if status == ST_IID_TOO_SHORT:
        raise DerivationError(
            f"prefix size {found} leaves a {128 - found}-bit interface identifier, shorter than an EUI-64"
        )
    if status == ST_IID_NOT_EUI64:
        raise DerivationError(
            f"{name}: interface identifier {detail.hex()} is not EUI-64 based (octets 3-4 are "
            f"{detail[3]:02X}-{detail[4]:02X}, not FF-FE; e.g. a privacy or stable IID, RFC 8981/7217): "
            "the MAC cannot be derived, the sender must set M"
        )
    raise SystemError(f"fmipfast._core: unknown kernel status {status}")  # a bug, not bad input


cdef inline int _need(Py_ssize_t found, str name, Py_ssize_t size) except -1:
    if found != size:
        _raise_for_status(ST_WRONG_SIZE, name, found, size)
    return 0


cdef int _int_arg(object value, int status, int low, int high) except? -1:
    """``value`` as a C int in ``low..high``: TypeError for non-integers, else the status's ValueError."""
    value = _index(value)
    if not low <= value <= high:
        _raise_for_status(status, None, value)
    return value


cdef const uint8_t[::1] _octets(object obj) except *:
    """``obj`` as a 1-D C-contiguous octet view, with the reference's exception classes.

    Taking the view directly raises BufferError for a non-contiguous memoryview (its own refusal of a
    contiguous request) where fmipfast.reference raises ValueError, and accepts None; so: TypeError for
    None or an object without the buffer protocol, ValueError for a wrong dimension count, format or
    layout, BufferError never.
    """
    cdef const uint8_t[::1] view
    if obj is None:
        raise TypeError("a bytes-like object is required, not 'NoneType'")
    try:
        view = obj
    except BufferError:
        raise ValueError("Buffer not C contiguous.") from None
    return view


_SIGNED_FORMATS, _UNSIGNED_FORMATS = "bhilqn", "BHILQN"


cdef object _buffer_arg(object value, str name, str kinds, Py_ssize_t itemsize, bint writable=False):
    """Check ``value`` as a 1-D C-contiguous buffer of ``itemsize``-octet integers of ``kinds`` before a
    typed view of it is taken, word for word as fmipfast.reference.wire._array does: TypeError without the
    buffer protocol (None included), ValueError for a wrong dimension count, format or layout (BufferError
    never: a non-contiguous memoryview is a ValueError here too), ValueError for a read-only ``writable``.
    """
    view = memoryview(value)  # TypeError without the buffer protocol
    if view.ndim != 1:
        raise ValueError(f"{name}: Buffer has wrong number of dimensions (expected 1, got {view.ndim})")
    fmt = view.format.lstrip("@=<>!")
    if fmt not in kinds or view.itemsize != itemsize:
        raise _dtype_error(name, kinds, itemsize, view.format)
    if not view.c_contiguous:
        raise ValueError(f"{name}: Buffer not C contiguous.")
    if writable and view.readonly:
        raise ValueError(f"{name}: buffer is read-only")
    return value


cdef inline bint _span_outside(int64_t offset, uint64_t length, uint64_t size) noexcept nogil:
    """True unless ``0 <= offset`` and ``offset + length <= size``.

    Overflow-proof: a negative offset is rejected first, and the sum is never formed (``length > size or
    offset > size - length`` in unsigned arithmetic), so offsets and lengths near 2**63 or 2**64 cannot
    wrap around into range.
    """
    return offset < 0 or length > size or <uint64_t>offset > size - length


@cython.boundscheck(False)  # SAFETY: view[0] is only taken after the shape[0] == 0 guard
cdef inline const uint8_t* _data(const uint8_t[::1] view) noexcept:
    """The first octet of a possibly empty view (a harmless stand-in when it is empty)."""
    if view.shape[0] == 0:
        return _EMPTY
    return &view[0]


# ---------------------------------------------------------------------------------------------------
# Test hooks: the values the compiled side actually uses (tests/test_core_consts.py).

def _struct_sizes():
    """sizeof() of the packed wire structs of includes/wire.pxd, by struct name."""
    return {"eth_hdr": sizeof(eth_hdr), "ip6_hdr": sizeof(ip6_hdr), "icmp6_hdr": sizeof(icmp6_hdr)}


def _wire_consts():
    """Every enum constant of includes/wire.pxd, by name, as compiled (includes/consts.pxi has its own hook,
    ``_consts()``)."""
    return {
        "ETH_HDR_LEN": wire.ETH_HDR_LEN,
        "IP6_HDR_LEN": wire.IP6_HDR_LEN,
        "ICMP6_HDR_LEN": wire.ICMP6_HDR_LEN,
        "SUBOPT_HDR_LEN": wire.SUBOPT_HDR_LEN,
        "SUBOPT_MAX_LEN": wire.SUBOPT_MAX_LEN,
        "LKB_FRAGMENT_MAX": wire.LKB_FRAGMENT_MAX,
        "ADDR_LEN": wire.ADDR_LEN,
        "EUI64_LEN": wire.EUI64_LEN,
        "MAC48_LEN": wire.MAC48_LEN,
        "MAC_VALUE_LEN": wire.MAC_VALUE_LEN,
        "IID_LEN": wire.IID_LEN,
        "ICMP6_CKSUM_OFFSET": wire.ICMP6_CKSUM_OFFSET,
        "IP6_PSEUDO_HDR_LEN": wire.IP6_PSEUDO_HDR_LEN,
    }


# ---------------------------------------------------------------------------------------------------
# Checksums (_kernels/cksum.pxi)

def internet_checksum(data):
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
    cdef const uint8_t[::1] data_v = _octets(data)
    cdef const uint8_t* p = _data(data_v)
    cdef Py_ssize_t n = data_v.shape[0]
    cdef uint16_t out = 0
    cdef int status
    with nogil:
        status = cksum_internet(p, n, &out)
    if status < 0:
        _raise_for_status(status, "data", n)
    return out


def upper_layer_checksum(src, dst, next_header, payload, checksum_offset):
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
    cdef const uint8_t[::1] src_v = _octets(src)
    cdef const uint8_t[::1] dst_v = _octets(dst)
    cdef const uint8_t[::1] payload_v = _octets(payload)
    _need(src_v.shape[0], "src", ADDR_LEN)
    _need(dst_v.shape[0], "dst", ADDR_LEN)
    cdef int nh = _int_arg(next_header, ST_BAD_NEXT_HEADER, 0, 255)
    cdef Py_ssize_t n = payload_v.shape[0]
    if n > <Py_ssize_t>UINT32_MAX:
        _raise_for_status(ST_BAD_LENGTH, "payload", n)
    offset = _index(checksum_offset)
    if not 0 <= offset <= n - 2:
        _raise_for_status(ST_BAD_CKSUM_OFFSET, None, offset, n)
    cdef Py_ssize_t off = offset
    cdef const uint8_t* p = _data(payload_v)
    cdef uint16_t out = 0
    cdef int status
    with nogil:
        status = cksum_upper_layer(&src_v[0], &dst_v[0], nh, p, n, off, &out)
    if status < 0:
        _raise_for_status(status, "payload", n)
    return out


def icmp6_checksum(src, dst, message):
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
    cdef const uint8_t[::1] src_v = _octets(src)
    cdef const uint8_t[::1] dst_v = _octets(dst)
    cdef const uint8_t[::1] message_v = _octets(message)
    _need(src_v.shape[0], "src", ADDR_LEN)
    _need(dst_v.shape[0], "dst", ADDR_LEN)
    cdef Py_ssize_t n = message_v.shape[0]
    cdef const uint8_t* p = _data(message_v)
    cdef uint16_t out = 0
    cdef int status
    with nogil:
        status = cksum_icmp6(&src_v[0], &dst_v[0], p, n, &out)
    if status < 0:
        _raise_for_status(status, "message", n)
    return out


def icmp6_checksum_ok(src, dst, message):
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
    cdef const uint8_t[::1] src_v = _octets(src)
    cdef const uint8_t[::1] dst_v = _octets(dst)
    cdef const uint8_t[::1] message_v = _octets(message)
    _need(src_v.shape[0], "src", ADDR_LEN)
    _need(dst_v.shape[0], "dst", ADDR_LEN)
    cdef Py_ssize_t n = message_v.shape[0]
    cdef const uint8_t* p = _data(message_v)
    cdef int verdict
    with nogil:
        verdict = cksum_icmp6_ok(&src_v[0], &dst_v[0], p, n)
    if verdict < 0:
        _raise_for_status(verdict, "message", n)
    return verdict == 1


def icmp6_checksum_fill(src, dst, buf):
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
    cdef const uint8_t[::1] src_v = _octets(src)
    cdef const uint8_t[::1] dst_v = _octets(dst)
    # Same shape/dtype checks as every other buffer argument first, then writability, before the
    # writable view is taken (Cython would otherwise report a read-only source as a ValueError).
    if buf is None:
        raise TypeError("buf: a bytes-like object is required, not 'NoneType'")
    cdef const uint8_t[::1] checked = _octets(buf)
    cdef Py_buffer probe
    cdef bint readonly
    PyObject_GetBuffer(buf, &probe, PyBUF_SIMPLE)
    try:
        readonly = probe.readonly
    finally:
        PyBuffer_Release(&probe)
    if readonly:
        _raise_for_status(ST_READONLY, "buf")
    _need(src_v.shape[0], "src", ADDR_LEN)
    _need(dst_v.shape[0], "dst", ADDR_LEN)
    cdef uint8_t[::1] message = buf
    cdef Py_ssize_t n = message.shape[0]
    cdef uint8_t* p = <uint8_t*>_data(message)
    cdef uint16_t out = 0
    cdef int status
    with nogil:
        status = cksum_icmp6_fill(&src_v[0], &dst_v[0], p, n, &out)
    if status < 0:
        _raise_for_status(status, "buf", n)
    return out


# ---------------------------------------------------------------------------------------------------
# Derivations (_kernels/derive.pxi)

def ncoa_from_prefix(nar_address, prefix_len, coa):
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
    cdef const uint8_t[::1] nar_address_v = _octets(nar_address)
    cdef const uint8_t[::1] coa_v = _octets(coa)
    _need(nar_address_v.shape[0], "nar_address", ADDR_LEN)
    cdef int plen = _int_arg(prefix_len, ST_BAD_PREFIX_LEN, 0, 128)
    _need(coa_v.shape[0], "coa", ADDR_LEN)
    cdef uint8_t out[ADDR_LEN]
    cdef int status
    with nogil:
        status = derive_ncoa(&nar_address_v[0], plen, &coa_v[0], out)
    if status < 0:
        _raise_for_status(status, None, plen)
    return out[:ADDR_LEN]


def nar_link_local(nar_address, prefix_len):
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
    cdef const uint8_t[::1] nar_address_v = _octets(nar_address)
    _need(nar_address_v.shape[0], "nar_address", ADDR_LEN)
    cdef int plen = _int_arg(prefix_len, ST_BAD_PREFIX_LEN, 0, 128)
    cdef uint8_t out[ADDR_LEN]
    cdef int status
    with nogil:
        status = derive_nar_link_local(&nar_address_v[0], plen, out)
    if status < 0:
        _raise_for_status(status, None, plen)
    return out[:ADDR_LEN]


def link_local_from_mac48(mac6):
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
    cdef const uint8_t[::1] mac6_v = _octets(mac6)
    _need(mac6_v.shape[0], "mac6", MAC48_LEN)
    cdef uint8_t out[ADDR_LEN]
    with nogil:
        derive_link_local_from_mac48(&mac6_v[0], out)
    return out[:ADDR_LEN]


def eui64_from_mac48(mac6):
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
    cdef const uint8_t[::1] mac6_v = _octets(mac6)
    _need(mac6_v.shape[0], "mac6", MAC48_LEN)
    cdef uint8_t out[EUI64_LEN]
    with nogil:
        derive_eui64_from_mac48(&mac6_v[0], out)
    return out[:EUI64_LEN]


def mac48_from_eui64(eui8):
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
    cdef const uint8_t[::1] eui8_v = _octets(eui8)
    _need(eui8_v.shape[0], "eui8", EUI64_LEN)
    cdef uint8_t out[MAC48_LEN]
    cdef int status
    with nogil:
        status = derive_mac48_from_eui64(&eui8_v[0], out)
    if status < 0:
        _raise_for_status(status, "eui8", None, bytes(eui8_v))
    return out[:MAC48_LEN]


def iid_from_eui64(eui8):
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
    cdef const uint8_t[::1] eui8_v = _octets(eui8)
    _need(eui8_v.shape[0], "eui8", EUI64_LEN)
    cdef uint8_t out[EUI64_LEN]
    with nogil:
        derive_flip_ul(&eui8_v[0], out)
    return out[:EUI64_LEN]


def eui64_from_iid(iid8):
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
    cdef const uint8_t[::1] iid8_v = _octets(iid8)
    _need(iid8_v.shape[0], "iid8", EUI64_LEN)
    cdef uint8_t out[EUI64_LEN]
    with nogil:
        derive_flip_ul(&iid8_v[0], out)
    return out[:EUI64_LEN]


def eui64_from_address(address16, prefix_len):
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
    cdef const uint8_t[::1] address16_v = _octets(address16)
    _need(address16_v.shape[0], "address16", ADDR_LEN)
    cdef int plen = _int_arg(prefix_len, ST_BAD_PREFIX_LEN, 0, 128)
    cdef uint8_t out[EUI64_LEN]
    cdef int status
    with nogil:
        status = derive_eui64_from_address(&address16_v[0], plen, out)
    if status < 0:
        _raise_for_status(status, "address16", plen)
    return out[:EUI64_LEN]


def mac48_from_address(address16, prefix_len):
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
    cdef const uint8_t[::1] address16_v = _octets(address16)
    _need(address16_v.shape[0], "address16", ADDR_LEN)
    cdef int plen = _int_arg(prefix_len, ST_BAD_PREFIX_LEN, 0, 128)
    cdef uint8_t out[MAC48_LEN]
    cdef int status
    with nogil:
        status = derive_mac48_from_address(&address16_v[0], plen, out)
    if status < 0:
        _raise_for_status(status, "address16", plen, bytes(address16_v[8:]))
    return out[:MAC48_LEN]

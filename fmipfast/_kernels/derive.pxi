# Address / interface-identifier / MAC derivation kernels (included by _core.pyx; not a module).
#
# docs/design.md §3 on draft-koodli-mobileip-fastv6-02 §5 (Handover Redirect with M / C clear) and §6
# (Handover with M clear); EUI-64 and modified EUI-64 per RFC 4291 §2.5.1 and Appendix A.
# Oracle: fmipfast/reference/derive.py.
#
# Inputs are fixed-size (the wrappers check the sizes): addresses ADDR_LEN, EUI-64s / interface
# identifiers EUI64_LEN, MACs MAC48_LEN octets; outputs are written to caller-provided buffers of the
# documented size.  Each kernel returns ST_OK or a negative ST_* status (_core.pxd).

cdef enum:
    _IID_BITS = 64  # RFC 4291 §2.5.1: unicast interface identifiers are 64 bits
    _UL_BIT = 0x02  # RFC 4291 Appendix A: universal/local bit of EUI-64 octet 0


cdef inline void _link_local_prefix(uint8_t* out16) noexcept nogil:
    """FE80::/64 into out16[0:8] (RFC 4291 §2.5.6)."""
    memset(out16, 0, 8)
    out16[0] = 0xFE
    out16[1] = 0x80


cdef inline bint _is_fffe(const uint8_t* eui8) noexcept nogil:
    """IEEE: an EUI-64 built from a 48-bit MAC has FF FE as octets 3-4."""
    return eui8[3] == 0xFF and eui8[4] == 0xFE


cdef int derive_ncoa(const uint8_t* nar_address, int prefix_len, const uint8_t* coa,
                     uint8_t* out16) noexcept nogil:
    cdef int whole, rest
    cdef uint8_t mask
    # Draft §5, C bit clear: the routing prefix (first prefix_len bits) of the NAR address, prepended to
    # the lower-order bits of the current care-of address.
    if prefix_len < 0 or prefix_len > 128:
        return ST_BAD_PREFIX_LEN
    whole = prefix_len >> 3
    rest = prefix_len & 7
    memcpy(out16, nar_address, <size_t>whole)
    memcpy(out16 + whole, coa + whole, <size_t>(ADDR_LEN - whole))
    if rest:
        mask = <uint8_t>(0xFF << (8 - rest))  # the top `rest` bits of the boundary octet
        out16[whole] = (nar_address[whole] & mask) | (coa[whole] & ~mask)
    return ST_OK


cdef int derive_nar_link_local(const uint8_t* nar_address, int prefix_len, uint8_t* out16) noexcept nogil:
    if prefix_len < 0 or prefix_len > 128:
        return ST_BAD_PREFIX_LEN
    if prefix_len != _IID_BITS:
        return ST_LL_PREFIX_NOT_64  # docs/design.md §3: only prefix size 64 maps onto FE80::/64
    _link_local_prefix(out16)
    memcpy(out16 + 8, nar_address + 8, IID_LEN)
    return ST_OK


cdef int derive_eui64_from_mac48(const uint8_t* mac6, uint8_t* out8) noexcept nogil:
    # docs/design.md §3: FF-FE inserted in the middle, U/L bit untouched (the draft's MAC fields are EUI-64s).
    memcpy(out8, mac6, 3)
    out8[3] = 0xFF
    out8[4] = 0xFE
    memcpy(out8 + 5, mac6 + 3, 3)
    return ST_OK


cdef int derive_flip_ul(const uint8_t* in8, uint8_t* out8) noexcept nogil:
    # RFC 4291 Appendix A: modified EUI-64 = EUI-64 with the U/L bit inverted, and back.
    memcpy(out8, in8, EUI64_LEN)
    out8[0] ^= _UL_BIT
    return ST_OK


cdef int derive_link_local_from_mac48(const uint8_t* mac6, uint8_t* out16) noexcept nogil:
    # RFC 4291 Appendix A: FE80::/64 + modified EUI-64 of the MAC.
    _link_local_prefix(out16)
    derive_eui64_from_mac48(mac6, out16 + 8)
    out16[8] ^= _UL_BIT
    return ST_OK


cdef int derive_mac48_from_eui64(const uint8_t* eui8, uint8_t* out6) noexcept nogil:
    if not _is_fffe(eui8):
        return ST_NOT_FFFE
    memcpy(out6, eui8, 3)
    memcpy(out6 + 3, eui8 + 5, 3)
    return ST_OK


cdef int derive_eui64_from_address(const uint8_t* address16, int prefix_len, uint8_t* out8) noexcept nogil:
    if prefix_len < 0 or prefix_len > 128:
        return ST_BAD_PREFIX_LEN
    if prefix_len > _IID_BITS:
        return ST_IID_TOO_SHORT  # fewer than 64 bits left after the prefix: no EUI-64 in there
    return derive_flip_ul(address16 + 8, out8)


cdef int derive_mac48_from_address(const uint8_t* address16, int prefix_len, uint8_t* out6) noexcept nogil:
    cdef uint8_t eui[EUI64_LEN]
    cdef int status = derive_eui64_from_address(address16, prefix_len, eui)
    if status != ST_OK:
        return status
    if not _is_fffe(eui):
        return ST_IID_NOT_EUI64  # docs/design.md §3: privacy / stable IID (RFC 8981/7217): sender must set M
    return derive_mac48_from_eui64(eui, out6)


__all__ += ["ncoa_from_prefix", "nar_link_local", "link_local_from_mac48", "eui64_from_mac48", "mac48_from_eui64",
            "iid_from_eui64", "eui64_from_iid", "eui64_from_address", "mac48_from_address"]


# ---------------------------------------------------------------------------------------------------
# def wrappers of the scalar derivations: validate, run the kernel without the GIL, map a status to its
# exception

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


# ---------------------------------------------------------------------------------------------------
# Batch derivations: NCoA, NAR link-local and MAC for many mobile nodes in one call.
#
# The kernels loop the scalar kernels above over rows of C-contiguous uint8 [n, width] arrays; the def
# wrappers check shapes and dtypes with _rows (TypeError for a wrong dtype, ValueError for a wrong shape,
# both naming the argument), allocate numpy outputs and run the loop under one `with nogil:`.
# Results equal looping the scalar functions row by row (tests/test_derive_batch.py checks it).

import numpy as np


@cython.boundscheck(False)  # SAFETY: nar/coa/out hold n rows of ADDR_LEN octets (nar_step 0: one row)
cdef int derive_ncoa_batch(const uint8_t* nar, Py_ssize_t nar_step, int prefix_len, const uint8_t* coa,
                           Py_ssize_t n, uint8_t* out) noexcept nogil:
    cdef Py_ssize_t i
    cdef int status
    for i in range(n):
        status = derive_ncoa(nar + i * nar_step, prefix_len, coa + i * ADDR_LEN, out + i * ADDR_LEN)
        if status != ST_OK:
            return status
    return ST_OK


@cython.boundscheck(False)  # SAFETY: nar and out hold n rows of ADDR_LEN octets
cdef int derive_nar_link_local_batch(const uint8_t* nar, Py_ssize_t n, int prefix_len,
                                     uint8_t* out) noexcept nogil:
    cdef Py_ssize_t i
    cdef int status
    for i in range(n):
        status = derive_nar_link_local(nar + i * ADDR_LEN, prefix_len, out + i * ADDR_LEN)
        if status != ST_OK:
            return status
    return ST_OK


@cython.boundscheck(False)  # SAFETY: addresses n x ADDR_LEN, out n x MAC48_LEN, ok n octets
cdef int derive_mac48_from_address_batch(const uint8_t* addresses, Py_ssize_t n, int prefix_len, uint8_t* out,
                                         uint8_t* ok) noexcept nogil:
    """ok[i] = 1 and out row i = the MAC, or ok[i] = 0 and a zero row where the IID is not FF-FE based."""
    cdef Py_ssize_t i
    cdef int status
    if prefix_len < 0 or prefix_len > 128:
        return ST_BAD_PREFIX_LEN
    if prefix_len > _IID_BITS:
        return ST_IID_TOO_SHORT
    for i in range(n):
        status = derive_mac48_from_address(addresses + i * ADDR_LEN, prefix_len, out + i * MAC48_LEN)
        ok[i] = status == ST_OK
        if status != ST_OK:
            memset(out + i * MAC48_LEN, 0, MAC48_LEN)
    return ST_OK


@cython.boundscheck(False)  # SAFETY: macs n x MAC48_LEN, out n x EUI64_LEN
cdef int derive_eui64_from_mac48_batch(const uint8_t* macs, Py_ssize_t n, uint8_t* out) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        derive_eui64_from_mac48(macs + i * MAC48_LEN, out + i * EUI64_LEN)
    return ST_OK


def ncoa_batch(nar_addresses, prefix_len, coas):
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
    nar_arr = _rows(nar_addresses, "nar_addresses", ADDR_LEN, True)
    cdef int plen = _int_arg(prefix_len, ST_BAD_PREFIX_LEN, 0, 128)
    coa_arr = _rows(coas, "coas", ADDR_LEN)
    cdef Py_ssize_t n = coa_arr.shape[0]
    cdef Py_ssize_t step = 0
    if nar_arr.ndim == 2:
        _same_rows(nar_arr.shape[0], "nar_addresses", n)
        step = ADDR_LEN
    out = np.zeros((n, ADDR_LEN), dtype=np.uint8)
    if n == 0:
        return out
    cdef const uint8_t[::1] nar_flat = nar_arr.reshape(-1)
    cdef const uint8_t[:, ::1] coa_v = coa_arr
    cdef uint8_t[:, ::1] out_v = out
    cdef int status
    with nogil:
        status = derive_ncoa_batch(&nar_flat[0], step, plen, &coa_v[0, 0], n, &out_v[0, 0])
    if status < 0:
        _raise_for_status(status, None, plen)
    return out


def nar_link_local_batch(nar_addresses, prefix_len):
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
    arr = _rows(nar_addresses, "nar_addresses", ADDR_LEN)
    cdef int plen = _int_arg(prefix_len, ST_BAD_PREFIX_LEN, 0, 128)
    if plen != _IID_BITS:
        _raise_for_status(ST_LL_PREFIX_NOT_64, None, plen)
    cdef Py_ssize_t n = arr.shape[0]
    out = np.zeros((n, ADDR_LEN), dtype=np.uint8)
    cdef const uint8_t[:, ::1] in_v = arr
    cdef uint8_t[:, ::1] out_v = out
    cdef const uint8_t* src = _rows_data(in_v)
    cdef uint8_t* dst = <uint8_t*>_rows_data(out_v)
    cdef int status
    with nogil:
        status = derive_nar_link_local_batch(src, n, plen, dst)
    if status < 0:
        _raise_for_status(status, None, plen)
    return out


def mac48_from_address_batch(addresses, prefix_len):
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
    arr = _rows(addresses, "addresses", ADDR_LEN)
    cdef int plen = _int_arg(prefix_len, ST_BAD_PREFIX_LEN, 0, 128)
    cdef Py_ssize_t n = arr.shape[0]
    macs = np.zeros((n, MAC48_LEN), dtype=np.uint8)
    ok = np.zeros(n, dtype=np.bool_)
    cdef const uint8_t[:, ::1] in_v = arr
    cdef uint8_t[:, ::1] out_v = macs
    cdef uint8_t[::1] ok_v = ok.view(np.uint8)
    cdef const uint8_t* src = _rows_data(in_v)
    cdef uint8_t* dst = <uint8_t*>_rows_data(out_v)
    cdef uint8_t* okp = <uint8_t*>_data(ok_v)
    cdef int status
    with nogil:
        status = derive_mac48_from_address_batch(src, n, plen, dst, okp)
    if status < 0:
        _raise_for_status(status, "addresses", plen)
    return macs, ok


def eui64_from_mac48_batch(macs):
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
    arr = _rows(macs, "macs", MAC48_LEN)
    cdef Py_ssize_t n = arr.shape[0]
    out = np.zeros((n, EUI64_LEN), dtype=np.uint8)
    cdef const uint8_t[:, ::1] in_v = arr
    cdef uint8_t[:, ::1] out_v = out
    cdef const uint8_t* src = _rows_data(in_v)
    cdef uint8_t* dst = <uint8_t*>_rows_data(out_v)
    with nogil:
        derive_eui64_from_mac48_batch(src, n, dst)
    return out


__all__ += ["ncoa_batch", "nar_link_local_batch", "mac48_from_address_batch", "eui64_from_mac48_batch"]

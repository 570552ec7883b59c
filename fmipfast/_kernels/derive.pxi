# Address / interface-identifier / MAC derivation kernels (included by _core.pyx; not a module).
#
# DESIGN.md §3 on draft-koodli-mobileip-fastv6-02 §5 (Handover Redirect with M / C clear) and §6
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
        return ST_LL_PREFIX_NOT_64  # DESIGN.md §3: only prefix size 64 maps onto FE80::/64
    _link_local_prefix(out16)
    memcpy(out16 + 8, nar_address + 8, IID_LEN)
    return ST_OK


cdef int derive_eui64_from_mac48(const uint8_t* mac6, uint8_t* out8) noexcept nogil:
    # DESIGN.md §3: FF-FE inserted in the middle, U/L bit untouched (the draft's MAC fields are EUI-64s).
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
        return ST_IID_NOT_EUI64  # DESIGN.md §3: privacy / stable IID (RFC 8981/7217): sender must set M
    return derive_mac48_from_eui64(eui, out6)

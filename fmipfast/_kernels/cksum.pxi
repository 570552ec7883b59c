# Internet checksum kernels (included by _core.pyx; not a module).
#
# RFC 1071 one's-complement sum, the RFC 8200 §8.1 IPv6 pseudo-header, the RFC 4443 §2.3 ICMPv6
# checksum.  Oracle: fmipfast/reference/cksum.py.
#
# Speed: the data is summed as native-order 32-bit words (read with memcpy, so any alignment is fine)
# into a 64-bit accumulator, and folded to 16 bits and byte-swapped once at the end.  RFC 1071 §2(B)
# (byte-order independence) makes that equal to the sum of big-endian 16-bit words, and §2(C)
# (parallel summation) lets the words be wider than 16 bits.  The accumulator cannot overflow: it
# is folded every _CKSUM_CHUNK octets, far below 2**32 words.
#
# Every kernel is `noexcept nogil`, takes raw pointers and lengths, and returns ST_OK (0), a
# non-negative verdict, or a negative ST_* status from _core.pxd; the def wrappers at the end map
# statuses to exceptions through _raise_for_status (_core.pyx).

cdef enum:
    _CKSUM_CHUNK = 1 << 30  # octets summed between two 64 -> 33-bit folds (2**28 words, no overflow)


cdef inline uint64_t _sum_native(const uint8_t* p, Py_ssize_t n, uint64_t acc) noexcept nogil:
    """Add the octets p[0:n] to acc as native-order 32-bit words, a 1-3 octet tail zero-padded.

    p must sit at an even offset from the start of the checksummed data, so each 32-bit word holds two
    whole 16-bit words of it (RFC 1071 §2(B)).  Returns acc folded to at most 33 bits.
    """
    cdef uint32_t w
    cdef Py_ssize_t i = 0, stop, body
    if FMIPFAST_DEBUG:
        FMIPFAST_ASSERT(n >= 0)
    while i < n:
        stop = n if n - i <= _CKSUM_CHUNK else i + _CKSUM_CHUNK
        body = i + ((stop - i) & ~(<Py_ssize_t>3))
        while i < body:
            memcpy(&w, p + i, 4)
            acc += w
            i += 4
        if i < stop:
            # 1-3 trailing octets: zero-padding in memory order is RFC 1071's pad "with a zero octet".
            w = 0
            memcpy(&w, p + i, <size_t>(stop - i))
            acc += w
            i = stop
        acc = (acc & UINT32_MAX) + (acc >> 32)
    return acc


cdef inline uint16_t _fold_native(uint64_t acc) noexcept nogil:
    """RFC 1071 end-around-carry fold of a native-order sum to 16 bits, returned as the big-endian value."""
    acc = (acc & UINT32_MAX) + (acc >> 32)
    acc = (acc & UINT32_MAX) + (acc >> 32)
    acc = (acc & 0xFFFF) + (acc >> 16)
    acc = (acc & 0xFFFF) + (acc >> 16)
    # The native sum of byte pairs is the big-endian sum with its two octets swapped on little-endian
    # hosts (RFC 1071 §2(B)); ntohs undoes exactly that and is a no-op on big-endian hosts.
    return ntohs(<uint16_t>acc)


cdef inline uint16_t _fold16(uint32_t s) noexcept nogil:
    """End-around-carry fold of a sum of at most two 16-bit values (RFC 1071 §1)."""
    s = (s & 0xFFFF) + (s >> 16)
    return <uint16_t>((s & 0xFFFF) + (s >> 16))


cdef inline uint64_t _pseudo_native(const uint8_t* src, const uint8_t* dst, uint32_t length,
                                    uint8_t next_header) noexcept nogil:
    """Native-order sum of the RFC 8200 §8.1 pseudo-header (src, dst, 32-bit length, 3 zeros, next header)."""
    cdef uint64_t acc = _sum_native(src, ADDR_LEN, 0)
    acc = _sum_native(dst, ADDR_LEN, acc)
    acc += htonl(length)  # the length field as it sits in memory, read as a native word
    acc += htonl(next_header)  # zero(3) next header(1), likewise
    return acc


cdef int cksum_internet(const uint8_t* data, Py_ssize_t n, uint16_t* out) noexcept nogil:
    if n < 0:
        return ST_BAD_LENGTH
    out[0] = ~_fold_native(_sum_native(data, n, 0)) & 0xFFFF
    return ST_OK


cdef int cksum_upper_layer(const uint8_t* src, const uint8_t* dst, int next_header, const uint8_t* payload,
                           Py_ssize_t n, Py_ssize_t checksum_offset, uint16_t* out) noexcept nogil:
    cdef uint16_t total, field, cksum
    if next_header < 0 or next_header > 255:
        return ST_BAD_NEXT_HEADER
    if n < 0 or n > <Py_ssize_t>UINT32_MAX:
        return ST_BAD_LENGTH  # RFC 8200 §8.1: the length must fit the 32-bit pseudo-header field
    if checksum_offset < 0 or checksum_offset > n - 2:
        return ST_BAD_CKSUM_OFFSET
    total = _fold_native(_sum_native(payload, n, _pseudo_native(src, dst, <uint32_t>n, <uint8_t>next_header)))
    # The checksum field counts as zero: take its contribution back out.  At an even offset its octets
    # are one big-endian word; at an odd offset they are the low octet of one word and the high octet
    # of the next.  Subtracting in one's complement is adding the complement; the result is the same
    # non-zero residue as summing with the field zeroed, because the pseudo-header's length is >= 2.
    if checksum_offset & 1:
        field = (payload[checksum_offset + 1] << 8) | payload[checksum_offset]
    else:
        field = load_be16(payload + checksum_offset)
    cksum = ~_fold16(<uint32_t>total + (~field & 0xFFFF)) & 0xFFFF
    if next_header == NH_UDP and cksum == 0:
        cksum = 0xFFFF  # RFC 8200 §8.1: UDP sends a computed zero as all ones (zero means "no checksum")
    out[0] = cksum
    return ST_OK


cdef int cksum_icmp6(const uint8_t* src, const uint8_t* dst, const uint8_t* message, Py_ssize_t n,
                     uint16_t* out) noexcept nogil:
    if n < ICMP6_HDR_LEN:
        return ST_SHORT_MESSAGE
    return cksum_upper_layer(src, dst, NH_ICMPV6, message, n, ICMP6_CKSUM_OFFSET, out)


cdef int cksum_icmp6_ok(const uint8_t* src, const uint8_t* dst, const uint8_t* message,
                        Py_ssize_t n) noexcept nogil:
    if n < ICMP6_HDR_LEN:
        return ST_SHORT_MESSAGE
    if n > <Py_ssize_t>UINT32_MAX:
        return ST_BAD_LENGTH
    # RFC 4443 §2.3 / RFC 1071 §2(A): the sum over pseudo-header + message, checksum included, must be
    # all ones.  A stored 0x0000 and 0xFFFF are the two one's-complement zeros and fold alike.
    return _fold_native(_sum_native(message, n, _pseudo_native(src, dst, <uint32_t>n, NH_ICMPV6))) == 0xFFFF


cdef int cksum_icmp6_fill(const uint8_t* src, const uint8_t* dst, uint8_t* message, Py_ssize_t n,
                          uint16_t* out) noexcept nogil:
    cdef int status = cksum_icmp6(src, dst, message, n, out)
    if status == ST_OK:
        store_be16(message + ICMP6_CKSUM_OFFSET, out[0])
    return status


__all__ += ["internet_checksum", "upper_layer_checksum", "icmp6_checksum", "icmp6_checksum_ok",
            "icmp6_checksum_fill"]


# ---------------------------------------------------------------------------------------------------
# def wrappers: validate, run the kernel without the GIL, map a status to its exception

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

# Rewrite kernels (included by _core.pyx): L2 rewrite + hop-limit decrement, IPv6-in-IPv6 encapsulation
# and decapsulation.
#
# docs/design.md §5 verdicts FORWARD (RFC 8200 §3 hop limit; RFC 4443 §3.3 Time Exceeded is the engine's),
# TUNNEL (RFC 2473 §3-§5, outer source PAR, outer destination NAR as RFC 5568; §7 tunnel MTU) and DECAP
# (RFC 2473 §3.2; the inner packet goes back to be classified, as VPP re-injects into ip6-input).
# Oracle: fmipfast/reference/rewrite.py (its module docstring defines sel, the statuses and the
# zero-length output entries).  Stateless: safe from any thread; each call releases the GIL for its
# loops.  Batch-argument helpers (_bq_*) live in bufq.pxi.
#
# Caller-writable memory: every index-like argument (offsets, lengths, l3/l4 offsets, sel) is copied once
# by _bq_array(copy=True) before it is checked; the nogil passes read only those private copies, so a thread
# writing the caller's arrays meanwhile cannot turn a checked frame into an out-of-bounds read or write.
# Arena octets are read, never trusted for a bound twice: pass 2 writes exactly the length pass 1 checked.

__all__ += ["forward_rewrite", "encapsulate", "decapsulate"]

cdef enum:
    _RW_MIN_MTU = 1280   # RFC 8200 §5
    _RW_MAX_MTU = 65535
    _RW_HLIM = 7         # RFC 8200 §3: Hop Limit is octet 7 of the IPv6 header
    _RW_PLEN = 4         # Payload Length, octets 4-5


# ---- kernels ---------------------------------------------------------------------------------------------

cdef inline uint8_t _rw_ip6(const uint8_t* p, Py_ssize_t avail, Py_ssize_t* total) noexcept nogil:
    """Status of the IPv6 packet at p with ``avail`` octets readable; its length in *total."""
    if avail < IP6_HDR_LEN:
        return DROP_IP6_TRUNCATED
    if p[0] >> 4 != 6:
        return DROP_IP6_BAD_VERSION
    total[0] = IP6_HDR_LEN + load_be16(p + _RW_PLEN)
    if total[0] > avail:
        return DROP_IP6_BAD_PAYLOAD_LENGTH
    return DROP_NONE


cdef uint8_t rw_forward(uint8_t* frame, Py_ssize_t l3, const uint8_t* dst_mac,
                        const uint8_t* src_mac) noexcept nogil:
    cdef uint8_t* hop = frame + l3 + _RW_HLIM
    if FMIPFAST_DEBUG:
        FMIPFAST_ASSERT(l3 >= ETH_HDR_LEN)
    if hop[0] <= 1:
        return DROP_HOP_LIMIT_EXCEEDED  # RFC 8200 §3 / RFC 4443 §3.3: left as it was
    memcpy(frame, dst_mac, MAC48_LEN)
    memcpy(frame + MAC48_LEN, src_mac, MAC48_LEN)
    hop[0] -= 1
    return DROP_NONE


cdef uint8_t rw_encap_check(const uint8_t* frame, Py_ssize_t length, Py_ssize_t l3, Py_ssize_t mtu,
                            Py_ssize_t* inner_len) noexcept nogil:
    cdef uint8_t st
    if length - l3 < IP6_HDR_LEN:
        return DROP_IP6_TRUNCATED
    st = _rw_ip6(frame + l3, length - l3, inner_len)
    if st != DROP_NONE:
        return st
    if frame[l3 + _RW_HLIM] <= 1:
        return DROP_HOP_LIMIT_EXCEEDED  # RFC 2473 §3.1: the entry point forwards the inner packet first
    if IP6_HDR_LEN + inner_len[0] > mtu:
        return DROP_FRAME_TOO_BIG  # RFC 2473 §7: Packet Too Big is due
    return DROP_NONE


cdef void rw_encap_write(const uint8_t* inner, Py_ssize_t inner_len, const uint8_t* dst_mac,
                         const uint8_t* src_mac, const uint8_t* outer_src, const uint8_t* outer_dst,
                         uint8_t hop_limit, uint8_t* out) noexcept nogil:
    cdef uint8_t* ip = out + ETH_HDR_LEN
    cdef uint8_t tclass = ((inner[0] & 0x0F) << 4) | (inner[1] >> 4)
    memcpy(out, dst_mac, MAC48_LEN)
    memcpy(out + MAC48_LEN, src_mac, MAC48_LEN)
    store_be16(out + 2 * MAC48_LEN, ETYPE_IPV6)
    # RFC 2473 §5 / RFC 8200 §3: version 6, traffic class from the inner packet, flow label 0.
    ip[0] = 0x60 | (tclass >> 4)
    ip[1] = (tclass & 0x0F) << 4
    ip[2] = 0
    ip[3] = 0
    store_be16(ip + _RW_PLEN, <uint16_t>inner_len)
    ip[6] = NH_IPV6
    ip[_RW_HLIM] = hop_limit
    memcpy(ip + 8, outer_src, ADDR_LEN)
    memcpy(ip + 8 + ADDR_LEN, outer_dst, ADDR_LEN)
    memcpy(ip + IP6_HDR_LEN, inner, <size_t>inner_len)
    ip[IP6_HDR_LEN + _RW_HLIM] -= 1  # the inner packet was forwarded (checked > 1 by rw_encap_check)


cdef uint8_t rw_decap_check(const uint8_t* frame, Py_ssize_t length, Py_ssize_t l3, Py_ssize_t l4,
                            Py_ssize_t* inner_len) noexcept nogil:
    cdef Py_ssize_t outer_end
    if length - l3 < IP6_HDR_LEN:
        return DROP_IP6_TRUNCATED
    outer_end = l3 + IP6_HDR_LEN + load_be16(frame + l3 + _RW_PLEN)
    if outer_end > length:
        return DROP_IP6_BAD_PAYLOAD_LENGTH
    # RFC 2473 §3.2: the inner packet is the outer packet's payload, after any extension headers.
    if outer_end - l4 < IP6_HDR_LEN:
        return DROP_IP6_TRUNCATED
    return _rw_ip6(frame + l4, outer_end - l4, inner_len)


cdef void rw_decap_write(const uint8_t* inner, Py_ssize_t inner_len, uint8_t* out) noexcept nogil:
    memset(out, 0, 2 * MAC48_LEN)
    store_be16(out + 2 * MAC48_LEN, ETYPE_IPV6)
    memcpy(out + ETH_HDR_LEN, inner, <size_t>inner_len)


# ---- wrappers --------------------------------------------------------------------------------------------

cdef Py_ssize_t _rw_bad_sel(const int64_t* sel, Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    """Index j of the first sel[j] outside 0..n-1, or -1."""
    cdef Py_ssize_t j
    for j in range(m):
        if sel[j] < 0 or sel[j] >= n:
            return j
    return -1


cdef object _rw_sel(object sel, Py_ssize_t n):
    sel_a = _bq_array(sel, "sel", _np.int64, 1, False, True)  # private: checked here, used by the kernels
    cdef const int64_t[::1] s = sel_a
    cdef Py_ssize_t m = s.shape[0], bad = -1
    if m:
        with nogil:  # selections can be long: check them without the GIL
            bad = _rw_bad_sel(&s[0], m, n)
    if bad >= 0:
        raise ValueError(f"sel[{bad}]: frame index {s[bad]} outside 0..{n - 1}")
    return sel_a


cdef object _rw_rows(object obj, str name, Py_ssize_t m, Py_ssize_t width):
    """Shape (width,) for every frame or (m, width): returned as a (1 or m, width) array."""
    arr = _bq_array(obj, name, _np.uint8, None)
    if arr.shape == (width,):
        return arr.reshape(1, width)
    if arr.shape == (m, width):
        return arr
    raise ValueError(f"{name}: need shape ({width},) or ({m}, {width}), got {arr.shape}")


cdef inline Py_ssize_t _rw_stride(const uint8_t[:, ::1] rows) noexcept:
    return rows.shape[1] if rows.shape[0] > 1 else 0


def forward_rewrite(arena, offsets, l3_offsets, sel, dst_macs, src_mac):
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
    arena_a = _bq_array(arena, "arena", _np.uint8, 1, True)
    offsets_a = _bq_array(offsets, "offsets", _np.int64, 1, False, True)
    l3_a = _bq_array(l3_offsets, "l3_offsets", _np.uint32, 1, False, True)
    cdef Py_ssize_t n = offsets_a.shape[0]
    _bq_count(l3_a, "l3_offsets", n, "offsets")
    sel_a = _rw_sel(sel, n)
    cdef Py_ssize_t m = sel_a.shape[0]
    dst_a = _rw_rows(dst_macs, "dst_macs", m, MAC48_LEN)
    src_a = _rw_rows(src_mac, "src_mac", m, MAC48_LEN)
    status = _np.zeros(m, dtype=_np.uint8)
    if m == 0:
        return status
    cdef uint8_t[::1] ar = arena_a
    cdef const int64_t[::1] off = offsets_a
    cdef const uint32_t[::1] l3 = l3_a
    cdef const int64_t[::1] s = sel_a
    cdef const uint8_t[:, ::1] dst = dst_a
    cdef const uint8_t[:, ::1] src = src_a
    cdef uint8_t[::1] st = status
    cdef Py_ssize_t size = ar.shape[0], dstride = _rw_stride(dst), sstride = _rw_stride(src)
    cdef Py_ssize_t j, i, bad = -1
    cdef uint8_t* ap = <uint8_t*>_data(ar)
    cdef const int64_t* offp = &off[0]
    cdef const uint32_t* l3p = &l3[0]
    cdef const int64_t* selp = &s[0]
    cdef const uint8_t* dp = &dst[0, 0]
    cdef const uint8_t* sp = &src[0, 0]
    cdef uint8_t* stp = &st[0]
    with nogil:
        for j in range(m):
            i = selp[j]
            if l3p[i] < ETH_HDR_LEN or _span_outside(offp[i], <uint64_t>l3p[i] + IP6_HDR_LEN, <uint64_t>size):
                bad = i
                break
        if bad < 0:
            for j in range(m):
                i = selp[j]
                stp[j] = rw_forward(ap + offp[i], l3p[i], dp + j * dstride, sp + j * sstride)
    if bad >= 0:
        raise ValueError(
            f"frame {bad}: offset {off[bad]}, l3_offset {l3[bad]}: Ethernet + IPv6 headers need l3_offset >= 14 "
            f"and offset + l3_offset + 40 <= {size} (the arena)"
        )
    return status


def encapsulate(arena, offsets, lengths, l3_offsets, sel, outer_src, outer_dst, dst_mac, src_mac, *,
                hop_limit=64, mtu=1500):
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
    arena_a = _bq_array(arena, "arena", _np.uint8)
    offsets_a = _bq_array(offsets, "offsets", _np.int64, 1, False, True)
    lengths_a = _bq_array(lengths, "lengths", _np.uint32, 1, False, True)
    cdef Py_ssize_t n = offsets_a.shape[0]
    _bq_count(lengths_a, "lengths", n, "offsets")
    l3_a = _bq_array(l3_offsets, "l3_offsets", _np.uint32, 1, False, True)
    _bq_count(l3_a, "l3_offsets", n, "offsets")
    sel_a = _rw_sel(sel, n)
    cdef Py_ssize_t m = sel_a.shape[0]
    srcs_a = _rw_rows(outer_src, "outer_src", m, ADDR_LEN)
    dsts_a = _rw_rows(outer_dst, "outer_dst", m, ADDR_LEN)
    dmacs_a = _rw_rows(dst_mac, "dst_mac", m, MAC48_LEN)
    smacs_a = _rw_rows(src_mac, "src_mac", m, MAC48_LEN)
    cdef uint8_t hlim = <uint8_t>_bq_int(hop_limit, "hop_limit", 1, 255)
    cdef Py_ssize_t tunnel_mtu = _bq_int(mtu, "mtu", _RW_MIN_MTU, _RW_MAX_MTU)
    cdef const uint8_t[::1] ar = arena_a
    cdef const int64_t[::1] off = offsets_a
    cdef const uint32_t[::1] ln = lengths_a
    cdef Py_ssize_t size = ar.shape[0]
    cdef Py_ssize_t bad = -1
    if n:
        with nogil:
            bad = _bq_bad_frame(size, &off[0], &ln[0], n)
    if bad >= 0:
        _bq_raise_bad_frame(bad, size, off, ln)
    status = _np.zeros(m, dtype=_np.uint8)
    out_offsets = _np.zeros(m, dtype=_np.int64)
    out_lengths = _np.zeros(m, dtype=_np.uint32)
    if m == 0:
        return _np.zeros(0, dtype=_np.uint8), out_offsets, out_lengths, status
    cdef const uint32_t[::1] l3 = l3_a
    cdef const int64_t[::1] s = sel_a
    cdef const uint8_t[:, ::1] srcs = srcs_a
    cdef const uint8_t[:, ::1] dsts = dsts_a
    cdef const uint8_t[:, ::1] dmacs = dmacs_a
    cdef const uint8_t[:, ::1] smacs = smacs_a
    cdef uint8_t[::1] st = status
    cdef int64_t[::1] oo = out_offsets
    cdef uint32_t[::1] ol = out_lengths
    cdef const uint8_t* ap = _data(ar)
    cdef const int64_t* offp = &off[0]
    cdef const uint32_t* lnp = &ln[0]
    cdef const uint32_t* l3p = &l3[0]
    cdef const int64_t* selp = &s[0]
    cdef uint8_t* stp = &st[0]
    cdef int64_t* oop = &oo[0]
    cdef uint32_t* olp = &ol[0]
    cdef Py_ssize_t j, i, inner = 0, total = 0
    # Pass 1: statuses and sizes.
    with nogil:
        for j in range(m):
            i = selp[j]
            stp[j] = rw_encap_check(ap + offp[i], lnp[i], l3p[i], tunnel_mtu, &inner)
            oop[j] = total
            if stp[j] == DROP_NONE:
                olp[j] = <uint32_t>(ETH_HDR_LEN + IP6_HDR_LEN + inner)
                total += olp[j]
    out = _np.empty(total, dtype=_np.uint8)
    if total == 0:
        return out, out_offsets, out_lengths, status
    cdef uint8_t[::1] o = out
    cdef uint8_t* op = &o[0]
    cdef const uint8_t* srcp = &srcs[0, 0]
    cdef const uint8_t* dstp = &dsts[0, 0]
    cdef const uint8_t* dmp = &dmacs[0, 0]
    cdef const uint8_t* smp = &smacs[0, 0]
    cdef Py_ssize_t srs = _rw_stride(srcs), dss = _rw_stride(dsts)
    cdef Py_ssize_t dms = _rw_stride(dmacs), sms = _rw_stride(smacs)
    # Pass 2: write the tunnel frames.
    with nogil:
        for j in range(m):
            if stp[j] != DROP_NONE:
                continue
            i = selp[j]
            rw_encap_write(ap + offp[i] + l3p[i], olp[j] - ETH_HDR_LEN - IP6_HDR_LEN, dmp + j * dms,
                           smp + j * sms, srcp + j * srs, dstp + j * dss, hlim, op + oop[j])
    return out, out_offsets, out_lengths, status


def decapsulate(arena, offsets, lengths, l3_offsets, l4_offsets, sel):
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
    arena_a = _bq_array(arena, "arena", _np.uint8)
    offsets_a = _bq_array(offsets, "offsets", _np.int64, 1, False, True)
    lengths_a = _bq_array(lengths, "lengths", _np.uint32, 1, False, True)
    cdef Py_ssize_t n = offsets_a.shape[0]
    _bq_count(lengths_a, "lengths", n, "offsets")
    l3_a = _bq_array(l3_offsets, "l3_offsets", _np.uint32, 1, False, True)
    _bq_count(l3_a, "l3_offsets", n, "offsets")
    l4_a = _bq_array(l4_offsets, "l4_offsets", _np.uint32, 1, False, True)
    _bq_count(l4_a, "l4_offsets", n, "offsets")
    sel_a = _rw_sel(sel, n)
    cdef Py_ssize_t m = sel_a.shape[0]
    cdef const uint8_t[::1] ar = arena_a
    cdef const int64_t[::1] off = offsets_a
    cdef const uint32_t[::1] ln = lengths_a
    cdef Py_ssize_t size = ar.shape[0]
    cdef Py_ssize_t bad = -1
    if n:
        with nogil:
            bad = _bq_bad_frame(size, &off[0], &ln[0], n)
    if bad >= 0:
        _bq_raise_bad_frame(bad, size, off, ln)
    status = _np.zeros(m, dtype=_np.uint8)
    out_offsets = _np.zeros(m, dtype=_np.int64)
    out_lengths = _np.zeros(m, dtype=_np.uint32)
    if m == 0:
        return _np.zeros(0, dtype=_np.uint8), out_offsets, out_lengths, status
    cdef const uint32_t[::1] l3 = l3_a
    cdef const uint32_t[::1] l4 = l4_a
    cdef const int64_t[::1] s = sel_a
    cdef uint8_t[::1] st = status
    cdef int64_t[::1] oo = out_offsets
    cdef uint32_t[::1] ol = out_lengths
    cdef const uint8_t* ap = _data(ar)
    cdef const int64_t* offp = &off[0]
    cdef const uint32_t* lnp = &ln[0]
    cdef const uint32_t* l3p = &l3[0]
    cdef const uint32_t* l4p = &l4[0]
    cdef const int64_t* selp = &s[0]
    cdef uint8_t* stp = &st[0]
    cdef int64_t* oop = &oo[0]
    cdef uint32_t* olp = &ol[0]
    cdef Py_ssize_t j, i, inner = 0, total = 0
    bad = -1
    # Pass 1: statuses and sizes.
    with nogil:
        for j in range(m):
            i = selp[j]
            if <int64_t>l4p[i] < <int64_t>l3p[i] + IP6_HDR_LEN:
                bad = i
                break
        if bad < 0:
            for j in range(m):
                i = selp[j]
                stp[j] = rw_decap_check(ap + offp[i], lnp[i], l3p[i], l4p[i], &inner)
                oop[j] = total
                if stp[j] == DROP_NONE:
                    olp[j] = <uint32_t>(ETH_HDR_LEN + inner)
                    total += olp[j]
    if bad >= 0:
        raise ValueError(f"frame {bad}: l4_offset {l4[bad]} is inside the outer IPv6 header "
                         f"(l3_offset {l3[bad]} + 40)")
    out = _np.empty(total, dtype=_np.uint8)
    if total == 0:
        return out, out_offsets, out_lengths, status
    cdef uint8_t[::1] o = out
    cdef uint8_t* op = &o[0]
    # Pass 2: write the frames.
    with nogil:
        for j in range(m):
            if stp[j] != DROP_NONE:
                continue
            i = selp[j]
            rw_decap_write(ap + offp[i] + l4p[i], olp[j] - ETH_HDR_LEN, op + oop[j])
    return out, out_offsets, out_lengths, status

# AF_PACKET TPACKET_V3 ring kernels (included by _core.pyx; not a module).  Oracle: fmipfast/reference/ring.py.
#
# RX: a block the kernel handed over (block_status & TP_STATUS_USER, read with acquire ordering) is walked
# frame by frame through tp_next_offset.  The walk trusts nothing: the descriptor's offset_to_first_pkt and
# blk_len, every tp_next_offset, tp_mac and tp_snaplen are checked against the block before a frame is
# reported; the first bad one ends the walk (its frame and the rest of the block are counted as dropped:
# "partial-frame drop").  Frames are reported as offsets into the ring mapping itself, so classify() reads
# them in place (zero copy); the caller releases the block (release ordering) when it is done with them.
#
# TX: frames are copied into TP_STATUS_AVAILABLE slots of the TX ring at the data offset the kernel expects
# (tpacket_parse_header without PACKET_TX_HAS_OFF) and marked TP_STATUS_SEND_REQUEST; one send() flushes.

from libc.stdint cimport int64_t

from fmipfast.includes.linux cimport (
    ETH_P_ALL,
    FMIPFAST_TX_DATA_OFF,
    PACKET_AUXDATA,
    PACKET_FANOUT,
    PACKET_FANOUT_CPU,
    PACKET_FANOUT_FLAG_DEFRAG,
    PACKET_FANOUT_HASH,
    PACKET_FANOUT_LB,
    PACKET_FANOUT_QM,
    PACKET_FANOUT_RND,
    PACKET_FANOUT_ROLLOVER,
    PACKET_IGNORE_OUTGOING,
    PACKET_LOSS,
    PACKET_OUTGOING,
    PACKET_QDISC_BYPASS,
    PACKET_RX_RING,
    PACKET_STATISTICS,
    PACKET_TX_RING,
    PACKET_VERSION,
    SCM_TIMESTAMPNS,
    SO_ATTACH_FILTER,
    SO_TIMESTAMPNS,
    SOL_PACKET,
    TP_FT_REQ_FILL_RXHASH,
    TP_STATUS_AVAILABLE,
    TP_STATUS_CSUMNOTREADY,
    TP_STATUS_KERNEL,
    TP_STATUS_LOSING,
    TP_STATUS_SEND_REQUEST,
    TP_STATUS_USER,
    TP_STATUS_VLAN_VALID,
    TPACKET_ALIGNMENT,
    TPACKET_V2,
    TPACKET_V3,
    tpacket2_hdr,
    tpacket3_hdr,
    tpacket_block_desc,
)

import numpy as _np

import fmipfast.reference.ring as _ring_ref

cdef extern from *:
    """
    #include <stddef.h>
    #include <stdint.h>
    #include <string.h>
    #include <linux/if_packet.h>
    #define FMIP_RING_BLOCK_STATUS_OFF offsetof(struct tpacket_block_desc, hdr.bh1.block_status)
    #define FMIP_RING_TP_NEXT_OFF offsetof(struct tpacket3_hdr, tp_next_offset)
    #define FMIP_RING_TP_SNAPLEN_OFF offsetof(struct tpacket3_hdr, tp_snaplen)
    #define FMIP_RING_TP_LEN_OFF offsetof(struct tpacket3_hdr, tp_len)
    #define FMIP_RING_TP_STATUS_OFF offsetof(struct tpacket3_hdr, tp_status)
    #define FMIP_RING_TP2_STATUS_OFF offsetof(struct tpacket2_hdr, tp_status)
    /* A status word at any address: the atomic acquire load / release store where it is 4-aligned (always,
       in a real mmap'ed ring), else a plain copy plus the matching fence.  The wrappers accept any buffer
       and any offset inside it, as the reference does, and a misaligned atomic or struct access is UB. */
    static inline uint32_t fmip_ring_load_acquire_at(const uint8_t *p) {
        uint32_t v;
        if (((uintptr_t)p & 3u) == 0)
            return __atomic_load_n((const uint32_t *)(const void *)p, __ATOMIC_ACQUIRE);
        memcpy(&v, p, sizeof v);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        return v;
    }
    static inline void fmip_ring_store_release_at(uint8_t *p, uint32_t v) {
        if (((uintptr_t)p & 3u) == 0) {
            __atomic_store_n((uint32_t *)(void *)p, v, __ATOMIC_RELEASE);
            return;
        }
        __atomic_thread_fence(__ATOMIC_RELEASE);
        memcpy(p, &v, sizeof v);
    }
    static inline void fmip_ring_store_u32_at(uint8_t *p, uint32_t v) { memcpy(p, &v, sizeof v); }
    """
    enum:
        FMIP_RING_BLOCK_STATUS_OFF
        FMIP_RING_TP_NEXT_OFF
        FMIP_RING_TP_SNAPLEN_OFF
        FMIP_RING_TP_LEN_OFF
        FMIP_RING_TP_STATUS_OFF
        FMIP_RING_TP2_STATUS_OFF
    uint32_t fmip_ring_load_acquire_at(const uint8_t* p) noexcept nogil
    void fmip_ring_store_release_at(uint8_t* p, uint32_t v) noexcept nogil
    void fmip_ring_store_u32_at(uint8_t* p, uint32_t v) noexcept nogil

cdef inline bint ring_tx_put(uint8_t* slot, const uint8_t* frame, uint32_t length) noexcept nogil:
    """Queue one frame in a TPACKET_V3 TX slot (its data at FMIPFAST_TX_DATA_OFF; the caller checked that it
    fits): False, writing nothing, while the kernel still owns the slot (the ring is full).  The status word
    is the kernel's: read once (acquire), and the slot handed over with a release store after its fields."""
    if fmip_ring_load_acquire_at(slot + FMIP_RING_TP_STATUS_OFF) != TP_STATUS_AVAILABLE:
        return False
    memcpy(slot + FMIPFAST_TX_DATA_OFF, frame, length)
    fmip_ring_store_u32_at(slot + FMIP_RING_TP_LEN_OFF, length)
    fmip_ring_store_u32_at(slot + FMIP_RING_TP_SNAPLEN_OFF, length)
    fmip_ring_store_u32_at(slot + FMIP_RING_TP_NEXT_OFF, 0)
    fmip_ring_store_release_at(slot + FMIP_RING_TP_STATUS_OFF, TP_STATUS_SEND_REQUEST)
    return True


cdef enum:
    RING_WALK_OK = 0
    V3_ALIGNMENT = 8            # net/packet/af_packet.c: frames in a V3 block are 8-aligned
    RING_BAD_FIRST_OFFSET = 1   # offset_to_first_pkt outside the block
    RING_BAD_BLK_LEN = 2        # blk_len beyond the block size
    RING_BAD_NEXT_OFFSET = 3    # tp_next_offset zero/not 8-aligned/past blk_len before the last frame
    RING_BAD_FRAME = 4          # tp_mac + tp_snaplen past blk_len, or header past blk_len

__all__ += ["ring_walk_block", "ring_block_status", "ring_release_block", "ring_tx_fill", "ring_walk_frames",
            "ring_release_frames"]

#: Names of the walk's error codes (index = code), as reported by ring_walk_block.
RING_WALK_ERRORS = ("ok", "bad_first_offset", "bad_blk_len", "bad_next_offset", "bad_frame")


cdef enum:
    _RING_PREFETCH_AHEAD = 12  # frames ahead the walk fetches (see _ring_walk)

cdef Py_ssize_t _ring_walk(const uint8_t* block, Py_ssize_t block_size, Py_ssize_t base,
                           int64_t* offsets, uint32_t* lengths, uint32_t* status, int64_t* ts_ns,
                           uint32_t* vlan, Py_ssize_t max_frames, int* error,
                           Py_ssize_t* announced, Py_ssize_t* csum_not_ready) noexcept nogil:
    """Walk one TPACKET_V3 block; return the number of valid frames written (<= max_frames), and in
    ``csum_not_ready`` how many of them carry TP_STATUS_CSUMNOTREADY.

    The block is shared with the kernel (and any thread): the descriptor and each frame header are copied
    out once (memcpy) and only the copies are checked and used.  Every bound is checked in the
    overflow-proof form ``length > limit - start`` with ``start <= limit`` already known, never by adding.
    """
    cdef tpacket_block_desc desc
    cdef tpacket3_hdr hdr
    cdef Py_ssize_t pos, blk_len, count = 0, num, mac, snaplen, nxt, nxt_guess = 0
    error[0] = RING_WALK_OK
    announced[0] = 0
    csum_not_ready[0] = 0
    if block_size < <Py_ssize_t>sizeof(tpacket_block_desc):
        error[0] = RING_BAD_BLK_LEN
        return 0
    memcpy(&desc, block, sizeof(tpacket_block_desc))
    num = desc.hdr.bh1.num_pkts
    announced[0] = num
    blk_len = desc.hdr.bh1.blk_len
    if blk_len > block_size or blk_len < <Py_ssize_t>sizeof(tpacket_block_desc):
        error[0] = RING_BAD_BLK_LEN
        return 0
    pos = desc.hdr.bh1.offset_to_first_pkt
    if num == 0:
        return 0
    if pos < <Py_ssize_t>sizeof(tpacket_block_desc) or pos > blk_len:
        error[0] = RING_BAD_FIRST_OFFSET
        return 0
    while count < num and count < max_frames:
        # Invariant: 0 <= pos <= blk_len <= block_size.
        if blk_len - pos < <Py_ssize_t>sizeof(tpacket3_hdr):
            error[0] = RING_BAD_FRAME
            return count
        # The block was written by the kernel on another CPU: each header is a cache miss, and the next
        # header's place is known only from this one.  Frames of a block are mostly of one size, so the
        # place a few frames on at this frame's stride is fetched ahead (a guess: a prefetch never faults,
        # and it is kept inside the block), which overlaps those misses instead of taking them one by one.
        if nxt_guess != 0 and nxt_guess <= (blk_len - pos) // _RING_PREFETCH_AHEAD:
            __builtin_prefetch(block + pos + _RING_PREFETCH_AHEAD * nxt_guess)
            __builtin_prefetch(block + pos + _RING_PREFETCH_AHEAD * nxt_guess + 64)
        memcpy(&hdr, block + pos, sizeof(tpacket3_hdr))
        mac = hdr.tp_mac
        snaplen = hdr.tp_snaplen
        nxt = hdr.tp_next_offset
        if mac < <Py_ssize_t>sizeof(tpacket3_hdr) or mac > blk_len - pos or snaplen > blk_len - pos - mac:
            error[0] = RING_BAD_FRAME
            return count
        offsets[count] = base + pos + mac
        lengths[count] = <uint32_t>snaplen
        status[count] = hdr.tp_status
        csum_not_ready[0] += (hdr.tp_status & TP_STATUS_CSUMNOTREADY) != 0
        ts_ns[count] = <int64_t>hdr.tp_sec * 1000000000 + hdr.tp_nsec
        vlan[count] = hdr.hv1.tp_vlan_tci if (hdr.tp_status & TP_STATUS_VLAN_VALID) else 0xFFFFFFFF
        count += 1
        if count == num:
            break
        if nxt == 0 or nxt % V3_ALIGNMENT != 0 or nxt >= blk_len - pos:
            error[0] = RING_BAD_NEXT_OFFSET
            return count
        pos += nxt
        nxt_guess = nxt
    return count


cdef Py_ssize_t _ring_walk_frames(const uint8_t* ring, Py_ssize_t frame_size, Py_ssize_t frame_nr,
                                  Py_ssize_t cursor, int64_t* offsets, uint32_t* lengths, uint32_t* status,
                                  int64_t* ts_ns, uint32_t* vlan, Py_ssize_t max_frames, int* error,
                                  Py_ssize_t* taken, Py_ssize_t* csum_not_ready) noexcept nogil:
    """Walk the run of TPACKET_V2 slots user space owns from slot ``cursor`` on (each slot's own tp_status,
    read with acquire ordering), at most ``max_frames`` and at most the whole ring once; return the number of
    valid frames written.  ``taken``: the slots the run holds for the caller to hand back, the valid ones and
    a damaged last one (tp_mac or tp_snaplen outside its slot: RING_BAD_FRAME ends the run there).

    The caller checked the geometry: ``frame_size >= sizeof(tpacket2_hdr)``, ``frame_nr * frame_size`` inside
    the ring, ``0 <= cursor < frame_nr``.  Each header is copied out once and only the copy is used; the bound
    is checked in the overflow-proof form against the slot.
    """
    cdef tpacket2_hdr hdr
    cdef Py_ssize_t count = 0, slot = cursor, mac, snaplen
    cdef const uint8_t* p
    cdef uint32_t st
    error[0] = RING_WALK_OK
    taken[0] = 0
    csum_not_ready[0] = 0
    while count < max_frames and count < frame_nr:
        p = ring + slot * frame_size
        st = fmip_ring_load_acquire_at(p + FMIP_RING_TP2_STATUS_OFF)
        if not (st & TP_STATUS_USER):
            break
        memcpy(&hdr, p, sizeof(tpacket2_hdr))
        mac = hdr.tp_mac
        snaplen = hdr.tp_snaplen
        if mac < <Py_ssize_t>sizeof(tpacket2_hdr) or mac > frame_size or snaplen > frame_size - mac:
            error[0] = RING_BAD_FRAME
            taken[0] = count + 1
            return count
        offsets[count] = slot * frame_size + mac
        lengths[count] = <uint32_t>snaplen
        status[count] = st
        csum_not_ready[0] += (st & TP_STATUS_CSUMNOTREADY) != 0
        ts_ns[count] = <int64_t>hdr.tp_sec * 1000000000 + hdr.tp_nsec
        vlan[count] = hdr.tp_vlan_tci if (st & TP_STATUS_VLAN_VALID) else 0xFFFFFFFF
        count += 1
        slot = slot + 1 if slot + 1 < frame_nr else 0
    taken[0] = count
    return count


cdef inline void _ring_release_frames(uint8_t* ring, Py_ssize_t frame_size, Py_ssize_t frame_nr,
                                      Py_ssize_t cursor, Py_ssize_t count) noexcept nogil:
    """Hand ``count`` TPACKET_V2 slots from ``cursor`` on back to the kernel (release ordering); the caller
    checked the geometry and ``0 <= count <= frame_nr``."""
    cdef Py_ssize_t k, slot = cursor
    for k in range(count):
        fmip_ring_store_release_at(ring + slot * frame_size + FMIP_RING_TP2_STATUS_OFF, TP_STATUS_KERNEL)
        slot = slot + 1 if slot + 1 < frame_nr else 0


cdef Py_ssize_t _ring_offset(object ring_size, object block_offset) except -1:
    """``block_offset`` as the offset of a whole block descriptor inside a ``ring_size``-octet ring.

    Checked on Python ints (no C type to overflow) in the overflow-proof form, so an offset near 2**63 or
    beyond the C range is the reference's ValueError, never a wild pointer or an OverflowError.
    """
    offset = _index(block_offset)
    if offset < 0 or <Py_ssize_t>sizeof(tpacket_block_desc) > ring_size \
            or offset > ring_size - <Py_ssize_t>sizeof(tpacket_block_desc):
        raise ValueError(f"block offset {offset} is outside the ring")
    return offset


def ring_walk_block(ring, block_offset, block_size, *, max_frames=None, out=None):
    """Walk one TPACKET_V3 RX block that user space owns.

    Parameters
    ----------
    ring : uint8 buffer
        The whole RX ring mapping (or any buffer holding a block).
    block_offset, block_size : int
        Where the block starts in ``ring`` and its size (``tp_block_size``).
    max_frames : int, optional
        Upper bound of frames reported (default: every frame the block announces).
    out : tuple of five arrays, optional
        Storage to fill instead of allocating: ``(offsets int64, lengths uint32, status uint32, ts_ns int64,
        vlan_tci uint32)``, each writable, C-contiguous and at least as long as the bound (``max_frames``, or
        ``block_size // 16 + 1``); the dict's arrays are then views of their first rows, overwritten by the
        next walk into the same storage.

    Returns
    -------
    dict
        ``offsets`` int64 (frame starts, relative to ``ring``), ``lengths`` uint32 (captured lengths),
        ``status`` uint32 (``tp_status``: TP_STATUS_CSUMNOTREADY and friends), ``ts_ns`` int64,
        ``vlan_tci`` uint32 (0xFFFFFFFF when no tag was stripped), ``announced`` (num_pkts),
        ``dropped`` (announced frames not reported), ``error`` (index into RING_WALK_ERRORS),
        ``csum_not_ready`` (how many reported frames have TP_STATUS_CSUMNOTREADY in their status).

    Raises
    ------
    TypeError
        ``ring`` without the buffer protocol or not of uint8; a non-integer offset, size or ``max_frames``;
        ``out`` not five numpy arrays of those dtypes.
    ValueError
        ``ring`` not a 1-D C-contiguous buffer; the block not inside the ring (negative, or past its end: any
        size, up to and beyond 2**63); ``max_frames`` negative; an ``out`` array read-only, not contiguous or
        shorter than the bound.

    Reference: fmipfast.reference.ring.ring_walk_block
    """
    _buffer_arg(ring, "ring", "B", 1)
    cdef const uint8_t[::1] rv = ring
    cdef Py_ssize_t ring_size = rv.shape[0]
    offset = _index(block_offset)
    size = _index(block_size)
    # Python ints, overflow-proof form: the block [offset, offset + size) is inside the ring.
    if offset < 0 or size < 0 or size > ring_size or offset > ring_size - size:
        raise ValueError(f"block [{offset}, {offset + size}) is outside the {ring_size}-octet ring")
    limit = size // 16 + 1
    if max_frames is not None:
        limit = min(limit, _index(max_frames))
        if limit < 0:
            raise ValueError(f"max_frames must be >= 0, got {max_frames}")
    cdef Py_ssize_t c_offset = offset, c_size = size, c_limit = limit  # all within 0..ring_size + 1
    cdef int64_t[::1] o
    cdef uint32_t[::1] ln
    cdef uint32_t[::1] st
    cdef int64_t[::1] ts
    cdef uint32_t[::1] vl
    cdef bint taken = False
    if out is None:
        offsets = _np.empty(c_limit, dtype=_np.int64)
        lengths = _np.empty(c_limit, dtype=_np.uint32)
        status = _np.empty(c_limit, dtype=_np.uint32)
        ts_ns = _np.empty(c_limit, dtype=_np.int64)
        vlan = _np.empty(c_limit, dtype=_np.uint32)
    else:
        # the caller's storage, no allocation per block: a fast path taking five numpy arrays as they are,
        # and on any doubt the shared checks (dtypes, layout, at least c_limit rows), which raise
        if type(out) is tuple and len(out) == 5:
            offsets, lengths, status, ts_ns, vlan = out
            if (type(offsets) is _np.ndarray and type(lengths) is _np.ndarray and type(status) is _np.ndarray
                    and type(ts_ns) is _np.ndarray and type(vlan) is _np.ndarray):
                try:
                    o = offsets
                    ln = lengths
                    st = status
                    ts = ts_ns
                    vl = vlan
                    taken = (o.shape[0] >= c_limit and ln.shape[0] >= c_limit and st.shape[0] >= c_limit
                             and ts.shape[0] >= c_limit and vl.shape[0] >= c_limit)
                except (TypeError, ValueError, BufferError):
                    taken = False
        if not taken:
            offsets, lengths, status, ts_ns, vlan = _ring_ref.check_walk_out(out, c_limit)
    if not taken:
        o = offsets
        ln = lengths
        st = status
        ts = ts_ns
        vl = vlan
    cdef int error = 0
    cdef Py_ssize_t announced = 0, n = 0, csum_not_ready = 0
    cdef const uint8_t* block = _data(rv) + c_offset
    if c_limit > 0:
        with nogil:
            n = _ring_walk(block, c_size, c_offset, &o[0], &ln[0], &st[0], &ts[0], &vl[0], c_limit,
                           &error, &announced, &csum_not_ready)
    return {"offsets": offsets[:n], "lengths": lengths[:n], "status": status[:n], "ts_ns": ts_ns[:n],
            "vlan_tci": vlan[:n], "announced": announced, "dropped": max(announced - n, 0), "error": error,
            "csum_not_ready": csum_not_ready}


def ring_block_status(ring, block_offset):
    """``block_status`` of the block at ``block_offset``, read with acquire ordering (so the frames it
    covers are visible once TP_STATUS_USER is seen).  ValueError unless the whole 48-octet descriptor lies
    inside ``ring``.  Reference: fmipfast.reference.ring.ring_block_status"""
    _buffer_arg(ring, "ring", "B", 1)
    cdef const uint8_t[::1] rv = ring
    cdef Py_ssize_t offset = _ring_offset(rv.shape[0], block_offset)
    return fmip_ring_load_acquire_at(_data(rv) + offset + FMIP_RING_BLOCK_STATUS_OFF)


def ring_release_block(ring, block_offset):
    """Hand the block back to the kernel (TP_STATUS_KERNEL, release ordering: every read of its frames
    happens before).  ValueError for a read-only ring or a descriptor not inside it.
    Reference: fmipfast.reference.ring.ring_release_block"""
    _buffer_arg(ring, "ring", "B", 1, True)
    cdef uint8_t[::1] rv = ring
    cdef Py_ssize_t offset = _ring_offset(rv.shape[0], block_offset)
    # shape[0] >= 48 (_ring_offset), so &rv[0] exists and the status word lies inside the ring
    fmip_ring_store_release_at(&rv[0] + offset + FMIP_RING_BLOCK_STATUS_OFF, TP_STATUS_KERNEL)


def ring_walk_frames(ring, cursor, frame_size, frame_nr, *, max_frames=None, out=None):
    """Walk the frames a TPACKET_V2 RX ring holds for user space from slot ``cursor`` on.

    A V2 ring is ``frame_nr`` slots of ``frame_size`` octets (the size must divide the ring's block size, so
    slot ``i`` starts at ``i * frame_size``), each with its own status word: the kernel hands over, and wakes
    the reader for, every frame at once instead of a block at its retire timer.  The walk takes the run of
    consecutive slots marked TP_STATUS_USER, wrapping around, at most ``max_frames`` (default: the whole
    ring).  A slot whose tp_mac / tp_snaplen put the packet outside it ends the run: it is in ``announced``
    (the slots to hand back with :func:`ring_release_frames`) and ``dropped``, with error ``bad_frame``.

    Returns the dict of :func:`ring_walk_block` (``announced``: the slots taken).  ``out``: as there, each
    array at least as long as the bound.  TypeError / ValueError as there; ValueError also for a geometry
    that does not fit the ring (``frame_size`` a multiple of 16 of at least 32, ``frame_nr`` >= 1, the
    slots inside ``ring``) or a cursor that is not a slot.

    Reference: fmipfast.reference.ring.ring_walk_frames
    """
    _buffer_arg(ring, "ring", "B", 1)
    cdef const uint8_t[::1] rv = ring
    fs, nr, cur = _ring_ref.check_frames(rv.shape[0], frame_size, frame_nr, cursor)
    limit = nr
    if max_frames is not None:
        limit = min(limit, _index(max_frames))
        if limit < 0:
            raise ValueError(f"max_frames must be >= 0, got {max_frames}")
    cdef Py_ssize_t c_fs = fs, c_nr = nr, c_cur = cur, c_limit = limit
    offsets, lengths, status, ts_ns, vlan = (
        tuple(_np.empty(c_limit, dtype=d) for d in _ring_ref.WALK_OUT_DTYPES) if out is None
        else _ring_ref.check_walk_out(out, c_limit))
    cdef int64_t[::1] o = offsets
    cdef uint32_t[::1] ln = lengths
    cdef uint32_t[::1] st = status
    cdef int64_t[::1] ts = ts_ns
    cdef uint32_t[::1] vl = vlan
    cdef int error = 0
    cdef Py_ssize_t taken = 0, n = 0, csum_not_ready = 0
    cdef const uint8_t* base = _data(rv)
    if c_limit > 0:
        with nogil:
            n = _ring_walk_frames(base, c_fs, c_nr, c_cur, &o[0], &ln[0], &st[0], &ts[0], &vl[0], c_limit,
                                  &error, &taken, &csum_not_ready)
    return {"offsets": offsets[:n], "lengths": lengths[:n], "status": status[:n], "ts_ns": ts_ns[:n],
            "vlan_tci": vlan[:n], "announced": taken, "dropped": taken - n, "error": error,
            "csum_not_ready": csum_not_ready}


def ring_release_frames(ring, cursor, frame_size, frame_nr, count):
    """Hand ``count`` slots of a TPACKET_V2 RX ring from slot ``cursor`` on back to the kernel (TP_STATUS_KERNEL,
    release ordering: every read of their frames happens before), wrapping around.  ValueError for a
    read-only ring, a geometry as :func:`ring_walk_frames` refuses, or ``count`` outside 0..``frame_nr``.
    Reference: fmipfast.reference.ring.ring_release_frames"""
    _buffer_arg(ring, "ring", "B", 1, True)
    cdef uint8_t[::1] rv = ring
    fs, nr, cur = _ring_ref.check_frames(rv.shape[0], frame_size, frame_nr, cursor)
    k = _index(count)
    if not 0 <= k <= nr:
        raise ValueError(f"count: need 0..{nr}, got {k}")
    cdef Py_ssize_t c_fs = fs, c_nr = nr, c_cur = cur, c_k = k
    if c_k:
        _ring_release_frames(&rv[0], c_fs, c_nr, c_cur, c_k)


def ring_tx_fill(tx, frame_size, head, arena, offsets, lengths):
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
    _buffer_arg(tx, "tx", "B", 1, True)
    _buffer_arg(arena, "arena", "B", 1)
    _buffer_arg(offsets, "offsets", _SIGNED_FORMATS, 8)
    _buffer_arg(lengths, "lengths", _UNSIGNED_FORMATS, 4)
    cdef uint8_t[::1] txv = tx
    cdef const uint8_t[::1] arv = arena
    cdef Py_ssize_t data_off = <Py_ssize_t>FMIPFAST_TX_DATA_OFF
    cdef Py_ssize_t ring_size = txv.shape[0]
    fsize = _index(frame_size)
    if fsize <= data_off or fsize % TPACKET_ALIGNMENT or ring_size % fsize:
        raise ValueError(f"frame_size {fsize} must be a multiple of {TPACKET_ALIGNMENT} above "
                         f"{data_off} dividing the {ring_size}-octet ring")
    cdef Py_ssize_t fs = fsize  # data_off < fs <= ring_size (it divides it; ring_size == 0 fails above)
    cdef Py_ssize_t slots = ring_size // fs
    # Private copies: each caller value is read exactly once, then checked and used from the copy.
    offs_a = _np.array(offsets, dtype=_np.int64)
    lens_a = _np.array(lengths, dtype=_np.uint32)
    cdef Py_ssize_t n = offs_a.shape[0]
    if lens_a.shape[0] != n:
        raise ValueError(f"offsets and lengths differ in length ({n} and {lens_a.shape[0]})")
    hd = _index(head)
    if hd < 0 or hd >= slots:
        raise ValueError(f"head {hd} is not a slot of a {slots}-slot ring")
    cdef Py_ssize_t c_head = hd
    cdef const int64_t[::1] offs_v = offs_a
    cdef const uint32_t[::1] lens_v = lens_a
    cdef const int64_t* offp = NULL
    cdef const uint32_t* lenp = NULL
    if n:
        offp = &offs_v[0]
        lenp = &lens_v[0]
    cdef Py_ssize_t arena_size = arv.shape[0], i, bad = -1
    cdef Py_ssize_t sent = 0, too_big = 0, consumed = 0
    cdef Py_ssize_t room = fs - data_off
    cdef uint8_t* frame
    cdef const uint8_t* src = _data(arv)
    cdef uint8_t* ring0 = &txv[0]  # ring_size >= fs > 0
    with nogil:
        for i in range(n):
            if _span_outside(offp[i], lenp[i], <uint64_t>arena_size):
                bad = i
                break
    if bad >= 0:
        raise ValueError(f"frame {bad}: [{offs_a[bad]}, {int(offs_a[bad]) + int(lens_a[bad])}) is outside "
                         "the arena")
    with nogil:
        for i in range(n):
            # SAFETY: offp/lenp are this call's private copies, every frame checked inside the arena above.
            if lenp[i] > <uint64_t>room:
                too_big += 1
                consumed += 1
                continue
            # 0 <= c_head < slots: the slot lies inside the ring; its header fields are written by offset (the
            # tx buffer need not be aligned: no struct access through it)
            if not ring_tx_put(ring0 + c_head * fs, src + offp[i], lenp[i]):
                break  # the kernel has not sent this slot yet: the ring is full
            sent += 1
            consumed += 1
            c_head = (c_head + 1) % slots
    return consumed, sent, c_head, too_big


def _linux_consts():
    """The Linux ABI numbers of fmipfast/_linux.py as the system headers give them to the compiler, by the
    same names (tests/test_core_consts.py checks the two agree)."""
    return {
        "SOL_PACKET": SOL_PACKET, "SO_ATTACH_FILTER": SO_ATTACH_FILTER, "SO_TIMESTAMPNS": SO_TIMESTAMPNS,
        "SCM_TIMESTAMPNS": SCM_TIMESTAMPNS, "ETH_P_ALL": ETH_P_ALL,
        "PACKET_OUTGOING": PACKET_OUTGOING, "PACKET_RX_RING": PACKET_RX_RING,
        "PACKET_STATISTICS": PACKET_STATISTICS, "PACKET_AUXDATA": PACKET_AUXDATA, "PACKET_VERSION": PACKET_VERSION,
        "PACKET_TX_RING": PACKET_TX_RING, "PACKET_FANOUT": PACKET_FANOUT, "PACKET_QDISC_BYPASS": PACKET_QDISC_BYPASS,
        "PACKET_IGNORE_OUTGOING": PACKET_IGNORE_OUTGOING, "PACKET_LOSS": PACKET_LOSS,
        "PACKET_FANOUT_HASH": PACKET_FANOUT_HASH,
        "PACKET_FANOUT_LB": PACKET_FANOUT_LB, "PACKET_FANOUT_CPU": PACKET_FANOUT_CPU,
        "PACKET_FANOUT_ROLLOVER": PACKET_FANOUT_ROLLOVER, "PACKET_FANOUT_RND": PACKET_FANOUT_RND,
        "PACKET_FANOUT_QM": PACKET_FANOUT_QM, "PACKET_FANOUT_FLAG_DEFRAG": PACKET_FANOUT_FLAG_DEFRAG,
        "TPACKET_V2": TPACKET_V2, "TPACKET_V3": TPACKET_V3, "TPACKET_ALIGNMENT": TPACKET_ALIGNMENT,
        "TP_FT_REQ_FILL_RXHASH": TP_FT_REQ_FILL_RXHASH, "TP_STATUS_KERNEL": TP_STATUS_KERNEL,
        "TP_STATUS_USER": TP_STATUS_USER, "TP_STATUS_LOSING": TP_STATUS_LOSING,
        "TP_STATUS_CSUMNOTREADY": TP_STATUS_CSUMNOTREADY, "TP_STATUS_VLAN_VALID": TP_STATUS_VLAN_VALID,
        "TP_STATUS_AVAILABLE": TP_STATUS_AVAILABLE, "TP_STATUS_SEND_REQUEST": TP_STATUS_SEND_REQUEST,
        "BLOCK_DESC_LEN": sizeof(tpacket_block_desc), "TPACKET3_HDR_LEN": sizeof(tpacket3_hdr),
        "TPACKET2_HDR_LEN": sizeof(tpacket2_hdr),
        "TX_DATA_OFF": FMIPFAST_TX_DATA_OFF,
    }

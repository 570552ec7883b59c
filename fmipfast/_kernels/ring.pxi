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
    FMIPFAST_TX_DATA_OFF,
    TP_STATUS_AVAILABLE,
    TP_STATUS_KERNEL,
    TP_STATUS_SEND_REQUEST,
    TP_STATUS_USER,
    TP_STATUS_VLAN_VALID,
    TPACKET_ALIGNMENT,
    fmipfast_load_acquire_u32,
    fmipfast_store_release_u32,
    tpacket3_hdr,
    tpacket_block_desc,
)

import numpy as _np

cdef enum:
    RING_WALK_OK = 0
    V3_ALIGNMENT = 8            # net/packet/af_packet.c: frames in a V3 block are 8-aligned
    RING_BAD_FIRST_OFFSET = 1   # offset_to_first_pkt outside the block
    RING_BAD_BLK_LEN = 2        # blk_len beyond the block size
    RING_BAD_NEXT_OFFSET = 3    # tp_next_offset zero/not 8-aligned/past blk_len before the last frame
    RING_BAD_FRAME = 4          # tp_mac + tp_snaplen past blk_len, or header past blk_len

__all__ += ["ring_walk_block", "ring_block_status", "ring_release_block", "ring_tx_fill"]

#: Names of the walk's error codes (index = code), as reported by ring_walk_block.
RING_WALK_ERRORS = ("ok", "bad_first_offset", "bad_blk_len", "bad_next_offset", "bad_frame")


cdef Py_ssize_t _ring_walk(const uint8_t* block, Py_ssize_t block_size, Py_ssize_t base,
                           int64_t* offsets, uint32_t* lengths, uint32_t* status, int64_t* ts_ns,
                           uint32_t* vlan, Py_ssize_t max_frames, int* error,
                           Py_ssize_t* announced) noexcept nogil:
    """Walk one TPACKET_V3 block; return the number of valid frames written (<= max_frames)."""
    cdef tpacket_block_desc desc
    cdef tpacket3_hdr hdr
    cdef Py_ssize_t pos, blk_len, count = 0, num
    error[0] = RING_WALK_OK
    announced[0] = 0
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
        if pos + <Py_ssize_t>sizeof(tpacket3_hdr) > blk_len:
            error[0] = RING_BAD_FRAME
            return count
        memcpy(&hdr, block + pos, sizeof(tpacket3_hdr))
        if hdr.tp_mac < sizeof(tpacket3_hdr) or pos + <Py_ssize_t>hdr.tp_mac + <Py_ssize_t>hdr.tp_snaplen > blk_len:
            error[0] = RING_BAD_FRAME
            return count
        offsets[count] = base + pos + hdr.tp_mac
        lengths[count] = hdr.tp_snaplen
        status[count] = hdr.tp_status
        ts_ns[count] = <int64_t>hdr.tp_sec * 1000000000 + hdr.tp_nsec
        vlan[count] = hdr.hv1.tp_vlan_tci if (hdr.tp_status & TP_STATUS_VLAN_VALID) else 0xFFFFFFFF
        count += 1
        if count == num:
            break
        if hdr.tp_next_offset == 0 or hdr.tp_next_offset % V3_ALIGNMENT != 0 \
                or pos + <Py_ssize_t>hdr.tp_next_offset >= blk_len:
            error[0] = RING_BAD_NEXT_OFFSET
            return count
        pos += hdr.tp_next_offset
    return count


def ring_walk_block(const uint8_t[::1] ring, Py_ssize_t block_offset, Py_ssize_t block_size, *,
                    max_frames=None):
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

    Reference: fmipfast.reference.ring.ring_walk_block
    """
    if block_offset < 0 or block_size < 0 or block_offset + block_size > ring.shape[0]:
        raise ValueError(f"block [{block_offset}, {block_offset + block_size}) is outside the "
                         f"{ring.shape[0]}-octet ring")
    cdef Py_ssize_t limit = block_size // 16 + 1
    if max_frames is not None:
        limit = min(limit, <Py_ssize_t>_index(max_frames))
        if limit < 0:
            raise ValueError(f"max_frames must be >= 0, got {max_frames}")
    offsets = _np.empty(limit, dtype=_np.int64)
    lengths = _np.empty(limit, dtype=_np.uint32)
    status = _np.empty(limit, dtype=_np.uint32)
    ts_ns = _np.empty(limit, dtype=_np.int64)
    vlan = _np.empty(limit, dtype=_np.uint32)
    cdef int64_t[::1] o = offsets
    cdef uint32_t[::1] ln = lengths
    cdef uint32_t[::1] st = status
    cdef int64_t[::1] ts = ts_ns
    cdef uint32_t[::1] vl = vlan
    cdef int error = 0
    cdef Py_ssize_t announced = 0, n = 0
    cdef const uint8_t* block = _data(ring) + block_offset
    if limit > 0:
        with nogil:
            n = _ring_walk(block, block_size, block_offset, &o[0], &ln[0], &st[0], &ts[0], &vl[0], limit,
                           &error, &announced)
    return {"offsets": offsets[:n], "lengths": lengths[:n], "status": status[:n], "ts_ns": ts_ns[:n],
            "vlan_tci": vlan[:n], "announced": announced, "dropped": max(announced - n, 0), "error": error}


def ring_block_status(const uint8_t[::1] ring, Py_ssize_t block_offset):
    """``block_status`` of the block at ``block_offset``, read with acquire ordering (so the frames it
    covers are visible once TP_STATUS_USER is seen).  Reference: fmipfast.reference.ring.ring_block_status"""
    if block_offset < 0 or block_offset + <Py_ssize_t>sizeof(tpacket_block_desc) > ring.shape[0]:
        raise ValueError(f"block offset {block_offset} is outside the ring")
    cdef const tpacket_block_desc* desc = <const tpacket_block_desc*>(_data(ring) + block_offset)
    return fmipfast_load_acquire_u32(&desc.hdr.bh1.block_status)


def ring_release_block(uint8_t[::1] ring, Py_ssize_t block_offset):
    """Hand the block back to the kernel (TP_STATUS_KERNEL, release ordering: every read of its frames
    happens before).  Reference: fmipfast.reference.ring.ring_release_block"""
    if block_offset < 0 or block_offset + <Py_ssize_t>sizeof(tpacket_block_desc) > ring.shape[0]:
        raise ValueError(f"block offset {block_offset} is outside the ring")
    cdef tpacket_block_desc* desc = <tpacket_block_desc*>(&ring[0] + block_offset)
    fmipfast_store_release_u32(&desc.hdr.bh1.block_status, TP_STATUS_KERNEL)


def ring_tx_fill(uint8_t[::1] tx, Py_ssize_t frame_size, Py_ssize_t head, const uint8_t[::1] arena,
                 const int64_t[::1] offsets, const uint32_t[::1] lengths):
    """Copy frames into free slots of a TPACKET_V3 TX ring, starting at slot ``head``.

    Stops at the first slot the kernel still owns (ring full).  Returns ``(consumed, sent, new_head,
    too_big)``: how many of the given frames were dealt with (the rest must be offered again), how many
    were queued (TP_STATUS_SEND_REQUEST), the next slot to use, and how many were skipped because they do
    not fit a slot (``frame_size`` minus the 48-octet header).  The caller then calls ``send()`` once.

    Reference: fmipfast.reference.ring.ring_tx_fill
    """
    cdef Py_ssize_t slots, n = offsets.shape[0], i, slot, sent = 0, too_big = 0, consumed = 0
    cdef Py_ssize_t data_off = <Py_ssize_t>FMIPFAST_TX_DATA_OFF
    cdef Py_ssize_t room = frame_size - data_off
    cdef uint8_t* frame
    cdef tpacket3_hdr* hdr
    if frame_size <= data_off or frame_size % TPACKET_ALIGNMENT or tx.shape[0] % frame_size:
        raise ValueError(f"frame_size {frame_size} must be a multiple of {TPACKET_ALIGNMENT} above "
                         f"{data_off} dividing the {tx.shape[0]}-octet ring")
    slots = tx.shape[0] // frame_size
    if lengths.shape[0] != n:
        raise ValueError(f"offsets and lengths differ in length ({n} and {lengths.shape[0]})")
    if head < 0 or head >= slots:
        raise ValueError(f"head {head} is not a slot of a {slots}-slot ring")
    for i in range(n):
        if offsets[i] < 0 or offsets[i] + lengths[i] > arena.shape[0]:
            raise ValueError(f"frame {i}: [{offsets[i]}, {offsets[i] + lengths[i]}) is outside the arena")
    cdef const uint8_t* src = _data(arena)
    with nogil:
        for i in range(n):
            if lengths[i] > room:
                too_big += 1
                consumed += 1
                continue
            slot = head
            frame = &tx[0] + slot * frame_size
            hdr = <tpacket3_hdr*>frame
            if fmipfast_load_acquire_u32(&hdr.tp_status) != TP_STATUS_AVAILABLE:
                break  # the kernel has not sent this slot yet: the ring is full
            memcpy(frame + data_off, src + offsets[i], lengths[i])
            hdr.tp_len = lengths[i]
            hdr.tp_snaplen = lengths[i]
            hdr.tp_next_offset = 0
            fmipfast_store_release_u32(&hdr.tp_status, TP_STATUS_SEND_REQUEST)
            sent += 1
            consumed += 1
            head = (head + 1) % slots
    return consumed, sent, head, too_big

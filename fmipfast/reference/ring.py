"""Pure-Python oracle of ``_kernels/ring.pxi``: the TPACKET_V3 RX block walk, the TPACKET_V2 RX frame walk and
the TX ring fill.

Layouts (<linux/if_packet.h>, native byte order):

    struct tpacket_block_desc     version:u32 offset_to_priv:u32 then tpacket_hdr_v1:
        block_status:u32 (@8) num_pkts:u32 (@12) offset_to_first_pkt:u32 (@16) blk_len:u32 (@20)
        seq_num:u64 (@24) ts_first_pkt (@32) ts_last_pkt (@40)                    48 octets
    struct tpacket3_hdr           tp_next_offset:u32 tp_sec:u32 tp_nsec:u32 tp_snaplen:u32 tp_len:u32
        tp_status:u32 tp_mac:u16 tp_net:u16 hv1{tp_rxhash:u32 tp_vlan_tci:u32 tp_vlan_tpid:u16 pad:u16}
        tp_padding[8]                                                              48 octets
    struct tpacket2_hdr           tp_status:u32 tp_len:u32 tp_snaplen:u32 tp_mac:u16 tp_net:u16 tp_sec:u32
        tp_nsec:u32 tp_vlan_tci:u16 tp_vlan_tpid:u16 tp_padding[4]                  32 octets
"""

from __future__ import annotations

import operator
import struct
from typing import Any

import numpy as np

from fmipfast._linux import (
    BLOCK_DESC_LEN,
    TP_STATUS_AVAILABLE,
    TP_STATUS_CSUMNOTREADY,
    TP_STATUS_KERNEL,
    TP_STATUS_SEND_REQUEST,
    TP_STATUS_USER,
    TP_STATUS_VLAN_VALID,
    TPACKET2_HDR_LEN,
    TPACKET3_HDR_LEN,
    TPACKET_ALIGNMENT,
    TX_DATA_OFF,
)
from fmipfast.reference.wire import _SIGNED, _UNSIGNED, _array

__all__ = ["ring_walk_block", "ring_block_status", "ring_release_block", "ring_tx_fill", "WALK_OUT_DTYPES",
           "check_walk_out", "ring_walk_frames", "ring_release_frames", "check_frames"]

#: The arrays ``ring_walk_block(..., out=...)`` fills, in this order: offsets, lengths, status, ts_ns, vlan_tci.
WALK_OUT_DTYPES: tuple[np.dtype[Any], ...] = (np.dtype(np.int64), np.dtype(np.uint32), np.dtype(np.uint32),
                                              np.dtype(np.int64), np.dtype(np.uint32))
_WALK_OUT_NAMES = ("offsets", "lengths", "status", "ts_ns", "vlan_tci")


def check_walk_out(out: Any, rows: int) -> tuple[np.ndarray, ...]:
    """``out`` as the five arrays ``ring_walk_block`` fills, each writable, C-contiguous, 1-D, of its dtype and
    at least ``rows`` long; else the ``TypeError`` (not five arrays, a wrong dtype) or ``ValueError`` (a shape,
    layout or length) naming the first wrong one (both implementations raise these)."""
    if not isinstance(out, (tuple, list)) or len(out) != 5:
        raise TypeError("out: need a tuple of five arrays (offsets, lengths, status, ts_ns, vlan_tci)")
    for a, dtype, name in zip(out, WALK_OUT_DTYPES, _WALK_OUT_NAMES):
        if not isinstance(a, np.ndarray) or a.dtype != dtype:
            got = a.dtype.name if isinstance(a, np.ndarray) else type(a).__name__
            raise TypeError(f"out {name}: need a numpy array of dtype {dtype.name}, got {got}")
        if a.ndim != 1 or not a.flags.c_contiguous or not a.flags.writeable:
            raise ValueError(f"out {name}: need a writable, C-contiguous 1-D array")
        if a.shape[0] < rows:
            raise ValueError(f"out {name}: need at least {rows} rows, got {a.shape[0]}")
    return tuple(out)

RING_WALK_ERRORS = ("ok", "bad_first_offset", "bad_blk_len", "bad_next_offset", "bad_frame")
V3_ALIGNMENT = 8  # net/packet/af_packet.c: frames in a V3 block are 8-aligned (tp_next_offset)

_DESC = struct.Struct("=IIIIII")  # version, offset_to_priv, block_status, num_pkts, offset_to_first, blk_len
_HDR = struct.Struct("=IIIIIIHHII")  # next, sec, nsec, snaplen, len, status, mac, net, rxhash, vlan_tci
_HDR2 = struct.Struct("=IIIHHIIHH")  # status, len, snaplen, mac, net, sec, nsec, vlan_tci, vlan_tpid


def _buffer(buf: Any, name: str, kinds: str = "B", itemsize: int = 1, writable: bool = False) -> np.ndarray:
    """``buf`` as a numpy array over the caller's memory, checked as the compiled ``T[::1]`` arguments are:
    TypeError without the buffer protocol or for a wrong element type, ValueError for a wrong dimension count
    or layout (or a read-only buffer where the kernel writes)."""
    return np.asarray(_array(buf, name, kinds, itemsize, writable))


def ring_walk_block(ring: Any, block_offset: int, block_size: int, *, max_frames: int | None = None,
                    out: Any = None) -> dict:
    """See ``fmipfast._core.ring_walk_block``."""
    arr = _buffer(ring, "ring")
    block_offset = operator.index(block_offset)
    block_size = operator.index(block_size)
    if block_offset < 0 or block_size < 0 or block_offset + block_size > arr.shape[0]:
        raise ValueError(f"block [{block_offset}, {block_offset + block_size}) is outside the "
                         f"{arr.shape[0]}-octet ring")
    limit = block_size // 16 + 1
    if max_frames is not None:
        limit = min(limit, operator.index(max_frames))
        if limit < 0:
            raise ValueError(f"max_frames must be >= 0, got {max_frames}")
    outs = None if out is None else check_walk_out(out, limit)
    block = arr[block_offset:block_offset + block_size].tobytes()
    offsets: list[int] = []
    lengths: list[int] = []
    status: list[int] = []
    ts: list[int] = []
    vlan: list[int] = []
    error = 0
    announced = 0

    def result() -> dict:
        columns = [np.array(c, dtype=d) for c, d in zip((offsets, lengths, status, ts, vlan), WALK_OUT_DTYPES)]
        if outs is not None:  # the caller's arrays: filled, and their first rows handed back
            n = len(offsets)
            for target, column in zip(outs, columns):
                target[:n] = column
            columns = [target[:n] for target in outs]
        return {"offsets": columns[0], "lengths": columns[1], "status": columns[2], "ts_ns": columns[3],
                "vlan_tci": columns[4], "announced": announced, "dropped": max(announced - len(offsets), 0),
                "error": error, "csum_not_ready": sum(1 for st in status if st & TP_STATUS_CSUMNOTREADY)}

    if limit <= 0:
        return result()
    if block_size < BLOCK_DESC_LEN:
        error = 2
        return result()
    _v, _p, _bs, num, pos, blk_len = _DESC.unpack_from(block, 0)
    announced = num
    if blk_len > block_size or blk_len < BLOCK_DESC_LEN:
        error = 2
        return result()
    if num == 0:
        return result()
    if pos < BLOCK_DESC_LEN or pos > blk_len:
        error = 1
        return result()
    while len(offsets) < num and len(offsets) < limit:
        if pos + TPACKET3_HDR_LEN > blk_len:
            error = 4
            return result()
        nxt, sec, nsec, snaplen, _len, st, mac, _net, _hash, tci = _HDR.unpack_from(block, pos)
        if mac < TPACKET3_HDR_LEN or pos + mac + snaplen > blk_len:
            error = 4
            return result()
        offsets.append(block_offset + pos + mac)
        lengths.append(snaplen)
        status.append(st)
        ts.append(sec * 1_000_000_000 + nsec)
        vlan.append(tci if st & TP_STATUS_VLAN_VALID else 0xFFFFFFFF)
        if len(offsets) == num:
            break
        if nxt == 0 or nxt % V3_ALIGNMENT or pos + nxt >= blk_len:
            error = 3
            return result()
        pos += nxt
    return result()


def check_frames(ring_size: int, frame_size: Any, frame_nr: Any, cursor: Any) -> tuple[int, int, int]:
    """A TPACKET_V2 ring's geometry as ``ring_walk_frames`` / ``ring_release_frames`` take it, or the error
    naming the first wrong value: TypeError for a non-integer; ValueError unless ``frame_size`` is a multiple
    of 16 of at least 32 (a header), ``frame_nr`` >= 1, the slots inside the ``ring_size``-octet ring and
    ``cursor`` a slot."""
    fs, nr, cur = operator.index(frame_size), operator.index(frame_nr), operator.index(cursor)
    if fs < TPACKET2_HDR_LEN or fs % TPACKET_ALIGNMENT or nr < 1 or nr > ring_size // fs:
        raise ValueError(f"{nr} slots of {fs} octets do not fit the {ring_size}-octet ring (a slot: a multiple "
                         f"of {TPACKET_ALIGNMENT}, at least {TPACKET2_HDR_LEN} octets)")
    if not 0 <= cur < nr:
        raise ValueError(f"cursor: need a slot index in 0..{nr - 1}, got {cur}")
    return fs, nr, cur


def ring_walk_frames(ring: Any, cursor: int, frame_size: int, frame_nr: int, *, max_frames: int | None = None,
                     out: Any = None) -> dict:
    """See ``fmipfast._core.ring_walk_frames``."""
    arr = _buffer(ring, "ring")
    fs, nr, cur = check_frames(arr.shape[0], frame_size, frame_nr, cursor)
    limit = nr
    if max_frames is not None:
        limit = min(limit, operator.index(max_frames))
        if limit < 0:
            raise ValueError(f"max_frames must be >= 0, got {max_frames}")
    outs = None if out is None else check_walk_out(out, limit)
    rows: list[tuple[int, int, int, int, int]] = []
    error = taken = 0
    slot = cur
    while len(rows) < limit:
        base = slot * fs
        st = int(struct.unpack_from("=I", arr.data, base)[0])
        if not st & TP_STATUS_USER:
            break
        _st, _len, snaplen, mac, _net, sec, nsec, tci, _tpid = _HDR2.unpack_from(arr.data, base)
        if mac < TPACKET2_HDR_LEN or mac > fs or snaplen > fs - mac:
            error = 4
            taken = len(rows) + 1
            break
        rows.append((base + mac, snaplen, st, sec * 1_000_000_000 + nsec,
                     tci if st & TP_STATUS_VLAN_VALID else 0xFFFFFFFF))
        slot = (slot + 1) % nr
    if not error:
        taken = len(rows)
    columns = [np.array([r[i] for r in rows], dtype=d) for i, d in enumerate(WALK_OUT_DTYPES)]
    if outs is not None:
        n = len(rows)
        for target, column in zip(outs, columns):
            target[:n] = column
        columns = [target[:n] for target in outs]
    return {"offsets": columns[0], "lengths": columns[1], "status": columns[2], "ts_ns": columns[3],
            "vlan_tci": columns[4], "announced": taken, "dropped": taken - len(rows), "error": error,
            "csum_not_ready": sum(1 for r in rows if r[2] & TP_STATUS_CSUMNOTREADY)}


def ring_release_frames(ring: Any, cursor: int, frame_size: int, frame_nr: int, count: int) -> None:
    """See ``fmipfast._core.ring_release_frames``."""
    arr = _buffer(ring, "ring", writable=True)
    fs, nr, cur = check_frames(arr.shape[0], frame_size, frame_nr, cursor)
    k = operator.index(count)
    if not 0 <= k <= nr:
        raise ValueError(f"count: need 0..{nr}, got {k}")
    for i in range(k):
        struct.pack_into("=I", arr.data, ((cur + i) % nr) * fs, TP_STATUS_KERNEL)


def ring_block_status(ring: Any, block_offset: int) -> int:
    arr = _buffer(ring, "ring")
    block_offset = operator.index(block_offset)
    if block_offset < 0 or block_offset + BLOCK_DESC_LEN > arr.shape[0]:
        raise ValueError(f"block offset {block_offset} is outside the ring")
    return int(struct.unpack_from("=I", arr.data, block_offset + 8)[0])


def ring_release_block(ring: Any, block_offset: int) -> None:
    arr = _buffer(ring, "ring", writable=True)
    block_offset = operator.index(block_offset)
    if block_offset < 0 or block_offset + BLOCK_DESC_LEN > arr.shape[0]:
        raise ValueError(f"block offset {block_offset} is outside the ring")
    struct.pack_into("=I", arr.data, block_offset + 8, TP_STATUS_KERNEL)


def ring_tx_fill(tx: Any, frame_size: int, head: int, arena: Any, offsets: Any, lengths: Any
                 ) -> tuple[int, int, int, int]:
    """See ``fmipfast._core.ring_tx_fill``."""
    ring = _buffer(tx, "tx", writable=True)
    src = _buffer(arena, "arena")
    offs = _buffer(offsets, "offsets", _SIGNED, 8).astype(np.int64)  # a copy: read once, then checked
    lens = _buffer(lengths, "lengths", _UNSIGNED, 4).astype(np.uint32)
    frame_size = operator.index(frame_size)
    if frame_size <= TX_DATA_OFF or frame_size % TPACKET_ALIGNMENT or ring.shape[0] % frame_size:
        raise ValueError(f"frame_size {frame_size} must be a multiple of {TPACKET_ALIGNMENT} above "
                         f"{TX_DATA_OFF} dividing the {ring.shape[0]}-octet ring")
    slots = ring.shape[0] // frame_size
    if lens.shape[0] != offs.shape[0]:
        raise ValueError(f"offsets and lengths differ in length ({offs.shape[0]} and {lens.shape[0]})")
    head = operator.index(head)
    if head < 0 or head >= slots:
        raise ValueError(f"head {head} is not a slot of a {slots}-slot ring")
    for i in range(offs.shape[0]):
        off, length = int(offs[i]), int(lens[i])  # Python ints: no int64 wrap-around near 2**63
        if off < 0 or off + length > src.shape[0]:
            raise ValueError(f"frame {i}: [{off}, {off + length}) is outside the arena")
    room = frame_size - TX_DATA_OFF
    view = ring.data
    consumed = sent = too_big = 0
    for i in range(offs.shape[0]):
        n = int(lens[i])
        if n > room:
            too_big += 1
            consumed += 1
            continue
        base = head * frame_size
        if struct.unpack_from("=I", view, base + 20)[0] != TP_STATUS_AVAILABLE:
            break
        ring[base + TX_DATA_OFF:base + TX_DATA_OFF + n] = src[int(offs[i]):int(offs[i]) + n]
        struct.pack_into("=I", view, base + 16, n)  # tp_len
        struct.pack_into("=I", view, base + 12, n)  # tp_snaplen
        struct.pack_into("=I", view, base, 0)  # tp_next_offset
        struct.pack_into("=I", view, base + 20, TP_STATUS_SEND_REQUEST)
        sent += 1
        consumed += 1
        head = (head + 1) % slots
    return consumed, sent, head, too_big

"""Batch rewrite kernels, the readable oracle of ``_kernels/rewrite.pxi``: L2 rewrite + hop-limit decrement,
IPv6-in-IPv6 encapsulation and decapsulation (RFC 2473).

docs/design.md §5: verdict FORWARD rewrites L2 from the neighbor cache and decrements the hop limit; TUNNEL (PAR,
docs/design.md §1 step 4) encapsulates to the NAR with outer source PAR, outer destination NAR, as RFC 5568 does;
DECAP (NAR) strips the outer header of a tunnel packet from a peer router and hands the inner packet back
to the engine to be classified again (VPP re-injects into ip6-input the same way).

Every kernel takes a batch (``arena`` uint8, ``offsets`` int64, ``lengths`` uint32 where it needs them),
``l3_offsets`` uint32 (the IPv6 header's offset inside each frame, as the classifier reports it) and ``sel``
int64[m], the indices of the frames to process.  ``sel`` may repeat an index: each occurrence is processed
in order as if it were alone (``forward_rewrite`` then rewrites that frame twice).  Status per selected
frame, uint8[m]: 0 = done, else a DropReason; a frame that fails has a zero-length output entry, so
output entry ``j`` always belongs to ``sel[j]``.  Caller bugs (an index or an offset outside the arena)
raise ValueError before anything is written.

Status codes:
  HOP_LIMIT_EXCEEDED  hop limit <= 1: forwarding would reach 0 (RFC 8200 §3; ICMPv6 Time Exceeded is due,
                      RFC 4443 §3.3); the frame is left as it was
  FRAME_TOO_BIG       encapsulated packet larger than the tunnel MTU (RFC 2473 §7: Packet Too Big is due)
  IP6_TRUNCATED / IP6_BAD_VERSION / IP6_BAD_PAYLOAD_LENGTH   the (inner) IPv6 header is short, not version
                      6, or its payload length runs past the frame (or past the outer packet)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fmipfast.constants import ADDR_LEN, ETH_HDR_LEN, IP6_HDR_LEN, MAC48_LEN, DropReason, EtherType, IpProto
from fmipfast.reference.bufq import as_array, check_count, check_frames, int_arg

__all__ = ["forward_rewrite", "encapsulate", "decapsulate"]

_MAC = MAC48_LEN
_ADDR = ADDR_LEN
_MIN_MTU = 1280  # RFC 8200 §5: every link carries 1280-octet packets
_MAX_MTU = 65535


def _sel(sel: Any, n: int) -> np.ndarray:
    sel_a = as_array(sel, "sel", np.int64)
    for j in range(sel_a.shape[0]):
        if not 0 <= sel_a[j] < n:
            raise ValueError(f"sel[{j}]: frame index {int(sel_a[j])} outside 0..{n - 1}")
    return sel_a


def _rows(obj: Any, name: str, m: int, width: int) -> np.ndarray:
    """A per-frame value: shape (width,) for all frames or (m, width), returned as (1 or m, width)."""
    arr = as_array(obj, name, np.uint8, None)
    if arr.shape == (width,):
        return arr.reshape(1, width)
    if arr.shape == (m, width):
        return arr
    raise ValueError(f"{name}: need shape ({width},) or ({m}, {width}), got {arr.shape}")


def _frame_columns(arena: Any, offsets: Any, lengths: Any,
                   l3_offsets: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The checked arena and per-frame columns of encapsulate/decapsulate (the kernels' order of checks)."""
    arena_a = as_array(arena, "arena", np.uint8)
    offsets_a = as_array(offsets, "offsets", np.int64)
    lengths_a = as_array(lengths, "lengths", np.uint32)
    n = offsets_a.shape[0]
    check_count(lengths_a, "lengths", n, "offsets")
    l3_a = as_array(l3_offsets, "l3_offsets", np.uint32)
    check_count(l3_a, "l3_offsets", n, "offsets")
    return arena_a, offsets_a, lengths_a, l3_a, n


def _row(rows: np.ndarray, j: int) -> bytes:
    return rows[j if rows.shape[0] > 1 else 0].tobytes()


def _pack(pieces: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lengths = np.array([len(p) for p in pieces], dtype=np.uint32)
    offsets = np.zeros(len(pieces), dtype=np.int64)
    if pieces:
        offsets[1:] = np.cumsum(lengths[:-1], dtype=np.int64)
    return np.frombuffer(b"".join(pieces), dtype=np.uint8).copy(), offsets, lengths


def forward_rewrite(arena: Any, offsets: Any, l3_offsets: Any, sel: Any, dst_macs: Any, src_mac: Any) -> np.ndarray:
    """Forward the selected frames IN PLACE: new Ethernet destination and source, hop limit - 1.

    Parameters
    ----------
    arena : writable uint8[size]
    offsets : int64[n]
    l3_offsets : uint32[n]
        IPv6 header offset inside each frame (>= 14: the Ethernet addresses come first).
    sel : int64[m]
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
        are not inside the arena (there is no ``lengths``: the classifier has checked the frames).
    """
    arena_a = as_array(arena, "arena", np.uint8, writable=True)
    offsets_a = as_array(offsets, "offsets", np.int64)
    l3_a = as_array(l3_offsets, "l3_offsets", np.uint32)
    n = offsets_a.shape[0]
    check_count(l3_a, "l3_offsets", n, "offsets")
    sel_a = _sel(sel, n)
    m = sel_a.shape[0]
    dst = _rows(dst_macs, "dst_macs", m, _MAC)
    src = _rows(src_mac, "src_mac", m, _MAC)
    size = arena_a.shape[0]
    for j in range(m):
        i = int(sel_a[j])
        off, l3 = int(offsets_a[i]), int(l3_a[i])
        if off < 0 or l3 < ETH_HDR_LEN or off + l3 + IP6_HDR_LEN > size:
            raise ValueError(
                f"frame {i}: offset {off}, l3_offset {l3}: Ethernet + IPv6 headers need l3_offset >= 14 "
                f"and offset + l3_offset + 40 <= {size} (the arena)"
            )
    status = np.zeros(m, dtype=np.uint8)
    for j in range(m):
        i = int(sel_a[j])
        off, l3 = int(offsets_a[i]), int(l3_a[i])
        hop = off + l3 + 7  # RFC 8200 §3: Hop Limit is octet 7 of the IPv6 header
        if arena_a[hop] <= 1:
            status[j] = DropReason.HOP_LIMIT_EXCEEDED  # RFC 4443 §3.3: Time Exceeded, code 0
            continue
        arena_a[off : off + _MAC] = np.frombuffer(_row(dst, j), dtype=np.uint8)
        arena_a[off + _MAC : off + 2 * _MAC] = np.frombuffer(_row(src, j), dtype=np.uint8)
        arena_a[hop] -= 1
    return status


def _inner_status(frame: bytes, l3: int) -> tuple[int, int]:
    """(status, packet length) of the IPv6 packet at ``frame[l3:]``: header, version and payload length."""
    if l3 + IP6_HDR_LEN > len(frame):
        return DropReason.IP6_TRUNCATED, 0
    if frame[l3] >> 4 != 6:
        return DropReason.IP6_BAD_VERSION, 0
    total = IP6_HDR_LEN + int.from_bytes(frame[l3 + 4 : l3 + 6], "big")
    if l3 + total > len(frame):
        return DropReason.IP6_BAD_PAYLOAD_LENGTH, 0
    return 0, total


def encapsulate(arena: Any, offsets: Any, lengths: Any, l3_offsets: Any, sel: Any, outer_src: Any, outer_dst: Any,
                dst_mac: Any, src_mac: Any, *, hop_limit: Any = 64,
                mtu: Any = 1500) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tunnel the selected frames' IPv6 packets in IPv6 (RFC 2473 §3-§5) into a fresh packed batch.

    The inner packet (``l3_offset`` to the end of its IPv6 payload; Ethernet padding and VLAN tags are
    left behind) is first forwarded (its hop limit decremented in the copy, RFC 2473 §3.1), then wrapped:
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
    """
    arena_a, offsets_a, lengths_a, l3_a, n = _frame_columns(arena, offsets, lengths, l3_offsets)
    sel_a = _sel(sel, n)
    m = sel_a.shape[0]
    srcs = _rows(outer_src, "outer_src", m, _ADDR)
    dsts = _rows(outer_dst, "outer_dst", m, _ADDR)
    dmacs = _rows(dst_mac, "dst_mac", m, _MAC)
    smacs = _rows(src_mac, "src_mac", m, _MAC)
    hlim = int_arg(hop_limit, "hop_limit", 1, 255)
    tunnel_mtu = int_arg(mtu, "mtu", _MIN_MTU, _MAX_MTU)
    check_frames(arena_a, offsets_a, lengths_a)
    status = np.zeros(m, dtype=np.uint8)
    pieces: list[bytes] = []
    for j in range(m):
        i = int(sel_a[j])
        off = int(offsets_a[i])
        frame = arena_a[off : off + int(lengths_a[i])].tobytes()
        l3 = int(l3_a[i])
        st, inner_len = _inner_status(frame, l3)
        if st == 0 and frame[l3 + 7] <= 1:
            st = DropReason.HOP_LIMIT_EXCEEDED  # RFC 2473 §3.1: the entry point forwards the inner packet first
        if st == 0 and IP6_HDR_LEN + inner_len > tunnel_mtu:
            st = DropReason.FRAME_TOO_BIG  # RFC 2473 §7
        status[j] = st
        if st:
            pieces.append(b"")
            continue
        inner = bytearray(frame[l3 : l3 + inner_len])
        inner[7] -= 1
        tclass = ((inner[0] & 0x0F) << 4) | (inner[1] >> 4)
        outer = (
            bytes([0x60 | (tclass >> 4), (tclass & 0x0F) << 4, 0, 0])  # version 6, traffic class, flow label 0
            + inner_len.to_bytes(2, "big")
            + bytes([IpProto.IPV6, hlim])
            + _row(srcs, j)
            + _row(dsts, j)
        )
        eth = _row(dmacs, j) + _row(smacs, j) + int(EtherType.IPV6).to_bytes(2, "big")
        pieces.append(eth + outer + bytes(inner))
    out_arena, out_offsets, out_lengths = _pack(pieces)
    return out_arena, out_offsets, out_lengths, status


def decapsulate(arena: Any, offsets: Any, lengths: Any, l3_offsets: Any, l4_offsets: Any,
                sel: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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
    """
    arena_a, offsets_a, lengths_a, l3_a, n = _frame_columns(arena, offsets, lengths, l3_offsets)
    l4_a = as_array(l4_offsets, "l4_offsets", np.uint32)
    check_count(l4_a, "l4_offsets", n, "offsets")
    sel_a = _sel(sel, n)
    m = sel_a.shape[0]
    check_frames(arena_a, offsets_a, lengths_a)
    for j in range(m):
        i = int(sel_a[j])
        if int(l4_a[i]) < int(l3_a[i]) + IP6_HDR_LEN:
            raise ValueError(f"frame {i}: l4_offset {int(l4_a[i])} is inside the outer IPv6 header "
                             f"(l3_offset {int(l3_a[i])} + 40)")
    status = np.zeros(m, dtype=np.uint8)
    pieces: list[bytes] = []
    eth = bytes(12) + int(EtherType.IPV6).to_bytes(2, "big")
    for j in range(m):
        i = int(sel_a[j])
        off = int(offsets_a[i])
        frame = arena_a[off : off + int(lengths_a[i])].tobytes()
        l3, l4 = int(l3_a[i]), int(l4_a[i])
        inner_len = 0
        st: int
        if l3 + IP6_HDR_LEN > len(frame):
            st = DropReason.IP6_TRUNCATED
        else:
            outer_end = l3 + IP6_HDR_LEN + int.from_bytes(frame[l3 + 4 : l3 + 6], "big")
            if outer_end > len(frame):
                st = DropReason.IP6_BAD_PAYLOAD_LENGTH
            else:
                # RFC 2473 §3.2: the inner packet is the outer packet's payload (after any extension headers).
                st, inner_len = _inner_status(frame[:outer_end], l4)
        status[j] = st
        pieces.append(b"" if st else eth + frame[l4 : l4 + inner_len])
    out_arena, out_offsets, out_lengths = _pack(pieces)
    return out_arena, out_offsets, out_lengths, status

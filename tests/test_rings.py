"""TPACKET_V3 rings: the block walk and TX fill on synthetic rings (both implementations, hypothesis), and
the real thing on a veth pair in a network namespace (root): RX, TX, PACKET_IGNORE_OUTGOING, overload with
counted kernel drops, and TP_STATUS_CSUMNOTREADY on frames a local kernel sends."""

from __future__ import annotations

import os
import socket
import struct
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmipfast.lab.namespaces.netns import Netns
from fmipfast.ports import pack_frames
from fmipfast.rings import RX_MODES, TP_STATUS_CSUMNOTREADY, PacketRing

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root for network namespaces and AF_PACKET (CI runs as root)")

BLOCK = 4096
DESC = struct.Struct("=IIIIIIQ")  # version, priv, status, num, first, blk_len, seq
HDR = struct.Struct("=IIIIIIHHIIH")  # next, sec, nsec, snaplen, len, status, mac, net, rxhash, tci, tpid


def make_block(frames: list[bytes], *, mac_off: int = 82, status: int = 0, first: int = 48) -> bytearray:
    """A TPACKET_V3 block as the kernel lays it out: frames 8-aligned (V3_ALIGNMENT), tp_mac = 82."""
    block = bytearray(BLOCK)
    pos = first
    starts = []
    for data in frames:
        starts.append(pos)
        pos += -(-(mac_off + len(data)) // 8) * 8
    for i, (start, data) in enumerate(zip(starts, frames)):
        nxt = starts[i + 1] - start if i + 1 < len(starts) else 0
        HDR.pack_into(block, start, nxt, 1700000000, 123 + i, len(data), len(data), status, mac_off, mac_off + 14,
                      0, 0, 0)
        block[start + mac_off:start + mac_off + len(data)] = data
    DESC.pack_into(block, 0, 1, 0, 1, len(frames), first, pos if frames else 48, 7)
    return block


FRAMES = [bytes([i]) * (60 + 13 * i) for i in range(12)]


def test_walk_reports_every_frame(impl):
    ring = np.frombuffer(bytes(BLOCK) + make_block(FRAMES), dtype=np.uint8).copy()
    w = impl.ring_walk_block(ring, BLOCK, BLOCK)
    assert w["error"] == 0 and w["announced"] == len(FRAMES) and w["dropped"] == 0
    got = [ring[o:o + n].tobytes() for o, n in zip(w["offsets"], w["lengths"])]
    assert got == FRAMES
    assert list(w["ts_ns"]) == [1700000000 * 10**9 + 123 + i for i in range(len(FRAMES))]
    assert set(w["vlan_tci"]) == {0xFFFFFFFF}


def test_walk_max_frames_and_empty(impl):
    ring = np.frombuffer(make_block(FRAMES), dtype=np.uint8).copy()
    w = impl.ring_walk_block(ring, 0, BLOCK, max_frames=5)
    assert len(w["offsets"]) == 5 and w["dropped"] == len(FRAMES) - 5
    empty = np.frombuffer(make_block([]), dtype=np.uint8).copy()
    assert len(impl.ring_walk_block(empty, 0, BLOCK)["offsets"]) == 0


@pytest.mark.parametrize("corrupt, error, kept", [
    (lambda b: struct.pack_into("=I", b, 20, BLOCK + 16), 2, 0),  # blk_len beyond the block
    (lambda b: struct.pack_into("=I", b, 16, 8), 1, 0),  # first packet inside the descriptor
    (lambda b: struct.pack_into("=I", b, 48, 4), 3, 1),  # tp_next_offset not 8-aligned
    (lambda b: struct.pack_into("=I", b, 48, 0), 3, 1),  # tp_next_offset zero before the last frame
    (lambda b: struct.pack_into("=I", b, 48, 1 << 20), 3, 1),  # tp_next_offset past blk_len
    (lambda b: struct.pack_into("=I", b, 48 + 12, 1 << 20), 4, 0),  # snaplen past blk_len
    (lambda b: struct.pack_into("=H", b, 48 + 24, 4), 4, 0),  # tp_mac inside the frame header
])
def test_walk_rejects_damage_with_partial_frame_drop(impl, corrupt, error, kept):
    block = make_block(FRAMES)
    corrupt(block)
    ring = np.frombuffer(block, dtype=np.uint8).copy()
    w = impl.ring_walk_block(ring, 0, BLOCK)
    assert w["error"] == error and len(w["offsets"]) == kept
    assert w["dropped"] == w["announced"] - kept


def test_walk_bounds_and_status(impl):
    ring = np.frombuffer(make_block(FRAMES), dtype=np.uint8).copy()
    with pytest.raises(ValueError):
        impl.ring_walk_block(ring, 1, BLOCK)
    assert impl.ring_block_status(ring, 0) == 1
    impl.ring_release_block(ring, 0)
    assert impl.ring_block_status(ring, 0) == 0


def _walk_out(rows: int) -> tuple[np.ndarray, ...]:
    return (np.full(rows, -7, np.int64), np.full(rows, 7, np.uint32), np.full(rows, 7, np.uint32),
            np.full(rows, -7, np.int64), np.full(rows, 7, np.uint32))


def test_walk_counts_the_frames_whose_checksum_is_not_ready(impl):
    """The walk says how many of the frames it reports carry TP_STATUS_CSUMNOTREADY (the ring's
    rx_csum_not_ready counter), no more than it reports when max_frames bounds it."""
    plain = np.frombuffer(make_block(FRAMES), dtype=np.uint8).copy()
    assert impl.ring_walk_block(plain, 0, BLOCK)["csum_not_ready"] == 0
    partial = np.frombuffer(make_block(FRAMES, status=TP_STATUS_CSUMNOTREADY | 1), dtype=np.uint8).copy()
    assert impl.ring_walk_block(partial, 0, BLOCK)["csum_not_ready"] == len(FRAMES)
    assert impl.ring_walk_block(partial, 0, BLOCK, max_frames=5)["csum_not_ready"] == 5
    assert impl.ring_walk_block(partial, 0, BLOCK, max_frames=0)["csum_not_ready"] == 0


def test_walk_into_the_callers_arrays(impl):
    """``out=``: the walk fills the caller's arrays (no allocation per block) and hands back views of their
    first rows; a second walk into the same storage overwrites them; rows past the frames stay untouched."""
    ring = np.frombuffer(make_block(FRAMES), dtype=np.uint8).copy()
    want = impl.ring_walk_block(ring, 0, BLOCK)
    out = _walk_out(BLOCK // 16 + 1)
    got = impl.ring_walk_block(ring, 0, BLOCK, out=out)
    for key, target in zip(("offsets", "lengths", "status", "ts_ns", "vlan_tci"), out):
        assert np.array_equal(got[key], want[key]) and np.shares_memory(got[key], target), key
        assert got[key].dtype == want[key].dtype
    assert out[0][len(FRAMES)] == -7  # nothing written past the frames
    assert (got["error"], got["announced"], got["dropped"]) == (want["error"], want["announced"], want["dropped"])
    few = np.frombuffer(make_block(FRAMES[:3]), dtype=np.uint8).copy()
    again = impl.ring_walk_block(few, 0, BLOCK, out=out)
    assert len(again["offsets"]) == 3 and out[1][:3].tolist() == [len(f) for f in FRAMES[:3]]
    # storage of max_frames rows is enough when max_frames bounds the walk; what is beyond is counted dropped
    small = _walk_out(5)
    w = impl.ring_walk_block(ring, 0, BLOCK, max_frames=5, out=small)
    assert len(w["offsets"]) == 5 and w["dropped"] == len(FRAMES) - 5


@pytest.mark.parametrize("bad, exc", [
    (lambda rows: _walk_out(rows)[:4], TypeError),  # four arrays
    (lambda rows: "five", TypeError),
    (lambda rows: (np.zeros(rows, np.int32),) + _walk_out(rows)[1:], TypeError),  # offsets of the wrong dtype
    (lambda rows: _walk_out(rows)[:3] + (np.zeros(rows, np.uint64),) + _walk_out(rows)[4:], TypeError),
    (lambda rows: (np.zeros(rows - 1, np.int64),) + _walk_out(rows)[1:], ValueError),  # one row short
    (lambda rows: (np.zeros((rows, 2), np.int64),) + _walk_out(rows)[1:], ValueError),  # two dimensions
    (lambda rows: (np.zeros(2 * rows, np.int64)[::2],) + _walk_out(rows)[1:], ValueError),  # strided
    (lambda rows: _readonly(_walk_out(rows)), ValueError),
])
def test_walk_refuses_storage_that_does_not_fit(impl, bad, exc):
    ring = np.frombuffer(make_block(FRAMES), dtype=np.uint8).copy()
    with pytest.raises(exc):
        impl.ring_walk_block(ring, 0, BLOCK, out=bad(BLOCK // 16 + 1))


def _readonly(out: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    out[2].flags.writeable = False
    return out


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_walk_of_a_damaged_block_agrees_and_stays_inside(data):
    from fmipfast import reference
    from tests.conftest import HAVE_CORE

    block = make_block(FRAMES[: data.draw(st.integers(0, len(FRAMES)))])
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, 400))
        block[pos] = data.draw(st.integers(0, 255))
    ring = np.frombuffer(block, dtype=np.uint8).copy()
    ref = reference.ring_walk_block(ring, 0, BLOCK)
    for o, n in zip(ref["offsets"], ref["lengths"]):
        assert 0 <= o and o + n <= BLOCK
    assert ref["csum_not_ready"] == np.count_nonzero(ref["status"] & TP_STATUS_CSUMNOTREADY)
    if HAVE_CORE:
        from fmipfast import _core

        got = _core.ring_walk_block(ring, 0, BLOCK)
        for key in ("offsets", "lengths", "status", "ts_ns", "vlan_tci"):
            assert np.array_equal(got[key], ref[key]), key
        assert (got["error"], got["announced"], got["dropped"], got["csum_not_ready"]) == (
            ref["error"], ref["announced"], ref["dropped"], ref["csum_not_ready"])
        # and into the caller's storage, bounded by it
        rows = data.draw(st.integers(0, BLOCK // 16 + 1))
        got = _core.ring_walk_block(ring, 0, BLOCK, max_frames=rows, out=_walk_out(rows))
        want = reference.ring_walk_block(ring, 0, BLOCK, max_frames=rows, out=_walk_out(rows))
        for key in ("offsets", "lengths", "status", "ts_ns", "vlan_tci"):
            assert np.array_equal(got[key], want[key]), key
        assert (got["error"], got["announced"], got["dropped"], got["csum_not_ready"]) == (
            want["error"], want["announced"], want["dropped"], want["csum_not_ready"])


def test_tx_fill(impl):
    frame_size, slots = 256, 8
    tx = np.zeros(frame_size * slots, dtype=np.uint8)
    arena = np.frombuffer(b"".join(FRAMES[:10]), dtype=np.uint8)
    lens = np.array([len(f) for f in FRAMES[:10]], dtype=np.uint32)
    offs = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    lens[3] = 250  # too big for a 256-octet slot (208 octets of room)
    consumed, sent, head, too_big = impl.ring_tx_fill(tx, frame_size, 6, arena, offs, lens)
    # slots 6, 7, 0..5 are free: 8 frames fit, frame 3 is skipped, so 9 are consumed and the ring is full
    assert (consumed, sent, head, too_big) == (9, 8, 6, 1)
    for k, i in enumerate([0, 1, 2, 4, 5, 6, 7, 8]):
        slot = (6 + k) % slots * frame_size
        length, status = struct.unpack_from("=I", tx, slot + 16)[0], struct.unpack_from("=I", tx, slot + 20)[0]
        assert status == 1 and length == len(FRAMES[i])
        assert tx[slot + 48:slot + 48 + length].tobytes() == FRAMES[i]
    assert impl.ring_tx_fill(tx, frame_size, head, arena, offs[9:], lens[9:])[:2] == (0, 0)  # full
    with pytest.raises(ValueError):
        impl.ring_tx_fill(tx, 100, 0, arena, offs, lens)


# ------------------------------------------------------------------------------------------ real rings


@pytest.fixture
def veth():
    ns = Netns(f"rings-{os.getpid()}")
    try:
        ns.veth("va", "vb")
        yield ns
    finally:
        ns.delete()


def _raw(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((ifname, 0))
    return s


def _frame(i: int, size: int = 100) -> bytes:
    body = struct.pack("!I", i) + bytes((i + k) & 0xFF for k in range(size - 18))
    return b"\x02\x00\x00\x00\x00\x0a" + b"\x02\x00\x00\x00\x00\x0b" + b"\x88\xb5" + body  # local experimental


def _collect(ring: PacketRing, want: int, timeout: float = 5.0) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        ring.wait(0.1)
        for block in ring.blocks():
            got += [block.arena[o:o + n].tobytes() for o, n in zip(block.offsets, block.lengths)]
            block.release()
    return got


@pytest.mark.parametrize("rx_mode", RX_MODES)
@needs_root
def test_rx_ring_receives_what_the_peer_sends(veth, rx_mode):
    with veth.enter():
        with PacketRing("va", rx_mode=rx_mode, rx_block_size=1 << 16, rx_block_nr=8, rx_timeout_ms=5) as ring:
            tx = _raw("vb")
            frames = [_frame(i, 60 + i * 7) for i in range(200)]
            for f in frames:
                tx.send(f)
            got = [g for g in _collect(ring, len(frames)) if g[12:14] == b"\x88\xb5"]
            tx.close()
            assert got == frames
            stats = ring.statistics()
            assert stats["drops"] == 0 and stats["packets"] >= len(frames)
            assert ring.counters["rx_walk_errors"] == 0


@pytest.mark.parametrize("rx_mode", RX_MODES)
@needs_root
def test_a_frame_larger_than_the_link_mtu_does_not_wedge_the_tx_ring(veth, rx_mode):
    """The kernel refuses a TX ring slot longer than the device's MTU (EMSGSIZE); without PACKET_LOSS it
    then stops at that slot for good, and nothing queued after it is ever sent: one oversize frame would end
    the interface's transmission.  With PACKET_LOSS the kernel skips the slot and goes on."""
    veth.ip("link", "set", "va", "mtu", "1280")
    with veth.enter():
        with PacketRing("va", rx_mode=rx_mode, rx_block_size=1 << 16, rx_block_nr=2, rx_timeout_ms=5,
                        tx_frame_nr=16) as ring:
            rx = _raw("vb")
            rx.settimeout(0.5)
            got = []
            for i, size in enumerate((100, 1400, 100, 120, 1300, 140)):
                arena, offsets, lengths = pack_frames([_frame(i, size)])
                ring.send(arena, offsets, lengths)
                try:
                    while True:
                        f = rx.recv(4096)
                        if f[12:14] == b"\x88\xb5":
                            got.append((struct.unpack_from("!I", f, 14)[0], len(f)))
                except socket.timeout:
                    pass
            rx.close()
            assert got == [(0, 100), (2, 100), (3, 120), (5, 140)]
            assert ring.counters["tx_send_errors"] == 0


@pytest.mark.parametrize("rx_mode", RX_MODES)
@needs_root
def test_tx_ring_sends_and_never_rereads_its_own_frames(veth, rx_mode):
    with veth.enter():
        with PacketRing("va", rx_mode=rx_mode, rx_block_size=1 << 16, rx_block_nr=4, rx_timeout_ms=5,
                        tx_frame_nr=64) as ring:
            rx = _raw("vb")
            rx.settimeout(2.0)
            frames = [_frame(i) for i in range(50)]
            arena = np.frombuffer(b"".join(frames), dtype=np.uint8)
            offs = np.arange(50, dtype=np.int64) * 100
            lens = np.full(50, 100, dtype=np.uint32)
            assert ring.send(arena, offs, lens) == 50
            got = []
            while len(got) < 50:
                data = rx.recv(4096)
                if data[12:14] == b"\x88\xb5":
                    got.append(data)
            rx.close()
            assert got == frames
            assert ring.counters["tx_frames"] == 50
            # PACKET_IGNORE_OUTGOING: our own transmissions never come back on our RX ring
            assert [g for g in _collect(ring, 1, timeout=0.5) if g[12:14] == b"\x88\xb5"] == []


@pytest.mark.parametrize("rx_mode", RX_MODES)
@needs_root
def test_overload_is_counted_never_a_crash(veth, rx_mode):
    with veth.enter():
        with PacketRing("va", rx_mode=rx_mode, rx_block_size=4096, rx_block_nr=2, rx_timeout_ms=1000) as ring:
            tx = _raw("vb")
            sent = 3000
            for i in range(sent):
                tx.send(_frame(i, 200))
            tx.close()
            time.sleep(0.2)
            got = _collect(ring, sent, timeout=2.0)
            stats = ring.statistics()
            mine = [g for g in got if g[12:14] == b"\x88\xb5"]
            assert stats["drops"] > 0, "a 2-block ring should have overflowed"
            # conservation: everything the socket saw was either delivered through the ring or dropped
            assert len(got) + stats["drops"] == stats["packets"]
            assert len(mine) <= sent and len(mine) > 0


@pytest.mark.parametrize("rx_mode", RX_MODES)
@needs_root
def test_kernel_udp_over_veth_arrives_csum_not_ready(veth, rx_mode):
    """docs/design.md §5: a UDP frame a local kernel sends over veth reaches the ring with TP_STATUS_CSUMNOTREADY."""
    veth.sysctl("net.ipv6.conf.vb.disable_ipv6", 0)
    veth.ip("-6", "addr", "add", "2001:db8:77::2/64", "dev", "vb", "nodad")
    veth.ip("-6", "neigh", "add", "2001:db8:77::1", "lladdr", "02:00:00:00:00:0a", "dev", "vb")
    with veth.enter():
        with PacketRing("va", rx_mode=rx_mode, rx_block_size=1 << 16, rx_block_nr=4, rx_timeout_ms=5) as ring:
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            s.sendto(b"x" * 64, ("2001:db8:77::1", 5000))
            s.close()
            deadline = time.monotonic() + 5
            statuses = []
            while not statuses and time.monotonic() < deadline:
                ring.wait(0.1)
                for block in ring.blocks():
                    for o, n, stt in zip(block.offsets, block.lengths, block.status):
                        frame = block.arena[o:o + n].tobytes()
                        if frame[12:14] == b"\x86\xdd" and frame[20] == 17:
                            statuses.append(int(stt))
                    block.release()
            assert statuses and statuses[0] & TP_STATUS_CSUMNOTREADY
            assert ring.counters["rx_csum_not_ready"] >= 1


@needs_root
def test_bad_interface_is_a_clear_error():
    from fmipfast.rings import RingError

    with pytest.raises(RingError, match="nope0"):
        PacketRing("nope0")


@needs_root
def test_classic_bpf_filter_and_fanout_group(veth):
    """A classic-BPF program (what ``tcpdump -dd ip6`` prints) keeps only IPv6; two rings in one
    PACKET_FANOUT hash group share the flows between them, each frame delivered to exactly one."""
    ip6_only = [(0x28, 0, 0, 12), (0x15, 0, 1, 0x86DD), (0x6, 0, 0, 0x40000), (0x6, 0, 0, 0)]
    with veth.enter():
        with PacketRing("va", rx_block_size=1 << 16, rx_block_nr=4, rx_timeout_ms=5, bpf=ip6_only) as ring:
            tx = _raw("vb")
            ipv6 = b"\x02\x00\x00\x00\x00\x0a\x02\x00\x00\x00\x00\x0b\x86\xdd" + bytes(60)
            other = _frame(1)
            for _ in range(5):
                tx.send(ipv6)
                tx.send(other)
            tx.close()
            got = _collect(ring, 5, timeout=2.0)
            assert got.count(ipv6) == 5 and other not in got
        group = os.getpid() & 0xFFFF
        rings = [PacketRing("va", rx_block_size=1 << 16, rx_block_nr=4, rx_timeout_ms=5, fanout=(group, "hash"))
                 for _ in range(2)]
        try:
            tx = _raw("vb")
            flows = []
            for i in range(64):  # 64 UDP flows (the kernel's flow hash reads addresses and ports)
                udp = struct.pack("!HHHH", 1000 + i, 2000, 16, 0) + bytes(8)
                ip6 = (struct.pack("!IHBB", 6 << 28, len(udp), 17, 64) + bytes.fromhex("20010db8" + "00" * 11 + "01")
                       + bytes.fromhex("20010db8" + "00" * 11 + "02") + udp)
                f = bytes([2, 0, 0, 0, 0, 0x0a]) + bytes([2, 0, 0, 0, 0, 0x0b]) + b"\x86\xdd" + ip6
                flows.append(f)
                tx.send(f)
            tx.close()
            time.sleep(0.2)
            shares = [[g for g in _collect(r, 64, timeout=0.5) if g in flows] for r in rings]
            assert sorted(shares[0] + shares[1]) == sorted(flows)
            assert shares[0] and shares[1], "hash fanout put every flow on one ring"
        finally:
            for r in rings:
                r.close()


@pytest.mark.parametrize("rx_mode", RX_MODES)
@needs_root
def test_a_batch_larger_than_the_tx_ring_is_sent_in_rounds(veth, rx_mode):
    """The engine may hand more frames than TX slots: send() refills as the kernel frees them."""
    with veth.enter():
        with PacketRing("va", rx_mode=rx_mode, rx_block_size=1 << 16, rx_block_nr=4, tx_frame_nr=8) as ring:
            rx = _raw("vb")
            rx.settimeout(2.0)
            frames = [_frame(i) for i in range(100)]
            arena = np.frombuffer(b"".join(frames), dtype=np.uint8)
            sent = ring.send(arena, np.arange(100, dtype=np.int64) * 100, np.full(100, 100, dtype=np.uint32))
            got = []
            while len(got) < sent:
                data = rx.recv(4096)
                if data[12:14] == b"\x88\xb5":
                    got.append(data)
            rx.close()
            assert sent == 100 and got == frames and ring.counters["tx_ring_full"] == 0


# ------------------------------------------------------------------------ the low-latency control socket


def _ip6(next_header: int, payload: bytes) -> bytes:
    src = bytes.fromhex("fe80" + "00" * 13 + "01")
    dst = bytes.fromhex("fe80" + "00" * 13 + "02")
    ip6 = struct.pack("!IHBB", 6 << 28, len(payload), next_header, 255) + src + dst + payload
    return b"\x02\x00\x00\x00\x00\x0a\x02\x00\x00\x00\x00\x0b\x86\xdd" + ip6


def _icmp(kind: int) -> bytes:
    return bytes([kind, 0, 0, 0]) + bytes(20)


def _ah(inner_next: int, payload: bytes, words: int = 4) -> bytes:
    """An Authentication Header of ``words`` 32-bit words (length field words - 2) before ``payload``."""
    return bytes([inner_next, words - 2, 0, 0]) + bytes(4 * words - 4) + payload


CONTROL_TYPES = (133, 135, 136, 200)
CONTROL_FRAMES = {
    "ns": _ip6(58, _icmp(135)),
    "fmip": _ip6(58, _icmp(200)),
    "fmip behind AH (HI)": _ip6(51, _ah(58, _icmp(200))),
    "fmip behind a longer AH": _ip6(51, _ah(58, _icmp(200), words=7)),
}
OTHER_FRAMES = {
    "echo request": _ip6(58, _icmp(128)),
    "udp": _ip6(17, struct.pack("!HHHH", 1000, 5555, 16, 0) + bytes(8)),
    "AH over UDP": _ip6(51, _ah(17, bytes(16))),
    "AH over an ICMPv6 type not asked for": _ip6(51, _ah(58, _icmp(129))),
    "hop-by-hop first (not walked)": _ip6(0, bytes([58, 0]) + bytes(6) + _icmp(135)),
    "not IPv6": _frame(3),
    "truncated after the IPv6 header": _ip6(58, b""),
    "an AH claiming more than the frame holds": _ip6(51, bytes([58, 200, 0, 0]) + bytes(4)),
}


def test_control_bpf_programs_reject_bad_arguments():
    from fmipfast.rings import icmp6_types_bpf, udp_port_bpf

    with pytest.raises(ValueError, match="0..255"):
        icmp6_types_bpf([256])
    with pytest.raises(ValueError, match="at least one"):
        icmp6_types_bpf([])
    with pytest.raises(ValueError, match="1..65535"):
        udp_port_bpf(0)
    prog = icmp6_types_bpf(CONTROL_TYPES)
    assert prog[-2:] == [(0x06, 0, 0, 0x40000), (0x06, 0, 0, 0)]
    assert icmp6_types_bpf(CONTROL_TYPES, invert=True)[-2:] == [(0x06, 0, 0, 0), (0x06, 0, 0, 0x40000)]


@needs_root
def test_control_socket_takes_exactly_the_control_frames_and_the_inverted_ring_the_rest(veth):
    """The control socket (icmp6_types_bpf) receives the listed ICMPv6 types, directly or behind an AH, each
    with a kernel timestamp taken between the send and the read; a ring with the inverted program gets every
    other frame and none of those: nothing is lost, nothing seen twice."""
    from fmipfast.rings import ControlSocket, icmp6_types_bpf

    with veth.enter():
        with ControlSocket("va", icmp6_types_bpf(CONTROL_TYPES)) as ctl, \
                PacketRing("va", rx_block_size=1 << 16, rx_block_nr=4, rx_timeout_ms=5,
                           bpf=icmp6_types_bpf(CONTROL_TYPES, invert=True)) as ring:
            tx = _raw("vb")
            before = time.time_ns()
            for f in (*CONTROL_FRAMES.values(), *OTHER_FRAMES.values()):
                tx.send(f)
            tx.close()
            got: list = []
            deadline = time.monotonic() + 2
            while len(got) < len(CONTROL_FRAMES) and time.monotonic() < deadline:
                ctl.wait(0.1)
                got += ctl.receive()
            after = time.time_ns()
            on_ring = _collect(ring, len(OTHER_FRAMES), timeout=2.0)
            time.sleep(0.05)
            assert ctl.receive() == []
            stats = ctl.statistics()
    assert [p.frame for p in got] == list(CONTROL_FRAMES.values())
    assert all(before <= p.ts_ns <= after for p in got), [(before, p.ts_ns, after) for p in got]
    assert sorted(on_ring) == sorted(OTHER_FRAMES.values())
    assert ctl.counters["frames"] == len(CONTROL_FRAMES) and ctl.counters["no_timestamp"] == 0
    assert all(p.status & TP_STATUS_CSUMNOTREADY == 0 for p in got)  # complete frames from a packet socket
    assert stats == {"packets": len(CONTROL_FRAMES), "drops": 0}


@needs_root
def test_a_per_frame_ring_hands_each_frame_over_at_once(veth):
    """What the per-frame (TPACKET_V2) ring is for: the kernel hands a frame over, and wakes the reader, as it
    arrives, while a block ring holds the same frame until its block retires (here 500 ms)."""
    with veth.enter():
        with PacketRing("va", rx_mode="frames", rx_block_size=1 << 16, rx_block_nr=2) as frames, \
                PacketRing("va", rx_block_size=1 << 16, rx_block_nr=4, rx_timeout_ms=500) as blocks:
            time.sleep(0.6)  # start right after a retire: the block ring's next one is ~500 ms away
            for ring in (frames, blocks):
                for block in ring.blocks():
                    block.release()
            tx = _raw("vb")
            for i in range(3):
                tx.send(_frame(i, 80))
                assert frames.wait(2.0)
                got = []
                deadline = time.monotonic() + 2.0
                while not got and time.monotonic() < deadline:
                    for run in frames.blocks():
                        got += [run.arena[o:o + n].tobytes() for o, n in zip(run.offsets, run.lengths)]
                        run.release()
                assert _frame(i, 80) in got
            tx.close()
            assert blocks.next_block() is None, "the block ring handed its block over before the per-frame one"
            assert frames.counters["rx_frames"] >= 3 and frames.counters["rx_walk_errors"] == 0


@pytest.mark.parametrize("bad", [dict(rx_mode="v2"), dict(rx_mode="frames", rx_frame_size=100),
                                 dict(rx_mode="frames", rx_frame_size=3000)])
def test_a_per_frame_geometry_that_does_not_fit_is_refused(bad):
    with pytest.raises(ValueError, match="rx_mode|rx_frame_size"):
        PacketRing("lo", rx_block_size=1 << 16, **bad)


@needs_root
def test_control_socket_delivers_before_the_ring_retires_its_block(veth):
    """What the control socket is for: a frame wakes its reader at once, while the same frame on a ring waits
    for the block's retire timer (here 500 ms): the control socket has it while the ring still owns it."""
    from fmipfast.rings import ControlSocket, icmp6_types_bpf

    with veth.enter():
        with ControlSocket("va", icmp6_types_bpf([200])) as ctl, \
                PacketRing("va", rx_block_size=1 << 16, rx_block_nr=4, rx_timeout_ms=500) as ring:
            time.sleep(0.6)  # start right after a retire: the ring's next one is ~500 ms away
            for block in ring.blocks():
                block.release()
            tx = _raw("vb")
            tx.send(CONTROL_FRAMES["fmip"])
            tx.close()
            assert ctl.wait(2.0)
            assert [p.frame for p in ctl.receive()] == [CONTROL_FRAMES["fmip"]]
            assert ring.next_block() is None, "the ring handed its block over before the control socket read"
            assert CONTROL_FRAMES["fmip"] in _collect(ring, 1, timeout=2.0)


@needs_root
def test_control_socket_outgoing_udp_filter_and_a_bad_interface(veth):
    """udp_port_bpf(outgoing_only=True) sees the datagrams this namespace sends to the port on the interface,
    not those it receives; a control socket on a missing interface is a clear RingError."""
    from fmipfast.rings import PACKET_OUTGOING, ControlSocket, RingError, udp_port_bpf

    udp = OTHER_FRAMES["udp"]
    with veth.enter():
        with ControlSocket("va", udp_port_bpf(5555, outgoing_only=True), ignore_outgoing=False) as ctl:
            tx = _raw("vb")
            tx.send(udp)  # arrives on va: incoming, not passed
            tx.close()
            out = _raw("va")
            out.send(udp)  # leaves by va: outgoing, passed
            out.close()
            assert ctl.wait(2.0)
            time.sleep(0.05)
            got = ctl.receive()
        assert [(p.frame, p.pkttype) for p in got] == [(udp, PACKET_OUTGOING)]
        with pytest.raises(RingError, match="nope0"):
            ControlSocket("nope0", udp_port_bpf(5555))
    with pytest.raises(ValueError, match="BPF program"):
        ControlSocket("lo", [])


def test_a_frame_batch_holds_the_kernels_dtypes_from_construction():
    """The engine hands a FrameBatch's vectors to the compiled node as they are: whatever the batch is made
    from (lists, other integer dtypes, strided views), it holds C-contiguous int64 offsets and uint32 lengths
    and status, with the same values; arrays already of those types are kept, not copied."""
    from fmipfast.rings import FrameBatch

    arena = np.zeros(64, dtype=np.uint8)
    wide = np.arange(8, dtype=np.int32)
    fb = FrameBatch(None, arena, [0, 10, 20], wide[::3].astype(np.uint16), wide[::3], np.zeros(3, np.int64))
    for name, dtype in (("offsets", np.int64), ("lengths", np.uint32), ("status", np.uint32)):
        a = getattr(fb, name)
        assert a.dtype == dtype and a.flags.c_contiguous, name
    assert fb.offsets.tolist() == [0, 10, 20] and fb.lengths.tolist() == [0, 3, 6] and fb.status.tolist() == [0, 3, 6]
    off = np.array([0, 8], np.int64)
    kept = FrameBatch(None, arena, off, np.ones(2, np.uint32), np.zeros(2, np.uint32), np.zeros(2, np.int64))
    assert kept.offsets is off

"""Rewrite kernels (docs/design.md §5 FORWARD / TUNNEL / DECAP): L2 rewrite + hop-limit decrement (RFC 8200 §3),
IPv6-in-IPv6 encapsulation and decapsulation (RFC 2473).  Behaviour on both implementations (``impl``,
ids py/c) with scapy as the independent dissector, then hypothesis agreement of fmipfast._core with
fmipfast.reference on random batches (sizes 0..257, random selections with repeats, malformed frames)."""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from fmipfast import reference
from fmipfast.constants import DropReason
from tests.conftest import HAVE_CORE, _core
from tests.test_bufq import BATCH_SIZES, batch, unpack

R = DropReason
PAR = ipaddress.IPv6Address("2001:db8:1::1").packed
NAR = ipaddress.IPv6Address("2001:db8:2::1").packed
NAR_MAC = bytes.fromhex("02005e100002")
PAR_MAC = bytes.fromhex("02005e100001")
NEXT_MAC = bytes.fromhex("02005e1000aa")
MAC = np.frombuffer(NEXT_MAC, dtype=np.uint8)
SRC_MAC = np.frombuffer(PAR_MAC, dtype=np.uint8)


def u8(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8)


def udp_frame(hlim: int = 64, size: int = 20, tc: int = 0, fl: int = 0, vlan: bool = False) -> bytes:
    l2 = Ether(dst="02:00:5e:00:00:01", src="02:00:5e:00:00:02")
    if vlan:
        l2 = l2 / Dot1Q(vlan=5)
    pkt = l2 / IPv6(src="2001:db8:9::7", dst="2001:db8:1::aa", hlim=hlim, tc=tc, fl=fl) / UDP(
        sport=4000, dport=5000) / Raw(bytes(i & 0xFF for i in range(size)))
    return bytes(pkt)


def sel(*idx: int) -> np.ndarray:
    return np.array(idx, dtype=np.int64)


def l3s(frames: list[bytes], vlan_idx: tuple[int, ...] = ()) -> np.ndarray:
    return np.array([18 if i in vlan_idx else 14 for i in range(len(frames))], dtype=np.uint32)


# --------------------------------------------------------------------------------------------------
# forward_rewrite


def test_forward_rewrite_in_place_scapy_checks(impl):
    frames = [udp_frame(64), udp_frame(1), udp_frame(2, vlan=True), udp_frame(0)]
    arena, offsets, lengths = batch(frames)
    dst = np.stack([MAC, MAC, MAC, MAC])
    status = impl.forward_rewrite(arena, offsets, l3s(frames, (2,)), sel(0, 1, 2, 3), dst, SRC_MAC)
    assert status.dtype == np.uint8
    assert status.tolist() == [0, R.HOP_LIMIT_EXCEEDED, 0, R.HOP_LIMIT_EXCEEDED]
    out = unpack(arena, offsets, lengths)
    p0 = Ether(out[0])
    assert (p0.dst, p0.src, p0[IPv6].hlim) == ("02:00:5e:10:00:aa", "02:00:5e:10:00:01", 63)
    assert bytes(p0[IPv6].payload) == bytes(Ether(frames[0])[IPv6].payload)
    assert out[1] == frames[1]  # hop limit 1: Time Exceeded is due, frame untouched
    p2 = Ether(out[2])
    assert (p2.dst, p2[Dot1Q].vlan, p2[IPv6].hlim) == ("02:00:5e:10:00:aa", 5, 1)
    assert out[3] == frames[3]


def test_forward_rewrite_only_touches_selected_frames_and_repeats_apply_twice(impl):
    frames = [udp_frame(10), udp_frame(10), udp_frame(10)]
    arena, offsets, lengths = batch(frames)
    macs = np.stack([MAC, SRC_MAC])
    status = impl.forward_rewrite(arena, offsets, l3s(frames), sel(2, 2), macs, SRC_MAC)
    assert status.tolist() == [0, 0]
    out = unpack(arena, offsets, lengths)
    assert out[:2] == frames[:2]
    p = Ether(out[2])
    assert p[IPv6].hlim == 8 and p.dst == "02:00:5e:10:00:01"  # the second row wrote last


def test_forward_rewrite_per_frame_source_macs(impl):
    frames = [udp_frame(10), udp_frame(10)]
    arena, offsets, _ = batch(frames)
    srcs = np.stack([MAC, SRC_MAC])
    impl.forward_rewrite(arena, offsets, l3s(frames), sel(0, 1), MAC, srcs)
    assert Ether(arena[: len(frames[0])].tobytes()).src == "02:00:5e:10:00:aa"
    assert Ether(arena[len(frames[0]) :].tobytes()).src == "02:00:5e:10:00:01"


def test_forward_rewrite_errors(impl):
    frames = [udp_frame(10), udp_frame(10)]
    arena, offsets, _ = batch(frames)
    good = (arena, offsets, l3s(frames), sel(0, 1), np.stack([MAC, MAC]), SRC_MAC)

    def call(i, value):
        args = list(good)
        args[i] = value
        return impl.forward_rewrite(*args)

    with pytest.raises(TypeError, match="arena: read-only"):
        call(0, arena.tobytes())
    ro = arena.copy()
    ro.flags.writeable = False
    with pytest.raises(TypeError, match="arena: read-only"):
        call(0, ro)
    with pytest.raises(ValueError, match="arena: must be C-contiguous"):
        call(0, np.zeros(2 * arena.shape[0], np.uint8)[::2])
    with pytest.raises(TypeError, match="l3_offsets: need dtype uint32"):
        call(2, l3s(frames).astype(np.int64))
    with pytest.raises(ValueError, match="l3_offsets: 1 entries, offsets has 2"):
        call(2, l3s(frames)[:1])
    with pytest.raises(ValueError, match=r"sel\[1\]: frame index 2 outside 0..1"):
        call(3, sel(0, 2))
    with pytest.raises(ValueError, match=r"dst_macs: need shape \(6,\) or \(2, 6\), got \(2, 5\)"):
        call(4, np.zeros((2, 5), np.uint8))
    with pytest.raises(ValueError, match=r"src_mac: need shape"):
        call(5, np.zeros(5, np.uint8))
    with pytest.raises(ValueError, match="frame 1: offset .* l3_offset 14: Ethernet \\+ IPv6 headers"):
        call(0, arena[: len(frames[0]) + 40].copy())
    with pytest.raises(ValueError, match="frame 0: offset 0, l3_offset 13"):
        call(2, np.array([13, 14], np.uint32))
    before = arena.copy()
    with pytest.raises(ValueError):
        call(3, sel(0, 1, 5))
    assert np.array_equal(arena, before)  # nothing written on error


# --------------------------------------------------------------------------------------------------
# encapsulate / decapsulate


def encap(impl, frames, idx, l3=None, **kw):
    arena, offsets, lengths = batch(frames)
    return impl.encapsulate(arena, offsets, lengths, l3s(frames) if l3 is None else l3, sel(*idx), u8(PAR),
                            u8(NAR), u8(NAR_MAC), u8(PAR_MAC), **kw)


def test_encapsulate_parses_in_scapy_as_ipv6_in_ipv6(impl):
    frames = [udp_frame(64, 100, tc=0xB8, fl=0x12345), udp_frame(5, 30, vlan=True)]
    out, offsets, lengths, status = encap(impl, frames, (0, 1), l3=l3s(frames, (1,)), hop_limit=77)
    assert status.tolist() == [0, 0]
    assert out.dtype == np.uint8 and offsets.dtype == np.int64 and lengths.dtype == np.uint32
    for frame, tunnel in zip(frames, unpack(out, offsets, lengths)):
        p = Ether(tunnel)
        assert (p.dst, p.src, p.type) == ("02:00:5e:10:00:02", "02:00:5e:10:00:01", 0x86DD)
        outer, inner = p[IPv6], p[IPv6].payload
        original = Ether(frame)[IPv6]
        assert outer.nh == 41 and outer.hlim == 77 and outer.fl == 0 and outer.tc == original.tc
        assert (outer.src, outer.dst) == ("2001:db8:1::1", "2001:db8:2::1")
        assert outer.plen == len(bytes(original))
        assert isinstance(inner, IPv6)
        expected = bytearray(bytes(original))
        expected[7] -= 1  # RFC 2473 §3.1: forwarded before it is encapsulated
        assert bytes(inner) == bytes(expected)
        assert len(tunnel) == 14 + 40 + len(bytes(original))  # no Ethernet padding, no VLAN tag carried
    assert Ether(unpack(out, offsets, lengths)[0])[IPv6].payload.tc == 0xB8


def test_encapsulate_statuses_and_zero_length_entries(impl):
    ok = udp_frame(64, 50)
    hop1 = udp_frame(1, 50)
    big = udp_frame(64, 1500 - 40 - 40 - 8 + 1)  # inner 1461 octets: outer 1501 > 1500
    fits = udp_frame(64, 1500 - 40 - 40 - 8)  # outer exactly 1500
    badver = bytearray(ok)
    badver[14] = 0x40
    short = ok[:14 + 39]
    badplen = ok[:-1]
    frames = [ok, hop1, big, fits, bytes(badver), short, badplen]
    out, offsets, lengths, status = encap(impl, frames, tuple(range(7)))
    assert status.tolist() == [0, R.HOP_LIMIT_EXCEEDED, R.FRAME_TOO_BIG, 0, R.IP6_BAD_VERSION, R.IP6_TRUNCATED,
                               R.IP6_BAD_PAYLOAD_LENGTH]
    first = 14 + 40 + len(ok) - 14
    assert lengths.tolist() == [first, 0, 0, 1514, 0, 0, 0]
    assert offsets.tolist() == [0, first, first, first, first + 1514, first + 1514, first + 1514]
    assert out.shape[0] == first + 1514
    # A larger tunnel MTU lets the big one through.
    assert encap(impl, [big], (0,), mtu=1501)[3].tolist() == [0]


def test_encapsulate_trailing_padding_is_left_behind(impl):
    frame = udp_frame(64, 2) + b"\x00" * 6  # Ethernet minimum-size padding after the IPv6 packet
    out, offsets, lengths, status = encap(impl, [frame], (0,))
    assert status.tolist() == [0] and lengths.tolist() == [14 + 40 + 40 + 8 + 2]


def test_decapsulate_inverts_encapsulate(impl):
    frames = [udp_frame(64, n) for n in (0, 1, 100, 1000)]
    tunnel, toff, tlen, status = encap(impl, frames, (3, 0, 1, 2, 0))
    assert not status.any()
    l3 = np.full(5, 14, np.uint32)
    inner, ioff, ilen, dstatus = impl.decapsulate(tunnel, toff, tlen, l3, l3 + 40, sel(0, 1, 2, 3, 4))
    assert not dstatus.any()
    for j, src_idx in enumerate((3, 0, 1, 2, 0)):
        got = unpack(inner, ioff, ilen)[j]
        assert got[:14] == bytes(12) + b"\x86\xdd"
        expected = bytearray(frames[src_idx][14:])
        expected[7] -= 1  # the encapsulator forwarded it; the decapsulator leaves the hop limit alone
        assert got[14:] == bytes(expected)
        assert Ether(got)[UDP].dport == 5000


def _tunnel(inner: bytes, outer_plen: int | None = None, ext: bytes = b"", nh: int = 41) -> bytes:
    plen = len(ext) + len(inner) if outer_plen is None else outer_plen
    outer = bytes([0x60, 0, 0, 0]) + plen.to_bytes(2, "big") + bytes([nh if not ext else 60, 64]) + PAR + NAR
    return bytes(12) + b"\x86\xdd" + outer + ext + inner


def test_decapsulate_statuses(impl):
    inner = udp_frame(9, 10)[14:]
    dstopts = bytes([41, 0, 1, 4, 0, 0, 0, 0])  # a destination options header (PadN) before the inner packet
    badver = bytearray(inner)
    badver[0] = 0x50
    frames = [
        _tunnel(inner),
        _tunnel(inner, ext=dstopts),
        _tunnel(inner[:30]),  # fewer than 40 octets of inner packet
        _tunnel(bytes(badver)),
        _tunnel(inner[:-1]),  # inner payload length past the outer packet
        _tunnel(inner, outer_plen=len(inner) + 1),  # outer payload length past the frame
        _tunnel(inner)[:14 + 30],  # outer header truncated
        _tunnel(inner) + b"\xff" * 4,  # trailing octets after the outer packet are left behind
    ]
    arena, offsets, lengths = batch(frames)
    l3 = np.full(len(frames), 14, np.uint32)
    l4 = l3 + 40
    l4[1] += len(dstopts)
    out, ooff, olen, status = impl.decapsulate(arena, offsets, lengths, l3, l4, sel(*range(len(frames))))
    assert status.tolist() == [0, 0, R.IP6_TRUNCATED, R.IP6_BAD_VERSION, R.IP6_BAD_PAYLOAD_LENGTH,
                               R.IP6_BAD_PAYLOAD_LENGTH, R.IP6_TRUNCATED, 0]
    got = unpack(out, ooff, olen)
    want = bytes(12) + b"\x86\xdd" + inner
    assert got[0] == got[1] == got[7] == want
    assert Ether(got[0])[IPv6].hlim == 9
    assert all(g == b"" for g in got[2:7])


def test_decapsulate_rejects_an_l4_offset_inside_the_outer_header(impl):
    frames = [_tunnel(udp_frame(9, 10)[14:])]
    arena, offsets, lengths = batch(frames)
    l3 = np.array([14], np.uint32)
    with pytest.raises(ValueError, match="frame 0: l4_offset 53 is inside the outer IPv6 header"):
        impl.decapsulate(arena, offsets, lengths, l3, l3 + 39, sel(0))


def test_encapsulate_errors(impl):
    frames = [udp_frame(10)]
    arena, offsets, lengths = batch(frames)
    base = dict(arena=arena, offsets=offsets, lengths=lengths, l3_offsets=l3s(frames), sel=sel(0),
                outer_src=u8(PAR), outer_dst=u8(NAR), dst_mac=u8(NAR_MAC), src_mac=u8(PAR_MAC))
    cases = [
        (dict(outer_src=u8(PAR[:15])), ValueError, r"outer_src: need shape \(16,\) or \(1, 16\)"),
        (dict(outer_dst=u8(NAR).astype(np.int8)), TypeError, "outer_dst: need dtype uint8"),
        (dict(dst_mac=None), TypeError, "dst_mac: need a numpy uint8 array, got None"),
        (dict(lengths=lengths + 1), ValueError, "frame 0: offset 0 \\+ length"),
        (dict(sel=np.array([0.0])), TypeError, "sel: need dtype int64, got float64"),
        (dict(hop_limit=0), ValueError, "hop_limit: 0 outside 1..255"),
        (dict(mtu=1279), ValueError, "mtu: 1279 outside 1280..65535"),
        (dict(mtu=65536), ValueError, "mtu: 65536 outside"),
    ]
    for change, exc, message in cases:
        args = {**base, **change}
        kw = {k: args.pop(k) for k in ("hop_limit", "mtu") if k in args}
        with pytest.raises(exc, match=message):
            impl.encapsulate(*args.values(), **kw)
    # A read-only arena is fine for encapsulate (it writes a fresh one).
    arena.flags.writeable = False
    assert impl.encapsulate(*base.values())[3].tolist() == [0]


@pytest.mark.parametrize("n", BATCH_SIZES)
def test_batch_sizes(impl, n):
    frames = [udp_frame(64 - (i % 3) * 31 - (i % 2), i % 50) for i in range(n)]  # hop limits 64 .. 1
    arena, offsets, lengths = batch(frames)
    l3 = l3s(frames)
    everything = np.arange(n, dtype=np.int64)
    tunnel, toff, tlen, status = impl.encapsulate(arena, offsets, lengths, l3, everything, u8(PAR), u8(NAR),
                                                  u8(NAR_MAC), u8(PAR_MAC))
    assert status.shape == toff.shape == tlen.shape == (n,)
    inner, ioff, ilen, dstatus = impl.decapsulate(tunnel, toff, tlen, np.full(n, 14, np.uint32),
                                                  np.full(n, 54, np.uint32), everything)
    for j in range(n):
        if status[j] == 0:
            assert dstatus[j] == 0 and ilen[j] == lengths[j]
        else:
            assert status[j] == R.HOP_LIMIT_EXCEEDED and dstatus[j] == R.IP6_TRUNCATED  # zero-length entry
    fstatus = impl.forward_rewrite(arena, offsets, l3, everything, MAC, SRC_MAC)
    assert np.array_equal(fstatus, status)


# --------------------------------------------------------------------------------------------------
# Agreement: _core against the reference on random batches


@st.composite
def random_batches(draw):
    n = draw(st.sampled_from(BATCH_SIZES) | st.integers(0, 12))
    frames, l3, l4 = [], [], []
    for _ in range(n):
        l3_off = draw(st.sampled_from([14, 18, 22]))
        body = draw(st.binary(min_size=0, max_size=120))
        plen = draw(st.integers(0, 130))
        first = draw(st.sampled_from([0x60, 0x60, 0x6B, 0x45, 0x00]))
        hlim = draw(st.sampled_from([0, 1, 2, 64, 255]))
        header = bytes([first, draw(st.integers(0, 255)), 0, 0]) + plen.to_bytes(2, "big") + bytes([41, hlim])
        frame = bytes(l3_off) + header + bytes(32) + body
        frame = frame[: draw(st.integers(0, len(frame)))] if draw(st.booleans()) and n < 20 else frame
        frames.append(frame)
        l3.append(l3_off)
        l4.append(l3_off + 40 + draw(st.sampled_from([0, 0, 8, 200])))
    m = draw(st.integers(0, 2 * n + 1)) if n else 0
    sel_ = draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m)) if n else []
    return frames, np.array(l3, np.uint32), np.array(l4, np.uint32), np.array(sel_, np.int64)


def _outcome(fn, *args, **kw):
    try:
        return ("ok", fn(*args, **kw))
    except (TypeError, ValueError) as exc:
        return ("raise", type(exc), str(exc))


def _same(a, b):
    assert a[0] == b[0], (a, b)
    if a[0] == "raise":
        assert a == b
        return
    ra, rb = a[1], b[1]
    ra, rb = (ra, rb) if isinstance(ra, tuple) else ((ra,), (rb,))
    for x, y in zip(ra, rb):
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)


if HAVE_CORE:
    SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

    @SETTINGS
    @given(b=random_batches(), hop_limit=st.sampled_from([1, 64, 255]), mtu=st.sampled_from([1280, 1300, 1500]))
    def test_agree_encapsulate_and_decapsulate(b, hop_limit, mtu):
        frames, l3, l4, idx = b
        arena, offsets, lengths = batch(frames)
        args = (arena, offsets, lengths, l3, idx, u8(PAR), u8(NAR), u8(NAR_MAC), u8(PAR_MAC))
        _same(_outcome(reference.encapsulate, *args, hop_limit=hop_limit, mtu=mtu),
              _outcome(_core.encapsulate, *args, hop_limit=hop_limit, mtu=mtu))
        args = (arena, offsets, lengths, l3, l4, idx)
        _same(_outcome(reference.decapsulate, *args), _outcome(_core.decapsulate, *args))

    @SETTINGS
    @given(b=random_batches(), per_frame=st.booleans())
    def test_agree_forward_rewrite(b, per_frame):
        frames, l3, _, idx = b
        arena, offsets, _ = batch(frames)
        macs = np.arange(len(idx) * 6, dtype=np.uint64).astype(np.uint8).reshape(-1, 6)
        src = macs[::-1].copy() if per_frame else SRC_MAC
        ours, theirs = arena.copy(), arena.copy()
        a = _outcome(reference.forward_rewrite, theirs, offsets, l3, idx, macs, src)
        b2 = _outcome(_core.forward_rewrite, ours, offsets, l3, idx, macs, src)
        _same(a, b2)
        assert np.array_equal(ours, theirs)


# --------------------------------------------------------------------------------------------------
# Agreement on the success paths: valid inner IPv6 packets and valid IPv6-in-IPv6 frames (then mutated)

ETH_IPV6 = bytes(12) + b"\x86\xdd"
VLAN_TAG = b"\x81\x00\x00\x05"


@st.composite
def ipv6_packets(draw, *, big: bool = True) -> bytes:
    """A well-formed IPv6 packet (RFC 8200 §3): version 6, payload length = the payload's size."""
    tc = draw(st.integers(0, 255))
    flow = draw(st.integers(0, 0xFFFFF))
    nh = draw(st.sampled_from([17, 58, 6, 59, 41, 0]))
    hlim = draw(st.sampled_from([2, 3, 64, 255]))  # forwardable; the "hop_limit" mutation sets 0 or 1
    jumbo = big and draw(st.integers(0, 7)) == 0  # now and then near the tunnel MTU (FRAME_TOO_BIG)
    size, seed = draw(st.integers(1200, 1300) if jumbo else st.integers(0, 160)), draw(st.integers(0, 255))
    payload = bytes((seed + i) & 0xFF for i in range(size))
    first = (6 << 28) | (tc << 20) | flow
    return (first.to_bytes(4, "big") + len(payload).to_bytes(2, "big") + bytes([nh, hlim])
            + draw(st.binary(min_size=32, max_size=32)) + payload)


def _l2(draw) -> bytes:
    tags = draw(st.sampled_from([0, 0, 0, 1, 2]))
    return bytes(12) + VLAN_TAG * tags + b"\x86\xdd"


# Mutations of a valid frame: each a way the kernels' checks can fail (or pass by accident).
MUTATIONS = ["none", "truncate", "version", "plen_up", "plen_down", "hop_limit", "padding", "l3"]


def _mutate(draw, frame: bytes, at: int, kind: str) -> tuple[bytes, int]:
    """``frame`` with the IPv6 header at ``at`` damaged per ``kind``; returns (frame, l3 to report)."""
    f = bytearray(frame)
    if kind == "truncate":
        f = f[: draw(st.integers(0, len(f) - 1))]
    elif kind == "version" and len(f) > at:
        f[at] = (draw(st.sampled_from([0, 4, 5, 7, 15])) << 4) | (f[at] & 0x0F)
    elif kind in ("plen_up", "plen_down") and len(f) >= at + 6:
        plen = int.from_bytes(f[at + 4 : at + 6], "big")
        delta = draw(st.integers(1, 70000))
        plen = min(plen + delta, 0xFFFF) if kind == "plen_up" else max(plen - delta, 0)
        f[at + 4 : at + 6] = plen.to_bytes(2, "big")
    elif kind == "hop_limit" and len(f) >= at + 8:
        f[at + 7] = draw(st.sampled_from([0, 1]))
    elif kind == "padding":
        f += draw(st.binary(min_size=1, max_size=40))
    elif kind == "l3":
        return bytes(f), draw(st.sampled_from([0, 13, 15, at + 1, at + 40, len(f), len(f) + 1]))
    return bytes(f), at


@st.composite
def valid_inner_batches(draw):
    """Frames Ethernet (+ 0-2 VLAN tags) + a valid IPv6 packet (+ optional padding), most left intact."""
    n = draw(st.integers(1, 12))
    frames, l3, kinds = [], [], []
    for _ in range(n):
        l2 = _l2(draw)
        frame = l2 + draw(ipv6_packets())
        kind = draw(st.sampled_from(MUTATIONS[:1] * 10 + MUTATIONS[1:]))
        frame, at = _mutate(draw, frame, len(l2), kind)
        frames.append(frame)
        l3.append(at)
        kinds.append(kind)
    m = draw(st.integers(1, 2 * n))
    sel_ = draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m))
    return frames, np.array(l3, np.uint32), np.array(sel_, np.int64), kinds


@st.composite
def valid_tunnel_batches(draw):
    """IPv6-in-IPv6 frames (RFC 2473): Ethernet + outer IPv6 (next header 41, or a destination options /
    hop-by-hop header first) + a valid inner IPv6 packet, with the l3/l4 offsets the classifier reports."""
    n = draw(st.integers(1, 12))
    frames, l3, l4, kinds = [], [], [], []
    for _ in range(n):
        l2 = _l2(draw)
        inner = draw(ipv6_packets(big=False))
        ext_units = draw(st.sampled_from([None, None, 0, 1]))
        ext = b"" if ext_units is None else bytes([41, ext_units]) + bytes(6 + 8 * ext_units)
        first_nh = 41 if ext_units is None else draw(st.sampled_from([0, 60]))
        outer_plen = len(ext) + len(inner)
        outer = (bytes([0x60, 0, 0, 0]) + outer_plen.to_bytes(2, "big") + bytes([first_nh, 64])
                 + PAR + NAR)
        frame = l2 + outer + ext + inner
        at_outer, at_inner = len(l2), len(l2) + 40 + len(ext)
        kind = draw(st.sampled_from(MUTATIONS[:1] * 12 + MUTATIONS[1:] + ["inner_" + k for k in MUTATIONS[1:5]]))
        l4_ = at_inner
        if kind.startswith("inner_"):
            frame, _ = _mutate(draw, frame, at_inner, kind[len("inner_"):])
            at = at_outer
        else:
            frame, at = _mutate(draw, frame, at_outer, kind)
        if kind == "l3":
            l4_ = max(l4_, at + 40)  # keep l4 >= l3 + 40 (else it is a caller error, tested elsewhere)
        frames.append(frame)
        l3.append(at)
        l4.append(l4_)
        kinds.append(kind)
    m = draw(st.integers(1, 2 * n))
    sel_ = draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m))
    return frames, np.array(l3, np.uint32), np.array(l4, np.uint32), np.array(sel_, np.int64), kinds


if HAVE_CORE:
    from collections import Counter

    from hypothesis import event

    VALID = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

    def test_agree_encapsulate_on_valid_inner_packets():
        seen: Counter = Counter()

        @VALID
        @given(b=valid_inner_batches(), hop_limit=st.sampled_from([1, 64, 255]),
               mtu=st.sampled_from([1280, 1300, 1500]))
        def agree(b, hop_limit, mtu):
            frames, l3, idx, kinds = b
            arena, offsets, lengths = batch(frames)
            args = (arena, offsets, lengths, l3, idx, u8(PAR), u8(NAR), u8(NAR_MAC), u8(PAR_MAC))
            ref = _outcome(reference.encapsulate, *args, hop_limit=hop_limit, mtu=mtu)
            _same(ref, _outcome(_core.encapsulate, *args, hop_limit=hop_limit, mtu=mtu))
            assert ref[0] == "ok"
            status = ref[1][3]
            for j, i in enumerate(idx.tolist()):
                event(f"encapsulate {kinds[i]}: {R(int(status[j])).name}")
                seen["frames"] += 1
                seen["ok"] += int(status[j]) == 0
                seen["intact"] += kinds[i] == "none"
            # the tunnel frames decapsulate back to the inner packets (the success path of both)
            tunnel, toff, tlen, _ = ref[1]
            m = len(idx)
            back = _outcome(reference.decapsulate, tunnel, toff, tlen, np.full(m, 14, np.uint32),
                            np.full(m, 54, np.uint32), np.arange(m, dtype=np.int64))
            _same(back, _outcome(_core.decapsulate, tunnel, toff, tlen, np.full(m, 14, np.uint32),
                                 np.full(m, 54, np.uint32), np.arange(m, dtype=np.int64)))

        agree()
        assert seen["ok"] >= 0.4 * seen["frames"], seen  # the success path is much of what is compared
        assert seen["ok"] < seen["frames"], seen  # ... and the failure paths are reached too

    def test_agree_decapsulate_on_valid_tunnel_frames():
        seen: Counter = Counter()

        @VALID
        @given(b=valid_tunnel_batches())
        def agree(b):
            frames, l3, l4, idx, kinds = b
            arena, offsets, lengths = batch(frames)
            args = (arena, offsets, lengths, l3, l4, idx)
            ref = _outcome(reference.decapsulate, *args)
            _same(ref, _outcome(_core.decapsulate, *args))
            assert ref[0] == "ok"
            status = ref[1][3]
            for j, i in enumerate(idx.tolist()):
                event(f"decapsulate {kinds[i]}: {R(int(status[j])).name}")
                seen["frames"] += 1
                seen["ok"] += int(status[j]) == 0

        agree()
        assert seen["ok"] >= 0.4 * seen["frames"], seen
        assert seen["ok"] < seen["frames"], seen

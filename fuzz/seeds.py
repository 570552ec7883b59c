"""Seed corpora: ``python -m fuzz seed`` rebuilds fuzz/corpus/<target>/ from samples/handover.pcap (its
frames split out), the golden vectors of tests/golden/, and the encoders (messages of every kind, LKB PDUs
from a real in-process KDC, AH-protected packets, the example configurations).  Each seed is written in the
input layout its target reads (fuzz/targets.py), named by a short hash of its content, so a rebuild is
deterministic except for what the encoders randomise (nonces)."""

from __future__ import annotations

import asyncio
import hashlib
import re
import struct
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "handover.pcap"
_NOW = 1_800_000_000  # the lwkerb target's clock


def _frames() -> list[bytes]:
    from fmipfast.pcap import read_pcap

    return [r.data for r in read_pcap(SAMPLE)]


def _golden() -> list[tuple[str, str, bytes]]:
    from tests.golden.messages import VECTORS

    return [(src, dst, bytes.fromhex(re.sub(r"\s+", "", text))) for src, dst, text in VECTORS.values()]


def _icmp6_payload(frame: bytes) -> bytes | None:
    """The ICMPv6 message of an Ethernet/IPv6 frame (after any extension headers and AH), if there is one."""
    if len(frame) < 54 or frame[12:14] != b"\x86\xdd":
        return None
    nh, off = frame[20], 54
    while nh in (0, 43, 60, 51) and off + 2 <= len(frame):
        n = (frame[off + 1] + 2) * 4 if nh == 51 else (frame[off + 1] + 1) * 8
        nh, off = frame[off], off + n
    return frame[off:] if nh == 58 else None


# ------------------------------------------------------------------------------------------- per target


def classify() -> Iterator[bytes]:
    frames = _frames()
    from fmipfast import frames as F

    mac_a, mac_b = bytes.fromhex("020000000002"), bytes.fromhex("020000000001")
    for _src, _dst, msg in _golden():
        frames.append(F.build_ethernet(mac_a, mac_b, F.build_ipv6(_src, _dst, 58, msg, 255)))
    for frame in frames:
        yield b"\x00\x00" + struct.pack(">H", len(frame)) + frame
    batch = b"".join(struct.pack(">H", len(f)) + f for f in frames[:12])
    yield b"\x46\x00" + batch  # gaps, counters, a reused Batch
    yield b"\x01\x00" + batch  # another codepoint profile
    free = frames[0] + frames[1]
    yield b"\x20\x02" + struct.pack(">hHhH", 0, len(frames[0]), len(frames[0]), len(frames[1])) + free


def node() -> Iterator[bytes]:
    """Blocks in the classify layout whose frames meet every kind of entry and route of the node target's
    world (fuzz/targets.py), and the sample handover's frames."""
    from fmipfast import frames as F

    def addr(net: int, host: int) -> str:
        return f"2001:db8:{net:x}::{host:x}"

    mine, other = bytes.fromhex("020000000001"), bytes.fromhex("02000000bbbb")
    udp = struct.pack(">HHHH", 1, 2, 12, 0) + b"data"
    made = []
    for net, host in ((1, 1), (1, 0xA), (1, 0xB), (2, 0xA), (2, 0xB), (2, 1), (3, 0xA), (0xFF, 7), (4, 9), (9, 9)):
        for hop in (64, 1):
            made.append(F.build_ethernet(mine, other, F.build_ipv6(addr(7, 7), addr(net, host), 17, udp, hop)))
    inner = F.build_ipv6(addr(7, 7), addr(1, 0xA), 17, udp, 64)
    for src in (addr(2, 1), addr(7, 7)):
        made.append(F.build_ethernet(mine, other, F.build_ipv6(src, addr(1, 1), 41, inner, 64)))
    made.append(F.build_ethernet(other, other, F.build_ipv6(addr(7, 7), addr(1, 0xA), 17, udp, 64)))
    made.append(F.build_ethernet(mine, other, F.build_ipv6(addr(7, 7), addr(2, 0xB), 135, bytes(16), 64)))
    for flags in (0x00, 0x18, 0x04, 0x42, 0x5E):
        yield bytes([flags, 0]) + b"".join(struct.pack(">H", len(f)) + f for f in made)
    sample = _frames()[:24]
    yield b"\x00\x00" + b"".join(struct.pack(">H", len(f)) + f for f in sample)


_DESC = struct.Struct("=IIIIIIQ")
_HDR = struct.Struct("=IIIIIIHHIIH")


def _block(frames: list[bytes], mac_off: int = 82, status: int = 0, size: int | None = None) -> bytes:
    """A TPACKET_V3 block as the kernel lays it out (frames 8-aligned, tp_mac = 82)."""
    pos, starts = 48, []
    for data in frames:
        starts.append(pos)
        pos += -(-(mac_off + len(data)) // 8) * 8
    block = bytearray(size or pos)
    for i, (start, data) in enumerate(zip(starts, frames)):
        nxt = starts[i + 1] - start if i + 1 < len(starts) else 0
        _HDR.pack_into(block, start, nxt, 1700000000, 123 + i, len(data), len(data), status | (16 if i % 2 else 0),
                       mac_off, mac_off + 14, 0, 100 + i, 0x8100)
        block[start + mac_off:start + mac_off + len(data)] = data
    _DESC.pack_into(block, 0, 3, 0, 1, len(frames), 48, pos if frames else 48, 7)
    return bytes(block)


def ring() -> Iterator[bytes]:
    frames = _frames()
    for k in (0, 1, 3, len(frames)):
        yield b"\x00" + bytes(5) + _block(frames[:k])
    block = _block(frames[:4])
    yield b"\x10\x00\x00\x00\x00\x02" + block  # max_frames 2
    yield b"\x20\x00\x00\x00\x00\x04" + block  # and a TX fill of what the walk found
    yield b"\x04" + struct.pack(">HHB", 64, len(block), 0) + bytes(64) + block  # the block further into the ring


def ring_node() -> Iterator[bytes]:
    """Rings in the ring_node target's layout (fuzz/targets.py): blocks of frames of every kind the node meets
    (forwarded, tunnelled, buffered, decapsulated, dropped, the router's own, left to the caller), blocks
    damaged in each way the target knows, raw blocks of the sample handover's frames, a block the kernel owns;
    TX rings roomy, small, full and with heads outside them; chunks of every capacity."""

    def header(flags: int, size_v: int, options: int, sizes: int, cursor: int, limit: int,
               tx: tuple[tuple[int, int], tuple[int, int]]) -> bytes:
        return (bytes([flags]) + struct.pack(">H", size_v) + bytes([options, sizes, cursor, limit])
                + bytes(tx[0]) + bytes(tx[1]))

    def frames(*kinds: tuple[int, int]) -> bytes:
        """(kind, param) pairs, each with a short payload."""
        return bytes([len(kinds)]) + b"".join(bytes([k, p, 6]) + b"fuzzed" for k, p in kinds)

    def block(mode: int, body: bytes, status: int = 0, patches: bytes = b"") -> bytes:
        return bytes([mode]) + body + bytes([status]) + patches

    every = frames(*[(10, d) for d in range(0, 12, 2)], (0, 0), (0, 2), (1, 0), (2, 0), (3, 0), (4, 4), (5, 3),
                   (6, 0), (7, 0), (8, 0), (9, 1), (9, 0), (10, 0x80), (10, 0x10), (10, 0x21), (0x88, 0x40))
    done = frames(*[(10, d) for d in (0, 1, 2, 3)], (0, 0), (1, 0), (10, 0x84), (10, 0), (0, 3))
    roomy = ((0x01 | 1 << 2, 15), (0x01 | 1 << 2, 15))  # 16 slots of 2048, head 0
    small = ((0x02 | 3 << 2 | 0x08, 0x12), (0x03 | 2 << 2, 0x52))  # a busy slot; slots of 64 and 128; heads 1, 2
    outside = ((0x01, 0x53), (0x01, 0xE7))  # heads past the ring and near 2**62
    for flags, sizes, tx in ((0x80, 0x3F, roomy), (0x00, 0x3F, roomy), (0x80, 0x09, small), (0x90, 0x01, roomy),
                             (0x80, 0x3F, outside), (0x40, 0x3F, roomy)):
        yield header(flags, 192, 0x02, sizes, 0, 1, tx) + block(0x02, done, 0) + block(0x03, every, 0)
    four = b"".join(block(0x02 | d << 4, done if d % 2 else every, 0) for d in range(4))
    yield header(0x83, 64, 0x02, 0x3F, 1, 3, roomy) + four  # four blocks from the second on, wrapping round
    yield header(0x13, 0, 0x03, 0x2A, 0, 3, small) + four  # hold, capacity 3, smaller blocks
    for damage in range(1, 5):  # each damage the target knows, after a good block
        yield (header(0x81, 192, 0x00, 0x3F, 0, 1, roomy) + block(0x02, done)
               + block(0x02 | damage << 4, every, 0, b"\x05"))
    yield header(0x80, 192, 0x00, 0x3F, 0, 0, roomy) + block(0x42, every, 0, b"\x02" + struct.pack(">HI", 12, 0x31)
                                                             + struct.pack(">HI", 36, 1 << 31))  # patched words
    yield header(0x01, 192, 0x00, 0x3F, 0, 1, roomy) + block(0x01, done) + block(0x02, done)  # the kernel's block
    yield header(0x20, 192, 0x00, 0x3F, 5, 9, roomy) + block(0x02, done)  # a cursor the checks refuse
    sample = _frames()
    raw = _block(sample[:6], size=4096)
    yield header(0x80, 192, 0x00, 0x3F, 0, 0, roomy) + bytes([0x80]) + raw + b"\x00"  # the sample, raw


def ring_frames() -> Iterator[bytes]:
    """V2 rings in the ring_frames target's layout (fuzz/targets.py): slots of frames the node forwards, drops,
    leaves to the caller, a run round the end of the ring, the kernel's slots, damaged slots (tp_snaplen, tp_mac),
    a stripped tag, raw slots of the sample's frames; geometries the checks refuse; storage of every size."""

    def header(flags: int, fs_v: int, c: int, m: int, opt: int, sizes: int, tx: bytes = b"\x05\x0f\x05\x0f") -> bytes:
        return bytes([flags, fs_v, c, m, opt, sizes]) + tx

    def slot(kind: int, param: int, mode: int = 0x01, extra: bytes = b"") -> bytes:
        """A frame slot: mode, the frame (kind, param, a short payload), the damage octets, the timestamp octet."""
        return bytes([mode, kind, param, 6]) + b"fuzzed" + extra + b"\x07"

    fwd = [slot(10, d) for d in (0, 1, 2, 3)]
    dropped = slot(1, 0)
    own = slot(10, 4)  # the router's own address: a chunk for the caller
    size256 = 14  # 16 * (2 + 14) = 256 octets a slot
    yield header(0x03, size256, 0, 3, 0x20, 0x3F) + b"".join(fwd)  # four forwarded, walked and run whole
    yield header(0x05, size256, 4, 5, 0x21, 0x09) + b"".join(fwd[:2] + [dropped, own, slot(0, 0), slot(10, 0x80)])
    yield header(0x04, size256, 3, 4, 0x2A, 0x3F) + b"".join([fwd[0], slot(10, 0, 0x21), fwd[1], fwd[2], fwd[3]])
    yield header(0x03, size256, 0, 1, 0x20, 0xBF) + b"".join(fwd[:2] + [slot(10, 0, 0x05, b"\x04"), fwd[3]])
    yield header(0x03, size256, 1, 3, 0x28, 0x3F) + b"".join(fwd[:2] + [slot(10, 0, 0xC3), fwd[3]])
    yield header(0x02, size256, 2, 2, 0x20, 0x3F) + b"".join(fwd[:2] + [slot(0x8A, 0x40)])  # a stripped tag
    yield header(0x07, 4, 6, 7, 0x20, 0x7F) + b"".join(fwd * 2)  # 96-octet slots: frames cut, round the end
    yield header(0x03, size256, 2, 2, 0x31, 0x3F) + b"".join([dropped] * 4)  # max_frames 2, storage a row short
    for geometry, c, m in ((4, 5, 0), (5, 0, 0), (5, 5, 1), (5, 10, 2), (5, 15, 3), (6, 2, 0), (7, 0, 1), (7, 0, 4)):
        yield header(0x01 | geometry << 3, size256, c, m, 0x00, 0x3F) + b"".join(fwd[:2])
    sample = _frames()[:3]
    raw = b"".join(b"\x00" + struct.pack("=IIIHHIIHH", 1, len(f), len(f), 66, 80, 1, 2, 0, 0).ljust(66, b"\0")
                   + f.ljust(256 - 66, b"\0")[:256 - 66] for f in sample)
    yield header(0x02, size256, 0, 2, 0x20, 0x3F) + raw  # the sample's frames, raw slots


def messages() -> Iterator[bytes]:
    from fmipfast import frames as F
    from fmipfast import messages as M

    for _src, _dst, raw in _golden():
        yield b"\x00" + raw
        yield b"\x03" + raw  # checksum refilled for fe80::1 -> fe80::2, then verified
    for frame in _frames():
        payload = _icmp6_payload(frame)
        if payload is not None:
            yield b"\x00" + payload
    mac = bytes.fromhex("02005e100002")
    built = [
        M.RouterSolicitation(options=(M.SourceLinkLayerAddress(mac), M.AdjacentRealmsRequest())),
        M.RouterAdvertisement(options=(M.SourceLinkLayerAddress(mac), M.Mtu(1500),
                                       M.AdjacentRealms(("B.EXAMPLE", "C.EXAMPLE")))),
    ]
    for message in built:
        yield b"\x03" + M.encode(message, "fe80::1", "fe80::2")
    del F


def pcap() -> Iterator[bytes]:
    data = SAMPLE.read_bytes()
    yield data
    yield data[:24 + 16 + 20]  # header, one record cut short
    swapped = bytearray(data[:24])  # a big-endian file header with one record
    magic, vmaj, vmin, tz, sig, snap, lt = struct.unpack("<IHHiIII", swapped)
    first = data[24:24 + 16]
    ts, tu, caplen, orig = struct.unpack("<IIII", first)
    yield (struct.pack(">IHHiIII", magic, vmaj, vmin, tz, sig, snap, lt) + struct.pack(">IIII", ts, tu, caplen, orig)
           + data[40:40 + caplen])
    frame = _frames()[0]

    def block(btype: int, body: bytes) -> bytes:
        body += bytes(-len(body) % 4)
        total = 12 + len(body)
        return struct.pack("<II", btype, total) + body + struct.pack("<I", total)

    def option(code: int, value: bytes) -> bytes:
        return struct.pack("<HH", code, len(value)) + value + bytes(-len(value) % 4)

    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + option(4, b"fuzz") + option(0, b""))
    idb = block(1, struct.pack("<HHI", 1, 0, 65535) + option(9, b"\x09") + option(14, struct.pack("<q", 5))
                + option(0, b""))
    epb = block(6, struct.pack("<IIIII", 0, 1, 2, len(frame), len(frame)) + frame + bytes(-len(frame) % 4)
                + option(1, b"comment") + option(0, b""))
    spb = block(3, struct.pack("<I", len(frame)) + frame)
    pb = block(2, struct.pack("<HHIIII", 0, 0, 1, 2, len(frame), len(frame)) + frame)
    unknown = block(0x0BAD, b"\x01\x02\x03\x04")
    yield shb + idb + epb + spb + pb + unknown
    yield shb + epb  # a packet before any interface
    yield shb + idb + shb + idb + epb  # a second section


def lwkerb() -> Iterator[bytes]:
    from fmipfast.security import kdc as K
    from fmipfast.security import lwkerb as L
    from fuzz.targets import _make_lwkerb  # noqa: F401 - the layout below is the one it reads

    nar = L.Principal("nar1", "REALM-B")
    mn = L.Principal("mn1", "REALM-B")
    key = L.Key(3, bytes(range(32)))
    mn_key = L.Key(1, bytes(range(50, 82)))
    skey = L.Key(0, bytes(range(100, 132)))
    part = L.EncTicketPart(L.TicketFlag.PRE_AUTHENT, _NOW - 60, _NOW - 60, _NOW + 3600, skey.value, mn,
                           ((L.AUTHZ_TRANSITED, b"REALM-X"), (9, b"role=mn")))
    ticket = L.Ticket.issue(nar, key, part)
    creds = L.Credentials(mn, nar, ticket, skey, part.flags, _NOW - 60, _NOW - 60, _NOW + 3600)
    binding = L.HandoverBinding("2001:db8:b::99", "2001:db8:a::99", "2001:db8:b::1", 0x0102)
    ap_req, auth = L.build_ap_req(creds, binding, now=_NOW)
    ap_req_none, _ = L.build_ap_req(creds, L.BINDING_NONE, now=_NOW)
    ap_rep = L.ApRep(L.seal(skey, L.Usage.AP_REP, b"", L.EncApRepPart(auth.ctime_us, auth.nonce).encode()))
    # a real KDC answers an AS-REQ, a TGS-REQ and a bad request (AS-REP, TGS-REP, KRB-ERROR)
    realm = "REALM-B"
    keytab = L.Keytab()
    for principal, k in ((L.krbtgt(realm), L.Key(1, bytes(32))), (L.access_principal(realm), L.Key(1, bytes([1]) * 32)),
                         (mn, mn_key), (nar, key)):
        keytab.add(principal, k)
    kdc = K.Kdc(K.KdcConfig(realm=realm, keytab=keytab), clock=lambda: _NOW)
    as_req = L.build_as_req(mn, L.krbtgt(realm), mn_key, now=_NOW)
    as_rep = asyncio.run(kdc.handle(as_req.encode()))
    tgt = L.read_kdc_rep(as_rep, mn_key, as_req.nonce)
    tgs_req = L.build_tgs_req(tgt, nar, now=_NOW)
    tgs_rep = asyncio.run(kdc.handle(tgs_req.encode()))
    krb_error = asyncio.run(kdc.handle(b"\x03" + bytes(20)))
    open_req = L.OpenReq.build(nar, key, ticket, 7, _NOW)
    pdus = {
        "decode_pdu": [as_req.encode(), as_rep, tgs_req.encode(), tgs_rep, ap_req.encode(), ap_rep.encode(),
                       krb_error, open_req.encode()],
        "Principal": [mn.encode()], "Sealed": [ap_rep.enc.encode()], "EncTicketPart": [part.encode()],
        "Ticket": [ticket.encode()], "HandoverBinding": [binding.encode()], "Authenticator": [auth.encode()],
        "ApReq": [ap_req.encode()], "EncApRepPart": [L.EncApRepPart(auth.ctime_us, auth.nonce).encode()],
        "ApRep": [ap_rep.encode()], "AsReq": [as_req.encode()], "TgsReq": [tgs_req.encode()],
        "KdcRep": [as_rep, tgs_rep], "KrbError": [krb_error], "OpenReq": [open_req.encode()],
    }
    order = ["decode_pdu", "Principal", "Sealed", "EncTicketPart", "Ticket", "HandoverBinding", "Authenticator",
             "ApReq", "EncApRepPart", "ApRep", "AsReq", "TgsReq", "EncKdcRepPart", "KdcRep", "KrbError", "OpenReq",
             "OpenRep"]
    for name, items in pdus.items():
        for item in items:
            if item is not None:
                yield bytes([order.index(name)]) + item
    yield b"\x81" + ap_req.encode()  # verifies: the binding and the clock match the target's
    yield b"\x80" + ap_req_none.encode()
    yield b"\xc0" + as_rep  # read under the wrong nonce/key: an LkbError


def ah() -> Iterator[bytes]:
    from fmipfast import frames as F
    from fmipfast.security import ah as A
    from fuzz.targets import _AH_KEY, _AH_LOCAL, _AH_PEER, _AH_SPI

    icmp = bytes.fromhex("c803000040800000") + bytes(16)
    plain = F.build_ipv6(_AH_PEER, _AH_LOCAL, 58, icmp, 64)
    hbh = F.build_ipv6(_AH_PEER, _AH_LOCAL, 0, bytes([58, 0, 0x05, 0x02, 0, 0, 0x01, 0x00]) + icmp, 64)
    dst_opts = bytes([58, 0, 0x01, 0x04, 0, 0, 0, 0])
    rh2 = bytes([60, 2, 2, 1, 0, 0, 0, 0]) + bytes.fromhex("20010db8000200000000000000000099")
    routed = F.build_ipv6(_AH_PEER, _AH_LOCAL, 43, rh2 + dst_opts + icmp, 64)
    for spi, peer in ((_AH_SPI, _AH_PEER), (_AH_SPI + 1, None)):
        for packet in (plain, hbh, routed):
            sa = A.SecurityAssociation(spi, _AH_KEY, peer=peer)
            yield b"\x00" + A.protect(packet, sa)
    for packet in (plain, hbh, routed):
        yield b"\x80" + packet
        yield b"\xc3" + packet


def config() -> Iterator[bytes]:
    from fmipfast.config import DEFAULTS_TOML

    yield DEFAULTS_TOML.encode()
    # every commented example table of the defaults, uncommented (interfaces, routes, security, mn)
    lines = []
    for line in DEFAULTS_TOML.splitlines():
        m = re.match(r"# (\[.*|[a-z_]+ = .*)$", line)
        lines.append(m.group(1) if m else line)
    text = "\n".join(lines).replace('"<64 hex digits>"', '"' + "ab" * 32 + '"').replace('"..."', '"pw"')
    text = text.replace('password = "pw"', "key = \"" + "cd" * 32 + "\"")
    yield text.encode()
    key = "00" * 32
    yield (f'realm = "B.EXAMPLE"\nlisten = "[::1]:8888"\nrouters = ["host/nar@B.EXAMPLE"]\nticket_lifetime = 600\n'
           f'skew = 30.5\nrequire_preauth = false\n[rate]\nrate = 10.0\nburst = 5\nmax_sources = 16\n'
           f'[[keys]]\nprincipal = "krbtgt/B.EXAMPLE@B.EXAMPLE"\nkey = "{key}"\n'
           f'[[keys]]\nprincipal = "access/B.EXAMPLE@B.EXAMPLE"\nkvno = 2\nkey = "{key}"\n'
           f'[peers]\n"A.EXAMPLE" = "192.0.2.1:88"\n[routes]\n"C.EXAMPLE" = "A.EXAMPLE"\n').encode()
    yield b"a = " + b"[" * 12 + b"1" + b"]" * 12 + b"\nb = " + b"{c = " * 8 + b"1" + b"}" * 8 + b"\n"  # nesting
    yield b'[router]\nname = "x"\n[[router.interfaces]]\nname = "eth0"\naddresses = ["2001:db8::1/64"]\n'


def control() -> Iterator[bytes]:
    import json

    yield b'{"id": 1, "cmd": "ping"}\n'
    for i, cmd in enumerate(("counters", "neighbors", "interfaces", "handovers", "mobile-nodes", "metrics")):
        yield json.dumps({"id": i, "cmd": cmd, "args": {}}).encode() + b"\n"
    yield json.dumps({"id": 9, "cmd": "handover", "args": {
        "pcoa": "2001:db8:1::a", "nar": "2001:db8:2::1", "nar_principal": "host/nar@B.EXAMPLE", "prefix_size": 64,
        "nar_mac": "02:00:5e:00:02:01", "ncoa": "2001:db8:2::a", "buffer": True, "lifetime_ms": 3000}}).encode()
    yield b'{"id": "x", "cmd": "handover", "args": {"pcoa": "2001:db8:1::a"}}'
    yield b'[1, 2]'
    yield bytes([1, 0, 0, 0, 1, 1, 2, 2, 3, 3, 7, 7])  # a structured handover request (the target's 0x01 layout)
    yield b'{"id": 1, "cmd": "reboot", "args": []}'


SEEDS = {"classify": classify, "node": node, "ring": ring, "ring_node": ring_node, "ring_frames": ring_frames,
         "messages": messages, "pcap": pcap, "lwkerb": lwkerb, "ah": ah, "config": config, "control": control}


def write_all(corpus: Path, names: list[str] | None = None) -> list[tuple[str, int, int]]:
    """Replace the seed-* files of each target's corpus directory; returns (target, files, octets)."""
    out = []
    for name, make in SEEDS.items():
        if names and name not in names:
            continue
        directory = corpus / name
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.iterdir():
            if old.is_file() and old.name.startswith("seed-"):
                old.unlink()
        count = size = 0
        for data in make():
            (directory / f"seed-{hashlib.sha1(data).hexdigest()[:12]}").write_bytes(data)
            count += 1
            size += len(data)
        out.append((name, count, size))
    return out

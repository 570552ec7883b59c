"""Tests of fmipfast.pcap: round trips, independent peers (scapy, tshark, editcap), hand-built files in both
byte orders and every supported pcapng block, and malformed input (truncation at every offset, hypothesis
over arbitrary bytes and mutations, the max_record allocation bound).

tshark and editcap are optional (``tests/tools.py``): without them those tests skip with the reason; CI installs
them (Debian package ``tshark``, which pulls in ``wireshark-common`` with editcap) and requires them.
"""

from __future__ import annotations

import ast
import io
import pathlib
import struct
import subprocess
import sys
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fmipfast import pcap
from fmipfast.errors import FmipError, PcapError
from fmipfast.pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    MAX_RECORD,
    PcapReader,
    PcapRecord,
    PcapWriter,
    read_pcap,
    write_pcap,
)
from tests.tools import external_tool

NS = 1_000_000_000
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- helpers -----------------------------------------------------------------------------------------------


class CountingIO(io.BytesIO):
    """A BytesIO that remembers the largest read the reader asked for."""

    def __init__(self, data: bytes = b"") -> None:
        super().__init__(data)
        self.largest = 0

    def read(self, n: int | None = -1) -> bytes:
        assert n is not None and n >= 0, f"reader asked for an unbounded read({n})"
        self.largest = max(self.largest, n)
        return super().read(n)


def consume(blob: bytes, max_record: int = MAX_RECORD) -> tuple[list[PcapRecord], PcapError | None, int]:
    """Read ``blob`` until the end or a PcapError; any other exception escapes and fails the test."""
    f = CountingIO(blob)
    records: list[PcapRecord] = []
    try:
        with PcapReader(f, max_record=max_record) as reader:
            for rec in reader:  # a loop, not list(): keep what was yielded before a PcapError
                records.append(rec)  # noqa: PERF402
    except PcapError as exc:
        return records, exc, f.largest
    return records, None, f.largest


def tool(name: str) -> str:
    return external_tool(name)


def pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def classic(e: str, records: list[tuple[int, int, bytes, int]], *, nano: bool, snaplen: int = 65535,
            linktype: int = LINKTYPE_ETHERNET, major: int = 2) -> bytes:
    """A classic pcap file by hand: records are (sec, frac, data, orig_len)."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(e + "IHHiIII", magic, major, 4, 0, 0, snaplen, linktype)
    for sec, frac, data, orig in records:
        out += struct.pack(e + "IIII", sec, frac, len(data), orig) + data
    return out


def block(e: str, btype: int, body: bytes) -> bytes:
    body = pad4(body)
    n = 12 + len(body)
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def opt(e: str, code: int, value: bytes) -> bytes:
    return struct.pack(e + "HH", code, len(value)) + pad4(value)


def options(e: str, *items: bytes) -> bytes:
    return b"".join(items) + struct.pack(e + "HH", 0, 0) if items else b""


def shb(e: str, major: int = 1, minor: int = 0, opts: bytes = b"") -> bytes:
    return block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, major, minor, -1) + opts)


def idb(e: str, linktype: int, snaplen: int = 0, tsresol: int | None = None,
        tsoffset: int | None = None) -> bytes:
    items = [opt(e, 2, b"eth0")]  # if_name: an option the reader walks past
    if tsresol is not None:
        items.append(opt(e, 9, bytes([tsresol])))
    if tsoffset is not None:
        items.append(opt(e, 14, struct.pack(e + "q", tsoffset)))
    return block(e, 1, struct.pack(e + "HHI", linktype, 0, snaplen) + options(e, *items))


def epb(e: str, ifid: int, units: int, data: bytes, orig_len: int | None = None,
        caplen: int | None = None, opts: bytes = b"") -> bytes:
    head = struct.pack(e + "IIIII", ifid, units >> 32, units & 0xFFFFFFFF,
                       len(data) if caplen is None else caplen, len(data) if orig_len is None else orig_len)
    return block(e, 6, head + pad4(data) + opts)


def spb(e: str, orig_len: int, data: bytes) -> bytes:
    return block(e, 3, struct.pack(e + "I", orig_len) + data)


def pb(e: str, ifid: int, units: int, data: bytes, orig_len: int | None = None) -> bytes:
    head = struct.pack(e + "HHIIII", ifid, 7, units >> 32, units & 0xFFFFFFFF, len(data),
                       len(data) if orig_len is None else orig_len)
    return block(e, 2, head + pad4(data))


def frame(n: int, seed: int = 0) -> bytes:
    return bytes((seed + 7 * i) & 0xFF for i in range(n))


def build(parts: list[tuple[bytes, PcapRecord | None]]) -> tuple[bytes, list[PcapRecord], dict[int, int]]:
    """Join blocks; return the file, its records and {block end offset: records before it}."""
    blob = b""
    records: list[PcapRecord] = []
    ends: dict[int, int] = {}
    for raw, rec in parts:
        blob += raw
        if rec is not None:
            records.append(rec)
        ends[len(blob)] = len(records)
    return blob, records, ends


def sample_pcapng() -> tuple[bytes, list[PcapRecord], dict[int, int]]:
    """Three sections (LE, BE, LE) exercising every block type the reader knows, and some it skips."""
    a, b, c, d, s1, s2 = frame(60, 1), frame(41, 2), frame(17, 3), frame(30, 4), frame(64, 5), frame(13, 6)
    le, be = "<", ">"
    return build([
        (shb(le, opts=options(le, opt(le, 4, b"fmipfast-test"))), None),
        (idb(le, LINKTYPE_ETHERNET, snaplen=64, tsresol=9), None),
        (idb(le, LINKTYPE_RAW, snaplen=0, tsresol=0x80 | 20, tsoffset=1000), None),
        (epb(le, 0, 1_700_000_000_123_456_789, a), PcapRecord(1_700_000_000_123_456_789, a, 1, 60, 0)),
        (block(le, 4, b"\x01\x00\x08\x00" + bytes(8) + b"\x00\x00\x00\x00"), None),  # NRB: skipped
        (epb(le, 1, (5 << 20) | (1 << 19), b, opts=options(le, opt(le, 1, b"a comment"))),
         PcapRecord(1005_500_000_000, b, LINKTYPE_RAW, 41, 1)),  # 5.5 s at 2^-20 + 1000 s offset
        (spb(le, 100, s1), PcapRecord(0, s1, 1, 100, 0)),  # cut to interface 0's snaplen 64
        (block(le, 0x00000BAD, struct.pack(le + "I", 32473) + b"custom"), None),  # custom block: skipped
        (pb(le, 0, 42, c), PcapRecord(42, c, 1, 17, 0)),
        (block(le, 5, bytes(12)), None),  # ISB: skipped
        (block(le, 0x80000001, b"local use"), None),  # local-use block type: skipped
        (shb(be), None),
        (idb(be, LINKTYPE_IPV6), None),  # default resolution: microseconds
        (epb(be, 0, 1_700_000_000_000_001, d, orig_len=1500),
         PcapRecord(1_700_000_000_000_001_000, d, LINKTYPE_IPV6, 1500, 0)),
        (spb(be, 13, s2), PcapRecord(0, s2, LINKTYPE_IPV6, 13, 0)),  # snaplen 0: captured = orig_len
        (shb(le), None),  # a last, empty section
    ])


def sample_classic(e: str = "<", nano: bool = True) -> tuple[bytes, list[PcapRecord], dict[int, int]]:
    recs = [(1_700_000_000, 999_999_999 if nano else 999_999, frame(54, 1), 54),
            (1, 0, frame(9, 2), 1514),
            (0, 1, b"", 0),
            (4_000_000_000, 5, frame(100, 3), 100)]
    unit = 1 if nano else 1000
    blob = classic(e, recs, nano=nano)
    expected, ends, pos = [], {24: 0}, 24
    for sec, frac, data, orig in recs:
        expected.append(PcapRecord(sec * NS + frac * unit, data, LINKTYPE_ETHERNET, orig, 0))
        pos += 16 + len(data)
        ends[pos] = len(expected)
    return blob, expected, ends


SAMPLES = {
    "classic-le-ns": sample_classic("<", True),
    "classic-be-us": sample_classic(">", False),
    "classic-be-ns": sample_classic(">", True),
    "pcapng": sample_pcapng(),
}


# -- API basics --------------------------------------------------------------------------------------------


def test_constants() -> None:
    assert (LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2) == (
        1, 101, 229, 113, 276)
    assert MAX_RECORD == 256 * 1024
    assert issubclass(PcapError, FmipError) and issubclass(PcapError, ValueError)


def test_record_is_frozen_with_slots() -> None:
    rec = PcapRecord(1, b"x", LINKTYPE_ETHERNET, 1)
    assert rec.interface == 0
    assert not hasattr(rec, "__dict__")
    with pytest.raises(AttributeError):
        rec.ts_ns = 2  # type: ignore[misc]


def test_module_imports_only_stdlib_and_errors() -> None:
    tree = ast.parse(pathlib.Path(pcap.__file__).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
    fmip = {n for n in names if n.split(".")[0] == "fmipfast"}
    assert fmip == {"fmipfast.errors"}
    other = {n.split(".")[0] for n in names - fmip} - {"__future__"}
    assert other <= set(sys.stdlib_module_names), other


def test_writer_header_golden() -> None:
    for nano, magic in ((True, b"\x4d\x3c\xb2\xa1"), (False, b"\xd4\xc3\xb2\xa1")):
        buf = io.BytesIO()
        with PcapWriter(buf, linktype=LINKTYPE_IPV6, snaplen=1500, nanosecond=nano) as w:
            w.write(b"\x60abc", ts_ns=3 * NS + 123_456_789, orig_len=70)
        frac = 123_456_789 if nano else 123_456
        assert buf.getvalue() == (magic + b"\x02\x00\x04\x00" + bytes(8) + struct.pack("<II", 1500, 229)
                                  + struct.pack("<IIII", 3, frac, 4, 70) + b"\x60abc")
        assert not buf.closed  # a caller's file is flushed, not closed


def test_writer_rejects_bad_arguments() -> None:
    buf = io.BytesIO()
    with pytest.raises(ValueError):
        PcapWriter(buf, linktype=70000)
    with pytest.raises(ValueError):
        PcapWriter(buf, snaplen=0)
    with pytest.raises(TypeError):
        PcapWriter(42)  # type: ignore[arg-type]
    w = PcapWriter(io.BytesIO(), snaplen=10)
    with pytest.raises(ValueError, match="outside"):
        w.write(b"x", ts_ns=-1)
    with pytest.raises(ValueError, match="outside"):
        w.write(b"x", ts_ns=2**32 * NS)
    with pytest.raises(ValueError, match="orig_len"):
        w.write(b"abcd", orig_len=3)
    with pytest.raises(ValueError, match="orig_len"):
        w.write(frame(20), orig_len=9)  # below the 10 captured octets
    with pytest.raises(TypeError):
        w.write(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        w.write(b"x", ts_ns=1.5)  # type: ignore[arg-type]
    w.close()
    w.close()
    with pytest.raises(ValueError, match="closed"):
        w.write(b"x")


def test_reader_source_types(tmp_path: pathlib.Path) -> None:
    blob, expected, _ = SAMPLES["classic-le-ns"]
    path = tmp_path / "a.pcap"
    path.write_bytes(blob)
    assert read_pcap(path) == expected  # os.PathLike
    assert read_pcap(str(path)) == expected
    f = io.BytesIO(blob)
    assert read_pcap(f) == expected
    assert not f.closed  # a caller's file stays open
    with PcapReader(path) as r:
        assert (r.format, r.linktype, r.snaplen) == ("pcap", LINKTYPE_ETHERNET, 65535)
        assert list(r) == expected
    with pytest.raises(ValueError, match="closed"):
        iter(r)
    with pytest.raises(TypeError):
        PcapReader(12)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        PcapReader(io.StringIO("\xd4\xc3\xb2\xa1"))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        PcapReader(io.BytesIO(blob), max_record=0)


class ShortReads(io.RawIOBase):
    """A raw stream that returns at most 3 octets per read, as pipes and sockets may."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        chunk = self._data[self._pos:self._pos + min(n, 3)]
        self._pos += len(chunk)
        return chunk


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_short_reads(name: str) -> None:
    blob, expected, _ = SAMPLES[name]
    assert read_pcap(ShortReads(blob)) == expected  # type: ignore[arg-type]


# -- round trips -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("nano", [True, False], ids=["ns", "us"])
def test_round_trip(tmp_path: pathlib.Path, nano: bool) -> None:
    frames = [(0, b""), (1_700_000_000_123_456_789, frame(60)), (4_294_967_295 * NS + 999_999_999, frame(1)),
              (12_345, frame(2000, 9))]
    path = tmp_path / "rt.pcap"
    with PcapWriter(path, linktype=LINKTYPE_RAW, snaplen=1000, nanosecond=nano) as w:
        for ts, data in frames:
            w.write(data, ts_ns=ts)
        w.write(frame(1200), ts_ns=5, orig_len=1300)
    with PcapReader(path) as r:
        assert (r.format, r.linktype, r.snaplen) == ("pcap", LINKTYPE_RAW, 1000)
        got = list(r)
    unit = 1 if nano else 1000
    want = [PcapRecord(ts // unit * unit, data[:1000], LINKTYPE_RAW, len(data)) for ts, data in frames]
    want.append(PcapRecord(0 if not nano else 5, frame(1000), LINKTYPE_RAW, 1300))
    assert got == want
    assert got[3].orig_len == 2000 and len(got[3].data) == 1000  # snaplen cut keeps orig_len


def test_write_pcap_helper(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "h.pcap"
    write_pcap(path, [frame(10), (77, frame(11)), bytearray(b"ab")], linktype=LINKTYPE_LINUX_SLL2,
               nanosecond=False)
    assert read_pcap(path) == [PcapRecord(0, frame(10), 276, 10), PcapRecord(0, frame(11), 276, 11),
                               PcapRecord(0, b"ab", 276, 2)]  # 77 ns truncates to 0 us


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 2**32 * NS - 1), st.binary(max_size=300)), max_size=12),
       st.booleans(), st.integers(1, 400))
def test_round_trip_property(frames: list[tuple[int, bytes]], nano: bool, snaplen: int) -> None:
    buf = io.BytesIO()
    write_pcap(buf, frames, linktype=LINKTYPE_IPV6, nanosecond=nano, snaplen=snaplen)
    unit = 1 if nano else 1000
    assert read_pcap(io.BytesIO(buf.getvalue())) == [
        PcapRecord(ts // unit * unit, data[:snaplen], LINKTYPE_IPV6, len(data)) for ts, data in frames]


# -- independent peers: scapy ------------------------------------------------------------------------------


def scapy_packets() -> list:
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
    from scapy.layers.l2 import Ether

    return [Ether(src="02:00:00:00:00:01", dst="33:33:00:00:00:01") / IPv6(src="fe80::1", dst="ff02::1")
            / ICMPv6EchoRequest(id=i, seq=i, data=frame(10 * i, i)) for i in range(5)]


@pytest.mark.parametrize("endianness", ["<", ">"], ids=["le", "be"])
@pytest.mark.parametrize("nano", [True, False], ids=["ns", "us"])
def test_scapy_wrpcap_is_read(tmp_path: pathlib.Path, nano: bool, endianness: str) -> None:
    from scapy.utils import wrpcap

    pkts = scapy_packets()
    times = ["1700000000.123456789", "1700000000.5", "0", "4000000000.000000999", "12.000000001"]
    if not nano:
        times = [t[:t.index(".") + 7] if "." in t else t for t in times]
    for p, t in zip(pkts, times):
        p.time = Decimal(t)
    pkts[1].wirelen = len(pkts[1]) + 100
    path = tmp_path / "scapy.pcap"
    wrpcap(str(path), pkts, nano=nano, endianness=endianness)
    with PcapReader(path) as r:
        assert r.linktype == LINKTYPE_ETHERNET
        got = list(r)
    assert [g.data for g in got] == [bytes(p) for p in pkts]
    assert [g.ts_ns for g in got] == [int(Decimal(t) * NS) for t in times]
    assert [g.orig_len for g in got] == [len(bytes(p)) + (100 if i == 1 else 0) for i, p in enumerate(pkts)]


def test_scapy_pcapng_writer_is_read(tmp_path: pathlib.Path) -> None:
    from scapy.utils import PcapNgWriter  # present since scapy 2.5; its absence is a failure here

    pkts = scapy_packets()
    times = ["1700000000.25", "1700000000.5", "3.125", "1700000001", "1700000001.75"]
    for p, t in zip(pkts, times):
        p.time = Decimal(t)
    pkts[2].sniffed_on = "eth1"  # a second interface description block, interface id 1
    pkts[3].comments = [b"hello"]  # EPB options the reader walks past
    path = tmp_path / "scapy.pcapng"
    with PcapNgWriter(str(path)) as w:
        for p in pkts:
            w.write(p)
    with PcapReader(path) as r:
        assert r.format == "pcapng"
        got = list(r)
        assert r.linktype == LINKTYPE_ETHERNET
    assert [g.data for g in got] == [bytes(p) for p in pkts]
    assert [g.ts_ns for g in got] == [int(Decimal(t) * NS) for t in times]  # scapy writes 10^-6 s units
    assert [g.interface for g in got] == [0, 0, 1, 0, 0]
    assert {g.linktype for g in got} == {LINKTYPE_ETHERNET}


@pytest.mark.parametrize("nano", [True, False], ids=["ns", "us"])
def test_scapy_reads_ours(tmp_path: pathlib.Path, nano: bool) -> None:
    from scapy.utils import RawPcapReader, rdpcap

    pkts = [bytes(p) for p in scapy_packets()]
    times = [1_700_000_000_123_456_789, 0, 999, 4_294_967_295 * NS + 999_999_999, 7 * NS]
    path = tmp_path / "ours.pcap"
    with PcapWriter(path, nanosecond=nano) as w:
        for ts, data in zip(times, pkts):
            w.write(data, ts_ns=ts, orig_len=len(data) + 4)
    unit = 1 if nano else 1000
    read = rdpcap(str(path))
    assert [bytes(p) for p in read] == pkts
    assert [p.time for p in read] == [Decimal(ts // unit * unit) / NS for ts in times]
    assert [p.wirelen for p in read] == [len(d) + 4 for d in pkts]
    with RawPcapReader(str(path)) as raw:
        meta = [(data, m.sec, m.usec, m.caplen) for data, m in raw]
    assert meta == [(d, ts // NS, ts % NS // unit, len(d)) for ts, d in zip(times, pkts)]


# -- independent peers: tshark and editcap ----------------------------------------------------------------


def interop_frames() -> list[tuple[int, bytes]]:
    return [(1_700_000_000_123_456_789, frame(60, 1)), (1_700_000_000_123_457_000, frame(1514, 2)),
            (1_700_000_001_000_000_001, frame(42, 3)), (86_400 * NS + 5, frame(2000, 4))]


@pytest.mark.parametrize("nano", [True, False], ids=["ns", "us"])
def test_tshark_reads_ours(tmp_path: pathlib.Path, nano: bool) -> None:
    tshark = tool("tshark")
    path = tmp_path / "ours.pcap"
    with PcapWriter(path, snaplen=1600, nanosecond=nano) as w:
        for ts, data in interop_frames():
            w.write(data, ts_ns=ts)
    out = subprocess.run([tshark, "-n", "-r", str(path), "-T", "fields", "-e", "frame.len", "-e",
                          "frame.cap_len", "-e", "frame.time_epoch"],
                         capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines() if line.strip()]
    unit = 1 if nano else 1000
    assert [(int(wire), int(cap), int(Decimal(t) * NS)) for wire, cap, t in rows] == [
        (len(d), min(len(d), 1600), ts // unit * unit) for ts, d in interop_frames()]


@pytest.mark.parametrize("converter", ["tshark", "editcap"])
@pytest.mark.parametrize("nano", [True, False], ids=["ns", "us"])
def test_pcapng_converted_by_wireshark_tools(tmp_path: pathlib.Path, nano: bool, converter: str) -> None:
    src, dst = tmp_path / "ours.pcap", tmp_path / "out.pcapng"
    with PcapWriter(src, linktype=LINKTYPE_ETHERNET, snaplen=1600, nanosecond=nano) as w:
        for ts, data in interop_frames():
            w.write(data, ts_ns=ts)
    if converter == "tshark":
        cmd = [tool("tshark"), "-n", "-r", str(src), "-F", "pcapng", "-w", str(dst)]
    else:
        cmd = [tool("editcap"), "-F", "pcapng", str(src), str(dst)]
    subprocess.run(cmd, capture_output=True, check=True)
    assert dst.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    with PcapReader(dst) as r:
        got = list(r)
        assert (r.format, r.linktype, r.snaplen) == ("pcapng", LINKTYPE_ETHERNET, 1600)
    assert got == read_pcap(src)


# -- hand-built files: byte orders, sections, resolutions, every block type -------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_hand_built_samples(name: str) -> None:
    blob, expected, _ = SAMPLES[name]
    assert read_pcap(io.BytesIO(blob)) == expected


def test_big_endian_classic_header_fields() -> None:
    blob = classic(">", [(3, 4, b"abc", 2)], nano=False, snaplen=96, linktype=LINKTYPE_LINUX_SLL)
    with PcapReader(io.BytesIO(blob)) as r:
        assert (r.linktype, r.snaplen) == (LINKTYPE_LINUX_SLL, 96)
        # caplen above orig_len is accepted: some writers produce it
        assert list(r) == [PcapRecord(3 * NS + 4000, b"abc", LINKTYPE_LINUX_SLL, 2)]


def test_classic_fcs_bits_are_not_the_linktype() -> None:
    blob = classic("<", [], nano=True, linktype=0x1000_0000 | LINKTYPE_ETHERNET)  # FCS length 2 x 16 bits
    with PcapReader(io.BytesIO(blob)) as r:
        assert r.linktype == LINKTYPE_ETHERNET


def test_pcapng_linktype_known_after_first_idb() -> None:
    blob, expected, _ = SAMPLES["pcapng"]
    with PcapReader(io.BytesIO(blob)) as r:
        assert (r.format, r.linktype, r.snaplen) == ("pcapng", None, None)
        it = iter(r)
        assert next(it) == expected[0]
        assert (r.linktype, r.snaplen) == (LINKTYPE_ETHERNET, 64)
        assert list(it) == expected[1:]
        assert (r.linktype, r.snaplen) == (LINKTYPE_ETHERNET, 64)  # the first interface, not the last


@pytest.mark.parametrize("e", ["<", ">"], ids=["le", "be"])
@pytest.mark.parametrize(("tsresol", "tsoffset", "units", "ts_ns"), [
    (None, None, 1_700_000_000_654_321, 1_700_000_000_654_321_000),  # default 10^-6
    (9, None, 1_700_000_000_654_321_987, 1_700_000_000_654_321_987),  # 10^-9
    (3, None, 1_700_000_000_654, 1_700_000_000_654_000_000),  # 10^-3
    (12, None, 12_345_678_901_234_567, 12_345_678_901_234),  # 10^-12: floor to ns
    (0x80 | 20, None, (1_700_000_000 << 20) | (1 << 18), 1_700_000_000_250_000_000),  # 2^-20
    (0x80 | 30, None, 3, 2),  # 2^-30: 3 units = 2.79 ns, floored
    (0x80 | 0, None, 9, 9 * NS),  # 2^0
    (9, -1_000, 2_000 * NS + 1, 1_000 * NS + 1),  # if_tsoffset: signed seconds
    (None, 1_700_000_000, 250_000, 1_700_000_000_250_000_000),
])
def test_if_tsresol_and_tsoffset(e: str, tsresol: int | None, tsoffset: int | None, units: int,
                                 ts_ns: int) -> None:
    blob = shb(e) + idb(e, LINKTYPE_IPV6, tsresol=tsresol, tsoffset=tsoffset) + epb(e, 0, units, b"\x60x")
    assert read_pcap(io.BytesIO(blob)) == [PcapRecord(ts_ns, b"\x60x", LINKTYPE_IPV6, 2, 0)]


def test_sections_have_their_own_interfaces() -> None:
    first = shb("<") + idb("<", LINKTYPE_ETHERNET) + idb("<", LINKTYPE_RAW) + epb("<", 1, 1, b"a")
    blob = first + shb(">") + idb(">", LINKTYPE_IPV6) + epb(">", 0, 2, b"b")
    assert read_pcap(io.BytesIO(blob)) == [PcapRecord(1000, b"a", LINKTYPE_RAW, 1, 1),
                                           PcapRecord(2000, b"b", LINKTYPE_IPV6, 1, 0)]
    records, err, _ = consume(blob + epb(">", 1, 3, b"c"))  # interface 1 belonged to the first section
    assert len(records) == 2
    assert err is not None and "interface id 1 but 1 interface(s)" in str(err)
    assert f"offset {len(blob)}" in str(err)


def test_spb_snaplen_rules() -> None:
    blob = shb("<") + idb("<", LINKTYPE_ETHERNET, snaplen=8) + spb("<", 20, frame(8)) + spb("<", 3, b"abc")
    assert read_pcap(io.BytesIO(blob)) == [PcapRecord(0, frame(8), 1, 20, 0), PcapRecord(0, b"abc", 1, 3, 0)]


# -- malformed input ---------------------------------------------------------------------------------------


def test_empty_and_unknown_magic() -> None:
    with pytest.raises(PcapError, match="empty"):
        PcapReader(io.BytesIO(b""))
    with pytest.raises(PcapError, match="0xdeadbeef"):
        PcapReader(io.BytesIO(b"\xde\xad\xbe\xef" + bytes(40)))
    with pytest.raises(PcapError, match=r"truncated magic number at offset 0: need 4 octets, have 2"):
        PcapReader(io.BytesIO(b"\xd4\xc3"))


def test_path_reader_closes_file_on_header_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(b"nope, not a capture")
    with pytest.raises(PcapError, match="unknown magic number 0x6e6f7065"):
        read_pcap(path)


@pytest.mark.parametrize(("blob", "message"), [
    (classic("<", [], nano=True)[:17], "truncated file header at offset 4: need 20 octets, have 13"),
    (classic("<", [], nano=True, major=3), "unsupported pcap version 3.4"),
    (classic("<", [], nano=True) + bytes(7), "truncated record header at offset 24: need 16 octets, have 7"),
    (classic(">", [(0, 0, b"abcd", 4)], nano=False)[:-1],
     "truncated record data at offset 40: need 4 octets, have 3"),
    (classic("<", [], nano=True) + struct.pack("<IIII", 0, 0, MAX_RECORD + 1, 0),
     f"record at offset 24: captured length {MAX_RECORD + 1} exceeds max_record {MAX_RECORD}"),
    (shb("<")[:5], "truncated block header at offset 0: need 8 octets, have 5"),
    (shb("<")[:10], "truncated section header block at offset 8: need 4 octets, have 2"),
    (shb("<")[:8] + b"\x1a\x2b\x3c\x4e", "bad byte-order magic 0x1a2b3c4e"),
    (shb("<")[:-1], "truncated section header block at offset 0: need 28 octets, have 27"),
    (shb("<", major=2), "unsupported pcapng version 2.0"),
    (shb("<") + b"\x01\x00", "truncated block header at offset 28: need 8 octets, have 2"),
    (shb("<") + struct.pack("<II", 1, 22) + bytes(14), "bad total length 22 (need a multiple of 4"),
    (shb("<") + struct.pack("<III", 1, 8, 8), "bad total length 8"),
    (shb("<") + struct.pack("<II", 1, 0xFFFFFFFC), f"total length 4294967292 exceeds max_record {MAX_RECORD}"),
    (shb(">") + struct.pack(">II", 0xBAD, 16) + bytes(4) + struct.pack(">I", 20),
     "block (type 0xbad) at offset 28: trailing total length 20 differs from leading 16"),
    (shb("<") + idb("<", 1)[:-2], "truncated block (type 0x1) at offset 28: need 32 octets, have 30"),
    (shb("<") + block("<", 1, b"\x01\x00"), "interface description block at offset 28: body of 4 octets"),
    (shb("<") + block("<", 1, struct.pack("<HHI", 1, 0, 0) + struct.pack("<HH", 9, 9) + b"\x09\0\0\0"),
     "option 9 at offset 44: length 9 runs past the end of its block"),
    (shb("<") + block("<", 1, struct.pack("<HHI", 1, 0, 0) + opt("<", 9, b"\x09\x09")),
     "if_tsresol option at offset 44: length 2, need 1"),
    (shb("<") + block("<", 1, struct.pack("<HHI", 1, 0, 0) + opt("<", 14, b"\x01")),
     "if_tsoffset option at offset 44: length 1, need 8"),
    (shb("<") + epb("<", 0, 0, b"x"), "enhanced packet block at offset 28: interface id 0 but 0 interface"),
    (shb("<") + idb("<", 1) + epb("<", 0, 0, b"abcd", caplen=9),
     "enhanced packet block at offset 60: captured length 9 exceeds the 4 octets the block has room for"),
    (shb("<") + idb("<", 1) + epb("<", 0, 0, b"abcd", caplen=MAX_RECORD + 1),
     f"captured length {MAX_RECORD + 1} exceeds max_record"),
    (shb("<") + idb("<", 1) + block("<", 6, bytes(16)),
     "enhanced packet block at offset 60: body of 16 octets, need 20"),
    (shb("<") + spb("<", 4, b"abcd"), "simple packet block at offset 28: interface id 0 but 0 interface"),
    (shb("<") + idb("<", 1) + spb("<", 9, b"abcd"),
     "simple packet block at offset 60: captured length 9 exceeds the 4 octets"),
    (shb("<") + idb("<", 1) + block("<", 3, b""), "simple packet block at offset 60: body of 0 octets, need 4"),
    (shb("<") + idb("<", 1) + block("<", 2, bytes(8)), "packet block at offset 60: body of 8 octets, need 20"),
    (shb("<") + idb("<", 1) + pb("<", 1, 0, b"x"), "packet block at offset 60: interface id 1 but 1 interface(s)"),
])
def test_malformed_messages(blob: bytes, message: str) -> None:
    records, err, largest = consume(blob)
    assert records == []
    assert err is not None, "expected a PcapError"
    assert message in str(err)
    assert largest <= MAX_RECORD


def test_interfaces_per_section_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every IDB is kept until the next section: a file of nothing but IDBs must not grow memory forever."""
    assert pcap.MAX_INTERFACES >= 65536  # every id a Packet Block (16-bit field) can name
    monkeypatch.setattr(pcap, "MAX_INTERFACES", 3)
    data = frame(20)
    ok = shb("<") + idb("<", 1) * 3 + epb("<", 2, 0, data) + shb(">") + idb(">", 1) * 3 + epb(">", 2, 0, data)
    assert consume(ok)[:2] == ([PcapRecord(0, data, 1, 20, 2)] * 2, None)  # a new section starts again from 0
    records, err, _ = consume(shb("<") + idb("<", 1) * 3 + epb("<", 0, 0, data) + idb("<", 1))
    assert len(records) == 1 and err is not None
    at = len(shb("<")) + 3 * len(idb("<", 1)) + len(epb("<", 0, 0, data))
    assert str(err) == f"interface description block at offset {at}: more than 3 interfaces in one section"


def test_records_before_damage_are_yielded_first() -> None:
    blob, expected, _ = SAMPLES["pcapng"]
    damaged = blob[:-len(shb("<"))] + struct.pack("<II", 6, 13)  # a block length that is not % 4
    with PcapReader(io.BytesIO(damaged)) as r:
        it = iter(r)
        assert [next(it) for _ in expected] == expected
        with pytest.raises(PcapError, match=f"offset {len(blob) - len(shb('<'))}"):
            next(it)


@pytest.mark.parametrize("max_record", [64, 1000])
def test_max_record_bounds_every_read(max_record: int) -> None:
    big = frame(max_record + 1)
    for blob in (classic("<", [(0, 0, big, len(big))], nano=True),
                 shb("<") + idb("<", 1) + epb("<", 0, 0, big),
                 shb("<") + idb("<", 1) + block("<", 0xBAD, big)):
        records, err, largest = consume(blob, max_record=max_record)
        assert records == [] and err is not None and "exceeds max_record" in str(err)
        assert largest <= max(max_record, 24)
    small = frame(max_record - 32)
    assert consume(shb("<") + idb("<", 1) + epb("<", 0, 0, small), max_record=max_record)[:2] == (
        [PcapRecord(0, small, 1, len(small), 0)], None)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_truncation_at_every_offset(name: str) -> None:
    blob, expected, ends = SAMPLES[name]
    for cut in range(len(blob) + 1):
        records, err, _ = consume(blob[:cut])
        complete = max((n for end, n in ends.items() if end <= cut), default=0)
        assert records == expected[:complete], cut
        if cut in ends:
            assert err is None, (cut, err)
        else:
            assert err is not None and ("truncated" in str(err) or cut == 0), (cut, err)
    assert consume(blob) == (expected, None, consume(blob)[2])


VALID = [SAMPLES[k][0] for k in sorted(SAMPLES)]
FUZZ_MAX_RECORD = 1024
HEADERS = [classic("<", [], nano=True), classic(">", [], nano=False), shb("<"), shb(">"),
           shb("<") + idb("<", 1, tsresol=0x80 | 127), shb(">") + idb(">", 1, snaplen=16, tsresol=127)]


def check_only_pcap_errors(blob: bytes) -> None:
    records, err, largest = consume(blob, max_record=FUZZ_MAX_RECORD)
    assert largest <= FUZZ_MAX_RECORD
    assert all(len(r.data) <= FUZZ_MAX_RECORD for r in records)
    assert err is None or str(err)


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes(blob: bytes) -> None:
    check_only_pcap_errors(blob)


@FUZZ
@given(st.sampled_from(HEADERS), st.binary(max_size=600))
def test_arbitrary_bytes_after_a_valid_header(head: bytes, tail: bytes) -> None:
    check_only_pcap_errors(head + tail)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    blob = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 6))):
        if not blob:
            break
        i = draw(st.integers(0, len(blob) - 1))
        op = draw(st.sampled_from(["byte", "word", "insert", "delete", "cut"]))
        if op == "byte":
            blob[i] = draw(st.integers(0, 255))
        elif op == "word":  # length and id fields are 32-bit words on 4-octet boundaries
            i &= ~3
            value = draw(st.sampled_from([0, 1, 3, 4, 8, 12, 16, 28, 0x7FFFFFFF, 0xFFFFFFFF,
                                          FUZZ_MAX_RECORD, FUZZ_MAX_RECORD + 4])) if draw(
                st.booleans()) else draw(st.integers(0, 2**32 - 1))
            blob[i:i + 4] = struct.pack(draw(st.sampled_from(["<", ">"])) + "I", value)
        elif op == "insert":
            blob[i:i] = draw(st.binary(min_size=1, max_size=12))
        elif op == "delete":
            del blob[i:i + draw(st.integers(1, 12))]
        else:
            del blob[i:]
    return bytes(blob)


@FUZZ
@given(mutated())
def test_mutations_of_valid_files(blob: bytes) -> None:
    check_only_pcap_errors(blob)


@st.composite
def framed_blocks(draw: st.DrawFn) -> bytes:
    """Correctly framed pcapng blocks with arbitrary bodies: reaches the per-block-type parsers."""
    e = draw(st.sampled_from(["<", ">"]))
    blob = shb(e)
    for _ in range(draw(st.integers(0, 8))):
        btype = draw(st.sampled_from([1, 1, 2, 3, 6, 6, 0x0A0D0D0A, 5, 0xBAD]))
        if btype == 0x0A0D0D0A:
            blob += shb(draw(st.sampled_from(["<", ">"])), major=draw(st.sampled_from([1, 1, 2])))
            continue
        if btype == 1 and draw(st.booleans()):  # an IDB with arbitrary options after valid fixed fields
            body = struct.pack(e + "HHI", 1, 0, draw(st.integers(0, 40))) + b"".join(
                draw(st.lists(st.tuples(st.sampled_from([0, 2, 9, 14]), st.binary(max_size=10)).map(
                    lambda cv: opt(e, *cv)), max_size=4)))
        elif btype in (2, 6) and draw(st.booleans()):  # plausible fixed fields, random lengths
            fixed = "HHIIII" if btype == 2 else "IIIII"
            values = [draw(st.integers(0, 3)), 0] if btype == 2 else [draw(st.integers(0, 3))]
            values += [draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)),
                       draw(st.integers(0, 80)), draw(st.integers(0, 2**32 - 1))]
            body = struct.pack(e + fixed, *values) + draw(st.binary(max_size=64))
        else:
            body = draw(st.binary(max_size=64))
        blob += block(e, btype, body)
    return blob


@FUZZ
@given(framed_blocks())
def test_framed_blocks_with_arbitrary_bodies(blob: bytes) -> None:
    check_only_pcap_errors(blob)

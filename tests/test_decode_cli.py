"""``fmipfast decode`` on hostile input: per-frame errors instead of tracebacks, escaped text, bounded
memory while streaming (files, pipes, a live writer), a reader that goes away (``| head``), and a property
test over arbitrary bytes and mutations of the shipped capture.

Exit status, as documented in fmipfast.cli: 0 decoded (bad frames are counted, not fatal), 1 ``--strict``
found a bad fmipfast message, 2 unreadable input (a clear one-line error on stderr).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import select
import signal
import struct
import subprocess
import sys
import time
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fmipfast import dissect, frames
from fmipfast.cli import main
from fmipfast.errors import PcapError
from fmipfast.messages import HandoverRedirect, Identifier, Principal, RouterSolicitation, encode, refill_checksum
from fmipfast.pcap import LINKTYPE_ETHERNET, LINKTYPE_IPV6, LINKTYPE_RAW, PcapReader, PcapWriter
from tests.test_pcap import block, epb, idb, pb, shb, spb

ROOT = pathlib.Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "handover.pcap"
MAC_A, MAC_B = bytes.fromhex("02005e100001"), bytes.fromhex("02005e100002")
RS = encode(RouterSolicitation(), "fe80::1", "ff02::2")
RS_FRAME = frames.build_ipv6("fe80::1", "ff02::2", 58, RS, hop_limit=255)
# characters a terminal acts on: C0 (ESC, CR, BS, BEL), DEL, C1 (CSI), bidi overrides and isolates
HOSTILE = set(map(chr, [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x200E, 0x200F, *range(0x202A, 0x202F),
                         *range(0x2066, 0x206A)]))


def run(argv: list[str], stdin: bytes | None = None) -> tuple[int, str, str]:
    """``main(argv)`` in this process; any exception it lets out fails the test."""
    out, err = io.StringIO(), io.StringIO()
    patch = (mock.patch.object(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin))) if stdin is not None
             else contextlib.nullcontext())
    with patch, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def write(path: pathlib.Path, recs: list[bytes], linktype: int = LINKTYPE_ETHERNET) -> pathlib.Path:
    with PcapWriter(path, linktype=linktype) as w:
        for i, rec in enumerate(recs):
            w.write(rec, ts_ns=i * 1000)
    return path


def summary(out: str) -> str:
    return out.rstrip("\n").rsplit("\n", 1)[-1]


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


# -- 1. an exception while decoding one frame is that frame's error ---------------------------------------------


def rs_with_option_type_0() -> bytes:
    """A Router Solicitation whose only ND option has type 0 (length 1): messages.decode raises ValueError."""
    body = refill_checksum(bytearray([133, 0, 0, 0]) + bytes(4) + bytes([0, 1]) + bytes(6), "fe80::1", "ff02::2")
    return frames.build_ipv6("fe80::1", "ff02::2", 58, body, hop_limit=255)


@pytest.mark.parametrize("json_out", [False, True])
def test_nd_option_type_0_is_a_counted_frame_error(tmp_path, json_out):
    cap = write(tmp_path / "rs0.pcap", [rs_with_option_type_0(), RS_FRAME], LINKTYPE_RAW)
    code, out, err = run(["decode", *(["--json"] if json_out else []), str(cap)])
    assert code == 0 and err == ""
    if json_out:
        first, second = (json.loads(line) for line in out.splitlines())
        assert first["error"]["kind"] in ("ValueError", "BadOption", "InvalidField")
        assert first["type"] == 133 and first["message"] is None
        assert second["message"] == "RouterSolicitation" and second["error"] is None
    else:
        assert "frame 1 " in out and "! MALFORMED" in out and "frame 2 " in out
        assert summary(out) == "2 frames, 0 fmipfast, 1 nd, 0 bad checksum, 1 malformed, 0 other"
    assert run(["decode", "--strict", str(cap)])[0] == 1  # malformed RS: --strict notices


def test_any_exception_from_a_decoder_is_the_frame_error_and_decoding_goes_on(tmp_path):
    cap = write(tmp_path / "rs.pcap", [RS_FRAME, RS_FRAME], LINKTYPE_RAW)
    calls = []

    def explode(payload, **kwargs):
        calls.append(payload)
        if len(calls) == 1:
            raise RuntimeError("decoder bug")
        raise KeyError("another")

    with mock.patch.object(dissect, "decode", explode):
        code, out, err = run(["decode", "--json", str(cap)])
        rows = [json.loads(line) for line in out.splitlines()]
        assert code == 0 and err == "" and len(calls) == 2
        assert [r["error"]["kind"] for r in rows] == ["RuntimeError", "KeyError"]
        assert rows[0]["error"]["detail"] == "decoder bug"
        calls.clear()
        code, out, err = run(["decode", str(cap)])
        assert code == 0 and err == "" and "MALFORMED RuntimeError: decoder bug" in out
        assert summary(out).startswith("2 frames,") and "2 malformed" in summary(out)


def test_raw_link_type_records_that_are_not_ipv6(tmp_path):
    ipv4 = bytes([0x45]) + bytes(19)
    raw = write(tmp_path / "raw.pcap", [ipv4, b"\x00\x01\x02", b"", b"\x60" + bytes(10), b"\xf0", RS_FRAME],
                LINKTYPE_RAW)
    code, out, err = run(["decode", str(raw)])
    assert code == 0 and err == ""
    assert "frame 1  t=0.000001  20 octets  IPv4 (not IPv6)" in out.replace("0.000000", "0.000001", 1)
    assert "IP version 0, expected 6" in out and "IP version 15, expected 6" in out
    assert "IPv6 header needs 40 octets" in out
    assert summary(out) == "6 frames, 0 fmipfast, 1 nd, 0 bad checksum, 4 malformed, 1 other"
    rows = [json.loads(line) for line in run(["decode", "--json", str(raw)])[1].splitlines()]
    assert rows[0]["ip_version"] == 4 and rows[0]["error"] is None
    assert [r["error"]["field"] for r in rows[1:5]] == ["ipv6.version", "ipv6", "ipv6", "ipv6.version"]
    # LINKTYPE_IPV6 promises IPv6: an IPv4 packet there is an error, not "other"
    v6 = write(tmp_path / "v6.pcap", [ipv4, RS_FRAME], LINKTYPE_IPV6)
    code, out, err = run(["decode", str(v6)])
    assert code == 0 and err == "" and "IP version 4, expected 6" in out
    # and hex input forced to raw IPv6
    code, out, err = run(["decode", "--link", "ipv6", "-"], stdin=b"4500\n00\nf0f0f0\n")
    assert code == 0 and err == "" and summary(out).startswith("3 frames,") and "2 malformed" in out


# -- damaged files: per-frame errors or one line on stderr, exit 2 --------------------------------------------------


def classic(records: list[bytes | tuple[int, bytes]], *, e: str = "<", linktype: int = LINKTYPE_ETHERNET,
            snaplen: int = 65535, magic: int = 0xA1B2C3D4) -> bytes:
    out = struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)
    for rec in records:
        caplen, data = (len(rec), rec) if isinstance(rec, bytes) else rec
        out += struct.pack(e + "IIII", 0, 0, caplen, len(data)) + data
    return out


ETH_RS = frames.build_ethernet(MAC_A, MAC_B, RS_FRAME)
DAMAGED = {  # name: (file, exit status, stderr mentions)
    "empty": (b"", 0, ""),  # no frames, as hex text: `fmipfast decode < /dev/null` is not an error
    "short magic": (b"\xd4\xc3", 2, "neither a pcap/pcapng capture nor hex text"),
    "short header": (classic([])[:10], 2, "truncated file header"),
    "bad version": (classic([])[:4] + b"\x09\x00" + classic([])[6:], 2, "unsupported pcap version"),
    "caplen 2**32-1": (classic([ETH_RS, (0xFFFFFFFF, b"")]), 2, "captured length 4294967295 exceeds"),
    "truncated record": (classic([ETH_RS, ETH_RS])[:-3], 2, "truncated record data"),
    "truncated record header": (classic([ETH_RS])[:-len(ETH_RS) - 5], 2, "truncated record header"),
    "snaplen 0": (classic([ETH_RS], snaplen=0), 0, ""),
    "big-endian nanosecond": (classic([ETH_RS], e=">", magic=0xA1B23C4D), 0, ""),
    "unknown link type": (classic([ETH_RS], linktype=147), 0, ""),
    "FCS bits in link type": (classic([ETH_RS], linktype=0x1000_0000 | LINKTYPE_ETHERNET), 0, ""),
    "pcapng bad byte-order magic": (shb("<")[:8] + b"\x1a\x2b\x3c\x4e" + shb("<")[12:], 2, "byte-order magic"),
    "pcapng big-endian": (shb(">") + idb(">", 1) + epb(">", 0, 1, ETH_RS) + spb(">", len(ETH_RS), ETH_RS)
                          + pb(">", 0, 1, ETH_RS), 0, ""),
    "pcapng block length not multiple of 4": (shb("<") + struct.pack("<II", 6, 13) + bytes(5), 2, "bad total length"),
    "pcapng block length 2**32-1": (shb("<") + struct.pack("<II", 6, 0xFFFFFFFF), 2, "bad total length 4294967295"),
    "pcapng misaligned trailer": (shb("<") + idb("<", 1) + epb("<", 0, 0, ETH_RS)[:-4] + b"\0\0\0\0", 2,
                                  "trailing total length"),
    "pcapng interface id out of range": (shb("<") + idb("<", 1) + epb("<", 0, 0, ETH_RS) + epb("<", 7, 0, ETH_RS),
                                         2, "interface id 7"),
    "pcapng SPB before any IDB": (shb("<") + spb("<", 4, b"abcd"), 2, "interface id 0 but 0"),
    "pcapng obsolete packet block": (shb("<") + idb("<", 1) + pb("<", 0, 5, ETH_RS), 0, ""),
    "pcapng unknown link type": (shb("<") + idb("<", 4242) + epb("<", 0, 0, ETH_RS), 0, ""),
    "pcapng custom block": (shb("<") + block("<", 0xBAD, b"xyz") + idb("<", 1) + epb("<", 0, 0, ETH_RS), 0, ""),
    "pcapng EPB caplen past block": (shb("<") + idb("<", 1) + epb("<", 0, 0, b"abcd", caplen=4000), 2,
                                     "captured length 4000 exceeds"),
    "binary junk": (bytes(range(256)) * 4, 2, "not hexadecimal"),
    "binary junk, not ASCII": (bytes(range(255, -1, -1)) * 4, 2, "neither a pcap/pcapng capture nor hex text"),
    "NULs": (bytes(5000), 2, "not hexadecimal"),
    "one endless line": (b"00" * (1 << 20), 2, "a line of more than"),
}


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_damaged_files(tmp_path, name):
    blob, status, message = DAMAGED[name]
    path = tmp_path / "damaged"
    path.write_bytes(blob)
    for argv in (["decode", str(path)], ["decode", "--json", str(path)], ["decode", "-"]):
        code, out, err = run(argv, stdin=blob if argv[-1] == "-" else None)
        assert code == status, (argv, code, err)
        if status == 2:
            assert err.count("\n") == 1 and err.startswith("fmipfast decode: ") and message in err, err
        else:
            assert err == ""
            assert out.strip() or blob == b"", "a decodable file printed nothing"


def test_unknown_link_type_is_a_frame_error(tmp_path):
    path = tmp_path / "lt.pcap"
    path.write_bytes(classic([ETH_RS, ETH_RS], linktype=147))
    code, out, _ = run(["decode", "--json", str(path)])
    assert code == 0 and [json.loads(r)["error"]["kind"] for r in out.splitlines()] == ["UnsupportedLinkType"] * 2


def test_unreadable_file_is_one_line(tmp_path):
    for target in (tmp_path / "missing.pcap", tmp_path):
        code, out, err = run(["decode", str(target)])
        assert code == 2 and err.count("\n") == 1 and str(target) in err and "Traceback" not in err
    with mock.patch.object(sys, "stdin", None):  # `fmipfast decode <&-`
        code, out, err = run(["decode"])
    assert code == 2 and err == "fmipfast decode: stdin: no standard input to read (after 0 frames)\n"


# -- 2. text output escapes what the capture says ---------------------------------------------------------------


def test_escape_text():
    assert dissect.escape_text("plain text: 2001:db8::1 é ß") == "plain text: 2001:db8::1 é ß"
    assert dissect.escape_text("a\x1b[2Jb\r\x08\x07\x7f") == "a\\x1b[2Jb\\x0d\\x08\\x07\\x7f"
    assert dissect.escape_text("\x9b31m \u202eevil\u2066 \u200f\udc80") == "\\x9b31m \\u202eevil\\u2066 \\u200f\\udc80"
    assert dissect.escape_text("back\\slash") == "back\\\\slash"  # so an escape in the capture is not ambiguous
    assert dissect.escape_text("\U000e0001 \u00a0") == "\\U000e0001 \\xa0"


def hostile_hrd() -> tuple[bytes, str, str]:
    name = "nar\x1b]0;owned\x07\x1b[2J\r\x08"
    realm = "B.EX\u202eELPMA\u2066\x9b1m\x85\x7f"
    msg = HandoverRedirect(64, "2001:db8:2::1", bytes.fromhex("02005efffe100002"),
                           "2001:db8:2:0:21b:63ff:fe84:45e6", (Principal(name, realm), Identifier(7)))
    return frames.icmp6_frame(msg, "fe80::1", "fe80::2", MAC_A, MAC_B), name, realm


def test_terminal_escapes_in_a_principal_are_escaped(tmp_path):
    frame, name, realm = hostile_hrd()
    cap = write(tmp_path / "evil.pcap", [frame])
    code, out, err = run(["decode", str(cap)])
    assert code == 0 and err == ""
    assert not HOSTILE & (set(out) - {"\n"}), sorted(HOSTILE & set(out))
    assert "name=nar\\x1b]0;owned\\x07\\x1b[2J\\x0d\\x08" in out
    assert "realm=B.EX\\u202eELPMA\\u2066\\x9b1m\\x85\\x7f" in out
    # JSON: json.dumps escapes them (ensure_ascii), and a parser gets the exact strings back
    code, out, err = run(["decode", "--json", str(cap)])
    assert code == 0 and out.isascii() and not HOSTILE & (set(out) - {"\n"})
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["options"][0] == {"type": "principal", "name": name, "realm": realm}


def test_error_details_and_hex_input_are_escaped_too(tmp_path, monkeypatch):
    def hostile(payload, **kwargs):
        raise ValueError("bad \x1b[31mred\u202e")

    monkeypatch.setattr(dissect, "decode", hostile)
    code, out, _ = run(["decode", "-"], stdin=RS_FRAME.hex().encode() + b"\n")
    assert code == 0 and "bad \\x1b[31mred\\u202e" in out and not HOSTILE & (set(out) - {"\n"})
    code, _, err = run(["decode", "-"], stdin=b"zz\x1b[2J\n")
    assert code == 2 and "\x1b" not in err and "not hexadecimal" in err


def test_text_that_the_output_encoding_cannot_show_is_backslash_escaped(tmp_path):
    msg = HandoverRedirect(64, "2001:db8:2::1", bytes.fromhex("02005efffe100002"),
                           "2001:db8:2:0:21b:63ff:fe84:45e6", (Principal("nä", "Ω.EXAMPLE"),))
    cap = write(tmp_path / "u.pcap", [frames.icmp6_frame(msg, "fe80::1", "fe80::2", MAC_A, MAC_B)])
    env = subprocess_env() | {"PYTHONIOENCODING": "ascii"}
    proc = subprocess.run([sys.executable, "-m", "fmipfast", "decode", str(cap)], capture_output=True, env=env,
                          timeout=60)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
    assert b"name=n\\xe4 realm=\\u03a9.EXAMPLE" in proc.stdout


# -- 3. streaming in bounded memory, live ---------------------------------------------------------------------------


def generate(path: pathlib.Path, count: int) -> pathlib.Path:
    """A capture of ``count`` frames, written as it is generated: mostly UDP, every 64th an fmipfast message
    (a Handover Redirect with a principal), every 64th a bad one (ND option type 0)."""
    udp = frames.build_ethernet(MAC_A, MAC_B, frames.build_ipv6(
        "2001:db8::1", "2001:db8::2", 17, b"\x13\x88\x13\x88\x00\x94\x00\x00" + bytes(range(140))))
    hrd = hostile_hrd()[0]
    bad = frames.build_ethernet(MAC_A, MAC_B, rs_with_option_type_0())
    with PcapWriter(path) as w:
        for i in range(count):
            w.write(bad if i % 64 == 63 else hrd if i % 64 == 0 else udp, ts_ns=i * 1000)
    return path


# ``fmipfast ARGV`` (what ``python -m fmipfast`` runs), then its own peak RSS on stderr.  VmHWM belongs to the
# process's address space since its exec; getrusage's ru_maxrss would also count the parent (pytest) it was
# forked from, and hide the child's growth under it.
PEAK_RSS = """import sys
from fmipfast.cli import main
code = main(sys.argv[1:])
sys.stdout.flush()
with open("/proc/self/status") as status:
    sys.stderr.write(next(line for line in status if line.startswith("VmHWM:")))
sys.exit(code)
"""


def peak_rss_kib(argv: list[str], stdout: pathlib.Path) -> tuple[int, str, int]:
    """Run ``fmipfast ARGV``; return (exit status, stderr but the peak, peak RSS of that process in KiB)."""
    with open(stdout, "wb") as out:
        proc = subprocess.run([sys.executable, "-c", PEAK_RSS, *argv], stdout=out, stderr=subprocess.PIPE,
                              env=subprocess_env(), text=True, timeout=600)
    err, _, peak = proc.stderr.rpartition("VmHWM:")
    return proc.returncode, err, int(peak.split()[0])


def check_memory_does_not_grow(tmp_path: pathlib.Path, small: int, large: int) -> tuple[int, int]:
    peaks = []
    for count in (small, large):
        cap = generate(tmp_path / f"{count}.pcap", count)
        code, err, peak = peak_rss_kib(["decode", str(cap)], tmp_path / "out.txt")
        assert code == 0 and err == "", err
        last = (tmp_path / "out.txt").read_text().rstrip("\n").rsplit("\n", 1)[-1]
        assert last.startswith(f"{count} frames, {-(-count // 64)} fmipfast, 0 nd, 0 bad checksum, "
                               f"{count // 64} malformed"), last
        peaks.append(peak)
        cap.unlink()
    # The old decoder read the whole file and kept every frame's dict: ~1 KiB per frame, so 35k frames more
    # cost it ~35 MiB.  Streaming, the peak is the interpreter and one record, whatever the count.
    assert peaks[1] - peaks[0] < 4 * 1024, f"peak RSS {peaks[0]} KiB for {small} frames, {peaks[1]} KiB for {large}"
    return peaks[0], peaks[1]


def test_memory_does_not_grow_with_the_capture(tmp_path):
    check_memory_does_not_grow(tmp_path, 5_000, 40_000)


@pytest.mark.slow
def test_memory_does_not_grow_with_the_capture_200k(tmp_path):
    check_memory_does_not_grow(tmp_path, 20_000, 200_000)


def read_line_within(stream, seconds: float) -> bytes:
    """One line from a pipe, or fail after ``seconds`` (the writer still holds the other end open)."""
    deadline = time.monotonic() + seconds
    buf = b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        ready, _, _ = select.select([stream], [], [], max(left, 0))
        if not ready:
            pytest.fail(f"no complete line within {seconds} s (got {buf!r}): decode is not streaming")
        chunk = os.read(stream.fileno(), 1)
        if not chunk:
            pytest.fail(f"decode exited before printing a frame (got {buf!r})")
        buf += chunk
    return buf


@pytest.mark.parametrize("kind", ["pcap", "pcapng", "hex"])
def test_live_pipe_prints_each_frame_as_it_arrives(kind):
    """``tcpdump -w - | fmipfast decode -``: frame 1 is printed while the writer is still writing."""
    if kind == "pcap":
        head, rec = classic([])[:24], classic([ETH_RS])[24:]
    elif kind == "pcapng":
        head, rec = shb("<") + idb("<", 1), epb("<", 0, 5, ETH_RS)
    else:
        head, rec = b"# live hex\n", ETH_RS.hex().encode() + b"\n"
    proc = subprocess.Popen([sys.executable, "-m", "fmipfast", "decode", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env())
    try:
        proc.stdin.write(head + rec)
        proc.stdin.flush()
        assert read_line_within(proc.stdout, 30).startswith(b"frame 1 ")
        assert b"RouterSolicitation" in read_line_within(proc.stdout, 10)
        proc.stdin.write(rec)
        proc.stdin.flush()
        assert read_line_within(proc.stdout, 10).startswith(b"frame 2 ")
        proc.stdin.close()
        proc.wait(timeout=30)
        out, err = proc.stdout.read(), proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 0 and err == b""
    assert out.rstrip().endswith(b"2 frames, 0 fmipfast, 2 nd, 0 bad checksum, 0 malformed, 0 other")


def test_interrupt_on_a_live_pipe_prints_the_summary_so_far():
    """^C while waiting for the next record: the counts so far, exit 130, no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "fmipfast", "decode", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env())
    try:
        proc.stdin.write(classic([ETH_RS]))
        proc.stdin.flush()
        assert read_line_within(proc.stdout, 30).startswith(b"frame 1 ")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        out, err = proc.stdout.read(), proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
        for f in (proc.stdin, proc.stdout, proc.stderr):
            f.close()
    assert proc.returncode == 130 and err == b"", err
    assert out.rstrip().endswith(b"1 frames, 0 fmipfast, 1 nd, 0 bad checksum, 0 malformed, 0 other")


# -- 4. a reader that goes away ---------------------------------------------------------------------------------


@pytest.mark.parametrize("json_out", [False, True])
def test_broken_pipe_exits_quietly(tmp_path, json_out):
    """``fmipfast decode big.pcap | head -1``: no "Broken pipe", no traceback, exit 0."""
    cap = generate(tmp_path / "big.pcap", 4000)  # far more output than a pipe buffers
    proc = subprocess.Popen([sys.executable, "-m", "fmipfast", "decode", *(["--json"] if json_out else []),
                             str(cap)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env())
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, err
    assert err == b"" and first.startswith(b"{" if json_out else b"frame 1 ")


# -- 5. property: any bytes, never an exception but the documented ones -------------------------------------------


def pcapng_of(classic_blob: bytes) -> bytes:
    """The same records as a pcapng file: SHB, IDB (nanosecond resolution), one EPB per record."""
    reader = PcapReader(io.BytesIO(classic_blob))
    out = shb("<") + idb("<", reader.linktype or 1, tsresol=9)
    for rec in reader:
        out += epb("<", 0, rec.ts_ns, rec.data, orig_len=rec.orig_len)
    return out


VALID = {"pcap": SAMPLE.read_bytes()}
VALID["pcapng"] = pcapng_of(VALID["pcap"])
VALID["hex"] = b"".join(rec.data.hex().encode() + b"\n" for rec in PcapReader(io.BytesIO(VALID["pcap"])))
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_the_valid_inputs_decode():
    for name, blob in VALID.items():
        code, out, err = run(["decode", "--strict", "-"], stdin=blob)
        assert code == 0 and err == "" and summary(out) == (
            "13 frames, 7 fmipfast, 2 nd, 0 bad checksum, 0 malformed, 4 other"), (name, out)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    blob = bytearray(VALID[draw(st.sampled_from(sorted(VALID)))])
    for _ in range(draw(st.integers(1, 8))):
        if not blob:
            break
        i = draw(st.integers(0, len(blob) - 1))
        op = draw(st.sampled_from(["flip", "byte", "word", "insert", "delete", "cut"]))
        if op == "flip":
            blob[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte":
            blob[i] = draw(st.integers(0, 255))
        elif op == "word":  # lengths, ids and link types are 32-bit words on 4-octet boundaries
            i &= ~3
            value = draw(st.sampled_from([0, 1, 3, 4, 6, 8, 12, 0x60000000, 0x7FFFFFFF, 0xFFFFFFFF]))
            blob[i:i + 4] = struct.pack(draw(st.sampled_from("<>")) + "I", value)
        elif op == "insert":
            blob[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del blob[i:i + draw(st.integers(1, 16))]
        else:
            del blob[i:]
    return bytes(blob)


def reads_or_pcap_error(blob: bytes) -> None:
    try:
        with PcapReader(io.BytesIO(blob)) as reader:
            for _ in reader:
                pass
    except PcapError as exc:
        assert str(exc)


def decodes_with_documented_status(blob: bytes, flags: list[str]) -> None:
    code, out, err = run(["decode", *flags, "-"], stdin=blob)
    assert code in ((0, 1, 2) if "--strict" in flags else (0, 2)), (code, err)
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("fmipfast decode: stdin: "), err
    else:
        assert err == ""
    if "--json" in flags:
        for line in out.splitlines():
            json.loads(line)
    else:
        assert not HOSTILE & (set(out) - {"\n"})
        assert summary(out).endswith(" other")


FLAGS = st.sampled_from([[], ["--json"], ["--strict"], ["--only-fmipfast"], ["--link", "ipv6"],
                         ["--link", "icmp", "--json"]])


@FUZZ
@given(st.binary(max_size=400), FLAGS)
def test_arbitrary_bytes(blob, flags):
    reads_or_pcap_error(blob)
    decodes_with_documented_status(blob, flags)


@FUZZ
@given(mutated(), FLAGS)
def test_mutations_of_the_sample(blob, flags):
    reads_or_pcap_error(blob)
    decodes_with_documented_status(blob, flags)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), FLAGS)
def test_mutations_of_the_sample_long(blob, flags):
    reads_or_pcap_error(blob)
    decodes_with_documented_status(blob, flags)

"""The shipped Wireshark/tshark dissector (``fmipfast/wireshark/fmipfast.lua``, docs/design.md §7) against fmipfast's
own decoder: on the sample capture and on a whole demo capture (all three key cases' messages, HI/HE under
AH, tunnelled traffic), every fmipfast message tshark shows has the message, identifier, NCoA, status,
principal, handover-control lifetime, MAC and sub-option sequence ``fmipfast decode --json`` finds; a
malformed message gets the dissector's expert warning instead of a Lua error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fmipfast import frames
from fmipfast.messages import HandoverRedirectAck, Identifier, LkbMessage, MessageAuthCode, encode
from fmipfast.pcap import PcapWriter
from tests.tools import external_tool

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "fmipfast" / "wireshark" / "fmipfast.lua"
SAMPLE = ROOT / "samples" / "handover.pcap"
TSHARK = shutil.which("tshark")


@pytest.fixture(autouse=True)
def _needs_tshark():
    external_tool("tshark")  # skips without tshark (fails under FMIPFAST_REQUIRE_TOOLS=1, as in CI)

FIELDS = ("frame.number", "fmipfast.message", "fmipfast.identifier", "fmipfast.ncoa", "fmipfast.status",
          "fmipfast.principal.name", "fmipfast.principal.realm", "fmipfast.hc.lifetime_ms", "fmipfast.mac",
          "fmipfast.subopt.type", "_ws.expert.message", "fmipfast.malformed")
NAMES = {"HandoverRedirect": "Handover Redirect", "HandoverRedirectAck": "Handover Redirect Ack",
         "IcmpHandover": "ICMP Handover", "AuthenticatedMN": "Authenticated-MN", "Attach": "Attach",
         "HandoverError": "Handover Error", "ForwardingDisable": "Forwarding Disable"}
OPTION_TYPES = {"principal": "1", "lkb": "2", "handover_control": "3", "address": "4", "encapsulated_packet": "5",
                "identifier": "6", "mac": "7", "status": "8", "link_layer_address": "9"}


def _tshark(capture: Path, *options: str) -> tuple[dict[int, dict[str, str]], str]:
    done = subprocess.run([TSHARK, "-n", "-X", f"lua_script:{LUA}", *options, "-r", str(capture), "-Y", "fmipfast",
                           "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,",
                           *[a for name in FIELDS for a in ("-e", name)]],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = {}
    for line in done.stdout.splitlines():
        values = dict(zip(FIELDS, line.split("\t")))
        rows[int(values["frame.number"])] = values
    return rows, done.stderr


def _ours(capture: Path) -> dict[int, dict]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run([sys.executable, "-m", "fmipfast", "decode", "--json", str(capture)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    out = {}
    for line in done.stdout.splitlines():
        d = json.loads(line)
        if d.get("message") in NAMES:
            out[d["frame"]] = d
    return out


def _agree(capture: Path) -> int:
    rows, stderr = _tshark(capture)
    ours = _ours(capture)
    assert "Lua" not in stderr and "rror" not in stderr, stderr
    assert set(rows) == set(ours), (sorted(rows), sorted(ours))
    for frame, d in ours.items():
        row = rows[frame]
        opts = {o["type"]: o for o in d["options"]}
        assert row["fmipfast.message"] == NAMES[d["message"]], (frame, row)
        assert row["fmipfast.identifier"] == str(opts["identifier"]["identifier"]), (frame, row)
        assert row["fmipfast.ncoa"] == (d.get("ncoa") or ""), (frame, row)
        assert row["fmipfast.status"] == (str(opts["status"]["reason"]) if "status" in opts else ""), (frame, row)
        if "principal" in opts:
            assert (row["fmipfast.principal.name"], row["fmipfast.principal.realm"]) == (
                opts["principal"]["name"], opts["principal"]["realm"]), (frame, row)
        if "handover_control" in opts:
            assert row["fmipfast.hc.lifetime_ms"] == str(opts["handover_control"]["lifetime_ms"]), (frame, row)
        if "mac" in opts:
            assert row["fmipfast.mac"].replace(":", "") == opts["mac"]["mac"], (frame, row)
        # the LKB PDU is one option to our decoder and its 253-octet fragments to tshark
        theirs = [t for i, t in enumerate(row["fmipfast.subopt.type"].split(",")) if not (
            t == "2" and i and row["fmipfast.subopt.type"].split(",")[i - 1] == "2")]
        assert theirs == [OPTION_TYPES[o["type"]] for o in d["options"]], (frame, row, d["options"])
        assert not row["fmipfast.malformed"], (frame, row)
    return len(ours)


def test_the_dissector_agrees_with_our_decoder_on_the_sample():
    assert _agree(SAMPLE) == 7  # HRD, HRA, HI, Attach, AMN, HE, FD


def test_the_dissector_agrees_with_our_decoder_on_a_whole_demo_capture(tmp_path):
    cap = tmp_path / "demo.pcap"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run([sys.executable, "-m", "fmipfast", "demo", "--case", "3", "--capture", str(cap)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _agree(cap) >= 8  # the initial attach and the whole handover, HI/HE under AH


def test_a_malformed_message_gets_an_expert_warning_not_a_lua_error(tmp_path):
    src, dst = "fe80::21b:63ff:fe84:45e6", "fe80::5eff:fe10:1"
    good = bytearray(encode(HandoverRedirectAck((LkbMessage(b"\x0e\x01x"), Identifier(7), MessageAuthCode())),
                            src, dst))
    good[10 + 1] = 1  # the first sub-option's length: below 2
    good[2:4] = b"\0\0"
    from ipaddress import IPv6Address

    from fmipfast import backend
    backend.icmp6_checksum_fill(IPv6Address(src).packed, IPv6Address(dst).packed, good)
    frame = frames.build_ethernet(bytes.fromhex("02005e100001"), bytes.fromhex("001b638445e6"),
                                  frames.build_ipv6(IPv6Address(src), IPv6Address(dst), 58, bytes(good), 255))
    cap = tmp_path / "bad.pcap"
    with PcapWriter(cap) as w:
        w.write(frame, 0)
    rows, stderr = _tshark(cap)
    assert "Lua" not in stderr, stderr
    assert rows[1]["fmipfast.message"] == "Handover Redirect Ack"
    assert "length 1 is below 2" in rows[1]["_ws.expert.message"], rows[1]


def test_the_cli_prints_the_dissector_path():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run([sys.executable, "-m", "fmipfast", "wireshark"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0 and Path(done.stdout.strip()) == LUA and LUA.exists()


def test_any_octets_after_the_fmipfast_header_never_break_the_dissector(tmp_path):
    """Fuzz: 400 ICMPv6 type 200 messages of every code with random bodies (valid checksums), some with
    sub-option-shaped tails, in one capture: tshark shows each as fmipfast without a single Lua error, and
    flags as malformed at least every message our own decoder rejects."""
    import random
    from ipaddress import IPv6Address

    from fmipfast import backend
    from fmipfast.errors import MalformedPacket
    from fmipfast.messages import decode

    rng = random.Random(7)
    src, dst = IPv6Address("fe80::1"), IPv6Address("fe80::2")
    cap = tmp_path / "fuzz.pcap"
    rejected = set()
    with PcapWriter(cap) as w:
        for n in range(1, 401):
            code = rng.randint(1, 7)
            body = bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 3, 9, 23, 30, 60, 120])))
            if rng.random() < 0.5:  # a plausible fixed part, then random sub-options
                body = bytes(6) + (len(body) + 10).to_bytes(2, "big") + body if code in (2, 4, 5, 7) \
                    else bytes(20) + body
            icmp = bytearray(bytes((200, code, 0, 0)) + body)
            backend.icmp6_checksum_fill(src.packed, dst.packed, icmp)
            try:
                decode(bytes(icmp), src, dst)
            except MalformedPacket:
                rejected.add(n)
            w.write(frames.build_ethernet(bytes.fromhex("02005e100002"), bytes.fromhex("02005e100001"),
                                          frames.build_ipv6(src, dst, 58, bytes(icmp), 255)), n * 1000)
    rows, stderr = _tshark(cap)
    assert "Lua" not in stderr and "rror" not in stderr, stderr[-2000:]
    assert set(rows) == set(range(1, 401))
    flagged = {n for n, r in rows.items() if r["fmipfast.malformed"]}
    assert rejected and rejected <= flagged, sorted(rejected - flagged)[:10]


def test_a_remapped_codepoint_profile_is_dissected_with_the_matching_preferences(tmp_path):
    """A deployment that remaps the type and the Codes ([codepoints]) sets the same numbers as the dissector's
    preferences; with the defaults those messages are not taken for fmipfast ones."""
    from ipaddress import IPv6Address

    from fmipfast.constants import AddressKind, Codepoints
    from fmipfast.messages import AddressOption, Attach, HandoverError, HandoverRedirect, IcmpHandover, Status

    codes = {"handover_redirect": 11, "handover_redirect_ack": 12, "handover": 13, "authenticated_mn": 14,
             "attach": 15, "handover_error": 16, "forwarding_disable": 17}
    cp = Codepoints(201, **codes)
    src, dst = IPv6Address("2001:db8:1::1"), IPv6Address("2001:db8:2::1")
    ncoa = IPv6Address("2001:db8:2::a")
    messages = [HandoverRedirect(64, dst, bytes(range(8)), ncoa, (Identifier(1), MessageAuthCode())),
                IcmpHandover(64, ncoa, bytes(range(8)), (AddressOption(AddressKind.PCOA, src), Identifier(2))),
                HandoverError(ncoa, (Status(131), Identifier(3))), Attach((Identifier(4), MessageAuthCode()))]
    cap = tmp_path / "remapped.pcap"
    with PcapWriter(cap) as w:
        for n, m in enumerate(messages, 1):
            w.write(frames.build_ethernet(bytes(6), bytes(6), frames.build_ipv6(
                src, dst, 58, encode(m, src, dst, codepoints=cp), 255)), n * 1000)
    assert _tshark(cap)[0] == {}  # the default preferences: type 200
    opts = ["-o", "fmipfast.icmp_type:201"] + [a for k, v in codes.items() for a in ("-o", f"fmipfast.{k}:{v}")]
    rows, stderr = _tshark(cap, *opts)
    assert "Lua" not in stderr, stderr
    assert [rows[n]["fmipfast.message"] for n in (1, 2, 3, 4)] == [
        "Handover Redirect", "ICMP Handover", "Handover Error", "Attach"]
    assert [rows[n]["fmipfast.identifier"] for n in (1, 2, 3, 4)] == ["1", "2", "3", "4"]
    assert rows[1]["fmipfast.ncoa"] == str(ncoa) and rows[3]["fmipfast.status"] == "131"
    assert not any(r["fmipfast.malformed"] for r in rows.values())


def test_the_lkb_sub_type_names_the_mechanism(tmp_path):
    """The first octet of an LKB PDU: an lwkerb message type, or a GSS-API sub-type (0x80 initiator token) --
    shown by the dissector and by ``fmipfast decode`` alike, on the first fragment only."""
    src, dst = "2001:db8:1::a", "2001:db8:1::1"
    capture = tmp_path / "mech.pcap"
    gss_pdu = b"\x80\x01" + (600).to_bytes(2, "big") + bytes(range(256)) * 2 + bytes(88)  # three fragments
    lw_pdu = bytes((14, 1)) + bytes(100)
    with PcapWriter(capture) as w:
        for pdu in (gss_pdu, lw_pdu):
            hra = HandoverRedirectAck((LkbMessage(pdu), Identifier(9), MessageAuthCode()))
            w.write(frames.icmp6_frame(hra, src, dst, bytes.fromhex("001b638445e6"), bytes.fromhex("02005e100001"),
                                       255), 0)
    done = subprocess.run([TSHARK, "-n", "-X", f"lua_script:{LUA}", "-r", str(capture), "-Y", "fmipfast", "-T",
                           "fields", "-E", "occurrence=a", "-E", "aggregator=,", "-e", "fmipfast.lkb.mechanism",
                           "-e", "fmipfast.lkb.subtype", "-e", "fmipfast.lkb.gss_length"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["gssapi\t0x80\t600", "lwkerb\t0x0e\t"]
    ours = [d["options"][0] for d in _ours_all(capture)]
    assert [(o["mechanism"], o["subtype"], o["length"]) for o in ours] == [("gssapi", 0x80, 604), ("lwkerb", 14, 102)]


def _ours_all(capture: Path) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run([sys.executable, "-m", "fmipfast", "decode", "--json", str(capture)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]

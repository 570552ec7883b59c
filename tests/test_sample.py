"""The shipped sample capture (the README's first command decodes it): reproducible, complete, and
checked by the independent peers (tshark for checksums, our AH/MAC verifiers for the security fields)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from fmipfast import frames
from fmipfast.cli import main
from fmipfast.lab import sample
from fmipfast.messages import FmipMessage, decode, mac_value_offset
from fmipfast.pcap import read_pcap
from fmipfast.security import ah, mac

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "handover.pcap"


def test_committed_sample_is_what_the_generator_writes():
    records = read_pcap(SAMPLE)
    assert [(r.ts_ns, r.data) for r in records] == sample.sample_frames(), (
        "samples/handover.pcap is stale: run `python -m fmipfast.lab.sample samples/handover.pcap`")


def test_sample_holds_the_figure_4_flow(capsys):
    assert main(["decode", "--json", str(SAMPLE)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    names = [r["message"] for r in rows if r["message"]]
    assert names == ["RouterSolicitation", "RouterAdvertisement", "HandoverRedirect", "HandoverRedirectAck",
                     "IcmpHandover", "Attach", "AuthenticatedMN", "HandoverError", "ForwardingDisable"]
    for row in rows:
        assert row["error"] is None
        if row["message"]:
            assert row["checksum_ok"] is True and row.get("hop_limit_ok", True) and row.get("ah_ok", True)
    assert main(["decode", "--strict", str(SAMPLE)]) == 0


def test_sample_security_fields_verify():
    t = sample.TOPOLOGY
    sad = ah.SADatabase()
    sad.add_inbound(ah.SecurityAssociation(sample.AH_SPI, sample.AH_KEY, peer=str(t.par)))
    sad.add_inbound(ah.SecurityAssociation(sample.AH_SPI + 1, sample.AH_KEY[::-1], peer=str(t.nar)))
    keys = {"HandoverRedirect": sample.PAR_MN_KEY, "HandoverRedirectAck": sample.PAR_MN_KEY,
            "ForwardingDisable": sample.PAR_MN_KEY, "Attach": sample.NAR_MN_KEY,
            "AuthenticatedMN": sample.NAR_MN_KEY}
    verified_ah = verified_mac = 0
    for rec in read_pcap(SAMPLE):
        parsed = frames.parse_frame(rec.data)
        if parsed.has_ah:
            inner = ah.verify(rec.data[14:14 + 40 + parsed.frame[18] * 256 + parsed.frame[19]], sad)
            assert frames.parse_frame(inner, frames.LINKTYPE_RAW).is_icmp6
            verified_ah += 1
        if not parsed.is_icmp6:
            continue
        msg = decode(parsed.payload, parsed.src, parsed.dst)
        if isinstance(msg, FmipMessage) and msg.NAME in keys:
            offset = mac_value_offset(parsed.payload)
            assert mac.verify_message_mac(keys[msg.NAME], parsed.src.packed, parsed.dst.packed, parsed.payload,
                                          offset)
            assert not mac.verify_message_mac(bytes(32), parsed.src.packed, parsed.dst.packed, parsed.payload,
                                              offset)
            verified_mac += 1
    assert verified_ah == 2 and verified_mac == 5


def test_sample_derivations_match_design():
    t = sample.TOPOLOGY
    assert str(t.pcoa) == "2001:db8:1:0:21b:63ff:fe84:45e6"
    assert str(t.ncoa) == "2001:db8:2:0:21b:63ff:fe84:45e6"
    assert str(t.nar_ll) == "fe80::5eff:fe10:2"


def test_tshark_agrees_on_the_sample():
    tshark = shutil.which("tshark")
    assert tshark, "tshark is required (CI installs it)"
    out = subprocess.run([tshark, "-n", "-r", str(SAMPLE), "-T", "fields", "-e", "frame.number", "-e", "ipv6.nxt",
                          "-e", "icmpv6.type", "-e", "icmpv6.checksum.status", "-e", "ah.spi"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    rows = [(line.split("\t") + [""] * 5)[:5] for line in out.rstrip("\n").split("\n")]
    assert len(rows) == 13
    icmp_rows = [r for r in rows if r[2]]
    assert len(icmp_rows) == 9 and all(r[3] == "1" for r in icmp_rows)
    ah_rows = [r for r in rows if r[4]]
    assert [int(r[4], 16) for r in ah_rows] == [sample.AH_SPI, sample.AH_SPI + 1]

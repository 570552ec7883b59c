"""Independent peers check our bytes: scapy (dissector and checksum) and tshark (icmpv6.checksum.status)."""

from __future__ import annotations

import json
import subprocess

import pytest
from scapy.layers.inet6 import (
    MIP6MH_BA,
    MIP6MH_BU,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    in6_chksum,
)
from scapy.layers.l2 import Ether

from fmipfast import frames
from fmipfast.messages import (
    BindingAck,
    BindingUpdate,
    Mtu,
    PrefixInformation,
    RouterAdvertisement,
    RouterSolicitation,
    SourceLinkLayerAddress,
    decode,
    encode,
)
from fmipfast.pcap import PcapWriter
from tests.test_messages import EXPECTED, golden
from tests.tools import external_tool

MAC_A, MAC_B = bytes.fromhex("02005e100001"), bytes.fromhex("02005e100002")


def _packets():
    for name in sorted(EXPECTED):
        src, dst, _ = golden(name)
        yield name, frames.icmp6_packet(EXPECTED[name], src, dst)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_scapy_computes_our_checksum(name):
    src, dst, _ = golden(name)
    pkt = frames.icmp6_packet(EXPECTED[name], src, dst)
    icmp = bytearray(pkt[40:])
    ours = int.from_bytes(icmp[2:4], "big")
    icmp[2:4] = b"\x00\x00"
    assert in6_chksum(58, IPv6(pkt), bytes(icmp)) == ours
    # and scapy's dissector reads the same IPv6 framing: addresses, hop limit, payload length
    sp = IPv6(pkt)
    assert (sp.src, sp.dst, sp.nh, sp.plen) == (src, dst, 58, len(pkt) - 40)
    assert bytes(sp.payload) == pkt[40:]


def test_scapy_dissects_our_rs_ra_options():
    ra = RouterAdvertisement(64, 0x40, 1800, 30000, 1000, (SourceLinkLayerAddress(MAC_A), Mtu(1400),
                                                          PrefixInformation(64, "2001:db8:2::", 0xC0, 86400, 3600)))
    pkt = frames.icmp6_packet(ra, "fe80::1", "ff02::1")
    sp = IPv6(pkt)
    assert sp.haslayer(ICMPv6ND_RA)
    assert sp[ICMPv6ND_RA].chlim == 64 and sp[ICMPv6ND_RA].O == 1 and sp[ICMPv6ND_RA].routerlifetime == 1800
    assert sp[ICMPv6NDOptSrcLLAddr].lladdr == "02:00:5e:10:00:01"
    assert sp[ICMPv6NDOptMTU].mtu == 1400
    pi = sp[ICMPv6NDOptPrefixInfo]
    assert (pi.prefix, pi.prefixlen, pi.validlifetime, pi.preferredlifetime) == ("2001:db8:2::", 64, 86400, 3600)


def test_we_decode_scapy_built_rs_and_ra():
    ra = (IPv6(src="fe80::1", dst="ff02::1", hlim=255) / ICMPv6ND_RA(chlim=64, routerlifetime=600)
          / ICMPv6NDOptSrcLLAddr(lladdr="02:00:5e:10:00:01") / ICMPv6NDOptMTU(mtu=1280)
          / ICMPv6NDOptPrefixInfo(prefix="2001:db8:7::", prefixlen=64))
    raw = bytes(ra)
    msg = decode(raw[40:], "fe80::1", "ff02::1")  # also verifies scapy's checksum
    assert isinstance(msg, RouterAdvertisement) and msg.router_lifetime == 600
    assert msg.options[0] == SourceLinkLayerAddress(MAC_A) and msg.options[1] == Mtu(1280)
    assert msg.options[2].prefix_length == 64 and str(msg.options[2].prefix) == "2001:db8:7::"
    rs = bytes(IPv6(src="fe80::9", dst="ff02::2", hlim=255) / ICMPv6ND_RS()
               / ICMPv6NDOptSrcLLAddr(lladdr="02:00:5e:10:00:02"))
    assert decode(rs[40:], "fe80::9", "ff02::2") == RouterSolicitation((SourceLinkLayerAddress(MAC_B),))


def test_scapy_reads_our_ethernet_framing():
    msg = EXPECTED["hrd_values"]
    frame = frames.icmp6_frame(msg, "fe80::1", "ff02::1", MAC_A)
    se = Ether(frame)
    assert se.dst == "33:33:00:00:00:01" and se.src == "02:00:5e:10:00:01" and se.type == 0x86DD
    assert se[IPv6].hlim == 255


def _tshark() -> str:
    return external_tool("tshark")


def test_tshark_agrees_on_every_checksum(tmp_path):
    cap = tmp_path / "golden.pcap"
    names = sorted(EXPECTED)
    with PcapWriter(cap) as w:
        for i, name in enumerate(names):
            src, dst, _ = golden(name)
            w.write(frames.icmp6_frame(EXPECTED[name], src, dst, MAC_A, MAC_B), ts_ns=i * 1_000_000)
        # one deliberately corrupted: a payload octet changed after the checksum was computed
        src, dst, _ = golden("hi_values")
        bad = bytearray(frames.icmp6_frame(EXPECTED["hi_values"], src, dst, MAC_A, MAC_B))
        bad[-1] ^= 0x5A
        w.write(bytes(bad), ts_ns=len(names) * 1_000_000)
    out = subprocess.run([_tshark(), "-n", "-r", str(cap), "-T", "fields", "-e", "frame.number", "-e", "icmpv6.type",
                          "-e", "icmpv6.checksum", "-e", "icmpv6.checksum.status"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    rows = [line.split("\t") for line in out.strip().splitlines()]
    assert len(rows) == len(names) + 1
    for row, name in zip(rows, names):
        src, dst, wire = golden(name)
        assert int(row[1]) == wire[0]
        assert int(row[2], 16) == int.from_bytes(wire[2:4], "big")
        assert row[3] == "1", f"tshark says the checksum of {name} is bad: {row}"
    assert rows[-1][3] == "0", "tshark accepted a corrupted checksum"


def test_tshark_reads_our_ipv6_fields(tmp_path):
    cap = tmp_path / "one.pcap"
    src, dst, wire = golden("he_values")
    with PcapWriter(cap) as w:
        w.write(frames.icmp6_frame(EXPECTED["he_values"], src, dst, MAC_A, MAC_B))
    out = subprocess.run([_tshark(), "-n", "-r", str(cap), "-T", "json", "-e", "ipv6.src", "-e", "ipv6.dst",
                          "-e", "ipv6.plen", "-e", "ipv6.hlim", "-e", "icmpv6.code"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    layers = json.loads(out)[0]["_source"]["layers"]
    assert layers["ipv6.src"] == [src] and layers["ipv6.dst"] == [dst]
    assert layers["ipv6.plen"] == [str(len(wire))] and layers["icmpv6.code"] == ["6"]
    assert encode(decode(wire), src, dst) == wire


def _mobility_packets() -> list[tuple[str, bytes]]:
    cn, ncoa = "2001:db8:ff::10", "2001:db8:2::21b:63ff:fe84:45e6"
    return [("bu", BindingUpdate(sequence=7, lifetime_units=60).packet(ncoa, cn)),
            ("back", BindingAck(status=0, sequence=7).packet(cn, ncoa)),
            ("back_rejected", BindingAck(status=129, sequence=65535, lifetime_units=0, flags=0x80).packet(cn, ncoa))]


def test_scapy_dissects_our_binding_update_and_ack():
    """RFC 6275 §6.1: scapy's MIP6MH_BU/BA read our Mobility Headers and compute the same checksum."""
    for name, pkt in _mobility_packets():
        sp = IPv6(pkt)
        mh = bytearray(pkt[40:])
        ours = int.from_bytes(mh[4:6], "big")
        mh[4:6] = b"\x00\x00"
        assert in6_chksum(135, sp, bytes(mh)) == ours, name
        if name == "bu":
            bu = sp[MIP6MH_BU]
            assert (bu.mhtype, bu.seq, bu.mhtime, bu.nh, "A" in bu.flags) == (5, 7, 60, 59, True)
        else:
            ba = sp[MIP6MH_BA]
            expect = BindingAck.decode_packet(pkt)
            assert (ba.mhtype, ba.status, ba.seq, ba.mhtime) == (6, expect.status, expect.sequence,
                                                               expect.lifetime_units)
    # and we read what scapy builds (its BAck sets K by default), octet for octet what we would build
    built = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / MIP6MH_BA(status=0, seq=42, mhtime=15))
    assert BindingAck.decode_packet(built) == BindingAck(0, 42, 15, 0x80)
    assert BindingAck(0, 42, 15, 0x80).packet("2001:db8::1", "2001:db8::2") == built


def test_tshark_reads_our_mobility_headers(tmp_path):
    cap = tmp_path / "mh.pcap"
    pkts = _mobility_packets()
    with PcapWriter(cap) as w:
        for i, (_, pkt) in enumerate(pkts):
            w.write(frames.build_ethernet(MAC_B, MAC_A, pkt), ts_ns=i * 1_000_000)
    out = subprocess.run([_tshark(), "-n", "-r", str(cap), "-T", "fields", "-e", "mip6.mhtype", "-e", "mip6.csum",
                          "-e", "mip6.bu.seqnr", "-e", "mip6.bu.a_flag", "-e", "mip6.ba.status", "-e", "mip6.ba.seqnr",
                          "-e", "mip6.ba.k_flag"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    rows = [line.split("\t") for line in out.strip().splitlines()]
    assert [r[0] for r in rows] == ["5", "6", "6"]
    for row, (_, pkt) in zip(rows, pkts):
        assert int(row[1], 16) == int.from_bytes(pkt[44:46], "big")
    assert rows[0][2:4] == ["7", "1"] or rows[0][2:4] == ["7", "True"]
    assert rows[1][4:6] == ["0", "7"] and rows[2][4:6] == ["129", "65535"]
    assert rows[2][6] in ("1", "True")

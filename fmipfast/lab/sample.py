"""The sample capture shipped in ``samples/handover.pcap``: the draft's Figure 4 message flow, on the wire.

One mobile node moves from the previous access router (PAR, link A) to the new one (NAR, link B) while a
correspondent node streams UDP to it.  The capture holds, in order: the MN's Router Solicitation asking for
adjacent realms and the PAR's Advertisement listing them (draft §6.1.1); data on link A; Handover Redirect
(1), Handover Redirect Ack with the AP-REQ (2), ICMP Handover under AH (3); a tunnelled data packet
(PAR -> NAR, RFC 2473); Attach with the Binding Update (5); Authenticated-MN with the AP-REP (4); the
buffered packet delivered on link B; then a Handover Error for another attempt and a Forwarding Disable
after a link reversal (draft App. A).

Every frame is built by fmipfast itself (messages, frames, security.ah, security.mac) with fixed demo keys,
so the capture is reproducible: ``python -m fmipfast.lab.sample samples/handover.pcap`` rewrites it byte for
byte, and a test checks that it does.  The LKB PDUs here are opaque placeholders of realistic size; the
light-weight Kerberos layouts are documented in docs/security.md.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from ipaddress import IPv6Address

from fmipfast import backend, frames
from fmipfast.constants import AddressKind, HandoverStatus, IpProto
from fmipfast.messages import (
    AddressOption,
    AdjacentRealms,
    AdjacentRealmsRequest,
    Attach,
    AuthenticatedMN,
    BindingUpdate,
    EncapsulatedPacket,
    FmipMessage,
    ForwardingDisable,
    HandoverControl,
    HandoverError,
    HandoverRedirect,
    HandoverRedirectAck,
    IcmpHandover,
    Identifier,
    LinkLayerAddress,
    LkbMessage,
    Message,
    MessageAuthCode,
    PrefixInformation,
    Principal,
    RouterAdvertisement,
    RouterSolicitation,
    SourceLinkLayerAddress,
    Status,
    encode,
    mac_value_offset,
)
from fmipfast.pcap import PcapWriter
from fmipfast.security import ah, mac

__all__ = ["Topology", "TOPOLOGY", "sample_frames", "write_sample", "AH_KEY", "PAR_MN_KEY", "NAR_MN_KEY",
           "AH_SPI"]

# Demo keys (never use outside this sample): the PAR<->NAR AH SA and the MN<->router MAC keys.
AH_SPI = 0x1001
AH_KEY = bytes(range(32))
PAR_MN_KEY = bytes(range(32, 64))
NAR_MN_KEY = bytes(range(64, 96))


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


@dataclass(frozen=True)
class Topology:
    cn: IPv6Address
    ha: IPv6Address
    par: IPv6Address
    par_ll: IPv6Address
    par_mac: bytes
    nar: IPv6Address
    nar_mac: bytes
    mn_mac: bytes
    core_mac: bytes
    prefix_size: int = 64

    @property
    def mn_eui64(self) -> bytes:
        return backend.eui64_from_mac48(self.mn_mac)

    @property
    def mn_ll(self) -> IPv6Address:
        return IPv6Address(backend.link_local_from_mac48(self.mn_mac))

    @property
    def pcoa(self) -> IPv6Address:
        iid = backend.link_local_from_mac48(self.mn_mac)[8:]
        return IPv6Address(self.par.packed[:8] + iid)

    @property
    def ncoa(self) -> IPv6Address:
        """What the MN forms from the Handover Redirect without C (docs/design.md §3)."""
        return IPv6Address(backend.ncoa_from_prefix(self.nar.packed, self.prefix_size, self.pcoa.packed))

    @property
    def nar_ll(self) -> IPv6Address:
        """What the MN derives from the NAR address (docs/design.md §3)."""
        return IPv6Address(backend.nar_link_local(self.nar.packed, self.prefix_size))


TOPOLOGY = Topology(
    cn=IPv6Address("2001:db8:ff::10"),
    ha=IPv6Address("2001:db8:ff::1"),
    par=IPv6Address("2001:db8:1::5eff:fe10:1"),
    par_ll=IPv6Address("fe80::5eff:fe10:1"),
    par_mac=_mac("02:00:5e:10:00:01"),
    nar=IPv6Address("2001:db8:2::5eff:fe10:2"),
    nar_mac=_mac("02:00:5e:10:00:02"),
    mn_mac=_mac("00:1b:63:84:45:e6"),
    core_mac=_mac("02:00:5e:10:00:ff"),
)

#: Placeholder LKB PDUs of the sizes docs/security.md gives for an AP-REQ and an AP-REP.
AP_REQ = bytes((i * 37 + 11) & 0xFF for i in range(300))
AP_REP = bytes((i * 53 + 7) & 0xFF for i in range(60))


def _signed(msg: FmipMessage, key: bytes, src: IPv6Address, dst: IPv6Address) -> bytes:
    """Encode ``msg`` (which carries a zero MAC sub-option) with its MAC value filled in, then the checksum."""
    draft = encode(msg, src, dst)
    offset = mac_value_offset(draft)
    assert offset is not None
    value = mac.message_mac(key, src.packed, dst.packed, draft, offset)
    options = tuple(MessageAuthCode(value) if isinstance(o, MessageAuthCode) else o for o in msg.options)
    signed = dataclasses.replace(msg, options=options)  # type: ignore[type-var]
    return encode(signed, src, dst)


def _eth_icmp(message: Message | bytes, src: IPv6Address, dst: IPv6Address, src_mac: bytes,
              dst_mac: bytes | None = None, hop_limit: int | None = None) -> bytes:
    if isinstance(message, bytes):  # an already-encoded (signed) ICMPv6 message
        hl = 255 if hop_limit is None else hop_limit
        pkt = frames.build_ipv6(src, dst, IpProto.ICMPV6, message, hl)
        if dst_mac is None:
            dst_mac = frames.multicast_mac(dst)
        return frames.build_ethernet(dst_mac, src_mac, pkt)
    return frames.icmp6_frame(message, src, dst, src_mac, dst_mac, hop_limit)


def _udp(src: IPv6Address, dst: IPv6Address, seq: int, hop_limit: int) -> bytes:
    payload = seq.to_bytes(4, "big") + b"fmipfast-sample-stream"
    udp = bytearray(b"\x13\x88\x13\x88" + (8 + len(payload)).to_bytes(2, "big") + b"\0\0" + payload)
    cksum = backend.upper_layer_checksum(src.packed, dst.packed, IpProto.UDP, bytes(udp), 6)
    udp[6:8] = cksum.to_bytes(2, "big")
    return frames.build_ipv6(src, dst, IpProto.UDP, bytes(udp), hop_limit)


def sample_frames(t: Topology = TOPOLOGY) -> list[tuple[int, bytes]]:
    """The sample capture as ``(timestamp_ns, Ethernet frame)`` pairs."""
    out: list[tuple[int, bytes]] = []
    ms = 1_000_000
    sa_out = ah.SecurityAssociation(AH_SPI, AH_KEY, peer=str(t.nar))
    sa_back = ah.SecurityAssociation(AH_SPI + 1, AH_KEY[::-1], peer=str(t.par))
    hid = 0x2A01

    def add(ms_at: float, frame: bytes) -> None:
        out.append((int(ms_at * ms), frame))

    # Precaching (draft §3, §6.1.1): RS asking for adjacent realms, RA listing them.
    add(0, frames.icmp6_frame(RouterSolicitation((SourceLinkLayerAddress(t.mn_mac), AdjacentRealmsRequest())),
                              t.mn_ll, "ff02::2", t.mn_mac))
    ra = RouterAdvertisement(64, 0, 1800, 0, 0, (SourceLinkLayerAddress(t.par_mac),
                                                 PrefixInformation(64, IPv6Address(t.par.packed[:8] + bytes(8))),
                                                 AdjacentRealms(("B.EXAMPLE", "C.EXAMPLE"))))
    add(2, frames.icmp6_frame(ra, t.par_ll, t.mn_ll, t.par_mac, t.mn_mac))
    # The CN's stream reaches the MN on link A.
    add(100, frames.build_ethernet(t.mn_mac, t.par_mac, _udp(t.cn, t.pcoa, 1, 61)))
    add(120, frames.build_ethernet(t.mn_mac, t.par_mac, _udp(t.cn, t.pcoa, 2, 61)))
    # 1. Handover Redirect: NAR address only (no M, no C: the MN derives the NAR's MAC and its NCoA).
    hrd = HandoverRedirect(t.prefix_size, t.nar, options=(Principal("host/nar", "B.EXAMPLE"), Identifier(hid),
                                                          MessageAuthCode()))
    add(200, _eth_icmp(_signed(hrd, PAR_MN_KEY, t.par_ll, t.mn_ll), t.par_ll, t.mn_ll, t.par_mac, t.mn_mac))
    # 2. Handover Redirect Ack with the AP-REQ for the NAR (fragmented over two type-2 sub-options).
    hra = HandoverRedirectAck((LkbMessage(AP_REQ), Identifier(hid), MessageAuthCode()))
    add(210, _eth_icmp(_signed(hra, PAR_MN_KEY, t.mn_ll, t.par_ll), t.mn_ll, t.par_ll, t.mn_mac, t.par_mac))
    # 3. ICMP Handover, PAR -> NAR, under AH.
    hi = IcmpHandover(t.prefix_size, t.ncoa, t.mn_eui64, (LkbMessage(AP_REQ), HandoverControl(True, 64, 3000),
                                                          AddressOption(AddressKind.PCOA, t.pcoa), Identifier(hid)))
    add(215, frames.build_ethernet(t.core_mac, t.par_mac, ah.protect(frames.icmp6_packet(hi, t.par, t.nar), sa_out)))
    # The PAR tunnels the PCoA's traffic to the NAR (RFC 2473), which buffers it.
    inner = _udp(t.cn, t.pcoa, 3, 60)
    add(220, frames.build_ethernet(t.core_mac, t.par_mac, frames.build_ipv6(t.par, t.nar, IpProto.IPV6, inner, 64)))
    # 5. Attach on link B: link-layer address, the Binding Update, MAC under the NAR-MN key.
    bu = BindingUpdate(sequence=17, lifetime_units=60).packet(t.ncoa, t.ha)
    att = Attach((LinkLayerAddress(t.mn_eui64), EncapsulatedPacket(bu), Identifier(hid), MessageAuthCode()))
    add(260, _eth_icmp(_signed(att, NAR_MN_KEY, t.ncoa, t.nar_ll), t.ncoa, t.nar_ll, t.mn_mac, t.nar_mac))
    # 4. Authenticated-MN with the AP-REP.
    amn = AuthenticatedMN((LkbMessage(AP_REP), Identifier(hid), MessageAuthCode()))
    add(262, _eth_icmp(_signed(amn, NAR_MN_KEY, t.nar_ll, t.ncoa), t.nar_ll, t.ncoa, t.nar_mac, t.mn_mac))
    # The buffered packet, flushed on link B.
    add(263, frames.build_ethernet(t.mn_mac, t.nar_mac, _udp(t.cn, t.pcoa, 3, 59)))
    # Another attempt refused: Handover Error (NCoA in use), NAR -> PAR under AH.
    he = HandoverError(t.ncoa, (Status(HandoverStatus.NCOA_IN_USE), Identifier(hid + 1)))
    add(1000, frames.build_ethernet(t.core_mac, t.nar_mac, ah.protect(frames.icmp6_packet(he, t.nar, t.par),
                                                                     sa_back)))
    # A link reversal: the MN is back on link A and asks the PAR to stop forwarding (draft App. A).
    fd = ForwardingDisable((Identifier(hid + 2), MessageAuthCode()))
    add(1100, _eth_icmp(_signed(fd, PAR_MN_KEY, t.mn_ll, t.par_ll), t.mn_ll, t.par_ll, t.mn_mac, t.par_mac))
    return out


def write_sample(path: str) -> int:
    """Write the sample capture; returns the number of frames."""
    items = sample_frames()
    with PcapWriter(path) as writer:
        for ts, frame in items:
            writer.write(frame, ts_ns=ts)
    return len(items)


if __name__ == "__main__":  # pragma: no cover
    target = sys.argv[1] if len(sys.argv) > 1 else "samples/handover.pcap"
    print(f"wrote {write_sample(target)} frames to {target}")

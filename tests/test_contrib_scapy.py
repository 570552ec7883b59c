"""fmipfast.contrib.scapy against our codec, both ways: every message kind and every sub-option kind is
generated through fmipfast.messages, encoded by our codec and dissected by the scapy layers (every field
checked), and built field by field with the scapy layers and decoded by our codec — the octets, checksums
included, equal both ways."""

from __future__ import annotations

import re
import subprocess
import sys
from ipaddress import IPv6Address
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6Unknown, IPv6
from scapy.layers.ipsec import AH
from scapy.packet import Raw

from fmipfast.constants import (
    DEFAULT_CODEPOINTS,
    LKB_FRAGMENT_MAX,
    AddressKind,
    Codepoints,
    HandoverStatus,
    HiFlag,
    HrdFlag,
)
from fmipfast.contrib import scapy as fs
from fmipfast.messages import (
    MESSAGE_CLASSES,
    AddressOption,
    Attach,
    BindingUpdate,
    EncapsulatedPacket,
    FmipMessage,
    HandoverControl,
    HandoverError,
    HandoverRedirect,
    HandoverRedirectAck,
    IcmpHandover,
    Identifier,
    LinkLayerAddress,
    LkbMessage,
    MessageAuthCode,
    Principal,
    Status,
    SubOption,
    UnknownSubOption,
    decode,
    encode,
)

# ------------------------------------------------------------------------------------------------
# strategies: codec objects of every kind
# ------------------------------------------------------------------------------------------------

addresses = st.binary(min_size=16, max_size=16).map(IPv6Address)
eui64s = st.binary(min_size=8, max_size=8)
u16 = st.integers(0, 0xFFFF)
text = st.text(min_size=1, max_size=30).filter(lambda s: len(s.encode()) <= 90)
inner_packets = st.one_of(
    st.builds(lambda seq, lifetime, src, dst: BindingUpdate(seq, lifetime).packet(src, dst),
              u16, u16, addresses, addresses),
    st.binary(max_size=150).map(lambda b: b"\x60" + bytes(5) + b"\x3b\x40" + bytes(32) + b),
)

SUBOPTIONS: dict[str, st.SearchStrategy[SubOption]] = {
    "principal": st.builds(Principal, text, text),
    "lkb": st.builds(LkbMessage, st.binary(min_size=1, max_size=3 * LKB_FRAGMENT_MAX + 5)),
    "handover_control": st.builds(HandoverControl, st.booleans(), u16, st.integers(0, 2**32 - 1)),
    "address": st.builds(AddressOption, st.integers(0, 255), addresses),
    "encapsulated_packet": st.builds(EncapsulatedPacket, inner_packets),
    "identifier": st.builds(Identifier, u16),
    "mac": st.builds(MessageAuthCode, st.binary(min_size=16, max_size=16)),
    "status": st.builds(Status, st.integers(0, 255)),
    "link_layer_address": st.builds(LinkLayerAddress, eui64s),
    "unknown": st.builds(UnknownSubOption, st.integers(10, 255), st.binary(max_size=60)),
}
any_suboption = st.one_of(*(s for k, s in SUBOPTIONS.items() if k != "lkb"))


@st.composite
def option_lists(draw, must: str | None = None) -> tuple[SubOption, ...]:
    opts = draw(st.lists(any_suboption, max_size=4))
    if must is not None and must != "lkb":
        opts.insert(draw(st.integers(0, len(opts))), draw(SUBOPTIONS[must]))
    if must == "lkb" or draw(st.booleans()):
        opts.insert(draw(st.integers(0, len(opts))), draw(SUBOPTIONS["lkb"]))
    return tuple(opts)


def messages(key: str, options: st.SearchStrategy) -> st.SearchStrategy[FmipMessage]:
    cls = MESSAGE_CLASSES[key]
    if cls is HandoverRedirect:
        return st.builds(cls, st.integers(0, 128), addresses, st.none() | eui64s, st.none() | addresses, options)
    if cls is IcmpHandover:
        return st.builds(cls, st.integers(0, 128), addresses, st.none() | eui64s, options)
    if cls is HandoverError:
        return st.builds(cls, addresses, options)
    return st.builds(cls, options)


LAYER_OF = {
    Principal: fs.FmipOptPrincipal, LkbMessage: fs.FmipOptLkb, HandoverControl: fs.FmipOptHandoverControl,
    AddressOption: fs.FmipOptAddress, EncapsulatedPacket: fs.FmipOptEncapsulated, Identifier: fs.FmipOptIdentifier,
    MessageAuthCode: fs.FmipOptMac, Status: fs.FmipOptStatus, LinkLayerAddress: fs.FmipOptLinkLayerAddress,
    UnknownSubOption: fs.FmipOptUnknown,
}

CODEC_BY_KIND = {
    "principal": Principal, "lkb": LkbMessage, "handover_control": HandoverControl, "address": AddressOption,
    "encapsulated_packet": EncapsulatedPacket, "identifier": Identifier, "mac": MessageAuthCode, "status": Status,
    "link_layer_address": LinkLayerAddress, "unknown": UnknownSubOption,
}
assert set(CODEC_BY_KIND) == set(SUBOPTIONS)

# ------------------------------------------------------------------------------------------------
# codec object -> scapy layer, field by field (never through our octets), leaving to scapy what it computes
# ------------------------------------------------------------------------------------------------


def scapy_options(options: tuple[SubOption, ...]) -> list:
    out: list = []
    for opt in options:
        if isinstance(opt, Principal):
            out.append(fs.FmipOptPrincipal(principal=opt.name.encode(), realm=opt.realm.encode()))
        elif isinstance(opt, LkbMessage):
            out += fs.lkb_fragments(opt.pdu)
        elif isinstance(opt, HandoverControl):
            out.append(fs.FmipOptHandoverControl(flags="U" if opt.buffer else 0, max_packets=opt.max_packets,
                                                 lifetime_ms=opt.lifetime_ms))
        elif isinstance(opt, AddressOption):
            out.append(fs.FmipOptAddress(kind=int(opt.kind), address=str(opt.address)))
        elif isinstance(opt, EncapsulatedPacket):
            out.append(fs.FmipOptEncapsulated(packet=IPv6(opt.packet)))
        elif isinstance(opt, Identifier):
            out.append(fs.FmipOptIdentifier(identifier=opt.identifier))
        elif isinstance(opt, MessageAuthCode):
            out.append(fs.FmipOptMac(mac=opt.mac))
        elif isinstance(opt, Status):
            out.append(fs.FmipOptStatus(reason=int(opt.reason)))
        elif isinstance(opt, LinkLayerAddress):
            out.append(fs.FmipOptLinkLayerAddress(eui64=opt.eui64))
        elif isinstance(opt, UnknownSubOption):
            out.append(fs.FmipOptUnknown(type=opt.type, data=opt.data))
        else:  # pragma: no cover - a new sub-option needs a line here
            raise AssertionError(f"no scapy layer for {opt!r}")
    return out


def scapy_message(msg: FmipMessage):
    opts = scapy_options(msg.options)
    if isinstance(msg, HandoverRedirect):
        kw = {"nar_mac": msg.nar_mac} if msg.nar_mac is not None else {}
        if msg.ncoa is not None:
            kw["ncoa"] = str(msg.ncoa)
        return fs.FmipHandoverRedirect(prefix_size=msg.prefix_size, nar_address=str(msg.nar_address), options=opts,
                                       **kw)
    if isinstance(msg, IcmpHandover):
        kw = {"mn_mac": msg.mn_mac} if msg.mn_mac is not None else {}
        return fs.FmipHandover(prefix_size=msg.prefix_size, ncoa=str(msg.ncoa), options=opts, **kw)
    if isinstance(msg, HandoverError):
        return fs.FmipHandoverError(ncoa=str(msg.ncoa), options=opts)
    return fs.MESSAGE_LAYERS[msg.KEY](options=opts)


# ------------------------------------------------------------------------------------------------
# scapy layer vs codec object, every field
# ------------------------------------------------------------------------------------------------


def wire_options(options: tuple[SubOption, ...]) -> list[tuple[SubOption, bytes | None]]:
    """The sub-options as they are on the wire: an LKB PDU as its fragments (with the fragment's octets)."""
    out: list[tuple[SubOption, bytes | None]] = []
    for opt in options:
        if isinstance(opt, LkbMessage):
            out += [(opt, opt.pdu[i:i + LKB_FRAGMENT_MAX]) for i in range(0, len(opt.pdu), LKB_FRAGMENT_MAX)]
        else:
            out.append((opt, None))
    return out


def check_suboption(layer, opt: SubOption, fragment: bytes | None) -> None:
    assert type(layer) is LAYER_OF[type(opt)], (layer, opt)
    assert layer.type == (opt.type if isinstance(opt, UnknownSubOption) else opt.TYPE)
    value = fragment if fragment is not None else opt.value()
    assert layer.len == len(value) + 2
    if isinstance(opt, Principal):
        assert layer.principal_len == len(opt.name.encode())
        assert (layer.principal, layer.realm) == (opt.name.encode(), opt.realm.encode())
    elif isinstance(opt, LkbMessage):
        assert layer.data == fragment
    elif isinstance(opt, HandoverControl):
        assert int(layer.flags) == (0x80 if opt.buffer else 0)
        assert layer.flags.U == opt.buffer
        assert (layer.max_packets, layer.lifetime_ms) == (opt.max_packets, opt.lifetime_ms)
    elif isinstance(opt, AddressOption):
        assert (layer.kind, layer.reserved, IPv6Address(layer.address)) == (opt.kind, 0, opt.address)
    elif isinstance(opt, EncapsulatedPacket):
        assert isinstance(layer.packet, IPv6)
        assert bytes(layer.packet) == opt.packet
        assert (layer.packet.src, layer.packet.dst) == (str(IPv6Address(opt.packet[8:24])),
                                                        str(IPv6Address(opt.packet[24:40])))
    elif isinstance(opt, Identifier):
        assert (layer.identifier, layer.reserved) == (opt.identifier, 0)
    elif isinstance(opt, MessageAuthCode):
        assert layer.mac == opt.mac
    elif isinstance(opt, Status):
        assert layer.reason == opt.reason
    elif isinstance(opt, LinkLayerAddress):
        assert layer.eui64 == opt.eui64
    elif isinstance(opt, UnknownSubOption):
        assert layer.data == opt.data
    else:  # pragma: no cover
        raise AssertionError(opt)


def check_message(layer, msg: FmipMessage, wire: bytes, codepoints: Codepoints = DEFAULT_CODEPOINTS) -> None:
    assert type(layer) is fs.MESSAGE_LAYERS[msg.KEY]
    assert (layer.type, layer.code) == (codepoints.type, codepoints.code(msg.KEY))
    assert layer.cksum == int.from_bytes(wire[2:4], "big")
    if isinstance(msg, HandoverRedirect):
        assert (layer.prefix_size, int(layer.flags), layer.reserved) == (msg.prefix_size, int(msg.flags), 0)
        assert (layer.flags.M, layer.flags.C, layer.flags.S) == (
            bool(msg.flags & HrdFlag.M), bool(msg.flags & HrdFlag.C), bool(msg.flags & HrdFlag.S))
        assert IPv6Address(layer.nar_address) == msg.nar_address
        assert layer.nar_mac == msg.nar_mac
        assert (None if layer.ncoa is None else IPv6Address(layer.ncoa)) == msg.ncoa
    elif isinstance(msg, IcmpHandover):
        assert (layer.prefix_size, int(layer.flags), layer.reserved) == (msg.prefix_size, int(msg.flags), 0)
        assert layer.flags.M == bool(msg.flags & HiFlag.M)
        assert IPv6Address(layer.ncoa) == msg.ncoa
        assert layer.mn_mac == msg.mn_mac
    elif isinstance(msg, HandoverError):
        assert (layer.reserved, IPv6Address(layer.ncoa)) == (0, msg.ncoa)
    else:
        assert (layer.reserved, layer.length) == (0, len(wire))
    expected = wire_options(msg.options)
    assert len(layer.options) == len(expected)
    for sub, (opt, fragment) in zip(layer.options, expected):
        check_suboption(sub, opt, fragment)
    assert isinstance(layer.payload, type(layer.payload)) and not bytes(layer.payload)  # nothing left over


def both_ways(msg: FmipMessage, src: IPv6Address, dst: IPv6Address,
              codepoints: Codepoints = DEFAULT_CODEPOINTS) -> None:
    # ours -> scapy: dissect our octets (as a whole IPv6 packet, so the type dispatch is exercised too)
    wire = encode(msg, src, dst, codepoints=codepoints)
    packet = IPv6(src=str(src), dst=str(dst), hlim=255, nh=58) / Raw(wire)
    dissected = IPv6(bytes(packet))
    layer = dissected.payload
    check_message(layer, msg, wire, codepoints)
    assert bytes(layer) == wire  # rebuilding what scapy dissected changes nothing
    # scapy -> ours: built field by field, scapy computes checksum, lengths and flags
    built = bytes(IPv6(src=str(src), dst=str(dst)) / scapy_message(msg))
    assert built[40:] == wire
    back = decode(built[40:], src, dst, codepoints=codepoints)  # verifies scapy's checksum
    assert back == msg
    assert back.checksum == int.from_bytes(wire[2:4], "big")


# ------------------------------------------------------------------------------------------------
# the properties
# ------------------------------------------------------------------------------------------------

COMMON = settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("key", sorted(MESSAGE_CLASSES))
@COMMON
@given(data=st.data(), src=addresses, dst=addresses)
def test_every_message_kind_both_ways(key, data, src, dst):
    both_ways(data.draw(messages(key, option_lists())), src, dst)


@pytest.mark.parametrize("kind", sorted(SUBOPTIONS))
@COMMON
@given(data=st.data(), src=addresses, dst=addresses)
def test_every_suboption_kind_both_ways(kind, data, src, dst):
    key = data.draw(st.sampled_from(sorted(MESSAGE_CLASSES)))
    msg = data.draw(messages(key, option_lists(must=kind)))
    assert any(isinstance(o, CODEC_BY_KIND[kind]) for o in msg.options)
    both_ways(msg, src, dst)


def test_the_tables_cover_every_codec_class():
    assert set(fs.MESSAGE_LAYERS) == set(MESSAGE_CLASSES)
    codec_suboptions = {cls for cls in LAYER_OF if cls is not UnknownSubOption}
    assert {cls.TYPE for cls in codec_suboptions} == set(fs.SUBOPTION_LAYERS)
    for cls in codec_suboptions:
        assert fs.SUBOPTION_LAYERS[cls.TYPE] is LAYER_OF[cls]
    assert set(CODEC_BY_KIND.values()) == set(LAYER_OF)


# ------------------------------------------------------------------------------------------------
# binding, defaults, crafting
# ------------------------------------------------------------------------------------------------

OTHER = Codepoints(type=250, handover_redirect=11, handover_redirect_ack=12, handover=13, authenticated_mn=14,
                   attach=15, handover_error=16, forwarding_disable=17)


def _dissect(icmp6: bytes):
    """``icmp6`` as the payload of an IPv6 packet, dissected by scapy."""
    return IPv6(bytes(IPv6(src="fe80::1", dst="fe80::2", nh=58) / Raw(icmp6)))


@pytest.fixture
def other_profile():
    fs.bind(OTHER)
    try:
        yield OTHER
    finally:
        fs.unbind(OTHER)


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), src=addresses, dst=addresses)
def test_another_codepoint_profile_both_ways(other_profile, data, src, dst):
    key = data.draw(st.sampled_from(sorted(MESSAGE_CLASSES)))
    both_ways(data.draw(messages(key, option_lists())), src, dst, codepoints=other_profile)


def test_unbind_restores_scapy_and_the_default_profile():
    wire = encode(HandoverRedirectAck(), "fe80::1", "fe80::2", codepoints=OTHER)
    assert not isinstance(_dissect(wire).payload, fs.FmipMessage)  # type 250 unbound
    fs.bind(OTHER)
    assert isinstance(_dissect(wire).payload, fs.FmipHandoverRedirectAck)
    assert bytes(fs.FmipAttach())[:2] == bytes((250, 15))  # the last profile bound builds
    assert fs.bound() == {200: DEFAULT_CODEPOINTS, 250: OTHER}
    fs.unbind(OTHER)
    assert fs.bound() == {200: DEFAULT_CODEPOINTS}
    assert bytes(fs.FmipAttach())[:2] == bytes((200, 5))
    assert isinstance(_dissect(wire).payload, Raw)
    with pytest.raises(ValueError, match="not bound"):
        fs.unbind(OTHER)
    with pytest.raises(TypeError, match="Codepoints"):
        fs.bind(200)  # type: ignore[arg-type]


def test_rebinding_the_default_type_with_other_codes_replaces_them():
    moved = Codepoints(attach=42, forwarding_disable=43)
    fs.bind(moved)
    try:
        wire = encode(Attach(), "fe80::1", "fe80::2", codepoints=moved)
        assert isinstance(_dissect(wire).payload, fs.FmipAttach)
        old = encode(Attach(), "fe80::1", "fe80::2")  # code 5 is no fmipfast message any more
        assert isinstance(_dissect(old).payload, ICMPv6Unknown)
    finally:
        fs.bind(DEFAULT_CODEPOINTS)
    assert isinstance(_dissect(old).payload, fs.FmipAttach)


@pytest.mark.parametrize("msg", [
    IcmpHandover(64, "2001:db8:2::5", bytes.fromhex("020000fffe000001"),
                 (AddressOption(AddressKind.PCOA, "2001:db8:1::5"), Identifier(9), LkbMessage(bytes(300)))),
    HandoverError("2001:db8:2::5", (Status(HandoverStatus.NCOA_IN_USE), Identifier(9))),
], ids=["HI", "HE"])
def test_router_messages_under_ah_both_ways(msg):
    """HI and HE travel under AH: scapy alone leaves what follows an AH header Raw; the binding dissects it."""
    src, dst = IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2")
    wire = encode(msg, src, dst)
    ah = AH(spi=0x100, seq=1, payloadlen=4, icv=bytes(12))
    ours = IPv6(bytes(IPv6(src=str(src), dst=str(dst)) / AH(nh=58, spi=0x100, seq=1, payloadlen=4, icv=bytes(12))
                      / Raw(wire)))
    check_message(ours[AH].payload, msg, wire)
    built = IPv6(src=str(src), dst=str(dst)) / ah / scapy_message(msg)
    raw = bytes(built)
    assert raw[6] == 51 and raw[40] == 58  # IPv6 -> AH -> ICMPv6, the next headers filled in
    assert raw[64:] == wire
    assert decode(raw[64:], src, dst) == msg


def test_other_icmpv6_types_after_ah_get_scapy_s_own_layers():
    echo = bytes(IPv6() / AH(nh=58, payloadlen=4, icv=bytes(12)) / ICMPv6EchoRequest(id=7))
    assert IPv6(echo)[ICMPv6EchoRequest].id == 7
    assert isinstance(fs.FmipMessage(bytes(ICMPv6EchoRequest())), ICMPv6EchoRequest)


def test_unknown_code_of_the_bound_type_is_icmpv6_unknown():
    pkt = _dissect(bytes((200, 99, 0, 0)) + bytes(8))
    assert isinstance(pkt.payload, ICMPv6Unknown)


def test_link_only_messages_default_to_hop_limit_255_router_messages_do_not():
    for key, cls in fs.MESSAGE_LAYERS.items():
        hlim = IPv6(bytes(IPv6(dst="fe80::2") / cls())).hlim
        assert hlim == (64 if key in ("handover", "handover_error") else 255), key


def test_crafted_values_are_kept():
    """What scapy computes can be set by hand, e.g. to craft what our codec must reject."""
    hrd = fs.FmipHandoverRedirect(nar_address="2001:db8::1", flags="S", cksum=0xBEEF)
    raw = bytes(IPv6(src="fe80::1", dst="fe80::2") / hrd)[40:]
    assert raw[2:4] == b"\xbe\xef" and raw[5] == HrdFlag.S
    with pytest.raises(Exception, match="S flag set"):
        decode(raw)
    hra = bytes(fs.FmipHandoverRedirectAck(length=99, options=[fs.FmipOptIdentifier(len=5)]))
    assert hra[8:10] == b"\x00\x63" and hra[11] == 5


def test_show_renders_addresses_and_enums():
    pkt = fs.FmipHandoverRedirect(nar_mac="02:11:22:ff:fe:33:44:55",
                                  options=[fs.FmipOptAddress(kind=int(AddressKind.NCOA), address="2001:db8::9"),
                                           fs.FmipOptStatus(reason=int(HandoverStatus.NCOA_IN_USE))])
    shown = pkt.show(dump=True)
    assert "02:11:22:ff:fe:33:44:55" in shown and "NCOA" in shown and "NCOA_IN_USE" in shown
    assert pkt.nar_mac == bytes.fromhex("021122fffe334455")


def test_lkb_helpers():
    pdu = bytes(range(256)) * 3
    frags = fs.lkb_fragments(pdu)
    assert [len(f.data) for f in frags] == [253, 253, 253, 9]
    assert fs.lkb_pdu([fs.FmipOptIdentifier(), *frags, fs.FmipOptMac()]) == pdu
    assert fs.lkb_pdu([fs.FmipOptIdentifier()]) is None
    with pytest.raises(ValueError):
        fs.lkb_fragments(b"")


def test_a_suboption_too_long_for_its_length_octet_is_refused():
    with pytest.raises(ValueError, match="at most 255"):
        bytes(fs.FmipOptUnknown(type=99, data=bytes(254)))


@settings(max_examples=200)
@given(body=st.binary(max_size=120), code=st.integers(1, 7))
def test_dissecting_any_octets_never_raises(body, code):
    raw = bytes(IPv6(src="fe80::1", dst="fe80::2") / Raw(bytes((200, code, 0, 0)) + body))
    IPv6(raw).show(dump=True)


def test_fmip_message_dispatches_without_an_ipv6_layer():
    wire = encode(HandoverError("2001:db8::7", (Status(1),)), "fe80::1", "fe80::2")
    layer = fs.FmipMessage(wire)
    assert isinstance(layer, fs.FmipHandoverError) and layer.options[0].reason == 1
    assert isinstance(fs.FmipSubOption(b"\x06\x06\x00\x07\x00\x00"), fs.FmipOptIdentifier)
    assert isinstance(fs.FmipSubOption(b"\x63\x02"), fs.FmipOptUnknown)


# ------------------------------------------------------------------------------------------------
# scapy stays optional
# ------------------------------------------------------------------------------------------------


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_the_documented_examples_run():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "api" / "scapy.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert len(blocks) == 2
    for block in blocks:
        proc = _python(block)
        assert proc.returncode == 0, block + proc.stderr


def test_importing_fmipfast_does_not_import_scapy():
    proc = _python("import sys, fmipfast, fmipfast.messages, fmipfast.constants, fmipfast.contrib\n"
                   "assert not [m for m in sys.modules if m == 'scapy' or m.startswith('scapy.')], 'scapy'\n")
    assert proc.returncode == 0, proc.stderr


def test_without_scapy_the_import_error_names_it():
    proc = _python("import sys\nsys.modules['scapy'] = None\n"
                   "try:\n    import fmipfast.contrib.scapy\n"
                   "except ImportError as exc:\n    print(exc)\nelse:\n    raise SystemExit('imported')\n")
    assert proc.returncode == 0, proc.stderr
    assert "needs scapy" in proc.stdout and "pip install scapy" in proc.stdout

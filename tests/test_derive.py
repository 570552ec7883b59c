"""Derivation kernels: new care-of address, NAR link-local, EUI-64 / modified EUI-64 / MAC (docs/design.md §3,
draft §5-§6, RFC 4291 §2.5.1 and Appendix A).

Behaviour tests run on both implementations through the ``impl`` fixture (ids py/c); the agreement tests
at the end compare fmipfast.reference with fmipfast._core directly and are only collected when the
compiled core is available (conftest.HAVE_CORE).
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fmipfast import reference
from fmipfast.errors import DerivationError, FmipError
from tests.conftest import HAVE_CORE

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

MAC = bytes.fromhex("001b638445e6")  # 00:1b:63:84:45:e6
EUI = bytes.fromhex("001b63fffe8445e6")  # FF FE in the middle, U/L untouched (docs/design.md §3)
IID = bytes.fromhex("021b63fffe8445e6")  # modified EUI-64: U/L bit 0x02 inverted (RFC 4291 App. A)
LINK_LOCAL = ipaddress.IPv6Address("fe80::21b:63ff:fe84:45e6").packed


def a6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def _flavours(data: bytes):
    return [bytes(data), bytearray(data), memoryview(data), np.frombuffer(data, dtype=np.uint8).copy()]


addresses = st.binary(min_size=16, max_size=16)
euis = st.binary(min_size=8, max_size=8)
macs = st.binary(min_size=6, max_size=6)
prefix_lens = st.integers(0, 128)


# --------------------------------------------------------------------------------------------------
# Golden vectors


def test_eui64_examples(impl):
    assert impl.eui64_from_mac48(MAC) == EUI
    assert impl.iid_from_eui64(EUI) == IID
    assert impl.eui64_from_iid(IID) == EUI
    assert impl.mac48_from_eui64(EUI) == MAC
    assert impl.link_local_from_mac48(MAC) == LINK_LOCAL


def test_locally_administered_mac(impl):
    # U/L set in the MAC (0x02): the modified EUI-64 clears it.
    mac = bytes.fromhex("021122334455")
    assert impl.eui64_from_mac48(mac) == bytes.fromhex("021122fffe334455")
    assert impl.link_local_from_mac48(mac) == a6("fe80::11:22ff:fe33:4455")


def test_outputs_are_bytes(impl):
    for value in (
        impl.eui64_from_mac48(MAC),
        impl.link_local_from_mac48(MAC),
        impl.ncoa_from_prefix(a6("2001:db8:2::1"), 64, a6("2001:db8:1::5")),
        impl.mac48_from_address(LINK_LOCAL, 64),
    ):
        assert type(value) is bytes


def test_every_bytes_like_kind_accepted(impl):
    for mac in _flavours(MAC):
        assert impl.link_local_from_mac48(mac) == LINK_LOCAL
    for address in _flavours(LINK_LOCAL):
        assert impl.mac48_from_address(address, 64) == MAC
        assert impl.eui64_from_address(address, 64) == EUI


@pytest.mark.parametrize(
    "plen,expected",
    [
        (0, "2001:db8:1:f7f7:21b:63ff:fe84:45e6"),  # nothing from the NAR
        (48, "2001:db8:2:f7f7:21b:63ff:fe84:45e6"),
        (52, "2001:db8:2:17f7:21b:63ff:fe84:45e6"),  # boundary inside a nibble: 1 from NAR, 7f7 from CoA
        (64, "2001:db8:2:1234:21b:63ff:fe84:45e6"),  # the usual /64 case
        (127, "2001:db8:2:1234::98"),  # last bit from the CoA (0x...e6 is even)
        (128, "2001:db8:2:1234::99"),  # everything from the NAR
    ],
)
def test_ncoa_examples(impl, plen, expected):
    nar = a6("2001:db8:2:1234::99")
    coa = a6("2001:db8:1:f7f7:21b:63ff:fe84:45e6")
    assert impl.ncoa_from_prefix(nar, plen, coa) == a6(expected)


def test_ncoa_bit_boundaries(impl):
    nar = b"\xff" * 16
    coa = b"\x00" * 16
    for plen in range(129):
        expected = ((1 << plen) - 1) << (128 - plen)
        assert impl.ncoa_from_prefix(nar, plen, coa) == expected.to_bytes(16, "big")
        inverse = (1 << (128 - plen)) - 1
        assert impl.ncoa_from_prefix(coa, plen, nar) == inverse.to_bytes(16, "big")


def test_nar_link_local(impl):
    assert impl.nar_link_local(a6("2001:db8:2::21b:63ff:fe84:45e6"), 64) == LINK_LOCAL
    assert impl.nar_link_local(a6("2001:db8:2::1"), 64) == a6("fe80::1")


def test_mac48_from_address(impl):
    assert impl.mac48_from_address(a6("2001:db8:2::21b:63ff:fe84:45e6"), 64) == MAC
    assert impl.mac48_from_address(a6("2001:db8:2::21b:63ff:fe84:45e6"), 48) == MAC
    assert impl.eui64_from_address(a6("2001:db8:2::21b:63ff:fe84:45e6"), 0) == EUI


# --------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("plen", [0, 48, 63, 65, 128])
def test_nar_link_local_needs_64(impl, plen):
    with pytest.raises(DerivationError, match=rf"^link-local derivation needs prefix size 64, got {plen}$"):
        impl.nar_link_local(a6("2001:db8::1"), plen)


@pytest.mark.parametrize("plen", [-1, 129, 2**70, -(2**70)])
def test_prefix_len_out_of_range(impl, plen):
    address = a6("2001:db8::1")
    for call in (
        lambda: impl.ncoa_from_prefix(address, plen, address),
        lambda: impl.nar_link_local(address, plen),
        lambda: impl.eui64_from_address(address, plen),
        lambda: impl.mac48_from_address(address, plen),
    ):
        with pytest.raises(ValueError, match=rf"^prefix_len must be in 0..128, got {plen}$") as info:
            call()
        assert not isinstance(info.value, DerivationError)


@pytest.mark.parametrize("bad", [1.5, "64", None])
def test_prefix_len_must_be_an_integer(impl, bad):
    with pytest.raises(TypeError):
        impl.ncoa_from_prefix(LINK_LOCAL, bad, LINK_LOCAL)
    with pytest.raises(TypeError):
        impl.mac48_from_address(LINK_LOCAL, bad)


@pytest.mark.parametrize("plen", [65, 96, 128])
def test_iid_shorter_than_eui64(impl, plen):
    with pytest.raises(DerivationError, match=rf"^prefix size {plen} leaves a {128 - plen}-bit"):
        impl.eui64_from_address(LINK_LOCAL, plen)
    with pytest.raises(DerivationError, match=rf"^prefix size {plen} leaves a {128 - plen}-bit"):
        impl.mac48_from_address(LINK_LOCAL, plen)


def test_mac48_from_eui64_needs_fffe(impl):
    with pytest.raises(DerivationError, match="^eui8: octets 3-4 are 12-34, not FF-FE"):
        impl.mac48_from_eui64(bytes.fromhex("0011221234556677"))
    with pytest.raises(DerivationError):
        impl.mac48_from_eui64(bytes.fromhex("001122fffd445566"))


def test_privacy_iid_needs_m(impl):
    # An RFC 8981 temporary / RFC 7217 stable IID carries no MAC: the sender must set M.
    privacy = a6("2001:db8:2::a4c1:93b7:5e12:d8f0")
    with pytest.raises(DerivationError, match=r"not EUI-64 based.*the sender must set M$") as info:
        impl.mac48_from_address(privacy, 64)
    assert isinstance(info.value, FmipError) and isinstance(info.value, ValueError)
    assert "a4c193b75e12d8f0" in str(info.value)


@pytest.mark.parametrize(
    "name,args,arg,size",
    [
        ("ncoa_from_prefix", lambda b: (b, 64, LINK_LOCAL), "nar_address", 16),
        ("ncoa_from_prefix", lambda b: (LINK_LOCAL, 64, b), "coa", 16),
        ("nar_link_local", lambda b: (b, 64), "nar_address", 16),
        ("link_local_from_mac48", lambda b: (b,), "mac6", 6),
        ("eui64_from_mac48", lambda b: (b,), "mac6", 6),
        ("mac48_from_eui64", lambda b: (b,), "eui8", 8),
        ("iid_from_eui64", lambda b: (b,), "eui8", 8),
        ("eui64_from_iid", lambda b: (b,), "iid8", 8),
        ("eui64_from_address", lambda b: (b, 64), "address16", 16),
        ("mac48_from_address", lambda b: (b, 64), "address16", 16),
    ],
)
def test_wrong_lengths(impl, name, args, arg, size):
    fn = getattr(impl, name)
    for found in (0, size - 1, size + 1, 64):
        with pytest.raises(ValueError, match=rf"^{arg}: need {size} octets, got {found}$") as info:
            fn(*args(bytes(found)))
        assert not isinstance(info.value, DerivationError)
    with pytest.raises(TypeError):
        fn(*args("not bytes"))
    with pytest.raises(TypeError):
        fn(*args(None))


# --------------------------------------------------------------------------------------------------
# Properties (Hypothesis) on each implementation


@SETTINGS
@given(mac=macs)
def test_mac48_eui64_round_trip(impl, mac):
    eui = impl.eui64_from_mac48(mac)
    assert eui[3:5] == b"\xff\xfe"
    assert impl.mac48_from_eui64(eui) == mac


@SETTINGS
@given(eui=euis)
def test_eui64_iid_round_trip(impl, eui):
    iid = impl.iid_from_eui64(eui)
    assert iid[0] ^ eui[0] == 0x02 and iid[1:] == eui[1:]
    assert impl.eui64_from_iid(iid) == eui
    assert impl.iid_from_eui64(impl.eui64_from_iid(eui)) == eui


@SETTINGS
@given(mac=macs, prefix=addresses, plen=st.integers(0, 64))
def test_mac_survives_address_round_trip(impl, mac, prefix, plen):
    # The address a node autoconfigures from its MAC gives the MAC back (docs/design.md §3, M clear).
    address = prefix[:8] + impl.iid_from_eui64(impl.eui64_from_mac48(mac))
    assert impl.mac48_from_address(address, plen) == mac
    assert impl.link_local_from_mac48(mac) == impl.nar_link_local(address, 64)


@SETTINGS
@given(nar=addresses, coa=addresses, plen=prefix_lens)
def test_ncoa_property(impl, nar, coa, plen):
    out = impl.ncoa_from_prefix(nar, plen, coa)
    value = int.from_bytes(out, "big")
    high_mask = ((1 << plen) - 1) << (128 - plen)
    assert value & high_mask == int.from_bytes(nar, "big") & high_mask
    assert value & ~high_mask & ((1 << 128) - 1) == int.from_bytes(coa, "big") & ~high_mask
    assert impl.ncoa_from_prefix(nar, plen, nar) == nar


# --------------------------------------------------------------------------------------------------
# Agreement: fmipfast._core against the fmipfast.reference oracle (only collected with the extension)


def _outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except (TypeError, ValueError) as exc:  # DerivationError is a ValueError
        return ("raise", type(exc), str(exc))


if HAVE_CORE:
    any_octets = st.one_of(addresses, euis, macs, st.binary(max_size=20))
    any_prefix = st.one_of(prefix_lens, st.integers(-3, 131), st.integers(-(2**70), 2**70))
    # Addresses with FF-FE based IIDs, so mac48_from_address succeeds often enough to compare outputs.
    fffe_addresses = st.tuples(st.binary(min_size=11, max_size=11), st.binary(min_size=3, max_size=3)).map(
        lambda t: t[0] + b"\xff\xfe" + t[1]
    )

    @SETTINGS
    @given(nar=any_octets, plen=any_prefix, coa=any_octets)
    def test_agree_ncoa_from_prefix(core, nar, plen, coa):
        got = _outcome(core.ncoa_from_prefix, nar, plen, coa)
        assert got == _outcome(reference.ncoa_from_prefix, nar, plen, coa)

    @SETTINGS
    @given(address=st.one_of(any_octets, fffe_addresses), plen=any_prefix)
    def test_agree_address_functions(core, address, plen):
        for name in ("nar_link_local", "eui64_from_address", "mac48_from_address"):
            got = _outcome(getattr(core, name), address, plen)
            assert got == _outcome(getattr(reference, name), address, plen)

    @SETTINGS
    @given(value=st.one_of(any_octets, st.binary(min_size=3, max_size=3).map(lambda b: b + b"\xff\xfe" + b)))
    def test_agree_one_argument_functions(core, value):
        for name in (
            "link_local_from_mac48",
            "eui64_from_mac48",
            "mac48_from_eui64",
            "iid_from_eui64",
            "eui64_from_iid",
        ):
            got = _outcome(getattr(core, name), value)
            assert got == _outcome(getattr(reference, name), value)

"""Checksum kernels: RFC 1071, RFC 8200 §8.1 pseudo-header, RFC 4443 §2.3 ICMPv6 checksum.

Behaviour tests run on both implementations through the ``impl`` fixture (ids py/c); scapy's
``in6_chksum`` is an independent peer; the agreement tests at the end compare fmipfast.reference with
fmipfast._core directly and are only collected when the compiled core is available (conftest.HAVE_CORE).
"""

from __future__ import annotations

import inspect
import ipaddress
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import IPv6, in6_chksum

from fmipfast import backend, reference
from tests.conftest import HAVE_CORE

SETTINGS = settings(
    max_examples=60,
    deadline=None,  # the reference sums 70000-octet payloads in pure Python
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

SRC = ipaddress.IPv6Address("2001:db8::1").packed
DST = ipaddress.IPv6Address("2001:db8::2").packed

# An ICMPv6 Echo Request (RFC 4443 §4.1) from 2001:db8::1 to 2001:db8::2, identifier 0x1234, sequence 1,
# data "fmipfast", checksum field zero.  By hand (RFC 1071): pseudo-header words 2001 0db8 0001 (src),
# 2001 0db8 0002 (dst), 0010 (length 16), 003a (next header 58); message words 8000 0000 1234 0001
# 666d 6970 6661 7374.  Sum 0x297a6, folded 0x97a8, complemented 0x6857 (scapy agrees).
ECHO = bytes.fromhex("8000000012340001666d697066617374")
ECHO_CKSUM = 0x6857


def _scapy(src: bytes, dst: bytes, message: bytes, nh: int = 58) -> int:
    """Independent peer: scapy's RFC 2460/8200 upper-layer checksum (checksum field must be zero)."""
    ip = IPv6(src=str(ipaddress.IPv6Address(src)), dst=str(ipaddress.IPv6Address(dst)))
    return in6_chksum(nh, ip, bytes(message))


def _zeroed(message: bytes, offset: int = 2) -> bytes:
    return message[:offset] + b"\x00\x00" + message[offset + 2 :]


def _flavours(data: bytes):
    """The same octets as every bytes-like kind the API accepts."""
    return [
        bytes(data),
        bytearray(data),
        memoryview(data),
        memoryview(bytearray(data)),
        np.frombuffer(data, dtype=np.uint8).copy(),
    ]


def _payloads():
    """Random payloads 0..70000 octets (odd and even); big ones built from a seed, not drawn octet by
    octet, so Hypothesis stays fast."""
    small = st.binary(min_size=0, max_size=300)
    big = st.tuples(st.integers(0, 70000), st.integers(0, 2**32 - 1)).map(lambda t: random.Random(t[1]).randbytes(t[0]))
    return st.one_of(small, big)


addresses = st.binary(min_size=16, max_size=16)


def _messages(min_size: int = 4):
    return _payloads().filter(lambda b: len(b) >= min_size) | st.binary(min_size=min_size, max_size=64)


# --------------------------------------------------------------------------------------------------
# The contract itself


def test_both_implementations_export_the_kernels():
    for name in backend.KERNELS:
        assert callable(getattr(reference, name))


# --------------------------------------------------------------------------------------------------
# Golden vectors


def test_rfc1071_example(impl):
    # RFC 1071 §3: words 0001 f203 f4f5 f6f7 sum to 0x2ddf0, fold to 0xddf2; checksum is the complement.
    assert impl.internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_internet_checksum_small_cases(impl):
    assert impl.internet_checksum(b"") == 0xFFFF
    assert impl.internet_checksum(b"\x00\x00") == 0xFFFF
    assert impl.internet_checksum(b"\xff\xff") == 0x0000
    assert impl.internet_checksum(b"\x12") == ~0x1200 & 0xFFFF  # odd octet padded with a zero octet
    assert impl.internet_checksum(b"\x12\x34\x56") == ~(0x1234 + 0x5600) & 0xFFFF
    assert impl.internet_checksum(b"\xff\xff\x00\x01") == 0xFFFE  # 0xffff + 1 -> end-around carry -> 1


def test_echo_request_golden(impl):
    assert impl.icmp6_checksum(SRC, DST, ECHO) == ECHO_CKSUM
    assert _scapy(SRC, DST, ECHO) == ECHO_CKSUM
    filled = bytearray(ECHO)
    assert impl.icmp6_checksum_fill(SRC, DST, filled) == ECHO_CKSUM
    assert filled == bytes.fromhex("8000685712340001666d697066617374")
    assert impl.icmp6_checksum_ok(SRC, DST, filled)
    assert not impl.icmp6_checksum_ok(SRC, DST, ECHO)


def test_checksum_field_is_ignored(impl):
    stored = bytearray(ECHO)
    stored[2:4] = b"\xab\xcd"
    assert impl.icmp6_checksum(SRC, DST, stored) == ECHO_CKSUM


def test_upper_layer_matches_icmp6(impl):
    assert impl.upper_layer_checksum(SRC, DST, 58, ECHO, 2) == ECHO_CKSUM


def test_every_bytes_like_kind_accepted(impl):
    for src in _flavours(SRC):
        for message in _flavours(ECHO):
            assert impl.icmp6_checksum(src, DST, message) == ECHO_CKSUM
            assert impl.icmp6_checksum_ok(src, DST, message) is False
    for data in _flavours(bytes.fromhex("0001f203f4f5f6f7")):
        assert impl.internet_checksum(data) == 0x220D


def test_fill_on_every_writable_kind(impl):
    for buf in (bytearray(ECHO), memoryview(bytearray(ECHO)), np.frombuffer(ECHO, dtype=np.uint8).copy()):
        assert impl.icmp6_checksum_fill(SRC, DST, buf) == ECHO_CKSUM
        assert bytes(buf)[2:4] == b"\x68\x57"


def test_large_payload_uses_32_bit_length(impl):
    # RFC 8200 §8.1: the pseudo-header length is 32 bits (jumbograms); scapy's uplen is an IntField.
    payload = random.Random(7).randbytes(70001)
    zeroed = _zeroed(payload)
    assert impl.icmp6_checksum(SRC, DST, payload) == _scapy(SRC, DST, zeroed)
    assert impl.icmp6_checksum(SRC, DST, payload) == ~_fold_sum(zeroed, 70001, 58) & 0xFFFF
    # A 16-bit length (70001 mod 65536) would give a different sum: the high word 0x0001 is counted.
    assert impl.icmp6_checksum(SRC, DST, payload) != ~_fold_sum(zeroed, 70001 - 65536, 58) & 0xFFFF


def _make_zero_sum(nh: int, length: int = 24, offset: int = 2) -> bytes:
    """A payload whose checksum (field at offset counted as zero) computes to 0x0000 for ``nh``."""
    body = bytearray(random.Random(nh * 1000 + length).randbytes(length))
    body[offset : offset + 2] = b"\x00\x00"
    adjust = 8 if offset != 8 else 10  # a word outside the checksum field
    c = reference.upper_layer_checksum(SRC, DST, nh, bytes(body), offset)
    word = int.from_bytes(body[adjust : adjust + 2], "big") + c  # one's-complement add of the checksum
    word = (word & 0xFFFF) + (word >> 16)
    body[adjust : adjust + 2] = word.to_bytes(2, "big")
    return bytes(body)


def test_udp_zero_becomes_all_ones(impl):
    payload = _make_zero_sum(17, offset=6)  # UDP: checksum at octet 6 of the header
    assert _scapy(SRC, DST, _zeroed(payload, 6), 17) == 0  # the raw value really is zero
    assert impl.upper_layer_checksum(SRC, DST, 17, payload, 6) == 0xFFFF


def test_non_udp_zero_stays_zero(impl):
    payload = _make_zero_sum(6, offset=16)  # TCP
    assert impl.upper_layer_checksum(SRC, DST, 6, payload, 16) == 0x0000
    message = _make_zero_sum(58)
    assert impl.icmp6_checksum(SRC, DST, message) == 0x0000


def test_stored_zero_and_all_ones_are_equivalent(impl):
    # The computed checksum is 0x0000; one's complement has two zeros, so 0xFFFF verifies too.
    message = bytearray(_make_zero_sum(58))
    assert impl.icmp6_checksum_fill(SRC, DST, message) == 0x0000
    assert impl.icmp6_checksum_ok(SRC, DST, message)
    message[2:4] = b"\xff\xff"
    assert impl.icmp6_checksum_ok(SRC, DST, message)
    message[2:4] = b"\x00\x01"
    assert not impl.icmp6_checksum_ok(SRC, DST, message)
    # ... but where the checksum is not zero, 0xFFFF is just wrong.
    echo = bytearray(ECHO)
    echo[2:4] = b"\xff\xff"
    assert not impl.icmp6_checksum_ok(SRC, DST, echo)


def test_odd_checksum_offset(impl):
    payload = bytes(range(1, 12))
    for offset in range(len(payload) - 1):
        expected = ~_fold_sum(_zeroed(payload, offset), len(payload), 99) & 0xFFFF
        assert impl.upper_layer_checksum(SRC, DST, 99, payload, offset) == expected


def _fold_sum(payload: bytes, length: int, nh: int) -> int:
    """Test-local RFC 1071 sum (pseudo-header + payload), written independently of the reference."""
    data = SRC + DST + length.to_bytes(4, "big") + bytes([0, 0, 0, nh]) + payload
    if len(data) % 2:
        data += b"\x00"
    arr = np.frombuffer(data, dtype=">u2").astype(np.uint64)
    total = int(arr.sum())
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


# --------------------------------------------------------------------------------------------------
# Errors: documented types, argument named, length found


@pytest.mark.parametrize("bad", [0, 4, 15, 17, 32])
def test_address_length_errors(impl, bad):
    wrong = bytes(bad)
    calls = [
        lambda a, b: impl.icmp6_checksum(a, b, ECHO),
        lambda a, b: impl.icmp6_checksum_ok(a, b, ECHO),
        lambda a, b: impl.icmp6_checksum_fill(a, b, bytearray(ECHO)),
        lambda a, b: impl.upper_layer_checksum(a, b, 58, ECHO, 2),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=rf"^src: need 16 octets, got {bad}$"):
            call(wrong, DST)
        with pytest.raises(ValueError, match=rf"^dst: need 16 octets, got {bad}$"):
            call(SRC, wrong)


@pytest.mark.parametrize("size", [0, 1, 2, 3])
def test_short_message(impl, size):
    with pytest.raises(ValueError, match=rf"^message: need at least 4 octets, got {size}$"):
        impl.icmp6_checksum(SRC, DST, bytes(size))
    with pytest.raises(ValueError, match=rf"^message: need at least 4 octets, got {size}$"):
        impl.icmp6_checksum_ok(SRC, DST, bytes(size))
    with pytest.raises(ValueError, match=rf"^buf: need at least 4 octets, got {size}$"):
        impl.icmp6_checksum_fill(SRC, DST, bytearray(size))


@pytest.mark.parametrize("offset,size", [(-1, 8), (7, 8), (8, 8), (0, 1), (0, 0), (2**70, 8), (-(2**70), 8)])
def test_checksum_offset_out_of_range(impl, offset, size):
    with pytest.raises(ValueError, match=rf"^checksum_offset {offset} out of range for a {size}-octet payload"):
        impl.upper_layer_checksum(SRC, DST, 17, bytes(size), offset)


@pytest.mark.parametrize("nh", [-1, 256, 2**64])
def test_next_header_out_of_range(impl, nh):
    with pytest.raises(ValueError, match=rf"^next_header must be in 0..255, got {nh}$"):
        impl.upper_layer_checksum(SRC, DST, nh, ECHO, 2)


@pytest.mark.parametrize("bad", [1.0, "58", None])
def test_integer_arguments_must_be_integers(impl, bad):
    with pytest.raises(TypeError):
        impl.upper_layer_checksum(SRC, DST, bad, ECHO, 2)
    with pytest.raises(TypeError):
        impl.upper_layer_checksum(SRC, DST, 58, ECHO, bad)


@pytest.mark.parametrize("bad", ["not bytes", 12, None])
def test_non_buffers_are_type_errors(impl, bad):
    for call in (
        lambda: impl.internet_checksum(bad),
        lambda: impl.icmp6_checksum(bad, DST, ECHO),
        lambda: impl.icmp6_checksum(SRC, DST, bad),
        lambda: impl.icmp6_checksum_ok(SRC, bad, ECHO),
        lambda: impl.icmp6_checksum_fill(SRC, DST, bad),
        lambda: impl.upper_layer_checksum(SRC, DST, 58, bad, 2),
    ):
        with pytest.raises(TypeError):
            call()


def test_wrong_buffer_shapes_are_value_errors(impl):
    for bad in (np.zeros(8, dtype=np.uint16), np.zeros((2, 8), dtype=np.uint8), np.zeros(16, np.uint8)[::2]):
        with pytest.raises(ValueError):
            impl.internet_checksum(bad)
        with pytest.raises(ValueError):
            impl.icmp6_checksum(SRC, DST, bad)


@pytest.mark.parametrize(
    "make",
    [
        bytes,
        lambda b: memoryview(b),
        lambda b: memoryview(bytearray(b)).toreadonly(),
        lambda b: _readonly_array(b),
    ],
    ids=["bytes", "memoryview-bytes", "readonly-memoryview", "readonly-numpy"],
)
def test_fill_rejects_read_only_buffers(impl, make):
    buf = make(ECHO)
    with pytest.raises(TypeError, match="^buf: read-only buffer"):
        impl.icmp6_checksum_fill(SRC, DST, buf)
    # The read-only check comes first, even before the address checks.
    with pytest.raises(TypeError, match="^buf: read-only buffer"):
        impl.icmp6_checksum_fill(b"", DST, buf)


def _readonly_array(data: bytes) -> np.ndarray:
    arr = np.frombuffer(data, dtype=np.uint8).copy()
    arr.flags.writeable = False
    return arr


def test_fill_leaves_buffer_alone_on_error(impl):
    buf = bytearray(b"\x01\x02\x03")
    with pytest.raises(ValueError):
        impl.icmp6_checksum_fill(SRC, DST, buf)
    assert buf == b"\x01\x02\x03"


# --------------------------------------------------------------------------------------------------
# Properties (Hypothesis) on each implementation


@SETTINGS
@given(src=addresses, dst=addresses, message=_messages())
def test_fill_then_ok(impl, src, dst, message):
    buf = bytearray(message)
    cksum = impl.icmp6_checksum_fill(src, dst, buf)
    assert buf[2:4] == cksum.to_bytes(2, "big")
    assert buf[:2] == message[:2] and buf[4:] == message[4:]
    assert cksum == impl.icmp6_checksum(src, dst, message)
    assert impl.icmp6_checksum_ok(src, dst, buf) is True


@SETTINGS
@given(src=addresses, dst=addresses, message=st.binary(min_size=4, max_size=200), data=st.data())
def test_any_single_bit_flip_fails(impl, src, dst, message, data):
    buf = bytearray(message)
    impl.icmp6_checksum_fill(src, dst, buf)
    bit = data.draw(st.integers(0, len(buf) * 8 - 1))
    buf[bit // 8] ^= 0x80 >> (bit % 8)
    assert impl.icmp6_checksum_ok(src, dst, buf) is False


@SETTINGS
@given(src=addresses, dst=addresses, message=st.binary(min_size=4, max_size=200))
def test_matches_scapy(impl, src, dst, message):
    assert impl.icmp6_checksum(src, dst, message) == _scapy(src, dst, _zeroed(message))


@SETTINGS
@given(data=_payloads())
def test_internet_checksum_of_data_plus_checksum_verifies(impl, data):
    # RFC 1071 §1: appending the checksum (at an even offset) makes the whole sum all ones.
    padded = data + b"\x00" * (len(data) % 2)
    whole = padded + impl.internet_checksum(data).to_bytes(2, "big")
    assert impl.internet_checksum(whole) == 0x0000


# --------------------------------------------------------------------------------------------------
# Agreement: fmipfast._core against the fmipfast.reference oracle (only collected with the extension)


def _outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except (TypeError, ValueError) as exc:
        return ("raise", type(exc), str(exc))


if HAVE_CORE:

    def test_core_exports_the_same_api(core):
        # Same names and the same parameter names, so keyword calls work on both (backend.KERNELS).
        for name in backend.KERNELS:
            ours, oracle = getattr(core, name), getattr(reference, name)
            assert list(inspect.signature(ours).parameters) == list(inspect.signature(oracle).parameters)
        # the batch core adds classify/Batch etc. to both; the checksum kernels stay exported
        assert set(core.__all__) == set(reference.__all__) >= set(backend.KERNELS)

    ints = st.one_of(st.integers(-3, 70003), st.integers(-(2**70), 2**70))
    maybe_addresses = st.one_of(addresses, st.binary(min_size=0, max_size=20))

    @SETTINGS
    @given(data=_payloads())
    def test_agree_internet_checksum(core, data):
        assert core.internet_checksum(data) == reference.internet_checksum(data)

    @settings(SETTINGS, max_examples=150)
    @given(
        src=maybe_addresses,
        dst=maybe_addresses,
        nh=st.one_of(st.integers(0, 255), ints),
        payload=_payloads(),
        data=st.data(),
    )
    def test_agree_upper_layer_checksum(core, src, dst, nh, payload, data):
        offset = data.draw(st.one_of(st.integers(-2, len(payload)), ints))
        got = _outcome(core.upper_layer_checksum, src, dst, nh, payload, offset)
        assert got == _outcome(reference.upper_layer_checksum, src, dst, nh, payload, offset)

    @settings(SETTINGS, max_examples=150)
    @given(src=maybe_addresses, dst=maybe_addresses, message=_messages(min_size=0))
    def test_agree_icmp6(core, src, dst, message):
        for name in ("icmp6_checksum", "icmp6_checksum_ok"):
            got = _outcome(getattr(core, name), src, dst, message)
            assert got == _outcome(getattr(reference, name), src, dst, message)
        mine, theirs = bytearray(message), bytearray(message)
        got = _outcome(core.icmp6_checksum_fill, src, dst, mine)
        assert got == _outcome(reference.icmp6_checksum_fill, src, dst, theirs)
        assert mine == theirs
        for readonly in (bytes(message), memoryview(message)):
            got = _outcome(core.icmp6_checksum_fill, src, dst, readonly)
            assert got == _outcome(reference.icmp6_checksum_fill, src, dst, readonly)

    @SETTINGS
    @given(
        src=addresses,
        dst=addresses,
        message=st.binary(min_size=4, max_size=100),
        stored=st.integers(0, 0xFFFF),
    )
    def test_agree_ok_on_any_stored_checksum(core, src, dst, message, stored):
        buf = bytearray(message)
        buf[2:4] = stored.to_bytes(2, "big")
        assert core.icmp6_checksum_ok(src, dst, buf) == reference.icmp6_checksum_ok(src, dst, buf)

    def test_agree_on_misaligned_views(core):
        # Sub-views starting at every alignment: the compiled kernel reads words with memcpy.
        raw = random.Random(3).randbytes(2000)
        for start in range(8):
            for length in (4, 5, 63, 64, 65, 1500, 1501):
                view = memoryview(raw)[start : start + length]
                assert core.icmp6_checksum(SRC, DST, view) == reference.icmp6_checksum(SRC, DST, view)
                assert core.internet_checksum(view) == reference.internet_checksum(view)

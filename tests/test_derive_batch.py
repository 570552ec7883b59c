"""Batch derivations: NCoA, NAR link-local and MAC for many mobile nodes at once.

Every batch function must give exactly what looping its scalar function (tests/test_derive.py) gives, on
both implementations (``impl`` fixture, ids py/c), for batch sizes 0, 1, 2, 3, 4, 5, 255, 256, 257
(docs/conventions.md §10); shape and dtype errors name the argument.
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fmipfast import reference
from fmipfast.errors import DerivationError
from tests.conftest import HAVE_CORE

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SIZES = [0, 1, 2, 3, 4, 5, 255, 256, 257]


def a6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def _random_rows(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, width), dtype=np.uint8)


def _with_fffe(rng: np.random.Generator, n: int) -> np.ndarray:
    """Addresses whose IIDs are half FF-FE based (MAC derivable), half not."""
    rows = _random_rows(rng, n, 16)
    rows[::2, 11] = 0xFF
    rows[::2, 12] = 0xFE
    rows[1::2, 11] = 0x12  # never FF-FE
    return rows


def _scalar_rows(fn, rows: np.ndarray, *args) -> np.ndarray:
    return np.array([np.frombuffer(fn(row.tobytes(), *args), dtype=np.uint8) for row in rows], dtype=np.uint8)


# --------------------------------------------------------------------------------------------------
# Equal to looping the scalar function, every batch size


@pytest.mark.parametrize("n", SIZES)
def test_ncoa_batch_per_nar(impl, n):
    rng = np.random.default_rng(n)
    nars, coas = _random_rows(rng, n, 16), _random_rows(rng, n, 16)
    for plen in (0, 7, 48, 64, 127, 128):
        out = impl.ncoa_batch(nars, plen, coas)
        assert out.dtype == np.uint8 and out.shape == (n, 16)
        expected = [impl.ncoa_from_prefix(nars[i].tobytes(), plen, coas[i].tobytes()) for i in range(n)]
        assert [row.tobytes() for row in out] == expected


@pytest.mark.parametrize("n", SIZES)
def test_ncoa_batch_one_nar(impl, n):
    rng = np.random.default_rng(100 + n)
    nar = _random_rows(rng, 1, 16)[0]
    coas = _random_rows(rng, n, 16)
    out = impl.ncoa_batch(nar, 64, coas)
    assert out.shape == (n, 16)
    assert [row.tobytes() for row in out] == [impl.ncoa_from_prefix(nar.tobytes(), 64, c.tobytes()) for c in coas]


@pytest.mark.parametrize("n", SIZES)
def test_nar_link_local_batch(impl, n):
    nars = _random_rows(np.random.default_rng(200 + n), n, 16)
    out = impl.nar_link_local_batch(nars, 64)
    assert out.dtype == np.uint8 and out.shape == (n, 16)
    if n:
        assert np.array_equal(out, _scalar_rows(impl.nar_link_local, nars, 64))


@pytest.mark.parametrize("n", SIZES)
def test_mac48_from_address_batch(impl, n):
    addresses = _with_fffe(np.random.default_rng(300 + n), n)
    for plen in (0, 48, 64):
        macs, ok = impl.mac48_from_address_batch(addresses, plen)
        assert macs.dtype == np.uint8 and macs.shape == (n, 6)
        assert ok.dtype == np.bool_ and ok.shape == (n,)
        for i in range(n):
            try:
                expected = impl.mac48_from_address(addresses[i].tobytes(), plen)
            except DerivationError:
                assert not ok[i] and not macs[i].any()
            else:
                assert ok[i] and macs[i].tobytes() == expected
        assert ok.sum() == (n + 1) // 2  # exactly the FF-FE rows


@pytest.mark.parametrize("n", SIZES)
def test_eui64_from_mac48_batch(impl, n):
    macs = _random_rows(np.random.default_rng(400 + n), n, 6)
    out = impl.eui64_from_mac48_batch(macs)
    assert out.dtype == np.uint8 and out.shape == (n, 8)
    if n:
        assert np.array_equal(out, _scalar_rows(impl.eui64_from_mac48, macs))


def test_golden_rows(impl):
    # The scalar golden vectors of tests/test_derive.py, as a batch.
    addresses = np.frombuffer(a6("2001:db8:2::21b:63ff:fe84:45e6") + a6("2001:db8:2::a4c1:93b7:5e12:d8f0"),
                              dtype=np.uint8).reshape(2, 16)
    macs, ok = impl.mac48_from_address_batch(addresses, 64)
    assert ok.tolist() == [True, False]
    assert macs[0].tobytes() == bytes.fromhex("001b638445e6") and macs[1].tobytes() == bytes(6)
    assert impl.nar_link_local_batch(addresses, 64)[0].tobytes() == a6("fe80::21b:63ff:fe84:45e6")
    eui = impl.eui64_from_mac48_batch(np.frombuffer(bytes.fromhex("001b638445e6"), np.uint8).reshape(1, 6))
    assert eui[0].tobytes() == bytes.fromhex("001b63fffe8445e6")


def test_non_contiguous_input_is_copied(impl):
    rows = _random_rows(np.random.default_rng(5), 10, 32)[:, ::2]  # (10, 16), not C-contiguous
    assert not rows.flags.c_contiguous
    assert np.array_equal(impl.nar_link_local_batch(rows, 64), impl.nar_link_local_batch(rows.copy(), 64))


# --------------------------------------------------------------------------------------------------
# Errors: the scalar functions' messages for prefix_len; the argument's name for shapes and dtypes


@pytest.mark.parametrize("plen", [0, 48, 63, 65, 128])
def test_nar_link_local_batch_needs_64(impl, plen):
    for n in (0, 3):
        with pytest.raises(DerivationError, match=rf"^link-local derivation needs prefix size 64, got {plen}$"):
            impl.nar_link_local_batch(np.zeros((n, 16), np.uint8), plen)


@pytest.mark.parametrize("plen", [65, 96, 128])
def test_mac48_batch_iid_too_short(impl, plen):
    with pytest.raises(DerivationError, match=rf"^prefix size {plen} leaves a {128 - plen}-bit"):
        impl.mac48_from_address_batch(np.zeros((2, 16), np.uint8), plen)


@pytest.mark.parametrize("plen", [-1, 129, 2**70])
def test_batch_prefix_len_out_of_range(impl, plen):
    rows = np.zeros((2, 16), np.uint8)
    for call in (
        lambda: impl.ncoa_batch(rows, plen, rows),
        lambda: impl.nar_link_local_batch(rows, plen),
        lambda: impl.mac48_from_address_batch(rows, plen),
    ):
        with pytest.raises(ValueError, match=rf"^prefix_len must be in 0..128, got {plen}$") as info:
            call()
        assert not isinstance(info.value, DerivationError)
    with pytest.raises(TypeError):
        impl.ncoa_batch(rows, 1.5, rows)


@pytest.mark.parametrize(
    "call,arg,width",
    [
        (lambda impl, x: impl.ncoa_batch(x, 64, np.zeros((2, 16), np.uint8)), "nar_addresses", 16),
        (lambda impl, x: impl.ncoa_batch(np.zeros(16, np.uint8), 64, x), "coas", 16),
        (lambda impl, x: impl.nar_link_local_batch(x, 64), "nar_addresses", 16),
        (lambda impl, x: impl.mac48_from_address_batch(x, 64), "addresses", 16),
        (lambda impl, x: impl.eui64_from_mac48_batch(x), "macs", 6),
    ],
)
def test_batch_shape_and_dtype_errors(impl, call, arg, width):
    for shape in ((2, width + 1), (2, width - 1), (2, width, 1), (width * 2,)):
        with pytest.raises(ValueError, match=rf"^{arg}: need shape \(n, {width}\), got "):
            call(impl, np.zeros(shape, np.uint8))
    for dtype in (np.int8, np.uint16, np.float64, np.int64):
        with pytest.raises(TypeError, match=rf"^{arg}: need dtype uint8, got "):
            call(impl, np.zeros((2, width), dtype))
    with pytest.raises(TypeError, match=rf"^{arg}: need a numpy uint8 array, got None$"):
        call(impl, None)


def test_ncoa_batch_row_counts_must_match(impl):
    with pytest.raises(ValueError, match=r"^nar_addresses: need 3 rows \(one per entry\), got 2$"):
        impl.ncoa_batch(np.zeros((2, 16), np.uint8), 64, np.zeros((3, 16), np.uint8))


# --------------------------------------------------------------------------------------------------
# Agreement with the oracle on arbitrary batches (compiled core only)

if HAVE_CORE:

    def _outcome(fn, *args):
        try:
            result = fn(*args)
        except (TypeError, ValueError) as exc:
            return ("raise", type(exc), str(exc))
        if isinstance(result, tuple):
            return ("ok",) + tuple(r.tobytes() for r in result)
        return ("ok", result.tobytes())

    rows16 = st.integers(0, 40).flatmap(lambda n: st.binary(min_size=16 * n, max_size=16 * n))

    @SETTINGS
    @given(nars=rows16, coas=rows16, plen=st.integers(-2, 130), single=st.booleans())
    def test_agree_batches(core, nars, coas, plen, single):
        nar = np.frombuffer(nars, np.uint8).reshape(-1, 16)
        if single and len(nar):
            nar = nar[0]
        coa = np.frombuffer(coas, np.uint8).reshape(-1, 16)
        for name, args in (
            ("ncoa_batch", (nar, plen, coa)),
            ("nar_link_local_batch", (coa, plen)),
            ("mac48_from_address_batch", (coa, plen)),
            ("eui64_from_mac48_batch", (coa.reshape(-1)[: len(coa) // 6 * 6 * 6].reshape(-1, 6),)),
        ):
            assert _outcome(getattr(core, name), *args) == _outcome(getattr(reference, name), *args), name

"""Fib: longest-prefix match by binary search on prefix lengths with markers (fmipfast/_kernels/fib.pxi,
oracle fmipfast/reference/fib.py).

Behaviour tests run on both implementations (``impl`` fixture, ids py/c) against a third, naive oracle:
``ipaddress`` networks and a scan of every prefix (:func:`naive`), so neither implementation is checked
only against the other.  Destinations are random and adversarial: the first and last address of every
prefix and the addresses just outside it.  Nothing here measures time.
"""

from __future__ import annotations

import math
import threading
from ipaddress import IPv6Address, IPv6Network

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fmipfast import backend, reference
from fmipfast.reference import fib as rfib
from tests.conftest import HAVE_CORE, _core

SEED = bytes(range(16))
ALL = (1 << 128) - 1
EDGE_LENGTHS = [0, 1, 7, 8, 9, 31, 32, 33, 63, 64, 65, 96, 127, 128]


# --------------------------------------------------------------------------------------------------
# Helpers: the naive oracle and table makers


def _rows(ints) -> np.ndarray:
    """uint8 [n,16] of 128-bit integers."""
    return np.frombuffer(b"".join(int(x).to_bytes(16, "big") for x in ints), np.uint8).reshape(-1, 16).copy()


def _ints(rows: np.ndarray) -> list[int]:
    return [int.from_bytes(r.tobytes(), "big") for r in rows]


def naive(prefixes: np.ndarray, lengths: np.ndarray, values: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The value of the longest prefix containing each destination (ipaddress + a linear scan), -1 if none."""
    nets = [(int(IPv6Network((IPv6Address(p.tobytes()), int(ln)), strict=False).network_address), int(ln), int(v))
            for p, ln, v in zip(prefixes, lengths, values)]
    out = []
    for d in _ints(dst):
        best, best_len = -1, -1
        for net, ln, v in nets:
            if (d ^ net) >> (128 - ln) == 0 and ln > best_len:
                best, best_len = v, ln
        out.append(best)
    return np.array(out, dtype=np.int32)


def naive_numpy(prefixes: np.ndarray, lengths: np.ndarray, values: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The same linear scan, vectorised over the prefixes (one numpy pass per destination): for big tables."""
    hi, lo = rfib._words(prefixes)
    mh, ml = rfib._MASK_HI[lengths], rfib._MASK_LO[lengths]
    hi, lo = hi & mh, lo & ml
    dh, dl = rfib._words(dst)
    out = np.full(dst.shape[0], -1, dtype=np.int32)
    for i in range(dst.shape[0]):
        match = np.flatnonzero(((dh[i] & mh) == hi) & ((dl[i] & ml) == lo))
        if match.size:
            out[i] = values[match[np.argmax(lengths[match])]]
    return out


def edges(prefixes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """For every prefix: its first and last address, the address before the first and after the last."""
    out = []
    for p, ln in zip(_ints(prefixes), lengths.tolist()):
        host = (1 << (128 - ln)) - 1
        first = p & ~host & ALL
        last = first | host
        out += [first, last, (first - 1) & ALL, (last + 1) & ALL]
    return _rows(out) if out else np.zeros((0, 16), np.uint8)


def dedupe(prefixes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Row indices of the first occurrence of every (masked prefix, length)."""
    seen, keep = set(), []
    for i, (p, ln) in enumerate(zip(_ints(prefixes), lengths.tolist())):
        key = (p >> (128 - ln), ln)
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return np.array(keep, dtype=np.int64)


def random_table(n: int, seed: int, lengths=(32, 64), default: bool = True):
    """n random prefixes with lengths in the given range (inclusive), plus ::/0 when ``default``."""
    rng = np.random.default_rng(seed)
    prefixes = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    plen = rng.integers(lengths[0], lengths[1] + 1, size=n).astype(np.uint8)
    if default and n:
        prefixes[0] = 0
        plen[0] = 0
    keep = np.unique(np.column_stack([prefixes & _mask_rows(plen), plen]), axis=0, return_index=True)[1]
    keep.sort()
    prefixes, plen = prefixes[keep], plen[keep]
    values = rng.permutation(len(keep)).astype(np.int32)
    return prefixes, plen, values


def _mask_rows(lengths: np.ndarray) -> np.ndarray:
    """uint8 [n,16] netmasks."""
    bits = np.arange(128)[None, :] < lengths[:, None].astype(np.int64)
    return np.packbits(bits, axis=1)


def inside(prefixes: np.ndarray, lengths: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` random addresses, each inside a random prefix of the table."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, prefixes.shape[0], size=count)
    mask = _mask_rows(lengths[pick])
    noise = rng.integers(0, 256, size=(count, 16), dtype=np.uint8)
    return np.ascontiguousarray((prefixes[pick] & mask) | (noise & ~mask))


# --------------------------------------------------------------------------------------------------
# Hypothesis: tables of 0..200 prefixes, overlapping and nested, against the naive oracle


@st.composite
def tables(draw, max_size: int = 200):
    """(prefixes, lengths, values): prefixes grown from a few base addresses, so they nest and overlap."""
    bases = draw(st.lists(st.integers(0, ALL), min_size=1, max_size=4))
    n = draw(st.integers(0, max_size))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    lengths = np.where(rng.random(n) < 0.4, rng.choice(EDGE_LENGTHS, n), rng.integers(0, 129, n)).astype(np.uint8)
    rows = []
    for _ in range(n):
        base = bases[int(rng.integers(0, len(bases)))]
        # Share the base's first `keep` bits, random after: siblings, nested and disjoint prefixes.
        keep = int(rng.integers(0, 129))
        noise = int.from_bytes(rng.bytes(16), "big") & ((1 << (128 - keep)) - 1)
        rows.append((base & ~((1 << (128 - keep)) - 1) & ALL) | noise)
    prefixes = _rows(rows) if rows else np.zeros((0, 16), np.uint8)
    keep_rows = dedupe(prefixes, lengths)
    prefixes, lengths = prefixes[keep_rows], lengths[keep_rows]
    if draw(st.booleans()) and not (lengths == 0).any():  # often a default route too
        prefixes = np.vstack([prefixes, np.zeros((1, 16), np.uint8)])
        lengths = np.append(lengths, np.uint8(0))
    values = rng.integers(0, 2**31 - 1, size=lengths.shape[0]).astype(np.int32)
    return np.ascontiguousarray(prefixes), lengths.astype(np.uint8), values


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                   HealthCheck.function_scoped_fixture])
@given(table=tables(), extra=st.lists(st.integers(0, ALL), max_size=20))
def test_matches_naive_oracle(impl, table, extra):
    prefixes, lengths, values = table
    fib = impl.Fib(prefixes, lengths, values, seed=SEED)
    assert fib.size == prefixes.shape[0]
    dst = np.ascontiguousarray(np.vstack([edges(prefixes, lengths), _rows(extra) if extra else
                                          np.zeros((0, 16), np.uint8)]))
    if prefixes.shape[0]:
        dst = np.ascontiguousarray(np.vstack([dst, inside(prefixes, lengths, 32, int(values.sum()) & 0xFFFF)]))
    want = naive(prefixes, lengths, values, dst)
    got = fib.lookup(dst)
    assert got.dtype == np.int32 and got.shape == (dst.shape[0],)
    assert np.array_equal(got, want)


if HAVE_CORE:

    @settings(max_examples=60, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(table=tables(), dst=st.lists(st.integers(0, ALL), min_size=1, max_size=60),
           seed=st.binary(min_size=16, max_size=16))
    def test_core_agrees_with_reference(core, table, dst, seed):
        prefixes, lengths, values = table
        c, r = core.Fib(prefixes, lengths, values, seed=seed), reference.Fib(prefixes, lengths, values, seed=seed)
        d = np.ascontiguousarray(np.vstack([_rows(dst), edges(prefixes, lengths)]))
        assert np.array_equal(c.lookup(d), r.lookup(d))
        assert (c.size, c.memory_bytes) == (r.size, r.memory_bytes)


# --------------------------------------------------------------------------------------------------
# Fixed tables


def test_empty_table(impl):
    fib = impl.Fib(np.zeros((0, 16), np.uint8), np.zeros(0, np.uint8), np.zeros(0, np.int32))
    assert fib.size == 0 and fib.memory_bytes > 0
    dst = np.ascontiguousarray(_rows([0, ALL, 1 << 127]))
    assert fib.lookup(dst).tolist() == [-1, -1, -1]
    assert fib.lookup(np.zeros((0, 16), np.uint8)).shape == (0,)


def test_one_prefix(impl):
    net = IPv6Network("2001:db8::/32")
    fib = impl.Fib(_rows([int(net.network_address)]), np.array([32], np.uint8), np.array([7], np.int32))
    first, last = int(net.network_address), int(net.broadcast_address)
    dst = _rows([first, last, first - 1, last + 1, first + 12345, 0, ALL])
    assert fib.lookup(dst).tolist() == [7, 7, -1, -1, 7, -1, -1]


def test_default_route_only(impl):
    fib = impl.Fib(np.zeros((1, 16), np.uint8), np.zeros(1, np.uint8), np.array([3], np.int32))
    assert fib.lookup(_rows([0, 1, ALL, 1 << 127])).tolist() == [3, 3, 3, 3]


def test_host_route_only(impl):
    addr = int(IPv6Address("2001:db8::1"))
    fib = impl.Fib(_rows([addr]), np.array([128], np.uint8), np.array([0], np.int32))
    assert fib.lookup(_rows([addr, addr - 1, addr + 1, addr ^ (1 << 127)])).tolist() == [0, -1, -1, -1]


def test_ten_nested_and_sibling_prefixes(impl):
    routes = ["::/0", "2001:db8::/32", "2001:db8:1::/48", "2001:db8:1:1::/64", "2001:db8:1:1::1/128",
              "2001:db8:1:2::/64", "2001:db8:8000::/33", "2001:db9::/32", "fe80::/10", "ff00::/8"]
    nets = [IPv6Network(r) for r in routes]
    prefixes = _rows([int(n.network_address) for n in nets])
    lengths = np.array([n.prefixlen for n in nets], np.uint8)
    values = np.arange(10, dtype=np.int32) * 10
    fib = impl.Fib(prefixes, lengths, values)
    checks = {"2001:db8:1:1::1": 40, "2001:db8:1:1::2": 30, "2001:db8:1:2::9": 50, "2001:db8:1:3::": 20,
              "2001:db8:2::": 10, "2001:db8:8000::1": 60, "2001:db8:ffff::": 60, "2001:db9::": 70,
              "2001:dba::": 0, "fe80::1": 80, "febf:ffff::": 80, "fec0::": 0, "ff02::1": 90, "::": 0}
    dst = _rows([int(IPv6Address(a)) for a in checks])
    assert fib.lookup(dst).tolist() == list(checks.values())
    d = np.ascontiguousarray(np.vstack([dst, edges(prefixes, lengths)]))
    assert np.array_equal(fib.lookup(d), naive(prefixes, lengths, values, d))


def test_all_129_lengths_nested(impl):
    # One chain ::/0 ⊂ .../1 ⊂ ... ⊂ .../128 around one address: flipping bit i of the address leaves
    # exactly the prefixes of length <= i matching, so the answer is the value of length i.
    base = int(IPv6Address("2001:db8:abcd:1234:5678:9abc:def0:1357"))
    lengths = np.arange(129, dtype=np.uint8)
    prefixes = _rows([base] * 129)  # host bits beyond each length are ignored
    values = (lengths.astype(np.int32) * 3 + 1).astype(np.int32)
    fib = impl.Fib(prefixes, lengths, values, seed=SEED)
    assert fib.size == 129
    flipped = [base ^ (1 << (127 - i)) for i in range(128)]
    got = fib.lookup(_rows([base, *flipped]))
    assert got.tolist() == [values[128]] + [values[i] for i in range(128)]
    d = edges(prefixes, lengths)
    assert np.array_equal(fib.lookup(d), naive(prefixes, lengths, values, d))


def test_all_129_lengths_disjoint(impl):
    # 129 prefixes, one per length, pairwise disjoint except for ::/0: a destination matches one of them
    # or falls back to the default route.
    rows, lengths = [0], [0]
    for ln in range(1, 129):
        rows.append((ln << 120) | (1 << (128 - ln)))  # host bits beyond ln are masked off
        lengths.append(ln)
    prefixes, lengths = _rows(rows), np.array(lengths, np.uint8)
    keep = dedupe(prefixes, lengths)
    prefixes, lengths = prefixes[keep], lengths[keep]
    values = np.arange(prefixes.shape[0], dtype=np.int32)
    fib = impl.Fib(prefixes, lengths, values, seed=SEED)
    d = np.ascontiguousarray(np.vstack([edges(prefixes, lengths), inside(prefixes, lengths, 300, 5)]))
    assert np.array_equal(fib.lookup(d), naive(prefixes, lengths, values, d))


@pytest.mark.parametrize("n", [1, 10, 1000])
def test_random_tables(impl, n):
    prefixes, lengths, values = random_table(n, seed=n, lengths=(0, 128))
    fib = impl.Fib(prefixes, lengths, values)
    assert fib.size == prefixes.shape[0]
    rng = np.random.default_rng(n + 1)
    d = np.ascontiguousarray(np.vstack([edges(prefixes, lengths), inside(prefixes, lengths, 500, n),
                                        rng.integers(0, 256, size=(100, 16), dtype=np.uint8)]))
    assert np.array_equal(fib.lookup(d), naive_numpy(prefixes, lengths, values, d))


def test_100k_prefixes(impl):
    # Bounded: the build of 100 000 prefixes (plus markers) and 3 000 destinations checked against the
    # vectorised linear scan.
    prefixes, lengths, values = random_table(100_000, seed=99, lengths=(32, 64))
    fib = impl.Fib(prefixes, lengths, values)
    assert fib.size == prefixes.shape[0] > 99_900
    rng = np.random.default_rng(7)
    pick = rng.integers(0, prefixes.shape[0], size=250)
    d = np.ascontiguousarray(np.vstack([edges(prefixes[pick], lengths[pick]),
                                        inside(prefixes, lengths, 1500, 8),
                                        rng.integers(0, 256, size=(500, 16), dtype=np.uint8)]))
    want = naive_numpy(prefixes, lengths, values, d)
    assert (want != values[0]).sum() > 1500  # most destinations do meet a longer prefix than ::/0
    assert np.array_equal(fib.lookup(d), want)


@pytest.mark.slow
def test_one_million_prefixes(impl):
    prefixes, lengths, values = random_table(1_000_000, seed=1, lengths=(16, 128))
    fib = impl.Fib(prefixes, lengths, values)
    d = np.ascontiguousarray(np.vstack([inside(prefixes, lengths, 300, 2), edges(prefixes[:100], lengths[:100])]))
    assert np.array_equal(fib.lookup(d), naive_numpy(prefixes, lengths, values, d))


def test_host_bits_are_ignored(impl):
    net = int(IPv6Address("2001:db8:1::"))
    messy = net | 0xDEADBEEF  # host bits set beyond /48
    fib = impl.Fib(_rows([messy]), np.array([48], np.uint8), np.array([5], np.int32))
    assert fib.lookup(_rows([net, net | (1 << 79) - 1, net - 1, net + (1 << 80)])).tolist() == [5, 5, -1, -1]


def test_values_may_repeat_and_be_large(impl):
    prefixes = _rows([0, 1 << 127])
    fib = impl.Fib(prefixes, np.array([1, 1], np.uint8), np.array([2**31 - 1, 2**31 - 1], np.int32))
    assert fib.lookup(_rows([0, ALL])).tolist() == [2**31 - 1, 2**31 - 1]


def test_out_argument(impl):
    prefixes, lengths, values = random_table(50, seed=3)
    fib = impl.Fib(prefixes, lengths, values)
    d = inside(prefixes, lengths, 40, 4)
    out = np.full(40, -7, np.int32)
    assert fib.lookup(d, out) is out
    assert np.array_equal(out, fib.lookup(d))
    assert np.array_equal(fib.lookup(d, out=np.empty(40, np.int32)), out)


def test_table_is_a_copy(impl):
    # The Fib owns its table: changing the caller's arrays afterwards changes nothing.
    prefixes = _rows([int(IPv6Address("2001:db8::"))])
    lengths, values = np.array([32], np.uint8), np.array([1], np.int32)
    fib = impl.Fib(prefixes, lengths, values)
    prefixes[:] = 0xFF
    lengths[:] = 0
    values[:] = 9
    assert fib.lookup(_rows([int(IPv6Address("2001:db8::5")), 0])).tolist() == [1, -1]


def test_non_contiguous_table_arrays_are_accepted(impl):
    wide = np.zeros((3, 32), np.uint8)
    wide[:, ::2] = _rows([1 << 127, 1 << 126, 0])
    lengths = np.array([1, 0, 2, 0, 8, 0], np.uint8)[::2]
    fib = impl.Fib(wide[:, ::2], lengths, np.array([0, 1, 2], np.int32))
    assert fib.lookup(_rows([ALL, 1 << 126, 0])).tolist() == [0, 1, 2]


def test_size_and_memory(impl):
    small = impl.Fib(*random_table(10, seed=1))
    big = impl.Fib(*random_table(10_000, seed=1))
    assert small.size == 10 and big.size == 10_000
    # 24-octet slots, load <= 0.5: at least 48 octets per prefix, power-of-two rounding at most doubles it,
    # and markers add fewer than ceil(log2(#lengths + 1)) entries per prefix.
    assert 48 * 10_000 <= big.memory_bytes <= 2 * 48 * 10_000 * 7
    assert small.memory_bytes < big.memory_bytes
    assert "Fib(size=10" in repr(small)


# --------------------------------------------------------------------------------------------------
# Duplicates and argument errors: the same exception class and message in both implementations


def test_duplicate_names_rows(impl):
    prefixes = _rows([int(IPv6Address("2001:db8::")), int(IPv6Address("2001:db9::")),
                      int(IPv6Address("2001:db8::1"))])  # row 2 is row 0 once masked to /32
    lengths = np.array([32, 32, 32], np.uint8)
    with pytest.raises(ValueError, match=r"^prefixes: row 2 duplicates row 0 \(2001:db8::/32\)$"):
        impl.Fib(prefixes, lengths, np.zeros(3, np.int32))
    # The same prefix with another length is not a duplicate.
    impl.Fib(prefixes, np.array([32, 32, 33], np.uint8), np.zeros(3, np.int32))
    with pytest.raises(ValueError, match=r"^prefixes: row 1 duplicates row 0 \(::/0\)$"):
        impl.Fib(_rows([5, ALL]), np.array([0, 0], np.uint8), np.zeros(2, np.int32))


def _table():
    return _rows([1 << 127]), np.array([1], np.uint8), np.array([0], np.int32)


CONSTRUCTOR_ERRORS = [
    (dict(prefixes=None), TypeError, r"^prefixes: need uint8 \[n,16\], got NoneType$"),
    (dict(prefixes=[[0] * 16]), TypeError, r"^prefixes: need uint8 \[n,16\], got list$"),
    (dict(prefixes=np.zeros((1, 16), np.int8)), TypeError, r"^prefixes: need uint8 \[n,16\], got dtype int8$"),
    (dict(prefixes=np.zeros((1, 15), np.uint8)), ValueError, r"^prefixes: need uint8 \[n,16\], got shape \(1, 15\)$"),
    (dict(prefixes=np.zeros(16, np.uint8)), ValueError, r"^prefixes: need uint8 \[n,16\], got shape \(16,\)$"),
    (dict(lengths=np.array([1], np.int64)), TypeError, r"^lengths: need uint8 \[n\], got dtype int64$"),
    (dict(lengths=np.array([[1]], np.uint8)), ValueError, r"^lengths: need uint8 \[n\], got shape \(1, 1\)$"),
    (dict(lengths=np.array([1, 2], np.uint8)), ValueError, r"^lengths: need 1 rows \(one per prefix\), got 2$"),
    (dict(lengths=np.array([129], np.uint8)), ValueError, r"^lengths: 129 at index 0 is outside 0..128$"),
    (dict(lengths=np.array([255], np.uint8)), ValueError, r"^lengths: 255 at index 0 is outside 0..128$"),
    (dict(values=np.array([0], np.int64)), TypeError, r"^values: need int32 \[n\], got dtype int64$"),
    (dict(values=np.array([0], np.uint32)), TypeError, r"^values: need int32 \[n\], got dtype uint32$"),
    (dict(values=np.zeros(0, np.int32)), ValueError, r"^values: need 1 rows \(one per prefix\), got 0$"),
    (dict(values=np.array([-1], np.int32)), ValueError, r"^values: -1 at index 0 is negative$"),
    (dict(values=1), TypeError, r"^values: need int32 \[n\], got int$"),
]


@pytest.mark.parametrize(("override", "exc", "message"), CONSTRUCTOR_ERRORS)
def test_constructor_errors(impl, override, exc, message):
    prefixes, lengths, values = _table()
    kwargs = dict(prefixes=prefixes, lengths=lengths, values=values)
    kwargs.update(override)
    with pytest.raises(exc, match=message):
        impl.Fib(kwargs["prefixes"], kwargs["lengths"], kwargs["values"])


def test_seed_errors(impl):
    args = _table()
    for size in (0, 15, 17):
        with pytest.raises(ValueError, match=rf"^seed: need 16 octets, got {size}$"):
            impl.Fib(*args, seed=bytes(size))
    with pytest.raises(TypeError, match=r"^seed: a bytes-like object is required, not 'str'$"):
        impl.Fib(*args, seed="0123456789abcdef")
    with pytest.raises(TypeError):
        impl.Fib(*args, SEED)  # seed is keyword-only
    impl.Fib(*args, seed=bytearray(16))


LOOKUP_ERRORS = [
    (dict(dst=None), TypeError, r"^dst: need uint8 \[m,16\] C-contiguous, got NoneType$"),
    (dict(dst=b"\0" * 16), TypeError, r"^dst: need uint8 \[m,16\] C-contiguous, got bytes$"),
    (dict(dst=[[0] * 16]), TypeError, r"^dst: need uint8 \[m,16\] C-contiguous, got list$"),
    (dict(dst=np.zeros((2, 16), np.int16)), TypeError, r"^dst: need uint8 \[m,16\] C-contiguous, got dtype int16$"),
    (dict(dst=np.zeros((2, 17), np.uint8)), ValueError,
     r"^dst: need uint8 \[m,16\] C-contiguous, got shape \(2, 17\)$"),
    (dict(dst=np.zeros(16, np.uint8)), ValueError, r"^dst: need uint8 \[m,16\] C-contiguous, got shape \(16,\)$"),
    (dict(dst=np.zeros((4, 16), np.uint8)[::2]), ValueError,
     r"^dst: need uint8 \[m,16\] C-contiguous, got a non-contiguous array$"),
    (dict(dst=np.zeros((16, 2), np.uint8).T), ValueError,
     r"^dst: need uint8 \[m,16\] C-contiguous, got a non-contiguous array$"),
    (dict(out=np.zeros(2, np.int64)), TypeError, r"^out: need writable int32 \[2\] C-contiguous, got dtype int64$"),
    (dict(out=[0, 0]), TypeError, r"^out: need writable int32 \[2\] C-contiguous, got list$"),
    (dict(out=np.zeros(3, np.int32)), ValueError, r"^out: need writable int32 \[2\] C-contiguous, got shape \(3,\)$"),
    (dict(out=np.zeros((2, 1), np.int32)), ValueError,
     r"^out: need writable int32 \[2\] C-contiguous, got shape \(2, 1\)$"),
    (dict(out=np.zeros(4, np.int32)[::2]), ValueError,
     r"^out: need writable int32 \[2\] C-contiguous, got a non-contiguous array$"),
    (dict(out="readonly"), ValueError, r"^out: need writable int32 \[2\] C-contiguous, got a read-only array$"),
]


@pytest.mark.parametrize(("override", "exc", "message"), LOOKUP_ERRORS)
def test_lookup_errors(impl, override, exc, message):
    fib = impl.Fib(*_table())
    kwargs = dict(dst=np.zeros((2, 16), np.uint8), out=None)
    kwargs.update(override)
    if isinstance(kwargs["out"], str):
        kwargs["out"] = np.zeros(2, np.int32)
        kwargs["out"].flags.writeable = False
    with pytest.raises(exc, match=message):
        fib.lookup(kwargs["dst"], kwargs["out"])


def test_out_must_not_overlap_dst(impl):
    fib = impl.Fib(*_table())
    dst = np.zeros((4, 16), np.uint8)
    out = dst.reshape(-1).view(np.int32)[:4]
    with pytest.raises(ValueError, match=r"^out: must not overlap dst$"):
        fib.lookup(dst, out)
    assert not dst.any()


def test_read_only_dst_is_fine(impl):
    fib = impl.Fib(*_table())
    dst = _rows([ALL, 0])
    dst.flags.writeable = False
    assert fib.lookup(dst).tolist() == [0, -1]


# --------------------------------------------------------------------------------------------------
# Threads


def test_dst_rewritten_by_another_thread_while_looking_up(impl):
    # A thread rewrites the destinations while lookup runs: the answers may be any value of the table or
    # -1, never anything else, and nothing crashes (run under ASan by .ci/run).
    prefixes, lengths, values = random_table(2000, seed=11, lengths=(0, 128))
    fib = impl.Fib(prefixes, lengths, values)
    m = 50_000 if impl is not reference else 2_000
    dst = inside(prefixes, lengths, m, 12)
    allowed = set(values.tolist()) | {-1}
    stop = threading.Event()

    def scribble() -> None:
        rng = np.random.default_rng(13)
        while not stop.is_set():
            rows = rng.integers(0, m, size=256)
            dst[rows] = rng.integers(0, 256, size=(256, 16), dtype=np.uint8)
            dst[rows[:64], :] = 0xFF

    writer = threading.Thread(target=scribble)
    writer.start()
    try:
        for _ in range(10 if impl is not reference else 2):
            got = fib.lookup(dst)
            assert set(np.unique(got).tolist()) <= allowed
    finally:
        stop.set()
        writer.join()
    sample = np.ascontiguousarray(dst[:300])
    assert np.array_equal(fib.lookup(sample), naive_numpy(prefixes, lengths, values, sample))


def test_concurrent_lookups_on_one_table(impl):
    # The table is read-only after the build: threads may share it (each with its own out).
    prefixes, lengths, values = random_table(500, seed=21)
    fib = impl.Fib(prefixes, lengths, values)
    batches = [inside(prefixes, lengths, 3000 if impl is not reference else 200, s) for s in range(4)]
    want = [fib.lookup(b) for b in batches]
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            out = np.empty(batches[i].shape[0], np.int32)
            for _ in range(20 if impl is not reference else 2):
                assert np.array_equal(fib.lookup(batches[i], out), want[i])
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# --------------------------------------------------------------------------------------------------
# The compiled internals: the hash, the layout, the bounds


def test_search_path_and_probe_bound():
    for k in range(0, 130):
        for t in range(k):
            path = rfib.search_path(k, t)
            assert path[-1] == t and len(path) <= math.ceil(math.log2(k + 1))


def test_build_places_markers_only_where_the_search_goes_right():
    # Lengths 16, 32, 48, 64 (k = 4): the root is index 1 (/32); /48 and /64 go right of it, so a /64
    # prefix leaves a /32 marker and a /48 marker (its path is 1, 2, 3); a /16 leaves none.
    p = _rows([int(IPv6Address("2001:db8:1:2::")), int(IPv6Address("2002::")), int(IPv6Address("3000::")),
               int(IPv6Address("4000::"))])
    tab = rfib.build(p, np.array([64, 16, 32, 48], np.uint8), np.arange(4, dtype=np.int32), 1, 2)
    assert tab.lengths.tolist() == [16, 32, 48, 64]
    assert tab.prefixes == 4 and tab.markers == 3  # 2001:db8::/32, 2001:db8:1::/48 and 4000::/32
    live = tab.slot_len != rfib._EMPTY
    assert sorted(tab.slot_len[live].tolist()) == [16, 32, 32, 32, 48, 48, 64]
    # The /32 marker of the /64 is covered by no prefix: bmp -1.  The /32 marker of 4000::/48 neither.
    bmps = {(int(h), int(ln)): int(b) for h, ln, b in zip(tab.slot_hi[live], tab.slot_len[live], tab.slot_bmp[live])}
    assert bmps[(int(IPv6Address("2001:db8::")) >> 64, 32)] == -1
    assert bmps[(int(IPv6Address("2001:db8:1::")) >> 64, 48)] == -1
    assert bmps[(int(IPv6Address("4000::")) >> 64, 32)] == -1
    assert bmps[(int(IPv6Address("2001:db8:1:2::")) >> 64, 64)] == 0
    assert tab.entries * 2 <= tab.slot_len.shape[0]


def test_marker_bmp_is_the_covering_prefix():
    # A /64 under a /20 with lengths 20, 40, 64: the search probes /40 first; the /64 leaves a /40 marker
    # whose bmp must be the /20's value, or a destination in the /20 but outside the /64 and any /40
    # would get -1.
    p = _rows([int(IPv6Address("2001:db8:1:2::")), int(IPv6Address("2001:d00::")), int(IPv6Address("3000::"))])
    lengths, values = np.array([64, 20, 40], np.uint8), np.array([1, 2, 3], np.int32)
    tab = rfib.build(p, lengths, values, 0, 0)
    live = tab.slot_len == 40
    assert sorted(tab.slot_bmp[live].tolist()) == [2, 3]
    for impl_mod in [reference] + ([_core] if HAVE_CORE else []):
        fib = impl_mod.Fib(p, lengths, values)
        assert fib.lookup(_rows([int(IPv6Address("2001:db8:1:3::")), int(IPv6Address("2001:db8:1:2::9"))])
                          ).tolist() == [2, 1]


def test_probe_runs_are_short():
    tab = rfib.build(*rfib.check_table(*random_table(100_000, seed=5)), 3, 4)
    assert tab.entries * 2 <= tab.slot_len.shape[0]
    assert 1 <= tab.max_probe < 64, tab.max_probe


if HAVE_CORE:

    def test_consts_agree(core):
        assert core._fib_consts() == {"SLOT_BYTES": rfib.SLOT_BYTES, "EMPTY": rfib._EMPTY}

    def test_hash_agrees_with_the_builder(core):
        fib = core.Fib(*_table(), seed=SEED)
        k0, k1 = rfib.check_seed(SEED)
        rng = np.random.default_rng(2)
        for hi, lo in rng.integers(0, 2**64 - 1, size=(200, 2), dtype=np.uint64, endpoint=True).tolist():
            ln = int(rng.integers(0, 129))
            assert fib._hash(hi, lo, ln) == rfib._hash_one(hi, lo, ln, k0, k1)
        assert fib._hash(2**64 - 1, 2**64 - 1, 128) == rfib._hash_one(2**64 - 1, 2**64 - 1, 128, k0, k1)

    def test_core_copies_the_builders_layout(core):
        prefixes, lengths, values = random_table(3000, seed=8, lengths=(0, 128))
        c = core.Fib(prefixes, lengths, values, seed=SEED)
        tab = rfib.build(*rfib.check_table(prefixes, lengths, values), *rfib.check_seed(SEED))
        assert c._nslots == tab.slot_len.shape[0] and c._max_probe == tab.max_probe
        assert c._entries == tab.entries and c.memory_bytes == tab.memory_bytes

    def test_seed_changes_layout_not_answers(core):
        prefixes, lengths, values = random_table(2000, seed=9, lengths=(0, 128))
        d = inside(prefixes, lengths, 2000, 10)
        a = core.Fib(prefixes, lengths, values, seed=SEED)
        b = core.Fib(prefixes, lengths, values, seed=bytes(range(16, 32)))
        assert a._hash(1, 2, 3) != b._hash(1, 2, 3)
        assert np.array_equal(a.lookup(d), b.lookup(d))

    def test_lookup_releases_the_gil(core):
        # A thread woken just before a long lookup can only run during it if the GIL is released; it then
        # sees the last row of `out` not yet written.  With the GIL held it would run only afterwards.
        # States, not times; a few tries for a loaded machine.
        prefixes, lengths, values = random_table(50_000, seed=12)
        fib = core.Fib(prefixes, lengths, values)
        d = inside(prefixes, lengths, 1_000_000, 13)
        during = []
        for _ in range(5):
            out = np.full(d.shape[0], -2, np.int32)
            go = threading.Event()
            seen: list[bool] = []

            def watch(go=go, seen=seen, out=out) -> None:
                go.wait()
                seen.append(int(out[-1]) == -2)

            watcher = threading.Thread(target=watch)
            watcher.start()
            go.set()
            fib.lookup(d, out)
            watcher.join()
            assert int(out[-1]) != -2
            during += seen
            if any(during):
                break
        assert any(during), during


def test_backend_exports_fib():
    assert "Fib" in backend.CLASSES
    assert backend.Fib is backend.impl.Fib
    assert "Fib" in reference.__all__
    if HAVE_CORE:
        assert "Fib" in _core.__all__

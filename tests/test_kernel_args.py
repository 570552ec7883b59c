"""Argument mistakes: every kernel of the compiled core raises the same exception class as its reference for
the same bad argument (a non-contiguous buffer or memoryview, a wrong dtype or dimension count, no buffer at
all, None, a float / bool / huge int where an int is wanted), or both accept it alike.

Each case is built fresh per call (several kernels write in place) and run on both implementations."""

from __future__ import annotations

import numpy as np
import pytest

from fmipfast import reference
from fmipfast.constants import DropReason
from tests.conftest import HAVE_CORE, _core

pytestmark = pytest.mark.skipif(not HAVE_CORE, reason="compares the compiled core with the reference")

ADDR = bytes.fromhex("20010db8000000000000000000000001")
ADDR2 = bytes.fromhex("20010db8000000010000000000000002")
MAC = bytes.fromhex("021b638445e6")
EUI = bytes.fromhex("021b63fffe8445e6")
ICMP = bytes([128, 0, 0, 0, 0, 1, 0, 1])
FRAME = bytes(14) + bytes([0x60, 0, 0, 0, 0, 8, 59, 64]) + ADDR + ADDR2 + bytes(8)


def _u8(data) -> np.ndarray:
    return np.frombuffer(bytes(data), dtype=np.uint8).copy()


def _noncontig_mv(data) -> memoryview:
    """A non-contiguous 1-D memoryview of unsigned octets (every other octet of twice the data)."""
    return memoryview(bytearray(b"".join(bytes([b, 0]) for b in bytes(data))))[::2]


def _noncontig_np(arr: np.ndarray) -> np.ndarray:
    doubled = np.repeat(arr, 2, axis=0)
    return doubled[::2]


def _ring_block() -> np.ndarray:
    ring = np.zeros(4096, np.uint8)
    return ring


def _buffer_variants(good):
    """Bad versions of a buffer argument ``good`` (bytes or numpy array)."""
    arr = good if isinstance(good, np.ndarray) else _u8(good)
    out = {
        "noncontig_memoryview": _noncontig_mv(arr.tobytes()) if arr.dtype == np.uint8 and arr.ndim == 1 else None,
        "noncontig_numpy": _noncontig_np(arr),
        "float64": arr.astype(np.float64),
        "int8": arr.astype(np.int8) if arr.dtype != np.int8 else arr.astype(np.uint16),
        "two_d": arr.reshape(1, *arr.shape),
        "list": arr.tolist(),
        "none": None,
        "str": "abc",
        "readonly": _readonly(arr),
        "bytes": arr.tobytes(),
    }
    return {k: v for k, v in out.items() if k != "noncontig_memoryview" or v is not None}


def _readonly(arr: np.ndarray) -> np.ndarray:
    ro = arr.copy()
    ro.setflags(write=False)
    return ro


INT_VARIANTS = {"float": 1.5, "bool": True, "huge": 2**64, "neg_huge": -(2**64), "str": "3", "none": None,
                "np_int": np.int64(3), "big63": 2**63}


def _cases():
    """(id, build) where build(impl) -> (callable, args, kwargs, {arg position or name: kind})."""
    cases = []

    def add(name, build, spec):
        cases.append((name, build, spec))

    # checksums / derivations: scalar, bytes-like arguments
    add("internet_checksum", lambda m: (m.internet_checksum, [_u8(ICMP)], {}), {0: "buf"})
    add("upper_layer_checksum", lambda m: (m.upper_layer_checksum, [ADDR, ADDR2, 17, _u8(ICMP), 2], {}),
        {0: "buf", 3: "buf", 2: "int", 4: "int"})
    add("icmp6_checksum", lambda m: (m.icmp6_checksum, [ADDR, ADDR2, _u8(ICMP)], {}), {0: "buf", 2: "buf"})
    add("icmp6_checksum_ok", lambda m: (m.icmp6_checksum_ok, [ADDR, ADDR2, _u8(ICMP)], {}), {1: "buf", 2: "buf"})
    add("icmp6_checksum_fill", lambda m: (m.icmp6_checksum_fill, [ADDR, ADDR2, _u8(ICMP)], {}), {0: "buf", 2: "buf"})
    add("ncoa_from_prefix", lambda m: (m.ncoa_from_prefix, [ADDR, 64, ADDR2], {}), {0: "buf", 1: "int"})
    add("nar_link_local", lambda m: (m.nar_link_local, [ADDR, 64], {}), {0: "buf", 1: "int"})
    add("link_local_from_mac48", lambda m: (m.link_local_from_mac48, [MAC], {}), {0: "buf"})
    add("mac48_from_eui64", lambda m: (m.mac48_from_eui64, [EUI], {}), {0: "buf"})
    add("mac48_from_address", lambda m: (m.mac48_from_address, [ADDR, 64], {}), {0: "buf", 1: "int"})
    add("ncoa_batch", lambda m: (m.ncoa_batch, [_u8(ADDR), 64, _u8(ADDR2 * 2).reshape(2, 16)], {}),
        {0: "buf", 1: "int", 2: "buf"})
    add("mac48_from_address_batch", lambda m: (m.mac48_from_address_batch, [_u8(ADDR * 2).reshape(2, 16), 64], {}),
        {0: "buf", 1: "int"})
    # classify and Batch
    add("classify", lambda m: (m.classify, [_u8(FRAME), np.array([0], np.int64), np.array([len(FRAME)], np.uint32)],
                               {}), {0: "buf", 1: "buf", 2: "buf"})
    add("classify_counters", lambda m: (m.classify, [_u8(FRAME), np.array([0], np.int64),
                                                     np.array([len(FRAME)], np.uint32)],
                                        {"counters": np.zeros(len(DropReason), np.uint64)}), {"counters": "buf"})
    add("Batch", lambda m: (m.Batch, [4], {}), {0: "int"})
    # rings
    add("ring_walk_block", lambda m: (m.ring_walk_block, [_ring_block(), 0, 4096], {"max_frames": 3}),
        {0: "buf", 1: "int", 2: "int", "max_frames": "int"})
    add("ring_block_status", lambda m: (m.ring_block_status, [_ring_block(), 0], {}), {0: "buf", 1: "int"})
    add("ring_release_block", lambda m: (m.ring_release_block, [_ring_block(), 0], {}), {0: "buf", 1: "int"})
    add("ring_tx_fill", lambda m: (m.ring_tx_fill, [np.zeros(512, np.uint8), 256, 0, _u8(FRAME),
                                                    np.array([0], np.int64), np.array([len(FRAME)], np.uint32)], {}),
        {0: "buf", 1: "int", 2: "int", 3: "buf", 4: "buf", 5: "buf"})
    # rewrite
    def batch_args():
        return [_u8(FRAME), np.array([0], np.int64), np.array([len(FRAME)], np.uint32), np.array([14], np.uint32)]

    add("forward_rewrite", lambda m: (m.forward_rewrite, [_u8(FRAME), np.array([0], np.int64),
                                                          np.array([14], np.uint32), np.array([0], np.int64),
                                                          _u8(MAC), _u8(MAC)], {}),
        {0: "buf", 1: "buf", 2: "buf", 3: "buf", 4: "buf"})
    add("encapsulate", lambda m: (m.encapsulate, batch_args() + [np.array([0], np.int64), _u8(ADDR), _u8(ADDR2),
                                                                  _u8(MAC), _u8(MAC)], {"hop_limit": 9, "mtu": 1400}),
        {0: "buf", 1: "buf", 2: "buf", 3: "buf", 4: "buf", 5: "buf", "hop_limit": "int", "mtu": "int"})
    add("decapsulate", lambda m: (m.decapsulate, batch_args() + [np.array([54], np.uint32),
                                                                  np.array([0], np.int64)], {}),
        {0: "buf", 1: "buf", 4: "buf", 5: "buf"})
    # PacketBuffer and NeighborCache
    add("PacketBuffer", lambda m: (lambda **kw: m.PacketBuffer(**kw), [], {"slots": 4, "slot_size": 128}),
        {"slots": "int", "slot_size": "int"})
    add("PacketBuffer.push", lambda m: (m.PacketBuffer(slots=4, slot_size=128).push,
                                        [np.array([0], np.int32), _u8(FRAME), np.array([0], np.int64),
                                         np.array([len(FRAME)], np.uint32), 5], {}),
        {0: "buf", 1: "buf", 2: "buf", 3: "buf", 4: "int"})
    add("PacketBuffer.flush", lambda m: (m.PacketBuffer(slots=4, slot_size=128).flush, [0, 5], {}),
        {0: "int", 1: "int"})

    def ncache(m):
        nc = m.NeighborCache(8, seed=bytes(16))
        nc.insert(_u8(ADDR).reshape(1, 16), _u8(MAC).reshape(1, 6), np.array([1], np.uint8))
        return nc

    add("NeighborCache", lambda m: (m.NeighborCache, [8], {"seed": bytes(16)}), {0: "int", "seed": "buf"})
    add("NeighborCache.insert", lambda m: (ncache(m).insert, [_u8(ADDR2).reshape(1, 16), _u8(MAC).reshape(1, 6),
                                                              np.array([2], np.uint8)],
                                           {"expiry": np.array([5], np.int64)}),
        {0: "buf", 1: "buf", 2: "buf", "expiry": "buf"})
    add("NeighborCache.update", lambda m: (ncache(m).update, [np.array([0], np.int64)],
                                           {"states": np.array([2], np.uint8)}), {0: "buf", "states": "buf"})
    add("NeighborCache.lookup", lambda m: (ncache(m).lookup, [_u8(ADDR).reshape(1, 16)], {}), {0: "buf"})
    add("NeighborCache.get", lambda m: (ncache(m).get, [ADDR], {}), {0: "buf"})
    add("NeighborCache.expire", lambda m: (ncache(m).expire, [5], {}), {0: "int"})
    return cases


def _variants(kind, good):
    return _buffer_variants(good) if kind == "buf" else INT_VARIANTS


def _outcome(impl, build, where, variant_name, kind):
    fn, args, kwargs = build(impl)
    good = args[where] if isinstance(where, int) else kwargs[where]
    bad = _variants(kind, good)[variant_name]
    if isinstance(where, int):
        args[where] = bad
    else:
        kwargs[where] = bad
    try:
        fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the class is what is compared
        return type(exc).__name__
    return "ok"


def _params():
    out = []
    for name, build, spec in _cases():
        for where, kind in spec.items():
            fn, args, kwargs = build(reference)
            good = args[where] if isinstance(where, int) else kwargs[where]
            for variant in _variants(kind, good):
                out.append(pytest.param(build, where, variant, kind, id=f"{name}-{where}-{variant}"))
    return out


@pytest.mark.parametrize("build,where,variant,kind", _params())
def test_same_exception_class_for_the_same_mistake(build, where, variant, kind):
    assert _outcome(_core, build, where, variant, kind) == _outcome(reference, build, where, variant, kind)


def test_batch_capacity_must_be_an_integer():
    for impl in (reference, _core):
        with pytest.raises(TypeError):
            impl.Batch(1.5)

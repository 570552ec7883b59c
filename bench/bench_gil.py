"""GIL benchmark (docs/conventions.md §11, after pandas asv_bench/benchmarks/gil.py): do the batch kernels release the
GIL?  For each row, two threads each run the kernel on their own data (own PacketBuffer, own arena) versus the
same two calls run one after the other in one thread.  With the GIL released for the loops, two threads take
about the time of one call: ratio threads/serial ~ 0.5 on two idle cores (1.0 = no parallelism at all).

    PYTHONPATH=. python bench/bench_gil.py -o bench/gil.json
    PYTHONPATH=. python bench/bench_gil.py --fast -o /tmp/gil.json

Extend it by appending to WORK: ``(name, make_work)`` where ``make_work()`` returns a zero-argument callable
doing one batch call on data of its own (it is called once per thread, so no two threads share state).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyperf

_core: Any
try:
    from fmipfast import _core
except ImportError:
    _core = None

FRAME, FRAMES, KEYS = 256, 4096, 8  # cache-sized batches: the rows measure the GIL, not memory bandwidth
MAC_A = np.frombuffer(bytes.fromhex("02005e100001"), dtype=np.uint8)
MAC_B = np.frombuffer(bytes.fromhex("02005e100002"), dtype=np.uint8)


def _batch(n: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n Ethernet + IPv6 frames of ``size`` octets, hop limit 255, packed."""
    frame = bytearray(size)
    frame[12:14] = b"\x86\xdd"
    frame[14] = 0x60
    frame[18:20] = (size - 54).to_bytes(2, "big")
    frame[21] = 255
    arena = np.tile(np.frombuffer(bytes(frame), dtype=np.uint8), n)
    return arena, np.arange(n, dtype=np.int64) * size, np.full(n, size, dtype=np.uint32)


def push_flush_work() -> Callable[[], object]:
    """PacketBuffer.push of 4096 256-octet frames over 8 keys, then flush of every key."""
    buf = _core.PacketBuffer(slots=FRAMES, slot_size=2048, max_keys=KEYS, per_key_packets=FRAMES,
                             per_key_bytes=10**7)
    arena, offsets, lengths = _batch(FRAMES, FRAME)
    keys = (np.arange(FRAMES) % KEYS).astype(np.int32)

    def work() -> object:
        buf.push(keys, arena, offsets, lengths, 0)
        for key in range(KEYS):
            buf.flush(key, 0)
        return None

    return work


def forward_work() -> Callable[[], object]:
    """forward_rewrite of 65536 selections over 256 frames (each frame 256 times: hop limit 255 -> 1, then
    the Time Exceeded check), hop limits reset per call."""
    n, repeat = 256, 256
    arena, offsets, _ = _batch(n, 64)
    l3 = np.full(n, 14, dtype=np.uint32)
    sel = np.tile(np.arange(n, dtype=np.int64), repeat)
    dst = np.tile(MAC_B, (n * repeat, 1))
    hops = offsets + 21

    def work() -> object:
        arena[hops] = 255
        return _core.forward_rewrite(arena, offsets, l3, sel, dst, MAC_A)

    return work


def encapsulate_work() -> Callable[[], object]:
    """encapsulate of 4096 256-octet frames."""
    arena, offsets, lengths = _batch(FRAMES, FRAME)
    l3 = np.full(FRAMES, 14, dtype=np.uint32)
    sel = np.arange(FRAMES, dtype=np.int64)
    addr = np.arange(16, dtype=np.uint8)
    return lambda: _core.encapsulate(arena, offsets, lengths, l3, sel, addr, addr, MAC_B, MAC_A)


def classify_work() -> Callable[[], object]:
    """classify of 4096 UDP frames (each thread its own arena and Batch)."""
    import struct

    frame = bytearray(b"\x02" * 12 + b"\x86\xdd" + struct.pack("!IHBB", 6 << 28, 16, 17, 64) + bytes(16)
                      + bytes(15) + b"\x02" + b"\x13\x88\x13\x89\x00\x10\x00\x00" + b"payload!")
    frame[22] = 0x20  # source 2001::..
    arena = np.frombuffer(bytes(frame) * FRAMES, dtype=np.uint8)
    offsets = np.arange(FRAMES, dtype=np.int64) * len(frame)
    lengths = np.full(FRAMES, len(frame), dtype=np.uint32)
    out = _core.Batch(FRAMES)
    return lambda: _core.classify(arena, offsets, lengths, out=out)


def ncache_work() -> Callable[[], object]:
    """NeighborCache.lookup of 4096 keys in a 65536-entry table (90% hits)."""
    rng = np.random.default_rng(1)
    nc = _core.NeighborCache(65536, seed=bytes(16))
    keys = rng.integers(0, 256, (60000, 16), dtype=np.uint8)
    nc.insert(keys, np.zeros((60000, 6), dtype=np.uint8), np.full(60000, 2, dtype=np.uint8))
    probe = np.ascontiguousarray(np.concatenate([keys[rng.integers(0, 60000, 3686)],
                                                 rng.integers(0, 256, (410, 16), dtype=np.uint8)]))
    return lambda: nc.lookup(probe)


#: (name, make_work).
WORK: list[tuple[str, Callable[[], Callable[[], object]]]] = [
    ("PacketBuffer push+flush", push_flush_work),
    ("forward_rewrite", forward_work),
    ("encapsulate", encapsulate_work),
    ("classify", classify_work),
    ("NeighborCache.lookup", ncache_work),
]

THREADS = 2


def serial(make_work: Callable[[], Callable[[], object]]) -> Callable[[int], float]:
    works = [make_work() for _ in range(THREADS)]

    def time_func(loops: int) -> float:
        start = time.perf_counter()
        for _ in range(loops):
            for work in works:
                work()
        return time.perf_counter() - start

    return time_func


def threaded(make_work: Callable[[], Callable[[], object]]) -> Callable[[int], float]:
    works = [make_work() for _ in range(THREADS)]

    def time_func(loops: int) -> float:
        barrier = threading.Barrier(THREADS + 1)

        def run(work: Callable[[], object]) -> None:
            barrier.wait()
            for _ in range(loops):
                work()

        threads = [threading.Thread(target=run, args=(work,)) for work in works]
        for thread in threads:
            thread.start()
        start = time.perf_counter()
        barrier.wait()
        for thread in threads:
            thread.join()
        return time.perf_counter() - start

    return time_func


def main() -> None:
    runner = pyperf.Runner()
    runner.metadata["description"] = f"fmipfast._core batch kernels: {THREADS} threads vs {THREADS} serial calls"
    if _core is None:
        raise SystemExit("bench_gil needs the compiled core (python setup.py build_ext --inplace)")
    results: dict[tuple[str, str], pyperf.Benchmark | None] = {}
    for name, make_work in WORK:
        results[name, "serial"] = runner.bench_time_func(f"{name} [{THREADS} serial]", serial(make_work))
        results[name, "threads"] = runner.bench_time_func(f"{name} [{THREADS} threads]", threaded(make_work))
    if runner.args.worker or any(bench is None or not bench.get_values() for bench in results.values()):
        return
    print()
    print(f"{'kernel':<28}{'serial':>12}{'threads':>12}{'ratio':>8}")
    for name, _ in WORK:
        s, t = results[name, "serial"], results[name, "threads"]
        assert s is not None and t is not None
        print(f"{name:<28}{s.median() * 1e3:>9.2f} ms{t.median() * 1e3:>9.2f} ms{t.median() / s.median():>8.2f}")


if __name__ == "__main__":
    main()

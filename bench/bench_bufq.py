"""pyperf benchmark of the buffer and rewrite stages: fmipfast.reference vs fmipfast._core (docs/conventions.md §11).

Every row runs on both implementations with identical inputs; times are per frame (pyperf inner_loops =
frames per call) and the table at the end gives frames/s and the core/reference speed-up.

    PYTHONPATH=. python bench/bench_bufq.py -o bench/bufq.json          # full run
    PYTHONPATH=. python bench/bench_bufq.py --fast -o /tmp/bufq.json    # quick look

Rows (docs/design.md §5):
  push+flush    PacketBuffer.push of 4096 100-octet frames spread over 64 keys (64 per key: at the default
                per-key cap, nothing dropped), then flush of the 64 keys; the NAR's buffer-then-attach path.
  forward       forward_rewrite of a 256-frame batch in place; the hop limits are reset with one numpy
                assignment per call (inside the timing) so every frame is really rewritten.
  encapsulate   encapsulate of 256 100-octet frames (the PAR's TUNNEL stage), fresh output arena per call.
  decapsulate   decapsulate of those 256 tunnel frames (the NAR's DECAP stage).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyperf

from fmipfast import reference

_core: Any
try:
    from fmipfast import _core
except ImportError:  # benchmark the reference alone rather than not at all
    _core = None

FRAME = 100
PUSH_FRAMES, KEYS = 4096, 64
BATCH = 256
PAR = bytes.fromhex("20010db8000100000000000000000001")
NAR = bytes.fromhex("20010db8000200000000000000000001")
MAC_A = np.frombuffer(bytes.fromhex("02005e100001"), dtype=np.uint8)
MAC_B = np.frombuffer(bytes.fromhex("02005e100002"), dtype=np.uint8)


def ipv6_frame(size: int, seed: int) -> bytes:
    """An Ethernet + IPv6 frame of ``size`` octets (payload length consistent, hop limit 64)."""
    payload = bytes((seed + i) & 0xFF for i in range(size - 54))
    ip = bytes([0x60, 0, 0, 0]) + len(payload).to_bytes(2, "big") + bytes([17, 64]) + PAR + NAR
    return bytes(MAC_A) + bytes(MAC_B) + b"\x86\xdd" + ip + payload


def batch(frames: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lengths = np.array([len(f) for f in frames], dtype=np.uint32)
    offsets = np.zeros(len(frames), dtype=np.int64)
    offsets[1:] = np.cumsum(lengths[:-1], dtype=np.int64)
    return np.frombuffer(b"".join(frames), dtype=np.uint8).copy(), offsets, lengths


def push_flush(impl: Any) -> Callable[[], object]:
    buf = impl.PacketBuffer(slots=PUSH_FRAMES, slot_size=2048, max_keys=KEYS, per_key_packets=64)
    arena, offsets, lengths = batch([ipv6_frame(FRAME, i) for i in range(PUSH_FRAMES)])
    keys = (np.arange(PUSH_FRAMES) % KEYS).astype(np.int32)

    def call() -> object:
        buf.push(keys, arena, offsets, lengths, 1)
        for key in range(KEYS):
            buf.flush(key, 2)
        return None

    return call


def forward(impl: Any) -> Callable[[], object]:
    arena, offsets, _ = batch([ipv6_frame(FRAME, i) for i in range(BATCH)])
    l3 = np.full(BATCH, 14, dtype=np.uint32)
    sel = np.arange(BATCH, dtype=np.int64)
    dst = np.tile(MAC_B, (BATCH, 1))
    hops = offsets + 14 + 7

    def call() -> object:
        arena[hops] = 64
        return impl.forward_rewrite(arena, offsets, l3, sel, dst, MAC_A)

    return call


def encapsulate(impl: Any) -> Callable[[], object]:
    arena, offsets, lengths = batch([ipv6_frame(FRAME, i) for i in range(BATCH)])
    l3 = np.full(BATCH, 14, dtype=np.uint32)
    sel = np.arange(BATCH, dtype=np.int64)
    src, dst = np.frombuffer(PAR, np.uint8), np.frombuffer(NAR, np.uint8)
    return lambda: impl.encapsulate(arena, offsets, lengths, l3, sel, src, dst, MAC_B, MAC_A)


def decapsulate(impl: Any) -> Callable[[], object]:
    arena, offsets, lengths = batch([ipv6_frame(FRAME, i) for i in range(BATCH)])
    l3 = np.full(BATCH, 14, dtype=np.uint32)
    sel = np.arange(BATCH, dtype=np.int64)
    src, dst = np.frombuffer(PAR, np.uint8), np.frombuffer(NAR, np.uint8)
    tunnel, toff, tlen, _ = reference.encapsulate(arena, offsets, lengths, l3, sel, src, dst, MAC_B, MAC_A)
    return lambda: impl.decapsulate(tunnel, toff, tlen, l3, l3 + 40, sel)


# A row: (name, frames per call, make(impl) -> a zero-argument call).
ROWS: list[tuple[str, int, Callable[[Any], Callable[[], object]]]] = [
    (f"push+flush {PUSH_FRAMES}x{FRAME}B/{KEYS} keys", PUSH_FRAMES, push_flush),
    (f"forward_rewrite {BATCH}x{FRAME}B", BATCH, forward),
    (f"encapsulate {BATCH}x{FRAME}B", BATCH, encapsulate),
    (f"decapsulate {BATCH}x{FRAME + 54}B", BATCH, decapsulate),
]

IMPLEMENTATIONS = [("py", reference)] + ([("c", _core)] if _core is not None else [])


def _time_func(call: Callable[[], object]) -> Callable[[int], float]:
    def time_func(loops: int) -> float:
        start = time.perf_counter()
        for _ in range(loops):
            call()
        return time.perf_counter() - start

    return time_func


def main() -> None:
    runner = pyperf.Runner()
    runner.metadata["description"] = "fmipfast PacketBuffer and rewrite kernels, reference vs _core (per frame)"
    results: dict[tuple[str, str], pyperf.Benchmark | None] = {}
    for name, frames, make in ROWS:
        for impl_id, impl in IMPLEMENTATIONS:
            results[name, impl_id] = runner.bench_time_func(
                f"{name} [{impl_id}]", _time_func(make(impl)), inner_loops=frames
            )
    if runner.args.worker or any(bench is None or not bench.get_values() for bench in results.values()):
        return  # a worker process (pyperf re-runs this script per measurement): no table
    medians = {key: bench.median() for key, bench in results.items() if bench is not None}
    print()
    print(f"{'row':<34}{'reference':>16}{'_core':>16}{'speed-up':>10}")
    for name, _, _ in ROWS:
        py = medians[name, "py"]
        line = f"{name:<34}{1 / py / 1e6:>9.3f} Mfr/s"
        if (name, "c") in medians:
            c = medians[name, "c"]
            line += f"{1 / c / 1e6:>9.2f} Mfr/s{py / c:>9.0f}x"
        print(line)


if __name__ == "__main__":
    main()

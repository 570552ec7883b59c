"""pyperf benchmark of Fib longest-prefix-match lookups: lookups per second, against the engine's method.

Workload per table size (10, 1 000 and 100 000 prefixes): random /32-/64 prefixes plus a default route
(::/0); destinations in batches of 256, 90% of them inside a random prefix of the table (random host bits),
10% uniform random (most of those only match ::/0).  Rows, all in the same run, timed per destination
(inner_loops = 256):

  _core Fib           fmipfast._core.Fib.lookup(batch, out), 16 batches cycled (64 KiB of destinations:
                      they stay in cache; the table may not)
  _core Fib cold      the same table, 4096 batches cycled: 16 MiB of destinations, so every batch comes
                      from memory and its lookups land all over the table
  numpy per route     the method of Engine._route_batch (fmipfast/engine.py), reimplemented here: the
                      routes sorted longest first, one vectorised mask-and-compare pass over the batch per
                      route until every destination matched (the default route is last, so a batch with
                      any destination outside the other prefixes walks every route); it returns the route
                      index like the Fib.  Checked equal to the Fib's answers before timing.

    PYTHONPATH=. python bench/bench_fib.py -o bench/fib.json      # full run
    PYTHONPATH=. python bench/bench_fib.py --fast                # quick look
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
except ImportError:  # benchmark what is there rather than nothing
    _core = None

SIZES = (10, 1000, 100_000)
BATCH = 256
HOT_BATCHES = 16
COLD_BATCHES = 4096  # 4096 * 256 * 16 octets = 16 MiB of destinations
INSIDE = 0.9
SEED = bytes(range(16))


def _table(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n prefixes: ::/0 and n - 1 distinct random /32-/64, sorted longest first; value = position."""
    rng = np.random.default_rng(n)
    prefixes = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    lengths = rng.integers(32, 65, size=n).astype(np.uint8)
    prefixes[0], lengths[0] = 0, 0
    bits = np.arange(128)[None, :] < lengths[:, None].astype(np.int64)
    prefixes &= np.packbits(bits, axis=1)
    order = np.argsort(-lengths.astype(np.int64), kind="stable")
    prefixes, lengths = np.ascontiguousarray(prefixes[order]), lengths[order]
    return prefixes, lengths, np.arange(n, dtype=np.int32)


def _batches(prefixes: np.ndarray, lengths: np.ndarray, count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    total = count * BATCH
    dst = rng.integers(0, 256, size=(total, 16), dtype=np.uint8)
    inside = rng.random(total) < INSIDE
    pick = rng.integers(0, prefixes.shape[0], size=total)
    bits = np.arange(128)[None, :] < lengths[pick][:, None].astype(np.int64)
    mask = np.packbits(bits, axis=1)
    dst[inside] = (prefixes[pick] & mask)[inside] | (dst & ~mask)[inside]
    return [np.ascontiguousarray(dst[i * BATCH : (i + 1) * BATCH]) for i in range(count)]


class PerRoute:
    """Engine._route_batch's method: one numpy mask-and-compare pass per route, longest route first."""

    def __init__(self, prefixes: np.ndarray, lengths: np.ndarray) -> None:
        words = prefixes.view(">u8").reshape(-1, 2).astype(np.uint64)
        full = (1 << 128) - 1
        self.routes = []
        for i, ln in enumerate(lengths.tolist()):
            mask = full ^ ((1 << (128 - ln)) - 1)
            self.routes.append((int(words[i, 0]), int(words[i, 1]), mask >> 64, mask & ((1 << 64) - 1), i))

    def __call__(self, dst: np.ndarray) -> np.ndarray:
        n = dst.shape[0]
        hi = dst[:, :8].copy().view(">u8").reshape(n).astype(np.uint64)
        lo = dst[:, 8:].copy().view(">u8").reshape(n).astype(np.uint64)
        out = np.full(n, -1, dtype=np.int64)
        todo = np.ones(n, dtype=bool)
        for r_hi, r_lo, m_hi, m_lo, index in self.routes:
            if not todo.any():
                break
            m = todo & ((hi & np.uint64(m_hi)) == np.uint64(r_hi))
            m &= (lo & np.uint64(m_lo)) == np.uint64(r_lo)
            if m.any():
                out[m] = index
                todo &= ~m
        return out


def _cycle(items: list, run_batch: Callable[[Any], object]) -> Callable[[int], float]:
    def time_func(loops: int) -> float:
        count = len(items)
        start = time.perf_counter()
        for i in range(loops):
            run_batch(items[i % count])
        return time.perf_counter() - start

    return time_func


def _fib_row(n: int, batches: int) -> Callable[[], Callable[[int], float]]:
    def make() -> Callable[[int], float]:
        prefixes, lengths, values = _table(n)
        fib = _core.Fib(prefixes, lengths, values, seed=SEED)
        items = _batches(prefixes, lengths, batches, seed=n + batches)
        if n <= 1000:  # the reference (dict per length) is quick to build there; the per-route pass above
            want = reference.Fib(prefixes, lengths, values, seed=SEED).lookup(items[0])
        else:
            want = PerRoute(prefixes, lengths)(items[0])
        assert np.array_equal(fib.lookup(items[0]), want)
        out = np.empty(BATCH, np.int32)
        lookup = fib.lookup
        return _cycle(items, lambda d: lookup(d, out))

    return make


def _per_route_row(n: int) -> Callable[[], Callable[[int], float]]:
    def make() -> Callable[[int], float]:
        prefixes, lengths, values = _table(n)
        items = _batches(prefixes, lengths, HOT_BATCHES, seed=n + HOT_BATCHES)
        per_route = PerRoute(prefixes, lengths)
        if _core is not None:
            fib = _core.Fib(prefixes, lengths, values, seed=SEED)
            assert np.array_equal(per_route(items[0]), fib.lookup(items[0]))
        return _cycle(items, per_route)

    return make


def _lazy(make: Callable[[], Callable[[int], float]]) -> Callable[[int], float]:
    """Build a row's table on its first call (in the worker that times it), outside the timed part."""
    built: list[Callable[[int], float]] = []

    def time_func(loops: int) -> float:
        if not built:
            built.append(make())
        return built[0](loops)

    return time_func


ROWS: list[tuple[str, Callable[[], Callable[[int], float]]]] = []
for _n in SIZES:
    if _core is not None:
        ROWS += [(f"_core Fib, {_n} prefixes", _fib_row(_n, HOT_BATCHES)),
                 (f"_core Fib cold, {_n} prefixes", _fib_row(_n, COLD_BATCHES))]
    ROWS.append((f"numpy per route, {_n} prefixes", _per_route_row(_n)))


def main() -> None:
    runner = pyperf.Runner()
    runner.metadata["description"] = (
        f"Fib lookups: {SIZES} prefixes (/32-/64 + ::/0), batches of {BATCH}, {INSIDE:.0%} inside a prefix, "
        "per destination"
    )
    results = {name: runner.bench_time_func(name, _lazy(make), inner_loops=BATCH) for name, make in ROWS}
    if runner.args.worker or any(bench is None or not bench.get_values() for bench in results.values()):
        return  # a worker process (pyperf re-runs this script per measurement): no table
    per_lookup = {name: bench.median() for name, bench in results.items() if bench is not None}
    print()
    print(f"{'row':<36}{'ns/lookup':>12}{'Mlookups/s':>12}")
    for name, seconds in per_lookup.items():
        print(f"{name:<36}{seconds * 1e9:>12.1f}{1e-6 / seconds:>12.3f}")
    if _core is None:
        return
    print()
    for n in SIZES:
        hot, cold = per_lookup[f"_core Fib, {n} prefixes"], per_lookup[f"_core Fib cold, {n} prefixes"]
        numpy_row = per_lookup[f"numpy per route, {n} prefixes"]
        print(f"{n:>7} prefixes: Fib = {numpy_row / hot:,.0f}x numpy per route; cold/hot = {cold / hot:.2f}")
    small, big = per_lookup[f"_core Fib, {SIZES[0]} prefixes"], per_lookup[f"_core Fib, {SIZES[-1]} prefixes"]
    print(f"Fib time per lookup, {SIZES[-1]} / {SIZES[0]} prefixes: {big / small:.2f}")


if __name__ == "__main__":
    main()

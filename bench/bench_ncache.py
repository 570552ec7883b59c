"""pyperf benchmark of NeighborCache batch lookups (docs/conventions.md §11): lookups per second.

Workload: a table of 1 M entries with uniform random 16-octet keys, looked up in batches of 4096 keys of
which 90% are present (64 distinct batches, cycled, so the lookups spread over the whole table rather
than re-reading one cached batch).  Rows, all in the same run, timed per lookup (inner_loops = batch):

  _core         fmipfast._core.NeighborCache.lookup, one call per batch
  _core [baseline]  the same through another build of the extension, loaded when $FMIPFAST_BASELINE_CORE
                names its .so (bench/baseline_core.py): "before" figures in the same run as "after".
  C same work   bench/limit_ncache.c: the same table design and the SAME keyed hash (same seed) in plain C,
                compiled here with `cc -O3 -march=native -shared -fPIC` into a temporary directory and
                called through ctypes once per batch; it builds its own table from the same keys.  The
                benchmark checks it returns exactly _core's indices first.
  C lean        the same C table with an UNKEYED multiply-xorshift hash (lim_lookup_lean): the limit of an
                open-addressing table with prefetch and nothing against hash flooding.
  dict          a Python dict keyed by 16-octet ``bytes``, ``d.get(k, -1)`` per key; the query keys are
                prepared as bytes objects beforehand, which flatters the dict (the engine holds numpy
                rows, not bytes).
  reference     fmipfast.reference.NeighborCache.lookup, on a SMALLER table (100 000 entries; building
                1 M entries through the reference takes too long in every pyperf worker).  Its cost is
                the per-key Python loop, which hardly depends on the table size.

    PYTHONPATH=. python bench/bench_ncache.py -o bench/ncache.json      # full run
    PYTHONPATH=. python bench/bench_ncache.py --fast                   # quick look
    PYTHONPATH=. python bench/bench_ncache.py --interleaved 30         # compiled rows taking turns
    python -m pyperf compare_to old.json new.json

The table (16 MiB of keys, 8 MiB of slots, 8 MiB of hashes) and the 4 MiB of query batches are far larger
than L2: every lookup misses it at least once (cache-cold).

Targets: _core >= 0.8x the C lean table, >= 0.5x the same-work C and >= 10x the dict.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyperf

from fmipfast import reference

_core: Any
try:
    from fmipfast import _core
except ImportError:  # benchmark what is there rather than nothing
    _core = None

ENTRIES = 1_000_000
REFERENCE_ENTRIES = 100_000
BATCH = 4096
BATCHES = 64
HIT_RATE = 0.9
SEED = bytes(range(16))
LIMIT_SOURCE = Path(__file__).resolve().parent / "limit_ncache.c"
LIM_MIX, LIM_LEAN = 0, 1  # limit_ncache.c hash kinds


def _workload(entries: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """``entries`` random keys and BATCHES query batches of BATCH keys, HIT_RATE of them present."""
    rng = np.random.default_rng(entries)
    keys = rng.integers(0, 256, size=(entries, 16), dtype=np.uint8)
    batches = []
    hits = int(BATCH * HIT_RATE)
    for _ in range(BATCHES):
        present = keys[rng.integers(0, entries, size=hits)]
        absent = rng.integers(0, 256, size=(BATCH - hits, 16), dtype=np.uint8)
        batch = np.concatenate([present, absent])
        batches.append(np.ascontiguousarray(batch[rng.permutation(BATCH)]))
    return keys, batches


_CACHE: dict[str, Any] = {}


def _load_limit() -> ctypes.CDLL:
    """Compile limit_ncache.c once per process into a temporary directory and load it."""
    if "lib" not in _CACHE:
        tmp = tempfile.mkdtemp(prefix="fmipfast-limit-")
        out = os.path.join(tmp, "limit_ncache.so")
        cc = os.environ.get("CC", "cc")
        subprocess.run([cc, "-O3", "-march=native", "-shared", "-fPIC", "-o", out, str(LIMIT_SOURCE)], check=True)
        lib = ctypes.CDLL(out)
        lib.lim_build.restype = ctypes.c_void_p
        lib.lim_build.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_char_p, ctypes.c_int]
        for fn in (lib.lim_lookup, lib.lim_lookup_lean):
            fn.restype = ctypes.c_int64
            fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p]
        lib.lim_hash16.restype = ctypes.c_uint64
        lib.lim_hash16.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        lib.lim_free.argtypes = [ctypes.c_void_p]
        _CACHE["lib"] = lib
    return _CACHE["lib"]


def _cycle(batches: list[np.ndarray], run_batch: Callable[[Any], object], prepared: list | None = None):
    """A pyperf time function: one batch per loop, cycling through the prepared batches."""
    items = prepared if prepared is not None else batches

    def time_func(loops: int) -> float:
        count = len(items)
        start = time.perf_counter()
        for i in range(loops):
            run_batch(items[i % count])
        return time.perf_counter() - start

    return time_func


def _core_row(core: Any = None) -> Callable[[int], float]:
    keys, batches = _workload(ENTRIES)
    nc = (core or _core).NeighborCache(ENTRIES, seed=SEED)
    assert (nc.insert(keys, np.zeros((ENTRIES, 6), np.uint8), np.full(ENTRIES, 2, np.uint8)) >= 0).all()
    _CACHE["core_table"] = nc
    return _cycle(batches, nc.lookup)


def _limit_row() -> Callable[[int], float]:
    keys, batches = _workload(ENTRIES)
    lib = _load_limit()
    for key in keys[:64]:  # the SAME hash as the compiled core
        assert lib.lim_hash16(key.tobytes(), SEED) == _core._nc_hash(key.tobytes(), SEED)
    table = lib.lim_build(keys.ctypes.data, ENTRIES, SEED, LIM_MIX)
    if not table:
        raise MemoryError("lim_build")
    out = np.empty(BATCH, np.int64)
    nc = _core.NeighborCache(ENTRIES, seed=SEED)  # same answers as _core (built here: each worker is fresh)
    nc.insert(keys, np.zeros((ENTRIES, 6), np.uint8), np.full(ENTRIES, 2, np.uint8))
    lib.lim_lookup(table, batches[0].ctypes.data, BATCH, out.ctypes.data)
    assert np.array_equal(out, nc.lookup(batches[0]))
    del nc
    lookup, out_ptr = lib.lim_lookup, out.ctypes.data
    pointers = [b.ctypes.data for b in batches]
    _CACHE["limit_buffers"] = (batches, out)  # the C side holds raw pointers into these: keep them alive
    return _cycle(batches, lambda ptr: lookup(table, ptr, BATCH, out_ptr), pointers)


def _lean_row() -> Callable[[int], float]:
    keys, batches = _workload(ENTRIES)
    lib = _load_limit()
    table = lib.lim_build(keys.ctypes.data, ENTRIES, SEED, LIM_LEAN)
    if not table:
        raise MemoryError("lim_build")
    out = np.empty(BATCH, np.int64)
    lib.lim_lookup_lean(table, batches[0].ctypes.data, BATCH, out.ctypes.data)
    hit = out >= 0  # entry i is keys[i], as in _core; every present key found
    assert (keys[out[hit]] == batches[0][hit]).all() and hit.sum() >= int(BATCH * HIT_RATE)
    lookup, out_ptr = lib.lim_lookup_lean, out.ctypes.data
    pointers = [b.ctypes.data for b in batches]
    _CACHE["lean_buffers"] = (batches, out)
    return _cycle(batches, lambda ptr: lookup(table, ptr, BATCH, out_ptr), pointers)


def _dict_row() -> Callable[[int], float]:
    keys, batches = _workload(ENTRIES)
    table = {key.tobytes(): i for i, key in enumerate(keys)}
    as_bytes = [[row.tobytes() for row in batch] for batch in batches]

    def run(batch: list[bytes]) -> list[int]:
        get = table.get
        return [get(k, -1) for k in batch]

    return _cycle(batches, run, as_bytes)


def _reference_row() -> Callable[[int], float]:
    keys, batches = _workload(REFERENCE_ENTRIES)
    nc = reference.NeighborCache(REFERENCE_ENTRIES, seed=SEED)
    nc.insert(keys, np.zeros((REFERENCE_ENTRIES, 6), np.uint8), np.full(REFERENCE_ENTRIES, 2, np.uint8))
    return _cycle(batches, nc.lookup)


def _lazy(make: Callable[[], Callable[[int], float]]) -> Callable[[int], float]:
    """Build a row's table on its first call (in the worker that times it), outside the timed part."""
    built: list[Callable[[int], float]] = []

    def time_func(loops: int) -> float:
        if not built:
            built.append(make())
        return built[0](loops)

    return time_func


CORE, BASE, SAME, LEAN = "_core batch lookup", "_core [baseline]", "C same work", "C lean (unkeyed)"


def _rows() -> list[tuple[str, Callable[[], Callable[[int], float]]]]:
    import baseline_core

    rows: list[tuple[str, Callable[[], Callable[[int], float]]]] = []
    if _core is not None:
        rows.append((CORE, _core_row))
        base = baseline_core.load()
        if base is not None:
            rows.append((BASE, lambda: _core_row(base)))
        rows += [(SAME, _limit_row), (LEAN, _lean_row)]
    rows += [("dict[bytes]", _dict_row), (f"reference ({REFERENCE_ENTRIES} entries)", _reference_row)]
    return rows


def main() -> None:
    import baseline_core

    runner = pyperf.Runner()
    runner.argparser.add_argument("--interleaved", type=int, default=0, metavar="ROUNDS",
                                  help="time the compiled and C rows taking turns in this process (no pyperf run)")
    baseline_core.inherit(runner)
    args = runner.parse_args()
    if args.interleaved:
        import interleave

        made = {name: make() for name, make in _rows() if name in (CORE, BASE, SAME, LEAN)}
        rows = {name: (lambda f=f: f(BATCHES)) for name, f in made.items()}  # one pass over the 64 batches
        got = interleave.run(rows, args.interleaved, BATCHES * BATCH)
        print(interleave.table(got, {"C same work": SAME, "C lean": LEAN}, "lookup"))
        return
    runner.metadata["description"] = (
        f"NeighborCache lookups: {ENTRIES} entries, batches of {BATCH}, {HIT_RATE:.0%} hits, per lookup"
    )
    results = {name: runner.bench_time_func(name, _lazy(make), inner_loops=BATCH) for name, make in _rows()}
    if runner.args.worker or any(bench is None or not bench.get_values() for bench in results.values()):
        return  # a worker process (pyperf re-runs this script per measurement): no table
    per_lookup = {name: bench.median() for name, bench in results.items() if bench is not None}
    print()
    print(f"{'row':<32}{'ns/lookup':>11}{'Mlookups/s':>12}")
    for name, seconds in per_lookup.items():
        print(f"{name:<32}{seconds * 1e9:>11.1f}{1e-6 / seconds:>12.2f}")
    if CORE in per_lookup:
        print()
        for name in (CORE, BASE):
            if name in per_lookup:
                t = per_lookup[name]
                print(f"{name:<20}: {per_lookup[LEAN] / t:.2f}x the C lean table (target >= 0.8x), "
                      f"{per_lookup[SAME] / t:.2f}x the same-work C, {per_lookup['dict[bytes]'] / t:.1f}x the dict")
        ref_name = f"reference ({REFERENCE_ENTRIES} entries)"
        print(f"_core / reference: {per_lookup[ref_name] / per_lookup[CORE]:.1f}x")


if __name__ == "__main__":
    main()

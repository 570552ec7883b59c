"""pyperf benchmark of classify: frames per second on one realistic mixed arena (docs/conventions.md §11).

Rows, all in the same run, timed per frame (one call classifies the whole arena):

* ``_core.classify``       the compiled kernel on the cold corpus, reusing one ``out=`` Batch (no allocation
                           per call);
* ``_core [baseline]``     the same call through another build of the extension, loaded when
                           $FMIPFAST_BASELINE_CORE names its .so (bench/baseline_core.py): "before" figures
                           measured in the same run as "after";
* ``C same work``          bench/limit_classify.c limit_classify(), a plain C port of the same checks writing
                           the same arrays, compiled now with ``cc -O3 -march=native`` and called once per
                           arena through ctypes (every output array is checked equal to ``_core``'s before
                           timing); it writes every array of every row (a batch-wide memset first), where
                           ``_core`` writes the class columns only for the ND and fmipfast frames and the
                           Batch completes them when they are read (docs/api/batch.md);
* ``C checks, no rows``    limit_classify.c limit_checks_only(): the same-work port's checks with no Batch rows
                           behind them (verdict and drop reason only; the other fields to one scratch row,
                           no memset): what the validation costs by itself (verdicts checked equal to _core's);
* ``C lean parse``         limit_classify.c limit_lean(): the least any classifier does (Ethernet type, IPv6
                           version and payload length, the addresses copied out, next header, ICMPv6
                           type/code, checksum verified), none of fmipfast's validation; its outputs are
                           checked equal to ``_core``'s on this corpus, where every frame is plain;
* ``_core x2 threads``     docs/conventions.md §11, the GIL check: two threads each classifying the arena into
                           their own Batch, against ``_core x2 serial`` (the same calls one after the other);
* ``reference``, ``dpkt``  fmipfast.reference.wire.classify (pure Python) and a dpkt parse + checksum, on the
                           first HOT_FRAMES frames only (their per-frame cost is interpreter-bound, not
                           memory-bound, and a whole cold arena takes them seconds per call).

    PYTHONPATH=. python bench/bench_classify.py --fast -o /tmp/classify.json
    PYTHONPATH=. python bench/bench_classify.py --interleaved 60     # the cold rows taking turns (interleave.py)
    PYTHONPATH=. python bench/bench_classify.py --interleaved 60 --per-class   # the same, one class at a time

``--per-class`` times ``_core``, its baseline and the lean parse on one arena per class of the corpus (data:
UDP and TCP; echo; ND; fmipfast), each of N_FRAMES frames drawn with replacement from that class's frames of
the corpus and copied into an arena of its own, so every class is as cache-cold as the mix; and on the mix
itself, as it is and with its frames grouped by kind (class, ICMPv6 type, code, length).

The corpus (built deterministically here, cached per source hash in the temp dir): N_FRAMES = 100 000
Ethernet frames of 64-200 octets (~12 MB, three times the L2 cache) at unaligned offsets: UDP data, some TCP
and echo, ND (NS/NA with link-layer options, RS, RA with SLLA + prefix), fmipfast messages (HRD, HRA with a
small LKB PDU, Attach, Forwarding Disable) and ~1% ICMPv6 with a corrupt checksum (half end-to-end echo,
forwarded and flagged; half ND/fmipfast, dropped).  Each frame is its own copy in the arena, so a call
streams ~12 MB of frames and writes ~8 MB of Batch rows (~11 MB with every class column): cache-cold for L1
and L2.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

import numpy as np
import pyperf

from fmipfast import frames, reference
from fmipfast.constants import DEFAULT_CODEPOINTS, MESSAGE_KEYS, DropReason
from fmipfast.messages import (
    Attach,
    ForwardingDisable,
    HandoverRedirect,
    HandoverRedirectAck,
    Identifier,
    LinkLayerAddress,
    LkbMessage,
    PrefixInformation,
    RouterAdvertisement,
    RouterSolicitation,
    SourceLinkLayerAddress,
)
from fmipfast.reference.wire import FIELDS

_core: Any
try:
    from fmipfast import _core
except ImportError:  # benchmark what is there rather than nothing
    _core = None

N_FRAMES = 100_000
HOT_FRAMES = 4096
HERE = Path(__file__).resolve().parent
MN_MAC, AR_MAC = bytes.fromhex("02005e100001"), bytes.fromhex("02005e100002")
MN_EUI = MN_MAC[:3] + b"\xff\xfe" + MN_MAC[3:]


def _addr(text: str) -> bytes:
    return IPv6Address(text).packed


def _nd(icmp_type: int, src: str, dst: str, body: bytes) -> bytes:
    """An ND frame (hop limit 255) of ``icmp_type`` with ``body`` after the 4-octet header."""
    msg = bytearray(bytes((icmp_type, 0, 0, 0)) + body)
    reference.icmp6_checksum_fill(_addr(src), _addr(dst), msg)
    return frames.build_ethernet(AR_MAC, MN_MAC, frames.build_ipv6(src, dst, 58, bytes(msg), 255))


def _udp(rng: random.Random, proto: int = 17) -> bytes:
    size = rng.randint(64, 200) - 14 - 40
    payload = struct.pack("!HHHH", rng.randint(1024, 65535), 5001, size, 0) + rng.randbytes(size - 8)
    src = f"2001:db8:1::{rng.randint(1, 0xFFFF):x}"
    return frames.build_ethernet(AR_MAC, MN_MAC, frames.build_ipv6(src, "2001:db8:9::1", proto, payload, 63))


def _echo(rng: random.Random, corrupt: bool = False) -> bytes:
    body = bytearray(b"\x80\x00\x00\x00" + rng.randbytes(rng.randint(8, 120)))
    reference.icmp6_checksum_fill(_addr("2001:db8:1::5"), _addr("2001:db8:9::1"), body)
    if corrupt:
        body[-1] ^= 0x5A
    return frames.build_ethernet(AR_MAC, MN_MAC, frames.build_ipv6("2001:db8:1::5", "2001:db8:9::1", 58,
                                                                   bytes(body), 64))


def corpus(seed: int = 3) -> list[bytes]:
    """The mixed corpus (deterministic)."""
    rng = random.Random(seed)
    ll_mn, ll_ar = "fe80::200:5eff:fe10:1", "fe80::200:5eff:fe10:2"
    slla = bytes((1, 1)) + MN_MAC
    tlla = bytes((2, 1)) + AR_MAC
    ns = _nd(135, ll_mn, "ff02::1:ff10:2", bytes(4) + _addr("2001:db8:1::2") + slla)
    na = _nd(136, ll_ar, ll_mn, b"\x60\0\0\0" + _addr("2001:db8:1::2") + tlla)
    fmip = [
        frames.icmp6_frame(RouterSolicitation((SourceLinkLayerAddress(MN_MAC),)), ll_mn, "ff02::2", MN_MAC),
        frames.icmp6_frame(RouterAdvertisement(options=(SourceLinkLayerAddress(AR_MAC),
                                                        PrefixInformation(64, "2001:db8:1::"))),
                           ll_ar, "ff02::1", AR_MAC),
        frames.icmp6_frame(HandoverRedirect(64, "2001:db8:2::1", nar_mac=MN_EUI, options=(Identifier(7),)),
                           ll_ar, ll_mn, AR_MAC, MN_MAC),
        frames.icmp6_frame(HandoverRedirectAck((LkbMessage(rng.randbytes(48)), Identifier(7))), ll_mn, ll_ar,
                           MN_MAC, AR_MAC),
        frames.icmp6_frame(Attach((LinkLayerAddress(MN_EUI), Identifier(7))), ll_mn, ll_ar, MN_MAC, AR_MAC),
        frames.icmp6_frame(ForwardingDisable((Identifier(7),)), ll_mn, ll_ar, MN_MAC, AR_MAC),
    ]
    out = []
    for _ in range(N_FRAMES):
        roll = rng.random()
        if roll < 0.005:
            out.append(_echo(rng, corrupt=True))  # end to end: reported in checksum_ok, forwarded
        elif roll < 0.01:
            bad = bytearray(rng.choice([ns, na] + fmip))
            bad[-1] ^= 0x5A
            out.append(bytes(bad))  # ND / fmipfast: dropped, ICMP6_BAD_CHECKSUM
        elif roll < 0.60:
            out.append(_udp(rng))
        elif roll < 0.65:
            out.append(_udp(rng, proto=6))
        elif roll < 0.70:
            out.append(_echo(rng))
        elif roll < 0.85:
            out.append(rng.choice([ns, na]))
        else:
            out.append(rng.choice(fmip))
    return out


def arena_of(frames_: list[bytes]):
    """Frames at unaligned offsets (1-3 octets of gap) in one uint8 arena, with int64/uint32 index arrays."""
    rng = random.Random(11)
    buf = bytearray()
    offsets, lengths = [], []
    for frame in frames_:
        buf += bytes(rng.randint(1, 3))
        offsets.append(len(buf))
        lengths.append(len(frame))
        buf += frame
    return (np.frombuffer(bytes(buf), dtype=np.uint8).copy(), np.array(offsets, np.int64),
            np.array(lengths, np.uint32))


def _cached_arena() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """arena_of(corpus()), cached in the temp dir under the hash of this file (every pyperf worker needs it)."""
    digest = hashlib.sha256(Path(__file__).read_bytes() + str(N_FRAMES).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"fmipfast-classify-corpus-{digest}.npz"
    if path.exists():
        with np.load(path) as z:
            return z["arena"], z["offsets"], z["lengths"]
    arena, offsets, lengths = arena_of(corpus())
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, arena=arena, offsets=offsets, lengths=lengths)
    tmp.replace(path)
    return arena, offsets, lengths


ARENA, OFFSETS, LENGTHS = _cached_arena()
# The hot subset for the interpreter-bound rows: the first HOT_FRAMES frames (same arena prefix).
HOT_END = int(OFFSETS[HOT_FRAMES - 1]) + int(LENGTHS[HOT_FRAMES - 1])
HOT = (ARENA[:HOT_END].copy(), OFFSETS[:HOT_FRAMES].copy(), LENGTHS[:HOT_FRAMES].copy())


# ---- The C limit -------------------------------------------------------------------------------------

def build_limit() -> ctypes.CDLL | None:
    """Compile bench/limit_classify.c (cached by source hash in the temp dir) and load it."""
    source = HERE / "limit_classify.c"
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        print(f"bench_classify: no C compiler ({cc}); the C limit row is left out", file=sys.stderr)
        return None
    flags = ["-O3", "-march=native", "-shared", "-fPIC"]
    digest = hashlib.sha256(source.read_bytes() + " ".join(flags).encode()).hexdigest()[:16]
    lib = Path(tempfile.gettempdir()) / f"fmipfast-limit-classify-{digest}.so"
    if not lib.exists():
        tmp = lib.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run([cc, *flags, "-o", str(tmp), str(source)], check=True)
        tmp.replace(lib)
    dll = ctypes.CDLL(str(lib))
    dll.limit_classify.restype = None
    dll.limit_classify.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                   ctypes.c_uint8, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    dll.limit_checks_only.restype = None
    dll.limit_checks_only.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                      ctypes.c_uint8, ctypes.c_void_p, ctypes.c_void_p]
    dll.limit_lean.restype = None
    dll.limit_lean.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                               *[ctypes.c_void_p] * 7]
    return dll


class LimitOut:
    """numpy arrays shaped like a Batch, and the pointer table limit_classify() writes through."""

    def __init__(self, n: int) -> None:
        self.arrays = {name: np.zeros((n, *row), dtype=dtype) for name, dtype, row in FIELDS}
        self.drop_counts = np.zeros(len(DropReason), np.uint64)
        ptrs = [self.arrays[name].ctypes.data for name, _, _ in FIELDS] + [self.drop_counts.ctypes.data]
        self.table = (ctypes.c_void_p * len(ptrs))(*ptrs)


def limit_call(dll: ctypes.CDLL, out: LimitOut, checks_only: bool = False) -> Callable[[], None]:
    code_map = np.zeros(256, np.uint8)
    for index, key in enumerate(MESSAGE_KEYS):
        code_map[DEFAULT_CODEPOINTS.code(key)] = index + 1
    fn = dll.limit_checks_only if checks_only else dll.limit_classify
    args: tuple[Any, ...] = (ARENA.ctypes.data, OFFSETS.ctypes.data, LENGTHS.ctypes.data, len(OFFSETS),
                             DEFAULT_CODEPOINTS.type, code_map.ctypes.data, out.table)
    if not checks_only:
        args += (len(DropReason),)
    keep = (code_map,)

    def call() -> None:
        fn(*args)
        _ = keep

    return call


LEAN_FIELDS = ("verdict", "next_header", "icmp_type", "icmp_code", "checksum_ok", "src", "dst")


def lean_call(dll: ctypes.CDLL, arrays: dict[str, np.ndarray]) -> Callable[[], None]:
    """limit_lean() over the cold arena into ``arrays`` (LEAN_FIELDS, N_FRAMES rows each)."""
    fn = dll.limit_lean
    args = (ARENA.ctypes.data, OFFSETS.ctypes.data, LENGTHS.ctypes.data, len(OFFSETS),
            *(arrays[name].ctypes.data for name in LEAN_FIELDS))

    def call() -> None:
        fn(*args)

    return call


def check_lean(arrays: dict[str, np.ndarray], batch: Any) -> None:
    """The lean parse did the work: on this corpus (every frame plain IPv6, no extension header) its
    addresses, next header, ICMPv6 type/code and checksum flags are _core's."""
    for name in LEAN_FIELDS[1:]:
        if not np.array_equal(arrays[name], getattr(batch, name)):
            raise SystemExit(f"limit_lean disagrees with _core on {name}")
    if not arrays["verdict"].all():
        raise SystemExit("limit_lean: a frame of the corpus is not plain IPv6")


CLASSES = ("data", "echo", "nd", "fmipfast")


def class_arenas(batch: Any) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The mix, the mix grouped by kind, and one cold arena of N_FRAMES frames per class of the corpus, by the
    ICMPv6 type ``batch`` (the corpus classified) found: 133-137 ND, the profile's type fmipfast, 128-129
    echo, none data."""
    t = batch.icmp_type
    kind = np.where((t >= 133) & (t <= 137), 2,
                    np.where(t == DEFAULT_CODEPOINTS.type, 3, np.where((t == 128) | (t == 129), 1, 0)))
    rng = np.random.default_rng(5)
    out = {"mix": (ARENA, OFFSETS, LENGTHS)}
    # The same frames in an order where every per-kind branch goes one way for long runs (class, ICMPv6 type,
    # code, length): what the mix costs over that is the price of its variety (mispredicted branches).
    grouped = np.lexsort((LENGTHS, batch.icmp_code, t, kind))
    out["mix grouped by kind"] = arena_of([ARENA[OFFSETS[k]:OFFSETS[k] + LENGTHS[k]].tobytes() for k in grouped])
    for index, name in enumerate(CLASSES):
        picks = rng.choice(np.nonzero(kind == index)[0], N_FRAMES)
        out[name] = arena_of([ARENA[OFFSETS[k]:OFFSETS[k] + LENGTHS[k]].tobytes() for k in picks])
    return out


def per_class(dll: ctypes.CDLL | None, base: Any, rounds: int) -> None:
    """--interleaved --per-class: per class, _core, its baseline and the lean parse taking turns."""
    import interleave

    arenas = class_arenas(_core.classify(ARENA, OFFSETS, LENGTHS))
    for name, (arena, offsets, lengths) in arenas.items():
        rows: dict[str, Callable[[], Any]] = {}
        out = _core.Batch(N_FRAMES)
        rows["_core.classify"] = lambda a=arena, o=offsets, n=lengths, b=out: _core.classify(a, o, n, out=b)
        if base is not None:
            base_out = base.Batch(N_FRAMES)
            rows["_core [baseline]"] = lambda a=arena, o=offsets, n=lengths, b=base_out: base.classify(a, o, n,
                                                                                                        out=b)
        if dll is not None:
            lean = {f: np.zeros((N_FRAMES, 16) if f in ("src", "dst") else N_FRAMES, np.uint8) for f in LEAN_FIELDS}
            args = (arena.ctypes.data, offsets.ctypes.data, lengths.ctypes.data, N_FRAMES,
                    *(lean[f].ctypes.data for f in LEAN_FIELDS))
            rows["C lean parse"] = lambda args=args, keep=(arena, offsets, lengths, lean): dll.limit_lean(*args)
        got = interleave.run(rows, rounds, N_FRAMES)
        print(f"{name}:")
        print(interleave.table(got, {"C lean": "C lean parse"} if dll is not None else {}, "frame"))


# ---- dpkt --------------------------------------------------------------------------------------------

def dpkt_call(quiet: bool = False) -> Callable[[], None] | None:
    try:
        import dpkt
    except ImportError:
        if not quiet:
            print("bench_classify: dpkt is not installed (pip install dpkt); its row is left out", file=sys.stderr)
        return None
    raw = HOT[0].tobytes()
    spans = list(zip(HOT[1].tolist(), HOT[2].tolist()))
    Ethernet, IP6, ICMP6 = dpkt.ethernet.Ethernet, dpkt.ip6.IP6, dpkt.icmp6.ICMP6
    in_cksum = dpkt.in_cksum
    pack = struct.Struct("!16s16sI3xB").pack

    def call() -> None:
        for off, length in spans:
            try:
                eth = Ethernet(raw[off:off + length])
            except dpkt.UnpackError:
                continue
            ip = eth.data
            if isinstance(ip, IP6) and isinstance(ip.data, ICMP6):
                message = bytes(ip.data)
                in_cksum(pack(ip.src, ip.dst, len(message), 58) + message)

    return call


# ---- Runner ------------------------------------------------------------------------------------------

def _pair(threaded: bool) -> Callable[[int], float]:
    """Two classify streams of ``loops`` calls each, in two threads or one after the other."""
    outs = [_core.Batch(N_FRAMES), _core.Batch(N_FRAMES)]

    def stream(out: Any, loops: int) -> None:
        for _ in range(loops):
            _core.classify(ARENA, OFFSETS, LENGTHS, out=out)

    def time_func(loops: int) -> float:
        start = time.perf_counter()
        if threaded:
            workers = [threading.Thread(target=stream, args=(out, loops)) for out in outs]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        else:
            for out in outs:
                stream(out, loops)
        return time.perf_counter() - start

    return time_func


def _time(call: Callable[[], Any]) -> Callable[[int], float]:
    def time_func(loops: int) -> float:
        start = time.perf_counter()
        for _ in range(loops):
            call()
        return time.perf_counter() - start

    return time_func


def main() -> None:
    import baseline_core

    runner = pyperf.Runner()
    runner.argparser.add_argument("--interleaved", type=int, default=0, metavar="ROUNDS",
                                  help="time the cold rows taking turns in this process (no pyperf run)")
    runner.argparser.add_argument("--per-class", action="store_true",
                                  help="with --interleaved: one cold arena per class of frame")
    baseline_core.inherit(runner)
    runner.metadata["description"] = (f"fmipfast classify: {N_FRAMES} mixed frames per call "
                                      f"({ARENA.nbytes / 1e6:.1f} MB), time per frame")
    cold: list[tuple[str, Callable[[], Any]]] = []
    if _core is not None:
        out = _core.Batch(N_FRAMES)
        cold.append(("_core.classify", lambda: _core.classify(ARENA, OFFSETS, LENGTHS, out=out)))
        base = baseline_core.load()
        if base is not None:
            base_out = base.Batch(N_FRAMES)
            cold.append(("_core [baseline]", lambda: base.classify(ARENA, OFFSETS, LENGTHS, out=base_out)))
        dll = build_limit()
        if dll is not None:
            check = _core.classify(ARENA, OFFSETS, LENGTHS)
            limit_out = LimitOut(N_FRAMES)
            call = limit_call(dll, limit_out)
            call()
            for name, _, _ in FIELDS:
                if not np.array_equal(limit_out.arrays[name], getattr(check, name)):
                    raise SystemExit(f"limit_classify.c disagrees with _core on {name}: not a faithful port")
            cold.append(("C same work", call))
            checks_out = LimitOut(N_FRAMES)
            checks = limit_call(dll, checks_out, checks_only=True)
            checks()
            for name in ("verdict", "drop_reason"):
                if not np.array_equal(checks_out.arrays[name], getattr(check, name)):
                    raise SystemExit(f"limit_checks_only disagrees with _core on {name}")
            cold.append(("C checks, no rows", checks))
            lean = {name: limit_out.arrays[name].copy() for name in LEAN_FIELDS}
            lean_fn = lean_call(dll, lean)
            lean_fn()
            check_lean(lean, check)
            cold.append(("C lean parse", lean_fn))
    if runner.args.interleaved and runner.args.per_class and _core is not None:
        per_class(build_limit(), baseline_core.load(), runner.args.interleaved)
        return
    if runner.args.interleaved:
        import interleave

        got = interleave.run(dict(cold), runner.args.interleaved, N_FRAMES)
        print(interleave.table(got, {"C same work": "C same work", "C lean": "C lean parse"}, "frame"))
        return
    results = {name: runner.bench_time_func(name, _time(call), inner_loops=N_FRAMES) for name, call in cold}
    if _core is not None:
        for name, threaded in (("_core x2 serial", False), ("_core x2 threads", True)):
            results[name] = runner.bench_time_func(name, _pair(threaded), inner_loops=2 * N_FRAMES)
    hot: list[tuple[str, Callable[[], Any]]] = []
    ref_out = reference.Batch(HOT_FRAMES)
    hot.append((f"reference ({HOT_FRAMES} hot)", lambda: reference.classify(*HOT, out=ref_out)))
    dpkt_row = dpkt_call(quiet=bool(runner.args.worker))
    if dpkt_row is not None:
        hot.append((f"dpkt ({HOT_FRAMES} hot)", dpkt_row))
    for name, call in hot:
        results[name] = runner.bench_time_func(name, _time(call), inner_loops=HOT_FRAMES)
    if runner.args.worker or any(bench is None or not bench.get_values() for bench in results.values()):
        return  # a worker process: no table
    rates = {name: 1.0 / bench.median() for name, bench in results.items() if bench is not None}
    same, lean_rate = rates.get("C same work"), rates.get("C lean parse")
    print()
    print(f"{'row':<24}{'frames/s':>16}{'ns/frame':>11}{'vs C same work':>16}{'vs C lean':>11}")
    for name, rate in rates.items():
        r1 = f"{rate / same:>15.2f}x" if same else f"{'-':>16}"
        r2 = f"{rate / lean_rate:>10.2f}x" if lean_rate else f"{'-':>11}"
        print(f"{name:<24}{rate:>16,.0f}{1e9 / rate:>11.1f}{r1}{r2}")


if __name__ == "__main__":
    main()

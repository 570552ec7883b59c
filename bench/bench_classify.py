"""pyperf benchmark of classify: frames per second on one realistic mixed arena (STYLE.md rule 36).

Rows, all on the identical corpus in the same run, timed per frame (one call classifies the whole arena):

* ``_core.classify``       the compiled kernel, reusing one ``out=`` Batch (no allocation per call);
* ``C -O3 limit``          bench/limit_classify.c, a plain C port of the same checks writing the same
                           arrays, compiled now with ``cc -O3 -march=native`` and called once per batch
                           through ctypes (its verdict and drop-reason arrays are checked against
                           ``_core`` once before timing);
* ``reference``            fmipfast.reference.wire.classify (pure Python);
* ``_core x2 threads``     STYLE.md rule 38, the GIL check: two threads each classifying the arena into
                           their own Batch, against ``_core x2 serial`` (the same calls one after the
                           other); with the loop under ``nogil`` the threaded row approaches twice the
                           serial rate on two idle cores;
* ``dpkt``                 dpkt.ethernet.Ethernet -> IP6 -> ICMP6 parse and a pseudo-header checksum
                           verify with dpkt's helpers, one frame at a time (parsing only, no validation).

    PYTHONPATH=. python bench/bench_classify.py --fast -o /tmp/classify.json

The corpus (built deterministically here): 4096 Ethernet frames of 64-200 octets at unaligned offsets:
UDP data, some TCP and echo, ND (NS/NA with link-layer options, RS, RA with SLLA + prefix), fmipfast
messages (HRD, HRA with a small LKB PDU, Attach, Forwarding Disable) and ~1% ICMPv6 with a corrupt checksum
(half end-to-end echo, forwarded and flagged; half ND/fmipfast, dropped).
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

N_FRAMES = 4096
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


FRAMES = corpus()
ARENA, OFFSETS, LENGTHS = arena_of(FRAMES)


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
    return dll


class LimitOut:
    """numpy arrays shaped like a Batch, and the pointer table limit_classify() writes through."""

    def __init__(self, n: int) -> None:
        self.arrays = {name: np.zeros((n, *row), dtype=dtype) for name, dtype, row in FIELDS}
        self.drop_counts = np.zeros(len(DropReason), np.uint64)
        ptrs = [self.arrays[name].ctypes.data for name, _, _ in FIELDS] + [self.drop_counts.ctypes.data]
        self.table = (ctypes.c_void_p * len(ptrs))(*ptrs)


def limit_call(dll: ctypes.CDLL, out: LimitOut) -> Callable[[], None]:
    code_map = np.zeros(256, np.uint8)
    for index, key in enumerate(MESSAGE_KEYS):
        code_map[DEFAULT_CODEPOINTS.code(key)] = index + 1
    fn = dll.limit_classify
    args = (ARENA.ctypes.data, OFFSETS.ctypes.data, LENGTHS.ctypes.data, len(OFFSETS), DEFAULT_CODEPOINTS.type,
            code_map.ctypes.data, out.table, len(DropReason))
    keep = (code_map,)

    def call() -> None:
        fn(*args)
        _ = keep

    return call


# ---- dpkt --------------------------------------------------------------------------------------------

def dpkt_call() -> Callable[[], None] | None:
    try:
        import dpkt
    except ImportError:
        print("bench_classify: dpkt is not installed (pip install dpkt); its row is left out", file=sys.stderr)
        return None
    raw = ARENA.tobytes()
    spans = list(zip(OFFSETS.tolist(), LENGTHS.tolist()))
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
    runner = pyperf.Runner()
    runner.metadata["description"] = f"fmipfast classify: {N_FRAMES} mixed frames per call, time per frame"
    rows: list[tuple[str, Callable[[], Any]]] = []
    if _core is not None:
        out = _core.Batch(N_FRAMES)
        rows.append(("_core.classify", lambda: _core.classify(ARENA, OFFSETS, LENGTHS, out=out)))
        dll = build_limit()
        if dll is not None:
            limit_out = LimitOut(N_FRAMES)
            call = limit_call(dll, limit_out)
            call()
            check = _core.classify(ARENA, OFFSETS, LENGTHS)
            for name, _, _ in FIELDS:
                if not np.array_equal(limit_out.arrays[name], getattr(check, name)):
                    raise SystemExit(f"limit_classify.c disagrees with _core on {name}: not a faithful port")
            rows.append(("C -O3 limit", call))
    ref_out = reference.Batch(N_FRAMES)
    rows.append(("reference", lambda: reference.classify(ARENA, OFFSETS, LENGTHS, out=ref_out)))
    dpkt_row = dpkt_call()
    if dpkt_row is not None:
        rows.append(("dpkt (parse + cksum)", dpkt_row))
    results = {name: runner.bench_time_func(name, _time(call), inner_loops=N_FRAMES) for name, call in rows}
    if _core is not None:
        for name, threaded in (("_core x2 serial", False), ("_core x2 threads", True)):
            results[name] = runner.bench_time_func(name, _pair(threaded), inner_loops=2 * N_FRAMES)
    if runner.args.worker or any(bench is None or not bench.get_values() for bench in results.values()):
        return  # a worker process: no table
    rates = {name: 1.0 / bench.median() for name, bench in results.items() if bench is not None}
    limit = rates.get("C -O3 limit")
    print()
    print(f"{'row':<24}{'frames/s':>16}{'ns/frame':>11}{'vs C limit':>12}")
    for name, rate in rates.items():
        ratio = f"{rate / limit:>11.2f}x" if limit else f"{'-':>12}"
        print(f"{name:<24}{rate:>16,.0f}{1e9 / rate:>11.1f}{ratio}")


if __name__ == "__main__":
    main()

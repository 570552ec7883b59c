"""pyperf benchmark of the per-packet wire kernels: fmipfast.reference vs fmipfast._core (docs/conventions.md §11).

Every row is timed on both implementations with identical inputs, per packet (one call = one packet), and
the medians and core/reference ratios are printed at the end.

    python bench/bench_wire.py -o bench/wire.json          # full run (make bench)
    python bench/bench_wire.py --fast -o /tmp/wire.json    # quick look
    python -m pyperf compare_to old.json new.json           # compare two runs

With an in-place build instead of `pip install -e .`, put the checkout on the path: PYTHONPATH=. (pyperf
hands PYTHONPATH on to its worker processes).

Rows: the checksum and derivation kernels, then the codec (encode/decode of one message per call, with the
checksum computed or verified by each implementation).
"""

from __future__ import annotations

import ipaddress
import random
import time
from collections.abc import Callable
from typing import Any

import pyperf

from fmipfast import backend, reference
from fmipfast.constants import AddressKind
from fmipfast.messages import (
    AddressOption,
    Attach,
    HandoverControl,
    HandoverRedirect,
    IcmpHandover,
    Identifier,
    LinkLayerAddress,
    LkbMessage,
    MessageAuthCode,
    Principal,
    decode,
    encode,
)

_core: Any
try:
    from fmipfast import _core
except ImportError:  # benchmark the reference alone rather than not at all
    _core = None

SRC = ipaddress.IPv6Address("2001:db8:1::21b:63ff:fe84:45e6").packed
DST = ipaddress.IPv6Address("2001:db8:1::1").packed
NAR = ipaddress.IPv6Address("2001:db8:2::1").packed
NAR_EUI = ipaddress.IPv6Address("2001:db8:2::21b:63ff:fe84:45e6").packed


def _message(size: int) -> bytes:
    """An ICMPv6 message of ``size`` octets (type 200 = docs/design.md §2 default) with a valid checksum."""
    body = bytearray(random.Random(size).randbytes(size))
    body[0:4] = b"\xc8\x01\x00\x00"
    reference.icmp6_checksum_fill(SRC, DST, body)
    return bytes(body)


MSG64, MSG200, MSG1500 = _message(64), _message(200), _message(1500)

# A row: (name, call) where call(impl) returns (function, args) for one packet.
Row = tuple[str, Callable[[Any], tuple[Callable[..., object], tuple]]]

KERNEL_ROWS: list[Row] = [
    ("icmp6_checksum 64B", lambda m: (m.icmp6_checksum, (SRC, DST, MSG64))),
    ("icmp6_checksum 200B", lambda m: (m.icmp6_checksum, (SRC, DST, MSG200))),
    ("icmp6_checksum 1500B", lambda m: (m.icmp6_checksum, (SRC, DST, MSG1500))),
    ("icmp6_checksum_ok 200B", lambda m: (m.icmp6_checksum_ok, (SRC, DST, MSG200))),
    ("ncoa_from_prefix /64", lambda m: (m.ncoa_from_prefix, (NAR, 64, SRC))),
    ("mac48_from_address /64", lambda m: (m.mac48_from_address, (NAR_EUI, 64))),
]

# ---- Codec rows: encode/decode of one message per call.  The codec (fmipfast.messages) is Python; what
# differs between the rows is the checksum kernel it calls through fmipfast.backend, which _use() swaps.
HRD = HandoverRedirect(64, "2001:db8:2::1", bytes.fromhex("02005efffe100002"), "2001:db8:2::aa",
                       (Principal("host/nar", "B.EXAMPLE"), Identifier(7)))
HI = IcmpHandover(64, "2001:db8:2::aa", bytes(8), (LkbMessage(bytes(229)), HandoverControl(True, 64, 3000),
                                                   AddressOption(AddressKind.PCOA, "2001:db8:1::aa"), Identifier(7)))
ATTACH = Attach((LinkLayerAddress(bytes(8)), Identifier(7), MessageAuthCode(bytes(16))))
LL_SRC, LL_DST = "fe80::1", "fe80::2"
HRD_WIRE = encode(HRD, LL_SRC, LL_DST)
HI_WIRE = encode(HI, LL_SRC, LL_DST)
ATTACH_WIRE = encode(ATTACH, LL_SRC, LL_DST)


def _use(impl: Any, fn: Callable[..., object]) -> Callable[..., object]:
    """Point fmipfast.backend's checksum kernels at ``impl`` (done once, before the timed loop)."""
    for name in ("icmp6_checksum", "icmp6_checksum_ok", "icmp6_checksum_fill"):
        setattr(backend, name, getattr(impl, name))
    return fn


CODEC_ROWS: list[Row] = [
    ("encode HRD 70B", lambda m: (_use(m, encode), (HRD, LL_SRC, LL_DST))),
    ("decode+verify HRD 70B", lambda m: (_use(m, decode), (HRD_WIRE, LL_SRC, LL_DST))),
    ("encode HI 288B", lambda m: (_use(m, encode), (HI, LL_SRC, LL_DST))),
    ("decode+verify HI 288B", lambda m: (_use(m, decode), (HI_WIRE, LL_SRC, LL_DST))),
    ("decode+verify Attach", lambda m: (_use(m, decode), (ATTACH_WIRE, LL_SRC, LL_DST))),
]

ROWS: list[Row] = KERNEL_ROWS + CODEC_ROWS

IMPLEMENTATIONS = [("py", reference)] + ([("c", _core)] if _core is not None else [])


def _time_func(fn: Callable, args: tuple) -> Callable[[int], float]:
    def time_func(loops: int) -> float:
        call = fn
        start = time.perf_counter()
        for _ in range(loops):
            call(*args)
        return time.perf_counter() - start

    return time_func


def main() -> None:
    runner = pyperf.Runner()
    runner.metadata["description"] = "fmipfast per-packet wire kernels, reference vs _core"
    results: dict[tuple[str, str], pyperf.Benchmark | None] = {}
    for name, make in ROWS:
        for impl_id, impl in IMPLEMENTATIONS:
            fn, args = make(impl)
            results[name, impl_id] = runner.bench_time_func(f"{name} [{impl_id}]", _time_func(fn, args))
    if runner.args.worker or any(bench is None or not bench.get_values() for bench in results.values()):
        return  # a worker process (pyperf re-runs this script per measurement): no table
    medians = {key: bench.median() for key, bench in results.items() if bench is not None}
    print()
    print(f"{'kernel':<26}{'reference':>14}{'_core':>14}{'speed-up':>11}")
    for name, _ in ROWS:
        py = medians[name, "py"]
        line = f"{name:<26}{py * 1e9:>11.0f} ns"
        if (name, "c") in medians:
            c = medians[name, "c"]
            line += f"{c * 1e9:>11.0f} ns{py / c:>10.1f}x"
        print(line)


if __name__ == "__main__":
    main()

"""Engine CPU per frame, per traffic class, on null ports, against the kernels that class runs (same run).

Each class is a block of 256 frames of one kind handed to ``Engine.process`` (what ``poll`` does with a
received block), on an engine whose ports send nowhere (``send`` returns at once), so the figure is the data
path's CPU without the kernel's TX.  Before each pass the block's octets are restored from a pristine copy
(forwarding rewrites them in place); the kernel rows do the same copy, so the ratio compares like with like.

    forward   UDP from the upstream link to a host on the access link (static neighbor)
    csum      the same, marked TP_STATUS_CSUMNOTREADY: the UDP checksum is completed on the way
    tunnel    PAR mid-handover: the destination is a PCoA tunnelled to the NAR (RFC 2473)
    decap     NAR mid-handover: IPv6-in-IPv6 from the PAR, the inner packet forwarded to the access link
    buffer    NAR before the Attach: the destination is a proxied NCoA, the frames are buffered (the buffer
              is dropped after each pass, inside the timing, so it never fills)

``<class>-kernels`` rows run only the compiled kernels the class needs, on the engine's own tables:
classify + the forwarding node in the one call the engine makes (``Node.run_block``; the node encapsulates
toward the NAR, pushes into the buffer, and decapsulates in place and forwards the inner packets itself; + the
buffer's drop).  Ratio = engine / kernels.

    python bench/bench_engine.py -o engine.json        (pyperf options apply: --fast, --rigorous, ...)
    python bench/bench_engine.py --classes forward,tunnel
    python bench/bench_engine.py --interleaved 400     (the rows take turns, one block each per round:
                                                        ratios that hold on a shared machine; interleave.py)
"""

from __future__ import annotations

import dataclasses
import struct
import sys
from pathlib import Path

import numpy as np
import pyperf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fmipfast import backend, config, frames  # noqa: E402
from fmipfast._linux import TP_STATUS_CSUMNOTREADY  # noqa: E402
from fmipfast.constants import IpProto  # noqa: E402
from fmipfast.engine import Engine  # noqa: E402
from fmipfast.ports import FrameBatch, Port, pack_frames  # noqa: E402

#: frames per block: the engine's own default ``[router] batch_size`` unless ``--block`` says otherwise
BLOCK: int = next(f.default for f in dataclasses.fields(config.RouterConfig) if f.name == "batch_size")
R_ACC, R_UP = bytes.fromhex("02005e000101"), bytes.fromhex("02005e000102")
H1_MAC, CORE_MAC = bytes.fromhex("02005e00000a"), bytes.fromhex("02005e0000ff")
H1, CN, CORE, NAR = "2001:db8:1::a", "2001:db8:ff::10", "2001:db8:100::ff", "2001:db8:2::1"
NCOA = "2001:db8:1::77"
ROUTER_UP = "2001:db8:100::1"

TOML = f"""
[router]
name = "bench"
batch_size = {{block}}
buffer_per_mn_packets = {{block}}  # one block to one MN fits its buffer (no drop-oldest in the figures)
[[router.interfaces]]
name = "acc0"
addresses = ["2001:db8:1::1/64"]
[[router.interfaces]]
name = "up0"
role = "upstream"
addresses = ["{ROUTER_UP}/64"]
[[router.routes]]
prefix = "2001:db8:ff::/48"
via = "{CORE}"
interface = "up0"
[[router.routes]]
prefix = "2001:db8:2::/48"
via = "{CORE}"
interface = "up0"
[[router.neighbors]]
address = "{CORE}"
mac = "02:00:5e:00:00:ff"
interface = "up0"
[[router.neighbors]]
address = "{H1}"
mac = "02:00:5e:00:00:0a"
interface = "acc0"
"""


class NullPort(Port):
    """A port that sends nowhere: the engine's CPU without the kernel's."""

    def __init__(self, name: str, mac: bytes) -> None:
        self.name, self.mac = name, mac

    def receive(self):
        return iter(())

    def send(self, arena, offsets, lengths) -> int:
        return int(offsets.shape[0])


def udp_packet(src: str, dst: str, size: int = 100) -> bytes:
    payload = bytes(range(256))[:size]
    body = struct.pack("!HHHH", 1000, 2000, 8 + len(payload), 0) + payload
    return frames.build_ipv6(src, dst, IpProto.UDP, body, hop_limit=64)


def setup(kind: str):
    """(engine, ingress interface, FrameBatch, pristine arena, after-pass hook)."""
    ports = {"acc0": NullPort("acc0", R_ACC), "up0": NullPort("up0", R_UP)}
    engine = Engine(config.loads(TOML.replace("{block}", str(BLOCK))).router, ports, peers=(NAR,), seed=bytes(16))
    up = engine.interfaces[1]
    after = None
    if kind in ("forward", "csum"):
        pkt = udp_packet(CN, H1)
    elif kind == "tunnel":
        engine.tunnel_add(H1, NAR)
        pkt = udp_packet(CN, H1)
    elif kind == "decap":
        pkt = frames.build_ipv6(NAR, ROUTER_UP, IpProto.IPV6, udp_packet(CN, H1), hop_limit=64)
    elif kind == "buffer":
        idx = engine.proxy_add(NCOA, None, 60_000)
        key = engine._proxy_key[idx]
        pkt = udp_packet(CN, NCOA)

        def after() -> None:
            engine.buffer.drop(key)
    else:
        raise ValueError(kind)
    arena, offsets, lengths = pack_frames([frames.build_ethernet(R_UP, CORE_MAC, pkt)] * BLOCK)
    status = np.full(BLOCK, TP_STATUS_CSUMNOTREADY if kind == "csum" else 0, dtype=np.uint32)
    fb = FrameBatch(ports["up0"], arena, offsets, lengths, status, np.zeros(BLOCK, dtype=np.int64))
    return engine, up, fb, arena.copy(), after


def engine_row(kind: str):
    engine, up, fb, pristine, after = setup(kind)

    def run(loops: int) -> float:
        t0 = pyperf.perf_counter()
        for _ in range(loops):
            np.copyto(fb.arena, pristine)
            engine.process(up, fb)
            if after is not None:
                after()
        return pyperf.perf_counter() - t0

    run(3)
    assert engine.conservation()["holds"]
    return run


def kernel_row(kind: str):
    """The compiled kernels the class needs, on the same tables, without the engine around them."""
    engine, up, fb, pristine, after = setup(kind)
    node, batch, impl = engine._node, backend.impl.Batch(BLOCK), backend.impl
    inner_batch = impl.Batch(BLOCK)
    arena, offsets, lengths, status = fb.arena, fb.offsets, fb.lengths, fb.status
    drops = np.zeros(len(engine.drops), dtype=np.uint64)  # the node's form of a drop row
    counts = np.zeros(len(engine.counters), dtype=np.uint64)  # and of the engine's counters
    key = engine._proxy_key[next(iter(engine._proxy_key))] if kind == "buffer" else 0
    none = np.zeros(0, np.uint32)
    clock = {"now_ns": 0} if hasattr(node, "set_buffer") else {}  # a node that buffers needs the clock

    def one() -> None:
        np.copyto(arena, pristine)
        node.run_block(batch, arena, offsets, lengths, status, 1, drops=drops, finish_inner=True, counts=counts,
                       **clock)
        if kind == "decap" and node.decap_count:  # inner packets left to Python: their classify + node
            m = node.decap_count
            i_off, i_len = node.decap_offsets[:m].copy(), node.decap_lengths[:m].copy()
            ib = impl.classify(arena, i_off, i_len, out=inner_batch)
            node.run(ib, arena, i_off, i_len, none, 1, from_wire=False, inner=True, drops=drops, **clock)
        elif kind == "buffer":
            engine.buffer.drop(key)

    def run(loops: int) -> float:
        t0 = pyperf.perf_counter()
        for _ in range(loops):
            one()
        return pyperf.perf_counter() - t0

    return run


CLASSES = ("forward", "csum", "tunnel", "decap", "buffer")


def _worker_args(cmd: list[str], args) -> None:
    """pyperf's worker processes get this run's own options (else they would run the defaults)."""
    cmd += ["--classes", args.classes, "--block", str(args.block)]
    if args.no_kernels:
        cmd.append("--no-kernels")


def main() -> None:
    global BLOCK
    runner = pyperf.Runner(add_cmdline_args=_worker_args)
    runner.argparser.add_argument("--classes", default=",".join(CLASSES))
    runner.argparser.add_argument("--no-kernels", action="store_true", help="engine rows only")
    runner.argparser.add_argument("--interleaved", type=int, default=0, metavar="ROUNDS",
                                  help="no pyperf: the rows take turns, one block each per round")
    runner.argparser.add_argument("--block", type=int, default=BLOCK,
                                  help=f"frames per block and the engine's batch_size (default {BLOCK}, the "
                                       "engine's default)")
    args = runner.parse_args()
    BLOCK = args.block
    compiled = backend.IMPLEMENTATION == "core"
    if args.interleaved:
        import interleave

        rows, refs = {}, {}
        for kind in args.classes.split(","):
            rows[f"engine-{kind}"] = (lambda r: lambda: r(1))(engine_row(kind))
            if compiled and not args.no_kernels:
                rows[f"{kind}-kernels"] = (lambda r: lambda: r(1))(kernel_row(kind))
        got = interleave.run(rows, args.interleaved, BLOCK)
        print(interleave.table(got, refs, "frame"))
        if compiled and not args.no_kernels:
            for kind in args.classes.split(","):
                (em, el), (km, kl) = got[f"engine-{kind}"], got[f"{kind}-kernels"]
                print(f"{kind:<10} engine / kernels: {em / km:.2f}x (medians), {el / kl:.2f}x (minima)")
        return
    for kind in args.classes.split(","):
        runner.bench_time_func(f"engine-{kind}", engine_row(kind), inner_loops=BLOCK)
        if compiled and not args.no_kernels and hasattr(backend.impl, "Node"):  # an engine with the node
            runner.bench_time_func(f"{kind}-kernels", kernel_row(kind), inner_loops=BLOCK)


if __name__ == "__main__":
    main()

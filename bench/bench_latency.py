"""One-way forwarding latency at low load: how long a lone frame takes from the generator's interface to the
sink's, through Linux's own forwarding, the plain C TPACKET_V3 forwarder and the engine, with the RX rings'
block retire timeout as the variable.

Topology: bench/bench_forward.py's (``gen [ge] -- [ra] rt [rb] -- [se] sink``, its namespaces, its worker
and its C forwarder).  A probe sender in ``gen`` writes 162-octet IPv6/UDP frames to ``ge`` on an AF_PACKET
socket, one every ``1 / --rate`` s, each carrying a sequence number; a probe receiver on ``ge`` (the
outgoing copies) and one on ``se`` read them back on AF_PACKET sockets with ``SO_TIMESTAMPNS``: the kernel's
timestamp of the frame leaving ``ge`` and of it reaching ``se``, on one clock.  The difference is the time
the frame spent in ``rt`` (and on the two veth hops, which deliver in the sender's softirq): nothing of the
probes' own scheduling is in it.

At a low rate a TPACKET_V3 ring hands a block to its reader when the block's retire timeout expires, not
when the frame arrives; so the latency of a forwarder on such a ring is that timeout's share (uniform over
0..timeout for independent arrivals) plus its own wake-up and work, per hop.  Rows (``--rows``):

* ``kernel``                  rt's IPv6 forwarding (no ring, no process): the physical limit here.
* ``c-forward``, ``c-forward-tN``   bench/limit_forward.c with the default timeout, and with N ms.
* ``engine``, ``engine-tN``   one engine worker with ``[router.ring]``'s default timeout, and with N ms.
* ``engine-blocks[-tN]``      the same, its rings read block by block in Python (``Engine.ring_interfaces``
                              emptied): the way before the node read them itself.
* ``engine-frames``           the engine with per-frame RX rings (``[router.ring] mode = "frames"``,
                              TPACKET_V2): no retire timer, each frame handed over and its reader woken at once.

The probe frames leave at random (Poisson) instants, so they meet the retire timer at every phase.

Rows take turns, one trial of each per repetition, so foreign load hits them alike.  Reported per row: the
median, p90, p99 and maximum of every frame's latency pooled over the repetitions, and the frames lost.

    sudo PYTHONPATH=. python bench/bench_latency.py                    # ~1 minute
    sudo PYTHONPATH=. python bench/bench_latency.py --rows kernel,engine,engine-t1 --reps 5 --rate 500

Not pyperf, for bench_forward.py's reason: what is measured runs in other processes, across real interfaces.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import bench_forward as bf  # noqa: E402  (the topology, the worker, the C programs)

MAGIC = b"fmipfast-latency"
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
UDP_SPORT, UDP_DPORT = 40001, 40002
PAYLOAD = 100  # 14 + 40 + 8 + 100 = 162 octets, bench_forward.py's frame


# ---------------------------------------------------------------------------------------------- probes
def _frame(dst_mac: bytes, src_mac: bytes, seq: int) -> bytes:
    from fmipfast import backend
    from fmipfast.frames import build_ethernet, build_ipv6

    payload = (MAGIC + struct.pack("!Q", seq)).ljust(PAYLOAD, b"\0")
    src, dst = socket.inet_pton(socket.AF_INET6, bf.GEN_IP), socket.inet_pton(socket.AF_INET6, bf.SINK_IP)
    udp = bytearray(struct.pack("!HHHH", UDP_SPORT, UDP_DPORT, 8 + len(payload), 0) + payload)
    struct.pack_into("!H", udp, 6, backend.upper_layer_checksum(src, dst, 17, bytes(udp), 6))
    return build_ethernet(dst_mac, src_mac, build_ipv6(bf.GEN_IP, bf.SINK_IP, 17, bytes(udp)))


def probe_send(argv: list[str]) -> int:
    """``--probe-send IFACE DST_MAC SRC_MAC COUNT RATE FIRST_SEQ``: the frames at RATE a second on average,
    the gaps drawn at random (exponential, seeded by FIRST_SEQ): a fixed period would meet the rings' retire
    timer at one phase for a whole trial, and the trial would measure that phase instead of the timer's
    spread."""
    ifname, dst, src, count, rate, first = argv
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((ifname, 0))
    frames = [_frame(bytes.fromhex(dst.replace(":", "")), bytes.fromhex(src.replace(":", "")), int(first) + k)
              for k in range(int(count))]
    rng = random.Random(int(first))
    mean = 1e9 / float(rate)
    due = time.monotonic_ns()
    for f in frames:
        due += int(rng.expovariate(1.0) * mean)
        while (now := time.monotonic_ns()) < due:
            time.sleep(min((due - now) / 1e9, 0.001))
        sock.send(f)
    print(json.dumps({"sent": len(frames)}), flush=True)
    return 0


def probe_recv(argv: list[str]) -> int:
    """``--probe-recv IFACE OUTGOING SECONDS``: the kernel timestamp of every probe frame seen on IFACE
    (OUTGOING 1: only the frames this host sent on it), as JSON ``{seq: ns}``; prints READY once bound."""
    ifname, outgoing, seconds = argv[0], argv[1] == "1", float(argv[2])
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.bind((ifname, 0))
    sock.setblocking(False)
    print("READY", flush=True)
    seen: dict[int, int] = {}
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    end = time.monotonic() + seconds
    where = 14 + 40 + 8
    while time.monotonic() < end:
        if not poller.poll(50):
            continue
        while True:
            try:
                data, anc, _flags, addr = sock.recvmsg(2048, socket.CMSG_SPACE(16))
            except BlockingIOError:
                break
            if outgoing != (addr[2] == PACKET_OUTGOING) or data[where:where + len(MAGIC)] != MAGIC:
                continue
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                    sec, nsec = struct.unpack("=qq", value[:16])
                    seen[struct.unpack_from("!Q", data, where + len(MAGIC))[0]] = sec * 1_000_000_000 + nsec
    print(json.dumps(seen), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------- the bench
def rows_of(spec: str) -> dict[str, bf.Fwd | None]:
    """``kernel``, ``engine[-tN]``, ``c-forward[-tN]`` -> the forwarder (None: the kernel)."""
    out: dict[str, bf.Fwd | None] = {}
    for key in (k for k in spec.split(",") if k):
        if key == "kernel":
            out[key] = None
            continue
        base, t = key, ""
        for name in ("engine-blocks", "engine-frames", "engine", "c-forward"):
            if key.startswith(name + "-t"):
                base, t = name, key[len(name) + 2:]
                break
        if (base not in ("engine", "engine-blocks", "engine-frames", "c-forward")
                or (t and not (t.isdigit() and 1 <= int(t) <= 10_000))):
            sys.exit(f"bench_latency: unknown row {key!r} (kernel, engine[-tN], engine-blocks[-tN], engine-frames, "
                     f"c-forward[-tN]; N >= 1 ms)")
        fwd = bf.FORWARDERS[base]
        out[key] = replace(fwd, key=key, label=f"{fwd.label}, retire timeout {t} ms" if t else fwd.label,
                           timeout_ms=int(t) if t else 0)
    return out


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def trial(b: bf.Bench, count: int, rate: float, first: int) -> tuple[list[float], int]:
    """One trial: ``count`` probe frames at ``rate``; the latencies (ms) of those that arrived, and the lost."""
    seconds = count / rate + 1.0
    me = [sys.executable, str(Path(__file__).resolve())]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    at_ge = b.popen(b.gen, [*me, "--probe-recv", "ge", "1", f"{seconds:.2f}"], env=env)
    at_se = b.popen(b.sink, [*me, "--probe-recv", "se", "0", f"{seconds:.2f}"], env=env)
    for p in (at_ge, at_se):
        line = p.stdout.readline().strip()
        if line != "READY":
            raise RuntimeError(f"probe receiver: {line!r} {b.reap(p, 5)[1]}")
    sender = b.popen(b.gen, [*me, "--probe-send", "ge", b.ra_mac, b.ge_mac, str(count), str(rate), str(first)],
                     env=env)
    out, err = b.reap(sender, seconds + 30)
    if sender.returncode:
        raise RuntimeError(f"probe sender failed: {err.strip()}")
    sent = json.loads(b.reap(at_ge, seconds + 30)[0].strip().splitlines()[-1])
    got = json.loads(b.reap(at_se, seconds + 30)[0].strip().splitlines()[-1])
    lat = [(got[k] - t) / 1e6 for k, t in sent.items() if k in got]
    return lat, count - len(lat)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--probe-send":
        return probe_send(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "--probe-recv":
        return probe_recv(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", default="kernel,c-forward-t10,c-forward,c-forward-t1,engine-t10,engine,engine-t1",
                    help="rows, taking turns in this order (kernel, engine[-tN], c-forward[-tN])")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per row (default 3)")
    ap.add_argument("--count", type=int, default=400, help="probe frames per trial (default 400)")
    ap.add_argument("--rate", type=float, default=200.0, help="probe frames per second (default 200)")
    ap.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin processes to CPUs")
    ap.add_argument("-o", "--output", help="write the results as JSON here")
    args = ap.parse_args()
    # what bf.Bench and its workers read from the arguments
    args.batch_size, args.split, args.sink = 0, "rusage", "ifstats"
    if args.count < 1 or not 0 < args.rate <= 100_000 or args.reps < 1:
        sys.exit("bench_latency: --count >= 1, 0 < --rate <= 100000, --reps >= 1")
    rows = rows_of(args.rows)
    if os.geteuid() != 0:
        sys.exit("bench_latency: needs root (network namespaces, AF_PACKET)")
    def on_term(signum: int, frame: Any) -> None:  # SIGTERM / SIGHUP: clean up like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    load_start = os.getloadavg()
    lat: dict[str, list[float]] = {k: [] for k in rows}
    lost: dict[str, int] = {k: 0 for k in rows}
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fmipfast-bench-latency-") as tmp:
        exe = bf.build(Path(tmp))
        b = None
        try:
            b = bf.Bench(args, exe, Path(tmp))
            seq = 0
            for rep in range(args.reps):
                for key, fwd in rows.items():
                    if fwd is None:
                        b.kernel_setup()
                    else:
                        b.start_workers(fwd)
                    try:
                        got, miss = trial(b, args.count, args.rate, seq)
                    finally:
                        if fwd is None:
                            b.kernel_teardown()
                        else:
                            b.stop_workers()
                    seq += args.count
                    lat[key] += got
                    lost[key] += miss
                    print(f"  rep {rep + 1}/{args.reps} {key}: median {percentile(got, 0.5):.3f} ms, "
                          f"{miss} lost", file=sys.stderr, flush=True)
        finally:
            if b is not None:
                b.close()
    load_end = os.getloadavg()
    results = {k: {"row": (rows[k].label if rows[k] else "kernel forwarding (rt kernel)"), "frames": len(v),
                   "lost": lost[k], "median_ms": percentile(v, 0.5), "p90_ms": percentile(v, 0.9),
                   "p99_ms": percentile(v, 0.99), "max_ms": max(v) if v else float("nan")}
               for k, v in lat.items()}
    print(f"\nOne-way latency ge -> se through rt, {args.count} frames at {args.rate:g}/s per trial, {args.reps} "
          f"trials per row, pooled (load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end; "
          f"{time.monotonic() - t0:.0f} s)")
    print("| row | median | p90 | p99 | max | frames | lost |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results.values():
        print(f"| {r['row']} | {r['median_ms']:.3f} ms | {r['p90_ms']:.3f} ms | {r['p99_ms']:.3f} ms | "
              f"{r['max_ms']:.3f} ms | {r['frames']} | {r['lost']} |")
    if args.output:
        Path(args.output).write_text(json.dumps({"rows": results, "load_start": load_start, "load_end": load_end,
                                                 "count": args.count, "rate": args.rate, "reps": args.reps},
                                                indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Forwarding benchmark of the engine: frames per second one engine worker forwards across a veth pair,
against a plain C TPACKET_V3 reader on the same path (the limit), a plain C TPACKET_V3 forwarder with the
engine's rings (c-forward), and Linux kernel forwarding; plus the handover paths (PAR tunnelling, NAR
decapsulation) against plain forwarding, and what cuts the TX cost.

Topology (network namespaces via fmipfast.lab.namespaces.netns, all named ``fmipfast-bench-<pid>-*``, deleted in
a ``finally``, on Ctrl-C and SIGTERM too)::

    gen [ge] ---- veth ---- [ra] rt [rb] ---- veth ---- [se] sink
    2001:db8:1::a           2001:db8:1::1 / 2001:db8:2::1  2001:db8:2::b

Traffic: ``bench/fwd_gen.c`` in ``gen`` sends 162-octet IPv6/UDP frames (100-octet payload, valid
checksum, 256 flows by UDP source port) in sendmmsg(2) batches at a target rate or flat out; for the NAR
row the same packets inside an outer IPv6 header (202 octets, RFC 2473) from gen's address, a configured
peer, to ra's address.  Kernel IPv6 is off on every veth end except rt's in the kernel row, so the sink
kernel drops the frames on arrival.  Delivered frames are counted by ``se``'s interface counter (rx
packets, read with ``ip -s``), not by a packet ring: veth delivers in the softirq of the sending CPU, so a
ring at the sink would charge its tpacket_rcv to the forwarder's core (a third of it at flat out, measured
with perf); ``--sink ring`` counts with ``bench/limit_ring.c`` there instead.

Rows (``--rows``, default ``limit,engine,fanout,c-forward,kernel,tunnel,decap``), all measured in the same
run, ``--reps`` repetitions each, medians reported.  The flat-out rows are interleaved (one trial of each
per repetition, workers restarted each time), so a burst of foreign load on the shared machine hits every
row alike; the zero-drop searches (``--search``) follow.

* ``limit``       limit_ring.c on rt's ingress ``ra``: frames/s received at the generator's flat-out rate
                  (no forwarding).  The denominator of every ratio.
* ``engine``      one fmipfast Engine process in rt owning ``ra`` and ``rb`` (static neighbor for the sink,
                  so no ND): frames/s counted at the sink.  First flat out, then a short search over offered
                  rates for the highest one with zero kernel ring drops (``DropReason.KERNEL_RING_DROP``)
                  and no TX-ring-full drops; that rate is then measured ``--reps`` times (``zero-drop``).
* ``fanout``      two engine processes on the same interfaces, ``RingPort(..., fanout=(group, "hash"))``:
                  the same two measurements, and the scaling against one worker.  With 2 cores the second
                  worker shares CPU 0 with the generator, so these rows are bound by the generator's share
                  of CPU 0, not by the engine: they show that fanout works and how evenly it hashes.
* ``engine-frames``  the engine with per-frame RX rings (``[router.ring] mode = "frames"``, TPACKET_V2: the
                  kernel hands each frame over at once; the TX ring on a socket of its own).  The same
                  memory holds one frame a 2048-octet slot: 2 048 slots, ~1.3 ms at 1.5 M frames/s, where the
                  blocks hold ~14 000 of these frames; ``engine-frames-b128`` has 8 times the memory (16 384).
* ``c-forward``   ``bench/limit_forward.c``: the engine's socket and ring setup (TPACKET_V3, 16 x 256 KiB RX
                  blocks, 2 ms retire timeout, a 512-frame TX ring of 2048-octet frames in the same
                  mapping, PACKET_IGNORE_OUTGOING), per frame only the IPv6 ethertype and hop-limit checks,
                  the MAC rewrite and the hop-limit decrement into the TX ring, one send(2) per RX block, no
                  Python.  The floor under any forwarder on these rings: engine / c-forward is what the
                  engine's own work costs.
* ``kernel``      IPv6 forwarding by rt's kernel (addresses and the sink's neighbor entry static).  It has
                  no process: it runs in the generator's softirq on CPU 0.
* ``tunnel``      the engine as a PAR: ``tunnel_add(pcoa=sink, nar=2001:db8:2::c)`` (the NAR a static
                  neighbor on rb's link with the sink's MAC), so every frame is encapsulated (RFC 2473,
                  202 octets out) toward rb.
* ``decap``       the engine as a NAR: ``Engine(..., peers=[gen's address])``, fed IPv6-in-IPv6 to ra's
                  address; every frame is decapsulated and its inner packet forwarded to the sink.
* TX-cost variants (``--tx-variants``): the engine with PACKET_QDISC_BYPASS (``PacketRing(qdisc_bypass=
  True)``) or a TX ring of 128 / 4096 frames; c-forward with the same, with send(2) every 64 frames, and
  with no TX ring at all (sendmmsg(2) of the frames rewritten in place in the RX block).

Columns: offered (frames/s the generator handed to the kernel), delivered (frames/s at the sink; for the
limit row, received by the reader), ring drops (kernel RX-ring drops of the receiving rings, per repetition),
CPU busy 0/1 (per-CPU busy fraction from /proc/stat while the generator ran: the reader's or the worker's
CPU near 0 or 1 tells who was the bottleneck, and foreign load on a shared machine shows up here), worker
CPU-s/s, worker µs/frame as user + sys = total (getrusage of the worker processes per frame sent toward the
sink; sys is the kernel's TX path and, since veth delivers in the sender's softirq, the sink's receive
too), and delivered / limit.  The CPU per frame is the figure that foreign load barely moves.

Placement (``--no-pin`` turns it off): the machine has 2 cores.  The generator (and a ``--sink ring``
counter) run on CPU 0, the (first) worker or the limit reader on CPU 1, the second fanout worker on CPU 0.
veth delivers in the softirq of the sending CPU, so the kernel's half of every row (ring fill on ``ra``,
kernel forwarding) runs on the generator's CPU, and what the worker transmits is delivered to the sink on
the worker's CPU.

Why not pyperf: the measured code is a separate process fed by a C generator over real interfaces; pyperf's
calibrated in-process loops do not apply.  The script follows the same rules: every row and its baseline in
one run, medians over repetitions, ratios quoted, the load average printed.

    sudo PYTHONPATH=. python bench/bench_forward.py                 # ~8 minutes
    sudo PYTHONPATH=. python bench/bench_forward.py --quick         # ~3 minutes
    sudo PYTHONPATH=. python bench/bench_forward.py --quick --rows limit,engine,c-forward --tx-variants \
        --search ''                                                 # the TX-cost variants, flat out
    sudo PYTHONPATH=. python bench/bench_forward.py --profile [ROW]  # + cProfile of one engine worker, flat out

Needs root (namespaces, AF_PACKET) and a C compiler (``$CC``, default ``cc``); the C programs are compiled
with ``-O2`` into a temp dir at start.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GEN_IP, RA_IP, RB_IP, SINK_IP = "2001:db8:1::a", "2001:db8:1::1", "2001:db8:2::1", "2001:db8:2::b"
# The handover rows: the PAR tunnels everything for the sink to this NAR address, on rb's link (its neighbor
# entry is the sink's MAC, so the sink's interface counter counts the tunnel packets); the NAR rows get
# IPv6-in-IPv6 from the generator's address, configured as a peer, to ra's address.
NAR_IP = "2001:db8:2::c"
MODES = ("plain", "tunnel", "decap")
FLOWS = 256
FANOUT_GROUP = 0x4D10  # ra uses it, rb uses it + 1 (a fanout group belongs to one interface)

WORKER_TOML = """
[router]
name = "bench-rt"
{batch_size}
[[router.interfaces]]
name = "ra"
role = "upstream"
addresses = ["{ra_ip}/64"]
[[router.interfaces]]
name = "rb"
role = "upstream"
addresses = ["{rb_ip}/64"]
[[router.neighbors]]
address = "{sink_ip}"
mac = "{sink_mac}"
interface = "rb"
[[router.neighbors]]
address = "{nar_ip}"
mac = "{sink_mac}"
interface = "rb"
"""


# ---------------------------------------------------------------------------------------------- worker
def worker_main(argv: list[str]) -> int:
    """The engine process (run inside rt by ``ip netns exec``): serve ``ra``/``rb`` until told to quit.

    stdin protocol, one command per line: ``snap`` prints one JSON line of counters; ``quit`` exits (after
    printing the profile when ``--profile`` was given).  The loop is the one of tests/test_engine_netns.py:
    poll(2) on the ring sockets (and stdin), then ``Engine.poll()``.
    """
    ap = argparse.ArgumentParser(prog="bench_forward.py --worker")
    ap.add_argument("--sink-mac", required=True)
    ap.add_argument("--fanout", type=int, default=0)
    ap.add_argument("--cpu", type=int, default=-1)
    ap.add_argument("--profile", default="")
    ap.add_argument("--batch-size", type=int, default=0)
    ap.add_argument("--mode", choices=MODES, default="plain")
    ap.add_argument("--qdisc-bypass", action="store_true")
    ap.add_argument("--block-path", action="store_true")
    ap.add_argument("--tx-frames", type=int, default=0)
    ap.add_argument("--ring-timeout-ms", type=int, default=0)
    ap.add_argument("--ring-blocks", type=int, default=0)
    ap.add_argument("--rx-mode", choices=("blocks", "frames"), default="blocks")
    args = ap.parse_args(argv)
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})

    from fmipfast import config
    from fmipfast.constants import DropReason
    from fmipfast.engine import Engine
    from fmipfast.ports import RingPort

    batch = f"batch_size = {args.batch_size}" if args.batch_size else ""
    cfg = config.loads(WORKER_TOML.format(ra_ip=RA_IP, rb_ip=RB_IP, sink_ip=SINK_IP, sink_mac=args.sink_mac,
                                          nar_ip=NAR_IP, batch_size=batch)).router
    ring = cfg.ring  # the engine's default geometry: 16 x 256 KiB RX blocks, 2 ms retire timeout
    ports = {}
    for k, name in enumerate(("ra", "rb")):
        fanout = (args.fanout + k, "hash") if args.fanout else None
        geometry = dict(rx_block_size=ring.block_size, rx_block_nr=args.ring_blocks or ring.block_count,
                        rx_timeout_ms=args.ring_timeout_ms or ring.timeout_ms,
                        tx_frame_nr=args.tx_frames or ring.tx_frames, qdisc_bypass=args.qdisc_bypass,
                        rx_mode=args.rx_mode, rx_frame_size=ring.frame_size)
        ports[name] = RingPort(name, **geometry, fanout=fanout)
    engine = Engine(cfg, ports, peers=[GEN_IP] if args.mode == "decap" else [])
    if args.block_path:
        engine.ring_interfaces.clear()
    if args.mode == "tunnel":
        engine.tunnel_add(SINK_IP, NAR_IP)  # the PAR: every frame for the sink is encapsulated toward the NAR
    poller = select.poll()
    for p in ports.values():
        poller.register(p.fileno(), select.POLLIN | select.POLLERR)
    stdin_fd = sys.stdin.fileno()
    poller.register(stdin_fd, select.POLLIN | select.POLLHUP)
    prof = None
    if args.profile:
        import cProfile
        prof = cProfile.Profile()

    def snap() -> dict[str, Any]:
        stats = {name: p.statistics() for name, p in ports.items()}
        ru = resource.getrusage(resource.RUSAGE_SELF)  # microseconds, where os.times() counts clock ticks
        return {"received": engine.counters["received"],
                # frames sent toward the sink: forwarded (decapsulated ones included) or tunnelled
                "forwarded": engine.counters["forwarded"] + engine.counters["tunnelled"],
                "tunnelled": engine.counters["tunnelled"], "decapsulated": engine.counters["decapsulated"],
                "dropped": engine.counters["dropped"], "csum_completed": engine.counters["csum_completed"],
                "ring_drops": int(engine.drops[DropReason.KERNEL_RING_DROP]),
                "tx_ring_full": int(engine.drops[DropReason.TX_RING_FULL]),
                "drops": engine.drop_counts(),
                "ra_kernel_packets": stats["ra"]["kernel_packets"], "ra_kernel_drops": stats["ra"]["kernel_drops"],
                "ra_rx_blocks": stats["ra"]["rx_blocks"], "rb_tx_frames": stats["rb"]["tx_frames"],
                "cpu_s": ru.ru_utime + ru.ru_stime, "cpu_user_s": ru.ru_utime, "cpu_sys_s": ru.ru_stime}

    print("READY", flush=True)
    buf = b""
    running = True
    if prof is not None:
        prof.enable()
    while running:
        for fd, _ev in poller.poll(5):
            if fd != stdin_fd:
                continue
            chunk = os.read(stdin_fd, 4096)
            if not chunk:
                running = False
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                cmd = line.decode().strip()
                if cmd == "snap":
                    engine.poll()
                    sys.stdout.write(json.dumps(snap()) + "\n")
                    sys.stdout.flush()
                elif cmd == "quit":
                    running = False
        engine.poll()
    if prof is not None:
        prof.disable()
        import io
        import pstats
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
        sys.stderr.write(out.getvalue())
        sys.stderr.flush()
    for p in ports.values():
        p.close()
    return 0


# ---------------------------------------------------------------------------------------------- helpers
def build(tmp: Path) -> dict[str, Path]:
    """Compile the C programs with ``cc -O2`` into ``tmp`` (never into the repository)."""
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        sys.exit(f"bench_forward: no C compiler ({cc}); the C generator and limit reader are needed")
    out = {}
    for name in ("limit_ring", "limit_forward", "fwd_gen"):
        src = HERE / f"{name}.c"
        digest = hashlib.sha256(src.read_bytes()).hexdigest()[:12]
        exe = tmp / f"{name}-{digest}"
        subprocess.run([cc, "-O2", "-Wall", "-o", str(exe), str(src)], check=True)
        out[name] = exe
    return out


def mac_of(ns: Any, dev: str) -> str:
    info = json.loads(ns.ip("-j", "link", "show", dev).stdout)
    return info[0]["address"]


def cpu_busy() -> list[tuple[int, int]]:
    """(busy, total) jiffies per CPU from /proc/stat (busy = everything but idle and iowait)."""
    out = []
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                v = [int(x) for x in line.split()[1:]]
                out.append((sum(v) - v[3] - v[4], sum(v)))
    return out


def busy_between(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[float]:
    return [(bb - ab) / max(1, bt - at) for (ab, at), (bb, bt) in zip(a, b)]


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


@dataclass(frozen=True)
class Fwd:
    """One forwarding row: who forwards (the engine, or bench/limit_forward.c) and how."""

    key: str  # the name --rows and --search take
    label: str  # the row's name in the table
    kind: str = "engine"  # "engine" (bench_forward.py --worker) or "c" (limit_forward.c)
    workers: int = 1  # engine processes in one PACKET_FANOUT group
    mode: str = "plain"  # plain forwarding, "tunnel" (PAR) or "decap" (NAR): see MODES
    qdisc_bypass: bool = False  # PACKET_QDISC_BYPASS on the sockets
    tx_frames: int = 0  # TX ring frames; 0: the engine's default ([router.ring] tx_frames = 512)
    send_every: int = 0  # c only: send(2) every N queued frames; 0: once per RX block, as the engine
    sendmmsg: bool = False  # c only: no TX ring, sendmmsg(2) of the frames rewritten in place in the RX block
    timeout_ms: int = 0  # the RX rings' block retire timeout; 0: the engine's default ([router.ring] timeout_ms)
    block_count: int = 0  # engine only: RX blocks per ring; 0: the engine's default ([router.ring] block_count)
    block_path: bool = False  # engine only: its rings read block by block in Python (FrameBatch, process), not by
    #                           the node's run_ring
    rx_mode: str = "blocks"  # engine only: "frames", per-frame (TPACKET_V2) RX rings of the same size


FORWARDERS = {f.key: f for f in (
    Fwd("engine", "engine x1"),
    Fwd("fanout", "engine x2 fanout", workers=2),
    Fwd("c-forward", "c-forward (C TPACKET_V3 forwarder)", kind="c"),
    Fwd("tunnel", "engine x1, PAR: tunnel to NAR (RFC 2473)", mode="tunnel"),
    Fwd("decap", "engine x1, NAR: decapsulate", mode="decap"),
    # the TX-cost variants (--tx-variants)
    Fwd("engine-bypass", "engine x1, PACKET_QDISC_BYPASS", qdisc_bypass=True),
    Fwd("engine-tx128", "engine x1, TX ring 128 frames", tx_frames=128),
    Fwd("engine-tx4096", "engine x1, TX ring 4096 frames", tx_frames=4096),
    Fwd("c-bypass", "c-forward, PACKET_QDISC_BYPASS", kind="c", qdisc_bypass=True),
    Fwd("c-tx128", "c-forward, TX ring 128 frames", kind="c", tx_frames=128),
    Fwd("c-tx4096", "c-forward, TX ring 4096 frames", kind="c", tx_frames=4096),
    Fwd("c-send64", "c-forward, send(2) every 64 frames", kind="c", send_every=64),
    Fwd("c-mmsg", "c-forward, sendmmsg(2) from the RX block", kind="c", sendmmsg=True),
    # the RX ring's retire timeout (the default is [router.ring]'s) and depth (--ring-variants)
    Fwd("engine-t1", "engine x1, retire timeout 1 ms", timeout_ms=1),
    Fwd("engine-t10", "engine x1, retire timeout 10 ms", timeout_ms=10),
    Fwd("engine-b64", "engine x1, 64 RX blocks", block_count=64),
    Fwd("engine-blocks", "engine x1, rings read block by block in Python", block_path=True),
    Fwd("engine-frames", "engine x1, per-frame (TPACKET_V2) RX rings", rx_mode="frames"),
    Fwd("engine-frames-b128", "engine x1, per-frame RX rings, 128 x 256 KiB", rx_mode="frames", block_count=128),
    Fwd("c-t1", "c-forward, retire timeout 1 ms", kind="c", timeout_ms=1),
    Fwd("c-t10", "c-forward, retire timeout 10 ms", kind="c", timeout_ms=10),
)}
DEFAULT_ROWS = "limit,engine,fanout,c-forward,kernel,tunnel,decap"
TX_VARIANTS = "engine-bypass,engine-tx128,engine-tx4096,c-bypass,c-tx128,c-tx4096,c-send64,c-mmsg"
RING_VARIANTS = "engine-t1,engine-t10,engine-b64,c-t1,c-t10"
DEFAULT_SEARCH = "engine,fanout,c-forward,tunnel,decap"


@dataclass
class Trial:
    offered: float  # frames/s the generator queued
    delivered: float  # frames/s counted at the far end (sink, or ra for the limit row)
    ring_drops: int  # kernel ring drops on the receiving rings during the trial
    tx_ring_full: int = 0
    arrived: float = 0.0  # frames/s that reached rt's ra ring (kernel packet count, drops included)
    engine_cpu: float = 0.0  # user+sys seconds the worker(s) were charged per trial second (no softirq)
    user_us: float = float("nan")  # the worker(s)' user CPU per frame sent toward the sink, µs
    sys_us: float = float("nan")  # the same, system CPU (the kernel's TX path, and on veth the delivery)
    busy: list[float] = field(default_factory=list)  # per-CPU busy fraction while the generator ran
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return self.ring_drops == 0 and self.tx_ring_full == 0


class Bench:
    def __init__(self, args: argparse.Namespace, exe: dict[str, Path], tmp: Path) -> None:
        from fmipfast.lab.namespaces.netns import Netns

        self.args = args
        self.exe = exe
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []
        self.namespaces: list[Any] = []
        tag = f"bench-{os.getpid()}"
        for role in ("gen", "rt", "sink"):
            ns = Netns(f"{tag}-{role}")  # Netns prefixes "fmipfast-"
            self.namespaces.append(ns)
        self.gen, self.rt, self.sink = self.namespaces
        self.gen.veth("ge", "ra", peer_ns=self.rt)  # kernel IPv6 off on both ends
        self.rt.veth("rb", "se", peer_ns=self.sink)
        self.ra_mac, self.rb_mac = mac_of(self.rt, "ra"), mac_of(self.rt, "rb")
        self.ge_mac, self.se_mac = mac_of(self.gen, "ge"), mac_of(self.sink, "se")
        self.workers: list[subprocess.Popen] = []
        self.current = FORWARDERS["engine"]

    # -- processes
    def _taskset(self, cpu: int) -> list[str]:
        return ["taskset", "-c", str(cpu)] if self.args.pin and shutil.which("taskset") else []

    def popen(self, ns: Any, cmd: list[str], **kw: Any) -> subprocess.Popen:
        p = subprocess.Popen(["ip", "netns", "exec", ns.name, *cmd], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, **kw)
        self.procs.append(p)
        return p

    def reap(self, p: subprocess.Popen, timeout: float) -> tuple[str, str]:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        if p in self.procs:
            self.procs.remove(p)
        return out, err

    def counter(self, ns: Any, dev: str, seconds: float, cpu: int) -> subprocess.Popen:
        p = self.popen(ns, [*self._taskset(cpu), str(self.exe["limit_ring"]), dev, f"{seconds:.3f}"])
        line = p.stdout.readline().strip()
        if line != "READY":
            _, err = self.reap(p, 5)
            raise RuntimeError(f"limit_ring on {dev}: {line!r} {err}")
        return p

    def generate(self, seconds: float, rate: float, *, encap: bool = False) -> dict[str, Any]:
        """Run fwd_gen for ``seconds`` at ``rate`` (0: flat out); ``encap``: IPv6-in-IPv6 from GEN_IP (the
        NAR rows' peer) to ra's address around the usual packet."""
        before = cpu_busy()
        cmd = [*self._taskset(0), str(self.exe["fwd_gen"]), "ge", self.ra_mac, self.ge_mac, GEN_IP, SINK_IP,
               f"{seconds:.3f}", f"{rate:.0f}", str(FLOWS)]
        if encap:
            cmd += [GEN_IP, RA_IP]
        p = self.popen(self.gen, cmd)
        out, err = self.reap(p, seconds + 30)
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        if p.returncode or not lines:
            raise RuntimeError(f"fwd_gen failed ({p.returncode}): {err.strip()}")
        res = json.loads(lines[-1])
        res["busy"] = busy_between(before, cpu_busy())
        return res

    def start_workers(self, fwd: Fwd, *, profile: str = "") -> None:
        self.stop_workers()
        self.current = fwd
        n = fwd.workers
        for k in range(n):
            env = None
            if fwd.kind == "c":
                cmd = [str(self.exe["limit_forward"]), "ra", "rb", self.se_mac]
                if self.args.pin:
                    cmd += ["-c", str(1 if k == 0 else 0)]
                if fwd.qdisc_bypass:
                    cmd += ["-q"]
                if fwd.tx_frames:
                    cmd += ["-t", str(fwd.tx_frames)]
                if fwd.send_every:
                    cmd += ["-s", str(fwd.send_every)]
                if fwd.sendmmsg:
                    cmd += ["-m"]
                if fwd.timeout_ms:
                    cmd += ["-T", str(fwd.timeout_ms)]
            else:
                cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--sink-mac", self.se_mac,
                       "--mode", fwd.mode]
                if n > 1:
                    cmd += ["--fanout", str(FANOUT_GROUP)]
                if self.args.pin:
                    cmd += ["--cpu", str(1 if k == 0 else 0)]
                if profile and k == 0:
                    cmd += ["--profile", profile]
                if self.args.batch_size:
                    cmd += ["--batch-size", str(self.args.batch_size)]
                if fwd.block_path:
                    cmd += ["--block-path"]
                if fwd.rx_mode != "blocks":
                    cmd += ["--rx-mode", fwd.rx_mode]
                if fwd.qdisc_bypass:
                    cmd += ["--qdisc-bypass"]
                if fwd.tx_frames:
                    cmd += ["--tx-frames", str(fwd.tx_frames)]
                if fwd.timeout_ms:
                    cmd += ["--ring-timeout-ms", str(fwd.timeout_ms)]
                if fwd.block_count:
                    cmd += ["--ring-blocks", str(fwd.block_count)]
                env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
            p = self.popen(self.rt, cmd, env=env)
            line = p.stdout.readline().strip()
            if line != "READY":
                _, err = self.reap(p, 5)
                raise RuntimeError(f"{fwd.label} worker {k}: {line!r}\n{err}")
            self.workers.append(p)
        time.sleep(0.3)  # let both join the fanout group before traffic

    def snap(self) -> list[dict[str, Any]]:
        out = []
        for p in self.workers:
            p.stdin.write("snap\n")
            p.stdin.flush()
        for p in self.workers:
            line = p.stdout.readline()
            if not line:
                raise RuntimeError(f"engine worker exited: {self.reap(p, 5)[1]}")
            out.append(json.loads(line))
        return out

    def stop_workers(self) -> str:
        errs = []
        for p in self.workers:
            try:
                p.stdin.write("quit\n")
                p.stdin.flush()
            except (BrokenPipeError, OSError):
                pass
        for p in self.workers:
            errs.append(self.reap(p, 20)[1])
        self.workers = []
        return "\n".join(e for e in errs if e)

    def close(self) -> None:
        for p in list(self.procs):
            if p.poll() is None:
                p.kill()
            try:
                p.communicate(timeout=5)
            except Exception:
                pass
        self.procs.clear()
        for ns in self.namespaces:
            ns.delete()

    # -- measurements
    def trial_limit(self, seconds: float, rate: float = 0) -> Trial:
        c = self.counter(self.rt, "ra", seconds + 5, cpu=1)
        g = self.generate(seconds, rate)
        res = json.loads(self.reap(c, seconds + 10)[0].splitlines()[-1])
        el = g["elapsed_ns"] / 1e9
        return Trial(g["queued"] / el, res["udp6"] / el, res["kernel_drops"], arrived=res["kernel_packets"] / el,
                     busy=g["busy"])

    def sink_start(self, cpu: int) -> Any:
        """Start counting at the sink: ``se``'s interface counter (default) or limit_ring.c (--sink ring)."""
        if self.args.sink == "ring":
            return self.counter(self.sink, "se", 30, cpu=cpu)
        return self.sink_rx()

    def sink_rx(self) -> int:
        info = json.loads(self.sink.ip("-s", "-j", "link", "show", "se").stdout)[0]
        return int(info["stats64"]["rx"]["packets"])

    def sink_finish(self, handle: Any) -> int:
        """Frames that reached the sink since :meth:`sink_start`, once the flow has stopped."""
        if self.args.sink == "ring":
            return json.loads(self.reap(handle, 40)[0].splitlines()[-1])["udp6"]  # 0.5 s after the last frame
        last, stable = self.sink_rx(), 0
        while stable < 3:  # the engine drains its ring (at most 16 blocks) within tens of milliseconds
            time.sleep(0.1)
            now = self.sink_rx()
            stable = stable + 1 if now == last else 0
            last = now
        return last - handle

    def trial_forward(self, seconds: float, rate: float) -> Trial:
        """One trial of the running workers (:meth:`start_workers`): the generator for ``seconds`` at
        ``rate``, frames counted at the sink, the workers' counters and CPU times before and after."""
        c = self.sink_start(cpu=0)
        prof = self.perf_start() if seconds >= 0.5 else None
        before = self.snap()
        g = self.generate(seconds, rate, encap=self.current.mode == "decap")
        sink = self.sink_finish(c)
        after = self.snap()
        kernel_share = self.perf_finish(prof)
        el = g["elapsed_ns"] / 1e9
        d = {k: sum(a[k] - b[k] for a, b in zip(after, before))
             for k in ("ring_drops", "tx_ring_full", "ra_kernel_packets", "received", "forwarded", "cpu_s",
                       "cpu_user_s", "cpu_sys_s")}
        # RX blocks the workers walked (the engine's snap says ra_rx_blocks, limit_forward's rx_blocks)
        blocks = sum(a.get("ra_rx_blocks", a.get("rx_blocks", 0)) - b.get("ra_rx_blocks", b.get("rx_blocks", 0))
                     for a, b in zip(after, before))
        per_worker = [a["received"] - b["received"] for a, b in zip(after, before)]
        fw = d["forwarded"]
        nan = float("nan")
        total = d["cpu_s"] / fw * 1e6 if fw else nan
        if kernel_share is not None:  # the precise total, split by where the perf samples fell
            user, system = total * (1 - kernel_share), total * kernel_share
        else:  # getrusage's split (sampled at the scheduler tick: noisy over a few hundred ticks)
            user, system = (d["cpu_user_s"] / fw * 1e6, d["cpu_sys_s"] / fw * 1e6) if fw else (nan, nan)
        return Trial(g["queued"] / el, sink / el, d["ring_drops"], d["tx_ring_full"],
                     d["ra_kernel_packets"] / el, d["cpu_s"] / el, user, system, g["busy"],
                     {"per_worker_received": per_worker, "forwarded": fw, "sink": sink, "cpu_us_per_frame": total,
                      "rusage_user_us": d["cpu_user_s"] / fw * 1e6 if fw else nan,
                      "rusage_sys_us": d["cpu_sys_s"] / fw * 1e6 if fw else nan,
                      "kernel_share": kernel_share, "frame_len": g.get("frame_len", 0),
                      "frames_per_block": d["received"] / blocks if blocks else nan})

    def perf_start(self) -> subprocess.Popen | None:
        """``perf record -e cpu-clock`` of the workers (--split perf): samples at ~5 kHz from a high-resolution
        timer, so the share of samples in the kernel splits the workers' CPU time far more finely than
        getrusage, which charges whole scheduler ticks (250 Hz here) to user or system."""
        if self.args.split != "perf" or not self.workers:
            return None
        pids = ",".join(str(p.pid) for p in self.workers)
        p = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4999", "-p", pids,
                              "-o", str(self.tmp / "worker.perf")], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(0.15)  # attached before the traffic starts
        return p

    def perf_finish(self, p: subprocess.Popen | None) -> float | None:
        """The share of the workers' samples in the kernel, or None without perf (or without samples)."""
        if p is None:
            return None
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return None
        out = subprocess.run(["perf", "script", "-i", str(self.tmp / "worker.perf"), "-F", "ip"],
                             capture_output=True, text=True).stdout
        ips = [int(w, 16) for w in out.split() if w]
        if len(ips) < 100:
            return None
        return sum(ip >= 0xFFFF000000000000 for ip in ips) / len(ips)

    def kernel_setup(self) -> None:
        rt = self.rt
        for dev, addr in (("ra", RA_IP), ("rb", RB_IP)):
            rt.sysctl(f"net.ipv6.conf.{dev}.disable_ipv6", 0)
            rt.sysctl(f"net.ipv6.conf.{dev}.accept_ra", 0)
            rt.ip("-6", "addr", "add", f"{addr}/64", "dev", dev, "nodad")
        rt.sysctl("net.ipv6.conf.all.forwarding", 1)
        rt.ip("-6", "neigh", "replace", SINK_IP, "lladdr", self.se_mac, "dev", "rb", "nud", "permanent")

    def kernel_teardown(self) -> None:
        """Back to the engine's setting: kernel IPv6 off on rt's interfaces (addresses and neighbors go)."""
        self.rt.sysctl("net.ipv6.conf.all.forwarding", 0)
        for dev in ("ra", "rb"):
            self.rt.sysctl(f"net.ipv6.conf.{dev}.disable_ipv6", 1)

    def trial_kernel(self, seconds: float, rate: float = 0) -> Trial:
        c = self.sink_start(cpu=1)
        g = self.generate(seconds, rate)
        sink = self.sink_finish(c)
        el = g["elapsed_ns"] / 1e9
        return Trial(g["queued"] / el, sink / el, 0, busy=g["busy"], extra={"frame_len": g.get("frame_len", 0)})


# ---------------------------------------------------------------------------------------------- the run
def search_zero_drop(b: Bench, start: Trial, seconds: float, steps: int, log) -> float:
    """Highest offered rate with a clean trial (zero ring drops, no TX-ring-full), starting just under what
    flat out delivered: down 5% a trial until one is clean, then by bisection between the highest clean
    rate and the lowest that dropped.  (It used to jump to 70% after the first failure and bisect up from
    there: with the quick run's 4 trials a forwarder that failed at 95% could be reported at 88% at most,
    while one whose flat-out trial was clean, bound by the generator, kept its whole rate.)"""
    if start.clean:
        return start.offered
    lo, hi = 0.0, start.offered
    rate = min(start.delivered * 0.95, hi * 0.95)
    for _ in range(steps):
        t = b.trial_forward(seconds, rate)
        log(f"    search {rate:>10,.0f}/s -> delivered {t.delivered:>10,.0f}/s, ring drops {t.ring_drops}, "
            f"tx full {t.tx_ring_full}; CPU busy {'/'.join(f'{x:.2f}' for x in t.busy)}, "
            f"workers {t.engine_cpu:.2f} CPU-s/s")
        if t.clean and t.delivered >= 0.98 * t.offered:
            lo = rate
        else:
            hi = rate
        rate = (lo + hi) / 2 if lo else hi * 0.95
    return lo


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="about two minutes: shorter trials, fewer repetitions")
    ap.add_argument("--reps", type=int, help="repetitions per row (default 5, quick 3)")
    ap.add_argument("--seconds", type=float, help="seconds per trial (default 3, quick 1)")
    ap.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin processes to CPUs")
    ap.add_argument("--sink", choices=("ifstats", "ring"), default="ifstats",
                    help="count delivered frames by se's interface counter (default) or with limit_ring.c; "
                         "a ring at the sink costs the sender's CPU its tpacket_rcv (veth delivers in the "
                         "sender's softirq), about a third of the engine's core at flat out")
    ap.add_argument("--batch-size", type=int, default=0,
                    help="the engine's [router] batch_size (frames per classify call; default: the engine's)")
    ap.add_argument("--rows", default=DEFAULT_ROWS,
                    help=f"flat-out rows, interleaved in this order (default {DEFAULT_ROWS}; also: "
                         f"{', '.join(k for k in FORWARDERS if k not in DEFAULT_ROWS.split(','))})")
    ap.add_argument("--tx-variants", action="store_true",
                    help=f"add the TX-cost variants to the flat-out rows ({TX_VARIANTS})")
    ap.add_argument("--ring-variants", action="store_true",
                    help=f"add the RX ring's timeout and depth variants to the flat-out rows ({RING_VARIANTS})")
    ap.add_argument("--search", default=DEFAULT_SEARCH,
                    help=f"rows that get a zero-drop search and confirmation (default {DEFAULT_SEARCH}; '' none)")
    ap.add_argument("--offered", type=float, default=0,
                    help="offered frames/s of the interleaved rows (default 0: flat out); a rate every row "
                         "sustains compares CPU per frame at equal batching, e.g. for --tx-variants")
    ap.add_argument("--split", choices=("perf", "rusage"), default="perf" if shutil.which("perf") else "rusage",
                    help="how the workers' CPU is split into user and system: the share of perf cpu-clock "
                         "samples in the kernel (default when perf is installed) or getrusage's tick-sampled "
                         "split; the total is getrusage's either way")
    ap.add_argument("--profile", nargs="?", const="engine", default="", metavar="ROW",
                    help="also run one worker of ROW (an engine row: engine, tunnel, decap, ...; default engine) "
                         "under cProfile at flat out and print its top costs")
    ap.add_argument("-o", "--output", help="write the results as JSON here")
    args = ap.parse_args()
    keys = [k for k in args.rows.split(",") if k]
    if args.tx_variants:
        keys += [k for k in TX_VARIANTS.split(",") if k not in keys]
    if args.ring_variants:
        keys += [k for k in RING_VARIANTS.split(",") if k not in keys]
    unknown = [k for k in keys if k not in FORWARDERS and k not in ("limit", "kernel")]
    if unknown or "limit" not in keys:
        sys.exit(f"bench_forward: unknown rows {unknown} (the limit row is always needed: it is the denominator)")
    search = [k for k in args.search.split(",") if k and k in keys and k in FORWARDERS]
    if args.profile and (args.profile not in FORWARDERS or FORWARDERS[args.profile].kind != "engine"):
        sys.exit(f"bench_forward: --profile takes an engine row, not {args.profile!r}")
    if os.geteuid() != 0:
        sys.exit("bench_forward: needs root (network namespaces, AF_PACKET)")
    reps = args.reps or (3 if args.quick else 5)
    secs = args.seconds or (1.0 if args.quick else 3.0)
    steps = 4 if args.quick else 6
    search_secs = secs if args.quick else 2.0

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def on_term(signum, frame):  # SIGTERM / SIGHUP: clean up like Ctrl-C
        raise KeyboardInterrupt

    def label(k: str) -> str:
        return {"limit": "limit (C TPACKET_V3 reader, rt ingress)",
                "kernel": "kernel forwarding (rt kernel)"}.get(k) or FORWARDERS[k].label

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    t0 = time.monotonic()
    load_start = os.getloadavg()
    rows: list[dict[str, Any]] = []
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="fmipfast-bench-forward-") as tmp:
        exe = build(Path(tmp))
        b = None
        try:
            b = Bench(args, exe, Path(tmp))
            log(f"namespaces {', '.join(ns.name for ns in b.namespaces)}; {reps} reps x {secs:g} s; rows "
                f"{','.join(keys)}; pinning {'on' if args.pin else 'off'}; load {load_start[0]:.2f}")

            # Flat-out rows interleaved, one trial of each per repetition, so a burst of foreign load on
            # the shared machine hits every row alike instead of one row's whole series.
            flat: dict[str, list[Trial]] = {k: [] for k in keys}
            for rep in range(reps):
                for k in keys:
                    if k == "limit":
                        flat[k].append(b.trial_limit(secs, args.offered))
                    elif k == "kernel":
                        b.kernel_setup()
                        flat[k].append(b.trial_kernel(secs, args.offered))
                        b.kernel_teardown()
                    else:
                        b.start_workers(FORWARDERS[k])
                        b.trial_forward(0.3, 0)  # warm-up: first blocks, page faults, lazy imports
                        flat[k].append(b.trial_forward(secs, args.offered))
                        b.stop_workers()
                log(f"  rep {rep + 1}/{reps}: " + ", ".join(
                    f"{k} {flat[k][-1].delivered:,.0f}/s" + (f" (ring drops {flat[k][-1].ring_drops})"
                                                             if flat[k][-1].ring_drops else "") for k in keys)
                    + f"; load {os.getloadavg()[0]:.2f}")
            limit_rate = median([t.delivered for t in flat["limit"]])
            for k in keys:
                how = f", {args.offered:,.0f}/s offered" if args.offered else ", flat out" if k in FORWARDERS else ""
                rows.append(row(label(k) + how, flat[k], limit_rate, k, "flat"))
                results[f"{k}_flat"] = median([t.delivered for t in flat[k]])

            for k in search:
                fwd = FORWARDERS[k]
                log(f"{fwd.label}: search for the highest offered rate without ring drops")
                b.start_workers(fwd)
                b.trial_forward(0.3, 0)
                middle = sorted(flat[k], key=lambda t: t.delivered)[len(flat[k]) // 2]
                zd = search_zero_drop(b, middle, search_secs, steps, log)
                # confirm it: --reps trials, nearly all clean, else 10% lower (twice at most)
                need = max(1, reps - 1)
                conf: list[Trial] = []
                for attempt in range(3):
                    if zd <= 0:
                        break
                    conf = [b.trial_forward(secs, zd) for _ in range(reps)]
                    clean = sum(t.clean for t in conf)
                    log(f"  confirm {zd:,.0f}/s: delivered {median([t.delivered for t in conf]):,.0f}/s, "
                        f"ring drops {[t.ring_drops for t in conf]} ({clean}/{reps} clean)")
                    if clean >= need or attempt == 2:
                        break
                    zd *= 0.9
                results[f"{k}_zero_drop"] = zd
                if zd > 0 and conf:
                    rows.append(row(f"{fwd.label}, at its zero-drop rate", conf, limit_rate, k, "zero-drop"))
                    results[f"{k}_zero_drop_delivered"] = median([t.delivered for t in conf])
                    results[f"{k}_zero_drop_clean_reps"] = sum(t.clean for t in conf)
                b.stop_workers()

            if args.profile:
                fwd = FORWARDERS[args.profile]
                log(f"profile: one worker of {fwd.label} under cProfile, flat out")
                prof_path = str(Path(tmp) / "worker.prof")
                b.start_workers(replace(fwd, workers=1), profile=prof_path)
                b.trial_forward(secs, 0)
                report = b.stop_workers()
                print(f"\ncProfile of one worker of {fwd.label} at flat-out load (top 25 by own time; the time in "
                      "select.poll includes the idle seconds before and after the traffic):")
                print(report)
        except KeyboardInterrupt:
            log("interrupted: cleaning up")
            return 130
        finally:
            if b is not None:
                b.close()
            from fmipfast.lab.namespaces.netns import cleanup_leftovers
            cleanup_leftovers([f"fmipfast-bench-{os.getpid()}-{r}" for r in ("gen", "rt", "sink")])

    load_end = os.getloadavg()
    lim_row = next(r for r in rows if r["key"] == "limit")
    idle_cpu1 = lim_row["busy"][1] if len(lim_row["busy"]) > 1 else 0.0
    if args.pin and idle_cpu1 > 0.2:
        print(f"WARNING: CPU 1 was {idle_cpu1:.0%} busy during the limit row, where only the C reader (~2%) runs "
              f"there: foreign load on the shared machine; treat these numbers as unreliable and re-run.")
    for r in rows:
        if (args.pin and r["key"] in FORWARDERS and FORWARDERS[r["key"]].workers == 1 and r["engine_cpu"]
                and r["busy"][1] - r["engine_cpu"] > 0.15):
            print(f"WARNING: in '{r['row']}' the worker was charged {r['engine_cpu']:.2f} CPU-s/s while its CPU was "
                  f"{r['busy'][1]:.0%} busy: other processes took the rest of its core.")
    print_table(rows, limit_rate, results, load_start, load_end, time.monotonic() - t0, reps, secs, args.split)
    if args.output:
        Path(args.output).write_text(json.dumps({"rows": rows, "results": results, "limit": limit_rate,
                                                 "load_start": load_start, "load_end": load_end,
                                                 "reps": reps, "seconds": secs}, indent=2))
    return 0


def row(name: str, trials: list[Trial], limit_rate: float, key: str, phase: str) -> dict[str, Any]:
    delivered = median([t.delivered for t in trials])
    return {"row": name, "key": key, "phase": phase, "offered": median([t.offered for t in trials]),
            "delivered": delivered,
            "delivered_all": [round(t.delivered) for t in trials], "ring_drops": [t.ring_drops for t in trials],
            "tx_ring_full": [t.tx_ring_full for t in trials], "arrived": median([t.arrived for t in trials]),
            "engine_cpu": median([t.engine_cpu for t in trials]),
            "busy": [round(median([t.busy[k] for t in trials]), 2) for k in range(len(trials[0].busy))],
            "cpu_us_per_frame": median([t.extra["cpu_us_per_frame"] for t in trials if "cpu_us_per_frame" in t.extra]),
            "user_us_per_frame": median([t.user_us for t in trials if t.user_us == t.user_us]),
            "sys_us_per_frame": median([t.sys_us for t in trials if t.sys_us == t.sys_us]),
            "frame_len": trials[0].extra.get("frame_len", 0),
            "per_worker": [t.extra.get("per_worker_received") for t in trials],
            "frames_per_block": median([f for f in (t.extra.get("frames_per_block", float("nan")) for t in trials)
                                        if f == f]),
            "ratio": delivered / limit_rate if limit_rate else float("nan")}


def _num(x: float, fmt: str = ".2f") -> str:
    return format(x, fmt) if x == x else "-"


def _ratio(a: float, b: float, fmt: str = ".2f") -> str:
    """a / b formatted, '-' when b is zero or either is NaN (getrusage counts in ticks: the C forwarder's user
    time can be 0 in a short trial)."""
    return format(a / b, fmt) if b and a == a and b == b else "-"


def print_table(rows, limit_rate, results, load_start, load_end, elapsed, reps, secs, split) -> None:
    print(f"\nForwarding over veth, 162-octet IPv6/UDP frames (202 with the NAR rows' outer header), {reps} x "
          f"{secs:g} s per row, medians (load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end; "
          f"{elapsed:.0f} s); worker CPU split into user and sys by "
          f"{'the share of perf cpu-clock samples in the kernel' if split == 'perf' else 'getrusage'}")
    print(f"| {'row':<60} | {'offered/s':>11} | {'delivered/s':>11} | {'ring drops (per rep)':<24} "
          f"| {'CPU busy 0/1':>12} | {'worker CPU-s/s':>14} | {'worker µs/frame user + sys':>26} | {'vs limit':>8} |")
    print(f"|{'-' * 62}|{'-' * 12}:|{'-' * 12}:|{'-' * 26}|{'-' * 13}:|{'-' * 15}:|{'-' * 27}:|{'-' * 9}:|")
    for r in rows:
        n_clean = sum(1 for d, t in zip(r["ring_drops"], r["tx_ring_full"]) if d == 0 and t == 0)
        drops = f"{n_clean}/{len(r['ring_drops'])} clean, max {max(r['ring_drops']):,}"
        if any(r["tx_ring_full"]):
            drops += f" +txfull {sum(r['tx_ring_full'])}"
        cpu = "/".join(f"{x:.2f}" for x in r["busy"])
        if r["key"] == "kernel":
            per = "no process (CPU 0 softirq)"
        elif r["key"] == "limit":
            per = "-"
        else:
            per = (f"{_num(r['user_us_per_frame'])} + {_num(r['sys_us_per_frame'])} = "
                   f"{_num(r['cpu_us_per_frame'])}")
        wcpu = f"{r['engine_cpu']:.2f}" if r["engine_cpu"] else "-"
        print(f"| {r['row']:<60} | {r['offered']:>11,.0f} | {r['delivered']:>11,.0f} | {drops:<24} | {cpu:>12} "
              f"| {wcpu:>14} | {per:>26} | {r['ratio']:>7.1%} |")
    flat = {r["key"]: r for r in rows if r["phase"] == "flat"}
    zero = {r["key"]: r for r in rows if r["phase"] == "zero-drop"}

    def cost(key: str) -> tuple[float, float, float]:
        """Median user, sys and total µs/frame of a forwarder over its flat-out and zero-drop trials."""
        rs = [r for r in (flat.get(key), zero.get(key)) if r]
        return tuple(median([r[f] for r in rs if r[f] == r[f]]) for f in  # type: ignore[return-value]
                     ("user_us_per_frame", "sys_us_per_frame", "cpu_us_per_frame"))

    print()
    if "engine" in flat:
        u, s_, tot = cost("engine")
        cap = 1e6 / tot
        print(f"engine cost: {tot:.2f} µs of worker CPU per forwarded frame ({u:.2f} user + {s_:.2f} sys; sys is the "
              f"kernel's TX path and, on veth, the delivery to the sink), i.e. ~{cap:,.0f} frames/s on one whole "
              f"core = {cap / limit_rate:.0%} of the limit; insensitive to foreign load, unlike the rates above; "
              f"{flat['engine']['frames_per_block']:,.0f} frames per RX block flat out")
    if "c-forward" in flat:
        u, s_, tot = cost("c-forward")
        print(f"c-forward cost: {tot:.2f} µs per frame ({u:.2f} user + {s_:.2f} sys), i.e. ~{1e6 / tot:,.0f} "
              f"frames/s on one whole core; delivered flat out = {flat['c-forward']['ratio']:.1%} of the limit")
        if "engine" in flat:
            eu, es, et = cost("engine")
            line = ("engine x1 / c-forward: delivered flat out "
                    f"{_ratio(flat['engine']['delivered'], flat['c-forward']['delivered'])}")
            if "engine" in zero and "c-forward" in zero:
                line += f", zero-drop rate {_ratio(results['engine_zero_drop'], results['c-forward_zero_drop'])}"
            line += (f"; CPU per frame {_ratio(et, tot)}x (user {_ratio(eu, u, '.1f')}x, sys {_ratio(es, s_)}x): the "
                     f"engine spends {eu - u:.2f} µs more in user space and {es - s_:+.2f} µs in the kernel")
            print(line)
    if "kernel" in flat:
        print(f"kernel forwarding: {flat['kernel']['delivered']:,.0f}/s = {flat['kernel']['ratio']:.1%} of the limit; "
              f"no process to charge: it runs in the generator's softirq on CPU 0 (CPU busy above)")
        if "engine" in flat:
            line = ("engine x1 / kernel: delivered flat out "
                    f"{_ratio(flat['engine']['delivered'], flat['kernel']['delivered'])}")
            if "engine" in zero:
                line += (f", engine zero-drop rate / kernel flat out "
                         f"{_ratio(results['engine_zero_drop'], flat['kernel']['delivered'])}")
            print(line)
        if "c-forward" in flat:
            print(f"c-forward / kernel: delivered flat out "
                  f"{flat['c-forward']['delivered'] / flat['kernel']['delivered']:.2f}")
    if "engine" in zero:
        x1 = results.get("engine_zero_drop", 0.0)
        clean1 = results.get("engine_zero_drop_clean_reps", 0)
        if clean1 < max(1, reps - 1):
            verdict = "not confirmed: too few clean trials, re-run on a quieter machine"
        else:
            verdict = ("meets" if x1 >= 0.6 * limit_rate else "misses") + " the 60% goal"
        print(f"engine zero-drop rate, 1 worker: {x1:,.0f}/s = {x1 / limit_rate:.1%} of the limit, "
              f"{clean1}/{reps} confirmation trials clean ({verdict})")
    if "engine" in flat and "fanout" in flat:
        line = (f"2 fanout workers: flat out {flat['fanout']['delivered']:,.0f}/s vs "
                f"{flat['engine']['delivered']:,.0f}/s "
                f"({_ratio(flat['fanout']['delivered'], flat['engine']['delivered'])}x)")
        if results.get("engine_zero_drop") and results.get("fanout_zero_drop"):
            line += (f"; zero-drop {results['fanout_zero_drop']:,.0f}/s "
                     f"({results['fanout_zero_drop'] / results['engine_zero_drop']:.2f}x one worker)")
        print(line)
    for key, what in (("tunnel", "PAR tunnelling"), ("decap", "NAR decapsulation")):
        if key in flat and "engine" in flat:
            u, s_, tot = cost(key)
            eu, es, et = cost("engine")
            line = (f"{what} / plain forwarding (engine x1): delivered flat out "
                    f"{flat[key]['delivered'] / flat['engine']['delivered']:.2f}")
            if results.get(f"{key}_zero_drop") and results.get("engine_zero_drop"):
                line += f", zero-drop rate {results[f'{key}_zero_drop'] / results['engine_zero_drop']:.2f}"
            line += (f"; CPU per frame {tot:.2f} vs {et:.2f} µs (frames/s per core {et / tot:.2f}x; "
                     f"user {u:.2f} vs {eu:.2f}, sys {s_:.2f} vs {es:.2f}); goal >= 0.9x")
            print(line)
    for key, f in FORWARDERS.items():
        base = "c-forward" if f.kind == "c" else "engine"
        if key in flat and key != base and f.mode == "plain" and f.workers == 1 and base in flat:
            u, s_, tot = cost(key)
            bu, bs, bt = cost(base)
            print(f"variant {f.label!r} / {base}: delivered flat out "
                  f"{flat[key]['delivered'] / flat[base]['delivered']:.2f}; sys µs/frame {s_:.2f} vs {bs:.2f} "
                  f"({s_ / bs:.2f}x), total {tot:.2f} vs {bt:.2f} ({tot / bt:.2f}x)")
    for r in rows:
        splits = [w for w in r["per_worker"] if w and len(w) > 1 and sum(w)]
        if splits:
            share = median([w[0] / sum(w) for w in splits])
            print(f"fanout hash split ({r['row']}): worker 1 received {share:.1%} of the frames (median)")
            break


if __name__ == "__main__":
    sys.exit(main())

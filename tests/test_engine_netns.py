"""The engine as a real IPv6 router on real links (root): two host namespaces on either side of an fmipfast
engine that owns its veth ends through AF_PACKET rings.  The hosts' kernels resolve the engine's addresses
through ND, ``ping -6`` and a UDP stream (with the checksum offload of veth, docs/design.md §5) pass through,
malformed frames are counted while traffic flows, and the counters conserve."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from scapy import all as scapy  # a test dependency: builds the frames the hosts send raw

from fmipfast import config
from fmipfast.constants import DropReason
from fmipfast.engine import Engine
from fmipfast.lab.namespaces.netns import Netns
from fmipfast.ports import RingPort

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0,
                                 reason="needs root for network namespaces and AF_PACKET (CI runs as root)")]

TOML = """
[router]
name = "rt"
# small chunks: a block of a few dozen frames spans several, so a chunk the node hands to Python has frames
# after it in the same block (test_frames_around_a_control_frame_in_one_block_all_go_out_in_order)
batch_size = 16
[router.ring]
block_size = 65536
block_count = 8
timeout_ms = 2
[[router.interfaces]]
name = "ra"
addresses = ["2001:db8:1::1/64"]
ra_min_interval_ms = 60000
ra_max_interval_ms = 60000
[[router.interfaces]]
name = "rb"
addresses = ["2001:db8:2::1/64"]
ra_min_interval_ms = 60000
ra_max_interval_ms = 60000
"""

RECEIVER = r"""
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(("2001:db8:2::b", 5000))
s.settimeout(3.0)
order = []
print("READY", flush=True)
try:
    while True:
        data, _ = s.recvfrom(2048)
        order.append(int.from_bytes(data[:4], "big"))
except socket.timeout:
    pass
print(" ".join(map(str, order)), flush=True)
"""

SENDER = r"""
import socket, sys, time
n = int(sys.argv[1])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
for i in range(n):
    s.sendto(i.to_bytes(4, "big") + b"x" * 100, ("2001:db8:2::b", 5000))
    time.sleep(0.001)
"""


CONTROL_TYPES = [128, 133, 134, 135, 136, 137, 200]  # echo, ND, fmipfast (the router daemon's default set)


class Topology:
    def __init__(self, control: bool = False, toml: str = TOML, name: str = "", rx_mode: str = "blocks") -> None:
        tag = f"{os.getpid()}{name}"  # a name of its own beside the module's topology
        self.rt, self.h1, self.h2 = Netns(f"rt-{tag}"), Netns(f"h1-{tag}"), Netns(f"h2-{tag}")
        try:
            self.rt.veth("ra", "h1e", peer_ns=self.h1)
            self.rt.veth("rb", "h2e", peer_ns=self.h2)
            for ns, dev, addr, gw in ((self.h1, "h1e", "2001:db8:1::a/64", "2001:db8:1::1"),
                                      (self.h2, "h2e", "2001:db8:2::b/64", "2001:db8:2::1")):
                ns.sysctl(f"net.ipv6.conf.{dev}.disable_ipv6", 0)
                ns.sysctl(f"net.ipv6.conf.{dev}.accept_ra", 0)
                ns.ip("-6", "addr", "add", addr, "dev", dev, "nodad")
                ns.ip("-6", "route", "add", "default", "via", gw, "dev", dev)
            with self.rt.enter():
                # 64 blocks: at the 2 ms retire timeout the ring holds 128 ms of a slow stream, so a test whose
                # engine thread the shared machine does not schedule for a while loses nothing to the kernel
                ports = {name: RingPort(name, rx_block_size=65536, rx_block_nr=64, rx_timeout_ms=2, rx_mode=rx_mode,
                                        control_types=CONTROL_TYPES if control else None)
                         for name in ("ra", "rb")}
            self.engine = Engine(config.loads(toml).router, ports)
        except BaseException:
            self.close()
            raise
        self._stop = threading.Event()
        self.paused = threading.Event()
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        rings = [i.port.ring for i in self.engine.interfaces]  # type: ignore[attr-defined]
        try:
            while not self._stop.is_set():
                if self.paused.is_set():
                    time.sleep(0.01)
                    continue
                rings[0].wait(0.005)
                self.engine.poll()
        except BaseException as exc:  # surfaced by the test
            self.errors.append(exc)

    def quiet_conservation(self) -> dict:
        """The conservation check with the engine thread paused between batches (a consistent snapshot)."""
        self.paused.set()
        try:
            time.sleep(0.05)
            return self.engine.conservation()
        finally:
            self.paused.clear()

    def close(self) -> None:
        if hasattr(self, "_stop"):
            self._stop.set()
            self._thread.join(timeout=10)
        if hasattr(self, "engine"):
            for iface in self.engine.interfaces:
                iface.port.close()
        for ns in (self.rt, self.h1, self.h2):
            ns.delete()


def eventually(check, timeout: float = 3.0) -> bool:
    """The engine runs in its own thread: a counter it bumps right after sending may lag the packet the
    test saw arrive, so counters are read with a short grace period."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return bool(check())


@pytest.fixture(scope="module", params=["ring", "control socket", "blocks in Python", "frames",
                                        "frames in Python"])
def topo(request):
    # "frames": per-frame (TPACKET_V2) RX rings and the control socket, as a latency-minded router runs
    frames = request.param.startswith("frames")
    t = Topology(control=request.param in ("control socket", "frames"), rx_mode="frames" if frames else "blocks")
    if request.param.endswith("in Python"):  # the rings read as FrameBatch blocks through process(), not run_ring
        t.engine.ring_interfaces.clear()
    else:
        assert t.engine.ring_interfaces == {0, 1}
    try:
        yield t
    finally:
        t.close()
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert str(os.getpid()) not in names, "a namespace was left behind"


def test_ping_through_the_engine(topo):
    out = topo.h1.run("ping", "-6", "-c", "4", "-i", "0.2", "-W", "2", "2001:db8:2::b", check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert " 0% packet loss" in out.stdout
    assert not topo.errors
    # ND both ways: h1's kernel resolved the engine's address (answered with an NA); the engine resolved
    # h2 with an NS (whose source link-layer option taught h2's kernel the engine's MAC in return)
    assert eventually(lambda: topo.engine.counters["na_sent"] >= 1 and topo.engine.counters["ns_sent"] >= 1)
    assert eventually(lambda: topo.engine.counters["forwarded"] + topo.engine.requeue_counters["forwarded"] >= 8)
    assert topo.engine.counters["echo_replies"] == 0  # the echo went through, not to the router


def test_ping_the_router_itself(topo):
    out = topo.h1.run("ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", "2001:db8:1::1", check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert eventually(lambda: topo.engine.counters["echo_replies"] >= 2)
    time.sleep(0.1)
    assert topo.engine.counters["echo_replies"] == 2  # each request reached the engine once (ring or socket)
    control = topo.engine.interfaces[0].port.control
    if control is not None:  # the echo requests came through the control socket
        assert control.counters["frames"] >= 2
    c = topo.quiet_conservation()
    assert c["holds"], c


def test_udp_stream_with_checksum_offload_and_malformed_frames(topo):
    # h2 resolved first (what the tests before this one do anyway): the stream's first datagrams would
    # otherwise wait in the resolution queue, which holds resolve_queue_packets (drop-oldest) by design
    out = topo.h1.run("ping", "-6", "-c", "1", "-W", "2", "2001:db8:2::b", check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    recv = subprocess.Popen(["ip", "netns", "exec", topo.h2.name, sys.executable, "-c", RECEIVER],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert recv.stdout.readline().strip() == "READY"
        n = 300
        junk = topo.h1.run(sys.executable, "-c", (
            "import socket, os\n"
            "s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n"
            "s.bind(('h1e', 0))\n"
            "for i in range(200):\n"
            "    s.send(os.urandom(14 + (i % 90)))\n"
            "for k in range(15, 60):\n"
            "    s.send(b'\\xff' * 12 + b'\\x86\\xdd' + b'\\x60' + bytes(k - 15))\n"), check=False)
        assert junk.returncode == 0, junk.stderr
        send = topo.h1.run(sys.executable, "-c", SENDER, str(n), check=False)
        assert send.returncode == 0, send.stderr
        got = len(set(recv.communicate(timeout=30)[0].split()))  # the distinct sequence numbers
    finally:
        if recv.poll() is None:
            recv.kill()
    assert got == n, f"{got} of {n} datagrams arrived"
    assert eventually(lambda: topo.engine.counters["csum_completed"] >= n)  # veth: CHECKSUM_PARTIAL
    # the forwarding node queued the data frames on rb's TX ring itself (blocks of data frames only)
    rb = topo.engine.interfaces[1].port.ring  # type: ignore[attr-defined]
    assert rb.counters["tx_direct"] > 0 and rb.counters["tx_direct"] <= rb.counters["tx_frames"]
    assert topo.engine.drops[DropReason.NOT_IPV6] + topo.engine.drops[DropReason.ETH_TRUNCATED] > 0
    assert topo.engine.drops[DropReason.IP6_TRUNCATED] > 0
    assert topo.quiet_conservation()["holds"]
    assert not topo.errors


RAW_SEND = r"""
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("h1e", 0))
for line in sys.stdin:
    s.send(bytes.fromhex(line.strip()))
"""


def test_frames_around_a_control_frame_in_one_block_all_go_out_in_order(topo):
    """Data frames, then ones the node hands to Python (an echo request to the router, a packet whose hop
    limit runs out, one for an unresolved neighbor), then data frames again, all landing in one ring block
    while the engine is paused: every datagram arrives, in order, the router answers, and the counts
    conserve -- whichever way the ring is read (the node's run_ring stops at the chunk Python must finish and
    hands the rest of the block to a pass of its own)."""
    out = topo.h1.run("ping", "-6", "-c", "1", "-W", "2", "2001:db8:2::b", check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    eng = topo.engine
    ra_mac = eng.interfaces[0].mac
    h1_mac = bytes.fromhex(topo.h1.run("cat", "/sys/class/net/h1e/address").stdout.strip().replace(":", ""))

    def frame(pkt) -> str:
        return bytes(scapy.Ether(dst=ra_mac, src=h1_mac) / pkt).hex()

    def udp(i: int):
        return scapy.IPv6(src="2001:db8:1::a", dst="2001:db8:2::b") / scapy.UDP(sport=4000, dport=5000) / (
            i.to_bytes(4, "big") + b"x" * 60)

    lines = [frame(udp(i)) for i in range(40)]
    lines.append(frame(scapy.IPv6(src="2001:db8:1::a", dst="2001:db8:1::1") / scapy.ICMPv6EchoRequest(id=7, seq=1)))
    lines.append(frame(scapy.IPv6(src="2001:db8:1::a", dst="2001:db8:2::b", hlim=1) / scapy.UDP(dport=9)))
    lines.append(frame(scapy.IPv6(src="2001:db8:1::a", dst="2001:db8:2::99") / scapy.UDP(dport=9)))
    lines += [frame(udp(i)) for i in range(40, 80)]
    recv = subprocess.Popen(["ip", "netns", "exec", topo.h2.name, sys.executable, "-c", RECEIVER],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    echo_before, te_before = eng.counters["echo_replies"], eng.drops[DropReason.HOP_LIMIT_EXCEEDED]
    try:
        assert recv.stdout.readline().strip() == "READY"
        topo.paused.set()
        time.sleep(0.05)
        try:
            out = subprocess.run(["ip", "netns", "exec", topo.h1.name, sys.executable, "-c", RAW_SEND],
                                 input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, out.stderr
            time.sleep(0.02)  # past the ring's retire timeout: the block is the engine's
        finally:
            topo.paused.clear()
        order = [int(w) for w in recv.communicate(timeout=30)[0].split()]
    finally:
        if recv.poll() is None:
            recv.kill()
    assert order == list(range(80)), order
    assert eventually(lambda: eng.counters["echo_replies"] > echo_before)
    assert eventually(lambda: eng.drops[DropReason.HOP_LIMIT_EXCEEDED] > te_before)
    c = topo.quiet_conservation()
    assert c["holds"], c
    assert not topo.errors


BURST = r"""
import socket, struct, sys
mac_dst = bytes.fromhex(sys.argv[1].replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("h1e", 0))
src = socket.inet_pton(socket.AF_INET6, "2001:db8:1::a")
dst = socket.inet_pton(socket.AF_INET6, "2001:db8:2::b")
body = bytes.fromhex("1388138900100000") + b"burst..."
ip6 = struct.pack("!IHBB", 6 << 28, len(body), 17, 64) + src + dst + body
frame = mac_dst + s.getsockname()[4] + bytes.fromhex("86dd") + ip6
for _ in range(int(sys.argv[2])):
    s.send(frame)
"""


def test_overload_burst_is_counted_and_does_not_stall(topo):
    """A burst larger than the RX ring while the engine is busy: counted kernel drops, never a stall."""
    ra_mac = topo.engine.interfaces[0].mac.hex(":")
    topo.paused.set()
    try:
        time.sleep(0.05)
        out = topo.h1.run(sys.executable, "-c", BURST, ra_mac, "100000", check=False)  # ~14 MB of ring slots
        assert out.returncode == 0, out.stderr
    finally:
        topo.paused.clear()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and topo.engine.drops[DropReason.KERNEL_RING_DROP] == 0:
        time.sleep(0.05)
    assert topo.engine.drops[DropReason.KERNEL_RING_DROP] > 0, "the 4 MiB ring should have overflowed"
    out = topo.h1.run("ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", "2001:db8:2::b", check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    c = topo.quiet_conservation()
    assert c["holds"], c
    assert not topo.errors


def test_a_packet_larger_than_the_next_link_s_mtu_teaches_the_sender_its_path_mtu():
    """The far link's MTU is 1280: the engine answers a larger packet with Packet Too Big (RFC 4443 §3.2),
    and the sending host's own kernel -- an independent reading of the message -- takes the path MTU from it
    (RFC 8201) and reports it; smaller packets pass."""
    toml = TOML.replace('addresses = ["2001:db8:2::1/64"]', 'addresses = ["2001:db8:2::1/64"]\nmtu = 1280')
    t = Topology(toml=toml, name="m")
    try:
        out = t.h1.run("ping", "-6", "-c", "1", "-W", "2", "-s", "1200", "2001:db8:2::b", check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        out = t.h1.run("ping", "-6", "-c", "2", "-i", "0.3", "-W", "1", "-M", "do", "-s", "1400", "2001:db8:2::b",
                       check=False)
        assert "mtu=1280" in out.stdout + out.stderr, out.stdout + out.stderr
        route = t.h1.run("ip", "-6", "route", "get", "2001:db8:2::b").stdout
        assert "mtu 1280" in route, route
        assert eventually(lambda: t.engine.drops[DropReason.FRAME_TOO_BIG] >= 1)
        assert t.quiet_conservation()["holds"]
        assert not t.errors
    finally:
        t.close()


def test_router_daemon_forwards_and_stops_cleanly(tmp_path):
    """`fmipfast router --config` in the router namespace: ping passes, SIGTERM exits 0 with a summary."""
    import json
    import signal

    tag = f"d{os.getpid()}"
    rt, h1, h2 = Netns(f"rt-{tag}"), Netns(f"h1-{tag}"), Netns(f"h2-{tag}")
    proc = None
    try:
        rt.veth("ra", "h1e", peer_ns=h1)
        rt.veth("rb", "h2e", peer_ns=h2)
        for ns, dev, addr, gw in ((h1, "h1e", "2001:db8:1::a/64", "2001:db8:1::1"),
                                  (h2, "h2e", "2001:db8:2::b/64", "2001:db8:2::1")):
            ns.sysctl(f"net.ipv6.conf.{dev}.disable_ipv6", 0)
            ns.sysctl(f"net.ipv6.conf.{dev}.accept_ra", 0)
            ns.ip("-6", "addr", "add", addr, "dev", dev, "nodad")
            ns.ip("-6", "route", "add", "default", "via", gw, "dev", dev)
        cfg = tmp_path / "router.toml"
        cfg.write_text(TOML + '[router.security]\nprincipal = "host/rt@A.EXAMPLE"\n[[router.security.keys]]\n'
                       'principal = "host/rt@A.EXAMPLE"\nkvno = 1\nkey = "' + "44" * 32 + '"\n')
        sock = str(tmp_path / "ctl.sock")
        proc = subprocess.Popen(["ip", "netns", "exec", rt.name, sys.executable, "-m", "fmipfast", "router",
                                 "--config", str(cfg), "--control", sock, "--metrics", "[::1]:9464"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        assert line.startswith("READY rt ra rb"), (line, proc.stderr.read() if proc.poll() is not None else "")
        out = h1.run("ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", "2001:db8:2::b", check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        from fmipfast.control import ControlClient

        client = ControlClient(sock)
        live = client.call("counters")  # the control API of the running daemon
        assert live["conservation"]["holds"] and live["counters"]["received"] >= 6
        # the handover protocol is attached: it answers, and refuses an MN that never attached here
        assert client.call("handovers") == [] and client.call("mobile-nodes") == []
        from fmipfast.control import ControlError

        with pytest.raises(ControlError, match="handover refused"):
            client.call("handover", pcoa="2001:db8:1::a", nar="2001:db8:2::1", nar_principal="host/nar@B.EXAMPLE")
        # Prometheus metrics over HTTP inside the router's namespace, read by prometheus_client's parser
        from prometheus_client.parser import text_string_to_metric_families

        scrape = rt.run(sys.executable, "-c", "import urllib.request as u; r = u.urlopen('http://[::1]:9464/metrics'); "
                        "print(r.headers['Content-Type']); print(r.read().decode())", check=False)
        assert scrape.returncode == 0, scrape.stderr
        ctype, text = scrape.stdout.split("\n", 1)
        assert ctype.startswith("text/plain; version=0.0.4")
        samples = {(s.name, s.labels.get("counter") or s.labels.get("event") or s.labels.get("reason")): s.value
                   for fam in text_string_to_metric_families(text) for s in fam.samples}
        assert samples[("fmipfast_engine_frames_total", "forwarded")] >= 3
        assert samples[("fmipfast_handover_total", "trigger_unknown_mn")] == 1  # the refused handover above
        assert samples[("fmipfast_engine_conservation_ok", None)] == 1
        assert "fmipfast_engine_frames_total" in client.call("metrics")
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
        summary = json.loads(stdout.strip().splitlines()[-1])
        assert summary["conservation"]["holds"] and summary["counters"]["forwarded"] >= 3
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        for ns in (rt, h1, h2):
            ns.delete()


def test_router_daemon_rejects_a_missing_interface(tmp_path):
    cfg = tmp_path / "router.toml"
    cfg.write_text('[[router.interfaces]]\nname = "fmipfast-nope0"\n')
    done = subprocess.run([sys.executable, "-m", "fmipfast", "router", "--config", str(cfg)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "fmipfast-nope0" in done.stderr

"""The lab topology (docs/design.md §6) on real namespaces, and the traffic tool's measurement.

The namespace tests need root; they use a prefix with this process's id so parallel runs do not collide.
``measure()`` is tested on synthetic records and runs everywhere."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from fmipfast import config
from fmipfast.lab.namespaces import topology, traffic
from fmipfast.lab.namespaces.topology import LabError, LabTopology, LinkMove, eui64_address

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root for network namespaces (CI runs as root)")
if not ROOT:
    print("test_lab_topology: not root, the namespace tests are skipped", file=sys.stderr)

PREFIX = f"fmipfast-t{os.getpid()}-"
MS = 1_000_000


def _namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _ours() -> list[str]:
    return [n for n in _namespaces() if n.startswith(PREFIX)]


@pytest.fixture(scope="module")
def lab():
    topology.cleanup(PREFIX)
    t = LabTopology(prefix=PREFIX)
    t.up()
    try:
        yield t
    finally:
        t.down()
    assert _ours() == [], "the lab left namespaces behind"


# ------------------------------------------------------------------------------------------- building


@needs_root
def test_up_builds_namespaces_links_bridges_and_routes(lab):
    assert sorted(_ours()) == sorted(PREFIX + r for r in topology.ROLES)
    air = lab.ns["air"].ip("-d", "link", "show").stdout
    assert "brA" in air and "brB" in air and "bridge" in air
    bridge = lab.ns["air"].run("bridge", "link").stdout
    for port, br in ((lab.air_par, "brA"), (lab.air_nar, "brB"), (lab.air_mn, lab.bridges[lab.mn_link])):
        assert any(line.split(":")[1].strip().split("@")[0] == port and f"master {br}" in line
                   for line in bridge.splitlines()), bridge
    routes = lab.ns["core"].ip("-6", "route").stdout
    assert f"2001:db8:1::/64 via {lab.par_up} dev core-par" in routes
    assert f"2001:db8:2::/64 via {lab.nar_up} dev core-nar" in routes
    assert lab.ns["core"].run("sysctl", "-n", "net.ipv6.conf.all.forwarding").stdout.strip() == "1"
    # the engines' ends have no kernel IPv6; the MN has its previous care-of address
    for role, dev in (("par", lab.par_acc), ("par", lab.par_upif), ("nar", lab.nar_acc), ("nar", lab.nar_upif)):
        assert lab.ns[role].run("sysctl", "-n", f"net.ipv6.conf.{dev}.disable_ipv6").stdout.strip() == "1"
        assert "inet6" not in lab.ns[role].ip("-6", "addr", "show", "dev", dev).stdout
    assert lab.ns["par"].ip("link", "show", lab.par_acc).stdout.count(lab.par_mac.hex(":")) == 1
    assert str(lab.pcoa) in lab.ns["mn"].ip("-6", "addr", "show", "dev", lab.mn_if).stdout
    # kernel to kernel through core
    out = lab.ns["cn"].run("ping", "-6", "-c", "1", "-W", "2", str(lab.core_par), check=False)
    assert out.returncode == 0, out.stdout + out.stderr


@needs_root
def test_addresses_are_eui64_and_router_configs_parse(lab):
    assert lab.par_address == eui64_address("2001:db8:1::/64", lab.par_mac)
    assert str(lab.par_address) == "2001:db8:1::5eff:fe10:1"  # MAC 02:00:5e:10:00:01, U/L bit flipped
    from fmipfast.lab.simulated.demo import Plan  # the same plan as the simulated scenario (backend's derivation)

    plan = Plan()
    assert (lab.par_address, lab.nar_address, lab.pcoa, lab.ncoa) == (plan.par_address, plan.nar_address,
                                                                      plan.pcoa, plan.slaac_ncoa)
    assert lab.ncoa == eui64_address("2001:db8:2::/64", lab.mn_mac)
    for which, acc, up in (("par", lab.par_acc, lab.par_upif), ("nar", lab.nar_acc, lab.nar_upif)):
        cfg = config.loads(lab.router_config(which, buffer_per_mn_packets=99)).router
        assert cfg.name == which and cfg.buffer_per_mn_packets == 99
        assert [i.name for i in cfg.interfaces] == [acc, up]
        assert cfg.routes[0].prefix == ("::", 0) and cfg.neighbors[0].interface == up
    par = config.loads(lab.router_config("par")).router
    assert par.peers == (str(lab.nar_up),) and par.interfaces[0].addresses == ((str(lab.par_address), 64),)
    key = "11" * 32
    sec = config.loads(lab.router_config("nar", security={
        "principal": "host/nar@B.EXAMPLE", "keys": [{"principal": "host/nar@B.EXAMPLE", "kvno": 1, "key": key}],
        "peers": [{"address": str(lab.par_up), "spi_in": 300, "key_in": key, "spi_out": 301, "key_out": key}],
    })).router.security
    assert sec is not None and sec.peers[0].address == str(lab.par_up)
    with pytest.raises(ValueError):
        lab.router_config("core")


@needs_root
def test_spawned_processes_are_killed_and_up_refuses_a_taken_prefix(lab):
    proc = lab.spawn("cn", ["sleep", "30"])
    assert proc.poll() is None
    second = LabTopology(prefix=PREFIX)
    with pytest.raises(topology.LabError, match="cleanup"):
        second.up()
    second.down()  # down() of a lab that never came up leaves the live one with that prefix alone
    assert len(_ours()) == len(topology.ROLES)
    lab._stop(proc)
    assert proc.poll() is not None


# ------------------------------------------------------------------ a stream through core and a kernel PAR


@pytest.fixture(scope="module")
def kernel_par(lab):
    """Plain kernel IPv6 forwarding in ``par`` instead of an engine (these tests only)."""
    par = lab.ns["par"]
    for dev in (lab.par_acc, lab.par_upif):
        par.sysctl(f"net.ipv6.conf.{dev}.accept_dad", 0)
        par.sysctl(f"net.ipv6.conf.{dev}.accept_ra", 0)
        par.sysctl(f"net.ipv6.conf.{dev}.disable_ipv6", 0)
    par.sysctl("net.ipv6.conf.all.forwarding", 1)
    par.ip("-6", "addr", "add", f"{lab.par_address}/64", "dev", lab.par_acc, "nodad")
    par.ip("-6", "addr", "add", f"{lab.par_up}/64", "dev", lab.par_upif, "nodad")
    par.ip("-6", "route", "add", "default", "via", str(lab.core_par), "dev", lab.par_upif)
    return lab


def _stream(lab: LabTopology, tmp_path, port: int, count: int, during=None) -> tuple[dict, dict, object]:
    """CN -> MN at 1000 pps with traffic.py in both namespaces; ``during()`` runs while it flows."""
    out = tmp_path / f"recv{port}.json"
    py = [sys.executable, "-m", "fmipfast.lab.namespaces.traffic"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    recv = lab.spawn("mn", [*py, "recv", "--bind", str(lab.pcoa), "--port", str(port), "--duration", "5",
                            "--count", str(count), "--out", str(out)], env=env)
    assert recv.stdout is not None and recv.stdout.readline().strip() == "READY"
    send = lab.spawn("cn", [*py, "send", "--to", str(lab.pcoa), "--port", str(port), "--rate", "1000",
                            "--count", str(count)], env=env)
    extra = during() if during is not None else None
    s_out, s_err = send.communicate(timeout=20)
    assert send.returncode == 0, s_err
    recv.communicate(timeout=20)
    assert recv.returncode == 0
    return json.loads(s_out), json.loads(out.read_text()), extra


@needs_root
def test_cn_stream_reaches_the_mn_through_core_and_a_kernel_par(kernel_par, tmp_path):
    lab = kernel_par
    summary, got, _ = _stream(lab, tmp_path, 5001, 1000)
    assert summary["sent"] == 1000 and summary["errors"] == {}
    # paced: 1000 datagrams at 1000 pps span about a second
    assert summary["last_ns"] - summary["first_ns"] >= 0.98e9  # paced at 1 000/s
    m = traffic.measure(summary["sent"], got["received"])
    assert (m["sent"], m["received"], m["lost"], m["duplicated"]) == (1000, 1000, 0, 0), m
    assert got["kernel_timestamps"] and got["errors"] == {"short": 0, "recv": 0, "no_timestamp": 0}
    ifindex = int(lab.ns["mn"].run("cat", f"/sys/class/net/{lab.mn_if}/ifindex").stdout)
    assert {r[2] for r in got["received"]} == {ifindex}
    delays = [r[1] - r[3] for r in got["received"]]
    assert min(delays) > 0 and sorted(delays)[len(delays) // 2] < 1000 * MS  # one clock for both ends


@needs_root
def test_a_link_gap_during_the_stream_is_measured(kernel_par, tmp_path):
    """The MN's port goes down for 60 ms and comes back on the same bridge: about 60 datagrams are lost and
    the interruption spans the gap (the kernel PAR still knows the MN's MAC, so delivery resumes at once).
    Twice: when veth ends shared an ifindex, every move but the first left the bridge port disabled for
    ~950 ms (the kernel's linkwatch rate limit, see LabTopology._veth)."""
    lab = kernel_par

    def gap() -> LinkMove:
        time.sleep(1.0)  # the sender (a Python process) is streaming by then, even on a loaded machine
        return lab.move_mn(to="A", gap_ms=60)

    # 2.5 s of stream: the kernel's linkwatch handles a port's carrier change at most once a second when other
    # links changed just before (earlier tests' namespaces going away), so the port may come back up to ~1 s
    # late; the stream must outlast that for the interruption to be measured at all
    for port in (5002, 5003):
        summary, got, move = _stream(lab, tmp_path, port, 2500, gap)
        _check_gap(summary, got, move)


def _check_gap(summary: dict, got: dict, move: LinkMove) -> None:
    m = traffic.measure(summary["sent"], got["received"], move.link_changes())
    # the port is down 60 ms: datagrams are lost (how many depends on when the loaded sender got the CPU, so
    # only that some are) and the interruption, measured on the receiver's kernel timestamps, spans the gap;
    # how much longer is the machine's scheduling (BENCHMARKS.md measures it), not asserted here
    assert m["lost"] > 0, m
    assert m["duplicated"] == 0 and m["reordered"] == 0
    assert m["interruption_ms"] is not None and m["interruption_ms"] >= 60, m
    assert m["link_up_to_first_packet_ms"] >= 0, m
    # nothing arrives while the port is down
    assert not [r for r in got["received"] if move.down_ns < r[1] < move.up_ns]


@needs_root
def test_router_config_runs_the_engine_on_the_par(tmp_path):
    """``router_config("par")`` as written drives ``fmipfast router`` on the PAR's veth ends: the CN's stream
    crosses core and the engine to the MN without loss, and the engine's counters conserve."""
    with LabTopology(prefix=f"fmipfast-e{os.getpid()}-") as lab:
        cfg = tmp_path / "par.toml"
        cfg.write_text(lab.router_config("par"))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        router = lab.spawn("par", [sys.executable, "-m", "fmipfast", "router", "--config", str(cfg)], env=env)
        assert router.stdout is not None
        line = router.stdout.readline()
        assert line.startswith("READY par"), (line, router.stderr.read() if router.poll() is not None else "")
        warm = lab.ns["cn"].run("ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", str(lab.pcoa), check=False)
        assert warm.returncode == 0, warm.stdout + warm.stderr
        summary, got, _ = _stream(lab, tmp_path, 5004, 500)
        m = traffic.measure(summary["sent"], got["received"])
        assert (m["received"], m["lost"], m["duplicated"]) == (500, 0, 0), m
        router.send_signal(signal.SIGTERM)
        out, err = router.communicate(timeout=30)
        assert router.returncode == 0, err
        final = json.loads(out.strip().splitlines()[-1])
        assert final["conservation"]["holds"] and final["counters"]["forwarded"] >= 500


# ------------------------------------------------------------------------------------------ move_mn


def master(lab: LabTopology) -> str:
    """The bridge the MN's port is in (in ``air``)."""
    line = lab.ns["air"].ip("-o", "link", "show", lab.air_mn).stdout
    return line.split(" master ")[1].split()[0]


@needs_root
def test_move_mn_changes_bridge_with_the_gap(lab):
    assert master(lab) == "brA"
    before = time.monotonic_ns()
    move = lab.move_mn(to="B", gap_ms=25)
    after = time.monotonic_ns()
    assert isinstance(move, LinkMove) and (move.old, move.new) == ("A", "B")
    assert before <= move.down_request_ns <= move.down_ns < move.up_ns <= move.up_ack_ns <= after
    assert move.up_ns - move.down_ns >= 25 * MS and move.gap_ms >= 25
    assert master(lab) == "brB"
    assert "state UP" in lab.ns["air"].ip("link", "show", lab.air_mn).stdout
    assert move.link_changes() == [("down", move.down_ns), ("up", move.up_ns)]
    back = lab.move_mn(to="A", gap_ms=0)
    assert master(lab) == "brA" and back.down_ns <= back.up_ns
    with pytest.raises(ValueError):
        lab.move_mn(to="C")


@needs_root
def test_a_prepared_move_runs_in_the_switch_process_and_reads_the_mns_carrier(lab):
    """After prepare_move() the move is made by the switch process (fmipfast.lab.namespaces.mover), outside this
    interpreter, which also reads when the MN's carrier came up (the kernel's RTM_NEWLINK in the MN's namespace):
    after the up request, and only when the MN's interface really has carrier."""
    lab.prepare_move()
    try:
        switch = lab._mover
        assert switch is not None and switch.poll() is None and switch in lab.processes
        move = lab.move_mn(to="B", gap_ms=20)
        assert move.down_request_ns <= move.down_ns < move.up_ns <= move.up_ack_ns
        assert move.up_ns - move.down_ns >= 20 * MS
        assert move.up_ns < move.carrier_ns < move.up_ns + 1000 * MS, move
        assert move.link_changes() == [("down", move.down_ns), ("up", move.up_ns), ("carrier", move.carrier_ns)]
        assert "LOWER_UP" in lab.ns["mn"].ip("link", "show", lab.mn_if).stdout
        held = lab.move_mn(to="A", gap_ms=0, hold_ms=30)
        assert held.carrier_ns and time.monotonic_ns() - held.carrier_ns >= 30 * MS  # answered after the hold
        assert lab.mn_link == "A"
        # in two halves, as `lab run` moves: the command handed over (one write on the switch's pipe), then the
        # answer; the times of both ends of the pipe come with it
        written = lab.start_move("B", gap_ms=60)
        assert lab.mn_link == "A"  # until the answer says the move was made
        with pytest.raises(LabError, match="already under way"):
            lab.start_move("A", gap_ms=0)
        ready, _, _ = select.select([lab.move_answer_fileno()], [], [], 5)  # what an event loop waits for
        assert ready
        move = lab.finish_move()
        assert written == move.command_ns <= move.read_ns <= move.down_request_ns <= move.down_ns < move.up_ns
        assert move.up_ns - move.down_ns >= 60 * MS and (move.old, move.new, lab.mn_link) == ("A", "B", "B")
        with pytest.raises(LabError, match="no layer-2 move under way"):
            lab.finish_move()
    finally:
        lab._close_mover()
    assert switch.poll() is not None and lab._mover is None
    with pytest.raises(LabError, match="not running"):
        lab.start_move("A")


def test_the_switch_at_a_realtime_priority_says_so_in_its_moves(lab):
    """prepare_move(priority) starts the switch at SCHED_FIFO; each move reports the priority it was made at
    (0 for an ordinary switch), so a run records how its switch was scheduled."""
    from fmipfast.lab.namespaces.run import realtime_allowed

    # root (the lab fixture's condition) may take SCHED_FIFO, as the lab's realtime routers do
    assert realtime_allowed(11), "root here, yet no process may take SCHED_FIFO (no realtime time in its cgroup?)"
    lab.prepare_move(11)
    try:
        assert lab.move_mn(to="B", gap_ms=0).priority == 11
    finally:
        lab._close_mover()
    lab.prepare_move()
    try:
        assert lab.move_mn(to="A", gap_ms=0).priority == 0
    finally:
        lab._close_mover()


def test_the_switch_delay_is_timed_by_the_switch(lab):
    """start_move(delay_ms=D): the port-down request leaves no earlier than D after the command was written --
    the switch sleeps to that instant itself, so a delay below a millisecond is one (the MN agent's event
    loop, which timed it before, rounds its timeouts to whole milliseconds).  A start more than 10 s ahead,
    or a command the switch cannot read, is an error line and the switch goes on."""
    lab.prepare_move()
    try:
        for to, delay in (("B", 0.3), ("A", 2.0)):
            written = lab.start_move(to, gap_ms=0, delay_ms=delay)
            move = lab.finish_move()
            assert move.down_request_ns - written >= delay * MS, (delay, (move.down_request_ns - written) / MS)
        with pytest.raises(ValueError, match="delay_ms"):
            lab.start_move("B", gap_ms=0, delay_ms=10_001)
        switch = lab._mover
        for bad in (f"move {lab.bridges['B']} 0 0 {time.monotonic_ns() + 11 * 10**12}", "move x 0 0 soon"):
            switch.stdin.write(bad + "\n")
            switch.stdin.flush()
            assert "error" in json.loads(switch.stdout.readline())
        assert lab.move_mn(to="B", gap_ms=0).down_ns  # still moving
    finally:
        lab._close_mover()


def test_the_switch_refuses_a_priority_outside_fifos_range():
    done = subprocess.run([sys.executable, "-m", "fmipfast.lab.namespaces.mover", "--port", "x", "--mn-netns", "x",
                           "--mn-if", "x", "--realtime", "100"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--realtime must be within 0..99" in done.stderr, done.stderr


# ------------------------------------------------------------------------------------------ teardown


@needs_root
def test_down_after_an_exception_in_the_context_manager_leaves_nothing():
    prefix = f"fmipfast-x{os.getpid()}-"
    with pytest.raises(RuntimeError, match="boom"):
        with LabTopology(prefix=prefix) as t:
            proc = t.spawn("mn", ["sleep", "30"])
            raise RuntimeError("boom")
    assert proc.poll() is not None
    assert not [n for n in _namespaces() if n.startswith(prefix)]
    t.down()  # idempotent


@needs_root
def test_cleanup_removes_a_crashed_runs_leftovers():
    prefix = f"fmipfast-c{os.getpid()}-"
    t = LabTopology(prefix=prefix).up()
    t.spawn("core", ["sleep", "30"])
    t.ns.clear()  # as if the process had died: nothing tracked any more
    t.processes.clear()
    t._disarm()
    assert len([n for n in _namespaces() if n.startswith(prefix)]) == len(topology.ROLES)
    assert sorted(topology.cleanup(prefix)) == sorted(prefix + r for r in topology.ROLES)
    assert not [n for n in _namespaces() if n.startswith(prefix)]
    assert topology.cleanup(prefix) == []


LAB_SCRIPT = r"""
import sys, time
from fmipfast.lab.namespaces.topology import LabTopology
with LabTopology(prefix=sys.argv[1]) as t:
    p = t.spawn("cn", ["sleep", "30"])
    print(p.pid, flush=True)
    time.sleep(30)
"""


@needs_root
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_tears_the_lab_down(signum):
    """Ctrl-C (KeyboardInterrupt) and SIGTERM (made SystemExit while the lab is up) unwind through the
    context manager: no namespace and no spawned process survives."""
    prefix = f"fmipfast-s{os.getpid()}-"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-c", LAB_SCRIPT, prefix], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        assert len([n for n in _namespaces() if n.startswith(prefix)]) == len(topology.ROLES)
        proc.send_signal(signum)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        leftovers = topology.cleanup(prefix)
    assert proc.returncode != 0
    assert leftovers == [], "the signal left namespaces behind"
    assert not os.path.exists(f"/proc/{child}"), "the spawned process survived"


# ------------------------------------------------------------------------------------ measure(), pure


def _recs(pairs):
    return [[seq, t * MS, 1, 0] for seq, t in pairs]


def test_measure_clean_stream_without_move():
    m = traffic.measure(3, _recs([(0, 1), (1, 2), (2, 3)]))
    assert m == {"sent": 3, "received": 3, "lost": 0, "duplicated": 0, "reordered": 0, "interruption_ms": None,
                 "link_up_to_first_packet_ms": None}


def test_measure_has_the_demo_json_keys():
    from fmipfast.lab.simulated.demo import Result

    demo_keys = set(Result.__dataclass_fields__)
    assert set(traffic.measure(0, [])) <= demo_keys


def test_measure_loss_duplicates_reordering():
    # 0 1 3 2 2 5 (4 and 6 lost); 2 arrives after 3: reordered; the second 2: duplicated and reordered
    m = traffic.measure(7, _recs([(0, 1), (1, 2), (3, 3), (2, 4), (2, 5), (5, 6)]))
    assert (m["received"], m["lost"], m["duplicated"], m["reordered"]) == (5, 2, 1, 2)


def test_measure_ignores_numbers_never_sent_for_loss():
    m = traffic.measure([0, 1, 2], _recs([(0, 1), (1, 2), (99, 3)]))
    assert (m["sent"], m["received"], m["lost"]) == (3, 2, 1)


def test_measure_interruption_and_link_up_to_first_packet():
    recs = _recs([(0, 10), (1, 11), (2, 12), (9, 60), (10, 61)])
    m = traffic.measure(11, recs, [("down", 20 * MS), ("up", 50 * MS)])
    assert m["interruption_ms"] == pytest.approx(48.0)  # 12 ms -> 60 ms
    assert m["link_up_to_first_packet_ms"] == pytest.approx(10.0)
    assert m["lost"] == 6
    # a datagram the kernel received before the up but the application read later still counts as old-link
    late_read = _recs([(0, 10), (1, 45), (2, 55)])
    m = traffic.measure(3, late_read, {"down": 20 * MS, "up": 50 * MS})
    assert m["interruption_ms"] == pytest.approx(10.0) and m["link_up_to_first_packet_ms"] == pytest.approx(5.0)


def test_measure_link_up_to_first_packet_counts_from_the_carrier():
    """With the MN's carrier known, link up is the carrier, not the lab's request (fmipfast.lab.namespaces.latency);
    the request still splits the old link's arrivals from the new one's.  A carrier from before the request
    belongs to an earlier change."""
    recs = _recs([(0, 10), (1, 11), (2, 12), (9, 60), (10, 61)])
    m = traffic.measure(11, recs, [("down", 20 * MS), ("up", 50 * MS), ("carrier", 52 * MS)])
    assert m["link_up_to_first_packet_ms"] == pytest.approx(8.0) and m["interruption_ms"] == pytest.approx(48.0)
    m = traffic.measure(11, recs, {"down": 20 * MS, "up": 50 * MS, "carrier": 51 * MS})
    assert m["link_up_to_first_packet_ms"] == pytest.approx(9.0)
    m = traffic.measure(11, recs, [("carrier", 5 * MS), ("down", 20 * MS), ("up", 50 * MS)])
    assert m["link_up_to_first_packet_ms"] == pytest.approx(10.0)


def test_measure_without_arrivals_on_one_side():
    assert traffic.measure(2, _recs([(0, 1)]), [("down", 2 * MS), ("up", 3 * MS)])["interruption_ms"] is None
    m = traffic.measure(2, _recs([(1, 9)]), [("down", 2 * MS), ("up", 3 * MS)])
    assert m["interruption_ms"] is None and m["link_up_to_first_packet_ms"] == pytest.approx(6.0)
    # an "up" before the first "down" is not the move's
    m = traffic.measure(1, _recs([(0, 9)]), [("up", 1 * MS), ("down", 2 * MS), ("up", 4 * MS)])
    assert m["link_up_to_first_packet_ms"] == pytest.approx(5.0)


def test_traffic_bounds():
    with pytest.raises(ValueError, match="rate"):
        traffic.send("::1", 9, traffic.MAX_RATE + 1, 1)
    with pytest.raises(ValueError, match="count"):
        traffic.send("::1", 9, 1000, traffic.MAX_COUNT + 1)
    with pytest.raises(ValueError, match="duration"):
        traffic.recv("::1", 9, traffic.MAX_DURATION_S + 1)
    with pytest.raises(SystemExit):
        traffic.main(["send", "--to", "::1", "--port", "9", "--count", "0"])


def test_lost_ranges_place_each_gap_on_the_senders_clock():
    sent = {"sent": 10, "first_ns": 1_000_000_000, "rate": 1000}
    got = [[s, 0] for s in (0, 1, 4, 5, 9)]
    ranges = traffic.lost_ranges(sent, got, t0=1_000_000_000)
    assert ranges == [{"first": 2, "last": 3, "sent_ms": 2.0}, {"first": 6, "last": 8, "sent_ms": 6.0}]
    assert traffic.lost_ranges(sent, [[s, 0] for s in range(10)], 0) == []
    assert traffic.lost_ranges({"sent": 3, "first_ns": 0}, [], 0) == [{"first": 0, "last": 2}]  # no rate: no time

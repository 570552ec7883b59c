"""The demo's discrete-event simulator and minimal host: ordering, link delay, moves, and an engine routing
a UDP stream between two simulated hosts (ND answered by the host stack)."""

from __future__ import annotations

from fmipfast import config
from fmipfast.engine import Engine
from fmipfast.lab.simulated.host import Host
from fmipfast.lab.simulated.sim import MS, Sim, SimLink, SimPort

MAC = [bytes((2, 0, 0x5E, 0, 0, i)) for i in range(10)]


def test_events_run_in_time_then_schedule_order():
    sim = Sim()
    seen = []
    sim.at(5, lambda: seen.append("b"))
    sim.at(1, lambda: seen.append("a"))
    sim.at(5, lambda: seen.append("c"))
    sim.every(2, lambda: seen.append(sim.now), until_ns=6)
    sim.run(10)
    assert seen == [0, "a", 2, 4, "b", "c", 6] and sim.now == 10


def test_link_delay_and_loss_in_flight_when_a_port_moves():
    sim = Sim()
    a, b = SimLink(sim, "A", 2 * MS), SimLink(sim, "B", 2 * MS)
    p1, p2 = SimPort(sim, "p1", MAC[1], a), SimPort(sim, "p2", MAC[2], a)
    got = []
    p2.on_receive = lambda: got.extend((sim.now, f) for batch in p2.receive() for f in batch.frames())
    p1.send_frames([b"x" * 20])
    sim.run(1 * MS)
    assert got == []
    sim.run(3 * MS)
    assert got == [(2 * MS, b"x" * 20)]
    p1.send_frames([b"y" * 20])
    sim.after(1 * MS, lambda: p2.attach(b))  # p2 leaves while the frame is in flight
    sim.run(10 * MS)
    assert len(got) == 1 and a.counters["lost_in_flight"] == 1
    p2.attach(None)
    assert p2.send_frames([b"z"]) == 0 and p2.counters["tx_lost_link_down"] == 1


def test_engine_routes_a_stream_between_simulated_hosts():
    sim = Sim(1_000 * MS)
    core, access = SimLink(sim, "core", 1 * MS), SimLink(sim, "access", 2 * MS)
    cfg = config.loads("""
[router]
[[router.interfaces]]
name = "acc0"
addresses = ["2001:db8:1::1/64"]
[[router.interfaces]]
name = "up0"
role = "upstream"
addresses = ["2001:db8:ff::1/64"]
""").router
    ports = {"acc0": SimPort(sim, "acc0", MAC[1], access), "up0": SimPort(sim, "up0", MAC[2], core)}
    engine = Engine(cfg, ports, clock=sim.clock)
    for p in ports.values():
        p.on_receive = engine.poll
    cn = Host(sim, "cn", SimPort(sim, "cn0", MAC[3], core), ["2001:db8:ff::10"])
    mn = Host(sim, "mn", SimPort(sim, "mn0", MAC[4], access), ["2001:db8:1::a"])
    cn.set_neighbor("2001:db8:ff::1", MAC[2])
    cn.set_default_router("2001:db8:ff::1")
    arrivals = []
    mn.on_udp = lambda src, dst, sp, dp, data, now: arrivals.append((int.from_bytes(data[:4], "big"), now))
    seq = iter(range(1000))
    sim.every(1 * MS, lambda: cn.send_udp("2001:db8:ff::10", "2001:db8:1::a", 5000, 5000,
                                           next(seq).to_bytes(4, "big") + b"stream"), until_ns=sim.now + 49 * MS)
    sim.run(sim.now + 200 * MS)
    # four datagrams arrived during the 4 ms of resolution; the queue keeps the 3 newest (RFC 4861 §7.2.2)
    assert [s for s, _ in arrivals] == list(range(1, 50))
    assert engine.unresolved.counters["dropped_oldest"] == 1
    assert arrivals[-1][1] - arrivals[-2][1] == 1 * MS
    assert engine.conservation()["holds"] and mn.counters["ns_answered"] >= 1

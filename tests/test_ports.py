"""The three port implementations the engine runs on: memory (hub links, moves), pcap in/out, and rings."""

from __future__ import annotations

import heapq
import os
import time

import numpy as np
import pytest

from fmipfast.pcap import PcapWriter, read_pcap
from fmipfast.ports import MemoryLink, MemoryPort, PcapPort, RingPort, pack_frames

MAC = [bytes((2, 0, 0, 0, 0, i)) for i in range(8)]


def _frames(n: int, tag: int = 0) -> list[bytes]:
    return [MAC[1] + MAC[2] + b"\x88\xb5" + bytes([tag, i % 256]) * (20 + i % 7) for i in range(n)]


def test_pack_frames_round_trip():
    frames = _frames(5)
    arena, offsets, lengths = pack_frames(frames)
    assert arena.dtype == np.uint8 and offsets.dtype == np.int64 and lengths.dtype == np.uint32
    assert [arena[o:o + n].tobytes() for o, n in zip(offsets, lengths)] == frames
    empty = pack_frames([])
    assert [len(x) for x in empty] == [0, 0, 0]


def test_memory_link_is_a_hub_and_ports_move():
    now = [5]
    a, b = MemoryLink("A"), MemoryLink("B")
    par = MemoryPort("par0", MAC[1], a, clock=lambda: now[0], batch_size=4)
    mn = MemoryPort("mn0", MAC[2], a)
    cn = MemoryPort("x0", MAC[3], a)
    nar = MemoryPort("nar0", MAC[4], b)
    assert par.send_frames(_frames(10)) == 10
    got = [f for batch in mn.receive() for f in batch.frames()]
    assert got == _frames(10) and cn.pending() == 10 and par.pending() == 0  # not back to the sender
    assert [len(batch) for batch in cn.receive()] == [10]  # batch_size is the receiver's
    batches = list(par.receive())
    assert batches == []
    # the layer-2 handover: mn leaves A (queued frames lost), is down for a while, then joins B
    par.send_frames(_frames(3, 1))
    mn.attach(None)
    assert mn.counters["rx_flushed_on_move"] == 3
    assert mn.send_frames(_frames(2)) == 0 and mn.counters["tx_lost_link_down"] == 2
    mn.attach(b)
    nar.send_frames(_frames(2, 2))
    batch = next(mn.receive())
    assert batch.frames() == _frames(2, 2) and list(batch.ts_ns) == [0, 0]
    par.send_frames(_frames(1, 3))
    assert mn.pending() == 0


def test_memory_link_taps_and_bounds():
    seen = []
    link = MemoryLink("A", queue_limit=3)
    link.taps.append(lambda t, f, name: seen.append((t, name, len(f))))
    p1, p2 = MemoryPort("p1", MAC[1], link), MemoryPort("p2", MAC[2], link)
    p1.send_frames(_frames(5))
    assert len(seen) == 5 and p2.pending() == 3
    assert p2.counters["rx_dropped_queue_full"] == 2 and link.counters["queue_full"] == 2



def test_memory_link_with_a_delay_on_a_scheduler():
    """The same wire on a caller's clock: arrivals ``delay_ns`` later, stamped by the receiver's clock; a frame
    in flight to a port that left is lost; one ``on_receive`` per burst; the queue bound still holds."""
    now, events, seq = [0], [], iter(range(1 << 30))

    def schedule(delay_ns, fn):
        heapq.heappush(events, (now[0] + delay_ns, next(seq), fn))

    def run_until(t):
        while events and events[0][0] <= t:
            now[0], _, fn = heapq.heappop(events)
            fn()
        now[0] = t

    clock = lambda: now[0]  # noqa: E731
    with pytest.raises(ValueError):
        MemoryLink("A", delay_ns=5)
    a, b = MemoryLink("A", delay_ns=5, schedule=schedule, queue_limit=3), MemoryLink("B", schedule=schedule)
    p1, p2 = MemoryPort("p1", MAC[1], a, clock=clock), MemoryPort("p2", MAC[2], a, clock=clock, batch_size=None)
    seen, wakes = [], []
    a.taps.append(lambda t, f, name: seen.append((t, name)))
    p2.on_receive = lambda: wakes.append((now[0], p2.pending()))
    now[0] = 10
    p1.send_frames(_frames(4))
    assert seen == [(10, "A")] * 4 and p2.pending() == 0
    run_until(14)
    assert p2.pending() == 0
    run_until(15)
    assert wakes == [(15, 3)] and a.counters["queue_full"] == 1 and p2.counters["rx_dropped_queue_full"] == 1
    batches = list(p2.receive())
    assert [len(x) for x in batches] == [3] and list(batches[0].ts_ns) == [15, 15, 15]
    p1.send_frames(_frames(1))
    run_until(17)
    p2.attach(b)  # leaves while the frame is in flight
    run_until(30)
    assert a.counters["lost_in_flight"] == 1 and p2.pending() == 0 and a.counters["delivered"] == 3


def test_memory_port_on_receive_without_a_scheduler():
    link = MemoryLink("A")
    p1, p2 = MemoryPort("p1", MAC[1], link), MemoryPort("p2", MAC[2], link)
    got = []
    p2.on_receive = lambda: got.extend(f for batch in p2.receive() for f in batch.frames())
    p1.send_frames(_frames(2))
    assert got == _frames(2) and link.counters["lost_in_flight"] == 0

def test_pcap_port_replays_and_captures(tmp_path):
    src = tmp_path / "in.pcap"
    frames = _frames(600)
    with PcapWriter(src) as w:
        for i, f in enumerate(frames):
            w.write(f, ts_ns=i * 1000)
    port = PcapPort("eth0", MAC[1], src, tmp_path / "out.pcap", batch_size=256, clock=lambda: 42)
    batches = list(port.receive())
    assert [len(b) for b in batches] == [256, 256, 88]
    assert [f for b in batches for f in b.frames()] == frames
    assert batches[1].ts_ns[0] == 256 * 1000
    port.send(*pack_frames(frames[:3]))
    port.close()
    out = read_pcap(tmp_path / "out.pcap")
    assert [r.data for r in out] == frames[:3] and {r.ts_ns for r in out} == {42}
    mem = PcapPort("eth1", MAC[2])
    assert list(mem.receive()) == [] and mem.send_frames(frames[:2]) == 2 and mem.sent == frames[:2]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces and AF_PACKET (CI runs as root)")
def test_ring_port_on_veth():
    from fmipfast.lab.namespaces.netns import Netns

    with Netns(f"ports-{os.getpid()}") as ns:
        ns.veth("va", "vb")
        with ns.enter():
            a = RingPort("va", rx_block_size=1 << 16, rx_block_nr=4, rx_timeout_ms=5)
            b = RingPort("vb", rx_block_size=1 << 16, rx_block_nr=4, rx_timeout_ms=5)
            try:
                assert len(a.mac) == 6 and a.fileno() is not None
                frames = _frames(40)
                assert a.send_frames(frames) == 40
                got: list[bytes] = []
                deadline = time.monotonic() + 5
                while len(got) < 40 and time.monotonic() < deadline:
                    b.ring.wait(0.1)
                    for batch in b.receive():
                        got += [f for f in batch.frames() if f[12:14] == b"\x88\xb5"]
                        batch.release()
                assert got == frames
                stats = b.statistics()
                assert stats["kernel_drops"] == 0 and stats["rx_frames"] >= 40
            finally:
                a.close()
                b.close()

"""Floods against a live access router (``tests/hostile_net.py``: engine + RouterAgent, lwkerb, AH, on the
in-memory wire with a simulated clock), against a real KDC on loopback and against the control socket, each
with its counters asserted: forged HIs at line rate, address-scan traffic into the access /64 (RFC 6583)
while a known MN keeps its traffic, RS floods (RFC 4861 §6.2.6), more handovers than the NAR has buffer keys,
garbage KDC datagrams, and a crowd of idle control connections.  No wall-clock bound is asserted: order,
counts and conservation only.  The long variants are marked ``slow`` and need FMIPFAST_SLOW=1."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
from ipaddress import IPv6Address

import numpy as np
import pytest

from fmipfast.constants import DropReason, NeighborState
from fmipfast.lab.simulated.sim import MS
from fmipfast.security import lwkerb as L
from tests.hostile_net import (
    ALL_ROUTERS,
    CN,
    MAC_PAR,
    MAC_UP,
    MN_COA,
    MN_MAC,
    NCACHE_CAPACITY,
    World,
    eth,
    from_peer,
    hi_packet,
    icmp,
    link_local,
    opt,
    rs,
    udp,
    under_ah,
)

BATCH = 256


def _entry(w: World, address: IPv6Address) -> tuple[int, int, bytes] | None:
    return w.snapshot().neighbors.get(address)


# ------------------------------------------------------------------------------------------ forged HIs
def test_forged_his_at_line_rate_are_all_dropped_and_counted():
    """2 000 HIs without AH and 2 000 under AH with a broken ICV, from the peer router's address and MAC, all at
    the same instant: the first are dropped by the engine (FMIP_NO_AH), the second by AH (bad_icv) before the
    protocol machine; no NAR record, proxy entry or answer comes of any of them."""
    n = 2000
    w = World()
    w.legit_state()
    before = w.snapshot()
    c0, drops0 = dict(w.engine.counters), w.engine.drops.copy()
    ar0, ah0 = dict(w.agent.ar.counters), dict(w.agent.ah_counters)
    plain = from_peer(hi_packet(w.epoch, identifier=500))
    forged = []
    base = hi_packet(w.epoch, identifier=501)
    for seq in range(2, n + 2):  # fresh sequence numbers: the replay window passes them, the ICV does not
        p = bytearray(under_ah(base, seq))
        p[52] ^= 0x5A
        forged.append(from_peer(bytes(p)))
    frames = [plain] * n + forged
    random.Random(1).shuffle(frames)
    for start in range(0, len(frames), BATCH):
        w.peer.send_frames(frames[start:start + BATCH])
    w.poll()
    w.settle(5)
    c = w.engine.counters
    assert c["received"] - c0["received"] == 2 * n
    assert int(w.engine.drops[DropReason.FMIP_NO_AH] - drops0[DropReason.FMIP_NO_AH]) == n
    assert c["delivered"] - c0["delivered"] == n  # the AH ones reach the control path ...
    assert w.agent.ah_counters.get("bad_icv", 0) - ah0.get("bad_icv", 0) == n  # ... and stop at AH
    assert w.agent.counters["ah_rejected"] == n
    assert w.agent.ar.counters == ar0  # the machine saw none of them
    w.check(before, 2 * n, c0["received"])
    assert [f for f in w.drain(w.peer) if f[20] == 51] == []  # no Handover Error went out


# ------------------------------------------------------------------------------------------ RFC 6583 scan
def _scan(total: int, seed: int = 6583) -> dict[str, int]:
    """``total`` datagrams from the core to random addresses of the access /64, in blocks of 256 one simulated
    millisecond apart, each block followed by one datagram of the CN to the attached MN."""
    w = World()
    w.legit_state()
    mn_before = _entry(w, MN_COA)
    assert mn_before is not None and mn_before[2] == MN_MAC
    template = bytearray(eth(MAC_UP, MAC_PAR, udp(CN, "2001:db8:2::", b"scan")))
    rng = np.random.default_rng(seed)
    c0 = dict(w.engine.counters)
    inserted0 = w.engine.ncache.counters["inserted"]
    sent_mn = got_mn = 0
    for start in range(0, total, BATCH):
        count = min(BATCH, total - start)
        iids = rng.integers(0, 2**63, size=count, dtype=np.int64).astype(">u8").tobytes()
        block = []
        for k in range(count):
            template[14 + 32:14 + 40] = iids[8 * k:8 * k + 8]
            block.append(bytes(template))
        block.append(eth(MAC_UP, MAC_PAR, udp(CN, MN_COA, struct.pack("!I", sent_mn))))
        sent_mn += 1
        w.peer.send_frames(block)
        w.poll()
        got_mn += sum(1 for f in w.drain(w.mn) if f[20] == 17)
        w.drain()
        w.sim.run(w.sim.now + MS)
        assert w.engine.conservation()["holds"]
    c = w.engine.counters
    mn_after = _entry(w, MN_COA)
    assert mn_after is not None and mn_after[2] == MN_MAC and mn_after[0] != NeighborState.INCOMPLETE
    assert got_mn == sent_mn  # the MN's traffic kept flowing, every datagram
    assert c["forwarded"] - c0["forwarded"] == sent_mn  # and nothing of the scan was forwarded anywhere
    assert c["received"] - c0["received"] == total + sent_mn
    assert int(np.asarray(w.engine.ncache.in_use).sum()) <= NCACHE_CAPACITY
    full = int(w.engine.drops[DropReason.NEIGHBOR_TABLE_FULL])
    queued = c["queued_resolve"] - c0["queued_resolve"]
    assert queued + c["dropped"] - c0["dropped"] == total  # every scan datagram: queued for resolution or dropped
    # at most resolve_retries solicitations per resolution, and a resolution needs a free entry of the table
    resolutions = w.engine.ncache.counters["inserted"] - inserted0
    assert c["ns_sent"] - c0["ns_sent"] <= w.engine.cfg.resolve_retries * resolutions
    return {"sent": total, "mn_sent": sent_mn, "mn_received": got_mn, "queued_resolve": queued,
            "neighbor_table_full": full, "ns_sent": c["ns_sent"] - c0["ns_sent"], "inserted": resolutions,
            "dropped": int(w.engine.drops.sum())}


def test_address_scan_of_the_access_prefix_keeps_the_mn_reachable():
    figures = _scan(20_000)
    print("RFC 6583 scan:", figures)
    assert figures["neighbor_table_full"] > 0  # the table did fill: the scan was big enough to matter


@pytest.mark.slow
def test_address_scan_of_a_million_addresses():
    figures = _scan(1_000_000)
    print("RFC 6583 scan:", figures)


def test_ns_flood_from_random_sources_learns_within_the_table():
    """NS for the router's address from 5 000 random sources of the /64, each with a source link-layer
    option (RFC 4861 §7.2.3: STALE entries): the cache stays within its capacity, the MN keeps its entry and
    its traffic, every NS is counted."""
    from fmipfast.engine import solicited_node
    from tests.hostile_net import ROUTER, ns, slla

    w = World()
    w.legit_state()
    rng = random.Random(4861)
    c0 = dict(w.engine.counters)
    sent_mn = got_mn = 0
    total = 5_000
    for start in range(0, total, BATCH):
        block = [icmp(IPv6Address(int(ROUTER) + rng.getrandbits(48) + 2), solicited_node(ROUTER),
                      ns(ROUTER, slla(bytes((2, 0xBA, 0xD0)) + rng.getrandbits(24).to_bytes(3, "big"))))
                 for _ in range(min(BATCH, total - start))]
        w.evil.send_frames(block)
        w.peer.send_frames([eth(MAC_UP, MAC_PAR, udp(CN, MN_COA, struct.pack("!I", sent_mn)))])
        sent_mn += 1
        w.poll()
        got_mn += sum(1 for f in w.drain(w.mn) if f[20] == 17)
        w.drain()
        w.sim.run(w.sim.now + MS)
    c = w.engine.counters
    assert c["received"] - c0["received"] == total + sent_mn and w.engine.conservation()["holds"]
    assert c["delivered"] - c0["delivered"] == total
    assert got_mn == sent_mn
    mn = _entry(w, MN_COA)
    assert mn is not None and mn[2] == MN_MAC
    assert int(np.asarray(w.engine.ncache.in_use).sum()) <= NCACHE_CAPACITY
    print("NS flood:", {"sent": total, "na_sent": c["na_sent"] - c0["na_sent"], "mn": (sent_mn, got_mn),
                        "ncache": dict(w.engine.ncache.counters)})


# ------------------------------------------------------------------------------------------ RS flood
def test_rs_flood_answers_are_rate_limited():
    """A router answering every RS at once, each in a unicast RA several times its size, is a reflector.  The
    engine answers at once but through a token bucket per interface (docs/spec-notes.md: RFC 4861 §6.2.6's
    random delay is not taken, its rate limit is): 5 000 RSs from distinct link-local sources within one
    simulated second get at most the bucket's burst plus a second's rate of answers, the rest counted
    ``ra_limited``.  Every RS is counted (delivered) and the neighbor cache stays within its capacity."""
    from fmipfast.engine import SOLICITED_RA_BURST, SOLICITED_RA_RATE
    w = World()
    w.legit_state()
    c0 = dict(w.engine.counters)
    t0 = w.sim.now
    total = 5000
    rng = random.Random(6)
    for start in range(0, total, BATCH):
        block = []
        for _ in range(min(BATCH, total - start)):
            mac = bytes((2, 0xBA, 0xD1)) + rng.getrandbits(24).to_bytes(3, "big")
            block.append(icmp(link_local(mac), ALL_ROUTERS, rs(opt(1, 1, mac)), src_mac=mac))
        w.evil.send_frames(block)
        w.poll()
        w.drain()
        w.sim.run(w.sim.now + 40 * MS)
    c = w.engine.counters
    answered = c["ra_sent"] - c0["ra_sent"]
    print("RS flood:", {"sent": total, "ra_sent": answered, "originated": c["originated"] - c0["originated"]})
    assert c["delivered"] - c0["delivered"] == total and w.engine.conservation()["holds"]
    assert int(np.asarray(w.engine.ncache.in_use).sum()) <= NCACHE_CAPACITY
    elapsed_s = (w.sim.now - t0) / 1e9
    assert answered <= SOLICITED_RA_BURST + SOLICITED_RA_RATE * elapsed_s + 1, \
        f"{answered} Router Advertisements for {total} RSs within {elapsed_s:.2f} s: not rate-limited"
    assert c["ra_limited"] - c0.get("ra_limited", 0) == total - answered


# ------------------------------------------------------------------------------------------ handover churn
def test_more_handovers_than_buffer_keys():
    """1 100 authenticated handovers from the peer, one after another (each with a short lifetime, each with a
    datagram for its NCoA buffered): past the NAR buffer's 1 024 keys the engine keeps running -- a handover
    is accepted (a key came back) or refused with "insufficient resources", counted -- and conservation holds."""
    w = World(max_handovers=64)
    w.legit_state()
    ar = w.agent.ar
    c0 = dict(w.engine.counters)
    n, group = 1100, 50
    for first in range(0, n, group):
        ncoas = [IPv6Address(f"2001:db8:2::1:{i:x}") for i in range(first, min(n, first + group))]
        w.inject(w.peer, [from_peer(under_ah(hi_packet(w.epoch, identifier=1000 + first + k, ncoa=ncoa,
                                                       pcoa=IPv6Address(f"2001:db8:1::1:{first + k:x}"),
                                                       lifetime_ms=20), w.next_seq()))
                          for k, ncoa in enumerate(ncoas)])
        w.settle(2)  # verified: proxying
        w.inject(w.peer, [eth(MAC_UP, MAC_PAR, udp(CN, ncoa, b"for the MN")) for ncoa in ncoas])
        w.settle(30)  # their lifetimes end: proxy entries and buffers go
    w.settle(100)
    accepted, refused = ar.counters["hi_admitted"], ar.counters["refused_insufficient_resources"]
    print("handover churn:", {"his": n + 1, "admitted": accepted, "refused_insufficient_resources": refused,
                              "proxy_expired": ar.counters["proxy_expired"],
                              "buffered": w.engine.counters["buffered"] - c0["buffered"]})
    assert accepted + refused == n + 1  # (the legit one of legit_state included)
    assert len([f for f in w.drain(w.peer) if f[20] == 51]) == n  # every HI answered by one Handover Error
    assert w.engine.conservation()["holds"]
    assert not w.engine._proxy_key or len(w.engine._proxy_key) <= 2 * 64 + 2


# ------------------------------------------------------------------------------------------ KDC
def _garbage(rng: random.Random, i: int) -> bytes:
    kind = i % 6
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 300))
    if kind == 1:
        return bytes((10 + i % 4,)) + rng.randbytes(rng.randrange(0, 600))  # a request type, then noise
    if kind == 2:
        return b""
    if kind == 3:
        return rng.randbytes(60000)
    if kind == 4:
        return bytes((rng.randrange(256),)) * rng.randrange(1, 64)
    return b"\x0a" + b"\xff" * 8 + rng.randbytes(32)


async def _flood_kdc(n: int, **cfg_kw) -> tuple[dict[str, int], int, int]:
    from fmipfast.security import kdc as K

    realm = "FLOOD.EXAMPLE"
    mn_key = L.Key.random()
    kt = L.Keytab()
    for name, key in ((f"krbtgt/{realm}", L.Key.random()), (f"access/{realm}", L.Key.random()), ("mn1", mn_key)):
        kt.add(L.Principal(name, realm), key)
    now = [float(int(time.time()))]  # standing still during the flood (the buckets do not refill)
    server = await K.start_kdc(K.KdcConfig(realm=realm, keytab=kt, **cfg_kw), clock=lambda: now[0])
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        rng = random.Random(88)

        def seen() -> int:
            return sum(server.counters[k] for k in ("malformed", "errors", "rate_limited", "sources_full",
                                                    "reply_cache_hits", "dropped"))

        for i in range(n):
            sock.sendto(_garbage(rng, i), server.address)
            for _ in range(10_000):  # one at a time: the server reads each before the next (no kernel loss)
                if seen() > i:
                    break
                await asyncio.sleep(0 if _ < 100 else 0.001)
            else:
                raise AssertionError(f"the KDC never counted datagram {i}: {server.counters}")
        replies = 0
        while True:
            try:
                sock.recvfrom(65536)
                replies += 1
            except BlockingIOError:
                break
        sock.close()
        counted = dict(server.counters)
        cache = len(server.kdc._replies)
        # the operator's MN still gets a ticket once its source's bucket has refilled
        now[0] += 10.0
        tgt = await K.KdcClient(server.address).as_exchange(L.Principal("mn1", realm), mn_key)
        assert tgt.client == L.Principal("mn1", realm)
        return counted, replies, cache
    finally:
        server.close()


def test_kdc_garbage_flood_is_counted_and_rate_limited():
    """3 000 garbage datagrams (noise, request types with noise, empty, 60 KB, repeats) at a real KDC on
    loopback from one source, the KDC's clock standing still: ``burst`` of them are parsed and answered with
    errors, the rest refused by the per-source bucket before any parsing; then a real AS exchange succeeds."""
    n = 3000
    counted, replies, cache = asyncio.run(_flood_kdc(n, burst=50, rate=200.0))
    print("KDC flood:", counted, "replies", replies)
    handled = counted["malformed"] + counted["errors"] + counted["reply_cache_hits"]
    assert handled + counted["rate_limited"] == n and counted["dropped"] == 0
    assert handled == 50 and counted["rate_limited"] == n - 50
    assert cache <= 1024


def test_kdc_garbage_is_parsed_in_bounded_memory():
    """With the bucket out of the way (a burst larger than the flood) every garbage datagram is parsed and
    refused: counted once each, nothing crashes the server, the reply cache stays at its bound."""
    n = 3000
    counted, replies, cache = asyncio.run(_flood_kdc(n, burst=10 * n, rate=1e6, reply_cache=256))
    print("KDC parse flood:", counted, "replies", replies)
    assert counted["malformed"] + counted["errors"] + counted["reply_cache_hits"] == n
    assert counted["dropped"] == 0 and counted["as_ok"] == 0 and cache <= 256


# ------------------------------------------------------------------------------------------ control socket
def test_control_socket_flood_leaves_the_operator_a_way_in(tmp_path):
    """200 clients connect to the router's control socket and stay silent; the operator's ``ping`` and
    ``counters`` are still answered."""
    from fmipfast.control import ControlClient, ControlServer, RouterControl

    async def scenario() -> tuple[dict, str]:
        w = World()
        path = str(tmp_path / "ctl.sock")
        server = ControlServer(RouterControl(w.engine), path)
        await server.start()
        crowd = []
        try:
            for _ in range(200):
                crowd.append(await asyncio.open_unix_connection(path))
            await asyncio.sleep(0.05)
            loop = asyncio.get_running_loop()
            answer = await loop.run_in_executor(None, lambda: ControlClient(path, timeout=3.0).call("ping"))
            counters = await loop.run_in_executor(None, lambda: ControlClient(path, timeout=3.0).call("counters"))
            return counters, answer
        finally:
            for _reader, writer in crowd:
                writer.close()
            await server.close()

    counters, answer = asyncio.run(scenario())
    assert answer == "pong" and counters["conservation"]["holds"]


def test_control_socket_survives_garbage_requests(tmp_path):
    """Garbage on the control socket (not JSON, JSON of the wrong shape, an over-long line) is answered with
    errors and counted; the server keeps serving."""
    from fmipfast.control import ControlClient, ControlServer, RouterControl

    async def scenario() -> dict:
        w = World()
        path = str(tmp_path / "ctl.sock")
        server = ControlServer(RouterControl(w.engine), path, max_request=4096)
        await server.start()
        try:
            for line in (b"\xff\xfe\n", b"[]\n", b'{"cmd": 5}\n', b'{"cmd": "nope"}\n', b"{" * 3000 + b"\n",
                         b"x" * 10000 + b"\n"):
                reader, writer = await asyncio.open_unix_connection(path)
                writer.write(line)
                await writer.drain()
                reply = await asyncio.wait_for(reader.readline(), 5)
                assert b'"ok": false' in reply, reply
                writer.close()
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, lambda: ControlClient(path).call("ping")) == "pong"
            return dict(server.counters)
        finally:
            await server.close()

    counters = asyncio.run(scenario())
    assert counters["errors"] + counters["too_long"] >= 6 and counters["connections"] == 7

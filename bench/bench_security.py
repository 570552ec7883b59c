"""pyperf benchmarks of fmipfast.security: case-1 AP-REQ verification, AH protect and AH verify per packet
(a HI-sized IPv6 packet of ~150 octets), and KDC TGS round trips over UDP on loopback.

    python bench/bench_security.py --fast -o bench/security.json

Goal (issue #5): case-1 verification under 50 µs median.  Inputs that must be unique (authenticators for
the replay cache, AH sequence numbers for the replay window) are built before the timer starts.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pyperf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from fmipfast.security import ah  # noqa: E402
from fmipfast.security import kdc as K  # noqa: E402
from fmipfast.security import lwkerb as L  # noqa: E402

NOW = 1_800_000_000
MN = L.Principal("mn1", "REALM-A")
NAR = L.Principal("nar1", "REALM-B")
BINDING = L.HandoverBinding("2001:db8:b::99", "2001:db8:a::99", "2001:db8:b::1", 7)
PAR6, NAR6 = "2001:db8:a::1", "2001:db8:b::1"
AH_KEY = bytes(range(32))


def _packet(size: int = 150) -> bytes:
    import ipaddress

    payload = b"\xc8\x03\x00\x00" + bytes(size - 44)  # an ICMPv6 type 200 code 3 (HI) body
    hdr = bytes([0x60, 0, 0, 0]) + len(payload).to_bytes(2, "big") + bytes([58, 255])
    return hdr + ipaddress.IPv6Address(PAR6).packed + ipaddress.IPv6Address(NAR6).packed + payload


def _case1_world():
    key = L.Key(1, bytes(range(32)))
    kt = L.Keytab()
    kt.add(NAR, key)
    skey = L.Key(0, bytes(range(1, 33)))
    part = L.EncTicketPart(L.TicketFlag.PRE_AUTHENT, NOW, NOW, NOW + 36000, skey.value, MN,
                           ((L.AUTHZ_TRANSITED, b"REALM-A"),))
    ticket = L.Ticket.issue(NAR, key, part)
    creds = L.Credentials(MN, NAR, ticket, skey, part.flags, NOW, NOW, NOW + 36000)
    return kt, creds


def bench_case1_verify(loops: int) -> float:
    kt, creds = _case1_world()
    reqs = [L.build_ap_req(creds, BINDING, now=NOW)[0].encode() for _ in range(loops)]
    v = L.ApVerifier("REALM-B", kt, clock=lambda: NOW, replay_capacity=loops + 1)
    verify = v.verify_local
    t0 = time.perf_counter()
    for r in reqs:
        verify(r, BINDING)
    return time.perf_counter() - t0


def bench_ah_protect(loops: int) -> float:
    pkt = _packet()
    sa = ah.SecurityAssociation(0x1000, AH_KEY, peer=NAR6)
    protect = ah.protect
    t0 = time.perf_counter()
    for _ in range(loops):
        protect(pkt, sa)
    return time.perf_counter() - t0


def bench_ah_verify(loops: int) -> float:
    pkt = _packet()
    tx = ah.SecurityAssociation(0x1000, AH_KEY, peer=NAR6)
    pkts = [ah.protect(pkt, tx) for _ in range(loops)]
    sad = ah.SADatabase()
    sad.add_inbound(ah.SecurityAssociation(0x1000, AH_KEY, peer=PAR6))
    verify = ah.verify
    t0 = time.perf_counter()
    for p in pkts:
        verify(p, sad)
    return time.perf_counter() - t0


def bench_kdc_tgs(loops: int) -> float:
    async def run() -> float:
        mnk = L.Key.random()
        kt = L.Keytab()
        for p, k in ((L.krbtgt("REALM-A"), L.Key.random()), (L.access_principal("REALM-A"), L.Key.random()),
                     (MN, mnk)):
            kt.add(p, k)
        cfg = K.KdcConfig(realm="REALM-A", keytab=kt, rate=1e9, burst=10**9, replay_capacity=10**7)
        srv = await K.start_kdc(cfg)
        try:
            cli = K.KdcClient(srv.address)
            tgt = await cli.as_exchange(MN, mnk)
            target = L.access_principal("REALM-A")
            t0 = time.perf_counter()
            for _ in range(loops):
                await cli.tgs_exchange(tgt, target)
            return time.perf_counter() - t0
        finally:
            srv.close()

    return asyncio.run(run())


if __name__ == "__main__":
    runner = pyperf.Runner()
    runner.metadata["description"] = "fmipfast.security per-operation costs"
    runner.bench_time_func("lkb_case1_verify", bench_case1_verify)
    runner.bench_time_func("ah_protect_150B", bench_ah_protect)
    runner.bench_time_func("ah_verify_150B", bench_ah_verify)
    runner.bench_time_func("kdc_tgs_udp_roundtrip", bench_kdc_tgs)

"""pyperf benchmarks of fmipfast.security: case-1 AP-REQ verification, AH protect and AH verify per packet
(a HI-sized IPv6 packet of ~150 octets), and KDC TGS round trips over UDP on loopback.

    python bench/bench_security.py --fast -o bench/security.json
    python bench/bench_security.py --mechanisms     # lwkerb vs standard Kerberos (real MIT KDCs), one run

Goal: case-1 verification under 50 µs median.  Inputs that must be unique (authenticators for
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


def bench_ah_protect_seqfile(loops: int) -> float:
    """AH protect with the outbound counter kept in a file (``ah.SequenceStore``): one fsync'd write per
    1 024 packets, amortised (the file lives in the system's temporary directory)."""
    import tempfile

    pkt = _packet()
    with tempfile.TemporaryDirectory() as d:
        sa = ah.SecurityAssociation(0x1000, AH_KEY, peer=NAR6, store=ah.SequenceStore(os.path.join(d, "seq.json")))
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


# ---- Baselines measured in the same run: the irreducible work of each operation, so the ratio shows what
# fmipfast adds on top (parsing, checks, counters, replay state).


def floor_hmac_150(loops: int) -> float:
    """One HMAC-SHA-256 over a 150-octet packet: the crypto inside one AH protect or verify."""
    from cryptography.hazmat.primitives import hashes, hmac

    data = _packet()
    t0 = time.perf_counter()
    for _ in range(loops):
        h = hmac.HMAC(AH_KEY, hashes.SHA256())
        h.update(data)
        h.finalize()
    return time.perf_counter() - t0


def floor_two_aead_opens(loops: int) -> float:
    """Two AES-256-GCM opens (ticket ~100 octets, authenticator ~90): the crypto inside case-1 verification."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    a, b = AESGCM(bytes(32)), AESGCM(bytes(range(32)))
    nonce = bytes(12)
    ct1, ct2 = a.encrypt(nonce, bytes(100), b"aad"), b.encrypt(nonce, bytes(90), b"aad")
    t0 = time.perf_counter()
    for _ in range(loops):
        a.decrypt(nonce, ct1, b"aad")
        b.decrypt(nonce, ct2, b"aad")
    return time.perf_counter() - t0


def floor_udp_echo(loops: int) -> float:
    """An asyncio UDP echo round trip on loopback with a 235-octet request: the floor of a TGS exchange."""

    async def run() -> float:
        loop = asyncio.get_running_loop()

        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                self.t = transport

            def datagram_received(self, data, addr):
                self.t.sendto(data, addr)

        class Client(asyncio.DatagramProtocol):
            def __init__(self):
                self.waiter = None

            def datagram_received(self, data, addr):
                self.waiter.set_result(data)

        srv, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        port = srv.get_extra_info("sockname")[1]
        cli, proto = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", port))
        req = bytes(235)
        try:
            t0 = time.perf_counter()
            for _ in range(loops):
                proto.waiter = loop.create_future()
                cli.sendto(req)
                await proto.waiter
            return time.perf_counter() - t0
        finally:
            cli.close()
            srv.close()

    return asyncio.run(run())


ROWS = [
    ("lkb_case1_verify", bench_case1_verify, "floor_two_aead_opens", floor_two_aead_opens),
    ("ah_protect_150B", bench_ah_protect, "floor_hmac_sha256_150B", floor_hmac_150),
    ("ah_protect_150B_seqfile", bench_ah_protect_seqfile, "ah_protect_150B", bench_ah_protect),
    ("ah_verify_150B", bench_ah_verify, "floor_hmac_sha256_150B", floor_hmac_150),
    ("kdc_tgs_udp_roundtrip", bench_kdc_tgs, "floor_udp_echo_roundtrip", floor_udp_echo),
]

def compare_mechanisms(n: int = 2000, repeats: int = 5) -> dict[str, dict[str, float]]:
    """lwkerb against standard Kerberos (MIT krb5 through GSS-API) in one run: authenticators made per second
    (MN side), acceptances with binding verification, MAC-key derivation and confirmation per second (router
    side), and the sizes on the wire.  Real MIT KDCs (two realms, k5test); each acceptance takes a fresh
    token (the replay caches would refuse a repeat).  Medians of ``repeats`` runs of ``n``."""
    import statistics

    from fmipfast.lab.mitrealms import NAR_SERVICE, two_realms
    from fmipfast.security import gss

    def rate(fn, items) -> float:
        runs = []
        for _ in range(repeats):
            batch = items()
            t0 = time.perf_counter()
            for x in batch:
                fn(x)
            runs.append(len(batch) / (time.perf_counter() - t0))
        return statistics.median(runs)

    out: dict[str, dict[str, float]] = {}
    kt, creds = _case1_world()
    v = L.ApVerifier("REALM-B", kt, clock=lambda: NOW, replay_capacity=(n + 1) * repeats * 2)
    req0, _ = L.build_ap_req(creds, BINDING, now=NOW)
    ctx0 = v.verify_local(req0.encode(), BINDING)
    out["lwkerb"] = {
        "make_per_s": rate(lambda _: L.build_ap_req(creds, BINDING, now=NOW), lambda: range(n)),
        "accept_per_s": rate(lambda r: (lambda c: (c.mac_key, c.ap_rep().encode()))(v.verify_local(r, BINDING)),
                             lambda: [L.build_ap_req(creds, BINDING, now=NOW)[0].encode() for _ in range(n)]),
        "token_octets": len(req0.encode()), "reply_octets": len(ctx0.ap_rep().encode()),
    }
    with two_realms() as realms:
        keytab = realms.service(NAR_SERVICE)
        g = gss.GssInitiator(ccache=realms.kinit(realms.path("mn.ccache"))).credentials(NAR_SERVICE)  # cross-realm
        for label, rcache in (("gssapi", f"file2:{realms.tmp}/bench.rcache2"), ("gssapi_no_rcache", "none:")):
            acc = gss.GssVerifier(keytab, NAR_SERVICE, rcache=rcache)
            pdu0, _ = g.initiate(BINDING)
            gctx = acc.verify_local(pdu0, BINDING)
            out[label] = {
                "make_per_s": rate(lambda _: g.initiate(BINDING), lambda: range(n // 4)),
                "accept_per_s": rate(lambda p, acc=acc: acc.verify_local(p, BINDING),
                                     lambda: [g.initiate(BINDING)[0] for _ in range(n // 4)]),
                "token_octets": len(pdu0), "reply_octets": len(gctx.ap_rep().encode()),
            }
    return out


if __name__ == "__main__" and "--mechanisms" in sys.argv:
    figures = compare_mechanisms()
    print(f"{'mechanism':<18}{'make/s':>10}{'accept/s':>10}{'accept us':>11}{'token B':>9}{'reply B':>9}")
    for mech, f in figures.items():
        print(f"{mech:<18}{f['make_per_s']:>10.0f}{f['accept_per_s']:>10.0f}{1e6 / f['accept_per_s']:>11.1f}"
              f"{f['token_octets']:>9}{f['reply_octets']:>9}")
    base = figures["lwkerb"]["accept_per_s"]
    print(f"gssapi acceptance costs {base / figures['gssapi']['accept_per_s']:.1f}x lwkerb's (same run)")
elif __name__ == "__main__":
    runner = pyperf.Runner()
    runner.metadata["description"] = "fmipfast.security per-operation costs, with same-run baselines"
    done: dict[str, pyperf.Benchmark | None] = {}
    for name, fn, base_name, base_fn in ROWS:
        done[name] = runner.bench_time_func(name, fn)
        if base_name not in done:
            done[base_name] = runner.bench_time_func(base_name, base_fn)
    if not runner.args.worker and all(b is not None and b.get_values() for b in done.values()):
        print(f"\n{'operation':<26}{'median':>11}{'baseline':>28}{'median':>11}{'ratio':>8}")
        for name, _, base_name, _ in ROWS:
            m, b = done[name].median(), done[base_name].median()
            print(f"{name:<26}{m * 1e6:>9.2f}us{base_name:>28}{b * 1e6:>9.2f}us{m / b:>7.2f}x")

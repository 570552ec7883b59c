"""pyperf: the CPU cost of one whole fast handover in the protocol machines (docs/protocol.md).

One iteration is one handover of one MN between two access routers, ping-pong A -> B -> A ...: the PAR's
Trigger, Handover Redirect (MAC), the MN's ticket step and HR-Ack with its AP-REQ, the HI and the NAR's
case-1 verification and HE, the Attach on the new link (MAC), Authenticated-MN with the AP-REP, the BU
forwarded -- every message encoded, checksummed, decoded and checked by the real ``AccessRouter`` and
``MobileNode`` machines with real light-weight Kerberos.  No sockets, no AH (bench_security.py has it), no
engine: the figure is what the router daemons' protocol layer spends per handover, i.e. how many handovers
a core can run.

    python bench/bench_protocol.py --fast -o /tmp/protocol.json

Baseline, measured in the same run: the Kerberos work inside one handover alone (``build_ap_req`` at the MN,
``verify_local`` and the AP-REP at the NAR, ``check_ap_rep`` at the MN).
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from ipaddress import IPv6Address

import pyperf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from fmipfast.ar import AccessRouter  # noqa: E402
from fmipfast.mn import MobileNode  # noqa: E402
from fmipfast.protocol import (  # noqa: E402
    GetTicket,
    LinkUp,
    Received,
    Send,
    Start,
    Tick,
    TicketReady,
    Trigger,
    Verified,
    Verify,
)
from fmipfast.security import lwkerb as L  # noqa: E402

NOW = 1_800_000_000
MS = 1_000_000
P = {"A": L.Principal("host/ar-a", "REALM-A"), "B": L.Principal("host/ar-b", "REALM-B")}
P_MN = L.Principal("mn1", "HOME")
ADDR = {"A": IPv6Address("2001:db8:a::5eff:fe10:1"), "B": IPv6Address("2001:db8:b::5eff:fe10:2")}
LL = {"A": IPv6Address("fe80::5eff:fe10:1"), "B": IPv6Address("fe80::5eff:fe10:2")}
HA = IPv6Address("2001:db8:ff::1")
MN_MAC = bytes.fromhex("001b638445e6")
PCOA_A = IPv6Address("2001:db8:a:0:21b:63ff:fe84:45e6")


class World:
    """Routers A and B, one MN, one FIFO of deliveries (as tests/test_handover_fsm.py's ``Net``)."""

    def __init__(self, handovers: int) -> None:
        self.now = NOW * 1_000_000_000
        self.routers = {n: AccessRouter(ADDR[n], LL[n], first_identifier=0x100 * (i + 1))
                        for i, n in enumerate(("A", "B"))}
        self.mn = MobileNode(MN_MAC, home_agent=HA)
        self.link = "A"
        self.queue: deque[tuple[str, object]] = deque()
        self.tickets: dict[L.Principal, L.Credentials] = {}
        self.verifiers: dict[str, L.ApVerifier] = {}
        for i, n in enumerate(("A", "B")):
            key = L.Key(i + 1, bytes((i * 7 + j) & 0xFF for j in range(32)))
            kt = L.Keytab()
            kt.add(P[n], key)
            skey = L.Key(0, bytes((i * 13 + j) & 0xFF for j in range(32)))
            part = L.EncTicketPart(L.TicketFlag.PRE_AUTHENT, NOW - 10, NOW - 10, NOW + 36000, skey.value, P_MN)
            self.tickets[P[n]] = L.Credentials(P_MN, P[n], L.Ticket.issue(P[n], key, part), skey, part.flags,
                                               NOW - 10, NOW - 10, NOW + 36000)
            self.verifiers[n] = L.ApVerifier(P[n].realm, kt, clock=lambda: self.now / 1e9,
                                             replay_capacity=2 * handovers + 16)
        self.feed("MN", Start(ADDR["A"], P["A"], PCOA_A, "A"))
        assert self.mn.router is not None

    def machine(self, who: str):
        return self.mn if who == "MN" else self.routers[who]

    def feed(self, who: str, event: object) -> None:
        self.queue.append((who, event))
        while self.queue:
            w, ev = self.queue.popleft()
            for a in self.machine(w).handle(ev, self.now):
                self._route(w, a)

    def _route(self, who: str, a: object) -> None:
        if isinstance(a, Send):
            if who == "MN":
                target = self.link if a.dst in (ADDR[self.link], LL[self.link]) else None
            elif a.dst in ADDR.values():
                target = "A" if a.dst == ADDR["A"] else "B"
            else:
                target = "MN" if self.link == who else None
            if target is not None:
                self.queue.append((target, Received(a.icmp, a.src, a.dst, a.hop_limit, a.iface or "", a.ah)))
        elif isinstance(a, Verify):
            try:
                v = Verified(a.request_id, self.verifiers[who].verify_local(a.ap_req, a.binding))
            except L.LkbError as exc:
                v = Verified(a.request_id, None, str(exc))
            self.queue.append((who, v))
        elif isinstance(a, GetTicket):
            self.queue.append((who, TicketReady(a.request_id, self.tickets[a.server])))

    def handover(self) -> None:
        """One handover away from the MN's current router; time moves 1 ms so authenticators differ."""
        here = self.link
        there = "B" if here == "A" else "A"
        r = self.mn.router
        assert r is not None
        self.now += MS
        for name, machine in self.routers.items():
            d = machine.next_deadline()
            if d is not None and d <= self.now:
                self.feed(name, Tick())
        self.feed(here, Trigger(r.coa, ADDR[there], P[there]))
        self.link = there
        self.feed("MN", LinkUp(there))


def bench_handover(loops: int) -> float:
    w = World(loops)
    t0 = time.perf_counter()
    for _ in range(loops):
        w.handover()
    dt = time.perf_counter() - t0
    assert w.mn.counters["handovers_completed"] == loops, w.mn.counters
    return dt


def floor_kerberos_of_a_handover(loops: int) -> float:
    kt = L.Keytab()
    key = L.Key(1, bytes(range(32)))
    kt.add(P["B"], key)
    skey = L.Key(0, bytes(range(1, 33)))
    part = L.EncTicketPart(L.TicketFlag.PRE_AUTHENT, NOW - 10, NOW - 10, NOW + 36000, skey.value, P_MN)
    creds = L.Credentials(P_MN, P["B"], L.Ticket.issue(P["B"], key, part), skey, part.flags, NOW - 10, NOW - 10,
                          NOW + 36000)
    v = L.ApVerifier(P["B"].realm, kt, clock=lambda: NOW + 1, replay_capacity=loops + 16)
    binding = L.HandoverBinding("2001:db8:b::99", "2001:db8:a::99", "2001:db8:b::1", 7)
    t0 = time.perf_counter()
    for i in range(loops):
        req, auth = L.build_ap_req(creds, binding, now=NOW + i * 1e-6)
        ctx = v.verify_local(req.encode(), binding)
        L.check_ap_rep(ctx.ap_rep().encode(), creds.session_key, auth)
    return time.perf_counter() - t0


if __name__ == "__main__":
    runner = pyperf.Runner()
    runner.metadata["description"] = "one whole fast handover in the protocol machines, with a same-run baseline"
    h = runner.bench_time_func("handover_in_the_machines", bench_handover)
    f = runner.bench_time_func("floor_kerberos_of_a_handover", floor_kerberos_of_a_handover)
    if not runner.args.worker and h is not None and f is not None and h.get_values() and f.get_values():
        m, b = h.median(), f.median()
        print(f"\nhandover in the machines {m * 1e6:9.1f} us ({1 / m:,.0f} handovers/s on one core); "
              f"its Kerberos alone {b * 1e6:7.1f} us; ratio {m / b:.1f}x")

"""Whole handovers: two AccessRouters (A, B) and one MobileNode driven together by a tiny in-test event loop.

The loop delivers each ``Send`` to the machine its destination names (a router's message to the MN only while
the MN is on that router's link, and vice versa; router-to-router messages arrive with ``ah_verified`` equal
to the Send's ``ah``), answers ``Verify`` with a real ``ApVerifier.verify_local`` and ``GetTicket`` with real
light-weight Kerberos credentials (case 1: each router holds its own service key), and records every action.
No sockets, no clocks: time only moves when a test says so, to the machines' own deadlines.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from ipaddress import IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmipfast import backend
from fmipfast.ar import NAR_TRANSITIONS, PAR_TRANSITIONS, AccessRouter, NarState, ParState, Session
from fmipfast.ar.nar import NarRole
from fmipfast.ar.par import ParRole
from fmipfast.constants import FmipCode
from fmipfast.errors import DerivationError
from fmipfast.mn import MN_TRANSITIONS, MnState, MobileNode
from fmipfast.protocol import (
    Backoff,
    GetTicket,
    Kind,
    LinkUp,
    Note,
    Received,
    Send,
    Start,
    Tick,
    TicketReady,
    Trigger,
    Verified,
    Verify,
    eui64_from_mac48,
    mac48_from_address,
    mac48_from_eui64,
    nar_link_local,
    ncoa_from_prefix,
)
from fmipfast.security import lwkerb as L

NOW = 1_800_000_000
T0 = NOW * 1_000_000_000
MS = 1_000_000

REALM_A, REALM_B, REALM_MN = "REALM-A", "REALM-B", "HOME"
P_A = L.Principal("host/ar-a", REALM_A)
P_B = L.Principal("host/ar-b", REALM_B)
P_MN = L.Principal("mn1", REALM_MN)

AR_A = IPv6Address("2001:db8:a::5eff:fe10:1")
AR_B = IPv6Address("2001:db8:b::5eff:fe10:2")
HA = IPv6Address("2001:db8:ff::1")
MN_MAC = bytes.fromhex("001b638445e6")
PCOA_A = IPv6Address(AR_A.packed[:8] + backend.link_local_from_mac48(MN_MAC)[8:])
NCOA_B = IPv6Address(AR_B.packed[:8] + PCOA_A.packed[8:])
AR_B_LL = IPv6Address("fe80::5eff:fe10:2")
AR_A_LL = IPv6Address("fe80::5eff:fe10:1")
AR_B_MAC = bytes.fromhex("02005e100002")

CODE_NAME = {int(c): c.name for c in FmipCode}


def code_of(send: Send) -> str:
    return CODE_NAME[send.icmp[1]]


class Net:
    """Two routers, one MN, one FIFO of deliveries.  ``log`` holds ``(who, action)`` for every action."""

    def __init__(self, *, backoff: Backoff | None = None, max_handovers: int = 64, lifetime_ms: int = 3000,
                 a_kwargs: dict | None = None, b_kwargs: dict | None = None) -> None:
        self.now = T0
        self.backoff = backoff or Backoff()
        self.lifetime_ms = lifetime_ms
        self.in_use: dict[str, set[IPv6Address]] = {"A": set(), "B": set()}
        self.routers = {
            "A": AccessRouter(AR_A, backoff=self.backoff, max_handovers=max_handovers, first_identifier=0x100,
                              is_address_in_use=lambda a, m: a in self.in_use["A"], **(a_kwargs or {})),
            "B": AccessRouter(AR_B, backoff=self.backoff, max_handovers=max_handovers, first_identifier=0x200,
                              is_address_in_use=lambda a, m: a in self.in_use["B"], **(b_kwargs or {})),
        }
        self.mn = MobileNode(MN_MAC, home_agent=HA, backoff=self.backoff)
        self.link = "A"  # the link the MN is on ("A", "B" or None between links)
        self.log: list[tuple[str, object]] = []
        self.queue: deque[tuple[str, object]] = deque()
        self.filters: list[Callable[[str, Send], Send | None]] = []  # may drop (None) or tamper a Send
        self.verify_override: Callable[[Verify], Verified | None] | None = None
        self.hold_verify = False
        self.held: list[tuple[str, Verify]] = []
        # case-1 world: each router holds its own service key; the MN holds tickets for both.
        self.keytabs = {"A": L.Keytab(), "B": L.Keytab()}
        self.tickets: dict[L.Principal, L.Credentials] = {}
        for name, principal, kvno in (("A", P_A, 3), ("B", P_B, 4)):
            key = L.Key(kvno, bytes((kvno * 7 + i) & 0xFF for i in range(32)))
            self.keytabs[name].add(principal, key)
            skey = L.Key(0, bytes((kvno * 13 + i) & 0xFF for i in range(32)))
            part = L.EncTicketPart(L.TicketFlag.PRE_AUTHENT, NOW - 10, NOW - 10, NOW + 36000, skey.value, P_MN)
            ticket = L.Ticket.issue(principal, key, part)
            self.tickets[principal] = L.Credentials(P_MN, principal, ticket, skey, part.flags, NOW - 10, NOW - 10,
                                                    NOW + 36000)
        realms = {"A": REALM_A, "B": REALM_B}
        self.verifiers = {n: L.ApVerifier(realms[n], self.keytabs[n], clock=lambda: self.now / 1e9)
                          for n in ("A", "B")}

    # ------------------------------------------------------------------ plumbing
    def machine(self, who: str):
        return self.mn if who == "MN" else self.routers[who]

    def feed(self, who: str, event: object) -> None:
        self.queue.append((who, event))
        self.run()

    def run(self) -> None:
        while self.queue:
            who, event = self.queue.popleft()
            for action in self.machine(who).handle(event, self.now):
                self.log.append((who, action))
                self._route(who, action)

    def _route(self, who: str, action: object) -> None:
        if isinstance(action, Send):
            for f in self.filters:
                out = f(who, action)
                if out is None:
                    return
                action = out
            target = self._target(who, action)
            if target is not None:
                self.queue.append((target, Received(action.icmp, action.src, action.dst, action.hop_limit,
                                                    action.iface or "", action.ah)))
        elif isinstance(action, Verify):
            if self.hold_verify:
                self.held.append((who, action))
            else:
                self.queue.append((who, self.verified(who, action)))
        elif isinstance(action, GetTicket):
            creds = self.tickets.get(action.server)
            self.queue.append((who, TicketReady(action.request_id, creds, None if creds else "no such service")))

    def verified(self, who: str, v: Verify) -> Verified:
        if self.verify_override is not None:
            out = self.verify_override(v)
            if out is not None:
                return out
        try:
            ctx = self.verifiers[who].verify_local(v.ap_req, v.binding)
        except L.LkbError as exc:
            return Verified(v.request_id, None, f"{exc.code}: {exc}")
        return Verified(v.request_id, ctx)

    def _target(self, who: str, s: Send) -> str | None:
        a_addrs = {AR_A, AR_A_LL}
        b_addrs = {AR_B, AR_B_LL}
        if who == "MN":
            if self.link == "A" and s.dst in a_addrs:
                return "A"
            if self.link == "B" and s.dst in b_addrs:
                return "B"
            return None  # off-link: lost
        if s.dst in a_addrs:
            return "A"
        if s.dst in b_addrs:
            return "B"
        return "MN" if self.link == who else None

    def advance(self, ms: float) -> None:
        """Move time forward by ``ms``, ticking every machine at each of its deadlines on the way."""
        end = self.now + int(ms * MS)
        while True:
            deadlines = [(d, w) for w in ("A", "B", "MN") if (d := self.machine(w).next_deadline()) is not None]
            due = [d for d, _ in deadlines if d <= end]
            if not due:
                break
            self.now = max(self.now, min(due))
            for w in ("A", "B", "MN"):
                d = self.machine(w).next_deadline()
                if d is not None and d <= self.now:
                    self.feed(w, Tick())
        self.now = end

    def drop(self, code: str, times: int = 1, who: str | None = None) -> list[int]:
        """Drop the next ``times`` sends of message ``code`` (by FmipCode name); returns a live counter."""
        left = [times]

        def f(sender: str, s: Send) -> Send | None:
            if left[0] > 0 and code_of(s) == code and (who is None or sender == who):
                left[0] -= 1
                self.log.append((sender, "LOST " + code))
                return None
            return s

        self.filters.append(f)
        return left

    def move(self, link: str | None) -> None:
        self.link = link
        if link is not None:
            self.feed("MN", LinkUp(link))

    # ------------------------------------------------------------------ views
    def mark(self) -> int:
        return len(self.log)

    def steps(self, since: int = 0) -> list[str]:
        """The log without Notes, as ``who:Action[ detail]`` strings."""
        out = []
        for who, a in self.log[since:]:
            if isinstance(a, Note):
                continue
            if isinstance(a, str):
                out.append(f"{who}:{a}")
            elif isinstance(a, Send):
                out.append(f"{who}:Send {code_of(a)}" + (" AH" if a.ah else ""))
            else:
                out.append(f"{who}:{type(a).__name__}")
        return out

    def actions(self, who: str, cls: type, since: int = 0) -> list:
        """``who``'s actions of class ``cls`` (Notes and loss markers excluded)."""
        return [a for w, a in self.log[since:] if w == who and isinstance(a, cls) and not isinstance(a, (Note, str))]

    def notes(self, name: str, since: int = 0) -> list[tuple[str, Note]]:
        return [(w, a) for w, a in self.log[since:] if isinstance(a, Note) and a.name == name]

    # ------------------------------------------------------------------ scenarios
    def attach(self) -> None:
        self.feed("MN", Start(AR_A, P_A, PCOA_A, "A"))

    def trigger(self, router: str = "A", pcoa: IPv6Address = PCOA_A, nar: IPv6Address = AR_B,
                principal: L.Principal = P_B, **kw) -> None:
        kw.setdefault("lifetime_ms", self.lifetime_ms)
        self.feed(router, Trigger(pcoa, nar, principal, **kw))


def attached_net(**kw) -> Net:
    net = Net(**kw)
    net.attach()
    assert net.mn.state == MnState.ATTACHED
    return net


HAPPY_PREPARE = [
    "A:Send HANDOVER_REDIRECT", "MN:GetTicket", "MN:Send HANDOVER_REDIRECT_ACK", "MN:ReadyToSwitch",
    "A:Send HANDOVER AH", "A:TunnelAdd", "B:ProxyAdd", "B:Verify", "B:Send HANDOVER_ERROR AH",
]
HAPPY_ATTACH = [
    "MN:PreloadNeighbor", "MN:ConfigureAddress", "MN:SetDefaultRoute", "MN:Send ATTACH",
    "B:ProxyComplete", "B:ForwardPacket", "B:Send AUTHENTICATED_MN", "MN:RemoveAddress",
]
HAPPY_ATTACH_AT_A = [s.replace("B:", "A:") for s in HAPPY_ATTACH]


# ============================================================================================ helpers vs backend


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16), st.integers(0, 128))
def test_address_helpers_agree_with_the_backend(nar, coa, plen):
    assert ncoa_from_prefix(IPv6Address(nar), plen, IPv6Address(coa)).packed == \
        backend.ncoa_from_prefix(nar, plen, coa)
    if plen == 64:
        assert nar_link_local(IPv6Address(nar), 64).packed == backend.nar_link_local(nar, 64)
    try:
        want = backend.mac48_from_address(nar, plen)
    except ValueError:
        with pytest.raises(ValueError):
            mac48_from_address(IPv6Address(nar), plen)
    else:
        assert mac48_from_address(IPv6Address(nar), plen) == want


# An independent statement of the derivations in ipaddress arithmetic (how fmipfast.protocol computed them
# before it called fmipfast.reference.derive): the helpers must give the same value, the same exception class
# and -- for DerivationError, whose text the MN's "fail" note carries -- the same words.
def _ip_eui64_from_mac48(mac: bytes) -> bytes:
    if len(mac) != 6:
        raise ValueError(f"a 48-bit MAC is 6 octets, got {len(mac)}")
    return bytes(mac[:3]) + b"\xff\xfe" + bytes(mac[3:])


def _ip_mac48_from_eui64(eui: bytes) -> bytes:
    if len(eui) != 8:
        raise ValueError(f"an EUI-64 is 8 octets, got {len(eui)}")
    if eui[3:5] != b"\xff\xfe":
        raise DerivationError(f"EUI-64 {eui.hex()} is not built from a 48-bit MAC (octets 3-4 not FF-FE)")
    return bytes(eui[:3]) + bytes(eui[5:])


def _ip_ncoa_from_prefix(nar: IPv6Address, prefix_size: int, coa: IPv6Address) -> IPv6Address:
    if not 0 <= prefix_size <= 128:
        raise ValueError(f"prefix size {prefix_size} outside 0..128")
    low = (1 << (128 - prefix_size)) - 1
    return IPv6Address((int(nar) & ~low & ((1 << 128) - 1)) | (int(coa) & low))


def _ip_nar_link_local(nar: IPv6Address, prefix_size: int) -> IPv6Address:
    if prefix_size != 64:
        raise DerivationError(f"NAR link-local derivation needs prefix size 64, got {prefix_size}")
    return IPv6Address(b"\xfe\x80" + bytes(6) + nar.packed[8:])


def _ip_mac48_from_address(address: IPv6Address, prefix_size: int) -> bytes:
    if prefix_size > 64:
        raise DerivationError(f"prefix size {prefix_size} leaves no 64-bit interface identifier")
    iid = address.packed[8:]
    eui = bytes((iid[0] ^ 0x02,)) + iid[1:]
    if eui[3:5] != b"\xff\xfe":
        raise DerivationError(f"interface identifier {iid.hex()} of {address} is not EUI-64 based: the NAR's "
                              "MAC cannot be derived, the Redirect must carry it (M)")
    return eui[:3] + eui[5:]


def _outcome(fn: Callable[..., object], *args: object) -> tuple[str, object]:
    try:
        return "ok", fn(*args)
    except DerivationError as exc:
        return "DerivationError", str(exc)
    except ValueError:
        return "ValueError", None


# Interface identifiers that are often FF-FE based (octets 3-4), so both outcomes of the MAC derivations come up.
_IIDS = st.one_of(st.binary(min_size=8, max_size=8),
                  st.binary(min_size=6, max_size=6).map(lambda m: m[:3] + b"\xff\xfe" + m[3:]))
_ADDRESSES = st.builds(lambda prefix, iid: prefix + iid, st.binary(min_size=8, max_size=8), _IIDS)


@settings(max_examples=400, deadline=None)
@given(_ADDRESSES, _ADDRESSES, st.integers(0, 128), st.binary(min_size=5, max_size=9))
def test_address_helpers_agree_with_an_ipaddress_statement(nar, coa, plen, octets):
    nar_a, coa_a = IPv6Address(nar), IPv6Address(coa)
    assert _outcome(ncoa_from_prefix, nar_a, plen, coa_a) == _outcome(_ip_ncoa_from_prefix, nar_a, plen, coa_a)
    assert _outcome(nar_link_local, nar_a, plen) == _outcome(_ip_nar_link_local, nar_a, plen)
    assert _outcome(mac48_from_address, nar_a, plen) == _outcome(_ip_mac48_from_address, nar_a, plen)
    for mac in (octets, octets[:6], nar[8:14]):
        assert _outcome(eui64_from_mac48, mac) == _outcome(_ip_eui64_from_mac48, mac)
    for eui in (octets, octets[:8], nar[8:], nar[8:11] + b"\xff\xfe" + nar[13:]):
        assert _outcome(mac48_from_eui64, eui) == _outcome(_ip_mac48_from_eui64, eui)


@pytest.mark.parametrize("plen", [-1, 129, 255])
def test_address_helpers_refuse_prefix_sizes_outside_0_to_128(plen):
    """(Messages carry a uint8 prefix size and refuse one above 128, so the machines never pass one.)"""
    for fn in (lambda: ncoa_from_prefix(AR_B, plen, PCOA_A), lambda: nar_link_local(AR_B, plen),
               lambda: mac48_from_address(AR_B, plen)):
        with pytest.raises(ValueError):
            fn()


def test_topology_is_what_the_sample_derives():
    assert nar_link_local(AR_B, 64) == AR_B_LL
    assert mac48_from_address(AR_B, 64) == AR_B_MAC
    assert ncoa_from_prefix(AR_B, 64, PCOA_A) == NCOA_B


# ============================================================================================ whole handovers


def test_initial_attach_exact_actions():
    net = Net()
    net.attach()
    assert net.steps() == ["MN:GetTicket", "MN:Send ATTACH", "A:Verify", "A:ForwardPacket",
                           "A:Send AUTHENTICATED_MN"]
    assert net.mn.state == MnState.ATTACHED
    assert net.mn.router is not None and net.mn.router.address == AR_A
    sess = net.routers["A"].sessions[PCOA_A]
    assert sess.mac_key == net.mn.router.mac_key
    assert sess.eui64 == backend.eui64_from_mac48(MN_MAC)
    assert net.routers["A"].counters["initial_attached"] == 1
    assert net.mn.counters["initial_attached"] == 1
    bu = net.actions("A", object)[1]
    assert bu.packet[24:40] == HA.packed and bu.packet[8:24] == PCOA_A.packed  # the BU from the Attach
    assert net.verifiers["A"].counters["case1"] == 1


def test_happy_handover_exact_actions_and_states():
    net = attached_net()
    m = net.mark()
    net.trigger()
    assert net.steps(m) == HAPPY_PREPARE
    a, b = net.routers["A"], net.routers["B"]
    assert a.par[PCOA_A].state == ParState.FORWARDING
    (nh,) = b.nar.values()
    assert nh.state == NarState.PROXYING and nh.ncoa == NCOA_B and nh.pcoa == PCOA_A
    assert net.mn.state == MnState.HO_READY
    proxy = net.actions("B", object, m)
    assert [type(x).__name__ for x in proxy if not isinstance(x, Note)] == ["ProxyAdd", "Verify", "Send"]
    padd = next(x for x in proxy if type(x).__name__ == "ProxyAdd")
    assert (padd.ncoa, padd.lifetime_ms) == (NCOA_B, 3000)
    tun = next(x for w, x in net.log[m:] if type(x).__name__ == "TunnelAdd")
    assert (tun.pcoa, tun.nar) == (PCOA_A, AR_B)
    m = net.mark()
    net.move("B")
    assert net.steps(m) == HAPPY_ATTACH
    pre, cfg, route = [x for x in net.actions("MN", object, m) if not isinstance(x, Send)][:3]
    assert (cfg.address, cfg.iface) == (NCOA_B, "B")
    assert (pre.address, pre.mac, pre.iface) == (AR_B_LL, AR_B_MAC, "B")
    assert (route.via, route.iface) == (AR_B_LL, "B")
    pc = net.actions("B", object, m)[0]
    assert (pc.ncoa, pc.mac) == (NCOA_B, MN_MAC)
    fwd = [x for x in net.actions("B", object, m) if type(x).__name__ == "ForwardPacket"][0]
    assert fwd.packet[8:24] == NCOA_B.packed  # the BU from the NCoA to the HA, unchanged
    rm = net.actions("MN", object, m)[-1]
    assert rm.address == PCOA_A
    assert net.mn.state == MnState.ATTACHED and net.mn.router.address == AR_B and net.mn.router.coa == NCOA_B
    assert b.sessions[NCOA_B].mac_key == net.mn.router.mac_key
    assert b.counters["attached"] == 1 and net.mn.counters["handovers_completed"] == 1
    assert a.counters["handovers_forwarding"] == 1
    # PAR forwarding ends with the lifetime; B forgets its record after the answer cache.
    m = net.mark()
    net.advance(3000)
    assert net.steps(m) == ["A:TunnelRemove"]
    assert not a.par and PCOA_A not in a.sessions and a.counters["forwarding_expired"] == 1
    net.advance(5000)
    assert not b.nar and NCOA_B in b.sessions
    # what is left: B's session, until the ticket it came from ends (the key is not used after)
    assert net.routers["A"].next_deadline() is None and b.next_deadline() == (NOW + 36000) * 1_000_000_000
    assert b.sessions[NCOA_B].expires_ns == (NOW + 36000) * 1_000_000_000
    # drops: none on the happy path
    for machine in (a, b, net.mn):
        bad = {k: v for k, v in machine.counters.items()
               if v and k in ("bad_mac", "bad_checksum", "duplicate", "unexpected", "unknown_identifier")}
        assert not bad


def test_sessions_are_bounded_and_end_with_their_ticket():
    """max_sessions authenticated MNs at once: a full table refuses another MN's HI (HE insufficient
    resources) — counted; a session ends when the ticket it came from expires, freeing its place."""
    net = attached_net(b_kwargs={"max_sessions": 1})
    b = net.routers["B"]
    b.sessions.put(Session(IPv6Address("2001:db8:b::99"), bytes(32), None, T0 + 60 * 1_000_000_000))
    m = net.mark()
    net.trigger()
    assert "B:Send HANDOVER_ERROR AH" in net.steps(m)
    assert b.counters["refused_sessions_full"] == 1 and b.counters["refused_insufficient_resources"] == 1
    net.advance(61_000)  # the other MN's ticket ends: its session goes, and the table has room again
    assert b.counters["session_expired"] == 1 and not b.sessions


def test_notes_form_a_timeline():
    net = attached_net()
    net.trigger()
    net.move("B")
    sends = [(w, n.fields["message"]) for w, n in net.notes("send")]
    assert sends == [("MN", "Attach"), ("A", "AuthenticatedMN"), ("A", "HandoverRedirect"),
                     ("MN", "HandoverRedirectAck"), ("A", "IcmpHandover"), ("B", "HandoverError"),
                     ("MN", "Attach"), ("B", "AuthenticatedMN")]
    states = [(w, n.fields["new"]) for w, n in net.notes("state") if w != "MN"]
    assert ("A", "hrd_sent") in states and ("A", "forwarding") in states and ("B", "proxying") in states
    assert all(isinstance(n.fields, dict) for _, n in net.notes("recv"))


def test_two_handovers_in_a_row_a_to_b_to_a():
    net = attached_net()
    net.trigger()
    net.move("B")
    assert net.mn.router.address == AR_B
    # Straight back, while A still forwards the first handover: B is now the PAR, A the NAR.
    m = net.mark()
    net.trigger(router="B", pcoa=NCOA_B, nar=AR_A, principal=P_A)
    assert net.steps(m) == [
        "B:Send HANDOVER_REDIRECT", "MN:GetTicket", "MN:Send HANDOVER_REDIRECT_ACK", "MN:ReadyToSwitch",
        "B:Send HANDOVER AH", "B:TunnelAdd", "A:TunnelRemove", "A:ProxyAdd", "A:Verify", "A:Send HANDOVER_ERROR AH"]
    a, b = net.routers["A"], net.routers["B"]
    assert a.counters["mn_returned"] == 1
    m = net.mark()
    net.move("A")
    assert net.steps(m) == HAPPY_ATTACH_AT_A
    assert net.mn.router.address == AR_A and net.mn.router.coa == PCOA_A  # C=0: the same IID, A's prefix
    removed = net.actions("MN", object, m)[-1]
    assert removed.address == NCOA_B
    assert net.mn.counters["handovers_completed"] == 2
    assert b.par[NCOA_B].state == ParState.FORWARDING
    assert [h.identifier for h in b.par.values()] == [0x200]
    net.advance(10_000)
    assert not a.par and not b.par and not a.nar and not b.nar
    assert set(a.sessions) == {PCOA_A} and set(b.sessions) == set()


def test_two_handovers_after_the_first_expired():
    net = attached_net()
    net.trigger()
    net.move("B")
    net.advance(10_000)
    m = net.mark()
    net.trigger(router="B", pcoa=NCOA_B, nar=AR_A, principal=P_A)
    net.move("A")
    assert net.steps(m) == HAPPY_PREPARE_BA + HAPPY_ATTACH_AT_A
    assert net.routers["A"].counters["mn_returned"] == 0


HAPPY_PREPARE_BA = [s.replace("A:", "X:").replace("B:", "A:").replace("X:", "B:") for s in HAPPY_PREPARE]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["move", "reverse"]), st.sampled_from([10, 500, 2_000, 10_000])),
                min_size=1, max_size=12))
def test_any_run_of_handovers_and_reversals_completes_and_leaves_nothing_behind(steps):
    """A soak in the machines: any sequence of handovers between A and B and link reversals (the MN back on the
    PAR's link at once), with any pauses between them -- including a new handover to the NAR a reversal has
    just left, inside the first one's lifetime.  Every handover completes or reverses as asked, and once the
    lifetimes and answer caches have run out the routers hold exactly the MN's one session where it is."""
    net = attached_net()
    addr = {"A": (AR_A, PCOA_A, P_A), "B": (AR_B, NCOA_B, P_B)}
    here = "A"
    for what, pause in steps:
        there = "B" if here == "A" else "A"
        done = net.mn.counters["handovers_completed"]
        net.trigger(router=here, pcoa=addr[here][1], nar=addr[there][0], principal=addr[there][2])
        assert net.mn.state == MnState.HO_READY, (what, net.steps()[-12:])
        if what == "move":
            net.move(there)
            assert net.mn.counters["handovers_completed"] == done + 1, net.steps()[-12:]
            here = there
        else:
            net.move(here)  # back on the PAR's link: Forwarding Disable
            assert net.mn.state == MnState.ATTACHED and net.mn.counters["handovers_completed"] == done
        assert (net.mn.router.address, net.mn.router.coa) == addr[here][:2]
        net.advance(pause)
    net.advance(20_000)
    a, b = net.routers["A"], net.routers["B"]
    assert not a.par and not b.par and not a.nar and not b.nar
    assert {n: set(r.sessions) for n, r in net.routers.items()} == {
        "A": {PCOA_A} if here == "A" else set(), "B": {NCOA_B} if here == "B" else set()}
    assert net.mn.counters["bad_mac"] == 0 and a.counters["bad_mac"] == 0 and b.counters["bad_mac"] == 0


# ======================================================================================= losses and retransmissions


def test_lost_hrd_is_retransmitted_with_backoff():
    net = attached_net()
    net.drop("HANDOVER_REDIRECT")
    m = net.mark()
    net.trigger()
    assert net.steps(m) == ["A:Send HANDOVER_REDIRECT", "A:LOST HANDOVER_REDIRECT"]
    assert net.routers["A"].next_deadline() == net.now + 150 * MS
    net.advance(149)
    assert net.steps(m)[-1] == "A:LOST HANDOVER_REDIRECT"
    m = net.mark()
    net.advance(1)
    assert net.steps(m) == HAPPY_PREPARE
    assert net.routers["A"].counters["retransmitted"] == 1


def test_lost_hra_answered_again_on_the_retransmitted_redirect():
    net = attached_net()
    net.drop("HANDOVER_REDIRECT_ACK")
    net.trigger()
    assert net.mn.state == MnState.HO_READY and net.routers["A"].par[PCOA_A].state == ParState.HRD_SENT
    m = net.mark()
    net.advance(150)
    assert net.steps(m) == ["A:Send HANDOVER_REDIRECT", "MN:Send HANDOVER_REDIRECT_ACK", "A:Send HANDOVER AH",
                            "A:TunnelAdd", "B:ProxyAdd", "B:Verify", "B:Send HANDOVER_ERROR AH"]
    assert net.mn.counters["duplicate_hrd"] == 1 and net.mn.counters["retransmitted"] == 1


def test_lost_hi_is_retransmitted_and_lost_answer_is_resent_to_the_duplicate():
    net = attached_net()
    net.drop("HANDOVER")
    net.drop("HANDOVER_ERROR")
    m = net.mark()
    net.trigger()
    assert net.steps(m)[4:] == ["A:Send HANDOVER AH", "A:LOST HANDOVER", "A:TunnelAdd"]
    m = net.mark()
    net.advance(150)  # HI again: reaches B, whose answer is lost
    assert net.steps(m) == ["A:Send HANDOVER AH", "B:ProxyAdd", "B:Verify", "B:Send HANDOVER_ERROR AH",
                            "B:LOST HANDOVER_ERROR"]
    m = net.mark()
    net.advance(300)  # third HI: a duplicate at B, which re-sends its answer (no second Verify)
    assert net.steps(m) == ["A:Send HANDOVER AH", "B:Send HANDOVER_ERROR AH"]
    assert net.routers["B"].counters["duplicate_hi"] == 1
    assert net.routers["A"].par[PCOA_A].state == ParState.FORWARDING
    assert net.routers["A"].counters["retransmitted"] == 2
    assert net.verifiers["B"].counters["ok"] == 1


def test_lost_attach_is_retransmitted_and_lost_amn_answered_again():
    net = attached_net()
    net.trigger()
    net.drop("ATTACH")
    net.drop("AUTHENTICATED_MN")
    m = net.mark()
    net.move("B")
    assert net.steps(m)[-4:] == ["MN:ConfigureAddress", "MN:SetDefaultRoute", "MN:Send ATTACH", "MN:LOST ATTACH"]
    m = net.mark()
    net.advance(150)
    assert net.steps(m) == ["MN:Send ATTACH", "B:ProxyComplete", "B:ForwardPacket", "B:Send AUTHENTICATED_MN",
                            "B:LOST AUTHENTICATED_MN"]
    m = net.mark()
    net.advance(300)
    assert net.steps(m) == ["MN:Send ATTACH", "B:Send AUTHENTICATED_MN", "MN:RemoveAddress"]
    assert net.routers["B"].counters["duplicate_attach"] == 1
    assert net.mn.counters["retransmitted"] == 2 and net.mn.state == MnState.ATTACHED


def test_hrd_retransmission_exhaustion_fails_and_cleans_up():
    net = attached_net()
    net.drop("HANDOVER_REDIRECT", times=10)
    net.trigger()
    net.advance(150 + 300 + 600 + 1199)
    a = net.routers["A"]
    assert a.par[PCOA_A].tries == 4 and a.counters["retransmitted"] == 3
    m = net.mark()
    net.advance(1)
    assert net.steps(m) == ["A:ProbeNeighbor"]  # is the MN still on the link? (the driver answers Reachability)
    assert not a.par and a.counters["handovers_failed"] == 1
    assert a.next_deadline() == T0 + 5000 * MS  # only the initial attach's answer cache is left
    (fail,) = [n for w, n in net.notes("fail", m) if w == "A"]
    assert "after 4 tries" in fail.fields["reason"]
    assert net.mn.state == MnState.ATTACHED  # never heard of it
    # The MN is still A's: a new handover can start.
    net.filters.clear()
    net.trigger()
    assert a.par[PCOA_A].state == ParState.FORWARDING


def test_all_hras_lost_then_a_new_trigger_is_followed():
    net = attached_net()
    net.drop("HANDOVER_REDIRECT_ACK", times=4)
    net.trigger()
    net.advance(2250)
    assert not net.routers["A"].par and net.routers["A"].counters["handovers_failed"] == 1
    assert net.mn.state == MnState.HO_READY  # the MN cannot know
    m = net.mark()
    net.trigger()
    assert net.steps(m) == HAPPY_PREPARE
    assert net.mn.counters["superseded"] == 1 and net.mn.exchange.identifier == 0x101


def test_hi_retransmission_exhaustion_removes_the_tunnel():
    net = attached_net()
    net.drop("HANDOVER", times=10)
    net.trigger()
    m = net.mark()
    net.advance(2250)
    assert net.steps(m) == ["A:Send HANDOVER AH", "A:LOST HANDOVER"] * 3 + ["A:TunnelRemove", "A:ProbeNeighbor"]
    assert net.routers["A"].counters["handovers_failed"] == 1 and not net.routers["A"].par


def test_attach_retransmission_exhaustion_falls_back_to_an_initial_attach_at_the_nar():
    """Every handover Attach lost: the MN, on the NAR's link with the NAR's ticket and its NCoA, attaches there
    afresh (an AP-REQ, no MAC) instead of ending with no router; the NAR takes it once the handover's proxy
    record has expired with its lifetime (the retransmissions outlast it)."""
    net = attached_net()
    net.trigger()
    net.drop("ATTACH", times=4)
    net.move("B")
    m = net.mark()
    net.advance(2250)
    assert net.steps(m)[:6] == ["MN:Send ATTACH", "MN:LOST ATTACH"] * 3
    assert net.mn.counters["attach_failed"] == 1 and net.mn.counters["fallback_attach"] == 1
    assert net.mn.state in (MnState.ATTACH_TICKET, MnState.ATTACHING) and net.mn.router is None
    net.advance(5000)
    b = net.routers["B"]
    assert net.mn.state == MnState.ATTACHED and net.mn.router.address == AR_B and net.mn.router.coa == NCOA_B
    assert b.counters["proxy_expired"] == 1 and b.counters["initial_attached"] == 1 and NCOA_B in b.sessions


def test_attach_exhaustion_twice_leaves_the_mn_idle():
    net = attached_net()
    net.trigger()
    net.drop("ATTACH", times=20)
    net.move("B")
    m = net.mark()
    net.advance(5000)
    assert net.mn.state == MnState.IDLE and net.mn.router is None and net.mn.counters["attach_failed"] == 2
    assert net.mn.next_deadline() is None and net.mn.last_attach[0] == AR_B  # what a driver may retry
    assert net.steps(m).count("MN:LOST ATTACH") == 7  # 3 retransmissions, then the fallback's 4 tries
    # NAR: no Attach within the lifetime -> proxy and buffer freed.
    assert net.routers["B"].counters["proxy_expired"] == 1 and not net.routers["B"].nar


# ============================================================================================ Handover Error reasons


def _refused(net: Net, status: str) -> None:
    a, b = net.routers["A"], net.routers["B"]
    assert not a.par
    assert a.counters["handovers_refused"] == 1
    assert b.counters[f"refused_{status}"] == 1
    (fail,) = [n for w, n in net.notes("fail") if w == "A"]
    assert fail.fields["reason"] == status
    (nh,) = b.nar.values()
    assert nh.state == NarState.REFUSED


def test_he_ncoa_in_use():
    net = attached_net()
    net.in_use["B"].add(NCOA_B)
    m = net.mark()
    net.trigger()
    assert net.steps(m)[4:] == ["A:Send HANDOVER AH", "A:TunnelAdd", "B:Send HANDOVER_ERROR AH", "A:TunnelRemove",
                                "A:ProbeNeighbor"]
    _refused(net, "ncoa_in_use")


def test_he_authentication_failed():
    net = attached_net()
    net.verify_override = lambda v: Verified(v.request_id, None, "bad_ticket")
    m = net.mark()
    net.trigger()
    # what was proxied and buffered during verification is removed with the refusal
    assert net.steps(m)[4:] == ["A:Send HANDOVER AH", "A:TunnelAdd", "B:ProxyAdd", "B:Verify", "B:ProxyRemove",
                                "B:BufferDrop", "B:Send HANDOVER_ERROR AH", "A:TunnelRemove", "A:ProbeNeighbor"]
    _refused(net, "authentication_failed")
    assert net.routers["B"].counters["auth_failed"] == 1


def test_he_authentication_failed_with_a_real_wrong_binding():
    """The AP-REQ is bound to the MN's NCoA; a PAR that names another NCoA in the HI fails verification."""
    net = attached_net()
    m = net.mark()
    net.trigger(ncoa=IPv6Address("2001:db8:b::99"))  # C set: the MN binds to this NCoA too -> accepted
    assert net.steps(m) == HAPPY_PREPARE

    net2 = attached_net()
    orig = net2.verified

    def lying_binding(who, v):
        return orig(who, dataclasses.replace(v, binding=L.HandoverBinding(
            "2001:db8:b::77", v.binding.pcoa, v.binding.nar, v.binding.identifier)))
    net2.verified = lying_binding  # type: ignore[method-assign]
    net2.trigger()
    _refused(net2, "authentication_failed")
    assert net2.verifiers["B"].counters["binding_mismatch"] == 1


def test_he_insufficient_resources():
    net = attached_net(max_handovers=1)
    net.hold_verify = True
    net.trigger()  # B is verifying the first handover
    # A second MN cannot exist in this tiny world; a second HI from another PAR address stands in for it.
    b = net.routers["B"]
    hi = [a for w, a in net.log if w == "A" and isinstance(a, Send) and a.ah][-1]
    other_par = IPv6Address("2001:db8:c::1")
    from fmipfast.messages import IcmpHandover, encode
    from fmipfast.messages import decode as mdecode
    msg = mdecode(hi.icmp)
    raw = encode(dataclasses.replace(msg, ncoa=IPv6Address("2001:db8:b::42"), checksum=None), other_par, AR_B)
    acts = b.handle(Received(raw, other_par, AR_B, 64, "core", True), net.now)
    sends = [x for x in acts if isinstance(x, Send)]
    assert len(sends) == 1 and sends[0].dst == other_par and sends[0].ah
    he = mdecode(sends[0].icmp, AR_B, other_par)
    assert int(he.status) == 130 and he.identifier == msg.identifier
    assert b.counters["refused_insufficient_resources"] == 1
    assert isinstance(msg, IcmpHandover)


# ============================================================================================ forgeries and tampering


def _hrd_forgery(net: Net, key: bytes | None, src: IPv6Address = AR_A) -> bytes:
    from fmipfast.messages import HandoverRedirect, Identifier, MessageAuthCode, encode
    from fmipfast.messages import Principal as POpt
    from fmipfast.protocol import sign
    evil = IPv6Address("2001:db8:e::5eff:fe66:6")
    opts = (POpt("host/evil", "EVIL"), Identifier(0x999))
    if key is None:
        return encode(HandoverRedirect(64, evil, options=opts), src, PCOA_A)
    return sign(HandoverRedirect(64, evil, options=(*opts, MessageAuthCode())), key, src, PCOA_A)


@pytest.mark.parametrize("key", [None, bytes(32), b"\x01" * 32], ids=["no-mac", "zero-key", "wrong-key"])
def test_forged_redirect_is_ignored(key):
    net = attached_net()
    acts = net.mn.handle(Received(_hrd_forgery(net, key), AR_A, PCOA_A, 255, "A"), net.now)
    assert [a for a in acts if not isinstance(a, Note)] == []
    assert net.mn.counters["bad_mac"] == 1 and net.mn.state == MnState.ATTACHED


def test_redirect_from_another_router_is_ignored_even_with_a_good_mac():
    net = attached_net()
    raw = _hrd_forgery(net, net.mn.router.mac_key, AR_B)
    acts = net.mn.handle(Received(raw, AR_B, PCOA_A, 255, "A"), net.now)  # not our router
    assert [a for a in acts if not isinstance(a, Note)] == []
    assert net.mn.counters["unknown_router"] == 1


def test_genuine_redirect_mac_moves_the_mn():
    net = attached_net()
    raw = _hrd_forgery(net, net.mn.router.mac_key)
    acts = net.mn.handle(Received(raw, AR_A, PCOA_A, 255, "A"), net.now)
    assert [type(a).__name__ for a in acts if not isinstance(a, Note)] == ["GetTicket"]
    assert net.mn.state == MnState.HO_TICKET


def test_hi_without_ah_is_dropped_and_counted():
    net = attached_net()
    net.filters.append(lambda who, s: dataclasses.replace(s, ah=False) if code_of(s) == "HANDOVER" else s)
    m = net.mark()
    net.trigger()
    assert net.steps(m)[4:] == ["A:Send HANDOVER AH", "A:TunnelAdd"]
    assert net.routers["B"].counters["missing_ah"] == 1 and not net.routers["B"].nar


def test_he_without_ah_is_dropped():
    net = attached_net()
    net.filters.append(lambda who, s: dataclasses.replace(s, ah=False) if code_of(s) == "HANDOVER_ERROR" else s)
    net.trigger()
    assert net.routers["A"].counters["missing_ah"] == 1
    assert net.routers["A"].par[PCOA_A].state == ParState.HI_SENT


def test_unauthenticated_hra_is_ignored_by_the_par():
    net = attached_net()

    def strip_mac(who, s):
        if code_of(s) != "HANDOVER_REDIRECT_ACK":
            return s
        raw = bytearray(s.icmp)
        raw[-5] ^= 0xFF  # inside the MAC value (the last sub-option)
        from fmipfast.messages import decode as mdecode
        from fmipfast.messages import encode
        return dataclasses.replace(s, icmp=encode(dataclasses.replace(mdecode(bytes(raw)), checksum=None),
                                                  s.src, s.dst))
    net.filters.append(strip_mac)
    net.trigger()
    a = net.routers["A"]
    assert a.counters["bad_mac"] == 1 and a.par[PCOA_A].state == ParState.HRD_SENT


@pytest.mark.parametrize("code", ["HANDOVER_REDIRECT", "HANDOVER_REDIRECT_ACK", "ATTACH", "AUTHENTICATED_MN"])
def test_link_message_with_wrong_hop_limit_is_dropped(code):
    net = attached_net()
    net.filters.append(lambda who, s: dataclasses.replace(s, hop_limit=64) if code_of(s) == code else s)
    net.trigger()
    net.move("B")
    counters = {"HANDOVER_REDIRECT": net.mn, "HANDOVER_REDIRECT_ACK": net.routers["A"],
                "ATTACH": net.routers["B"], "AUTHENTICATED_MN": net.mn}[code].counters
    assert counters["bad_hop_limit"] >= 1
    assert net.mn.counters["handovers_completed"] == 0


@pytest.mark.parametrize("code", ["HANDOVER_REDIRECT", "HANDOVER", "ATTACH"])
def test_bad_checksum_is_dropped(code):
    net = attached_net()

    def corrupt(who, s):
        if code_of(s) != code:
            return s
        raw = bytearray(s.icmp)
        raw[2] ^= 0x01
        return dataclasses.replace(s, icmp=bytes(raw))
    net.filters.append(corrupt)
    net.trigger()
    net.move("B")
    target = {"HANDOVER_REDIRECT": net.mn, "HANDOVER": net.routers["B"], "ATTACH": net.routers["B"]}[code]
    assert target.counters["bad_checksum"] >= 1
    assert net.mn.counters["handovers_completed"] == 0


def test_tampered_attach_fails_the_mac():
    net = attached_net()
    net.trigger()

    def flip_lla(who, s):
        if code_of(s) != "ATTACH":
            return s
        from fmipfast.messages import LinkLayerAddress, encode
        from fmipfast.messages import decode as mdecode
        msg = mdecode(s.icmp)
        opts = tuple(LinkLayerAddress(b"\x02" * 8) if isinstance(o, LinkLayerAddress) else o for o in msg.options)
        return dataclasses.replace(s, icmp=encode(dataclasses.replace(msg, options=opts, checksum=None), s.src, s.dst))
    net.filters.append(flip_lla)
    net.move("B")
    assert net.routers["B"].counters["bad_mac"] == 1
    assert [s for s in net.steps() if s.startswith("B:Proxy")] == ["B:ProxyAdd"]


# ============================================================================================ link reversal


def test_link_reversal_before_attaching():
    net = attached_net()
    net.trigger()
    net.move(None)  # the MN leaves A ...
    m = net.mark()
    net.move("A")  # ... and comes back before B's link was ever up
    assert net.steps(m) == ["MN:Send FORWARDING_DISABLE", "A:TunnelRemove"]
    a, b = net.routers["A"], net.routers["B"]
    assert not a.par and PCOA_A in a.sessions and a.counters["forwarding_disabled"] == 1
    assert net.mn.state == MnState.ATTACHED and net.mn.router.address == AR_A
    assert net.mn.counters["link_reversals"] == 1
    # NAR: proxy entry and buffer expire by lifetime, freed and counted.
    m = net.mark()
    net.advance(3000)
    assert net.steps(m) == ["B:ProxyRemove", "B:BufferDrop"]
    assert b.counters["proxy_expired"] == 1 and not b.nar and b.next_deadline() is None
    # and the MN can be handed over again
    net.trigger()
    assert net.routers["A"].par[PCOA_A].state == ParState.FORWARDING


def test_link_reversal_after_a_failed_attach_attempt():
    net = attached_net()
    net.trigger()
    net.drop("ATTACH", times=10)
    net.move("B")
    m = net.mark()
    net.move("A")
    assert net.steps(m) == ["MN:RemoveAddress", "MN:Send FORWARDING_DISABLE", "A:TunnelRemove"]
    assert net.actions("MN", object, m)[0].address == NCOA_B
    assert net.mn.next_deadline() == (NOW + 36000 - 30) * 1_000_000_000  # only the renewal is left


def test_forged_forwarding_disable_is_ignored():
    net = attached_net()
    net.trigger()
    from fmipfast.messages import ForwardingDisable, Identifier, MessageAuthCode
    from fmipfast.protocol import sign
    raw = sign(ForwardingDisable((Identifier(0x100), MessageAuthCode())), b"\x07" * 32, PCOA_A, AR_A)
    acts = net.routers["A"].handle(Received(raw, PCOA_A, AR_A, 255, "A"), net.now)
    assert [a for a in acts if not isinstance(a, Note)] == []
    assert net.routers["A"].counters["bad_mac"] == 1


# ============================================================================================ stale / duplicate


def test_stale_and_duplicate_answers_are_counted():
    net = attached_net()
    net.trigger()
    a, b = net.routers["A"], net.routers["B"]
    he = [x for w, x in net.log if w == "B" and isinstance(x, Send)][-1]
    # The same accepted HE again: a duplicate at A.
    a.handle(Received(he.icmp, he.src, he.dst, 64, "core", True), net.now)
    assert a.counters["duplicate"] == 1
    # A Verified nobody asked for.
    b.handle(Verified(999, None, "x"), net.now)
    assert b.counters["stale_verified"] == 1
    # A TicketReady nobody asked for.
    net.mn.handle(TicketReady(999, None, "x"), net.now)
    assert net.mn.counters["stale_ticket"] == 1
    net.move("B")
    amn = [x for w, x in net.log if w == "B" and isinstance(x, Send)][-1]
    net.mn.handle(Received(amn.icmp, amn.src, amn.dst, 255, "B"), net.now)
    assert net.mn.counters["duplicate"] == 1
    # An HE with an identifier A never used.
    from fmipfast.messages import HandoverError, Identifier, Status, encode
    raw = encode(HandoverError(NCOA_B, (Status(1), Identifier(0x7777))), AR_B, AR_A)
    a.handle(Received(raw, AR_B, AR_A, 64, "core", True), net.now)
    assert a.counters["unknown_identifier"] == 1


def test_trigger_for_an_unknown_or_busy_mn():
    net = Net()
    net.trigger()
    assert net.routers["A"].counters["trigger_unknown_mn"] == 1 and not net.routers["A"].par
    net.attach()
    net.hold_verify = True
    net.trigger()
    net.trigger()
    assert net.routers["A"].counters["trigger_busy"] == 1


# ============================================================================================ tables


TABLES = ((PAR_TRANSITIONS, ParState, ParRole, AccessRouter), (NAR_TRANSITIONS, NarState, NarRole, AccessRouter),
          (MN_TRANSITIONS, MnState, MobileNode, MobileNode))


def test_transition_tables_are_introspectable_and_complete():
    for table, states, _role, _machine in TABLES:
        assert all(isinstance(s, states) and isinstance(k, Kind) for s, k in table)
        assert {s for s, _ in table} <= set(states)
    # every entry is a function of its role's class, and the one the machine's own attribute of that name is
    # (nothing overrides a handler behind the table's back)
    for table, _states, role, machine in TABLES:
        for handler in table.values():
            assert callable(handler) and handler.__name__.startswith("_on_"), handler
            assert vars(role).get(handler.__name__) is handler, (role, handler)
            assert getattr(machine, handler.__name__) is handler, (machine, handler)
    # every state can leave
    assert {s for s, _ in MN_TRANSITIONS} == set(MnState)
    assert {s for s, _ in PAR_TRANSITIONS} == set(ParState)
    assert {s for s, _ in NAR_TRANSITIONS} == set(NarState)


# ============================================================================================ property


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["HANDOVER_REDIRECT", "HANDOVER_REDIRECT_ACK", "HANDOVER", "HANDOVER_ERROR",
                                 "ATTACH", "AUTHENTICATED_MN"]), max_size=3))
def test_any_few_losses_still_complete_the_handover(losses):
    """Up to three lost messages anywhere: retransmissions (4 tries each) always complete the handover, and the
    NAR verifies the AP-REQ exactly once."""
    net = attached_net()
    for code in losses:
        net.drop(code)
    net.trigger()
    net.advance(1500 if losses else 0)
    net.move("B")
    net.advance(2000)
    assert net.mn.state == MnState.ATTACHED and net.mn.router.address == AR_B
    assert net.verifiers["B"].counters["ok"] == 1 and net.verifiers["B"].counters["replay"] == 0
    assert net.routers["B"].counters["attached"] == 1
    assert [s for s in net.steps() if s.startswith("B:Proxy")] == ["B:ProxyAdd", "B:ProxyComplete"]


def test_every_handler_is_reachable_from_a_table():
    """The ``_on_`` prefix marks the handlers and nothing else: a handler left out of its table would be dead."""
    for table, _states, role, _machine in TABLES:
        handlers = {name for name, value in vars(role).items() if name.startswith("_on_") and callable(value)}
        assert handlers == {h.__name__ for h in table.values()}, role


def test_the_roles_of_an_access_router_define_no_name_twice():
    """ParRole and NarRole are mixins of one AccessRouter: a name both defined would silently be one role's."""
    def own(cls: type) -> set[str]:
        return {n for n in vars(cls) if not n.startswith("__")}
    assert not own(ParRole) & own(NarRole)
    assert not own(AccessRouter) & (own(ParRole) | own(NarRole))


def test_docs_print_every_transition():
    from pathlib import Path
    text = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
    for table in (PAR_TRANSITIONS, NAR_TRANSITIONS, MN_TRANSITIONS):
        for (state, kind), handler in table.items():
            row = f"| `{state.value}` | `{kind.value}` | `{handler.__name__}` |"
            assert row in text, (state, kind, handler)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 7), st.binary(max_size=120), st.booleans(), st.sampled_from([64, 255]))
def test_arbitrary_messages_never_raise(code, body, ah, hop):
    """Any octets after a valid fmipfast header, with a correct checksum: both machines drop or act, never raise."""
    net = attached_net()
    net.trigger()
    raw = bytearray(bytes((200, code, 0, 0)) + body)
    for src, dst, who in ((PCOA_A, AR_A, "A"), (AR_A, AR_B, "B"), (AR_A, PCOA_A, "MN")):
        buf = bytearray(raw)
        backend.icmp6_checksum_fill(src.packed, dst.packed, buf)
        before = sum(net.machine(who).counters.values())
        net.machine(who).handle(Received(bytes(buf), src, dst, hop, "x", ah), net.now)
        assert sum(net.machine(who).counters.values()) > before  # at least "received" moved


def _reference_calls(run: Callable[[], object]) -> set[str]:
    """The functions of ``fmipfast/reference/`` that ran during ``run()`` (qualified names)."""
    import os
    import sys

    home = os.path.dirname(backend._reference.__file__) + os.sep
    ran: set[str] = set()

    def profile(frame, event, _arg):  # type: ignore[no-untyped-def]
        if event == "call" and frame.f_code.co_filename.startswith(home):
            ran.add(f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_code.co_qualname}")

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return ran


@pytest.mark.skipif(backend.IMPLEMENTATION != "core", reason="the compiled kernels are what a built package runs")
def test_a_handover_runs_the_compiled_derivations_not_the_reference():
    """The reference is the kernels' oracle; a built package derives addresses with the compiled core: the MN's
    NCoA, the NAR's link-local address and MAC at the Redirect, the MN's MAC from its EUI-64 at the NAR's Attach
    (its `_octets` once showed in the NAR's profile of an Attach in the lab)."""
    net = attached_net()
    ran = _reference_calls(lambda: (net.trigger(), net.move("B")))
    assert net.mn.counters["handovers_completed"] == 1
    assert ran == set()

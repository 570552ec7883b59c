"""fmipfast.mn alone: the mobile node's transitions one event at a time, each failure path and counter.
Whole handovers against real routers are in test_handover_fsm.py (whose world this module reuses)."""

from __future__ import annotations

from ipaddress import IPv6Address

from fmipfast.messages import (
    Attach,
    AuthenticatedMN,
    EncapsulatedPacket,
    HandoverRedirect,
    HandoverRedirectAck,
    Identifier,
    LinkLayerAddress,
    LkbMessage,
    MessageAuthCode,
    decode,
    encode,
)
from fmipfast.messages import Principal as POpt
from fmipfast.mn import MN_COUNTERS, MnState, MobileNode
from fmipfast.protocol import (
    AdjacentRealms,
    Backoff,
    GetTicket,
    LinkDown,
    LinkUp,
    Note,
    Precache,
    ReadyToSwitch,
    Received,
    Send,
    Start,
    Tick,
    TicketReady,
    sign,
)
from fmipfast.security import lwkerb as L
from tests.test_handover_fsm import AR_A, AR_B, AR_B_LL, MN_MAC, MS, NCOA_B, NOW, P_A, P_B, PCOA_A, T0, Net, code_of

MN_LL = IPv6Address("fe80::21b:63ff:fe84:45e6")


def real(actions):
    return [a for a in actions if not isinstance(a, Note)]


def names(actions):
    return [type(a).__name__ for a in real(actions)]


def attached() -> tuple[Net, MobileNode]:
    net = Net()
    net.attach()
    return net, net.mn


def hrd(mn: MobileNode, *, ident=0x42, nar=AR_B, prefix=64, nar_mac=None, ncoa=None, principal=True, src=AR_A,
        key=None) -> Received:
    opts = ((POpt(P_B.name, P_B.realm),) if principal else ()) + (Identifier(ident), MessageAuthCode())
    assert mn.router is not None
    raw = sign(HandoverRedirect(prefix, nar, nar_mac, ncoa, opts), key or mn.router.mac_key, src, mn.router.coa)
    return Received(raw, src, mn.router.coa, 255, "A")


def test_constructor_and_counters():
    mn = MobileNode(MN_MAC)
    assert mn.eui64 == bytes.fromhex("001b63fffe8445e6")
    assert mn.state == MnState.IDLE and mn.next_deadline() is None
    assert set(mn.counters) == set(MN_COUNTERS)


def test_start_asks_for_a_ticket_and_attach_carries_ap_req_lla_and_bu():
    mn = MobileNode(MN_MAC, home_agent="2001:db8:ff::1", epoch_ns=0)
    (gt,) = real(mn.handle(Start(AR_A, P_A, PCOA_A, "A"), T0))
    assert gt == GetTicket(1, P_A) and mn.state == MnState.ATTACH_TICKET
    net = Net()
    (send,) = real(mn.handle(TicketReady(1, net.tickets[P_A]), T0))
    assert isinstance(send, Send) and (send.src, send.dst, send.hop_limit, send.iface) == (PCOA_A, AR_A, 255, "A")
    att = decode(send.icmp, send.src, send.dst)
    assert isinstance(att, Attach)
    assert att.find(LinkLayerAddress) == LinkLayerAddress(mn.eui64)
    assert att.find(EncapsulatedPacket) is not None and att.find(MessageAuthCode) is None
    ctx = net.verifiers["A"].verify_local(att.lkb, L.HandoverBinding(str(PCOA_A), str(PCOA_A), str(AR_A), 1))
    assert ctx.authenticator.ctime_us == NOW * 1_000_000  # POSIX time = (now_ns + epoch_ns) / 1e9
    assert mn.state == MnState.ATTACHING and mn.next_deadline() == T0 + 150 * MS


def test_attach_without_home_agent_has_no_bu():
    net = Net()
    net.mn = MobileNode(MN_MAC)
    net.attach()
    att = decode(net.actions("MN", Send)[0].icmp)
    assert att.find(EncapsulatedPacket) is None
    assert net.steps() == ["MN:GetTicket", "MN:Send ATTACH", "A:Verify", "A:Send AUTHENTICATED_MN"]


def test_no_ticket_for_the_router_leaves_the_mn_idle():
    mn = MobileNode(MN_MAC)
    mn.handle(Start(AR_A, P_A, PCOA_A, "A"), T0)
    assert real(mn.handle(TicketReady(1, None, "KDC unreachable"), T0)) == []
    assert mn.state == MnState.IDLE and mn.counters["ticket_failed"] == 1


def test_initial_attach_exhaustion():
    net = Net(backoff=Backoff(100, 3, 2))
    net.drop("ATTACH", times=5)
    net.attach()
    net.advance(100 + 300 - 1)
    assert net.mn.state == MnState.ATTACHING and net.mn.counters["retransmitted"] == 1
    net.advance(1)
    assert net.mn.state == MnState.IDLE and net.mn.counters["attach_failed"] == 1
    assert net.mn.next_deadline() is None


def test_redirect_forms_ncoa_and_nar_addresses_and_asks_for_the_nar_ticket():
    net, mn = attached()
    (gt,) = real(mn.handle(hrd(mn), net.now))
    assert isinstance(gt, GetTicket) and gt.server == P_B and mn.state == MnState.HO_TICKET
    x = mn.exchange
    assert x is not None
    assert (x.coa, x.pcoa, x.nar_ll, x.nar_mac) == (NCOA_B, PCOA_A, AR_B_LL, bytes.fromhex("02005e100002"))
    out = real(mn.handle(TicketReady(gt.request_id, net.tickets[P_B]), net.now))
    assert names(out) == ["Send", "ReadyToSwitch"] and out[1] == ReadyToSwitch(AR_B)
    hra = decode(out[0].icmp, out[0].src, out[0].dst)
    assert isinstance(hra, HandoverRedirectAck) and hra.identifier == 0x42
    assert (out[0].src, out[0].dst) == (PCOA_A, AR_A)
    binding = L.HandoverBinding(str(NCOA_B), str(PCOA_A), str(AR_B), 0x42)
    assert net.verifiers["B"].verify_local(hra.lkb, binding).client == L.Principal("mn1", "HOME")
    assert mn.state == MnState.HO_READY


def test_redirect_with_m_and_c_uses_them():
    net, mn = attached()
    ncoa = IPv6Address("2001:db8:b::1234")
    mn.handle(hrd(mn, nar_mac=bytes.fromhex("0a0b0cfffe0d0e0f"), ncoa=ncoa), net.now)
    assert mn.exchange is not None
    assert (mn.exchange.coa, mn.exchange.nar_mac) == (ncoa, bytes.fromhex("0a0b0c0d0e0f"))


def test_redirect_whose_nar_iid_is_not_eui64_fails_clearly():
    net, mn = attached()
    out = mn.handle(hrd(mn, nar=IPv6Address("2001:db8:b::1")), net.now)
    assert real(out) == [] and mn.state == MnState.ATTACHED
    assert mn.counters["derivation_failed"] == 1
    (fail,) = [n for n in out if n.name == "fail"]
    assert "not EUI-64 based" in fail.fields["reason"] and "(M)" in fail.fields["reason"]


def test_redirect_with_prefix_other_than_64_fails():
    net, mn = attached()
    assert real(mn.handle(hrd(mn, prefix=48), net.now)) == []
    assert mn.counters["derivation_failed"] == 1


def test_redirect_without_principal_is_not_followed():
    net, mn = attached()
    assert real(mn.handle(hrd(mn, principal=False), net.now)) == []
    assert mn.counters["no_principal"] == 1 and mn.state == MnState.ATTACHED


def test_redirect_before_any_attach_is_from_an_unknown_router():
    mn = MobileNode(MN_MAC)
    raw = encode(HandoverRedirect(64, AR_B, options=(Identifier(1),)), AR_A, PCOA_A)
    assert real(mn.handle(Received(raw, AR_A, PCOA_A, 255, "A"), T0)) == []
    assert mn.counters["unknown_router"] == 1


def test_ticket_failure_for_the_nar_abandons_the_handover():
    net, mn = attached()
    (gt,) = real(mn.handle(hrd(mn), net.now))
    assert real(mn.handle(TicketReady(gt.request_id, None, "no cross-realm path"), net.now)) == []
    assert mn.state == MnState.ATTACHED and mn.counters["ticket_failed"] == 1 and mn.exchange is None


def test_redirect_retransmission_resends_the_hra_and_a_new_identifier_supersedes():
    net, mn = attached()
    (gt,) = real(mn.handle(hrd(mn), net.now))
    mn.handle(TicketReady(gt.request_id, net.tickets[P_B]), net.now)
    # the same identifier: our HRA is re-sent
    (again,) = real(mn.handle(hrd(mn), net.now))
    assert isinstance(again, Send) and mn.counters["duplicate_hrd"] == 1
    # a new identifier: the PAR gave the old handover up; follow the new one
    (gt2,) = real(mn.handle(hrd(mn, ident=0x43), net.now))
    assert isinstance(gt2, GetTicket) and mn.counters["superseded"] == 1
    assert mn.state == MnState.HO_TICKET and mn.exchange is not None and mn.exchange.identifier == 0x43
    assert real(mn.handle(TicketReady(gt.request_id, net.tickets[P_B]), net.now)) == []  # the old request
    assert mn.counters["stale_ticket"] == 1


def test_duplicate_redirect_while_waiting_for_the_ticket_is_dropped():
    net, mn = attached()
    mn.handle(hrd(mn), net.now)
    assert real(mn.handle(hrd(mn), net.now)) == []
    assert mn.counters["duplicate_hrd"] == 1


def _ready(net: Net, mn: MobileNode) -> None:
    (gt,) = real(mn.handle(hrd(mn), net.now))
    mn.handle(TicketReady(gt.request_id, net.tickets[P_B]), net.now)


def test_the_attach_prepared_while_idle_is_the_one_sent_unless_a_bu_took_its_sequence_number():
    net, mn = attached()
    assert not mn.prepare()  # nothing to prepare while attached
    _ready(net, mn)
    seq = mn._sequence
    assert mn.prepare() and not mn.prepare()  # built once
    assert mn._sequence == seq and mn.last_bu_sequence != seq  # nothing allocated yet
    prepared = mn.exchange.prepared[1]
    out = real(mn.handle(LinkUp("B"), net.now))
    assert names(out) == ["PreloadNeighbor", "ConfigureAddress", "SetDefaultRoute", "Send"]
    assert out[3].icmp == prepared and mn.last_bu_sequence == seq and mn._sequence == seq + 1
    assert mn.exchange.prepared is None

    # the driver sent a BU of its own after the Attach was prepared: the Attach is built again, with a newer BU
    net, mn = attached()
    _ready(net, mn)
    assert mn.prepare()
    prepared = mn.exchange.prepared[1]
    own = mn.allocate_bu_sequence()
    out = real(mn.handle(LinkUp("B"), net.now))
    att = decode(out[3].icmp, out[3].src, out[3].dst)
    assert out[3].icmp != prepared and mn.last_bu_sequence == own + 1
    assert att.find(EncapsulatedPacket) is not None and att.identifier == 0x42


def test_link_up_on_the_nar_link_configures_and_attaches():
    net, mn = attached()
    _ready(net, mn)
    out = real(mn.handle(LinkUp("B"), net.now))
    # the Attach as early as it can leave: after the NAR's neighbor entry, before the address and the route
    assert names(out) == ["PreloadNeighbor", "ConfigureAddress", "SetDefaultRoute", "Send"]
    s = out[3]
    assert (s.src, s.dst, s.hop_limit, s.iface) == (NCOA_B, AR_B_LL, 255, "B")
    att = decode(s.icmp, s.src, s.dst)
    assert att.identifier == 0x42 and att.find(LinkLayerAddress) == LinkLayerAddress(mn.eui64)
    assert att.find(EncapsulatedPacket) is not None and att.find(MessageAuthCode) is not None
    assert mn.state == MnState.HO_ATTACHING
    # a flap on the new link does not restart anything
    assert real(mn.handle(LinkDown(), net.now)) == [] and real(mn.handle(LinkUp("B"), net.now)) == []


def _amn(mn: MobileNode, *, key: bytes | None = None, rep: bytes | None = None, src=AR_B_LL, ident=0x42) -> Received:
    x = mn.exchange
    assert x is not None and x.creds is not None and x.authenticator is not None
    if rep is None:
        part = L.EncApRepPart(x.authenticator.ctime_us, x.authenticator.nonce)
        rep = L.ApRep(L.seal(x.creds.session_key, L.Usage.AP_REP, b"", part.encode())).encode()
    msg = AuthenticatedMN((LkbMessage(rep), Identifier(ident), MessageAuthCode()))
    raw = sign(msg, key or x.mac_key, src, NCOA_B)
    return Received(raw, src, NCOA_B, 255, "B")


def test_authenticated_mn_checks_mac_ap_rep_and_source():
    net, mn = attached()
    _ready(net, mn)
    mn.handle(LinkUp("B"), net.now)
    assert real(mn.handle(_amn(mn, key=b"\x01" * 32), net.now)) == []
    assert mn.counters["bad_mac"] == 1
    x = mn.exchange
    assert x is not None and x.authenticator is not None and x.creds is not None
    wrong = L.ApRep(L.seal(x.creds.session_key, L.Usage.AP_REP, b"",
                           L.EncApRepPart(x.authenticator.ctime_us + 1, x.authenticator.nonce).encode())).encode()
    assert real(mn.handle(_amn(mn, rep=wrong), net.now)) == []
    assert real(mn.handle(_amn(mn, rep=b"\x0f\x01garbage"), net.now)) == []
    assert mn.counters["bad_ap_rep"] == 2
    assert real(mn.handle(_amn(mn, src=IPv6Address("fe80::666")), net.now)) == []
    assert mn.counters["unknown_router"] == 1
    assert real(mn.handle(_amn(mn, ident=0x41), net.now)) == []
    assert mn.counters["unknown_identifier"] == 1
    assert mn.state == MnState.HO_ATTACHING and mn.next_deadline() is not None  # still retransmitting
    out = real(mn.handle(_amn(mn), net.now))
    assert [type(a).__name__ for a in out] == ["RemoveAddress"] and out[0].address == PCOA_A and out[0].retired
    assert mn.state == MnState.ATTACHED and mn.router is not None and mn.router.address == AR_B
    assert mn.next_deadline() == (NOW + 36000 - 30) * 1_000_000_000  # the renewal, 30 s before the ticket ends


def test_tick_before_the_deadline_does_nothing():
    net, mn = attached()
    _ready(net, mn)
    mn.handle(LinkUp("B"), net.now)
    assert real(mn.handle(Tick(), net.now + 149 * MS)) == []
    assert names(mn.handle(Tick(), net.now + 150 * MS)) == ["Send"]


def test_adjacent_realms_are_precached_in_any_state():
    mn = MobileNode(MN_MAC)
    assert real(mn.handle(AdjacentRealms(("B.EXAMPLE", "C.EXAMPLE")), T0)) == [Precache(("B.EXAMPLE", "C.EXAMPLE"))]
    net, mn = attached()
    _ready(net, mn)
    assert real(mn.handle(AdjacentRealms(("X",)), net.now)) == [Precache(("X",))]
    assert mn.counters["precache_requests"] == 1


def test_unexpected_events_are_counted():
    mn = MobileNode(MN_MAC)
    mn.handle(LinkUp("A"), T0)  # IDLE has no LinkUp transition
    raw = encode(HandoverRedirectAck((Identifier(1),)), AR_A, PCOA_A)
    mn.handle(Received(raw, AR_A, PCOA_A, 255, "A"), T0)
    raw = encode(HandoverRedirectAck(()), AR_A, PCOA_A)
    mn.handle(Received(raw, AR_A, PCOA_A, 255, "A"), T0)
    assert mn.counters["unexpected"] == 2 and mn.counters["no_identifier"] == 1
    assert MN_LL.is_link_local


# ---------------------------------------------------------------------------------------------- session renewal
END = NOW + 36000  # the endtime of the Net's tickets
RENEW = (END - 30) * 1_000_000_000  # renew_before_s = 30


def _ticket(net: Net, principal, end: int):
    """A real ticket for ``principal`` (its router's service key) that ends at ``end`` (POSIX seconds)."""
    old = net.tickets[principal]
    key = net.keytabs["A" if principal == P_A else "B"].get(principal)
    skey = L.Key(0, bytes((end + i) & 0xFF for i in range(32)))
    part = L.EncTicketPart(L.TicketFlag.PRE_AUTHENT, end - 36000, end - 36000, end, skey.value, old.client)
    return L.Credentials(old.client, principal, L.Ticket.issue(principal, key, part), skey, part.flags, end - 36000,
                         end - 36000, end)


def _advance_to(net: Net, when_ns: int) -> None:
    net.advance((when_ns - net.now) / MS)


def test_a_session_is_renewed_before_its_ticket_ends_with_a_new_key():
    """30 s before the ticket ends the MN re-attaches to its router with a fresh ticket: a new AP-REQ, a new
    session key at both ends, no BU; the next handover is authenticated with the new key."""
    net, mn = attached()
    old_key = mn.router.mac_key
    assert mn.next_deadline() == RENEW and mn.router.expires_ns == END * 1_000_000_000
    net.tickets[P_A] = _ticket(net, P_A, END + 36000)
    _advance_to(net, RENEW - 1)
    assert mn.state == MnState.ATTACHED and mn.counters["renewals_started"] == 0
    m = net.mark()
    _advance_to(net, RENEW)
    assert net.steps(m) == ["MN:GetTicket", "MN:Send ATTACH", "A:Verify", "A:Send AUTHENTICATED_MN"]
    assert decode(net.actions("MN", Send, m)[0].icmp).find(EncapsulatedPacket) is None  # no BU in a renewal
    assert mn.last_bu_sequence is None  # so a driver waits for no Binding Ack after it
    assert mn.state == MnState.ATTACHED and mn.counters["renewed"] == 1 and mn.counters["initial_attached"] == 1
    assert mn.router.mac_key != old_key and mn.router.expires_ns == (END + 36000) * 1_000_000_000
    assert net.routers["A"].sessions[PCOA_A].mac_key == mn.router.mac_key
    assert mn.next_deadline() == (END + 36000 - 30) * 1_000_000_000
    _advance_to(net, END * 1_000_000_000 + MS)  # the old ticket's end passes: nothing expires anywhere
    assert PCOA_A in net.routers["A"].sessions and net.routers["A"].counters["session_expired"] == 0
    net.tickets[P_B] = _ticket(net, P_B, END + 36000)  # the Net's ticket for B has ended by now too
    net.trigger()
    net.move("B")
    assert mn.state == MnState.ATTACHED and mn.router.address == AR_B and mn.counters["bad_mac"] == 0


def test_a_renewal_that_cannot_get_a_later_ticket_retries_then_the_session_expires():
    """The cache keeps handing out the same ticket: each renewal fails (no Attach is sent), is retried every
    10 s, and at the ticket's end the session is gone at both ends; the fresh attach that follows has no usable
    ticket either, so the MN is idle -- said, counted, never a loop."""
    net, mn = attached()
    m = net.mark()
    _advance_to(net, END * 1_000_000_000 - 1)
    assert net.steps(m) == ["MN:GetTicket"] * 3  # at -30 s, -20 s, -10 s
    assert mn.counters["renew_failed"] == 3 and mn.state == MnState.ATTACHED and mn.router is not None
    _advance_to(net, END * 1_000_000_000)
    assert mn.counters["session_expired"] == 1 and mn.state == MnState.IDLE and mn.router is None
    assert mn.counters["ticket_failed"] == 1 and mn.next_deadline() is None  # the ended ticket, once
    assert [n.fields["router"] for w, n in net.notes("session_expired", m) if w == "MN"] == [str(AR_A)]
    assert PCOA_A not in net.routers["A"].sessions and net.routers["A"].counters["session_expired"] == 1


def test_a_renewal_whose_attaches_are_lost_keeps_the_old_session_and_tries_again():
    net, mn = attached()
    net.tickets[P_A] = _ticket(net, P_A, END + 36000)
    key = mn.router.mac_key
    net.drop("ATTACH", times=4)
    _advance_to(net, RENEW + 2250 * MS)  # the backoff's four tries
    assert mn.counters["renew_failed"] == 1 and mn.state == MnState.ATTACHED and mn.router.mac_key == key
    assert RENEW + 2250 * MS < mn.next_deadline() <= RENEW + 12_250 * MS  # renew_retry_s after the failure
    _advance_to(net, RENEW + 20_000 * MS)
    assert mn.counters["renewed"] == 1 and mn.router.mac_key != key


def test_a_redirect_during_a_renewal_wins():
    """The PAR triggers a handover while the MN is re-attaching: the renewal is given up and the handover,
    authenticated with the session key still in force, completes."""
    net, mn = attached()
    net.drop("ATTACH", times=1)  # the renewal's Attach: the MN is still attaching when the Redirect comes
    net.tickets[P_A] = _ticket(net, P_A, END + 36000)
    _advance_to(net, RENEW)
    assert mn.state == MnState.ATTACHING
    net.tickets[P_B] = _ticket(net, P_B, END + 36000)
    net.trigger()
    assert mn.counters["renew_interrupted"] == 1 and mn.state == MnState.HO_READY
    net.move("B")
    assert mn.state == MnState.ATTACHED and mn.router.address == AR_B and mn.counters["handovers_completed"] == 1


def test_an_ended_ticket_is_not_used():
    net = Net()
    net.tickets[P_A] = _ticket(net, P_A, NOW - 1)
    net.attach()
    assert net.mn.state == MnState.IDLE and net.mn.counters["ticket_failed"] == 1
    assert not net.actions("MN", Send)


def test_renewal_parameters_are_checked():
    import pytest
    with pytest.raises(ValueError, match="renew_retry_s"):
        MobileNode(MN_MAC, renew_retry_s=0)
    with pytest.raises(ValueError, match="renew_before_s"):
        MobileNode(MN_MAC, renew_before_s=-1)


# ---------------------------------------------------------------------------------------------- the switch timer


def test_no_new_link_within_switch_wait_gives_the_handover_up_with_a_forwarding_disable():
    """ReadyToSwitch, then nothing: 2.5 s later (after the PAR's 2.25 s of retransmissions, before its 3 s
    lifetime) the MN sends a Forwarding Disable; the PAR stops tunnelling and keeps the MN's session, so the
    next handover is authenticated as usual."""
    net = Net()
    net.attach()
    net.trigger()
    mn = net.mn
    assert mn.state == MnState.HO_READY and mn.next_deadline() == net.now + 2500 * MS
    m = net.mark()
    net.advance(2499)
    assert mn.state == MnState.HO_READY and mn.counters["switch_timeouts"] == 0
    net.advance(1)
    assert net.steps(m) == ["MN:Send FORWARDING_DISABLE", "A:TunnelRemove"]
    assert mn.state == MnState.ATTACHED and mn.counters["switch_timeouts"] == 1 and mn.router.address == AR_A
    a = net.routers["A"]
    assert a.counters["forwarding_disabled"] == 1 and not a.par and PCOA_A in a.sessions
    assert [n.fields["reason"] for w, n in net.notes("fail", m) if w == "MN"] == [
        "no new link within 2.5 s of ReadyToSwitch"]
    net.trigger()
    net.move("B")
    assert mn.state == MnState.ATTACHED and mn.router.address == AR_B


def test_a_link_up_in_time_cancels_the_switch_timer():
    net = Net()
    net.attach()
    net.trigger()
    net.advance(2000)
    net.move("B")
    net.advance(5000)
    assert net.mn.counters["switch_timeouts"] == 0 and net.mn.router.address == AR_B
    with __import__("pytest").raises(ValueError, match="switch_wait_s"):
        MobileNode(MN_MAC, switch_wait_s=0)


def test_a_replayed_redirect_is_refused_after_its_handover_was_reversed():
    """The MAC carries no freshness: a Redirect captured during a handover the MN then reversed still verifies
    under the session key.  The MN remembers the identifiers it acted on under that key and refuses it, so an
    attacker cannot send the MN to a NAR that expects nobody; the router's next real Redirect is followed."""
    net = Net()
    net.attach()
    m = net.mark()
    net.trigger()
    (redirect,) = [a for a in net.actions("A", Send, m) if code_of(a) == "HANDOVER_REDIRECT"]
    net.move("A")  # link reversal: Forwarding Disable, the PAR ends the handover
    mn = net.mn
    assert mn.state == MnState.ATTACHED and mn.counters["link_reversals"] == 1
    replay = Received(redirect.icmp, redirect.src, redirect.dst, 255, "A")
    assert real(mn.handle(replay, net.now)) == []
    assert mn.counters["replayed_redirect"] == 1 and mn.state == MnState.ATTACHED
    net.advance(100)
    net.trigger()  # a new handover, a new identifier
    net.move("B")
    assert mn.router.address == AR_B and mn.counters["handovers_completed"] == 1


def test_the_remembered_redirects_are_bounded():
    from fmipfast.mn import REDIRECTS_REMEMBERED
    net, mn = attached()
    for ident in range(REDIRECTS_REMEMBERED + 5):
        mn.handle(hrd(mn, ident=ident), net.now)
        mn.exchange, mn.state = None, MnState.ATTACHED  # as if each handover had been given up
    assert len(mn.router.redirects) == REDIRECTS_REMEMBERED and 0 not in mn.router.redirects
    assert mn.counters["replayed_redirect"] == 0
    mn.handle(hrd(mn, ident=REDIRECTS_REMEMBERED + 4), net.now)
    assert mn.counters["replayed_redirect"] == 1


# ------------------------------------------------------------------ the NCoA configured while the old link is down
def test_the_ncoa_is_configured_once_when_the_old_link_goes_down_and_the_new_link_brings_only_the_attach():
    net, mn = attached()
    _ready(net, mn)
    out = real(mn.handle(LinkDown(), net.now))
    assert names(out) == ["ConfigureAddress"] and out[0].address == NCOA_B
    assert real(mn.handle(LinkDown(), net.now)) == []  # a flap of the old link: configured already
    out = real(mn.handle(LinkUp("B"), net.now))
    assert names(out) == ["PreloadNeighbor", "SetDefaultRoute", "Send"] and out[2].src == NCOA_B
    assert mn.state == MnState.HO_ATTACHING


def test_back_on_the_old_link_the_ncoa_configured_meanwhile_is_removed():
    net, mn = attached()
    _ready(net, mn)
    old = mn.router.link
    mn.handle(LinkDown(), net.now)
    out = real(mn.handle(LinkUp(old), net.now))
    assert names(out) == ["RemoveAddress", "Send"] and out[0].address == NCOA_B and not out[0].retired
    assert mn.state == MnState.ATTACHED and mn.counters["link_reversals"] == 1
    # without the link going down first there is nothing to remove
    net, mn = attached()
    _ready(net, mn)
    assert names(mn.handle(LinkUp(mn.router.link), net.now)) == ["Send"]


def test_no_new_link_in_time_removes_the_ncoa_configured_meanwhile():
    net, mn = attached()
    _ready(net, mn)
    mn.handle(LinkDown(), net.now)
    deadline = mn.next_deadline()
    assert deadline is not None
    out = real(mn.handle(Tick(), deadline))
    assert names(out) == ["RemoveAddress", "Send"] and out[0].address == NCOA_B
    assert mn.counters["switch_timeouts"] == 1 and mn.state == MnState.ATTACHED


def test_a_redirect_that_supersedes_the_handover_removes_the_ncoa_configured_for_it():
    net, mn = attached()
    _ready(net, mn)
    mn.handle(LinkDown(), net.now)
    out = real(mn.handle(hrd(mn, ident=0x43), net.now))
    assert names(out)[:1] == ["RemoveAddress"] and out[0].address == NCOA_B
    assert mn.counters["superseded"] == 1

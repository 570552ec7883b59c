"""fmipfast.ar alone: the access router's PAR and NAR transitions one message at a time, each failure path and
counter.  Whole handovers with a real MN are in test_handover_fsm.py (whose world this module reuses)."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmipfast.ar import AR_COUNTERS, AccessRouter, NarState, ParState
from fmipfast.constants import AddressKind, HandoverStatus
from fmipfast.messages import (
    AddressOption,
    Attach,
    AuthenticatedMN,
    EchoRequest,
    ForwardingDisable,
    HandoverControl,
    HandoverError,
    HandoverRedirect,
    HandoverRedirectAck,
    IcmpHandover,
    Identifier,
    LinkLayerAddress,
    LkbMessage,
    MessageAuthCode,
    Status,
    decode,
    encode,
)
from fmipfast.protocol import (
    BufferDrop,
    LinkUp,
    Note,
    ProbeNeighbor,
    ProxyAdd,
    ProxyRemove,
    Reachability,
    Received,
    Send,
    Tick,
    Trigger,
    TunnelRemove,
    Verified,
    Verify,
    sign,
)
from fmipfast.security import lwkerb as L
from tests.test_handover_fsm import AR_A, AR_B, MS, NCOA_B, P_B, PCOA_A, T0, Net, attached_net

PAR2 = IPv6Address("2001:db8:c::1")


def real(actions):
    return [a for a in actions if not isinstance(a, Note)]


def names(actions):
    return [type(a).__name__ for a in real(actions)]


def hi_bytes(ident=7, *, ncoa=NCOA_B, pcoa=PCOA_A, lkb=b"\x0e\x01junk", mn_mac=None, src=PAR2, dst=AR_B,
             lifetime=1000):
    opts = []
    if lkb is not None:
        opts.append(LkbMessage(lkb))
    opts.append(HandoverControl(True, 8, lifetime))
    if pcoa is not None:
        opts.append(AddressOption(AddressKind.PCOA, pcoa))
    if ident is not None:
        opts.append(Identifier(ident))
    return encode(IcmpHandover(64, ncoa, mn_mac, tuple(opts)), src, dst)


def rx(raw, src=PAR2, dst=AR_B, hop=64, ah=True):
    return Received(raw, src, dst, hop, "core", ah)


def he_status(send: Send) -> int:
    msg = decode(send.icmp, send.src, send.dst)
    assert isinstance(msg, HandoverError)
    return int(msg.status)


def test_constructor_defaults_and_validation():
    ar = AccessRouter("2001:db8:b::5eff:fe10:2")
    assert ar.link_local == IPv6Address("fe80::5eff:fe10:2")
    assert set(ar.counters) == set(AR_COUNTERS) and not any(ar.counters.values())
    assert ar.next_deadline() is None
    with pytest.raises(ValueError):
        AccessRouter(AR_B, max_handovers=0)


def test_receive_checks_count_every_reason():
    ar = AccessRouter(AR_B)
    ar.handle(Received(b"\xc8", PAR2, AR_B), T0)
    ar.handle(Received(encode(EchoRequest(1, 1), PAR2, AR_B), PAR2, AR_B), T0)
    bad = bytearray(hi_bytes())
    bad[3] ^= 1
    ar.handle(rx(bytes(bad)), T0)
    ar.handle(rx(hi_bytes(), ah=False), T0)
    ar.handle(rx(hi_bytes(ident=None)), T0)
    hrd = encode(HandoverRedirect(64, AR_A, options=(Identifier(1),)), PAR2, AR_B)
    ar.handle(rx(hrd, hop=255), T0)
    amn = encode(AuthenticatedMN((Identifier(1),)), PAR2, AR_B)
    ar.handle(rx(amn, hop=64), T0)
    c = ar.counters
    assert (c["malformed"], c["not_fmip"], c["bad_checksum"], c["missing_ah"], c["no_identifier"],
            c["unexpected"], c["bad_hop_limit"]) == (1, 1, 1, 1, 1, 1, 1)
    assert c["received"] == 7 and not ar.nar


def test_hi_without_pcoa_is_refused_unspecified():
    ar = AccessRouter(AR_B)
    out = real(ar.handle(rx(hi_bytes(pcoa=None)), T0))
    assert len(out) == 1 and he_status(out[0]) == HandoverStatus.UNSPECIFIED and out[0].ah
    assert ar.counters["refused_unspecified"] == 1


def test_hi_without_ap_req_is_refused_authentication_failed():
    ar = AccessRouter(AR_B)
    out = real(ar.handle(rx(hi_bytes(lkb=None)), T0))
    assert he_status(out[0]) == HandoverStatus.AUTHENTICATION_FAILED
    assert ar.counters["no_ap_req"] == 1 and ar.counters["refused_authentication_failed"] == 1


def test_hi_verify_binding_and_duplicate_while_verifying():
    ar = AccessRouter(AR_B)
    padd, v = real(ar.handle(rx(hi_bytes()), T0))
    # buffering starts at admission, before the AP-REQ is verified (draft §3)
    assert padd == ProxyAdd(NCOA_B, padd.key, padd.lifetime_ms, PCOA_A, True)
    assert isinstance(v, Verify)
    assert v.binding == L.HandoverBinding(str(NCOA_B), str(PCOA_A), str(AR_B), 7)
    assert v.ap_req == b"\x0e\x01junk"
    assert real(ar.handle(rx(hi_bytes()), T0 + MS)) == []  # no answer yet: nothing to re-send
    assert ar.counters["duplicate_hi"] == 1
    (h,) = ar.nar.values()
    assert h.state == NarState.VERIFYING


def test_verification_that_never_finishes_is_freed_by_lifetime():
    ar = AccessRouter(AR_B)
    padd, v = real(ar.handle(rx(hi_bytes(lifetime=1000)), T0))
    assert ar.next_deadline() == T0 + 1000 * MS
    assert real(ar.handle(Tick(), T0 + 1000 * MS)) == [ProxyRemove(NCOA_B), BufferDrop(padd.key)]
    assert ar.counters["verify_timeout"] == 1 and not ar.nar and ar.next_deadline() is None
    assert real(ar.handle(Verified(v.request_id, None, "late"), T0 + 1001 * MS)) == []
    assert ar.counters["stale_verified"] == 1


def test_ncoa_of_another_live_handover_is_in_use():
    ar = AccessRouter(AR_B)
    ar.handle(rx(hi_bytes(ident=1)), T0)
    out = real(ar.handle(rx(hi_bytes(ident=2, pcoa=IPv6Address("2001:db8:c::9"))), T0))
    assert he_status(out[0]) == HandoverStatus.NCOA_IN_USE
    assert ar.counters["refused_ncoa_in_use"] == 1


def test_a_new_hi_from_the_same_par_for_the_same_mn_supersedes_the_live_one():
    """After a link reversal the PAR hands the same MN over again within the first handover's lifetime: the NAR
    ends the first (proxy and buffer) and admits the second.  Another PAR, or another MN, is still refused."""
    mac = bytes.fromhex("001b63fffe8445e6")
    ar = AccessRouter(AR_B)
    first = real(ar.handle(rx(hi_bytes(ident=1, mn_mac=mac)), T0))
    (add,) = [a for a in first if isinstance(a, ProxyAdd)]
    out = real(ar.handle(rx(hi_bytes(ident=2, mn_mac=mac)), T0 + 100 * MS))
    assert names(out)[:3] == ["ProxyRemove", "BufferDrop", "ProxyAdd"] and out[1].key == add.key
    assert out[2].key != add.key and names(out)[3] == "Verify"
    assert ar.counters["nar_superseded"] == 1 and [k[1] for k in ar.nar] == [2]
    par3 = IPv6Address("2001:db8:d::1")
    other_par = real(ar.handle(rx(hi_bytes(ident=3, mn_mac=mac, src=par3), src=par3), T0))
    other_mn = real(ar.handle(rx(hi_bytes(ident=4, mn_mac=bytes.fromhex("021b63fffe8445e7"))), T0))
    assert [he_status(o[0]) for o in (other_par, other_mn)] == [HandoverStatus.NCOA_IN_USE] * 2
    assert ar.counters["nar_superseded"] == 1


def test_an_mn_coming_back_to_its_old_address_is_not_in_use():
    """A→B→A after the first handover ended at A: A still holds the MN's session (and, in the engine, its
    neighbor entry) for the address.  An HI naming that address with the same MN's link-layer address (M) is
    the MN returning — admitted, the stale session dropped; with another node's address it is in use."""
    from fmipfast.ar import Session

    mn_eui = bytes.fromhex("021b63fffe8445e6")
    seen = []

    def in_use(address, eui):
        seen.append((address, eui))
        return eui != mn_eui  # the engine's view: the neighbor entry has the MN's MAC

    ar = AccessRouter(AR_B, is_address_in_use=in_use)
    ar.sessions.put(Session(NCOA_B, bytes(32), mn_eui))
    out = real(ar.handle(rx(hi_bytes(ident=1, mn_mac=mn_eui)), T0))
    assert names(out) == ["ProxyAdd", "Verify"] and ar.counters["mn_returned"] == 1
    assert NCOA_B not in ar.sessions and seen == [(NCOA_B, mn_eui)]
    ar = AccessRouter(AR_B, is_address_in_use=in_use)
    ar.sessions.put(Session(NCOA_B, bytes(32), mn_eui))
    other = bytes.fromhex("020000fffe000001")
    (he,) = real(ar.handle(rx(hi_bytes(ident=1, mn_mac=other)), T0))
    assert he_status(he) == HandoverStatus.NCOA_IN_USE and NCOA_B in ar.sessions


def test_refused_record_answers_duplicates_then_is_forgotten():
    ar = AccessRouter(AR_B, is_address_in_use=lambda a, m: True, answer_cache_ms=100)
    (he,) = real(ar.handle(rx(hi_bytes()), T0))
    (again,) = real(ar.handle(rx(hi_bytes()), T0 + MS))
    assert again == he and ar.counters["retransmitted"] == 1
    ar.handle(Tick(), T0 + 100 * MS)
    assert not ar.nar and ar.next_deadline() is None


def test_proxy_lifetime_expiry_frees_and_counts():
    ar = AccessRouter(AR_B)
    padd, v = real(ar.handle(rx(hi_bytes(lifetime=500)), T0))
    key = padd.key
    assert padd == ProxyAdd(NCOA_B, key, 500, PCOA_A, True)
    ctx = object.__new__(L.ApContext)  # the AR only stores it until an Attach arrives
    out = real(ar.handle(Verified(v.request_id, ctx), T0 + MS))  # type: ignore[arg-type]
    assert [type(a) for a in out] == [Send]
    assert he_status(out[0]) == 0
    assert ar.next_deadline() == T0 + 501 * MS
    out = real(ar.handle(Tick(), T0 + 501 * MS))
    assert out == [ProxyRemove(NCOA_B), BufferDrop(key)]
    assert ar.counters["proxy_expired"] == 1 and not ar.nar


def test_attach_before_verification_is_held_and_completed_on_verification():
    net = attached_net()
    net.hold_verify = True
    net.trigger()
    net.move("B")
    assert net.routers["B"].counters["attach_before_verified"] == 1
    assert net.mn.counters["handovers_completed"] == 0
    (who, v) = net.held[0]
    net.hold_verify = False
    m = net.mark()
    net.feed(who, net.verified(who, v))  # case 2/3: the KDC answers late
    # no MN retransmission needed: the held Attach is processed right after the verification
    assert net.mn.counters["handovers_completed"] == 1 and net.mn.counters["retransmitted"] == 0
    assert "B:ProxyComplete" in net.steps(m)


def test_attach_without_link_layer_address_or_eui64_mac():
    net = attached_net()
    net.trigger()
    b = net.routers["B"]
    h = next(iter(b.nar.values()))
    h.mn_eui64 = None  # as if the HI had no M
    key = h.context.mac_key
    att = sign(Attach((Identifier(h.identifier), MessageAuthCode())), key, NCOA_B, b.link_local)
    assert real(b.handle(Received(att, NCOA_B, b.link_local, 255, "B"), net.now)) == []
    assert b.counters["no_link_layer_address"] == 1
    att = sign(Attach((LinkLayerAddress(b"\x02\x00\x00\x01\x02\x03\x04\x05"), Identifier(h.identifier),
                       MessageAuthCode())), key, NCOA_B, b.link_local)
    assert real(b.handle(Received(att, NCOA_B, b.link_local, 255, "B"), net.now)) == []
    assert b.counters["no_link_layer_address"] == 2
    att = sign(Attach((Identifier(h.identifier + 1), MessageAuthCode())), key, NCOA_B, b.link_local)
    b.handle(Received(att, NCOA_B, b.link_local, 255, "B"), net.now)
    assert b.counters["unknown_identifier"] == 1


def test_attach_from_a_stranger_without_ap_req():
    ar = AccessRouter(AR_B)
    att = encode(Attach((Identifier(3),)), NCOA_B, AR_B)
    assert real(ar.handle(Received(att, NCOA_B, AR_B, 255, "B"), T0)) == []
    assert ar.counters["unknown_mn"] == 1


def test_initial_attach_refused_leaves_no_record_and_a_retransmission_is_verified_afresh():
    """Nothing is answered to a refused initial Attach, so nothing of it is kept: an unauthenticated sender
    leaves no state behind.  The MN's retransmission is verified again (the per-source bucket admits it)."""
    net = Net()
    net.verify_override = lambda v: Verified(v.request_id, None, "expired: ticket expired")
    net.attach()
    a = net.routers["A"]
    assert a.counters["initial_refused"] == 1 and not a.sessions and not a.nar
    assert net.steps() == ["MN:GetTicket", "MN:Send ATTACH", "A:Verify"]
    net.advance(150)  # the MN retransmits
    assert a.counters["auth_failed"] == 2 and a.counters["duplicate_attach"] == 0 and not a.nar


def test_a_fresh_attach_for_an_address_in_session_is_taken_only_from_the_same_mn():
    """The same MN re-attaching (a session renewal) gets a new key; another link-layer address with a valid ticket
    of its own claiming the address is dropped and the session stays."""
    from fmipfast.mn import MobileNode
    from fmipfast.protocol import Start, TicketReady
    from tests.test_handover_fsm import P_A
    net = attached_net()
    a = net.routers["A"]
    session = a.sessions[PCOA_A]
    other = MobileNode(bytes.fromhex("0200c0ffee01"), first_identifier=9)
    other.handle(Start(AR_A, P_A, PCOA_A, "A"), net.now)
    (att,) = real(other.handle(TicketReady(1, net.tickets[P_A]), net.now))
    assert real(a.handle(Received(att.icmp, att.src, att.dst, 255, "A"), net.now)) == []
    assert a.counters["attach_address_in_use"] == 1 and a.sessions[PCOA_A] is session
    net.feed("MN", Start(AR_A, P_A, PCOA_A, "A"))  # the MN itself: accepted, a new session (the same ticket here)
    assert a.counters["initial_attached"] == 2 and a.sessions[PCOA_A] is not session
    assert a.sessions[PCOA_A].mac_key == net.mn.router.mac_key and a.counters["attach_address_in_use"] == 1


def test_trigger_validation_and_redirect_flags():
    net = attached_net()
    a = net.routers["A"]
    out = real(a.handle(Trigger(PCOA_A, AR_B, P_B, nar_mac=b"\x01\x02"), net.now))
    assert out == [] and a.counters["trigger_invalid"] == 1
    long_principal = L.Principal("n" * 200, "R" * 100)  # valid for Kerberos, too long for sub-option 1
    assert real(a.handle(Trigger(PCOA_A, AR_B, long_principal), net.now)) == []
    assert a.counters["trigger_invalid"] == 2 and not a.par
    out = real(a.handle(Trigger(PCOA_A, AR_B, P_B, nar_mac=bytes.fromhex("02005e100002"),
                                ncoa=IPv6Address("2001:db8:b::77")), net.now))
    (send,) = out
    hrd = decode(send.icmp, send.src, send.dst)
    assert isinstance(hrd, HandoverRedirect)
    assert hrd.nar_mac == bytes.fromhex("02005eFFFE100002") and hrd.ncoa == IPv6Address("2001:db8:b::77")
    assert hrd.principal is not None and (hrd.principal.name, hrd.principal.realm) == (P_B.name, P_B.realm)
    assert str(hrd.flags) != "" and send.hop_limit == 255 and not send.ah and send.src == AR_A
    assert a.par[PCOA_A].state == ParState.HRD_SENT and hrd.identifier == 0x100


def test_late_handover_error_after_acceptance_stops_forwarding():
    net = attached_net()
    net.trigger()
    a = net.routers["A"]
    raw = encode(HandoverError(NCOA_B, (Status(HandoverStatus.ADMINISTRATIVELY_PROHIBITED), Identifier(0x100))),
                 AR_B, AR_A)
    out = real(a.handle(Received(raw, AR_B, AR_A, 64, "core", True), net.now))
    assert out == [TunnelRemove(PCOA_A), ProbeNeighbor(PCOA_A)] and not a.par
    assert a.counters["handovers_refused"] == 1


def _refused_at_the_par(net):
    """The PAR's handover of the MN refused by the NAR: the PAR asks the link whether the MN is still there."""
    net.trigger()
    a = net.routers["A"]
    raw = encode(HandoverError(NCOA_B, (Status(HandoverStatus.AUTHENTICATION_FAILED), Identifier(0x100))),
                 AR_B, AR_A)
    out = real(a.handle(Received(raw, AR_B, AR_A, 64, "core", True), net.now))
    assert out == [TunnelRemove(PCOA_A), ProbeNeighbor(PCOA_A)] and a.counters["probes_started"] == 1
    return a


def test_a_given_up_handover_releases_the_session_of_an_mn_that_is_not_on_the_link():
    net = attached_net()
    a = _refused_at_the_par(net)
    out = a.handle(Reachability(PCOA_A, False), net.now)
    assert real(out) == [] and PCOA_A not in a.sessions
    assert a.counters["sessions_released_unreachable"] == 1 and a.counters["sessions_kept_reachable"] == 0
    assert [n.name for n in out if isinstance(n, Note)] == ["session_released"]
    # a second answer, or one nobody asked for, changes nothing
    assert real(a.handle(Reachability(PCOA_A, False), net.now)) == [] and a.counters["unexpected"] == 1


@pytest.mark.parametrize("reachable, counter", [(True, "sessions_kept_reachable"), (None, "probes_not_run")])
def test_a_given_up_handover_keeps_the_session_of_an_mn_that_answered_or_was_not_probed(reachable, counter):
    net = attached_net()
    a = _refused_at_the_par(net)
    session = a.sessions[PCOA_A]
    assert real(a.handle(Reachability(PCOA_A, reachable), net.now)) == []
    assert a.sessions[PCOA_A] is session and a.counters[counter] == 1
    assert a.counters["sessions_released_unreachable"] == 0


def test_an_unreachable_answer_does_not_end_a_session_renewed_or_handed_over_since_the_probe():
    net = attached_net()
    a = _refused_at_the_par(net)
    net.filters.clear()
    net.trigger()  # a new handover of the MN runs: not the probe's to end
    assert a.par[PCOA_A].state == ParState.FORWARDING
    assert real(a.handle(Reachability(PCOA_A, False), net.now)) == [] and PCOA_A in a.sessions
    assert a.counters["sessions_released_unreachable"] == 0
    # a stray answer for an address never probed: counted, nothing else
    assert real(a.handle(Reachability(IPv6Address("2001:db8:a::99"), False), net.now)) == []
    assert a.counters["unexpected"] == 1 and PCOA_A in a.sessions


def test_handover_error_from_the_wrong_router_is_stale():
    net = attached_net()
    net.hold_verify = True
    net.trigger()
    a = net.routers["A"]
    raw = encode(HandoverError(NCOA_B, (Status(0), Identifier(0x100))), PAR2, AR_A)
    assert real(a.handle(Received(raw, PAR2, AR_A, 64, "core", True), net.now)) == []
    assert a.counters["unknown_identifier"] == 1 and a.par[PCOA_A].state == ParState.HI_SENT


def test_forwarding_disable_before_the_hra_ends_without_tunnel_removal():
    net = attached_net()
    net.drop("HANDOVER_REDIRECT_ACK", times=9)
    net.trigger()
    a = net.routers["A"]
    m = net.mark()
    net.feed("MN", LinkUp("A"))  # link reversal while the PAR still waits for the HRA
    assert net.steps(m) == ["MN:Send FORWARDING_DISABLE"]
    assert not a.par and a.counters["forwarding_disabled"] == 1


def test_forwarding_disable_with_a_stale_identifier():
    net = attached_net()
    net.trigger()
    a = net.routers["A"]
    raw = sign(ForwardingDisable((Identifier(0x999), MessageAuthCode())), a.sessions[PCOA_A].mac_key, PCOA_A, AR_A)
    assert real(a.handle(Received(raw, PCOA_A, AR_A, 255, "A"), net.now)) == []
    assert a.counters["unknown_identifier"] == 1 and a.par[PCOA_A].state == ParState.FORWARDING


def test_every_drop_has_a_note():
    ar = AccessRouter(AR_B)
    out = ar.handle(rx(hi_bytes(), ah=False), T0)
    assert [n.name for n in out if isinstance(n, Note)] == ["drop"]


def test_insufficient_resources_under_many_handovers():
    ar = AccessRouter(AR_B, max_handovers=3)
    outs = []
    for i in range(5):
        outs.append(real(ar.handle(rx(hi_bytes(ident=i, ncoa=IPv6Address(f"2001:db8:b::{i + 1}"))), T0)))
    assert [type(o[0]).__name__ for o in outs] == ["ProxyAdd", "ProxyAdd", "ProxyAdd", "Send", "Send"]
    assert all(he_status(o[0]) == HandoverStatus.INSUFFICIENT_RESOURCES for o in outs[3:])
    assert ar.counters["refused_insufficient_resources"] == 2
    # refused records do not hold capacity
    assert sum(1 for h in ar.nar.values() if h.state == NarState.VERIFYING) == 3
    assert dataclasses.is_dataclass(next(iter(ar.nar.values())))


def test_an_ended_session_is_not_used_even_without_a_tick():
    """Sessions restored after a restart (or any session) end at their ticket's end even if no Tick ran: the
    next event of any kind expires them first, so a Trigger for that MN is refused."""
    from fmipfast.ar import Session
    ar = AccessRouter(AR_A)
    assert ar.restore_sessions([Session(PCOA_A, bytes(32), None, T0 + 1000 * MS),
                                Session(IPv6Address("2001:db8:a::99"), bytes(32), None, T0 - 1)], T0) == 1
    ar.handle(Trigger(PCOA_A, AR_B, P_B), T0 + 1000 * MS)
    assert ar.counters["session_expired"] == 1 and ar.counters["trigger_unknown_mn"] == 1 and not ar.sessions


def test_an_attach_is_handled_in_phases_the_flush_before_the_authenticated_mn_is_built():
    # handle_phases cuts after the ProxyComplete: a driver flushes the MN's buffered packets before the
    # Authenticated-MN (AP-REP, MAC) is computed; handle() is the phases joined, in the same order
    net = attached_net()
    net.trigger()
    b = net.routers["B"]
    phases: list[list[str]] = []
    inner = b.handle_phases

    def recording(event, now):
        for phase in inner(event, now):
            phases.append([type(a).__name__ for a in phase])
            if "ProxyComplete" in phases[-1]:
                # the machine has not built the answer yet when the caller executes the flush
                assert b.counters.get("attached", 0) == 0
            yield phase

    b.handle_phases = recording
    net.move("B")
    assert net.mn.counters["handovers_completed"] == 1
    attach = next(i for i, p in enumerate(phases) if "ProxyComplete" in p)
    assert "Send" not in real_names(phases[attach]) and "Send" in phases[attach + 1]
    assert phases[attach + 1].index("Send") > 0 and b.counters["attached"] == 1


def real_names(names_: list[str]) -> list[str]:
    return [n for n in names_ if n != "Note"]


# ------------------------------------------------------------------ the early look at an Attach (attach_release)
def _waiting_nar():
    """B as NAR, PROXYING the MN's handover (the HI verified), and the Attach the MN will send it."""
    net = attached_net()
    net.trigger()
    b = net.routers["B"]
    h = next(iter(b.nar.values()))
    assert h.state == NarState.PROXYING
    att = sign(Attach((LinkLayerAddress(h.mn_eui64), Identifier(h.identifier), MessageAuthCode())),
               h.context.mac_key, NCOA_B, b.link_local)
    return net, b, h, att


def test_attach_release_names_the_proxy_complete_that_handle_returns_and_changes_nothing():
    net, b, h, att = _waiting_nar()
    ev = Received(att, NCOA_B, b.link_local, 255, "B")
    counters, state = dict(b.counters), h.state
    assert b.handovers_waiting
    early = b.attach_release(ev)
    assert early is not None and early.ncoa == NCOA_B
    # nothing counted, no state moved, no note: handle() still does all of it
    assert dict(b.counters) == counters and h.state == state and h.release_looks == 1
    actions = b.handle(ev, net.now)
    assert [a for a in actions if type(a).__name__ == "ProxyComplete"] == [early]
    assert h.state == NarState.ATTACHED and b.counters["attached"] == 1
    assert b.attach_release(ev) is None  # attached now: nothing waits for this Attach any more


def test_attach_release_refuses_what_handle_refuses_and_counts_nothing():
    net, b, h, att = _waiting_nar()
    key = h.context.mac_key
    forged = bytearray(att)
    forged[-1] ^= 1  # the MAC's last octet
    refused = [
        Received(bytes(forged), NCOA_B, b.link_local, 255, "B"),  # bad MAC (and checksum)
        Received(sign(Attach((LinkLayerAddress(h.mn_eui64), Identifier(h.identifier), MessageAuthCode())), bytes(32),
                      NCOA_B, b.link_local), NCOA_B, b.link_local, 255, "B"),  # well-formed, another key
        Received(att, NCOA_B, b.link_local, 64, "B"),  # not hop limit 255: not from the link
        Received(att, PCOA_A, b.link_local, 255, "B"),  # not from the waiting NCoA
        Received(sign(Attach((LinkLayerAddress(h.mn_eui64), Identifier(h.identifier + 1), MessageAuthCode())), key,
                      NCOA_B, b.link_local), NCOA_B, b.link_local, 255, "B"),  # another identifier
        Received(encode(EchoRequest(1, 2, b"x"), NCOA_B, b.link_local), NCOA_B, b.link_local, 255, "B"),
        Received(att[:7], NCOA_B, b.link_local, 255, "B"),
    ]
    counters = dict(b.counters)
    for ev in refused:
        assert b.attach_release(ev) is None
    assert dict(b.counters) == counters
    for ev in refused:  # and handle refuses each (counted there, once)
        assert "ProxyComplete" not in names(b.handle(ev, net.now))
    assert h.state == NarState.PROXYING


def test_attach_release_runs_the_mac_check_a_bounded_number_of_times_per_handover():
    from fmipfast.ar.nar import ATTACH_RELEASE_LOOKS

    net, b, h, att = _waiting_nar()
    # well-formed, the checksum right, the MAC under another key: it takes a MAC check to refuse
    forged = sign(Attach((LinkLayerAddress(h.mn_eui64), Identifier(h.identifier), MessageAuthCode())), bytes(32),
                  NCOA_B, b.link_local)
    for _ in range(3 * ATTACH_RELEASE_LOOKS):
        assert b.attach_release(Received(forged, NCOA_B, b.link_local, 255, "B")) is None
    assert h.release_looks == ATTACH_RELEASE_LOOKS
    good = Received(att, NCOA_B, b.link_local, 255, "B")
    assert b.attach_release(good) is None  # the looks are spent: the handover completes the usual way
    assert "ProxyComplete" in names(b.handle(good, net.now))


def test_attach_release_waits_for_the_verification():
    net = attached_net()
    net.hold_verify = True
    net.trigger()
    b = net.routers["B"]
    h = next(iter(b.nar.values()))
    assert h.state == NarState.VERIFYING and b.handovers_waiting
    att = sign(Attach((Identifier(h.identifier), MessageAuthCode())), bytes(32), NCOA_B, b.link_local)
    assert b.attach_release(Received(att, NCOA_B, b.link_local, 255, "B")) is None
    assert h.release_looks == 0


@settings(max_examples=60, deadline=None)
@given(at=st.integers(0, 200), xor=st.integers(1, 255), hop=st.sampled_from([255, 255, 254, 1]),
       cut=st.integers(0, 200))
def test_attach_release_agrees_with_handle_on_damaged_attaches(at, xor, hop, cut):
    """Property: for any damage to the MN's Attach, the early look names a ProxyComplete exactly when handling
    the same event returns it."""
    net, b, h, att = _waiting_nar()
    raw = bytearray(att)
    if at < len(raw):
        raw[at] ^= xor
    raw = raw[:len(raw) - cut] if cut < len(raw) else raw
    ev = Received(bytes(raw), NCOA_B, b.link_local, hop, "B")
    early = b.attach_release(ev)
    done = [a for a in b.handle(ev, net.now) if type(a).__name__ == "ProxyComplete"]
    assert done == ([early] if early is not None else [])


def test_attach_fields_reads_the_framing_of_an_attach_and_nothing_else():
    from fmipfast.protocol import attach_fields

    net, b, h, att = _waiting_nar()
    ev = Received(att, NCOA_B, b.link_local, 255, "B")
    ident, eui64, mac_at = attach_fields(ev, b.codepoints)
    assert (ident, eui64) == (h.identifier, h.mn_eui64) and att[mac_at - 2] == 7 and len(att) - mac_at >= 16
    assert attach_fields(Received(att, NCOA_B, b.link_local, 254, "B"), b.codepoints) is None  # not from the link
    assert attach_fields(Received(att, PCOA_A, b.link_local, 255, "B"), b.codepoints) is None  # checksum: other src
    no_lla = sign(Attach((Identifier(h.identifier), MessageAuthCode())), h.context.mac_key, NCOA_B, b.link_local)
    assert attach_fields(Received(no_lla, NCOA_B, b.link_local, 255, "B"), b.codepoints)[1] is None
    for bad in (att[:9], att[:-1], att + b"\0\0"):  # runt, a truncated MAC, a Length that is not the message's
        assert attach_fields(Received(bad, NCOA_B, b.link_local, 255, "B"), b.codepoints) is None
    ha = sign(HandoverRedirectAck((Identifier(1), MessageAuthCode())), h.context.mac_key, NCOA_B, b.link_local)
    assert attach_fields(Received(ha, NCOA_B, b.link_local, 255, "B"), b.codepoints) is None  # not an Attach


def _resigned(raw: bytes, key: bytes, src: IPv6Address, dst: IPv6Address) -> bytes:
    """``raw`` (an Attach with its sub-options changed) with its Length, MAC and checksum made right again."""
    from fmipfast.messages import refill_checksum
    from fmipfast.protocol import attach_fields
    from fmipfast.security import mac as _mac

    m = bytearray(raw)
    m[8:10] = len(m).to_bytes(2, "big")
    framed = attach_fields(Received(refill_checksum(bytearray(m), src, dst), src, dst, 255, "B"))
    assert framed is not None
    m[framed[2]:framed[2] + 16] = _mac.message_mac(key, src.packed, dst.packed, bytes(m), framed[2])
    return refill_checksum(m, src, dst)


def test_an_attach_the_mn_signed_but_malformed_releases_its_packets_and_the_record_waits():
    """The look authenticates before it parses: a message under the MN's key is what the MN built.  If the MN
    built a malformed one (here an empty light-weight Kerberos fragment), the look releases the packets to
    the MN that proved its key, the machine refuses the message (counted) and the record keeps waiting for a
    good Attach, which completes it."""
    net, b, h, att = _waiting_nar()
    odd = _resigned(att + bytes((2, 2)), h.context.mac_key, NCOA_B, b.link_local)
    ev = Received(odd, NCOA_B, b.link_local, 255, "B")
    assert b.attach_release(ev) is not None
    assert "ProxyComplete" not in names(b.handle(ev, net.now)) and h.state == NarState.PROXYING
    assert b.counters["malformed"] == 1
    assert "ProxyComplete" in names(b.handle(Received(att, NCOA_B, b.link_local, 255, "B"), net.now))

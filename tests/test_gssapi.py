"""Standard Kerberos through GSS-API (``fmipfast.security.gss``) against real MIT KDCs (k5test): two realms with
cross-realm trust, the demo world's whole fast handover with MIT-issued tickets, the router agent refusing the
other mechanism, and every negative with its error and its counter."""

from __future__ import annotations

import asyncio
import os
import shutil
import time

import pytest

from fmipfast.constants import HandoverStatus, LkbSubtype, lkb_mechanism  # noqa: E402  (after the importorskip in mitrealm)
from fmipfast.security import gss  # noqa: E402
from fmipfast.security import lwkerb as L  # noqa: E402
from tests.mitrealm import (
    MN,
    NAR_SERVICE,
    PAR_SERVICE,
    A,
    B,
    set_time_offset,
    stretch_endtime,
    two_realms,
    wait_until,
)

NCOA, PCOA, NAR = "2001:db8:2::a", "2001:db8:1::a", "2001:db8:2::1"
BINDING = L.HandoverBinding(NCOA, PCOA, NAR, 7)
REFUSED = HandoverStatus.AUTHENTICATION_FAILED


@pytest.fixture(scope="module")
def realms():
    with two_realms() as r:
        r.nar_keytab = r.service(NAR_SERVICE)
        r.par_keytab = r.service(PAR_SERVICE)
        r.mn_ccache = r.kinit(r.path("mn.ccache"))
        yield r


@pytest.fixture(scope="module")
def initiator(realms):
    return gss.GssInitiator(ccache=realms.mn_ccache)


@pytest.fixture
def nar(realms, tmp_path):
    return gss.GssVerifier(realms.nar_keytab, NAR_SERVICE, rcache=f"file2:{tmp_path}/nar.rcache2")


def _refused(verifier, pdu, binding, exc_type, code):
    before = dict(verifier.counters)
    with pytest.raises(exc_type) as info:
        verifier.verify_local(pdu, binding)
    assert info.value.code == code, info.value
    changed = {k: v - before.get(k, 0) for k, v in verifier.counters.items() if v != before.get(k, 0)}
    assert changed == {code: 1}, changed
    return info.value


# ----------------------------------------------------------------------------------------------- the mechanism


def test_cross_realm_ticket_token_binding_key_and_confirmation(realms, initiator, nar):
    creds = initiator.credentials(NAR_SERVICE)  # MN in A, NAR in B: krbtgt/B@A by the realms' capaths
    klist = realms.a.klist(realms.mn_ccache).decode()
    assert f"krbtgt/{B}@{A}" in klist and NAR_SERVICE in klist
    assert creds.endtime > time.time() + 3600
    pdu, pending = creds.initiate(BINDING)
    assert pdu[0] == LkbSubtype.GSSAPI_TOKEN and lkb_mechanism(pdu) == "gssapi" and 500 < len(pdu) < 1500
    ctx = nar.verify_local(pdu, BINDING)
    assert ctx.client == MN and ctx.server == NAR_SERVICE
    assert ctx.mac_key == pending.mac_key and len(ctx.mac_key) == 32  # RFC 4401 PRF, computed on both sides
    assert abs(ctx.endtime - creds.endtime) <= 2
    reply = ctx.ap_rep().encode()
    assert reply[0] == LkbSubtype.GSSAPI_REPLY and len(reply) == 4 + 28  # a 28-octet MIC (RFC 4121, aes-sha1)
    pending.check_ap_rep(reply)
    pending.check_ap_rep(reply)  # a retransmitted Authenticated-MN carries it again
    assert nar.counters["ok"] == 1 and nar.counters["case1"] == 1
    # a second authenticator makes another key: the MAC key is per context, not per ticket
    pdu2, pending2 = creds.initiate(BINDING)
    assert nar.verify_local(pdu2, BINDING).mac_key == pending2.mac_key != pending.mac_key


def test_the_confirmation_is_checked_by_the_mn(initiator, nar):
    creds = initiator.credentials(NAR_SERVICE)
    pdu, pending = creds.initiate(BINDING)
    ctx = nar.verify_local(pdu, BINDING)
    reply = bytearray(ctx.ap_rep().encode())
    reply[-1] ^= 1
    with pytest.raises(L.ReplyIntegrity):
        pending.check_ap_rep(bytes(reply))
    # a confirmation from another context (another handover's) does not verify either
    pdu3, _ = creds.initiate(BINDING)
    other = nar.verify_local(pdu3, BINDING).ap_rep().encode()
    with pytest.raises(L.ReplyIntegrity):
        pending.check_ap_rep(other)
    for junk in (b"", b"\x81", b"\x81\x01\x00\x05abc", b"\x0f\x01xx"):
        with pytest.raises(L.LkbError):
            pending.check_ap_rep(junk)


# ----------------------------------------------------------------------------------------------- negatives


def test_replay_is_refused_and_counted(initiator, nar):
    pdu, _ = initiator.credentials(NAR_SERVICE).initiate(BINDING)
    nar.verify_local(pdu, BINDING)
    err = _refused(nar, pdu, BINDING, L.ReplayDetected, "replay")
    assert "replay" in str(err)


@pytest.mark.parametrize("other", [L.HandoverBinding("2001:db8:2::b", PCOA, NAR, 7),  # another NCoA
                                   L.HandoverBinding(NCOA, PCOA, "2001:db8:3::1", 7),  # another NAR
                                   L.HandoverBinding(NCOA, "2001:db8:1::b", NAR, 7),  # another PCoA
                                   L.HandoverBinding(NCOA, PCOA, NAR, 8)])  # another identifier
def test_an_authenticator_bound_to_another_handover_is_refused(initiator, nar, other):
    pdu, _ = initiator.credentials(NAR_SERVICE).initiate(BINDING)
    _refused(nar, pdu, other, L.BindingMismatch, "binding_mismatch")
    # MIT records an authenticator in its replay cache once it decrypts, before the bindings are compared:
    # the MN's own token, seen at the wrong handover, is spent (docs/security.md)
    _refused(nar, pdu, BINDING, L.ReplayDetected, "replay")


def test_a_token_without_channel_bindings_is_refused(realms, nar):
    """MIT accepts an initiator token without bindings (compatibility); the verifier insists on them."""
    g = gss.require_gssapi()
    creds = gss.GssInitiator(ccache=realms.mn_ccache).credentials(NAR_SERVICE)
    ctx = g.SecurityContext(name=creds.target, creds=creds.creds, usage="initiate",
                            flags=g.RequirementFlag.integrity)
    pdu = gss.GssInitToken(ctx.step()).encode()
    _refused(nar, pdu, BINDING, L.BindingMismatch, "binding_mismatch")


def test_a_token_for_another_service_is_refused(initiator, nar):
    pdu, _ = initiator.credentials(PAR_SERVICE).initiate(BINDING)
    _refused(nar, pdu, BINDING, gss.WrongService, "wrong_service")


def test_a_keytab_without_the_ticket_s_key_is_refused(realms, initiator, tmp_path):
    # a router accepting any principal of its keytab, which holds only the PAR's key
    any_principal = gss.GssVerifier(realms.par_keytab, None, rcache=f"file2:{tmp_path}/x.rcache2")
    pdu, _ = initiator.credentials(NAR_SERVICE).initiate(BINDING)
    _refused(any_principal, pdu, BINDING, L.NoKey, "no_key")
    # naming a principal the keytab lacks is a start-up error, not a refusal later
    with pytest.raises(L.LkbError, match="keytab"):
        gss.GssVerifier(realms.par_keytab, NAR_SERVICE)


def test_an_old_keytab_after_a_rekey_is_refused_as_bad_kvno(realms, tmp_path):
    service = f"access/rekeyed.b.example@{B}"
    keytab = realms.service(service, str(tmp_path / "old.keytab"))
    realms.rekey(service)  # kvno 2 in the KDC; the router's keytab still has kvno 1
    verifier = gss.GssVerifier(keytab, service, rcache=f"file2:{tmp_path}/r.rcache2")
    pdu, _ = gss.GssInitiator(ccache=realms.mn_ccache).credentials(service).initiate(BINDING)
    err = _refused(verifier, pdu, BINDING, L.WrongKeyVersion, "bad_kvno")
    assert "kvno" in str(err).lower() or "key version" in str(err).lower()


def test_clock_skew_is_refused(realms, nar, tmp_path):
    """An MN whose clock is an hour ahead: MIT's own KDC time offset in its ccache (kdc_timesync)."""
    cc = str(tmp_path / "skewed.ccache")
    shutil.copy(realms.mn_ccache, cc)
    creds = gss.GssInitiator(ccache=cc).credentials(NAR_SERVICE)  # the service ticket, cached before the skew
    set_time_offset(cc, 3600)
    pdu, _ = gss.GssInitiator(ccache=cc).credentials(NAR_SERVICE).initiate(BINDING)
    _refused(nar, pdu, BINDING, L.ClockSkew, "skew")
    assert creds.endtime > time.time()


def test_an_expired_ticket_is_refused_at_the_mn_and_at_the_router(tmp_path):
    """A two-second skew and a three-second ticket: once it has ended, MIT's initiator refuses to use it (the
    MN counts ticket_failed); an MN whose cache claims it is still valid is refused by the router."""
    with two_realms(clockskew=2) as r:
        keytab = r.service(NAR_SERVICE)
        cc = r.kinit(r.path("short.ccache"), "-l", "3s")
        initiator = gss.GssInitiator(ccache=cc)
        creds = initiator.credentials(NAR_SERVICE)
        verifier = gss.GssVerifier(keytab, NAR_SERVICE, rcache=f"file2:{tmp_path}/e.rcache2")
        wait_until(creds.endtime + 2 + 1.5)
        with pytest.raises(L.TicketExpired):
            creds.initiate(BINDING)
        assert stretch_endtime(cc, "access/nar", int(time.time()) + 3600) == 1
        pdu, _ = gss.GssInitiator(ccache=cc).credentials(NAR_SERVICE).initiate(BINDING)
        _refused(verifier, pdu, BINDING, L.TicketExpired, "expired")


def test_truncated_tokens_at_every_length_are_refused_and_counted(initiator, nar):
    pdu, _ = initiator.credentials(NAR_SERVICE).initiate(BINDING)
    token = gss.GssInitToken.decode(pdu).token
    tries = 0
    for n in range(len(pdu)):  # the PDU cut short: the framing says so
        with pytest.raises(L.LkbMalformed):
            nar.verify_local(pdu[:n], BINDING)
        tries += 1
    codes: dict[str, int] = {}
    for n in range(1, len(token)):  # a well-framed PDU around a cut token: MIT's parser says so
        with pytest.raises(L.LkbError) as info:
            nar.verify_local(gss.GssInitToken(token[:n]).encode(), BINDING)
        codes[info.value.code] = codes.get(info.value.code, 0) + 1
        tries += 1
    assert nar.counters["ok"] == 0 and sum(v for k, v in nar.counters.items() if k not in ("ok", "case1")) == tries
    assert set(codes) <= {"malformed", "gss_error", "bad_ticket", "bad_authenticator"}, codes
    nar.verify_local(pdu, BINDING)  # none of it created state: the whole token is still fresh


def test_flipped_octets_and_junk_are_refused_never_raised(initiator, nar):
    pdu, _ = initiator.credentials(NAR_SERVICE).initiate(BINDING)
    nar.verify_local(pdu, BINDING)
    refused = 0
    for i in range(0, len(pdu), 3):
        bad = bytearray(pdu)
        bad[i] ^= 0x41
        with pytest.raises(L.LkbError):  # accepted nowhere: a change that still decrypts is the same replay
            nar.verify_local(bytes(bad), BINDING)
        refused += 1
    for junk in (b"", b"\x80", b"\x80\x01\x00\x00", b"\x80\x02\x00\x01x", b"\x80\x01\xff\xffabc", b"\x81\x01\x00\x01x",
                 b"\xff" * 40, b"\x80\x01\x00\x10" + os.urandom(16), L.BINDING_NONE, b"\x0e\x01" + bytes(60)):
        with pytest.raises(L.LkbError):
            nar.verify_local(junk, BINDING)
        refused += 1
    assert nar.counters["ok"] == 1 and sum(v for k, v in nar.counters.items() if k not in ("ok", "case1")) == refused
    assert nar.counters["mechanism_mismatch"] >= 1  # the lwkerb AP-REQ header


def test_the_missing_package_is_named(monkeypatch):
    monkeypatch.setattr(gss, "_gssapi", None)
    monkeypatch.setitem(__import__("sys").modules, "gssapi", None)
    with pytest.raises(gss.GssapiUnavailable, match=r"'gssapi'.*fmipfast\[krb5\]"):
        gss.require_gssapi()
    with pytest.raises(ImportError):  # it is an ImportError too, for callers that only know that
        gss.GssVerifier("/nonexistent", None)


# ----------------------------------------------------------------------------------------------- the router agent


def _hi_with(pdu: bytes, key_epoch_agent) -> bytes:
    from ipaddress import IPv6Address

    from fmipfast import frames
    from fmipfast.constants import AddressKind, IpProto
    from fmipfast.messages import AddressOption, HandoverControl, IcmpHandover, Identifier, LkbMessage, encode
    from fmipfast.security import ah
    from tests import test_router as TR

    hi = IcmpHandover(64, IPv6Address(NCOA), bytes.fromhex("001b63fffe8445e6"), (
        LkbMessage(pdu), HandoverControl(True, 64, 3000), AddressOption(AddressKind.PCOA, IPv6Address(PCOA)),
        Identifier(7)))
    packet = frames.build_ipv6(TR.PAR, TR.NAR, IpProto.ICMPV6, encode(hi, TR.PAR, TR.NAR), 64)
    packet = ah.protect(packet, ah.SecurityAssociation(0x2001, TR.K_IN, peer=str(TR.NAR)))
    return frames.build_ethernet(TR.MAC_UP, TR.MAC_CORE, packet)


def _run_hi(agent_options: dict, pdu_for) -> tuple[object, list]:
    from tests import test_router as TR

    async def scenario():
        engine, agent, peer, key = TR._world(**agent_options)
        peer.send_frames([_hi_with(pdu_for(key, agent), None)])
        engine.poll()
        answers = []
        for _ in range(100):
            await asyncio.sleep(0.01)
            answers += TR._answers(peer)
            if answers:
                break
        return agent, answers

    return asyncio.run(scenario())


def test_router_agent_accepts_a_gss_hi_and_refuses_an_lwkerb_one(initiator, realms, tmp_path):
    from tests import test_router as TR

    assert str(TR.NCOA) == NCOA and str(TR.PCOA) == PCOA and str(TR.NAR) == NAR

    def verifier():
        return gss.GssVerifier(realms.nar_keytab, NAR_SERVICE, rcache=f"file2:{tmp_path}/agent.rcache2")

    creds = initiator.credentials(NAR_SERVICE)
    agent, answers = _run_hi({"verifier": verifier()}, lambda key, agent: creds.initiate(BINDING)[0])
    assert [a.status for a in answers] == [0] and agent.verifier.counters["ok"] == 1
    assert agent.mechanism == "gssapi"

    def lwkerb_pdu(key, agent):
        now = agent.epoch_s + agent.scheduler.now() / 1e9
        skey = L.Key(0, bytes(range(7, 39)))
        part = L.EncTicketPart(L.TicketFlag.PRE_AUTHENT, int(now) - 60, int(now) - 60, int(now) + 3600,
                               skey.value, TR.P_MN)
        c = L.Credentials(TR.P_MN, TR.P_NAR, L.Ticket.issue(TR.P_NAR, key, part), skey, part.flags,
                          int(now) - 60, int(now) - 60, int(now) + 3600)
        return L.build_ap_req(c, BINDING, now=now)[0].encode()

    # an lwkerb MN at a gssapi NAR: HE "authentication failed", counted as a mechanism mismatch
    agent, answers = _run_hi({"verifier": verifier()}, lwkerb_pdu)
    assert [a.status for a in answers] == [REFUSED] and agent.verifier.counters["mechanism_mismatch"] == 1
    assert agent.ar.counters["auth_failed"] == 1 and agent.verifier.counters["ok"] == 0
    # a gssapi MN at an lwkerb NAR: the same, from the other side
    agent, answers = _run_hi({}, lambda key, agent: creds.initiate(BINDING)[0])
    assert [a.status for a in answers] == [REFUSED] and agent.verifier.counters["mechanism_mismatch"] == 1
    assert agent.mechanism == "lwkerb"


# ----------------------------------------------------------------------------------------------- the demo world


def test_the_whole_fast_handover_in_the_demo_world_with_mit_tickets(realms):
    from fmipfast.lab.simulated.demo import Scenario, run_scenario

    krb = demo_kerberos_for(realms)
    r, w = run_scenario(Scenario(kerberos="gssapi", rate_pps=250), krb=krb)
    assert r.sent == r.received and r.lost == 0 and r.reordered == 0 and r.duplicated == 0
    assert r.buffered > 0 and r.flushed == r.buffered
    par, nar = w.drivers
    assert par.verifier.counters["ok"] == 1 and nar.verifier.counters["ok"] == 1  # initial attach, handover
    mn = w.mn_driver.mn
    assert mn.counters["initial_attached"] == 1 and mn.counters["handovers_completed"] == 1
    assert mn.counters["bad_ap_rep"] == 0 and mn.counters["ticket_failed"] == 0
    steps = r.steps
    assert steps["nar_verify_start"] < steps["nar_verified"] < steps["link_up"] < steps["flushed"]
    sizes = {e["what"]: e["size"] for e in r.timeline}
    assert sizes["2. Handover Redirect Ack"] > 700 and sizes["3. ICMP Handover (under AH)"] > 700  # the token
    session = nar.ar.sessions[w.sc.plan.slaac_ncoa] if w.sc.plan.slaac_ncoa in nar.ar.sessions else None
    assert session is None or session.expires_ns is not None  # the NAR's session ends with the MIT ticket


def demo_kerberos_for(realms):
    """The module's realms as the demo's: its own PAR/NAR services exist already, so a fresh MN cache."""
    from fmipfast.lab.mitrealms import DemoKerberos

    return DemoKerberos(PAR_SERVICE, NAR_SERVICE, realms.par_keytab, realms.nar_keytab,
                        realms.kinit(realms.path("demo-mn.ccache")), realms.tmp, {B: (NAR_SERVICE,)})


def test_demo_refuses_key_cases_2_and_3_with_standard_kerberos(realms):
    from fmipfast.lab.simulated.demo import Scenario, run_scenario

    with pytest.raises(ValueError, match="only key case 1"):
        run_scenario(Scenario(kerberos="gssapi", case=2), krb=demo_kerberos_for(realms))



def test_check_config_opens_the_keytab_of_a_gssapi_router(realms, tmp_path, capsys):
    from fmipfast.cli import main
    from tests.test_gssapi_config import GSS_ROUTER

    good = tmp_path / "router.toml"
    good.write_text(GSS_ROUTER.replace("/etc/fmipfast/nar.keytab", realms.nar_keytab)
                    .replace("file2:/var/lib/fmipfast/nar.rcache2", f"file2:{tmp_path}/rc2"))
    assert main(["check-config", str(good)]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace(realms.nar_keytab, realms.par_keytab))
    assert main(["check-config", str(bad)]) != 0
    err = capsys.readouterr().err
    assert "router.security.keytab" in err and "access/nar.b.example@B.EXAMPLE" in err


def test_host_based_service_names_on_both_sides(realms, tmp_path):
    """``access@nar.b.example``: MIT maps the host to B.EXAMPLE ([domain_realm]) on the MN and at the router."""
    creds = gss.GssInitiator(ccache=realms.mn_ccache).credentials("access@nar.b.example")
    verifier = gss.GssVerifier(realms.nar_keytab, "access@nar.b.example", rcache=f"file2:{tmp_path}/h.rcache2")
    pdu, pending = creds.initiate(BINDING)
    ctx = verifier.verify_local(pdu, BINDING)
    assert ctx.server == NAR_SERVICE and ctx.mac_key == pending.mac_key


def test_a_ready_service_ticket_is_reused_until_near_its_end(realms):
    """The MN's ticket lookup on the handover path costs no GSS context once the ticket is ready: the same
    credentials are handed out until ``renew_margin`` before the ticket ends, then the cache is asked again."""
    now = [time.time()]
    initiator = gss.GssInitiator(ccache=realms.mn_ccache, renew_margin=60.0, clock=lambda: now[0])
    first = initiator.credentials(NAR_SERVICE)
    again = initiator.credentials(NAR_SERVICE)
    assert again is first
    assert initiator.counters["tickets"] == 1 and initiator.counters["tickets_reused"] == 1
    assert initiator.credentials(PAR_SERVICE) is not first  # per service
    now[0] = first.endtime - 59  # inside the margin: probed again (a renewed ticket, or the refusal)
    assert initiator.credentials(NAR_SERVICE) is not first
    assert initiator.counters["tickets"] == 3 and initiator.counters["tickets_reused"] == 1
    # bounded: the oldest ready service is forgotten first (here with a bound of 1)
    import fmipfast.security.gss as gss_module

    bound = gss_module.MAX_READY_SERVICES
    try:
        gss_module.MAX_READY_SERVICES = 1
        initiator.credentials(PAR_SERVICE)
        assert list(initiator._ready) == [str(PAR_SERVICE)]
    finally:
        gss_module.MAX_READY_SERVICES = bound

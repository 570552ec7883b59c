"""RouterAgent on the daemon's asyncio scheduler: an HI under AH arrives from a peer router through the
engine, the agent verifies AH, proxies the NCoA and PCoA at once, verifies the AP-REQ asynchronously and
answers with an accepted Handover Error under AH — all through the engine's real data path."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from ipaddress import IPv6Address

import numpy as np
import pytest

from fmipfast import config, frames
from fmipfast.constants import AddressKind, IpProto, NeighborFlag
from fmipfast.engine import Engine
from fmipfast.messages import (
    AddressOption,
    HandoverControl,
    HandoverError,
    IcmpHandover,
    Identifier,
    LkbMessage,
    decode,
    encode,
)
from fmipfast.ports import FrameBatch, MemoryLink, MemoryPort
from fmipfast.router import LoopScheduler, RouterAgent
from fmipfast.security import ah
from fmipfast.security import lwkerb as L

NAR, PAR = IPv6Address("2001:db8:2::1"), IPv6Address("2001:db8:1::1")
NCOA, PCOA = IPv6Address("2001:db8:2::a"), IPv6Address("2001:db8:1::a")
MAC_ACC, MAC_UP, MAC_CORE = bytes.fromhex("02005e000201"), bytes.fromhex("02005e000202"), bytes.fromhex("02005e0000ff")
P_NAR, P_MN = L.Principal("host/nar", "B.EXAMPLE"), L.Principal("mn1", "HOME")
K_IN, K_OUT = bytes(range(32)), bytes(range(32, 64))

TOML = f"""
[router]
[[router.interfaces]]
name = "acc0"
addresses = ["{NAR}/64"]
ra_min_interval_ms = 600000
ra_max_interval_ms = 600000
[[router.interfaces]]
name = "up0"
role = "upstream"
addresses = ["2001:db8:ff::2/64"]
[[router.routes]]
prefix = "2001:db8:1::/64"
via = "2001:db8:ff::1"
interface = "up0"
[[router.neighbors]]
address = "2001:db8:ff::1"
mac = "{MAC_CORE.hex(':')}"
interface = "up0"
"""


class _ControlPort(MemoryPort):
    """An access port that hands what arrives on it over as control frames kept apart (``receive_control``), as
    a ring port's control socket does with ND and the fmipfast messages."""

    def receive_control(self) -> Iterator[FrameBatch]:
        return MemoryPort.receive(self)

    def receive(self) -> Iterator[FrameBatch]:
        return iter(())


def _world(store: ah.SequenceStore | None = None, *, outbound_in_sad: bool = False, control_port: bool = False,
           **agent_options):
    core, access = MemoryLink("core"), MemoryLink("access")
    ports = {"acc0": (_ControlPort if control_port else MemoryPort)("acc0", MAC_ACC, access),
             "up0": MemoryPort("up0", MAC_UP, core)}
    peer = MemoryPort("par", MAC_CORE, core)
    engine = Engine(config.loads(TOML).router, ports, seed=bytes(16))
    keytab = L.Keytab()
    key = L.Key(4, bytes(range(100, 132)))
    keytab.add(P_NAR, key)
    sad = ah.SADatabase()
    sad.add_inbound(ah.SecurityAssociation(0x2001, K_IN, peer=str(PAR)))
    out = ah.SecurityAssociation(0x2002, K_OUT, peer=str(PAR), store=store)
    if outbound_in_sad:  # as ``fmipfast router`` builds it
        sad.add_outbound(out)
    agent = RouterAgent(engine, LoopScheduler(), principal=P_NAR, keytab=keytab, sad=sad,
                        sa_out=None if outbound_in_sad else {PAR: out}, **agent_options)
    return engine, agent, peer, key


def _hi(key: L.Key, epoch: float, *, identifier: int = 7, tamper: bool = False, seq: int = 1) -> bytes:
    skey = L.Key(0, bytes(range(7, 39)))
    part = L.EncTicketPart(L.TicketFlag.PRE_AUTHENT, int(epoch) - 60, int(epoch) - 60, int(epoch) + 3600,
                           skey.value, P_MN)
    creds = L.Credentials(P_MN, P_NAR, L.Ticket.issue(P_NAR, key, part), skey, part.flags, int(epoch) - 60,
                          int(epoch) - 60, int(epoch) + 3600)
    binding = L.HandoverBinding(str(NCOA), str(PCOA), str(NAR), identifier)
    ap_req = L.build_ap_req(creds, binding, now=epoch)[0].encode()
    hi = IcmpHandover(64, NCOA, bytes.fromhex("001b63fffe8445e6"), (LkbMessage(ap_req), HandoverControl(True, 64, 3000),
                                                                  AddressOption(AddressKind.PCOA, PCOA),
                                                                  Identifier(identifier)))
    packet = frames.build_ipv6(PAR, NAR, IpProto.ICMPV6, encode(hi, PAR, NAR), 64)
    packet = ah.protect(packet, ah.SecurityAssociation(0x2001, K_IN, peer=str(NAR), seq=seq - 1))
    if tamper:  # flip a bit of the AH ICV: the ICMPv6 checksum still verifies, AH does not
        packet = packet[:52] + bytes([packet[52] ^ 1]) + packet[53:]
    return frames.build_ethernet(MAC_UP, MAC_CORE, packet)


def _answers(peer: MemoryPort, sad: ah.SADatabase | None = None) -> list[HandoverError]:
    """The HEs the peer router receives, through its inbound SA (``sad``: one kept across calls)."""
    if sad is None:
        sad = ah.SADatabase()
        sad.add_inbound(ah.SecurityAssociation(0x2002, K_OUT, peer=str(NAR)))
    out = []
    for batch in peer.receive():
        for frame in batch.frames():
            p = frames.parse_frame(frame)
            if p.has_ah:
                inner = ah.verify(frame[14:14 + 40 + int.from_bytes(frame[18:20], "big")], sad)
                msg = decode(inner[40:], p.src, p.dst)
                assert isinstance(msg, HandoverError)
                out.append(msg)
    return out


def test_hi_under_ah_is_proxied_verified_and_accepted():
    async def scenario() -> None:
        engine, agent, peer, key = _world()
        peer.send_frames([_hi(key, agent.epoch_s + agent.scheduler.now() / 1e9)])
        engine.poll()
        # proxied at admission, before the AP-REQ is verified: the NCoA and the PCoA
        for address in (NCOA, PCOA):
            idx = int(engine.ncache.lookup(np.frombuffer(address.packed, dtype=np.uint8).reshape(1, 16))[0])
            assert idx >= 0 and int(engine.ncache.flags[idx]) & NeighborFlag.PROXY
        for _ in range(50):  # the verification runs as a task on this loop
            await asyncio.sleep(0.01)
            answers = _answers(peer)
            if answers:
                break
        assert [a.status for a in answers] == [0] and answers[0].identifier == 7
        assert agent.ar.counters["hi_admitted"] == 1 and agent.ah_counters["verified"] == 1
        assert agent.handovers()[0]["state"] == "proxying"

    asyncio.run(scenario())


def test_the_sad_is_the_one_home_of_the_outbound_sas():
    """An outbound SA filed in the SAD (as ``fmipfast router`` does) protects the HE; one given as ``sa_out`` is
    filed into the SAD; a reload takes a SAD of both directions and keeps an unchanged outbound SA's counter; an
    ``sa_out`` entry filed under another address than its SA's peer is refused."""
    async def scenario() -> None:
        for in_sad in (True, False):
            engine, agent, peer, key = _world(outbound_in_sad=in_sad)
            out = agent.sad.find_outbound(PAR)
            assert out is not None and out.spi == 0x2002 and agent.sad.outbound_sas() == [out]
            assert not hasattr(agent, "sa_out")
            peer.send_frames([_hi(key, agent.epoch_s + agent.scheduler.now() / 1e9)])
            engine.poll()
            answers: list[HandoverError] = []
            for _ in range(50):
                await asyncio.sleep(0.01)
                answers = _answers(peer)
                if answers:
                    break
            assert [a.identifier for a in answers] == [7] and out.seq == 1
        sad = ah.SADatabase()
        sad.add_inbound(ah.SecurityAssociation(0x2001, K_IN, peer=str(PAR)))
        sad.add_outbound(ah.SecurityAssociation(0x2002, K_OUT, peer=str(PAR)))
        assert agent.reload_security(agent.verifier.keytab, sad) == {"sas_kept": 2, "sas_replaced": 0}
        assert agent.sad.find_outbound(PAR) is out and out.seq == 1  # the counter came along
        with pytest.raises(ValueError, match="filed under 2001:db8:c::1"):
            agent.reload_security(agent.verifier.keytab, ah.SADatabase(),
                                  {IPv6Address("2001:db8:c::1"): ah.SecurityAssociation(0x2004, K_OUT, peer=str(PAR))})
        assert agent.sad.find_outbound(PAR) is out and agent.counters["reloads"] == 1

    asyncio.run(scenario())


def test_hi_with_a_broken_ah_never_reaches_the_machine():
    async def scenario() -> None:
        engine, agent, peer, key = _world()
        peer.send_frames([_hi(key, agent.epoch_s + agent.scheduler.now() / 1e9, tamper=True)])
        engine.poll()
        await asyncio.sleep(0.05)
        assert agent.counters["ah_rejected"] == 1 and agent.ar.counters["received"] == 0
        assert _answers(peer) == [] and not agent.handovers()

    asyncio.run(scenario())


def test_a_restarted_router_is_heard_by_its_peer_and_a_failed_counter_write_sends_nothing(tmp_path):
    """RFC 4302 §3.3.2 with manual keys: the NAR's outbound AH counter lives in ``ah_sequence_file``, so after a
    restart (a new engine, agent and store on the same file) its HE is inside the PAR's replay window, not a
    replay of sequence 1.  When the block ahead cannot be written the HE is not sent -- counted, no crash."""
    peer_sad = ah.SADatabase()
    peer_sad.add_inbound(ah.SecurityAssociation(0x2002, K_OUT, peer=str(NAR)))
    state = tmp_path / "state"
    state.mkdir()

    async def one_run(identifier: int) -> tuple[RouterAgent, list[HandoverError]]:
        engine, agent, peer, key = _world(ah.SequenceStore(state / "ah-seq.json", block=4))
        peer.send_frames([_hi(key, agent.epoch_s + agent.scheduler.now() / 1e9, identifier=identifier)])
        engine.poll()
        answers: list[HandoverError] = []
        for _ in range(50):
            await asyncio.sleep(0.01)
            answers += _answers(peer, peer_sad)
            if answers or agent.counters["ah_protect_failed"]:
                break
        return agent, answers

    _, first = asyncio.run(one_run(7))
    agent, second = asyncio.run(one_run(8))  # the restart
    assert [a.identifier for a in first + second] == [7, 8]
    assert peer_sad.inbound(0x2002).replay_top == 5  # 1, then 5: the first run had reserved 1..4
    (state / "ah-seq.json").unlink()
    state.rmdir()
    agent, third = asyncio.run(one_run(9))  # starts at 0 (no file), and cannot write its block ahead
    assert third == [] and agent.counters["ah_protect_failed"] == 1
    assert agent.ah_counters["seq_not_persisted"] == 1 and agent.ar.counters["hi_admitted"] == 1


MN_MAC = bytes.fromhex("001b638445e6")
MN_COA = IPv6Address("2001:db8:2::21b:63ff:fe84:45e6")


def _initial_attach(key: L.Key, epoch: float) -> tuple[bytes, L.Credentials]:
    """An MN's initial Attach to this router (AP-REQ bound to (coa, coa, router, 1)), as an Ethernet frame."""
    from fmipfast.messages import Attach, LinkLayerAddress
    skey = L.Key(0, bytes(range(50, 82)))
    part = L.EncTicketPart(L.TicketFlag.PRE_AUTHENT, int(epoch) - 60, int(epoch) - 60, int(epoch) + 3600,
                           skey.value, P_MN)
    creds = L.Credentials(P_MN, P_NAR, L.Ticket.issue(P_NAR, key, part), skey, part.flags, int(epoch) - 60,
                          int(epoch) - 60, int(epoch) + 3600)
    req = L.build_ap_req(creds, L.HandoverBinding(str(MN_COA), str(MN_COA), str(NAR), 1), now=epoch)[0]
    att = Attach((LinkLayerAddress(bytes.fromhex("001b63fffe8445e6")), LkbMessage(req.encode()), Identifier(1)))
    packet = frames.build_ipv6(MN_COA, NAR, IpProto.ICMPV6, encode(att, MN_COA, NAR), 255)
    return frames.build_ethernet(MAC_ACC, MN_MAC, packet), creds


def test_sessions_survive_a_restart_with_a_session_file(tmp_path):
    """An MN attaches; the agent writes its session (key, end time; mode 0600) to ``session_file``; a new agent
    on the same file -- the restart -- knows the MN: a handover of it is accepted and its Redirect carries a MAC
    under the MN's key.  Without the file the restarted router refuses the handover."""
    from fmipfast.control import ControlError
    from fmipfast.messages import HandoverRedirect, NeighborAdvertisement, TargetLinkLayerAddress
    from fmipfast.ports import MemoryPort as Port
    from fmipfast.protocol import mac_ok
    from fmipfast.router import load_sessions

    path = tmp_path / "sessions.json"

    async def attach() -> RouterAgent:
        engine, agent, _peer, key = _world(session_file=str(path))
        mn = Port("mn", MN_MAC, engine.interfaces[0].port.link)
        frame, _ = _initial_attach(key, agent.epoch_s + agent.scheduler.now() / 1e9)
        mn.send_frames([frame])
        for _ in range(100):
            engine.poll()
            await asyncio.sleep(0.01)
            if path.exists():
                break
        return agent

    first = asyncio.run(attach())
    assert first.ar.counters["initial_attached"] == 1 and first.counters["sessions_saved"] == 1
    assert (path.stat().st_mode & 0o777) == 0o600
    (saved,) = load_sessions(str(path))
    assert saved[0] == MN_COA and saved[1] == first.ar.sessions[MN_COA].mac_key

    async def restart(with_file: bool) -> tuple[RouterAgent, list[frames.ParsedFrame]]:
        kw = {"session_file": str(path), "restored": load_sessions(str(path))} if with_file else {}
        engine, agent, _peer, _key = _world(**kw)
        mn = Port("mn", MN_MAC, engine.interfaces[0].port.link)
        try:
            agent.trigger({"pcoa": str(MN_COA), "nar": str(PAR), "nar_principal": "host/par@A.EXAMPLE"})
        except ControlError:
            return agent, []
        # the restarted router has no neighbor entry for the MN: the Redirect waits while it solicits the MN,
        # which answers like any host
        got = [frames.parse_frame(f) for b in mn.receive() for f in b.frames()]
        assert [decode(p.payload, p.src, p.dst).NAME for p in got] == ["NeighborSolicitation"]
        na = NeighborAdvertisement(MN_COA, solicited=True, options=(TargetLinkLayerAddress(MN_MAC),))
        mn.send_frames([frames.build_ethernet(MAC_ACC, MN_MAC, frames.build_ipv6(
            MN_COA, got[0].src, IpProto.ICMPV6, encode(na, MN_COA, got[0].src), 255))])
        engine.poll()
        return agent, [frames.parse_frame(f) for b in mn.receive() for f in b.frames()]

    agent, got = asyncio.run(restart(True))
    assert agent.counters["sessions_restored"] == 1 and agent.ar.counters["trigger_unknown_mn"] == 0
    (redirect,) = [p for p in got if p.dst == MN_COA]  # (besides an RA to all nodes)
    assert isinstance(decode(redirect.payload, NAR, MN_COA), HandoverRedirect) and redirect.hop_limit == 255
    assert mac_ok(redirect.payload, saved[1], NAR, MN_COA)
    refused, _ = asyncio.run(restart(False))
    assert refused.ar.counters["trigger_unknown_mn"] == 1


def test_a_damaged_session_file_is_refused_naming_it(tmp_path):
    from fmipfast.router import load_sessions
    from fmipfast.security.statefile import StateFileError

    path = tmp_path / "sessions.json"
    assert load_sessions(str(path)) == []
    for content, named in ((b"{", "malformed"), (b'{"format": "x"}', "not an fmipfast sessions file"),
                           (b'{"format": "fmipfast-sessions/1", "sessions": [{"address": "::1", "mac_key": "00", '
                            b'"eui64": null, "ends_unix_ns": null}]}', "32-octet mac_key")):
        path.write_bytes(content)
        path.chmod(0o600)
        with pytest.raises(StateFileError, match=named) as info:
            load_sessions(str(path))
        assert str(path) in str(info.value)
    path.chmod(0o644)
    with pytest.raises(StateFileError, match="chmod 600"):
        load_sessions(str(path))


def test_keys_are_reloaded_without_a_restart():
    """SIGHUP's work (``reload_security``): an SA whose SPI, key and peer are unchanged keeps its state (the
    replay window still refuses an old packet), a rotated outbound key is used for the next HE (the peer checks
    it with the new key), and handovers keep running."""
    async def scenario() -> None:
        engine, agent, peer, key = _world()
        first = _hi(key, agent.epoch_s + agent.scheduler.now() / 1e9, identifier=7)
        peer.send_frames([first])
        engine.poll()
        for _ in range(50):
            await asyncio.sleep(0.01)
            if agent.ar.counters["hi_admitted"]:
                break
        _answers(peer)  # the HE under the old key
        inbound = agent.sad.inbound(0x2001)
        new_key = bytes(range(64, 96))
        sad = ah.SADatabase()
        sad.add_inbound(ah.SecurityAssociation(0x2001, K_IN, peer=str(PAR)))  # unchanged
        result = agent.reload_security(agent.verifier.keytab, sad,
                                       {PAR: ah.SecurityAssociation(0x2003, new_key, peer=str(PAR))})
        assert result == {"sas_kept": 1, "sas_replaced": 1} and agent.counters["reloads"] == 1
        assert agent.sad.inbound(0x2001) is inbound  # the replay window came along
        peer.send_frames([first])  # a replay of the first HI: still refused
        engine.poll()
        assert agent.ah_counters["replay_duplicate"] == 1
        peer.send_frames([_hi(key, agent.epoch_s + agent.scheduler.now() / 1e9, identifier=8, seq=2)])
        engine.poll()
        rotated = ah.SADatabase()
        rotated.add_inbound(ah.SecurityAssociation(0x2003, new_key, peer=str(NAR)))
        answers: list[HandoverError] = []
        for _ in range(50):
            await asyncio.sleep(0.01)
            answers = _answers(peer, rotated)
            if answers:
                break
        assert [a.identifier for a in answers] == [8]  # verified with the new key

    asyncio.run(scenario())


def test_a_reload_with_a_bad_file_or_a_new_principal_changes_nothing(tmp_path, caplog):
    """SIGHUP's guard (``fmipfast.routerd._reload_router``): a file that does not load, or one that renames the
    router's principal, is logged as an error and the agent keeps its keys; a good one is taken and what
    needs a restart is named."""
    import logging

    from fmipfast.routerd import _reload_router
    from tests.test_config import SECURITY

    async def scenario() -> None:
        engine, agent, _peer, _key = _world()
        running = config.loads(SECURITY)
        path = tmp_path / "router.toml"
        with caplog.at_level(logging.INFO, logger="fmipfast.router"):
            path.write_text(SECURITY.replace("spi_in = 4098", "spi_in = 7"))  # out of range
            _reload_router(str(path), running, agent, None)
            renamed = 'principal = "host/x@A.EXAMPLE"\nkdc'
            path.write_text(SECURITY.replace('principal = "host/par@A.EXAMPLE"\nkdc', renamed))
            _reload_router(str(path), running, agent, None)
            assert agent.counters["reloads"] == 0
            path.write_text(SECURITY.replace("ncache_capacity = 1024", "ncache_capacity = 2048"))
            _reload_router(str(path), running, agent, None)
        assert agent.counters["reloads"] == 1
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 2 and "spi_in" in errors[0] and "needs a restart" in errors[1], errors
        assert any("ncache_capacity changed" in r.getMessage() for r in caplog.records)

    asyncio.run(scenario())


def test_a_flushing_phase_writes_its_notes_after_the_flush_with_the_time_they_were_made():
    # the notes before an Attach's ProxyComplete (the receipt, the state change) cost log lines the MN's first
    # packet should not wait for: the agent flushes first, then writes them, stamped when they were made
    from fmipfast.protocol import Note, ProxyComplete

    seen: list[tuple[str, object]] = []
    engine, agent, _peer, _key = _world(on_note=lambda what, fields: seen.append((what, fields.get("mono_ns"))))
    flushed_at: list[int] = []

    def proxy_complete(address: object, mac: bytes) -> int:
        flushed_at.append(time.monotonic_ns())
        seen.append(("flush", None))
        return 0

    engine.proxy_complete = proxy_complete  # type: ignore[method-assign]
    before = time.monotonic_ns()
    agent._execute_phase([Note("recv", {"message": "Attach"}), ProxyComplete(NCOA, bytes(6)),
                          Note("state", {"new": "attached"})])
    assert [w for w, _ in seen] == ["flush", "flushed", "ar:recv", "ar:state"]
    stamp = seen[2][1]
    assert isinstance(stamp, int) and before <= stamp <= flushed_at[0]
    # a phase without a flush runs in order, its notes unstamped
    seen.clear()
    agent._execute_phase([Note("recv", {"message": "HI"}), Note("state", {"new": "verifying"})])
    assert seen == [("ar:recv", None), ("ar:state", None)]


# ------------------------------------------------------------------ the MN's Attach on a control port
MN_EUI64 = bytes.fromhex("001b63fffe8445e6")  # the HI's M option (_hi)
MN_MAC = bytes.fromhex("001b638445e6")


def _udp_to(dst: IPv6Address, seq: int) -> bytes:
    body = (40000).to_bytes(2, "big") + (40001).to_bytes(2, "big") + (16).to_bytes(2, "big") + bytes(2) + \
        seq.to_bytes(8, "big")
    return frames.build_ethernet(MAC_UP, MAC_CORE, frames.build_ipv6(IPv6Address("2001:db8:1::99"), dst,
                                                                     IpProto.UDP, body, 64))


def _attach_frame(engine: Engine, *, key: bytes | None = None) -> bytes:
    from fmipfast.messages import Attach, LinkLayerAddress, MessageAuthCode
    from fmipfast.protocol import sign

    nar_ll = engine.interfaces[0].link_local
    mac_key = key if key is not None else L.derive_key(L.Key(0, bytes(range(7, 39))), L.LABEL_MAC)  # _hi's
    icmp = sign(Attach((LinkLayerAddress(MN_EUI64), Identifier(7), MessageAuthCode())), mac_key, NCOA, nar_ll)
    return frames.build_ethernet(MAC_ACC, MN_MAC, frames.build_ipv6(NCOA, nar_ll, IpProto.ICMPV6, icmp, 255))


async def _proxying(**world_options):
    """A NAR whose handover waits for the MN (the HI verified, three datagrams buffered), the MN on its link."""
    engine, agent, peer, key = _world(control_port=True, **world_options)
    mn = MemoryPort("mn", MN_MAC, engine.interfaces[0].port.link)
    peer.send_frames([_hi(key, agent.epoch_s + agent.scheduler.now() / 1e9)])
    engine.poll()
    for _ in range(50):  # the verification runs as a task on this loop
        await asyncio.sleep(0.01)
        if _answers(peer):
            break
    assert agent.handovers()[0]["state"] == "proxying"
    peer.send_frames([_udp_to(NCOA, q) for q in range(3)])
    engine.poll()
    assert engine.counters["buffered"] == 3
    return engine, agent, mn


def test_an_attach_on_a_control_port_releases_the_buffer_before_the_pass_reaches_the_agent():
    """The engine shows each batch of a port's control frames to the agent before its pass
    (``Engine.early_control``): an Attach that completes a waiting handover flushes the MN's buffered packets
    there, and the machine's ProxyComplete for the same Attach afterwards finds the work done (one flush; the
    route-switch hold the flush started stays)."""
    async def scenario() -> None:
        notes: list[tuple[str, dict]] = []
        engine, agent, mn = await _proxying(on_note=lambda what, fields: notes.append((what, dict(fields))))
        flushes: list[int] = []
        hooked: list[int] = []
        proxy_complete, hook = engine.proxy_complete, engine.control
        assert hook is not None

        def counted(address: object, mac: bytes) -> int:
            flushes.append(time.monotonic_ns())
            return proxy_complete(address, mac)

        def hook_timed(cf: object) -> None:
            hooked.append(time.monotonic_ns())
            hook(cf)  # type: ignore[arg-type]

        engine.proxy_complete = counted  # type: ignore[method-assign]
        engine.control = hook_timed
        mn.send_frames([_attach_frame(engine)])
        engine.poll()
        assert len(flushes) == 1 and len(hooked) == 1 and flushes[0] < hooked[0]
        assert agent.ar.counters["attached"] == 1 and agent.handovers()[0]["state"] == "attached"
        got = [frames.parse_frame(f) for b in mn.receive() for f in b.frames()]
        assert sum(1 for p in got if p.upper_layer == IpProto.UDP and p.dst == NCOA) == 3
        # the route-switch hold the one flush started, intact (a second completion would have reset the entry)
        assert [h["ncoa"] for h in engine.holds()] == [str(NCOA)]
        idx = int(engine.ncache.lookup(np.frombuffer(NCOA.packed, dtype=np.uint8).reshape(1, 16))[0])
        assert int(engine.ncache.flags[idx]) & NeighborFlag.HOLD
        flushed = [f for w, f in notes if w == "flushed"]
        assert len(flushed) == 1 and flushed[0]["count"] == 3
        assert flushed[0]["pass_ns"] <= flushed[0]["hook_ns"] <= flushed[0]["flush_ns"] <= hooked[0]
        c = engine.conservation()
        assert c["holds"], c

    asyncio.run(scenario())


def test_forged_attaches_on_a_control_port_release_nothing_and_are_counted_once():
    """Attaches under the wrong key from the waiting NCoA: no early release, each refused once by the machine
    (the early look counts nothing); the MN's own Attach afterwards completes the handover."""
    async def scenario() -> None:
        engine, agent, mn = await _proxying()
        mn.send_frames([_attach_frame(engine, key=bytes(32)) for _ in range(10)])
        engine.poll()
        assert agent.ar.counters["bad_mac"] == 10 and agent.ar.counters.get("attached", 0) == 0
        assert engine.counters["flushed"] == 0 and agent.handovers()[0]["state"] == "proxying"
        mn.send_frames([_attach_frame(engine)])
        engine.poll()
        assert agent.ar.counters["attached"] == 1 and engine.counters["flushed"] == 3

    asyncio.run(scenario())


def test_the_early_look_takes_any_bytes_from_the_link_without_raising_or_releasing():
    """Frames of any content on the control port while a handover waits (runts, wrong versions, lengths that
    overrun the frame, an Attach's header over garbage): the look raises nothing and releases nothing; the
    engine counts no internal error."""
    import random

    async def scenario() -> None:
        engine, agent, mn = await _proxying()
        good = _attach_frame(engine)
        rnd = random.Random(7)
        hostile = [b"", b"\x00" * 13, good[:54], good[:60], good[:62] + b"\xff" * 3]
        for _ in range(300):
            f = bytearray(good[:rnd.randrange(14, len(good) + 1)])
            for _ in range(rnd.randrange(1, 6)):
                f[rnd.randrange(len(f))] = rnd.randrange(256)
            if rnd.random() < 0.5 and len(f) > 20:  # keep the headers that lead to the look's checks
                f[12:14], f[14], f[20] = b"\x86\xdd", 0x60, 58
            hostile.append(bytes(f) + bytes(rnd.randrange(3)))
        from fmipfast.ports import pack_frames
        arena, offsets, lengths = pack_frames(hostile)
        fb = FrameBatch(None, arena, offsets, lengths, np.zeros(len(hostile), dtype=np.uint32),
                        np.zeros(len(hostile), dtype=np.int64))
        agent.on_early_control(engine.interfaces[0], fb, time.monotonic_ns())
        assert engine.counters["flushed"] == 0 and agent.handovers()[0]["state"] == "proxying"
        mn.send_frames([f for f in hostile if f])
        engine.poll()
        assert engine.counters["flushed"] == 0 and engine.counters["internal_errors"] == 0
        mn.send_frames([good])
        engine.poll()
        assert engine.counters["flushed"] == 3 and agent.ar.counters["attached"] == 1

    asyncio.run(scenario())


def test_the_early_look_leaves_a_frame_whose_vlan_tag_the_kernel_stripped_to_the_pass():
    """An Attach that came VLAN-tagged (the tag stripped by the kernel, reported beside the frame) releases
    nothing early: the pass drops it (the links are untagged), and the machine never sees it."""
    async def scenario() -> None:
        engine, agent, mn = await _proxying()
        from fmipfast.ports import pack_frames
        arena, offsets, lengths = pack_frames([_attach_frame(engine)])
        fb = FrameBatch(None, arena, offsets, lengths, np.zeros(1, dtype=np.uint32), np.zeros(1, dtype=np.int64),
                        vlan_tci=np.array([7], dtype=np.uint32))
        agent.on_early_control(engine.interfaces[0], fb, time.monotonic_ns())
        assert engine.counters["flushed"] == 0 and agent.handovers()[0]["state"] == "proxying"

    asyncio.run(scenario())

"""``fmipfast mn`` (fmipfast/mnd.py) on a real kernel (root): the daemon runs its agent on ``mn0`` of the
``tests/test_mnagent.py`` harness, whose peer namespace plays both access routers.  Its switch command flips
the peer's carrier (the layer-2 move), or fails; its tickets come from a credentials file."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from fmipfast.config import MnConfig
from fmipfast.mn import MnState
from fmipfast.protocol import Trigger
from fmipfast.security import lwkerb as L
from fmipfast.security.ccache import save_credentials
from tests.test_mnagent import AR_A, AR_B, NCOA_B, P_A, P_B, PCOA_A, ROOT, T_LIMIT, Lab, Peer, _credentials, _until
from tests.test_mnagent import lab as lab  # noqa: F401  (the fixture)

pytestmark = pytest.mark.skipif(not ROOT, reason="needs root for network namespaces, raw sockets and netlink "
                                                 "(CI runs as root)")
if not ROOT:
    print("test_mnd: not root, the MN daemon tests are skipped", file=sys.stderr)


def _daemon(lab: Lab, tmp_path, tickets: dict, switch: tuple[str, ...], **kw):
    from fmipfast.mnd import MnDaemon

    ccache = tmp_path / "mn.ccache"
    save_credentials(ccache, tickets.values())
    cfg = MnConfig("mn0", str(AR_A), str(P_A), str(PCOA_A), str(ccache), switch_command=switch, **kw)
    with lab.mn.enter():
        return MnDaemon(cfg)


def _run(peer: Peer, daemon, body, *, attached: bool = True) -> None:
    """Run the daemon against the peer routers; ``body`` once it is attached (``attached=False``: at once)."""
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        peer.attach(loop)
        ticker = loop.create_task(peer.tick())
        ready = asyncio.Event()
        runner = loop.create_task(daemon.run(stop, ready=ready.set))
        try:
            await asyncio.wait_for(ready.wait(), 5)
            if attached:
                await _until(lambda: daemon.agent.mn.state == MnState.ATTACHED, "initial attach")
            await body()
        finally:
            stop.set()
            await asyncio.wait_for(runner, 5)
            ticker.cancel()
            peer.detach(loop)

    try:
        asyncio.run(asyncio.wait_for(scenario(), T_LIMIT))
    finally:
        daemon.close()
        peer.close()


def _flip(lab: Lab) -> tuple[str, ...]:
    """The switch command: the peer's carrier down and up again (what a roam looks like to mn0)."""
    assert lab.peer is not None
    ns = lab.peer.name
    return ("sh", "-c", f"ip -n {ns} link set pr0 down && sleep 0.05 && ip -n {ns} link set pr0 up")


def test_daemon_follows_a_handover_with_its_switch_command(lab: Lab, tmp_path):
    tickets, verifiers = _credentials(time.time())
    peer = Peer(lab, verifiers)
    daemon = _daemon(lab, tmp_path, tickets, _flip(lab), pcoa_release_ms=100)

    async def body() -> None:
        peer.feed("A", Trigger(PCOA_A, AR_B, P_B))
        await _until(lambda: daemon.counters["pcoa_released"] == 1, "the handover and the PCoA's release")

    _run(peer, daemon, body)
    st = daemon.status()
    assert (st["state"], st["router"], st["coa"]) == ("attached", str(AR_B), str(NCOA_B)), st
    c = st["counters"]["daemon"]
    assert c["switch_commands"] == 1 and c["switch_failed"] == 0 and c["handovers_completed"] == 1, c
    # the interruption as the MN lived it: ReadyToSwitch to Authenticated-MN, the carrier's 50 ms off included
    # (not the whole command: the MN attaches at the NAR as soon as the carrier is back, and that can be before
    # the command's last `ip` process has exited)
    assert daemon.interruption.count == 1 and 0.05 <= daemon.interruption.sum < 5
    assert st["last_switch"]["ms"] >= 50
    assert "fmipfast_mn_handover_interruption_seconds_count{interface=\"mn0\"} 1" in daemon.metrics()
    assert st["last_switch"]["ok"] and st["last_switch"]["nar"] == str(AR_B) and st["retired"] == []
    assert str(PCOA_A) not in lab.mn_ip("-6", "addr", "show", "dev", "mn0")  # released after the handover
    assert daemon.dispatch("ping", {}) == "pong" and daemon.dispatch("counters", {})["daemon"] == c
    from fmipfast.control import ControlError

    with pytest.raises(ControlError, match="unknown command 'handover'"):
        daemon.dispatch("handover", {})


def test_a_failed_switch_is_a_link_reversal(lab: Lab, tmp_path):
    """The link layer could not move (the command exits 1): the MN stays, tells the PAR with Forwarding
    Disable (draft App. A), and the PAR stops tunnelling; the MN keeps its PCoA and its router."""
    tickets, verifiers = _credentials(time.time())
    peer = Peer(lab, verifiers)
    daemon = _daemon(lab, tmp_path, tickets, ("sh", "-c", "echo no AP in range >&2; exit 1"))

    async def body() -> None:
        peer.feed("A", Trigger(PCOA_A, AR_B, P_B))
        await _until(lambda: daemon.agent.mn.counters["link_reversals"] == 1, "the link reversal")
        await _until(lambda: not peer.routers["A"].par, "the PAR ending the handover")

    _run(peer, daemon, body)
    st = daemon.status()
    assert (st["state"], st["router"], st["coa"]) == ("attached", str(AR_A), str(PCOA_A)), st
    assert st["counters"]["daemon"]["switch_failed"] == 1 and "no AP in range" in st["last_switch"]["error"]
    assert any(type(a).__name__ == "TunnelRemove" for w, a in peer.log if w == "A")


def test_a_switch_that_changes_nothing_is_a_link_reversal_too(lab: Lab, tmp_path):
    """The command exits 0 but the carrier never changes: after switch_timeout_ms the MN treats it as the
    failed switch it is (Forwarding Disable), instead of waiting in ho_ready forever."""
    tickets, verifiers = _credentials(time.time())
    peer = Peer(lab, verifiers)
    daemon = _daemon(lab, tmp_path, tickets, ("true",), switch_timeout_ms=300)

    async def body() -> None:
        peer.feed("A", Trigger(PCOA_A, AR_B, P_B))
        await _until(lambda: daemon.agent.mn.counters["link_reversals"] == 1, "the link reversal")

    _run(peer, daemon, body)
    c = daemon.status()["counters"]["daemon"]
    assert c["switch_no_link_change"] == 1 and c["switch_failed"] == 1, c
    assert daemon.status()["router"] == str(AR_A)


def test_a_missing_ticket_fails_the_handover_not_the_daemon(lab: Lab, tmp_path):
    """The credentials file has no ticket for the NAR: counted, the MN stays attached to the PAR."""
    tickets, verifiers = _credentials(time.time())
    peer = Peer(lab, verifiers)
    daemon = _daemon(lab, tmp_path, {P_A: tickets[P_A]}, _flip(lab))

    async def body() -> None:
        peer.feed("A", Trigger(PCOA_A, AR_B, P_B))
        await _until(lambda: daemon.counters["ticket_missing"] == 1, "the missing ticket")
        await _until(lambda: daemon.agent.mn.state == MnState.ATTACHED, "back to attached")

    _run(peer, daemon, body)
    st = daemon.status()
    assert st["router"] == str(AR_A) and st["counters"]["daemon"]["switch_commands"] == 0, st
    assert isinstance(tickets[P_B], L.Credentials)


def test_a_session_is_renewed_with_a_ticket_from_the_re_read_credentials_file(lab: Lab, tmp_path):
    """The file's tickets end 40 s from now and the daemon renews 38 s before: the renewal at +2 s finds the
    file rewritten with later tickets (re-read because it changed) and re-attaches with them through the kernel;
    the router's session now ends with the new ticket."""
    now = time.time()
    tickets, verifiers = _credentials(now, lifetime=40)
    peer = Peer(lab, verifiers)
    daemon = _daemon(lab, tmp_path, tickets, _flip(lab), renew_before_s=38)
    later, _ = _credentials(now, lifetime=7200)

    async def body() -> None:
        first_end = daemon.agent.mn.router.expires_ns
        save_credentials(tmp_path / "mn.ccache", later.values())
        await _until(lambda: daemon.agent.mn.counters["renewed"] == 1, "the renewal")
        assert daemon.agent.mn.state == MnState.ATTACHED and daemon.agent.mn.router.expires_ns > first_end
        assert daemon.counters["ccache_reloaded"] == 1 and daemon.counters["ccache_errors"] == 0
        assert 7000 < daemon.status()["session_ends_in_s"] <= 7200  # the new ticket's end, not the old one's
        # and the same in Prometheus terms (`fmipfast mn --metrics`, the control API's `metrics`)
        from prometheus_client.parser import text_string_to_metric_families
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in text_string_to_metric_families(daemon.dispatch("metrics", {})) for s in f.samples}
        assert samples[("fmipfast_mn_state", (("interface", "mn0"), ("state", "attached")))] == 1
        assert samples[("fmipfast_mn_state", (("interface", "mn0"), ("state", "idle")))] == 0
        assert samples[("fmipfast_mn_protocol_total", (("event", "renewed"), ("interface", "mn0")))] == 1
        assert samples[("fmipfast_mn_daemon_total", (("event", "ccache_reloaded"), ("interface", "mn0")))] == 1
        assert 7000 < samples[("fmipfast_mn_session_ends_in_seconds", (("interface", "mn0"),))] <= 7200
        assert peer.routers["A"].counters["initial_attached"] == 2

    _run(peer, daemon, body)


def test_with_no_router_session_the_daemon_attaches_again(lab: Lab, tmp_path):
    """The initial attach fails (the credentials file has no ticket for the router yet): the daemon does not
    stay idle for good -- once the file has the ticket, its next attempt (reattach_s later) attaches."""
    tickets, verifiers = _credentials(time.time())
    peer = Peer(lab, verifiers)
    daemon = _daemon(lab, tmp_path, {P_B: tickets[P_B]}, _flip(lab), reattach_s=1)

    async def body() -> None:
        await _until(lambda: daemon.counters["ticket_missing"] == 1, "the failed initial attach")
        assert daemon.agent.mn.state == MnState.IDLE and daemon.counters["reattach"] == 0
        save_credentials(tmp_path / "mn.ccache", tickets.values())  # the ticket arrives
        await _until(lambda: daemon.agent.mn.state == MnState.ATTACHED, "the re-attach", 5)
        assert daemon.counters["reattach"] == 1 and daemon.agent.mn.router.address == AR_A

    _run(peer, daemon, body, attached=False)

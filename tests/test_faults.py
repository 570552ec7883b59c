"""Fault injection on the simulated world of ``tests/soakworld.py`` (real engines, RouterAgents, Kerberos, AH)
and on the real daemons in network namespaces: each fault's outcome is asserted -- the handover completes, or
it fails cleanly with the right Handover Error and counters and the MN falls back -- and nothing is left
behind once the lifetimes have run out.

Faults: the KDC unreachable or slow during case 2 and case 3 handovers; the peer router restarted mid-handover;
a router daemon SIGKILLed mid-handover and restarted from its state files (root: namespaces); a full disk under
the state files; the clock stepped forward by hours and back; two MNs authenticating in the same microsecond."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fmipfast.mn import MnState
from fmipfast.router import load_sessions
from fmipfast.security import ah
from tests.soakworld import HOME, SITES, World

ROOT = os.geteuid() == 0
SETTLE_MS = 9_000
LIFETIME_MS = 3_000


def _leftovers(w: World) -> dict:
    """What a settled world must not hold: handover state in the routers, sessions other than the attached MNs'
    (a PAR that gave a handover up after its MN had left finds it gone from its link and releases its session),
    non-conserving engines."""
    out = {}
    for name, o in w.occupancy().items():
        bad = {k: o[k] for k in ("ncache_special", "buffer_held", "buffer_keys", "proxy", "tunnel", "hold", "par",
                                 "nar", "nar_index", "unresolved_held") if o[k]}
        if not o["conservation"]:
            bad["conservation"] = False
        if bad:
            out[name] = bad
    want = w.expected_sessions()
    got = {n: o["sessions"] for n, o in w.occupancy().items()}
    if got != want:
        out["sessions"] = {"got": got, "want": want}
    return out


def _accounted(w: World) -> dict:
    """Every stream datagram received or lost somewhere the ledger can name (none never carried)."""
    acc = w.ledger.account()
    assert acc["unexplained"] == [0] * len(w.mns), acc
    for i in range(len(w.mns)):
        assert acc["received"][i] + acc["on_air"][i] + acc["refused_by_host"][i] + acc["in_router"][i] \
            == acc["sent"][i], (i, acc)
    return acc


def _world(n: int = 2, case: int = 1, **kw) -> World:
    w = World(n, case=case, rate_pps=20, ra_ms=(1000, 2000), **kw)
    w.attach_all()
    w.start_streams()
    w.run_for(300)
    return w


# ============================================================================================ the KDC


@pytest.mark.parametrize("case", [2, 3])
def test_kdc_unreachable_the_nar_refuses_with_authentication_failed_and_the_mn_attaches_once_it_is_back(case):
    """Case 2 needs the NAR's KDC, case 3 the MN's home KDC behind it: unreachable, the AP-REQ cannot be
    verified -- HE "authentication failed" to the PAR, which stops tunnelling; the NAR's proxy entries and what
    it buffered go.  The MN, already on the NAR's link, falls back to an initial attach there, which fails the
    same way; when the KDC answers again its next attach succeeds, and nothing is left behind."""
    w = _world(case=case)
    a, b, mn = w.routers["A"], w.routers["B"], w.mns[0]
    w.kdc.down.add("B.EXAMPLE" if case == 2 else HOME)
    w.trigger(mn)
    w.run_for(100)
    assert b.ar.counters["refused_authentication_failed"] == 1 and b.ar.counters["auth_failed"] == 1
    assert b.agent.verifier.counters["kdc_unreachable"] == 1
    assert a.ar.counters["handovers_refused"] == 1 and a.ar.counters["handovers_forwarding"] == 0
    occ = w.occupancy()
    assert occ["A"]["tunnel"] == 0 and occ["B"]["proxy"] == 0 and occ["B"]["ncache_special"] == 0
    assert occ["B"]["buffer_held"] == 0 and occ["B"]["buffer_keys"] == []
    w.run_for(6_000)
    c = mn.machine.counters
    assert c["fallback_attach"] == 1 and c["attach_failed"] == 2 and mn.machine.state == MnState.IDLE, c
    # the MN's attach was refused (retransmissions are verified afresh: a refused initial attach keeps no record)
    assert b.ar.counters["initial_refused"] >= 1 and not [h for h in b.ar.nar.values() if h.initial]
    w.kdc.down.clear()
    assert mn.retry()
    w.run_for(500)
    assert mn.attached_at == "B" and w.mns[1].attached_at == "A"
    w.stop_streams()
    w.run_for(SETTLE_MS)
    assert w.routers["A"].ar.counters["sessions_released_unreachable"] == 1
    assert _leftovers(w) == {}
    _accounted(w)
    assert w.ledger.account()["received"][1] == w.ledger.account()["sent"][1]  # the other MN lost nothing


@pytest.mark.parametrize("case", [2, 3])
def test_kdc_slower_than_the_handover_lifetime_times_the_verification_out_cleanly(case):
    """The KDC answers after 3.5 s, past the 3 s handover lifetime: the NAR gives the verification up
    (verify_timeout: proxy entries and buffer removed, record forgotten) and the late answer is dropped as
    stale; the PAR's HI retransmissions run out (handovers_failed, tunnel removed); the MN's Attach
    retransmissions too, and it falls back to an initial attach at the NAR."""
    w = _world(case=case)
    a, b, mn = w.routers["A"], w.routers["B"], w.mns[0]
    w.kdc.extra_delay_ns["B.EXAMPLE" if case == 2 else HOME] = 3_500_000_000
    w.trigger(mn)
    w.run_for(LIFETIME_MS + 100)
    assert b.ar.counters["verify_timeout"] == 1 and b.ar.counters["hi_admitted"] == 0
    assert a.ar.counters["handovers_failed"] == 1 and a.ar.counters["retransmitted"] == 3
    occ = w.occupancy()
    assert occ["A"]["tunnel"] == 0 and occ["B"]["proxy"] == 0 and occ["B"]["buffer_held"] == 0, occ
    assert occ["B"]["buffer_keys"] == [] and occ["B"]["ncache_special"] == 0
    w.run_for(1_000)
    assert b.ar.counters["stale_verified"] >= 1
    assert mn.machine.counters["fallback_attach"] == 1
    w.kdc.extra_delay_ns.clear()
    w.run_for(8_000)
    mn.retry()  # if the slow initial attach ran out too
    w.run_for(1_000)
    assert mn.attached_at == "B", (mn.machine.state, mn.machine.counters)
    w.stop_streams()
    w.run_for(SETTLE_MS)
    assert w.routers["A"].ar.counters["sessions_released_unreachable"] == 1
    assert _leftovers(w) == {}
    _accounted(w)


def test_a_given_up_handover_leaves_no_session_at_the_par_once_the_mn_attached_elsewhere():
    """The NAR refuses (its KDC is unreachable) after the MN has already moved; the MN falls back to an initial
    attach at the NAR.  Nothing in the draft tells the PAR; its Neighbor Unreachability Detection of the PCoA
    finds no one on its link, and it releases the MN's session for its old address -- its key, a slot of
    max_sessions -- instead of keeping it until the ticket ends (ten hours here)."""
    w = _world(case=2)
    a, mn = w.routers["A"], w.mns[0]
    w.kdc.down.add("B.EXAMPLE")
    w.trigger(mn)
    w.run_for(6_000)
    c = a.ar.counters
    assert c["handovers_refused"] == 1 and c["probes_started"] == 1, c
    assert c["sessions_released_unreachable"] == 1 and c["sessions_kept_reachable"] == 0, c
    assert str(mn.addr["A"]) not in w.occupancy()["A"]["sessions"], "the PAR keeps the session of an MN it lost"
    w.kdc.down.clear()
    mn.retry()
    w.run_for(1_000)
    assert mn.attached_at == "B"
    w.stop_streams()
    w.run_for(SETTLE_MS)
    assert _leftovers(w) == {}
    _accounted(w)


def test_a_given_up_handover_keeps_the_session_of_an_mn_still_on_the_par_s_link():
    """The NAR refuses (its KDC is unreachable) and the MN stays on the PAR's link (it reverses): the PAR's
    Neighbor Unreachability Detection finds it there and keeps its session, whose key signs the next
    handover's Redirect."""
    w = _world(case=2)
    a, mn = w.routers["A"], w.mns[0]
    w.kdc.down.add("B.EXAMPLE")
    w.trigger(mn, plan="reverse")
    w.run_for(6_000)
    c = a.ar.counters
    assert c["handovers_refused"] == 1 and c["probes_started"] == 1, c
    assert c["sessions_kept_reachable"] == 1 and c["sessions_released_unreachable"] == 0, c
    assert str(mn.addr["A"]) in w.occupancy()["A"]["sessions"] and mn.link == "A", (mn.link, mn.machine.state)
    w.kdc.down.clear()
    if mn.attached_at is None:
        mn.retry()
        w.run_for(1_000)
    w.trigger(mn)
    w.run_for(1_000)
    assert mn.attached_at == "B" and a.ar.counters["handovers_forwarding"] == 1, (mn.machine.counters, a.ar.counters)
    w.stop_streams()
    w.run_for(SETTLE_MS)
    assert _leftovers(w) == {}
    _accounted(w)


# ============================================================================================ a peer restarted


def _stateful_world(tmp_path: Path) -> World:
    """Two MNs; the routers keep their sessions and AH counters in files, as `lab up` configures them."""
    opts = {name: {"session_file": str(tmp_path / f"{name}.sessions.json"),
                   "ah_store": ah.SequenceStore(tmp_path / f"{name}.ah-seq.json")} for name in SITES}
    w = World(2, rate_pps=20, ra_ms=(1000, 2000), router_options=opts)
    w.attach_all()
    w.start_streams()
    w.trigger(w.mns[1])  # MN 1 lives at B: the NAR has a session to keep across its restart
    w.run_for(1_000)
    assert w.mns[1].attached_at == "B"
    return w


def test_nar_restarted_after_accepting_the_mn_falls_back_to_an_initial_attach_there(tmp_path):
    """The NAR restarts between its accepting HE and the MN's Attach: the new engine knows nothing of the
    handover, so the Attach goes unanswered; the MN falls back to an initial attach at the NAR and completes.
    The restarted NAR took its other MN's session back from its session file (that MN's next handover works),
    and its AH counter from its sequence file (the PAR accepts its next HE)."""
    w = _stateful_world(tmp_path)
    mn = w.mns[0]
    w.trigger(mn)
    w.run_for(12)  # HRD, HRA, HI (under AH), HE accepted; the MN is in its link gap
    assert w.routers["B"].ar.counters["hi_admitted"] == 2 and mn.link == ""
    b = w.restart_router("B", restored=True)
    assert b.agent.counters["sessions_restored"] == 1 and str(w.mns[1].addr["B"]) in map(str, b.ar.sessions)
    w.run_for(4_000)
    assert mn.machine.counters["fallback_attach"] == 1 and mn.attached_at == "B", mn.machine.counters
    assert b.ar.counters["initial_attached"] == 1 and b.ar.counters["unknown_mn"] >= 1
    w.trigger(w.mns[1])  # B -> A: the restored session's key signs the Redirect
    w.run_for(1_000)
    assert w.mns[1].attached_at == "A" and w.mns[1].machine.counters["handovers_completed"] == 2
    assert w.routers["A"].agent.counters["ah_rejected"] == 0
    w.stop_streams()
    w.run_for(SETTLE_MS)
    assert _leftovers(w) == {}
    _accounted(w)


def test_nar_down_when_the_hi_arrives_the_hi_retransmission_completes_the_handover(tmp_path):
    """The NAR is down when the HI comes and back 200 ms later: the PAR's HI retransmission reaches the new
    engine, which accepts (its HE passes the PAR's replay window: the counter came back from its file); the
    MN's Attach retransmission then completes the handover -- no fallback."""
    w = _stateful_world(tmp_path)
    mn = w.mns[0]
    w.routers["B"].stop()
    w.trigger(mn)
    w.run_for(200)
    assert w.routers["A"].ar.counters["retransmitted"] >= 1
    b = w.restart_router("B", restored=True)
    w.run_for(2_000)
    a = w.routers["A"]
    assert a.ar.counters["handovers_forwarding"] == 2 and a.agent.counters["ah_rejected"] == 0
    assert b.ar.counters["hi_admitted"] == 1 and b.ar.counters["attached"] == 1
    c = mn.machine.counters
    assert mn.attached_at == "B" and c["handovers_completed"] == 1 and c["fallback_attach"] == 0, c
    w.stop_streams()
    w.run_for(SETTLE_MS)
    assert _leftovers(w) == {}
    _accounted(w)


# ============================================================================================ a full disk


@pytest.fixture
def full_dir(tmp_path):
    """A directory on a 64 KiB tmpfs, filled up (root: mount)."""
    if not ROOT:
        print("test_faults: not root, the full-disk test is skipped (it mounts a tmpfs)", file=sys.stderr)
        pytest.skip("needs root to mount a small tmpfs")
    where = tmp_path / "full"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], check=True)
    try:
        fd = os.open(where / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, bytes(4096))
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk_fails_the_session_save_counted_and_logged_and_the_router_keeps_running(full_dir, caplog):
    """The session file's disk is full: every save fails -- counted (sessions_save_failed), noted, logged by the
    daemon's note handler -- and the router goes on: handovers complete.  Once there is room the next change
    is written, and the file holds exactly the sessions of the MNs attached there."""
    path = full_dir / "a.sessions.json"
    with caplog.at_level(logging.INFO, logger="fmipfast.router"):
        w = World(2, rate_pps=20, ra_ms=(1000, 2000), router_options={"A": {"session_file": str(path)}})
        w.attach_all()
        w.start_streams()
        w.run_for(500)
        a = w.routers["A"]
        assert a.agent.counters["sessions_save_failed"] >= 1 and a.agent.counters["sessions_saved"] == 0
        assert any("No space left" in e for e in a.errors), a.errors
        assert any(r.getMessage().startswith("sessions_save_failed") for r in caplog.records)
        w.trigger(w.mns[0])
        w.run_for(1_000)
        assert w.mns[0].attached_at == "B" and w.mns[0].machine.counters["handovers_completed"] == 1
        failed = a.agent.counters["sessions_save_failed"]
        assert failed >= 2  # the session that left with the handover: tried again, failed again
        (full_dir / "filler").unlink()
        w.trigger(w.mns[0])  # back to A: a change, written now
        w.run_for(1_000)
    assert w.mns[0].attached_at == "A"
    assert a.agent.counters["sessions_saved"] >= 1 and a.agent.counters["sessions_save_failed"] == failed
    saved = sorted(str(x[0]) for x in load_sessions(str(path)))
    assert saved == w.expected_sessions()["A"] == sorted(str(mn.addr["A"]) for mn in w.mns)
    w.stop_streams()
    w.run_for(SETTLE_MS)
    assert _leftovers(w) == {}


def test_a_full_disk_under_the_ah_sequence_file_sends_no_hi_and_the_mn_falls_back(full_dir, tmp_path):
    """The PAR cannot write its AH counter's next block: the HI is not sent (a counter that cannot be made to
    survive a restart is not used) -- counted, the retransmissions fail the same way, the handover fails
    (tunnel removed); the MN, already on the NAR's link, falls back to an initial attach there."""
    seq = tmp_path / "a.ah-seq.json"
    store = ah.SequenceStore(seq, block=1)
    w = World(1, rate_pps=20, ra_ms=(1000, 2000), router_options={"A": {"ah_store": store}})
    w.attach_all()
    w.start_streams()
    w.run_for(300)
    store.path = str(full_dir / "a.ah-seq.json")  # the state directory is now on the full disk
    a, mn = w.routers["A"], w.mns[0]
    w.trigger(mn)
    w.run_for(3_500)
    assert a.agent.counters["ah_protect_failed"] == 4 and a.agent.ah_counters["seq_not_persisted"] == 4
    assert a.ar.counters["handovers_failed"] == 1 and w.occupancy()["A"]["tunnel"] == 0
    assert w.routers["B"].ar.counters["received"] >= 1 and w.routers["B"].ar.counters["hi_admitted"] == 0
    assert mn.machine.counters["fallback_attach"] == 1 and mn.attached_at == "B"
    w.stop_streams()
    w.run_for(SETTLE_MS)
    assert w.routers["A"].ar.counters["sessions_released_unreachable"] == 1
    assert _leftovers(w) == {}


# ============================================================================================ the clock


def test_the_clock_stepped_forward_past_the_tickets_and_back_an_hour():
    """Eleven hours pass at once, mid-handover, past the ten-hour tickets: nothing raises, every timer that fell
    due runs, the routers drop the sessions whose tickets ended (no session outlives its ticket), the MNs
    attach afresh; then the clock goes back an hour: handovers still complete and leave nothing behind."""
    w = _world(3)
    mn = w.mns[0]
    w.trigger(mn)
    w.run_for(8)  # mid-handover: the HI is at the NAR
    w.step_clock(11 * 3600 * 1_000_000_000)
    w.run_for(6_000)
    for other in w.mns:
        other.retry()
    w.run_for(2_000)
    assert [m.attached_at for m in w.mns] == ["B", "A", "A"], [m.machine.state for m in w.mns]
    expired = sum(r.ar.counters["session_expired"] for r in w.routers.values())
    assert expired >= 2 and sum(m.machine.counters["session_expired"] for m in w.mns) >= 2
    now = w.sim.now
    for name, r in w.routers.items():
        outlived = [(str(a), s.expires_ns) for a, s in r.ar.sessions.items()
                    if s.expires_ns is None or s.expires_ns <= now]
        assert not outlived, (name, now, "sessions past their ticket's end", outlived)
    w.step_clock(-3600 * 1_000_000_000)
    w.run_for(500)
    for m in w.mns:
        w.trigger(m)
        w.run_for(300)
    assert [m.attached_at for m in w.mns] == ["A", "B", "B"]
    w.stop_streams()
    w.run_for(SETTLE_MS)
    assert _leftovers(w) == {}
    for r in w.routers.values():
        assert all(s.expires_ns is not None and s.expires_ns > w.sim.now for s in r.ar.sessions.values())
    _accounted(w)


def test_two_mns_authenticating_in_the_same_microsecond_both_attach():
    """Two MNs whose clocks agree to the microsecond attach at once (discrete clocks make that ordinary): the
    router's replay cache must tell their authenticators apart, not fail on them."""
    w = World(2, rate_pps=20, same_clock=True)
    w.attach_all()  # raises out of ApVerifier.verify if the replay cache cannot order its entries
    assert [mn.attached_at for mn in w.mns] == ["A", "A"]


# ============================================================================================ real daemons


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run([sys.executable, "-m", "fmipfast", "lab", *args], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def _until(fn, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_a_router_daemon_sigkilled_mid_handover_restarts_from_its_state_files(tmp_path):
    """The lab's daemons in namespaces: the NAR's engine is SIGKILLed while it handles a handover and started
    again on the same configuration (its session file and AH sequence file): the MN ends attached there (the
    handover, or its fallback attach).  Then it is SIGKILLed again with the MN attached and restarted: it takes
    the MN's session back from its file, and the MN's next handover -- whose Redirect only that session's key
    can sign -- completes."""
    if not ROOT:
        print("test_faults: not root, the SIGKILL test is skipped (network namespaces)", file=sys.stderr)
        pytest.skip("needs root for network namespaces")
    from fmipfast.control import ControlClient, ControlError
    from fmipfast.lab.namespaces import session, topology

    prefix = f"fmipfast-f{os.getpid()}-"
    state = tmp_path / "state"
    topology.cleanup(prefix)
    up = _cli("up", "--prefix", prefix, "--state", str(state), "--json")
    pids: list[int] = []
    try:
        assert up.returncode == 0, up.stderr
        rec = json.loads(up.stdout)
        addr, nar = rec["addresses"], rec["engines"]["nar"]
        par_ctl, mn_ctl = ControlClient(rec["engines"]["par"]["control"]), ControlClient(rec["mn"]["control"])
        sock = Path(nar["control"])

        def restart(pid: int, n: int) -> ControlClient:
            os.killpg(pid, signal.SIGKILL)
            lab = topology.LabTopology.attach(prefix, "A")
            try:
                if sock.exists():
                    sock.unlink()
                started = session._start(lab, state, f"nar{n}", "nar", [
                    sys.executable, "-m", "fmipfast", "router", "--config", nar["config"], "--control", str(sock)],
                    topology.child_env(), 30)
            finally:
                lab.detach()
            pids.append(started["pid"])
            return ControlClient(str(sock))

        def status() -> dict:
            try:
                return mn_ctl.call("status")
            except (ControlError, OSError):
                return {}

        par_ctl.call("handover", pcoa=addr["pcoa"], nar=addr["nar"], nar_principal="host/nar@B.EXAMPLE")
        time.sleep(0.02)  # the Redirect, the HRA, the HI on its way or being verified
        nar_ctl = restart(nar["pid"], 2)
        st = _until(lambda: (s := status()).get("state") == "attached" and s["router"] == addr["nar"] and s, 40)
        assert st, status()
        _until(lambda: [m["address"] for m in nar_ctl.call("mobile-nodes")] == [addr["ncoa"]], 10)
        time.sleep(0.5)  # the session file is written within 200 ms of a change
        nar_ctl = restart(pids[-1], 3)  # the MN attached there: its session must come back from the file
        assert [m["address"] for m in nar_ctl.call("mobile-nodes")] == [addr["ncoa"]]
        done = status()["counters"]["daemon"]["handovers_completed"]
        nar_ctl.call("handover", pcoa=addr["ncoa"], nar=addr["par"], nar_principal="host/par@A.EXAMPLE")
        back = _until(lambda: (s := status()).get("router") == addr["par"] and s["state"] == "attached" and s, 30)
        assert back and back["counters"]["daemon"]["handovers_completed"] == done + 1, status()
        counters = nar_ctl.call("counters")
        assert counters["conservation"]["holds"], counters["conservation"]
    finally:
        for pid in pids:
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        down = _cli("down", "--prefix", prefix, "--state", str(state), "--json")
        topology.cleanup(prefix)
    assert down.returncode == 0, down.stderr

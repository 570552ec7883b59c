"""``fmipfast lab up|status|down``: a lab that outlives the command, with two real engines, torn down whole.

Root only (namespaces, AF_PACKET); CI runs as root.  Each test uses a prefix with this process's id."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fmipfast.lab.namespaces import session, topology
from fmipfast.lab.namespaces.topology import LabError, LabTopology

ROOT = os.geteuid() == 0
pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not ROOT, reason="needs root for network namespaces (CI runs as root)")]
if not ROOT:
    print("test_lab_session: not root, the lab session tests are skipped", file=sys.stderr)

PREFIX = f"fmipfast-s{os.getpid()}-"


def _ours(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run([sys.executable, "-m", "fmipfast", "lab", *args], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def _up(prefix: str, state: str) -> subprocess.CompletedProcess:
    topology.cleanup(prefix)
    return _cli("up", "--prefix", prefix, "--state", state, "--json")


def _until_mn(ctl, done, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = ctl.call("status")
        if done(st) or time.monotonic() > deadline:
            return st
        time.sleep(0.1)


def test_up_status_down_through_the_cli(tmp_path):
    state = str(tmp_path / "state")
    up = _up(PREFIX, state)
    try:
        assert up.returncode == 0, up.stderr
        rec = json.loads(up.stdout)
        # the command has exited; the lab and both engines are still there
        assert sorted(_ours(PREFIX)) == sorted(rec["namespaces"].values())
        again = _cli("up", "--prefix", PREFIX, "--state", state)
        assert again.returncode == 1 and "lab down" in again.stderr
        ping = subprocess.run(["ip", "netns", "exec", rec["namespaces"]["cn"], "ping", "-6", "-c", "3", "-i",
                               "0.2", "-W", "2", rec["addresses"]["pcoa"]], capture_output=True, text=True)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        st = _cli("status", "--prefix", PREFIX, "--state", state, "--json")
        assert st.returncode == 0, st.stderr
        live = json.loads(st.stdout)
        assert len(live["namespaces_present"]) == 6
        for name in ("par", "nar"):
            eng = live["engines"][name]
            assert eng["alive"] and "error" not in eng, eng
        par = live["engines"]["par"]["counters"]
        assert par["counters"]["forwarded"] >= 3 and par["conservation"]["holds"], par
        from fmipfast.control import ControlClient, ControlError

        # the MN daemon attached to the PAR at `lab up`; a handover driven by hand through the PAR's control
        # socket: Redirect, HRA, the MN's switch command (`fmipfast lab move`) to link B, Attach at the NAR
        mn_ctl = ControlClient(rec["mn"]["control"])
        before = mn_ctl.call("status")
        assert (before["state"], before["router"], before["coa"]) == ("attached", rec["addresses"]["par"],
                                                                      rec["addresses"]["pcoa"])
        par_ctl = ControlClient(rec["engines"]["par"]["control"])
        assert [m["address"] for m in par_ctl.call("mobile-nodes")] == [rec["addresses"]["pcoa"]]
        with pytest.raises(ControlError, match="handover refused"):  # an MN without a session at this router
            par_ctl.call("handover", pcoa=rec["addresses"]["ncoa"], nar=rec["addresses"]["nar"],
                         nar_principal="host/nar@B.EXAMPLE")
        by_hand = subprocess.run([sys.executable, "-m", "fmipfast", "ctl", "--socket", rec["engines"]["par"]["control"],
                                  "handover", "--arg", f"pcoa={rec['addresses']['pcoa']}", "--arg",
                                  f"nar={rec['addresses']['nar']}", "--arg", "nar_principal=host/nar@B.EXAMPLE"],
                                 capture_output=True, text=True, timeout=60,
                                 env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)))
        assert by_hand.returncode == 0, by_hand.stderr
        after = _until_mn(mn_ctl, lambda st: st["router"] == rec["addresses"]["nar"]
                          and st["counters"]["daemon"]["pcoa_released"] == 1)
        assert (after["state"], after["router"], after["coa"]) == ("attached", rec["addresses"]["nar"],
                                                                   rec["addresses"]["ncoa"]), after
        assert after["counters"]["tickets"]["precached"] >= 1 and after["counters"]["tickets"]["as_exchanges"] == 1
        daemon = after["counters"]["daemon"]
        assert daemon["switch_commands"] == 1 and daemon["switch_failed"] == 0 and after["last_switch"]["ok"]
        assert daemon["handovers_completed"] == 1 and daemon["pcoa_released"] == 1 and after["retired"] == []
        # the BU left in the Attach, the NAR forwarded it, the CN's binding cache answered: the PCoA went after
        # the BAck, and the CN's binding moved to the NCoA
        assert daemon["back_received"] >= 1 and daemon["bu_unacknowledged"] == daemon["bu_sent"] == 0, daemon
        ping = subprocess.run(["ip", "netns", "exec", rec["namespaces"]["cn"], "ping", "-6", "-c", "3", "-i",
                               "0.2", "-W", "2", rec["addresses"]["ncoa"]], capture_output=True, text=True)
        assert ping.returncode == 0, ping.stdout + ping.stderr  # through the NAR engine now
        moved = json.loads(_cli("status", "--prefix", PREFIX, "--state", state, "--json").stdout)
        assert moved["mn_link"] == "B"
        assert moved["bcache"]["bindings"][-1]["coa"] == rec["addresses"]["ncoa"], moved["bcache"]
        bad = _cli("move", "--prefix", PREFIX, "--state", state, "--to", "C")
        assert bad.returncode == 1 and "is not a link" in bad.stderr
        human = _cli("status", "--prefix", PREFIX, "--state", state)
        assert "par (alive)" in human.stdout and "nar (alive)" in human.stdout
        assert f"mn (alive): attached at {rec['addresses']['nar']}" in human.stdout
        # and back to the PAR, triggered at the NAR, with the CN's binding cache paused: no BAck for the
        # Attach's BU, so the MN sends one of its own after 1 s (RFC 6275 §11.8); answered once it resumes
        os.kill(rec["bcache"]["pid"], signal.SIGSTOP)
        try:
            ControlClient(rec["engines"]["nar"]["control"]).call(
                "handover", pcoa=rec["addresses"]["ncoa"], nar=rec["addresses"]["par"],
                nar_principal="host/par@A.EXAMPLE")
            _until_mn(mn_ctl, lambda st: st["counters"]["daemon"]["bu_sent"] == 1)
        finally:
            os.kill(rec["bcache"]["pid"], signal.SIGCONT)
        back = _until_mn(mn_ctl, lambda st: st["counters"]["daemon"]["pcoa_released"] == 2)
        assert (back["router"], back["coa"]) == (rec["addresses"]["par"], rec["addresses"]["pcoa"]), back
        daemon = back["counters"]["daemon"]
        assert daemon["handovers_completed"] == 2 and daemon["bu_unacknowledged"] == 0, daemon
        bindings = json.loads(_cli("status", "--prefix", PREFIX, "--state", state, "--json").stdout)["bcache"]
        assert [b["coa"] for b in bindings["bindings"][-2:]] == [rec["addresses"]["pcoa"]] * 2  # both answered
        for name in ("par", "nar"):  # each router sent HIs/HEs under AH: its counter's block is written ahead
            seq = json.loads((Path(state) / f"{name}.ah-seq.json").read_text())
            assert list(seq["counters"].values()) == [1024], seq
        # the engines log JSON: every line an object; the PAR's handover A→B and the NAR's proxy are there
        for name, wanted in (("par", {"event": "ar:state", "role": "par", "new": "forwarding"}),
                             ("nar", {"event": "proxy_installed"})):
            lines = [ln for ln in (Path(state) / f"{name}.err").read_text().splitlines() if ln.strip()]
            docs = [json.loads(ln) for ln in lines]
            assert any(wanted.items() <= d.items() for d in docs), (name, docs[-5:])
        # the PAR keeps the MN's session (back at its PCoA) in its session file, for a restart
        sessions = json.loads((Path(state) / "par.sessions.json").read_text())["sessions"]
        assert rec["addresses"]["pcoa"] in [s["address"] for s in sessions], sessions
    finally:
        down = _cli("down", "--prefix", PREFIX, "--state", state, "--json")
    assert down.returncode == 0, down.stderr
    result = json.loads(down.stdout)
    assert sorted(result["namespaces_removed"]) == sorted(rec["namespaces"].values())
    for name in ("par", "nar"):  # SIGTERM let each engine write its final, conserving counters
        assert result["engines"][name]["conservation"]["holds"], result["engines"][name]
    assert result["engines"]["par"]["counters"]["forwarded"] >= 3
    assert _ours(PREFIX) == [] and not os.path.exists(state)
    assert result["engines"]["mn"]["router"] == rec["addresses"]["par"]  # the MN daemon's final status: back
    assert result["engines"]["bcache"]["bindings"] >= 4  # initial attach, A→B, and B→A twice
    # the MN's tickets came from the KDCs: one AS exchange at home; B's and A's service tickets from their own
    # realms' KDCs, with the cross-realm TGTs the RAs' adjacent realms had it precache
    kdc = {name: result["engines"][name] for name in ("kdc-home", "kdc-a", "kdc-b")}
    assert kdc["kdc-home"]["as_ok"] == 1 and kdc["kdc-b"]["tgs_ok"] >= 1 and kdc["kdc-a"]["tgs_ok"] >= 1, kdc
    pids = [e["pid"] for e in (*rec["engines"].values(), *rec["kdcs"].values(), rec["mn"], rec["bcache"])]
    assert len(pids) == 7
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    gone = _cli("status", "--prefix", PREFIX, "--state", state)
    assert gone.returncode == 1 and "no lab is recorded" in gone.stderr


def test_an_engine_that_fails_to_start_leaves_nothing(tmp_path, monkeypatch):
    """A configuration naming an interface that does not exist: the engine exits before READY, ``up`` raises
    with its error and removes the namespaces, the other engine and the state directory."""
    real = LabTopology.router_config

    def broken(self, which="par", **kw):
        text = real(self, which, **kw)
        return text.replace('"nar-acc"', '"nar-missing"') if which == "nar" else text

    monkeypatch.setattr(LabTopology, "router_config", broken)
    state = tmp_path / "state"
    with pytest.raises(LabError, match="nar daemon exited"):
        session.up(PREFIX, state, ready_timeout=30)
    assert _ours(PREFIX) == [] and not state.exists()


def test_down_cleans_a_crashed_lab_without_state(tmp_path):
    lab = LabTopology(prefix=PREFIX).up()
    sleeper = lab.spawn("mn", ["sleep", "600"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lab.detach()  # as if the process that built it had died
    assert len(_ours(PREFIX)) == 6
    result = session.down(PREFIX, tmp_path / "none")
    assert len(result["namespaces_removed"]) == 6 and result["engines"] == {}
    assert _ours(PREFIX) == []
    assert sleeper.wait(timeout=10) != 0  # killed with the namespace


SOAK_ROUNDS = int(os.environ.get("FMIPFAST_SOAK_ROUNDS", "2"))  # A→B→A round trips; CI runs this bounded soak


def test_a_soak_of_handovers_leaves_the_engines_as_they_started(tmp_path):
    """Round trips A→B→A through the real daemons (triggered on the control sockets, the MN daemon's switch
    command moving the link), each completed, the stream of pings reaching the MN where it is; once the
    lifetimes have run out, both engines hold nothing of the handovers -- no proxy, tunnel or hold entry, an
    empty buffer, no handover record -- the MN's one session is at the router it is on, and every frame is
    accounted for.  Longer soaks: FMIPFAST_SOAK_ROUNDS=N."""
    from fmipfast.control import ControlClient

    prefix = f"fmipfast-k{os.getpid()}-"
    state = str(tmp_path / "state")
    up = _up(prefix, state)
    try:
        assert up.returncode == 0, up.stderr
        rec = json.loads(up.stdout)
        addr = rec["addresses"]
        ctl = {n: ControlClient(rec["engines"][n]["control"]) for n in ("par", "nar")}
        mn = ControlClient(rec["mn"]["control"])
        where = {"par": (addr["par"], addr["pcoa"], "host/par@A.EXAMPLE"),
                 "nar": (addr["nar"], addr["ncoa"], "host/nar@B.EXAMPLE")}
        here, done = "par", 0
        for _ in range(2 * SOAK_ROUNDS):
            there = "nar" if here == "par" else "par"
            ctl[here].call("handover", pcoa=where[here][1], nar=where[there][0], nar_principal=where[there][2])
            done += 1
            st = _until_mn(mn, lambda s, d=done, r=where[there][0]: s["counters"]["daemon"]["handovers_completed"]
                           == d and s["router"] == r)
            assert (st["state"], st["router"], st["coa"]) == ("attached", where[there][0], where[there][1]), st
            ping = subprocess.run(["ip", "netns", "exec", rec["namespaces"]["cn"], "ping", "-6", "-c", "2", "-i",
                                   "0.2", "-W", "2", where[there][1]], capture_output=True, text=True)
            assert ping.returncode == 0, ping.stdout + ping.stderr
            here = there
        # key rotation without a restart: a new SPI and key for PAR -> NAR in both configurations, SIGHUP to both
        # engines; the next handover's HI travels under the new SA (the HE's SA is unchanged and kept)
        old_key, new_key = bytes(range(32)).hex(), bytes(range(100, 132)).hex()
        for name in ("par", "nar"):
            path = Path(state) / f"{name}.toml"
            text = path.read_text()
            assert text.count(old_key) == 1 and text.count("= 4097") == 1, text
            path.write_text(text.replace(old_key, new_key).replace("= 4097", "= 4099"))
            os.kill(rec["engines"][name]["pid"], signal.SIGHUP)
        for name, c in ctl.items():
            deadline = time.monotonic() + 10
            while "fmipfast_router_agent_total{" not in (m := c.call("metrics")) or \
                    'event="reloads"} 1' not in m:
                assert time.monotonic() < deadline, (name, [ln for ln in m.splitlines() if "reloads" in ln])
                time.sleep(0.1)
        there = "nar" if here == "par" else "par"
        ctl[here].call("handover", pcoa=where[here][1], nar=where[there][0], nar_principal=where[there][2])
        done += 1
        st = _until_mn(mn, lambda s, d=done: s["counters"]["daemon"]["handovers_completed"] == d)
        assert (st["state"], st["router"]) == ("attached", where[there][0]), st
        here = there
        deadline = time.monotonic() + 15  # the handovers' 3 s lifetimes and the 5 s answer caches run out
        while any(c.call("handovers") for c in ctl.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        for name, c in ctl.items():
            assert c.call("handovers") == [], name
            flags = [n for n in c.call("neighbors") if set(n["flags"]) & {"proxy", "tunnel", "hold"}]
            assert flags == [], (name, flags)
            counters = c.call("counters")
            assert counters["buffer"]["queued"] == 0 and counters["route_switch_holds"] == [], (name, counters)
            assert counters["conservation"]["holds"], (name, counters["conservation"])
            sessions = [m["address"] for m in c.call("mobile-nodes")]
            assert sessions == ([where[here][1]] if name == here else []), (name, sessions)
        daemon = mn.call("status")["counters"]["daemon"]
        assert daemon["handovers_completed"] == 2 * SOAK_ROUNDS + 1 and daemon["switch_failed"] == 0, daemon
    finally:
        down = _cli("down", "--prefix", prefix, "--state", state, "--json")
    assert down.returncode == 0, down.stderr
    assert _ours(prefix) == []

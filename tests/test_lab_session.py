"""``fmipfast lab up|status|down``: a lab that outlives the command, with two real engines, torn down whole.

Root only (namespaces, AF_PACKET); CI runs as root.  Each test uses a prefix with this process's id."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fmipfast.lab import session, topology
from fmipfast.lab.topology import LabError, LabTopology

ROOT = os.geteuid() == 0
pytestmark = pytest.mark.skipif(not ROOT, reason="needs root for network namespaces (CI runs as root)")
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


def test_up_status_down_through_the_cli(tmp_path):
    state = str(tmp_path / "state")
    topology.cleanup(PREFIX)
    up = _cli("up", "--prefix", PREFIX, "--state", state, "--json")
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

        # the handover protocol runs in the engines: it answers, and refuses a handover of an unknown MN
        par_ctl = ControlClient(rec["engines"]["par"]["control"])
        assert par_ctl.call("handovers") == [] and par_ctl.call("mobile-nodes") == []
        with pytest.raises(ControlError, match="handover refused"):
            par_ctl.call("handover", pcoa=rec["addresses"]["pcoa"], nar=rec["addresses"]["nar"],
                         nar_principal="host/nar@B.EXAMPLE")
        human = _cli("status", "--prefix", PREFIX, "--state", state)
        assert "par (alive)" in human.stdout and "nar (alive)" in human.stdout
    finally:
        down = _cli("down", "--prefix", PREFIX, "--state", state, "--json")
    assert down.returncode == 0, down.stderr
    result = json.loads(down.stdout)
    assert sorted(result["namespaces_removed"]) == sorted(rec["namespaces"].values())
    for name in ("par", "nar"):  # SIGTERM let each engine write its final, conserving counters
        assert result["engines"][name]["conservation"]["holds"], result["engines"][name]
    assert result["engines"]["par"]["counters"]["forwarded"] >= 3
    assert _ours(PREFIX) == [] and not os.path.exists(state)
    for pid in (e["pid"] for e in rec["engines"].values()):
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
    with pytest.raises(LabError, match="nar engine exited"):
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

"""``fmipfast lab run``: a fast handover over real namespaces, veth, bridges and two AF_PACKET engines.

Root only; CI runs as root.  Correctness only (speed lives in BENCHMARKS.md): with buffering the MN receives
every sequence number exactly once and in order, both engines conserve, the NAR buffered and flushed, the
signalling ran in the draft's order, and nothing is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from ipaddress import IPv6Address

import pytest

from fmipfast import config
from fmipfast.lab.namespaces import run as labrun

ROOT = os.geteuid() == 0
pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not ROOT, reason="needs root for network namespaces (CI runs as root)")]
if not ROOT:
    print("test_lab_run: not root, the real-link handover tests are skipped", file=sys.stderr)

PREFIX = f"fmipfast-r{os.getpid()}-"


def _ours() -> list[str]:
    return _ours_of(PREFIX)


def test_a_fast_handover_at_1000_pps_loses_nothing_and_keeps_order(tmp_path):
    # the link layer reacts 10 ms after ReadyToSwitch: datagrams the PAR put on the old link just before it
    # processed the HRA drain first (at 0 ms they may be lost, by design: BENCHMARKS.md measures that case)
    cap = tmp_path / "access.pcapng"
    m = labrun.run(labrun.RunOptions(rate=1000, gap_ms=30.0, prefix=PREFIX, switch_delay_ms=10.0,
                                     capture=str(cap)))
    assert _ours() == []  # torn down
    assert m["sent"] == 2200 and (m["received"], m["lost"], m["duplicated"]) == (2200, 0, 0), m
    # in order through the flush and across the route switch: the CN's first datagrams to the NCoA (direct
    # path) waited at the NAR until the PAR's tunnel had drained
    assert m["reordered"] == 0, m
    assert m["held_at_route_switch"] > 0 and m["buffered"] > 0 and m["flushed"] == m["buffered"]
    # each event's first instant after the trigger: the MN retransmits an Attach that no Authenticated-MN answered
    # within its timer (the pure-Python kernels on a loaded machine can take that long), and the CN follows the
    # first one's BU
    trigger = next(at for what, at in m["timeline_ms"] if what == "trigger")
    events: dict[str, float] = {}
    for what, at in m["timeline_ms"]:
        if at >= trigger:
            events.setdefault(what.split(" to ")[0], at)
    # the BU travels in the Attach (a Mobility Header the NAR forwards); the CN follows it and acknowledges
    assert events["mn send Attach"] <= events["cn follows the BU"] <= events["mn recv BAck"]
    assert events["cn follows the BU"] - events["mn send Attach"] < 500  # that BU, not a retry 1 s later
    assert events["mn recv BAck"] < events["mn released the PCoA"]  # kept until the BU completed
    # the interruption spans at least the layer-2 gap; the stream came back on the new link
    assert m["interruption_ms"] is not None and m["interruption_ms"] >= 30.0
    assert m["link_up_to_first_packet_ms"] is not None and m["link_up_to_first_packet_ms"] >= 0
    for name in ("par", "nar"):
        assert m["engines"][name]["conservation"]["holds"], m["engines"][name]
    par, nar = m["engines"]["par"]["counters"], m["engines"]["nar"]["counters"]
    assert par["tunnelled"] > 0 and nar["decapsulated"] > 0  # PCoA traffic crossed the PAR->NAR tunnel
    assert nar["buffered"] > 0 and nar["flushed"] == nar["buffered"]  # held during the gap, all delivered
    events = [what for what, _ in m["timeline_ms"]]
    order = ["mn send Attach to", "attached_par", "trigger", "mn recv HandoverRedirect", "mn send HandoverRedirectAck",
             "ready_to_switch", "layer 2: port up on brB", "mn recv AuthenticatedMN from fe80", "attached_nar"]
    at = [next(i for i, e in enumerate(events) if e.startswith(o)) for o in order]
    assert at == sorted(at), events
    assert m["mn_counters"].get("pcoa_kept") == 1 and m["lost_ranges"] == []
    for bad in ("tx_errors", "netlink_errors", "callback_errors", "ticket_errors"):
        assert m["mn_counters"].get(bad, 0) == 0, m["mn_counters"]
    _check_capture(cap)
    _check_attach_sources(cap)


def _check_attach_sources(cap) -> None:
    """The MN's handover Attach, sent right after the NCoA is configured in the same event: on the wire it
    comes from the NCoA -- a global address of the NAR's prefix, not the PCoA of the initial Attach -- to the
    NAR's link-local address, and the NAR accepted it (the run's AuthenticatedMN from fe80 above)."""
    rows = subprocess.run(["tshark", "-n", "-r", str(cap), "-Y", "icmpv6.type == 200 && icmpv6.code == 5", "-T",
                           "fields", "-e", "ipv6.src", "-e", "ipv6.dst"],
                          capture_output=True, text=True, timeout=120, check=True)
    attaches = [tuple(map(IPv6Address, line.split("\t"))) for line in rows.stdout.strip().splitlines()]
    initial = [src for src, dst in attaches if not dst.is_link_local]
    handover = [src for src, dst in attaches if dst.is_link_local]
    assert initial and handover, attaches
    assert all(not s.is_link_local and s not in initial and s.packed[8:] == initial[0].packed[8:]
               for s in handover), attaches


def _check_capture(cap) -> None:
    """The access links' capture: tshark validates every ICMPv6 checksum and sees the six messages between the
    MN and its routers (Attach, AMN at the PAR; Redirect, HRA; Attach, AMN at the NAR); our decoder agrees."""
    rows = subprocess.run(["tshark", "-n", "-r", str(cap), "-Y", "icmpv6", "-T", "fields", "-e", "icmpv6.type",
                           "-e", "icmpv6.checksum.status"], capture_output=True, text=True, timeout=120, check=True)
    fields = [line.split("\t") for line in rows.stdout.strip().splitlines()]
    assert fields and all(f[1] == "1" for f in fields), [f for f in fields if f[1] != "1"]
    fmip = [f for f in fields if int(f[0]) == 200]  # the default codepoints' type (docs/design.md §2)
    assert len(fmip) >= 6, fields
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run([sys.executable, "-m", "fmipfast", "decode", "--strict", "--only-fmipfast", str(cap)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    assert ", 0 bad checksum, 0 malformed" in done.stdout


def test_the_cli_reports_json_with_the_demo_keys(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    png = tmp_path / "run.png"
    done = subprocess.run([sys.executable, "-m", "fmipfast", "lab", "run", "--json", "--prefix", PREFIX,
                           "--gap-ms", "20", "--switch-priority", "11", "--plot", str(png)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    m = json.loads(done.stdout)
    # the run says how it was set up: the switch realtime where this host allows it (root here: it does)
    assert m["setup"]["switch_priority"] == (11 if labrun.realtime_allowed(11) else 0), m["setup"]
    assert m["setup"]["ring_mode"] == "blocks" and m["setup"]["switch_delay_ms"] == 0
    assert m["beyond_gap_ms"] == round(m["interruption_ms"] - 20, 3)
    assert m["source_pause_ms"] is not None and m["source_pause_ms"] >= 0
    assert m["beyond_gap_less_source_pause_ms"] == round(m["beyond_gap_ms"] - m["source_pause_ms"], 3)
    demo_keys = {"sent", "received", "lost", "duplicated", "reordered", "interruption_ms",
                 "link_up_to_first_packet_ms", "buffered", "flushed", "held_at_route_switch"}
    assert demo_keys <= set(m) and m["duplicated"] == 0 and m["received"] + m["lost"] == m["sent"]
    assert m["lost"] == sum(r["last"] - r["first"] + 1 for r in m["lost_ranges"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _ours() == []
    bad = subprocess.run([sys.executable, "-m", "fmipfast", "lab", "run", "--repeat", "0"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "--repeat" in bad.stderr
    for flag, value in (("--rate", "0"), ("--gap-ms", "-1"), ("--switch-delay-ms", "20000"),
                        ("--switch-priority", "100")):
        bad = subprocess.run([sys.executable, "-m", "fmipfast", "lab", "run", flag, value], capture_output=True,
                             text=True, env=env, timeout=60)
        assert bad.returncode == 2 and f"argument {flag}: must be within" in bad.stderr, bad.stderr
    assert _ours() == []  # refused before anything was built


def test_run_options_name_the_bad_field():
    for kw, named in ((dict(rate=0), "rate"), (dict(rate=labrun.traffic.MAX_RATE + 1), "rate"),
                      (dict(mode="plain"), "mode"), (dict(case=4), "case"), (dict(tail_ms=-1), "tail_ms"),
                      (dict(router_priority=100), "router_priority"), (dict(router_priority=-1), "router_priority"),
                      (dict(ring_mode="v2"), "ring_mode"), (dict(source_priority=-2), "source_priority"),
                      (dict(source_priority=100), "source_priority")):
        with pytest.raises(ValueError, match=named):
            labrun.RunOptions(**kw)


def test_the_source_pause_is_the_senders_own_where_the_stream_broke():
    ms = 1_000_000
    # (seq, recv_ns, ifindex, sent_ns): 0..2 on the old link, sent 50 us apart; 3 sent 1.4 ms after 2, arrived
    # after link up (at 100 ms)
    recs = [[0, 10 * ms, 7, 9 * ms], [1, 10 * ms + 50_000, 7, 9 * ms + 50_000], [2, 11 * ms, 7, 9 * ms + 100_000],
            [3, 140 * ms, 7, 9 * ms + 1_500_000], [4, 140 * ms + 10, 7, 9 * ms + 1_550_000]]
    assert labrun._source_pause(recs, 100 * ms, 20_000) == 1.35
    assert labrun._source_pause(recs, 100 * ms, 500) == 0.0  # 1.4 ms apart is on schedule at 500/s (2 ms)
    assert labrun._source_pause(recs, None, 20_000) is None
    assert labrun._source_pause(recs, 1 * ms, 20_000) is None  # nothing before link up
    assert labrun._source_pause(recs[:3], 100 * ms, 20_000) is None  # the next datagram never came
    assert labrun._source_pause([r[:2] for r in recs], 100 * ms, 20_000) is None  # records without send times


def test_the_sender_runs_realtime_sleeping_to_each_slot():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    cmd = [sys.executable, "-m", "fmipfast.lab.namespaces.traffic", "send", "--to", "::1", "--port", "9",
           "--rate", "2000", "--count", "200"]
    if os.geteuid() == 0:
        done = subprocess.run([*cmd, "--realtime", "5"], capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert out["sent"] == 200 and out["errors"] == {}
        # 200 slots at 2 000/s: paced (never ahead of the schedule), not stuck
        assert 99_000_000 <= out["last_ns"] - out["first_ns"] < 1_000_000_000
    else:
        print("not root: the realtime sender is not tried (no CAP_SYS_NICE)")
    bad = subprocess.run([*cmd, "--realtime", "100"], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "--realtime: need a priority of 1-99" in bad.stderr


def test_the_lab_asks_for_realtime_only_where_allowed(monkeypatch):
    """The routers' [router.scheduling] table and the MN agent's thread: FIFO at the options' priority when this
    host lets a process take it, nothing at all otherwise or at 0."""
    monkeypatch.setattr(labrun, "realtime_allowed", lambda priority: False)
    assert labrun._scheduling(10) == ""
    with labrun._realtime_here(10):
        assert os.sched_getscheduler(0) != os.SCHED_FIFO
    monkeypatch.setattr(labrun, "realtime_allowed", lambda priority: True)
    assert labrun._scheduling(0) == ""
    with labrun._realtime_here(0):
        assert os.sched_getscheduler(0) != os.SCHED_FIFO
    table = config.loads("[router]\n" + labrun._scheduling(7)).router.scheduling
    assert (table.policy, table.priority) == ("fifo", 7)


def test_the_baseline_loses_the_stream_until_dad_and_the_bu_complete():
    """Plain Mobile IPv6 on the same links: the kernel forms the NCoA from the NAR's RA, DAD holds it for
    about a second, then the BU moves the CN's stream; everything sent in between is lost, nothing else."""
    m = labrun.run(labrun.RunOptions(rate=1000, gap_ms=30.0, prefix=PREFIX, mode="baseline"))
    assert _ours() == [] and m["mode"] == "baseline"
    events = dict((what.split(" to ")[0], at) for what, at in m["timeline_ms"])
    formed = events["mn kernel: NCoA formed from the NAR's RA (tentative, DAD)"]
    usable = events["mn kernel: DAD done, NCoA usable"]
    follows = events["cn follows the BU"]
    assert events["layer 2: port up on brB"] < formed < usable < follows < events["mn recv BAck"]
    assert usable - formed >= 500  # DAD waited (RetransTimer 1 s after a random delay): not skipped
    # one run of losses, from the move until the CN followed the BU; none before, none after
    assert len(m["lost_ranges"]) == 1 and m["lost"] > 500, m["lost_ranges"]
    gap = m["lost_ranges"][0]
    # it starts with what was in flight when the link went down (the engines' latency: a few ms compiled, more
    # with the pure-Python kernels) and ends with what the CN sent before it followed the BU
    down = events["layer 2: port down acknowledged (leaves brA)"]
    assert down - 50 <= gap["sent_ms"] <= usable
    assert usable <= gap["sent_ms"] + (gap["last"] - gap["first"] + 1) <= follows + 50  # 1 datagram per ms
    assert m["received"] + m["lost"] == m["sent"] and m["duplicated"] == 0
    assert m["interruption_ms"] > usable - events["layer 2: port up on brB"]
    for name in ("par", "nar"):
        assert m["engines"][name]["conservation"]["holds"], m["engines"][name]
    assert m["engines"]["nar"]["counters"]["buffered"] == 0  # no fast handover, no buffering


def test_link_reversal_stops_the_pars_forwarding_and_the_stream_resumes_on_link_a():
    """Draft Appendix A: at ReadyToSwitch the MN's port goes down and comes back on link A.  The MN sends
    ForwardingDisable; the PAR stops tunnelling and delivers on link A again.  What it tunnelled to the NAR
    during the gap stays in the NAR's buffer (no Attach there): those datagrams are lost.  So, by design, are
    any the PAR put on link A after the port went down and before it had the HRA's tunnel in place -- the link
    layer reacts 10 ms after ReadyToSwitch, as in the forward run, so that is none unless the PAR is
    descheduled that long (a pure-Python engine on a loaded CI machine once was: 38 lost, 34 buffered)."""
    m = labrun.run(labrun.RunOptions(rate=1000, gap_ms=30.0, prefix=PREFIX, reverse=True, switch_delay_ms=10.0))
    assert _ours() == []
    events = [what for what, _ in m["timeline_ms"]]
    order = ["mn send HandoverRedirectAck", "layer 2: port up on brA", "mn send ForwardingDisable", "back_at_par"]
    at = [next(i for i, e in enumerate(events) if e.startswith(o)) for o in order]
    assert at == sorted(at), events
    assert not any(e.startswith("mn recv AuthenticatedMN from fe80") for e in events)  # never attached at the NAR
    par, nar = m["engines"]["par"]["counters"], m["engines"]["nar"]["counters"]
    assert par["tunnelled"] == nar["decapsulated"] == nar["buffered"] > 0 and nar.get("flushed", 0) == 0
    assert m["duplicated"] == 0 and m["reordered"] == 0
    # one run of losses: what the PAR put on the dead link A (if anything) right before what it tunnelled,
    # nothing lost before the handover began, and the stream resumed on link A after the ForwardingDisable
    assert len(m["lost_ranges"]) == 1 and m["lost_ranges"][0]["last"] < m["sent"] - 1, m["lost_ranges"]
    assert m["lost"] >= nar["buffered"], (m["lost"], nar["buffered"])
    trigger = next(at for what, at in m["timeline_ms"] if what == "trigger")
    assert m["lost_ranges"][0]["sent_ms"] >= trigger - 50, (m["lost_ranges"], trigger)  # 50 ms: CN -> PAR transit
    for name in ("par", "nar"):
        assert m["engines"][name]["conservation"]["holds"], m["engines"][name]


def test_case_2_with_the_kdc_as_a_separate_process():
    """Key case 2 (draft §3): the MN's AP-REQ is for access/B.EXAMPLE, whose key only KDC-B holds; the NAR
    engine has the KDC (``fmipfast kdc`` in its namespace) open the ticket, then accepts the MN."""
    m = labrun.run(labrun.RunOptions(rate=1000, gap_ms=30.0, prefix=PREFIX, case=2, switch_delay_ms=10.0))
    assert _ours() == [] and m["case"] == 2
    assert m["kdc"].get("open_ok") == 1 and m["kdc"].get("errors", 0) == 0, m["kdc"]
    assert (m["received"], m["lost"], m["duplicated"]) == (m["sent"], 0, 0), m
    assert any(what.startswith("mn recv AuthenticatedMN from fe80") for what, _ in m["timeline_ms"])
    for name in ("par", "nar"):
        assert m["engines"][name]["conservation"]["holds"], m["engines"][name]


def test_case_3_with_the_home_kdc_behind_the_local_one():
    """Key case 3 (draft §3): the MN's AP-REQ is for access/HOME.EXAMPLE, whose key only the MN's home KDC
    holds; the NAR asks KDC-B, which forwards the OPEN-REQ to the home KDC (both separate processes) with the
    inter-realm key, and the MN is accepted with nothing lost."""
    m = labrun.run(labrun.RunOptions(rate=1000, gap_ms=30.0, prefix=PREFIX, case=3, switch_delay_ms=10.0))
    assert _ours() == [] and m["case"] == 3
    assert m["kdc"].get("open_forwarded") == 1 and m["kdc"].get("open_ok", 0) == 0, m["kdc"]
    assert m["kdc_home"].get("open_ok") == 1 and m["kdc_home"].get("errors", 0) == 0, m["kdc_home"]
    assert (m["received"], m["lost"], m["duplicated"], m["reordered"]) == (m["sent"], 0, 0, 0), m
    assert any(what.startswith("mn recv AuthenticatedMN from fe80") for what, _ in m["timeline_ms"])
    for name in ("par", "nar"):
        assert m["engines"][name]["conservation"]["holds"], m["engines"][name]


def _lab_pids(prefix: str) -> list[int]:
    pids = []
    for ns in _ours_of(prefix):
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
        pids += [int(p) for p in out.split() if p.isdigit()]
    return pids


def _ours_of(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_leaves_no_namespace_link_or_process(signum):
    prefix = f"fmipfast-i{os.getpid()}-"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.Popen([sys.executable, "-m", "fmipfast", "lab", "run", "--prefix", prefix],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        pids: list[int] = []
        while time.monotonic() < deadline:  # mid-run: both engines and the traffic processes are up
            pids = _lab_pids(prefix)
            if len(pids) >= 4:
                break
            time.sleep(0.05)
        assert len(pids) >= 4, (pids, proc.poll())
        time.sleep(0.3)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, err
    assert _ours_of(prefix) == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert "par-acc" not in links and "air-mn" not in links  # nothing leaked into the host namespace

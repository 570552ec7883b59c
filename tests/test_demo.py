"""``fmipfast demo``: the secure fast handover end to end on the simulated topology, measured — and plain
Mobile IPv6 measured the same way (the draft's Figures 2 and 3 with numbers)."""

from __future__ import annotations

import json
import subprocess

import pytest

from fmipfast.cli import main
from fmipfast.lab.simulated.demo import Scenario, run_scenario
from tests.tools import external_tool

KEYS = ("sent", "received", "lost", "duplicated", "reordered", "interruption_ms", "steps")
RATE = 250  # datagrams/s: enough to see every effect, light enough for the pure-Python engine in CI
SENT = int(Scenario().stream_ms * RATE / 1000)


@pytest.fixture(scope="module")
def runs():
    return {mode: run_scenario(Scenario(mode=mode, rate_pps=RATE)) for mode in ("fast", "baseline")}


@pytest.fixture(scope="module")
def both(runs):
    return {mode: result for mode, (result, _world) in runs.items()}


@pytest.fixture(scope="module")
def fast_world(runs):
    return runs["fast"][1]


def _paths(world) -> tuple[list[int], list[int]]:
    """Sequence numbers in arrival order: those the CN sent before its binding moved (they reach the MN
    through the PAR's tunnel and the NAR's buffer), and those sent after (the direct path)."""
    switch = world.marks["bu_at_cn"]
    sent_at = dict(world.sent)
    before = [s for s, _, _ in world.arrivals if sent_at[s] < switch]
    after = [s for s, _, _ in world.arrivals if sent_at[s] >= switch]
    return before, after


def test_fast_handover_with_buffering_loses_nothing_and_keeps_order(both, fast_world):
    r = both["fast"]
    assert r.sent == SENT and r.received == r.sent and r.lost == 0
    assert r.duplicated == 0
    # exactly once and in order, across the flush and across the route switch
    assert [s for s, _, _ in fast_world.arrivals] == list(range(SENT)) and r.reordered == 0
    assert r.buffered > 0 and r.flushed == r.buffered
    assert r.held_at_route_switch > 0 and r.steps["bu_at_cn"] < r.steps["route_switch_released"]
    for key in ("par_conservation", "nar_conservation"):
        assert r.counters[key]["holds"], r.counters[key]
    steps = r.steps
    assert steps["trigger"] == 0 and steps["link_down"] < steps["link_up"] < steps["flushed"]
    assert steps["proxy_installed"] < steps["link_up"]


def test_the_nar_times_how_long_it_buffered_for_the_mn(fast_world):
    """The NAR's ``fmipfast_handover_buffering_seconds``: one handover, from its proxy entry to the flush."""
    from prometheus_client.parser import text_string_to_metric_families

    from fmipfast.routerd import router_control

    par, nar = fast_world.drivers
    assert nar.buffering.count == 1 and par.buffering.count == 0
    expected = (fast_world.marks["flushed"] - fast_world.marks["proxy_installed"]) / 1e9
    assert 0.02 < expected < 0.2 and nar.buffering.sum == pytest.approx(expected)
    text = router_control(fast_world.nar, nar).metrics("nar")
    samples = {(s.name, s.labels.get("le")): s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("fmipfast_handover_buffering_seconds_count", None)] == 1
    assert samples[("fmipfast_handover_buffering_seconds_bucket", "0.005")] == 0
    assert samples[("fmipfast_handover_buffering_seconds_bucket", "+Inf")] == 1


def test_baseline_loses_packets_during_ra_wait_and_dad(both):
    r = both["baseline"]
    assert r.lost > 0 and r.steps["dad_done"] - r.steps["dad_start"] == pytest.approx(1000.0)
    assert r.interruption_ms > 1000


def test_fast_interruption_is_at_least_ten_times_shorter(both):
    assert both["baseline"].interruption_ms >= 10 * both["fast"].interruption_ms


@pytest.mark.parametrize("case", [2, 3])
def test_kerberos_key_cases_2_and_3(case):
    r, w = run_scenario(Scenario(mode="fast", case=case, rate_pps=RATE))
    assert r.lost == 0 and r.duplicated == 0 and [s for s, _, _ in w.arrivals] == list(range(SENT))
    wait = r.steps["nar_verified"] - r.steps["nar_verify_start"]
    assert wait > 5.0  # a KDC round trip (case 2), and the home KDC's too (case 3)


def test_runs_are_deterministic_and_the_seed_matters():
    a = run_scenario(Scenario(seed=3, rate_pps=RATE))[0].to_json()
    b = run_scenario(Scenario(seed=3, rate_pps=RATE))[0].to_json()
    c = run_scenario(Scenario(seed=4, rate_pps=RATE))[0].to_json()
    assert a == b and a["timeline"] != c["timeline"]


def test_without_the_route_switch_hold_direct_packets_overtake_tunnelled_ones():
    """What the NAR's hold prevents: at 1000/s the CN's first packets to the NCoA take the direct path and
    overtake the last ones it sent to the PCoA (the tunnel path is a hop longer); each path stays in order."""
    sc = dict(rate_pps=1000, stream_ms=800.0, end_ms=1400.0)
    r, world = run_scenario(Scenario(reorder_hold_ms=0, **sc))
    before, after = _paths(world)
    assert r.lost == 0 and r.reordered > 0 and r.held_at_route_switch == 0
    assert before == sorted(before) and after == sorted(after)
    r, world = run_scenario(Scenario(**sc))
    assert r.lost == 0 and r.reordered == 0 and r.held_at_route_switch > 0


def test_without_buffering_packets_are_lost():
    r, _ = run_scenario(Scenario(buffer=False, rate_pps=RATE))
    assert r.lost > 0 and r.buffered == 0


def test_cli_json_and_text(capsys):
    assert main(["demo", "--json", "--baseline", "--rate", str(RATE)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"fast", "baseline"}
    for mode in out.values():
        assert set(KEYS) <= set(mode)
    assert main(["demo", "--rate", str(RATE)]) == 0
    text = capsys.readouterr().out
    for line in ("1. Handover Redirect", "2. Handover Redirect Ack", "3. ICMP Handover (under AH)",
                 "4. Authenticated-MN", "5. Attach (with the BU)", "layer-3 interruption"):
        assert line in text


def test_capture_is_readable_by_decode_and_tshark(tmp_path, capsys):
    cap = tmp_path / "demo.pcap"
    assert main(["demo", "--capture", str(cap), "--rate", str(RATE)]) == 0
    capsys.readouterr()
    assert main(["decode", "--json", "--only-fmipfast", str(cap)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    names = [r["message"] for r in rows if r["message"]]
    for name in ("HandoverRedirect", "HandoverRedirectAck", "IcmpHandover", "Attach", "AuthenticatedMN"):
        assert name in names
    assert all(r["checksum_ok"] for r in rows if r["message"])
    tshark = external_tool("tshark")
    out = subprocess.run([tshark, "-n", "-r", str(cap), "-Y", "icmpv6.type == 200", "-T", "fields", "-e",
                          "icmpv6.checksum.status"], capture_output=True, text=True, check=True, timeout=120).stdout
    statuses = out.split()
    assert statuses and set(statuses) == {"1"}


def test_plot_is_written(tmp_path, capsys):
    png = tmp_path / "demo.png"
    assert main(["demo", "--baseline", "--rate", str(RATE), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_the_handover_is_triggered_through_the_control_api():
    r, w = run_scenario(Scenario(rate_pps=RATE))
    assert w.trigger_result["identifier"] is not None
    listed = w.control.dispatch("handovers", {})
    assert listed and listed[0]["role"] == "par" and listed[0]["state"] == "forwarding"
    assert w.control.dispatch("mobile-nodes", {})
    from fmipfast.control import ControlError

    with pytest.raises(ControlError, match="handover"):
        w.control.dispatch("handover", {"pcoa": "2001:db8:1::99", "nar": "2001:db8:2::1"})  # unknown MN
    with pytest.raises(ControlError):
        w.control.dispatch("handover", {"pcoa": "not-an-address", "nar": "2001:db8:2::1"})

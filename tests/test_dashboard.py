"""contrib/grafana/fmipfast.json: every PromQL expression of the dashboard parses (Prometheus's own grammar, through
promql-parser), and every metric it reads -- and every label value it selects -- is one the daemons export.  The
exported names come from the real exporters: a router's control API with the handover protocol attached (as
``fmipfast router`` builds it), a KDC daemon's ``--metrics`` endpoint scraped over HTTP, and an MN daemon on a
real interface (root)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import promql_parser
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fmipfast.routerd import router_control
from tests.test_sdnotify import REPO, _kdc_config

DASHBOARD = Path(__file__).resolve().parent.parent / "contrib" / "grafana" / "fmipfast.json"
ROOT = os.geteuid() == 0
#: Grafana's built-in interval variables -> a duration PromQL takes; any other $variable -> a regex matching all
_INTERVALS = re.compile(r"\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}")
_VARIABLE = re.compile(r"\$\{?\w+\}?")

Exported = dict[str, dict[str, set[str]]]  # sample name -> label -> values


def _panels(panels: list[dict]) -> list[dict]:
    out = []
    for p in panels:
        out.append(p)
        out += _panels(p.get("panels", []))
    return out


def _expressions() -> list[tuple[str, str]]:
    """(where, expr) of every query: the panels' targets and the templating queries' metric selectors."""
    doc = json.loads(DASHBOARD.read_text())
    found = [(f"panel {p['title']!r}", t["expr"]) for p in _panels(doc["panels"]) for t in p.get("targets", [])]
    for var in doc["templating"]["list"]:
        if var["type"] != "query":
            continue
        q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", q)
        assert m, f"variable {var['name']}: {q!r} is not label_values(SELECTOR, LABEL)"
        found.append((f"variable {var['name']!r}", m.group(1)))
    return found


def _substituted(expr: str) -> str:
    return _VARIABLE.sub(".*", _INTERVALS.sub("5m", expr))


def _selectors(node: object) -> list[object]:
    """Every VectorSelector in a parsed expression."""
    if isinstance(node, promql_parser.VectorSelector):
        return [node]
    out: list[object] = []
    for attr in ("lhs", "rhs", "expr", "param", "vector_selector"):
        child = getattr(node, attr, None)
        if child is not None:
            out += _selectors(child)
    for arg in getattr(node, "args", None) or []:
        out += _selectors(arg)
    return out


def _exported(text: str, into: Exported) -> None:
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            labels = into.setdefault(s.name, {})
            for k, v in s.labels.items():
                labels.setdefault(k, set()).add(v)


def _router_metrics(into: Exported) -> None:
    from fmipfast.security.kdc import KdcClient
    from tests.test_router import _world

    engine, agent, _peer, _key = _world()
    agent.verifier.opener = KdcClient(("127.0.0.1", 9))  # key cases 2 and 3: the round trips are exported
    _exported(router_control(engine, agent).metrics("par"), into)


def _kdc_metrics(tmp_path: Path, into: Exported) -> None:
    """``fmipfast kdc --metrics`` scraped over HTTP, after one request so every request-type series exists."""
    import socket

    with socket.socket() as s:  # a free port for the endpoint
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.Popen([sys.executable, "-m", "fmipfast", "kdc", "--config", str(_kdc_config(tmp_path)),
                             "--metrics", f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=REPO)
    try:
        line = proc.stdout.readline().split()
        assert line[:1] == ["READY"], proc.stderr.read() if proc.poll() is not None else line
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.settimeout(5)
            probe.sendto(b"\x0a", ("127.0.0.1", int(line[2])))  # an AS-REQ too short to decode: an error reply
            probe.recv(2048)
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert 'fmipfast_kdc_request_duration_seconds_count{realm="A.EXAMPLE",type="as_req"} 1' in text, text
        _exported(text, into)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def _mn_metrics(tmp_path: Path, into: Exported) -> None:
    from fmipfast.config import MnConfig
    from fmipfast.mnd import MnDaemon
    from fmipfast.security.ccache import save_credentials
    from tests.test_mnagent import AR_A, P_A, PCOA_A, Lab

    lab = Lab()
    try:
        ccache = tmp_path / "mn.ccache"
        save_credentials(ccache, [])
        with lab.mn.enter():
            daemon = MnDaemon(MnConfig("mn0", str(AR_A), str(P_A), str(PCOA_A), str(ccache)))
        try:
            _exported(daemon.metrics(), into)
        finally:
            daemon.close()
    finally:
        lab.close()


def test_every_expression_parses_and_selects_something():
    exprs = _expressions()
    assert len(exprs) >= 15
    for where, expr in exprs:
        try:
            ast = promql_parser.parse(_substituted(expr))
        except ValueError as exc:  # the parser's error names the position
            raise AssertionError(f"{where}: {expr!r} does not parse: {exc}") from None
        assert _selectors(ast), f"{where}: {expr!r} reads no metric"


def test_a_wrong_expression_or_name_would_be_caught():
    """What makes the check able to fail: a syntax error, and a selector the walk finds by name."""
    with pytest.raises(ValueError):
        promql_parser.parse("sum by (le (rate(x[5m]))")
    names = [s.name for s in _selectors(promql_parser.parse(_substituted(
        'histogram_quantile(0.9, sum by (le) (rate(a_bucket{x=~"$router"}[$__rate_interval]))) / on() b + -c')))]
    assert sorted(names) == ["a_bucket", "b", "c"]


@pytest.mark.skipif(not ROOT, reason="needs root for the MN daemon's raw sockets and netlink (CI runs as root)")
def test_every_metric_and_label_value_the_dashboard_reads_is_exported(tmp_path):
    exported: Exported = {}
    _router_metrics(exported)
    _kdc_metrics(tmp_path, exported)
    _mn_metrics(tmp_path, exported)
    assert {"fmipfast_engine_drops_total", "fmipfast_kdc_requests_total", "fmipfast_mn_attached"} <= set(exported)
    problems = []
    used = set()
    for where, expr in _expressions():
        for sel in _selectors(promql_parser.parse(_substituted(expr))):
            name = sel.name
            used.add(name)
            if name not in exported:
                problems.append(f"{where}: {name} is not exported by any daemon")
                continue
            for m in sel.matchers.matchers:
                if m.name == "__name__" or _VARIABLE.search(expr) and m.value == ".*":
                    continue
                values = exported[name].get(m.name)
                if values is None:
                    problems.append(f"{where}: {name} has no label {m.name!r}")
                elif str(m.op) == "MatchOp.Equal" and m.value not in values:
                    problems.append(f"{where}: {name}{{{m.name}={m.value!r}}} is never exported "
                                    f"(values: {sorted(values)[:8]}...)")
                elif str(m.op) == "MatchOp.Re":
                    for alt in m.value.split("|"):
                        if not any(re.fullmatch(alt, v) for v in values):
                            problems.append(f"{where}: {name}{{{m.name}=~...{alt!r}...}} matches no exported value")
    assert not problems, "\n".join(problems)
    # the panels the dashboard promises
    for needed in ("fmipfast_handover_total", "fmipfast_mn_handover_interruption_seconds_bucket",
                   "fmipfast_handover_buffering_seconds_bucket", "fmipfast_buffer_held_frames",
                   "fmipfast_engine_drops_total", "fmipfast_kdc_request_duration_seconds_bucket"):
        assert needed in used, needed

"""The command line as an operator meets it: bad values are refused up front with the bound, output goes where
it is asked for (or the command says at once why it cannot), and nothing ends in a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fmipfast import cli
from fmipfast.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _usage_error(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("argv, needle", [
    (["demo", "--rate", "0"], "--rate"),
    (["demo", "--rate", "-10"], "--rate"),
    (["demo", "--rate", "1000001"], "--rate"),
    (["demo", "--gap-ms", "-5"], "--gap-ms"),
    (["demo", "--gap-ms", "nan"], "--gap-ms"),
    (["lab", "run", "--rate", "0"], "--rate"),
    (["lab", "run", "--gap-ms", "-1"], "--gap-ms"),
])
def test_out_of_range_numbers_are_usage_errors_naming_the_bound(capsys, argv, needle):
    err = _usage_error(capsys, argv)
    assert needle in err and "within" in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("flag", ["--capture", "--plot"])
def test_demo_output_into_a_missing_directory_fails_before_the_run(tmp_path, capsys, monkeypatch, flag):
    import fmipfast.lab.simulated.demo as demo

    monkeypatch.setattr(demo, "run_scenario", lambda *a, **k: pytest.fail("ran before checking the output path"))
    target = tmp_path / "no" / "such" / "dir" / "out.file"
    assert main(["demo", flag, str(target)]) == 2
    err = capsys.readouterr().err
    assert str(target.parent) in err and "does not exist" in err


@pytest.mark.parametrize("flag", ["--capture", "--plot"])
def test_lab_run_output_into_a_missing_directory_fails_before_the_lab_is_built(tmp_path, capsys, monkeypatch, flag):
    import fmipfast.lab.namespaces.run as labrun

    monkeypatch.setattr(labrun, "repeat", lambda *a, **k: pytest.fail("built a lab before checking the path"))
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    target = tmp_path / "missing" / "out.file"
    assert main(["lab", "run", flag, str(target)]) == 2
    assert "does not exist" in capsys.readouterr().err


def _fake_lab_result(opts):
    m = {"mode": opts.mode, "capture": opts.capture}
    return {"rate": opts.rate, "gap_ms": opts.gap_ms, "runs": 1, "summary": {}, "each": [m]}


def test_lab_run_baseline_capture_records_both_modes(tmp_path, capsys, monkeypatch):
    import fmipfast.lab.namespaces.run as labrun

    seen = []
    monkeypatch.setattr(labrun, "repeat", lambda opts, n: seen.append(opts) or _fake_lab_result(opts))
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    cap = tmp_path / "h.pcapng"
    assert main(["lab", "run", "--baseline", "--capture", str(cap), "--json"]) == 0
    captures = {o.mode: o.capture for o in seen}
    assert captures == {"fast": str(cap), "baseline": str(tmp_path / "h-baseline.pcapng")}
    err = capsys.readouterr().err
    assert str(cap) in err and "h-baseline.pcapng" in err


def test_lab_move_needs_to(capsys, monkeypatch):
    import fmipfast.lab.namespaces.session as session

    monkeypatch.setattr(session, "move", lambda *a, **k: pytest.fail("moved without being told where"))
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    assert main(["lab", "move"]) == 2
    assert "--to" in capsys.readouterr().err


def test_lab_up_interrupted_exits_130_without_a_traceback(capsys, monkeypatch):
    import fmipfast.lab.namespaces.session as session

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(session, "up", interrupted)
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    assert main(["lab", "up"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "removed" in err


def test_ctl_metrics_prints_the_prometheus_text_as_it_is(capsys, monkeypatch):
    from fmipfast import control

    text = "# HELP fmipfast_frames_total Frames.\n# TYPE fmipfast_frames_total counter\nfmipfast_frames_total 3\n"
    monkeypatch.setattr(control.ControlClient, "call", lambda self, command, **kw: text)
    assert main(["ctl", "--socket", "/nonexistent.sock", "metrics"]) == 0
    assert capsys.readouterr().out == text


def test_ctl_help_lists_metrics():
    sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
    assert "metrics" in sub.choices["ctl"].description


def test_demo_json_timeline_and_steps_share_the_trigger_as_zero(capsys):
    assert main(["demo", "--json", "--rate", "200"]) == 0
    fast = json.loads(capsys.readouterr().out)["fast"]
    assert fast["steps"]["trigger"] == 0.0
    trigger = [e for e in fast["timeline"] if "trigger" in e["what"]]
    assert trigger and trigger[0]["t_ms"] == 0.0
    assert any(e["t_ms"] < 0 for e in fast["timeline"])  # the initial attach came before the trigger


def test_readme_names_only_lab_json_keys_the_demo_json_has_too():
    import re

    from fmipfast.lab.simulated.demo import Result

    readme = (ROOT / "README.md").read_text()
    m = re.search(r"`--json` \(the demo's keys ([^;)]*)", readme)
    assert m, "README must say which of the demo's keys the lab's --json carries"
    named = set(re.findall(r"`(\w+)`", m.group(1)))
    assert named and named <= set(Result.__dataclass_fields__), named - set(Result.__dataclass_fields__)
    import fmipfast.lab.namespaces.run as labrun

    src = Path(labrun.__file__).read_text() + Path(sys.modules["fmipfast.lab.namespaces.traffic"].__file__).read_text()
    for key in named:
        assert f'"{key}"' in src, f"the lab's result has no {key}"


def test_lab_writes_configurations_holding_keys_private(tmp_path):
    from fmipfast.lab.namespaces import session

    target = tmp_path / "x.toml"
    session.write_config(target, 'key = "00"\n')
    assert (target.stat().st_mode & 0o777) == 0o600
    target.chmod(0o644)
    session.write_config(target, 'key = "11"\n')  # rewritten: private again
    assert (target.stat().st_mode & 0o777) == 0o600 and target.read_text() == 'key = "11"\n'


def test_router_warns_when_the_kernel_still_runs_ipv6_on_its_interfaces(tmp_path):
    conf = tmp_path / "conf"
    for name, disabled, forwarding in (("eth0", "0", "1"), ("eth1", "1", "0"), ("eth2", "0", "0")):
        (conf / name).mkdir(parents=True)
        (conf / name / "disable_ipv6").write_text(disabled + "\n")
        (conf / name / "forwarding").write_text(forwarding + "\n")
    from fmipfast.routerd import kernel_ipv6_warnings

    warnings = kernel_ipv6_warnings(["eth0", "eth1", "eth2", "eth9"], conf)
    text = "\n".join(warnings)
    assert len(warnings) == 2, warnings
    assert "eth0" in text and "forwards" in text and "eth2" in text and "eth1" not in text
    assert "disable_ipv6=1" in text


def test_broken_pipe_ends_quietly():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    big = "\n".join("33330000000100000000000186dd6000000000083aff" + "00" * 32 + "8000000000000000"
                    for _ in range(3000)) + "\n"
    for argv, stdin in ((["decode", "-"], big), (["check-config", "--defaults"], None), (["demo", "--json"], None)):
        proc = subprocess.Popen([sys.executable, "-m", "fmipfast", *argv], stdin=subprocess.PIPE if stdin else None,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
        proc.stdout.close()  # the reader is gone before the first line (like `| head -0`)
        _, err = proc.communicate(stdin.encode() if stdin else None, timeout=120)
        assert proc.returncode == 0 and err == b"", (argv, proc.returncode, err[-400:])

"""``fmipfast decode`` and ``fmipfast check-config`` as a user runs them."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from fmipfast import frames
from fmipfast.cli import main
from fmipfast.pcap import PcapWriter
from tests.test_messages import EXPECTED, golden

MAC_A, MAC_B = bytes.fromhex("02005e100001"), bytes.fromhex("02005e100002")


def _capture(path, corrupt=False, hop_limit=None):
    with PcapWriter(path) as w:
        for i, name in enumerate(sorted(EXPECTED)):
            src, dst, _ = golden(name)
            frame = bytearray(frames.icmp6_frame(EXPECTED[name], src, dst, MAC_A, MAC_B, hop_limit))
            if corrupt and name == "hrd_values":
                frame[-1] ^= 0xFF
            w.write(bytes(frame), ts_ns=i * 1000)
        udp = frames.build_ipv6("2001:db8::1", "2001:db8::2", 17, b"\x13\x88\x13\x88\x00\x0c\x00\x00abcd")
        w.write(frames.build_ethernet(MAC_A, MAC_B, udp), ts_ns=99_000)
        w.write(frames.build_ethernet(MAC_A, MAC_B, b"\x60" + bytes(10)), ts_ns=100_000)  # truncated IPv6
    return path


def _run(capsys, *argv, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_decode_json_has_the_documented_keys(tmp_path, capsys):
    cap = _capture(tmp_path / "c.pcap")
    code, out, _ = _run(capsys, "decode", "--json", str(cap))
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == len(EXPECTED) + 2
    by_name = {r["message"]: r for r in rows if r["message"]}
    hrd = by_name["HandoverRedirect"]
    assert hrd["code"] == 1 and hrd["checksum_ok"] is True and hrd["prefix_size"] == 64
    assert hrd["ncoa"] == "2001:db8:2:0:21b:63ff:fe84:45e6" and hrd["flags"] == "MCS"
    assert hrd["options"][0] == {"type": "principal", "name": "nar1", "realm": "B.EXAMPLE"}
    hi = by_name["IcmpHandover"]
    assert hi["ncoa"] == "2001:db8:2:0:21b:63ff:fe84:45e6" and hi["mn_mac"] == "00:1b:63:ff:fe:84:45:e6"
    assert hi["ah_ok"] is False  # the golden HI here travels without AH: flagged
    assert by_name["HandoverError"]["options"][0]["reason_name"] == "ncoa_in_use"
    for row in rows:
        assert {"message", "code", "checksum_ok", "error"} <= set(row)
    assert rows[-2]["message"] is None and rows[-2]["upper_layer"]["dport"] == 5000
    assert rows[-1]["error"]["kind"] == "Truncated"


def test_decode_text_flags_bad_checksum_and_strict_exit(tmp_path, capsys):
    cap = _capture(tmp_path / "bad.pcap", corrupt=True)
    code, out, _ = _run(capsys, "decode", str(cap))
    assert code == 0
    assert "HandoverRedirect  (type 200 code 1)  checksum" in out and " BAD" in out
    assert "nar_address" in out and "+ principal: name=nar1 realm=B.EXAMPLE" in out
    assert "1 bad checksum" in out
    code, _, _ = _run(capsys, "decode", "--strict", str(cap))
    assert code == 1


def test_decode_flags_wrong_hop_limit(tmp_path, capsys):
    cap = _capture(tmp_path / "hl.pcap", hop_limit=64)
    code, out, _ = _run(capsys, "decode", str(cap))
    assert "hop limit 64: this message must arrive with 255" in out


def test_decode_hex_on_stdin(capsys, monkeypatch):
    src, dst, wire = golden("he_values")
    pkt = frames.build_ipv6(src, dst, 58, wire)
    text = f"# a Handover Error as raw IPv6\n{pkt.hex()}\n{wire.hex(' ')}\n".encode()
    code, out, _ = _run(capsys, "decode", "--json", stdin=text, monkeypatch=monkeypatch)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["message"] for r in rows] == ["HandoverError", "HandoverError"]
    assert rows[0]["checksum_ok"] is True and rows[1]["checksum_ok"] is None  # bare ICMPv6: no pseudo-header


def test_decode_errors(tmp_path, capsys, monkeypatch):
    code, _, err = _run(capsys, "decode", str(tmp_path / "missing.pcap"))
    assert code == 2 and "missing.pcap" in err
    code, _, err = _run(capsys, "decode", stdin=b"zz not hex\n", monkeypatch=monkeypatch)
    assert code == 2 and "not hexadecimal" in err
    good = _capture(tmp_path / "t.pcap").read_bytes()
    (tmp_path / "cut.pcap").write_bytes(good[:-5])
    code, out, err = _run(capsys, "decode", str(tmp_path / "cut.pcap"))
    assert code == 2 and "after" in err and "frame 1 " in out


def test_decode_with_remapped_codepoints(tmp_path, capsys):
    from fmipfast.constants import Codepoints
    from fmipfast.messages import Attach, Identifier
    cfg = tmp_path / "cp.toml"
    cfg.write_text("[codepoints]\ntype = 240\nattach = 40\n")
    with PcapWriter(tmp_path / "r.pcap") as w:
        w.write(frames.icmp6_frame(Attach((Identifier(1),)), "fe80::1", "fe80::2", MAC_A, MAC_B,
                                   codepoints=Codepoints(type=240, attach=40)))
    code, out, _ = _run(capsys, "decode", "--json", "--config", str(cfg), str(tmp_path / "r.pcap"))
    row = json.loads(out)
    assert code == 0 and row["message"] == "Attach" and row["code"] == 40 and row["checksum_ok"]


def test_check_config(tmp_path, capsys):
    good = tmp_path / "good.toml"
    good.write_text("[codepoints]\ntype = 201\n")
    assert _run(capsys, "check-config", str(good))[0] == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[codepoints]\nattach = 999\n")
    code, _, err = _run(capsys, "check-config", str(bad))
    assert code == 1 and "codepoints.attach: 999 is out of range 0-255" in err
    code, out, _ = _run(capsys, "check-config", "--defaults")
    assert code == 0 and "[codepoints]" in out


def test_console_entry_point_runs(tmp_path):
    cap = _capture(tmp_path / "e.pcap")
    proc = subprocess.run([sys.executable, "-m", "fmipfast", "decode", "--only-fmipfast", str(cap)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "IcmpHandover" in proc.stdout and "UDP" not in proc.stdout


@pytest.mark.parametrize("argv", [["version"], ["--version"]])
def test_version(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's --version exits
        code = exc.code
    assert code == 0 and "fmipfast" in capsys.readouterr().out


def test_kdc_subcommand_serves_and_stops_on_sigterm(tmp_path):
    import signal

    cfg = tmp_path / "kdc.toml"
    cfg.write_text('realm = "A.EXAMPLE"\nlisten = "127.0.0.1:0"\n'
                   '[[keys]]\nprincipal = "krbtgt/A.EXAMPLE@A.EXAMPLE"\nkey = "' + "11" * 32 + '"\n'
                   '[[keys]]\nprincipal = "access/A.EXAMPLE@A.EXAMPLE"\nkey = "' + "22" * 32 + '"\n')
    proc = subprocess.Popen([sys.executable, "-m", "fmipfast", "kdc", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("READY 127.0.0.1 "), (line, proc.stderr.read() if proc.poll() is not None else "")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    bad = tmp_path / "bad.toml"
    bad.write_text('realm = 5\n')
    done = subprocess.run([sys.executable, "-m", "fmipfast", "kdc", "--config", str(bad)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "realm" in done.stderr


def test_mn_daemon_refuses_bad_configuration_clearly(tmp_path, capsys):
    """`fmipfast mn`: no [mn] section, or a credentials file others may read, is exit 2 with the key or the
    file named — before any socket is opened."""
    cfg = tmp_path / "mn.toml"
    cfg.write_text("[logging]\nlevel = \"info\"\n")
    code, _, err = _run(capsys, "mn", "--config", str(cfg))
    assert code == 2 and "mn.interface: the [mn] section is required" in err
    ccache = tmp_path / "mn.ccache"
    ccache.write_text('{"format": "fmipfast-ccache-1", "credentials": []}\n')
    os.chmod(ccache, 0o640)
    cfg.write_text(f'[mn]\ninterface = "mn0"\nrouter = "2001:db8:1::1"\nrouter_principal = "host/par@A.EXAMPLE"\n'
                   f'address = "2001:db8:1::2"\nccache = "{ccache}"\n')
    code, _, err = _run(capsys, "mn", "--config", str(cfg))
    assert code == 2 and str(ccache) in err and "mode 0640" in err
    cfg.write_text(cfg.read_text().replace('router = "2001:db8:1::1"', 'router = "par"'))
    code, _, err = _run(capsys, "mn", "--config", str(cfg))
    assert code == 2 and "mn.router" in err and "expected an IPv6 address" in err


def test_mn_daemon_sets_its_scheduling_first_and_a_refusal_names_the_key(tmp_path, capsys, monkeypatch):
    """`fmipfast mn` with [mn.scheduling]: the policy is set before anything else (the threads it starts later
    inherit it); one the kernel refuses is exit 2 with the key named, as the router's."""
    import os as _os

    ccache = tmp_path / "mn.ccache"
    ccache.write_text('{"format": "fmipfast-ccache-1", "credentials": []}\n')
    _os.chmod(ccache, 0o600)
    cfg = tmp_path / "mn.toml"
    cfg.write_text(f'[mn]\ninterface = "mn0"\nrouter = "2001:db8:1::1"\nrouter_principal = "host/par@A.EXAMPLE"\n'
                   f'address = "2001:db8:1::2"\nccache = "{ccache}"\n[mn.scheduling]\npolicy = "fifo"\npriority = 9\n')
    asked = []

    def refuse(pid: int, policy: int, param: object) -> None:
        asked.append((pid, policy, getattr(param, "sched_priority", None)))
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(_os, "sched_setscheduler", refuse)
    code, _, err = _run(capsys, "mn", "--config", str(cfg))
    assert asked == [(0, _os.SCHED_FIFO, 9)]
    assert code == 2 and "mn.scheduling.policy: cannot set fifo (priority 9): Operation not permitted" in err


@pytest.mark.parametrize("daemon", ["router", "mn"])
@pytest.mark.parametrize("value", ["70000", "host:", "[::1]:x"])
def test_metrics_address_is_checked(tmp_path, capsys, value, daemon):
    cfg = tmp_path / "daemon.toml"
    cfg.write_text("")
    with pytest.raises(SystemExit) as info:
        main([daemon, "--config", str(cfg), "--metrics", value])
    assert info.value.code == 2 and "expected [HOST:]PORT" in capsys.readouterr().err


def test_router_refuses_a_damaged_ah_sequence_file_before_touching_an_interface(tmp_path, capsys):
    """A sequence file that cannot be read would restart the AH counters silently: the daemon does not start."""
    from tests.test_config import SECURITY
    seq = tmp_path / "ah-seq.json"
    seq.write_text("{")
    cfg = tmp_path / "router.toml"
    cfg.write_text(SECURITY.replace('kdc = "127.0.0.1:8888"', f'kdc = "127.0.0.1:8888"\nah_sequence_file = "{seq}"'))
    code, _, err = _run(capsys, "router", "--config", str(cfg))
    assert code == 2 and "router.security.ah_sequence_file" in err and str(seq) in err and "not JSON" in err


def test_router_refuses_a_session_file_others_may_read(tmp_path, capsys):
    """The session file holds the MNs' keys: readable by group or others, the daemon does not start."""
    from tests.test_config import SECURITY
    sessions = tmp_path / "sessions.json"
    sessions.write_text('{"format": "fmipfast-sessions/1", "sessions": []}')
    sessions.chmod(0o644)
    cfg = tmp_path / "router.toml"
    cfg.write_text(SECURITY.replace('kdc = "127.0.0.1:8888"', f'kdc = "127.0.0.1:8888"\nsession_file = "{sessions}"'))
    code, _, err = _run(capsys, "router", "--config", str(cfg))
    assert code == 2 and "router.security.session_file" in err and "chmod 600" in err


def test_json_logs_are_one_object_per_line_with_the_note_fields(monkeypatch):
    """``[logging] format = "json"``: the router agent's notes become JSON objects with their fields at the top
    level (the raw message octets summarised, never dumped), routine ones at DEBUG, state changes at INFO."""
    import io
    import logging

    from fmipfast.config import LoggingConfig
    from fmipfast.logsetup import setup_logging
    from fmipfast.routerd import log_router_note

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging(LoggingConfig(level="info", format="json"))
        stream = io.StringIO()
        monkeypatch.setattr(sys, "stderr", stream)  # the handler writes to sys.stderr as it is at each record
        log_router_note("send", {"icmp": b"\xc8\x01" * 40, "dst": "2001:db8::1", "size": 120})  # DEBUG: not shown
        log_router_note("ar:state", {"role": "par", "identifier": 0x101, "old": "hrd_sent", "new": "hi_sent"})
        log_router_note("ar:fail", {"role": "nar", "reason": "ncoa_in_use", "raw": b"\x00" * 3})
        lines = stream.getvalue().splitlines()
        docs = [json.loads(line) for line in lines]
        assert [d["event"] for d in docs] == ["ar:state", "ar:fail"]
        assert docs[0]["logger"] == "fmipfast.router" and docs[0]["level"] == "INFO" and docs[0]["new"] == "hi_sent"
        assert docs[0]["identifier"] == 0x101 and docs[0]["time"].endswith("+00:00")
        assert docs[1]["raw"] == "<3 octets>"
        setup_logging(LoggingConfig(level="debug", format="text"))
        stream = io.StringIO()
        monkeypatch.setattr(sys, "stderr", stream)  # the handler writes to sys.stderr as it is at each record
        log_router_note("send", {"icmp": b"\xc8\x01", "dst": "2001:db8::1"})
        assert "fmipfast.router DEBUG send dst=2001:db8::1" in stream.getvalue() and "icmp" not in stream.getvalue()
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def test_the_log_handler_follows_sys_stderr_and_never_writes_to_a_closed_stream(monkeypatch):
    """The daemons' handler writes to sys.stderr as it is when a record comes: a program that set logging up
    and later replaced (and closed) its stderr -- an embedding daemon, a test harness -- gets no
    'Logging error' tracebacks."""
    import io
    import logging

    from fmipfast.config import LoggingConfig
    from fmipfast.logsetup import setup_logging

    root = logging.getLogger()
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    setup_logging(LoggingConfig(level="info", format="text"))
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("fmipfast.router").info("after the swap")
    assert "after the swap" in second.getvalue()
    assert any(type(h).__name__ == "StderrHandler" for h in root.handlers)

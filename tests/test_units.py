"""The systemd units of contrib/systemd: ``systemd-analyze verify`` accepts them, what they claim matches the
daemons (a reload only where the daemon handles SIGHUP, options the CLI has, a control socket under the
RuntimeDirectory), and each daemon starts and serves with nothing but the capabilities its unit grants
(``setpriv`` narrowing the bounding, inheritable and ambient sets as systemd does, with no_new_privs)."""

from __future__ import annotations

import inspect
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fmipfast import cli, mnd, routerd
from fmipfast.security import kdc
from tests.test_sdnotify import ROUTER_TOML, Manager, _spawn
from tests.tools import external_tool

UNITS = Path(__file__).resolve().parent.parent / "contrib" / "systemd"
ROOT = os.geteuid() == 0
INSTALLED_AT = "/usr/local/bin/fmipfast"
#: unit file -> the subcommand it runs
DAEMONS = {"fmipfast-router@.service": "router", "fmipfast-mn.service": "mn", "fmipfast-kdc.service": "kdc"}


def _unit(name: str) -> dict[str, list[str]]:
    """``Key -> values`` of a unit file (keys may repeat), comments and section headers dropped."""
    out: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key, []).append(value)
    return out


def _fmipfast_script() -> str:
    here = Path(sys.executable).parent / "fmipfast"
    found = str(here) if here.exists() else shutil.which("fmipfast")
    assert found, "the fmipfast console script is not installed (pip install -e .)"
    return found


def test_every_unit_is_listed():
    assert sorted(p.name for p in UNITS.glob("*.service")) == sorted(DAEMONS)


def test_systemd_analyze_verifies_the_units(tmp_path):
    """The units as shipped, with ExecStart pointing at this environment's ``fmipfast`` (verify checks that the
    binary exists) and the template instantiated."""
    analyze = external_tool("systemd-analyze", "systemd")  # skips, or fails under FMIPFAST_REQUIRE_TOOLS=1 (CI)
    names = []
    for name in DAEMONS:
        text = (UNITS / name).read_text()
        assert INSTALLED_AT in text
        target = name.replace("@.service", "@test.service")
        (tmp_path / target).write_text(text.replace(INSTALLED_AT, _fmipfast_script()))
        names.append(str(tmp_path / target))
    done = subprocess.run([analyze, "verify", *names], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    # and a unit that is wrong is not let through (what makes this test able to fail)
    bad = tmp_path / "fmipfast-bad.service"
    bad.write_text((tmp_path / "fmipfast-kdc.service").read_text().replace("Type=notify", "Type=notifyy"))
    done = subprocess.run([analyze, "verify", str(bad)], capture_output=True, text=True, timeout=120)
    assert "notifyy" in done.stderr


@pytest.mark.parametrize("name", sorted(DAEMONS))
def test_a_unit_claims_what_its_daemon_does(name):
    u = _unit(name)
    command = DAEMONS[name]
    assert u["Type"] == ["notify"] and u["NotifyAccess"] == ["main"] and u["WatchdogSec"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert u[key] == ["yes"], key
    assert u["ProtectSystem"] == ["strict"]
    # ExecStart is a command line of the real CLI (its options exist), the $VAR of EnvironmentFile= aside
    argv = [w for w in shlex.split(u["ExecStart"][0]) if not w.startswith("$")]
    assert argv[0] == INSTALLED_AT and argv[1] == command
    args = cli.build_parser().parse_args(argv[1:])
    # a reload only where the daemon takes SIGHUP
    handlers = {"router": inspect.getsource(routerd.RouterDaemon.serve), "mn": inspect.getsource(mnd._serve),
                "kdc": inspect.getsource(kdc.serve)}
    assert ("SIGHUP" in handlers[command]) == ("ExecReload" in u), (name, "ExecReload vs the daemon's SIGHUP")
    if "ExecReload" in u:
        assert u["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    # the control socket lives in the unit's RuntimeDirectory (systemd makes it, owned by User=, and removes it)
    if getattr(args, "control", None):
        assert args.control.startswith(f"/run/{u['RuntimeDirectory'][0]}/")
    # capabilities: granted exactly as bounded
    assert u["CapabilityBoundingSet"] == u["AmbientCapabilities"]


def _caps(name: str) -> list[str]:
    return [c.lower().removeprefix("cap_") for c in _unit(name)["CapabilityBoundingSet"][0].split()]


def _confined(caps: list[str]) -> list[str]:
    """``setpriv`` as systemd confines the unit's process: these capabilities and no others (bounding,
    inheritable, ambient), no_new_privs."""
    spec = "-all" + "".join(f",+{c}" for c in caps)
    argv = [external_tool("setpriv", "util-linux"), f"--bounding-set={spec}", f"--inh-caps={spec}", "--no-new-privs"]
    if caps:
        argv.insert(3, f"--ambient-caps={spec}")
    return argv


needs_root = pytest.mark.skipif(not ROOT, reason="needs root to narrow capabilities; CI runs as root")


def _ready_or_exit(proc: subprocess.Popen, manager: Manager) -> tuple[dict[str, str] | None, str]:
    """READY's datagram, or None and the daemon's error output when it exited before."""
    try:
        return manager.wait_for("READY", 60, proc), ""
    except AssertionError as exc:
        if proc.poll() is None:
            raise
        return None, str(exc)


def _finish(proc: subprocess.Popen) -> str:
    """SIGTERM (if still running); its standard error."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[1]


@needs_root
def test_the_kdc_binds_port_88_with_its_units_capability_and_only_with_it(tmp_path):
    from tests.test_sdnotify import _kdc_config

    cfg = _kdc_config(tmp_path)
    cfg.write_text(cfg.read_text().replace("127.0.0.1:0", "127.0.0.1:88"))
    caps = _caps("fmipfast-kdc.service")
    assert caps == ["net_bind_service"]
    for granted, serves in ((caps, True), ([], False)):
        manager = Manager(path=str(tmp_path / f"notify-{len(granted)}"))
        proc = _spawn([*_confined(granted), sys.executable, "-m", "fmipfast", "kdc", "--config", str(cfg)], manager)
        try:
            ready, died = _ready_or_exit(proc, manager)
            if serves:
                assert ready is not None and "127.0.0.1:88" in ready["STATUS"]
                probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                probe.settimeout(5)
                probe.sendto(b"\x99", ("127.0.0.1", 88))
                assert probe.recv(2048)
                probe.close()
            err = died + _finish(proc)
            if not serves:
                assert ready is None and proc.returncode == 2 and "cannot bind 127.0.0.1:88: Permission denied" in err
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
            manager.close()


@needs_root
def test_the_router_runs_with_its_units_capabilities_and_not_without(tmp_path):
    from fmipfast.lab.namespaces.netns import Netns

    caps = _caps("fmipfast-router@.service")
    assert caps == ["net_raw"]
    tag = f"unit{os.getpid()}"
    rt, h = Netns(f"rt-{tag}"), Netns(f"h-{tag}")
    try:
        rt.veth("ra", "ha", peer_ns=h)
        rt.veth("rb", "hb", peer_ns=h)
        cfg = tmp_path / "router.toml"
        cfg.write_text(ROUTER_TOML.replace("KEY", "44" * 32))
        for granted, serves in ((caps, True), ([], False)):
            manager = Manager(path=str(tmp_path / f"notify-{len(granted)}"))
            sock = tmp_path / f"ctl-{len(granted)}.sock"
            proc = _spawn(["ip", "netns", "exec", rt.name, *_confined(granted), sys.executable, "-m", "fmipfast",
                           "router", "--config", str(cfg), "--control", str(sock)], manager)
            try:
                ready, died = _ready_or_exit(proc, manager)
                if serves:
                    assert ready is not None and ready["STATUS"].startswith("2 interfaces")
                    from fmipfast.control import ControlClient

                    assert ControlClient(str(sock)).call("interfaces")
                err = died + _finish(proc)
                if serves:
                    assert proc.returncode == 0, err
                else:
                    assert ready is None and proc.returncode == 2 and "needs CAP_NET_RAW" in err, err
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
                manager.close()
    finally:
        for ns in (rt, h):
            ns.delete()


@needs_root
def test_the_mn_runs_with_its_units_capabilities(tmp_path):
    from fmipfast.security.ccache import save_credentials
    from tests.test_mnagent import AR_A, P_A, PCOA_A, Lab

    caps = _caps("fmipfast-mn.service")
    assert sorted(caps) == ["net_admin", "net_raw"]
    lab = Lab()
    try:
        ccache = tmp_path / "mn.ccache"
        save_credentials(ccache, [])
        cfg = tmp_path / "mn.toml"
        cfg.write_text(f'[mn]\ninterface = "mn0"\nrouter = "{AR_A}"\nrouter_principal = "{P_A}"\n'
                       f'address = "{PCOA_A}"\nccache = "{ccache}"\n')
        for granted, serves in ((caps, True), (["net_admin"], False)):
            manager = Manager(path=str(tmp_path / f"notify-{len(granted)}"))
            proc = _spawn(["ip", "netns", "exec", lab.mn.name, *_confined(granted), sys.executable, "-m", "fmipfast",
                           "mn", "--config", str(cfg)], manager)
            try:
                ready, died = _ready_or_exit(proc, manager)
                err = died + _finish(proc)
                if serves:
                    assert ready is not None and "on mn0" in ready["STATUS"] and proc.returncode == 0, err
                else:  # no raw sockets without CAP_NET_RAW
                    assert ready is None and proc.returncode == 2 and "Operation not permitted" in err, err
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
                manager.close()
    finally:
        lab.close()

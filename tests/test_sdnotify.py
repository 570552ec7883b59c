"""systemd's notification protocol (fmipfast/sdnotify.py) against a real ``AF_UNIX``/``SOCK_DGRAM`` socket bound the
way the service manager binds ``$NOTIFY_SOCKET`` (a path, or an abstract ``@name``), then the three daemons run as
subprocesses with it set: READY once serving, WATCHDOG pings at half ``$WATCHDOG_USEC``, RELOADING and READY
again around the router's SIGHUP, STOPPING on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fmipfast
from fmipfast.sdnotify import Notifier, NotifyConfigError
from tests.test_engine_netns import TOML as NETNS_TOML

REPO = str(Path(fmipfast.__file__).resolve().parent.parent)
ROOT = os.geteuid() == 0


class Manager:
    """The service manager's end: a datagram socket at ``path`` or the abstract ``name``; each datagram read
    back as the dict of its ``KEY=VALUE`` lines (in order, with the raw text)."""

    def __init__(self, *, path: str | None = None, abstract: str | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if path is not None:
            self.sock.bind(path)
            self.env = path
        else:
            assert abstract is not None
            self.sock.bind("\0" + abstract)
            self.env = "@" + abstract
        self.seen: list[dict[str, str]] = []

    def read(self, timeout: float) -> dict[str, str] | None:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(4096)
        except (socket.timeout, BlockingIOError):
            return None
        text = data.decode()
        assert text.endswith("\n"), repr(text)
        msg = dict(line.split("=", 1) for line in text.splitlines())
        self.seen.append(msg)
        return msg

    def wait_for(self, key: str, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> dict[str, str]:
        """The next datagram carrying ``key`` (those before it are kept in :attr:`seen`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.read(min(0.2, deadline - time.monotonic()))
            if msg is not None and key in msg:
                return msg
            if proc is not None and proc.poll() is not None and msg is None:
                raise AssertionError(f"the daemon exited ({proc.returncode}) before {key}: "
                                     f"{proc.stderr.read() if proc.stderr else ''}")
        raise AssertionError(f"no {key} within {timeout} s; seen {self.seen}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def manager(tmp_path):
    m = Manager(path=str(tmp_path / "notify"))
    yield m
    m.close()


# ================================================================================ the protocol


def test_ready_status_stopping_on_a_path_socket(manager):
    env = {"NOTIFY_SOCKET": manager.env}
    n = Notifier(env)
    assert n.enabled and env == {}  # taken out of the environment, like sd_notify(unset_environment=1)
    assert n.ready("serving 2 interfaces\nand more")
    assert manager.read(2) == {"READY": "1", "STATUS": "serving 2 interfaces and more"}  # one line
    assert n.status("x" * 2000)
    assert len(manager.read(2)["STATUS"]) == 512
    assert not n.status("x" * 2000)  # unchanged: nothing sent
    assert n.stopping()
    assert manager.read(2) == {"STOPPING": "1"}
    assert n.sent == 3 and n.errors == 0
    n.close()


def test_an_abstract_socket_name():
    name = f"fmipfast-test-{os.getpid()}-{time.monotonic_ns()}"
    m = Manager(abstract=name)
    try:
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert n.ready()
        assert m.read(2) == {"READY": "1"}
        n.close()
    finally:
        m.close()


def test_reloading_carries_the_monotonic_clock(manager):
    n = Notifier({"NOTIFY_SOCKET": manager.env})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    n.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    msg = manager.read(2)
    assert msg["RELOADING"] == "1" and before <= int(msg["MONOTONIC_USEC"]) <= after
    n.close()


def test_without_notify_socket_nothing_happens():
    n = Notifier({})
    assert not n.enabled and n.watchdog_s is None
    assert not n.ready("x") and not n.watchdog() and n.sent == 0 and n.errors == 0
    n.start(asyncio.new_event_loop(), lambda: "x")  # no timers without a manager


def test_watchdog_interval_and_pid():
    assert Notifier({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "3000000"}).watchdog_s == 1.5
    assert Notifier({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "3000000",
                     "WATCHDOG_PID": str(os.getpid())}).watchdog_s == 1.5
    # the watchdog is meant for another process (the variables leaked to a child): not ours to ping
    assert Notifier({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "3000000",
                     "WATCHDOG_PID": str(os.getpid() + 1)}).watchdog_s is None


@pytest.mark.parametrize("env, named", [
    ({"NOTIFY_SOCKET": "run/relative"}, "NOTIFY_SOCKET"),
    ({"NOTIFY_SOCKET": "vsock:2:1234"}, "NOTIFY_SOCKET"),
    ({"NOTIFY_SOCKET": "@"}, "NOTIFY_SOCKET"),
    ({"NOTIFY_SOCKET": "/" + "a" * 200}, "NOTIFY_SOCKET"),
    ({"NOTIFY_SOCKET": "@" + "a" * 200}, "NOTIFY_SOCKET"),
    ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "-5"}, "WATCHDOG_USEC"),
    ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "0"}, "WATCHDOG_USEC"),
    ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1e6"}, "WATCHDOG_USEC"),
    ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "100", "WATCHDOG_PID": "me"}, "WATCHDOG_PID"),
])
def test_a_malformed_environment_is_named(env, named):
    with pytest.raises(NotifyConfigError, match=named):
        Notifier(env)


def test_a_vanished_manager_is_logged_once_and_never_raises(tmp_path, caplog):
    m = Manager(path=str(tmp_path / "gone"))
    n = Notifier({"NOTIFY_SOCKET": m.env})
    assert n.ready()
    m.close()
    os.unlink(tmp_path / "gone")
    with caplog.at_level(logging.WARNING, logger="fmipfast.sdnotify"):
        for _ in range(5):
            assert not n.watchdog()
    assert n.errors == 5
    warnings = [r for r in caplog.records if r.name == "fmipfast.sdnotify"]
    assert len(warnings) == 1 and "gone" in warnings[0].getMessage()


def test_a_manager_that_does_not_read_never_blocks_the_daemon(manager):
    """Its queue fills: the sends fail at once (non-blocking), counted, instead of stalling the loop."""
    n = Notifier({"NOTIFY_SOCKET": manager.env})
    started = time.monotonic()
    for _ in range(5000):
        n.watchdog()
    assert time.monotonic() - started < 5
    assert n.errors > 0 and n.sent > 0
    n.close()


def test_timers_on_the_loop_ping_the_watchdog_and_refresh_the_status(manager):
    n = Notifier({"NOTIFY_SOCKET": manager.env, "WATCHDOG_USEC": "100000"})  # pings every 50 ms
    assert n.watchdog_s == 0.05
    state = {"n": 0}

    def status() -> str:
        state["n"] += 1
        if state["n"] == 2:
            raise RuntimeError("a broken status line")  # logged; the pings go on
        return f"state {state['n'] // 3}"

    async def run() -> None:
        n.start(asyncio.get_running_loop(), status, status_every_s=0.04)
        await asyncio.sleep(0.5)
        n.close()
        await asyncio.sleep(0.2)

    asyncio.run(run())
    msgs = []
    while (msg := manager.read(0.01)) is not None:
        msgs.append(msg)
    pings = [m for m in msgs if m == {"WATCHDOG": "1"}]
    statuses = [m["STATUS"] for m in msgs if "STATUS" in m]
    assert 5 <= len(pings) <= 11, msgs
    assert statuses[:2] == ["state 0", "state 1"] and len(statuses) == len(set(statuses))  # only changes
    # closed: nothing more comes
    assert manager.read(0.2) is None


# ================================================================================ the daemons


def _spawn(argv: list[str], manager: Manager, watchdog_usec: int | None = 200_000,
           extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
               NOTIFY_SOCKET=manager.env, **(extra_env or {}))
    if watchdog_usec is not None:
        env["WATCHDOG_USEC"] = str(watchdog_usec)
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def _stop(proc: subprocess.Popen, manager: Manager) -> str:
    proc.send_signal(signal.SIGTERM)
    msg = manager.wait_for("STOPPING", 20, proc)
    assert msg["STOPPING"] == "1"
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return out


def _pings(manager: Manager, seconds: float) -> int:
    """WATCHDOG=1 datagrams arriving within ``seconds``."""
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        msg = manager.read(deadline - time.monotonic())
        if msg is not None and msg.get("WATCHDOG") == "1":
            count += 1
    return count


def _kdc_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "kdc.toml"
    cfg.write_text('realm = "A.EXAMPLE"\nlisten = "127.0.0.1:0"\n' + "".join(
        f'[[keys]]\nprincipal = "{p}/A.EXAMPLE@A.EXAMPLE"\nkey = "{os.urandom(32).hex()}"\n'
        for p in ("krbtgt", "access")))
    return cfg


@pytest.mark.parametrize("where", ["path", "abstract"])
def test_the_kdc_is_ready_once_bound_pings_and_says_it_stops(tmp_path, where):
    m = Manager(path=str(tmp_path / "notify")) if where == "path" else \
        Manager(abstract=f"fmipfast-kdc-{os.getpid()}-{time.monotonic_ns()}")
    proc = _spawn([sys.executable, "-m", "fmipfast", "kdc", "--config", str(_kdc_config(tmp_path))], m)
    try:
        ready = m.wait_for("READY", 30, proc)
        # READY comes after the socket is bound: the port it names answers now
        line = proc.stdout.readline().split()
        assert line[0] == "READY"
        assert ready["STATUS"].startswith(f"realm A.EXAMPLE on 127.0.0.1:{line[2]}: 0 AS")
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.settimeout(5)
        probe.sendto(b"\x99garbage", ("127.0.0.1", int(line[2])))
        assert probe.recv(2048)  # a KRB-ERROR: it serves
        probe.close()
        assert _pings(m, 1.0) >= 5  # every 0.1 s
        assert m.wait_for("STATUS", 10, proc)["STATUS"].endswith("1 errors, 0 rate-limited")  # refreshed
        _stop(proc, m)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        m.close()


def test_no_watchdog_pings_when_the_watchdog_is_another_process(tmp_path, manager):
    proc = _spawn([sys.executable, "-m", "fmipfast", "kdc", "--config", str(_kdc_config(tmp_path))], manager,
                  extra_env={"WATCHDOG_PID": "1"})
    try:
        manager.wait_for("READY", 30, proc)
        assert _pings(manager, 0.6) == 0
        _stop(proc, manager)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_a_daemon_with_a_malformed_notify_environment_refuses_to_start(tmp_path, manager):
    proc = _spawn([sys.executable, "-m", "fmipfast", "kdc", "--config", str(_kdc_config(tmp_path))], manager,
                  watchdog_usec=None, extra_env={"WATCHDOG_USEC": "soon"})
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "WATCHDOG_USEC='soon'" in err and "READY" not in out


# the namespace router of tests/test_engine_netns.py, with keys to reload
ROUTER_TOML = NETNS_TOML + """
[router.security]
principal = "host/rt@A.EXAMPLE"
[[router.security.keys]]
principal = "host/rt@A.EXAMPLE"
kvno = 1
key = "KEY"
"""


@pytest.mark.root
@pytest.mark.skipif(not ROOT, reason="needs root for network namespaces and AF_PACKET (CI runs as root)")
def test_the_router_daemon_notifies_ready_reload_watchdog_and_stop(tmp_path, manager):
    """``fmipfast router`` in a namespace (the notify socket is a path: abstract names are per network namespace):
    READY once its rings are bound and keys loaded; SIGHUP -- a new key -- is RELOADING, then READY; STOPPING."""
    from fmipfast.lab.namespaces.netns import Netns

    tag = f"sdn{os.getpid()}"
    rt, h = Netns(f"rt-{tag}"), Netns(f"h-{tag}")
    proc = None
    try:
        rt.veth("ra", "ha", peer_ns=h)
        rt.veth("rb", "hb", peer_ns=h)
        cfg = tmp_path / "router.toml"
        cfg.write_text(ROUTER_TOML.replace("KEY", "44" * 32))
        proc = _spawn(["ip", "netns", "exec", rt.name, sys.executable, "-m", "fmipfast", "router", "--config",
                       str(cfg), "--control", str(tmp_path / "ctl.sock")], manager)
        ready = manager.wait_for("READY", 60, proc)
        assert proc.stdout.readline().startswith("READY rt ra rb")
        assert ready["STATUS"].startswith("2 interfaces; received ") and "0 MN sessions" in ready["STATUS"]
        assert os.path.exists(tmp_path / "ctl.sock")  # the control socket is up before READY
        assert _pings(manager, 1.0) >= 5
        cfg.write_text(ROUTER_TOML.replace("KEY", "55" * 32))
        proc.send_signal(signal.SIGHUP)
        reloading = manager.wait_for("RELOADING", 20, proc)
        assert int(reloading["MONOTONIC_USEC"]) <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert manager.wait_for("READY", 20, proc)["READY"] == "1"
        from fmipfast.control import ControlClient

        assert ControlClient(str(tmp_path / "ctl.sock")).call("ping") == "pong"
        _stop(proc, manager)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate()
        for ns in (rt, h):
            ns.delete()


@pytest.mark.root
@pytest.mark.skipif(not ROOT, reason="needs root for network namespaces, raw sockets and netlink (CI runs as root)")
def test_the_mn_daemon_notifies_ready_watchdog_and_stop(tmp_path, manager):
    """``fmipfast mn`` on ``mn0`` of the MN agent's harness: READY once the agent runs, its state as STATUS."""
    from fmipfast.security.ccache import save_credentials
    from tests.test_mnagent import AR_A, P_A, PCOA_A, Lab

    lab = Lab()
    proc = None
    try:
        ccache = tmp_path / "mn.ccache"
        save_credentials(ccache, [])
        cfg = tmp_path / "mn.toml"
        cfg.write_text(f'[mn]\ninterface = "mn0"\nrouter = "{AR_A}"\nrouter_principal = "{P_A}"\n'
                       f'address = "{PCOA_A}"\nccache = "{ccache}"\n')
        proc = _spawn(["ip", "netns", "exec", lab.mn.name, sys.executable, "-m", "fmipfast", "mn", "--config",
                       str(cfg)], manager)
        ready = manager.wait_for("READY", 60, proc)
        assert proc.stdout.readline().startswith("READY mn mn0")
        assert " on mn0; 0 handovers completed" in ready["STATUS"], ready
        assert _pings(manager, 1.0) >= 5
        _stop(proc, manager)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate()
        lab.close()

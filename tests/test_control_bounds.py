"""The control API under hostile input: every argument of every command checked on receipt (typed, in the
wire's ranges, unknown names refused), and the Unix-socket server's bounds -- the socket never connectable by
another user, an operator never locked out by silent clients, a client that never reads never holding its
slot, and any request line answered with a JSON reply (hypothesis, against a real router agent)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from ipaddress import IPv6Address
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fmipfast.control import COMMANDS, ControlClient, ControlError, ControlServer, RouterControl
from tests.test_engine import H1, Net

ROOT = os.geteuid() == 0
NAR_ADDR = "2001:db8:2::1"
GOOD = {"pcoa": H1, "nar": NAR_ADDR, "nar_principal": "host/nar@B.EXAMPLE", "prefix_size": 64,
        "nar_mac": "02:00:5e:00:02:01", "ncoa": "2001:db8:2::a", "buffer": False, "lifetime_ms": 3000}


# ------------------------------------------------------------------------------------------- harness
class _Loop:
    """An asyncio loop on a thread, for servers the test talks to with blocking sockets."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Any, timeout: float = 30) -> Any:
        async def go() -> Any:
            return fn()
        return self.run(go(), timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@contextlib.contextmanager
def _serving(control: Any, path: str, loop: _Loop | None = None, **kw: Any) -> Iterator[ControlServer]:
    own = loop is None
    lp = loop or _Loop()
    server = ControlServer(control, path, **kw)
    lp.run(server.start())
    try:
        yield server
    finally:
        lp.run(server.close())
        if own:
            lp.stop()


def _connect(path: str, timeout: float = 10) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def _read_to_eof(s: socket.socket, bound: float = 10) -> tuple[bytes, bool]:
    """Everything the server sends until it closes (True), or what came within ``bound`` s (False)."""
    end = time.monotonic() + bound
    data = b""
    while time.monotonic() < end:
        s.settimeout(max(0.05, end - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def _exchange(path: str, payload: bytes) -> list[dict]:
    s = _connect(path)
    try:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        data, closed = _read_to_eof(s)
    finally:
        s.close()
    assert closed, "the server did not finish answering"
    return [json.loads(line) for line in data.splitlines()]


def _eventually(cond: Any, bound: float = 10) -> bool:
    end = time.monotonic() + bound
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def _python_for_nobody() -> str | None:
    """A Python interpreter the unprivileged user can run (the test's may live under /root)."""
    for exe in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            if subprocess.run([exe, "-c", "pass"], user=65534, group=65534, extra_groups=[], cwd="/",
                              timeout=30, capture_output=True).returncode == 0:
                return exe
    return None


@pytest.fixture
def sockdir():
    """A directory other users may traverse (tmp_path is 0700), for the permission tests."""
    d = tempfile.mkdtemp(prefix="fmipctl")
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        for name in os.listdir(d):
            os.unlink(os.path.join(d, name))
        os.rmdir(d)


# ------------------------------------------------------------------------------------------- 1. arguments
def _recording_control() -> tuple[RouterControl, list[dict]]:
    control = RouterControl(Net().engine)
    seen: list[dict] = []
    control.attach_protocol(lambda args: seen.append(args) or {"identifier": 1}, lambda: [], lambda: [])
    return control, seen


BAD_HANDOVER = [
    ("lifetime_ms", 2**32), ("lifetime_ms", -1), ("lifetime_ms", 10**30), ("lifetime_ms", 0),
    ("lifetime_ms", 1.5), ("lifetime_ms", 3000.0), ("lifetime_ms", "3000"), ("lifetime_ms", True),
    ("lifetime_ms", math.nan), ("lifetime_ms", math.inf),
    ("prefix_size", 0), ("prefix_size", 129), ("prefix_size", "64"), ("prefix_size", [64]),
    ("ncoa", "::"), ("ncoa", "ff02::1"), ("ncoa", "fe80::1"), ("ncoa", "::1"), ("ncoa", "::ffff:192.0.2.1"),
    ("ncoa", "fec0::1"), ("ncoa", "2001:db8:2::a%acc0"), ("ncoa", 5), ("ncoa", ""), ("ncoa", "2001:db8::g"),
    ("ncoa", "1" * 5000),
    ("pcoa", "ff02::1"), ("pcoa", 1), ("pcoa", {"a": 1}), ("nar", "::"), ("nar", "fe80::1"),
    ("buffer", "false"), ("buffer", "true"), ("buffer", 0), ("buffer", 1), ("buffer", "0"),
    ("nar_mac", "02:00:5e:00:02"), ("nar_mac", "02:00:5e:00:02:01:03"), ("nar_mac", "ff:ff:ff:ff:ff:ff"),
    ("nar_mac", "00:00:00:00:00:00"), ("nar_mac", "02 00 5e 00 02 01"), ("nar_mac", "02005e0002011"),
    ("nar_mac", "02:00-5e:00:02:01"), ("nar_mac", "0x:00:5e:00:02:01"), ("nar_mac", 0x02005E000201),
    ("nar_principal", "nar"), ("nar_principal", "@B.EXAMPLE"), ("nar_principal", "host/nar@"),
    ("nar_principal", 5), ("nar_principal", "x" * 300 + "@B"), ("nar_principal", "\ud800@B"),
]


@pytest.mark.parametrize(("name", "value"), BAD_HANDOVER, ids=[f"{n}={str(v)[:20]!r}" for n, v in BAD_HANDOVER])
def test_every_bad_handover_argument_is_refused_on_receipt_naming_it(name, value):
    control, seen = _recording_control()
    with pytest.raises(ControlError, match=f"handover: '{name}' must be") as info:
        control.dispatch("handover", {**GOOD, name: value})
    assert len(str(info.value)) < 300  # the refused value is shown bounded
    assert seen == []  # nothing reached the protocol layer


def test_handover_argument_names_and_presence():
    control, seen = _recording_control()
    with pytest.raises(ControlError, match="handover: unknown argument 'lifetime'; handover takes pcoa, nar"):
        control.dispatch("handover", {**GOOD, "lifetime": 3000})
    for name in ("pcoa", "nar"):
        with pytest.raises(ControlError, match=f"handover: '{name}' is required"):
            control.dispatch("handover", {k: v for k, v in GOOD.items() if k != name})
    with pytest.raises(ControlError, match="'args' must be a JSON object"):
        control.dispatch("handover", [GOOD])  # type: ignore[arg-type]
    assert seen == []
    # the good ones, and null for an optional one ("not given"), pass through as given
    assert control.dispatch("handover", GOOD) == {"identifier": 1}
    assert control.dispatch("handover", {**GOOD, "ncoa": None, "nar_mac": "02005E000201"}) == {"identifier": 1}
    assert control.dispatch("handover", {**GOOD, "nar_mac": "02-00-5e-ff-fe-00-02-01", "lifetime_ms": 2**32 - 1,
                                         "prefix_size": 128, "buffer": True}) == {"identifier": 1}
    assert seen[0] == GOOD and len(seen) == 3


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if c != "handover"])
def test_commands_without_arguments_refuse_any(cmd):
    control = RouterControl(Net().engine)
    with pytest.raises(ControlError, match=f"{cmd}: unknown argument 'verbose'; {cmd} takes no arguments"):
        control.dispatch(cmd, {"verbose": True})
    with pytest.raises(ControlError, match="'args' must be a JSON object"):
        control.dispatch(cmd, "x")  # type: ignore[arg-type]
    control.dispatch(cmd, {})


def test_unknown_commands_of_any_type_are_refused():
    control = RouterControl(Net().engine)
    for cmd in ("reboot", "", "x" * 10000, 5, None, ["ping"]):
        with pytest.raises(ControlError, match="unknown command") as info:
            control.dispatch(cmd, {})  # type: ignore[arg-type]
        assert len(str(info.value)) < 300


def test_the_mn_daemons_commands_refuse_arguments_and_unknown_commands():
    from fmipfast.mnd import MN_COMMANDS, MnDaemon

    stub = SimpleNamespace(status=lambda: {"state": "attached"}, all_counters=lambda: {"daemon": {}},
                           metrics=lambda: "# none\n")
    assert MnDaemon.dispatch(stub, "ping", {}) == "pong"  # type: ignore[arg-type]
    for cmd in MN_COMMANDS:
        with pytest.raises(ControlError, match=f"{cmd}: unknown argument 'x'; {cmd} takes no arguments"):
            MnDaemon.dispatch(stub, cmd, {"x": 1})  # type: ignore[arg-type]
        with pytest.raises(ControlError, match="must be a JSON object"):
            MnDaemon.dispatch(stub, cmd, [])  # type: ignore[arg-type]
    for cmd in ("handover", 7, None):
        with pytest.raises(ControlError, match="unknown command"):
            MnDaemon.dispatch(stub, cmd, {})  # type: ignore[arg-type]


class _NoTimers:
    """An agent's scheduler with its timers never firing: a handover started by one example cannot move on
    (retransmit, fail, be forgotten) while a later one compares the state before and after its request."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def now(self) -> int:
        return self.scheduler.now()

    def call_at(self, when_ns: int, fn: Any) -> None:
        pass

    def run_async(self, coro: Any, done: Any) -> None:
        self.scheduler.run_async(coro, done)


# the router's own trigger (RouterAgent), with an MN attached so that a good trigger really starts a handover
def _attached_agent(*, timers: bool = True) -> Any:
    from fmipfast.ports import MemoryPort
    from tests.test_router import MN_MAC, _initial_attach, _world

    async def attach() -> Any:
        engine, agent, _peer, key = _world()
        if not timers:
            agent.scheduler = _NoTimers(agent.scheduler)
        mn = MemoryPort("mn", MN_MAC, engine.interfaces[0].port.link)
        frame, _ = _initial_attach(key, agent.epoch_s + agent.scheduler.now() / 1e9)
        mn.send_frames([frame])
        for _ in range(500):
            engine.poll()
            await asyncio.sleep(0.01)
            if agent.ar.counters["initial_attached"]:
                break
        assert agent.ar.counters["initial_attached"] == 1
        return SimpleNamespace(engine=engine, agent=agent, mn=mn)

    return attach


def _agent_state(agent: Any) -> Any:
    return (agent.handovers(), sorted(str(a) for a in agent.ar.sessions),
            {k: v for k, v in agent.ar.counters.items() if k.startswith(("handovers", "trigger"))})


def test_the_router_agents_trigger_checks_every_argument_before_the_machine_sees_it():
    from tests.test_router import MN_COA, PAR

    async def scenario() -> None:
        w = await _attached_agent()()
        good = {"pcoa": str(MN_COA), "nar": str(PAR), "nar_principal": "host/par@A.EXAMPLE"}
        before = _agent_state(w.agent)
        for name, value in BAD_HANDOVER:
            if name == "pcoa":
                continue
            with pytest.raises(ControlError, match=f"handover: '{name}' must be"):
                w.agent.trigger({**good, name: value})
        with pytest.raises(ControlError, match="handover: 'nar_principal' is required"):
            w.agent.trigger({k: v for k, v in good.items() if k != "nar_principal"})
        with pytest.raises(ControlError, match="unknown argument 'buffered'"):
            w.agent.trigger({**good, "buffered": False})
        assert _agent_state(w.agent) == before  # refused: the machine saw nothing
        result = w.agent.trigger({**good, "buffer": False, "lifetime_ms": 65535 * 1000, "nar_mac": "02:00:5e:00:02:01"})
        h = w.agent.ar.par[MN_COA]
        assert result["identifier"] == h.identifier
        assert h.trigger.buffer is False and h.trigger.lifetime_ms == 65535 * 1000
        assert h.trigger.nar_mac == bytes.fromhex("02005e000201")

    asyncio.run(scenario())


def test_ctl_sends_json_values_so_false_is_false_and_a_string_is_refused(tmp_path, capsys):
    from fmipfast.cli import main

    control, seen = _recording_control()
    path = str(tmp_path / "ctl.sock")
    with _serving(control, path):
        base = ["ctl", "--socket", path, "handover", "--arg", f"pcoa={H1}", "--arg", f"nar={NAR_ADDR}"]
        assert main([*base, "--arg", "buffer=false", "--arg", "lifetime_ms=500"]) == 0
        assert seen == [{"pcoa": H1, "nar": NAR_ADDR, "buffer": False, "lifetime_ms": 500}]
        assert main([*base, "--arg", "buffer=False"]) == 1  # not JSON: the string "False"
        assert "'buffer' must be true or false" in capsys.readouterr().err
        assert len(seen) == 1


# ------------------------------------------------------------------------------------------- 2a. the socket's mode
@pytest.mark.skipif(not ROOT, reason="needs root to run a client as another user")
def test_the_socket_is_never_connectable_by_another_user(sockdir, monkeypatch):
    """Under umask 0 the socket's mode right after the bind is its final one: with every later chmod made a
    no-op, it is still 0660 -- and a client running as nobody, trying all along while servers start and stop,
    never gets in."""
    path = os.path.join(sockdir, "ctl.sock")
    python = _python_for_nobody()
    # as root there is always one (/usr/bin/python3 at the least, which the venv's interpreter comes from):
    # not finding it is a broken machine, and this test must not pass by saying nothing
    assert python is not None, "no Python interpreter the user nobody may run (checked sys.executable, " \
                               "/usr/bin/python3, /usr/local/bin/python3)"
    probe = subprocess.Popen(
        [python, "-c", (
            "import socket, sys, time\n"
            "end = time.monotonic() + float(sys.argv[2]); ok = 0\n"
            "while time.monotonic() < end:\n"
            "    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
            "    try:\n"
            "        s.connect(sys.argv[1]); ok += 1\n"
            "    except OSError:\n"
            "        pass\n"
            "    finally:\n"
            "        s.close()\n"
            "print(ok)\n"), path, "3"],
        user=65534, group=65534, extra_groups=[], cwd="/", stdout=subprocess.PIPE, text=True)
    old = os.umask(0)
    monkeypatch.setattr(os, "chmod", lambda *a, **k: None)  # what the mode is before any chmod
    try:
        control = RouterControl(Net().engine)
        lp = _Loop()
        try:
            end = time.monotonic() + 2
            while time.monotonic() < end:
                with _serving(control, path, lp):
                    mode = stat.S_IMODE(os.stat(path).st_mode)
                    assert mode == 0o660, oct(mode)
                    assert os.umask(0) == 0  # the server put back the umask it found
        finally:
            lp.stop()
    finally:
        os.umask(old)
    out, _ = probe.communicate(timeout=30)
    assert probe.returncode == 0 and out.strip() == "0", f"nobody connected {out.strip()} times"


def test_an_existing_path_is_replaced_only_when_it_is_a_stale_socket(tmp_path):
    control = RouterControl(Net().engine)
    path = str(tmp_path / "ctl.sock")
    with _serving(control, path):
        with pytest.raises(ControlError, match="another server is listening"), _serving(control, path):
            pass
        assert ControlClient(path).call("ping") == "pong"  # the first one still has its socket
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # a socket file nobody listens on: what a crash leaves
    with _serving(control, path):
        assert ControlClient(path).call("ping") == "pong"
    assert not os.path.exists(path)
    (tmp_path / "ctl.sock").write_text("not a socket")
    with pytest.raises(ControlError, match="not a socket"), _serving(control, path):
        pass
    assert (tmp_path / "ctl.sock").read_text() == "not a socket"


# ------------------------------------------------------------------------------------------- 2b/2c. connections
def test_sixteen_silent_clients_do_not_lock_the_operator_out(tmp_path):
    control = RouterControl(Net().engine)
    path = str(tmp_path / "ctl.sock")
    with _serving(control, path, idle_timeout=300.0) as server:  # only eviction can make room here
        silent = [_connect(path) for _ in range(20)]
        try:
            assert _eventually(lambda: server.counters["connections"] == 20)
            for _ in range(3):
                assert ControlClient(path, timeout=10).call("ping") == "pong"
            assert server.clients <= server.max_clients == 16
            assert server.counters["evicted"] >= 4 + 1  # and one for the first ping at least
            # the first silent ones made room: each was told why, then closed
            data, closed = _read_to_eof(silent[0])
            assert closed and "too many control clients" in json.loads(data)["error"]
        finally:
            for s in silent:
                s.close()


def test_an_idle_or_slow_connection_is_closed_after_the_idle_timeout(tmp_path):
    control = RouterControl(Net().engine)
    path = str(tmp_path / "ctl.sock")
    with _serving(control, path, idle_timeout=0.5) as server:
        silent, slow = _connect(path), _connect(path)
        slow.sendall(b'{"cmd": "pi')  # never finished
        try:
            for s in (silent, slow):
                data, closed = _read_to_eof(s, 10)
                assert closed and data == b""
            assert _eventually(lambda: server.counters["idle_timeouts"] == 2 and server.clients == 0)
        finally:
            silent.close()
            slow.close()
        assert ControlClient(path).call("ping") == "pong"


def test_a_client_that_pipelines_and_never_reads_is_disconnected(tmp_path):
    control = RouterControl(Net().engine)
    path = str(tmp_path / "ctl.sock")
    with _serving(control, path, idle_timeout=300.0, write_timeout=0.5) as server:
        s = _connect(path)
        try:
            s.setblocking(False)
            request, sent = b'{"cmd": "ping"}\n', 0
            chunk = request * 4096
            end = time.monotonic() + 3
            while time.monotonic() < end and sent < 4 << 20:
                try:
                    sent += s.send(chunk)
                except BlockingIOError:
                    time.sleep(0.05)
                except OSError:
                    break  # already disconnected
            requests = sent // len(request)
            # the server stops answering once its replies pile up unread, and lets go within the bound
            assert _eventually(lambda: server.counters["write_timeouts"] == 1 and server.clients == 0, 10)
            assert ControlClient(path).call("ping") == "pong"  # and it kept serving meanwhile
            s.setblocking(True)
            data, closed = _read_to_eof(s, 10)
            assert closed and 0 < data.count(b"\n") < requests
        finally:
            s.close()


class _Big:
    """A dispatcher whose ``big`` reply is far larger than the socket's buffers."""

    def dispatch(self, cmd: str, args: dict) -> Any:
        return "x" * (256 << 10) if cmd == "big" else "pong"


def test_the_last_reply_before_a_clients_eof_is_delivered_whole(tmp_path):
    path = str(tmp_path / "ctl.sock")
    with _serving(_Big(), path, write_timeout=5.0) as server:
        s = _connect(path)
        try:
            s.sendall(b'{"id": 1, "cmd": "big"}\n')
            s.shutdown(socket.SHUT_WR)  # done asking: the server sees EOF while the reply is still queued
            time.sleep(0.5)
            data, closed = _read_to_eof(s, 10)
        finally:
            s.close()
        assert closed and json.loads(data) == {"id": 1, "ok": True, "result": "x" * (256 << 10)}
        assert server.counters["write_timeouts"] == 0


def test_garbage_oversized_non_utf8_and_nan_requests_get_error_replies_and_are_counted(tmp_path):
    control = RouterControl(Net().engine)
    path = str(tmp_path / "ctl.sock")
    bad = [b"\xff\xfe\x00garbage", b'{"cmd": "ping", "id": NaN}', b'{"cmd": "ping", "args": {"x": Infinity}}',
           b'{"cmd": "ping", "id": -Infinity}', b'{"cmd": "ping", "id": 1e999}', b"[" * 5000,
           b'{"cmd": "ping", "id": ' + b"9" * 4400 + b"}", b"", b"   ", b"[1, 2]", b'"ping"', b"null",
           b'{"cmd": ["ping"]}', b'{"cmd": "ping", "args": []}', b'{"cmd": "ping", "args": "x"}',
           b'{"cmd": "ping", "extra": 1}', b'{"cmd": "ping", "id": {"a": 1}}', b'{"cmd": "ping", "id": true}',
           b'{"cmd": "ping", "id": 1.5}', b'{"cmd": "handover", "args": {"pcoa": NaN}}',
           b'{"cmd": "ping", "id": "' + "\u00e9".encode("latin-1") + b'"}', b'{"cmd": "ping"}\xc3']
    with _serving(control, path, max_request=8192) as server:
        replies = _exchange(path, b"\n".join(bad) + b'\n{"id": 8, "cmd": "ping", "args": {"x": 1}}\n'
                            b'{"id": "last", "cmd": "ping"}\n')
        assert len(replies) == len(bad) + 2
        for line, reply in zip(bad, replies):
            assert reply["ok"] is False and reply["id"] is None and reply["error"], (line[:40], reply)
        assert replies[-2] == {"id": 8, "ok": False, "error": "ping: unknown argument 'x'; ping takes no arguments"}
        assert replies[-1] == {"id": "last", "ok": True, "result": "pong"}
        assert "NaN is not JSON" in replies[1]["error"] and "UTF-8" in replies[0]["error"]
        assert "nested too deeply" in replies[5]["error"] and "unknown request key 'extra'" in replies[15]["error"]
        assert server.counters["invalid"] == len(bad)  # unusable request lines...
        assert server.counters["errors"] == len(bad) + 1  # ... and the bad argument: every error reply
        too_long = _exchange(path, b'{"cmd": "ping", "pad": "' + b"x" * 10000 + b'"}\n')
        assert too_long[0]["ok"] is False and "longer than 8192" in too_long[0]["error"]
        assert server.counters["too_long"] == 1 and ControlClient(path).call("ping") == "pong"


# ------------------------------------------------------------------------------------------- 3. property
_json_scalar = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20)
_json = st.recursive(_json_scalar, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
_addresses = st.sampled_from(["2001:db8:2::21b:63ff:fe84:45e6", "2001:db8:1::1", "2001:db8:2::1", "::", "::1",
                              "ff02::1", "fe80::1", "2001:db8::1%x", "not an address", "2001:db8:2::a"])
_handover_values = {
    "pcoa": _addresses, "nar": _addresses, "ncoa": _addresses,
    "nar_principal": st.sampled_from(["host/par@A.EXAMPLE", "host/nar@B.EXAMPLE", "nar", "@", "a@b"]) | st.text(),
    "prefix_size": st.integers(-2, 130), "lifetime_ms": st.sampled_from([0, 1, 3000, 2**32 - 1, 2**32, -1, 10**30]),
    "buffer": st.sampled_from([True, False, "false", "true", 0, 1]),
    "nar_mac": st.sampled_from(["02:00:5e:00:02:01", "ff:ff:ff:ff:ff:ff", "02:00", "02-00-5e-ff-fe-00-02-01"]),
}
_handover_args = st.fixed_dictionaries(
    {"pcoa": _addresses, "nar": _addresses,
     "nar_principal": st.sampled_from(["host/par@A.EXAMPLE", "host/nar@B.EXAMPLE", "nar", "@"]) | st.text()},
    optional={k: v | _json for k, v in _handover_values.items() if k not in ("pcoa", "nar", "nar_principal")})
_ids = st.none() | st.integers() | st.text(max_size=12)
_well_formed = st.fixed_dictionaries({"cmd": st.sampled_from(COMMANDS)}, optional={"id": _ids, "args": st.just({})}) \
    | st.fixed_dictionaries({"cmd": st.just("handover"), "id": _ids, "args": _handover_args | _json})
_hostile = st.fixed_dictionaries(
    {"cmd": st.sampled_from([*COMMANDS, "status", "reboot", ""]) | _json},
    optional={"id": _json, "args": st.one_of(_handover_args, st.dictionaries(st.text(max_size=12), _json, max_size=4),
                                            _json), "x": _json})
_requests = _well_formed | _hostile


@pytest.fixture(scope="module")
def live_router():
    """A ControlServer over a RouterControl with a real RouterAgent attached, an MN attached to it."""
    lp = _Loop()
    w = lp.run(_attached_agent(timers=False)())  # state changes by requests only, never by time
    control = RouterControl(w.engine)
    control.attach_protocol(w.agent.trigger, w.agent.handovers, w.agent.mobile_nodes)
    d = tempfile.mkdtemp(prefix="fmipctl")
    path = os.path.join(d, "ctl.sock")
    server = ControlServer(control, path, max_request=8192, idle_timeout=60.0, write_timeout=5.0)
    lp.run(server.start())
    w.lp, w.server, w.path, w.control = lp, server, path, control
    try:
        yield w
    finally:
        lp.run(server.close())
        lp.stop()
        os.rmdir(d)


def _state(w: Any) -> Any:
    return w.lp.call(lambda: (w.agent.handovers(), sorted(str(a) for a in w.agent.ar.sessions),
                              w.control.neighbors(), dict(w.engine.counters)))


class _Conversation:
    """One connection, its replies read line by line."""

    def __init__(self, path: str) -> None:
        self.sock = _connect(path)
        self.replies = self.sock.makefile("rb")

    def ask(self, payload: bytes, n: int = 1) -> list[dict]:
        self.sock.sendall(payload)
        return [json.loads(self.replies.readline()) for _ in range(n)]

    def close(self) -> None:
        self.replies.close()
        self.sock.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_any_request_bytes_get_json_replies_and_the_server_keeps_serving(live_router, data):
    w = live_router
    before, errors = _state(w), w.server.counters["errors"]
    c = _Conversation(w.path)
    try:
        replies = c.ask(data + b"\n", data.count(b"\n") + 1)  # one reply per line, empty ones included
        for r in replies:
            assert set(r) >= {"id", "ok"} and isinstance(r["ok"], bool)
            assert r["ok"] or (isinstance(r["error"], str) and r["error"])
        assert c.ask(b'{"id": 1, "cmd": "ping"}\n') == [{"id": 1, "ok": True, "result": "pong"}]
    finally:
        c.close()
    assert w.server.counters["errors"] == errors + sum(not r["ok"] for r in replies)
    if not any(r["ok"] for r in replies):
        assert _state(w) == before


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(req=_requests)
def test_any_json_request_gets_a_json_reply_and_a_refused_one_changes_nothing(live_router, req):
    w = live_router
    before = _state(w)
    counters = dict(w.server.counters)
    c = _Conversation(w.path)
    try:
        (reply,) = c.ask(json.dumps(req).encode() + b"\n")  # json.dumps writes NaN/Infinity literals too
        assert c.ask(b'{"id": 2, "cmd": "ping"}\n') == [{"id": 2, "ok": True, "result": "pong"}]
    finally:
        c.close()
    assert isinstance(reply["ok"], bool)
    cmd = req["cmd"] if isinstance(req["cmd"], str) and req["cmd"] in COMMANDS else "other"
    event(f"{cmd}: {'ok' if reply['ok'] else 'refused'}")  # --hypothesis-show-statistics shows the mix
    if reply["ok"]:
        assert reply["id"] == req.get("id")
    else:
        assert isinstance(reply["error"], str) and reply["error"]
        assert w.server.counters["errors"] == counters["errors"] + 1
        assert _state(w) == before, (req, reply)


def test_a_handover_through_the_live_server_is_accepted_and_a_second_one_changes_nothing(live_router):
    """The same live server accepts a well-formed trigger of the attached MN (unless an example above already
    started one) and refuses the next as busy, changing nothing."""
    from tests.test_router import MN_COA, PAR

    w = live_router
    good = {"pcoa": str(MN_COA), "nar": str(PAR), "nar_principal": "host/par@A.EXAMPLE"}
    with contextlib.suppress(ControlError):
        ControlClient(w.path).call("handover", **good)
    assert any(h["pcoa"] == str(MN_COA) for h in w.lp.call(w.agent.handovers))
    before = _state(w)
    with pytest.raises(ControlError, match="refused"):
        ControlClient(w.path).call("handover", **good)
    assert _state(w) == before
    assert IPv6Address(good["pcoa"]) in w.lp.call(lambda: list(w.agent.ar.par))

"""The control API: the Python view of an engine, and the Unix-socket JSON protocol with its client —
including every kind of bad request, which gets an error and leaves the server serving."""

from __future__ import annotations

import asyncio
import json
import socket
import threading

import pytest

from fmipfast.cli import main
from fmipfast.control import ControlClient, ControlError, ControlServer, RouterControl
from tests.test_engine import H1, Net, udp


@pytest.fixture
def served(tmp_path):
    net = Net()
    control = RouterControl(net.engine)
    path = str(tmp_path / "ctl.sock")
    loop = asyncio.new_event_loop()
    server = ControlServer(control, path, max_request=4096, max_clients=2)
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield net, control, server, path
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_python_api_views(served):
    net, control, _server, _path = served
    net.engine.proxy_add("2001:db8:1::77", key=1, lifetime_ms=1000)
    net.send(net.core, udp(dst="2001:db8:1::77"))
    c = control.counters()
    assert c["conservation"]["holds"] and c["counters"]["buffered"] == 1
    entries = {e["address"]: e for e in control.neighbors()}
    assert entries["2001:db8:1::1"]["flags"] == ["local", "static"]
    assert entries["2001:db8:1::77"]["flags"] == ["proxy"] and entries["2001:db8:1::77"]["state"] == "incomplete"
    assert [i["name"] for i in control.interfaces()] == ["acc0", "up0"]


def test_socket_protocol_and_client(served):
    net, control, server, path = served
    client = ControlClient(path)
    assert client.call("ping") == "pong"
    assert client.call("counters")["conservation"]["holds"]
    assert any(e["address"] == H1 for e in client.call("neighbors")) is False
    with pytest.raises(ControlError, match="no handover protocol"):
        client.call("handover", pcoa=H1, nar="2001:db8:2::1")
    seen = []
    control.attach_protocol(lambda args: seen.append(args) or {"identifier": 7}, lambda: [{"id": 7}], lambda: [])
    assert client.call("handover", pcoa=H1, nar="2001:db8:2::1") == {"identifier": 7}
    assert seen == [{"pcoa": H1, "nar": "2001:db8:2::1"}] and client.call("handovers") == [{"id": 7}]
    with pytest.raises(ControlError, match="'nar'"):
        client.call("handover", pcoa=H1)
    with pytest.raises(ControlError, match="unknown command"):
        client.call("reboot")


def _raw(path: str, payload: bytes) -> list[dict]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return [json.loads(line) for line in data.splitlines()]


def test_bad_requests_get_errors_and_the_server_keeps_serving(served):
    _net, _control, server, path = served
    replies = _raw(path, b'not json\n[1,2]\n{"cmd": 5}\n{"id": 9, "cmd": "ping"}\n')
    assert [r["ok"] for r in replies] == [False, False, False, True]
    assert "invalid JSON" in replies[0]["error"] and replies[3] == {"id": 9, "ok": True, "result": "pong"}
    too_long = _raw(path, b'{"cmd": "ping", "pad": "' + b"x" * 10000 + b'"}\n')
    assert too_long[0]["ok"] is False and "longer than 4096" in too_long[0]["error"]
    assert ControlClient(path).call("ping") == "pong"  # still serving
    assert server.counters["errors"] >= 3 and server.counters["too_long"] == 1


def test_client_limits_and_ctl_cli(served, capsys):
    _net, _control, server, path = served
    held = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2)]
    for s in held:
        s.connect(path)
    try:
        import time

        time.sleep(0.2)
        # all slots taken by silent clients: a new one still gets in, the longest silent one makes room
        extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        extra.settimeout(5)
        extra.connect(path)
        extra.sendall(b'{"id": 1, "cmd": "ping"}\n')
        assert json.loads(extra.makefile("rb").readline()) == {"id": 1, "ok": True, "result": "pong"}
        extra.close()
        held[0].settimeout(5)
        evicted = json.loads(held[0].makefile("rb").readline())  # told why, then closed
        assert "too many control clients" in evicted["error"] and server.counters["evicted"] == 1
        assert held[0].recv(1) == b""
    finally:
        for s in held:
            s.close()
    import time

    time.sleep(0.2)
    assert main(["ctl", "--socket", path, "counters"]) == 0
    assert '"holds": true' in capsys.readouterr().out
    assert main(["ctl", "--socket", path, "nope"]) == 1
    assert main(["ctl", "--socket", path + ".missing", "ping"]) == 1
    assert "cannot reach" in capsys.readouterr().err


def test_control_error_lives_with_the_other_errors_and_keeps_its_old_import_path():
    import fmipfast.control
    import fmipfast.errors

    assert fmipfast.control.ControlError is fmipfast.errors.ControlError
    assert issubclass(ControlError, fmipfast.errors.FmipError) and "ControlError" in fmipfast.errors.__all__

"""Prometheus metrics (fmipfast/metrics.py): the text format checked by prometheus_client's own parser (an
independent peer), the engine's counters exported exactly, and the scrape endpoint's bounds."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fmipfast.constants import DropReason
from fmipfast.control import RouterControl
from fmipfast.metrics import CONTENT_TYPE, Family, MetricsServer, counter_family, engine_families, render
from tests.test_engine import NAR, Net, _switch, _tunnelled, udp


def _parse(text: str) -> dict[str, dict[tuple, float]]:
    out: dict[str, dict[tuple, float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_render_escapes_and_merges():
    text = render([Family("fmipfast_x_total", "counter", "a\\b\nc").add(3, what='say "hi"\\\n'),
                   Family("fmipfast_x_total", "counter", "ignored").add(4, what="y"),
                   Family("fmipfast_g", "gauge", "g").add(0.5).add(float("inf"), k="inf")], {"router": "par"})
    assert text.count("# TYPE fmipfast_x_total counter") == 1
    got = _parse(text)
    assert got["fmipfast_x_total"][(("router", "par"), ("what", 'say "hi"\\\n'))] == 3
    assert got["fmipfast_x_total"][(("router", "par"), ("what", "y"))] == 4
    assert got["fmipfast_g"][(("router", "par"),)] == 0.5
    assert got["fmipfast_g"][(("k", "inf"), ("router", "par"))] == float("inf")
    with pytest.raises(ValueError, match="metric name"):
        Family("9bad", "counter", "")
    with pytest.raises(ValueError, match="label name"):
        Family("ok", "gauge", "").add(1, **{"bad-label": "x"})
    with pytest.raises(ValueError, match="counter, gauge or histogram"):
        Family("ok", "summary", "")


def test_a_histogram_renders_as_prometheus_reads_it():
    from fmipfast.histogram import Histogram
    from fmipfast.metrics import histogram_family

    h = Histogram((0.01, 0.1, 1.0))
    for v in (0.0, 0.01, 0.05, 0.5, 7.0):
        h.observe(v)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            h.observe(bad)
    with pytest.raises(ValueError):
        Histogram((0.1, 0.1))
    other = Histogram((0.01, 0.1, 1.0))
    other.observe(0.2)
    text = render([histogram_family("x_seconds", "x", {"as_req": h, "tgs_req": other}, "type")], {"realm": "R"})
    fams = list(text_string_to_metric_families(text))
    assert [(f.name, f.type) for f in fams] == [("fmipfast_x_seconds", "histogram")]
    got = {(s.name, s.labels["type"], s.labels.get("le")): s.value for s in fams[0].samples}
    assert all(s.labels["realm"] == "R" for s in fams[0].samples)
    assert [got[("fmipfast_x_seconds_bucket", "as_req", le)] for le in ("0.01", "0.1", "1.0", "+Inf")] == [2, 3, 4, 5]
    assert got[("fmipfast_x_seconds_count", "as_req", None)] == 5
    assert got[("fmipfast_x_seconds_sum", "as_req", None)] == pytest.approx(7.56)
    assert got[("fmipfast_x_seconds_bucket", "tgs_req", "0.1")] == 0 and got[("fmipfast_x_seconds_count", "tgs_req",
                                                                              None)] == 1


def test_engine_counters_are_exported_exactly():
    net = Net()
    _switch(net)
    net.send(net.core, _tunnelled(b"t0"))
    net.send(net.core, udp(dst="2001:db8:1::77", payload=b"held"))  # held at the route switch
    net.send(net.core, udp(dst="2001:db8:ff::99", src="2001:db8:1::a", eth_src="02:00:5e:00:00:0a",
                           eth_dst="02:00:5e:00:01:01", hlim=1))  # Time Exceeded: a drop
    e = net.engine
    got = _parse(render(engine_families(e), {"router": "par"}))
    frames = got["fmipfast_engine_frames_total"]
    for name, value in e.counters.items():
        assert frames[(("counter", name), ("router", "par"))] == value, name
    drops = got["fmipfast_engine_drops_total"]
    assert len(drops) == len(DropReason)  # every reason, zeros included
    for reason in DropReason:
        assert drops[(("reason", reason.name.lower()), ("router", "par"))] == int(e.drops[reason])
    assert sum(drops.values()) == e.conservation()["dropped"] > 0
    assert got["fmipfast_engine_conservation_ok"][(("router", "par"),)] == 1
    assert got["fmipfast_neighbor_cache_entries"][(("router", "par"),)] == len(e.ncache)
    assert got["fmipfast_route_switch_holds"][(("router", "par"),)] == 1
    assert got["fmipfast_buffer_held_frames"][(("router", "par"),)] == 1
    ports = got["fmipfast_port_frames_total"]
    assert {dict(k)["interface"] for k in ports} == {"acc0", "up0"}
    assert str(NAR)  # the harness's peer


def test_control_api_serves_the_same_text():
    net = Net()
    control = RouterControl(net.engine)
    control.attach_counters("handover", "protocol", lambda: {"attached": 2, "bad_mac": 0})
    text = control.dispatch("metrics", {})
    got = _parse(text)
    assert got["fmipfast_handover_total"][(("event", "attached"), ("router", "par"))] == 2
    assert "fmipfast_engine_frames_total" in got


def test_scrape_endpoint_and_its_bounds():
    calls = []

    def collect() -> str:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("a broken collector")
        return render([counter_family("demo", "d", {"a": 1})])

    async def scenario() -> list[bytes]:
        srv = MetricsServer(collect, "::1", 0, max_request=256, max_clients=4)
        await srv.start()
        port = srv.address[1]

        async def ask(raw: bytes) -> bytes:
            reader, writer = await asyncio.open_connection("::1", port)
            writer.write(raw)
            await writer.drain()
            data = await reader.read()
            writer.close()
            return data

        out = [await ask(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
               await ask(b"HEAD /metrics HTTP/1.1\r\n\r\n"),
               await ask(b"GET /metrics HTTP/1.1\r\n\r\n"),  # the collector raises: 500, the server lives
               await ask(b"GET /other HTTP/1.1\r\n\r\n"),
               await ask(b"POST /metrics HTTP/1.1\r\n\r\n"),
               await ask(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 400 + b"\r\n\r\n"),
               await ask(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n")]
        await srv.close()
        out.append(repr(srv.counters).encode())
        return out

    ok, head, broken, missing, post, big, query, counters = asyncio.run(scenario())
    assert ok.startswith(b"HTTP/1.1 200 OK\r\n") and f"Content-Type: {CONTENT_TYPE}".encode() in ok
    body = ok.split(b"\r\n\r\n", 1)[1].decode()
    assert _parse(body)["fmipfast_demo_total"][(("event", "a"),)] == 1
    assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
    assert broken.startswith(b"HTTP/1.1 500") and missing.startswith(b"HTTP/1.1 404")
    assert post.startswith(b"HTTP/1.1 400") and big.startswith(b"HTTP/1.1 400")
    assert query.startswith(b"HTTP/1.1 200")
    assert counters == repr({"scrapes": 3, "not_found": 1, "bad_request": 2, "refused": 0, "errors": 1,
                             "timeouts": 0}).encode()


def test_scrape_endpoint_refuses_beyond_max_clients():
    async def scenario() -> tuple[bytes, bytes]:
        srv = MetricsServer(lambda: "", "::1", 0, max_clients=1)
        await srv.start()
        port = srv.address[1]
        r1, w1 = await asyncio.open_connection("::1", port)  # holds the only slot, sends nothing yet
        await asyncio.sleep(0.05)
        r2, w2 = await asyncio.open_connection("::1", port)
        second = await r2.read()
        w1.write(b"GET /metrics HTTP/1.1\r\n\r\n")
        first = await r1.read()
        for w in (w1, w2):
            w.close()
        await srv.close()
        return first, second

    first, second = asyncio.run(scenario())
    assert second.startswith(b"HTTP/1.1 503") and first.startswith(b"HTTP/1.1 200")


def test_the_endpoints_count_their_own_refusals_in_the_scrape(tmp_path):
    """A client sending garbage to the control socket, and a bad HTTP request, show up in the scrape as
    ``fmipfast_control_server_total`` / ``fmipfast_metrics_server_total`` with the daemon's labels."""
    from fmipfast.control import start_endpoints

    net = Net()
    control = RouterControl(net.engine)
    path = str(tmp_path / "ctl.sock")

    async def scenario() -> str:
        servers = await start_endpoints(control, path, lambda: control.metrics("par"), "[::1]:0",
                                        {"router": "par"})
        try:
            reader, writer = await asyncio.open_unix_connection(path)
            for line in (b"{not json\n", b'{"id": 1, "cmd": "nope"}\n', b'{"id": 2, "cmd": "ping"}\n'):
                writer.write(line)
                await writer.drain()
                await reader.readline()
            writer.close()
            port = servers[1].address[1]  # type: ignore[union-attr]
            for raw in (b"POST /metrics HTTP/1.1\r\n\r\n", b"GET /metrics HTTP/1.1\r\n\r\n"):
                r, w = await asyncio.open_connection("::1", port)
                w.write(raw)
                await w.drain()
                data = await r.read()
                w.close()
            return data.split(b"\r\n\r\n", 1)[1].decode()
        finally:
            for srv in servers:
                await srv.close()

    got = _parse(asyncio.run(scenario()))
    ctl = got["fmipfast_control_server_total"]
    assert ctl[(("event", "requests"), ("router", "par"))] == 3
    assert ctl[(("event", "connections"), ("router", "par"))] == 1
    assert ctl[(("event", "invalid"), ("router", "par"))] == 1  # the line that is not JSON
    assert ctl[(("event", "errors"), ("router", "par"))] == 2  # both refused: the bad line, the unknown command
    scrape = got["fmipfast_metrics_server_total"]
    assert scrape[(("event", "bad_request"), ("router", "par"))] == 1
    assert "fmipfast_engine_frames_total" in got  # the daemon's own families are still there

"""Metrics in the Prometheus text exposition format (version 0.0.4; docs/design.md §7), and a small HTTP endpoint.

:func:`engine_families` turns an engine's counters into metric families — every frame disposition, every drop
reason (zeros included, so a rate() over a reason that never fired is 0, not absent), the conservation check,
the neighbor cache, the handover buffer, the route-switch holds and each port's statistics;
:func:`counter_family` does the same for any dict of counters (the handover protocol's, AH's).
:func:`render` writes families as text; :class:`MetricsServer` serves ``GET /metrics`` over asyncio.

Bounds (a scrape endpoint faces whatever connects to it): a request head of at most ``max_request`` octets
read within ``timeout`` seconds, at most ``max_clients`` connections at once (one counts until its socket is
closed); anything else gets a 4xx or 503 and the connection is closed -- aborted (``timeouts``) when the peer
has not taken the reply within ``timeout``.  The server never raises into the engine's loop.

May import: engine (read-only), config, errors, constants.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fmipfast.constants import DropReason

__all__ = ["Family", "render", "counter_family", "histogram_family", "engine_families", "kdc_families",
           "MetricsServer", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


@dataclass
class Family:
    """One metric family: ``name``, ``kind`` (counter | gauge | histogram), ``help``, samples of (labels,
    value).  A histogram's samples name their series (``<name>_bucket``, ``_sum``, ``_count``) in the label
    ``__name__``, as Prometheus itself does (:func:`histogram_family` makes them)."""

    name: str
    kind: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"metric name {self.name!r} is not valid")
        if self.kind not in ("counter", "gauge", "histogram"):
            raise ValueError(f"metric kind {self.kind!r}: counter, gauge or histogram")

    def add(self, value: float, **labels: str) -> Family:
        for key in labels:
            if key == "__name__" and self.kind == "histogram":
                continue
            if not _LABEL.match(key):
                raise ValueError(f"label name {key!r} is not valid")
        self.samples.append((labels, value))
        return self


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render(families: Iterable[Family], common: Mapping[str, str] | None = None) -> str:
    """The text format: HELP and TYPE once per family, then its samples; ``common`` labels (e.g. the router's
    name) on every sample.  Families with the same name are merged."""
    merged: dict[str, Family] = {}
    for fam in families:
        if fam.name in merged:
            merged[fam.name].samples.extend(fam.samples)
        else:
            merged[fam.name] = Family(fam.name, fam.kind, fam.help, list(fam.samples))
    lines = []
    for fam in merged.values():
        help_text = fam.help.replace("\\", "\\\\").replace("\n", "\\n")
        lines.append(f"# HELP {fam.name} {help_text}")
        lines.append(f"# TYPE {fam.name} {fam.kind}")
        for labels, value in fam.samples:
            all_labels = {**(common or {}), **labels}
            name = all_labels.pop("__name__", fam.name)
            text = ",".join(f'{k}="{_escape(str(v))}"' for k, v in all_labels.items())
            lines.append(f"{name}{{{text}}} {_number(value)}" if text else f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


def counter_family(name: str, help: str, counters: Mapping[str, int], label: str = "event") -> Family:
    """A counter family ``fmipfast_<name>_total`` with one sample per key of ``counters``."""
    fam = Family(f"fmipfast_{name}_total", "counter", help)
    for key, value in sorted(counters.items()):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            fam.add(value, **{label: key})
    return fam


def histogram_family(name: str, help: str, histograms: Mapping[str, Any] | Any, label: str = "") -> Family:
    """A histogram family ``fmipfast_<name>`` from a :class:`fmipfast.histogram.Histogram`, or from a mapping of
    them keyed by the value of ``label`` (one series per key, e.g. per request type)."""
    fam = Family(f"fmipfast_{name}", "histogram", help)
    items = sorted(histograms.items()) if isinstance(histograms, Mapping) else [("", histograms)]
    for key, hist in items:
        extra = {label: key} if label else {}
        for le, n in hist.cumulative():
            fam.add(n, __name__=f"{fam.name}_bucket", **extra, le=_number(le) if math.isinf(le) else repr(le))
        fam.add(hist.sum, __name__=f"{fam.name}_sum", **extra)
        fam.add(hist.count, __name__=f"{fam.name}_count", **extra)
    return fam


def kdc_families(kdc: Any) -> list[Family]:
    """A :class:`fmipfast.security.kdc.Kdc`'s metrics: every request outcome and refusal (``KDC_COUNTERS`` and
    the error codes given, zeros included), how long requests took by type, the rate limiter's table."""
    return [counter_family("kdc_requests", "KDC requests by outcome: answered (as_ok, tgs_ok, tgs_referral, "
                           "open_ok, open_forwarded), refused (errors, err_<code>), malformed, rate_limited, "
                           "sources_full, reply_cache_hits, dropped.", kdc.counters),
            histogram_family("kdc_request_duration_seconds", "Time from a request's arrival to its reply, by "
                             "request type (an OPEN-REQ of key case 3 includes the home KDC's answer).",
                             kdc.latency, "type"),
            Family("fmipfast_kdc_rate_limit_sources", "gauge", "Sources in the KDC's rate-limit table.")
            .add(len(kdc.buckets))]


def engine_families(engine: Any) -> list[Family]:
    """Everything :class:`fmipfast.engine.Engine` counts, as metric families."""
    out = [counter_family("engine_frames", "Frames the engine received, and what it did with them "
                          "(the terms of the conservation equation and the control-plane work).", engine.counters,
                          "counter"),
           counter_family("engine_requeue_frames", "Frames leaving a queue (a flushed handover buffer, a resolved "
                          "next hop), booked apart from the main equation.", engine.requeue_counters, "counter")]
    drops = Family("fmipfast_engine_drops_total", "counter", "Frames dropped, by reason (constants.DropReason).")
    for reason in DropReason:
        drops.add(int(engine.drops[reason]), reason=reason.name.lower())
    out.append(drops)
    requeue = Family("fmipfast_engine_requeue_drops_total", "counter", "Frames dropped after leaving a queue "
                     "(the second ledger: e.g. resolve_failed when a next hop never answered), by reason.")
    for reason in DropReason:
        requeue.add(int(engine.requeue_drops[reason]), reason=reason.name.lower())
    out.append(requeue)
    cons = engine.conservation()
    out.append(Family("fmipfast_engine_conservation_ok", "gauge",
                      "1 while received = the sum of every disposition (the engine's conservation check).")
               .add(1 if cons["holds"] else 0))
    nc = engine.ncache
    out.append(Family("fmipfast_neighbor_cache_entries", "gauge", "Entries in the neighbor cache.").add(len(nc)))
    out.append(Family("fmipfast_neighbor_cache_capacity", "gauge", "Capacity of the neighbor cache.")
               .add(engine.cfg.ncache_capacity))
    out.append(counter_family("neighbor_cache", "Neighbor cache operations and refusals.", nc.counters))
    buf = dict(engine.buffer.counters)
    held = Family("fmipfast_buffer_held_frames", "gauge", "Frames held in the per-MN handover buffers now.")
    out.append(held.add(buf.pop("queued", 0)))
    out.append(Family("fmipfast_buffer_held_bytes", "gauge", "Octets held in the handover buffers now.")
               .add(buf.pop("queued_bytes", 0)))
    out.append(counter_family("buffer", "Handover buffer events (pushed, flushed, dropped by cause).", buf))
    out.append(Family("fmipfast_route_switch_holds", "gauge", "MNs whose direct traffic waits for the PAR's "
                      "tunnel to drain.").add(len(engine.holds())))
    ports = Family("fmipfast_port_frames_total", "counter", "Per-interface port statistics (AF_PACKET: the "
                   "kernel's ring counters as kernel_*, and the ring walk's own).")
    for iface in engine.interfaces:
        for key, value in sorted(iface.port.statistics().items()):
            ports.add(value, interface=iface.name, counter=key)
    out.append(ports)
    return out


class MetricsServer:
    """``GET /metrics`` on ``host:port``: the text of ``collect()`` (called per scrape, on the loop)."""

    def __init__(self, collect: Callable[[], str], host: str, port: int, *, max_request: int = 8192,
                 max_clients: int = 8, timeout: float = 5.0) -> None:
        self.collect = collect
        self.host, self.port = host, port
        self.max_request, self.max_clients, self.timeout = max_request, max_clients, timeout
        self.counters = dict.fromkeys(("scrapes", "not_found", "bad_request", "refused", "errors", "timeouts"), 0)
        self._clients = 0
        self._server: asyncio.base_events.Server | None = None

    @property
    def address(self) -> tuple[str, int]:
        """Where it listens (the port the kernel chose for port 0)."""
        assert self._server is not None and self._server.sockets
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=self.max_request)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # a connection keeps its slot until its socket is closed: one whose peer does not take the reply is
        # aborted after ``timeout`` (a graceful close would wait for that peer for ever, the unsent reply and
        # the socket with it)
        self._clients += 1
        try:
            if self._clients > self.max_clients:
                self.counters["refused"] += 1
                await self._reply(writer, 503, "too many clients\n")
            else:
                await self._one(reader, writer)
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), self.timeout)
        except asyncio.TimeoutError:
            self.counters["timeouts"] += 1
        except (ConnectionError, OSError):
            pass
        finally:
            if not writer.transport.is_closing() or writer.transport.get_write_buffer_size():
                writer.transport.abort()
            self._clients -= 1

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.timeout)
        except (asyncio.LimitOverrunError, asyncio.IncompleteReadError, ValueError):
            self.counters["bad_request"] += 1
            await self._reply(writer, 400, "bad request\n")
            return
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) != 3 or parts[0] not in (b"GET", b"HEAD") or not parts[2].startswith(b"HTTP/1."):
            self.counters["bad_request"] += 1
            await self._reply(writer, 400, "bad request\n")
            return
        if parts[1].split(b"?", 1)[0] != b"/metrics":
            self.counters["not_found"] += 1
            await self._reply(writer, 404, "not found: the metrics are at /metrics\n")
            return
        try:
            body = self.collect()
        except Exception as exc:  # a bug in a collector must not take the engine's loop down
            self.counters["errors"] += 1
            await self._reply(writer, 500, f"collecting failed: {type(exc).__name__}\n")
            return
        self.counters["scrapes"] += 1
        await self._reply(writer, 200, body, CONTENT_TYPE, head_only=parts[0] == b"HEAD")

    async def _reply(self, writer: asyncio.StreamWriter, status: int, body: str,
                     content_type: str = "text/plain; charset=utf-8", *, head_only: bool = False) -> None:
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error",
                  503: "Service Unavailable"}[status]
        data = body.encode()
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(data)}"
                     f"\r\nConnection: close\r\n\r\n".encode() + (b"" if head_only else data))
        await asyncio.wait_for(writer.drain(), self.timeout)

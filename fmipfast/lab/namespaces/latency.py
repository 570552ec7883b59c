"""The fast handover's latency waterfall for ``fmipfast lab run``: when each step from the MN's link coming up
to its first datagram on the new link happened, on one clock.

Link up -- the zero of the waterfall and of ``link_up_to_first_packet_ms`` -- is the moment the MN's link is up,
not the moment the lab asked for it: the kernel's RTM_NEWLINK for the MN's interface with IFF_UP and
IFF_LOWER_UP, which it sends from its link watch once the MN's end of the link has carrier and can transmit
(docs/design.md §6).  The kernel does not timestamp netlink messages; the time is the first read of that
notification: the lab's carrier watch (a thread of the layer-2 switch's own process that does nothing else,
:mod:`fmipfast.lab.namespaces.mover`) or the MN agent's own read, whichever came first -- an upper bound of
the kernel's event by one thread wake-up.  The lab's request to set the port up (``link_up_request``) and
its acknowledgement (``link_up_ack``) stay in the waterfall, before it: on a real MN nothing corresponds to
them, the link comes up in the network card.

Clock: CLOCK_MONOTONIC in nanoseconds, which every network namespace of the host shares.  Each step says where
its time comes from (:data:`STEPS`):

* ``lab``: the lab (``time.monotonic_ns``): its ReadyToSwitch callback and the move handed to the layer-2
  switch; the switch process's reading of it, its port-down and link-up requests and their acknowledgements;
* ``par``: the PAR daemon's router-agent notes (``mono_ns``): the HRA handed to its machine, the tunnel on (the
  engine switched: the PCoA's datagrams go to the NAR from the next one on);
* ``netlink``: the first read of the MN's carrier notification (above);
* ``mn``: the MN agent's clock (CLOCK_MONOTONIC) when it read a carrier notification (down, then up), when
  ``sendmsg`` of the HRA and of the Attach began, when it handled the AuthenticatedMN;
* ``nar``: the NAR daemon's router-agent notes (``mono_ns``, CLOCK_MONOTONIC, in its JSON log).  The flush's
  note carries three more instants: when the engine had read the Attach (``pass_ns``, the engine's clock after
  the wake-up and the control socket's read, as it shows the batch to the agent's early look), when the agent
  looked at it (``hook_ns``), and when the flush began (``flush_ns``), once the Attach's MAC had been checked
  (:meth:`fmipfast.router.RouterAgent.on_early_control`).  The machine's own handling of the Attach follows
  the flush (``ar:recv``, ``nar_attach_agent``: decoded, the MAC checked again, the Authenticated-MN built);
  an Attach the early look left alone (none of its checks failed but, say, a session place was missing) is
  flushed by that handling instead, after it;
* ``kernel``: a kernel receive timestamp (SO_TIMESTAMPNS, CLOCK_REALTIME, taken once per packet as it crossed
  the interface), converted to CLOCK_MONOTONIC with one offset sampled at the start of the run: the Attach at
  the NAR's access interface and the NAR's first buffered datagram leaving it (:class:`Taps`, two
  :class:`fmipfast.rings.ControlSocket` in the NAR's namespace -- the Attach's timestamp is the one the NAR
  engine's TPACKET ring records for the same frame), and the MN's first datagram (its receiver's
  SO_TIMESTAMPNS, :mod:`fmipfast.lab.namespaces.traffic`).

tshark's timestamps (``--capture``) are CLOCK_REALTIME: subtract ``clock.realtime_minus_monotonic_ns``.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fmipfast.constants import FmipCode

__all__ = ["STEPS", "CHAIN", "link_up", "summarize", "percentile", "waterfall", "switch_steps", "format_waterfall",
           "format_steps", "read_router_notes", "Taps"]

#: (key, label, clock) of each step, in the order the protocol takes them.
STEPS: tuple[tuple[str, str, str], ...] = (
    ("mn_hra_sent", "MN: HRA sent", "mn"),
    ("par_hra", "PAR: HRA handed to its machine", "par"),
    ("par_tunnel_start", "PAR: tunnel on (no more on the old link)", "par"),
    ("ready_to_switch", "MN: ReadyToSwitch at the lab's callback", "lab"),
    ("move_command", "layer 2: move handed to the switch", "lab"),
    ("move_read", "layer 2: the switch has read it", "lab"),
    ("link_down_request", "layer 2: port down requested", "lab"),
    ("mn_carrier_down", "MN: carrier down read from netlink", "mn"),
    ("last_on_old_link", "MN: last datagram on the old link", "kernel"),
    ("link_down", "layer 2: port down acknowledged", "lab"),
    ("link_up_request", "layer 2: the lab asks for the MN's port up", "lab"),
    ("link_up_ack", "layer 2: port up acknowledged (netlink)", "lab"),
    ("link_up", "link up: the MN's carrier (RTM_NEWLINK)", "netlink"),
    ("mn_carrier", "MN: carrier up read from netlink", "mn"),
    ("mn_attach_sent", "MN: Attach sent", "mn"),
    ("nar_attach_kernel", "NAR: Attach at its interface", "kernel"),
    ("nar_pass", "NAR: its engine has read the Attach", "nar"),
    ("nar_hook", "NAR: Attach at its agent's early look", "nar"),
    ("nar_flush_start", "NAR: flush begins (proxy entry complete)", "nar"),
    ("nar_attach_agent", "NAR: Attach handled by its machine", "nar"),
    ("nar_verified", "NAR: AP-REQ verified (at the HI)", "nar"),
    ("nar_first_tx", "NAR: first buffered datagram out", "kernel"),
    ("nar_flushed", "NAR: proxy entry complete, flushed", "nar"),
    ("nar_amn_sent", "NAR: AuthenticatedMN sent", "nar"),
    ("mn_first_datagram", "MN: first datagram on the new link", "kernel"),
    ("mn_authenticated", "MN: AuthenticatedMN received", "mn"),
)
LABELS = {k: label for k, label, _ in STEPS}

#: Steps that causally follow each other (each needs the one before it); the AMN, the flush note and the MN's
#: receipt of the AMN race with the flushed datagrams, and the verification happened before the move.
CHAIN = ("mn_hra_sent", "ready_to_switch", "move_command", "move_read", "link_down_request", "link_down",
         "link_up_request", "link_up", "mn_carrier", "mn_attach_sent",
         "nar_attach_kernel", "nar_flush_start", "nar_first_tx", "mn_first_datagram")


# ------------------------------------------------------------------------------------------ statistics


def percentile(ordered: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of ``ordered`` (sorted, not empty): the smallest value with at least
    ``p`` % of the values at or below it -- always a value that was measured (p99 of 10 runs is the maximum)."""
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0 < p <= 100:
        raise ValueError(f"p must be within (0, 100], got {p}")
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def summarize(values: Iterable[float | None]) -> dict[str, float] | None:
    """``n``, ``median``, ``p90``, ``p99``, ``max`` and ``min`` of the values that are not None; None when
    there are none."""
    ordered = sorted(float(v) for v in values if v is not None)
    if not ordered:
        return None
    for v in ordered:
        if math.isnan(v):
            raise ValueError("summarize: NaN is not a measurement")
    return {"n": len(ordered), "median": statistics.median(ordered), "p90": percentile(ordered, 90),
            "p99": percentile(ordered, 99), "max": ordered[-1], "min": ordered[0]}


# -------------------------------------------------------------------------------------------- waterfall


def _first(times: Iterable[int], after: int | None) -> int | None:
    eligible = [t for t in times if after is None or t >= after]
    return min(eligible) if eligible else None


def link_up(up_request_ns: int, carrier_ns: int | None,
            mn_notes: Sequence[tuple[str, Mapping[str, Any], int]]) -> int | None:
    """When the MN's link came up: the first read of its carrier-up notification at or after the lab's request
    ``up_request_ns`` -- the lab's watch (``carrier_ns``, None or 0 when not watched) or the MN agent's own
    (its ``carrier`` note with ``up``), whichever is earlier; None when neither saw it."""
    agent = _first((t for n, f, t in mn_notes if n == "carrier" and f.get("up") is True), up_request_ns)
    seen = [t for t in (carrier_ns or None, agent) if t is not None and t >= up_request_ns]
    return min(seen) if seen else None


def waterfall(up_ns: int, up_ack_ns: int | None, mn_notes: Sequence[tuple[str, Mapping[str, Any], int]],
              nar_notes: Sequence[Mapping[str, Any]], attach_rx_ns: Sequence[int], first_tx_ns: int | None,
              first_datagram_ns: int | None, *,
              before: Mapping[str, int | None] | None = None, carrier_ns: int | None = None) -> dict[str, float | None]:
    """Each step of :data:`STEPS` in ms since the MN's link came up (:func:`link_up`; the lab's request
    ``up_ns`` when nobody saw the carrier), None when it did not happen or was not seen.  ``up_ns``: the lab's
    request to set the MN's port up; ``up_ack_ns``: when the kernel acknowledged it; ``carrier_ns``: when the
    lab's watch read the MN's carrier-up.  ``mn_notes``: the MN agent's (name, fields, monotonic ns);
    ``nar_notes``: the NAR daemon's notes (``event``, fields, ``mono_ns``); ``attach_rx_ns``: kernel timestamps
    (monotonic) of Attach frames arriving at the NAR; ``first_tx_ns``: of the first buffered datagram it sent;
    ``first_datagram_ns``: the MN's first arrival after ``up_ns``; ``before``: the steps before the gap
    (:func:`switch_steps`, ``last_on_old_link``; monotonic ns), negative in the result.  Every
    step is the first of its kind at or after the step it depends on, so a retransmission or an earlier
    exchange is never taken for it."""
    def mn(name: str, after: int | None, **match: Any) -> int | None:
        return _first((t for n, f, t in mn_notes if n == name and all(f.get(k) == v for k, v in match.items())),
                      after)

    def nar(event: str, after: int | None, **match: Any) -> int | None:
        return _first((int(d["mono_ns"]) for d in nar_notes if d.get("event") == event and "mono_ns" in d
                       and all(d.get(k) == v for k, v in match.items())), after)

    up = link_up(up_ns, carrier_ns, mn_notes)
    zero = up if up is not None else up_ns
    at: dict[str, int | None] = {"link_up_request": up_ns, "link_up_ack": up_ack_ns or None, "link_up": up,
                                 **(before or {})}
    at["mn_carrier"] = mn("carrier", up_ns, up=True)
    at["mn_attach_sent"] = mn("send", up_ns, message="Attach")
    after_attach = at["mn_attach_sent"] or up_ns
    at["nar_attach_kernel"] = _first(attach_rx_ns, up_ns)
    at["nar_attach_agent"] = nar("ar:recv", up_ns, fmip_message="Attach")
    after_rx = at["nar_attach_agent"] or after_attach
    at["nar_flushed"] = nar("flushed", after_attach)  # the early look flushes before the machine's receipt
    flushed = next((d for d in nar_notes if d.get("event") == "flushed" and d.get("mono_ns") == at["nar_flushed"]),
                   {})
    for key, name in (("nar_pass", "pass_ns"), ("nar_hook", "hook_ns"), ("nar_flush_start", "flush_ns")):
        value = flushed.get(name)
        at[key] = value if isinstance(value, int) and value >= up_ns else None
    # the NAR verifies the MN's AP-REQ when the HI brings it, before the move (draft §6): the last verification
    # before the flush, usually at a negative time
    verified = [int(d["mono_ns"]) for d in nar_notes if d.get("event") == "verified" and "mono_ns" in d
                and d["mono_ns"] <= (at["nar_flushed"] or after_rx)]
    at["nar_verified"] = max(verified) if verified else None
    at["nar_first_tx"] = first_tx_ns if first_tx_ns is not None and first_tx_ns >= up_ns else None
    at["nar_amn_sent"] = nar("ar:send", after_rx, fmip_message="AuthenticatedMN")
    at["mn_first_datagram"] = first_datagram_ns
    at["mn_authenticated"] = mn("recv", after_attach, message="AuthenticatedMN")
    return {k: None if at.get(k) is None else round((at[k] - zero) / 1e6, 3)  # type: ignore[operator]
            for k, _, _ in STEPS}


def switch_steps(ready_ns: int | None, mn_notes: Sequence[tuple[str, Mapping[str, Any], int]],
                 par_notes: Sequence[Mapping[str, Any]], *, command_ns: int | None = None,
                 read_ns: int | None = None, down_request_ns: int | None = None,
                 down_ns: int | None = None) -> dict[str, int | None]:
    """The steps before the gap (monotonic ns, None when not seen), for :func:`waterfall`'s ``before``: the MN's
    HRA (its last ``send`` of one before ``ready_ns``, the lab's ReadyToSwitch callback), the PAR's receipt of
    it and its tunnel going on (the first of each after the HRA left), the move handed to the switch
    (``command_ns``), read there (``read_ns``), the port-down request and its acknowledgement, and the MN's
    read of its carrier going down (the first after ReadyToSwitch)."""
    hra = max((t for n, f, t in mn_notes if n == "send" and f.get("message") == "HandoverRedirectAck"
               and (ready_ns is None or t <= ready_ns)), default=None)

    def par(event: str, **match: Any) -> int | None:
        return _first((int(d["mono_ns"]) for d in par_notes if d.get("event") == event and "mono_ns" in d
                       and all(d.get(k) == v for k, v in match.items())), hra)

    return {"mn_hra_sent": hra, "par_hra": par("ar:recv", fmip_message="HandoverRedirectAck") if hra else None,
            "par_tunnel_start": par("tunnel_start") if hra else None, "ready_to_switch": ready_ns,
            "move_command": command_ns or None, "move_read": read_ns or None,
            "link_down_request": down_request_ns or None,
            "mn_carrier_down": _first((t for n, f, t in mn_notes if n == "carrier" and f.get("up") is False),
                                      ready_ns) if ready_ns is not None else None,
            "link_down": down_ns}


def format_waterfall(wf: Mapping[str, float | None], width: int = 24) -> list[str]:
    """The waterfall as table lines, in time order: ms since link up, the step's own share (since the step
    before it), a bar placing that share on the whole span, the label and its clock."""
    rows = sorted(((v, k) for k, v in wf.items() if v is not None), key=lambda x: x[0])
    clocks = {k: c for k, _, c in STEPS}
    out = [f"  {'since link up':>13s} {'step':>9s}  {'':{width}s}  what (clock)"]
    if not rows:
        return out
    lo, hi = rows[0][0], rows[-1][0]
    scale = width / (hi - lo) if hi > lo else 0.0
    prev = lo
    for v, k in rows:
        start = int((prev - lo) * scale)
        bar = (" " * start + "#" * max(1 if v > prev else 0, int((v - prev) * scale)))[:width]
        out.append(f"  {v:10.3f} ms {v - prev:+8.3f}  {bar:{width}s}  {LABELS.get(k, k)} ({clocks.get(k, '?')})")
        prev = v
    missing = [k for k, v in wf.items() if v is None]
    if missing:
        out.append(f"  not seen: {', '.join(missing)}")
    return out


def format_steps(summary: Mapping[str, Mapping[str, float] | None], keys: Iterable[str],
                 labels: Mapping[str, str] | None = None) -> list[str]:
    """One line per key: median, p90, p99, max (and n) of a :func:`summarize` result."""
    out = [f"  {'':44s} {'median':>9s} {'p90':>9s} {'p99':>9s} {'max':>9s}  n"]
    for k in keys:
        s = summary.get(k)
        if s is None:
            continue
        name = (labels or {}).get(k, k)
        out.append(f"  {name[:44]:44s} {s['median']:9.3f} {s['p90']:9.3f} {s['p99']:9.3f} {s['max']:9.3f}  "
                   f"{s['n']:.0f}")
    return out


_MESSAGE = re.compile(r"(?:^|\s)message=(\S+)")


def read_router_notes(path: str) -> list[dict[str, Any]]:
    """The router-agent notes of a daemon's JSON log (``[logging] format = "json"``): the objects with an
    ``event`` and a ``mono_ns``; other lines (text, tracebacks) are skipped."""
    import json

    out = []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.startswith("{"):
                    continue
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue
                if isinstance(doc, dict) and "event" in doc and isinstance(doc.get("mono_ns"), int):
                    # a note's own "message" field (the fmipfast message sent or received) loses to the log
                    # record's "message" (its text) in the JSON object: take it back from the text
                    named = _MESSAGE.search(str(doc.get("message", "")))
                    doc["fmip_message"] = named.group(1) if named else None
                    out.append(doc)
    except FileNotFoundError:
        return []
    return out


# ----------------------------------------------------------------------------------------------- taps


@dataclass
class Taps:
    """Two :class:`~fmipfast.rings.ControlSocket` on the NAR's access interface, created in the calling
    thread's network namespace: one for fmipfast messages both ways (kernel timestamps of the Attach), one for
    the first datagram to ``port`` the NAR sends (the first it flushed), closed once that one came -- so the
    stream itself costs the lab nothing.  ``offset_ns``: CLOCK_REALTIME - CLOCK_MONOTONIC."""

    ifname: str
    fmip_type: int
    port: int
    offset_ns: int
    #: (message name, sll_pkttype, monotonic ns) of every fmipfast message on the interface
    messages: list[tuple[str, int, int]] = field(default_factory=list)
    first_tx_ns: int | None = None

    def __post_init__(self) -> None:
        from fmipfast.rings import ControlSocket, icmp6_types_bpf, udp_port_bpf

        self.fmip = ControlSocket(self.ifname, icmp6_types_bpf([self.fmip_type], through_ah=False),
                                  ignore_outgoing=False)
        try:
            self.udp: Any = ControlSocket(self.ifname, udp_port_bpf(self.port, outgoing_only=True),
                                          ignore_outgoing=False)
        except BaseException:
            self.fmip.close()
            raise
        self._loop: Any = None

    def attach(self, loop: Any) -> None:
        self._loop = loop
        loop.add_reader(self.fmip.fileno(), self._on_fmip)
        loop.add_reader(self.udp.fileno(), self._on_udp)

    def _on_fmip(self) -> None:
        for p in self.fmip.receive():
            code = p.frame[55] if len(p.frame) > 55 else -1
            try:
                name = "".join(w.capitalize() for w in FmipCode(code).name.split("_"))
            except ValueError:
                name = f"code {code}"
            if name == "AuthenticatedMn":
                name = "AuthenticatedMN"
            self.messages.append((name, p.pkttype, p.ts_ns - self.offset_ns))

    def _on_udp(self) -> None:
        got = self.udp.receive(1)
        if got and self.first_tx_ns is None:
            self.first_tx_ns = got[0].ts_ns - self.offset_ns
            self._close_udp()

    def _close_udp(self) -> None:
        if self.udp is not None:
            if self._loop is not None:
                self._loop.remove_reader(self.udp.fileno())
            self.udp.close()
            self.udp = None

    def attach_rx_ns(self) -> list[int]:
        from fmipfast.rings import PACKET_OUTGOING

        return [t for name, kind, t in self.messages if name == "Attach" and kind != PACKET_OUTGOING]

    def close(self) -> None:
        self._close_udp()
        if self._loop is not None:
            self._loop.remove_reader(self.fmip.fileno())
            self._loop = None
        self.fmip.close()

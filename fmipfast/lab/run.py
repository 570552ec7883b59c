"""``fmipfast lab run``: one measured fast handover over the real lab (DESIGN.md §6), as root.

The lab is built (:class:`~fmipfast.lab.topology.LabTopology`), ``fmipfast router`` engines with the handover
protocol (``[router.security]``: each router's own service key — Kerberos case 1 — and manual AH SAs between
the two) run in ``par`` and ``nar``, and this process runs the MN agent inside ``mn`` on its kernel stack.
Steps:

1. the MN attaches to the PAR (Attach with its AP-REQ -> Authenticated-MN);
2. the CN's UDP stream (``fmipfast.lab.traffic``) starts towards the PCoA;
3. after ``lead_ms`` the PAR is told to hand the MN over (the control API's ``handover``: network-triggered,
   draft §2.1): Handover Redirect -> HRA, HI/HE under AH across the core router;
4. at the MN's ReadyToSwitch its bridge port moves from ``brA`` to ``brB`` with the layer-2 gap;
5. the MN attaches at the NAR with the NCoA (no DAD), the NAR flushes what it buffered, the MN keeps its PCoA
   (``keep_pcoa``) so packets the CN still sends there arrive through the PAR's tunnel and the NAR's proxy.

The result has the keys of ``fmipfast demo --json`` (:func:`fmipfast.lab.traffic.measure`) plus the signalling
timeline and both engines' final counters with their conservation check.  Everything is torn down at the end,
on error and on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

from fmipfast.lab import topology, traffic
from fmipfast.lab.topology import LabError, LabTopology
from fmipfast.security import lwkerb as L

__all__ = ["RunOptions", "run", "repeat", "SUMMARY_KEYS"]

SUMMARY_KEYS = ("interruption_ms", "link_up_to_first_packet_ms", "lost", "duplicated", "reordered")

P_PAR = L.Principal("host/par", "A.EXAMPLE")
P_NAR = L.Principal("host/nar", "B.EXAMPLE")
P_MN = L.Principal("mn1", "HOME.EXAMPLE")
KEYS = {"par": L.Key(1, bytes((7 + i) & 0xFF for i in range(32))),
        "nar": L.Key(1, bytes((91 + i) & 0xFF for i in range(32)))}
AH_PAR_TO_NAR = (0x1001, bytes(range(32)))
AH_NAR_TO_PAR = (0x2002, bytes(range(32, 64)))
PORT = 5555
BUFFER_PACKETS = 4096  # per MN at the NAR: 20 000 pps x (gap + attach) with room to spare


@dataclass(frozen=True)
class RunOptions:
    rate: int = 1000
    gap_ms: float = 30.0
    lead_ms: float = 500.0   # stream time before the handover is triggered
    tail_ms: float = 700.0   # stream time after the MN attached at the NAR
    prefix: str = "fmipfast-run-"
    buffer: bool = True
    #: Time from the MN's ReadyToSwitch to its port going down (the link layer's own reaction time).  At 0 the
    #: old link goes down under datagrams the PAR put on it just before it processed the HRA: they are lost
    #: (see BENCHMARKS.md); the draft's buffering covers what the PAR routes after it switched.
    switch_delay_ms: float = 0.0


def _security(lab: LabTopology, which: str) -> dict[str, Any]:
    own = P_PAR if which == "par" else P_NAR
    peer = lab.nar_address if which == "par" else lab.par_address
    spi_in, key_in = AH_NAR_TO_PAR if which == "par" else AH_PAR_TO_NAR
    spi_out, key_out = AH_PAR_TO_NAR if which == "par" else AH_NAR_TO_PAR
    return {"principal": str(own),
            "keys": [{"principal": str(own), "kvno": KEYS[which].kvno, "key": KEYS[which].value.hex()}],
            "peers": [{"address": str(peer), "spi_in": spi_in, "key_in": key_in.hex(), "spi_out": spi_out,
                       "key_out": key_out.hex()}]}


def _tickets(now: float) -> dict[L.Principal, L.Credentials]:
    """Case 1: the MN holds a ticket for each router's own key (issued here: the lab is its own KDC)."""
    out = {}
    for which, principal in (("par", P_PAR), ("nar", P_NAR)):
        skey = L.Key(0, os.urandom(32))
        start, end = int(now) - 10, int(now) + 3600
        part = L.EncTicketPart(L.TicketFlag.PRE_AUTHENT, start, start, end, skey.value, P_MN)
        ticket = L.Ticket.issue(principal, KEYS[which], part)
        out[principal] = L.Credentials(P_MN, principal, ticket, skey, part.flags, start, start, end)
    return out


def _start_engine(lab: LabTopology, which: str, work: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    cfg = work / f"{which}.toml"
    cfg.write_text(lab.router_config(which, security=_security(lab, which),
                                       buffer_per_mn_packets=BUFFER_PACKETS, buffer_per_mn_bytes=BUFFER_PACKETS * 2048))
    sock = str(work / f"{which}.sock")
    proc = lab.spawn(which, [sys.executable, "-m", "fmipfast", "router", "--config", str(cfg), "--control", sock],
                     env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        err = proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
        raise LabError(f"the {which} engine did not start: {line.strip()} {err.strip()}")
    return proc, sock


def _stop_engine(proc: subprocess.Popen) -> dict[str, Any]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines or not lines[-1].startswith("{"):
        raise LabError(f"an engine failed on exit ({proc.returncode}): {err.strip()[-500:]}")
    return json.loads(lines[-1])


def run(opts: RunOptions = RunOptions()) -> dict[str, Any]:
    """One fast handover over the real lab; see the module doc."""
    from fmipfast.control import ControlClient
    from fmipfast.mn import MnState
    from fmipfast.mnagent import MnAgent

    topology.cleanup(opts.prefix)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    with tempfile.TemporaryDirectory(prefix="fmipfast-run-") as tmp, LabTopology(prefix=opts.prefix) as lab:
        work = Path(tmp)
        par, par_sock = _start_engine(lab, "par", work, env)
        nar, _ = _start_engine(lab, "nar", work, env)
        tickets = _tickets(time.time())
        timeline: list[tuple[str, int]] = []
        move: list[topology.LinkMove] = []

        async def provider(server: L.Principal) -> L.Credentials:
            return tickets[server]

        with lab.ns["mn"].enter():
            agent = MnAgent(lab.mn_if, ticket_provider=provider, keep_pcoa=True,
                            on_note=lambda n, t: timeline.append((_note(n), t)))

        async def scenario() -> dict[str, Any]:
            loop = asyncio.get_running_loop()
            stop = asyncio.Event()
            runner = loop.create_task(agent.run(stop))
            moved = asyncio.Event()

            async def do_move(nar_addr: IPv6Address) -> None:
                timeline.append(("ready_to_switch", time.monotonic_ns()))
                if opts.switch_delay_ms > 0:
                    await asyncio.sleep(opts.switch_delay_ms / 1000)
                agent.next_link = "B"
                move.append(await loop.run_in_executor(None, lab.move_mn, "B", opts.gap_ms))
                moved.set()

            agent.on_ready_to_switch = do_move
            try:
                agent.start(lab.par_address, P_PAR, lab.pcoa, "A")
                await _until(lambda: agent.mn.state == MnState.ATTACHED, "the initial attach", 5)
                timeline.append(("attached_par", time.monotonic_ns()))
                count = int(opts.rate * (opts.lead_ms + 1000 + opts.tail_ms) / 1000)
                out = work / "recv.json"
                py = [sys.executable, "-m", "fmipfast.lab.traffic"]
                recv = lab.spawn("mn", [*py, "recv", "--bind", "::", "--port", str(PORT), "--duration",
                                        str(count / opts.rate + 5), "--count", str(count), "--out", str(out)],
                                 env=env)
                assert recv.stdout is not None
                line = await loop.run_in_executor(None, recv.stdout.readline)
                if line.strip() != "READY":
                    raise LabError(f"the receiver did not start: {line!r}")
                send = lab.spawn("cn", [*py, "send", "--to", str(lab.pcoa), "--port", str(PORT), "--rate",
                                        str(opts.rate), "--count", str(count)], env=env)
                await asyncio.sleep(opts.lead_ms / 1000)
                timeline.append(("trigger", time.monotonic_ns()))
                client = ControlClient(par_sock)
                await loop.run_in_executor(None, lambda: client.call(
                    "handover", pcoa=str(lab.pcoa), nar=str(lab.nar_address), nar_principal=str(P_NAR),
                    buffer=opts.buffer))
                await _until(lambda: agent.mn.counters["handovers_completed"] == 1, "the handover", 10)
                timeline.append(("attached_nar", time.monotonic_ns()))
                s_out, s_err = await loop.run_in_executor(None, lambda: send.communicate(timeout=60))
                if send.returncode != 0:
                    raise LabError(f"the CN sender failed: {s_err}")
                await loop.run_in_executor(None, lambda: recv.communicate(timeout=60))
                released = await agent.release_retired()
                return {"sent": json.loads(s_out), "received": json.loads(out.read_text()),
                        "released": [str(a) for a in released]}
            finally:
                stop.set()
                await asyncio.wait_for(runner, 5)

        try:
            got = asyncio.run(scenario())
        finally:
            agent.close()
        engines = {"par": _stop_engine(par), "nar": _stop_engine(nar)}
        m = traffic.measure(got["sent"]["sent"], got["received"]["received"],
                            move[0].link_changes() if move else ())
        if move:
            timeline += [("layer 2: port down acknowledged (leaves brA)", move[0].down_ns),
                         ("layer 2: port up on brB", move[0].up_ns)]
            timeline.sort(key=lambda x: x[1])
        t0 = timeline[0][1] if timeline else 0
        m["timeline_ms"] = [(what, round((t - t0) / 1e6, 3)) for what, t in timeline]
        m["lost_ranges"] = _lost_ranges(got["sent"], got["received"]["received"], t0)
        m["engines"] = {k: {"conservation": v["conservation"], "counters": v["counters"]} for k, v in engines.items()}
        m["mn_counters"] = {k: v for k, v in agent.counters.items() if v}
        return m


def repeat(opts: RunOptions, n: int) -> dict[str, Any]:
    """``n`` runs; the median, minimum and maximum of each of :data:`SUMMARY_KEYS`, and every run."""
    import statistics

    runs = [run(opts) for _ in range(n)]
    summary = {}
    for key in SUMMARY_KEYS:
        values = [r[key] for r in runs if r.get(key) is not None]
        summary[key] = ({"median": statistics.median(values), "min": min(values), "max": max(values)}
                        if values else None)
    return {"rate": opts.rate, "gap_ms": opts.gap_ms, "runs": len(runs), "summary": summary, "each": runs}


def _lost_ranges(sent: dict[str, Any], received: list[list[int]], t0: int) -> list[dict[str, Any]]:
    """The runs of sequence numbers that never arrived, with when they were sent on the timeline's clock
    (the sender paces from ``first_ns`` at its rate), so a loss can be placed against the signalling."""
    seen = {r[0] for r in received}
    n, first, rate = sent["sent"], sent["first_ns"], sent.get("rate") or 0
    out: list[dict[str, Any]] = []
    seq = 0
    while seq < n:
        if seq in seen:
            seq += 1
            continue
        start = seq
        while seq < n and seq not in seen:
            seq += 1
        entry: dict[str, Any] = {"first": start, "last": seq - 1}
        if rate:
            entry["sent_ms"] = round((first + start * 1e9 / rate - t0) / 1e6, 3)
        out.append(entry)
        if len(out) >= 100:
            break
    return out


def _note(n: Any) -> str:
    f = n.fields
    if n.name == "state":
        return f"mn state {f.get('old')} -> {f.get('new')}"
    if n.name in ("send", "recv"):
        peer = f"to {f.get('dst')}" if n.name == "send" else f"from {f.get('src')}"
        return f"mn {n.name} {f.get('message')} {peer}"
    if n.name == "link":
        return f"mn link {'up' if f.get('up') else 'down'} {f.get('link') or ''}".strip()
    return f"mn {n.name} {f.get('reason', '')}".strip()


async def _until(cond: Any, what: str, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise LabError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)



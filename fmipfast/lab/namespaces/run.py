"""``fmipfast lab run``: one measured fast handover over the real lab (docs/design.md §6), as root.

The lab is built (:class:`~fmipfast.lab.namespaces.topology.LabTopology`), ``fmipfast router`` engines with the handover
protocol (``[router.security]``: each router's own service key — Kerberos case 1 — and manual AH SAs between
the two) run in ``par`` and ``nar``, and this process runs the MN agent inside ``mn`` on its kernel stack.
Steps:

1. the MN attaches to the PAR (Attach with its AP-REQ -> Authenticated-MN);
2. the CN's UDP stream (``fmipfast.lab.namespaces.traffic``) starts towards the PCoA;
3. after ``lead_ms`` the PAR is told to hand the MN over (the control API's ``handover``: network-triggered,
   draft §2.1): Handover Redirect -> HRA, HI/HE under AH across the core router;
4. at the MN's ReadyToSwitch its bridge port moves from ``brA`` to ``brB`` with the layer-2 gap;
5. the MN attaches at the NAR with the NCoA (no DAD); the Attach carries a Binding Update (an RFC 6275
   Mobility Header from the NCoA to the CN), which the NAR forwards after flushing what it buffered; the CN
   (the stream's sender, a small binding-cache receiver on a raw IPPROTO_MH socket) follows it and answers with
   a Binding Acknowledgement; the MN keeps its PCoA (``keep_pcoa``) until then, so packets the CN still sent
   there arrive through the PAR's tunnel, and releases it ``PCOA_DRAIN_MS`` after the BAck.  Without a BAck
   within 1 s the MN sends a BU of its own (RFC 6275 §11.8).

With ``kerberos="gssapi"`` (``fmipfast lab run --kerberos gssapi``) the same handover authenticates with
standard Kerberos (docs/security.md §10): two throwaway MIT realms (:func:`fmipfast.lab.mitrealms.two_realms`:
``krb5kdc`` processes on this host's loopback, A.EXAMPLE for the MN and the PAR, B.EXAMPLE for the NAR), the
engines accept with keytabs (``mechanism = "gssapi"``, an MIT replay cache each), and the MN initiates from
its ``kinit`` credential cache: the PAR's service ticket at the initial attach, the NAR's precached in the
background when the PAR's Router Advertisement names realm B (``adjacent_realms``), before the handover is
triggered -- as the lwkerb run's tickets are all issued beforehand.  Key case 1 only.

The result has the keys of ``fmipfast demo --json`` (:func:`fmipfast.lab.namespaces.traffic.measure`) plus the
signalling timeline and both engines' final counters with their conservation check.  Everything is torn down at
the end, on error and on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

from fmipfast.lab.namespaces import latency, topology, traffic
from fmipfast.lab.namespaces.topology import LabError, LabTopology
from fmipfast.mobility import MobilitySocket
from fmipfast.security import lwkerb as L

__all__ = ["RunOptions", "run", "repeat", "summarize_runs", "plot", "router_security", "tickets", "kdc_configs",
           "mn_kerberos", "KERBEROS",
           "SUMMARY_KEYS", "P_PAR", "P_NAR"]

SUMMARY_KEYS = ("interruption_ms", "beyond_gap_ms", "beyond_gap_less_source_pause_ms", "link_up_to_first_packet_ms",
                "link_up_request_to_first_packet_ms", "lost", "duplicated", "reordered", "source_pause_ms")

P_PAR = L.Principal("host/par", "A.EXAMPLE")
P_NAR = L.Principal("host/nar", "B.EXAMPLE")
P_MN = L.Principal("mn1", "HOME.EXAMPLE")
P_ACCESS_B = L.Principal("access/B.EXAMPLE", "B.EXAMPLE")  # case 2: only KDC-B holds its key
ACCESS_B_KEY = L.Key(1, bytes((151 + i) & 0xFF for i in range(32)))
P_ACCESS_HOME = L.Principal("access/HOME.EXAMPLE", "HOME.EXAMPLE")  # case 3: only the MN's home KDC holds it
ACCESS_HOME_KEY = L.Key(1, bytes((171 + i) & 0xFF for i in range(32)))
TGT_HOME_KEY = L.Key(1, bytes((191 + i) & 0xFF for i in range(32)))
X_B_HOME = L.Key(1, bytes((231 + i) & 0xFF for i in range(32)))  # krbtgt/HOME.EXAMPLE@B.EXAMPLE: B asks HOME
TGT_B_KEY = L.Key(1, bytes((211 + i) & 0xFF for i in range(32)))
KEYS = {"par": L.Key(1, bytes((7 + i) & 0xFF for i in range(32))),
        "nar": L.Key(1, bytes((91 + i) & 0xFF for i in range(32)))}
AH_PAR_TO_NAR = (0x1001, bytes(range(32)))
AH_NAR_TO_PAR = (0x2002, bytes(range(32, 64)))
PORT = 5555
#: ``RunOptions.kerberos``: light-weight Kerberos (tickets issued by the lab itself) or standard Kerberos (MIT KDCs).
KERBEROS = ("lwkerb", "gssapi")
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
    #: "fast" (the draft) or "baseline" (plain Mobile IPv6: kernel SLAAC with DAD on the new link from the
    #: NAR's Router Advertisements, then the binding update to the CN).
    mode: str = "fast"
    #: Write every frame of both access links (the PAR's and the NAR's bridge ports) here, pcapng by dumpcap.
    capture: str | None = None
    #: Link reversal (draft Appendix A): at ReadyToSwitch the MN's port goes down and comes back on link A;
    #: the MN tells the PAR to stop forwarding (ForwardingDisable) and the stream resumes there.
    reverse: bool = False
    #: The engines' TPACKET_V3 block retire timeout (``[router.ring] timeout_ms``): an Attach waits up to this
    #: long in the NAR's ring before its agent sees it.
    ring_timeout_ms: int = 2
    #: The engines' ``[router.ring] mode``: "blocks" (TPACKET_V3, read at the retire timer at low load) or
    #: "frames" (TPACKET_V2, every frame at once).
    ring_mode: str = "blocks"
    #: Kerberos key case at the NAR (draft §3): 1 its own key; 2 an access ticket it has its realm's KDC (a
    #: separate ``fmipfast kdc`` process in the ``nar`` namespace, on loopback) open; 3 an access ticket of the
    #: MN's home realm, which that KDC has the home KDC (another process, reached with the inter-realm key
    #: ``krbtgt/HOME.EXAMPLE@B.EXAMPLE``) open.
    case: int = 1
    #: The Kerberos mechanism (docs/security.md §10): "lwkerb", or "gssapi" (real MIT KDCs; key case 1 only).
    kerberos: str = "lwkerb"
    #: The routers' ``[router.scheduling]`` (docs/operations.md, "Scheduling"): realtime FIFO at this priority,
    #: as an operator runs a router daemon, when this host lets a process take it (else, and at 0, as started);
    #: the MN agent's thread too while the handover runs, so that the realtime routers do not hold up what
    #: stands for another host.
    router_priority: int = 10
    #: The CN's sender: realtime FIFO at this priority where allowed (0: as started; -1: ``router_priority``).
    #: An ordinary sender pauses while the routers' handover work takes both cores, right where the stream
    #: breaks (``source_pause_ms``); a realtime one, measured side by side, kept its schedule but left the
    #: layer-2 switch waiting instead, and the handover took longer (BENCHMARKS.md): on two cores the lab
    #: has no CPU to give it.
    source_priority: int = 0
    #: The layer-2 switch (the process that moves the MN's port): realtime FIFO at this priority where allowed
    #: (0: as started).  At ordinary priority it waits for a core behind the realtime routers' handover work
    #: before the port goes down; above ``router_priority`` it reacts as a switch with a CPU of its own.
    switch_priority: int = 0

    def __post_init__(self) -> None:
        checks = (("rate", self.rate, 1, traffic.MAX_RATE), ("gap_ms", self.gap_ms, 0, 60_000),
                  ("lead_ms", self.lead_ms, 0, 60_000), ("tail_ms", self.tail_ms, 0, 60_000),
                  ("switch_delay_ms", self.switch_delay_ms, 0, 10_000),
                  ("ring_timeout_ms", self.ring_timeout_ms, 1, 1000), ("router_priority", self.router_priority, 0, 99),
                  ("source_priority", self.source_priority, -1, 99),
                  ("switch_priority", self.switch_priority, 0, 99))
        for name, value, lo, hi in checks:
            if not lo <= value <= hi:
                raise ValueError(f"{name} must be within {lo}..{hi}, got {value}")
        if self.ring_mode not in ("blocks", "frames"):
            raise ValueError(f"ring_mode must be 'blocks' or 'frames', got {self.ring_mode!r}")
        if self.mode not in ("fast", "baseline"):
            raise ValueError(f"mode must be 'fast' or 'baseline', got {self.mode!r}")
        if self.case not in (1, 2, 3):
            raise ValueError(f"case must be 1, 2 or 3, got {self.case}")
        if self.kerberos not in KERBEROS:
            raise ValueError(f"kerberos must be 'lwkerb' or 'gssapi', got {self.kerberos!r}")
        if self.kerberos == "gssapi" and self.case != 1:
            raise ValueError(f"case {self.case} does not exist with kerberos 'gssapi': a router cannot ask an MIT "
                             "KDC to open a ticket, only key case 1 (docs/security.md §10.6)")


def router_security(lab: LabTopology, which: str, kdc: str | None = None,
                    gss: tuple[str, str, str] | None = None) -> dict[str, Any]:
    """The ``[router.security]`` table of the lab's PAR or NAR: its own service key (case 1), the manual AH
    SAs with the other router, and the KDC for case 2 when given.  ``gss``: (service principal, keytab, replay
    cache) of the gssapi mechanism instead of the lwkerb key."""
    own = P_PAR if which == "par" else P_NAR
    peer = lab.nar_address if which == "par" else lab.par_address
    spi_in, key_in = AH_NAR_TO_PAR if which == "par" else AH_PAR_TO_NAR
    spi_out, key_out = AH_PAR_TO_NAR if which == "par" else AH_NAR_TO_PAR
    sec: dict[str, Any] = {
        "principal": str(own),
        "keys": [{"principal": str(own), "kvno": KEYS[which].kvno, "key": KEYS[which].value.hex()}],
        "peers": [{"address": str(peer), "spi_in": spi_in, "key_in": key_in.hex(), "spi_out": spi_out,
                   "key_out": key_out.hex()}]}
    if gss is not None:
        principal, keytab, rcache = gss
        sec.update(principal=principal, mechanism="gssapi", keytab=keytab, rcache=rcache)
        del sec["keys"]
    if kdc is not None:
        sec["kdc"] = kdc
    return sec


def _spawn_kdc(lab: LabTopology, work: Path, env: dict[str, str], realm: str, keys: tuple[tuple[str, L.Key], ...],
               extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
    """One ``fmipfast kdc`` in the NAR's namespace on loopback; its process and ``host:port``."""
    cfg = work / f"kdc-{realm.split('.')[0].lower()}.toml"
    text = [f'realm = "{realm}"', 'listen = "127.0.0.1:0"', *extra]
    for principal, key in keys:
        text += ["[[keys]]", f'principal = "{principal}"', f"kvno = {key.kvno}", f'key = "{key.value.hex()}"']
    topology.write_config(cfg, "\n".join(text) + "\n")
    proc = lab.spawn("nar", [sys.executable, "-m", "fmipfast", "kdc", "--config", str(cfg)], env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if len(line) != 3 or line[0] != "READY":
        err = proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
        raise LabError(f"the {realm} KDC did not start: {' '.join(line)} {err.strip()[-300:]}")
    return proc, f"{line[1]}:{line[2]}"


def _start_kdcs(lab: LabTopology, work: Path, env: dict[str, str],
                case: int) -> tuple[dict[str, subprocess.Popen], str]:
    """The KDCs of key cases 2 and 3, separate processes: KDC-B (the NAR's realm: it knows the NAR, which may
    OPEN, and the access key of B) and for case 3 the MN's home KDC, which KDC-B reaches with the inter-realm
    key ``krbtgt/HOME.EXAMPLE@B.EXAMPLE``.  Returns them by realm, and KDC-B's address for the NAR."""
    procs: dict[str, subprocess.Popen] = {}
    extra: tuple[str, ...] = ('routers = ["host/nar"]',)
    keys: tuple[tuple[str, L.Key], ...] = (("krbtgt/B.EXAMPLE@B.EXAMPLE", TGT_B_KEY), (str(P_ACCESS_B), ACCESS_B_KEY),
                                           (str(P_NAR), KEYS["nar"]))
    try:
        if case == 3:
            procs["HOME.EXAMPLE"], home = _spawn_kdc(
                lab, work, env, "HOME.EXAMPLE", (("krbtgt/HOME.EXAMPLE@HOME.EXAMPLE", TGT_HOME_KEY),
                                                 (str(P_ACCESS_HOME), ACCESS_HOME_KEY),
                                                 ("krbtgt/HOME.EXAMPLE@B.EXAMPLE", X_B_HOME)))
            keys += (("krbtgt/HOME.EXAMPLE@B.EXAMPLE", X_B_HOME),)
            extra += ("[peers]", f'"HOME.EXAMPLE" = "{home}"')
        procs["B.EXAMPLE"], address = _spawn_kdc(lab, work, env, "B.EXAMPLE", keys, extra)
    except BaseException:
        _stop_kdcs(procs)
        raise
    return procs, address


def _stop_kdcs(procs: dict[str, subprocess.Popen]) -> dict[str, Any]:
    """SIGTERM each KDC; their final counters (the JSON line each prints on exit) by realm."""
    out: dict[str, Any] = {}
    for realm, proc in procs.items():
        proc.send_signal(signal.SIGTERM)
        try:
            k_out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            k_out, _ = proc.communicate()
        lines = k_out.strip().splitlines()
        out[realm] = json.loads(lines[-1]) if proc.returncode == 0 and lines and lines[-1].startswith("{") else {
            "error": f"the KDC exited with {proc.returncode}"}
    return out


MN_PASSWORD = "lab mobile node"
X_HOME_A = L.Key(1, bytes((17 + 3 * i) & 0xFF for i in range(32)))  # krbtgt/A.EXAMPLE@HOME.EXAMPLE
X_HOME_B = L.Key(1, bytes((29 + 5 * i) & 0xFF for i in range(32)))  # krbtgt/B.EXAMPLE@HOME.EXAMPLE
KDC_PORTS = {"HOME.EXAMPLE": 8801, "A.EXAMPLE": 8802, "B.EXAMPLE": 8803}


def kdc_configs(lab: LabTopology) -> dict[str, str]:
    """``fmipfast kdc`` configurations for the three realms of the MN's Kerberos world, all listening on the
    CN's address (the MN reaches them through the access routers): HOME (the MN's, with cross-realm keys to A
    and B), A (the PAR's service key) and B (the NAR's, and the access key of case 2)."""
    def key(principal: str, k: L.Key) -> list[str]:
        return ["[[keys]]", f'principal = "{principal}"', f"kvno = {k.kvno}", f'key = "{k.value.hex()}"']

    def tgt(realm: str) -> L.Key:
        return L.Key(1, bytes((len(realm) * 13 + i) & 0xFF for i in range(32)))

    out = {}
    for realm, extra in (("HOME.EXAMPLE", key("krbtgt/A.EXAMPLE@HOME.EXAMPLE", X_HOME_A)
                          + key("krbtgt/B.EXAMPLE@HOME.EXAMPLE", X_HOME_B)
                          + ["[[keys]]", f'principal = "{P_MN}"', f'password = "{MN_PASSWORD}"']),
                         ("A.EXAMPLE", key(str(P_PAR), KEYS["par"]) + key("krbtgt/A.EXAMPLE@HOME.EXAMPLE", X_HOME_A)),
                         ("B.EXAMPLE", key(str(P_NAR), KEYS["nar"]) + key("krbtgt/B.EXAMPLE@HOME.EXAMPLE", X_HOME_B)
                          + key(str(P_ACCESS_B), ACCESS_B_KEY))):
        head = [f'realm = "{realm}"', f'listen = "[{lab.cn_address}]:{KDC_PORTS[realm]}"']
        if realm == "B.EXAMPLE":
            head.append('routers = ["host/nar"]')
        own_tgt = TGT_B_KEY if realm == "B.EXAMPLE" else tgt(realm)
        if realm != "B.EXAMPLE":  # B's is ACCESS_B_KEY, in extra (case 2 of lab run uses it too)
            extra += key(f"access/{realm}@{realm}", L.Key(1, bytes((len(realm) * 31 + i) & 0xFF for i in range(32))))
        out[realm] = "\n".join(head + key(f"krbtgt/{realm}@{realm}", own_tgt) + extra) + "\n"
    return out


def mn_kerberos(lab: LabTopology) -> dict[str, Any]:
    """The ``[mn.kerberos]`` table matching :func:`kdc_configs`."""
    return {"principal": str(P_MN), "password": MN_PASSWORD,
            "kdcs": {realm: f"[{lab.cn_address}]:{port}" for realm, port in KDC_PORTS.items()}}


def tickets(now: float, lifetime_s: int = 3600) -> dict[L.Principal, L.Credentials]:
    """The MN's tickets, issued here (the lab plays the MN's earlier AS/TGS exchanges): one for each router's
    own key (case 1), an access ticket for realm B (case 2, only KDC-B can open it) and one of the MN's home
    realm (case 3, only the home KDC can)."""
    out = {}
    for principal, key in ((P_PAR, KEYS["par"]), (P_NAR, KEYS["nar"]), (P_ACCESS_B, ACCESS_B_KEY),
                           (P_ACCESS_HOME, ACCESS_HOME_KEY)):
        skey = L.Key(0, os.urandom(32))
        start, end = int(now) - 10, int(now) + lifetime_s
        part = L.EncTicketPart(L.TicketFlag.PRE_AUTHENT, start, start, end, skey.value, P_MN)
        ticket = L.Ticket.issue(principal, key, part)
        out[principal] = L.Credentials(P_MN, principal, ticket, skey, part.flags, start, start, end)
    return out


_realtime: dict[int, bool] = {}


def realtime_allowed(priority: int) -> bool:
    """Whether a process started here may take SCHED_FIFO at ``priority`` (CAP_SYS_NICE or RLIMIT_RTPRIO, and
    a cgroup with realtime time): asked once per priority, of a child that tries."""
    if priority not in _realtime:
        probe = f"import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param({int(priority)}))"
        try:
            _realtime[priority] = subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                                 timeout=30).returncode == 0
        except (OSError, subprocess.SubprocessError):
            _realtime[priority] = False
    return _realtime[priority]


def _scheduling(priority: int) -> str:
    """The routers' ``[router.scheduling]`` table: FIFO at ``priority`` where allowed, else nothing."""
    if priority <= 0 or not realtime_allowed(priority):
        return ""
    return f'\n[router.scheduling]\npolicy = "fifo"\npriority = {priority}\n'


def _switch_priority(opts: RunOptions) -> int:
    """The layer-2 switch's SCHED_FIFO priority: ``opts.switch_priority`` where allowed, else 0."""
    prio = opts.switch_priority
    return prio if prio > 0 and realtime_allowed(prio) else 0


@contextlib.contextmanager
def _realtime_here(priority: int) -> Iterator[None]:
    """The calling thread (and the threads it starts) at SCHED_FIFO ``priority`` while the MN agent runs on it, as
    the routers run (:func:`_scheduling`): on the lab's two cores a realtime router would otherwise keep the MN
    from its own carrier notification, which on a real MN no router's process competes with.  The processes it
    starts meanwhile (the stream's sender and receiver) begin with ordinary scheduling (SCHED_RESET_ON_FORK)."""
    if priority <= 0 or not realtime_allowed(priority):
        yield
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
    try:
        yield
    finally:
        os.sched_setscheduler(0, policy, param)


def _start_engine(lab: LabTopology, which: str, work: Path, env: dict[str, str],
                  kdc: str | None = None, ring_timeout_ms: int = 2, ring_mode: str = "blocks",
                  gss: tuple[str, str, str] | None = None, priority: int = 0) -> tuple[subprocess.Popen, str]:
    """``fmipfast router`` in namespace ``which``; its JSON log (every router-agent note with its CLOCK_MONOTONIC
    ``mono_ns``, DEBUG: sends and receipts too) goes to ``<which>.err`` in ``work`` -- a file, not a pipe,
    which nobody would read until the end.  ``priority`` > 0: realtime FIFO at that priority where allowed
    (:func:`_scheduling`)."""
    cfg = work / f"{which}.toml"
    topology.write_config(cfg, lab.router_config(which, security=router_security(lab, which, kdc, gss),
                                                 buffer_per_mn_packets=BUFFER_PACKETS,
                                                 buffer_per_mn_bytes=BUFFER_PACKETS * 2048,
                                                 # per frame, a slot takes 2 KiB whatever the frame's
                                                 # size: 128 blocks hold what 16 hold as V3 blocks of the
                                                 # stream's short datagrams (~4 000 frames)
                                                 ring={"block_size": 65536,
                                                       "block_count": 128 if ring_mode == "frames" else 16,
                                                       "timeout_ms": ring_timeout_ms, "mode": ring_mode})
                          + '\n[logging]\nformat = "json"\nlevel = "debug"\n' + _scheduling(priority))
    sock = str(work / f"{which}.sock")
    with open(work / f"{which}.err", "w") as err_file:
        proc = lab.spawn(which, [sys.executable, "-m", "fmipfast", "router", "--config", str(cfg), "--control",
                                 sock], env=env, stderr=err_file)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        err = (work / f"{which}.err").read_text() if proc.poll() is not None else ""
        raise LabError(f"the {which} engine did not start: {line.strip()} {err.strip()[-1000:]}")
    return proc, sock


def _start_capture(lab: LabTopology, path: str) -> subprocess.Popen:
    """dumpcap on the routers' bridge ports in ``air``: every frame of access links A and B, both ways."""
    target = Path(path).resolve()
    target.unlink(missing_ok=True)
    proc = lab.spawn("air", ["dumpcap", "-q", "-i", lab.air_par, "-i", lab.air_nar, "-w", str(target)],
                     stdout=subprocess.DEVNULL)
    end = time.monotonic() + 10
    while not (target.exists() and target.stat().st_size > 0):  # the section header is written once capturing
        if proc.poll() is not None or time.monotonic() > end:
            err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
            raise LabError(f"dumpcap did not start capturing to {target}: {err.strip()[-300:]}")
        time.sleep(0.02)
    time.sleep(0.2)  # both interfaces open
    return proc


def _stop_capture(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    time.sleep(0.1)  # the last frames reach dumpcap
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _stop_engine(proc: subprocess.Popen, log: Path) -> dict[str, Any]:
    """SIGTERM; the engine's final summary, with its router-agent notes (``notes``) from its JSON log."""
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines or not lines[-1].startswith("{"):
        err = log.read_text(errors="replace") if log.exists() else ""
        raise LabError(f"an engine failed on exit ({proc.returncode}): {err.strip()[-500:]}")
    final = json.loads(lines[-1])
    final["notes"] = latency.read_router_notes(str(log))
    return final


PCOA_DRAIN_MS = 100.0  # the PCoA stays this long after the BAck (in-flight tunnelled datagrams)
#: The layer-2 switch reports a move this long after the MN's carrier came up: its answer wakes a thread of this
#: process, which would otherwise compete with the MN agent sending the Attach and reading the first datagrams
MOVE_HOLD_MS = 50.0
IFA_F_TENTATIVE = 0x40


def _wait_address(lab: LabTopology, address: IPv6Address, timeout: float) -> tuple[int | None, int | None]:
    """Poll (1 ms) the MN's interface for ``address``: when it first appears (tentative, DAD running) and
    when it becomes usable (DAD done).  Runs in the calling thread, inside the ``mn`` namespace."""
    from pyroute2 import IPRoute

    seen = usable = None
    end = time.monotonic() + timeout
    with lab.ns["mn"].enter():
        ipr = IPRoute()
        try:
            while time.monotonic() < end and usable is None:
                for msg in ipr.get_addr(family=10, label=None):
                    if msg.get_attr("IFA_ADDRESS") and IPv6Address(msg.get_attr("IFA_ADDRESS")) == address:
                        flags = msg.get_attr("IFA_FLAGS") or msg["flags"]
                        now = time.monotonic_ns()
                        seen = seen or now
                        if not flags & IFA_F_TENTATIVE:
                            usable = now
                time.sleep(0.001)
        finally:
            ipr.close()
    return seen, usable


def _baseline(lab: LabTopology, opts: RunOptions, work: Path, env: dict[str, str],
              timeline: list[tuple[str, int]], move: list[topology.LinkMove]) -> dict[str, Any]:
    """Plain Mobile IPv6 (the draft's Figure 2 case): no fast handover signalling.  The MN's kernel accepts
    Router Advertisements and autoconfigures with DAD (one probe, RetransTimer 1 s); after the move it hears
    the NAR's RAs (30-70 ms apart, RFC 6275 §7.5), forms the NCoA, waits out DAD, then sends the BU; the CN
    follows it.  Until then the CN's datagrams go to the PCoA, which the PAR delivers on link A: lost."""
    mn = lab.ns["mn"]
    for key, value in (("accept_ra", 1), ("autoconf", 1), ("accept_dad", 1), ("dad_transmits", 1)):
        mn.sysctl(f"net.ipv6.conf.{lab.mn_if}.{key}", value)
    # steady state before the move: the PAR has resolved the MN (the fast mode's Attach does that)
    warm = lab.ns["cn"].run("ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", str(lab.pcoa), check=False)
    if warm.returncode != 0:
        raise LabError(f"the CN cannot reach the MN before the move: {warm.stdout.strip()[-300:]}")
    count = int(opts.rate * (opts.lead_ms + 3500 + opts.tail_ms) / 1000)  # DAD may take 2.1 s, a BU retry 1 s
    out = work / "recv.json"
    py = [sys.executable, "-m", "fmipfast.lab.namespaces.traffic"]
    recv = lab.spawn("mn", [*py, "recv", "--bind", "::", "--port", str(PORT), "--duration",
                            str(count / opts.rate + 5), "--count", str(count), "--out", str(out)], env=env)
    assert recv.stdout is not None
    if recv.stdout.readline().strip() != "READY":
        raise LabError("the receiver did not start")
    send = lab.spawn("cn", [*py, "send", "--to", str(lab.pcoa), "--port", str(PORT), "--rate", str(opts.rate),
                            "--count", str(count), "--bu"], env=env)
    lab.prepare_move(_switch_priority(opts))
    _wait_started(send)
    time.sleep(opts.lead_ms / 1000)
    move.append(lab.move_mn("B", opts.gap_ms))
    # movement detection (RFC 6275 §11.5.1): the old router is gone with the link. Every default route via the
    # PAR goes — the static one and the one its RAs installed — or the kernel may send the BU to a dead router.
    for _ in range(8):
        if mn.run("ip", "-6", "route", "del", "default", "via", str(lab.par_link_local), "dev", lab.mn_if,
                  check=False).returncode != 0:
            break
    seen, usable = _wait_address(lab, lab.ncoa, 5.0)
    if seen is not None:
        timeline.append(("mn kernel: NCoA formed from the NAR's RA (tentative, DAD)", seen))
    if usable is None:
        raise LabError("the MN's kernel formed no usable NCoA within 5 s of the move")
    timeline.append(("mn kernel: DAD done, NCoA usable", usable))
    with mn.enter():
        bu_sent, back = traffic.binding_update(str(lab.ncoa), str(lab.cn_address))
    timeline.append(("mn send BU to the CN", bu_sent))
    if back is not None:
        timeline.append(("mn recv BAck", back))
    s_out, s_err = send.communicate(timeout=60)
    if send.returncode != 0:
        raise LabError(f"the CN sender failed: {s_err}")
    recv.communicate(timeout=60)
    sent = json.loads(s_out)
    for t, address, _seq in sent.get("bindings", []):
        timeline.append((f"cn follows the BU to {address}", t))
    return {"sent": sent, "received": json.loads(out.read_text()), "released": []}


def _wait_started(send: subprocess.Popen) -> None:
    """Until the CN's sender says its stream begins (``lead_ms`` counts from there, not from the spawn: on a
    loaded machine starting Python took longer than the lead, and the handover came before the stream)."""
    assert send.stderr is not None
    line = send.stderr.readline()
    if line.strip() != "STARTED":
        raise LabError(f"the CN sender did not start: {line.strip()} {send.stderr.read().strip()[-300:]}")


def run(opts: RunOptions = RunOptions()) -> dict[str, Any]:
    """One handover over the real lab (fast, or the plain Mobile IPv6 baseline); see the module doc.

    ``opts.kerberos == "gssapi"``: the fast handover runs inside two throwaway MIT realms, made before the lab
    and removed after it; :class:`fmipfast.lab.mitrealms.MitUnavailable` (an ImportError naming what is
    missing) when they cannot be made here, before anything is built."""
    if opts.kerberos == "gssapi" and opts.mode == "fast":
        from fmipfast.lab.mitrealms import demo_kerberos, two_realms

        with two_realms() as realms:  # KRB5_CONFIG/KRB5CCNAME of realm A in os.environ, so the children's too
            return _run(opts, demo_kerberos(realms))
    return _run(opts, None)


def _kerberos_counters(sock: str) -> dict[str, int]:
    """A running engine's authenticator verification counters (``fmipfast_kerberos_total``), non-zero ones."""
    from fmipfast.control import ControlClient

    out: dict[str, int] = {}
    for line in str(ControlClient(sock).call("metrics")).splitlines():
        if line.startswith("fmipfast_kerberos_total{") and 'event="' in line:
            name = line.split('event="', 1)[1].split('"', 1)[0]
            value = int(float(line.rsplit(" ", 1)[1]))
            if value:
                out[name] = value
    return out


def _run(opts: RunOptions, krb: Any) -> dict[str, Any]:
    """:func:`run` with ``krb`` (a :class:`fmipfast.lab.mitrealms.DemoKerberos`: the realms' service principals,
    keytabs and the MN's ccache) for the gssapi mechanism, None for lwkerb."""
    from fmipfast.control import ControlClient
    from fmipfast.mn import MnState
    from fmipfast.mnagent import MnAgent

    topology.cleanup(opts.prefix)
    env = topology.child_env()
    with tempfile.TemporaryDirectory(prefix="fmipfast-run-") as tmp, LabTopology(prefix=opts.prefix) as lab:
        work = Path(tmp)
        kdcs, kdc_addr = _start_kdcs(lab, work, env, opts.case) if opts.case > 1 and opts.mode == "fast" \
            else ({}, None)
        gss: dict[str, tuple[str, str, str] | None] = {"par": None, "nar": None}
        if krb is not None:  # each engine accepts with its keytab, its replay cache in the run's directory
            gss = {"par": (krb.par_service, krb.par_keytab, f"file2:{work}/par.rcache2"),
                   "nar": (krb.nar_service, krb.nar_keytab, f"file2:{work}/nar.rcache2")}
        par, par_sock = _start_engine(lab, "par", work, env, ring_timeout_ms=opts.ring_timeout_ms,
                                      ring_mode=opts.ring_mode, gss=gss["par"], priority=opts.router_priority)
        nar, nar_sock = _start_engine(lab, "nar", work, env, kdc_addr, ring_timeout_ms=opts.ring_timeout_ms,
                                      ring_mode=opts.ring_mode, gss=gss["nar"], priority=opts.router_priority)
        timeline: list[tuple[str, int]] = []
        move: list[topology.LinkMove] = []
        offset = traffic._clock_offset_ns()  # CLOCK_REALTIME - CLOCK_MONOTONIC: kernel and tshark timestamps
        dumpcap = _start_capture(lab, opts.capture) if opts.capture else None
        if opts.mode == "baseline":
            got = _baseline(lab, opts, work, env, timeline, move)
            _stop_capture(dumpcap)
            engines = {"par": _stop_engine(par, work / "par.err"), "nar": _stop_engine(nar, work / "nar.err")}
            return _finish(opts, got, timeline, move, engines, {}, offset_ns=offset)

        initiator: Any = None
        precache: Any = None
        if krb is None:
            creds = tickets(time.time())
            par_principal, nar_principal = P_PAR, {1: P_NAR, 2: P_ACCESS_B, 3: P_ACCESS_HOME}[opts.case]

            async def provider(server: L.Principal) -> Any:
                return creds[server]
        else:
            from fmipfast.security.gss import GssInitiator

            # the MN's kinit cache: service tickets fetched off the loop (TGS, cross-realm for the NAR)
            initiator = GssInitiator(ccache=krb.ccache)
            par_principal, nar_principal = L.Principal.parse(krb.par_service), L.Principal.parse(krb.nar_service)
            provider = initiator.get
            adjacent = dict(krb.adjacent)

            def precache(realms: tuple[str, ...]) -> Any:  # the RA's adjacent realms -> their routers' tickets
                return initiator.precache([p for r in realms for p in adjacent.get(r, ())])

        with lab.ns["mn"].enter():
            # the CN is the MN's correspondent: the Attach carries the BU (a Mobility Header), the NAR forwards
            # it, and the BAck comes back to the NCoA on this raw MH socket
            mn_notes: list[tuple[str, dict[str, Any], int]] = []

            def on_note(n: Any, t: int) -> None:
                timeline.append((_note(n), t))
                mn_notes.append((n.name, n.fields, t))

            agent = MnAgent(lab.mn_if, ticket_provider=provider, keep_pcoa=True, home_agent=lab.cn_address,
                            on_note=on_note, precache=precache)
            mh = MobilitySocket()
        with lab.ns["nar"].enter():  # kernel timestamps of the Attach and of the first flushed datagram
            taps = latency.Taps(lab.nar_acc, agent.codepoints.type, PORT, offset)
        # the layer-2 move begins with the port going down, nothing opened first
        lab.prepare_move(_switch_priority(opts))

        async def scenario() -> dict[str, Any]:
            loop = asyncio.get_running_loop()
            stop = asyncio.Event()
            runner = loop.create_task(agent.run(stop))

            moves: list[asyncio.Future[topology.LinkMove]] = []

            def start_move(to: str) -> None:
                # The switch's command is one write on its pipe, made here on the agent's loop (a real MN starts
                # its layer-2 switch right after the HRA); its answer, written hold_ms after the carrier, is read
                # here too when it is there.  No executor thread: on the lab's two cores, shared with realtime
                # routers, a thread of this process waiting for a core with the GIL in hand stalls the agent.
                done: asyncio.Future[topology.LinkMove] = loop.create_future()
                moves.append(done)
                try:
                    lab.start_move(to, opts.gap_ms, MOVE_HOLD_MS, delay_ms=opts.switch_delay_ms)
                    fd = lab.move_answer_fileno()
                except Exception as exc:  # noqa: BLE001 -- the run raises it once the handover is over
                    done.set_exception(exc)
                    return

                def answered() -> None:
                    loop.remove_reader(fd)
                    try:
                        done.set_result(lab.finish_move())
                    except Exception as exc:  # noqa: BLE001 -- as above
                        done.set_exception(exc)

                loop.add_reader(fd, answered)

            def do_move(nar_addr: IPv6Address) -> None:
                timeline.append(("ready_to_switch", time.monotonic_ns()))
                to = "A" if opts.reverse else "B"
                agent.next_link = to
                # the switch delay is the switch's own sleep: the loop's timers are whole milliseconds (a 0.5 ms
                # call_later took the port down 1.3 ms after ReadyToSwitch, as 1 ms did)
                start_move(to)

            def move_failed() -> bool:
                return any(f.done() and not f.cancelled() and f.exception() is not None for f in moves)

            agent.on_ready_to_switch = do_move
            taps.attach(loop)
            try:
                agent.start(lab.par_address, par_principal, lab.pcoa, "A")
                await _until(lambda: agent.mn.state == MnState.ATTACHED, "the initial attach", 5)
                timeline.append(("attached_par", time.monotonic_ns()))
                count = int(opts.rate * (opts.lead_ms + 1000 + opts.tail_ms) / 1000)
                out = work / "recv.json"
                py = [sys.executable, "-m", "fmipfast.lab.namespaces.traffic"]
                recv = lab.spawn("mn", [*py, "recv", "--bind", "::", "--port", str(PORT), "--duration",
                                        str(count / opts.rate + 5), "--count", str(count), "--out", str(out)],
                                 env=env)
                assert recv.stdout is not None
                line = await loop.run_in_executor(None, recv.stdout.readline)
                if line.strip() != "READY":
                    raise LabError(f"the receiver did not start: {line!r}")
                prio = opts.router_priority if opts.source_priority < 0 else opts.source_priority
                rt = ["--realtime", str(prio)] if prio and realtime_allowed(prio) else []
                send = lab.spawn("cn", [*py, "send", "--to", str(lab.pcoa), "--port", str(PORT), "--rate",
                                        str(opts.rate), "--count", str(count), "--bu", *rt],
                                 env=env)
                await loop.run_in_executor(None, _wait_started, send)
                await asyncio.sleep(opts.lead_ms / 1000)
                if initiator is not None:  # the NAR's ticket is in the cache before the handover, as with lwkerb
                    await _until(lambda: initiator.counters["precached"] >= 1,
                                 "the MN to precache the NAR's service ticket (the PAR's RA names realm B)", 5)
                timeline.append(("trigger", time.monotonic_ns()))
                # on the loop's thread, blocking it for the PAR's answer (it comes once the Redirect is out): an
                # executor thread was still handing the GIL back while the MN answered the Redirect (see
                # start_move)
                ControlClient(par_sock).call("handover", pcoa=str(lab.pcoa), nar=str(lab.nar_address),
                                             nar_principal=str(nar_principal), buffer=opts.buffer)
                if opts.reverse:
                    await _until(lambda: move_failed() or agent.mn.counters["link_reversals"] == 1
                                 and agent.mn.state == MnState.ATTACHED, "the link reversal", 10)
                    move.extend([await f for f in moves])
                    timeline.append(("back_at_par", time.monotonic_ns()))
                else:
                    await _until(lambda: move_failed() or agent.mn.counters["handovers_completed"] == 1,
                                 "the handover", 10)
                    move.extend([await f for f in moves])
                    timeline.append(("attached_nar", time.monotonic_ns()))

                    seq = agent.mn.last_bu_sequence
                    attach_at = next((t for what, t in reversed(timeline) if what.startswith("mn send Attach")),
                                     time.monotonic_ns())

                    def bu() -> tuple[int, int | None]:
                        # the BU left in the Attach (draft §3: the NAR forwards it); its BAck, or a BU of our own
                        # after INITIAL_BINDACK_TIMEOUT (RFC 6275 §11.8)
                        with lab.ns["mn"].enter():
                            return traffic.binding_update(str(lab.ncoa), str(lab.cn_address),
                                                          1 if seq is None else seq, port=mh,
                                                          sent_before=None if seq is None else attach_at)

                    _, back = await loop.run_in_executor(None, bu)
                    if back is not None:
                        timeline.append(("mn recv BAck", back))
                        # datagrams the CN sent to the PCoA before it followed the BU are still in the PAR's
                        # tunnel: releasing at the BAck lost one in a run at 1 000/s; drain first
                        await asyncio.sleep(PCOA_DRAIN_MS / 1000)
                        await agent.release_retired()
                        timeline.append(("mn released the PCoA", time.monotonic_ns()))
                s_out, s_err = await loop.run_in_executor(None, lambda: send.communicate(timeout=60))
                if send.returncode != 0:
                    raise LabError(f"the CN sender failed: {s_err}")
                await loop.run_in_executor(None, lambda: recv.communicate(timeout=60))
                await agent.release_retired()  # link reversal, or no BAck: still leave a clean interface
                sent = json.loads(s_out)
                for t, address, _seq in sent.get("bindings", []):
                    timeline.append((f"cn follows the BU to {address}", t))
                return {"sent": sent, "received": json.loads(out.read_text())}
            finally:
                taps.close()
                stop.set()
                await asyncio.wait_for(runner, 5)

        try:
            with _realtime_here(opts.router_priority):  # the MN agent runs on this thread
                got = asyncio.run(scenario())
        finally:
            taps.close()
            agent.close()
            mh.close()
        _stop_capture(dumpcap)
        verified = {"par": _kerberos_counters(par_sock), "nar": _kerberos_counters(nar_sock)} if krb else {}
        engines = {"par": _stop_engine(par, work / "par.err"), "nar": _stop_engine(nar, work / "nar.err")}
        m = _finish(opts, got, timeline, move, engines, agent.counters, mn_notes=mn_notes, taps=taps,
                    offset_ns=offset)
        m["kerberos"] = opts.kerberos
        if krb is not None:  # the engines' verification outcomes and the MN's ticket fetches
            m["gssapi"] = {**verified, "mn": {k: v for k, v in initiator.counters.items() if v},
                           "services": {"par": krb.par_service, "nar": krb.nar_service}}
        if kdcs:
            finals = _stop_kdcs(kdcs)
            m["kdc"] = finals["B.EXAMPLE"]  # the NAR's realm's KDC (cases 2 and 3)
            if "HOME.EXAMPLE" in finals:
                m["kdc_home"] = finals["HOME.EXAMPLE"]
        m["case"] = opts.case
        return m


def _finish(opts: RunOptions, got: dict[str, Any], timeline: list[tuple[str, int]],
            move: list[topology.LinkMove], engines: dict[str, Any], mn_counters: dict[str, int], *,
            mn_notes: list[tuple[str, dict[str, Any], int]] | None = None, taps: latency.Taps | None = None,
            offset_ns: int = 0) -> dict[str, Any]:
    received = got["received"]["received"]
    # link up: the MN's carrier, as the lab's watch or the MN agent read it first (fmipfast.lab.namespaces.latency)
    carrier = latency.link_up(move[0].up_ns, move[0].carrier_ns, mn_notes or []) if move else None
    changes = [*move[0].link_changes()[:2], *([("carrier", carrier)] if carrier else [])] if move else []
    m = traffic.measure(got["sent"]["sent"], received, changes)
    # the same from the lab's request to set the MN's port up, the zero before link up meant the carrier
    m["link_up_request_to_first_packet_ms"] = traffic.measure(got["sent"]["sent"], received, changes[:2])[
        "link_up_to_first_packet_ms"]
    if move:
        timeline += [(f"layer 2: port down acknowledged (leaves br{move[0].old})", move[0].down_ns),
                     (f"layer 2: port up on br{move[0].new}", move[0].up_ns)]
        if carrier is not None:
            timeline.append(("link up: the MN's carrier", carrier))
        timeline.sort(key=lambda x: x[1])
    t0 = timeline[0][1] if timeline else 0
    m["timeline_ms"] = [(what, round((t - t0) / 1e6, 3)) for what, t in timeline]
    m["lost_ranges"] = traffic.lost_ranges(got["sent"], got["received"]["received"], t0)
    m["engines"] = {k: {"conservation": v["conservation"], "counters": v["counters"]} for k, v in engines.items()}
    nar = engines["nar"]["counters"] if "nar" in engines else {}
    # the demo's keys: what the NAR buffered across the gap, and what it held at the route switch
    m["held_at_route_switch"] = int(nar.get("reorder_held", 0))
    m["buffered"] = int(nar.get("buffered", 0)) - m["held_at_route_switch"]
    m["flushed"] = int(nar.get("flushed", 0)) - int(nar.get("reorder_released", 0))
    m["mn_counters"] = {k: v for k, v in mn_counters.items() if v}
    m["mode"] = opts.mode
    m["rate"] = opts.rate
    # the interruption beyond what the link layer itself takes (the gap, the switch's set delay): the layer-3
    # part of the handover, whose goal is 1 ms
    stop = m.get("interruption_ms")
    m["beyond_gap_ms"] = None if stop is None else round(stop - opts.gap_ms - opts.switch_delay_ms, 3)
    # what the run was set up with, where it changes the figures (the lab's own scheduling included)
    m["setup"] = {"ring_mode": opts.ring_mode, "ring_timeout_ms": opts.ring_timeout_ms,
                  "switch_delay_ms": opts.switch_delay_ms, "router_priority": opts.router_priority,
                  "source_priority": opts.source_priority,
                  "switch_priority": move[0].priority if move else None}  # as the switch reported it
    m["clock"] = {"timeline": "CLOCK_MONOTONIC", "realtime_minus_monotonic_ns": offset_ns,
                  "t0_monotonic_ns": t0}
    up = move[0].up_ns if move else None
    first = min((int(r[1]) for r in received if up is not None and int(r[1]) >= up), default=None)
    m["source_pause_ms"] = _source_pause(received, up, opts.rate)
    # the same less the CN's own pause there: what a CN on a host of its own would have seen (on the lab's two
    # cores an ordinary sender loses the CPU to the routers' handover work right where the stream breaks)
    pause = m["source_pause_ms"]
    m["beyond_gap_less_source_pause_ms"] = (None if pause is None or m["beyond_gap_ms"] is None
                                            else round(m["beyond_gap_ms"] - pause, 3))
    if up is not None and opts.mode == "fast" and not opts.reverse:
        mv = move[0]
        before = {**latency.switch_steps(next((t for what, t in timeline if what == "ready_to_switch"), None),
                                         mn_notes or [], engines.get("par", {}).get("notes", []),
                                         command_ns=mv.command_ns, read_ns=mv.read_ns,
                                         down_request_ns=mv.down_request_ns, down_ns=mv.down_ns),
                  "last_on_old_link": max((int(r[1]) for r in received if int(r[1]) < mv.down_ns), default=None)}
        m["waterfall_ms"] = latency.waterfall(up, move[0].up_ack_ns, mn_notes or [],
                                              engines.get("nar", {}).get("notes", []),
                                              taps.attach_rx_ns() if taps else [],
                                              taps.first_tx_ns if taps else None, first, before=before,
                                              carrier_ns=move[0].carrier_ns)
    elif up is not None:  # the baseline: only the ends of the chain exist
        zero = carrier or up
        m["waterfall_ms"] = {"link_up_request": round((up - zero) / 1e6, 3), "link_up": 0.0,
                             "link_up_ack": round((move[0].up_ack_ns - zero) / 1e6, 3),
                             "mn_first_datagram": None if first is None else round((first - zero) / 1e6, 3)}
    # what the plot draws, not reported (`fmipfast lab run --json` leaves out keys starting with "_")
    m["_router_notes"] = {k: v.get("notes", []) for k, v in engines.items()}
    m["_mn_notes"] = mn_notes or []
    m["_taps"] = taps.messages if taps else []
    m["_stream"] = _stream(got["sent"], received, t0, move[0] if move else None, carrier)
    return m


def _source_pause(received: list[list[int]], up: int | None, rate: float) -> float | None:
    """How long the CN itself paused where the stream broke: the time between the sends (the records' fourth
    field) of the last datagram that arrived before link up and of the next sequence number, less the one
    period it should be (0 when it kept its schedule).  That much of the interruption is the source's, not
    the network's; None if either datagram is missing."""
    if up is None:
        return None
    before = [r for r in received if int(r[1]) < up and len(r) > 3]
    if not before:
        return None
    last = max(before, key=lambda r: int(r[1]))
    nxt = next((r for r in received if int(r[0]) == int(last[0]) + 1 and len(r) > 3), None)
    return None if nxt is None else round(max(0.0, (int(nxt[3]) - int(last[3])) / 1e6 - 1000 / rate), 3)


def _stream(sent: dict[str, Any], received: list[list[int]], t0: int,
            move: topology.LinkMove | None, carrier: int | None = None) -> dict[str, Any]:
    """The datagram stream at the MN on the timeline's clock: (seq, ms) of each arrival, (seq, ms sent) of each
    lost datagram, and the layer-2 move (ms: the down, the up request, the MN's link up)."""
    seen = {int(r[0]) for r in received}
    rate, first = sent.get("rate") or 0, sent.get("first_ns", t0)
    lost = [(q, round((first + q * 1e9 / rate - t0) / 1e6, 3) if rate else None)
            for q in range(int(sent["sent"])) if q not in seen]
    return {"arrivals": [(int(r[0]), round((int(r[1]) - t0) / 1e6, 3)) for r in received], "lost": lost,
            "down_ms": None if move is None else round((move.down_ns - t0) / 1e6, 3),
            "up_ms": None if move is None else round((move.up_ns - t0) / 1e6, 3),
            "link_up_ms": None if carrier is None else round((carrier - t0) / 1e6, 3)}


def repeat(opts: RunOptions, n: int) -> dict[str, Any]:
    """``n`` runs; for each of :data:`SUMMARY_KEYS` and each step of the latency waterfall the median, p90,
    p99, maximum and minimum over the runs (:func:`fmipfast.lab.namespaces.latency.summarize`: nearest-rank
    percentiles), and every run (the datagram stream only for the last: it is what ``--plot`` draws)."""
    runs = []
    for i in range(n):
        runs.append(run(opts))
        if i:
            runs[-2].pop("_stream", None)
    return summarize_runs(opts, runs)


def summarize_runs(opts: RunOptions, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary of :func:`repeat` over runs already made."""
    summary = {key: latency.summarize(r.get(key) for r in runs) for key in SUMMARY_KEYS}
    steps = [k for k, _, _ in latency.STEPS]
    waterfall = {k: latency.summarize(r.get("waterfall_ms", {}).get(k) for r in runs) for k in steps}
    return {"rate": opts.rate, "gap_ms": opts.gap_ms, "mode": opts.mode, "runs": len(runs), "summary": summary,
            "waterfall_ms": {k: v for k, v in waterfall.items() if v is not None}, "each": runs}


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




_PLOTTED = (("trigger", "trigger"), ("mn recv HandoverRedirect", "Redirect"), ("mn send HandoverRedirectAck", "HRA"),
            ("mn kernel: NCoA formed", "RA: NCoA (DAD)"), ("mn kernel: DAD done", "DAD done"),
            ("mn send BU", "BU"), ("cn follows", "CN follows BU"), ("mn recv BAck", "BAck"),
            ("mn send ForwardingDisable", "FD"))
#: waterfall steps drawn on the zoomed fast-handover panel, with short labels
_STEP_LABELS = {"mn_carrier": "MN sees carrier", "mn_attach_sent": "Attach", "nar_attach_agent": "NAR machine: Attach",
                "nar_flushed": "NAR flushes", "nar_amn_sent": "AMN", "nar_first_tx": "1st flushed datagram out",
                "mn_first_datagram": "MN: 1st datagram"}
_COLOURS = {"A": "tab:blue", "B": "tab:green", "lost": "tab:red"}


def plot(results: dict[str, dict[str, Any]], path: str) -> list[tuple[str, tuple[float, float, float, float]]]:
    """The datagram stream at the MN -- sequence number against arrival time, coloured by the link it came
    on, lost datagrams marked where they were sent -- for each mode's run on one time axis (zero at the
    layer-2 link down, the gap shaded), with the signalling events; then the fast handover zoomed to the gap
    and its latency waterfall.  PNG or SVG by the file's suffix (needs matplotlib: the plot extra).

    Returns every event label as (text, (x0, y0, x1, y1) in figure pixels): they overlap neither each other
    nor the figure's edge."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [m for m in ("fast", "baseline") if m in results] + [m for m in results if m not in ("fast", "baseline")]
    zoom = "fast" in results and results["fast"].get("waterfall_ms")
    rows = len(modes) + (1 if zoom else 0)
    fig = plt.figure(figsize=(12, 3.3 * rows))
    grid = fig.add_gridspec(rows, 1, hspace=0.75)
    axes = [fig.add_subplot(grid[0, 0])]
    axes += [fig.add_subplot(grid[i, 0], sharex=axes[0]) for i in range(1, len(modes))]
    titles = {"fast": "fast handover (the draft's Figure 3, measured on real links)",
              "baseline": "plain Mobile IPv6: SLAAC + DAD + BU (the draft's Figure 2, measured)"}
    span = [-60.0, 120.0]
    drawn: list[tuple[Any, list[tuple[float, str]]]] = []
    for ax, mode in zip(axes, modes):
        m = results[mode]
        zero, events = _draw_stream(ax, m)
        interruption = m.get("interruption_ms")
        ax.set_title(f"{titles.get(mode, mode)}: interruption "
                     f"{'-' if interruption is None else format(interruption, '.1f')} ms, {m.get('lost', 0)} lost",
                     fontsize=10, loc="left")
        first = (m.get("waterfall_ms") or {}).get("mn_first_datagram")
        st = m.get("_stream") or {}
        if first is not None and st.get("up_ms") is not None:
            span[1] = max(span[1], (st.get("link_up_ms") or st["up_ms"]) - zero + first + 60)
        span[1] = max(span[1], max((t for t, _ in events if t < 5000), default=0) + 40)
        drawn.append((ax, events))
    axes[0].set_xlim(*span)
    for ax, _ in drawn:
        _fit_y(ax, span)
    axes[-1].set_xlabel("ms since the layer-2 link down")
    if zoom:
        ax = fig.add_subplot(grid[rows - 1, 0])
        m = results["fast"]
        zero, _ = _draw_stream(ax, m, marker_size=9)
        st = m["_stream"]
        up = (st.get("link_up_ms") or st["up_ms"]) - zero  # the waterfall's zero: the MN's link up
        events = [(up + v, _STEP_LABELS[k]) for k, v in m["waterfall_ms"].items()
                  if k in _STEP_LABELS and v is not None]
        for t, _ in events:
            ax.axvline(t, color="tab:purple", linewidth=0.7, alpha=0.7)
        last = max((t for t, _ in events), default=up)
        last_a = max((t - zero for _, t in st.get("arrivals", []) if t - zero < 0), default=-5.0)
        hra = max((t - zero for what, t in m.get("timeline_ms", []) if what.startswith("mn send HandoverRedirectAck")
                   and t - zero < 0), default=-5.0)
        start = min(-5.0, max(min(last_a, hra), -80.0) - 3)
        events += [(t - zero, label) for what, t in m.get("timeline_ms", []) for prefix, label in _PLOTTED
                   if what.startswith(prefix) and start <= t - zero < 0]
        ax.set_xlim(start, last + max(5.0, 0.15 * (last - start)))
        _fit_y(ax, ax.get_xlim())
        ax.set_title("fast handover, zoomed: the latency waterfall from the link coming up", fontsize=10, loc="left")
        ax.set_xlabel("ms since the layer-2 link down")
        drawn.append((ax, events))
    fig.subplots_adjust(left=0.07, right=0.98, top=0.93, bottom=0.08)
    labels = _place_labels(fig, drawn)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return labels


def _draw_stream(ax: Any, m: dict[str, Any], marker_size: float = 3) -> tuple[float, list[tuple[float, str]]]:
    """One run's stream on ``ax`` (time zero: the layer-2 link down); returns the zero (timeline ms) and the
    run's signalling events as (ms since zero, label)."""
    st = m.get("_stream") or {}
    events_ms = m.get("timeline_ms", [])
    zero = st.get("down_ms")
    if zero is None:
        zero = next((t for what, t in events_ms if what.startswith("layer 2: port down")), 0.0)
    up = st.get("up_ms", zero) - zero
    arrivals = st.get("arrivals", [])
    before = [(t - zero, q) for q, t in arrivals if t - zero < 0]
    seq0 = max((q for _, q in before), default=0)
    for link, pts in (("A", before), ("B", [(t - zero, q) for q, t in arrivals if t - zero >= 0])):
        if pts:
            ax.scatter([t for t, _ in pts], [q - seq0 for _, q in pts], s=marker_size, color=_COLOURS[link],
                       label=f"arrived on link {link} ({'PAR' if link == 'A' else 'NAR'})", rasterized=True,
                       linewidths=0)
    lost = [(t - zero, q - seq0) for q, t in st.get("lost", []) if t is not None]
    if lost:
        ax.scatter([t for t, _ in lost], [q for _, q in lost], s=marker_size * 4, marker="x", color=_COLOURS["lost"],
                   label=f"lost ({len(lost)}), at its send time", linewidths=0.8, rasterized=True)
    ax.axvspan(0, up, color="grey", alpha=0.25, lw=0, label=f"layer-2 gap ({up:.0f} ms)")
    events = [(t - zero, label) for what, t in events_ms for prefix, label in _PLOTTED if what.startswith(prefix)]
    for t, _ in events:
        ax.axvline(t, color="black", linewidth=0.6, alpha=0.6)
    ax.set_ylabel("sequence number\n(0: last before the gap)", fontsize=8)
    ax.legend(loc="lower right", fontsize=7, markerscale=2, framealpha=0.9)
    ax.tick_params(labelsize=8)
    return zero, events


def _fit_y(ax: Any, span: Any) -> None:
    """The y range of what is inside the x span, with headroom above for the event labels."""
    ys = []
    for coll in ax.collections:
        offsets = coll.get_offsets()
        if len(offsets):
            ys += [float(y) for x, y in offsets if span[0] <= float(x) <= span[1]]
    if ys:
        lo, hi = min(ys), max(ys)
        pad = max(1.0, hi - lo)
        ax.set_ylim(lo - 0.1 * pad, hi + 0.9 * pad)


_Box = tuple[float, float, float, float]


def _place_labels(fig: Any, drawn: list[tuple[Any, list[tuple[float, str]]]]) -> list[tuple[str, _Box]]:
    """Each event's label above its line, in the first of a few rows where it overlaps no label placed before
    and stays inside its axes (right-aligned when it would run past the right edge); events outside the axes'
    x range are left out."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    placed: list[tuple[str, tuple[float, float, float, float]]] = []
    for ax, events in drawn:
        box = ax.get_window_extent(renderer)
        x0, x1 = ax.get_xlim()
        mine: list[tuple[float, float, float, float]] = []
        legend = ax.get_legend()
        if legend is not None:  # an obstacle, not a label
            lb = legend.get_window_extent(renderer)
            mine.append((lb.x0, lb.y0, lb.x1, lb.y1))
        for t, label in sorted(events):
            if not x0 <= t <= x1:
                continue
            for row in range(12):
                y = 0.97 - 0.075 * row
                for ha in ("left", "right"):
                    text = ax.annotate(label, (t, y), xycoords=("data", "axes fraction"), xytext=(2 if ha == "left"
                                       else -2, 0), textcoords="offset points", fontsize=7, ha=ha, va="top",
                                       bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.85})
                    bb = text.get_window_extent(renderer)
                    r = (bb.x0, bb.y0, bb.x1, bb.y1)
                    inside = box.x0 <= r[0] and r[2] <= box.x1 and box.y0 <= r[1] and r[3] <= box.y1
                    if inside and not any(_overlap(r, o) for o in mine):
                        mine.append(r)
                        placed.append((label, r))
                        break
                    text.remove()
                else:
                    continue
                break
    return placed


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

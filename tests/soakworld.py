"""A simulated world for soaks and fault injection: several mobile nodes moving between two access routers.

Everything real but the wire and the clock: two router engines (``fmipfast.engine.Engine``) driven by
``RouterAgent`` (AH between them, light-weight Kerberos for the MNs' AP-REQs -- case 1 with the routers' own
keys, cases 2 and 3 through an in-process KDC opener that can be made slow or unreachable), a correspondent
node streaming small UDP datagrams to each MN's care-of address and keeping a binding cache, and per MN its
``MobileNode`` machine on a minimal host stack, all on ``fmipfast.lab.simulated.sim``'s in-memory links and clock::

      CN ---- core link ---- router A (prefix 2001:db8:1::/64) ---- link A ---- MNs
                       \\---- router B (prefix 2001:db8:2::/64) ---- link B ---- MNs

Each MN's address on a link is the link's prefix + its EUI-64 interface identifier, so a handover either way
moves it between two fixed addresses.  Every stream datagram is followed: ``ledger`` says, per MN, what was
sent, received, lost on the air (the MN's port left the link while it was in flight) or lost inside a router
(last seen on the core link, never carried to the MN), and the engines' own counters must account for the
latter.  Nothing here reads the wall clock.
"""

from __future__ import annotations

import gc
import hashlib
import heapq
import random
import struct
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from typing import Any

import numpy as np

from fmipfast import backend, config
from fmipfast.constants import IpProto, MhType, NeighborFlag
from fmipfast.engine import Engine
from fmipfast.lab.simulated.demo import _ROUTER_TOML, binding_ack
from fmipfast.lab.simulated.host import Host
from fmipfast.lab.simulated.sim import MS, Sim, SimLink, SimPort
from fmipfast.messages import BindingUpdate
from fmipfast.mn import MnState, MobileNode
from fmipfast.ports import MemoryPort
from fmipfast.protocol import (
    ConfigureAddress,
    GetTicket,
    LinkUp,
    PreloadNeighbor,
    ReadyToSwitch,
    Received,
    RemoveAddress,
    Send,
    SetDefaultRoute,
    Start,
    Tick,
    TicketReady,
)
from fmipfast.router import RouterAgent, load_sessions
from fmipfast.routerd import log_router_note
from fmipfast.security import ah
from fmipfast.security import lwkerb as L

EPOCH_S = 1_800_000_000
HOME = "HOME.EXAMPLE"
CORE_PREFIX = "2001:db8:ff::/64"
CN = IPv6Address("2001:db8:ff::10")
CN_MAC = bytes.fromhex("02005e100020")
STREAM_PORT = 6000  # MN i's stream goes to UDP port STREAM_PORT + i
TICKET_S = 36_000  # ten hours
#: The routers' Kerberos clock skew (and replay-cache window), seconds.
SKEW_S = 5.0
#: How long an MN keeps its previous care-of address after the Binding Ack (packets still in the tunnel).
PCOA_HOLD_MS = 500


def _mac(i: int) -> bytes:
    return bytes((0x02, 0x00, 0x5E, 0x10, 0x00, i))


def _eui(prefix: str, mac: bytes) -> IPv6Address:
    return IPv6Address(IPv6Network(prefix).network_address.packed[:8] + backend.link_local_from_mac48(mac)[8:])


def _key(seed: int) -> L.Key:
    return L.Key(1 + seed % 5, bytes((seed * 31 + i * 7) & 0xFF for i in range(32)))


@dataclass
class Site:
    """One access router's fixed plan."""

    name: str  # "A", "B"
    realm: str
    prefix: str
    acc_mac: bytes
    up_mac: bytes
    up: IPv6Address

    @property
    def address(self) -> IPv6Address:
        return _eui(self.prefix, self.acc_mac)

    @property
    def link_local(self) -> IPv6Address:
        return IPv6Address(backend.link_local_from_mac48(self.acc_mac))

    @property
    def principal(self) -> L.Principal:
        return L.Principal(f"host/ar-{self.name.lower()}", self.realm)


SITES = {"A": Site("A", "A.EXAMPLE", "2001:db8:1::/64", _mac(1), _mac(0x11), IPv6Address("2001:db8:ff::1")),
         "B": Site("B", "B.EXAMPLE", "2001:db8:2::/64", _mac(2), _mac(0x12), IPv6Address("2001:db8:ff::2"))}
SPI = {("A", "B"): 0x1001, ("B", "A"): 0x1002}
AH_KEY = {("A", "B"): bytes(range(32)), ("B", "A"): bytes(range(32, 64))}


class Kdc:
    """The realms' key material and KDCs.  A ticket for ``server`` is issued on request (from the simulated POSIX
    time, ``TICKET_S`` long); ``opener(realm)`` is that realm's KDC as a router's ``ApVerifier`` uses it (case 2:
    its own ``access/R``; case 3: it forwards ``access/HOME`` tickets to the home KDC).  ``down`` (a set of
    realm names) makes a KDC unreachable; ``extra_delay_ns`` makes each answer of a realm's KDC that much
    slower (charged by the router's scheduler)."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.keys: dict[L.Principal, L.Key] = {s.principal: _key(i + 1) for i, s in enumerate(SITES.values())}
        for i, realm in enumerate((*(s.realm for s in SITES.values()), HOME)):
            self.keys[L.access_principal(realm)] = _key(10 + i)
        self.down: set[str] = set()
        self.extra_delay_ns: dict[str, int] = {}
        self.opened: dict[str, int] = {}
        self.issued = 0
        self._pending_delay = 0

    def now_s(self) -> int:
        return EPOCH_S + self.sim.now // 1_000_000_000

    def ticket(self, client: L.Principal, server: L.Principal) -> L.Credentials:
        now = self.now_s()
        key = self.keys[server]
        self.issued += 1
        skey = L.Key(0, hashlib.sha256(f"{client}|{server}|{now}|{self.issued}".encode()).digest())
        part = L.EncTicketPart(L.TicketFlag.PRE_AUTHENT, now - 60, now - 60, now + TICKET_S, skey.value, client)
        return L.Credentials(client, server, L.Ticket.issue(server, key, part), skey, part.flags, now - 60, now - 60,
                             now + TICKET_S)

    def opener(self, realm: str) -> Any:
        kdc = self

        class Opener:
            async def open_ticket(self, ticket: L.Ticket) -> L.EncTicketPart:
                hops = [realm] if ticket.server.realm == realm else [realm, ticket.server.realm]
                for r in hops:
                    if r in kdc.down:
                        raise L.KdcUnreachable(f"the KDC of {r} does not answer")
                    kdc._pending_delay += kdc.extra_delay_ns.get(r, 0)
                if ticket.server != L.access_principal(ticket.server.realm):
                    raise L.UnknownRealm(f"no KDC opens {ticket.server}")
                kdc.opened[ticket.server.realm] = kdc.opened.get(ticket.server.realm, 0) + 1
                return ticket.open(kdc.keys[ticket.server])

        return Opener()

    def take_delay(self) -> int:
        d, self._pending_delay = self._pending_delay, 0
        return d


def run_now(coro: Any) -> Any:
    """Run a coroutine that never suspends (the in-process KDC answers at once; the delay is simulated) without
    an event loop per call."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("the coroutine suspended: not an in-process KDC")


class Timer:
    """A timer on the simulated clock, cancellable like asyncio's TimerHandle (a cancelled one stays in the
    simulator's queue until its time, doing nothing: ``World.compact`` removes it)."""

    __slots__ = ("owner", "fn", "cancelled")

    def __init__(self, owner: Any, fn: Any) -> None:
        self.owner, self.fn, self.cancelled = owner, fn, False

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            if self.owner is not None:
                self.owner.armed -= 1

    def __call__(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        if self.owner is not None:
            self.owner.armed -= 1
            if not self.owner.alive:
                return
        self.fn()


class Scheduler:
    """A RouterAgent's scheduler on the simulated clock; ``alive`` False (the router was restarted or killed)
    drops everything it had scheduled.  Asynchronous work (a KDC round trip) answers after ``delay_ns`` plus
    whatever the KDC added."""

    def __init__(self, sim: Sim, kdc: Kdc, delay_ns: int) -> None:
        self.sim, self.kdc, self.delay_ns, self.alive = sim, kdc, delay_ns, True
        self.armed = 0  # timers the agent armed that have not fired yet

    def now(self) -> int:
        return int(self.sim.now)

    def call_at(self, when_ns: int, fn: Any) -> "Timer":
        timer = Timer(self, fn)
        self.armed += 1
        self.sim.at(when_ns, timer)
        return timer

    def run_async(self, coro: Any, done: Any) -> None:
        result = run_now(coro)
        self.sim.after(self.delay_ns + self.kdc.take_delay(), lambda: done(result) if self.alive else None)


class LedgerLink(SimLink):
    """A switched link (a unicast frame reaches the port with its destination MAC, a multicast one every port:
    what an Ethernet switch with learned MACs does) that tells the ledger about stream datagrams it carries and
    those lost: in flight (the MN's port left before the frame arrived) or sent to an MN not on the link."""

    def __init__(self, world: "World", *args: Any) -> None:
        super().__init__(*args)
        self.world = world

    def carry(self, sender: MemoryPort, frame: bytes, now: int) -> None:
        tag = stream_tag(frame)
        if tag is not None:
            self.world.ledger.seen(tag, self.name)
            mn = self.world.mns[tag[0]] if tag[0] < len(self.world.mns) else None
            if mn is not None and frame[0:6] == mn.mac and mn.port.link is not self:
                self.world.ledger.lost_on_air(tag)  # sent onto a link the MN is not on
                self.world.debug.append(("air", self.world.sim.now, tag, self.name, mn.history[-8:]))
        self.counters["frames"] += 1
        dst = frame[0:6]
        for port in list(self.ports):
            if port is not sender and (dst[0] & 1 or port.mac == dst):
                self._launch(port, frame, now)

    def _arrive(self, port: MemoryPort, frame: bytes, now: int) -> None:
        if port.link is not self:
            tag = stream_tag(frame)
            if tag is not None and port.name.startswith("mn"):
                self.world.ledger.lost_on_air(tag)
        super()._arrive(port, frame, now)


def stream_tag(frame: bytes) -> tuple[int, int] | None:
    """(MN index, sequence number) of a stream datagram (plain or tunnelled IPv6-in-IPv6), else None."""
    if len(frame) < 14 + 40 + 8 + 4 or frame[12:14] != b"\x86\xdd":
        return None
    at = 14
    if frame[at + 6] == IpProto.IPV6:
        at += 40
        if len(frame) < at + 40 + 8 + 4:
            return None
    if frame[at + 6] != IpProto.UDP:
        return None
    dport = int.from_bytes(frame[at + 42:at + 44], "big")
    if not STREAM_PORT <= dport < STREAM_PORT + 256:
        return None
    return dport - STREAM_PORT, int.from_bytes(frame[at + 48:at + 52], "big")


class Ledger:
    """Per MN stream: what happened to every datagram.  ``close_books`` (with the streams stopped and the
    world settled) adds the datagrams so far to ``totals`` and forgets them, so a long soak stays bounded."""

    KINDS = ("sent", "received", "duplicates", "on_air", "refused_by_host", "in_router", "in_router_excused",
             "unexplained")

    def __init__(self, n: int) -> None:
        self.n = n
        self.sent = [0] * n
        self.base = [0] * n
        self.totals = {k: [0] * n for k in self.KINDS}
        self._reset()

    def _reset(self) -> None:
        n = self.n
        self.last: dict[tuple[int, int], str] = {}  # where each datagram was last carried
        self.sent_at: dict[tuple[int, int], int] = {}
        self.received: list[set[int]] = [set() for _ in range(n)]
        self.duplicates = [0] * n
        self.on_air: list[set[int]] = [set() for _ in range(n)]
        self.refused_by_host: list[set[int]] = [set() for _ in range(n)]
        #: datagrams sent while their MN was reversing a handover (the draft delivers those the PAR tunnelled
        #: before the Forwarding Disable only if the MN reaches the NAR: they may be dropped there)
        self.excused: list[set[int]] = [set() for _ in range(n)]

    def seen(self, tag: tuple[int, int], link: str) -> None:
        self.last[tag] = link

    def lost_on_air(self, tag: tuple[int, int]) -> None:
        self.on_air[tag[0]].add(tag[1])

    def account(self) -> dict[str, list[int]]:
        """Per MN, of the datagrams since the books were last closed: sent, received, lost on the air, refused
        by the MN's host (an address it no longer has), lost in a router (last carried towards a router:
        ``in_router``, of which ``in_router_excused`` sent during a reversal), never carried (unexplained)."""
        out: dict[str, list[int]] = {k: [] for k in self.KINDS}
        for i in range(self.n):
            span = set(range(self.base[i], self.sent[i]))
            lost = span - self.received[i]
            air = lost & self.on_air[i]
            host = (lost - air) & self.refused_by_host[i]
            rest = lost - air - host
            never = {s for s in rest if (i, s) not in self.last}
            router = rest - never
            out["sent"].append(len(span))
            out["received"].append(len(self.received[i] & span))
            out["duplicates"].append(self.duplicates[i])
            out["on_air"].append(len(air))
            out["refused_by_host"].append(len(host))
            out["in_router"].append(len(router))
            out["in_router_excused"].append(len(router & self.excused[i]))
            out["unexplained"].append(len(never))
        return out

    def unexcused(self) -> list[tuple[int, int, int, str]]:
        """(MN, seq, sent at, last carried on) of the datagrams lost in a router outside a reversal."""
        out = []
        for i in range(self.n):
            for seq in sorted(set(range(self.base[i], self.sent[i])) - self.received[i] - self.on_air[i]
                              - self.refused_by_host[i] - self.excused[i]):
                out.append((i, seq, self.sent_at.get((i, seq), -1), self.last.get((i, seq), "-")))
        return out

    def close_books(self) -> dict[str, list[int]]:
        acc = self.account()
        for k in self.KINDS:
            self.totals[k] = [a + b for a, b in zip(self.totals[k], acc[k])]
        self.base = list(self.sent)
        self._reset()
        return acc


class MnHost(Host):
    """The MN's host stack; notes stream datagrams for one of its own addresses that it no longer has."""

    def __init__(self, world: "World", index: int, *args: Any) -> None:
        super().__init__(*args)
        self.world, self.index = world, index
        self.iid = self.port.mac

    def _frame(self, frame: bytes) -> None:
        tag = stream_tag(frame)
        if tag is not None and tag[0] == self.index and frame[0:6] == self.port.mac:
            dst = IPv6Address(frame[14 + 24:14 + 40])
            if dst not in self.addresses:
                self.world.ledger.refused_by_host[self.index].add(tag[1])
                self.world.debug.append(("refused", self.sim.now, self.index, tag[1], str(dst),
                                         sorted(map(str, self.addresses)), self.world.mns[self.index].machine.state,
                                         self.world.mns[self.index].history[-6:]))
        super()._frame(frame)


class RouterNode:
    """One access router: its engine and RouterAgent on the world's links (``restart`` builds new ones on the
    same links, as a daemon restart does, optionally from its session file)."""

    def __init__(self, world: "World", site: Site, *, case: int, session_file: str | None = None,
                 ah_store: ah.SequenceStore | None = None, restored: bool = False, verify_delay_ms: float = 0.05,
                 **ar_options: Any) -> None:
        self.world, self.site, self.case = world, site, case
        self.session_file, self.ah_store, self.ar_options = session_file, ah_store, ar_options
        self.verify_delay_ms = verify_delay_ms
        self.notes: dict[str, int] = {}
        self.errors: list[str] = []
        w, s = world, site
        other = SITES["B" if s.name == "A" else "A"]
        toml = _ROUTER_TOML.format(name=s.name.lower(), acc=s.address, up=s.up, ra_min=world.ra_ms[0],
                                   ra_max=world.ra_ms[1], realm=other.realm, other_prefix=other.prefix, peer=other.up,
                                   peer_mac=other.up_mac.hex(":"), cn=CN, cn_mac=CN_MAC.hex(":"), hold=world.hold_ms)
        self.ports = {f"{s.name.lower()}-acc": SimPort(w.sim, f"{s.name.lower()}-acc", s.acc_mac, w.links[s.name]),
                      f"{s.name.lower()}-up": SimPort(w.sim, f"{s.name.lower()}-up", s.up_mac, w.core)}
        self.engine = Engine(config.loads(toml).router, self.ports, clock=w.sim.clock, seed=bytes(16))
        for port in self.ports.values():
            port.on_receive = self._poll
        self.alive = True
        keytab = L.Keytab()
        keytab.add(s.principal, w.kdc.keys[s.principal])
        sad = ah.SADatabase()
        sad.add_inbound(ah.SecurityAssociation(SPI[(other.name, s.name)], AH_KEY[(other.name, s.name)],
                                               peer=str(other.address)))
        sa_out = {other.address: ah.SecurityAssociation(SPI[(s.name, other.name)], AH_KEY[(s.name, other.name)],
                                                        peer=str(other.address), store=ah_store)}
        self.scheduler = Scheduler(w.sim, w.kdc, int(verify_delay_ms * MS))
        opener = w.kdc.opener(s.realm) if case in (2, 3) else None
        back = load_sessions(session_file) if (restored and session_file) else None
        self.agent = RouterAgent(self.engine, self.scheduler, principal=s.principal, keytab=keytab, sad=sad,
                                 sa_out=sa_out, opener=opener, epoch_s=EPOCH_S, on_note=self._note,
                                 session_file=session_file, restored=back, **ar_options)
        # the simulated clocks agree to the microsecond: a 5 s skew (RFC 4120's default is 300 s) keeps the
        # replay cache -- which holds every authenticator for the skew window -- small in long soaks
        v = self.agent.verifier
        self.agent.verifier = L.ApVerifier(v.realm, v.keytab, opener=v.opener, clock=v.clock, skew=SKEW_S)
        w.sim.every(10 * MS, self._tick)

    def _poll(self) -> None:
        if self.alive:
            self.engine.poll()

    def _tick(self) -> None:
        if self.alive:
            self.engine.tick()

    def _note(self, what: str, fields: dict[str, Any]) -> None:
        self.notes[what] = self.notes.get(what, 0) + 1
        log_router_note(what, fields)  # what the daemon does with its agent's notes
        if what in ("sessions_save_failed", "ah_protect_failed"):
            self.errors.append(f"{what}: {fields.get('error')}")

    def stop(self) -> None:
        """The process is gone: its ports leave the links, nothing it scheduled runs."""
        self.alive = False
        self.scheduler.alive = False
        for port in self.ports.values():
            port.on_receive = None
            port.attach(None)

    @property
    def ar(self) -> Any:
        return self.agent.ar


class MnNode:
    """One mobile node: its machine, host stack and the driver executing the machine's actions."""

    def __init__(self, world: "World", index: int, clock_offset_ns: int = 0) -> None:
        self.world, self.index = world, index
        self.mac = bytes((0x00, 0x1B, 0x63, 0x84, 0x45, 0x10 + index))
        self.principal = L.Principal(f"mn{index}", HOME)
        self.addr = {name: _eui(s.prefix, self.mac) for name, s in SITES.items()}
        self.port = SimPort(world.sim, f"mn{index}", self.mac, world.links["A"])
        self.host = MnHost(world, index, world.sim, f"mn{index}", self.port, [self.addr["A"]])
        self.host.set_neighbor(SITES["A"].link_local, SITES["A"].acc_mac)
        self.host.set_default_router(SITES["A"].link_local)
        self.machine = MobileNode(self.mac, home_agent=CN, epoch_ns=EPOCH_S * 1_000_000_000 + clock_offset_ns)
        self.link = "A"  # where its port is ("" while between links)
        self._tick_at: int | None = None
        self._timer: Timer | None = None
        self._release: list[tuple[IPv6Address, int]] = []
        self._retired: dict[IPv6Address, int] = {}
        self._tokens = 0
        self.host.on_fmip = self._on_fmip
        self.host.on_packet = self._on_packet
        self.host.on_udp = self._on_udp
        self.history: list = []
        self.attached_since = 0
        self.reversing = False  # between a reversal's trigger and shortly after the MN is back
        self.plan: str = "move"  # what the next ReadyToSwitch does: "move" or "reverse"
        self.switches = {"move": 0, "reverse": 0}
        self.gap_ns = 30 * MS
        self.l2_delay_ns = 5 * MS

    # ------------------------------------------------------------- the machine
    def handle(self, event: object) -> None:
        before = self.machine.state
        for action in self.machine.handle(event, self.world.sim.now):  # type: ignore[arg-type]
            self.execute(action)
        if self.machine.state == MnState.ATTACHED and before != MnState.ATTACHED:
            self.attached_since = self.world.sim.now
        deadline = self.machine.next_deadline()
        if deadline != self._tick_at:  # one timer, re-armed when the deadline moves
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._tick_at = deadline
            if deadline is not None:
                self._timer = Timer(None, self._tick)
                self.world.sim.at(deadline, self._timer)

    def _tick(self) -> None:
        self._tick_at, self._timer = None, None
        self.handle(Tick())

    def start(self) -> None:
        site = SITES[self.link]
        self.handle(Start(site.address, site.principal, self.addr[self.link], self.link))

    def retry(self) -> bool:
        """What an MN daemon does from ``idle``: attach again where it is (the machine's ``last_attach``)."""
        if self.machine.state != MnState.IDLE or self.machine.last_attach is None:
            return False
        self.handle(Start(*self.machine.last_attach))
        return True

    def _on_fmip(self, icmp: bytes, src: IPv6Address, dst: IPv6Address, hop_limit: int) -> None:
        self.handle(Received(icmp, src, dst, hop_limit, self.link, False))

    def _on_udp(self, src: IPv6Address, dst: IPv6Address, sport: int, dport: int, data: bytes, now: int) -> None:
        if dport != STREAM_PORT + self.index:
            return
        seq = struct.unpack_from("!I", data)[0]
        led = self.world.ledger
        if seq in led.received[self.index]:
            led.duplicates[self.index] += 1
        led.received[self.index].add(seq)

    def _on_packet(self, packet: bytes, now: int) -> None:
        if len(packet) >= 48 and packet[6] == IpProto.MH and packet[42] == MhType.BINDING_ACK and self._release:
            pending, self._release = self._release, []

            def release() -> None:
                # only the retirement still standing: an address the MN took up again since (A->B->A within
                # the hold) was configured anew and is not retired any more
                for address, token in pending:
                    if self._retired.get(address) == token:
                        del self._retired[address]
                        self.host.remove_address(address)

            self.world.sim.after(PCOA_HOLD_MS * MS, release)

    def execute(self, a: object) -> None:
        w, host = self.world, self.host
        if type(a).__name__ != "Note":
            self.history.append((w.sim.now, type(a).__name__, str(getattr(a, "address", "")) or None))
            del self.history[:-200]
        if isinstance(a, Send):
            host.send_icmp(a.icmp, a.src, a.dst, a.hop_limit)
        elif isinstance(a, GetTicket):
            server = a.server
            site = next((s for s in SITES.values() if s.principal == server), None)
            if site is not None and w.case == 2:
                server = L.access_principal(site.realm)
            elif site is not None and w.case == 3:
                server = L.access_principal(HOME)
            creds = w.kdc.ticket(self.principal, server)
            w.sim.after(0, lambda: self.handle(TicketReady(a.request_id, creds)))
        elif isinstance(a, ConfigureAddress):
            self._retired.pop(a.address, None)
            host.add_address(a.address)
        elif isinstance(a, PreloadNeighbor):
            host.set_neighbor(a.address, a.mac)
        elif isinstance(a, SetDefaultRoute):
            host.set_default_router(a.via)
        elif isinstance(a, RemoveAddress):
            if a.retired:  # kept until the Binding Ack (+ PCOA_HOLD_MS)
                self._tokens += 1
                self._retired[a.address] = self._tokens
                self._release.append((a.address, self._tokens))
            else:
                host.remove_address(a.address)
        elif isinstance(a, ReadyToSwitch):
            here = self.link
            there = next(n for n, s in SITES.items() if s.address == a.nar_address)
            target = there if self.plan == "move" else here
            self.switches[self.plan] += 1
            self.plan = "move"
            self.switch(target, self.l2_delay_ns, self.gap_ns)

    def switch(self, to: str | None, delay_ns: int, gap_ns: int) -> None:
        """The layer-2 move: down after ``delay_ns``, up on link ``to`` (None: stays down) ``gap_ns`` later."""
        w = self.world

        def down() -> None:
            self.port.attach(None)
            self.link = ""

        def up() -> None:
            if to is None:
                return
            back = to == self.attached_at or (self.machine.router is not None
                                              and self.machine.router.link == to)
            self.port.attach(w.links[to])
            self.link = to
            self.history.append((w.sim.now, f"link up {to}", None))
            self.handle(LinkUp(to))
            if back and self.reversing:
                def done() -> None:
                    self.reversing = False
                w.sim.after(50 * MS, done)

        w.sim.after(delay_ns, down)
        w.sim.after(delay_ns + gap_ns, up)

    @property
    def attached_at(self) -> str | None:
        r = self.machine.router
        if self.machine.state != MnState.ATTACHED or r is None:
            return None
        return next(n for n, s in SITES.items() if s.address == r.address)


class World:
    """The whole simulated world.  ``case``: the Kerberos key case of every MN's tickets; ``router_options``:
    per router name, RouterNode keyword arguments (session_file, ah_store, AccessRouter options)."""

    def __init__(self, n_mns: int = 4, *, case: int = 1, rate_pps: int = 20, seed: int = 1, hold_ms: int = 10,
                 ra_ms: tuple[int, int] = (30, 70), router_options: dict[str, dict[str, Any]] | None = None,
                 same_clock: bool = False) -> None:
        self.case, self.hold_ms, self.ra_ms = case, hold_ms, ra_ms
        self.rng = random.Random(seed)
        self.sim = Sim(0)
        self.kdc = Kdc(self.sim)
        self.ledger = Ledger(n_mns)
        self.core = LedgerLink(self, self.sim, "core", 5 * MS)
        self.links = {name: LedgerLink(self, self.sim, name, 2 * MS) for name in SITES}
        opts = router_options or {}
        verify_ms = {1: 0.05, 2: 10.1, 3: 40.2}[case]
        self.routers = {name: RouterNode(self, site, case=case, verify_delay_ms=verify_ms, **opts.get(name, {}))
                        for name, site in SITES.items()}
        self.cn = Host(self.sim, "cn", SimPort(self.sim, "cn0", CN_MAC, self.core), [CN])
        for s in SITES.values():
            self.cn.set_neighbor(s.up, s.up_mac)
            self.cn.add_route(s.prefix, s.up)
        self.cn.on_packet = self._cn_packet
        # Each MN's clock is i+1.5 microseconds off the routers' (simulated events fall on 10 us multiples, and an
        # authenticator's ctime is the POSIX time truncated to the microsecond): no two MNs' authenticators carry
        # the same ctime -- unless same_clock (ReplayCache's heap then compares the clients' Principals, which do
        # not order: a TypeError out of ApVerifier.verify, see tests/test_faults.py)
        assert same_clock or n_mns < 9
        self.mns = [MnNode(self, i, 0 if same_clock else (i + 1) * 1000 + 500) for i in range(n_mns)]
        self.binding = [mn.addr["A"] for mn in self.mns]
        self.rate_pps = rate_pps
        self.streaming = False
        self._stream_gen = 0
        self.debug: list = []
        self.bus = {"received": 0, "acked": 0}

    def restart_router(self, name: str, **kw: Any) -> RouterNode:
        """Stop router ``name`` and start a new engine and agent on the same links (same plan and options,
        ``kw`` overriding: e.g. ``restored=True`` to take its session file back)."""
        old = self.routers[name]
        old.stop()
        opts = dict(case=old.case, session_file=old.session_file, ah_store=old.ah_store,
                    verify_delay_ms=old.verify_delay_ms, **old.ar_options)
        opts.update(kw)
        new = RouterNode(self, old.site, **opts)
        self.routers[name] = new
        return new

    # ------------------------------------------------------------- the CN
    def _cn_packet(self, packet: bytes, now: int) -> None:
        if packet[6] != IpProto.MH or len(packet) < 52 or packet[42] != MhType.BINDING_UPDATE:
            return
        bu = BindingUpdate.decode_packet(packet)
        coa = IPv6Address(packet[8:24])
        index = next(i for i, mn in enumerate(self.mns) if coa in mn.addr.values())
        self.binding[index] = coa
        self.bus["received"] += 1
        if bu.flags & 0x8000:
            self.bus["acked"] += 1
            self.cn.send_packet(binding_ack(CN, coa, bu.sequence))

    def start_streams(self) -> None:
        """Each MN's stream: a datagram every 1/rate_pps s, to its binding, until ``stop_streams``."""
        self.streaming = True
        self._stream_gen += 1
        period = int(1_000_000_000 / self.rate_pps)
        for i in range(len(self.mns)):
            self.sim.after(i * period // len(self.mns), self._sender(i, period, self._stream_gen))

    def _sender(self, i: int, period: int, gen: int) -> Any:
        def send() -> None:
            if not self.streaming or gen != self._stream_gen:
                return
            seq = self.ledger.sent[i]
            self.ledger.sent[i] += 1
            self.ledger.sent_at[(i, seq)] = self.sim.now
            if self.mns[i].reversing:
                self.ledger.excused[i].add(seq)
            self.cn.send_udp(CN, self.binding[i], 5000, STREAM_PORT + i, struct.pack("!I", seq) + bytes(20))
            self.sim.after(period, send)

        return send

    def stop_streams(self) -> None:
        self.streaming = False

    # ------------------------------------------------------------- running
    def compact(self) -> int:
        """Take cancelled timers out of the simulator's queue (they would only run, doing nothing, at their
        time -- hours away for a session's end); returns how many.  Keeps the soak's memory figures about the
        system under test."""
        q = self.sim._queue
        keep = [e for e in q if not getattr(e[2], "cancelled", False)]
        gone = len(q) - len(keep)
        if gone:
            heapq.heapify(keep)
            self.sim._queue = keep
        return gone

    def step_clock(self, delta_ns: int) -> None:
        """The clock jumps by ``delta_ns`` (either way) without time passing for anyone: forward, everything
        that fell due meanwhile runs at the new time, in its order; backward, what was scheduled waits for the
        clock to come round again."""
        now = self.sim.now + delta_ns
        if delta_ns > 0:
            q = self.sim._queue
            self.sim._queue = [(max(when, now), seq, fn) for when, seq, fn in q]
            heapq.heapify(self.sim._queue)
        self.sim.now = now

    def run_for(self, ms: float) -> None:
        self.sim.run(self.sim.now + round(ms * MS))

    def attach_all(self) -> None:
        for mn in self.mns:
            mn.start()
        self.run_for(200)
        assert [mn.attached_at for mn in self.mns] == ["A"] * len(self.mns), [mn.machine.state for mn in self.mns]

    def trigger(self, mn: MnNode, plan: str = "move") -> dict[str, Any]:
        """Ask the MN's router (through its control API entry) to hand it over to the other router."""
        here = mn.attached_at
        assert here is not None, (mn.index, mn.machine.state)
        there = "B" if here == "A" else "A"
        mn.plan = plan
        mn.reversing = plan == "reverse"
        if mn.reversing:  # datagrams still on the core link towards the PAR are in the reversal too
            led = self.ledger
            for seq in range(max(led.base[mn.index], led.sent[mn.index] - 4), led.sent[mn.index]):
                if led.sent_at.get((mn.index, seq), -1) >= self.sim.now - 2 * self.core.delay_ns:
                    led.excused[mn.index].add(seq)
        mn.history.append((self.sim.now, f"trigger {plan} {here}->{there}", None))
        return self.routers[here].agent.trigger({"pcoa": str(mn.addr[here]), "nar": str(SITES[there].address),
                                                 "nar_principal": str(SITES[there].principal)})

    # ------------------------------------------------------------- what the tables hold
    def occupancy(self) -> dict[str, dict[str, Any]]:
        """Per router, what must end where it started."""
        out = {}
        mn_addrs = {str(a) for mn in self.mns for a in mn.addr.values()}
        for name, r in self.routers.items():
            e, a = r.engine, r.ar
            in_use = np.flatnonzero(np.asarray(e.ncache.in_use))
            flags = np.asarray(e.ncache.flags)[in_use]
            keys = np.asarray(e.ncache.keys)[in_use]
            addrs = [str(IPv6Address(bytes(k))) for k in keys]
            other = sorted(x for x in addrs if x not in mn_addrs)
            special = int(np.count_nonzero(flags & (NeighborFlag.PROXY | NeighborFlag.TUNNEL | NeighborFlag.HOLD)))
            out[name] = {
                "ncache_other": other,  # entries not of an MN address: locals, configured neighbors, the CN
                "ncache_mn": sorted(x for x in addrs if x in mn_addrs),
                "ncache_special": special,
                "buffer_held": len(e.buffer),
                "buffer_keys": sorted({k for k in e._proxy_key.values() if k >= 0} | {h.key for h in e._hold.values()}),
                "proxy": len(e._proxy_key) + len(e._proxy_aliases),
                "tunnel": len(e._tunnel_peer),
                "hold": len(e._hold) + len(e._hold_alias),
                "resolving": len(e._resolving) + len(e._originated),
                "unresolved_held": len(e.unresolved),
                "par": len(a.par),
                "nar": len(a.nar),
                "nar_index": len(a._nar_by_ncoa) + len(a._verifying),
                "sessions": sorted(str(x) for x in a.sessions),
                "conservation": e.conservation()["holds"],
                "timers_armed": r.scheduler.armed,
            }
            out[name]["key_pool_in_use"] = len(e.buffer_keys)  # fmipfast.keys.KeyPool: keys in use
        return out

    def expected_sessions(self) -> dict[str, list[str]]:
        want: dict[str, list[str]] = {name: [] for name in SITES}
        for mn in self.mns:
            at = mn.attached_at
            if at is not None:
                want[at].append(str(mn.addr[at]))
        return {k: sorted(v) for k, v in want.items()}


def memory_mark() -> dict[str, int]:
    """RSS (kB) and the number of objects the collector tracks."""
    gc.collect()
    rss = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return {"rss_kb": rss, "objects": len(gc.get_objects())}


__all__ = ["World", "SITES", "MnNode", "RouterNode", "Kdc", "memory_mark", "stream_tag", "PCOA_HOLD_MS", "HOME"]

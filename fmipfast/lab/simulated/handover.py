"""The secure fast handover on the demo's simulated topology: the protocol machines of ``fmipfast.ar`` and
``fmipfast.mn`` wired to the two router engines and the mobile node's host.

What the drivers do with the machines' actions (docs/design.md §1, §4):

* routers: ``Send`` → an IPv6 packet (under AH between the routers: RFC 4302 with the configured SAs)
  originated by the engine; ``ProxyAdd``/``ProxyComplete``/``ProxyRemove``/``BufferDrop``/``TunnelAdd``/
  ``TunnelRemove``/``ForwardPacket`` → the engine's handover hooks; ``Verify`` → a real light-weight
  Kerberos ``ApVerifier`` (case 1: the NAR's own key; case 2: it asks its realm's KDC to open an
  ``access/B`` ticket; case 3: that KDC asks the MN's home KDC), answered after the round trips the case
  costs on the simulated links; fmipfast messages the engine hands up (with AH verified by the driver) →
  ``Received``;
* the MN: ``Send`` → its host stack; ``ConfigureAddress``/``PreloadNeighbor``/``SetDefaultRoute``/
  ``RemoveAddress`` → its host; ``GetTicket`` → credentials for the case (from its ticket cache, with
  cross-realm TGTs precached from the RA's adjacent realms); ``ReadyToSwitch`` → the layer-2 move after
  ``l2_delay_ms`` with the ``gap_ms`` link gap, then ``LinkUp``.

Ownership: single-threaded, driven by the simulator.
"""

from __future__ import annotations

import asyncio
import time
from ipaddress import IPv6Address
from typing import Any

from fmipfast import frames
from fmipfast.engine import Engine
from fmipfast.lab.simulated.sim import MS
from fmipfast.lab.simulated.world import World
from fmipfast.messages import is_binding_ack
from fmipfast.mn import MobileNode
from fmipfast.protocol import (
    ConfigureAddress,
    GetTicket,
    LinkUp,
    Precache,
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
from fmipfast.router import RouterAgent
from fmipfast.security import ah
from fmipfast.security import lwkerb as L

__all__ = ["install_fast_handover", "EPOCH_S"]

#: POSIX time of the simulation's t=0 (Kerberos times are POSIX seconds).
EPOCH_S = 1_800_000_000
HOME, REALM_A, REALM_B = "HOME.EXAMPLE", "A.EXAMPLE", "B.EXAMPLE"
MN_PRINCIPAL = L.Principal("mn1", HOME)
PAR_PRINCIPAL = L.Principal("host/par", REALM_A)
NAR_PRINCIPAL = L.Principal("host/nar", REALM_B)
SPI_PAR_TO_NAR, SPI_NAR_TO_PAR = 0x1001, 0x1002
#: How long the MN keeps its previous care-of address after the Binding Ack.
PCOA_HOLD_MS = 500.0


def _key(seed: int, kvno: int = 1) -> L.Key:
    return L.Key(kvno, bytes((seed * 31 + i * 7) & 0xFF for i in range(32)))


class _Realms:
    """The key material of the three realms and the tickets the MN holds (built with lwkerb primitives;
    the KDCs of cases 2 and 3 run in-process and open tickets for real)."""

    def __init__(self) -> None:
        self.keys = {PAR_PRINCIPAL: _key(1, 3), NAR_PRINCIPAL: _key(2, 4), L.access_principal(REALM_B): _key(3),
                     L.access_principal(HOME): _key(4)}
        self.now = EPOCH_S

    def ticket(self, server: L.Principal) -> L.Credentials:
        key = self.keys[server]
        skey = L.Key(0, bytes((hash(server.name) + i) & 0xFF for i in range(32)))
        part = L.EncTicketPart(L.TicketFlag.PRE_AUTHENT, self.now - 60, self.now - 60, self.now + 36000,
                               skey.value, MN_PRINCIPAL)
        return L.Credentials(MN_PRINCIPAL, server, L.Ticket.issue(server, key, part), skey, part.flags,
                             self.now - 60, self.now - 60, self.now + 36000)


class _LocalOpener:
    """A realm KDC's ticket-opening service, run in-process (the message exchange is the real OPEN, answered
    by opening the ticket with the KDC-only key; the round trip is charged on the simulated clock)."""

    def __init__(self, realms: _Realms, accepted: L.Principal) -> None:
        self.realms, self.accepted = realms, accepted

    async def open_ticket(self, ticket: L.Ticket) -> L.EncTicketPart:
        if ticket.server != self.accepted:
            raise L.UnknownRealm(f"this KDC opens only {self.accepted} tickets")
        return ticket.open(self.realms.keys[ticket.server])


class SimScheduler:
    """The demo's scheduler for a :class:`~fmipfast.router.RouterAgent`: the simulator's clock, and
    asynchronous work (a KDC round trip) answered after ``async_delay_ns`` of simulated time."""

    def __init__(self, sim: Any, async_delay_ns: int, *, charge_measured: bool = False) -> None:
        self.sim, self.async_delay_ns, self.charge_measured = sim, async_delay_ns, charge_measured

    def now(self) -> int:
        return int(self.sim.now)

    def call_at(self, when_ns: int, fn: Any) -> None:
        self.sim.at(when_ns, fn)

    def run_async(self, coro: Any, done: Any) -> None:
        async def timed() -> tuple[Any, int]:
            start = time.perf_counter_ns()
            out = await coro
            return out, time.perf_counter_ns() - start

        result, spent = asyncio.run(timed())
        # a real library's work (MIT's acceptance) costs what it measured, on the simulated clock too
        self.sim.after(max(self.async_delay_ns, spent if self.charge_measured else 0), lambda: done(result))


class RouterDriver(RouterAgent):
    """A :class:`RouterAgent` on the demo's simulated clock, writing the timeline."""

    def __init__(self, w: World, name: str, engine: Engine, principal: L.Principal, keytab: L.Keytab,
                 peer: IPv6Address, sa_out: ah.SecurityAssociation, sad: ah.SADatabase,
                 opener: Any = None, verify_delay_ms: float = 0.05, *, verifier: Any = None,
                 epoch_s: float = EPOCH_S, nar_principal: L.Principal = NAR_PRINCIPAL) -> None:
        self.w, self.name, self.nar_principal = w, name, nar_principal
        super().__init__(engine, SimScheduler(w.sim, int(verify_delay_ms * MS), charge_measured=verifier is not None),
                         principal=principal, keytab=keytab, sad=sad, sa_out={peer: sa_out}, opener=opener,
                         epoch_s=epoch_s, on_note=self._on_note, verifier=verifier)

    def _on_note(self, what: str, fields: dict[str, Any]) -> None:
        w = self.w
        if what == "send":
            w.note(_message_name(fields["icmp"], self.engine), self.name, _who(w, fields["dst"]), fields["size"])
        elif what in ("verify_start", "verified"):
            w.mark(f"{self.name}_{what}")
        elif what == "proxy_installed":
            w.mark("proxy_installed")
        elif what == "flushed":
            w.mark("flushed")
            w.note(f"proxy entry REACHABLE, {fields['count']} buffered packets flushed in order", self.name, "mn")
        elif what == "route_switch_released":
            w.mark("route_switch_released")
            w.note(f"tunnel drained: {fields['count']} direct packets to the NCoA released in order", self.name,
                   "mn")
        elif what == "tunnel_start":
            w.mark("tunnel_start")
            w.note("PAR starts tunnelling the PCoA's traffic to the NAR (RFC 2473)", self.name, "nar")
        elif what == "tunnel_end":
            w.mark("tunnel_end")
        elif what == "bu_forwarded":
            w.mark("bu_forwarded")
            w.note("Binding Update forwarded", self.name, "cn", fields["size"])

    def control_trigger(self, args: dict[str, Any]) -> dict[str, Any]:
        return self.trigger({"nar_principal": str(self.nar_principal), **args})


class MnDriver:
    def __init__(self, w: World, realms: _Realms, case: int, *, gss: Any = None, epoch_s: float = EPOCH_S) -> None:
        self.w, self.realms, self.case = w, realms, case
        self.gss = gss  # (GssInitiator, DemoKerberos) with standard Kerberos, else None
        p = w.sc.plan
        self.mn = MobileNode(p.mn_mac, home_agent=p.cn_address, codepoints=w.mn.codepoints,
                             epoch_ns=int(epoch_s * 1e9))
        self._tick_at: int | None = None
        self._release_pending: list[IPv6Address] = []
        w.mn.on_fmip = self.on_fmip
        w.mn.on_packet = self.on_packet
        w.mn.on_ra = self.on_ra
        self.precached: list[str] = []

    def solicit(self) -> None:
        """RS with the adjacent-realms request (draft §6.1.1, ND option 253 sub-type 1)."""
        from fmipfast.messages import AdjacentRealmsRequest, RouterSolicitation, SourceLinkLayerAddress

        rs = RouterSolicitation((SourceLinkLayerAddress(self.w.mn.port.mac), AdjacentRealmsRequest()))
        self.w.mn.send_packet(frames.icmp6_packet(rs, self.w.mn.link_local, "ff02::2"))
        self.w.note("Router Solicitation asking for adjacent realms", "mn", "par", 64)

    def on_ra(self, ra: Any, src: IPv6Address, now: int) -> None:
        from fmipfast.messages import AdjacentRealms as RealmsOption
        from fmipfast.protocol import AdjacentRealms

        for option in ra.options:
            if isinstance(option, RealmsOption) and not set(option.realms) <= set(self.precached):
                self.w.note(f"Router Advertisement listing adjacent realms {', '.join(option.realms)}", _who(
                    self.w, src), "mn", 0)
                self.handle(AdjacentRealms(tuple(option.realms)))

    def on_packet(self, packet: bytes, now: int) -> None:
        """The MN keeps its PCoA until its Binding Update completes (docs/design.md §1): the Binding Ack."""
        if is_binding_ack(packet) and self._release_pending:
            # Packets the CN sent before the BU reached it are still on their way through the PAR's tunnel
            # (a longer path than the Binding Ack's): keep the PCoA a little longer (RFC 6275 §11.7.1 lets
            # the MN keep using the old care-of address while it still receives on it).
            pending, self._release_pending = self._release_pending, []
            self.w.mark("binding_ack")
            self.w.note("Binding Ack received", "cn", "mn", len(packet))

            def release() -> None:
                for address in pending:
                    self.w.mn.remove_address(address)
                self.w.mark("pcoa_released")

            self.w.sim.after(int(PCOA_HOLD_MS * MS), release)

    def handle(self, event: object) -> None:
        for action in self.mn.handle(event, self.w.sim.now):  # type: ignore[arg-type]
            self.execute(action)
        deadline = self.mn.next_deadline()
        if deadline is not None and deadline != self._tick_at:
            self._tick_at = deadline
            self.w.sim.at(deadline, self._tick)

    def _tick(self) -> None:
        self._tick_at = None
        self.handle(Tick())

    def on_fmip(self, icmp: bytes, src: IPv6Address, dst: IPv6Address, hop_limit: int) -> None:
        self.handle(Received(icmp, src, dst, hop_limit, "mn0", False))

    def execute(self, a: object) -> None:
        w, host = self.w, self.w.mn
        if isinstance(a, Send):
            host.send_icmp(a.icmp, a.src, a.dst, a.hop_limit)
            w.note(_message_name(a.icmp, None), "mn", _who(w, a.dst), 40 + len(a.icmp))
        elif isinstance(a, GetTicket) and self.gss is not None:
            # standard Kerberos: the service ticket from the MIT KDCs into the MN's ccache (cross-realm for
            # the NAR); a refusal is the machine's TicketReady error, as with lwkerb
            try:
                creds: Any = self.gss[0].credentials(a.server)
                ready = TicketReady(a.request_id, creds)
            except L.LkbError as exc:
                ready = TicketReady(a.request_id, None, f"{type(exc).__name__}: {exc}")
            w.sim.after(0, lambda: self.handle(ready))
        elif isinstance(a, GetTicket):
            server = a.server
            if server == NAR_PRINCIPAL:
                server = {1: NAR_PRINCIPAL, 2: L.access_principal(REALM_B), 3: L.access_principal(HOME)}[self.case]
            creds = self.realms.ticket(server)
            w.sim.after(0, lambda: self.handle(TicketReady(a.request_id, creds)))
        elif isinstance(a, ConfigureAddress):
            host.add_address(a.address)
        elif isinstance(a, PreloadNeighbor):
            host.set_neighbor(a.address, a.mac)
        elif isinstance(a, SetDefaultRoute):
            host.set_default_router(a.via)
        elif isinstance(a, RemoveAddress):
            self._release_pending.append(a.address)  # done when the Binding Ack arrives (on_packet)
        elif isinstance(a, Precache) and self.gss is not None:
            # standard Kerberos: service tickets for the adjacent realms' routers into the ccache (the MN's
            # daemon does it in the background; here on the spot, so the handover's GetTicket finds them)
            initiator, krb = self.gss
            wanted = [s for r in a.realms for s in krb.adjacent.get(r, ())]
            for service in wanted:
                try:
                    initiator.credentials(service)
                except L.LkbError:
                    continue
            self.precached += [r for r in a.realms if r not in self.precached]
            w.mark("precached")
            w.note(f"precaching service tickets for {', '.join(wanted) or 'no router'} (MIT KDCs)", "mn", "kdc")
        elif isinstance(a, Precache):
            # the MN's TicketCache fetches krbtgt/R@HOME for each realm in the background (tests/test_ccache.py
            # runs that against real KDCs); here the cross-realm TGTs are part of the simulated key material
            self.precached += [r for r in a.realms if r not in self.precached]
            w.mark("precached")
            w.note(f"precaching cross-realm TGTs for {', '.join(a.realms)} (background)", "mn", "kdc")
        elif isinstance(a, ReadyToSwitch):
            w.mark("ready_to_switch")
            sc = w.sc
            w.move(w.sim.now + int(sc.l2_delay_ms * MS), int(sc.gap_ms * MS),
                   on_up=lambda: self.handle(LinkUp("B")))


def _message_name(icmp: bytes, engine: Engine | None) -> str:
    from fmipfast.constants import DEFAULT_CODEPOINTS
    from fmipfast.messages import HandoverError, decode

    key = DEFAULT_CODEPOINTS.key(icmp[1]) if icmp[0] == DEFAULT_CODEPOINTS.type else None
    if key == "handover_error":
        msg = decode(icmp)
        status = msg.status if isinstance(msg, HandoverError) else None
        if status == 0:
            return "Handover Error, status 0: the HI is accepted (the HI's answer)"
        return f"Handover Error, status {status}: the HI is refused"
    if key == "attach" and engine is None and len(icmp) > 200:
        return "5. Attach (initial: AP-REQ for the PAR, and the BU)"
    return {"handover_redirect": "1. Handover Redirect", "handover_redirect_ack": "2. Handover Redirect Ack",
            "handover": "3. ICMP Handover (under AH)", "authenticated_mn": "4. Authenticated-MN",
            "attach": "5. Attach (with the BU)", "handover_error": "Handover Error",
            "forwarding_disable": "Forwarding Disable"}.get(key or "", f"ICMPv6 {icmp[0]}/{icmp[1]}")


def _who(w: World, address: IPv6Address) -> str:
    p = w.sc.plan
    if address in (p.par_address, p.par_up) or address.packed[8:] == p.par_address.packed[8:]:
        return "par"
    if address in (p.nar_address, p.nar_up) or address.packed[8:] == p.nar_address.packed[8:]:
        return "nar"
    return "mn"


def install_fast_handover(w: World, krb: Any = None) -> None:
    """Wire the machines into ``w`` and schedule the initial attach and the handover trigger.

    ``krb`` (a :class:`fmipfast.lab.mitrealms.DemoKerberos`): standard Kerberos through GSS-API instead of
    lwkerb -- MIT KDCs issue the tickets, the routers accept with their keytabs (key case 1 only), and the
    world's POSIX epoch is the real clock's (MIT stamps authenticators with it)."""
    sc, p = w.sc, w.sc.plan
    if krb is not None:
        _install_gss(w, krb)
        return
    realms = _Realms()
    k_pn, k_np = bytes(range(32)), bytes(range(32, 64))
    sad_par, sad_nar = ah.SADatabase(), ah.SADatabase()
    # the SAs name the routers by the addresses their protocol machines speak from (the access addresses)
    sad_nar.add_inbound(ah.SecurityAssociation(SPI_PAR_TO_NAR, k_pn, peer=str(p.par_address)))
    sad_par.add_inbound(ah.SecurityAssociation(SPI_NAR_TO_PAR, k_np, peer=str(p.nar_address)))
    kt_par, kt_nar = L.Keytab(), L.Keytab()
    kt_par.add(PAR_PRINCIPAL, realms.keys[PAR_PRINCIPAL])
    kt_nar.add(NAR_PRINCIPAL, realms.keys[NAR_PRINCIPAL])
    core_rtt = 2 * p.core_delay_ms
    opener, delay = None, 0.05
    if sc.case == 2:
        opener, delay = _LocalOpener(realms, L.access_principal(REALM_B)), core_rtt + 0.1
    elif sc.case == 3:
        opener, delay = _LocalOpener(realms, L.access_principal(HOME)), 2 * core_rtt + 20.0 + 0.2
    par = RouterDriver(w, "par", w.par, PAR_PRINCIPAL, kt_par, p.nar_address,
                       ah.SecurityAssociation(SPI_PAR_TO_NAR, k_pn, peer=str(p.nar_address)), sad_par)
    nar = RouterDriver(w, "nar", w.nar, NAR_PRINCIPAL, kt_nar, p.par_address,
                       ah.SecurityAssociation(SPI_NAR_TO_PAR, k_np, peer=str(p.par_address)), sad_nar, opener,
                       delay)
    _start(w, par, nar, MnDriver(w, realms, sc.case), PAR_PRINCIPAL, NAR_PRINCIPAL)


def _install_gss(w: World, krb: Any) -> None:
    from fmipfast.security.gss import GssInitiator, GssVerifier

    sc, p = w.sc, w.sc.plan
    if sc.case != 1:
        raise ValueError("with standard Kerberos only key case 1 exists: a router cannot ask an MIT KDC to open "
                         "a ticket (docs/security.md)")
    # t=0 of the simulation is now: MIT stamps authenticators and checks tickets with the real clock
    epoch_s = time.time() - w.sim.now / 1e9
    k_pn, k_np = bytes(range(32)), bytes(range(32, 64))
    sad_par, sad_nar = ah.SADatabase(), ah.SADatabase()
    sad_nar.add_inbound(ah.SecurityAssociation(SPI_PAR_TO_NAR, k_pn, peer=str(p.par_address)))
    sad_par.add_inbound(ah.SecurityAssociation(SPI_NAR_TO_PAR, k_np, peer=str(p.nar_address)))
    par_p, nar_p = L.Principal.parse(krb.par_service), L.Principal.parse(krb.nar_service)
    routers = (("par", krb.par_keytab, krb.par_service), ("nar", krb.nar_keytab, krb.nar_service))
    verifiers = [GssVerifier(kt, svc, rcache=f"file2:{krb.rcache_dir}/{name}.rcache2") for name, kt, svc in routers]
    par = RouterDriver(w, "par", w.par, par_p, L.Keytab(), p.nar_address,
                       ah.SecurityAssociation(SPI_PAR_TO_NAR, k_pn, peer=str(p.nar_address)), sad_par,
                       verifier=verifiers[0], epoch_s=epoch_s, nar_principal=nar_p)
    nar = RouterDriver(w, "nar", w.nar, nar_p, L.Keytab(), p.par_address,
                       ah.SecurityAssociation(SPI_NAR_TO_PAR, k_np, peer=str(p.par_address)), sad_nar,
                       verifier=verifiers[1], epoch_s=epoch_s, nar_principal=nar_p)
    mn = MnDriver(w, _Realms(), 1, gss=(GssInitiator(ccache=krb.ccache), krb), epoch_s=epoch_s)
    _start(w, par, nar, mn, par_p, nar_p)


def _start(w: World, par: RouterDriver, nar: RouterDriver, mn: MnDriver, par_principal: L.Principal,
           nar_principal: L.Principal) -> None:
    sc, p = w.sc, w.sc.plan
    w.drivers = (par, nar)  # type: ignore[attr-defined]
    w.mn_driver = mn  # type: ignore[attr-defined]
    # the MN was attached to the PAR before the scenario: the PAR knows its link-layer address
    w.par._set_neighbor(p.pcoa, p.mn_mac, 0, 2, 0)
    w.sim.at(40 * MS, mn.solicit)
    w.sim.at(50 * MS, lambda: mn.handle(Start(p.par_address, par_principal, p.pcoa, "A")))

    from fmipfast.control import RouterControl

    control = RouterControl(w.par)  # the PAR's control API, as another daemon would use it
    control.attach_protocol(par.control_trigger, par.handovers, par.mobile_nodes)
    w.control = control  # type: ignore[attr-defined]

    def trigger() -> None:
        w.mark("trigger")
        w.note("handover trigger from the control API", "network", "par")
        result = control.dispatch("handover", {"pcoa": str(p.pcoa), "nar": str(p.nar_address),
                                               "nar_principal": str(nar_principal), "buffer": sc.buffer})
        w.trigger_result = result  # type: ignore[attr-defined]

    w.sim.at(w.trigger_ns, trigger)

"""The mobile-node protocol machine (docs/design.md §1, draft §2, §3, §5, §6.1, App. A).

I/O-free (docs/conventions.md §6): :meth:`MobileNode.handle` takes one event from ``fmipfast.protocol`` and the
driver's time in nanoseconds and returns actions; :meth:`MobileNode.next_deadline` says when to feed a
``Tick``.  The MN agent (``mnagent``) turns the actions into raw-socket sends, netlink calls and ticket-cache
requests.

* **Initial attach**: ``Start`` -> ``GetTicket`` -> Attach with the AP-REQ (retransmitted) ->
  Authenticated-MN (MAC + AP-REP checked) -> ATTACHED with a session key for the router.
* **Fast handover**: authenticated Handover Redirect -> NCoA, NAR link-local and MAC (docs/design.md §3) ->
  ``GetTicket`` for the NAR -> HRA with the AP-REQ bound to (NCoA, PCoA, NAR, identifier) ->
  ``ReadyToSwitch``; ``LinkUp`` on a new link -> ``PreloadNeighbor``, ``ConfigureAddress``,
  ``SetDefaultRoute``, Attach with the BU (retransmitted) -> Authenticated-MN -> ``RemoveAddress(pcoa)``.
* **Link reversal** (App. A): ``LinkUp`` on the PAR's link before the NAR authenticated us ->
  Forwarding Disable to the PAR.  So does no ``LinkUp`` at all within ``switch_wait_s`` of ReadyToSwitch
  (``switch_timeouts``): the routers' handover lifetime (3 s by default) bounds the handover, and a Forwarding
  Disable after it finds nothing at the PAR, which by then has forgotten the MN's session.
* **Session renewal**: a router's session lives as long as the ticket it came from (the router forgets it at
  the ticket's endtime).  ``renew_before_s`` before that the MN re-attaches to the same router with a fresh
  ticket (``GetTicket`` -> Attach with a new AP-REQ -> Authenticated-MN: a new session key); a failed renewal
  is retried every ``renew_retry_s`` while the old session lasts; a Redirect meanwhile wins (the handover
  brings a new ticket anyway).  A session that expires all the same is noted (``session_expired``) and
  followed by one fresh initial attach.

The (state, event kind) pairs are in :data:`MN_TRANSITIONS`; anything else is dropped and counted.

Time: ``now_ns`` is the driver's clock for timers.  The AP-REQ authenticator needs POSIX time; it is
``(now_ns + epoch_ns) / 1e9`` with the constructor's ``epoch_ns`` (0 when the driver passes
``time.time_ns()``; ``time.time_ns() - time.monotonic_ns()`` when it passes the monotonic clock).

Idle-time work: :meth:`MobileNode.prepare`, which a driver calls when it has nothing queued, builds the
handover's Attach between ReadyToSwitch and the new link (no actions, no state change); ``LinkUp`` sends it
if nothing it was built from changed.

Ownership: one driver thread calls ``handle`` and ``prepare``; not thread-safe, never blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from ipaddress import IPv6Address
from typing import Any

from fmipfast.constants import DEFAULT_CODEPOINTS, ND_HOP_LIMIT, Codepoints
from fmipfast.errors import DerivationError, MalformedPacket
from fmipfast.messages import (
    Attach,
    AuthenticatedMN,
    BindingUpdate,
    EncapsulatedPacket,
    FmipMessage,
    ForwardingDisable,
    HandoverRedirect,
    HandoverRedirectAck,
    Identifier,
    LinkLayerAddress,
    LkbMessage,
    MessageAuthCode,
    SubOption,
    encode,
)
from fmipfast.protocol import (
    DEFAULT_BACKOFF,
    Action,
    AdjacentRealms,
    Backoff,
    ConfigureAddress,
    Event,
    GetTicket,
    Kind,
    LinkDown,
    LinkUp,
    Note,
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
    addr_text,
    eui64_from_mac48,
    mac48_from_address,
    mac48_from_eui64,
    mac_ok,
    nar_link_local,
    ncoa_from_prefix,
    parse_received,
    sign,
)
from fmipfast.security.lwkerb import (
    LABEL_MAC,
    Authenticator,
    Credentials,
    HandoverBinding,
    LkbError,
    Principal,
    build_ap_req,
    check_ap_rep,
    derive_key,
)

__all__ = ["MobileNode", "MnState", "RouterSession", "MN_TRANSITIONS", "MN_COUNTERS"]

MN_COUNTERS = (
    "received", "sent", "retransmitted",
    "bad_checksum", "malformed", "not_fmip", "bad_hop_limit", "missing_ah", "bad_mac", "unknown_router",
    "unknown_identifier", "no_identifier", "duplicate", "duplicate_hrd", "unexpected", "stale_ticket",
    "ticket_failed", "no_principal", "derivation_failed", "bad_ap_rep", "attach_failed", "superseded",
    "initial_attached", "handovers_started", "handovers_completed", "link_reversals", "precache_requests",
    "renewals_started", "renewed", "renew_failed", "renew_interrupted", "session_expired", "switch_timeouts",
    "replayed_redirect", "fallback_attach",
)
#: Redirect identifiers remembered per router session to refuse replays (the MAC has no freshness of its own).
REDIRECTS_REMEMBERED = 1024


class MnState(str, Enum):
    IDLE = "idle"  # no authenticated router
    ATTACH_TICKET = "attach_ticket"  # initial attach: waiting for the ticket for the router
    ATTACHING = "attaching"  # initial attach: Attach sent, waiting for Authenticated-MN (retransmitting)
    ATTACHED = "attached"  # a session key with the current router
    HO_TICKET = "ho_ticket"  # Redirect accepted, waiting for the ticket for the NAR
    HO_READY = "ho_ready"  # HRA sent, ReadyToSwitch given, waiting for the link to come up
    HO_ATTACHING = "ho_attaching"  # on the NAR's link, Attach sent, waiting for Authenticated-MN


@dataclass
class RouterSession:
    """The router the MN is attached to: its address, the link, our CoA there, the key, and -- for renewal --
    its Kerberos principal and when the ticket the key came from ends (on the driver's clock)."""

    address: IPv6Address
    link: str
    coa: IPv6Address
    mac_key: bytes
    principal: Principal | None = None
    expires_ns: int | None = None
    #: Identifiers of the Redirects received under this session's key, oldest first (an ordered set).
    redirects: dict[int, None] = field(default_factory=dict, repr=False)


@dataclass
class _Exchange:
    """One initial attach or one handover in progress."""

    identifier: int
    router: IPv6Address  # the router we attach to (initial) / the NAR (handover)
    principal: Principal
    coa: IPv6Address  # our address at that router (the NCoA for a handover)
    link: str = ""
    pcoa: IPv6Address | None = None
    nar_ll: IPv6Address | None = None
    nar_mac: bytes | None = None
    request_id: int = -1
    creds: Credentials | Any = None  # lwkerb Credentials, or another mechanism's (security.gss.GssCredentials)
    authenticator: Authenticator | Any = None  # lwkerb's, or the other mechanism's pending check
    mac_key: bytes = b""
    pending: Send | None = None  # the message being retransmitted (Attach) or re-sent on duplicates (HRA)
    tries: int = 0
    deadline: int | None = None
    renewing: bool = False  # a re-attach to the router we are attached to (self.router stays valid meanwhile)
    # the handover's Attach built ahead of the new link (MobileNode.prepare): what it was built from, its ICMPv6
    prepared: tuple[tuple[object, ...], bytes] | None = None
    coa_configured: bool = False  # a handover's NCoA configured while the old link was down (_on_ho_link_down)


class MobileNode:
    """The protocol of one mobile node with the 48-bit link-layer address ``mac``.

    Parameters
    ----------
    mac : the MN's 6-octet MAC (its EUI-64 goes into the Attach's link-layer address sub-option).
    home_agent : where Binding Updates go; None sends no BU (the Attach then has no sub-option 5).
    backoff : the Attach retransmission policy.
    epoch_ns : added to ``now_ns`` to get POSIX time for authenticators (see the module docstring).
    bu_lifetime_units : BU lifetime in 4-second units (RFC 6275 §6.1.7).
    renew_before_s : re-attach this long before the session's ticket ends (a ticket cache must hand out a
        fresh ticket by then: :class:`~fmipfast.security.ccache.TicketCache`'s ``renew_margin`` is 60 s).
    renew_retry_s : after a failed renewal, try again this much later (while the old session lasts).
    switch_wait_s : how long after ReadyToSwitch a new link may take to come up before the MN gives the
        handover up with a Forwarding Disable: longer than the PAR's own retransmissions (2.25 s with the
        default backoff), shorter than the routers' handover lifetime (3 s by default).
    """

    def __init__(self, mac: bytes, *, home_agent: IPv6Address | str | None = None,
                 codepoints: Codepoints = DEFAULT_CODEPOINTS, backoff: Backoff = DEFAULT_BACKOFF, epoch_ns: int = 0,
                 bu_lifetime_units: int = 60, first_identifier: int = 1, first_sequence: int = 1,
                 renew_before_s: float = 30.0, renew_retry_s: float = 10.0, switch_wait_s: float = 2.5) -> None:
        if not (renew_retry_s > 0 and renew_before_s >= 0):
            raise ValueError("renew_retry_s must be > 0 and renew_before_s >= 0")
        if not switch_wait_s > 0:
            raise ValueError("switch_wait_s must be > 0")
        self.switch_wait_ns = int(switch_wait_s * 1e9)
        self.mac = bytes(mac)
        self.eui64 = eui64_from_mac48(self.mac)
        self.home_agent = IPv6Address(home_agent) if home_agent is not None else None
        self.codepoints = codepoints
        self.backoff = backoff
        self.epoch_ns = epoch_ns
        self.bu_lifetime_units = bu_lifetime_units
        self.renew_before_ns = int(renew_before_s * 1e9)
        self.renew_retry_ns = int(renew_retry_s * 1e9)
        self._renew_at: int | None = None  # when ATTACHED: the next renewal attempt
        self.last_bu_sequence: int | None = None  # the Sequence # of the last BU an Attach carried
        #: (router, principal, coa, link) of the last attach started: what a driver retries from ``idle``.
        self.last_attach: tuple[IPv6Address, Principal, IPv6Address, str] | None = None
        self.counters: dict[str, int] = dict.fromkeys(MN_COUNTERS, 0)
        self.state = MnState.IDLE
        self.router: RouterSession | None = None
        self.exchange: _Exchange | None = None
        self._last_identifier: int | None = None
        self._next_identifier = first_identifier & 0xFFFF
        self._sequence = first_sequence & 0xFFFF
        self._next_request = 1
        self._now = 0
        self._out: list[Action] = []

    # ------------------------------------------------------------------ the interface
    def handle(self, event: Event, now_ns: int) -> list[Action]:
        self._now = now_ns
        self._out = []
        if isinstance(event, Received):
            self._received(event)
        elif isinstance(event, Tick):
            deadline = self.next_deadline()
            if deadline is not None and deadline <= now_ns:
                self._dispatch(Kind.TIMEOUT)
        elif isinstance(event, Start):
            self._dispatch(Kind.START, event)
        elif isinstance(event, TicketReady):
            if self.exchange is None or event.request_id != self.exchange.request_id:
                self._drop("stale_ticket", request_id=event.request_id)
            else:
                self._dispatch(Kind.TICKET, event)
        elif isinstance(event, LinkUp):
            self._dispatch(Kind.LINK_UP, event)
        elif isinstance(event, LinkDown):
            self._dispatch(Kind.LINK_DOWN, event)
        elif isinstance(event, AdjacentRealms):
            self._count("precache_requests")
            self._out.append(Precache(tuple(event.realms)))
        else:
            self._count("unexpected")
        out, self._out = self._out, []
        return out

    def next_deadline(self) -> int | None:
        if self.exchange is not None:
            return self.exchange.deadline
        r = self.router
        if self.state == MnState.ATTACHED and r is not None and r.expires_ns is not None:
            return min(self._renew_at if self._renew_at is not None else r.expires_ns, r.expires_ns)
        return None

    # ------------------------------------------------------------------ plumbing
    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def _note(self, name: str, **fields: object) -> None:
        self._out.append(Note(name, dict(fields)))

    def _drop(self, reason: str, **fields: object) -> None:
        self._count(reason)
        self._note("drop", role="mn", reason=reason, **fields)

    def _set_state(self, state: MnState) -> None:
        self._note("state", role="mn", old=self.state.value, new=state.value,
                   identifier=self.exchange.identifier if self.exchange else None)
        self.state = state

    def _dispatch(self, kind: Kind, *args: object) -> None:
        handler = MN_TRANSITIONS.get((self.state, kind))
        if handler is None:
            self._drop("unexpected", state=self.state.value, kind=kind.value)
            return
        handler(self, *args)

    def _send(self, send: Send, message: str, identifier: int, *, again: bool = False) -> None:
        self._out.append(send)
        self._count("retransmitted" if again else "sent")
        self._note("send", role="mn", message=message, src=addr_text(send.src), dst=addr_text(send.dst),
                   identifier=identifier, retransmission=again)

    def _wall(self) -> float:
        return (self._now + self.epoch_ns) / 1e9

    def _get_ticket(self, x: _Exchange) -> None:
        x.request_id = self._next_request
        self._next_request += 1
        self._out.append(GetTicket(x.request_id, x.principal))

    def allocate_bu_sequence(self) -> int:
        """The next Binding Update Sequence # (RFC 6275 §11.7.1: each BU the MN sends gets a new one); used
        for the BU an Attach carries and for BUs the MN's driver sends itself (retransmissions)."""
        seq = self._sequence
        self._sequence = (self._sequence + 1) & 0xFFFF
        return seq

    def _bu(self, coa: IPv6Address) -> tuple[SubOption, ...]:
        if self.home_agent is None:
            return ()
        seq = self.allocate_bu_sequence()
        self.last_bu_sequence = seq
        return self._bu_with(coa, seq)

    def _bu_with(self, coa: IPv6Address, seq: int) -> tuple[SubOption, ...]:
        if self.home_agent is None:
            return ()
        return (EncapsulatedPacket(BindingUpdate(seq, self.bu_lifetime_units).packet(coa, self.home_agent)),)

    def _ho_attach(self, x: _Exchange, seq: int) -> bytes:
        """The handover's Attach (ICMPv6, signed) from the NCoA to the NAR, its BU with Sequence # ``seq``."""
        assert x.nar_ll is not None
        att = Attach((LinkLayerAddress(self.eui64), *self._bu_with(x.coa, seq), Identifier(x.identifier),
                      MessageAuthCode()))
        return sign(att, x.mac_key, x.coa, x.nar_ll, self.codepoints)

    def _ho_attach_inputs(self, x: _Exchange) -> tuple[object, ...]:
        return (x.identifier, x.coa, x.nar_ll, x.mac_key, self.eui64, self.home_agent, self.bu_lifetime_units,
                self._sequence, self.codepoints)

    def prepare(self) -> bool:
        """Work the driver may do while idle, ahead of the event that needs it: between ReadyToSwitch and the
        new link, build and sign the handover's Attach (a few hundred microseconds of Python otherwise spent
        between the carrier and the Attach).  No action, no state change: on ``LinkUp`` the prepared Attach is
        sent if nothing it was built from changed meanwhile (the BU Sequence # included: a BU the driver sent
        itself took the next number), else it is built afresh.  True if it built one."""
        x = self.exchange
        if self.state != MnState.HO_READY or x is None or x.nar_ll is None or not x.mac_key:
            return False
        inputs = self._ho_attach_inputs(x)
        if x.prepared is not None and x.prepared[0] == inputs:
            return False
        x.prepared = (inputs, self._ho_attach(x, self._sequence))
        return True

    def _arm(self, x: _Exchange, send: Send, message: str) -> None:
        x.pending = send
        x.tries = 1
        x.deadline = self._now + self.backoff.wait_ns(1)
        self._send(send, message, x.identifier)

    # ------------------------------------------------------------------ receive
    def _received(self, ev: Received) -> None:
        self._count("received")
        msg = parse_received(ev, self.codepoints, self.counters)
        if msg is None:
            self._note("drop", role="mn", reason="rejected on receipt", src=addr_text(ev.src))
            return
        self._note("recv", role="mn", message=msg.NAME, src=addr_text(ev.src), dst=addr_text(ev.dst),
                   identifier=msg.identifier)
        if msg.identifier is None:
            self._drop("no_identifier", message=msg.NAME)
            return
        if isinstance(msg, HandoverRedirect):
            # An MN ignores a Redirect that is not from its router or not authenticated by it (docs/design.md §1).
            if self.router is None or ev.src != self.router.address:
                self._drop("unknown_router", message=msg.NAME, src=addr_text(ev.src))
                return
            if not mac_ok(ev.icmp, self.router.mac_key, ev.src, ev.dst, self.codepoints, msg):
                self._drop("bad_mac", message=msg.NAME, src=addr_text(ev.src))
                return
            seen = self.router.redirects
            live = self.exchange is not None and self.exchange.identifier == msg.identifier
            if msg.identifier in seen and not live:
                # Authentic but already acted on under this session key (a handover that was reversed, timed
                # out or superseded): a replay -- following it would move us to a NAR expecting nobody.
                self._drop("replayed_redirect", identifier=msg.identifier)
                return
            seen[msg.identifier] = None
            if len(seen) > REDIRECTS_REMEMBERED:
                del seen[next(iter(seen))]
            self._dispatch(Kind.HRD, msg)
        elif isinstance(msg, AuthenticatedMN):
            x = self.exchange
            if x is not None and msg.identifier == x.identifier:
                if ev.src not in (x.router, x.nar_ll):
                    self._drop("unknown_router", message=msg.NAME, src=addr_text(ev.src))
                    return
                self._dispatch(Kind.AMN, msg, ev)
            elif x is None and msg.identifier == self._last_identifier:
                self._dispatch(Kind.AMN, msg, ev)
            else:
                self._drop("unknown_identifier", message=msg.NAME, identifier=msg.identifier)
        else:
            self._drop("unexpected", message=msg.NAME)

    # ------------------------------------------------------------------ initial attach
    def _on_start(self, ev: Start) -> None:
        self._attach_to(IPv6Address(ev.router_address), ev.router_principal, IPv6Address(ev.coa), ev.link)

    def _attach_to(self, router: IPv6Address, principal: Principal, coa: IPv6Address, link: str, *,
                   renewing: bool = False) -> None:
        self.last_attach = (router, principal, coa, link)
        ident = self._next_identifier
        self._next_identifier = (self._next_identifier + 1) & 0xFFFF
        self.exchange = _Exchange(ident, router, principal, coa, link=link, renewing=renewing)
        self._get_ticket(self.exchange)
        self._set_state(MnState.ATTACH_TICKET)

    def _usable(self, ev: TicketReady) -> TicketReady:
        """A ticket that has already ended is no ticket (the router would refuse it, and a session from it
        would expire at once)."""
        if ev.creds is not None and self._expires(ev.creds) <= self._now:
            return TicketReady(ev.request_id, None, f"the ticket for {ev.creds.server} has ended")
        return ev

    def _on_attach_ticket(self, ev: TicketReady) -> None:
        x = self.exchange
        assert x is not None
        ev = self._usable(ev)
        if ev.creds is None:
            self._count("ticket_failed")
            self._note("fail", role="mn", identifier=x.identifier, reason=f"no ticket: {ev.error}")
            if x.renewing:
                self._renew_failed(f"no ticket: {ev.error}")
                return
            self._set_state(MnState.IDLE)
            self.exchange = None
            return
        r = self.router
        if x.renewing and r is not None and r.expires_ns is not None and self._expires(ev.creds) <= r.expires_ns:
            # A cache handing out the ticket we already have: renewing with it would buy nothing.
            self._renew_failed(f"the ticket for {x.principal} ends no later than the session's")
            return
        binding = HandoverBinding(addr_text(x.coa), addr_text(x.coa), addr_text(x.router), x.identifier)
        pdu = self._ap_req(x, ev, binding)
        if pdu is None:
            if x.renewing:
                self._renew_failed("no authenticator")
                return
            self._set_state(MnState.IDLE)
            self.exchange = None
            return
        bu = () if x.renewing else self._bu(x.coa)  # a renewal changes no binding: the BU lifetime is the HA's
        if x.renewing:
            self.last_bu_sequence = None  # this Attach carries no BU: no Binding Ack to wait for
        att = Attach((LinkLayerAddress(self.eui64), LkbMessage(pdu), *bu, Identifier(x.identifier)))
        send = Send(encode(att, x.coa, x.router, codepoints=self.codepoints), x.coa, x.router, ND_HOP_LIMIT, False,
                    x.link)
        self._set_state(MnState.ATTACHING)
        self._arm(x, send, "Attach")

    def _ap_req(self, x: _Exchange, ev: TicketReady, binding: HandoverBinding) -> bytes | None:
        """The LKB PDU for ``ev.creds`` bound to ``binding``, with ``x``'s creds, authenticator and MAC key set.

        lwkerb :class:`Credentials` make an AP-REQ here; any other credentials (standard Kerberos through
        GSS-API, :class:`fmipfast.security.gss.GssCredentials`) make their own with ``initiate(binding)``,
        which returns the PDU and a pending object holding ``mac_key`` and ``check_ap_rep(pdu)``.  A failure
        (the library refuses: an expired ticket, no credentials) is counted as ``ticket_failed``: None."""
        creds = ev.creds
        assert creds is not None
        if isinstance(creds, Credentials):
            req, auth = build_ap_req(creds, binding, now=self._wall())
            x.creds, x.authenticator = creds, auth
            x.mac_key = derive_key(creds.session_key, LABEL_MAC)
            return req.encode()
        try:
            pdu, pending = creds.initiate(binding, self._wall())
        except LkbError as exc:
            self._count("ticket_failed")
            self._note("fail", role="mn", identifier=x.identifier, reason=f"no authenticator for {x.principal}: {exc}")
            return None
        x.creds, x.authenticator, x.mac_key = creds, pending, pending.mac_key
        return pdu

    def _authenticated(self, msg: FmipMessage, ev: Received) -> bool:
        """Authenticated-MN checks: MAC under the new session key, then the AP-REP (mutual authentication)."""
        x = self.exchange
        assert x is not None and x.creds is not None and x.authenticator is not None
        if not mac_ok(ev.icmp, x.mac_key, ev.src, ev.dst, self.codepoints, msg):
            self._drop("bad_mac", message=msg.NAME, src=addr_text(ev.src))
            return False
        rep = msg.lkb
        try:
            if rep is None:
                raise LkbError("no AP-REP")
            if isinstance(x.authenticator, Authenticator):
                check_ap_rep(rep, x.creds.session_key, x.authenticator)
            else:  # another mechanism (security.gss): its own confirmation
                x.authenticator.check_ap_rep(rep)
        except (LkbError, MalformedPacket) as exc:
            self._drop("bad_ap_rep", message=msg.NAME, error=str(exc))
            return False
        return True

    def _on_attach_amn(self, msg: FmipMessage, ev: Received) -> None:
        x = self.exchange
        assert x is not None
        if not self._authenticated(msg, ev):
            return
        self.router = self._session(x)
        self._count("renewed" if x.renewing else "initial_attached")
        self._finish()

    def _expires(self, creds: Credentials) -> int:
        """The ticket's endtime on the driver's clock."""
        return creds.endtime * 1_000_000_000 - self.epoch_ns

    def _session(self, x: _Exchange) -> RouterSession:
        assert x.creds is not None
        return RouterSession(x.router, x.link, x.coa, x.mac_key, x.principal, self._expires(x.creds))

    def _finish(self) -> None:
        x = self.exchange
        assert x is not None and self.router is not None
        self._last_identifier = x.identifier
        expires = self.router.expires_ns
        self._renew_at = None if expires is None else expires - self.renew_before_ns
        self._set_state(MnState.ATTACHED)
        self.exchange = None

    # ------------------------------------------------------------------ session renewal
    def _on_session_timer(self) -> None:
        r = self.router
        assert r is not None and r.expires_ns is not None and r.principal is not None
        if self._now >= r.expires_ns:
            # Not renewed in time: the router has forgotten the session (and its key): start over.
            self._count("session_expired")
            self._note("session_expired", role="mn", router=addr_text(r.address), coa=addr_text(r.coa))
            self.router = None
            self._renew_at = None
            self._attach_to(r.address, r.principal, r.coa, r.link)
            return
        self._count("renewals_started")
        self._attach_to(r.address, r.principal, r.coa, r.link, renewing=True)

    def _renew_failed(self, reason: str) -> None:
        x = self.exchange
        assert x is not None
        self._count("renew_failed")
        self._note("fail", role="mn", identifier=x.identifier, router=addr_text(x.router), reason=f"renewal: {reason}")
        self.exchange = None
        self._renew_at = self._now + self.renew_retry_ns
        self._set_state(MnState.ATTACHED)

    def _on_renew_interrupted(self, msg: HandoverRedirect) -> None:
        x = self.exchange
        assert x is not None
        if not x.renewing:  # an initial attach: Redirects are dropped before dispatch (no router), defensively
            self._drop("unexpected", message=msg.NAME, state=self.state.value)
            return
        self._count("renew_interrupted")
        self._note("fail", role="mn", identifier=x.identifier, reason=f"renewal given up for Redirect {msg.identifier}")
        self.exchange = None
        self._set_state(MnState.ATTACHED)
        self._on_hrd(msg)

    def _on_amn_duplicate(self, msg: FmipMessage, ev: Received) -> None:
        self._drop("duplicate", message=msg.NAME, identifier=msg.identifier)

    def _on_timeout(self) -> None:
        x = self.exchange
        assert x is not None and x.pending is not None
        if x.tries >= self.backoff.max_tries:
            self._count("attach_failed")
            self._note("fail", role="mn", identifier=x.identifier, router=addr_text(x.router),
                       reason=f"no Authenticated-MN after {x.tries} Attach tries")
            if x.renewing:
                self._renew_failed(f"no Authenticated-MN after {x.tries} Attach tries")
                return
            if self.state == MnState.HO_ATTACHING:
                # Unauthenticated on the NAR's link (the NAR refused the HI, restarted, or the air lost every
                # Attach): the handover is over, but we are on the NAR's link with its ticket and our NCoA --
                # attach there afresh rather than end with no router at all.
                self.router = None
                self._count("fallback_attach")
                self._note("fail", role="mn", identifier=x.identifier, reason="handover attach failed: an initial "
                                                                               "attach at the NAR instead")
                self._attach_to(x.router, x.principal, x.coa, x.link)
                return
            self._set_state(MnState.IDLE)
            self.exchange = None
            return
        x.tries += 1
        x.deadline = self._now + self.backoff.wait_ns(x.tries)
        self._send(x.pending, "Attach", x.identifier, again=True)

    def _on_link_note(self, ev: LinkUp | LinkDown) -> None:
        self._note("link", role="mn", up=isinstance(ev, LinkUp), link=getattr(ev, "link", None),
                   state=self.state.value)

    # ------------------------------------------------------------------ fast handover
    def _on_hrd(self, msg: HandoverRedirect) -> None:
        r = self.router
        assert r is not None and msg.identifier is not None
        principal = msg.principal
        if principal is None:
            self._drop("no_principal", identifier=msg.identifier)
            self._note("fail", role="mn", identifier=msg.identifier, reason="Redirect names no NAR principal (S)")
            return
        nar = msg.nar_address
        try:
            ncoa = msg.ncoa if msg.ncoa is not None else ncoa_from_prefix(nar, msg.prefix_size, r.coa)
            nar_ll = nar_link_local(nar, msg.prefix_size)
            nar_mac = mac48_from_eui64(msg.nar_mac) if msg.nar_mac is not None else \
                mac48_from_address(nar, msg.prefix_size)
        except DerivationError as exc:
            self._drop("derivation_failed", identifier=msg.identifier)
            self._note("fail", role="mn", identifier=msg.identifier, reason=str(exc))
            return
        self.exchange = _Exchange(msg.identifier, nar, Principal(principal.name, principal.realm), ncoa,
                                  pcoa=r.coa, nar_ll=nar_ll, nar_mac=nar_mac)
        self._count("handovers_started")
        self._get_ticket(self.exchange)
        self._set_state(MnState.HO_TICKET)

    def _on_hrd_duplicate(self, msg: HandoverRedirect) -> None:
        x = self.exchange
        assert x is not None
        if msg.identifier != x.identifier:
            # An authenticated Redirect with a new identifier from our router: the PAR runs one handover per MN,
            # so it has given up the old one (e.g. our HRAs were all lost).  Follow the new one.
            self._count("superseded")
            self._note("fail", role="mn", identifier=x.identifier, reason=f"superseded by {msg.identifier}")
            self._unconfigure(x)
            self.exchange = None
            self._set_state(MnState.ATTACHED)
            self._on_hrd(msg)
            return
        self._drop("duplicate_hrd", identifier=x.identifier, state=self.state.value)
        if self.state == MnState.HO_READY and x.pending is not None:
            self._send(x.pending, "HandoverRedirectAck", x.identifier, again=True)  # our HRA was lost

    def _on_ho_ticket(self, ev: TicketReady) -> None:
        x, r = self.exchange, self.router
        assert x is not None and r is not None and x.pcoa is not None
        ev = self._usable(ev)
        if ev.creds is None:
            self._count("ticket_failed")
            self._note("fail", role="mn", identifier=x.identifier, reason=f"no ticket for {x.principal}: {ev.error}")
            self._set_state(MnState.ATTACHED)
            self.exchange = None
            return
        binding = HandoverBinding(addr_text(x.coa), addr_text(x.pcoa), addr_text(x.router), x.identifier)
        pdu = self._ap_req(x, ev, binding)
        if pdu is None:
            self._set_state(MnState.ATTACHED)
            self.exchange = None
            return
        hra = HandoverRedirectAck((LkbMessage(pdu), Identifier(x.identifier), MessageAuthCode()))
        send = Send(sign(hra, r.mac_key, x.pcoa, r.address, self.codepoints), x.pcoa, r.address, ND_HOP_LIMIT,
                    False, r.link)
        x.pending = send  # kept to answer a retransmitted Redirect (our HRA was lost)
        x.deadline = self._now + self.switch_wait_ns  # no new link by then: give the handover up
        self._send(send, "HandoverRedirectAck", x.identifier)
        self._out.append(ReadyToSwitch(x.router))
        self._set_state(MnState.HO_READY)

    def _reverse(self) -> None:
        """Link reversal (draft App. A): we are (still, or again) on the PAR's link: stop its forwarding."""
        x, r = self.exchange, self.router
        assert x is not None and r is not None and x.pcoa is not None
        fd = ForwardingDisable((Identifier(x.identifier), MessageAuthCode()))
        send = Send(sign(fd, r.mac_key, x.pcoa, r.address, self.codepoints), x.pcoa, r.address, ND_HOP_LIMIT,
                    False, r.link)
        self._count("link_reversals")
        self._send(send, "ForwardingDisable", x.identifier)
        self._set_state(MnState.ATTACHED)
        self.exchange = None

    def _on_switch_timeout(self) -> None:
        x = self.exchange
        assert x is not None
        self._count("switch_timeouts")
        self._note("fail", role="mn", identifier=x.identifier,
                   reason=f"no new link within {self.switch_wait_ns / 1e9:g} s of ReadyToSwitch")
        self._unconfigure(x)
        self._reverse()

    def _on_ho_link_down(self, ev: LinkDown) -> None:
        """Ready to switch and the old link gone: the NCoA is configured now, while no frame can reach us, so
        that on the new link only the Attach stands between the carrier and the NAR's flush.  The address
        comes without DAD (the NAR proxies it and vouches for it, draft §4) and outlives the carrier's return.
        Back on the old link instead (link reversal, or no new link in time) it is removed again."""
        self._on_link_note(ev)
        x = self.exchange
        if x is not None and not x.coa_configured:
            x.coa_configured = True
            self._out.append(ConfigureAddress(x.coa, ""))

    def _unconfigure(self, x: _Exchange) -> None:
        """The NCoA a handover that ends here configured on the old link's loss, removed."""
        if x.coa_configured:
            x.coa_configured = False
            self._out.append(RemoveAddress(x.coa))

    def _on_ho_link_up(self, ev: LinkUp) -> None:
        x, r = self.exchange, self.router
        assert x is not None and r is not None and x.pcoa is not None
        if ev.link == r.link:
            # Link reversal (draft App. A): back on the PAR's link before the NAR took us: stop its forwarding.
            if self.state == MnState.HO_ATTACHING:
                self._out.append(RemoveAddress(x.coa))
            else:
                self._unconfigure(x)
            self._reverse()
            return
        if self.state == MnState.HO_ATTACHING:
            self._on_link_note(ev)
            return
        assert x.nar_ll is not None and x.nar_mac is not None
        x.link = ev.link
        # The Attach leaves as soon as the MN can take what it releases: the NAR's neighbor entry (no Neighbor
        # Solicitation), the NCoA (unless configured already while the old link was down) and the route --
        # configuration steps a driver hands the kernel in one rtnetlink request, done inside that one system
        # call -- then the Attach, prepared beforehand.  The address comes first because the NAR flushes the
        # buffered packets to it the moment the Attach lands.
        self._out.append(PreloadNeighbor(x.nar_ll, x.nar_mac, ev.link))
        if not x.coa_configured:
            self._out.append(ConfigureAddress(x.coa, ev.link))
        x.coa_configured = False  # the handover's now: removed with it if it fails (_on_timeout's fallback keeps it)
        self._out.append(SetDefaultRoute(x.nar_ll, ev.link))
        prepared, x.prepared = x.prepared, None
        icmp = prepared[1] if prepared is not None and prepared[0] == self._ho_attach_inputs(x) else None
        seq = self._sequence
        if self.home_agent is not None:
            self.last_bu_sequence = self.allocate_bu_sequence()
        send = Send(icmp if icmp is not None else self._ho_attach(x, seq), x.coa, x.nar_ll, ND_HOP_LIMIT, False,
                    ev.link)
        self._set_state(MnState.HO_ATTACHING)
        self._arm(x, send, "Attach")

    def _on_ho_amn(self, msg: FmipMessage, ev: Received) -> None:
        x = self.exchange
        assert x is not None and x.pcoa is not None
        if not self._authenticated(msg, ev):
            return
        self._out.append(RemoveAddress(x.pcoa, retired=True))
        self.router = self._session(x)
        self._count("handovers_completed")
        self._finish()


#: (state, event kind) -> handler, a function of :class:`MobileNode` called as ``handler(node, *event)``.
#: ``AdjacentRealms`` is stateless (always -> Precache).  docs/protocol.md §2 prints it.
MN_TRANSITIONS: dict[tuple[MnState, Kind], Callable[..., None]] = {
    (MnState.IDLE, Kind.START): MobileNode._on_start,
    (MnState.ATTACHED, Kind.START): MobileNode._on_start,
    (MnState.ATTACH_TICKET, Kind.TICKET): MobileNode._on_attach_ticket,
    (MnState.ATTACHING, Kind.AMN): MobileNode._on_attach_amn,
    (MnState.ATTACHING, Kind.TIMEOUT): MobileNode._on_timeout,
    (MnState.ATTACHED, Kind.HRD): MobileNode._on_hrd,
    (MnState.ATTACHED, Kind.AMN): MobileNode._on_amn_duplicate,
    (MnState.ATTACHED, Kind.LINK_UP): MobileNode._on_link_note,
    (MnState.ATTACHED, Kind.LINK_DOWN): MobileNode._on_link_note,
    (MnState.ATTACHED, Kind.TIMEOUT): MobileNode._on_session_timer,
    (MnState.ATTACH_TICKET, Kind.HRD): MobileNode._on_renew_interrupted,
    (MnState.ATTACHING, Kind.HRD): MobileNode._on_renew_interrupted,
    (MnState.HO_TICKET, Kind.HRD): MobileNode._on_hrd_duplicate,
    (MnState.HO_TICKET, Kind.TICKET): MobileNode._on_ho_ticket,
    (MnState.HO_READY, Kind.HRD): MobileNode._on_hrd_duplicate,
    (MnState.HO_READY, Kind.LINK_UP): MobileNode._on_ho_link_up,
    (MnState.HO_READY, Kind.LINK_DOWN): MobileNode._on_ho_link_down,
    (MnState.HO_READY, Kind.TIMEOUT): MobileNode._on_switch_timeout,
    (MnState.HO_ATTACHING, Kind.AMN): MobileNode._on_ho_amn,
    (MnState.HO_ATTACHING, Kind.TIMEOUT): MobileNode._on_timeout,
    (MnState.HO_ATTACHING, Kind.LINK_UP): MobileNode._on_ho_link_up,
    (MnState.HO_ATTACHING, Kind.LINK_DOWN): MobileNode._on_link_note,
}

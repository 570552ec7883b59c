"""The access-router protocol machine: the PAR and NAR roles of one router (docs/design.md §1, draft §2-§7, App. A).

I/O-free (docs/conventions.md §6): :meth:`AccessRouter.handle` takes one event from ``fmipfast.protocol`` and the
driver's time in nanoseconds and returns the actions to carry out; :meth:`AccessRouter.next_deadline` says
when to feed a ``Tick``.  The data-plane actions mirror the engine hooks (``ProxyAdd`` -> ``proxy_add`` ...).

* **Initial attach**: Attach with an AP-REQ -> ``Verify`` -> Authenticated-MN with the AP-REP; the MN is then
  a *session* (address -> MAC key).
* **PAR role** (one :class:`ParHandover` per MN, states :class:`ParState`): ``Trigger`` -> HRD (retransmitted)
  -> HRA -> HI under AH (retransmitted) + ``TunnelAdd`` -> HE accepted -> forwarding until the lifetime ends
  (``TunnelRemove``); HE refused, Forwarding Disable or HI exhaustion -> ``TunnelRemove``.
* **NAR role** (one :class:`NarHandover` per (PAR, identifier), states :class:`NarState`): HI -> checks ->
  ``Verify`` -> ``ProxyAdd`` + HE accepted, or HE with a reason; Attach -> ``ProxyComplete``,
  ``ForwardPacket`` (the BU), Authenticated-MN; lifetime without Attach -> ``ProxyRemove`` + ``BufferDrop``.

Every record's (state, event kind) pair is looked up in :data:`PAR_TRANSITIONS` / :data:`NAR_TRANSITIONS`;
a pair that is not there is dropped and counted (``unexpected``).  docs/protocol.md prints both tables and
gives the reason for every default.

Ownership: one driver thread calls ``handle``; the object is not thread-safe and never blocks.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from ipaddress import IPv6Address

from fmipfast.constants import DEFAULT_CODEPOINTS, ND_HOP_LIMIT, AddressKind, Codepoints, HandoverStatus
from fmipfast.errors import DerivationError
from fmipfast.keys import KeyPool
from fmipfast.messages import (
    AddressOption,
    AuthenticatedMN,
    EncapsulatedPacket,
    FmipMessage,
    HandoverControl,
    HandoverError,
    HandoverRedirect,
    HandoverRedirectAck,
    IcmpHandover,
    Identifier,
    LinkLayerAddress,
    LkbMessage,
    MessageAuthCode,
    Status,
    encode,
)
from fmipfast.messages import Principal as PrincipalOption
from fmipfast.protocol import (
    DEFAULT_BACKOFF,
    DEFAULT_LIFETIME_MS,
    ROUTER_HOP_LIMIT,
    STATUS_ACCEPTED,
    Action,
    Backoff,
    BufferDrop,
    Event,
    ForwardPacket,
    Kind,
    Note,
    ProxyAdd,
    ProxyComplete,
    ProxyRemove,
    Received,
    Send,
    Tick,
    Trigger,
    TunnelAdd,
    TunnelRemove,
    Verified,
    Verify,
    addr_text,
    eui64_from_mac48,
    mac48_from_eui64,
    mac_ok,
    nar_link_local,
    ncoa_from_prefix,
    parse_received,
    sign,
)
from fmipfast.security.lwkerb import ApContext, HandoverBinding

__all__ = ["AccessRouter", "ParState", "NarState", "ParHandover", "NarHandover", "Session", "SessionTable",
           "PAR_TRANSITIONS", "NAR_TRANSITIONS", "AR_COUNTERS"]

#: Every counter an AccessRouter keeps (all start at zero; docs/protocol.md §6 describes each).
AR_COUNTERS = (
    "received", "sent", "retransmitted",
    "bad_checksum", "malformed", "not_fmip", "bad_hop_limit", "missing_ah", "bad_mac", "unknown_mn",
    "unknown_identifier", "no_identifier", "duplicate", "duplicate_hi", "duplicate_attach", "unexpected",
    "stale_verified", "no_ap_req", "no_link_layer_address", "attach_before_verified",
    "trigger_unknown_mn", "trigger_busy", "trigger_invalid",
    "handovers_started", "handovers_forwarding", "handovers_refused", "handovers_failed",
    "forwarding_disabled", "forwarding_expired", "mn_returned",
    "hi_admitted", "refused_ncoa_in_use", "refused_insufficient_resources", "refused_authentication_failed",
    "refused_unspecified", "auth_failed", "verify_timeout", "proxy_expired", "attached", "initial_attached",
    "initial_refused", "refused_sessions_full", "session_expired", "attach_address_in_use", "nar_superseded",
    "refused_no_buffer_key", "attach_rate_limited", "records_full",
)


class ParState(str, Enum):
    """PAR role, one handover (docs/design.md §1 steps 1-5, 7)."""

    HRD_SENT = "hrd_sent"  # Redirect sent, waiting for the HRA (retransmitting)
    HI_SENT = "hi_sent"  # HI sent under AH and tunnel installed, waiting for the NAR's HE (retransmitting)
    FORWARDING = "forwarding"  # NAR accepted; tunnelling until the lifetime ends or the MN disables it


class NarState(str, Enum):
    """NAR role, one handover — and one initial attach (``initial``), which skips PROXYING."""

    VERIFYING = "verifying"  # AP-REQ handed to the verifier (Verify), waiting for Verified
    PROXYING = "proxying"  # proxy entry installed, HE accepted sent, waiting for the MN's Attach
    ATTACHED = "attached"  # MN authenticated; the record only answers duplicates until it is forgotten
    REFUSED = "refused"  # HE with a reason sent; the record only answers duplicates until it is forgotten


class SessionTable(dict[IPv6Address, "Session"]):
    """``address -> Session``; :attr:`version` moves on every change, so a driver that keeps the table across
    restarts (``RouterAgent(session_file=...)``) knows when to write it."""

    def __init__(self) -> None:
        super().__init__()
        self.version = 0

    def __setitem__(self, key: IPv6Address, value: "Session") -> None:
        super().__setitem__(key, value)
        self.version += 1

    def __delitem__(self, key: IPv6Address) -> None:
        super().__delitem__(key)
        self.version += 1

    def pop(self, key, *default):  # type: ignore[override]
        self.version += 1
        return super().pop(key, *default)


@dataclass
class Session:
    """An MN authenticated on this router's link: its address, the sub-option 7 key and its EUI-64."""

    address: IPv6Address
    mac_key: bytes
    eui64: bytes | None = None
    expires_ns: int | None = None  # the ticket's endtime on the machine's clock: the key is not used after


@dataclass
class ParHandover:
    identifier: int
    trigger: Trigger
    session: Session
    state: ParState
    ncoa: IPv6Address | None = None
    tries: int = 0
    deadline: int | None = None
    pending: Send | None = None  # the message being retransmitted


@dataclass
class NarHandover:
    peer: IPv6Address  # the PAR (HI) or the MN itself (initial attach)
    identifier: int
    ncoa: IPv6Address
    pcoa: IPv6Address
    state: NarState
    initial: bool = False
    request_id: int = -1
    key: int = -1  # the handover buffer's key (fmipfast.keys), -1 before one is taken
    lifetime_ms: int = DEFAULT_LIFETIME_MS
    mn_eui64: bytes | None = None
    context: ApContext | None = None
    deadline: int | None = None
    answer: Send | None = None  # HE (accepted or refused) or AMN: re-sent to duplicates
    bu: bytes | None = None  # initial attach: the encapsulated packet to forward once verified
    reply_src: IPv6Address | None = None
    buffer: bool = True  # the HI's U flag
    early_attach: tuple[FmipMessage, Received] | None = None  # an Attach that came before verification


#: PAR role: (state, event kind) -> handler method name.
PAR_TRANSITIONS: dict[tuple[ParState, Kind], str] = {
    (ParState.HRD_SENT, Kind.HRA): "_par_hra",
    (ParState.HRD_SENT, Kind.TIMEOUT): "_par_timeout",
    (ParState.HRD_SENT, Kind.FD): "_par_fd",
    (ParState.HI_SENT, Kind.HRA): "_par_duplicate",
    (ParState.HI_SENT, Kind.HE): "_par_he",
    (ParState.HI_SENT, Kind.TIMEOUT): "_par_timeout",
    (ParState.HI_SENT, Kind.FD): "_par_fd",
    (ParState.FORWARDING, Kind.HRA): "_par_duplicate",
    (ParState.FORWARDING, Kind.HE): "_par_he_late",
    (ParState.FORWARDING, Kind.FD): "_par_fd",
    (ParState.FORWARDING, Kind.LIFETIME): "_par_lifetime",
}

#: NAR role (and initial attach): (state, event kind) -> handler method name.
NAR_TRANSITIONS: dict[tuple[NarState, Kind], str] = {
    (NarState.VERIFYING, Kind.HI): "_nar_duplicate_hi",
    (NarState.VERIFYING, Kind.VERIFIED): "_nar_verified",
    (NarState.VERIFYING, Kind.ATTACH): "_nar_attach_early",
    (NarState.VERIFYING, Kind.LIFETIME): "_nar_verify_timeout",
    (NarState.PROXYING, Kind.HI): "_nar_duplicate_hi",
    (NarState.PROXYING, Kind.ATTACH): "_nar_attach",
    (NarState.PROXYING, Kind.LIFETIME): "_nar_proxy_expired",
    (NarState.ATTACHED, Kind.HI): "_nar_duplicate_hi",
    (NarState.ATTACHED, Kind.ATTACH): "_nar_duplicate_attach",
    (NarState.ATTACHED, Kind.LIFETIME): "_nar_forget",
    (NarState.REFUSED, Kind.HI): "_nar_duplicate_hi",
    (NarState.REFUSED, Kind.ATTACH): "_nar_duplicate_attach",
    (NarState.REFUSED, Kind.LIFETIME): "_nar_forget",
}

_RECEIVED_KIND = {
    "handover_redirect_ack": Kind.HRA,
    "handover": Kind.HI,
    "handover_error": Kind.HE,
    "attach": Kind.ATTACH,
    "forwarding_disable": Kind.FD,
}


class AccessRouter:
    """The protocol of one access router (both roles).

    Parameters
    ----------
    address : the router's global address on its access link (the NAR address of Redirects naming it, the
        source of HRD/HI/HE, the ``nar`` of AP-REQ bindings).
    link_local : its link-local address (default: FE80::/64 + the IID of ``address``).
    is_address_in_use : the driver's neighbor-cache check for an NCoA (draft §4: entries of *other* nodes),
        called with the NCoA and the MN's EUI-64 from the HI (None without the M flag): an entry of that MN
        itself (it comes back to an address it had here) is not "in use".
    max_handovers : concurrent NAR handovers (VERIFYING + PROXYING) before HE "insufficient resources".
    buffer_packets : max packets the NAR should buffer per MN (the HI's handover control).
    answer_cache_ms : how long a finished record answers duplicates (re-sends its HE / AMN).
    max_sessions : authenticated MNs at once (a full table refuses new ones: HE "insufficient resources" to an
        HI, an initial Attach dropped; both counted ``refused_sessions_full``).  A session ends with its
        handover away from here, or when the ticket it came from expires (``session_expired``).
    epoch_ns : POSIX time (ns) at the machine's clock 0, to place tickets' end times on that clock.
    backoff : the HRD and HI retransmission policy.
    buffer_keys : the handover buffer's key pool shared with the driver (``Engine.buffer_keys``): the machine
        acquires a key for each handover it admits and the driver returns it (fmipfast.keys).  None: a pool
        of ``max_records`` keys of the machine's own, which it returns itself when a record is forgotten.
        No key free: HE "insufficient resources" (``refused_no_buffer_key``).
    max_records : NAR records kept at once (live ones and the ones only answering duplicates); beyond it a
        new HI or initial Attach is dropped and counted (``records_full``) — a flood of Attach with any
        AP-REQ bytes cannot grow the table.
    attach_rate, attach_burst : initial Attach verifications per second (token bucket) per source address,
        and ``attach_global_rate`` for all sources together: an Attach beyond them is dropped before any
        cryptography and counted (``attach_rate_limited``); the MN retransmits.
    """

    def __init__(self, address: IPv6Address | str, link_local: IPv6Address | str | None = None, *,
                 codepoints: Codepoints = DEFAULT_CODEPOINTS, backoff: Backoff = DEFAULT_BACKOFF,
                 is_address_in_use: Callable[[IPv6Address, bytes | None], bool] = lambda _a, _m: False,
                 max_handovers: int = 64, buffer_packets: int = 64, answer_cache_ms: int = 5000,
                 first_identifier: int = 1, iface: str | None = None, max_sessions: int = 4096,
                 epoch_ns: int = 0, buffer_keys: KeyPool | None = None, max_records: int | None = None,
                 attach_rate: float = 10.0, attach_burst: float = 5.0, attach_global_rate: float = 1000.0) -> None:
        if max_handovers < 1 or buffer_packets < 0 or answer_cache_ms < 0 or max_sessions < 1:
            raise ValueError("max_handovers >= 1, buffer_packets >= 0, answer_cache_ms >= 0, max_sessions >= 1")
        if not (0 < attach_rate < float("inf") and 1 <= attach_burst < float("inf")
                and 0 < attach_global_rate < float("inf")):
            raise ValueError("attach_rate > 0, attach_burst >= 1 and attach_global_rate > 0, all finite")
        self.max_records = max_records if max_records is not None else 4 * max_handovers + 64
        if self.max_records < 1:
            raise ValueError("max_records >= 1")
        self._owns_keys = buffer_keys is None
        self.buffer_keys = KeyPool(self.max_records) if buffer_keys is None else buffer_keys
        self.attach_rate, self.attach_burst, self.attach_global_rate = attach_rate, attach_burst, attach_global_rate
        self._attach_buckets: dict[IPv6Address, tuple[float, int]] = {}  # source -> (tokens, at), insertion = LRU
        self._attach_global: tuple[float, int] = (max(attach_burst, attach_global_rate / 10), 0)
        self._deadlines: list[tuple[int, int, ParHandover | NarHandover]] = []  # a heap; stale entries skipped
        self._deadline_seq = 0
        self.max_sessions = max_sessions
        self.epoch_ns = epoch_ns
        self._session_expiry: list[tuple[int, IPv6Address]] = []  # a heap; stale entries are skipped
        self.address = IPv6Address(address)
        # default: what an MN derives from a Redirect naming this router (draft §5: FE80::/64 + its IID)
        self.link_local = IPv6Address(link_local) if link_local is not None else nar_link_local(self.address, 64)
        self.codepoints = codepoints
        self.backoff = backoff
        self.is_address_in_use = is_address_in_use
        self.max_handovers = max_handovers
        self.buffer_packets = buffer_packets
        self.answer_cache_ms = answer_cache_ms
        self.iface = iface
        self.counters: dict[str, int] = dict.fromkeys(AR_COUNTERS, 0)
        self.sessions: SessionTable = SessionTable()
        self.par: dict[IPv6Address, ParHandover] = {}  # by PCoA
        self.nar: dict[tuple[IPv6Address, int], NarHandover] = {}  # by (peer, identifier)
        self._nar_by_ncoa: dict[IPv6Address, NarHandover] = {}
        self._verifying: dict[int, NarHandover] = {}
        self._next_identifier = first_identifier & 0xFFFF
        self._next_request = 1
        self._live: dict[int, NarHandover] = {}  # id -> NAR handovers in VERIFYING or PROXYING
        self._now = 0
        self._out: list[Action] = []

    # ------------------------------------------------------------------ the interface
    def handle(self, event: Event, now_ns: int) -> list[Action]:
        """Process one event at ``now_ns``; return the actions, in order."""
        self._now = now_ns
        self._out = []
        if self._session_expiry and self._session_expiry[0][0] <= now_ns:
            self._expire_sessions()  # a key is never used past its ticket, whether or not a Tick came in time
        if isinstance(event, Received):
            self._on_received(event)
        elif isinstance(event, Tick):
            self._on_tick()
        elif isinstance(event, Trigger):
            self._on_trigger(event)
        elif isinstance(event, Verified):
            self._on_verified(event)
        else:
            self._count("unexpected")
        out, self._out = self._out, []
        return out

    def next_deadline(self) -> int | None:
        """The earliest time (ns) at which a ``Tick`` has work to do, or None."""
        times = []
        dl = self._deadlines
        while dl and not self._armed(dl[0]):
            heapq.heappop(dl)  # that record moved its deadline or is gone
        if dl:
            times.append(dl[0][0])
        heap = self._session_expiry
        while heap:
            s = self.sessions.get(heap[0][1])
            if s is not None and s.expires_ns == heap[0][0]:
                break
            heapq.heappop(heap)  # that session ended otherwise (a handover away) or was replaced
        if heap:
            times.append(heap[0][0])
        return min(times) if times else None

    def session_for(self, address: IPv6Address) -> Session | None:
        return self.sessions.get(IPv6Address(address))

    def restore_sessions(self, sessions: list[Session], now_ns: int) -> int:
        """Take back sessions saved before a restart (``expires_ns`` on this machine's clock at ``now_ns``):
        the ended ones, those beyond ``max_sessions`` and addresses already in session are left out.  Returns
        how many were taken."""
        taken = 0
        for s in sessions:
            if (s.expires_ns is not None and s.expires_ns <= now_ns) or s.address in self.sessions \
                    or len(self.sessions) >= self.max_sessions:
                continue
            self.sessions[s.address] = s
            if s.expires_ns is not None:
                heapq.heappush(self._session_expiry, (s.expires_ns, s.address))
            taken += 1
        return taken

    # ------------------------------------------------------------------ plumbing
    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def _note(self, name: str, **fields: object) -> None:
        self._out.append(Note(name, dict(fields)))

    def _drop(self, reason: str, **fields: object) -> None:
        self._count(reason)
        self._note("drop", role="ar", reason=reason, **fields)

    def _send(self, send: Send, message: str, identifier: int, *, again: bool = False) -> None:
        self._out.append(send)
        self._count("retransmitted" if again else "sent")
        self._note("send", role="ar", message=message, src=addr_text(send.src), dst=addr_text(send.dst),
                   identifier=identifier, retransmission=again)

    def _par_state(self, h: ParHandover, state: ParState) -> None:
        self._note("state", role="par", identifier=h.identifier, pcoa=addr_text(h.trigger.pcoa), old=h.state.value,
                   new=state.value)
        h.state = state

    def _nar_state(self, h: NarHandover, state: NarState) -> None:
        self._note("state", role="attach" if h.initial else "nar", identifier=h.identifier, ncoa=addr_text(h.ncoa),
                   old=h.state.value, new=state.value)
        h.state = state
        self._nar_track(h)

    def _par_dispatch(self, h: ParHandover, kind: Kind, *args: object) -> None:
        name = PAR_TRANSITIONS.get((h.state, kind))
        if name is None:
            self._drop("unexpected", role_state=h.state.value, kind=kind.value)
            return
        getattr(self, name)(h, *args)

    def _nar_dispatch(self, h: NarHandover, kind: Kind, *args: object) -> None:
        name = NAR_TRANSITIONS.get((h.state, kind))
        if name is None:
            self._drop("unexpected", role_state=h.state.value, kind=kind.value)
            return
        getattr(self, name)(h, *args)

    def _alloc_identifier(self) -> int:
        used = {h.identifier for h in self.par.values()}
        for _ in range(0x10000):
            ident = self._next_identifier
            self._next_identifier = (self._next_identifier + 1) & 0xFFFF
            if ident not in used:
                return ident
        raise RuntimeError("no free handover identifier")  # pragma: no cover - 65536 live handovers

    # ------------------------------------------------------------------ events
    def _sessions_full(self, address: IPv6Address) -> bool:
        if address in self.sessions or len(self.sessions) < self.max_sessions:
            return False
        self._count("refused_sessions_full")
        return True

    def _expire_sessions(self) -> None:
        while self._session_expiry and self._session_expiry[0][0] <= self._now:
            when, address = heapq.heappop(self._session_expiry)
            s = self.sessions.get(address)
            if s is not None and s.expires_ns == when and not any(
                    h.session is s for h in self.par.values()):  # a live PAR handover ends it itself
                del self.sessions[address]
                self._count("session_expired")
                self._note("session_expired", role="ar", address=addr_text(address))

    def _on_tick(self) -> None:
        now = self._now
        self._expire_sessions()
        due: list[ParHandover | NarHandover] = []
        dl = self._deadlines
        while dl and dl[0][0] <= now:
            entry = heapq.heappop(dl)
            if self._armed(entry):
                due.append(entry[2])
        for h in due:  # in deadline order; a handler may re-arm its record (a later deadline, not this pass)
            if isinstance(h, ParHandover):
                if self.par.get(h.trigger.pcoa) is h and h.deadline is not None and h.deadline <= now:
                    self._par_dispatch(h, Kind.LIFETIME if h.state == ParState.FORWARDING else Kind.TIMEOUT)
            elif self.nar.get((h.peer, h.identifier)) is h and h.deadline is not None and h.deadline <= now:
                self._nar_dispatch(h, Kind.LIFETIME)

    def _arm(self, h: ParHandover | NarHandover, deadline: int | None) -> None:
        """Set a record's deadline; the heap keeps one entry per arming, the stale ones are skipped."""
        h.deadline = deadline
        if deadline is not None:
            self._deadline_seq += 1
            heapq.heappush(self._deadlines, (deadline, self._deadline_seq, h))

    def _armed(self, entry: tuple[int, int, ParHandover | NarHandover]) -> bool:
        when, _seq, h = entry
        if h.deadline != when:
            return False
        if isinstance(h, ParHandover):
            return self.par.get(h.trigger.pcoa) is h
        return self.nar.get((h.peer, h.identifier)) is h

    def _on_received(self, ev: Received) -> None:
        self._count("received")
        msg = parse_received(ev, self.codepoints, self.counters)
        if msg is None:
            self._note("drop", role="ar", reason="rejected on receipt", src=addr_text(ev.src))
            return
        kind = _RECEIVED_KIND.get(msg.KEY)
        self._note("recv", role="ar", message=msg.NAME, src=addr_text(ev.src), dst=addr_text(ev.dst),
                   identifier=msg.identifier)
        if kind is None:
            self._drop("unexpected", message=msg.NAME)
            return
        if msg.identifier is None:
            self._drop("no_identifier", message=msg.NAME)
            return
        if kind in (Kind.HRA, Kind.FD):
            self._from_mn_at_par(kind, msg, ev)
        elif kind == Kind.HE:
            self._on_he(msg, ev)
        elif kind == Kind.HI:
            self._on_hi(msg, ev)
        else:
            self._on_attach(msg, ev)

    # ------------------------------------------------------------------ PAR role
    def _on_trigger(self, t: Trigger) -> None:
        pcoa = IPv6Address(t.pcoa)
        sess = self.sessions.get(pcoa)
        if sess is None:
            self._drop("trigger_unknown_mn", pcoa=addr_text(pcoa))
            self._note("fail", role="par", pcoa=addr_text(pcoa), reason="no authenticated MN at this address")
            return
        if pcoa in self.par:
            self._drop("trigger_busy", pcoa=addr_text(pcoa))
            return
        try:
            nar_eui = None
            if t.nar_mac is not None:
                nar_eui = eui64_from_mac48(t.nar_mac) if len(t.nar_mac) == 6 else bytes(t.nar_mac)
            principal = PrincipalOption(t.nar_principal.name, t.nar_principal.realm)
            hrd = HandoverRedirect(t.nar_prefix_size, t.nar_address, nar_eui, t.ncoa, (principal,))
        except ValueError as exc:
            self._drop("trigger_invalid", pcoa=addr_text(pcoa), error=str(exc))
            return
        ident = self._alloc_identifier()
        hrd = HandoverRedirect(hrd.prefix_size, hrd.nar_address, hrd.nar_mac, hrd.ncoa,
                               (principal, Identifier(ident), MessageAuthCode()))
        raw = sign(hrd, sess.mac_key, self.address, pcoa, self.codepoints)
        h = ParHandover(ident, t, sess, ParState.HRD_SENT)
        self.par[pcoa] = h
        self._count("handovers_started")
        self._note("state", role="par", identifier=ident, pcoa=addr_text(pcoa), old="idle", new=h.state.value)
        self._transmit(h, Send(raw, self.address, pcoa, ND_HOP_LIMIT, False, self.iface), "HandoverRedirect")

    def _transmit(self, h: ParHandover, send: Send, message: str) -> None:
        h.pending = send
        h.tries = 1
        self._arm(h, self._now + self.backoff.wait_ns(1))
        self._send(send, message, h.identifier)

    def _from_mn_at_par(self, kind: Kind, msg: FmipMessage, ev: Received) -> None:
        sess = self.sessions.get(ev.src)
        if sess is None:
            self._drop("unknown_mn", src=addr_text(ev.src))
            return
        if not mac_ok(ev.icmp, sess.mac_key, ev.src, ev.dst, self.codepoints, msg):
            self._drop("bad_mac", message=msg.NAME, src=addr_text(ev.src))
            return
        h = self.par.get(ev.src)
        if h is None or h.identifier != msg.identifier:
            self._drop("unknown_identifier", message=msg.NAME, identifier=msg.identifier)
            return
        self._par_dispatch(h, kind, msg)

    def _par_hra(self, h: ParHandover, msg: HandoverRedirectAck) -> None:
        ap_req = msg.lkb
        if ap_req is None:
            self._drop("no_ap_req", identifier=h.identifier)
            return
        t = h.trigger
        pcoa = IPv6Address(t.pcoa)
        ncoa = IPv6Address(t.ncoa) if t.ncoa is not None else ncoa_from_prefix(IPv6Address(t.nar_address),
                                                                              t.nar_prefix_size, pcoa)
        h.ncoa = ncoa
        hi = IcmpHandover(t.nar_prefix_size, ncoa, h.session.eui64, (
            LkbMessage(ap_req), HandoverControl(t.buffer, self.buffer_packets, t.lifetime_ms),
            AddressOption(AddressKind.PCOA, pcoa), Identifier(h.identifier)))
        nar = IPv6Address(t.nar_address)
        raw = encode(hi, self.address, nar, codepoints=self.codepoints)
        self._par_state(h, ParState.HI_SENT)
        self._transmit(h, Send(raw, self.address, nar, ROUTER_HOP_LIMIT, True, None), "IcmpHandover")
        # docs/design.md §1 step 4: "From now on PAR tunnels packets addressed to the PCoA to the NAR".
        self._out.append(TunnelAdd(pcoa, nar))

    def _par_duplicate(self, h: ParHandover, msg: FmipMessage) -> None:
        self._drop("duplicate", message=msg.NAME, identifier=h.identifier)

    def _par_timeout(self, h: ParHandover) -> None:
        assert h.pending is not None
        if h.tries >= self.backoff.max_tries:
            self._count("handovers_failed")
            what = "HandoverRedirect" if h.state == ParState.HRD_SENT else "IcmpHandover"
            self._note("fail", role="par", identifier=h.identifier, pcoa=addr_text(h.trigger.pcoa),
                       reason=f"no answer to {what} after {h.tries} tries")
            if h.state == ParState.HI_SENT:
                self._out.append(TunnelRemove(IPv6Address(h.trigger.pcoa)))
            self._par_end(h)
            return
        h.tries += 1
        self._arm(h, self._now + self.backoff.wait_ns(h.tries))
        name = "HandoverRedirect" if h.state == ParState.HRD_SENT else "IcmpHandover"
        self._send(h.pending, name, h.identifier, again=True)

    def _par_end(self, h: ParHandover, new: str = "idle") -> None:
        self._note("state", role="par", identifier=h.identifier, pcoa=addr_text(h.trigger.pcoa), old=h.state.value,
                   new=new)
        self._arm(h, None)
        self.par.pop(IPv6Address(h.trigger.pcoa), None)
        s = h.session
        if s.expires_ns is not None and s.expires_ns <= self._now and self.sessions.get(s.address) is s:
            # its ticket ended while this handover ran (_expire_sessions leaves a session a live handover uses):
            # the key is not used past the ticket, whatever ended the handover
            del self.sessions[s.address]
            self._count("session_expired")
            self._note("session_expired", role="ar", address=addr_text(s.address))

    def _on_he(self, msg: FmipMessage, ev: Received) -> None:
        assert isinstance(msg, HandoverError)
        for h in self.par.values():
            if (h.identifier == msg.identifier and IPv6Address(h.trigger.nar_address) == ev.src
                    and (h.ncoa is None or h.ncoa == msg.ncoa)):
                self._par_dispatch(h, Kind.HE, msg)
                return
        self._drop("unknown_identifier", message=msg.NAME, identifier=msg.identifier, src=addr_text(ev.src))

    def _par_he(self, h: ParHandover, msg: HandoverError) -> None:
        status = msg.status if msg.status is not None else HandoverStatus.UNSPECIFIED
        h.pending = None
        if status == STATUS_ACCEPTED:
            self._count("handovers_forwarding")
            self._par_state(h, ParState.FORWARDING)
            self._arm(h, self._now + h.trigger.lifetime_ms * 1_000_000)
            return
        self._count("handovers_refused")
        self._note("fail", role="par", identifier=h.identifier, pcoa=addr_text(h.trigger.pcoa),
                   reason=_status_name(status))
        self._out.append(TunnelRemove(IPv6Address(h.trigger.pcoa)))  # docs/design.md §1 step 5: normal delivery
        self._par_end(h)

    def _par_he_late(self, h: ParHandover, msg: HandoverError) -> None:
        status = msg.status if msg.status is not None else HandoverStatus.UNSPECIFIED
        if status == STATUS_ACCEPTED:
            self._drop("duplicate", message=msg.NAME, identifier=h.identifier)
            return
        self._par_he(h, msg)

    def _par_fd(self, h: ParHandover, msg: FmipMessage) -> None:
        # draft App. A: the MN is back on our link; stop forwarding, deliver locally again.
        self._count("forwarding_disabled")
        if h.state != ParState.HRD_SENT:
            self._out.append(TunnelRemove(IPv6Address(h.trigger.pcoa)))
        self._par_end(h)

    def _par_lifetime(self, h: ParHandover) -> None:
        # The handover's lifetime is over: the MN's BU has long reached its HA; stop forwarding and forget the
        # MN's session here (it is no longer on our link).
        pcoa = IPv6Address(h.trigger.pcoa)
        self._count("forwarding_expired")
        self._out.append(TunnelRemove(pcoa))
        self._par_end(h)
        if self.sessions.get(pcoa) is h.session:
            del self.sessions[pcoa]

    # ------------------------------------------------------------------ NAR role
    def _live_nar(self) -> int:
        """NAR handovers (not initial attaches) in VERIFYING or PROXYING: kept as a set, not scanned."""
        return len(self._live)

    def _nar_track(self, h: NarHandover) -> None:
        """Keep :attr:`_live` in step with a record's registration and state."""
        if (not h.initial and h.state in (NarState.VERIFYING, NarState.PROXYING)
                and self.nar.get((h.peer, h.identifier)) is h):
            self._live[id(h)] = h
        else:
            self._live.pop(id(h), None)

    def _on_hi(self, msg: FmipMessage, ev: Received) -> None:
        assert isinstance(msg, IcmpHandover) and msg.identifier is not None
        key = (ev.src, msg.identifier)
        h = self.nar.get(key)
        if h is not None:
            self._nar_dispatch(h, Kind.HI, msg)
            return
        pcoa = msg.address(AddressKind.PCOA)
        hc = msg.find(HandoverControl)
        lifetime = hc.lifetime_ms if isinstance(hc, HandoverControl) and hc.lifetime_ms else DEFAULT_LIFETIME_MS
        h = NarHandover(ev.src, msg.identifier, msg.ncoa, pcoa or IPv6Address(0), NarState.VERIFYING,
                        lifetime_ms=lifetime, mn_eui64=msg.mn_mac,
                        buffer=hc.buffer if isinstance(hc, HandoverControl) else True)
        if len(self.nar) >= self.max_records:
            # No room to keep one more record: answer without keeping one (a retransmitted HI is answered
            # afresh), counted.
            self._count("records_full")
            self._nar_refuse(h, HandoverStatus.INSUFFICIENT_RESOURCES)
            return
        self.nar[key] = h
        self._nar_track(h)
        self._note("state", role="nar", identifier=h.identifier, ncoa=addr_text(h.ncoa), old="idle", new="verifying")
        returning = self.par.get(msg.ncoa)
        if returning is not None and returning.state != ParState.HRD_SENT and \
                IPv6Address(returning.trigger.nar_address) == ev.src:
            # The MN we handed over to this PAR is coming back to its old address: end that handover first.
            self._count("mn_returned")
            self._out.append(TunnelRemove(msg.ncoa))
            self._par_end(returning)
            if self.sessions.get(msg.ncoa) is returning.session:
                del self.sessions[msg.ncoa]
        prev = self._nar_by_ncoa.get(msg.ncoa)
        if (prev is not None and not prev.initial and prev.state in (NarState.VERIFYING, NarState.PROXYING)
                and prev.peer == ev.src and msg.mn_mac is not None and prev.mn_eui64 == msg.mn_mac):
            # The same PAR hands the same MN over to us again: it gave the first handover up (the MN reversed
            # to its link, or went quiet), which the draft has no message to tell us.  End the first one --
            # its proxy and what it buffered (delivering that after the PAR's newer direct deliveries would
            # reorder) -- instead of refusing the new one as "NCoA in use" for the rest of its lifetime.
            self._nar_unproxy(prev, "nar_superseded", "superseded")
        old = self.sessions.get(msg.ncoa)
        if old is not None and msg.mn_mac is not None and old.eui64 == msg.mn_mac:
            # A→B→A after the first handover ended here: the session the MN had on this link is stale (it is
            # authenticating afresh with this HI's AP-REQ), not another node's claim on the address.
            self._count("mn_returned")
            del self.sessions[msg.ncoa]
        if self._live_nar() > self.max_handovers or self._sessions_full(msg.ncoa):
            self._nar_refuse(h, HandoverStatus.INSUFFICIENT_RESOURCES)
        elif (msg.ncoa in self.sessions or self._ncoa_pending(msg.ncoa, h) or msg.ncoa in self.par
              or self.is_address_in_use(msg.ncoa, msg.mn_mac)):
            self._nar_refuse(h, HandoverStatus.NCOA_IN_USE)
        elif pcoa is None:
            self._nar_refuse(h, HandoverStatus.UNSPECIFIED)
        elif msg.lkb is None:
            self._count("no_ap_req")
            self._nar_refuse(h, HandoverStatus.AUTHENTICATION_FAILED)
        elif not self._nar_take_key(h):
            self._count("refused_no_buffer_key")
            self._nar_refuse(h, HandoverStatus.INSUFFICIENT_RESOURCES)
        else:
            self._nar_verify(h, msg.lkb)

    def _nar_take_key(self, h: NarHandover) -> bool:
        key = self.buffer_keys.acquire()
        if key is None:
            return False
        h.key = key
        return True

    def _ncoa_pending(self, ncoa: IPv6Address, h: NarHandover) -> bool:
        other = self._nar_by_ncoa.get(ncoa)
        return other is not None and other is not h and other.state in (NarState.VERIFYING, NarState.PROXYING)

    def _nar_verify(self, h: NarHandover, ap_req: bytes) -> None:
        h.request_id = self._next_request
        self._next_request += 1
        self._verifying[h.request_id] = h
        self._nar_by_ncoa[h.ncoa] = h
        self._arm(h, self._now + h.lifetime_ms * 1_000_000)
        if not h.initial:
            # Proxy and buffer from now on, while the AP-REQ is verified (draft §3: packets destined to the
            # MN may be buffered before it authenticates; the PAR is already tunnelling them here).  The key
            # (taken by _on_hi) belongs to the driver from this action on.
            self._out.append(ProxyAdd(h.ncoa, h.key, h.lifetime_ms, h.pcoa, h.buffer))
        binding = HandoverBinding(addr_text(h.ncoa), addr_text(h.pcoa), addr_text(self.address), h.identifier)
        self._out.append(Verify(h.request_id, ap_req, binding))

    def _nar_refuse(self, h: NarHandover, status: HandoverStatus) -> None:
        self._count(f"refused_{status.name.lower()}")
        he = HandoverError(h.ncoa, (Status(status), Identifier(h.identifier)))
        send = Send(encode(he, self.address, h.peer, codepoints=self.codepoints), self.address, h.peer,
                    ROUTER_HOP_LIMIT, True, None)
        self._nar_unindex(h)
        self._nar_state(h, NarState.REFUSED)
        h.answer = send
        self._arm(h, self._now + self.answer_cache_ms * 1_000_000)
        self._send(send, "HandoverError", h.identifier)
        self._note("fail", role="nar", identifier=h.identifier, ncoa=addr_text(h.ncoa), reason=_status_name(status))

    def _nar_unindex(self, h: NarHandover) -> None:
        if self._nar_by_ncoa.get(h.ncoa) is h:
            del self._nar_by_ncoa[h.ncoa]
        if self._verifying.get(h.request_id) is h:
            del self._verifying[h.request_id]

    def _nar_forget(self, h: NarHandover) -> None:
        self._nar_unindex(h)
        if self.nar.get((h.peer, h.identifier)) is h:
            del self.nar[(h.peer, h.identifier)]
        self._nar_track(h)
        if self._owns_keys and h.key >= 0:
            self.buffer_keys.release(h.key)  # no driver owns it: the machine's own pool
            h.key = -1

    def _nar_duplicate_hi(self, h: NarHandover, msg: FmipMessage) -> None:
        self._drop("duplicate_hi", identifier=h.identifier, state=h.state.value)
        if h.answer is not None and not h.initial:
            self._send(h.answer, "HandoverError", h.identifier, again=True)

    def _on_verified(self, ev: Verified) -> None:
        h = self._verifying.get(ev.request_id)
        if h is None:
            self._drop("stale_verified", request_id=ev.request_id)
            return
        self._nar_dispatch(h, Kind.VERIFIED, ev)

    def _nar_verified(self, h: NarHandover, ev: Verified) -> None:
        del self._verifying[h.request_id]
        if ev.context is None:
            self._count("auth_failed")
            if h.initial:
                # Nothing is answered to a refused initial Attach, so nothing is kept: an unauthenticated
                # sender leaves no state behind (its retransmissions are verified afresh, rate-limited).
                self._count("initial_refused")
                self._nar_state(h, NarState.REFUSED)
                self._note("fail", role="attach", identifier=h.identifier, address=addr_text(h.ncoa), reason=ev.error)
                self._nar_forget(h)
            else:
                self._out.append(ProxyRemove(h.ncoa))  # what was buffered during verification goes too
                self._out.append(BufferDrop(h.key))
                self._nar_refuse(h, HandoverStatus.AUTHENTICATION_FAILED)
            return
        h.context = ev.context
        if h.initial:
            self._nar_complete(h, h.bu)
            return
        self._count("hi_admitted")
        he = HandoverError(h.ncoa, (Status(STATUS_ACCEPTED), Identifier(h.identifier)))
        send = Send(encode(he, self.address, h.peer, codepoints=self.codepoints), self.address, h.peer,
                    ROUTER_HOP_LIMIT, True, None)
        h.answer = send
        self._nar_state(h, NarState.PROXYING)
        self._arm(h, self._now + h.lifetime_ms * 1_000_000)
        self._send(send, "HandoverError", h.identifier)
        if h.early_attach is not None:
            early, h.early_attach = h.early_attach, None
            self._nar_dispatch(h, Kind.ATTACH, *early)

    def _nar_verify_timeout(self, h: NarHandover) -> None:
        self._count("verify_timeout")
        if not h.initial:
            self._out.append(ProxyRemove(h.ncoa))
            self._out.append(BufferDrop(h.key))
        self._note("fail", role="attach" if h.initial else "nar", identifier=h.identifier, ncoa=addr_text(h.ncoa),
                   reason="verification did not finish within the lifetime")
        self._nar_forget(h)

    def _nar_proxy_expired(self, h: NarHandover) -> None:
        # docs/design.md §1 step 7: no Attach within the lifetime -> proxy entry and buffer freed, counted.
        self._nar_unproxy(h, "proxy_expired", "expired")

    def _nar_unproxy(self, h: NarHandover, counter: str, new: str) -> None:
        """End a record whose MN never attached: its proxy entries and buffer go, the record is forgotten."""
        self._count(counter)
        self._out.append(ProxyRemove(h.ncoa))
        self._out.append(BufferDrop(h.key))
        self._note("state", role="nar", identifier=h.identifier, ncoa=addr_text(h.ncoa), old=h.state.value, new=new)
        self._nar_forget(h)

    def _on_attach(self, msg: FmipMessage, ev: Received) -> None:
        h = self._nar_by_ncoa.get(ev.src)
        if h is None or (h.identifier != msg.identifier and h.state in (NarState.ATTACHED, NarState.REFUSED)):
            h = self.nar.get((ev.src, msg.identifier or 0))
        if h is not None:
            self._nar_dispatch(h, Kind.ATTACH, msg, ev)
            return
        ap_req = msg.lkb
        if ap_req is None:
            self._drop("unknown_mn", message=msg.NAME, src=addr_text(ev.src))
            return
        # Initial attach (docs/design.md §1): the AP-REQ is bound to (address, address, router, identifier).
        assert msg.identifier is not None
        lla = msg.find(LinkLayerAddress)
        enc = msg.find(EncapsulatedPacket)
        h = NarHandover(ev.src, msg.identifier, ev.src, ev.src, NarState.VERIFYING, initial=True,
                        mn_eui64=lla.eui64 if isinstance(lla, LinkLayerAddress) else None,
                        bu=enc.packet if isinstance(enc, EncapsulatedPacket) else None, reply_src=ev.dst,
                        lifetime_ms=self.answer_cache_ms)
        if sum(1 for x in self._verifying.values() if x.initial) >= self.max_handovers:
            self._drop("refused_insufficient_resources", message=msg.NAME, src=addr_text(ev.src))
            return
        if len(self.nar) >= self.max_records:
            self._drop("records_full", message=msg.NAME, src=addr_text(ev.src))
            return
        if not self._attach_admitted(ev.src):
            self._drop("attach_rate_limited", message=msg.NAME, src=addr_text(ev.src))
            return
        if self._sessions_full(ev.src):
            self._note("drop", role="attach", reason="sessions full", src=addr_text(ev.src))
            return
        old = self.sessions.get(ev.src)
        if old is not None and old.eui64 != h.mn_eui64:
            # A fresh initial attach for an address in session is the same MN renewing its session (a new ticket,
            # a new key); from another link-layer address it is a claim on someone else's address.
            self._drop("attach_address_in_use", src=addr_text(ev.src))
            return
        self.nar[(ev.src, msg.identifier)] = h
        self._note("state", role="attach", identifier=h.identifier, ncoa=addr_text(h.ncoa), old="idle", new="verifying")
        self._nar_verify(h, ap_req)

    def _attach_admitted(self, src: IPv6Address) -> bool:
        """Token buckets in front of an initial Attach's verification (the cryptography): per source address
        (``attach_rate``/``attach_burst``, the least recently seen of at most ``max_records`` sources forgotten
        first) and for all sources (``attach_global_rate``)."""
        now = self._now
        tokens, at = self._attach_global
        tokens = min(max(self.attach_burst, self.attach_global_rate / 10),
                     tokens + max(0, now - at) / 1e9 * self.attach_global_rate)
        if tokens < 1:
            self._attach_global = (tokens, now)
            return False
        mine, mine_at = self._attach_buckets.pop(src, (self.attach_burst, now))
        mine = min(self.attach_burst, mine + max(0, now - mine_at) / 1e9 * self.attach_rate)
        self._attach_buckets[src] = (mine - 1 if mine >= 1 else mine, now)  # most recent last
        while len(self._attach_buckets) > self.max_records:
            del self._attach_buckets[next(iter(self._attach_buckets))]
        if mine < 1:
            self._attach_global = (tokens, now)
            return False
        self._attach_global = (tokens - 1, now)
        return True

    def _nar_attach_early(self, h: NarHandover, msg: FmipMessage, ev: Received) -> None:
        if h.initial:
            self._drop("duplicate_attach", identifier=msg.identifier)
            return
        # The MN arrived while the AP-REQ is still being verified (a KDC round trip, cases 2/3): its MAC can
        # only be checked with the session key, so hold the newest Attach (one, bounded) and process it as
        # soon as the verification succeeds, instead of waiting for the MN's retransmission.
        self._count("attach_before_verified")
        self._note("drop" if h.early_attach is not None else "state", role="nar", identifier=h.identifier,
                   held="attach")
        h.early_attach = (msg, ev)

    def _nar_attach(self, h: NarHandover, msg: FmipMessage, ev: Received) -> None:
        assert h.context is not None
        if not mac_ok(ev.icmp, h.context.mac_key, ev.src, ev.dst, self.codepoints, msg):
            self._drop("bad_mac", message=msg.NAME, src=addr_text(ev.src))
            return
        if msg.identifier != h.identifier:
            self._drop("unknown_identifier", message=msg.NAME, identifier=msg.identifier)
            return
        lla = msg.find(LinkLayerAddress)
        h.mn_eui64 = lla.eui64 if isinstance(lla, LinkLayerAddress) else h.mn_eui64
        try:
            mac = mac48_from_eui64(h.mn_eui64) if h.mn_eui64 is not None else None
        except DerivationError:
            mac = None
        if mac is None:
            self._drop("no_link_layer_address", identifier=h.identifier)
            return
        h.reply_src = ev.dst
        self._out.append(ProxyComplete(h.ncoa, mac))
        enc = msg.find(EncapsulatedPacket)
        self._nar_complete(h, enc.packet if isinstance(enc, EncapsulatedPacket) else None)

    def _nar_complete(self, h: NarHandover, bu: bytes | None) -> None:
        """The MN is authenticated: forward its BU, send Authenticated-MN, remember the session."""
        assert h.context is not None
        if bu is not None:
            self._out.append(ForwardPacket(bu))
        src = h.reply_src or self.address
        amn = AuthenticatedMN((LkbMessage(h.context.ap_rep().encode()), Identifier(h.identifier), MessageAuthCode()))
        send = Send(sign(amn, h.context.mac_key, src, h.ncoa, self.codepoints), src, h.ncoa, ND_HOP_LIMIT, False,
                    self.iface)
        h.answer = send
        part = getattr(h.context, "ticket_part", None)
        endtime = part.endtime if part is not None else getattr(h.context, "endtime", None)  # gss: no ticket part
        expires = None if endtime is None else endtime * 1_000_000_000 - self.epoch_ns
        self.sessions[h.ncoa] = Session(h.ncoa, h.context.mac_key, h.mn_eui64, expires)
        if expires is not None:
            heapq.heappush(self._session_expiry, (expires, h.ncoa))
        self._count("initial_attached" if h.initial else "attached")
        self._nar_state(h, NarState.ATTACHED)
        self._arm(h, self._now + self.answer_cache_ms * 1_000_000)
        self._send(send, "AuthenticatedMN", h.identifier)

    def _nar_duplicate_attach(self, h: NarHandover, msg: FmipMessage, ev: Received) -> None:
        if h.state == NarState.ATTACHED and not h.initial:
            assert h.context is not None
            if not mac_ok(ev.icmp, h.context.mac_key, ev.src, ev.dst, self.codepoints, msg):
                self._drop("bad_mac", message=msg.NAME, src=addr_text(ev.src))
                return
        self._drop("duplicate_attach", identifier=h.identifier, state=h.state.value)
        if h.state == NarState.ATTACHED and h.answer is not None and msg.identifier == h.identifier:
            self._send(h.answer, "AuthenticatedMN", h.identifier, again=True)


def _status_name(status: int) -> str:
    try:
        return HandoverStatus(status).name.lower()
    except ValueError:
        return f"status {status}"


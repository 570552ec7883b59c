"""The NAR role of an access router, and the initial attach (docs/design.md §1 steps 4-7; draft §3, §6, §7).

One :class:`~fmipfast.ar.records.NarHandover` per (PAR, identifier) -- or per (MN address, identifier) for an
initial attach -- states :class:`~fmipfast.ar.records.NarState`: HI -> checks -> ``Verify`` -> ``ProxyAdd`` +
HE accepted, or HE with a reason; Attach -> ``ProxyComplete``, ``ForwardPacket`` (the BU), Authenticated-MN;
lifetime without Attach -> ``ProxyRemove`` + ``BufferDrop``.  The (state, event kind) pairs are
:data:`NAR_TRANSITIONS`.

Ownership: a mixin of :class:`~fmipfast.ar.AccessRouter`; its driver thread only.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv6Address

from fmipfast.ar.base import RouterBase, status_name
from fmipfast.ar.records import NarHandover, NarState, ParState
from fmipfast.ar.sessions import Session
from fmipfast.constants import ND_HOP_LIMIT, AddressKind, HandoverStatus
from fmipfast.errors import DerivationError
from fmipfast.messages import (
    AuthenticatedMN,
    EncapsulatedPacket,
    FmipMessage,
    HandoverControl,
    HandoverError,
    IcmpHandover,
    Identifier,
    LinkLayerAddress,
    LkbMessage,
    MessageAuthCode,
    Status,
    encode,
)
from fmipfast.protocol import (
    DEFAULT_LIFETIME_MS,
    ROUTER_HOP_LIMIT,
    STATUS_ACCEPTED,
    BufferDrop,
    ForwardPacket,
    Kind,
    ProxyAdd,
    ProxyComplete,
    ProxyRemove,
    Received,
    Send,
    TunnelRemove,
    Verified,
    Verify,
    addr_text,
    attach_fields,
    mac48_from_eui64,
    mac_ok,
    mac_ok_at,
    sign,
)
from fmipfast.security.lwkerb import HandoverBinding
from fmipfast.security.mac import MacKey

__all__ = ["NarRole", "NAR_TRANSITIONS", "ATTACH_RELEASE_LOOKS"]

#: Looks of :meth:`NarRole.attach_release` per handover that go as far as the MAC check.
ATTACH_RELEASE_LOOKS = 4


class NarRole(RouterBase):
    """The NAR's transitions and the initial attach (a mixin: the state is :class:`RouterBase`'s)."""

    def _nar_state(self, h: NarHandover, state: NarState) -> None:
        self._note("state", role="attach" if h.initial else "nar", identifier=h.identifier, ncoa=addr_text(h.ncoa),
                   old=h.state.value, new=state.value)
        h.state = state
        self._nar_track(h)

    def _nar_dispatch(self, h: NarHandover, kind: Kind, *args: object) -> None:
        handler = NAR_TRANSITIONS.get((h.state, kind))
        if handler is None:
            self._drop("unexpected", role_state=h.state.value, kind=kind.value)
            return
        handler(self, h, *args)

    @property
    def handovers_waiting(self) -> bool:
        """True while a handover here waits for its HI's verification or for the MN's Attach."""
        return bool(self._live)

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

    def _received_hi(self, msg: FmipMessage, ev: Received) -> None:
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
                self.sessions.remove(msg.ncoa)
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
            self.sessions.remove(msg.ncoa)
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
            # (taken by _received_hi) belongs to the driver from this action on.
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
        self._note("fail", role="nar", identifier=h.identifier, ncoa=addr_text(h.ncoa), reason=status_name(status))

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

    def _on_nar_forget(self, h: NarHandover) -> None:
        # ATTACHED or REFUSED: the record only answered duplicates, for answer_cache_ms (the session stays)
        self._nar_forget(h)

    def _on_nar_duplicate_hi(self, h: NarHandover, msg: FmipMessage) -> None:
        self._drop("duplicate_hi", identifier=h.identifier, state=h.state.value)
        if h.answer is not None and not h.initial:
            self._send(h.answer, "HandoverError", h.identifier, again=True)

    def _verified(self, ev: Verified) -> None:
        h = self._verifying.get(ev.request_id)
        if h is None:
            self._drop("stale_verified", request_id=ev.request_id)
            return
        self._nar_dispatch(h, Kind.VERIFIED, ev)

    def _on_nar_verified(self, h: NarHandover, ev: Verified) -> None:
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
            if self._sessions_full(h.ncoa):
                # Other MNs took the table's last places during the verification: answered as a refused
                # initial Attach is (nothing; the MN tries again), and nothing is kept.
                self._nar_state(h, NarState.REFUSED)
                self._note("fail", role="attach", identifier=h.identifier, address=addr_text(h.ncoa),
                           reason="sessions full")
                self._nar_forget(h)
                return
            self._nar_complete(h, h.bu)
            return
        self._count("hi_admitted")
        # the Attach's first MAC check comes cold (the look before the pass): its key is prepared now
        key = getattr(h.context, "mac_key", None)
        h.release_key = MacKey(key) if isinstance(key, bytes) else None
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

    def _on_nar_verify_timeout(self, h: NarHandover) -> None:
        self._count("verify_timeout")
        if not h.initial:
            self._out.append(ProxyRemove(h.ncoa))
            self._out.append(BufferDrop(h.key))
        self._note("fail", role="attach" if h.initial else "nar", identifier=h.identifier, ncoa=addr_text(h.ncoa),
                   reason="verification did not finish within the lifetime")
        self._nar_forget(h)

    def _on_nar_proxy_expired(self, h: NarHandover) -> None:
        # docs/design.md §1 step 7: no Attach within the lifetime -> proxy entry and buffer freed, counted.
        self._nar_unproxy(h, "proxy_expired", "expired")

    def _nar_unproxy(self, h: NarHandover, counter: str, new: str) -> None:
        """End a record whose MN never attached: its proxy entries and buffer go, the record is forgotten."""
        self._count(counter)
        self._out.append(ProxyRemove(h.ncoa))
        self._out.append(BufferDrop(h.key))
        self._note("state", role="nar", identifier=h.identifier, ncoa=addr_text(h.ncoa), old=h.state.value, new=new)
        self._nar_forget(h)

    def _received_attach(self, msg: FmipMessage, ev: Received) -> None:
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

    def _on_nar_attach_early(self, h: NarHandover, msg: FmipMessage, ev: Received) -> None:
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

    def attach_release(self, ev: Received) -> ProxyComplete | None:
        """A look at a frame from an MN's link before the driver's whole pass over it: if ``ev`` is the Attach
        that completes a handover waiting here (PROXYING) -- framed as one, its MAC good under the MN's session
        key, its identifier the handover's, a link-layer address known, a session place free -- the
        ``ProxyComplete`` that :meth:`handle` of the same event will return, so the driver can release the MN's
        buffered packets before anything else; otherwise None.

        The look authenticates before it parses: it reads only the framing (:func:`attach_fields`), checks the
        MAC over the octets as they came, and believes the identifier and the link-layer address only then;
        the decoding and every other check are :meth:`handle`'s, which remains the one that decides and counts.
        A message the MN's key signed is what the MN built, so an Attach this look takes is one ``handle``
        takes, unless the MN itself built a malformed one: its packets then leave, to the MN that proved its
        key, and the record waits for a good Attach or its lifetime.  The look counts nothing, notes nothing
        and changes no state but one bound: only the first ``ATTACH_RELEASE_LOOKS`` looks at a handover run the
        MAC check, so frames forged from a waiting NCoA cost at most that much twice."""
        h = self._nar_by_ncoa.get(ev.src)
        if h is None or h.state != NarState.PROXYING or h.initial or h.release_looks >= ATTACH_RELEASE_LOOKS:
            return None
        framed = attach_fields(ev, self.codepoints)
        if framed is None:
            return None
        identifier, eui64, mac_at = framed
        h.release_looks += 1
        assert h.context is not None
        key = h.release_key if h.release_key is not None else h.context.mac_key
        found = self._attach_completes(h, mac_ok_at(ev.icmp, key, ev.src, ev.dst, mac_at), identifier, eui64)
        return ProxyComplete(h.ncoa, found[0]) if isinstance(found, tuple) else None

    def _attach_completes(self, h: NarHandover, mac_good: bool, identifier: int | None,
                          eui64: bytes | None) -> tuple[bytes, bytes] | str:
        """The checks an Attach passes to complete the handover ``h`` (PROXYING), given whether its MAC verified,
        its identifier and its link-layer address sub-option's EUI-64: the MN's MAC address and EUI-64, or the
        reason it does not."""
        if not mac_good:
            return "bad_mac"
        if identifier != h.identifier:
            return "unknown_identifier"
        eui64 = eui64 if eui64 is not None else h.mn_eui64
        try:
            mac = mac48_from_eui64(eui64) if eui64 is not None else None
        except DerivationError:
            mac = None
        if mac is None or eui64 is None:
            return "no_link_layer_address"
        if not self.sessions.has_room(h.ncoa):
            return "sessions_full"
        return mac, eui64

    def _on_nar_attach(self, h: NarHandover, msg: FmipMessage, ev: Received) -> None:
        assert h.context is not None
        lla = msg.find(LinkLayerAddress)
        found = self._attach_completes(h, mac_ok(ev.icmp, h.context.mac_key, ev.src, ev.dst, self.codepoints, msg),
                                       msg.identifier, lla.eui64 if isinstance(lla, LinkLayerAddress) else None)
        if found == "bad_mac":
            self._drop("bad_mac", message=msg.NAME, src=addr_text(ev.src))
            return
        if found == "unknown_identifier":
            self._drop("unknown_identifier", message=msg.NAME, identifier=msg.identifier)
            return
        if found == "no_link_layer_address":
            self._drop("no_link_layer_address", identifier=h.identifier)
            return
        if not isinstance(found, tuple):
            self._count("refused_sessions_full")
            # Other MNs took the table's last places since this HI was admitted: the Attach waits (the MN
            # retransmits it) until one frees, within the proxy's lifetime.
            self._note("drop", role="nar", reason="sessions full", identifier=h.identifier)
            return
        mac, h.mn_eui64 = found
        h.reply_src = ev.dst
        self._out.append(ProxyComplete(h.ncoa, mac))
        enc = msg.find(EncapsulatedPacket)
        bu = enc.packet if isinstance(enc, EncapsulatedPacket) else None
        # the flush first: the MN's packets do not wait for the Authenticated-MN to be built (handle_phases)
        self._later.append(lambda: self._nar_complete(h, bu))

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
        self.sessions.put(Session(h.ncoa, h.context.mac_key, h.mn_eui64, expires))  # room checked by the callers
        self._count("initial_attached" if h.initial else "attached")
        self._nar_state(h, NarState.ATTACHED)
        self._arm(h, self._now + self.answer_cache_ms * 1_000_000)
        self._send(send, "AuthenticatedMN", h.identifier)

    def _on_nar_duplicate_attach(self, h: NarHandover, msg: FmipMessage, ev: Received) -> None:
        if h.state == NarState.ATTACHED and not h.initial:
            assert h.context is not None
            if not mac_ok(ev.icmp, h.context.mac_key, ev.src, ev.dst, self.codepoints, msg):
                self._drop("bad_mac", message=msg.NAME, src=addr_text(ev.src))
                return
        self._drop("duplicate_attach", identifier=h.identifier, state=h.state.value)
        if h.state == NarState.ATTACHED and h.answer is not None and msg.identifier == h.identifier:
            self._send(h.answer, "AuthenticatedMN", h.identifier, again=True)


#: NAR role (and initial attach): (state, event kind) -> handler, a function of :class:`NarRole` called as
#: ``handler(router, record, *event)``.  docs/protocol.md §2 prints it.
NAR_TRANSITIONS: dict[tuple[NarState, Kind], Callable[..., None]] = {
    (NarState.VERIFYING, Kind.HI): NarRole._on_nar_duplicate_hi,
    (NarState.VERIFYING, Kind.VERIFIED): NarRole._on_nar_verified,
    (NarState.VERIFYING, Kind.ATTACH): NarRole._on_nar_attach_early,
    (NarState.VERIFYING, Kind.LIFETIME): NarRole._on_nar_verify_timeout,
    (NarState.PROXYING, Kind.HI): NarRole._on_nar_duplicate_hi,
    (NarState.PROXYING, Kind.ATTACH): NarRole._on_nar_attach,
    (NarState.PROXYING, Kind.LIFETIME): NarRole._on_nar_proxy_expired,
    (NarState.ATTACHED, Kind.HI): NarRole._on_nar_duplicate_hi,
    (NarState.ATTACHED, Kind.ATTACH): NarRole._on_nar_duplicate_attach,
    (NarState.ATTACHED, Kind.LIFETIME): NarRole._on_nar_forget,
    (NarState.REFUSED, Kind.HI): NarRole._on_nar_duplicate_hi,
    (NarState.REFUSED, Kind.ATTACH): NarRole._on_nar_duplicate_attach,
    (NarState.REFUSED, Kind.LIFETIME): NarRole._on_nar_forget,
}

"""The PAR role of an access router (docs/design.md §1 steps 1-5, 7; draft §2-§6, App. A).

One :class:`~fmipfast.ar.records.ParHandover` per MN handed away, states
:class:`~fmipfast.ar.records.ParState`: ``Trigger`` -> HRD (retransmitted) -> HRA -> HI under AH
(retransmitted) + ``TunnelAdd`` -> HE accepted -> forwarding until the lifetime ends (``TunnelRemove``); HE
refused, Forwarding Disable or HI exhaustion -> ``TunnelRemove``.  The (state, event kind) pairs are
:data:`PAR_TRANSITIONS`.

Ownership: a mixin of :class:`~fmipfast.ar.AccessRouter`; its driver thread only.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv6Address

from fmipfast.ar.base import RouterBase, status_name
from fmipfast.ar.records import ParHandover, ParState
from fmipfast.constants import ND_HOP_LIMIT, AddressKind, HandoverStatus
from fmipfast.messages import (
    AddressOption,
    FmipMessage,
    HandoverControl,
    HandoverError,
    HandoverRedirect,
    HandoverRedirectAck,
    IcmpHandover,
    Identifier,
    LkbMessage,
    MessageAuthCode,
    encode,
)
from fmipfast.messages import Principal as PrincipalOption
from fmipfast.protocol import (
    ROUTER_HOP_LIMIT,
    STATUS_ACCEPTED,
    Kind,
    ProbeNeighbor,
    Reachability,
    Received,
    Send,
    Trigger,
    TunnelAdd,
    TunnelRemove,
    addr_text,
    eui64_from_mac48,
    mac_ok,
    ncoa_from_prefix,
    sign,
)

__all__ = ["ParRole", "PAR_TRANSITIONS"]


class ParRole(RouterBase):
    """The PAR's transitions (a mixin: the state is :class:`RouterBase`'s)."""

    def _par_state(self, h: ParHandover, state: ParState) -> None:
        self._note("state", role="par", identifier=h.identifier, pcoa=addr_text(h.trigger.pcoa), old=h.state.value,
                   new=state.value)
        h.state = state

    def _par_dispatch(self, h: ParHandover, kind: Kind, *args: object) -> None:
        handler = PAR_TRANSITIONS.get((h.state, kind))
        if handler is None:
            self._drop("unexpected", role_state=h.state.value, kind=kind.value)
            return
        handler(self, h, *args)

    def _alloc_identifier(self) -> int:
        used = {h.identifier for h in self.par.values()}
        for _ in range(0x10000):
            ident = self._next_identifier
            self._next_identifier = (self._next_identifier + 1) & 0xFFFF
            if ident not in used:
                return ident
        raise RuntimeError("no free handover identifier")  # pragma: no cover - 65536 live handovers

    def _trigger(self, t: Trigger) -> None:
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

    def _on_par_hra(self, h: ParHandover, msg: HandoverRedirectAck) -> None:
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

    def _on_par_duplicate(self, h: ParHandover, msg: FmipMessage) -> None:
        self._drop("duplicate", message=msg.NAME, identifier=h.identifier)

    def _on_par_timeout(self, h: ParHandover) -> None:
        assert h.pending is not None
        if h.tries >= self.backoff.max_tries:
            self._count("handovers_failed")
            what = "HandoverRedirect" if h.state == ParState.HRD_SENT else "IcmpHandover"
            self._note("fail", role="par", identifier=h.identifier, pcoa=addr_text(h.trigger.pcoa),
                       reason=f"no answer to {what} after {h.tries} tries")
            if h.state == ParState.HI_SENT:
                self._out.append(TunnelRemove(IPv6Address(h.trigger.pcoa)))
            self._par_end(h)
            self._par_given_up(h)
            return
        h.tries += 1
        self._arm(h, self._now + self.backoff.wait_ns(h.tries))
        name = "HandoverRedirect" if h.state == ParState.HRD_SENT else "IcmpHandover"
        self._send(h.pending, name, h.identifier, again=True)

    def _received_he(self, msg: FmipMessage, ev: Received) -> None:
        assert isinstance(msg, HandoverError)
        for h in self.par.values():
            if (h.identifier == msg.identifier and IPv6Address(h.trigger.nar_address) == ev.src
                    and (h.ncoa is None or h.ncoa == msg.ncoa)):
                self._par_dispatch(h, Kind.HE, msg)
                return
        self._drop("unknown_identifier", message=msg.NAME, identifier=msg.identifier, src=addr_text(ev.src))

    def _on_par_he(self, h: ParHandover, msg: HandoverError) -> None:
        status = msg.status if msg.status is not None else HandoverStatus.UNSPECIFIED
        h.pending = None
        if status == STATUS_ACCEPTED:
            self._count("handovers_forwarding")
            self._par_state(h, ParState.FORWARDING)
            self._arm(h, self._now + h.trigger.lifetime_ms * 1_000_000)
            return
        self._count("handovers_refused")
        self._note("fail", role="par", identifier=h.identifier, pcoa=addr_text(h.trigger.pcoa),
                   reason=status_name(status))
        self._out.append(TunnelRemove(IPv6Address(h.trigger.pcoa)))  # docs/design.md §1 step 5: normal delivery
        self._par_end(h)
        self._par_given_up(h)

    def _par_given_up(self, h: ParHandover) -> None:
        """After a handover that did not complete (refused, or unanswered): the MN may have moved on and
        attached elsewhere (its fallback), or may still be here.  Nothing in the draft tells the PAR, so it
        asks the link: Neighbor Unreachability Detection of the PCoA (RFC 4861 §7.3) -- an MN that does not
        answer is gone and its session (its key, a place of max_sessions) is released, one that answers keeps
        it (:meth:`_reachability`)."""
        pcoa = IPv6Address(h.trigger.pcoa)
        if self.sessions.get(pcoa) is not h.session:
            return  # the session ended with the handover (its ticket) or was renewed
        if pcoa not in self._probing and len(self._probing) >= self.sessions.capacity:
            # a driver that never answers cannot grow this: keep the probes of sessions still current
            self._probing = {a: x for a, x in self._probing.items() if self.sessions.get(a) is x}
        self._probing[pcoa] = h.session
        self._count("probes_started")
        self._note("probe", role="par", identifier=h.identifier, pcoa=addr_text(pcoa))
        self._out.append(ProbeNeighbor(pcoa))

    def _reachability(self, ev: Reachability) -> None:
        """The answer to a ProbeNeighbor: release the session of an MN that is not on the link any more.
        Only the probe's own session, unchanged, with no handover of it running, is released; an MN that
        answered (or could not be probed) keeps it."""
        address = IPv6Address(ev.address)
        s = self._probing.pop(address, None)
        if s is None:
            self._count("unexpected")
            return
        if self.sessions.get(address) is not s or address in self.par:
            return  # renewed by a new attach, ended, or handed over again meanwhile: not this probe's to end
        if ev.reachable is None:
            self._count("probes_not_run")
            return
        if ev.reachable:
            self._count("sessions_kept_reachable")
            self._note("session_kept", role="par", address=addr_text(address), reason="reachable")
            return
        self.sessions.remove(address)
        self._count("sessions_released_unreachable")
        self._note("session_released", role="par", address=addr_text(address), reason="unreachable")

    def _on_par_he_late(self, h: ParHandover, msg: HandoverError) -> None:
        status = msg.status if msg.status is not None else HandoverStatus.UNSPECIFIED
        if status == STATUS_ACCEPTED:
            self._drop("duplicate", message=msg.NAME, identifier=h.identifier)
            return
        self._on_par_he(h, msg)

    def _on_par_fd(self, h: ParHandover, msg: FmipMessage) -> None:
        # draft App. A: the MN is back on our link; stop forwarding, deliver locally again.
        self._count("forwarding_disabled")
        if h.state != ParState.HRD_SENT:
            self._out.append(TunnelRemove(IPv6Address(h.trigger.pcoa)))
        self._par_end(h)

    def _on_par_lifetime(self, h: ParHandover) -> None:
        # The handover's lifetime is over: the MN's BU has long reached its HA; stop forwarding and forget the
        # MN's session here (it is no longer on our link).
        pcoa = IPv6Address(h.trigger.pcoa)
        self._count("forwarding_expired")
        self._out.append(TunnelRemove(pcoa))
        self._par_end(h)
        if self.sessions.get(pcoa) is h.session:
            self.sessions.remove(pcoa)


#: PAR role: (state, event kind) -> handler, a function of :class:`ParRole` called as ``handler(router, record,
#: *event)``.  docs/protocol.md §2 prints it.
PAR_TRANSITIONS: dict[tuple[ParState, Kind], Callable[..., None]] = {
    (ParState.HRD_SENT, Kind.HRA): ParRole._on_par_hra,
    (ParState.HRD_SENT, Kind.TIMEOUT): ParRole._on_par_timeout,
    (ParState.HRD_SENT, Kind.FD): ParRole._on_par_fd,
    (ParState.HI_SENT, Kind.HRA): ParRole._on_par_duplicate,
    (ParState.HI_SENT, Kind.HE): ParRole._on_par_he,
    (ParState.HI_SENT, Kind.TIMEOUT): ParRole._on_par_timeout,
    (ParState.HI_SENT, Kind.FD): ParRole._on_par_fd,
    (ParState.FORWARDING, Kind.HRA): ParRole._on_par_duplicate,
    (ParState.FORWARDING, Kind.HE): ParRole._on_par_he_late,
    (ParState.FORWARDING, Kind.FD): ParRole._on_par_fd,
    (ParState.FORWARDING, Kind.LIFETIME): ParRole._on_par_lifetime,
}

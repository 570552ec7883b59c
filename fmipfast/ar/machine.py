"""The access router's protocol machine, both roles of one router put together (docs/design.md §1): the
events a driver feeds (:meth:`AccessRouter.handle`) go to the PAR role (:mod:`fmipfast.ar.par`) or the NAR
role (:mod:`fmipfast.ar.nar`).

Ownership: one driver thread calls ``handle``; the object is not thread-safe and never blocks.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from ipaddress import IPv6Address

from fmipfast.ar.nar import NarRole
from fmipfast.ar.par import ParRole
from fmipfast.ar.records import NarHandover, ParHandover, ParState
from fmipfast.ar.sessions import Session
from fmipfast.protocol import (
    Action,
    Event,
    Kind,
    Reachability,
    Received,
    Tick,
    Trigger,
    Verified,
    addr_text,
    parse_received,
)

__all__ = ["AccessRouter"]

_RECEIVED_KIND = {
    "handover_redirect_ack": Kind.HRA,
    "handover": Kind.HI,
    "handover_error": Kind.HE,
    "attach": Kind.ATTACH,
    "forwarding_disable": Kind.FD,
}


class AccessRouter(ParRole, NarRole):
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
        HI, an initial Attach dropped; both counted ``refused_sessions_full``).  The table holds the bound
        itself (:class:`~fmipfast.ar.sessions.SessionTable`): an MN whose HI or initial Attach was admitted
        while there was room, and which finds the table filled when it would become a session, waits (its
        Attach is dropped, counted, until a place frees) or, initial, is forgotten unanswered.  A session
        ends with its handover away from here, or when the ticket it came from expires (``session_expired``).
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

    def handle(self, event: Event, now_ns: int) -> list[Action]:
        """Process one event at ``now_ns``; return the actions, in order."""
        return [a for phase in self.handle_phases(event, now_ns) for a in phase]

    def handle_phases(self, event: Event, now_ns: int) -> Iterator[list[Action]]:
        """:meth:`handle` in phases: the same actions in the same order, cut where the machine has work left
        that none of the actions before the cut waits for.  The next phase is computed only when the caller
        asks for it, so a driver executes the first phase first: after an Attach, the ``ProxyComplete`` that
        releases the MN's buffered packets is executed before the Authenticated-MN (an AP-REP and a MAC) is
        built.  The machine's state is final only once the last phase is taken; a caller takes them all."""
        self._now = now_ns
        self._out, self._later = [], []
        self._dispatch_event(event)
        out, later = self._out, self._later
        self._out, self._later = [], []
        yield out
        while later:
            # a nested handle() (an action executed by the caller may feed the machine) resets these
            self._now = now_ns
            self._out, self._later = [], []
            later.pop(0)()
            out, more = self._out, self._later
            self._out, self._later = [], []
            later[:0] = more
            yield out

    def _dispatch_event(self, event: Event) -> None:
        self._expire_sessions()  # a key is never used past its ticket, whether or not a Tick came in time
        if isinstance(event, Received):
            self._received(event)
        elif isinstance(event, Tick):
            self._tick()
        elif isinstance(event, Trigger):
            self._trigger(event)
        elif isinstance(event, Verified):
            self._verified(event)
        elif isinstance(event, Reachability):
            self._reachability(event)
        else:
            self._count("unexpected")

    def next_deadline(self) -> int | None:
        """The earliest time (ns) at which a ``Tick`` has work to do, or None."""
        times = []
        dl = self._deadlines
        while dl and not self._armed(dl[0]):
            heapq.heappop(dl)  # that record moved its deadline or is gone
        if dl:
            times.append(dl[0][0])
        ends = self.sessions.next_expiry()
        if ends is not None:
            times.append(ends)
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
                    or not self.sessions.has_room(s.address):
                continue
            self.sessions.put(s)
            taken += 1
        return taken

    def _tick(self) -> None:
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

    def _received(self, ev: Received) -> None:
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
            self._received_he(msg, ev)
        elif kind == Kind.HI:
            self._received_hi(msg, ev)
        else:
            self._received_attach(msg, ev)

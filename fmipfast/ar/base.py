"""What the PAR and NAR roles of an access router share: the state of one router, the counters and notes,
the deadline heap and the session table's expiry (docs/design.md §1).

:class:`RouterBase` holds it; :class:`~fmipfast.ar.par.ParRole` and :class:`~fmipfast.ar.nar.NarRole` add
the roles' transitions and :class:`~fmipfast.ar.AccessRouter` puts both together.  Ending a PAR handover is
here too: the NAR role ends one when the MN it handed away comes back.

Ownership: one driver thread calls the machine; nothing here is thread-safe or blocks.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from ipaddress import IPv6Address

from fmipfast.ar.records import NarHandover, ParHandover
from fmipfast.ar.sessions import Session, SessionTable
from fmipfast.constants import DEFAULT_CODEPOINTS, Codepoints, HandoverStatus
from fmipfast.keys import KeyPool
from fmipfast.protocol import DEFAULT_BACKOFF, Action, Backoff, Note, Send, addr_text, nar_link_local

__all__ = ["RouterBase", "AR_COUNTERS"]

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
    "probes_started", "sessions_kept_reachable", "sessions_released_unreachable", "probes_not_run",
)


class RouterBase:
    """The state of one access router and the plumbing both roles use (see :class:`~fmipfast.ar.AccessRouter`
    for the parameters)."""

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
        self.epoch_ns = epoch_ns
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
        self.sessions = SessionTable(max_sessions)  # holds its own bound (and the heap of the tickets' ends)
        self.par: dict[IPv6Address, ParHandover] = {}  # by PCoA
        # PAR, after a given-up handover: the sessions whose MN is being looked for on the link (ProbeNeighbor),
        # by address; at most one per session
        self._probing: dict[IPv6Address, Session] = {}
        self.nar: dict[tuple[IPv6Address, int], NarHandover] = {}  # by (peer, identifier)
        self._nar_by_ncoa: dict[IPv6Address, NarHandover] = {}
        self._verifying: dict[int, NarHandover] = {}
        self._next_identifier = first_identifier & 0xFFFF
        self._next_request = 1
        self._live: dict[int, NarHandover] = {}  # id -> NAR handovers in VERIFYING or PROXYING
        self._now = 0
        self._out: list[Action] = []
        # work of this event that no action before it waits for (the Authenticated-MN's build after an Attach's
        # ProxyComplete): run by ``handle_phases`` once the caller has the actions produced so far
        self._later: list[Callable[[], None]] = []

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

    @property
    def max_sessions(self) -> int:
        return self.sessions.capacity

    def _sessions_full(self, address: IPv6Address) -> bool:
        """True, counted, when the session table has no room for ``address``."""
        if self.sessions.has_room(address):
            return False
        self._count("refused_sessions_full")
        return True

    def _expire_sessions(self) -> None:
        for s in self.sessions.due(self._now):
            if not any(h.session is s for h in self.par.values()):  # a live PAR handover ends it itself
                self.sessions.remove(s.address)
                self._count("session_expired")
                self._note("session_expired", role="ar", address=addr_text(s.address))

    def _par_end(self, h: ParHandover, new: str = "idle") -> None:
        self._note("state", role="par", identifier=h.identifier, pcoa=addr_text(h.trigger.pcoa), old=h.state.value,
                   new=new)
        self._arm(h, None)
        self.par.pop(IPv6Address(h.trigger.pcoa), None)
        s = h.session
        if s.expires_ns is not None and s.expires_ns <= self._now and self.sessions.get(s.address) is s:
            # its ticket ended while this handover ran (_expire_sessions leaves a session a live handover uses):
            # the key is not used past the ticket, whatever ended the handover
            self.sessions.remove(s.address)
            self._count("session_expired")
            self._note("session_expired", role="ar", address=addr_text(s.address))


def status_name(status: int) -> str:
    """A Handover Error status for notes: its name in lower case, or ``status N`` for one not in the enum."""
    try:
        return HandoverStatus(status).name.lower()
    except ValueError:
        return f"status {status}"

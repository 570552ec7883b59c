"""The router's AP-REQ verifier (RFC 4120 §3.2.3; docs/security.md §5 and §6).

:class:`ApVerifier` meets the draft's three key cases (draft §3, docs/design.md §4): case 1 with its own keytab,
cases 2 and 3 through a :class:`TicketOpener` (the KDC client of :mod:`fmipfast.security.kdc`).  A verified
AP-REQ is an :class:`ApContext` (the session key, the keys derived from it, the AP-REP); every outcome bumps one
of :data:`VERIFIER_COUNTERS`.

Ownership/threading: an :class:`ApVerifier` and its :class:`ReplayCache` belong to one asyncio loop (the
engine's); they are mutated without locks.
"""

from __future__ import annotations

import hmac as _hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from fmipfast.security.lwkerb.constants import _US, DEFAULT_SKEW, LABEL_CONF, LABEL_MAC, Usage
from fmipfast.security.lwkerb.errors import (
    AuthenticatorIntegrity,
    BindingMismatch,
    ClientMismatch,
    ClockSkew,
    LkbError,
    NoKey,
    TicketExpired,
    TicketNotYetValid,
)
from fmipfast.security.lwkerb.keys import Key, Keytab, access_principal, derive_key, seal, unseal
from fmipfast.security.lwkerb.pdus import ApRep, ApReq, EncApRepPart
from fmipfast.security.lwkerb.replay import ReplayCache
from fmipfast.security.lwkerb.ticket import Authenticator, EncTicketPart, HandoverBinding, Ticket
from fmipfast.security.lwkerb.wire import Principal


class TicketOpener(Protocol):
    """What the verifier needs from its KDC for cases 2 and 3 (:class:`fmipfast.security.kdc.KdcClient`)."""

    def open_ticket(self, ticket: Ticket) -> Awaitable[EncTicketPart]: ...


@dataclass(frozen=True, slots=True)
class ApContext:
    """A verified AP-REQ: who, the ticket's contents, the session key, and how it was verified (case 1-3)."""

    client: Principal
    server: Principal
    ticket_part: EncTicketPart
    authenticator: Authenticator
    session_key: Key = field(repr=False)
    case: int
    #: The sub-option 7 key (HKDF label ``fmipfast mac``), derived once: a handover's messages use it several
    #: times on the NAR's Attach path.
    mac_key: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mac_key", derive_key(self.session_key, LABEL_MAC))

    @property
    def conf_key(self) -> bytes:
        return derive_key(self.session_key, LABEL_CONF)

    def ap_rep(self, *, seal_nonce: bytes | None = None) -> ApRep:
        """The AP-REP (mutual authentication) for this AP-REQ (``seal_nonce``: see :func:`seal`)."""
        part = EncApRepPart(self.authenticator.ctime_us, self.authenticator.nonce)
        return ApRep(seal(self.session_key, Usage.AP_REP, b"", part.encode(), nonce=seal_nonce))


VERIFIER_COUNTERS = ("ok", "case1", "case2", "case3", "malformed", "mechanism_mismatch", "no_key", "bad_kvno",
                     "bad_ticket", "bad_authenticator", "client_mismatch", "binding_mismatch", "skew", "expired",
                     "not_yet_valid", "replay", "replay_cache_full", "unknown_realm", "kdc_error",
                     "kdc_unreachable", "bad_reply")


class ApVerifier:
    """A router's AP-REQ verifier: the draft's three key cases (docs/design.md §4).

    * case 1 — the ticket's server principal is in ``keytab`` (the router's own key or a region key):
      verified locally, :meth:`verify_local` (synchronous, zero round trips);
    * case 2 — the ticket is sealed under ``access/R@R`` of this realm: ``opener`` (the KDC client) asks the
      local KDC to open it (one round trip);
    * case 3 — sealed under another realm's ``access/H@H``: the same request; the local KDC forwards it along
      the realm graph to the home KDC.

    :meth:`verify` (async) handles all three.  Every outcome bumps one counter in :attr:`counters` (the
    :class:`LkbError` ``code``, or ``ok`` plus ``caseN``).
    """

    def __init__(self, realm: str, keytab: Keytab, *, opener: TicketOpener | None = None,
                 clock: Callable[[], float] = time.time, skew: float = DEFAULT_SKEW,
                 replay_cache: ReplayCache | None = None, replay_capacity: int = 65536) -> None:
        self.realm = realm
        self.keytab = keytab
        self.opener = opener
        self.clock = clock
        self.skew = float(skew)
        self.replay = replay_cache if replay_cache is not None else ReplayCache(replay_capacity, skew)
        self.counters: dict[str, int] = dict.fromkeys(VERIFIER_COUNTERS, 0)

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    @staticmethod
    def _decode(ap_req: bytes | ApReq) -> ApReq:
        return ap_req if isinstance(ap_req, ApReq) else ApReq.decode(ap_req)

    def case_of(self, ticket: Ticket) -> int:
        """1 if the key is local, 2 or 3 if a KDC must open it; :class:`NoKey` otherwise."""
        if ticket.server in self.keytab:
            return 1
        if ticket.server == access_principal(ticket.server.realm):
            return 2 if ticket.server.realm == self.realm else 3
        raise NoKey(f"no key for {ticket.server} and it is not a KDC access ticket")

    def verify_local(self, ap_req: bytes | ApReq, binding: bytes | HandoverBinding) -> ApContext:
        """Case 1 only, synchronously (the engine's fast path)."""
        try:
            req = self._decode(ap_req)
            if self.case_of(req.ticket) != 1:
                raise NoKey(f"{req.ticket.server}: needs the KDC (case 2/3); use verify()")
            key = self.keytab.get(req.ticket.server, req.ticket.kvno)
            part = req.ticket.open(key)
            ctx = self._finish(req, part, binding, 1)
        except LkbError as exc:
            self._count(exc.code)
            raise
        self._count("ok")
        self._count("case1")
        return ctx

    async def verify(self, ap_req: bytes | ApReq, binding: bytes | HandoverBinding) -> ApContext:
        """All three cases; awaits the KDC only for cases 2 and 3."""
        try:
            req = self._decode(ap_req)
            case = self.case_of(req.ticket)
            if case == 1:
                part = req.ticket.open(self.keytab.get(req.ticket.server, req.ticket.kvno))
            else:
                if self.opener is None:
                    raise NoKey(f"{req.ticket.server}: case {case} needs a KDC and this verifier has none")
                part = await self.opener.open_ticket(req.ticket)
            ctx = self._finish(req, part, binding, case)
        except LkbError as exc:
            self._count(exc.code)
            raise
        self._count("ok")
        self._count(f"case{case}")
        return ctx

    def _finish(self, req: ApReq, part: EncTicketPart, binding: bytes | HandoverBinding, case: int,
                usage: Usage = Usage.AP_AUTHENTICATOR) -> ApContext:
        """RFC 4120 §3.2.3 checks after the ticket opened, in order: authenticator integrity, client match,
        binding, skew, ticket times, replay cache (last, so rejected requests never fill it)."""
        skey = Key(0, part.session_key)
        auth = Authenticator.decode(unseal(skey, usage, b"", req.authenticator, AuthenticatorIntegrity,
                                           "authenticator"))
        if auth.client != part.client:
            raise ClientMismatch(f"authenticator names {auth.client}, ticket {part.client}")
        want = binding.encode() if isinstance(binding, HandoverBinding) else bytes(binding)
        if not _hmac.compare_digest(auth.binding, want):
            raise BindingMismatch("authenticator is bound to another handover or request")
        now = self.clock()
        now_us = int(round(now * _US))
        skew_us = int(round(self.skew * _US))
        if abs(now_us - auth.ctime_us) > skew_us:
            raise ClockSkew(f"authenticator ctime is {(auth.ctime_us - now_us) / _US:+.6f} s from now "
                            f"(window ±{self.skew:g} s)")
        if part.starttime > now + self.skew:
            raise TicketNotYetValid(f"ticket starts at {part.starttime}, now {now:.0f}")
        if now > part.endtime + self.skew:
            raise TicketExpired(f"ticket ended at {part.endtime}, now {now:.0f}")
        self.replay.check_and_add((req.ticket.server, auth.client, auth.ctime_us, auth.nonce), auth.ctime_us,
                                  now_us)
        return ApContext(auth.client, req.ticket.server, part, auth, skey, case)

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

The package: :mod:`~fmipfast.ar.sessions` (the session table), :mod:`~fmipfast.ar.records` (the records and
their states), :mod:`~fmipfast.ar.base` (what both roles share), :mod:`~fmipfast.ar.par` and
:mod:`~fmipfast.ar.nar` (the roles and their tables), :mod:`~fmipfast.ar.machine` (:class:`AccessRouter`).
This module is the façade: import from ``fmipfast.ar``.

Ownership: one driver thread calls ``handle``; the object is not thread-safe and never blocks.
"""

from __future__ import annotations

from fmipfast.ar.base import AR_COUNTERS
from fmipfast.ar.machine import AccessRouter
from fmipfast.ar.nar import NAR_TRANSITIONS
from fmipfast.ar.par import PAR_TRANSITIONS
from fmipfast.ar.records import NarHandover, NarState, ParHandover, ParState
from fmipfast.ar.sessions import Session, SessionTable

__all__ = ["AccessRouter", "ParState", "NarState", "ParHandover", "NarHandover", "Session", "SessionTable",
           "PAR_TRANSITIONS", "NAR_TRANSITIONS", "AR_COUNTERS"]

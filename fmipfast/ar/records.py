"""The records of the access router's two roles: one :class:`ParHandover` per MN handed away (states
:class:`ParState`), one :class:`NarHandover` per handover or initial attach received (states :class:`NarState`)
-- docs/design.md §1, docs/protocol.md §2.

Plain data: the :class:`~fmipfast.ar.AccessRouter` that holds them is their only writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from ipaddress import IPv6Address

from fmipfast.ar.sessions import Session
from fmipfast.messages import FmipMessage
from fmipfast.protocol import DEFAULT_LIFETIME_MS, Received, Send, Trigger
from fmipfast.security.lwkerb import ApContext
from fmipfast.security.mac import MacKey

__all__ = ["ParState", "NarState", "ParHandover", "NarHandover"]


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
    release_looks: int = 0  # AccessRouter.attach_release looks that ran the MAC check (bounded per record)
    release_key: MacKey | None = None  # the MN's MAC key prepared for that check, once verified

"""Light-weight Kerberos (LKB): the draft's §3 security extensions, our reconstruction of draft-trostle-lwkerb.

Kerberos semantics (RFC 4120: AS, TGS and AP exchanges, tickets, authenticators, cross-realm TGTs) in fixed
binary layouts without ASN.1; AES-256-GCM sealing; purpose-separated keys from the session key with
HKDF-SHA256; authorization attributes as TLVs in the ticket; authenticators bound to the handover (NCoA,
PCoA, NAR address, identifier); a bounded replay cache that fails closed (RFC 4120 §3.2.3).  Every PDU
layout, with offsets and sizes, is in ``docs/security.md``.

This package holds the PDUs, the keys, the client side (building AS-REQ/TGS-REQ/AP-REQ, reading the
replies) and the verifier a router runs on an AP-REQ (:class:`ApVerifier`, the draft's three key cases),
one module per part, each importing only the ones listed before it:

* :mod:`.constants` -- version, sizes, labels; message types, key usages, ticket flags, error codes;
* :mod:`.errors` -- :class:`LkbError` and its subclasses;
* :mod:`.wire` -- the bounds-checked reader and the building blocks :class:`Principal` and :class:`Sealed`;
* :mod:`.keys` -- :class:`Key`, :class:`Keytab`, HKDF, sealing, the ``krbtgt`` and ``access`` principals;
* :mod:`.ticket` -- the ticket, the handover binding and the authenticator;
* :mod:`.pdus` -- the AP, AS/TGS, KRB-ERROR and OPEN messages and :func:`decode_pdu`;
* :mod:`.client` -- :class:`Credentials`, the request builders and the reply readers;
* :mod:`.replay` -- the replay cache;
* :mod:`.verifier` -- :class:`ApVerifier` and the key cases.

This module re-exports their public names, so ``from fmipfast.security.lwkerb import X`` is the import to use.
The KDC itself, and the UDP client the verifier uses for cases 2 and 3, are in :mod:`fmipfast.security.kdc`.

Conventions (all documented with their edges in docs/security.md):

* ticket times are unsigned 32-bit POSIX seconds; authenticator ``ctime`` is unsigned 64-bit microseconds;
* a ticket is *not yet valid* iff ``starttime > now + skew`` and *expired* iff ``now > endtime + skew``
  (RFC 4120 §3.2.3 "by more than the allowable clock skew"), so both exact edges are accepted;
* an authenticator is outside the window iff ``|now - ctime| > skew``; ``|now - ctime| == skew`` is accepted;
* a replay-cache entry lives while ``now <= ctime + skew`` (exactly as long as the authenticator could
  still pass the skew check); a full cache after purging expired entries rejects (fails closed).

Exception contract (hostile octets are the normal case): every decoder (``decode_pdu`` and each PDU class's
``decode``, the sealed plaintexts' included) raises, for any octets, only :class:`LkbMalformed` (or
:class:`LkbTruncated`, :class:`LkbUnsupportedType`) — a ``MalformedPacket`` naming field and offset — never
``IndexError``, ``struct.error``, ``UnicodeDecodeError`` or a constructor's ``ValueError``; a PDU it accepts
re-encodes to exactly the octets decoded.  The readers (:meth:`ApVerifier.verify_local`/``verify``,
:func:`read_kdc_rep`, :func:`check_ap_rep`, ``Ticket.open``, ``OpenReq.ctime_us``, ``OpenRep.open``) raise
only :class:`LkbError` subclasses.  Building a PDU from out-of-range values is a ``ValueError``.

Ownership/threading: an :class:`ApVerifier` and its :class:`ReplayCache` belong to one asyncio loop (the
engine's); they are mutated without locks.

Imports only ``fmipfast.errors``, the standard library and ``cryptography`` (docs/conventions.md §9).
"""

from __future__ import annotations

from fmipfast.security.lwkerb.client import (
    Credentials,
    build_ap_req,
    build_as_req,
    build_tgs_req,
    check_ap_rep,
    error_from_krb,
    read_kdc_rep,
)
from fmipfast.security.lwkerb.constants import (
    ACCESS_SERVICE,
    AUTHZ_TRANSITED,
    DEFAULT_SKEW,
    KEY_LEN,
    LABEL_CONF,
    LABEL_MAC,
    LKB_VERSION,
    NONCE_LEN,
    ErrorCode,
    MsgType,
    TicketFlag,
    Usage,
)

# Not in __all__, but importable from here before the split: an explicit re-export keeps it so.
from fmipfast.security.lwkerb.constants import TAG_LEN as TAG_LEN
from fmipfast.security.lwkerb.errors import (
    AuthenticatorIntegrity,
    BindingMismatch,
    ClientMismatch,
    ClockSkew,
    KdcError,
    KdcUnreachable,
    LkbError,
    LkbMalformed,
    LkbTruncated,
    LkbUnsupportedType,
    NoKey,
    ReplayCacheFull,
    ReplayDetected,
    ReplyIntegrity,
    TicketExpired,
    TicketIntegrity,
    TicketNotYetValid,
    UnknownRealm,
    WrongKeyVersion,
)
from fmipfast.security.lwkerb.keys import Key, Keytab, access_principal, derive_key, krbtgt, seal, unseal
from fmipfast.security.lwkerb.pdus import (
    PDU_CLASSES,
    ApRep,
    ApReq,
    AsReq,
    EncApRepPart,
    EncKdcRepPart,
    KdcRep,
    KrbError,
    OpenRep,
    OpenReq,
    TgsReq,
    decode_pdu,
)
from fmipfast.security.lwkerb.replay import ReplayCache
from fmipfast.security.lwkerb.ticket import (
    BINDING_NONE,
    BINDING_REQUEST,
    Authenticator,
    EncTicketPart,
    HandoverBinding,
    Ticket,
    ap_req_binding_for_request,
)
from fmipfast.security.lwkerb.verifier import VERIFIER_COUNTERS, ApContext, ApVerifier, TicketOpener
from fmipfast.security.lwkerb.wire import Principal, Sealed

__all__ = [
    "ACCESS_SERVICE",
    "AUTHZ_TRANSITED",
    "BINDING_NONE",
    "BINDING_REQUEST",
    "DEFAULT_SKEW",
    "KEY_LEN",
    "LABEL_CONF",
    "LABEL_MAC",
    "LKB_VERSION",
    "NONCE_LEN",
    "ApContext",
    "ApRep",
    "ApReq",
    "ApVerifier",
    "AsReq",
    "Authenticator",
    "AuthenticatorIntegrity",
    "BindingMismatch",
    "ClientMismatch",
    "ClockSkew",
    "Credentials",
    "EncApRepPart",
    "EncKdcRepPart",
    "EncTicketPart",
    "ErrorCode",
    "HandoverBinding",
    "Key",
    "Keytab",
    "KdcError",
    "KdcRep",
    "KdcUnreachable",
    "KrbError",
    "LkbError",
    "LkbMalformed",
    "LkbTruncated",
    "LkbUnsupportedType",
    "MsgType",
    "NoKey",
    "OpenRep",
    "OpenReq",
    "PDU_CLASSES",
    "Principal",
    "ReplayCache",
    "ReplayCacheFull",
    "ReplayDetected",
    "ReplyIntegrity",
    "Sealed",
    "TgsReq",
    "Ticket",
    "TicketExpired",
    "TicketFlag",
    "TicketIntegrity",
    "TicketNotYetValid",
    "TicketOpener",
    "UnknownRealm",
    "Usage",
    "VERIFIER_COUNTERS",
    "WrongKeyVersion",
    "access_principal",
    "ap_req_binding_for_request",
    "build_ap_req",
    "build_as_req",
    "build_tgs_req",
    "check_ap_rep",
    "decode_pdu",
    "derive_key",
    "error_from_krb",
    "krbtgt",
    "read_kdc_rep",
    "seal",
    "unseal",
]

"""Light-weight Kerberos errors: :class:`LkbError` and one subclass per way a PDU, a ticket, an authenticator,
a reply or the KDC can fail (docs/security.md §5).

Each class's ``code`` names the verifier counter it moves (``VERIFIER_COUNTERS`` in :mod:`.verifier`); most
stand for an RFC 4120 §7.5.9 error (KRB_AP_ERR_SKEW, KRB_AP_ERR_REPEAT, ...).  The decoders' family,
:class:`LkbMalformed`, :class:`LkbTruncated` and :class:`LkbUnsupportedType`, is also a ``MalformedPacket``
naming field and offset (docs/conventions.md §8).
"""

from __future__ import annotations

from fmipfast.errors import MalformedPacket, SecurityError, Truncated, UnsupportedType


class LkbError(SecurityError):
    """A light-weight Kerberos failure.  ``code`` names the verifier counter it moves."""

    code = "error"


class LkbMalformed(LkbError, MalformedPacket):
    """A PDU is not well formed (bad type/version, bad lengths, trailing octets, bad UTF-8)."""

    code = "malformed"


class LkbTruncated(LkbMalformed, Truncated):
    """A PDU ends before a field that must be there."""

    code = "malformed"


class NoKey(LkbError):
    """No key for the ticket's server principal here (and it is not a KDC access ticket)."""

    code = "no_key"


class WrongKeyVersion(LkbError):
    """The principal is known but not with the key version the PDU names (RFC 4120 KRB_AP_ERR_BADKEYVER)."""

    code = "bad_kvno"


class TicketIntegrity(LkbError):
    """The ticket does not open under its server key: forged, tampered or wrong key (KRB_AP_ERR_BAD_INTEGRITY)."""

    code = "bad_ticket"


class AuthenticatorIntegrity(LkbError):
    """The authenticator does not open under the ticket's session key (KRB_AP_ERR_BAD_INTEGRITY)."""

    code = "bad_authenticator"


class ReplyIntegrity(LkbError):
    """A KDC reply, AP-REP or OPEN-REP does not open under the expected key, or does not match the request."""

    code = "bad_reply"


class ClientMismatch(LkbError):
    """Authenticator and ticket name different clients (KRB_AP_ERR_BADMATCH)."""

    code = "client_mismatch"


class BindingMismatch(LkbError):
    """The authenticator is bound to another handover (NCoA, PCoA, NAR or identifier) or request body."""

    code = "binding_mismatch"


class ClockSkew(LkbError):
    """The authenticator's ctime is more than the allowed skew from now (KRB_AP_ERR_SKEW)."""

    code = "skew"


class TicketExpired(LkbError):
    """now > endtime + skew (KRB_AP_ERR_TKT_EXPIRED)."""

    code = "expired"


class TicketNotYetValid(LkbError):
    """starttime > now + skew (KRB_AP_ERR_TKT_NYV)."""

    code = "not_yet_valid"


class ReplayDetected(LkbError):
    """The authenticator was already seen within the skew window (KRB_AP_ERR_REPEAT)."""

    code = "replay"


class ReplayCacheFull(LkbError):
    """The replay cache is full of live entries; the request is rejected (fails closed, RFC 4120 §3.2.3)."""

    code = "replay_cache_full"


class UnknownRealm(LkbError):
    """No route (realm graph) or no KDC to the realm a ticket or request needs."""

    code = "unknown_realm"


class KdcError(LkbError):
    """The KDC answered with a KRB-ERROR; ``error_code`` holds its :class:`ErrorCode` value."""

    code = "kdc_error"

    def __init__(self, message: str, error_code: int = 0) -> None:
        super().__init__(message)
        self.error_code = error_code


class KdcUnreachable(LkbError):
    """No answer from the KDC after every retry."""

    code = "kdc_unreachable"


class LkbUnsupportedType(LkbMalformed, UnsupportedType):
    """The first octet is not an LKB message type."""

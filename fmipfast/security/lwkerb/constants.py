"""Light-weight Kerberos vocabulary: the protocol version, the sizes, the skew, the principal and HKDF labels,
and the enums every PDU carries -- message types, AEAD key usages, ticket flags and KRB-ERROR codes.

Numbers are RFC 4120's where it has one: the message types are its application tags (RFC 4120 §5.10), the key
usages its §7.5.1 numbers, the error codes its §7.5.9 values (200 and up are LKB's own).  The layouts that carry
them are in docs/security.md §3.  Plain values: this module imports nothing from fmipfast.
"""

from __future__ import annotations

import enum

LKB_VERSION = 1
KEY_LEN = 32  # AES-256-GCM keys and session keys
NONCE_LEN = 12  # GCM nonce
TAG_LEN = 16
DEFAULT_SKEW = 300.0  # seconds, RFC 4120 §1.5.2 default
ACCESS_SERVICE = "access"  # access/R@R: the key only the KDC of realm R holds (cases 2 and 3)
AUTHZ_TRANSITED = 1  # authorization TLV: one realm the ticket's issuing path crossed (in order)
LABEL_MAC = b"fmipfast mac"  # HKDF info: sub-option 7 MAC key
LABEL_CONF = b"fmipfast conf"  # HKDF info: confidentiality key (reserved for payload protection)

_US = 1_000_000


class MsgType(enum.IntEnum):
    """First octet of every LKB PDU (RFC 4120 application tags where one exists)."""

    AS_REQ = 10
    AS_REP = 11
    TGS_REQ = 12
    TGS_REP = 13
    AP_REQ = 14
    AP_REP = 15
    ERROR = 30
    OPEN_REQ = 40  # router (case 2) or peer KDC (case 3) -> KDC: open this access ticket
    OPEN_REP = 41


class Usage(enum.IntEnum):
    """AEAD key usage: the first octet of every associated data (RFC 4120 §7.5.1 numbers where one exists)."""

    PA_ENC_TIMESTAMP = 1
    TICKET = 2
    AS_REP = 3
    TGS_AUTHENTICATOR = 7
    TGS_REP = 8
    AP_AUTHENTICATOR = 11
    AP_REP = 12
    OPEN_REQ = 40
    OPEN_REP = 41


class TicketFlag(enum.IntFlag):
    FORWARDABLE = 0x0001
    RENEWABLE = 0x0004
    INITIAL = 0x0008  # issued by the AS exchange
    PRE_AUTHENT = 0x0010  # the client pre-authenticated
    TRANSIT_CHECKED = 0x0020


class ErrorCode(enum.IntEnum):
    """KRB-ERROR codes (RFC 4120 §7.5.9 values; 200+ are LKB's own)."""

    C_PRINCIPAL_UNKNOWN = 6
    S_PRINCIPAL_UNKNOWN = 7
    POLICY = 12
    PREAUTH_FAILED = 24
    PREAUTH_REQUIRED = 25
    SVC_UNAVAILABLE = 29
    BAD_INTEGRITY = 31
    TKT_EXPIRED = 32
    TKT_NYV = 33
    REPEAT = 34
    BADMATCH = 36
    SKEW = 37
    MODIFIED = 41
    BADKEYVER = 44
    NOKEY = 45
    GENERIC = 60
    UNKNOWN_REALM = 200
    MALFORMED = 201

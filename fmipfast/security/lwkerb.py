"""Light-weight Kerberos (LKB): the draft's §3 security extensions, our reconstruction of draft-trostle-lwkerb.

Kerberos semantics (RFC 4120: AS, TGS and AP exchanges, tickets, authenticators, cross-realm TGTs) in fixed
binary layouts without ASN.1; AES-256-GCM sealing; purpose-separated keys from the session key with
HKDF-SHA256; authorization attributes as TLVs in the ticket; authenticators bound to the handover (NCoA,
PCoA, NAR address, identifier); a bounded replay cache that fails closed (RFC 4120 §3.2.3).  Every PDU
layout, with offsets and sizes, is in ``docs/security.md``.

This module holds the PDUs, the keys, the client side (building AS-REQ/TGS-REQ/AP-REQ, reading the
replies) and the verifier a router runs on an AP-REQ (:class:`ApVerifier`, the draft's three key cases).
The KDC itself, and the UDP client the verifier uses for cases 2 and 3, are in :mod:`.kdc`.

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

import enum
import functools
import heapq
import hmac as _hmac
import ipaddress
import os
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from fmipfast.errors import MalformedPacket, SecurityError, Truncated, UnsupportedType

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


# ============================================================================================ errors


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


# ============================================================================================ enums


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


#: KRB-ERROR code -> the exception a client raises for it (one table, docs/conventions.md §8).
_ERROR_EXC: dict[int, type[LkbError]] = {
    ErrorCode.BADKEYVER: WrongKeyVersion,
    ErrorCode.BAD_INTEGRITY: TicketIntegrity,
    ErrorCode.TKT_EXPIRED: TicketExpired,
    ErrorCode.TKT_NYV: TicketNotYetValid,
    ErrorCode.UNKNOWN_REALM: UnknownRealm,
    ErrorCode.NOKEY: NoKey,
    ErrorCode.SKEW: ClockSkew,
    ErrorCode.SVC_UNAVAILABLE: KdcUnreachable,
}


def error_from_krb(err: KrbError) -> LkbError:
    """The exception for a KRB-ERROR (the mapped class, else :class:`KdcError`); keeps ``error_code``."""
    cls = _ERROR_EXC.get(err.error_code)
    msg = f"KDC error {err.error_code} ({_code_name(err.error_code)}): {err.text}"
    exc: LkbError = cls(msg) if cls is not None else KdcError(msg, err.error_code)
    exc.error_code = err.error_code  # type: ignore[attr-defined]
    return exc


def _code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return "unknown"


# ============================================================================================ wire helpers


class _R:
    """Bounds-checked reader: every short read is an :class:`LkbTruncated` naming the field and offset."""

    __slots__ = ("b", "o", "what")

    def __init__(self, b: bytes, what: str) -> None:
        self.b, self.o, self.what = bytes(b), 0, what

    def take(self, n: int, fld: str) -> bytes:
        if self.o + n > len(self.b):
            raise LkbTruncated(f"need {n} octets, have {len(self.b) - self.o}", field=f"{self.what}.{fld}",
                               offset=self.o)
        v = self.b[self.o:self.o + n]
        self.o += n
        return v

    def u8(self, fld: str) -> int:
        return self.take(1, fld)[0]

    def u16(self, fld: str) -> int:
        return int.from_bytes(self.take(2, fld), "big")

    def u32(self, fld: str) -> int:
        return int.from_bytes(self.take(4, fld), "big")

    def u64(self, fld: str) -> int:
        return int.from_bytes(self.take(8, fld), "big")

    def blob(self, fld: str) -> bytes:
        return self.take(self.u16(fld + ".length"), fld)

    def text(self, fld: str) -> str:
        off = self.o
        raw = self.take(self.u8(fld + ".length"), fld)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise LkbMalformed("not UTF-8", field=f"{self.what}.{fld}", offset=off) from None

    def principal(self, fld: str) -> Principal:
        off = self.o
        name, realm = self.text(fld + ".name"), self.text(fld + ".realm")
        try:
            return Principal(name, realm)
        except ValueError as exc:
            raise LkbMalformed(str(exc), field=f"{self.what}.{fld}", offset=off) from None

    def sealed(self, fld: str) -> Sealed:
        nonce = self.take(NONCE_LEN, fld + ".nonce")
        ct = self.blob(fld + ".ciphertext")
        if len(ct) < TAG_LEN:
            raise LkbMalformed(f"ciphertext of {len(ct)} octets is shorter than the GCM tag",
                               field=f"{self.what}.{fld}", offset=self.o - len(ct))
        return Sealed(nonce, ct)

    def header(self, mt: MsgType) -> None:
        t, v = self.u8("type"), self.u8("version")
        if t != mt:
            raise LkbMalformed(f"type {t}, expected {int(mt)} ({mt.name})", field=f"{self.what}.type", offset=0)
        if v != LKB_VERSION:
            raise LkbMalformed(f"version {v}, expected {LKB_VERSION}", field=f"{self.what}.version", offset=1)

    def end(self) -> None:
        if self.o != len(self.b):
            raise LkbMalformed(f"{len(self.b) - self.o} trailing octets", field=self.what, offset=self.o)


def _text(s: str) -> bytes:
    b = s.encode("utf-8")
    if len(b) > 255:
        raise ValueError(f"{s[:20]!r}...: longer than 255 octets")
    return bytes([len(b)]) + b


def _blob(b: bytes) -> bytes:
    if len(b) > 0xFFFF:
        raise ValueError("blob longer than 65535 octets")
    return len(b).to_bytes(2, "big") + b


def _hdr(mt: MsgType) -> bytes:
    return bytes((mt, LKB_VERSION))


# ============================================================================================ principals, keys


@dataclass(frozen=True, slots=True)
class Principal:
    """A Kerberos principal ``name@REALM``; ``name`` may have components (``krbtgt/REALM-B``)."""

    name: str
    realm: str

    def __post_init__(self) -> None:
        for what, v in (("name", self.name), ("realm", self.realm)):
            if not isinstance(v, str) or not v:
                raise ValueError(f"principal {what} must be a non-empty string")
            if len(v.encode("utf-8")) > 255:
                raise ValueError(f"principal {what} longer than 255 octets")
        if "@" in self.realm:
            raise ValueError("realm must not contain '@'")

    @classmethod
    def parse(cls, s: str) -> Principal:
        name, sep, realm = s.rpartition("@")
        if not sep:
            raise ValueError(f"{s!r}: principal must be name@REALM")
        return cls(name, realm)

    def encode(self) -> bytes:
        return _text(self.name) + _text(self.realm)

    @classmethod
    def decode(cls, data: bytes) -> Principal:
        r = _R(data, "principal")
        p = r.principal("principal")
        r.end()
        return p

    def __str__(self) -> str:
        return f"{self.name}@{self.realm}"


def krbtgt(service_realm: str, issuing_realm: str | None = None) -> Principal:
    """``krbtgt/SERVICE@ISSUING``: the TGS of ``service_realm`` as seen from ``issuing_realm``."""
    return Principal(f"krbtgt/{service_realm}", issuing_realm or service_realm)


def access_principal(realm: str) -> Principal:
    """``access/R@R``: the key only the KDC of R holds; tickets sealed under it are opened by that KDC for
    the routers of R (case 2) or for peer KDCs (case 3)."""
    return Principal(f"{ACCESS_SERVICE}/{realm}", realm)


class Key:
    """A long-term or session key: key version number ``kvno`` (0..255) and 32 octets.  The bytes never
    appear in ``repr``/``str``."""

    __slots__ = ("kvno", "_value", "_aead")

    def __init__(self, kvno: int, value: bytes) -> None:
        if not isinstance(kvno, int) or not 0 <= kvno <= 255:
            raise ValueError(f"kvno must be 0..255, got {kvno!r}")
        if not isinstance(value, (bytes, bytearray)) or len(value) != KEY_LEN:
            raise ValueError(f"a key is {KEY_LEN} octets")
        self.kvno = kvno
        self._value = bytes(value)
        self._aead: AESGCM | None = None

    @property
    def value(self) -> bytes:
        return self._value

    @property
    def aead(self) -> AESGCM:
        if self._aead is None:
            self._aead = AESGCM(self._value)
        return self._aead

    @classmethod
    def random(cls, kvno: int = 1) -> Key:
        return cls(kvno, os.urandom(KEY_LEN))

    @classmethod
    def from_password(cls, password: str, principal: Principal, kvno: int = 1, *, n: int = 2 ** 14) -> Key:
        """Scrypt(password, salt = realm || name, n, r=8, p=1) -> 32 octets (the RFC 4120 salt convention)."""
        salt = (principal.realm + principal.name).encode("utf-8")
        kdf = Scrypt(salt=salt, length=KEY_LEN, n=n, r=8, p=1)
        return cls(kvno, kdf.derive(password.encode("utf-8")))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and self.kvno == other.kvno and _hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(("Key", self.kvno))

    def __repr__(self) -> str:
        return f"Key(kvno={self.kvno}, <hidden>)"

    __str__ = __repr__


def derive_key(session_key: bytes | Key, label: bytes, length: int = KEY_LEN) -> bytes:
    """A per-purpose key from a session key: HKDF-SHA256(ikm = session key, salt = none, info = label)."""
    ikm = session_key.value if isinstance(session_key, Key) else bytes(session_key)
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label).derive(ikm)


class Keytab:
    """Keys by principal and kvno.  ``repr`` shows principals and kvnos only."""

    def __init__(self) -> None:
        self._keys: dict[Principal, dict[int, Key]] = {}

    def add(self, principal: Principal, key: Key) -> None:
        self._keys.setdefault(principal, {})[key.kvno] = key

    def __contains__(self, principal: object) -> bool:
        return principal in self._keys

    def principals(self) -> list[Principal]:
        return list(self._keys)

    def get(self, principal: Principal, kvno: int | None = None) -> Key:
        """The key of ``principal`` with ``kvno`` (the highest when None); :class:`NoKey` /
        :class:`WrongKeyVersion` otherwise."""
        keys = self._keys.get(principal)
        if not keys:
            raise NoKey(f"no key for {principal}")
        if kvno is None:
            return keys[max(keys)]
        try:
            return keys[kvno]
        except KeyError:
            raise WrongKeyVersion(f"{principal}: no key version {kvno} (have {sorted(keys)})") from None

    def __repr__(self) -> str:
        return "Keytab(" + ", ".join(f"{p}:{sorted(k)}" for p, k in self._keys.items()) + ")"


# ============================================================================================ sealing


@dataclass(frozen=True, slots=True)
class Sealed:
    """AES-256-GCM output: 12-octet nonce, then a 2-octet length and the ciphertext (+16-octet tag)."""

    nonce: bytes
    ciphertext: bytes = field(repr=False)

    def encode(self) -> bytes:
        return self.nonce + _blob(self.ciphertext)

    @classmethod
    def decode(cls, data: bytes) -> Sealed:
        r = _R(data, "sealed")
        v = r.sealed("sealed")
        r.end()
        return v


def _gcm_nonce(nonce: bytes | None) -> bytes:
    if nonce is None:
        return os.urandom(NONCE_LEN)
    if not isinstance(nonce, (bytes, bytearray)) or len(nonce) != NONCE_LEN:
        raise ValueError(f"a GCM nonce is {NONCE_LEN} octets")
    return bytes(nonce)


def seal(key: Key, usage: Usage, aad: bytes, plaintext: bytes, *, nonce: bytes | None = None) -> Sealed:
    """AEAD-seal ``plaintext``; the associated data is ``usage`` (1 octet) || ``aad``.

    ``nonce``: the 12-octet GCM nonce, random when None (always, outside known-answer tests: a nonce used
    twice under one key gives away the plaintexts' XOR and the authentication key)."""
    n = _gcm_nonce(nonce)
    return Sealed(n, key.aead.encrypt(n, plaintext, bytes((usage,)) + aad))


def unseal(key: Key, usage: Usage, aad: bytes, sealed: Sealed, exc: type[LkbError], what: str) -> bytes:
    try:
        return key.aead.decrypt(sealed.nonce, sealed.ciphertext, bytes((usage,)) + aad)
    except (InvalidTag, ValueError):
        raise exc(f"{what} does not open (tampered, forged or wrong key)") from None


def _sha256_16(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SHA256())
    h.update(data)
    return h.finalize()[:16]


# ============================================================================================ PDUs


@dataclass(frozen=True, slots=True)
class EncTicketPart:
    """The sealed part of a ticket: flags, times (u32 seconds), session key, client, authorization TLVs."""

    flags: int
    authtime: int
    starttime: int
    endtime: int
    session_key: bytes = field(repr=False)
    client: Principal
    authz: tuple[tuple[int, bytes], ...] = ()

    def encode(self) -> bytes:
        tlv = b"".join(bytes((t, len(v))) + v for t, v in self.authz)
        return (struct.pack("!HIII", self.flags, self.authtime, self.starttime, self.endtime) + self.session_key
                + self.client.encode() + _blob(tlv))

    @classmethod
    def decode(cls, data: bytes) -> EncTicketPart:
        r = _R(data, "enc_ticket_part")
        flags, a, s, e = r.u16("flags"), r.u32("authtime"), r.u32("starttime"), r.u32("endtime")
        sk = r.take(KEY_LEN, "session_key")
        client = r.principal("client")
        tr = _R(r.blob("authz"), "authz")
        authz = []
        while tr.o < len(tr.b):
            t = tr.u8("type")
            authz.append((t, tr.take(tr.u8("length"), "value")))
        r.end()
        return cls(flags, a, s, e, sk, client, tuple(authz))

    @property
    def transited(self) -> tuple[str, ...]:
        return tuple(v.decode("utf-8", "replace") for t, v in self.authz if t == AUTHZ_TRANSITED)


@dataclass(frozen=True, slots=True)
class Ticket:
    """Clear part (version, kvno, server) is the AEAD associated data of the sealed :class:`EncTicketPart`."""

    server: Principal
    kvno: int
    enc: Sealed
    version: int = LKB_VERSION

    def clear(self) -> bytes:
        return bytes((self.version, self.kvno)) + self.server.encode()

    def encode(self) -> bytes:
        return self.clear() + self.enc.encode()

    @classmethod
    def read(cls, r: _R) -> Ticket:
        v = r.u8("ticket.version")
        if v != LKB_VERSION:
            raise LkbMalformed(f"ticket version {v}", field=f"{r.what}.ticket.version", offset=r.o - 1)
        kvno = r.u8("ticket.kvno")
        return cls(r.principal("ticket.server"), kvno, r.sealed("ticket.enc"), v)

    @classmethod
    def decode(cls, data: bytes) -> Ticket:
        r = _R(data, "ticket")
        t = cls.read(r)
        r.end()
        return t

    @classmethod
    def issue(cls, server: Principal, key: Key, part: EncTicketPart, *, seal_nonce: bytes | None = None) -> Ticket:
        """``seal_nonce``: the GCM nonce, random when None (known-answer tests only, see :func:`seal`)."""
        clear = bytes((LKB_VERSION, key.kvno)) + server.encode()
        return cls(server, key.kvno, seal(key, Usage.TICKET, clear, part.encode(), nonce=seal_nonce))

    def open(self, key: Key) -> EncTicketPart:
        if key.kvno != self.kvno:
            raise WrongKeyVersion(f"ticket for {self.server} has kvno {self.kvno}, key is {key.kvno}")
        return EncTicketPart.decode(unseal(key, Usage.TICKET, self.clear(), self.enc, TicketIntegrity, "ticket"))


@functools.lru_cache(maxsize=4096)
def _v6_packed(text: str) -> bytes:
    """The 16 octets of an IPv6 address given as text, cached (a router binds the same few addresses over and
    over, and parsing the text was a tenth of a handover's protocol cost); a bad text raises, uncached."""
    return ipaddress.IPv6Address(text).packed


@dataclass(frozen=True, slots=True)
class HandoverBinding:
    """What an AP-REQ authenticator is bound to (docs/design.md §4): the handover's NCoA, PCoA, NAR address and
    identifier.  ``encode()`` is 1 + 50 octets (kind 1)."""

    ncoa: str
    pcoa: str
    nar: str
    identifier: int
    _wire: bytes = field(init=False, repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        if not 0 <= self.identifier <= 0xFFFF:
            raise ValueError("identifier must be 0..65535")
        wire = (b"\x01" + _v6_packed(self.ncoa) + _v6_packed(self.pcoa) + _v6_packed(self.nar)
                + self.identifier.to_bytes(2, "big"))
        object.__setattr__(self, "_wire", wire)  # encoded once: verification compares it per AP-REQ

    def encode(self) -> bytes:
        return self._wire

    @classmethod
    def decode(cls, data: bytes) -> HandoverBinding:
        r = _R(data, "binding")
        if r.u8("kind") != 1:
            raise LkbMalformed("not a handover binding (kind 1)", field="binding.kind", offset=0)
        p = ipaddress.IPv6Address
        v = cls(str(p(r.take(16, "ncoa"))), str(p(r.take(16, "pcoa"))), str(p(r.take(16, "nar"))),
                r.u16("identifier"))
        r.end()
        return v


BINDING_NONE = b"\x00"
BINDING_REQUEST = 2  # kind 2: first 16 octets of SHA-256 of a TGS-REQ body (RFC 4120 req-body checksum)


def ap_req_binding_for_request(body: bytes) -> bytes:
    return bytes((BINDING_REQUEST,)) + _sha256_16(body)


_BINDING_LEN = {0: 0, 1: 50, BINDING_REQUEST: 16}


@dataclass(frozen=True, slots=True)
class Authenticator:
    """Sealed under the session key: client, ctime (u64 µs), 8-octet random nonce, binding (kind + value)."""

    client: Principal
    ctime_us: int
    nonce: bytes
    binding: bytes = BINDING_NONE

    def encode(self) -> bytes:
        return self.client.encode() + self.ctime_us.to_bytes(8, "big") + self.nonce + self.binding

    @classmethod
    def decode(cls, data: bytes) -> Authenticator:
        r = _R(data, "authenticator")
        client, ctime, nonce = r.principal("client"), r.u64("ctime"), r.take(8, "nonce")
        off = r.o
        kind = r.u8("binding.kind")
        if kind not in _BINDING_LEN:
            raise LkbMalformed(f"binding kind {kind}", field="authenticator.binding.kind", offset=off)
        value = r.take(_BINDING_LEN[kind], "binding.value")
        r.end()
        return cls(client, ctime, nonce, bytes((kind,)) + value)


@dataclass(frozen=True, slots=True)
class ApReq:
    """AP-REQ: type, version, options, the ticket (2-octet length + ticket), the sealed authenticator."""

    ticket: Ticket
    authenticator: Sealed
    options: int = 0x01  # bit 0: mutual authentication required (an AP-REP is expected)

    def encode(self) -> bytes:
        return _hdr(MsgType.AP_REQ) + bytes((self.options,)) + _blob(self.ticket.encode()) + self.authenticator.encode()

    @classmethod
    def read(cls, r: _R) -> ApReq:
        r.header(MsgType.AP_REQ)
        options = r.u8("options")
        tr = _R(r.blob("ticket"), r.what)
        t = Ticket.read(tr)
        tr.end()
        return cls(t, r.sealed("authenticator"), options)

    @classmethod
    def decode(cls, data: bytes) -> ApReq:
        r = _R(data, "ap_req")
        v = cls.read(r)
        r.end()
        return v


@dataclass(frozen=True, slots=True)
class EncApRepPart:
    ctime_us: int
    nonce: bytes

    def encode(self) -> bytes:
        return self.ctime_us.to_bytes(8, "big") + self.nonce

    @classmethod
    def decode(cls, data: bytes) -> EncApRepPart:
        r = _R(data, "enc_ap_rep_part")
        v = cls(r.u64("ctime"), r.take(8, "nonce"))
        r.end()
        return v


@dataclass(frozen=True, slots=True)
class ApRep:
    """AP-REP: type, version, sealed (under the session key) echo of the authenticator's ctime and nonce."""

    enc: Sealed

    def encode(self) -> bytes:
        return _hdr(MsgType.AP_REP) + self.enc.encode()

    @classmethod
    def decode(cls, data: bytes) -> ApRep:
        r = _R(data, "ap_rep")
        r.header(MsgType.AP_REP)
        v = cls(r.sealed("enc"))
        r.end()
        return v


@dataclass(frozen=True, slots=True)
class AsReq:
    """AS-REQ: options, client, server (usually ``krbtgt/R@R``), nonce, till (u32 s), optional
    PA-ENC-TIMESTAMP (kvno + ctime sealed under the client's key)."""

    client: Principal
    server: Principal
    nonce: int
    till: int
    options: int = 0
    pa_kvno: int = 0
    pa_enc_timestamp: Sealed | None = None

    def body(self) -> bytes:
        return bytes((self.options,)) + self.client.encode() + self.server.encode() + struct.pack(
            "!QI", self.nonce, self.till)

    def encode(self) -> bytes:
        if self.pa_enc_timestamp is None:
            pa = b"\x00"
        else:
            pa = b"\x01" + bytes((self.pa_kvno,)) + self.pa_enc_timestamp.encode()
        return _hdr(MsgType.AS_REQ) + self.body() + pa

    @classmethod
    def decode(cls, data: bytes) -> AsReq:
        r = _R(data, "as_req")
        r.header(MsgType.AS_REQ)
        options = r.u8("options")
        client, server = r.principal("client"), r.principal("server")
        nonce, till = r.u64("nonce"), r.u32("till")
        off = r.o
        has = r.u8("padata.present")
        if has not in (0, 1):
            raise LkbMalformed(f"padata flag {has}", field="as_req.padata.present", offset=off)
        kvno, pa = (r.u8("padata.kvno"), r.sealed("padata")) if has else (0, None)
        r.end()
        return cls(client, server, nonce, till, options, kvno, pa)


@dataclass(frozen=True, slots=True)
class TgsReq:
    """TGS-REQ: an AP-REQ over the TGT (its authenticator bound to the body's SHA-256), then the body:
    options, server wanted, nonce, till."""

    ap_req: ApReq
    server: Principal
    nonce: int
    till: int
    options: int = 0

    def body(self) -> bytes:
        return bytes((self.options,)) + self.server.encode() + struct.pack("!QI", self.nonce, self.till)

    def encode(self) -> bytes:
        return _hdr(MsgType.TGS_REQ) + _blob(self.ap_req.encode()) + self.body()

    @classmethod
    def decode(cls, data: bytes) -> TgsReq:
        r = _R(data, "tgs_req")
        r.header(MsgType.TGS_REQ)
        ar = _R(r.blob("ap_req"), "tgs_req.ap_req")
        ap = ApReq.read(ar)
        ar.end()
        options = r.u8("options")
        server = r.principal("server")
        v = cls(ap, server, r.u64("nonce"), r.u32("till"), options)
        r.end()
        return v


@dataclass(frozen=True, slots=True)
class EncKdcRepPart:
    """Sealed part of AS-REP (client key) and TGS-REP (TGT session key)."""

    session_key: bytes = field(repr=False)
    nonce: int
    flags: int
    authtime: int
    starttime: int
    endtime: int
    server: Principal

    def encode(self) -> bytes:
        return self.session_key + struct.pack("!QHIII", self.nonce, self.flags, self.authtime, self.starttime,
                                              self.endtime) + self.server.encode()

    @classmethod
    def decode(cls, data: bytes) -> EncKdcRepPart:
        r = _R(data, "enc_kdc_rep_part")
        sk = r.take(KEY_LEN, "session_key")
        v = cls(sk, r.u64("nonce"), r.u16("flags"), r.u32("authtime"), r.u32("starttime"), r.u32("endtime"),
                r.principal("server"))
        r.end()
        return v


@dataclass(frozen=True, slots=True)
class KdcRep:
    """AS-REP (``msg_type`` AS_REP, ``kvno`` = client key version) or TGS-REP (TGS_REP, kvno 0): client,
    ticket, sealed :class:`EncKdcRepPart`."""

    msg_type: MsgType
    client: Principal
    ticket: Ticket
    enc: Sealed
    kvno: int = 0

    def encode(self) -> bytes:
        return (_hdr(self.msg_type) + self.client.encode() + _blob(self.ticket.encode()) + bytes((self.kvno,))
                + self.enc.encode())

    @classmethod
    def decode(cls, data: bytes) -> KdcRep:
        if len(data) >= 1 and data[0] == MsgType.TGS_REP:
            mt = MsgType.TGS_REP
        else:
            mt = MsgType.AS_REP
        r = _R(data, mt.name.lower())
        r.header(mt)
        client = r.principal("client")
        tr = _R(r.blob("ticket"), r.what)
        t = Ticket.read(tr)
        tr.end()
        v = cls(mt, client, t, kvno=r.u8("kvno"), enc=r.sealed("enc"))
        r.end()
        return v


@dataclass(frozen=True, slots=True)
class KrbError:
    """KRB-ERROR: code (u16), server time (u32 s), request nonce echoed (u64, 0 if unknown), text."""

    error_code: int
    stime: int = 0
    nonce: int = 0
    text: str = ""

    def encode(self) -> bytes:
        """The text is diagnostic: cut to 255 octets *at a character boundary* (a cut inside a multi-octet
        character would make the PDU undecodable, and the client would see "malformed" instead of the
        error code), lone surrogates replaced.  Out-of-range numbers are a ``ValueError``."""
        for what, v, bits in (("error_code", self.error_code, 16), ("stime", self.stime, 32),
                              ("nonce", self.nonce, 64)):
            if not isinstance(v, int) or not 0 <= v < 1 << bits:
                raise ValueError(f"krb_error.{what}: {v!r} is not an unsigned {bits}-bit integer")
        t = str(self.text).encode("utf-8", "replace")[:255].decode("utf-8", "ignore").encode("utf-8")
        return _hdr(MsgType.ERROR) + struct.pack("!HIQ", self.error_code, self.stime, self.nonce) + bytes((len(t),)) + t

    @classmethod
    def decode(cls, data: bytes) -> KrbError:
        r = _R(data, "krb_error")
        r.header(MsgType.ERROR)
        v = cls(r.u16("code"), r.u32("stime"), r.u64("nonce"), r.text("text"))
        r.end()
        return v


@dataclass(frozen=True, slots=True)
class OpenReq:
    """OPEN-REQ (cases 2 and 3): the requester (a router of this realm, or ``krbtgt/THIS@PEER`` for a peer
    KDC), its key's kvno, a nonce, the ticket to open, and its ctime sealed under the requester's key with
    everything before it as associated data (so the ticket and nonce are authenticated too)."""

    requester: Principal
    kvno: int
    nonce: int
    ticket: Ticket
    enc: Sealed

    def clear(self) -> bytes:
        return (_hdr(MsgType.OPEN_REQ) + self.requester.encode() + bytes((self.kvno,)) + self.nonce.to_bytes(8, "big")
                + _blob(self.ticket.encode()))

    def encode(self) -> bytes:
        return self.clear() + self.enc.encode()

    @classmethod
    def decode(cls, data: bytes) -> OpenReq:
        r = _R(data, "open_req")
        r.header(MsgType.OPEN_REQ)
        req, kvno, nonce = r.principal("requester"), r.u8("kvno"), r.u64("nonce")
        tr = _R(r.blob("ticket"), r.what)
        t = Ticket.read(tr)
        tr.end()
        v = cls(req, kvno, nonce, t, r.sealed("enc"))
        r.end()
        return v

    @classmethod
    def build(cls, requester: Principal, key: Key, ticket: Ticket, nonce: int, now: float, *,
              seal_nonce: bytes | None = None) -> OpenReq:
        probe = cls(requester, key.kvno, nonce, ticket, Sealed(b"", b""))
        enc = seal(key, Usage.OPEN_REQ, probe.clear(), int(now * _US).to_bytes(8, "big"), nonce=seal_nonce)
        return cls(requester, key.kvno, nonce, ticket, enc)

    def ctime_us(self, key: Key) -> int:
        raw = unseal(key, Usage.OPEN_REQ, self.clear(), self.enc, ReplyIntegrity, "OPEN-REQ")
        if len(raw) != 8:
            raise LkbMalformed("OPEN-REQ ctime is not 8 octets", field="open_req.enc")
        return int.from_bytes(raw, "big")


@dataclass(frozen=True, slots=True)
class OpenRep:
    """OPEN-REP: the nonce, then the opened :class:`EncTicketPart` sealed under the requester's key."""

    nonce: int
    enc: Sealed

    def clear(self) -> bytes:
        return _hdr(MsgType.OPEN_REP) + self.nonce.to_bytes(8, "big")

    def encode(self) -> bytes:
        return self.clear() + self.enc.encode()

    @classmethod
    def decode(cls, data: bytes) -> OpenRep:
        r = _R(data, "open_rep")
        r.header(MsgType.OPEN_REP)
        v = cls(r.u64("nonce"), r.sealed("enc"))
        r.end()
        return v

    @classmethod
    def build(cls, key: Key, nonce: int, part: EncTicketPart, *, seal_nonce: bytes | None = None) -> OpenRep:
        clear = _hdr(MsgType.OPEN_REP) + nonce.to_bytes(8, "big")
        return cls(nonce, seal(key, Usage.OPEN_REP, clear, part.encode(), nonce=seal_nonce))

    def open(self, key: Key) -> EncTicketPart:
        return EncTicketPart.decode(unseal(key, Usage.OPEN_REP, self.clear(), self.enc, ReplyIntegrity, "OPEN-REP"))


#: Message type -> PDU class (docs/conventions.md §5).
PDU_CLASSES: dict[int, Callable[[bytes], object]] = {
    MsgType.AS_REQ: AsReq.decode,
    MsgType.AS_REP: KdcRep.decode,
    MsgType.TGS_REQ: TgsReq.decode,
    MsgType.TGS_REP: KdcRep.decode,
    MsgType.AP_REQ: ApReq.decode,
    MsgType.AP_REP: ApRep.decode,
    MsgType.ERROR: KrbError.decode,
    MsgType.OPEN_REQ: OpenReq.decode,
    MsgType.OPEN_REP: OpenRep.decode,
}


class LkbUnsupportedType(LkbMalformed, UnsupportedType):
    """The first octet is not an LKB message type."""


def decode_pdu(data: bytes) -> object:
    """Decode any LKB PDU by its first octet; raises only :class:`LkbMalformed` (and subclasses)."""
    if not data:
        raise LkbTruncated("empty PDU", field="type", offset=0)
    dec = PDU_CLASSES.get(data[0])
    if dec is None:
        raise LkbUnsupportedType(f"unknown LKB message type {data[0]}", field="type", offset=0)
    return dec(bytes(data))


# ============================================================================================ client side


@dataclass(frozen=True, slots=True)
class Credentials:
    """A ticket and what the client learnt about it from the KDC reply."""

    client: Principal
    server: Principal
    ticket: Ticket
    session_key: Key = field(repr=False)
    flags: int
    authtime: int
    starttime: int
    endtime: int


def _nonce64() -> int:
    return int.from_bytes(os.urandom(8), "big")


# The ``nonce``/``auth_nonce``/``seal_nonce`` keywords of the builders below fix what is otherwise random (the
# request nonce, the authenticator's 8-octet nonce, the GCM nonce) so known-answer tests can pin every octet
# of a PDU; leave them None everywhere else (see :func:`seal` on reusing a GCM nonce).


def _auth_nonce(nonce: bytes | None) -> bytes:
    if nonce is None:
        return os.urandom(8)
    if not isinstance(nonce, (bytes, bytearray)) or len(nonce) != 8:
        raise ValueError("an authenticator nonce is 8 octets")
    return bytes(nonce)


def build_as_req(client: Principal, server: Principal, client_key: Key | None, *, now: float,
                 lifetime: int = 36000, nonce: int | None = None, seal_nonce: bytes | None = None) -> AsReq:
    """An AS-REQ; with ``client_key`` it carries PA-ENC-TIMESTAMP (ctime in µs sealed under that key)."""
    pa = None
    kvno = 0
    if client_key is not None:
        kvno = client_key.kvno
        pa = seal(client_key, Usage.PA_ENC_TIMESTAMP, client.encode(), int(now * _US).to_bytes(8, "big"),
                  nonce=seal_nonce)
    return AsReq(client, server, _nonce64() if nonce is None else nonce, int(now) + lifetime, 0, kvno, pa)


def build_ap_req(creds: Credentials, binding: bytes | HandoverBinding = BINDING_NONE, *, now: float,
                 usage: Usage = Usage.AP_AUTHENTICATOR, mutual: bool = True, auth_nonce: bytes | None = None,
                 seal_nonce: bytes | None = None) -> tuple[ApReq, Authenticator]:
    """An AP-REQ for ``creds`` whose authenticator is bound to ``binding`` (a :class:`HandoverBinding`)."""
    b = binding.encode() if isinstance(binding, HandoverBinding) else bytes(binding)
    auth = Authenticator(creds.client, int(now * _US), _auth_nonce(auth_nonce), b)
    enc = seal(creds.session_key, usage, b"", auth.encode(), nonce=seal_nonce)
    return ApReq(creds.ticket, enc, 0x01 if mutual else 0), auth


def build_tgs_req(tgt: Credentials, server: Principal, *, now: float, lifetime: int = 36000, nonce: int | None = None,
                  auth_nonce: bytes | None = None, seal_nonce: bytes | None = None) -> TgsReq:
    """A TGS-REQ for ``server`` over the TGT ``tgt`` (authenticator bound to the request body)."""
    probe = TgsReq(ApReq(tgt.ticket, Sealed(b"", b"")), server, _nonce64() if nonce is None else nonce,
                   int(now) + lifetime)
    ap, _ = build_ap_req(tgt, ap_req_binding_for_request(probe.body()), now=now, usage=Usage.TGS_AUTHENTICATOR,
                         mutual=False, auth_nonce=auth_nonce, seal_nonce=seal_nonce)
    return TgsReq(ap, server, probe.nonce, probe.till, probe.options)


def read_kdc_rep(data: bytes, key: Key, nonce: int) -> Credentials:
    """Open an AS-REP (``key`` = client key) or TGS-REP (``key`` = TGT session key) for a request with
    ``nonce``; a KRB-ERROR raises the mapped :class:`LkbError`."""
    if data[:1] == bytes((MsgType.ERROR,)):
        raise error_from_krb(KrbError.decode(data))
    rep = KdcRep.decode(data)
    if rep.msg_type not in (MsgType.AS_REP, MsgType.TGS_REP):
        raise LkbMalformed("not a KDC reply")
    usage = Usage.AS_REP if rep.msg_type == MsgType.AS_REP else Usage.TGS_REP
    if rep.msg_type == MsgType.AS_REP and rep.kvno != key.kvno:
        raise WrongKeyVersion(f"AS-REP sealed under kvno {rep.kvno}, have {key.kvno}")
    aad = rep.client.encode()
    part = EncKdcRepPart.decode(unseal(key, usage, aad, rep.enc, ReplyIntegrity, rep.msg_type.name))
    if part.nonce != nonce:
        raise ReplyIntegrity("KDC reply nonce does not match the request")
    if part.server != rep.ticket.server:
        raise ReplyIntegrity("KDC reply names another server than its ticket")
    return Credentials(rep.client, part.server, rep.ticket, Key(0, part.session_key), part.flags, part.authtime,
                       part.starttime, part.endtime)


def check_ap_rep(data: bytes | ApRep, session_key: Key, authenticator: Authenticator) -> EncApRepPart:
    """The MN's check of an AP-REP (mutual authentication): it opens under the session key and echoes the
    authenticator's ctime and nonce."""
    rep = data if isinstance(data, ApRep) else ApRep.decode(data)
    part = EncApRepPart.decode(unseal(session_key, Usage.AP_REP, b"", rep.enc, ReplyIntegrity, "AP-REP"))
    if part.ctime_us != authenticator.ctime_us or not _hmac.compare_digest(part.nonce, authenticator.nonce):
        raise ReplyIntegrity("AP-REP does not echo this authenticator")
    return part


# ============================================================================================ replay cache


class ReplayCache:
    """Authenticators seen within the skew window (RFC 4120 §3.2.3), bounded by ``capacity``.

    An entry for an authenticator with ctime *c* lives while ``now <= c + skew``; :meth:`check_and_add`
    first purges dead entries, then rejects a repeat (:class:`ReplayDetected`) or, when ``capacity`` live
    entries remain, rejects the new one (:class:`ReplayCacheFull`: fail closed, never evict a live entry).
    """

    def __init__(self, capacity: int = 65536, skew: float = DEFAULT_SKEW) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.skew_us = int(skew * _US)
        self._seen: dict[tuple, int] = {}
        self._heap: list[tuple[int, int, tuple]] = []  # (expiry, arrival, key): keys themselves never compared
        self._arrivals = 0

    def __len__(self) -> int:
        return len(self._seen)

    def purge(self, now_us: int) -> None:
        h = self._heap
        while h and h[0][0] < now_us:
            exp, _n, k = heapq.heappop(h)
            if self._seen.get(k) == exp:
                del self._seen[k]

    def check_and_add(self, key: tuple, ctime_us: int, now_us: int) -> None:
        self.purge(now_us)
        if key in self._seen:
            raise ReplayDetected("authenticator replayed within the skew window")
        if len(self._seen) >= self.capacity:
            raise ReplayCacheFull(f"replay cache full ({self.capacity} live entries): rejecting")
        exp = ctime_us + self.skew_us
        self._seen[key] = exp
        self._arrivals += 1
        heapq.heappush(self._heap, (exp, self._arrivals, key))


# ============================================================================================ verifier


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

    @property
    def mac_key(self) -> bytes:
        """The sub-option 7 key (HKDF label ``fmipfast mac``)."""
        return derive_key(self.session_key, LABEL_MAC)

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

"""Standard Kerberos realms as the second authentication mechanism beside light-weight Kerberos: MIT krb5
through GSS-API (RFC 2743, RFC 2744 C bindings via the ``gssapi`` package; the krb5 mechanism, RFC 4121).

The flow is lwkerb's (docs/security.md): the MN makes an authenticator for the NAR bound to the handover, it
travels in the LKB sub-option (type 2, fragmented) of the HRA, the HI and the initial Attach, the router
verifies it and takes the sub-option 7 MAC key from it, and the router's Authenticated-MN carries the
confirmation back.  With this mechanism:

* the authenticator is a GSS-API initiator token (an RFC 4120 AP-REQ for the NAR's service principal, from
  the MN's credential cache or client keytab, issued by a real KDC -- cross-realm through the realms' own
  ``capaths``/shared ``krbtgt`` keys);
* the binding (NCoA, PCoA, NAR, identifier: :class:`~.lwkerb.HandoverBinding`) is the GSS channel bindings'
  application data (RFC 2744 §3.11), which MIT krb5 puts in the authenticator checksum (RFC 4121 §4.1.1.2) and
  enforces on acceptance; an initiator token without channel bindings is accepted by MIT for compatibility,
  so the verifier also requires the ``GSS_C_CHANNEL_BOUND_FLAG`` MIT returns when both sides' bindings matched;
* the MAC key is the RFC 4401 pseudo-random function of the established context (``gss_pseudo_random``,
  which MIT implements with RFC 4402's krb5 PRF), input ``"fmipfast mac"``, 32 octets -- both sides compute it,
  nobody sends it;
* the confirmation (:class:`GssReply`) is a GSS MIC made by the acceptor over ``"fmipfast ap-rep" ||
  binding``: the MN checks it and so knows the router holds the service key and verified *this* handover.
  The MN asks for no mutual authentication in the token itself (the context is complete after one token, so
  both sides can derive the key before the MN reaches the NAR's link);
* replays are MIT's replay cache (RFC 4120 §3.2.3), clock skew and ticket times MIT's checks.

Wire layouts (the PDU of sub-option 2, first octet from :class:`~fmipfast.constants.LkbSubtype`)::

    GSSAPI_TOKEN  0x80 | version 1 | token length (2, big endian) | the GSS-API initiator token
    GSSAPI_REPLY  0x81 | version 1 | MIC length (2, big endian)   | the acceptor's GSS MIC

Exception contract (hostile octets are the normal case): :meth:`GssVerifier.verify_local`/``verify`` raise,
for any octets, only :class:`~.lwkerb.LkbError` subclasses, each counted under its ``code`` in
``GssVerifier.counters``; the decoders raise only :class:`~.lwkerb.LkbMalformed`.  Nothing is kept for a
token that does not verify (MIT's replay cache records an authenticator only after it decrypted).

The ``gssapi`` package is an optional extra (``pip install 'fmipfast[krb5]'``) imported only when this
mechanism is configured: :func:`require_gssapi` raises :class:`GssapiUnavailable` naming what is missing.

Ownership/threading: a :class:`GssVerifier` belongs to the engine's loop (acceptance is local: no KDC round
trip, about 0.3 ms); :meth:`GssInitiator.credentials` may talk to a KDC and is run off the loop
(:meth:`GssInitiator.get`).
"""

from __future__ import annotations

import asyncio
import ctypes
import time
from dataclasses import dataclass, field
from typing import Any

from fmipfast.constants import LKB_GSSAPI_MIN, LkbSubtype, lkb_mechanism
from fmipfast.errors import FmipError
from fmipfast.security.lwkerb import (
    LABEL_MAC,
    AuthenticatorIntegrity,
    BindingMismatch,
    ClientMismatch,
    ClockSkew,
    HandoverBinding,
    KdcError,
    KdcUnreachable,
    LkbError,
    LkbMalformed,
    LkbTruncated,
    NoKey,
    Principal,
    ReplayDetected,
    ReplyIntegrity,
    TicketExpired,
    TicketIntegrity,
    TicketNotYetValid,
    UnknownRealm,
    WrongKeyVersion,
)

__all__ = [
    "GSS_INITIATOR_COUNTERS",
    "GSS_VERIFIER_COUNTERS",
    "GSS_VERSION",
    "BINDING_CONTEXT",
    "LABEL_REPLY",
    "GssCredentials",
    "GssFailure",
    "GssInitToken",
    "GssInitiator",
    "GssPending",
    "GssReply",
    "GssVerifier",
    "GssContext",
    "GssapiUnavailable",
    "MechanismMismatch",
    "WrongService",
    "binding_data",
    "check_mechanism",
    "decode_gss",
    "gss_name",
    "gss_prf",
    "require_gssapi",
]

GSS_VERSION = 1
#: Prefix of the channel bindings' application data (a canonical encoding of the binding, versioned).
BINDING_CONTEXT = b"fmipfast handover binding 1\x00"
#: What the acceptor's confirmation MIC covers, before the binding.
LABEL_REPLY = b"fmipfast ap-rep"
_MAX_TOKEN = 0xFFFF

# ============================================================================================ errors


class GssapiUnavailable(FmipError, ImportError):
    """The gssapi mechanism is configured but its Python package or MIT's GSS-API library is missing."""


class MechanismMismatch(LkbError):
    """The PDU was made by the other mechanism (an lwkerb AP-REQ at a gssapi router, or the reverse)."""

    code = "mechanism_mismatch"


class WrongService(LkbError):
    """The token's ticket is for another service than the one this router accepts (KRB5KRB_AP_WRONG_PRINC)."""

    code = "wrong_service"


class GssFailure(LkbError):
    """Any other GSS-API refusal (the library's own words in the message)."""

    code = "gss_error"


class GssMalformed(LkbMalformed):
    """The GSS token itself is not well formed (a defective token, an ASN.1 error, a truncated token)."""


# krb5 error codes (MIT's com_err table, as the GSS minor status carries them; RFC 4120 §7.5.9 names).
_KRB5 = {
    -1765328353: TicketIntegrity,  # KRB5KRB_AP_ERR_BAD_INTEGRITY: wrong key, tampered ticket/authenticator
    -1765328352: TicketExpired,  # KRB5KRB_AP_ERR_TKT_EXPIRED
    -1765328351: TicketNotYetValid,  # KRB5KRB_AP_ERR_TKT_NYV
    -1765328350: ReplayDetected,  # KRB5KRB_AP_ERR_REPEAT
    -1765328349: NoKey,  # KRB5KRB_AP_ERR_NOT_US: the ticket's server is not in the keytab
    -1765328348: ClientMismatch,  # KRB5KRB_AP_ERR_BADMATCH
    -1765328347: ClockSkew,  # KRB5KRB_AP_ERR_SKEW
    -1765328345: GssMalformed,  # KRB5KRB_AP_ERR_BADVERSION
    -1765328344: GssMalformed,  # KRB5KRB_AP_ERR_MSG_TYPE
    -1765328343: TicketIntegrity,  # KRB5KRB_AP_ERR_MODIFIED
    -1765328340: WrongKeyVersion,  # KRB5KRB_AP_ERR_BADKEYVER
    -1765328339: NoKey,  # KRB5KRB_AP_ERR_NOKEY
    -1765328334: AuthenticatorIntegrity,  # KRB5KRB_AP_ERR_INAPP_CKSUM
    -1765328240: WrongService,  # KRB5KRB_AP_WRONG_PRINC
    -1765328203: NoKey,  # KRB5_KT_NOTFOUND
    -1765328154: WrongKeyVersion,  # KRB5_KT_KVNONOTFOUND
    -1765328377: UnknownRealm,  # KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN (initiator: no such service)
    -1765328230: UnknownRealm,  # KRB5_REALM_UNKNOWN
    -1765328228: KdcUnreachable,  # KRB5_KDC_UNREACH
}
_ASN1_BASE, _KRB5_BASE = 1859794432, -1765328384
_NOT_US = -1765328349  # MIT com_err tables: asn1 and krb5

# GSS major status, routine errors (RFC 2744 §3.9.1, shifted left 16)
_S_BAD_MECH, _S_BAD_NAME, _S_BAD_BINDINGS, _S_BAD_SIG, _S_NO_CRED = 1, 2, 4, 6, 7
_S_DEFECTIVE_TOKEN, _S_DEFECTIVE_CREDENTIAL, _S_CREDENTIALS_EXPIRED = 9, 10, 11
_S_DUPLICATE_TOKEN = 1 << 1  # supplementary info bit (not shifted)


def _signed(minor: int) -> int:
    return minor - (1 << 32) if minor >= 1 << 31 else minor


def _refusal(exc: Exception, what: str) -> LkbError:
    """A GSS-API error as the LkbError the counters know, with the library's message."""
    major = int(getattr(exc, "maj_code", 0) or 0)
    minor = _signed(int(getattr(exc, "min_code", 0) or 0))
    try:
        text = " ".join(str(exc.gen_message()).split())  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 -- the message is for humans; a failure to render it is not the error
        text = type(exc).__name__
    text = f"{what}: {text}"
    cls = _KRB5.get(minor)
    if cls is not None:
        return cls(text)
    routine = (major >> 16) & 0xFF
    if routine == _S_BAD_BINDINGS:
        return BindingMismatch(text)
    if routine in (_S_DEFECTIVE_TOKEN, _S_BAD_MECH) or _ASN1_BASE <= minor < _ASN1_BASE + 256:
        return GssMalformed(text, field="gssapi.token", offset=4)
    if routine == _S_CREDENTIALS_EXPIRED:
        return TicketExpired(text)
    if routine == _S_BAD_SIG:
        return AuthenticatorIntegrity(text)
    if routine == _S_NO_CRED:
        return NoKey(text)
    if routine == _S_BAD_NAME:
        return WrongService(text)
    if major & _S_DUPLICATE_TOKEN:
        return ReplayDetected(text)
    if _KRB5_BASE <= minor < _KRB5_BASE + 256 and minor - _KRB5_BASE < 100:
        return KdcError(text, minor - _KRB5_BASE)  # a KDC's KRB-ERROR (initiator side)
    return GssFailure(text)


# ============================================================================================ the library


_gssapi: Any = None


def require_gssapi() -> Any:
    """The ``gssapi`` module, imported on first use; :class:`GssapiUnavailable` names what is missing."""
    global _gssapi
    if _gssapi is None:
        try:
            import gssapi
            import gssapi.raw  # noqa: F401 -- the C extension: fails here when libgssapi_krb5 is missing
        except ImportError as exc:
            raise GssapiUnavailable(
                "the gssapi Kerberos mechanism needs the Python package 'gssapi' (pip install 'fmipfast[krb5]') "
                "and MIT krb5's GSS-API library libgssapi_krb5.so.2 (Debian: libgssapi-krb5-2; building gssapi "
                f"needs libkrb5-dev): {exc}") from None
        _gssapi = gssapi
    return _gssapi


class _Buf(ctypes.Structure):
    _fields_ = [("length", ctypes.c_size_t), ("value", ctypes.c_void_p)]


_lib: Any = None


def _libgss() -> Any:
    """MIT's libgssapi_krb5 (the library the ``gssapi`` package is linked with), for ``gss_pseudo_random``
    (RFC 4401), which python-gssapi does not wrap."""
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL("libgssapi_krb5.so.2")
        except OSError as exc:
            raise GssapiUnavailable(f"MIT krb5's libgssapi_krb5.so.2 cannot be loaded: {exc}") from None
        u32p, vpp, bufp = ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(_Buf)
        lib.gss_import_sec_context.argtypes = [u32p, bufp, vpp]
        lib.gss_export_sec_context.argtypes = [u32p, vpp, bufp]
        lib.gss_pseudo_random.argtypes = [u32p, ctypes.c_void_p, ctypes.c_int, bufp, ctypes.c_ssize_t, bufp]
        lib.gss_delete_sec_context.argtypes = [u32p, vpp, ctypes.c_void_p]
        lib.gss_release_buffer.argtypes = [u32p, bufp]
        for fn in (lib.gss_import_sec_context, lib.gss_export_sec_context, lib.gss_pseudo_random,
                   lib.gss_delete_sec_context, lib.gss_release_buffer):
            fn.restype = ctypes.c_uint32
        _lib = lib
    return _lib


def gss_prf(ctx: Any, label: bytes, length: int = 32, *, keep: bool = True) -> tuple[bytes, Any]:
    """RFC 4401 ``GSS_Pseudo_random`` (key GSS_C_PRF_KEY_FULL) of an established context over ``label``.

    python-gssapi has no binding for it, so the context is exported (RFC 2743 §2.2.8), imported into MIT's
    library directly, the PRF taken, and (``keep``) exported again and re-imported: returns ``(octets, the
    context to use from now on, or None without keep)`` -- the one passed in is consumed by the export."""
    gssapi = require_gssapi()
    lib = _libgss()
    token = ctx.export()
    minor = ctypes.c_uint32()
    handle = ctypes.c_void_p()
    tokbuf = ctypes.create_string_buffer(token, len(token))
    inbuf = _Buf(len(token), ctypes.cast(tokbuf, ctypes.c_void_p))
    if lib.gss_import_sec_context(ctypes.byref(minor), ctypes.byref(inbuf), ctypes.byref(handle)):
        raise GssFailure(f"gss_import_sec_context failed (minor {minor.value})")
    try:
        lab = ctypes.create_string_buffer(label, len(label))
        prf_in, prf_out = _Buf(len(label), ctypes.cast(lab, ctypes.c_void_p)), _Buf()
        if lib.gss_pseudo_random(ctypes.byref(minor), handle, 0, ctypes.byref(prf_in), length, ctypes.byref(prf_out)):
            raise GssFailure(f"gss_pseudo_random failed (minor {minor.value})")
        out = ctypes.string_at(prf_out.value, prf_out.length)
        lib.gss_release_buffer(ctypes.byref(minor), ctypes.byref(prf_out))
        if len(out) != length:
            raise GssFailure(f"gss_pseudo_random gave {len(out)} octets, {length} asked")
        if not keep:
            return out, None
        again = _Buf()
        if lib.gss_export_sec_context(ctypes.byref(minor), ctypes.byref(handle), ctypes.byref(again)):
            raise GssFailure(f"gss_export_sec_context failed (minor {minor.value})")
        exported = ctypes.string_at(again.value, again.length)
        lib.gss_release_buffer(ctypes.byref(minor), ctypes.byref(again))
    finally:
        if handle.value:
            lib.gss_delete_sec_context(ctypes.byref(minor), ctypes.byref(handle), None)
    return out, gssapi.SecurityContext(token=exported)


def gss_name(text: str) -> Any:
    """A GSS name for ``text``: ``service@host.example`` (the part after ``@`` has lower-case letters: a host
    name) is a host-based service name (RFC 2743 §4.1, MIT maps the host to its realm by ``[domain_realm]`` or
    referrals); anything else (``access/nar.b.example@B.EXAMPLE``) is a Kerberos principal name."""
    gssapi = require_gssapi()
    name, _, after = text.rpartition("@")
    if name and "/" not in name and after != after.upper():
        return gssapi.Name(text, gssapi.NameType.hostbased_service)
    return gssapi.Name(text, gssapi.NameType.kerberos_principal)


# ============================================================================================ wire


def binding_data(binding: HandoverBinding) -> bytes:
    """The channel bindings' application data: a fixed context string and the binding's canonical 51 octets
    (kind 1, NCoA, PCoA, NAR, identifier: the same encoding lwkerb authenticators carry)."""
    return BINDING_CONTEXT + binding.encode()


def _frame(subtype: LkbSubtype, body: bytes) -> bytes:
    if not body or len(body) > _MAX_TOKEN:
        raise ValueError(f"a GSS-API token of 1-{_MAX_TOKEN} octets is required, got {len(body)}")
    return bytes((subtype, GSS_VERSION)) + len(body).to_bytes(2, "big") + body


def _unframe(data: bytes, subtype: LkbSubtype, what: str) -> bytes:
    data = bytes(data)
    if len(data) < 1:
        raise LkbTruncated("empty PDU", field=f"{what}.subtype", offset=0)
    if data[0] != subtype:
        if data[0] < LKB_GSSAPI_MIN:
            raise MechanismMismatch(f"the PDU is a light-weight Kerberos message (type {data[0]}), not GSS-API")
        raise LkbMalformed(f"sub-type 0x{data[0]:02x}, expected 0x{int(subtype):02x} ({subtype.name})",
                           field=f"{what}.subtype", offset=0)
    if len(data) < 4:
        raise LkbTruncated(f"{len(data)} octets: the header is 4", field=f"{what}.length", offset=len(data))
    if data[1] != GSS_VERSION:
        raise LkbMalformed(f"version {data[1]}, expected {GSS_VERSION}", field=f"{what}.version", offset=1)
    n = int.from_bytes(data[2:4], "big")
    if n == 0:
        raise LkbMalformed("an empty token", field=f"{what}.length", offset=2)
    if len(data) < 4 + n:
        raise LkbTruncated(f"the token is {n} octets, {len(data) - 4} present", field=f"{what}.token",
                           offset=len(data))
    if len(data) > 4 + n:
        raise LkbMalformed(f"{len(data) - 4 - n} trailing octets", field=what, offset=4 + n)
    return data[4:]


@dataclass(frozen=True, slots=True)
class GssInitToken:
    """MN -> router: the GSS-API initiator token (sub-type 0x80)."""

    token: bytes

    def encode(self) -> bytes:
        return _frame(LkbSubtype.GSSAPI_TOKEN, self.token)

    @classmethod
    def decode(cls, data: bytes) -> GssInitToken:
        return cls(_unframe(data, LkbSubtype.GSSAPI_TOKEN, "gssapi_token"))


@dataclass(frozen=True, slots=True)
class GssReply:
    """Router -> MN: the acceptor's MIC over ``LABEL_REPLY || binding`` (sub-type 0x81)."""

    mic: bytes

    def encode(self) -> bytes:
        return _frame(LkbSubtype.GSSAPI_REPLY, self.mic)

    @classmethod
    def decode(cls, data: bytes) -> GssReply:
        return cls(_unframe(data, LkbSubtype.GSSAPI_REPLY, "gssapi_reply"))


def check_mechanism(mechanism: str, pdu: bytes, counters: dict[str, int]) -> None:
    """A router's first look at an LKB PDU (docs/security.md §10.2): one of the other mechanism than the
    router's ``mechanism`` ("lwkerb" or "gssapi"), or an empty one, is refused before any verifier sees it --
    :class:`MechanismMismatch`, counted under ``mechanism_mismatch`` in ``counters`` (the verifier's)."""
    mech = lkb_mechanism(pdu)
    if mech != mechanism:
        counters["mechanism_mismatch"] = counters.get("mechanism_mismatch", 0) + 1
        raise MechanismMismatch(f"this router accepts {mechanism} authenticators; the MN sent "
                                f"{'an empty one' if mech == 'empty' else 'one of ' + mech}")


def decode_gss(data: bytes) -> GssInitToken | GssReply:
    """Either GSS PDU by its sub-type; :class:`~.lwkerb.LkbMalformed` (or :class:`MechanismMismatch`)."""
    data = bytes(data)
    if data and data[0] == LkbSubtype.GSSAPI_REPLY:
        return GssReply.decode(data)
    return GssInitToken.decode(data)


# ============================================================================================ router side


@dataclass(frozen=True, slots=True)
class GssContext:
    """A verified initiator token: who, for which service, until when, the MAC key and the confirmation."""

    client: str
    server: str
    endtime: int  # POSIX seconds: the ticket's end (the session is not used after)
    mac_key: bytes = field(repr=False)
    reply: GssReply = field(repr=False)
    case: int = 1

    def ap_rep(self) -> GssReply:
        """What the Authenticated-MN carries (``.encode()``), like lwkerb's AP-REP."""
        return self.reply


GSS_VERIFIER_COUNTERS = ("ok", "case1", "malformed", "mechanism_mismatch", "no_key", "bad_kvno", "bad_ticket",
                         "bad_authenticator", "client_mismatch", "binding_mismatch", "skew", "expired",
                         "not_yet_valid", "replay", "wrong_service", "unknown_realm", "kdc_error",
                         "kdc_unreachable", "gss_error", "error")


class GssVerifier:
    """A router's acceptor for GSS-API initiator tokens (standard Kerberos, key case 1 only).

    ``keytab``: a standard keytab file (``kadmin ktadd``); ``principal``: the service principal to accept
    for (``access/nar.b.example@B.EXAMPLE``), or None for any principal of the keytab; ``rcache``: MIT's
    replay cache (a name such as ``file2:/var/lib/fmipfast/nar.rcache2``; None: MIT's default, or
    ``KRB5RCACHEDIR``); ``clockskew``: the skew MIT allows (``[libdefaults] clockskew``, 300 s by default),
    subtracted from the context's lifetime to give the ticket's end.
    """

    realm: str

    def __init__(self, keytab: str, principal: str | None = None, *, rcache: str | None = None,
                 clockskew: float = 300.0) -> None:
        gssapi = require_gssapi()
        self.keytab, self.principal, self.rcache, self.clockskew = keytab, principal, rcache, float(clockskew)
        self.realm = principal.rpartition("@")[2] if principal and "@" in principal else ""
        self.counters: dict[str, int] = dict.fromkeys(GSS_VERIFIER_COUNTERS, 0)
        self._creds = self._acquire(gssapi)

    def _acquire(self, gssapi: Any) -> Any:
        store = {"keytab": self.keytab}
        if self.rcache:
            store["rcache"] = self.rcache
        name = gss_name(self.principal) if self.principal else None
        try:
            return gssapi.Credentials(name=name, usage="accept", store=store)
        except gssapi.exceptions.GSSError as exc:
            raise _refusal(exc, f"cannot accept with keytab {self.keytab} for {self.principal or 'any principal'}") \
                from None

    def reload(self) -> None:
        """Acquire the acceptor credentials again (a new keytab file at the same path; SIGHUP)."""
        self._creds = self._acquire(require_gssapi())

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def verify_local(self, pdu: bytes, binding: bytes | HandoverBinding) -> GssContext:
        """Accept ``pdu`` (an LKB PDU of sub-type 0x80) bound to ``binding``; synchronous (no KDC involved)."""
        try:
            ctx = self._accept(pdu, binding)
        except LkbError as exc:
            self._count(exc.code)
            raise
        self._count("ok")
        self._count("case1")
        return ctx

    async def verify(self, pdu: bytes, binding: bytes | HandoverBinding) -> GssContext:
        return self.verify_local(pdu, binding)

    def _accept(self, pdu: bytes, binding: bytes | HandoverBinding) -> GssContext:
        gssapi = _gssapi
        if not isinstance(binding, HandoverBinding):
            binding = HandoverBinding.decode(bytes(binding))
        token = GssInitToken.decode(pdu).token
        app = binding_data(binding)
        try:
            ctx = gssapi.SecurityContext(creds=self._creds, usage="accept",
                                         channel_bindings=gssapi.raw.ChannelBindings(application_data=app))
            ctx.step(token)
            # one gss_inquire_context for everything (each property of the context object is one call)
            info = gssapi.raw.inquire_context(ctx, mech=False, locally_init=False)
            if not info.complete:
                raise GssMalformed("the token asks for another round trip (one token is the protocol)",
                                   field="gssapi.token", offset=4)
            if gssapi.RequirementFlag.channel_bound not in info.flags:
                raise BindingMismatch("the token carries no channel bindings: it is not bound to this handover")
            if gssapi.RequirementFlag.integrity not in info.flags:
                raise GssFailure("the context offers no integrity protection")
            client, server, lifetime = info.initiator_name, info.target_name, info.lifetime
            mic = ctx.get_signature(LABEL_REPLY + app)
            mac_key, _ = gss_prf(ctx, LABEL_MAC, keep=False)
            client, server = (gssapi.raw.display_name(n, name_type=False).name.decode("utf-8", "replace")
                              for n in (client, server))
        except gssapi.exceptions.GSSError as exc:
            refusal = _refusal(exc, "initiator token refused")
            if self.principal and _signed(int(getattr(exc, "min_code", 0) or 0)) == _NOT_US:
                # accepting for one named service, MIT's "not us" means the ticket names another one
                refusal = WrongService(f"{refusal} (this router accepts only {self.principal})")
            raise refusal from None
        except (ValueError, TypeError, OverflowError) as exc:  # the bindings' own checks on hostile octets
            raise GssFailure(f"initiator token refused: {type(exc).__name__}: {exc}") from None
        endtime = int(time.time() + max(0.0, float(lifetime or 0) - self.clockskew))
        return GssContext(client, server, endtime, mac_key, GssReply(mic))


# ============================================================================================ MN side


_INIT_FLAGS = ("integrity", "replay_detection", "out_of_sequence_detection")


@dataclass(eq=False)
class GssPending:
    """The MN's side of one authenticator: the MAC key and the check of the router's confirmation."""

    ctx: Any = field(repr=False)
    app: bytes = field(repr=False)
    mac_key: bytes = field(repr=False)
    confirmed: bytes | None = field(default=None, repr=False)

    def check_ap_rep(self, pdu: bytes) -> None:
        """The router's :class:`GssReply`: a MIC under the context over ``LABEL_REPLY || binding``; raises
        :class:`~.lwkerb.ReplyIntegrity` (or :class:`~.lwkerb.LkbMalformed`) when it is not."""
        pdu = bytes(pdu)
        if self.confirmed is not None:  # a retransmitted Authenticated-MN: the same confirmation again
            if pdu != self.confirmed:
                raise ReplyIntegrity("a second, different confirmation for this authenticator")
            return
        reply = GssReply.decode(pdu)
        try:
            self.ctx.verify_signature(LABEL_REPLY + self.app, reply.mic)
        except _gssapi.exceptions.GSSError as exc:
            raise ReplyIntegrity(f"the router's confirmation does not verify: {_refusal(exc, 'MIC')}") from None
        self.confirmed = pdu


@dataclass(eq=False)
class GssCredentials:
    """What ``TicketReady`` carries for the gssapi mechanism: the MN's credentials for one service principal,
    its service ticket already in the credential cache (so :meth:`initiate` is local)."""

    server: Principal
    endtime: int  # POSIX seconds
    target: Any = field(repr=False)
    creds: Any = field(repr=False)

    def initiate(self, binding: HandoverBinding, now: float | None = None) -> tuple[bytes, GssPending]:
        """The LKB PDU (sub-type 0x80) bound to ``binding`` and its :class:`GssPending`; ``now`` is unused
        (MIT takes the authenticator's time from the system clock).  Raises :class:`~.lwkerb.LkbError`."""
        gssapi = require_gssapi()
        app = binding_data(binding)
        flags = 0
        for name in _INIT_FLAGS:
            flags |= getattr(gssapi.RequirementFlag, name)
        try:
            ctx = gssapi.SecurityContext(name=self.target, creds=self.creds, usage="initiate", flags=flags,
                                         channel_bindings=gssapi.raw.ChannelBindings(application_data=app))
            token = ctx.step()
            if not ctx.complete or not token:
                raise GssFailure("the GSS-API context needs more than one token")
            mac_key, ctx = gss_prf(ctx, LABEL_MAC)
        except gssapi.exceptions.GSSError as exc:
            raise _refusal(exc, f"no initiator token for {self.server}") from None
        return GssInitToken(token).encode(), GssPending(ctx, app, mac_key)


#: How many services' credentials :class:`GssInitiator` keeps ready for reuse (the routers an MN moves between).
MAX_READY_SERVICES = 64

#: What :class:`GssInitiator` counts: service tickets made ready (and failures), those handed out again without
#: asking the cache (``tickets_reused``), and of the precache requests the
#: tickets fetched, the failures, the requests left for later after a failure (``precache_retry_s``) and those
#: already in the cache or being fetched.
GSS_INITIATOR_COUNTERS = ("tickets", "tickets_reused", "ticket_errors", "precached", "precache_errors",
                          "precache_deferred", "precache_cached")


class GssInitiator:
    """The MN's Kerberos credentials for the gssapi mechanism: a credential cache (``kinit``) and/or a client
    keytab (unattended MNs: MIT gets the initial ticket from it when the cache has none or it has expired).

    :meth:`credentials` fetches the service ticket for a router into the cache (a TGS exchange, cross-realm
    by the realms' ``capaths``, only when it is not there yet) and returns :class:`GssCredentials`;
    :meth:`get` runs it off the event loop; :meth:`precache` does it in the background for routers to come.

    ``precache_retry_s``: a router whose ticket could not be fetched is not asked for again before this (every
    RA asks, 30-70 ms apart on a mobility link); ``renew_margin``: a precached ticket ending sooner than this
    is fetched again.  ``clock``: POSIX seconds (tests).  Ownership: one event loop calls :meth:`get` and
    :meth:`precache`; the KDC exchanges run in its default executor.
    """

    def __init__(self, *, ccache: str | None = None, client_keytab: str | None = None,
                 principal: str | None = None, precache_retry_s: float = 10.0, renew_margin: float = 60.0,
                 clock: Any = time.time) -> None:
        self.ccache, self.client_keytab, self.principal = ccache, client_keytab, principal
        self.precache_retry_s, self.renew_margin, self.clock = float(precache_retry_s), float(renew_margin), clock
        self.counters: dict[str, int] = dict.fromkeys(GSS_INITIATOR_COUNTERS, 0)
        #: the last failure to precache each router's ticket (cleared by a success), for status and logs
        self.last_errors: dict[str, str] = {}
        self._precached: dict[str, int] = {}  # router -> end (POSIX s) of the ticket precached for it
        self._failed_at: dict[str, float] = {}
        self._fetching: set[str] = set()
        # service -> the credentials last made ready for it (reused until renew_margin before their end); written
        # by whichever executor thread ran credentials(), a whole entry at a time
        self._ready: dict[str, GssCredentials] = {}
        require_gssapi()

    def _creds(self) -> Any:
        gssapi = _gssapi
        store = {}
        if self.ccache:
            store["ccache"] = self.ccache
        if self.client_keytab:
            store["client_keytab"] = self.client_keytab
        name = gssapi.Name(self.principal, gssapi.NameType.kerberos_principal) if self.principal else None
        return gssapi.Credentials(name=name, usage="initiate", store=store or None)

    def credentials(self, server: Principal | str) -> GssCredentials:
        """Blocking (may ask the KDCs).  Raises :class:`~.lwkerb.LkbError` (the KDC's refusal, no credentials,
        an expired ticket ...)."""
        gssapi = require_gssapi()
        principal = server if isinstance(server, Principal) else Principal.parse(server)
        ready = self._ready.get(str(principal))
        if ready is not None and ready.endtime - self.renew_margin > self.clock():
            # the ticket is in the cache and not near its end: the handover path builds no probe context
            self.counters["tickets_reused"] += 1
            return ready
        try:
            target = gss_name(str(principal))
            creds = self._creds()
            probe = gssapi.SecurityContext(name=target, creds=creds, usage="initiate",
                                           flags=gssapi.RequirementFlag.integrity)
            probe.step()  # puts the service ticket into the cache; this token is never sent
            lifetime = probe.lifetime
        except gssapi.exceptions.GSSError as exc:
            self.counters["ticket_errors"] += 1
            raise _refusal(exc, f"no service ticket for {principal}") from None
        self.counters["tickets"] += 1
        ready = GssCredentials(principal, int(self.clock()) + int(lifetime or 0), target, creds)
        self._ready.pop(str(principal), None)
        while len(self._ready) >= MAX_READY_SERVICES:  # the least recently made ready goes first
            self._ready.pop(next(iter(self._ready)), None)
        self._ready[str(principal)] = ready
        return ready

    async def get(self, server: Principal) -> GssCredentials:
        return await asyncio.get_running_loop().run_in_executor(None, self.credentials, server)

    async def precache(self, principals: tuple[str, ...] | list[str]) -> dict[str, bool]:
        """Fetch service tickets for the routers ``principals`` (e.g. the adjacent realms' access routers)
        into the cache, off the loop; returns router -> whether its ticket is (being) cached.  A ticket already
        precached and not near its end, or being fetched, is not asked for again; a router whose fetch failed
        waits ``precache_retry_s``.  A failure is counted and recorded in :attr:`last_errors`, never raised."""
        results: dict[str, bool] = {}
        for p in dict.fromkeys(principals):
            now = self.clock()
            end = self._precached.get(p)
            if p in self._fetching or (end is not None and end - self.renew_margin > now):
                self.counters["precache_cached"] += 1
                results[p] = True
                continue
            failed = self._failed_at.get(p)
            if failed is not None and now - failed < self.precache_retry_s:
                self.counters["precache_deferred"] += 1
                results[p] = False
                continue
            self._fetching.add(p)
            try:
                creds = await self.get(Principal.parse(p))
            except (LkbError, ValueError, OSError) as exc:
                self.counters["precache_errors"] += 1
                self.last_errors[p] = f"{type(exc).__name__}: {exc}"
                self._failed_at[p] = self.clock()
                results[p] = False
            else:
                self.counters["precached"] += 1
                self._precached[p] = creds.endtime
                self.last_errors.pop(p, None)
                self._failed_at.pop(p, None)
                results[p] = True
            finally:
                self._fetching.discard(p)
        return results


"""The client side of light-weight Kerberos (RFC 4120 §3.1 to §3.3; docs/security.md §3.4 to §3.8).

The :class:`Credentials` a client holds; the builders of AS-REQ, TGS-REQ and AP-REQ; and the readers of their
answers: :func:`read_kdc_rep` (a KRB-ERROR becomes the :class:`LkbError` of :func:`error_from_krb`, one table
from RFC 4120 §7.5.9 codes to exceptions, docs/conventions.md §8) and :func:`check_ap_rep` (mutual
authentication, RFC 4120 §3.2.5).
"""

from __future__ import annotations

import hmac as _hmac
import os
from dataclasses import dataclass, field

from fmipfast.security.lwkerb.constants import _US, ErrorCode, MsgType, Usage
from fmipfast.security.lwkerb.errors import (
    ClockSkew,
    KdcError,
    KdcUnreachable,
    LkbError,
    LkbMalformed,
    NoKey,
    ReplyIntegrity,
    TicketExpired,
    TicketIntegrity,
    TicketNotYetValid,
    UnknownRealm,
    WrongKeyVersion,
)
from fmipfast.security.lwkerb.keys import Key, seal, unseal
from fmipfast.security.lwkerb.pdus import ApRep, ApReq, AsReq, EncApRepPart, EncKdcRepPart, KdcRep, KrbError, TgsReq
from fmipfast.security.lwkerb.ticket import (
    BINDING_NONE,
    Authenticator,
    HandoverBinding,
    Ticket,
    ap_req_binding_for_request,
)
from fmipfast.security.lwkerb.wire import Principal, Sealed

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

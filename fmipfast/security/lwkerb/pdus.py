"""The light-weight Kerberos messages (docs/security.md §3.4 to §3.11), each a frozen dataclass with
``encode``/``decode`` that re-encodes to exactly the octets it decoded.

The AP exchange, :class:`ApReq` and :class:`ApRep` (RFC 4120 §3.2, §5.5); the AS and TGS exchanges,
:class:`AsReq`, :class:`TgsReq` and :class:`KdcRep` (RFC 4120 §3.1, §3.3, §5.4); :class:`KrbError` (RFC 4120
§5.9.1); and LKB's own :class:`OpenReq`/:class:`OpenRep`, by which a router (key case 2) or a peer KDC (case 3)
has a KDC open an access ticket (draft §3, docs/security.md §6).  :data:`PDU_CLASSES` is the one dispatch table
from message type to decoder, and :func:`decode_pdu` decodes any PDU by its first octet (docs/conventions.md §5).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from fmipfast.security.lwkerb.constants import _US, KEY_LEN, MsgType, Usage
from fmipfast.security.lwkerb.errors import LkbMalformed, LkbTruncated, LkbUnsupportedType, ReplyIntegrity
from fmipfast.security.lwkerb.keys import Key, seal, unseal
from fmipfast.security.lwkerb.ticket import EncTicketPart, Ticket
from fmipfast.security.lwkerb.wire import _R, Principal, Sealed, _blob, _hdr


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


def decode_pdu(data: bytes) -> object:
    """Decode any LKB PDU by its first octet; raises only :class:`LkbMalformed` (and subclasses)."""
    if not data:
        raise LkbTruncated("empty PDU", field="type", offset=0)
    dec = PDU_CLASSES.get(data[0])
    if dec is None:
        raise LkbUnsupportedType(f"unknown LKB message type {data[0]}", field="type", offset=0)
    return dec(bytes(data))

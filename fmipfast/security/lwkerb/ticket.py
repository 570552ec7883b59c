"""The light-weight Kerberos ticket and authenticator formats (docs/security.md §3.2 and §3.3).

:class:`EncTicketPart` and :class:`Ticket` (RFC 4120 §5.3: issued and opened under the server's key, the clear
part authenticated as associated data); what an authenticator is bound to -- a handover
(:class:`HandoverBinding`: NCoA, PCoA, NAR address and identifier, draft §3 and docs/design.md §4) or a TGS-REQ
body (:func:`ap_req_binding_for_request`, RFC 4120's request-body checksum); and :class:`Authenticator`
(RFC 4120 §5.5.1), sealed in an AP-REQ.
"""

from __future__ import annotations

import functools
import ipaddress
import struct
from dataclasses import dataclass, field

from fmipfast.security.lwkerb.constants import AUTHZ_TRANSITED, KEY_LEN, LKB_VERSION, Usage
from fmipfast.security.lwkerb.errors import LkbMalformed, TicketIntegrity, WrongKeyVersion
from fmipfast.security.lwkerb.keys import Key, _sha256_16, seal, unseal
from fmipfast.security.lwkerb.wire import _R, Principal, Sealed, _blob


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

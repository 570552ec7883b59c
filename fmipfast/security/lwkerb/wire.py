"""The building blocks of every light-weight Kerberos PDU layout (docs/security.md §3.1): the bounds-checked
reader ``_R`` (every short read is an :class:`LkbTruncated` naming field and offset), the length-prefixed text
and blob encoders, the type/version header, and the two encodings the layouts embed -- :class:`Principal`
(P(x); RFC 4120 §6.2 principal names, ``name@REALM``) and :class:`Sealed` (S(m), AES-256-GCM output).

Principal and Sealed sit beside the reader that builds them: :meth:`_R.principal` and :meth:`_R.sealed` return
them and their own ``decode`` uses the reader.  Sealing itself (keys, usages) is in :mod:`.keys`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fmipfast.security.lwkerb.constants import LKB_VERSION, NONCE_LEN, TAG_LEN, MsgType
from fmipfast.security.lwkerb.errors import LkbMalformed, LkbTruncated


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

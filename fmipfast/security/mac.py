"""The Message Authentication Code sub-option (docs/design.md §2, sub-option type 7).

Value: 16 octets of HMAC-SHA-256 truncated to 128 bits (as RFC 4868 truncates it), keyed by the MN-router
integrity key (``lwkerb.derive_key(session_key, LABEL_MAC)``), over::

    source address (16) || destination address (16) || the ICMPv6 message

where, in the ICMPv6 message, the checksum (octets 2-3) and the 16-octet MAC value at ``mac_offset`` are
zeroed.  The checksum is zeroed because it covers the MAC value itself (it is computed after the MAC).

The HMAC is the standard library's one-shot ``hmac.digest`` (OpenSSL's HMAC in one C call): the NAR checks an
Attach's MAC before it flushes the MN's buffer, and ``cryptography``'s HMAC object (a context made, fed and
finished from Python) took ~5x as long for these ~200 octets.  A key used for one latency-critical check can
be prepared beforehand as a :class:`MacKey` (RFC 2104's inner and outer pads hashed once): its MAC is two
copies of a hash state and three updates in the interpreter's own SHA-256, compact code that stays quick
when the caches are cold -- the NAR checks one Attach after tens of milliseconds of other work, and there
OpenSSL's HMAC took ~55 us against ~10 us (both ~2 us warm).

Imports only ``fmipfast.errors`` and the standard library (docs/conventions.md §9).
"""

from __future__ import annotations

import hashlib as _hashlib
import hmac as _hmac
from collections.abc import Callable
from typing import Any

from fmipfast.errors import SecurityError

__all__ = ["MAC_LEN", "BadMac", "MacKey", "message_mac", "verify_message_mac"]

MAC_LEN = 16
_BLOCK = 64  # SHA-256's block: the HMAC key's padded length (RFC 2104)


def _builtin_sha256() -> Callable[..., Any]:
    """The interpreter's own SHA-256 (``_sha2`` from CPython 3.12, ``_sha256`` before), else hashlib's."""
    for name in ("_sha2", "_sha256"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        ctor = getattr(module, "sha256", None)
        if ctor is not None:
            return ctor  # type: ignore[no-any-return]
    return _hashlib.sha256


_SHA256 = _builtin_sha256()


class MacKey:
    """An integrity key prepared for MACs (RFC 2104 HMAC-SHA-256 with its two padded-key blocks hashed once):
    pass it wherever a key is taken.  ``key`` is the raw key (bytes)."""

    __slots__ = ("key", "_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        self.key = bytes(key)
        k = self.key if len(self.key) <= _BLOCK else _hashlib.sha256(self.key).digest()
        k = k.ljust(_BLOCK, b"\0")
        self._inner = _SHA256(bytes(b ^ 0x36 for b in k))
        self._outer = _SHA256(bytes(b ^ 0x5C for b in k))

    def digest(self, data: bytes) -> bytes:
        """HMAC-SHA-256 of ``data`` (32 octets)."""
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return "MacKey(<secret>)"


class BadMac(SecurityError):
    """The MAC sub-option does not verify.  ``code`` is the counter name."""

    code = "bad_mac"


def _input(src16: bytes, dst16: bytes, icmp_message: bytes, mac_offset: int) -> bytes:
    if len(src16) != 16 or len(dst16) != 16:
        raise ValueError("src16 and dst16 must be 16-octet IPv6 addresses")
    if mac_offset < 4 or mac_offset + MAC_LEN > len(icmp_message):
        raise ValueError(f"mac_offset {mac_offset} does not leave 16 octets inside the {len(icmp_message)}-octet "
                         "message after its 4-octet header")
    m = bytearray(icmp_message)
    m[2:4] = b"\0\0"
    m[mac_offset:mac_offset + MAC_LEN] = bytes(MAC_LEN)
    return bytes(src16) + bytes(dst16) + bytes(m)


def message_mac(key: bytes | MacKey, src16: bytes, dst16: bytes, icmp_message: bytes, mac_offset: int) -> bytes:
    """The 16-octet MAC value for the sub-option whose value starts at ``mac_offset`` in ``icmp_message``;
    ``ValueError`` if the addresses are not 16 octets or the offset leaves no 16 octets after the header."""
    data = _input(src16, dst16, icmp_message, mac_offset)
    if isinstance(key, MacKey):
        return key.digest(data)[:MAC_LEN]
    return _hmac.digest(bytes(key), data, "sha256")[:MAC_LEN]


def verify_message_mac(key: bytes | MacKey, src16: bytes, dst16: bytes, icmp_message: bytes,
                       mac_offset: int) -> bool:
    """True if the MAC value at ``mac_offset`` is right; constant-time compare (``hmac.compare_digest``).
    A ``mac_offset`` outside the message is a mismatch (False), not an exception."""
    try:
        want = message_mac(key, src16, dst16, icmp_message, mac_offset)
    except ValueError:
        return False
    return _hmac.compare_digest(want, bytes(icmp_message[mac_offset:mac_offset + MAC_LEN]))

"""The Message Authentication Code sub-option (docs/design.md §2, sub-option type 7).

Value: 16 octets of HMAC-SHA-256 truncated to 128 bits (as RFC 4868 truncates it), keyed by the MN-router
integrity key (``lwkerb.derive_key(session_key, LABEL_MAC)``), over::

    source address (16) || destination address (16) || the ICMPv6 message

where, in the ICMPv6 message, the checksum (octets 2-3) and the 16-octet MAC value at ``mac_offset`` are
zeroed.  The checksum is zeroed because it covers the MAC value itself (it is computed after the MAC).

The HMAC is the standard library's one-shot ``hmac.digest`` (OpenSSL's HMAC in one C call): the NAR checks an
Attach's MAC before it flushes the MN's buffer, and ``cryptography``'s HMAC object (a context made, fed and
finished from Python) took ~5x as long for these ~200 octets.

Imports only ``fmipfast.errors`` and the standard library (docs/conventions.md §9).
"""

from __future__ import annotations

import hmac as _hmac

from fmipfast.errors import SecurityError

__all__ = ["MAC_LEN", "BadMac", "message_mac", "verify_message_mac"]

MAC_LEN = 16


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


def message_mac(key: bytes, src16: bytes, dst16: bytes, icmp_message: bytes, mac_offset: int) -> bytes:
    """The 16-octet MAC value for the sub-option whose value starts at ``mac_offset`` in ``icmp_message``;
    ``ValueError`` if the addresses are not 16 octets or the offset leaves no 16 octets after the header."""
    return _hmac.digest(bytes(key), _input(src16, dst16, icmp_message, mac_offset), "sha256")[:MAC_LEN]


def verify_message_mac(key: bytes, src16: bytes, dst16: bytes, icmp_message: bytes, mac_offset: int) -> bool:
    """True if the MAC value at ``mac_offset`` is right; constant-time compare (``hmac.compare_digest``).
    A ``mac_offset`` outside the message is a mismatch (False), not an exception."""
    try:
        want = message_mac(key, src16, dst16, icmp_message, mac_offset)
    except ValueError:
        return False
    return _hmac.compare_digest(want, bytes(icmp_message[mac_offset:mac_offset + MAC_LEN]))

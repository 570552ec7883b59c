"""Keys and sealing for light-weight Kerberos (docs/security.md §4, and §3.1 for the sealed layout).

:class:`Key` (kvno and 32 octets that never appear in a repr), :class:`Keytab`, password keys (scrypt, salted
with realm and name as RFC 4120 salts), per-purpose keys from a session key with HKDF-SHA256
(:func:`derive_key`), AES-256-GCM sealing whose associated data starts with the key usage (:func:`seal`,
:func:`unseal`; usages of RFC 4120 §7.5.1), and the principals that name the KDCs' keys: ``krbtgt/S@I``, the
TGS key of realm S as seen from realm I (cross-realm, RFC 4120 §7.3), and ``access/R@R``, the key only the KDC of
R holds, under which the tickets of the draft's key cases 2 and 3 are sealed (draft §3, docs/security.md §6).
"""

from __future__ import annotations

import hmac as _hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from fmipfast.security.lwkerb.constants import ACCESS_SERVICE, KEY_LEN, NONCE_LEN, Usage
from fmipfast.security.lwkerb.errors import LkbError, NoKey, WrongKeyVersion
from fmipfast.security.lwkerb.wire import Principal, Sealed

# ============================================================================================ principals, keys


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

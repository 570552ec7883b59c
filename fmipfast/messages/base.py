"""What every message module of :mod:`fmipfast.messages` shares: :data:`AddressLike`, :data:`MAX_MESSAGE_LEN`,
the field checks the constructors run (``_addr``, ``_uint``, ``_octets``, ``_utf8``, ``_tuple``; each a
``ValueError`` naming the field), ``_need`` (the bounds check before every slice of a parser, a
:class:`~fmipfast.errors.Truncated` naming the field and offset), :class:`Message` (the base of everything
:func:`fmipfast.messages.decode` returns) and ``_check_checksum`` (the RFC 4443 §2.3 checksum field, 16 bits
or None for "compute on encode", docs/conventions.md §5).

:data:`MAX_MESSAGE_LEN` is the IPv6 Payload Length limit (RFC 8200 §3; no jumbograms).  The exception contract
these checks serve is in the package docstring (``fmipfast/messages/__init__.py``).
"""

from __future__ import annotations

from ipaddress import IPv6Address
from typing import Any, ClassVar, Union

from fmipfast.constants import ADDR_LEN
from fmipfast.errors import Truncated

AddressLike = Union[IPv6Address, str, bytes, int]

#: Largest ICMPv6 message we encode or accept: the IPv6 Payload Length limit (no jumbograms).
MAX_MESSAGE_LEN = 0xFFFF


def _addr(value: AddressLike, name: str) -> IPv6Address:
    if isinstance(value, IPv6Address):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if len(raw) != ADDR_LEN:
            raise ValueError(f"{name}: an IPv6 address is 16 octets, got {len(raw)}")
        return IPv6Address(raw)
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        try:
            return IPv6Address(value)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    raise ValueError(f"{name}: not an IPv6 address: {value!r}")


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


def _uint(value: Any, bits: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < (1 << bits):
        raise ValueError(f"{name}: {value!r} is not an unsigned {bits}-bit integer")
    return int(value)


def _octets(value: Any, name: str, size: int | None = None) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise ValueError(f"{name}: expected bytes, got {type(value).__name__}")
    raw = bytes(value)
    if size is not None and len(raw) != size:
        raise ValueError(f"{name}: expected {size} octets, got {len(raw)}")
    return raw


def _utf8(value: Any, name: str) -> bytes:
    """``value`` (a ``str``) as UTF-8; a lone surrogate, which Python strings may hold and UTF-8 cannot,
    is a ``ValueError`` naming the field (not a bare ``UnicodeEncodeError`` from deep in ``encode``)."""
    if not isinstance(value, str):
        raise ValueError(f"{name}: expected a string, got {type(value).__name__}")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{name}: not encodable as UTF-8 ({exc.reason})") from None


def _tuple(values: Any, name: str) -> tuple:
    """``tuple(values)`` for a list/tuple of options; anything else (``None``, an int, a single option, a
    string) is a ``ValueError`` rather than a ``TypeError`` or a tuple of characters."""
    if isinstance(values, (str, bytes, bytearray, memoryview)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{name}: expected a sequence, got {type(values).__name__}")
    return tuple(values)


def _need(data: bytes, offset: int, size: int, field_name: str) -> None:
    if len(data) < offset + size:
        raise Truncated(f"need {size} octets, have {max(0, len(data) - offset)}", field=field_name,
                        offset=offset)


class Message:
    """Base of everything :func:`decode` returns."""

    __slots__ = ()
    NAME: ClassVar[str]

    def to_json(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


def _check_checksum(checksum: Any) -> int | None:
    return None if checksum is None else _uint(checksum, 16, "checksum")

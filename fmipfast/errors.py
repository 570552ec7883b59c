"""The exception hierarchy, shared by the compiled core and the pure-Python reference.

Every error fmipfast raises on bad input is a :class:`FmipError`.  Errors about bytes on the wire are
:class:`MalformedPacket` (also a :class:`ValueError`) and carry the ``field`` that failed and the
``offset`` (in octets, from the start of the buffer that was being decoded) where it failed, so a
message like ``Truncated: nar_address: need 16 octets at offset 8, have 4`` points at the byte.

Imports nothing from fmipfast (import rules: docs/conventions.md §9).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = [
    "FmipError",
    "MalformedPacket",
    "Truncated",
    "BadChecksum",
    "BadOption",
    "UnsupportedType",
    "InvalidField",
    "DerivationError",
    "ConfigError",
    "CapacityError",
    "PcapError",
    "SecurityError",
    "ControlError",
    "escape_text",
]


class FmipError(Exception):
    """Base class of every error fmipfast raises on purpose."""


class MalformedPacket(FmipError, ValueError):
    """Bytes that do not form a valid message.

    Attributes:
        field: the draft's name of the field (or sub-option) that failed, or ``None``.
        offset: octet offset into the decoded buffer where the problem was found, or ``None``.
        reason: the problem, without the field/offset prefix.
    """

    def __init__(self, reason: str, *, field: str | None = None, offset: int | None = None) -> None:
        self.reason = reason
        self.field = field
        self.offset = offset
        where = []
        if field is not None:
            where.append(field)
        if offset is not None:
            where.append(f"offset {offset}")
        prefix = " at ".join(where)
        super().__init__(f"{prefix}: {reason}" if prefix else reason)

    def __reduce__(self) -> tuple[Callable[..., MalformedPacket], tuple[object, ...]]:
        # keep field/offset across pickling (multiprocessing workers)
        return (_rebuild, (type(self), self.reason, self.field, self.offset))


def _rebuild(cls: type[MalformedPacket], reason: str, field: str | None, offset: int | None) -> MalformedPacket:
    return cls(reason, field=field, offset=offset)


class Truncated(MalformedPacket):
    """The buffer ends before a field that must be there."""


class BadChecksum(MalformedPacket):
    """The ICMPv6 checksum (RFC 4443 §2.3, over the IPv6 pseudo-header) does not verify.

    Attributes ``expected`` and ``found`` hold the two 16-bit values.
    """

    def __init__(self, reason: str, *, field: str | None = "checksum", offset: int | None = 2,
                 expected: int | None = None, found: int | None = None) -> None:
        super().__init__(reason, field=field, offset=offset)
        self.expected = expected
        self.found = found


class BadOption(MalformedPacket):
    """A sub-option or ND option is malformed: length below its header, past the end, wrong size."""


class UnsupportedType(MalformedPacket):
    """The ICMPv6 type or the fmipfast code is not one this codepoint map knows."""


class InvalidField(MalformedPacket):
    """A field holds a value the draft forbids, or flags disagree with what is present."""


class DerivationError(FmipError, ValueError):
    """An address or MAC cannot be derived (docs/design.md §3), e.g. an interface identifier that is
    not EUI-64 based; the sender must then carry the value explicitly (set M or C)."""


class ConfigError(FmipError, ValueError):
    """A configuration file or mapping is invalid.

    Attributes:
        key: dotted key path, e.g. ``"codepoints.type"`` (``None`` for file-level errors).
        problem: what is wrong with it.
    """

    def __init__(self, key: str | None, problem: str, *, source: str | None = None) -> None:
        self.key = key
        self.problem = problem
        self.source = source
        head = f"{source}: " if source else ""
        super().__init__(f"{head}{key}: {problem}" if key else f"{head}{problem}")


class CapacityError(FmipError):
    """A bounded table or buffer is full; the caller counted the refusal."""


class PcapError(FmipError, ValueError):
    """A capture file is not a readable pcap/pcapng file, or a record in it is damaged."""


class SecurityError(FmipError):
    """Base class for authentication failures (light-weight Kerberos, AH, MAC sub-option)."""


class ControlError(FmipError):
    """A control request failed: the server's error message, or a transport problem (``fmipfast.control``,
    ``fmipfast.mnd``)."""


def escape_text(text: str) -> str:
    """``text`` with every non-printable character (C0/C1 controls, ESC, DEL, bidi overrides and other
    format characters, separators but the space, lone surrogates) and the backslash written as a Python
    escape (``\\x1b``, ``\\u202e``, ``\\\\``): what a capture or a frame carries cannot drive the terminal
    nor start a line of its own (``fmipfast decode``'s output, the daemons' text log lines)."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(ch if ch.isprintable() and ch != "\\" else _escape_char(ch) for ch in text)


def _escape_char(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"

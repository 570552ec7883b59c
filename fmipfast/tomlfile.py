"""Reading a TOML configuration file: the one reader of every command and loader that takes one
(``fmipfast.config`` for the router, the MN and the codepoints; ``fmipfast.security.kdc`` for the KDC).

Any bytes in the file give a :class:`~fmipfast.errors.ConfigError` naming the file — a file that cannot be
read, is larger than :data:`MAX_FILE_OCTETS`, is not UTF-8, does not parse, nests deeper than the parser
goes, or holds an integer beyond Python's digit limit — never another exception.

Ownership: stateless.  Imports only the vocabulary (errors).
"""

from __future__ import annotations

import os
import tomllib
from typing import Any

from fmipfast.errors import ConfigError

__all__ = ["MAX_FILE_OCTETS", "parse_toml", "read_toml", "show"]

#: The largest configuration file read (a configuration is a few kilobytes; this stops /dev/zero).
MAX_FILE_OCTETS = 4 << 20


def show(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: an error message stays one short line whatever the value."""
    try:
        text = repr(value)
    except ValueError:  # an integer beyond sys.get_int_max_str_digits()
        return f"<an integer of {value.bit_length()} bits>" if isinstance(value, int) else "<unprintable>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def parse_toml(text: str, *, source: str | None = None) -> dict[str, Any]:
    """TOML text as a dict; any failure of the parser is a :class:`ConfigError` (``source`` named): a syntax
    error with its line and column, nesting too deep for the parser (``RecursionError``), an integer beyond
    Python's digit limit."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(None, f"not valid TOML: {exc}", source=source) from None
    except RecursionError:
        raise ConfigError(None, "not valid TOML: arrays or inline tables nested too deeply", source=source) from None
    except (ValueError, TypeError, MemoryError) as exc:
        raise ConfigError(None, f"not valid TOML: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                          source=source) from None


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML file into a dict (see the module's contract)."""
    try:
        name = os.fspath(path)
    except TypeError:
        raise ConfigError(None, f"not a file name: {show(path)}") from None
    try:
        with open(name, "rb") as fh:
            raw = fh.read(MAX_FILE_OCTETS + 1)
    except OSError as exc:
        raise ConfigError(None, f"cannot read: {exc.strerror or exc}", source=name) from None
    except ValueError as exc:  # a NUL in the name
        raise ConfigError(None, f"cannot read: {exc}", source=show(name)) from None
    if len(raw) > MAX_FILE_OCTETS:
        raise ConfigError(None, f"larger than {MAX_FILE_OCTETS} octets: not a configuration file", source=name)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(None, f"not UTF-8 at byte {exc.start}", source=name) from None
    return parse_toml(text, source=name)

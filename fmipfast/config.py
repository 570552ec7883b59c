"""Configuration: TOML (``tomllib``) into frozen dataclasses, with errors that name the key and the problem.

Every file is validated whole before anything runs: an unknown section or key, a wrong type or a value out
of range raises :class:`fmipfast.errors.ConfigError` whose ``key`` is the dotted path (``codepoints.type``)
and whose message says what is wrong and what is allowed.  Later issues add sections (router, kdc, mn,
lab); each is one dataclass here plus one entry in ``_SECTIONS``.

May import: errors, constants.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any, Mapping

from fmipfast.constants import MESSAGE_KEYS, Codepoints, FmipCode
from fmipfast.errors import ConfigError

__all__ = ["Config", "CodepointsConfig", "LoggingConfig", "load", "loads", "from_mapping", "DEFAULTS_TOML"]


def _int(key: str, value: Any, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(key, f"expected an integer, got {type(value).__name__} {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(key, f"{value} is out of range {lo}-{hi}")
    return value


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(key, f"{value!r} is not one of {', '.join(choices)}")
    return value


@dataclass(frozen=True, slots=True)
class CodepointsConfig:
    """``[codepoints]``: the ICMPv6 type and the per-message Codes (DESIGN.md §2; defaults 200 and 1-7)."""

    type: int = 200
    handover_redirect: int = int(FmipCode.HANDOVER_REDIRECT)
    handover_redirect_ack: int = int(FmipCode.HANDOVER_REDIRECT_ACK)
    handover: int = int(FmipCode.HANDOVER)
    authenticated_mn: int = int(FmipCode.AUTHENTICATED_MN)
    attach: int = int(FmipCode.ATTACH)
    handover_error: int = int(FmipCode.HANDOVER_ERROR)
    forwarding_disable: int = int(FmipCode.FORWARDING_DISABLE)

    @classmethod
    def parse(cls, table: Mapping[str, Any], prefix: str) -> "CodepointsConfig":
        values = {}
        for key, value in table.items():
            if key == "type":
                values[key] = _int(f"{prefix}.type", value, 128, 255)
            else:
                values[key] = _int(f"{prefix}.{key}", value, 0, 255)
        made = cls(**values)
        try:
            made.profile()
        except ValueError as exc:
            name, _, problem = str(exc).partition(": ")
            raise ConfigError(f"{prefix}.{name}", problem) from None
        return made

    def profile(self) -> Codepoints:
        """The immutable codepoint profile that ``messages.encode``/``decode`` take."""
        return Codepoints(type=self.type, **{k: getattr(self, k) for k in MESSAGE_KEYS})


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """``[logging]``: level and format of the daemons' structured logs."""

    level: str = "info"
    format: str = "text"

    @classmethod
    def parse(cls, table: Mapping[str, Any], prefix: str) -> "LoggingConfig":
        values = {}
        for key, value in table.items():
            if key == "level":
                values[key] = _choice(f"{prefix}.level", value, ("debug", "info", "warning", "error"))
            else:
                values[key] = _choice(f"{prefix}.format", value, ("text", "json"))
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration; every section has defaults, so an empty file is valid."""

    codepoints: CodepointsConfig = field(default_factory=CodepointsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)


_SECTIONS: dict[str, Any] = {"codepoints": CodepointsConfig, "logging": LoggingConfig}


def from_mapping(data: Mapping[str, Any], *, source: str | None = None) -> Config:
    """Validate a parsed TOML document (or any mapping of the same shape) into a :class:`Config`."""
    try:
        sections = {}
        for name, table in data.items():
            cls = _SECTIONS.get(name)
            if cls is None:
                raise ConfigError(name, f"unknown section; known sections: {', '.join(_SECTIONS)}")
            if not isinstance(table, Mapping):
                raise ConfigError(name, f"expected a table, got {type(table).__name__}")
            known = {f.name for f in dataclasses.fields(cls)}
            for key in table:
                if key not in known:
                    raise ConfigError(f"{name}.{key}", f"unknown key; known keys: {', '.join(sorted(known))}")
            sections[name] = cls.parse(table, name)
        return Config(**sections)
    except ConfigError as exc:
        if source and exc.source is None:
            raise ConfigError(exc.key, exc.problem, source=source) from None
        raise


def loads(text: str, *, source: str | None = None) -> Config:
    """Parse TOML text; a TOML syntax error is a ConfigError with its line and column."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(None, f"not valid TOML: {exc}", source=source) from None
    return from_mapping(data, source=source)


def load(path: str | os.PathLike[str]) -> Config:
    """Read and validate a TOML configuration file."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ConfigError(None, f"cannot read: {exc.strerror}", source=name) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(None, f"not UTF-8 at byte {exc.start}", source=name) from None
    return loads(text, source=name)


#: The defaults, as a commented TOML file (``fmipfast check-config --defaults`` prints it).
DEFAULTS_TOML = """\
# fmipfast configuration (every key optional; these are the defaults)

[codepoints]            # DESIGN.md §2: ICMPv6 type (informational, 138-255) and one Code per message
type = 200
handover_redirect = 1
handover_redirect_ack = 2
handover = 3
authenticated_mn = 4
attach = 5
handover_error = 6
forwarding_disable = 7

[logging]
level = "info"          # debug | info | warning | error
format = "text"         # text | json
"""

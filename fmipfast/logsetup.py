"""The daemons' logging: ``[logging]`` of the configuration (level; text lines or JSON objects) on stderr.

``fmipfast router`` and ``fmipfast mn`` call :func:`setup_logging` once at start-up, before their event
loop runs; with ``format = "json"`` each record is one line of :class:`JsonLogFormatter`, the record's
``extra={"fields": {...}}`` (a protocol note's identifier, addresses, state, reason ...) at its top level.

Ownership: :func:`setup_logging` replaces the handlers of the process's root logger; it is called from the
main thread while nothing else logs.

In the text format every record's message is written through :func:`fmipfast.errors.escape_text`: a value
from the wire (a principal name quoted in a note's reason, a KDC's error text) cannot start a line of its own
nor drive the terminal; the JSON format escapes by itself.

May import: config (the ``[logging]`` table's type), errors (the escape).
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
import traceback
from typing import TYPE_CHECKING, Any, TextIO

from fmipfast.errors import escape_text

if TYPE_CHECKING:
    from fmipfast.config import LoggingConfig

__all__ = ["JsonLogFormatter", "TextLogFormatter", "setup_logging", "log_value"]


class TextLogFormatter(logging.Formatter):
    """``[logging] format = "text"``: ``time logger LEVEL message``, one line per record: the message with its
    non-printable characters escaped (:func:`~fmipfast.errors.escape_text`); a traceback follows on lines of
    its own, as the standard formatter writes it."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(name)s %(levelname)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 -- logging's name
        record.message = escape_text(record.message)
        return super().formatMessage(record)


class JsonLogFormatter(logging.Formatter):
    """``[logging] format = "json"``: one JSON object per line -- ``time`` (ISO 8601, UTC), ``level``,
    ``logger``, ``message``, and the record's ``fields`` (``extra={"fields": {...}}``: a protocol note's
    identifier, addresses, state, reason ...) at the top level, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(
                timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        for key, value in (getattr(record, "fields", None) or {}).items():
            doc.setdefault(key, value)
        if record.exc_info:
            doc["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(doc, default=log_value, sort_keys=False)


def log_value(value: object) -> str:
    """A field's value in a log line: octets by their count (a frame's bytes never reach a log), else ``str``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} octets>"
    return str(value)


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is when a record comes (not the stream of the moment it was made:
    an embedding program, or a test harness, may have replaced and closed that one since)."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def setup_logging(cfg: LoggingConfig) -> None:
    """The daemons' logging from ``[logging]``: the level, and text lines or JSON objects on stderr."""
    handler = StderrHandler()
    if cfg.format == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(TextLogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(cfg.level.upper())

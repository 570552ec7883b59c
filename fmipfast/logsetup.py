"""The daemons' logging: ``[logging]`` of the configuration (level; text lines or JSON objects) on stderr.

``fmipfast router`` and ``fmipfast mn`` call :func:`setup_logging` once at start-up, before their event
loop runs; with ``format = "json"`` each record is one line of :class:`JsonLogFormatter`, the record's
``extra={"fields": {...}}`` (a protocol note's identifier, addresses, state, reason ...) at its top level.

Ownership: :func:`setup_logging` replaces the handlers of the process's root logger; it is called from the
main thread while nothing else logs.

May import: nothing of fmipfast (the ``[logging]`` table comes in as :class:`fmipfast.config.LoggingConfig`).
"""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["JsonLogFormatter", "setup_logging"]


class JsonLogFormatter:
    """``[logging] format = "json"``: one JSON object per line -- ``time`` (ISO 8601, UTC), ``level``,
    ``logger``, ``message``, and the record's ``fields`` (``extra={"fields": {...}}``: a protocol note's
    identifier, addresses, state, reason ...) at the top level, for log shippers."""

    def format(self, record: Any) -> str:
        import datetime

        doc: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(
                timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        for key, value in (getattr(record, "fields", None) or {}).items():
            doc.setdefault(key, value)
        if record.exc_info:
            import traceback

            doc["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(doc, default=_log_value, sort_keys=False)


def _log_value(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} octets>"
    return str(value)


def setup_logging(cfg: Any) -> None:
    """The daemons' logging from ``[logging]``: the level, and text lines or JSON objects on stderr."""
    import logging

    class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
        """Writes to whatever ``sys.stderr`` is when a record comes (not the stream of the moment it was made:
        an embedding program, or a test harness, may have replaced and closed that one since)."""

        @property  # type: ignore[override]
        def stream(self) -> Any:
            return sys.stderr

        @stream.setter
        def stream(self, value: Any) -> None:
            pass

    handler = StderrHandler()
    if cfg.format == "json":
        handler.setFormatter(JsonLogFormatter())  # type: ignore[arg-type]
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(cfg.level.upper())

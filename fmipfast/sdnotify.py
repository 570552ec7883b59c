"""systemd's service notification protocol (sd_notify(3)), without libsystemd: what ``Type=notify`` and
``WatchdogSec=`` units expect of the daemons.

A daemon started by systemd with ``Type=notify`` finds ``$NOTIFY_SOCKET`` in its environment: an
``AF_UNIX``/``SOCK_DGRAM`` socket, a filesystem path (``/run/systemd/notify``) or an abstract name written with a
leading ``@``.  Each notification is one datagram of newline-separated ``KEY=VALUE`` assignments:

* ``READY=1`` once the service is serving (systemd holds back the units ordered after it until then);
* ``STATUS=...`` a one-line state shown by ``systemctl status``;
* ``RELOADING=1`` with ``MONOTONIC_USEC=`` (CLOCK_MONOTONIC, microseconds) when a reload starts, and
  ``READY=1`` again when it is done;
* ``STOPPING=1`` when the daemon begins to shut down;
* ``WATCHDOG=1`` at least every ``$WATCHDOG_USEC`` microseconds when the unit sets ``WatchdogSec=`` (and
  ``$WATCHDOG_PID``, when set, names the process meant); the pings here come from the daemon's own event loop,
  at half that interval, so a loop that stops turning stops the pings and systemd restarts the service.

Like ``sd_notify(unset_environment=1)`` the three variables are taken out of the environment when read, so a
command the daemon runs (the MN's ``switch_command``) does not inherit them.  Without ``$NOTIFY_SOCKET`` every
call does nothing.  A failure to send (the socket gone, a full queue) never reaches the daemon: it is logged once
and counted in :attr:`Notifier.errors`.

May import: nothing of fmipfast (the standard library only).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

__all__ = ["Notifier", "NotifyConfigError", "notifier"]

log = logging.getLogger("fmipfast.sdnotify")

#: sun_path holds 108 octets (the abstract name's leading NUL included); systemd refuses longer names too.
_MAX_PATH = 108
#: What one STATUS= line may carry (systemd shows one line; longer text is cut, not refused).
MAX_STATUS = 512


class NotifyConfigError(ValueError):
    """``$NOTIFY_SOCKET`` or ``$WATCHDOG_USEC`` holds something that is not what systemd puts there."""


def _address(value: str) -> str | bytes:
    """The socket address of a ``$NOTIFY_SOCKET`` value: a path, or an abstract name (``@name``)."""
    if value.startswith("@"):
        name = b"\0" + value[1:].encode()
        if len(name) > _MAX_PATH or len(value) < 2:
            raise NotifyConfigError(f"NOTIFY_SOCKET={value[:40]!r}: an abstract name of 1..107 octets is needed")
        return name
    if value.startswith("/"):
        if len(value.encode()) >= _MAX_PATH:
            raise NotifyConfigError(f"NOTIFY_SOCKET={value[:40]!r}...: longer than a Unix socket path may be")
        return value
    raise NotifyConfigError(f"NOTIFY_SOCKET={value[:40]!r}: neither an absolute path nor an abstract @name "
                            "(other transports, such as vsock, are not supported)")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:MAX_STATUS]


class Notifier:
    """The notification channel of this process, from ``environ`` (default ``os.environ``, whose notify
    variables are removed when ``unset_environment``).

    ``enabled`` is False without ``$NOTIFY_SOCKET``; ``watchdog_s`` is the ping interval (half of
    ``$WATCHDOG_USEC``), or None when no watchdog is asked of this process.  A malformed variable is a
    :class:`NotifyConfigError` naming it (the daemon's start-up reports it and exits: a unit that asks for
    a watchdog the daemon cannot read must not run unwatched).
    """

    def __init__(self, environ: MutableMapping[str, str] | None = None, *, unset_environment: bool = True,
                 pid: int | None = None) -> None:
        env: MutableMapping[str, str] = os.environ if environ is None else environ
        value = env.get("NOTIFY_SOCKET") or None
        usec = env.get("WATCHDOG_USEC") or None
        wd_pid = env.get("WATCHDOG_PID") or None
        if unset_environment:
            for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
                env.pop(key, None)
        self.address = _address(value) if value else None
        self.watchdog_s: float | None = None
        if usec is not None:
            if not usec.isdigit() or int(usec) == 0:
                raise NotifyConfigError(f"WATCHDOG_USEC={usec[:40]!r}: a positive number of microseconds is needed")
            mine = pid if pid is not None else os.getpid()
            if wd_pid is not None and not wd_pid.isdigit():
                raise NotifyConfigError(f"WATCHDOG_PID={wd_pid[:40]!r}: a process id is needed")
            if wd_pid is None or int(wd_pid) == mine:
                self.watchdog_s = int(usec) / 2e6
        self.errors = 0
        self.sent = 0
        self._sock: socket.socket | None = None
        self._logged = False
        self._timers: list[Any] = []
        self._last_status: str | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    # ------------------------------------------------------------------ the messages
    def send(self, fields: Mapping[str, Any]) -> bool:
        """One datagram of ``KEY=VALUE`` lines; True if it was sent.  Never raises for a send that fails."""
        if self.address is None:
            return False
        lines = []
        for key, value in fields.items():
            text = _one_line(value)
            lines.append(f"{key}={text}")
        data = ("\n".join(lines) + "\n").encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)  # a wedged manager must not stall the daemon's loop
            self._sock.sendto(data, self.address)
        except OSError as exc:
            self.errors += 1
            if not self._logged:  # once: a daemon whose manager went away keeps running, and quiet
                self._logged = True
                where = self.address if isinstance(self.address, str) else "@" + self.address[1:].decode(
                    errors="replace")
                log.warning("cannot notify the service manager at %s: %s (further failures are not logged)",
                            where, exc.strerror or exc)
            return False
        self.sent += 1
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (start-up done, or a reload finished), with a status line when given."""
        fields: dict[str, Any] = {"READY": 1}
        if status is not None:
            fields["STATUS"] = status
            self._last_status = _one_line(status)
        return self.send(fields)

    def reloading(self) -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC``: a reload starts (``ready()`` ends it)."""
        return self.send({"RELOADING": 1, "MONOTONIC_USEC": time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000})

    def stopping(self, status: str | None = None) -> bool:
        fields: dict[str, Any] = {"STOPPING": 1}
        if status is not None:
            fields["STATUS"] = status
        return self.send(fields)

    def status(self, text: str) -> bool:
        """``STATUS=text`` when it differs from the last one sent (a refresh of the same state sends nothing)."""
        line = _one_line(text)
        if line == self._last_status:
            return False
        self._last_status = line
        return self.send({"STATUS": line})

    def watchdog(self) -> bool:
        return self.send({"WATCHDOG": 1})

    # ------------------------------------------------------------------ the timers, on the daemon's loop
    def start(self, loop: Any, status: Callable[[], str] | None = None, *, status_every_s: float = 5.0) -> None:
        """Schedule, on the daemon's asyncio ``loop``: ``WATCHDOG=1`` every :attr:`watchdog_s` (when asked for)
        and a refreshed ``STATUS=`` from ``status()`` every ``status_every_s`` (when it changed).  A ``status``
        that raises is logged and skipped; the pings go on.  :meth:`close` stops both."""
        if not self.enabled:
            return
        if self.watchdog_s is not None:
            self._every(loop, self.watchdog_s, self.watchdog)
        if status is not None:
            def refresh() -> None:
                try:
                    text = status()
                except Exception as exc:  # noqa: BLE001 -- a status line is never worth the daemon
                    log.warning("status line failed: %s: %s", type(exc).__name__, exc)
                    return
                self.status(text)

            self._every(loop, status_every_s, refresh)

    def _every(self, loop: Any, interval: float, fn: Callable[[], Any]) -> None:
        slot = len(self._timers)
        self._timers.append(None)

        def tick() -> None:
            fn()
            self._timers[slot] = loop.call_later(interval, tick)

        self._timers[slot] = loop.call_later(interval, tick)

    def close(self) -> None:
        for timer in self._timers:
            if timer is not None:
                timer.cancel()
        self._timers.clear()
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def notifier(command: str) -> Notifier | None:
    """The service manager's notification channel (``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC``: systemd's
    ``Type=notify`` and ``WatchdogSec=``) of ``fmipfast COMMAND``, or None after a one-line error on stderr
    when the environment is malformed."""
    try:
        return Notifier()
    except NotifyConfigError as exc:
        print(f"fmipfast {command}: {exc}", file=sys.stderr)
        return None

"""The control API other daemons use: a Python API over a running engine, and a Unix-socket JSON protocol
with a small client (docs/design.md §7).

Protocol: one JSON object per line, UTF-8.  Request ``{"id": 7, "cmd": "counters", "args": {}}``; response
``{"id": 7, "ok": true, "result": ...}`` or ``{"id": 7, "ok": false, "error": "..."}``.  ``id`` is optional
(null, an integer or a string of at most 256 characters) and echoed; no other key is accepted.  Commands:

* ``counters`` — the engine's counters, drops by reason and the conservation check;
* ``neighbors`` — the neighbor cache (address, MAC, state, flags, interface, expiry);
* ``interfaces`` — the interfaces with their addresses and port statistics;
* ``handover`` — trigger a handover (:data:`HANDOVER_ARGS`): handed to the protocol layer attached with
  :meth:`RouterControl.attach_protocol`;
* ``handovers`` / ``mobile-nodes`` — what the attached protocol layer reports;
* ``metrics`` — the Prometheus text of :meth:`RouterControl.metrics` (what ``--metrics`` serves over HTTP);
* ``ping`` — liveness.

Arguments are checked when a request is received, by :func:`check_args` against the command's table of
:class:`Arg` (every command has one; all but ``handover`` take no argument): an unknown name, a missing
required one, a value of the wrong JSON type or out of range is refused with an error naming the argument,
before anything runs.  Integers are JSON integers (not floats, strings or booleans); booleans are JSON
``true``/``false`` only (``fmipfast ctl --arg buffer=false`` sends that: ``ctl`` parses each value as
JSON); ``null`` for an optional argument means "not given".  ``handover``'s arguments, with the ranges of
the wire's fields:

* ``pcoa``, ``nar`` (required), ``ncoa`` — a global unicast IPv6 address (not unspecified, loopback,
  IPv4-compatible or -mapped, multicast, link-local or site-local; no zone);
* ``nar_principal`` — ``name@REALM`` (each part 1..255 UTF-8 octets); required by the router's protocol;
* ``prefix_size`` — 1..128 (the HRD/HI Prefix Size octet), default 64;
* ``nar_mac`` — a unicast MAC-48 (6 octets) or EUI-64 (8 octets), hex with ``:``, ``-`` or no separators;
* ``buffer`` — the U flag of the HI's Handover Control, default true;
* ``lifetime_ms`` — 1..4294967295 (the Handover Control's 32-bit Lifetime in ms; 0 there means "none
  given"), default 3000.

Bounds (bad input gets a clear error reply, is counted in :attr:`ControlServer.counters`, never raises in
the server and never holds it):

* a request line longer than ``max_request`` octets (64 KiB) gets an error and that connection is closed
  (the stream position is unknown after it); invalid UTF-8, invalid JSON (``NaN``, ``Infinity`` and
  numbers that overflow a float are not JSON; integers of more than 4300 digits and nesting deeper than
  the interpreter's recursion limit are refused), a non-object, an unknown key, command or argument, or a
  bad argument value get an error and the connection stays usable;
* at most ``max_clients`` (16) connections; when all are taken, a new connection evicts the one that has
  made progress (a request received, a reply written) least recently — it is sent an error line and
  closed — so an operator always gets in, however many silent clients there are;
* a connection that sends no complete request line within ``idle_timeout`` (60 s) of connecting or of its
  last reply is closed: this bounds a silent client and a slow one alike;
* replies a client has not read queue in its socket (a 64 KiB send buffer, which Linux doubles) and in at
  most 64 KiB of the transport; a client that pipelines requests without reading the replies is
  disconnected when a reply cannot be written within ``write_timeout`` (10 s): it gets a bounded amount of
  answers (about 190 KiB) and holds its slot a bounded time.  The last reply before a client's EOF is
  still delivered, within the same bound;
* the socket is bound with its final mode (``0660``: the daemon's user and group), under a umask that
  allows nothing more, so no other user can connect to it at any moment, not even between the bind and a
  chmod; an existing path is replaced only when it is a stale socket (no server answers on it).

Every daemon (router, MN, KDC) starts its ``--control`` socket and its ``--metrics`` endpoint with
:func:`start_endpoints`.

Ownership: the server runs on the engine's asyncio loop and reads the engine between batches; commands
that change state go through the protocol layer, never straight into the tables.

May import: engine (read-only views), metrics, config, errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import reprlib
import socket
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from fmipfast.constants import DropReason
from fmipfast.engine import Engine
from fmipfast.errors import ControlError, FmipError

if TYPE_CHECKING:
    from fmipfast.metrics import MetricsServer

__all__ = ["RouterControl", "ControlServer", "ControlClient", "ControlError", "Dispatcher", "COMMANDS", "Arg",
           "check_args", "HANDOVER_ARGS", "ROUTER_COMMAND_ARGS", "start_endpoints"]

COMMANDS = ("ping", "counters", "neighbors", "interfaces", "handover", "handovers", "mobile-nodes", "metrics")
_STATE_NAMES = {0: "none", 1: "incomplete", 2: "reachable", 3: "stale", 4: "delay", 5: "probe"}
_FLAG_NAMES = ((0x01, "router"), (0x02, "proxy"), (0x04, "local"), (0x08, "tunnel"), (0x10, "static"),
               (0x20, "hold"))


class Dispatcher(Protocol):
    """What a :class:`ControlServer` serves: :class:`RouterControl`, or the MN daemon (``fmipfast.mnd``)."""

    def dispatch(self, cmd: str, args: dict[str, Any]) -> Any: ...


# ---------------------------------------------------------------------------------------------- arguments
_shown = reprlib.Repr()
_shown.maxstring = _shown.maxother = _shown.maxlong = 48
_shown.maxlist = _shown.maxdict = 4
_shown.maxlevel = 2


def _show(value: Any) -> str:
    """A bounded rendering of a refused value for an error message."""
    return _shown.repr(value)


@dataclass(frozen=True)
class Arg:
    """One argument of a control command: ``what`` it must be (the error says so) and ``parse``, which returns
    the typed value or raises :class:`ValueError` (its text, when there is one, is added to the error)."""

    what: str
    parse: Callable[[Any], Any]
    required: bool = False


def check_args(cmd: str, args: Any, spec: Mapping[str, Arg], *, require: Iterable[str] = ()) -> dict[str, Any]:
    """``args`` of command ``cmd`` checked against ``spec``: a dict of the typed values of the arguments given
    (an optional one given as ``null`` is left out).  :class:`ControlError` naming the argument for an unknown
    name, a missing required one (``spec``'s or ``require``'s) or a bad value."""
    if not isinstance(args, dict):
        raise ControlError(f"{cmd}: 'args' must be a JSON object, got {_show(args)}")
    for name in args:
        if name not in spec:
            takes = ", ".join(spec) if spec else "no arguments"
            raise ControlError(f"{cmd}: unknown argument {_show(name)}; {cmd} takes {takes}")
    required = {n for n, a in spec.items() if a.required} | set(require)
    out: dict[str, Any] = {}
    for name, arg in spec.items():
        value = args.get(name)
        if value is None:
            if name in required:
                raise ControlError(f"{cmd}: '{name}' is required ({arg.what})")
            continue
        try:
            out[name] = arg.parse(value)
        except (ValueError, TypeError, OverflowError) as exc:
            detail = f" ({exc})" if str(exc) else ""
            raise ControlError(f"{cmd}: '{name}' must be {arg.what}{detail}, got {_show(value)}") from None
    return out


def integer(lo: int, hi: int, *, required: bool = False) -> Arg:
    """A JSON integer in ``lo..hi`` (not a float, a string or a boolean)."""
    def parse(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ValueError
        return v

    return Arg(f"an integer in {lo}..{hi}", parse, required)


def boolean(*, required: bool = False) -> Arg:
    """JSON ``true`` or ``false`` only: the string ``"false"`` is not false, so it is refused."""
    def parse(v: Any) -> bool:
        if not isinstance(v, bool):
            raise ValueError
        return v

    return Arg("true or false (JSON booleans, not strings or numbers)", parse, required)


_NOT_GLOBAL = ((IPv6Network("::ffff:0:0/96"), "IPv4-mapped"),
               (IPv6Network("::/8"), "unspecified, loopback or IPv4-compatible"),
               (IPv6Network("ff00::/8"), "multicast"), (IPv6Network("fe80::/10"), "link-local"),
               (IPv6Network("fec0::/10"), "site-local"))


def global_address(*, required: bool = False) -> Arg:
    """An IPv6 address string of global scope that names one node."""
    def parse(v: Any) -> IPv6Address:
        if isinstance(v, IPv6Address):  # a Python caller's
            a = v
        elif not isinstance(v, str) or len(v) > 45 or "%" in v:
            raise ValueError
        else:
            try:
                a = IPv6Address(v)
            except ValueError:
                raise ValueError from None  # its text repeats the value, unbounded
        if a.scope_id is not None:
            raise ValueError("no zone")
        for net, why in _NOT_GLOBAL:
            if a in net:
                raise ValueError(why)
        return a

    return Arg("a global unicast IPv6 address", parse, required)


def principal_text(*, required: bool = False) -> Arg:
    """``name@REALM``: each part 1..255 UTF-8 octets, the realm without '@' (the wire's Principal option)."""
    def parse(v: Any) -> str:
        if not isinstance(v, str):
            raise ValueError
        name, sep, realm = v.rpartition("@")
        if not sep or not name or not realm:
            raise ValueError
        try:
            if max(len(name.encode()), len(realm.encode())) > 255:
                raise ValueError("a part longer than 255 octets")
        except UnicodeEncodeError:
            raise ValueError("not encodable in UTF-8") from None
        return v

    return Arg("a principal name@REALM", parse, required)


_HEX = frozenset("0123456789abcdefABCDEF")


def link_address(*, required: bool = False) -> Arg:
    """A unicast MAC-48 (6 octets) or EUI-64 (8 octets): hex pairs separated by ':' or '-' or not at all."""
    def parse(v: Any) -> bytes:
        if not isinstance(v, str) or len(v) > 23:
            raise ValueError
        sep = ":" if ":" in v else "-" if "-" in v else ""
        pairs = v.split(sep) if sep else [v[i:i + 2] for i in range(0, len(v), 2)]
        if len(pairs) not in (6, 8) or any(len(p) != 2 or not set(p) <= _HEX for p in pairs):
            raise ValueError
        raw = bytes.fromhex("".join(pairs))
        if raw[0] & 1:
            raise ValueError("a group address")
        if not any(raw):
            raise ValueError("all zeros")
        return raw

    return Arg("a unicast MAC (6 octets) or EUI-64 (8 octets) in hex", parse, required)


HANDOVER_ARGS: dict[str, Arg] = {
    "pcoa": global_address(required=True),
    "nar": global_address(required=True),
    "nar_principal": principal_text(),  # the router's protocol requires it; another layer may supply it
    "prefix_size": integer(1, 128),
    "nar_mac": link_address(),
    "ncoa": global_address(),
    "buffer": boolean(),
    "lifetime_ms": integer(1, (1 << 32) - 1),
}
"""``handover``'s arguments: what :meth:`RouterControl.handover` checks on receipt, and what
``fmipfast.router.RouterAgent.trigger`` reads the values with."""

ROUTER_COMMAND_ARGS: dict[str, dict[str, Arg]] = {cmd: {} for cmd in COMMANDS} | {"handover": HANDOVER_ARGS}
"""Every router command's arguments (only ``handover`` takes any)."""


class RouterControl:
    """The Python API over one engine.  ``attach_protocol`` plugs in the handover layer (fmipfast.ar):
    ``trigger(args) -> dict``, ``handovers() -> list``, ``mobile_nodes() -> list``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._trigger: Callable[[dict[str, Any]], Any] | None = None
        self._handovers: Callable[[], Any] | None = None
        self._mobile_nodes: Callable[[], Any] | None = None
        self._counter_sets: dict[str, tuple[str, Callable[[], dict[str, int]]]] = {}
        self._histograms: dict[str, tuple[str, Callable[[], Any]]] = {}

    def attach_histogram(self, name: str, help: str, histogram: Callable[[], Any]) -> None:
        """Export another layer's :class:`fmipfast.histogram.Histogram` as ``fmipfast_<name>`` (``histogram()``
        may return None while there is none, e.g. no KDC client)."""
        self._histograms[name] = (help, histogram)

    def attach_counters(self, name: str, help: str, counters: Callable[[], dict[str, int]]) -> None:
        """Export another layer's counters (the handover protocol's, AH's) as ``fmipfast_<name>_total``."""
        self._counter_sets[name] = (help, counters)

    def metrics(self, name: str | None = None) -> str:
        """Everything this router counts, in the Prometheus text format; ``name`` labels every sample
        ``router="<name>"``."""
        from fmipfast.metrics import counter_family, engine_families, histogram_family, render

        families = engine_families(self.engine)
        for key, (help_text, get) in self._counter_sets.items():
            families.append(counter_family(key, help_text, get()))
        for key, (help_text, hist) in self._histograms.items():
            h = hist()
            if h is not None:
                families.append(histogram_family(key, help_text, h))
        return render(families, {"router": name} if name else None)

    def attach_protocol(self, trigger: Callable[[dict[str, Any]], Any], handovers: Callable[[], Any],
                        mobile_nodes: Callable[[], Any]) -> None:
        self._trigger, self._handovers, self._mobile_nodes = trigger, handovers, mobile_nodes

    def counters(self) -> dict[str, Any]:
        e = self.engine
        return {"counters": dict(e.counters), "drops": e.drop_counts(), "conservation": e.conservation(),
                "requeue": {k: v for k, v in e.requeue_counters.items() if v},
                "requeue_drops": {r.name.lower(): int(e.requeue_drops[r]) for r in DropReason if e.requeue_drops[r]},
                "buffer": dict(e.buffer.counters), "resolve_queue": dict(e.unresolved.counters),
                "neighbor_cache": dict(e.ncache.counters), "route_switch_holds": e.holds()}

    def neighbors(self) -> list[dict[str, Any]]:
        nc = self.engine.ncache
        used = np.flatnonzero(np.asarray(nc.in_use))
        out = []
        from ipaddress import IPv6Address

        for i in used:
            flags = int(nc.flags[i])
            out.append({"address": str(IPv6Address(bytes(nc.keys[i]))),
                        "mac": bytes(nc.macs[i]).hex(":"),
                        "state": _STATE_NAMES.get(int(nc.states[i]), str(int(nc.states[i]))),
                        "flags": [name for bit, name in _FLAG_NAMES if flags & bit],
                        "interface": self.engine.interfaces[int(nc.ifindex[i])].name
                        if int(nc.ifindex[i]) < len(self.engine.interfaces) else int(nc.ifindex[i]),
                        "expiry_ns": int(nc.expiry[i])})
        return out

    def interfaces(self) -> list[dict[str, Any]]:
        return [{"name": i.name, "role": i.cfg.role, "mac": i.mac.hex(":"), "link_local": str(i.link_local),
                 "addresses": [f"{a}/{p}" for a, p in i.addresses], "statistics": i.port.statistics()}
                for i in self.engine.interfaces]

    def handover(self, args: dict[str, Any]) -> Any:
        """Check ``args`` (:data:`HANDOVER_ARGS`) and hand them, as given, to the attached trigger."""
        check_args("handover", args, HANDOVER_ARGS)
        if self._trigger is None:
            raise ControlError("no handover protocol is attached to this engine")
        return self._trigger(args)

    def handovers(self) -> Any:
        return [] if self._handovers is None else self._handovers()

    def mobile_nodes(self) -> Any:
        return [] if self._mobile_nodes is None else self._mobile_nodes()

    def dispatch(self, cmd: str, args: dict[str, Any]) -> Any:
        """Run ``cmd`` once its arguments are checked (:data:`ROUTER_COMMAND_ARGS`): a refused request changes
        nothing."""
        spec = ROUTER_COMMAND_ARGS.get(cmd) if isinstance(cmd, str) else None
        if spec is None:
            raise ControlError(f"unknown command {_show(cmd)}; commands: {', '.join(COMMANDS)}")
        if cmd == "handover":
            return self.handover(args)
        check_args(cmd, args, spec)
        if cmd == "ping":
            return "pong"
        if cmd == "counters":
            return self.counters()
        if cmd == "neighbors":
            return self.neighbors()
        if cmd == "interfaces":
            return self.interfaces()
        if cmd == "handovers":
            return self.handovers()
        if cmd == "mobile-nodes":
            return self.mobile_nodes()
        return self.metrics(self.engine.cfg.name)  # "metrics"


def _error_text(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, FmipError) else f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 1000 else text[:1000] + "..."


class _BadRequest(ControlError):
    """The request line itself is unusable (not UTF-8, not JSON, not a request object)."""


def _no_constant(name: str) -> Any:
    raise _BadRequest(f"invalid JSON: {name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadRequest(f"invalid JSON: {_show(text)} overflows a float")
    return value


_REQUEST_KEYS = ("id", "cmd", "args")
_WRITE_BUFFER_HIGH = 64 * 1024  # octets of replies the transport queues beyond the socket's own buffer
_SOCKET_BUFFER = 64 * 1024  # SO_SNDBUF of a connection: with the above, what a non-reader can make us queue


def _parse_request(line: bytes) -> dict[str, Any]:
    """The request object of one line, or :class:`_BadRequest` saying what is wrong with it."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _BadRequest(f"a request is UTF-8 text: invalid octet at offset {exc.start}") from None
    try:
        req = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise _BadRequest(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise _BadRequest("invalid JSON: nested too deeply") from None
    except _BadRequest:
        raise
    except ValueError as exc:  # an integer of more digits than int() converts
        raise _BadRequest(f"invalid JSON: {exc}") from None
    if not isinstance(req, dict):
        raise _BadRequest("a request is a JSON object")
    return req


def _request_fields(req: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    for key in req:
        if key not in _REQUEST_KEYS:
            raise _BadRequest(f"unknown request key {_show(key)}; a request has {', '.join(_REQUEST_KEYS)}")
    cmd, args = req.get("cmd"), req.get("args")
    if not isinstance(cmd, str):
        raise _BadRequest("a request needs 'cmd' (a string) and optional 'args' (an object)")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise _BadRequest(f"{_show(cmd)}: 'args' must be a JSON object, got {_show(args)}")
    return cmd, args


def _valid_id(rid: Any) -> bool:
    return rid is None or (isinstance(rid, int) and not isinstance(rid, bool)) or (
        isinstance(rid, str) and len(rid) <= 256)


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, default=str, allow_nan=False).encode() + b"\n"


def _shut(transport: asyncio.BaseTransport) -> None:
    """Close a connection: at once when replies are still queued (the peer is not reading them)."""
    if isinstance(transport, asyncio.WriteTransport) and transport.get_write_buffer_size():
        transport.abort()
    else:
        transport.close()


class _Connection:
    __slots__ = ("writer", "task", "last", "evicted")

    def __init__(self, writer: asyncio.StreamWriter, now: float) -> None:
        self.writer = writer
        self.task = asyncio.current_task()
        self.last = now  # when it last made progress: connected, a request received, a reply written
        self.evicted = False


class ControlServer:
    """The Unix-socket JSON server for one :class:`RouterControl` or any other :class:`Dispatcher` (start/close
    on the running loop).  The bounds (see the module) are the keyword arguments; ``counters`` counts
    connections, ``evicted`` ones (made room for a new one), ``idle_timeouts``, ``write_timeouts``,
    ``requests``, ``errors`` (error replies), ``invalid`` (of those, unusable request lines) and ``too_long``
    lines."""

    def __init__(self, control: Dispatcher, path: str, *, max_request: int = 65536, max_clients: int = 16,
                 idle_timeout: float = 60.0, write_timeout: float = 10.0, mode: int = 0o660) -> None:
        if max_clients < 1:
            raise ValueError("max_clients: at least 1")
        self.control = control
        self.path = path
        self.max_request = max_request
        self.max_clients = max_clients
        self.idle_timeout = idle_timeout
        self.write_timeout = write_timeout
        self.mode = mode
        self.counters = dict.fromkeys(("connections", "evicted", "idle_timeouts", "write_timeouts", "requests",
                                       "errors", "invalid", "too_long"), 0)
        self._conns: dict[int, _Connection] = {}
        self._server: asyncio.base_events.Server | None = None
        self._inode: int | None = None

    @property
    def clients(self) -> int:
        """Connections open now."""
        return len(self._conns)

    async def start(self) -> None:
        sock = self._bind()
        try:
            self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=self.max_request)
        except BaseException:
            sock.close()
            self._unlink()
            raise

    def _bind(self) -> socket.socket:
        """The listening socket, created with its final mode: bound under a umask that leaves nothing beyond
        ``mode``, so there is no moment at which anyone else may connect (a chmod after the bind would leave
        one)."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISSOCK(st.st_mode):
                raise ControlError(f"control socket {self.path}: the path exists and is not a socket")
            if _is_listening(self.path):
                raise ControlError(f"control socket {self.path}: another server is listening on it")
            os.unlink(self.path)  # a stale socket from a crash
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            old = os.umask(0o777 & ~self.mode)
            try:
                sock.bind(self.path)
            finally:
                os.umask(old)
            self._inode = os.lstat(self.path).st_ino
        except BaseException:
            sock.close()
            raise
        return sock

    def _unlink(self) -> None:
        """Remove our socket file (not one another server has put there since)."""
        try:
            if self._inode is not None and os.lstat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        self._inode = None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            conns = list(self._conns.values())
            for conn in conns:
                conn.writer.transport.abort()
            tasks = [c.task for c in conns if c.task is not None]
            if tasks:  # they see the end of their connection at once
                await asyncio.wait(tasks, timeout=5)
            await self._server.wait_closed()
            self._server = None
        self._unlink()

    def _evict(self) -> None:
        """Make room: close the connection that has made progress least recently, telling it why."""
        victim = min(self._conns.values(), key=lambda c: c.last)
        del self._conns[id(victim)]
        victim.evicted = True
        self.counters["evicted"] += 1
        transport = victim.writer.transport
        if not transport.is_closing() and not transport.get_write_buffer_size():
            transport.write(_line({"id": None, "ok": False, "error": "too many control clients: this connection "
                                   "made progress least recently and is closed"}))
        _shut(transport)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while len(self._conns) >= self.max_clients:
            self._evict()
        conn = _Connection(writer, loop.time())
        self._conns[id(conn)] = conn
        self.counters["connections"] += 1
        writer.transport.set_write_buffer_limits(high=_WRITE_BUFFER_HIGH)
        sock = writer.get_extra_info("socket")
        if sock is not None:  # replies unread by the peer: this much in the kernel (Linux doubles it), no more
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
        try:
            while not conn.evicted:
                try:
                    line = await asyncio.wait_for(reader.readline(), self.idle_timeout)
                except asyncio.TimeoutError:
                    self.counters["idle_timeouts"] += 1
                    break
                except (asyncio.LimitOverrunError, ValueError):
                    self.counters["too_long"] += 1
                    await self._send(conn, _line({"id": None, "ok": False,
                                                  "error": f"request longer than {self.max_request} octets"}))
                    break  # the stream position is unknown after an overrun: close this connection
                if not line or conn.evicted:
                    break
                conn.last = loop.time()
                if not await self._send(conn, self._handle(line)):
                    break
                conn.last = loop.time()
        except ConnectionError:
            pass
        finally:
            await self._finish(writer)
            self._conns.pop(id(conn), None)

    async def _finish(self, writer: asyncio.StreamWriter) -> None:
        """Close a connection after its last reply has gone out -- or, when the peer does not take it within
        ``write_timeout``, at once."""
        if writer.transport.is_closing():
            return  # evicted or aborted
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), self.write_timeout)
        except (asyncio.TimeoutError, ConnectionError):
            writer.transport.abort()

    async def _send(self, conn: _Connection, data: bytes) -> bool:
        """Write one reply; False when the connection is gone or the peer did not take it within
        ``write_timeout`` (then it is closed)."""
        writer = conn.writer
        if writer.transport.is_closing():
            return False
        writer.write(data)
        try:
            await asyncio.wait_for(writer.drain(), self.write_timeout)
        except asyncio.TimeoutError:
            self.counters["write_timeouts"] += 1
            writer.transport.abort()
            return False
        return True

    def _handle(self, line: bytes) -> bytes:
        """The reply line to one request line: never raises."""
        self.counters["requests"] += 1
        rid = None
        try:
            req = _parse_request(line)
            if not _valid_id(req.get("id")):
                raise _BadRequest("'id' must be null, an integer or a string of at most 256 characters")
            rid = req.get("id")
            cmd, args = _request_fields(req)
            reply = {"id": rid, "ok": True, "result": self.control.dispatch(cmd, args)}
        except Exception as exc:  # every failure becomes an error response; the server keeps serving
            self.counters["errors"] += 1
            if isinstance(exc, _BadRequest):
                self.counters["invalid"] += 1
            return _line({"id": rid, "ok": False, "error": _error_text(exc)})
        try:
            return _line(reply)
        except (TypeError, ValueError, RecursionError) as exc:
            self.counters["errors"] += 1
            return _line({"id": rid, "ok": False, "error": f"the result is not JSON: {_error_text(exc)}"})


def _is_listening(path: str) -> bool:
    """Whether a server answers on ``path``: a connect that does not fail at once (a full backlog keeps it
    waiting) means one does."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(path)
        return True
    except socket.timeout:
        return True
    except OSError:
        return False
    finally:
        s.close()


class ControlClient:
    """A blocking client: ``ControlClient(path).call("counters")``; ``timeout`` bounds the whole call."""

    def __init__(self, path: str, *, timeout: float = 5.0, max_reply: int = 64 << 20) -> None:
        self.path = path
        self.timeout = timeout
        self.max_reply = max_reply
        self._next = 1

    def call(self, cmd: str, **args: Any) -> Any:
        import time

        rid = self._next
        self._next += 1
        deadline = time.monotonic() + self.timeout
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            try:
                s.connect(self.path)
            except socket.timeout:
                raise
            except OSError as exc:
                raise ControlError(f"cannot reach the control socket {self.path}: {exc.strerror or exc}") from None
            s.sendall(json.dumps({"id": rid, "cmd": cmd, "args": args}).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout
                s.settimeout(left)
                chunk = s.recv(65536)
                if not chunk:
                    raise ControlError("the control server closed the connection")
                buf += chunk
                if len(buf) > self.max_reply:
                    raise ControlError(f"a reply longer than {self.max_reply} octets")
        except socket.timeout:
            raise ControlError(f"no answer from {self.path} within {self.timeout} s") from None
        except OSError as exc:
            raise ControlError(f"control socket {self.path}: {exc.strerror or exc}") from None
        finally:
            s.close()
        try:
            reply = json.loads(buf)
        except ValueError:
            raise ControlError("the control server's reply is not JSON") from None
        if not isinstance(reply, dict):
            raise ControlError("the control server's reply is not a JSON object")
        if not reply.get("ok"):
            raise ControlError(str(reply.get("error", "unknown error")))
        return reply.get("result")


ENDPOINT_HELP = {
    "control_server": "The control socket's connections, requests and refusals (bad JSON, too long, timeouts, "
                      "evictions).",
    "metrics_server": "The Prometheus endpoint's scrapes and refusals.",
}


async def start_endpoints(control: Dispatcher | None, control_path: str | None, collect: Callable[[], str],
                          metrics: str | None, labels: Mapping[str, str] | None = None
                          ) -> list[ControlServer | MetricsServer]:
    """A daemon's JSON control socket (``--control``, served by ``control``) and Prometheus endpoint
    (``--metrics [HOST:]PORT``, the text ``collect()`` returns), each when asked for; started, to be closed
    at exit.  If one fails to start, those already started are closed before the error goes up.

    The endpoints count their own refusals too: the scrape carries ``fmipfast_control_server_total`` and
    ``fmipfast_metrics_server_total`` (``labels`` on every sample, as ``collect()`` labels its own), so an
    operator sees a client hammering the socket with bad requests without reading logs."""
    from fmipfast.metrics import MetricsServer, counter_family, render

    servers: list[ControlServer | MetricsServer] = []

    def collect_all() -> str:
        families = [counter_family("control_server" if isinstance(srv, ControlServer) else "metrics_server",
                                   ENDPOINT_HELP["control_server" if isinstance(srv, ControlServer)
                                                 else "metrics_server"], srv.counters)
                    for srv in servers]
        return collect() + render(families, labels)

    try:
        if control_path:
            if control is None:
                raise ValueError("a control socket needs a dispatcher")
            server = ControlServer(control, control_path)
            await server.start()
            servers.append(server)
        if metrics:
            host, _, port = metrics.rpartition(":")
            exporter = MetricsServer(collect_all, host.strip("[]") or "::1", int(port))
            await exporter.start()
            servers.append(exporter)
    except BaseException:
        for srv in servers:
            await srv.close()
        raise
    return servers

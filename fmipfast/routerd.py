"""``fmipfast router --config FILE.toml``: the access-router daemon's composition root (docs/design.md §1, §7).

It assembles a router from the ``[router]`` section: the logging (:mod:`fmipfast.logsetup`), the service
manager's notifications (:mod:`fmipfast.sdnotify`), one :class:`fmipfast.ports.RingPort` per interface, the
:class:`fmipfast.engine.Engine` over them, and with ``[router.security]`` the handover protocol
(:class:`fmipfast.router.RouterAgent`: its keytab, AH SAs and sequence-number store, KDC client or GSS-API
acceptor, saved sessions), the control API and Prometheus metrics (:mod:`fmipfast.control`,
:mod:`fmipfast.metrics`); it sets the process's CPU scheduling first (``[router.scheduling]``); then runs the
engine until SIGTERM/SIGINT, taking new keys on SIGHUP, and with the handover protocol rehearses the NAR's side
of a handover on throwaway state in its first turns (:mod:`fmipfast.warmup`).  It prints
``READY name interfaces...`` once serving and the engine's counters as one JSON object at exit.

Ownership: :class:`RouterDaemon` owns the parts.  The ports, the engine and the state files are opened on the
main thread before the event loop starts; the agent, the control API and the endpoints live on that loop,
which alone drives them; the ports are closed after it ends.  A state file or an interface that cannot be
opened is a start-up error (one line on stderr, exit status 2), like a configuration ``check-config`` would
refuse (:func:`load_config`, the same checks).

May import: engine, ports, router, warmup, control, metrics, sdnotify, logsetup, scheduling, config, security,
constants, errors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from ipaddress import IPv6Address
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmipfast import config, scheduling
from fmipfast.config import Config, SchedulingConfig, SecurityConfig
from fmipfast.constants import Icmp6Type
from fmipfast.control import RouterControl, start_endpoints
from fmipfast.engine import Engine
from fmipfast.errors import ConfigError, FmipError
from fmipfast.logsetup import log_value, setup_logging
from fmipfast.ports import RingPort
from fmipfast.router import LoopScheduler, RouterAgent, load_sessions
from fmipfast.sdnotify import Notifier, notifier
from fmipfast.security import ah
from fmipfast.security import lwkerb as L
from fmipfast.security.kdc import KdcClient
from fmipfast.warmup import rehearsal

if TYPE_CHECKING:
    from fmipfast.security.gss import GssVerifier

__all__ = ["RouterDaemon", "StartupError", "run", "load_config", "check_config", "router_control",
           "log_router_note", "kernel_ipv6_warnings", "IPV6_CONF", "apply_scheduling", "warm_up_on"]

log = logging.getLogger("fmipfast.router")

#: The MN sessions of ``session_file`` (:func:`fmipfast.router.load_sessions`).
RestoredSessions = list[tuple[IPv6Address, bytes, bytes | None, int | None]]
#: ``[router.security]`` as the agent's objects: principal, keytab, SAD of both directions' SAs, KDC client.
SecurityObjects = tuple[L.Principal, L.Keytab, ah.SADatabase, KdcClient | None]


class StartupError(FmipError):
    """What stops the router before it serves (a state file, an interface): one line on stderr, exit 2."""


def load_config(path: str) -> Config:
    """``fmipfast router``'s configuration: the file, at least one interface, and the [router.security] objects
    the daemon builds (principals as the light-weight Kerberos encodes them, keys, SAs) -- check-config runs the
    same function."""
    return check_config(config.load(path), path)


def check_config(cfg: Config, source: str | None) -> Config:
    """The checks of :func:`load_config` on a parsed configuration (``check-config`` on a router's file)."""
    if not cfg.router.interfaces:
        raise ConfigError("router.interfaces", "at least one interface is required", source=source)
    if cfg.router.security is not None:
        try:
            _security_objects(cfg.router.security)
        except ValueError as exc:
            raise ConfigError("router.security", str(exc), source=source) from None
        _gss_verifier(cfg.router.security, source)  # the package, the library and the keytab, checked now
    return cfg


def _gss_verifier(sec: SecurityConfig, source: str | None = None) -> GssVerifier | None:
    """``[router.security] mechanism = "gssapi"``: the acceptor for its keytab and principal (None for lwkerb);
    a missing package/library or an unusable keytab is a ConfigError naming it."""
    if sec.mechanism != "gssapi":
        return None
    if sec.keytab is None:
        raise ConfigError("router.security.keytab", "missing: the gssapi mechanism accepts with a keytab file",
                          source=source)
    try:
        from fmipfast.security.gss import GssVerifier

        try:
            return GssVerifier(sec.keytab, sec.principal, rcache=sec.rcache)
        except L.LkbError as exc:
            raise ConfigError("router.security.keytab", str(exc), source=source) from None
    except ImportError as exc:
        raise ConfigError("router.security.mechanism", str(exc), source=source) from None


#: Router-agent notes that are routine at a busy router: logged at DEBUG (the counters have them all).
_QUIET_NOTES = frozenset({"ar:drop", "send", "ar:send", "ar:recv", "verify_start"})


def log_router_note(what: str, fields: dict[str, Any]) -> None:
    """The router agent's ``on_note``: every protocol step as a log record of ``fmipfast.router`` with its
    fields structured (``[logging] format = "json"``) -- sends, receipts and drops at DEBUG, the rest (state
    changes, failures, proxies, tunnels, flushes, route switches) at INFO."""
    level = logging.DEBUG if what in _QUIET_NOTES else logging.INFO
    if log.isEnabledFor(level):
        # mono_ns given: a note written later than it happened (RouterAgent writes an Attach's notes after the
        # flush), with the time it happened
        at = fields.get("mono_ns")
        stamp = at if isinstance(at, int) else time.monotonic_ns()
        clean = {k: v for k, v in fields.items() if k not in ("icmp", "mono_ns")}
        # mono_ns (CLOCK_MONOTONIC, which every network namespace of a host shares): the note's time precisely
        # enough for `fmipfast lab run`'s latency waterfall (the record's own time is wall-clock milliseconds)
        log.log(level, "%s %s", what, " ".join(f"{k}={log_value(v)}" for k, v in clean.items()),
                extra={"fields": {"event": what, **clean, "mono_ns": stamp}})


#: Where Linux shows each interface's IPv6 settings.
IPV6_CONF = "/proc/sys/net/ipv6/conf"


def kernel_ipv6_warnings(names: Sequence[str], conf_dir: str | os.PathLike[str] = IPV6_CONF) -> list[str]:
    """One warning per interface on which the kernel's own IPv6 is still on (``disable_ipv6`` 0): the kernel
    would answer Neighbor Solicitations, send its own RAs or errors and, with ``forwarding`` 1, route the same
    traffic the engine owns.  An interface the kernel does not show is left to the engine to report."""
    out = []
    def read(name: str, key: str) -> str | None:
        try:
            return (Path(conf_dir) / name / key).read_text().strip()
        except OSError:
            return None

    for name in names:
        if read(name, "disable_ipv6") != "0":
            continue
        forwards = read(name, "forwarding") == "1"
        out.append(f"{name}: the kernel's IPv6 is enabled{' and it forwards' if forwards else ''}; it will answer "
                   f"Neighbor Discovery and handle packets beside the engine: "
                   f"sysctl -w net.ipv6.conf.{name}.disable_ipv6=1")
    return out


def run(config_path: str, *, control_path: str | None = None, metrics: str | None = None) -> int:
    """``fmipfast router``: assemble the router of ``config_path`` and run it until SIGTERM/SIGINT; the exit
    status (a configuration the loader refuses raises :class:`ConfigError`, for the command to report)."""
    cfg = load_config(config_path)
    setup_logging(cfg.logging)
    notify = notifier("router")
    if notify is None:
        return 2
    for warning in kernel_ipv6_warnings([i.name for i in cfg.router.interfaces]):
        log.warning(warning)
    try:
        daemon = RouterDaemon(cfg, config_path, notify)
    except StartupError as exc:
        print(f"fmipfast router: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(daemon.serve(control_path, metrics))
    finally:
        daemon.close()
    print(json.dumps(daemon.summary(), sort_keys=True), flush=True)
    return 0


class RouterDaemon:
    """One router made of its configuration: the state files of [router.security] and the ports and engine,
    opened here (a :class:`StartupError` names what failed); the agent, the control API and the endpoints
    come up in :meth:`serve`, on its loop."""

    def __init__(self, cfg: Config, config_path: str, notify: Notifier) -> None:
        self.cfg, self.config_path, self.notify = cfg, config_path, notify
        # first, on the one thread there is: the threads started later (the loop's executor) inherit it
        apply_scheduling(cfg.router.scheduling)
        # opened before any interface, so a bad state file is a start-up error
        self.seq_store, self.restored = _open_state(cfg.router.security)
        self.ports = _open_ports(cfg)
        self.engine = Engine(cfg.router, self.ports, codepoints=cfg.codepoints.profile())
        self.agent: RouterAgent | None = None

    async def serve(self, control_path: str | None, metrics: str | None) -> None:
        """Run the engine until SIGTERM/SIGINT: the agent and the endpoints first, then ``READY``; SIGHUP
        takes new keys (:meth:`reload`)."""
        r = self.cfg.router
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if r.security is not None:
            self.agent = _router_agent(self.engine, r.security, self.seq_store, self.restored)
        control = router_control(self.engine, self.agent)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        servers = await start_endpoints(control, control_path, lambda: control.metrics(r.name), metrics,
                                        {"router": r.name})
        print(f"READY {r.name} " + " ".join(self.ports), flush=True)
        self.notify.ready(self.status())  # rings bound, keys and state files loaded, endpoints up
        self.notify.start(loop, self.status)
        if self.agent is not None:
            warm_up_on(loop, self.cfg)
        try:
            await self.engine.run(stop)
        finally:
            self.notify.stopping("stopping")
            self.notify.close()
            if self.agent is not None:
                self.agent.save_sessions()  # the last changes (written within 0.2 s otherwise)
            for srv in servers:
                await srv.close()

    def reload(self) -> None:
        """SIGHUP (:func:`_reload_router`), told to the service manager."""
        self.notify.reloading()
        _reload_router(self.config_path, self.cfg, self.agent, self.seq_store)
        self.notify.ready(self.status())

    def status(self) -> str:
        return _router_status(self.engine, self.agent)

    def summary(self) -> dict[str, object]:
        """What ``fmipfast router`` prints at exit."""
        return {"counters": self.engine.counters, "drops": self.engine.drop_counts(),
                "conservation": self.engine.conservation()}

    def close(self) -> None:
        for port in self.ports.values():
            port.close()


def apply_scheduling(sched: SchedulingConfig) -> None:
    """Set the calling thread's CPU scheduling as ``[router.scheduling]`` says (:mod:`fmipfast.scheduling`;
    nothing for the defaults); what the kernel refuses is a :class:`StartupError` naming the key."""
    try:
        scheduling.apply_scheduling(sched, "router.scheduling")
    except scheduling.SchedulingError as exc:
        raise StartupError(str(exc)) from None


def warm_up_on(loop: asyncio.AbstractEventLoop, cfg: Config) -> None:
    """Rehearse the NAR's side of ``[router] warm_up_handovers`` handovers on throwaway state
    (:mod:`fmipfast.warmup`) on ``loop``, one per turn, so that the frames and timers of the router that already
    serves wait for one rehearsed handover at most (~2-3 ms); a rehearsal that fails costs the first handover
    its speed, never the router (a warning)."""
    n = cfg.router.warm_up_handovers
    if n <= 0:
        return
    started = time.monotonic_ns()
    steps = rehearsal(cfg.router, cfg.codepoints.profile())
    done = 0

    def step() -> None:
        nonlocal done
        try:
            done = next(steps)
        except StopIteration:
            log.info("warm-up: %d of %d rehearsed handovers completed in %.1f ms", done, n,
                     (time.monotonic_ns() - started) / 1e6)
            return
        except Exception as exc:  # noqa: BLE001 -- a rehearsal that fails leaves the router as it was
            log.warning("warm-up failed (the first handover will be slower): %s: %s", type(exc).__name__, exc)
            return
        loop.call_soon(step)

    loop.call_soon(step)


def _open_state(sec: SecurityConfig | None) -> tuple[ah.SequenceStore | None, RestoredSessions | None]:
    """The state files of [router.security]: the AH sequence-number store and the saved sessions (None when not
    configured); a file that cannot be used is a :class:`StartupError` naming its key."""
    if sec is None:
        return None, None
    try:
        store = ah.SequenceStore(sec.ah_sequence_file) if sec.ah_sequence_file else None
    except ValueError as exc:
        raise StartupError(f"router.security.ah_sequence_file: {exc}") from None
    try:
        restored = load_sessions(sec.session_file) if sec.session_file else None
    except ValueError as exc:
        raise StartupError(f"router.security.session_file: {exc}") from None
    return store, restored


def _open_ports(cfg: Config) -> dict[str, RingPort]:
    """A :class:`RingPort` per [router] interface; if one cannot be opened, those already open are closed and a
    :class:`StartupError` says why."""
    r = cfg.router
    # ND, echo and the fmipfast messages on a socket per interface that wakes the engine per frame (one worker
    # owns them: with a fanout group every worker's socket would see each message, so the ring keeps them)
    control_types = None
    if r.ring.control_socket and not r.ring.fanout_group:
        control_types = [int(Icmp6Type.ECHO_REQUEST), *range(int(Icmp6Type.ROUTER_SOLICITATION),
                                                              int(Icmp6Type.REDIRECT) + 1), cfg.codepoints.type]
    ports: dict[str, RingPort] = {}
    try:
        for iface in r.interfaces:
            ports[iface.name] = RingPort(iface.name, rx_block_size=r.ring.block_size, rx_block_nr=r.ring.block_count,
                                         rx_timeout_ms=r.ring.timeout_ms, tx_frame_nr=r.ring.tx_frames,
                                         rx_mode=r.ring.mode, rx_frame_size=r.ring.frame_size,
                                         fanout=(r.ring.fanout_group, "hash") if r.ring.fanout_group else None,
                                         control_types=control_types)
    except (FmipError, OSError) as exc:
        for port in ports.values():
            port.close()
        raise StartupError(str(exc)) from None
    return ports


def router_control(engine: Engine, agent: RouterAgent | None) -> RouterControl:
    """The control API and metrics of ``fmipfast router``: the engine's, with the handover protocol of ``agent``
    (a :class:`fmipfast.router.RouterAgent`, or None without [router.security]) attached."""
    control = RouterControl(engine)
    if agent is not None:
        control.attach_protocol(agent.trigger, agent.handovers, agent.mobile_nodes)
        control.attach_counters("handover", "The handover protocol's messages, states and refusals "
                                "(docs/protocol.md §6).", lambda: agent.ar.counters)
        control.attach_counters("ah", "AH (RFC 4302) outcomes between the routers.", lambda: agent.ah_counters)
        control.attach_counters("router_agent", "The protocol driver's own failures.", lambda: agent.counters)
        control.attach_counters("kerberos", "Authenticator verification outcomes (docs/security.md), of the "
                                f"{agent.mechanism} mechanism.", lambda: agent.verifier.counters)
        control.attach_histogram("handover_buffering_seconds", "NAR: from the proxy entry for an MN's NCoA (its "
                                 "traffic buffered from then) to the Attach that completes the handover.",
                                 lambda: agent.buffering)
        control.attach_histogram("kdc_client_request_duration_seconds", "Round trips to the router's KDC (key "
                                 "cases 2 and 3: opening an MN's ticket), of the requests answered.",
                                 lambda: getattr(getattr(agent.verifier, "opener", None), "latency", None))
    return control


def _router_status(engine: Engine, agent: RouterAgent | None) -> str:
    """The router's STATUS= line: what it forwards, and the handovers and MNs it serves."""
    c = engine.counters
    line = (f"{len(engine.interfaces)} interfaces; received {c.get('received', 0)}, "
            f"forwarded {c.get('forwarded', 0)}")
    if agent is not None:
        h = agent.ar.counters
        line += (f"; handovers: {h['handovers_started']} started as PAR, {h['handovers_forwarding']} forwarding, "
                 f"{h['handovers_failed'] + h['handovers_refused']} failed or refused; {h['attached']} MNs "
                 f"attached as NAR; {len(agent.ar.sessions)} MN sessions")
    return line


def _reload_router(path: str, running: Config, agent: RouterAgent | None, store: ah.SequenceStore | None) -> None:
    """SIGHUP: read the configuration again and take its [router.security] keys (keytab, AH SAs, KDC) into the
    running agent; anything else that changed is reported as needing a restart.  A bad file changes nothing."""
    try:
        new = load_config(path)
    except ConfigError as exc:
        log.error("reload: %s: %s; nothing changed", path, exc)
        return
    old_sec, new_sec = running.router.security, new.router.security
    if agent is None or old_sec is None or new_sec is None or new_sec.principal != old_sec.principal:
        log.error("reload: adding, removing or renaming [router.security] needs a restart; nothing changed")
        return
    restart = [f.name for f in dataclasses.fields(new.router) if f.name != "security"
               and getattr(new.router, f.name) != getattr(running.router, f.name)]
    restart += [f"security.{k}" for k in ("max_sessions", "max_handovers", "ah_sequence_file", "session_file",
                                          "mechanism", "keytab", "rcache")
                if getattr(new_sec, k) != getattr(old_sec, k)]
    if restart:
        log.warning("reload: %s changed; these take effect at the next restart", ", ".join(restart))
    _, keytab, sad, opener = _security_objects(new_sec, store)
    result = agent.reload_security(keytab, sad, opener=opener)
    log.info("reload: keys taken from %s (%d SAs kept, %d replaced)", path, result["sas_kept"],
             result["sas_replaced"])


def _security_objects(sec: SecurityConfig, store: ah.SequenceStore | None = None) -> SecurityObjects:
    """``[router.security]`` as the agent's objects: (principal, keytab, SAD of both directions' SAs, KDC client)."""
    keytab = L.Keytab()
    for k in sec.keys:
        keytab.add(L.Principal.parse(k.principal), L.Key(k.kvno, k.key))
    sad = ah.SADatabase()
    for p in sec.peers:
        sad.add_inbound(ah.SecurityAssociation(p.spi_in, p.key_in, peer=p.address))
        sad.add_outbound(ah.SecurityAssociation(p.spi_out, p.key_out, peer=p.address, store=store))
    principal = L.Principal.parse(sec.principal)
    opener = None
    if sec.kdc is not None:
        host, _, port = sec.kdc.rpartition(":")
        own = next((k for k in sec.keys if k.principal == sec.principal), None)
        opener = KdcClient((host.strip("[]"), int(port)), principal=principal,
                           key=L.Key(own.kvno, own.key) if own else None)
    return principal, keytab, sad, opener


def _router_agent(engine: Engine, sec: SecurityConfig, store: ah.SequenceStore | None = None,
                  restored: RestoredSessions | None = None) -> RouterAgent:
    """The handover protocol of the daemon from its [router.security] section (``store``: the
    ``ah.SequenceStore`` of ``ah_sequence_file``; ``restored``: the sessions read from ``session_file`` --
    both opened by the caller so a bad file is a start-up error)."""
    if store is None and sec.peers:
        log.warning(
            "[router.security] has no ah_sequence_file: after a restart this router's AH sequence numbers start "
            "at 1 again and its peers drop its messages as replays (RFC 4302 §3.3.2)")
    principal, keytab, sad, opener = _security_objects(sec, store)
    return RouterAgent(engine, LoopScheduler(), principal=principal, keytab=keytab, sad=sad,
                       opener=opener, max_sessions=sec.max_sessions, max_handovers=sec.max_handovers,
                       session_file=sec.session_file, restored=restored, on_note=log_router_note,
                       verifier=_gss_verifier(sec))

"""``fmipfast mn --config FILE.toml``: the mobile node as a daemon (docs/design.md §7), on the host's kernel stack.

It runs :class:`fmipfast.mnagent.MnAgent` on the ``[mn]`` interface: an initial attach to ``[mn] router``
(Attach with an AP-REQ from the credentials file, then Authenticated-MN), and from then on every handover
the network triggers at that router (draft §2.1: Handover Redirect -> HR-Ack -> the link change -> Attach at
the NAR -> Authenticated-MN), with the NCoA configured without DAD, the NAR's neighbor entry and the default
route set through netlink.

What the daemon adds to the agent:

* **Credentials** from a file (``[mn] ccache``, :func:`fmipfast.security.ccache.load_credentials`), like a
  Kerberos FILE: cache: tickets for the routers, obtained beforehand; and/or from the KDCs (``[mn.kerberos]``,
  :class:`fmipfast.security.ccache.TicketCache`): an AS exchange at home, TGS exchanges with referrals, and
  cross-realm TGTs precached in the background for the adjacent realms the routers' RAs list (draft §3), so
  a handover's ticket costs one exchange with the new realm's KDC.  The file is asked first.  A ticket
  neither has fails the handover's ticket step (counted ``ticket_missing``; the MN stays with its router).
  With ``[mn] mechanism = "gssapi"`` (docs/security.md §10) the credentials are MIT's (``[mn.gssapi]``: a
  credential cache and/or a client keytab); service tickets are fetched off the loop, and precached in the
  background for the routers of the realms an RA names (``adjacent``) and those of ``precache`` at start.
* **The link change.**  At ReadyToSwitch the daemon runs ``[mn] switch_command`` with ``{nar}`` replaced by
  the NAR's address (roaming is the link layer's business: a WLAN supplicant, a lab script), bounded by
  ``switch_timeout_ms``; the carrier change that follows is what the agent reacts to.  Links are named after
  their router's address, so a carrier flap on the same link is not mistaken for a move.  A command that
  fails (non-zero exit, timeout) means the link did not change: the daemon reports the current link as up,
  which the machine treats as a link reversal (draft App. A: Forwarding Disable to the PAR) — and so does a
  command that exits 0 without the carrier changing within ``switch_timeout_ms``.
* **The binding.**  With ``[mn] home_agent`` each Attach carries a Binding Update (an RFC 6275 Mobility
  Header) for it; the daemon listens on a raw ``IPPROTO_MH`` socket for the Binding Acknowledgement.  None
  within ``BINDACK_TIMEOUT_S`` (RFC 6275 INITIAL_BINDACK_TIMEOUT, 1 s): it sends a BU of its own from the new
  care-of address with a new Sequence #, doubling the wait, ``BU_TRIES`` BUs in all (§11.8).  The retired
  PCoA (``keep_pcoa``) stays until ``pcoa_release_ms`` after the BAck — after the last try without one
  (counted ``bu_unacknowledged``), or after the handover without a home agent — so packets still addressed to
  the PCoA reach the host's sockets.
* **Never without a router for good.**  The router session is renewed before its ticket ends (``[mn]
  renew_before_s``, by the machine); when no session is left at all (every attach failed, no ticket), the
  daemon attaches again to the router of the last attempt after ``reattach_s``, doubling up to 300 s.
* **Control API** (``--control PATH``, the JSON protocol of :mod:`fmipfast.control`): ``ping``, ``status``
  (state, router, care-of address, when the session ends, retired addresses, counters), ``counters``, ``metrics``
  (Prometheus text, also served by ``fmipfast mn --metrics``).

Ownership: one asyncio loop owns the daemon and its agent.  Bad input (a malformed message, a failed
command, a missing ticket) is counted, never fatal.

May import: mnagent, mn, mobility, protocol, messages, config, security, control, metrics, scheduling.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from ipaddress import IPv6Address
from typing import Any

from fmipfast import config
from fmipfast.config import Config, MnConfig, MnGssapiConfig
from fmipfast.constants import DEFAULT_CODEPOINTS, Codepoints
from fmipfast.errors import ConfigError, FmipError, SecurityError
from fmipfast.histogram import HANDOVER_BOUNDS, Histogram
from fmipfast.logsetup import setup_logging
from fmipfast.messages import BindingAck
from fmipfast.mn import MnState
from fmipfast.mnagent import MnAgent
from fmipfast.mobility import MobilitySocket
from fmipfast.protocol import Note
from fmipfast.scheduling import SchedulingError, apply_scheduling
from fmipfast.sdnotify import Notifier, notifier
from fmipfast.security.ccache import CredentialFileError, TicketCache, load_credentials
from fmipfast.security.lwkerb import Credentials, Key, LkbError, Principal

__all__ = ["MnDaemon", "MissingTicket", "COUNTERS", "run", "load_config", "check_config"]

log = logging.getLogger("fmipfast.mnd")

COUNTERS = ("switch_commands", "switch_failed", "switch_no_link_change", "ticket_missing", "ticket_expired",
            "ccache_reloaded", "ccache_errors", "reattach",
            "handovers_completed", "bu_sent", "back_received", "back_rejected", "back_unexpected",
            "bu_unacknowledged", "pcoa_released")
BINDACK_TIMEOUT_S = 1.0  # RFC 6275 INITIAL_BINDACK_TIMEOUT
BU_TRIES = 3  # the Attach's BU and two of our own
REATTACH_MAX_S = 300.0  # the longest wait between attach attempts with no router session
MN_COMMANDS = ("ping", "status", "counters", "metrics")  # the control API's; none takes an argument


def _file_id(path: str) -> tuple[int, int, int, int]:
    """What changes when a file is rewritten: a new inode when it is replaced by a rename (as
    ``save_credentials`` does), else the modification time and size (timestamps can be coarser than two
    writes)."""
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


class MissingTicket(SecurityError):
    """Neither the credentials file nor the KDCs gave a usable ticket for the router a handover names."""


class MnDaemon:
    """The mobile node of ``cfg`` (an :class:`~fmipfast.config.MnConfig` with ``interface`` set)."""

    def __init__(self, cfg: MnConfig, *, codepoints: Codepoints = DEFAULT_CODEPOINTS,
                 clock: Any = time.monotonic_ns) -> None:
        if not cfg.configured:
            raise ValueError("mn.interface: the [mn] section is missing or has no interface")
        self.cfg = cfg
        self.credentials = load_credentials(cfg.ccache) if cfg.ccache else {}
        self._ccache_id = _file_id(cfg.ccache) if cfg.ccache else None
        self.tickets = self._ticket_cache(cfg)
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.clock = clock
        self.last_switch: dict[str, Any] | None = None
        # from ReadyToSwitch (the MN leaves the PAR's link) to Authenticated-MN from the NAR: the handover's
        # interruption as the MN lives it (the layer-2 move and the Attach's round trip)
        self.interruption = Histogram(HANDOVER_BOUNDS)
        self._left_at: int | None = None
        self._release: asyncio.TimerHandle | None = None
        self._reattach: asyncio.TimerHandle | None = None
        self._reattach_wait = float(cfg.reattach_s)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._awaited: set[int] = set()  # Sequence #s of BUs whose BAck we wait for
        self._acked_seqs: set[int] = set()  # ... and those of them answered
        self._acked = asyncio.Event()
        precache: Any = self.tickets.precache if self.tickets is not None and cfg.kerberos and cfg.kerberos.precache \
            else None
        provider: Any = self._ticket
        self.gss: Any = None
        if cfg.mechanism == "gssapi":
            # standard Kerberos: MIT's credential cache / client keytab; service tickets fetched off the loop
            from fmipfast.security.gss import GssInitiator

            g = cfg.gssapi or MnGssapiConfig()
            self.gss = GssInitiator(ccache=g.ccache, client_keytab=g.client_keytab, principal=g.principal,
                                    precache_retry_s=g.precache_retry_s)
            provider = self.gss.get
            adjacent = dict(g.adjacent)
            precache = (lambda realms: self._gss_precache([p for r in realms for p in adjacent.get(r, ())])) \
                if adjacent else None
        self._precache_warned: dict[str, str] = {}
        self.agent = MnAgent(cfg.interface, home_agent=cfg.home_agent, codepoints=codepoints,
                             ticket_provider=provider, precache=precache, clock=clock, keep_pcoa=cfg.keep_pcoa,
                             on_ready_to_switch=self._switch, on_note=self._on_note,
                             renew_before_s=cfg.renew_before_s, renew_retry_s=cfg.renew_retry_s,
                             switch_wait_s=cfg.switch_timeout_ms / 1000 + 0.5)  # the daemon's own check first
        try:
            self.mh = MobilitySocket() if cfg.home_agent is not None else None
        except OSError:
            self.agent.close()
            raise

    def close(self) -> None:
        self.agent.close()
        if self.mh is not None:
            self.mh.close()

    @staticmethod
    def _ticket_cache(cfg: MnConfig) -> TicketCache | None:
        k = cfg.kerberos
        if k is None:
            return None
        client = Principal.parse(k.principal)
        key = Key(k.kvno, k.key) if k.key is not None else Key.from_password(k.password or "", client, k.kvno)
        kdcs = {}
        for realm, where in k.kdcs:
            host, _, port = where.rpartition(":")
            kdcs[realm] = (host.strip("[]"), int(port))
        return TicketCache(client, key, kdcs)

    # ------------------------------------------------------------------ hooks of the agent
    def _reload_credentials(self) -> None:
        """Re-read the credentials file when it has changed (tickets refreshed by whoever obtains them); a file
        that has become unreadable or malformed is counted and logged, and the tickets already read stay."""
        if not self.cfg.ccache:
            return
        try:
            ident = _file_id(self.cfg.ccache)
            if ident == self._ccache_id:
                return
            self.credentials = load_credentials(self.cfg.ccache)
        except (OSError, CredentialFileError) as exc:
            self.counters["ccache_errors"] += 1
            log.warning("credentials file %s not re-read: %s", self.cfg.ccache, exc)
            return
        self._ccache_id = ident
        self.counters["ccache_reloaded"] += 1

    async def _ticket(self, server: Principal) -> Credentials:
        self._reload_credentials()
        creds = self.credentials.get(server)
        if creds is not None and creds.endtime <= time.time():
            self.counters["ticket_expired"] += 1
            creds = None
        # A file ticket near its end (a session renewal asks then) gives way to the KDCs' fresh one, if any.
        if creds is not None and (self.tickets is None or creds.endtime - self.tickets.renew_margin > time.time()):
            return creds
        if self.tickets is not None:
            try:
                return await self.tickets.get(server)
            except LkbError as exc:
                if creds is not None:
                    return creds  # still valid: better than none
                self.counters["ticket_missing"] += 1
                raise MissingTicket(f"no ticket for {server} from the KDCs: {exc}") from None
        self.counters["ticket_missing"] += 1
        raise MissingTicket(f"no usable ticket for {server} in {self.cfg.ccache}")

    async def _gss_precache(self, principals: list[str] | tuple[str, ...]) -> None:
        """Standard Kerberos: the routers' service tickets into the credential cache, in the background (the
        RA's adjacent realms' routers, ``[mn.gssapi] precache`` at start).  A failure is counted by the initiator
        and logged once per new error, never raised."""
        if not principals:
            return
        results = await self.gss.precache(principals)
        for p, ok in results.items():
            error = self.gss.last_errors.get(p)
            if ok:
                self._precache_warned.pop(p, None)
            elif error is not None and self._precache_warned.get(p) != error:
                self._precache_warned[p] = error
                log.warning("no service ticket precached for %s: %s (asked again after %d s)", p, error,
                            self.gss.precache_retry_s)

    async def _switch(self, nar: IPv6Address) -> None:
        """ReadyToSwitch: the next carrier-up is the NAR's link; the switch command moves us there."""
        self.agent.next_link = str(nar)
        if not self.cfg.switch_command:
            return
        argv = [word.replace("{nar}", str(nar)) for word in self.cfg.switch_command]
        self.counters["switch_commands"] += 1
        started = self.clock()
        try:
            proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.PIPE)
            try:
                out, err = await asyncio.wait_for(proc.communicate(), self.cfg.switch_timeout_ms / 1000)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
                raise RuntimeError(f"no exit within {self.cfg.switch_timeout_ms} ms") from None
            if proc.returncode != 0:
                raise RuntimeError(f"exit status {proc.returncode}: {err.decode(errors='replace').strip()[-300:]}")
            self.last_switch = {"nar": str(nar), "ok": True, "ms": (self.clock() - started) / 1e6}
            # the command said it moved us; the carrier must say so too, or we are still on the PAR's link
            deadline = asyncio.get_running_loop().time() + self.cfg.switch_timeout_ms / 1000
            while self.agent.mn.state == MnState.HO_READY:
                if asyncio.get_running_loop().time() > deadline:
                    self.counters["switch_no_link_change"] += 1
                    raise RuntimeError(f"no link change within {self.cfg.switch_timeout_ms} ms of the command")
                await asyncio.sleep(0.01)
        except (OSError, RuntimeError) as exc:
            self.counters["switch_failed"] += 1
            self.last_switch = {"nar": str(nar), "ok": False, "error": str(exc)}
            log.warning("switch_command %s failed: %s; staying with the current router", argv, exc)
            # the link layer did not move: we are still on the PAR's link, which is a link reversal (draft
            # App. A) — Forwarding Disable, and the PAR delivers locally again instead of tunnelling
            router = self.agent.mn.router
            self.agent.next_link = None
            if router is not None:
                self.agent.link_up(router.link)

    def _on_note(self, note: Note, now: int) -> None:
        if note.name == "send" and note.fields.get("message") == "Attach" and self.cfg.home_agent is not None \
                and self.agent.mn.last_bu_sequence is not None:
            # the Attach carries a BU: its BAck may come back before the Authenticated-MN is processed
            self._awaited.add(self.agent.mn.last_bu_sequence)
        if note.name == "state" and note.fields.get("new") == MnState.HO_READY.value:
            self._left_at = self.clock()
        if note.name == "state" and note.fields.get("new") == MnState.IDLE.value:
            self._left_at = None
            self._schedule_reattach()
        if note.name == "state" and note.fields.get("new") == MnState.ATTACHED.value:
            self._reattach_wait = float(self.cfg.reattach_s)
            handover = note.fields.get("old") == MnState.HO_ATTACHING.value
            if handover:
                self.counters["handovers_completed"] += 1
                if self._left_at is not None:
                    self.interruption.observe(max(0, self.clock() - self._left_at) / 1e9)
            self._left_at = None
            if self.cfg.home_agent is None:
                if handover:
                    self._release_later()
            elif self.agent.mn.last_bu_sequence is not None and self.agent.mn.router is not None:
                self._spawn(self._bind(self.agent.mn.last_bu_sequence, str(self.agent.mn.router.coa)))

    def _schedule_reattach(self) -> None:
        """No router session is left (every attach failed, or none could get a ticket): attach again to the
        router of the last attempt after ``reattach_s``, doubling up to ``REATTACH_MAX_S`` until one succeeds --
        a daemon never stays without a router for good."""
        if self._reattach is not None:
            return
        wait, self._reattach_wait = self._reattach_wait, min(self._reattach_wait * 2, REATTACH_MAX_S)
        self._reattach = asyncio.get_running_loop().call_later(wait, self._reattach_now)

    def _reattach_now(self) -> None:
        self._reattach = None
        mn = self.agent.mn
        if mn.state != MnState.IDLE or mn.last_attach is None:
            return
        self.counters["reattach"] += 1
        log.info("no router session: attaching to %s again", mn.last_attach[0])
        self.agent.start(*mn.last_attach)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _bind(self, seq: int, coa: str) -> None:
        """Wait for the BAck of the Attach's BU (Sequence # ``seq``), sending BUs of our own from ``coa`` when it
        does not come (RFC 6275 §11.8); then let the retired PCoA go."""
        from fmipfast.messages import BindingUpdate

        assert self.mh is not None and self.cfg.home_agent is not None
        sequences = {seq}
        self._awaited |= sequences
        timeout = BINDACK_TIMEOUT_S
        try:
            for attempt in range(BU_TRIES):
                if await self._answered(sequences, timeout):
                    break
                if attempt + 1 == BU_TRIES:
                    self.counters["bu_unacknowledged"] += 1
                    log.warning("no Binding Acknowledgement from %s after %d BUs", self.cfg.home_agent, BU_TRIES)
                    break
                seq = self.agent.mn.allocate_bu_sequence()
                sequences.add(seq)
                self._awaited.add(seq)
                mh = BindingUpdate(seq, self.agent.mn.bu_lifetime_units).encode_mh(coa, self.cfg.home_agent)
                if self.mh.send(mh, self.cfg.home_agent, src=coa):
                    self.counters["bu_sent"] += 1
                timeout *= 2
        finally:
            self._awaited -= sequences
            self._acked_seqs -= sequences
        if self.agent.retired:
            self._release_later()

    async def _answered(self, sequences: set[int], timeout: float) -> bool:
        """True once a BAck for one of ``sequences`` has come (before the wait, too), False after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not sequences & self._acked_seqs:
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._acked.clear()
            try:
                await asyncio.wait_for(self._acked.wait(), left)
            except asyncio.TimeoutError:
                pass
        return True

    def _release_later(self) -> None:
        loop = asyncio.get_running_loop()
        if self._release is not None:
            self._release.cancel()
        self._release = loop.call_later(self.cfg.pcoa_release_ms / 1000, self._release_now)

    def _release_now(self) -> None:
        self._release = None
        self._spawn(self._release_retired())

    async def _release_retired(self) -> None:
        self.counters["pcoa_released"] += len(await self.agent.release_retired())

    def _on_mh(self) -> None:
        """A Mobility Header for us: the BAck of the BU the last Attach carried releases the retired PCoA."""
        assert self.mh is not None
        got = self.mh.receive(0)
        if got is None:
            return
        src, data = got
        try:
            back = BindingAck.decode_mh(data)
        except ValueError:
            self.mh.count("mh_not_back")
            return
        if src != self.cfg.home_agent or back.sequence not in self._awaited:
            self.counters["back_unexpected"] += 1
            return
        self.counters["back_received"] += 1
        if not back.accepted:
            self.counters["back_rejected"] += 1
            log.warning("binding update %d rejected with status %d", back.sequence, back.status)
        self._acked_seqs.add(back.sequence)  # a rejection is an answer too: a retry would not change it
        self._acked.set()

    # ------------------------------------------------------------------ the loop
    async def run(self, stop: asyncio.Event, *, ready: Any = None) -> None:
        """Attach to ``[mn] router`` and serve until ``stop`` is set; ``ready()`` once the agent runs."""
        loop = asyncio.get_running_loop()
        if self.mh is not None:
            loop.add_reader(self.mh.fileno(), self._on_mh)
        runner = loop.create_task(self.agent.run(stop))
        try:
            self.agent.start(self.cfg.router, Principal.parse(self.cfg.router_principal), self.cfg.address,
                             self.cfg.router)
            if self.gss is not None and self.cfg.gssapi is not None and self.cfg.gssapi.precache:
                self._spawn(self._gss_precache(self.cfg.gssapi.precache))
            if ready is not None:
                ready()
            await runner
        finally:
            if self.mh is not None:
                loop.remove_reader(self.mh.fileno())
            for timer in (self._release, self._reattach):
                if timer is not None:
                    timer.cancel()
            for task in list(self._tasks):
                task.cancel()
            if not runner.done():
                runner.cancel()
            await asyncio.gather(runner, *self._tasks, return_exceptions=True)

    # ------------------------------------------------------------------ the control API
    def status(self) -> dict[str, Any]:
        mn = self.agent.mn
        router = mn.router
        ends = None if router is None or router.expires_ns is None else (router.expires_ns - self.clock()) / 1e9
        return {"interface": self.cfg.interface, "state": mn.state.value,
                "router": None if router is None else str(router.address),
                "coa": None if router is None else str(router.coa),
                # seconds until the session's ticket ends (renewed renew_before_s before); None: no session
                "session_ends_in_s": None if ends is None else round(ends, 1),
                "retired": [str(a) for a in self.agent.retired], "last_switch": self.last_switch,
                "counters": self.all_counters()}

    def all_counters(self) -> dict[str, Any]:
        return {"daemon": dict(self.counters), "agent": dict(self.agent.counters), "mn": dict(self.agent.mn.counters),
                "mobility_socket": dict(self.mh.errors) if self.mh is not None else {},
                "tickets": dict(self.tickets.counters) if self.tickets is not None
                else dict(self.gss.counters) if self.gss is not None else {}}

    def dispatch(self, cmd: str, args: dict[str, Any]) -> Any:
        """The control API's commands (what :class:`fmipfast.control.ControlServer` calls)."""
        from fmipfast.control import ControlError, check_args

        if cmd not in MN_COMMANDS:
            raise ControlError(f"unknown command {str(cmd)[:64]!r}; commands of an MN: {', '.join(MN_COMMANDS)}")
        check_args(cmd, args, {})  # none takes an argument: any is refused, by name
        if cmd == "ping":
            return "pong"
        if cmd == "status":
            return self.status()
        if cmd == "counters":
            return self.all_counters()
        return self.metrics()  # "metrics"

    def metrics(self) -> str:
        """The daemon in the Prometheus text format (``fmipfast mn --metrics``, the ``metrics`` command): its
        state, when its router session ends, and every counter of the daemon, the agent, the protocol machine,
        the ticket cache and the Mobility Header socket (zeros included)."""
        from fmipfast.metrics import Family, counter_family, histogram_family, render

        mn = self.agent.mn
        state = Family("fmipfast_mn_state", "gauge", "1 for the state the mobile node's machine is in.")
        for s in MnState:
            state.add(1 if mn.state == s else 0, state=s.value)
        ends = self.status()["session_ends_in_s"]
        families = [state, Family("fmipfast_mn_attached", "gauge", "1 while the MN has a router session.").add(
            0 if mn.router is None else 1),
            histogram_family("mn_handover_interruption_seconds", "From ReadyToSwitch (leaving the PAR's link) to "
                             "Authenticated-MN from the NAR, per completed handover.", self.interruption)]
        if ends is not None:
            families.append(Family("fmipfast_mn_session_ends_in_seconds", "gauge",
                                   "Seconds until the router session's ticket ends (renewed before).").add(ends))
        helps = {"daemon": "The MN daemon's switch commands, tickets, binding updates and re-attaches.",
                 "agent": "The MN agent's sockets, netlink and callback outcomes.",
                 "mn": "The MN protocol machine's messages, states, refusals and renewals (docs/protocol.md §6).",
                 "tickets": "The ticket cache's AS/TGS exchanges and precaching (with mechanism gssapi: the service "
                            "tickets from MIT's credential cache and their precaching).",
                 "mobility_socket": "The raw Mobility Header socket's errors."}
        for part, counters in self.all_counters().items():
            families.append(counter_family("mn_protocol" if part == "mn" else f"mn_{part}", helps[part], counters))
        return render(families, {"interface": self.cfg.interface})


def load_config(path: str) -> Config:
    """``fmipfast mn``'s configuration: the file, an [mn] section, and its Kerberos identity as the daemon
    builds it (check-config runs the same function)."""
    return check_config(config.load(path), path)


def check_config(cfg: Config, source: str | None) -> Config:
    """The checks of :func:`load_config` on a parsed configuration (``check-config`` on an MN's file)."""
    if not cfg.mn.configured:
        raise ConfigError("mn.interface", "the [mn] section is required", source=source)
    if cfg.mn.kerberos is not None:
        try:
            MnDaemon._ticket_cache(cfg.mn)
        except ValueError as exc:
            raise ConfigError("mn.kerberos", str(exc), source=source) from None
    if cfg.mn.mechanism == "gssapi":
        try:
            from fmipfast.security.gss import require_gssapi

            require_gssapi()
        except ImportError as exc:
            raise ConfigError("mn.mechanism", str(exc), source=source) from None
    return cfg


def run(config_path: str, *, control_path: str | None = None, metrics: str | None = None) -> int:
    """``fmipfast mn``: run the mobile node of the [mn] section until SIGTERM/SIGINT (root: raw sockets,
    netlink); the exit status (a configuration the loader refuses raises :class:`ConfigError`, for the command
    to report)."""
    cfg = load_config(config_path)
    setup_logging(cfg.logging)
    try:
        # first, on the one thread there is: the threads started later (the agent's netlink executor, the
        # loop's) inherit it
        apply_scheduling(cfg.mn.scheduling, "mn.scheduling")
    except SchedulingError as exc:
        print(f"fmipfast mn: {exc}", file=sys.stderr)
        return 2
    notify = notifier("mn")
    if notify is None:
        return 2
    try:
        daemon = MnDaemon(cfg.mn, codepoints=cfg.codepoints.profile())
    except (FmipError, OSError) as exc:
        print(f"fmipfast mn: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(daemon, notify, control_path, metrics))
    finally:
        daemon.close()
    print(json.dumps(daemon.status(), sort_keys=True, default=str), flush=True)
    return 0


async def _serve(daemon: MnDaemon, notify: Notifier, control_path: str | None, metrics: str | None) -> None:
    """The daemon and its endpoints on this loop until SIGTERM/SIGINT; ``READY`` once it runs."""
    from fmipfast.control import start_endpoints

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    servers = await start_endpoints(daemon, control_path, daemon.metrics, metrics,
                                    {"interface": daemon.cfg.interface})

    def ready() -> None:
        print(f"READY mn {daemon.cfg.interface}", flush=True)
        notify.ready(_mn_status(daemon))
        notify.start(loop, lambda: _mn_status(daemon))

    try:
        await daemon.run(stop, ready=ready)
    finally:
        notify.stopping("stopping")
        notify.close()
        for srv in servers:
            await srv.close()


def _mn_status(daemon: MnDaemon) -> str:
    """The MN daemon's STATUS= line: its state, router and care-of address, the handovers it made."""
    st = daemon.status()
    return (f"{st['state']} at {st['router'] or '-'} with {st['coa'] or '-'} on {st['interface']}; "
            f"{daemon.counters['handovers_completed']} handovers completed")

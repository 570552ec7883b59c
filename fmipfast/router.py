"""The access router as a whole: the engine (data plane) driven together with the protocol machine of
``fmipfast.ar`` (both PAR and NAR roles), AH between routers, the light-weight Kerberos verifier, and the
control API's view of handovers (docs/design.md §1, §4, §5, §7).

:class:`RouterAgent` executes the machine's actions on the engine — ``Send`` becomes an originated IPv6
packet (under AH to peer routers), ``ProxyAdd``/``ProxyComplete``/``ProxyRemove``/``BufferDrop``/
``TunnelAdd``/``TunnelRemove``/``ForwardPacket`` become the engine's handover hooks, ``Verify`` runs the
``ApVerifier`` (cases 2 and 3 reach the KDC asynchronously) — and feeds the machine the fmipfast messages the
engine hands to its control path, with AH verified first.  Time and asynchronous work go through a
:class:`Scheduler`: :class:`LoopScheduler` for the daemon's asyncio loop, the demo's simulator for
``fmipfast demo``.

Ownership: one thread (the engine's loop) drives an agent; nothing here locks.

May import: engine, ar, protocol, security, control, frames, messages, config, errors, constants.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from ipaddress import IPv6Address
from typing import Any, Protocol

import numpy as np

from fmipfast import frames
from fmipfast.ar import AccessRouter, Session
from fmipfast.constants import FmipCode, IpProto, NeighborFlag
from fmipfast.control import HANDOVER_ARGS, ControlError, check_args
from fmipfast.engine import ControlFrame, Engine, FrameBatch, Interface
from fmipfast.histogram import HANDOVER_BOUNDS, Histogram
from fmipfast.protocol import (
    LINK_MESSAGES,
    BufferDrop,
    DerivationError,
    ForwardPacket,
    Note,
    ProbeNeighbor,
    ProxyAdd,
    ProxyComplete,
    ProxyRemove,
    Reachability,
    Received,
    Send,
    Tick,
    Trigger,
    TunnelAdd,
    TunnelRemove,
    Verified,
    Verify,
    mac48_from_eui64,
)
from fmipfast.security import ah
from fmipfast.security import lwkerb as L
from fmipfast.security.gss import check_mechanism
from fmipfast.security.statefile import StateFileError, read_private, write_private

__all__ = ["Scheduler", "LoopScheduler", "RouterAgent", "load_sessions", "SESSION_FILE_FORMAT"]


#: The fmipfast messages that travel over the MN's access link only (protocol.LINK_MESSAGES), by code.
_LINK_CODES = frozenset(int(FmipCode[key.upper()]) for key in LINK_MESSAGES)


class Scheduler(Protocol):
    def now(self) -> int: ...

    def call_at(self, when_ns: int, fn: Callable[[], None]) -> Any:
        """Run ``fn`` at ``when_ns``; may return a handle with ``cancel()`` (the agent then cancels a timer
        it no longer needs)."""

    def run_async(self, coro: Awaitable[Any], done: Callable[[Any], None]) -> None: ...


class LoopScheduler:
    """The daemon's scheduler: ``time.monotonic_ns`` and the running asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.loop = loop
        self.clock = clock

    def _loop(self) -> asyncio.AbstractEventLoop:
        return self.loop or asyncio.get_running_loop()

    def now(self) -> int:
        return self.clock()

    def call_at(self, when_ns: int, fn: Callable[[], None]) -> asyncio.TimerHandle:
        return self._loop().call_later(max(0.0, (when_ns - self.clock()) / 1e9), fn)

    def run_async(self, coro: Awaitable[Any], done: Callable[[Any], None]) -> None:
        task: asyncio.Task[Any] = self._loop().create_task(coro)  # type: ignore[arg-type]
        task.add_done_callback(lambda t: done(t.result()))


log = logging.getLogger("fmipfast.router")

SESSION_FILE_FORMAT = "fmipfast-sessions/1"
_ICMPV6 = int(IpProto.ICMPV6)
_EARLY_MIN_FRAME = 14 + 40 + 8  # Ethernet, IPv6, the ICMPv6 header and a sub-option
_NO_VLAN_TAG = 0xFFFFFFFF  # a ring block's vlan_tci of a frame without a stripped tag
_RELEASED_EARLY_MAX = 64  # NCoAs released early and not yet confirmed by the machine (one per handover at a time)
SESSION_SAVE_DELAY_NS = 200_000_000  # changes within this are written together
SESSION_SAVE_RETRY_NS = 5_000_000_000  # after a failed write
MAX_SESSION_FILE_OCTETS = 64 << 20


def load_sessions(path: str) -> list[tuple[IPv6Address, bytes, bytes | None, int | None]]:
    """The sessions a router saved (``session_file``): ``(address, mac_key, eui64, end in POSIX ns)``; an empty
    list when the file does not exist.  :class:`~fmipfast.security.statefile.StateFileError` (a
    ``ValueError``) names the file and the problem: unreadable, group/other-readable (it holds keys),
    malformed."""
    raw = read_private(path, MAX_SESSION_FILE_OCTETS)
    if raw is None:
        return []
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("format") != SESSION_FILE_FORMAT:
            raise ValueError(f"not an fmipfast sessions file ({SESSION_FILE_FORMAT!r} expected)")
        out = []
        for i, e in enumerate(doc["sessions"]):
            key = bytes.fromhex(e["mac_key"])
            eui64 = bytes.fromhex(e["eui64"]) if e["eui64"] is not None else None
            ends = e["ends_unix_ns"]
            if len(key) != 32 or (eui64 is not None and len(eui64) != 8) or not (ends is None or isinstance(ends, int)):
                raise ValueError(f"sessions[{i}]: a 32-octet mac_key, an 8-octet eui64 or null, an integer "
                                 "ends_unix_ns or null are required")
            out.append((IPv6Address(e["address"]), key, eui64, ends))
    except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise StateFileError(path, f"malformed: {exc}") from None
    except RecursionError:  # json's parser recurses per level of nesting
        raise StateFileError(path, "malformed: nested too deeply") from None
    return out


def _warm_crypto() -> None:
    """Run AH protect/verify once with a throwaway SA, so the first handover does not pay for the crypto
    backend's lazy set-up (0.6 ms measured for the first HMAC; the first ``np.unique`` was 13 ms, which is why
    the engine imports ``numpy.ma`` at start).  Touches no configured SA."""
    key, peer = bytes(ah.KEY_LEN), "::1"
    sad = ah.SADatabase()
    sad.add_inbound(ah.SecurityAssociation(256, key, peer=peer))
    packet = frames.build_ipv6(IPv6Address(peer), IPv6Address(peer), IpProto.ICMPV6, bytes(8), 64)
    ah.verify(ah.protect(packet, ah.SecurityAssociation(256, key, peer=peer)), sad)


def _with_outbound(sad: ah.SADatabase,
                   sa_out: dict[IPv6Address, ah.SecurityAssociation] | None) -> ah.SADatabase:
    """``sad`` with the outbound SAs of ``sa_out`` (peer address -> SA) filed in it by their peer; an SA
    whose own peer is another address is a ``ValueError``."""
    for peer, sa in (sa_out or {}).items():
        if sa.peer is None or IPv6Address(sa.peer) != IPv6Address(peer):
            raise ValueError(f"sa_out: the SA filed under {peer} is for peer {sa.peer}")
        sad.add_outbound(sa)
    return sad


class RouterAgent:
    """The protocol of one router over its engine.

    ``principal``/``keytab``/``opener`` configure the AP-REQ verifier (``opener`` is the router's KDC client
    for cases 2 and 3); ``sad`` holds the AH SAs, inbound by SPI and outbound by peer router (``sa_out``, a
    peer address -> outbound SA mapping, is filed into ``sad`` too: the agent keeps no other copy);
    ``epoch_s`` turns the scheduler's clock into POSIX time for Kerberos; ``on_note`` receives a timeline
    entry for every message sent and step taken.
    """

    def __init__(self, engine: Engine, scheduler: Scheduler, *, principal: L.Principal, keytab: L.Keytab,
                 sad: ah.SADatabase, sa_out: dict[IPv6Address, ah.SecurityAssociation] | None = None,
                 opener: Any = None,
                 epoch_s: float | None = None, access_iface: str | None = None,
                 on_note: Callable[[str, dict[str, Any]], None] | None = None, session_file: str | None = None,
                 restored: list[tuple[IPv6Address, bytes, bytes | None, int | None]] | None = None,
                 verifier: Any = None, **ar_options: Any) -> None:
        self.engine = engine
        self.scheduler = scheduler
        acc = next((i for i in engine.interfaces if i.name == access_iface), None) or engine.interfaces[0]
        if not acc.addresses:
            raise ValueError(f"interface {acc.name}: the access router needs a global address")
        self.iface = acc.name
        if epoch_s is None:
            epoch_s = time.time() - scheduler.now() / 1e9
        self.epoch_s = epoch_s
        ar_options.setdefault("epoch_ns", int(epoch_s * 1e9))  # tickets' end times on the scheduler's clock
        ar_options.setdefault("buffer_keys", engine.buffer_keys)  # the NAR machine takes, the engine returns
        self.ar = AccessRouter(acc.addresses[0][0], acc.link_local, codepoints=engine.codepoints,
                               is_address_in_use=self._in_use, iface=acc.name, **ar_options)
        self.principal = principal
        # The Kerberos mechanism: lwkerb's ApVerifier (all three key cases), or another mechanism's verifier
        # given ready-made (security.gss.GssVerifier: standard Kerberos through GSS-API); an LKB PDU of the
        # other mechanism is refused before it reaches the verifier (counted: mechanism_mismatch).
        self.mechanism = "lwkerb" if verifier is None else "gssapi"
        self.verifier: Any = verifier if verifier is not None else L.ApVerifier(
            principal.realm, keytab, opener=opener, clock=lambda: self.epoch_s + self.scheduler.now() / 1e9)
        self.sad = _with_outbound(sad, sa_out)
        self.ah_counters: dict[str, int] = {}
        self.counters: dict[str, int] = dict.fromkeys(("ah_rejected", "ah_protect_failed", "no_outbound_sa",
                                                       "send_failed", "not_icmpv6", "sessions_restored",
                                                       "sessions_saved", "sessions_save_failed", "reloads",
                                                       "tunnel_refused", "not_access_link"), 0)
        self.on_note = on_note
        # NAR: from the proxy entry (the HI accepted, buffering starts) to the MN's Attach that completes it --
        # how long the MN was away, signalling and the layer-2 move included, as this router saw it
        self.buffering = Histogram(HANDOVER_BOUNDS)
        self._proxied_at: dict[IPv6Address, int] = {}
        engine.on_event = lambda what, fields: self.note(what, **fields)
        self._tick_at: int | None = None
        self._tick_timer: Any = None
        # (the engine's clock at the start of the pass that carried it, CLOCK_MONOTONIC at the hook) of the control
        # frame being handled, None between frames: the flush note of an Attach carries both (the waterfall's
        # steps from the NAR's interface to its flush, docs/design.md §6)
        self._control_at: tuple[int, int] | None = None
        # NCoAs whose Attach released the buffered packets on the engine's early look (on_early_control): the
        # ProxyComplete that the machine returns for the same Attach afterwards finds its work done
        self._released_early: set[IPv6Address] = set()
        engine.control = self.on_control
        engine.early_control = self.on_early_control
        _warm_crypto()
        # Sessions kept across restarts: the MNs attached here keep their keys (else their next handover is
        # refused until they renew, up to a ticket lifetime later).  Written (atomically, 0600) shortly after
        # every change and by save_sessions() at shutdown.
        self.session_file = session_file
        self._save_pending = False
        self._save_retry = False  # a write failed: one retry is scheduled
        if restored:
            epoch_ns = self.ar.epoch_ns
            self.counters["sessions_restored"] = self.ar.restore_sessions(
                [Session(a, k, e, None if end is None else end - epoch_ns) for a, k, e, end in restored],
                self.scheduler.now())
        self._saved_version = self.ar.sessions.version

    # ---------------------------------------------------------------- the machine
    def handle(self, event: object) -> None:
        for phase in self.ar.handle_phases(event, self.scheduler.now()):  # type: ignore[arg-type]
            self._execute_phase(phase)
        deadline = self.ar.next_deadline()
        # One timer for the earliest deadline: a later deadline waits for the armed timer (its Tick re-arms),
        # and a timer whose deadline was superseded does nothing when it fires (the scheduler cannot cancel).
        if deadline is not None and (self._tick_at is None or deadline < self._tick_at):
            cancel = getattr(self._tick_timer, "cancel", None)
            if cancel is not None:
                cancel()
            self._tick_at = deadline
            self._tick_timer = self.scheduler.call_at(deadline, functools.partial(self._tick, deadline))
        if self.session_file and not self._save_pending and self.ar.sessions.version != self._saved_version:
            self._save_pending = True
            self.scheduler.call_at(self.scheduler.now() + SESSION_SAVE_DELAY_NS, self.save_sessions)

    def reload_security(self, keytab: L.Keytab, sad: ah.SADatabase,
                        sa_out: dict[IPv6Address, ah.SecurityAssociation] | None = None,
                        opener: Any = None) -> dict[str, int]:
        """Take new keys without a restart (``fmipfast router`` on SIGHUP): the keytab and KDC client for
        AP-REQs from now on, and the AH SAs -- an SA whose SPI, key and peer are unchanged keeps its state (the
        inbound replay window, the outbound counter), a changed one starts afresh.  Sessions, handovers in
        progress and the engine are untouched.  ``sad`` holds the new SAs of both directions (and ``sa_out``, as
        in the constructor, is filed into it).  Returns how many SAs were kept and replaced."""
        def same(a: ah.SecurityAssociation, b: ah.SecurityAssociation) -> bool:
            return (a.spi, a.key, a.peer) == (b.spi, b.key, b.peer)

        kept = replaced = 0
        old_in = {sa.spi: sa for sa in self.sad.inbound_sas()}
        new_sad = ah.SADatabase()
        for sa in sad.inbound_sas():
            prev = old_in.get(sa.spi)
            keep = prev is not None and same(prev, sa)
            new_sad.add_inbound(prev if keep and prev is not None else sa)
            kept, replaced = kept + keep, replaced + (not keep)
        old_out = {sa.peer: sa for sa in self.sad.outbound_sas()}
        for sa in _with_outbound(sad, sa_out).outbound_sas():
            prev = old_out.get(sa.peer)
            keep = prev is not None and same(prev, sa)
            new_sad.add_outbound(prev if keep and prev is not None else sa)
            kept, replaced = kept + keep, replaced + (not keep)
        self.sad = new_sad
        if self.mechanism == "lwkerb":
            self.verifier.keytab, self.verifier.opener = keytab, opener
        else:
            try:
                self.verifier.reload()  # the keytab file again (a new kvno rotated in at the same path)
            except L.LkbError as exc:
                self.note("security_reload_failed", error=str(exc))
                log.warning("[router.security] keytab not re-read: %s (the previous credentials stay)", exc)
        self.counters["reloads"] += 1
        self.note("security_reloaded", sas_kept=kept, sas_replaced=replaced)
        return {"sas_kept": kept, "sas_replaced": replaced}

    def save_sessions(self) -> None:
        """Write the session table to ``session_file`` if it changed since the last write.  A failure (a full
        disk, a read-only directory) is counted, logged as a warning and tried again SESSION_SAVE_RETRY_NS later
        (and at the next change), so a restart after the disk recovered finds the sessions."""
        self._save_pending = False
        table = self.ar.sessions
        if not self.session_file or table.version == self._saved_version:
            return
        version, epoch_ns = table.version, self.ar.epoch_ns
        doc = {"format": SESSION_FILE_FORMAT, "sessions": [
            {"address": str(s.address), "mac_key": s.mac_key.hex(), "eui64": s.eui64.hex() if s.eui64 else None,
             "ends_unix_ns": None if s.expires_ns is None else s.expires_ns + epoch_ns} for s in table.values()]}
        try:
            write_private(self.session_file, json.dumps(doc).encode())
        except OSError as exc:
            self.counters["sessions_save_failed"] += 1
            self.note("sessions_save_failed", error=str(exc))
            log.warning("cannot save the MN sessions to %s: %s (retrying in %.0f s)", self.session_file,
                        exc.strerror or exc, SESSION_SAVE_RETRY_NS / 1e9)
            if not self._save_retry:
                self._save_retry = True
                self.scheduler.call_at(self.scheduler.now() + SESSION_SAVE_RETRY_NS, self._retry_save)
            return
        self._saved_version = version
        self.counters["sessions_saved"] += 1

    def _retry_save(self) -> None:
        self._save_retry = False
        self.save_sessions()

    def _tick(self, when: int) -> None:
        if when != self._tick_at:
            return  # superseded by an earlier deadline, whose timer ticked already
        self._tick_at = self._tick_timer = None
        self.handle(Tick())

    def note(self, what: str, **fields: Any) -> None:
        if self.on_note is not None:
            self.on_note(what, fields)

    def _in_use(self, address: IPv6Address, mn_eui64: bytes | None) -> bool:
        """Draft §4: an NCoA is in use when *another* node has a neighbor entry (not our proxy): an entry with
        the MN's own link-layer address (the HI's M option) is the MN's from an earlier visit."""
        idx = int(self.engine.ncache.lookup(np.frombuffer(address.packed, dtype=np.uint8).reshape(1, 16))[0])
        if idx < 0 or int(self.engine.ncache.flags[idx]) & NeighborFlag.PROXY:
            return False
        if mn_eui64 is not None:
            try:
                return bytes(self.engine.ncache.macs[idx]) != mac48_from_eui64(mn_eui64)
            except (ValueError, DerivationError):
                return True
        return True

    # ---------------------------------------------------------------- in: from the engine's control path
    def on_control(self, cf: ControlFrame) -> None:
        self._control_at = (cf.now_ns, time.monotonic_ns())
        try:
            self._on_control(cf)
        finally:
            self._control_at = None

    def on_early_control(self, iface: Interface, fb: FrameBatch, now_ns: int) -> None:
        """The engine's look at a batch of control frames before its pass (``Engine.early_control``): an MN's
        Attach that completes a handover waiting here (:meth:`AccessRouter.attach_release`: its MAC checked
        under the MN's session key) releases the MN's buffered packets at once, before the pass, the hook and
        the machine's handling that the frame then takes as always (the ``ProxyComplete`` these return for it
        finds the flush done).  Anything else is left to the pass untouched; nothing here runs unless a
        handover waits for its Attach."""
        if not self.ar.handovers_waiting or iface.name != self.iface:
            return
        offsets, lengths, tags = fb.offsets, fb.lengths, fb.vlan_tci
        for i in range(offsets.shape[0]):
            o, n = int(offsets[i]), int(lengths[i])
            if n < _EARLY_MIN_FRAME or (tags is not None and int(tags[i]) != _NO_VLAN_TAG):
                continue  # a tag the kernel stripped: the pass drops the frame (the links are untagged)
            frame = fb.arena[o:o + n].tobytes()
            # Ethernet II, IPv6, ICMPv6 right after the fixed header: the one shape an Attach comes in (it carries
            # no extension header); anything else waits for the pass, which validates it in full
            if frame[12:14] != b"\x86\xdd" or frame[14] >> 4 != 6 or frame[20] != _ICMPV6:
                continue
            end = 54 + int.from_bytes(frame[18:20], "big")
            if end > n:
                continue
            done = self.ar.attach_release(Received(frame[54:end], IPv6Address(frame[22:38]),
                                                   IPv6Address(frame[38:54]), frame[21], iface.name, False))
            if done is None:
                continue
            self._control_at = (now_ns, time.monotonic_ns())
            try:
                self._proxy_complete(done)
            finally:
                self._control_at = None
            if len(self._released_early) >= _RELEASED_EARLY_MAX:  # a machine that never confirmed: forget them
                self._released_early.clear()
            self._released_early.add(done.ncoa)

    def _on_control(self, cf: ControlFrame) -> None:
        if cf.fmip_code in _LINK_CODES and cf.iface.cfg.role != "access":
            # an MN's link is an access link: hop limit 255 proves a link message came from a link, not which
            self.counters["not_access_link"] += 1
            return
        frame = cf.frame
        plen = int.from_bytes(frame[cf.l3_offset + 4:cf.l3_offset + 6], "big")
        packet = frame[cf.l3_offset:cf.l3_offset + 40 + plen]
        verified = False
        if cf.has_ah:
            try:
                packet = ah.verify(packet, self.sad, self.ah_counters)
                verified = True
            except ah.AhError:
                self.counters["ah_rejected"] += 1  # by reason in ah_counters; the machine never sees it
                return
        parsed = frames.parse_frame(packet, frames.LINKTYPE_RAW)
        if parsed.upper_layer != IpProto.ICMPV6:
            self.counters["not_icmpv6"] += 1
            return
        self.handle(Received(parsed.payload, cf.src, cf.dst, cf.hop_limit, cf.iface.name, verified))

    # ---------------------------------------------------------------- out: the actions
    def _execute_phase(self, phase: list[Any]) -> None:
        """The actions of one phase in order; in a phase that flushes a buffer (an Attach's ProxyComplete) the
        notes before the flush are written after it, with the time they were produced (``mono_ns``): a log
        line costs more than the first flushed packet may wait."""
        cut = next((i for i, a in enumerate(phase) if isinstance(a, ProxyComplete)), -1)
        if cut < 0:
            for action in phase:
                self.execute(action)
            return
        held: list[tuple[Note, int]] = []
        for action in phase[:cut + 1]:
            if isinstance(action, Note):
                held.append((action, time.monotonic_ns()))
            else:
                self.execute(action)
        for note, at in held:
            self.note(f"ar:{note.name}", **note.fields, mono_ns=at)
        for action in phase[cut + 1:]:
            self.execute(action)

    def execute(self, a: object) -> None:
        e = self.engine
        if isinstance(a, Send):
            packet = frames.build_ipv6(a.src, a.dst, IpProto.ICMPV6, a.icmp, a.hop_limit)
            if a.ah:
                sa = self.sad.find_outbound(a.dst)
                if sa is None:
                    self.counters["no_outbound_sa"] += 1
                    return
                try:
                    packet = ah.protect(packet, sa, self.ah_counters)
                except ah.AhError as exc:  # by reason in ah_counters (seq_exhausted, seq_not_persisted, ...)
                    self.counters["ah_protect_failed"] += 1
                    self.note("ah_protect_failed", dst=a.dst, error=str(exc))
                    return
            if not e.send_packet(packet, iface=a.iface or self.iface):
                self.counters["send_failed"] += 1
            self.note("send", icmp=a.icmp, src=a.src, dst=a.dst, size=len(packet))
        elif isinstance(a, Verify):
            self.note("verify_start")

            async def verify() -> Verified:
                try:
                    check_mechanism(self.mechanism, a.ap_req, self.verifier.counters)
                    ctx = await self.verifier.verify(a.ap_req, a.binding)
                except L.LkbError as exc:
                    return Verified(a.request_id, None, f"{type(exc).__name__}: {exc}")
                except Exception as exc:  # noqa: BLE001 -- a verifier fault refuses this MN, never the router
                    log.error("AP-REQ verification failed unexpectedly: %s: %s", type(exc).__name__, exc)
                    return Verified(a.request_id, None, f"internal error: {type(exc).__name__}")
                return Verified(a.request_id, ctx)

            def done(result: Verified) -> None:
                self.note("verified", ok=result.context is not None)
                self.handle(result)

            self.scheduler.run_async(verify(), done)
        elif isinstance(a, ProxyAdd):
            e.proxy_add(a.ncoa, a.key, a.lifetime_ms, iface=self.iface, also=(a.pcoa,) if a.pcoa else (),
                        buffer=a.buffer)
            self._proxied_at[a.ncoa] = self.scheduler.now()
            self.note("proxy_installed", ncoa=a.ncoa)
        elif isinstance(a, ProxyComplete):
            if a.ncoa in self._released_early:  # done on the engine's early look at the same Attach
                self._released_early.discard(a.ncoa)
                return
            self._proxy_complete(a)
        elif isinstance(a, ProxyRemove):
            self._released_early.discard(a.ncoa)
            self._proxied_at.pop(a.ncoa, None)
            e.proxy_remove(a.ncoa)
            self.note("proxy_removed", ncoa=a.ncoa)
        elif isinstance(a, BufferDrop):
            e.drop_buffer(a.key)
        elif isinstance(a, TunnelAdd):
            if e.tunnel_add(a.pcoa, a.nar) < 0:  # a full neighbor table, or no tunnel peer row for the NAR
                self.counters["tunnel_refused"] += 1
                self.note("tunnel_refused", pcoa=a.pcoa, nar=a.nar)
            else:
                self.note("tunnel_start", pcoa=a.pcoa, nar=a.nar)
        elif isinstance(a, TunnelRemove):
            e.tunnel_remove(a.pcoa)
            self.note("tunnel_end", pcoa=a.pcoa)
        elif isinstance(a, ProbeNeighbor):
            address = a.address

            def reached(ok: bool) -> None:
                self.handle(Reachability(address, ok))

            if not e.probe_neighbor(address, reached, iface=self.iface):  # too many probes running: keep
                self.scheduler.call_at(self.scheduler.now(), lambda: self.handle(Reachability(address, None)))
            self.note("probe_start", address=address)
        elif isinstance(a, ForwardPacket):
            e.send_packet(a.packet)
            self.note("bu_forwarded", size=len(a.packet))
        elif isinstance(a, Note):
            self.note(f"ar:{a.name}", **a.fields)

    # ---------------------------------------------------------------- the control API's view
    def _proxy_complete(self, a: ProxyComplete) -> None:
        """The MN authenticated on its new link: its proxy entry completed, its buffered packets flushed."""
        start = time.monotonic_ns()
        flushed = self.engine.proxy_complete(a.ncoa, a.mac)
        since = self._proxied_at.pop(a.ncoa, None)
        if since is not None:
            self.buffering.observe(max(0, self.scheduler.now() - since) / 1e9)
        # when the flush began and, for an Attach read from the wire, when its pass (or the early look) began and
        # its hook ran (CLOCK_MONOTONIC ns): the steps of `fmipfast lab run`'s waterfall between the interface and
        # the flush
        at = self._control_at
        self.note("flushed", count=flushed, flush_ns=start,
                  **({} if at is None else {"pass_ns": at[0], "hook_ns": at[1]}))

    def trigger(self, args: dict[str, Any]) -> dict[str, Any]:
        """The control API's ``handover``: ``args`` as :data:`fmipfast.control.HANDOVER_ARGS` describes them
        (pcoa, nar, nar_principal "name@REALM"; optional prefix_size, nar_mac, ncoa, buffer, lifetime_ms), all
        checked before anything happens: a bad one is a :class:`ControlError` naming it."""
        a = check_args("handover", args, HANDOVER_ARGS, require=("nar_principal",))
        try:
            principal = L.Principal.parse(a["nar_principal"])
        except ValueError as exc:
            raise ControlError(f"handover: 'nar_principal': {exc}") from None
        given = {"nar_prefix_size": a.get("prefix_size"), "nar_mac": a.get("nar_mac"), "ncoa": a.get("ncoa"),
                 "buffer": a.get("buffer"), "lifetime_ms": a.get("lifetime_ms")}
        trig = Trigger(a["pcoa"], a["nar"], principal, **{k: v for k, v in given.items() if v is not None})
        refusals = ("trigger_unknown_mn", "trigger_busy", "trigger_invalid")
        before = sum(self.ar.counters[k] for k in refusals)
        self.handle(trig)
        if sum(self.ar.counters[k] for k in refusals) > before:
            raise ControlError("handover refused: the MN is not attached here, a handover of it is running, "
                               "or the trigger is invalid (see the counters)")
        record = self.ar.par.get(trig.pcoa)
        return {"identifier": record.identifier if record else None,
                "state": record.state.value if record else None}

    def handovers(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{"role": "par", "pcoa": str(k), "identifier": h.identifier,
                                      "state": h.state.value} for k, h in self.ar.par.items()]
        out += [{"role": "nar", "ncoa": str(h.ncoa), "pcoa": str(h.pcoa), "identifier": h.identifier,
                 "state": h.state.value} for h in self.ar.nar.values()]
        return out

    def mobile_nodes(self) -> list[dict[str, Any]]:
        return [{"address": str(a)} for a in self.ar.sessions]

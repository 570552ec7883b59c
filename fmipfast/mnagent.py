"""The mobile node on a real Linux host: the I/O-free :class:`fmipfast.mn.MobileNode` driven over a raw
ICMPv6 socket and netlink (docs/design.md §1, §5 last paragraph; draft §2, §3, §6.1, §6.1.1, App. A).

What the agent does with the machine's actions (``fmipfast.protocol``):

* ``Send`` -> ``sendmsg`` on a raw ICMPv6 socket bound to the interface (``SO_BINDTODEVICE``), with the
  action's hop limit (``IPV6_HOPLIMIT`` ancillary data) from the action's source address (``IPV6_PKTINFO``).
  A raw ICMPv6 socket always has the kernel fill in the checksum over the addresses the packet really
  carries (RFC 3542 §3.1; Linux ``rawv6_push_pending_frames`` subtracts whatever value is there first), so
  what goes on the wire verifies even though the machine already encoded one; the MAC sub-option is
  computed with the checksum zeroed (docs/design.md §2, sub-option 7), so the rewrite cannot break it.
* ``ConfigureAddress`` -> the /64 with ``IFA_F_NODAD`` (the NAR proxies the NCoA, docs/design.md §1 step 5);
  ``RemoveAddress`` -> the address removed with the prefix length the kernel reports for it; with
  ``keep_pcoa=True`` a retired PCoA is kept instead (listed in ``MnAgent.retired``) until
  :meth:`MnAgent.release_retired` — the binding update completed — so packets still addressed to it, which
  the NAR delivers on the new link, reach the host's sockets.
* ``PreloadNeighbor`` -> a neighbor entry in state **REACHABLE** (netlink ``replace``), not PERMANENT:
  the entry is usable at once, so the Attach goes out without Neighbor Solicitation, and afterwards the
  kernel's own NUD (REACHABLE -> STALE -> DELAY/PROBE, RFC 4861 §7.3) keeps checking it.  A PERMANENT entry
  would outlive the handover: nothing in the protocol removes it, and after the next handover (or a NAR
  whose MAC changed) it would pin a wrong link-layer address forever.
* ``SetDefaultRoute`` -> ``replace`` of the IPv6 default route (table main, metric 1024) via the NAR's
  link-local address on the interface.
* ``GetTicket`` -> ``ticket_provider(server)`` (sync or async, e.g. ``TicketCache.get``) in a task, then
  ``TicketReady``; ``Precache`` -> the ``precache`` hook (e.g. ``TicketCache.precache``) in the background;
  ``ReadyToSwitch`` -> ``on_ready_to_switch(nar_address)`` (the lab moves the link); ``Note`` -> one
  structured log line and ``on_note(note, now_ns)``.

The machine names links, not interfaces: the ``iface`` of its actions is the link name of its ``LinkUp``.
The agent owns one interface and applies every action to it.

Events in: fmipfast messages (ICMPv6 type from the codepoints) -> ``Received`` with the real hop limit and
destination (``IPV6_RECVHOPLIMIT``, ``IPV6_RECVPKTINFO``); Router Advertisements with the adjacent-realms
option -> ``AdjacentRealms`` (RFC 4861 §6.1.2 checks first: hop limit 255, link-local source); carrier
changes of the interface from netlink (``RTM_NEWLINK``, ``IFF_LOWER_UP``) -> ``LinkUp``/``LinkDown``; the
lab may also call :meth:`MnAgent.link_up` / :meth:`MnAgent.link_down` itself.  The name of a link that comes
up is, in this order: what the lab set in :attr:`MnAgent.next_link` (used once), the interface's master
device (a bridge), or the interface name.

Ownership and threading: one asyncio loop owns the agent.  Events go through one queue and one worker task,
so ``MobileNode.handle`` has a single caller and actions run in order.  One exception, on the same thread: a
carrier change read while the worker is idle and the queue empty is handled by the netlink reader at once
(the machine sees the same events in the same order; the Attach leaves without a loop iteration's wait), and
whatever of its actions must wait goes to the worker first.  On a new link the machine orders
``PreloadNeighbor``, ``ConfigureAddress`` and ``SetDefaultRoute``, then the Attach (built beforehand): the
three go to the kernel in one rtnetlink ``sendmsg``, so the NCoA exists before the Attach leaves and before
the NAR's flush can reach it, for ~0.1 ms of the Attach's latency.  The configuration steps are bare
rtnetlink requests on the loop's thread, consecutive ones in one ``sendmsg``: the kernel completes each inside
``send`` (10-60 µs), where pyroute2 took milliseconds each.  The
rest (address removal, link queries) runs on one private thread holding a pyroute2 ``IPRoute`` (pyroute2 0.9's
synchronous ``IPRoute`` cannot be called from a running event loop); that thread and every socket are created
in the constructor, so they live in the network namespace of the caller.  Nothing on the Attach's path waits
for a timer: the carrier comes from the kernel's RTM_NEWLINK notification on a netlink socket the loop
watches.  Nor for bookkeeping: the notification's flags are read without walking its fifty-odd attributes
(its master device is looked for only when the link's name needs it), and the notes of a run of actions --
the carrier's own, the machine's state changes, the ``send`` -- are logged and handed to ``on_note`` after
the run's other actions, each with the time of what it describes (the read of the notification, the Send's
hand-over to the kernel): in the lab they had been 0.15-0.25 ms of the 0.34-0.53 ms from the carrier to
the Attach.
Nothing raises out of :meth:`MnAgent.run` for bad input or a failed socket/netlink call: the failure is
counted in :attr:`MnAgent.counters` (malformed fmipfast messages are counted by the machine, ``agent.mn``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv6Address
from typing import Any

from pyroute2 import IPRoute

from fmipfast.constants import DEFAULT_CODEPOINTS, ND_HOP_LIMIT, Codepoints, Icmp6Type
from fmipfast.errors import MalformedPacket
from fmipfast.messages import AdjacentRealms as AdjacentRealmsOption
from fmipfast.messages import RouterAdvertisement, decode
from fmipfast.mn import MobileNode
from fmipfast.protocol import (
    DEFAULT_BACKOFF,
    Action,
    AdjacentRealms,
    Backoff,
    ConfigureAddress,
    Event,
    GetTicket,
    LinkDown,
    LinkUp,
    Note,
    Precache,
    PreloadNeighbor,
    ReadyToSwitch,
    Received,
    RemoveAddress,
    Send,
    SetDefaultRoute,
    Start,
    Tick,
    TicketReady,
)
from fmipfast.rtnetlink import (
    IFF_LOWER_UP,
    IFF_UP,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    NLMSG_HDR,
    RTA_HDR,
    RTMGRP_LINK,
    carrier_up,
    link_master,
    link_messages,
)
from fmipfast.security.lwkerb import Credentials, Principal

__all__ = ["MnAgent", "AGENT_COUNTERS", "icmp6_filter"]

log = logging.getLogger("fmipfast.mnagent")
STOP_GRACE_S = 2.0  # at stop, how long the actions of the event being handled may still take

# Linux constants not (all) in the socket module.
ICMP6_FILTER = 1  # <netinet/icmp6.h>, level IPPROTO_ICMPV6
IFA_F_NODAD = 0x02  # <linux/if_addr.h>
NUD_REACHABLE = 0x02  # <linux/neighbour.h>
IN6_PKTINFO = struct.Struct("=16sI")  # struct in6_pktinfo: address, ifindex
RECV_BURST = 64  # datagrams read per wake-up before yielding to the loop
LOG_INTERVAL_NS = 1_000_000_000  # at most one warning per failure counter per second; the counter sees all

#: Counter name -> what it counts (every socket/netlink failure has one; the machine counts bad messages).
AGENT_COUNTERS: dict[str, str] = {
    "rx_datagrams": "ICMPv6 datagrams read from the raw socket",
    "rx_fmip": "fmipfast messages handed to the machine",
    "rx_ra": "Router Advertisements read",
    "rx_ra_rejected": "Router Advertisements failing RFC 4861 §6.1.2 (hop limit, source) or malformed",
    "rx_other_type": "ICMPv6 types the filter should have blocked",
    "rx_truncated": "datagrams longer than the receive buffer (MSG_TRUNC), dropped",
    "rx_no_ancillary": "datagrams without IPV6_PKTINFO/IPV6_HOPLIMIT, dropped",
    "rx_errors": "recvmsg failures other than EAGAIN",
    "tx_sent": "messages sent",
    "tx_errors": "sendmsg failures (each also a Note 'agent_error')",
    "netlink_errors": "failed netlink requests (address, neighbor, route, link queries)",
    "netlink_monitor_errors": "failed reads of the link notification socket (ENOBUFS: state resynchronised)",
    "address_missing": "RemoveAddress for an address not on the interface",
    "pcoa_kept": "retired PCoAs kept on the interface until release_retired() (keep_pcoa=True)",
    "link_up": "LinkUp events given to the machine",
    "link_down": "LinkDown events given to the machine",
    "ticket_errors": "ticket_provider failures (answered with TicketReady(error))",
    "precache_errors": "precache hook failures",
    "precache_busy": "RAs asking for a precache while one ran (not stacked up)",
    "callback_errors": "exceptions from on_ready_to_switch / on_note",
}


def icmp6_filter(*passed: int) -> bytes:
    """A ``struct icmp6_filter`` blocking every ICMPv6 type but ``passed`` (Linux: a set bit blocks,
    ``ICMP6_FILTER_SETPASS`` clears it; 8 native 32-bit words)."""
    words = [0xFFFFFFFF] * 8
    for t in passed:
        if not 0 <= t <= 255:
            raise ValueError(f"ICMPv6 type {t} outside 0..255")
        words[t >> 5] &= ~(1 << (t & 31)) & 0xFFFFFFFF
    return struct.pack("=8I", *words)


class MnAgent:
    """The MN side on the interface ``ifname`` of the calling thread's network namespace.

    Parameters
    ----------
    ifname : the interface the MN moves (one interface; every action applies to it).
    mac : its 48-bit MAC; None reads it from the interface.
    home_agent : where Binding Updates go (``MobileNode``); None sends none.
    codepoints : the ICMPv6 type/codes profile; the socket filter passes its type and RAs.
    ticket_provider : ``server -> Credentials`` (sync) or an async one (``TicketCache.get``).
    precache : ``realms -> ...`` (sync or async, ``TicketCache.precache``) for ``Precache``; None ignores it.
    clock : the nanosecond clock of the timers (monotonic by default).
    epoch_ns : POSIX time minus ``clock`` (for Kerberos times); default measured now.
    on_ready_to_switch : called with the NAR address when the HRA is out (the lab moves the link).
    on_note : called with every ``Note`` and the clock time (the timeline).
    keep_pcoa : keep a retired PCoA on the interface until ``release_retired()``.
    renew_before_s, renew_retry_s, switch_wait_s : session renewal and the ReadyToSwitch timer (``MobileNode``).
    """

    def __init__(self, ifname: str, mac: bytes | None = None, *, home_agent: IPv6Address | str | None = None,
                 codepoints: Codepoints = DEFAULT_CODEPOINTS,
                 ticket_provider: Callable[[Principal], Any],
                 precache: Callable[[tuple[str, ...]], Any] | None = None,
                 clock: Callable[[], int] = time.monotonic_ns, epoch_ns: int | None = None,
                 backoff: Backoff = DEFAULT_BACKOFF,
                 on_ready_to_switch: Callable[[IPv6Address], Any] | None = None,
                 on_note: Callable[[Note, int], Any] | None = None,
                 keep_pcoa: bool = False, renew_before_s: float = 30.0, renew_retry_s: float = 10.0,
                 switch_wait_s: float = 2.5) -> None:
        self.ifname = ifname
        self.keep_pcoa = keep_pcoa
        #: Retired PCoAs still on the interface (``keep_pcoa=True``), oldest first.
        self.retired: list[IPv6Address] = []
        self.codepoints = codepoints
        self.ticket_provider = ticket_provider
        self.precache = precache
        self.clock = clock
        self.on_ready_to_switch = on_ready_to_switch
        self.on_note = on_note
        #: The name the next carrier-up (or :meth:`link_up` without a name) gives the machine; used once.
        self.next_link: str | None = None
        self.counters: dict[str, int] = dict.fromkeys(AGENT_COUNTERS, 0)
        self._logged: dict[str, int] = {}
        self._queue: asyncio.Queue[Event | _Carrier | _Rest] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._precaching: asyncio.Task[Any] | None = None  # the precache running now, if any
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._carrier: bool | None = None
        self._sock: socket.socket | None = None
        self._mon: socket.socket | None = None
        self._rtnl: _Rtnl | None = None
        #: When each Send not yet described by its 'send' note was handed to the kernel (oldest first).
        self._send_times: deque[int] = deque()
        # The netlink thread starts here, so it (and its IPRoute) live in the caller's network namespace.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"mnagent-{ifname}")
        self._idle = asyncio.Event()  # set while the worker waits for an event (no actions half-done)
        self._idle.set()
        try:
            self._ipr: IPRoute = self._pool.submit(IPRoute).result()
            self.ifindex, own_mac, flags = self._pool.submit(self._link_info).result()
            self._carrier = bool(flags & IFF_LOWER_UP) and bool(flags & IFF_UP)
            self.mac = bytes(mac) if mac is not None else own_mac
            if epoch_ns is None:
                epoch_ns = time.time_ns() - clock()
            self.mn = MobileNode(self.mac, home_agent=home_agent, codepoints=codepoints, backoff=backoff,
                                 epoch_ns=epoch_ns, renew_before_s=renew_before_s, renew_retry_s=renew_retry_s,
                                 switch_wait_s=switch_wait_s)
            self._sock = self._open_icmp()
            self._mon = self._open_monitor()
            self._rtnl = _Rtnl()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ setup
    def _link_info(self) -> tuple[int, bytes, int]:
        found = self._ipr.link_lookup(ifname=self.ifname)
        if not found:
            raise OSError(f"mnagent: no interface {self.ifname!r}")
        link = self._ipr.get_links(found[0])[0]
        mac = bytes.fromhex(str(link.get_attr("IFLA_ADDRESS")).replace(":", ""))
        return int(found[0]), mac, int(link["flags"])

    def _open_icmp(self) -> socket.socket:
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.ifname.encode())
            s.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER,
                         icmp6_filter(self.codepoints.type, Icmp6Type.ROUTER_ADVERTISEMENT))
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            # The per-packet IPV6_HOPLIMIT of each Send wins; these are the fallbacks (ND messages use 255).
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ND_HOP_LIMIT)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ND_HOP_LIMIT)
            s.setblocking(False)
        except BaseException:
            s.close()
            raise
        return s

    def _open_monitor(self) -> socket.socket:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.NETLINK_ROUTE)
        try:
            s.bind((0, RTMGRP_LINK))
        except BaseException:
            s.close()
            raise
        return s

    def close(self) -> None:
        """Close the sockets and the netlink thread (idempotent).  The kernel state stays as configured."""
        for s in (self._sock, self._mon):
            if s is not None:
                s.close()
        self._sock = self._mon = None
        if self._rtnl is not None:
            self._rtnl.close()
            self._rtnl = None
        ipr = getattr(self, "_ipr", None)
        if ipr is not None:
            try:
                self._pool.submit(ipr.close).result(timeout=5)
            except Exception:  # closing: nothing to report to
                pass
            self._ipr = None  # type: ignore[assignment]
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "MnAgent":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ public events
    def submit(self, event: Event) -> None:
        """Queue one event for the machine.  Call it (and :meth:`start`, :meth:`link_up`, :meth:`link_down`)
        on the agent's loop thread; from another thread use ``loop.call_soon_threadsafe(agent.submit, ev)``."""
        self._queue.put_nowait(event)

    def start(self, router_address: IPv6Address | str, router_principal: Principal, coa: IPv6Address | str,
              link: str = "link0") -> None:
        """Initial attach (docs/design.md §1) to the router at ``router_address``; ``coa`` is already configured."""
        self.submit(Start(IPv6Address(router_address), router_principal, IPv6Address(coa), link))

    def solicit(self) -> bool:
        """Send a Router Solicitation asking for the adjacent realms (draft §6.1.1, ND option 253 sub-type
        1) from the interface's link-local address; the RA's list then feeds precaching.  False (counted)
        when the send fails, e.g. while the kernel's link-local address is still tentative."""
        from fmipfast.messages import AdjacentRealmsRequest, RouterSolicitation, SourceLinkLayerAddress, encode

        eui = bytearray(self.mac[:3] + b"\xff\xfe" + self.mac[3:])
        eui[0] ^= 0x02  # modified EUI-64 (RFC 4291 App. A)
        ll = IPv6Address(b"\xfe\x80" + bytes(6) + bytes(eui))
        dst = IPv6Address("ff02::2")
        rs = RouterSolicitation((SourceLinkLayerAddress(self.mac), AdjacentRealmsRequest()))
        before = self.counters["tx_sent"]
        self._send(Send(encode(rs, ll, dst, codepoints=self.codepoints), ll, dst, ND_HOP_LIMIT))
        return self.counters["tx_sent"] > before

    def link_up(self, name: str | None = None) -> None:
        """Layer 2 is up on the link ``name`` (default: :attr:`next_link`, the master device or the interface)."""
        self._queue.put_nowait(_Carrier(True, None, name))

    def link_down(self) -> None:
        self.submit(LinkDown())

    # ------------------------------------------------------------------ the loop
    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set.  Readers on the raw socket and the link notification socket, a timer
        for ``next_deadline()``, one worker feeding the machine."""
        if self._sock is None or self._mon is None:
            raise RuntimeError("mnagent: closed")
        loop = asyncio.get_running_loop()
        self._loop = loop
        loop.add_reader(self._sock.fileno(), self._on_icmp)
        loop.add_reader(self._mon.fileno(), self._on_netlink)
        worker = loop.create_task(self._worker())
        stopper = loop.create_task(stop.wait())
        try:
            await asyncio.wait({worker, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if worker.done() and not worker.cancelled() and worker.exception() is not None:
                raise worker.exception()  # type: ignore[misc]  # a bug in the agent, not bad input
            if not self._idle.is_set():
                # stopped in the middle of an event's actions (an address added, its route not yet): let them
                # finish, boundedly, rather than leave the kernel half-configured
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._idle.wait(), STOP_GRACE_S)
        finally:
            for fd_sock in (self._sock, self._mon):
                if fd_sock is not None:
                    loop.remove_reader(fd_sock.fileno())
            if self._timer is not None:
                self._timer.cancel()
                self._timer = self._timer_at = None
            pending = [worker, stopper, *self._tasks]
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            self._tasks.clear()
            self._loop = None

    async def _worker(self) -> None:
        while True:
            item = await self._queue.get()
            self._idle.clear()
            try:
                if isinstance(item, _Rest):  # the actions an event handled on the netlink reader left
                    if item.error is not None:
                        raise item.error
                    await self._perform(item.actions, item.start)
                    self._after_event()
                    continue
                if isinstance(item, _Carrier):
                    event = await self._carrier_event(item)
                    if event is None:
                        continue
                    try:
                        await self._perform(self.mn.handle(event, self.clock()))
                    finally:
                        if item.seen_ns is not None:  # the carrier note, once the Attach it triggered is out
                            self._carrier_note(isinstance(event, LinkUp), item.seen_ns)
                    self._after_event()
                    continue
                await self._perform(self.mn.handle(item, self.clock()))
                self._after_event()
            finally:
                self._idle.set()

    def _after_event(self) -> None:
        self._arm_timer()
        if self._queue.empty():
            self.mn.prepare()  # e.g. the handover's Attach, between ReadyToSwitch and the new link

    async def _perform(self, actions: list[Action], start: int = 0) -> None:
        """Carry out ``actions[start:]`` in order: what needs no waiting at once, the rest awaited."""
        i = self._perform_now(actions, start)
        while i < len(actions):
            await self._execute(actions[i])
            i = self._perform_now(actions, i + 1)

    def _perform_now(self, actions: list[Action], start: int) -> int:
        """Carry out ``actions[start:]`` up to the first that waits for the netlink thread (an address
        removal); its index, or ``len(actions)``.  Consecutive configuration steps go in one rtnetlink
        sendmsg.  The notes among them (logging, the ``on_note`` callback: tens of microseconds each) are made
        after the other actions of the run, in their order: the machine's notes of a LinkUp would otherwise
        stand between the carrier and the Attach.  A note keeps the time of what it describes where that
        matters (a ``send`` note the time its Send was handed to the kernel)."""
        i = start
        notes: list[Note] = []
        try:
            while i < len(actions):
                a = actions[i]
                if isinstance(a, Note):
                    notes.append(a)
                    i += 1
                elif isinstance(a, _RTNL_ACTIONS):
                    j = i
                    while j < len(actions) and isinstance(actions[j], _RTNL_ACTIONS):
                        j += 1
                    self._rtnl_actions(actions[i:j])
                    i = j
                elif isinstance(a, RemoveAddress) and not (a.retired and self.keep_pcoa):
                    return i
                else:
                    self._execute_now(a)
                    i += 1
            return i
        finally:
            for note in notes:
                self._log_note(note)
            self._send_times.clear()  # a Send of this run without a note: its time goes with the run

    def _handle_now(self, c: "_Carrier") -> bool:
        """A carrier change handled on the netlink reader itself, without the hop through the queue to the
        worker (a loop iteration, 0.1-0.2 ms between the carrier and the Attach): only when the worker is idle
        and nothing is queued -- the machine then sees the events in the same order either way -- and the new
        link's name needs no netlink query.  Actions that wait (an address removal) and everything after them
        go to the front of the queue, which is empty, for the worker.  False: queue the report instead."""
        if not self._idle.is_set() or not self._queue.empty() or self._loop is None:
            return False
        if c.up and c.name is None and self.next_link is None and c.master is not None:
            return False  # the name is the master device's: a query on the netlink thread
        self._idle.clear()
        event = None
        try:
            # the carrier note (its time is the read's, whenever it is made) waits until the Attach is out
            event = self._carrier_change(c, None, note=False)
            if event is None:
                return True
            actions = self.mn.handle(event, self.clock())
            i = self._perform_now(actions, 0)
            if i < len(actions):
                self._queue.put_nowait(_Rest(actions, i))
            else:
                self._after_event()
        except Exception as exc:  # a bug, not bad input: raised out of run() by the worker, as it would be there
            self._queue.put_nowait(_Rest([], 0, exc))
        finally:
            self._idle.set()
            if event is not None and c.seen_ns is not None:
                self._carrier_note(bool(c.up), c.seen_ns)
        return True

    def _arm_timer(self) -> None:
        deadline = self.mn.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None and self._loop is not None:
            delay = max(0.0, (deadline - self.clock()) / 1e9)
            self._timer = self._loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self.submit(Tick())

    # ------------------------------------------------------------------ receive
    def _on_icmp(self) -> None:
        sock = self._sock
        if sock is None:
            return
        space = socket.CMSG_SPACE(IN6_PKTINFO.size) + socket.CMSG_SPACE(4)
        for _ in range(RECV_BURST):
            try:
                data, ancdata, flags, addr = sock.recvmsg(65535, space)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._fail("rx_errors", "recvmsg", exc)
                return
            self.counters["rx_datagrams"] += 1
            if flags & socket.MSG_TRUNC:
                self.counters["rx_truncated"] += 1
                continue
            dst: IPv6Address | None = None
            hop_limit: int | None = None
            for level, kind, value in ancdata:
                if level != socket.IPPROTO_IPV6:
                    continue
                if kind == socket.IPV6_PKTINFO and len(value) >= IN6_PKTINFO.size:
                    dst = IPv6Address(IN6_PKTINFO.unpack_from(value)[0])
                elif kind == socket.IPV6_HOPLIMIT and len(value) >= 4:
                    hop_limit = struct.unpack_from("=i", value)[0]
            if dst is None or hop_limit is None or not data:
                self.counters["rx_no_ancillary"] += 1
                continue
            src = IPv6Address(str(addr[0]).split("%", 1)[0])
            if data[0] == self.codepoints.type:
                self.counters["rx_fmip"] += 1
                self.submit(Received(bytes(data), src, dst, hop_limit, self.ifname, False))
            elif data[0] == Icmp6Type.ROUTER_ADVERTISEMENT:
                self._on_ra(bytes(data), src, dst, hop_limit)
            else:
                self.counters["rx_other_type"] += 1

    def _on_ra(self, data: bytes, src: IPv6Address, dst: IPv6Address, hop_limit: int) -> None:
        """Router Advertisement: RFC 4861 §6.1.2 validity first (hop limit 255, link-local source, checksum),
        then the adjacent-realms option (draft §6.1.1) -> ``AdjacentRealms``."""
        self.counters["rx_ra"] += 1
        try:
            if hop_limit != ND_HOP_LIMIT or not src.is_link_local:
                raise MalformedPacket("RA: hop limit not 255 or source not link-local (RFC 4861 §6.1.2)")
            ra = decode(data, src, dst, codepoints=self.codepoints)
        except (MalformedPacket, ValueError):
            self.counters["rx_ra_rejected"] += 1
            return
        if not isinstance(ra, RouterAdvertisement):
            self.counters["rx_ra_rejected"] += 1
            return
        for option in ra.options:
            if isinstance(option, AdjacentRealmsOption) and option.realms:
                self.submit(AdjacentRealms(tuple(option.realms)))

    def _on_netlink(self) -> None:
        mon = self._mon
        if mon is None:
            return
        for _ in range(RECV_BURST):
            try:
                data = mon.recv(65536)
                seen = self.clock()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ENOBUFS: notifications lost; ask the kernel for the state
                self._fail("netlink_monitor_errors", "netlink monitor", exc)
                self._queue.put_nowait(_Carrier(None, None, None))
                return
            for mtype, flags, attrs in link_messages(data, self.ifindex):
                up = carrier_up(mtype, flags)
                c = _Carrier(up, None, None, automatic=True, seen_ns=seen, attrs=attrs)
                if not self._handle_now(c):
                    self._queue.put_nowait(c)

    async def _carrier_event(self, c: "_Carrier") -> Event | None:
        """Turn a carrier report into LinkUp/LinkDown; automatic reports only on a change."""
        up, master = c.up, c.master
        if up is None:  # resynchronise after lost notifications
            try:
                _idx, _mac, flags = await self._netlink(self._link_info)
            except OSError:
                return None
            up = bool(flags & IFF_UP) and bool(flags & IFF_LOWER_UP)
            c = _Carrier(up, None, None, automatic=True)
        name = None
        if up and c.name is None and self.next_link is None and master is not None \
                and not (c.automatic and up == self._carrier):
            try:
                name = await self._netlink(self._name_of, master)
            except OSError:
                name = None
        return self._carrier_change(c, name, note=False)  # the worker notes it once its actions are done

    def _carrier_change(self, c: "_Carrier", master_name: str | None, *, note: bool = True) -> Event | None:
        """The event of a carrier report (None: an automatic report of no change); ``master_name``: the
        interface's master device, the link's name when neither the report nor :attr:`next_link` gives one.
        ``note`` False: the caller makes the carrier note itself (:meth:`_carrier_note`), later."""
        up = bool(c.up)
        if c.automatic and up == self._carrier:
            return None
        self._carrier = up
        if c.seen_ns is not None and note:
            # when the kernel's notification was read, before it waited in the queue: the timeline's "link up
            # seen" (the machine's own 'link' note comes after the queue and any name lookup)
            self._carrier_note(up, c.seen_ns)
        if not up:
            self.counters["link_down"] += 1
            return LinkDown()
        name = c.name or self.next_link or master_name
        self.next_link = None
        self.counters["link_up"] += 1
        return LinkUp(name or self.ifname)

    def _carrier_note(self, up: bool, seen_ns: int) -> None:
        note = Note("carrier", {"role": "mn", "up": up, "interface": self.ifname})
        if log.isEnabledFor(logging.DEBUG):
            log.debug("mnagent %s carrier %s", self.ifname, "up" if up else "down",
                      extra={"fields": {"event": "carrier", "interface": self.ifname, "up": up}})
        if self.on_note is not None:
            self._callback(self.on_note, note, seen_ns)

    def _name_of(self, index: int) -> str:
        return str(self._ipr.get_links(index)[0].get_attr("IFLA_IFNAME"))

    # ------------------------------------------------------------------ actions
    async def _execute(self, a: Action) -> None:
        if isinstance(a, RemoveAddress) and not (a.retired and self.keep_pcoa):
            self._unretire(a.address)
            await self._netlink_action(self._remove_address, a.address)
        else:
            self._execute_now(a)

    def _execute_now(self, a: Action) -> None:
        """One action that needs no waiting (everything but an address removal, :meth:`_execute`)."""
        if isinstance(a, Send):
            self._send(a)
        elif isinstance(a, _RTNL_ACTIONS):
            self._rtnl_actions([a])
        elif isinstance(a, RemoveAddress):  # kept (keep_pcoa): the removals themselves are _execute's
            if a.address not in self.retired:
                self.retired.append(a.address)
                self.counters["pcoa_kept"] += 1
        elif isinstance(a, GetTicket):
            self._spawn(self._get_ticket(a))
        elif isinstance(a, Precache):
            # one precache at a time: RAs are unauthenticated and may come as fast as a host sends them
            if self.precache is None:
                pass
            elif self._precaching is not None and not self._precaching.done():
                self.counters["precache_busy"] += 1
            else:
                self._precaching = self._spawn(self._precache(a.realms))
        elif isinstance(a, ReadyToSwitch):
            if self.on_ready_to_switch is not None:
                self._callback(self.on_ready_to_switch, a.nar_address)
        elif isinstance(a, Note):
            self._log_note(a)

    def _unretire(self, address: IPv6Address) -> None:
        if address in self.retired:
            self.retired.remove(address)

    async def release_retired(self) -> list[IPv6Address]:
        """Remove the retired PCoAs kept by ``keep_pcoa=True`` (call it when the binding update completed);
        returns them.  Runs on the agent's netlink thread, in order with the machine's own actions."""
        released, self.retired = self.retired, []
        for address in released:
            await self._netlink_action(self._remove_address, address)
        return released

    def _send(self, a: Send) -> None:
        sock = self._sock
        if sock is None:
            return
        scope = self.ifindex if a.dst.is_link_local or a.dst.is_multicast else 0
        ancillary = [
            (socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, IN6_PKTINFO.pack(a.src.packed, self.ifindex)),
            (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, struct.pack("=i", a.hop_limit)),
        ]
        self._send_times.append(self.clock())  # the time of the machine's 'send' note: handed to the kernel
        try:
            sock.sendmsg([a.icmp], ancillary, 0, (str(a.dst), 0, 0, scope))
        except OSError as exc:
            self._fail("tx_errors", f"sendmsg {a.src} -> {a.dst}", exc)
            return
        self.counters["tx_sent"] += 1

    async def _netlink(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)

    async def _netlink_action(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            await self._netlink(fn, *args)
        except Exception as exc:  # NetlinkError is an OSError; anything else from pyroute2 is counted too
            self._fail("netlink_errors", f"{fn.__name__}{args}", exc)

    def _rtnl_actions(self, actions: list[Action]) -> None:
        """Consecutive configuration steps of the Attach's path (``ConfigureAddress``, ``PreloadNeighbor``,
        ``SetDefaultRoute``), synchronously on the loop's thread: one rtnetlink ``sendmsg`` for all of them
        (the kernel runs them in order, each to its own acknowledgement), then the acknowledgements (see
        _Rtnl).  Each failed step is counted on its own."""
        rtnl = self._rtnl
        if rtnl is None:
            return
        requests: list[tuple[int, bytes]] = []
        for a in actions:
            if isinstance(a, ConfigureAddress):
                # an address configured again (A -> B -> A before the BAck) is current: no longer retired
                self._unretire(a.address)
                requests.append(rtnl.addr_request(self.ifindex, a.address, 64, IFA_F_NODAD))
            elif isinstance(a, PreloadNeighbor):
                requests.append(rtnl.neigh_request(self.ifindex, a.address, a.mac, NUD_REACHABLE))
            else:
                assert isinstance(a, SetDefaultRoute)
                requests.append(rtnl.default_route_request(self.ifindex, a.via))
        try:
            errors = rtnl.submit(requests)
        except OSError as exc:
            errors = [exc.errno or -1] * len(requests)
        for a, err in zip(actions, errors):
            if err:
                self._fail("netlink_errors", repr(a), OSError(err, f"rtnetlink: {os.strerror(err)}"))

    def _remove_address(self, address: IPv6Address) -> None:
        for msg in self._ipr.get_addr(family=socket.AF_INET6, index=self.ifindex):
            if IPv6Address(msg.get_attr("IFA_ADDRESS")) == address:
                self._ipr.addr("del", index=self.ifindex, address=str(address), prefixlen=int(msg["prefixlen"]),
                               family=socket.AF_INET6)
                return
        self.counters["address_missing"] += 1  # single netlink thread: no concurrent writer

    async def _get_ticket(self, a: GetTicket) -> None:
        try:
            creds = self.ticket_provider(a.server)
            if inspect.isawaitable(creds):
                creds = await creds
            if not isinstance(creds, Credentials) and not callable(getattr(creds, "initiate", None)):
                # lwkerb Credentials, or another mechanism's (security.gss.GssCredentials: initiate(binding))
                raise TypeError(f"ticket_provider returned {type(creds).__name__}, not Credentials")
            ready = TicketReady(a.request_id, creds)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.counters["ticket_errors"] += 1
            ready = TicketReady(a.request_id, None, f"{type(exc).__name__}: {exc}")
        self.submit(ready)

    async def _precache(self, realms: tuple[str, ...]) -> None:
        assert self.precache is not None
        try:
            out = self.precache(realms)
            if inspect.isawaitable(out):
                await out
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail("precache_errors", "precache", exc)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _callback(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            out = fn(*args)
            if inspect.isawaitable(out):
                self._spawn(out)
        except Exception:
            self.counters["callback_errors"] += 1
            log.exception("mnagent %s: callback %r failed", self.ifname, fn)

    def _log_note(self, note: Note) -> None:
        if log.isEnabledFor(logging.INFO):
            log.info("mnagent %s %s %s", self.ifname, note.name, json.dumps(note.fields, default=str, sort_keys=True),
                     extra={"fields": {"event": note.name, "interface": self.ifname, **note.fields}})
        if self.on_note is not None:
            at = self.clock()
            if note.name == "send" and self._send_times:
                at = self._send_times.popleft()  # its Send ran before it: when that began
            self._callback(self.on_note, note, at)

    def _fail(self, counter: str, what: str, exc: BaseException) -> None:
        self.counters[counter] += 1
        note = Note("agent_error", {"role": "mn", "counter": counter, "what": what, "error": str(exc)})
        now = self.clock()
        if now - self._logged.get(counter, -LOG_INTERVAL_NS) >= LOG_INTERVAL_NS:  # docs/conventions.md §8
            self._logged[counter] = now
            log.warning("mnagent %s: %s failed: %s (%s=%d)", self.ifname, what, exc, counter,
                        self.counters[counter])
        if self.on_note is not None:
            self._callback(self.on_note, note, self.clock())


class _Rtnl:
    """A bare rtnetlink request socket for the three configuration steps on the Attach's path.

    The kernel runs an rtnetlink request inside ``sendmsg`` (``netlink_unicast_kernel`` calls the handler in
    the sender's context) and queues its acknowledgement before returning, so each request here is one
    ``send`` and one non-blocking ``recv``: about 20 µs, on the loop's own thread.  pyroute2's IPRoute on the
    agent's netlink thread took milliseconds per request (message objects, the thread hand-off), and three of
    them stood between the MN's carrier coming up and its Attach.  Errors are the kernel's errno
    (``OSError``)."""

    RTM_NEWADDR, RTM_NEWROUTE, RTM_NEWNEIGH = 20, 24, 28
    IFA_ADDRESS, IFA_FLAGS = 1, 8
    NDA_DST, NDA_LLADDR = 1, 2
    RTA_OIF, RTA_GATEWAY = 4, 5
    RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST = 254, 3, 1

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        try:
            self.sock.bind((0, 0))
        except BaseException:
            self.sock.close()
            raise
        self.seq = 0

    @staticmethod
    def _attr(kind: int, value: bytes) -> bytes:
        head = RTA_HDR.pack(RTA_HDR.size + len(value), kind)
        return head + value + bytes(-(len(head) + len(value)) % 4)

    def submit(self, requests: list[tuple[int, bytes]]) -> list[int]:
        """Send the ``(message type, body)`` requests in one ``sendmsg`` and return each one's errno (0: done).
        The kernel runs them in order, acknowledging each (one failing does not stop the next), before
        ``send`` returns; a stale acknowledgement is skipped.  A failed send or receive raises ``OSError``."""
        flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
        parts = []
        waiting: dict[int, int] = {}
        for i, (kind, body) in enumerate(requests):
            self.seq = (self.seq + 1) & 0xFFFFFFFF
            waiting[self.seq] = i
            parts.append(NLMSG_HDR.pack(NLMSG_HDR.size + len(body), kind, flags, self.seq, 0) + body)
        errors = [0] * len(requests)
        self.sock.send(b"".join(parts))
        while waiting:
            data = self.sock.recv(65536, socket.MSG_DONTWAIT)
            off = 0
            while off + NLMSG_HDR.size <= len(data):
                length, mtype, _f, seq, _pid = NLMSG_HDR.unpack_from(data, off)
                if length < NLMSG_HDR.size:
                    break
                if mtype == NLMSG_ERROR and seq in waiting:
                    errors[waiting.pop(seq)] = -struct.unpack_from("=i", data, off + NLMSG_HDR.size)[0]
                off += (length + 3) & ~3
        return errors

    def _request(self, kind: int, body: bytes) -> None:
        (err,) = self.submit([(kind, body)])
        if err:
            raise OSError(err, f"rtnetlink: {os.strerror(err)}")

    def addr_request(self, index: int, address: IPv6Address, prefixlen: int, flags: int) -> tuple[int, bytes]:
        body = struct.pack("=BBBBI", socket.AF_INET6, prefixlen, flags & 0xFF, 0, index)
        body += self._attr(self.IFA_ADDRESS, address.packed) + self._attr(self.IFA_FLAGS, struct.pack("=I", flags))
        return self.RTM_NEWADDR, body

    def neigh_request(self, index: int, address: IPv6Address, mac: bytes, state: int) -> tuple[int, bytes]:
        body = struct.pack("=BBHiHBB", socket.AF_INET6, 0, 0, index, state, 0, 0)
        body += self._attr(self.NDA_DST, address.packed) + self._attr(self.NDA_LLADDR, bytes(mac))
        return self.RTM_NEWNEIGH, body

    def default_route_request(self, index: int, via: IPv6Address) -> tuple[int, bytes]:
        body = struct.pack("=BBBBBBBBI", socket.AF_INET6, 0, 0, 0, self.RT_TABLE_MAIN, self.RTPROT_BOOT, 0,
                           self.RTN_UNICAST, 0)
        body += self._attr(self.RTA_GATEWAY, via.packed) + self._attr(self.RTA_OIF, struct.pack("=I", index))
        return self.RTM_NEWROUTE, body

    def addr_replace(self, index: int, address: IPv6Address, prefixlen: int, flags: int) -> None:
        self._request(*self.addr_request(index, address, prefixlen, flags))

    def neigh_replace(self, index: int, address: IPv6Address, mac: bytes, state: int) -> None:
        self._request(*self.neigh_request(index, address, mac, state))

    def default_route_replace(self, index: int, via: IPv6Address) -> None:
        self._request(*self.default_route_request(index, via))

    def close(self) -> None:
        self.sock.close()


_RTNL_ACTIONS = (ConfigureAddress, PreloadNeighbor, SetDefaultRoute)


class _Rest:
    """An internal queue item: the actions from ``start`` on of an event handled on the netlink reader, which
    had to wait for the netlink thread; or the ``error`` that handling raised, for the worker to raise."""

    __slots__ = ("actions", "start", "error")

    def __init__(self, actions: list[Action], start: int, error: Exception | None = None) -> None:
        self.actions, self.start, self.error = actions, start, error


class _Carrier:
    """An internal queue item: a carrier report (``up`` None = re-read the state from the kernel)."""

    __slots__ = ("up", "_master", "name", "automatic", "seen_ns", "_attrs")

    def __init__(self, up: bool | None, master: int | None, name: str | None, *, automatic: bool = False,
                 seen_ns: int | None = None, attrs: bytes | None = None) -> None:
        self.up, self._master, self.name, self.automatic = up, master, name, automatic
        self.seen_ns = seen_ns  # the agent's clock when the netlink notification was read
        self._attrs = attrs  # the link message's attributes: IFLA_MASTER is looked for only when asked

    @property
    def master(self) -> int | None:
        """The interface's master device (IFLA_MASTER), or None."""
        if self._attrs is not None:
            self._master, self._attrs = link_master(self._attrs), None
        return self._master

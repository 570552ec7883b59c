"""The lab's layer-2 switch: the process that moves the MN's bridge port between the access links, and the
watch that says when the MN's link is up (docs/design.md §6, "link up" in fmipfast/lab/namespaces/latency.py).

A real MN's link comes up in its network card, not in the MN's software; in the lab the move is made by
rtnetlink requests in the ``air`` namespace.  They run here, in a process of their own
(``python -m fmipfast.lab.namespaces.mover``, started in ``air`` by
:meth:`fmipfast.lab.namespaces.topology.LabTopology.prepare_move`): made on a thread of the MN agent's process,
as before, the move's Python (pyroute2 building and parsing its messages) held the GIL the MN agent needed to
read its carrier and send its Attach.  The requests are bare rtnetlink messages (one ``send``, the kernel runs
the request inside it, one ``recv`` for its acknowledgement).

The watch: a netlink socket subscribed to link notifications in the MN's namespace (opened there before this
process settles in ``air``), read by a thread that does nothing else.  The MN's carrier coming up is the
RTM_NEWLINK of the MN's interface with IFF_UP and IFF_LOWER_UP, which the kernel sends from its link watch
once the MN's end of the veth has carrier and its queueing discipline is active -- from then on the MN can
send on the new link.  The kernel does not timestamp netlink messages; the thread takes CLOCK_MONOTONIC as
``recv`` returns, so the time it reports is the kernel's event plus this thread's wake-up.

``--realtime PRIO`` runs the switch at SCHED_FIFO: on the lab's two cores an ordinary switch waits behind the
realtime routers' handover work before it takes the port down, which a switch with its own CPU does not.

Protocol, one line each way: ``move <bridge> <gap_ms> <hold_ms> [<not_before_ns>]`` -> one JSON object
``{"read_ns", "down_request_ns", "down_ns", "up_ns", "up_ack_ns", "carrier_ns", "priority"}``.

* ``not_before_ns`` (CLOCK_MONOTONIC, at most 10 s ahead): the port goes down no earlier.  This is the lab's
  switch delay, timed by a sleep of this process, not by a timer of the MN agent's event loop, whose timeouts
  are whole milliseconds.
* The times are CLOCK_MONOTONIC, which every namespace of a host shares; ``read_ns`` is when the command was
  read; ``carrier_ns`` is null when no carrier-up came within a second; ``priority`` is the switch's
  SCHED_FIFO priority, 0 when ordinary.
* The answer is written ``hold_ms`` after the carrier, so the report does not wake the lab while the handover
  it measures is running.

``quit`` (or the end of input) ends the process.  ``READY`` is the first line out once both sockets are open.
A request the kernel refuses, or a command this process cannot read, is an ``{"error": ...}`` line, and the
process goes on.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Sequence

from fmipfast.rtnetlink import (
    IFF_UP,
    IFINFOMSG,
    IFLA_MASTER,
    NLM_F_ACK,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    NLMSG_HDR,
    RTA_HDR,
    RTM_SETLINK,
    RTMGRP_LINK,
    carrier_up,
    parse_links,
)

__all__ = ["Mover", "LinkRequests", "link_request", "move_port", "main"]

CLONE_NEWNET = 0x40000000
CARRIER_WAIT_S = 1.0  # a move reports no carrier when none came this long after the up request
MAX_DELAY_NS = 10_000 * 10**6  # the latest a move may be told to start: 10 s after its command is read


def link_request(seq: int, index: int, *, up: bool | None = None, master: int | None = None) -> bytes:
    """An RTM_SETLINK request for the interface ``index``: its IFF_UP set or cleared (``up``), and/or its
    master device (``master``; 0 leaves the bridge), asking for an acknowledgement."""
    flags = IFF_UP if up else 0
    change = IFF_UP if up is not None else 0
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, flags, change)
    if master is not None:
        body += RTA_HDR.pack(RTA_HDR.size + 4, IFLA_MASTER) + struct.pack("=I", master)
    return NLMSG_HDR.pack(NLMSG_HDR.size + len(body), RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body


class LinkRequests:
    """An rtnetlink socket of the calling thread's namespace for RTM_SETLINK requests, each awaited."""

    def __init__(self) -> None:
        self.rtnl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        self.rtnl.bind((0, 0))
        self.seq = 0

    def request(self, index: int, *, up: bool | None = None, master: int | None = None) -> None:
        """One RTM_SETLINK and its acknowledgement; ``OSError`` with the kernel's errno when it refuses."""
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        self.rtnl.send(link_request(self.seq, index, up=up, master=master))
        while True:
            data = self.rtnl.recv(65536)
            off = 0
            while off + NLMSG_HDR.size <= len(data):
                length, mtype, _f, seq, _pid = NLMSG_HDR.unpack_from(data, off)
                if length < NLMSG_HDR.size:
                    break
                if mtype == NLMSG_ERROR and seq == self.seq:
                    err = -struct.unpack_from("=i", data, off + NLMSG_HDR.size)[0]
                    if err:
                        raise OSError(err, f"rtnetlink: {os.strerror(err)}")
                    return
                off += (length + 3) & ~3

    def close(self) -> None:
        self.rtnl.close()


def move_port(links: LinkRequests, port: int, bridge: int, gap_ms: float) -> tuple[int, int, int, int]:
    """The port down, out of its bridge, into ``bridge`` and up ``gap_ms`` after the down (interface indexes of
    the calling thread's namespace); the CLOCK_MONOTONIC times of the down request, its acknowledgement, the up
    request and its acknowledgement."""
    down_request_ns = time.monotonic_ns()
    links.request(port, up=False)
    down_ns = time.monotonic_ns()
    links.request(port, master=0)
    links.request(port, master=bridge)
    due = down_ns + int(gap_ms * 1e6)
    while (left := due - time.monotonic_ns()) > 200_000:
        time.sleep((left - 150_000) / 1e9)
    while time.monotonic_ns() < due:
        pass
    up_ns = time.monotonic_ns()
    links.request(port, up=True)
    return down_request_ns, down_ns, up_ns, time.monotonic_ns()


def _setns(path: str) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    with open(path, "rb") as f:
        if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")


class Mover:
    """The requests socket (this process's namespace: ``air``) and the carrier watch (``mn_netns``'s)."""

    def __init__(self, port: str, mn_netns: str, mn_if: str) -> None:
        here = "/proc/thread-self/ns/net"
        with open(here, "rb") as back:
            _setns(f"/run/netns/{mn_netns}")
            try:
                self.mn_index = socket.if_nametoindex(mn_if)
                self.watch = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                           socket.NETLINK_ROUTE)
                self.watch.bind((0, RTMGRP_LINK))
            finally:
                import ctypes

                if ctypes.CDLL(None, use_errno=True).setns(back.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back")
        self.port = socket.if_nametoindex(port)
        self.links = LinkRequests()
        self._cond = threading.Condition()
        #: (CLOCK_MONOTONIC ns when read, carrier up) of each notification about the MN's interface
        self.carrier: list[tuple[int, bool]] = []
        self._thread = threading.Thread(target=self._watch, name="carrier-watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while True:
            try:
                data = self.watch.recv(65536)
            except OSError:  # ENOBUFS: notifications lost; the next one still says the state
                continue
            seen = time.monotonic_ns()
            for mtype, flags, _master in parse_links(data, self.mn_index):
                up = carrier_up(mtype, flags)
                with self._cond:
                    self.carrier.append((seen, up))
                    self._cond.notify_all()

    def move(self, bridge: str, gap_ms: float) -> dict[str, int | None]:
        """The port down, out of its bridge, into ``bridge`` and up ``gap_ms`` after the down; the times."""
        down_request_ns, down_ns, up_ns, up_ack_ns = move_port(self.links, self.port, socket.if_nametoindex(bridge),
                                                               gap_ms)
        return {"down_request_ns": down_request_ns, "down_ns": down_ns, "up_ns": up_ns, "up_ack_ns": up_ack_ns,
                "carrier_ns": self.carrier_after(up_ns, CARRIER_WAIT_S)}

    def carrier_after(self, after_ns: int, timeout_s: float) -> int | None:
        """When the first carrier-up notification read at or after ``after_ns`` was read (None: none within
        ``timeout_s``)."""
        end = time.monotonic() + timeout_s
        with self._cond:
            while True:
                found = next((t for t, up in self.carrier if up and t >= after_ns), None)
                left = end - time.monotonic()
                if found is not None or left <= 0:
                    del self.carrier[:-16]
                    return found
                self._cond.wait(left)


def _fifo_priority() -> int:
    """This thread's SCHED_FIFO priority, 0 when it is not realtime."""
    return os.sched_getparam(0).sched_priority if os.sched_getscheduler(0) == os.SCHED_FIFO else 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fmipfast.lab.namespaces.mover")
    p.add_argument("--port", required=True, help="the MN's bridge port, in this namespace")
    p.add_argument("--mn-netns", required=True, help="the MN's network namespace (a name under /run/netns)")
    p.add_argument("--mn-if", required=True, help="the MN's interface, in its namespace")
    p.add_argument("--realtime", type=int, default=0, metavar="PRIO",
                   help="SCHED_FIFO at PRIO (1..99) for the switch and its watch, as a switch with a CPU of its own "
                        "reacts; 0 (default): as started")
    args = p.parse_args(argv)
    if not 0 <= args.realtime <= 99:
        p.error(f"--realtime must be within 0..99, got {args.realtime}")
    if args.realtime:  # before the watch thread starts, which inherits it
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(args.realtime))
        except OSError as exc:
            print(f"cannot take SCHED_FIFO {args.realtime}: {exc}", file=sys.stderr, flush=True)
            return 2
    mover = Mover(args.port, args.mn_netns, args.mn_if)
    print("READY", flush=True)
    for line in sys.stdin:
        read_ns = time.monotonic_ns()
        words = line.split()
        if not words or words[0] == "quit":
            break
        try:
            if words[0] != "move" or len(words) not in (4, 5):
                raise ValueError(f"unknown command {line.strip()!r}")
            not_before_ns = int(words[4]) if len(words) == 5 else 0
            if not_before_ns < 0 or not_before_ns - read_ns > MAX_DELAY_NS:  # one already past: at once
                raise ValueError(f"the move's start must be within {MAX_DELAY_NS // 10**6} ms from now")
            while (left := not_before_ns - time.monotonic_ns()) > 0:  # a sleep may end early on a signal
                time.sleep(left / 1e9)
            out: dict[str, object] = dict(mover.move(words[1], float(words[2])), read_ns=read_ns,
                                          priority=_fifo_priority())
            time.sleep(max(0.0, float(words[3])) / 1000)
        except (OSError, ValueError) as exc:
            out = {"error": str(exc)}
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

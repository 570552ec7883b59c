"""The lab's CN stream and its measurement (docs/design.md §6): ``python -m fmipfast.lab.namespaces.traffic send|recv``.

``send`` paces UDP datagrams at a fixed rate; each carries (wire layout, network order)::

    0        8                16
    | seq u64 | send time u64 | padding to --size |

with the send time from CLOCK_MONOTONIC (``time.monotonic_ns``), which every namespace shares with the
host, so one-way delays and the layer-2 move timestamps of :mod:`fmipfast.lab.namespaces.topology` are on one clock.
Pacing sleeps to within 100 µs of each slot and busy-waits the rest; a sender that falls behind keeps the
schedule (it does not skip) and counts the late datagrams.  ``--realtime PRIO`` runs it at realtime FIFO
priority instead, sleeping to each slot (no busy wait, which at that priority would keep a CPU from everyone
else): the lab's routers run realtime, and on shared cores an ordinary sender, which stands for another host,
would otherwise pause whenever the routers' handover work takes both cores.

``recv`` records (seq, receive time, interface index, send time) for each datagram: the receive time is the
kernel's (SO_TIMESTAMPNS, CLOCK_REALTIME, converted to CLOCK_MONOTONIC with an offset sampled at start)
so a datagram queued in the socket while the link moves is not mistaken for one that arrived later; the
interface from IPV6_PKTINFO.  It stops after ``--duration`` seconds, after ``--count`` datagrams, or on
SIGTERM/SIGINT, and writes JSON.  Every input is bounded (MAX_*), every error counted.

:func:`measure` turns those records into the numbers ``fmipfast demo --json`` reports.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from fmipfast._linux import SCM_TIMESTAMPNS, SO_TIMESTAMPNS
from fmipfast.messages import BindingAck, BindingUpdate
from fmipfast.mobility import MobilitySocket

__all__ = ["measure", "lost_ranges", "binding_update", "send", "recv", "main", "HEADER",
           "MAX_COUNT", "MAX_RATE", "MAX_DURATION_S"]

HEADER = struct.Struct("!QQ")
MAX_COUNT = 1_000_000
MAX_RATE = 100_000
MAX_DURATION_S = 600.0
MAX_SIZE = 1400
SPIN_NS = 100_000  # busy-wait the last 100 µs before each slot
_TIMESPEC = struct.Struct("@qq")
_PKTINFO_LEN = 20  # struct in6_pktinfo: 16-octet address + int ifindex


def _bounded(name: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be within {lo}..{hi}, got {value}")


# ---------------------------------------------------------------------------------------------- sender


def binding_update(ncoa: str, cn: str, seq: int = 1, *, timeout: float = 1.0, tries: int = 3,
                   sent_before: int | None = None, port: MobilitySocket | None = None) -> tuple[int, int | None]:
    """The MN's Binding Update to the CN (RFC 6275 §11.7.2, a Mobility Header BU from the NCoA with A set,
    no Home Address option: the lab's CN keeps one binding, for the stream's MN): sent from ``ncoa`` to ``cn``
    and retransmitted after ``timeout`` (INITIAL_BINDACK_TIMEOUT, 1 s) with a new sequence number, up to
    ``tries`` BUs in all.  ``sent_before``: a BU with sequence ``seq`` already left (in the Attach, which the
    NAR forwards): wait for its BAck first.  Returns (first send time, BAck time or None), CLOCK_MONOTONIC ns."""
    own = port is None
    mh = port or MobilitySocket(ncoa)
    try:
        sequences = [seq]
        first = sent_before
        if first is None:
            first = time.monotonic_ns()
            mh.send(BindingUpdate(seq, 60).encode_mh(ncoa, cn), cn)
        for attempt in range(tries):
            if mh.wait_ack(cn, sequences, timeout) is not None:
                return first, time.monotonic_ns()
            if attempt + 1 < tries:
                seq = (seq + 1) & 0xFFFF
                sequences.append(seq)
                mh.send(BindingUpdate(seq, 60).encode_mh(ncoa, cn), cn)
        return first, None
    finally:
        if own:
            mh.close()


def _check_bu(mh: MobilitySocket, bindings: list[list[Any]]) -> str | None:
    """The CN side (RFC 6275 §9.5): a BU moves the MN's binding to its source address (the care-of address)
    and, with A set, is answered with a BAck (status 0) from the address the BU was sent to."""
    got = mh.receive(0)
    if got is None:
        return None
    src, data = got
    try:
        bu = BindingUpdate.decode_mh(data)
    except ValueError:
        mh.count("mh_not_bu")
        return None
    bindings.append([time.monotonic_ns(), src, bu.sequence])
    if bu.flags & 0x8000:  # A
        # the checksum field is filled by the kernel (see MobilitySocket); the addresses only feed our own sum
        mh.send(BindingAck(0, bu.sequence, bu.lifetime_units).encode_mh("::", src), src)
    return src


def send(to: str, port: int, rate: float, count: int, *, size: int = 64, bind: str | None = None,
         bu: bool = False, ready: Any = None, spin_ns: int = SPIN_NS) -> dict[str, Any]:
    """Send ``count`` datagrams to ``[to]:port`` at ``rate`` per second; returns a summary.  With ``bu`` the
    sender is also the MN's correspondent: it takes Binding Updates (Mobility Headers, :func:`binding_update`)
    and sends the rest of the stream to the care-of address a BU names, acknowledging it (``bindings`` in the
    summary: time, address, sequence).  ``ready`` (a callable) runs once, right before the first datagram.
    ``spin_ns``: the busy wait before each slot (0: sleep to it)."""
    _bounded("rate", rate, 1, MAX_RATE)
    _bounded("count", count, 1, MAX_COUNT)
    _bounded("size", size, HEADER.size, MAX_SIZE)
    _bounded("duration (count / rate)", count / rate, 0, MAX_DURATION_S)
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    if bind:
        sock.bind((bind, 0))
    bu_sock = MobilitySocket() if bu else None
    bindings: list[list[Any]] = []
    period = int(1e9 / rate)
    pad = bytes(size - HEADER.size)
    errors: dict[str, int] = {}
    sent = late = 0
    if ready is not None:
        ready()
    start = time.monotonic_ns() + 1_000_000
    first = last = 0
    try:
        for seq in range(count):
            due = start + seq * period
            if bu_sock is not None and (new := _check_bu(bu_sock, bindings)) is not None:
                to = new
            left = due - time.monotonic_ns()
            if left > spin_ns:
                time.sleep((left - spin_ns) / 1e9)
            while (now := time.monotonic_ns()) < due:
                pass
            if now - due > period:
                late += 1
            try:
                sock.sendto(HEADER.pack(seq, now) + pad, (to, port))
                sent += 1
            except OSError as exc:  # e.g. ENETUNREACH, ENOBUFS: counted, the stream goes on
                key = exc.__class__.__name__ if exc.errno is None else f"errno_{exc.errno}"
                errors[key] = errors.get(key, 0) + 1
            if seq == 0:
                first = now
            last = now
    finally:
        sock.close()
        if bu_sock is not None:
            bu_sock.close()
            errors.update({f"mh_{k}": v for k, v in bu_sock.errors.items()})
    return {"to": to, "port": port, "rate": rate, "count": count, "size": size, "sent": sent, "late": late,
            "errors": errors, "first_ns": first, "last_ns": last, "bindings": bindings}


# -------------------------------------------------------------------------------------------- receiver


class _Stop(Exception):
    pass


@contextlib.contextmanager
def _until_signalled() -> Iterator[None]:
    """Run the body until SIGTERM/SIGINT (which end it quietly); the previous handlers come back after."""
    def stop(signum: int, frame: Any) -> None:
        raise _Stop

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    except _Stop:
        pass
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _clock_offset_ns() -> int:
    """CLOCK_REALTIME − CLOCK_MONOTONIC, from the tightest of a few samples."""
    best = None
    for _ in range(5):
        m0 = time.monotonic_ns()
        r = time.time_ns()
        m1 = time.monotonic_ns()
        if best is None or m1 - m0 < best[0]:
            best = (m1 - m0, r - (m0 + m1) // 2)
    assert best is not None
    return best[1]


def recv(bind: str, port: int, duration: float, *, count: int = MAX_COUNT,
         ready: Any = None) -> dict[str, Any]:
    """Receive until ``duration`` seconds pass, ``count`` datagrams arrived or SIGTERM/SIGINT; ``ready`` (a
    callable) runs once the socket is bound.  Returns the records and counters."""
    _bounded("duration", duration, 0.001, MAX_DURATION_S)
    _bounded("count", count, 1, MAX_COUNT)
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    kernel_ts = True
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        kernel_ts = False
    sock.bind((bind, port))
    offset = _clock_offset_ns()
    records: list[list[int]] = []
    errors = {"short": 0, "recv": 0, "no_timestamp": 0}

    start = time.monotonic_ns()
    deadline = start + int(duration * 1e9)
    try:
        with _until_signalled():
            if ready is not None:
                ready()
            while len(records) < count:
                left = deadline - time.monotonic_ns()
                if left <= 0:
                    break
                sock.settimeout(min(left / 1e9, 0.2))
                try:
                    data, anc, _flags, _addr = sock.recvmsg(2048, 256)
                except TimeoutError:
                    continue
                except OSError:
                    errors["recv"] += 1
                    continue
                user_ns = time.monotonic_ns()
                if len(data) < HEADER.size:
                    errors["short"] += 1
                    continue
                seq, sent_ns = HEADER.unpack_from(data)
                t_ns, ifindex = None, 0
                for level, kind, value in anc:
                    if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(value) >= _TIMESPEC.size:
                        sec, nsec = _TIMESPEC.unpack_from(value)
                        t_ns = sec * 1_000_000_000 + nsec - offset
                    elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(value) >= _PKTINFO_LEN:
                        ifindex = struct.unpack_from("@i", value, 16)[0]
                if t_ns is None:
                    errors["no_timestamp"] += 1
                    t_ns = user_ns
                records.append([seq, t_ns, ifindex, sent_ns])
    finally:
        sock.close()
    return {"bind": bind, "port": port, "kernel_timestamps": kernel_ts, "start_ns": start,
            "end_ns": time.monotonic_ns(), "stopped_at_count": len(records) >= count, "errors": errors,
            "fields": ["seq", "recv_ns", "ifindex", "sent_ns"], "received": records}


def bcache(*, ready: Any = None, out: Any = None) -> dict[str, Any]:
    """The CN's binding-cache receiver on its own (``fmipfast lab up``: no stream runs, the MN daemon's BUs
    still get their BAck): answers every Binding Update until SIGTERM/SIGINT, writing one JSON line per binding
    to ``out`` (a text file object) as it happens.  Returns the bindings and the socket's error counters."""
    mh = MobilitySocket()
    bindings: list[list[Any]] = []
    try:
        with _until_signalled():
            if ready is not None:
                ready()
            while True:
                if mh.wait_readable(0.5) and _check_bu(mh, bindings) is not None and out is not None:
                    t, coa, seq = bindings[-1]
                    print(json.dumps({"t_ns": t, "coa": coa, "seq": seq}), file=out, flush=True)
    finally:
        mh.close()
    return {"bindings": bindings, "errors": mh.errors}


# --------------------------------------------------------------------------------------------- measure


def _move(link_changes: Iterable[tuple[str, int]] | Mapping[str, int]) -> tuple[int | None, int | None]:
    """The first ``down`` and the first ``up`` after it."""
    items = sorted(link_changes.items() if isinstance(link_changes, Mapping) else link_changes,
                   key=lambda kv: kv[1])
    down = next((t for e, t in items if e == "down"), None)
    up = next((t for e, t in items if e == "up" and (down is None or t >= down)), None)
    return down, up


def measure(sent: int | Sequence[int], received: Sequence[Sequence[int]],
            link_changes: Iterable[tuple[str, int]] | Mapping[str, int] = ()) -> dict[str, Any]:
    """The stream's numbers with the keys of ``fmipfast demo --json``.

    ``sent`` is the number of datagrams sent (sequence numbers 0..n-1) or their sequence numbers;
    ``received`` the receiver's records in arrival order, each starting (seq, recv_ns); ``link_changes``
    the MN's ``("down", t_ns)``, ``("up", t_ns)`` -- the request to bring its link up -- and, when known,
    ``("carrier", t_ns)``, when its link was up (:meth:`fmipfast.lab.namespaces.topology.LinkMove.link_changes`;
    the definition is in :mod:`fmipfast.lab.namespaces.latency`).

    * received = distinct sequence numbers that were sent and arrived; lost = sent − received;
      duplicated = arrivals of an already seen number; reordered = arrivals below the highest number seen
      before them (as the demo counts them).
    * The MN cannot receive on the new link before it is up, so every arrival before ``up`` was on the old
      link and every one from ``up`` on the new.  interruption_ms = first arrival at or after ``up`` − last
      arrival before it (the layer-3 interruption); link_up_to_first_packet_ms = first arrival at or after
      ``up`` − the carrier (the first ``carrier`` at or after ``up``; ``up`` itself without one).  Either is
      None without a move or without arrivals on that side.
    """
    sent_set = set(range(sent)) if isinstance(sent, int) else set(sent)
    seen: set[int] = set()
    duplicated = reordered = 0
    top = -1
    for rec in received:
        seq = int(rec[0])
        if seq in seen:
            duplicated += 1
        seen.add(seq)
        if seq < top:
            reordered += 1
        top = max(top, seq)
    got = len(seen & sent_set)
    changes = list(link_changes.items() if isinstance(link_changes, Mapping) else link_changes)
    _down, up = _move(changes)
    interruption = first_after = None
    if up is not None:
        carrier = min((t for e, t in changes if e == "carrier" and t >= up), default=up)
        before = [int(r[1]) for r in received if int(r[1]) < up]
        after = [int(r[1]) for r in received if int(r[1]) >= up]
        if after:
            first_after = (min(after) - carrier) / 1e6
            if before:
                interruption = (min(after) - max(before)) / 1e6
    return {"sent": len(sent_set), "received": got, "lost": len(sent_set) - got, "duplicated": duplicated,
            "reordered": reordered, "interruption_ms": interruption, "link_up_to_first_packet_ms": first_after}


def lost_ranges(sent: dict[str, Any], received: list[list[int]], t0: int) -> list[dict[str, Any]]:
    """The runs of sequence numbers that never arrived, with when they were sent on the timeline's clock
    (the sender paces from ``first_ns`` at its rate), so a loss can be placed against the signalling."""
    seen = {r[0] for r in received}
    n, first, rate = sent["sent"], sent["first_ns"], sent.get("rate") or 0
    out: list[dict[str, Any]] = []
    seq = 0
    while seq < n:
        if seq in seen:
            seq += 1
            continue
        start = seq
        while seq < n and seq not in seen:
            seq += 1
        entry: dict[str, Any] = {"first": start, "last": seq - 1}
        if rate:
            entry["sent_ms"] = round((first + start * 1e9 / rate - t0) / 1e6, 3)
        out.append(entry)
        if len(out) >= 100:
            break
    return out


# ------------------------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fmipfast.lab.namespaces.traffic", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send", help="a paced UDP stream")
    s.add_argument("--to", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--rate", type=float, default=1000.0, help=f"datagrams per second (max {MAX_RATE})")
    s.add_argument("--count", type=int, required=True, help=f"datagrams (max {MAX_COUNT})")
    s.add_argument("--size", type=int, default=64, help=f"UDP payload octets ({HEADER.size}..{MAX_SIZE})")
    s.add_argument("--bind", default=None, help="source address")
    s.add_argument("--bu", action="store_true", help="take Binding Updates (Mobility Header) and follow them")
    s.add_argument("--out", default=None, help="write the summary JSON here (default: stdout)")
    s.add_argument("--realtime", type=int, default=0, metavar="PRIO",
                   help="run at realtime FIFO priority PRIO (1-99), sleeping to each slot instead of busy-waiting")
    r = sub.add_parser("recv", help="record a stream")
    r.add_argument("--bind", default="::")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--duration", type=float, required=True, help=f"seconds (max {MAX_DURATION_S:g})")
    r.add_argument("--count", type=int, default=MAX_COUNT, help="stop after this many datagrams")
    r.add_argument("--out", required=True, help="JSON file")
    sub.add_parser("bcache", help="a binding-cache receiver: answer Binding Updates until SIGTERM")
    args = ap.parse_args(argv)
    if args.cmd == "bcache":
        done = bcache(ready=lambda: print("READY bcache", flush=True), out=sys.stdout)
        print(json.dumps({"bindings": len(done["bindings"]), "errors": done["errors"]}), flush=True)
        return 0
    try:
        if args.cmd == "send":
            spin = SPIN_NS
            if args.realtime:
                if not 1 <= args.realtime <= 99:
                    raise ValueError(f"--realtime: need a priority of 1-99, got {args.realtime}")
                try:
                    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(args.realtime))
                except OSError as exc:  # no CAP_SYS_NICE, or the host's realtime budget is gone
                    raise ValueError(f"--realtime {args.realtime}: {exc.strerror}") from None
                spin = 0
            # STARTED on stderr: the stream begins now (a loaded machine may take a second to start Python)
            result = send(args.to, args.port, args.rate, args.count, size=args.size, bind=args.bind,
                          bu=args.bu, ready=lambda: print("STARTED", file=sys.stderr, flush=True), spin_ns=spin)
        else:
            result = recv(args.bind, args.port, args.duration, count=args.count,
                          ready=lambda: print("READY", flush=True))
    except ValueError as exc:
        ap.error(str(exc))
    text = json.dumps(result)
    out = getattr(args, "out", None)
    if out:
        with open(out, "w") as fh:
            fh.write(text + "\n")
        if args.cmd == "recv":
            print(json.dumps({"received": len(result["received"]), "errors": result["errors"]}), flush=True)
    else:
        print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

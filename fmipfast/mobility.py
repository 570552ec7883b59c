"""RFC 6275 Mobility Header sockets: what the MN daemon and the lab's correspondent use for Binding Updates
and Binding Acknowledgements (the CN/HA side is outside the draft, docs/design.md §1: a small binding-cache receiver),
and the two packet helpers the simulated correspondent and MN use (:func:`binding_ack`, :func:`is_binding_ack`).

Linux computes and verifies the Mobility Header checksum of a raw ``IPPROTO_MH`` socket itself (it sets
``IPV6_CHECKSUM`` at offset 4 for that protocol, RFC 3542 §3.1): a datagram with a bad checksum never reaches
the socket, and what it sends carries a correct checksum whatever the field held.

May import: messages, errors, constants.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable

from fmipfast.messages import BindingAck, binding_ack, is_binding_ack  # re-exported

__all__ = ["IPPROTO_MH", "MobilitySocket", "binding_ack", "is_binding_ack"]

IPPROTO_MH = 135  # RFC 6275 Mobility Header


class MobilitySocket:
    """A raw IPPROTO_MH socket (RFC 6275 §6.1); ``bind``: its source address (e.g. the MN's NCoA).  Failures
    of a constructed socket are counted in :attr:`errors`, never raised."""

    def __init__(self, bind: str | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_MH)
        if bind:
            self.sock.bind((bind, 0))
        self.errors: dict[str, int] = {}

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def count(self, key: str) -> None:
        self.errors[key] = self.errors.get(key, 0) + 1

    def send(self, mh: bytes, to: str, src: str | None = None) -> bool:
        """Send one Mobility Header to ``to``; from ``src`` when given (IPV6_PKTINFO: the MN's NCoA, not whatever
        address source selection would pick while the PCoA is still configured)."""
        try:
            if src is None:
                self.sock.sendto(mh, (to, 0))
            else:
                info = socket.inet_pton(socket.AF_INET6, src) + bytes(4)  # struct in6_pktinfo, ifindex 0
                self.sock.sendmsg([mh], [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, info)], 0, (to, 0))
            return True
        except OSError as exc:
            self.count(f"send_errno_{exc.errno}")
            return False

    def wait_readable(self, timeout: float) -> bool:
        """True when a datagram is waiting (within ``timeout`` seconds)."""
        import select

        return bool(select.select([self.sock], [], [], timeout)[0])

    def receive(self, timeout: float | None) -> tuple[str, bytes] | None:
        """One Mobility Header and its source address; None when nothing came within ``timeout`` (0: poll)."""
        self.sock.settimeout(timeout)
        try:
            data, peer = self.sock.recvfrom(2048)
        except (BlockingIOError, TimeoutError, socket.timeout):
            return None
        except OSError as exc:
            self.count(f"recv_errno_{exc.errno}")
            return None
        return peer[0], data

    def wait_ack(self, cn: str, sequences: Iterable[int], timeout: float) -> BindingAck | None:
        """The BAck from ``cn`` answering one of ``sequences``; anything else is counted and skipped."""
        want = set(sequences)
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            got = self.receive(left)
            if got is None:
                continue
            src, data = got
            try:
                back = BindingAck.decode_mh(data)
            except ValueError:
                self.count("mh_not_back")
                continue
            if src != cn or back.sequence not in want:
                self.count("back_unexpected")
                continue
            return back
        return None

"""Network namespaces for tests and the lab: create, run commands in, enter from Python, and always clean up.

``Netns`` wraps ``ip netns``; :meth:`Netns.enter` switches the *calling thread* into the namespace with
setns(2) (Python 3.11 has no ``os.setns``) and back on exit, so sockets opened inside belong to it.
Every name this module creates starts with ``fmipfast-`` so a leftover is easy to find and remove
(:func:`cleanup_leftovers`).  Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
from collections.abc import Iterator, Sequence

__all__ = ["Netns", "is_root", "cleanup_leftovers", "PREFIX"]

PREFIX = "fmipfast-"
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def is_root() -> bool:
    return os.geteuid() == 0


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


class Netns:
    """One named network namespace, deleted by :meth:`delete` (or the context manager's exit)."""

    def __init__(self, name: str) -> None:
        if not name.startswith(PREFIX):
            name = PREFIX + name
        self.name = name
        _ip("netns", "add", name)
        self.run("ip", "link", "set", "lo", "up")

    @classmethod
    def existing(cls, name: str) -> "Netns":
        """A handle on a namespace that already exists (made by another process); FileNotFoundError if not."""
        if not name.startswith(PREFIX):
            name = PREFIX + name
        if not os.path.exists(f"/run/netns/{name}"):
            raise FileNotFoundError(f"no network namespace {name}")
        ns = cls.__new__(cls)
        ns.name = name
        return ns

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command inside the namespace (``ip netns exec``)."""
        return subprocess.run(["ip", "netns", "exec", self.name, *cmd], capture_output=True, text=True,
                              check=check, timeout=60)

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return _ip("-n", self.name, *args, check=check)

    def sysctl(self, key: str, value: str | int) -> None:
        self.run("sysctl", "-qw", f"{key}={value}")

    def veth(self, a: str, b: str, *, peer_ns: "Netns | None" = None, up: bool = True,
             ipv6: bool = False, mtu: int | None = None) -> None:
        """A veth pair ``a`` (here) - ``b`` (here or in ``peer_ns``); kernel IPv6 off unless ``ipv6``."""
        self.ip("link", "add", a, "type", "veth", "peer", "name", b)
        other = self
        if peer_ns is not None:
            self.ip("link", "set", b, "netns", peer_ns.name)
            other = peer_ns
        for ns, dev in ((self, a), (other, b)):
            if not ipv6:
                ns.sysctl(f"net.ipv6.conf.{dev}.disable_ipv6", 1)
            if mtu is not None:
                ns.ip("link", "set", dev, "mtu", str(mtu))
            if up:
                ns.ip("link", "set", dev, "up")

    @contextlib.contextmanager
    def enter(self) -> Iterator["Netns"]:
        """Run the body with the calling thread inside this namespace."""
        with open("/proc/thread-self/ns/net", "rb") as back, open(f"/run/netns/{self.name}", "rb") as there:
            _setns(there.fileno())
            try:
                yield self
            finally:
                _setns(back.fileno())

    def delete(self) -> None:
        _ip("netns", "del", self.name, check=False)

    def __enter__(self) -> "Netns":
        return self

    def __exit__(self, *exc: object) -> None:
        self.delete()


def cleanup_leftovers(names: Sequence[str] | None = None) -> list[str]:
    """Delete namespaces named ``fmipfast-*`` (or exactly ``names``); returns what was deleted."""
    listed = _ip("netns", "list", check=False).stdout.split("\n")
    present = [line.split()[0] for line in listed if line.strip()]
    victims = [n for n in present if (n in names if names is not None else n.startswith(PREFIX))]
    for n in victims:
        _ip("netns", "del", n, check=False)
    return victims

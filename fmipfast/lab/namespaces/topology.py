"""The lab topology of docs/design.md §6: network namespaces, veth pairs and two bridges on one machine (root).

::

    cn ---- core ---- par (engine) ---- air:brA ---- mn  (before the move)
             \\
              ------- nar (engine) ---- air:brB ---- mn  (after the move)

* ``cn`` — the correspondent node (kernel IPv6), on the link 2001:db8:ff::/64 to ``core``.
* ``core`` — a kernel IPv6 router: forwarding on, static routes to the access prefixes via the PAR and the
  NAR, permanent neighbor entries for them (the routers' upstream MACs are fixed), so no first packet waits
  for address resolution in the middle of a handover.
* ``par``, ``nar`` — the access routers.  Their veth ends (``par-acc``/``par-up``, ``nar-acc``/``nar-up``)
  have kernel IPv6 disabled: an fmipfast engine owns them through AF_PACKET (:meth:`LabTopology.router_config`
  writes its configuration).  Upstream links 2001:db8:ff:1::/64 and 2001:db8:ff:2::/64.
* ``air`` — two bridges, ``brA`` (access link A, 2001:db8:1::/64) and ``brB`` (access link B,
  2001:db8:2::/64), with the access veths of the PAR and the NAR and the MN's port ``air-mn``.  No IPv6 on any
  of them; multicast snooping off so Neighbor Discovery floods like on a hub.
* ``mn`` — the mobile node: kernel IPv6 on ``mn0`` (its previous care-of address, no DAD, no RAs accepted:
  the MN agent or the caller decides), default route via the PAR's link-local address.

The access routers' addresses are EUI-64 based (docs/design.md §3) so the MN can derive their MACs.  The layer-2
handover is :meth:`LabTopology.move_mn`: the MN's bridge port goes down, leaves ``brA``, joins ``brB`` and
comes back up after the gap, through bare rtnetlink requests (fmipfast.lab.namespaces.mover) so the recorded
timestamps are within microseconds of the kernel's change.

Link delays use ``tc qdisc netem`` when the kernel has it; the kernels here do not (``Specified qdisc kind is
unknown``), so the delays are then skipped, ``delays_applied`` is false and a warning is logged.

Everything :meth:`LabTopology.up` makes (namespaces, and with them every veth and bridge) and every process
:meth:`LabTopology.spawn` starts is removed by :meth:`LabTopology.down`: idempotent, called on exceptions,
on Ctrl-C (KeyboardInterrupt unwinds through the context manager), on SIGTERM (turned into SystemExit while
the lab is up, in the main thread) and at interpreter exit.  :func:`cleanup` removes the leftovers of a
crashed run.

Ownership: one thread builds, moves and tears down; processes are children of that thread's process.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from typing import IO, Any

from fmipfast.errors import FmipError
from fmipfast.lab.namespaces.mover import LinkRequests, move_port
from fmipfast.lab.namespaces.netns import Netns

__all__ = ["LabTopology", "LinkMove", "LabError", "cleanup", "write_config", "child_env", "eui64_address", "ROLES",
           "DEFAULT_PREFIX"]

log = logging.getLogger("fmipfast.lab.namespaces.topology")

DEFAULT_PREFIX = "fmipfast-lab-"
ROLES = ("cn", "core", "par", "nar", "air", "mn")
KILL_GRACE_S = 2.0


class LabError(FmipError, RuntimeError):
    """The lab could not be built or changed (a leftover of an earlier run, a failed ``ip`` command)."""


def _mac(i: int) -> bytes:
    return bytes((0x02, 0x00, 0x5E, 0x10, 0x00, i))


def eui64_address(prefix: str, mac: bytes) -> IPv6Address:
    """The /64 ``prefix`` followed by the modified EUI-64 interface identifier of a 48-bit MAC (RFC 4291
    App. A: FF-FE in the middle, U/L bit flipped)."""
    iid = bytes((mac[0] ^ 0x02, mac[1], mac[2], 0xFF, 0xFE, mac[3], mac[4], mac[5]))
    return IPv6Address(IPv6Network(prefix).network_address.packed[:8] + iid)


def _hexmac(mac: bytes) -> str:
    return mac.hex(":")


@dataclass(frozen=True, slots=True)
class LinkMove:
    """One layer-2 handover of the MN, in CLOCK_MONOTONIC nanoseconds (``time.monotonic_ns``), chosen so the
    port is certainly down in ``[down_ns, up_ns)``: ``down_ns`` is right after the kernel acknowledged the
    port going down, ``up_ns`` right before the request to bring it up on the new bridge (a bridge port takes
    milliseconds to come up, and frames flow before the acknowledgement, ``up_ack_ns``)."""

    old: str
    new: str
    down_ns: int
    up_ns: int
    down_request_ns: int = 0
    up_ack_ns: int = 0
    #: When the MN's carrier came up on the new link: the kernel's RTM_NEWLINK with IFF_LOWER_UP for the MN's
    #: interface, as the switch's watch read it (0: not watched, or not seen within a second)
    carrier_ns: int = 0
    #: When the lab handed the move to the switch process (its command written) and when that process read it
    #: (0: the move was made in the calling process, without the switch)
    command_ns: int = 0
    read_ns: int = 0
    #: The switch process's SCHED_FIFO priority as it made the move (0: ordinary, or no switch process)
    priority: int = 0

    @property
    def gap_ms(self) -> float:
        return (self.up_ns - self.down_ns) / 1e6

    def link_changes(self) -> list[tuple[str, int]]:
        """The form :func:`fmipfast.lab.namespaces.traffic.measure` takes (the carrier when it was seen)."""
        return [("down", self.down_ns), ("up", self.up_ns)] + ([("carrier", self.carrier_ns)] if self.carrier_ns
                                                                 else [])


def _ns_names(prefix: str) -> dict[str, str]:
    # Netns prepends "fmipfast-" to a name without it; do the same here so cleanup() finds the same names
    full = prefix if prefix.startswith("fmipfast-") else "fmipfast-" + prefix
    return {role: full + role for role in ROLES}


def _present_namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False, timeout=30).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _kill_namespace_processes(name: str) -> None:
    out = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False, timeout=30)
    for pid in (int(p) for p in out.stdout.split() if p.isdigit()):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def child_env() -> dict[str, str]:
    """The environment for a Python child the lab spawns (engines, KDC, traffic): this process's, with its
    import path, so a child in a namespace imports the same fmipfast (a checkout, a venv)."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))


def write_config(path: str | os.PathLike[str], text: str) -> None:
    """Write a configuration the lab generates.  They hold keys (AH SAs, keytabs) and the MN's password, so
    they are created mode 0600, never readable for a moment by others, like the daemons' own state files."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT: set it
        f.write(text)


def cleanup(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Remove the leftovers of a lab built with ``prefix`` (a crashed run): kill the processes inside its
    namespaces (a namespace with a process left in it outlives ``ip netns del``, and its veths with it), then
    delete the namespaces, which deletes their veths and bridges.  Only the six exact names of that lab are
    touched.  Returns the namespaces deleted."""
    names = set(_ns_names(prefix).values())
    victims = [n for n in _present_namespaces() if n in names]
    for n in victims:
        _kill_namespace_processes(n)
        subprocess.run(["ip", "netns", "del", n], capture_output=True, check=False, timeout=30)
    return victims


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _toml_key(key: str) -> str:
    """A bare key when TOML allows one, else quoted ("B.EXAMPLE" unquoted would be two nested keys)."""
    return key if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key) else _toml_value(key)


def _toml_table(path: str, table: Mapping[str, Any], out: list[str], *, array: bool = False) -> None:
    """Scalars first, then sub-tables and arrays of tables (TOML needs that order)."""
    out.append(f"[[{path}]]" if array else f"[{path}]")
    nested = []
    for key, value in table.items():
        if isinstance(value, Mapping) or (isinstance(value, list | tuple) and value
                                          and all(isinstance(v, Mapping) for v in value)):
            nested.append((key, value))
        else:
            out.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in nested:
        if isinstance(value, Mapping):
            _toml_table(f"{path}.{_toml_key(key)}", value, out)
        else:
            for item in value:
                _toml_table(f"{path}.{_toml_key(key)}", item, out, array=True)


class LabTopology:
    """The six namespaces of docs/design.md §6 and their links; addresses as attributes (see the module doc)."""

    # address plan (docs/design.md §6; the access side as in fmipfast.lab.simulated.demo.Plan)
    prefix_a = "2001:db8:1::/64"
    prefix_b = "2001:db8:2::/64"
    cn_prefix = "2001:db8:ff::/64"
    par_core_prefix = "2001:db8:ff:1::/64"
    nar_core_prefix = "2001:db8:ff:2::/64"
    cn_address = IPv6Address("2001:db8:ff::10")
    core_cn = IPv6Address("2001:db8:ff::ff")
    par_up = IPv6Address("2001:db8:ff:1::1")
    core_par = IPv6Address("2001:db8:ff:1::ff")
    nar_up = IPv6Address("2001:db8:ff:2::2")
    core_nar = IPv6Address("2001:db8:ff:2::ff")
    par_mac = _mac(0x01)
    par_up_mac = _mac(0x11)
    nar_mac = _mac(0x02)
    nar_up_mac = _mac(0x12)
    cn_mac = _mac(0x20)
    core_cn_mac = _mac(0x30)
    core_par_mac = _mac(0x31)
    core_nar_mac = _mac(0x32)
    mn_mac = bytes.fromhex("001b638445e6")
    # interface names, per namespace
    par_acc, par_upif, nar_acc, nar_upif = "par-acc", "par-up", "nar-acc", "nar-up"
    cn_if, mn_if = "cn0", "mn0"
    core_cn_if, core_par_if, core_nar_if = "core-cn", "core-par", "core-nar"
    air_par, air_nar, air_mn = "air-par", "air-nar", "air-mn"
    bridges = {"A": "brA", "B": "brB"}

    def __init__(self, prefix: str = DEFAULT_PREFIX, air_delay_ms: float = 0.0, core_delay_ms: float = 0.0) -> None:
        if air_delay_ms < 0 or core_delay_ms < 0:
            raise ValueError(f"delays must be >= 0, got air {air_delay_ms} ms, core {core_delay_ms} ms")
        self.prefix = prefix
        self.air_delay_ms = air_delay_ms
        self.core_delay_ms = core_delay_ms
        self.names = _ns_names(prefix)
        self.ns: dict[str, Netns] = {}
        self.processes: list[subprocess.Popen] = []
        self.delays_applied = False
        self.mn_link = "A"
        self._mover: subprocess.Popen | None = None  # the layer-2 switch process: prepare_move()
        self._moving: tuple[str, str, int] | None = None  # (old link, new link, command written): start_move()
        self._ifindex = 100
        self._built = False  # down() removes namespaces only of a lab this object (started to) build
        self._old_sigterm: Any = None
        self._atexit = False

    # --- addresses derived from the MACs (docs/design.md §3)
    @property
    def par_address(self) -> IPv6Address:
        return eui64_address(self.prefix_a, self.par_mac)

    @property
    def nar_address(self) -> IPv6Address:
        return eui64_address(self.prefix_b, self.nar_mac)

    @property
    def par_link_local(self) -> IPv6Address:
        return eui64_address("fe80::/64", self.par_mac)

    @property
    def nar_link_local(self) -> IPv6Address:
        return eui64_address("fe80::/64", self.nar_mac)

    @property
    def pcoa(self) -> IPv6Address:
        return eui64_address(self.prefix_a, self.mn_mac)

    @property
    def ncoa(self) -> IPv6Address:
        """The NCoA the draft derives without C: the NAR's prefix, then the MN's current interface id."""
        return eui64_address(self.prefix_b, self.mn_mac)

    @classmethod
    def attach(cls, prefix: str = DEFAULT_PREFIX, mn_link: str = "A") -> "LabTopology":
        """A handle on a lab another process built and left up (``fmipfast lab up``), for :meth:`move_mn` and
        :meth:`spawn`; :meth:`detach` it when done — its :meth:`down` would not delete what it did not build."""
        lab = cls(prefix=prefix)
        try:
            for role in ROLES:
                lab.ns[role] = Netns.existing(lab.names[role])
        except FileNotFoundError as exc:
            raise LabError(f"the lab {prefix!r} is not up: {exc}") from None
        lab.mn_link = mn_link
        return lab

    def ns_name(self, role: str) -> str:
        return self.names[role]

    # --- lifecycle
    def up(self) -> "LabTopology":
        """Build everything; on any failure tear down what was built and re-raise."""
        if self.ns:
            raise LabError(f"the lab {self.prefix!r} is already up")
        taken = [n for n in _present_namespaces() if n in self.names.values()]
        if taken:
            raise LabError(f"namespaces {taken} exist: another lab uses the prefix {self.prefix!r}, or a crashed "
                           f"run left them (fmipfast.lab.namespaces.topology.cleanup({self.prefix!r}) removes them)")
        self._arm()
        try:
            self._build()
        except BaseException:
            self.down()
            raise
        return self

    def _arm(self) -> None:
        if not self._atexit:
            atexit.register(self.down)
            self._atexit = True
        if threading.current_thread() is threading.main_thread():
            self._old_sigterm = signal.getsignal(signal.SIGTERM)

            def on_term(signum: int, frame: Any) -> None:
                raise SystemExit(128 + signum)  # unwinds through finally/__exit__, which call down()

            signal.signal(signal.SIGTERM, on_term)

    def _disarm(self) -> None:
        if self._old_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
        if self._atexit:
            atexit.unregister(self.down)
            self._atexit = False

    def _build(self) -> None:
        self._built = True
        self._ifindex = 100
        self.mn_link = "A"
        for role in ROLES:
            self.ns[role] = Netns(self.names[role])
        cn, core, par, nar, air, mn = (self.ns[r] for r in ROLES)
        core.sysctl("net.ipv6.conf.all.forwarding", 1)
        # core links: kernel IPv6 at cn and core, none at the engines' ends
        self._veth(cn, self.cn_if, self.cn_mac, core, self.core_cn_if, self.core_cn_mac, (True, True))
        self._veth(par, self.par_upif, self.par_up_mac, core, self.core_par_if, self.core_par_mac, (False, True))
        self._veth(nar, self.nar_upif, self.nar_up_mac, core, self.core_nar_if, self.core_nar_mac, (False, True))
        # access links: the engines' ends and the bridge ports have no kernel IPv6; the MN has
        self._veth(par, self.par_acc, self.par_mac, air, self.air_par, None, (False, False))
        self._veth(nar, self.nar_acc, self.nar_mac, air, self.air_nar, None, (False, False))
        self._veth(mn, self.mn_if, self.mn_mac, air, self.air_mn, None, (True, False))
        for i, br in enumerate(self.bridges.values()):
            # a fixed bridge MAC: otherwise the bridge takes the lowest port MAC and its address changes each
            # time the MN's port leaves or joins
            air.ip("link", "add", br, "address", _hexmac(_mac(0x40 + i)), "type", "bridge", "stp_state", "0",
                   "forward_delay", "0", "mcast_snooping", "0")
            air.sysctl(f"net.ipv6.conf.{br}.disable_ipv6", 1)
            air.ip("link", "set", br, "up")
        for port, br in ((self.air_par, "brA"), (self.air_nar, "brB"), (self.air_mn, "brA")):
            air.ip("link", "set", port, "master", br)
        # addresses (no DAD: the plan is collision-free) and routes
        cn.ip("-6", "addr", "add", f"{self.cn_address}/64", "dev", self.cn_if, "nodad")
        cn.ip("-6", "route", "add", "default", "via", str(self.core_cn), "dev", self.cn_if)
        for dev, addr in ((self.core_cn_if, self.core_cn), (self.core_par_if, self.core_par),
                          (self.core_nar_if, self.core_nar)):
            core.ip("-6", "addr", "add", f"{addr}/64", "dev", dev, "nodad")
        for prefix, via, dev, mac in ((self.prefix_a, self.par_up, self.core_par_if, self.par_up_mac),
                                      (self.prefix_b, self.nar_up, self.core_nar_if, self.nar_up_mac)):
            core.ip("-6", "route", "add", prefix, "via", str(via), "dev", dev)
            core.ip("-6", "neigh", "replace", str(via), "lladdr", _hexmac(mac), "dev", dev, "nud", "permanent")
        mn.ip("-6", "addr", "add", f"{self.pcoa}/64", "dev", self.mn_if, "nodad")
        mn.ip("-6", "route", "add", "default", "via", str(self.par_link_local), "dev", self.mn_if)
        self._delays()

    def _veth(self, a_ns: Netns, a: str, a_mac: bytes | None, b_ns: Netns, b: str, b_mac: bytes | None,
              ipv6: tuple[bool, bool]) -> None:
        # Every end gets its own ifindex, distinct from its peer's.  The kernel's linkwatch handles a carrier
        # change at once only when a device's ifindex differs from its iflink (for veth: the peer's ifindex);
        # otherwise it is rate-limited to one per second, and a bridge port enables only when linkwatch has
        # set the operstate.  Two ends that both got ifindex 3 in their namespaces made the MN's port stay
        # disabled for ~950 ms after each up: a link gap the lab would have blamed on the handover.
        self._ifindex += 2
        a_ns.ip("link", "add", a, "index", str(self._ifindex), "type", "veth", "peer", "name", b,
                "netns", b_ns.name, "index", str(self._ifindex + 1))
        for ns, dev, mac, v6 in ((a_ns, a, a_mac, ipv6[0]), (b_ns, b, b_mac, ipv6[1])):
            if mac is not None:
                ns.ip("link", "set", dev, "address", _hexmac(mac))
            if v6:
                ns.sysctl(f"net.ipv6.conf.{dev}.accept_dad", 0)
                ns.sysctl(f"net.ipv6.conf.{dev}.accept_ra", 0)
            else:
                ns.sysctl(f"net.ipv6.conf.{dev}.disable_ipv6", 1)
            ns.ip("link", "set", dev, "up")

    def _delays(self) -> None:
        plan = []
        if self.air_delay_ms > 0:  # egress toward the routers and toward the MN: once per direction
            plan += [("air", d, self.air_delay_ms) for d in (self.air_par, self.air_nar, self.air_mn)]
        if self.core_delay_ms > 0:  # both ends of every core link: once per direction per hop
            plan += [("core", d, self.core_delay_ms) for d in (self.core_cn_if, self.core_par_if, self.core_nar_if)]
            plan += [("cn", self.cn_if, self.core_delay_ms), ("par", self.par_upif, self.core_delay_ms),
                     ("nar", self.nar_upif, self.core_delay_ms)]
        applied = True
        for role, dev, ms in plan:
            out = self.ns[role].run("tc", "qdisc", "add", "dev", dev, "root", "netem", "delay", f"{ms}ms",
                                    check=False)
            if out.returncode != 0:
                log.warning("link delays skipped: tc netem failed on %s/%s: %s", role, dev, out.stderr.strip())
                applied = False
                break
        self.delays_applied = bool(plan) and applied

    def down(self) -> None:
        """Kill every process started here (and any other process still inside the lab's namespaces: one left
        there would keep a deleted namespace and its links alive), then delete the namespaces, and with them
        every link.  Idempotent; never raises for something already gone."""
        self._close_mover()
        for proc in self.processes:
            self._stop(proc)
        self.processes.clear()
        for role in reversed(ROLES):
            ns = self.ns.pop(role, None)
            if ns is not None:
                _kill_namespace_processes(ns.name)
                ns.delete()
        if self._built:
            cleanup(self.prefix)  # anything a half-built up() made before self.ns knew about it
            self._built = False
        self._disarm()

    def detach(self) -> None:
        """Leave the lab up when this process exits (``fmipfast lab up``): forget the spawned processes without
        stopping them and drop the atexit/SIGTERM teardown.  :func:`cleanup` with the same prefix (``fmipfast lab
        down``) removes it later, processes included."""
        self._close_mover()
        self.processes.clear()
        self.ns.clear()
        self._built = False
        self._disarm()

    @staticmethod
    def _stop(proc: subprocess.Popen) -> None:
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            proc.terminate()
        try:
            proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()
            proc.wait(timeout=KILL_GRACE_S)

    def __enter__(self) -> "LabTopology":
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    # --- processes
    def spawn(self, ns: str, argv: Sequence[str], *, stdin: int | IO[Any] | None = None,
              stdout: int | IO[Any] | None = subprocess.PIPE,
              stderr: int | IO[Any] | None = subprocess.PIPE, env: Mapping[str, str] | None = None,
              text: bool = True) -> subprocess.Popen:
        """Start ``argv`` inside namespace ``ns`` (a role such as ``"cn"``), in its own process group; it is
        killed (SIGTERM, then SIGKILL after 2 s) by :meth:`down`.  Output is piped by default: read it (a
        ``READY`` line, a JSON summary) or pass ``subprocess.DEVNULL`` for a chatty process."""
        if ns not in self.ns:
            raise LabError(f"no namespace {ns!r} in the lab (up? roles: {', '.join(ROLES)})")
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns[ns].name, *argv], stdin=stdin, stdout=stdout,
                                stderr=stderr,
                                env=dict(env) if env is not None else None, text=text, start_new_session=True)
        self.processes.append(proc)
        return proc

    # --- the layer-2 handover
    def prepare_move(self, priority: int = 0) -> None:
        """Start :meth:`move_mn`'s switch now, so a move starts with the port going down: opening a netlink
        handle in ``air`` took 3-16 ms on a loaded machine, which a run counted into the handover's
        interruption (the PAR tunnels from the HRA on while the MN is still on link A).  The switch is a
        process of its own in ``air`` (:mod:`fmipfast.lab.namespaces.mover`), outside the interpreter of the
        MN agent this process may run, with the watch that reads the MN's carrier coming up.  Stopped by
        :meth:`down` and :meth:`detach`.  ``priority`` > 0: the switch at SCHED_FIFO ``priority`` (the caller
        knows this host allows it)."""
        if self._mover is not None:
            return
        if "air" not in self.ns or "mn" not in self.ns:
            raise LabError("the lab is not up")
        proc = self.spawn("air", [sys.executable, "-m", "fmipfast.lab.namespaces.mover", "--port", self.air_mn,
                                  "--mn-netns", self.ns["mn"].name, "--mn-if", self.mn_if,
                                  "--realtime", str(int(priority))],
                          stdin=subprocess.PIPE, env=child_env())
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "READY":
            err = proc.stderr.read() if proc.stderr is not None and proc.poll() is not None else ""
            self._stop(proc)
            raise LabError(f"the layer-2 switch did not start: {line.strip()} {err.strip()[-300:]}")
        self._mover = proc

    def _close_mover(self) -> None:
        if self._mover is not None:
            proc, self._mover, self._moving = self._mover, None, None
            try:
                assert proc.stdin is not None
                proc.stdin.write("quit\n")
                proc.stdin.flush()
                proc.wait(timeout=5)
            except (OSError, ValueError, subprocess.TimeoutExpired):  # tearing down: it may be gone already
                pass
            self._stop(proc)

    def move_mn(self, to: str = "B", gap_ms: float = 30.0, hold_ms: float = 0.0) -> LinkMove:
        """Move the MN's bridge port to ``brA``/``brB``: down, nomaster, master, and up once ``gap_ms`` has
        passed since the down.  Returns the timestamps (see :class:`LinkMove`); ``up_ns - down_ns >= gap``.
        After :meth:`prepare_move` the switch process makes the move (one at a time: :meth:`start_move`, then
        :meth:`finish_move`), reads when the MN's carrier came up (``carrier_ns``) and answers ``hold_ms`` after
        that, so its answer does not compete with a handover running on the new link; without it, the same
        requests are made from here."""
        if self._mover is None:
            self._check_move(to, gap_ms)
            old = self.mn_link
            with self.ns["air"].enter():
                links = LinkRequests()
                try:
                    times = move_port(links, socket.if_nametoindex(self.air_mn),
                                      socket.if_nametoindex(self.bridges[to]), gap_ms)
                finally:
                    links.close()
            self.mn_link = to
            down_request_ns, down_ns, up_ns, up_ack_ns = times
            return LinkMove(old, to, down_ns, up_ns, down_request_ns, up_ack_ns)
        self.start_move(to, gap_ms, hold_ms)
        return self.finish_move()

    def _check_move(self, to: str, gap_ms: float) -> None:
        if to not in self.bridges:
            raise ValueError(f"to must be one of {sorted(self.bridges)}, got {to!r}")
        if not 0 <= gap_ms <= 60_000:
            raise ValueError(f"gap_ms must be within 0..60000, got {gap_ms}")
        if "air" not in self.ns:
            raise LabError("the lab is not up")

    def start_move(self, to: str = "B", gap_ms: float = 30.0, hold_ms: float = 0.0, delay_ms: float = 0.0) -> int:
        """Hand the move to the switch process (:meth:`prepare_move` first) and return at once, with the
        CLOCK_MONOTONIC time the command was written: one ``write`` on its pipe, which an event loop may make
        itself -- a real MN starts its layer-2 switch right when it may, and the move's first request (the port
        down) is the switch's next step after reading the command, or ``delay_ms`` after this call (the switch
        sleeps until then).  :meth:`finish_move` reads the outcome."""
        self._check_move(to, gap_ms)
        if not 0 <= delay_ms <= 10_000:
            raise ValueError(f"delay_ms must be within 0..10000, got {delay_ms}")
        proc = self._mover
        if proc is None:
            raise LabError("the layer-2 switch is not running (prepare_move first)")
        if self._moving is not None:
            raise LabError("a layer-2 move is already under way (finish_move first)")
        assert proc.stdin is not None
        command_ns = time.monotonic_ns()
        try:
            not_before = command_ns + round(delay_ms * 1e6) if delay_ms > 0 else 0
            proc.stdin.write(f"move {self.bridges[to]} {gap_ms!r} {max(0.0, hold_ms)!r} {not_before}\n")
            proc.stdin.flush()
        except OSError as exc:
            raise LabError(f"the layer-2 switch is gone: {exc}") from None
        self._moving = (self.mn_link, to, command_ns)
        return command_ns

    def move_answer_fileno(self) -> int:
        """The descriptor that becomes readable when the switch has answered :meth:`start_move` (then
        :meth:`finish_move` does not wait): for an event loop's ``add_reader``."""
        if self._mover is None or self._mover.stdout is None:
            raise LabError("the layer-2 switch is not running (prepare_move first)")
        return self._mover.stdout.fileno()

    def finish_move(self) -> LinkMove:
        """Wait for the answer to :meth:`start_move` (the switch writes it ``hold_ms`` after the MN's carrier
        came up) and return the move's timestamps.  May run on any one thread."""
        if self._moving is None or self._mover is None:
            raise LabError("no layer-2 move under way")
        old, to, command_ns = self._moving
        proc = self._mover
        assert proc.stdout is not None
        try:
            line = proc.stdout.readline()
        finally:
            self._moving = None
        try:
            got = json.loads(line)
        except ValueError:
            got = {"error": f"no answer ({line.strip()!r})"}
        if "error" in got:
            raise LabError(f"the layer-2 move failed: {got['error']}")
        self.mn_link = to
        return LinkMove(old, to, got["down_ns"], got["up_ns"], got["down_request_ns"], got["up_ack_ns"],
                        got["carrier_ns"] or 0, command_ns, got.get("read_ns") or 0, int(got.get("priority") or 0))

    # --- engine configuration
    def router_config(self, which: str = "par", **overrides: Any) -> str:
        """A TOML ``[router]`` configuration for the engine in namespace ``which`` ("par" or "nar"): its two
        interfaces and addresses, a default route via the core router with a static neighbor entry for it, and
        the other access router as its peer.  ``overrides`` replace or add ``[router]`` keys; a mapping value
        becomes a sub-table (``security={...}``), a list of mappings an array of tables."""
        if which not in ("par", "nar"):
            raise ValueError(f"which must be 'par' or 'nar', got {which!r}")
        if which == "par":
            acc, up, addr, up_addr, core, core_mac = (self.par_acc, self.par_upif, self.par_address, self.par_up,
                                                      self.core_par, self.core_par_mac)
            peer, realm = self.nar_up, "B.EXAMPLE"
        else:
            acc, up, addr, up_addr, core, core_mac = (self.nar_acc, self.nar_upif, self.nar_address, self.nar_up,
                                                      self.core_nar, self.core_nar_mac)
            peer, realm = self.par_up, "A.EXAMPLE"
        router: dict[str, Any] = {
            "name": which,
            "buffer_per_mn_packets": 512,
            "buffer_lifetime_ms": 5000,
            # the route-switch hold (docs/protocol.md) waits for 20 ms of tunnel silence, not the default 10:
            # here two engines, the stream's two ends and the orchestrator share the machine's cores, and a PAR
            # descheduled for longer than the idle time would let direct datagrams overtake its last ones
            "reorder_hold_idle_ms": 20,
            "peers": [str(peer)],
            "ring": {"block_size": 65536, "block_count": 16, "timeout_ms": 2},
            "interfaces": [
                {"name": acc, "role": "access", "addresses": [f"{addr}/64"], "ra_min_interval_ms": 30,
                 "ra_max_interval_ms": 70, "adjacent_realms": [realm]},
                {"name": up, "role": "upstream", "addresses": [f"{up_addr}/64"]},
            ],
            "routes": [{"prefix": "::/0", "via": str(core), "interface": up}],
            "neighbors": [{"address": str(core), "mac": _hexmac(core_mac), "interface": up}],
        }
        router.update(overrides)
        out: list[str] = []
        _toml_table("router", router, out)
        return "\n".join(out) + "\n"

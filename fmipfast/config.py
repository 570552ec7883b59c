"""Configuration: TOML (``tomllib``) into frozen dataclasses, with errors that name the key and the problem.

Every file is validated whole before anything runs: an unknown section or key, a wrong type or a value out
of range raises :class:`fmipfast.errors.ConfigError` whose ``key`` is the dotted path (``codepoints.type``)
and whose message says what is wrong and what is allowed.  Later issues add sections (router, kdc, mn,
lab); each is one dataclass here plus one entry in ``_SECTIONS``.

May import: errors, constants.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from fmipfast.constants import MESSAGE_KEYS, Codepoints, FmipCode
from fmipfast.errors import ConfigError
from fmipfast.tomlfile import MAX_FILE_OCTETS, parse_toml, read_toml, show

__all__ = ["Config", "CodepointsConfig", "LoggingConfig", "RouterConfig", "InterfaceConfig", "RouteConfig",
           "NeighborConfig", "RingConfig", "SchedulingConfig", "SCHEDULING_POLICIES", "SecurityConfig", "KeyConfig",
           "PeerConfig", "load", "loads", "from_mapping", "parse_toml", "read_toml", "MAX_FILE_OCTETS", "DEFAULTS_TOML"]


def _int(key: str, value: Any, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(key, f"expected an integer, got {type(value).__name__} {_show(value)}")
    if not lo <= value <= hi:
        raise ConfigError(key, f"{_show(value)} is out of range {lo}-{hi}")
    return value


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(key, f"{_show(value)} is not one of {', '.join(choices)}")
    return value


_show = show


def _float(key: str, value: Any, lo: float, hi: float) -> float:
    """A finite number (TOML float or integer) within ``lo``..``hi``: ``nan`` and ``inf`` are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, f"must be a finite number in {lo:g}..{hi:g}, got {type(value).__name__} {_show(value)}")
    if isinstance(value, int):
        if not lo <= value <= hi:
            raise ConfigError(key, f"must be a finite number in {lo:g}..{hi:g}, got {_show(value)}")
        return float(value)
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ConfigError(key, f"must be a finite number in {lo:g}..{hi:g}, got {_show(value)}")
    return value


@dataclass(frozen=True, slots=True)
class CodepointsConfig:
    """``[codepoints]``: the ICMPv6 type and the per-message Codes (docs/design.md §2; defaults 200 and 1-7)."""

    type: int = 200
    handover_redirect: int = int(FmipCode.HANDOVER_REDIRECT)
    handover_redirect_ack: int = int(FmipCode.HANDOVER_REDIRECT_ACK)
    handover: int = int(FmipCode.HANDOVER)
    authenticated_mn: int = int(FmipCode.AUTHENTICATED_MN)
    attach: int = int(FmipCode.ATTACH)
    handover_error: int = int(FmipCode.HANDOVER_ERROR)
    forwarding_disable: int = int(FmipCode.FORWARDING_DISABLE)

    @classmethod
    def parse(cls, table: Mapping[str, Any], prefix: str) -> "CodepointsConfig":
        values = {}
        for key, value in table.items():
            if key == "type":
                values[key] = _int(f"{prefix}.type", value, 128, 255)
            else:
                values[key] = _int(f"{prefix}.{key}", value, 0, 255)
        made = cls(**values)
        try:
            made.profile()
        except ValueError as exc:
            name, _, problem = str(exc).partition(": ")
            raise ConfigError(f"{prefix}.{name}", problem) from None
        return made

    def profile(self) -> Codepoints:
        """The immutable codepoint profile that ``messages.encode``/``decode`` take."""
        return Codepoints(type=self.type, **{k: getattr(self, k) for k in MESSAGE_KEYS})


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """``[logging]``: level and format of the daemons' structured logs."""

    level: str = "info"
    format: str = "text"

    @classmethod
    def parse(cls, table: Mapping[str, Any], prefix: str) -> "LoggingConfig":
        values = {}
        for key, value in table.items():
            if key == "level":
                values[key] = _choice(f"{prefix}.level", value, ("debug", "info", "warning", "error"))
            else:
                values[key] = _choice(f"{prefix}.format", value, ("text", "json"))
        return cls(**values)


# --- [router]: the access-router engine ------------------------------------------------------


class _Table:
    """Typed reads from one TOML table with dotted-path errors, and a check that no unknown key is left."""

    def __init__(self, table: Any, path: str) -> None:
        if not isinstance(table, Mapping):
            raise ConfigError(path, f"expected a table, got {type(table).__name__}")
        self.table, self.path = table, path
        self.used: set[str] = set()

    def _get(self, key: str, default: Any) -> Any:
        self.used.add(key)
        return self.table.get(key, default)

    def get_int(self, key: str, default: int, lo: int, hi: int) -> int:
        return _int(f"{self.path}.{key}", self._get(key, default), lo, hi)

    def get_str(self, key: str, default: str | None = None) -> str:
        value = self._get(key, default)
        if not isinstance(value, str) or not value or "\x00" in value:
            raise ConfigError(f"{self.path}.{key}", "missing" if value is None else
                              f"expected a non-empty string without NUL, got {_show(value)}")
        return value

    def get_float(self, key: str, default: float, lo: float, hi: float) -> float:
        return _float(f"{self.path}.{key}", self._get(key, default), lo, hi)

    def get_ifname(self, key: str) -> str:
        return _ifname(f"{self.path}.{key}", self._get(key, None))

    def get_choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        return _choice(f"{self.path}.{key}", self._get(key, default), choices)

    def get_bool(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.path}.{key}", f"expected true or false, got {_show(value)}")
        return value

    def get_list(self, key: str) -> list[Any]:
        value = self._get(key, [])
        if not isinstance(value, list):
            raise ConfigError(f"{self.path}.{key}", f"expected an array, got {type(value).__name__}")
        return value

    def done(self) -> None:
        for key in self.table:
            if key not in self.used:
                raise ConfigError(f"{self.path}.{key}", f"unknown key; known keys: {', '.join(sorted(self.used))}")


#: Linux's IFNAMSIZ: an interface name is at most 15 octets (and its NUL).
IFNAMSIZ = 16


def _ifname(path: str, value: Any) -> str:
    """An interface name the kernel accepts (``dev_valid_name``): 1-15 octets, not "." or "..", no '/', ':',
    whitespace or NUL."""
    if value is None:
        raise ConfigError(path, "missing")
    if (not isinstance(value, str) or not value or len(value.encode()) >= IFNAMSIZ or value in (".", "..")
            or any(c in "/:\x00" or c.isspace() for c in value)):
        raise ConfigError(path, f"expected an interface name of 1-{IFNAMSIZ - 1} octets without '/', ':' or "
                                f"spaces, got {_show(value)}")
    return value


def _no_zone(path: str, value: str) -> None:
    if "%" in value:
        raise ConfigError(path, f"a zone id ('%...') is not allowed here, got {_show(value)}: the interface is "
                                "named by its own key")


def _prefix(path: str, value: Any, *, host: bool) -> tuple[str, int]:
    """"2001:db8::1/64" -> ("2001:db8::1", 64); the address part is kept as written (an interface address
    is a host address inside its prefix, ``host=True``; a route prefix has no host bits, ``host=False``)."""
    if not isinstance(value, str) or "/" not in value:
        raise ConfigError(path, f"expected an IPv6 prefix like '2001:db8::1/64', got {_show(value)}")
    _no_zone(path, value)
    try:
        iface = ipaddress.IPv6Interface(value)
    except ValueError:
        raise ConfigError(path, f"expected an IPv6 prefix like '2001:db8::1/64', got {_show(value)}") from None
    if not host and iface.ip != iface.network.network_address:
        raise ConfigError(path, f"host bits set in a route prefix (did you mean {iface.network}?)")
    if host and (iface.ip.is_multicast or iface.ip.is_unspecified):
        raise ConfigError(path, f"an interface address is unicast, got {iface.ip}")
    return str(iface.ip), iface.network.prefixlen


def _address(path: str, value: Any) -> str:
    """A unicast IPv6 address, without a zone id."""
    try:
        if not isinstance(value, str):  # IPv6Address(7) would be ::7
            raise TypeError(value)
        _no_zone(path, value)
        addr = ipaddress.IPv6Address(value)
    except (ValueError, TypeError):
        raise ConfigError(path, f"expected an IPv6 address, got {_show(value)}") from None
    if addr.is_multicast or addr.is_unspecified:
        raise ConfigError(path, f"expected a unicast IPv6 address, got {addr}")
    return str(addr)


def _hostport(path: str, value: Any) -> str:
    """``"host:port"`` (an IPv6 host in brackets; a zone id allowed there): a KDC's address.  The host is an IP
    address or a DNS name (resolved when used), the port 1-65535."""
    if not isinstance(value, str):
        raise ConfigError(path, f"expected 'host:port', got {type(value).__name__} {_show(value)}")
    host, sep, port = value.rpartition(":")
    ok = bool(sep) and port.isascii() and port.isdigit() and 0 < int(port) < 65536
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ok:
        try:
            ipaddress.IPv6Address(bare)  # brackets recommended; without them the last ':' starts the port
        except ValueError:
            ok = not host.startswith("[") and _is_hostname(bare)
    if not ok:
        raise ConfigError(path, f"expected 'host:port' (an IPv6 host in brackets, port 1-65535), got {_show(value)}")
    return value


def _is_hostname(host: str) -> bool:
    """An IPv4 address or a DNS name of letters, digits, '-', '_' and dots (at most 253 octets)."""
    try:
        ipaddress.IPv4Address(host)
        return True
    except ValueError:
        pass
    return (0 < len(host) <= 253 and host.isascii()
            and all(re.fullmatch(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?", label)
                    for label in host.rstrip(".").split(".")))


def _mac(path: str, value: Any) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", value):
        raise ConfigError(path, f"expected a MAC address like '02:00:5e:10:00:01', got {_show(value)}")
    return bytes.fromhex(value.replace(":", ""))


@dataclass(frozen=True, slots=True)
class InterfaceConfig:
    """``[[router.interfaces]]``: an interface the engine owns.  ``access`` links get Router
    Advertisements (RFC 4861 §6.2) and serve mobile nodes; ``upstream`` links lead to the core."""

    name: str
    role: str = "access"
    addresses: tuple[tuple[str, int], ...] = ()
    mtu: int = 1500
    ra_min_interval_ms: int = 3000
    ra_max_interval_ms: int = 10000
    ra_lifetime_s: int = 1800
    adjacent_realms: tuple[str, ...] = ()

    @classmethod
    def parse(cls, table: Any, path: str) -> "InterfaceConfig":
        t = _Table(table, path)
        name = t.get_ifname("name")
        role = t.get_choice("role", "access", ("access", "upstream"))
        addresses = tuple(_prefix(f"{path}.addresses[{i}]", a, host=True)
                          for i, a in enumerate(t.get_list("addresses")))
        mtu = t.get_int("mtu", 1500, 1280, 65535)
        # RFC 6275 §7.5 lets a mobility-serving router advertise as often as every 30-70 ms.
        ra_min = t.get_int("ra_min_interval_ms", 3000, 30, 1_800_000)
        ra_max = t.get_int("ra_max_interval_ms", 10000, 70, 1_800_000)
        if ra_max < ra_min:
            raise ConfigError(f"{path}.ra_max_interval_ms", f"{ra_max} is below ra_min_interval_ms {ra_min}")
        lifetime = t.get_int("ra_lifetime_s", 1800, 0, 9000)
        realms = t.get_list("adjacent_realms")
        for i, realm in enumerate(realms):
            _realm(f"{path}.adjacent_realms[{i}]", realm)
        # The RA carries them in one ND option (at most 2040 octets) and must fit the link's MTU: IPv6 header 40,
        # RA 16, source link-layer address 8, MTU 8, 32 per prefix, the option's 3 octets and each realm.
        option = 3 + sum(1 + len(r.encode()) for r in realms) if realms else 0
        ra = 40 + 16 + 8 + 8 + 32 * len(addresses) + -(-option // 8) * 8
        if role == "access" and (option > 2040 or ra > mtu):
            raise ConfigError(f"{path}.{'adjacent_realms' if realms else 'addresses'}",
                              f"the Router Advertisement with these prefixes and realms would be {ra} octets, more "
                              f"than the MTU {mtu} (or the realms option {option}, more than 2040)")
        t.done()
        return cls(name, role, addresses, mtu, ra_min, ra_max, lifetime, tuple(realms))


@dataclass(frozen=True, slots=True)
class RouteConfig:
    """``[[router.routes]]``: a static route; the longest matching prefix wins."""

    prefix: tuple[str, int]
    via: str
    interface: str

    @classmethod
    def parse(cls, table: Any, path: str) -> "RouteConfig":
        t = _Table(table, path)
        made = cls(_prefix(f"{path}.prefix", t._get("prefix", None), host=False),
                   _address(f"{path}.via", t._get("via", None)), t.get_ifname("interface"))
        t.done()
        return made


@dataclass(frozen=True, slots=True)
class NeighborConfig:
    """``[[router.neighbors]]``: a static neighbor entry (a next hop that never needs resolving)."""

    address: str
    mac: bytes
    interface: str

    @classmethod
    def parse(cls, table: Any, path: str) -> "NeighborConfig":
        t = _Table(table, path)
        made = cls(_address(f"{path}.address", t._get("address", None)), _mac(f"{path}.mac", t._get("mac", None)),
                   t.get_ifname("interface"))
        t.done()
        return made


#: What a TPACKET_V2 slot takes besides the IPv6 packet: the kernel puts the network header at
#: TPACKET_ALIGN(TPACKET2_HDRLEN + 16) = 80 octets into the slot, the 14-octet Ethernet header before it.
RING_FRAME_OVERHEAD = 80


@dataclass(frozen=True, slots=True)
class RingConfig:
    """``[router.ring]``: AF_PACKET ring geometry (see fmipfast.rings)."""

    block_size: int = 1 << 18
    block_count: int = 16
    #: the kernel hands a partly filled RX block to the engine at its retire timer, every this many ms: the
    #: data path's latency per engine at low load, against the cost of smaller blocks (docs/operations.md)
    timeout_ms: int = 2
    tx_frames: int = 512
    fanout_group: int = 0  # 0 = no PACKET_FANOUT
    #: ND, echo and fmipfast messages on a socket of their own that wakes the engine per frame, so they never
    #: wait for an RX block to retire (fmipfast.rings.ControlSocket); the ring gets every other frame.
    control_socket: bool = True
    #: "blocks": a TPACKET_V3 RX ring, read a block at a time (full, or at the retire timer); "frames": a
    #: TPACKET_V2 one, each frame handed over at once, in slots of ``frame_size`` octets (the latency of a
    #: frame at low load: the timer's ~1 ms against tens of microseconds; docs/operations.md)
    mode: str = "blocks"
    frame_size: int = 2048

    @classmethod
    def parse(cls, table: Any, path: str) -> "RingConfig":
        t = _Table(table, path)
        block = t.get_int("block_size", 1 << 18, 4096, 1 << 26)
        if block % 4096:
            raise ConfigError(f"{path}.block_size", f"{block} is not a multiple of the 4096-octet page")
        mode = t.get_choice("mode", "blocks", ("blocks", "frames"))
        frame = t.get_int("frame_size", 2048, 128, 1 << 16)
        if frame % 16 or block % frame:
            raise ConfigError(f"{path}.frame_size", f"{frame} is not a multiple of 16 dividing block_size {block}")
        made = cls(block, t.get_int("block_count", 16, 1, 4096), t.get_int("timeout_ms", 2, 1, 10000),
                   t.get_int("tx_frames", 512, 1, 1 << 16), t.get_int("fanout_group", 0, 0, 0xFFFF),
                   t.get_bool("control_socket", True), mode, frame)
        t.done()
        return made


#: ``[router.scheduling]``/``[mn.scheduling] policy``: Linux scheduling policies by name ("inherit": leave the
#: process as started).
SCHEDULING_POLICIES = ("inherit", "other", "batch", "fifo", "rr")


@dataclass(frozen=True, slots=True)
class SchedulingConfig:
    """``[router.scheduling]``, ``[mn.scheduling]``: the CPU scheduling of the daemon's process, set at start
    (sched(7), :mod:`fmipfast.scheduling`) -- what systemd's ``CPUSchedulingPolicy=``, ``CPUSchedulingPriority=``
    and ``Nice=`` set for a unit (docs/operations.md §"Scheduling").  ``fifo``/``rr`` make the daemon preempt
    ordinary processes the moment a frame wakes it (a router: the Attach of an MN that just arrived; an MN: its
    carrier coming up on the new link, the Redirect), at ``priority`` 1-99; ``nice`` -20..19 weights it among
    ordinary ones (``other``, ``batch``).  The default changes nothing."""

    policy: str = "inherit"
    priority: int = 0
    nice: int | None = None

    @classmethod
    def parse(cls, table: Any, path: str) -> "SchedulingConfig":
        t = _Table(table, path)
        policy = t.get_choice("policy", "inherit", SCHEDULING_POLICIES)
        realtime = policy in ("fifo", "rr")
        priority = t.get_int("priority", 10 if realtime else 0, 0, 99)
        if realtime != (priority > 0):
            raise ConfigError(f"{path}.priority", f"{priority}: the fifo and rr policies take a priority of 1-99, "
                                                   "the others none (0)")
        nice = t.get_int("nice", 0, -20, 19) if "nice" in table else None
        if nice is not None and realtime:
            raise ConfigError(f"{path}.nice", f"the {policy} policy has no nice value (it runs before every "
                                              "ordinary process whatever its nice value)")
        t.done()
        return cls(policy, priority, nice)


def _hexkey(path: str, value: Any, size: int = 32) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(path, f"expected {size * 2} hexadecimal digits, got {type(value).__name__}")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ConfigError(path, "not hexadecimal") from None
    if len(raw) != size:
        raise ConfigError(path, f"{len(raw)} octets, a key is {size}")
    return raw


def _principal(path: str, value: Any) -> str:
    """``name@REALM`` as the light-weight Kerberos encodes it: the name 1-255 octets of UTF-8, the realm as
    :func:`_realm` has it."""
    if not isinstance(value, str) or value.count("@") != 1 or value.startswith("@") or value.endswith("@"):
        raise ConfigError(path, f"expected a principal like 'host/nar@B.EXAMPLE', got {_show(value)}")
    name, _, realm = value.partition("@")
    _realm(path, realm, "realm")
    if len(name.encode()) > 255 or "\x00" in name:
        raise ConfigError(path, f"the name part is {len(name.encode())} octets of UTF-8, at most 255 (without NUL)")
    return value


#: How many routers an MN may name for precaching ([mn.gssapi] adjacent and precache together): each is a
#: service-ticket fetch in the background.
MAX_PRECACHE_ROUTERS = 64

#: A realm's longest form: its ticket-granting service ``krbtgt/REALM`` must fit a 255-octet name.
MAX_REALM_OCTETS = 255 - len("krbtgt/")


def _realm(path: str, value: Any, what: str = "a realm") -> str:
    """A realm: 1-248 octets of UTF-8 without '@' or NUL (so that ``krbtgt/REALM``, the name of its ticket-granting
    service, fits the 255 octets of a principal name)."""
    if (not isinstance(value, str) or not value or "@" in value or "\x00" in value
            or len(value.encode()) > MAX_REALM_OCTETS):
        raise ConfigError(path, f"{what} is a string of 1-{MAX_REALM_OCTETS} octets of UTF-8 without '@', "
                                f"got {_show(value)}")
    return value


@dataclass(frozen=True, slots=True)
class KeyConfig:
    """``[[router.security.keys]]``: one keytab entry (the router's own service key, or a region key)."""

    principal: str
    kvno: int
    key: bytes = field(repr=False)

    @classmethod
    def parse(cls, table: Any, path: str) -> "KeyConfig":
        t = _Table(table, path)
        made = cls(_principal(f"{path}.principal", t._get("principal", None)), t.get_int("kvno", 1, 0, 255),
                   _hexkey(f"{path}.key", t._get("key", None)))
        t.done()
        return made


@dataclass(frozen=True, slots=True)
class PeerConfig:
    """``[[router.security.peers]]``: manual AH SAs with one peer router (docs/design.md §4): the SPI and key of
    what it sends us (in) and of what we send it (out), HMAC-SHA-256-128."""

    address: str
    spi_in: int
    key_in: bytes = field(repr=False)
    spi_out: int = 0
    key_out: bytes = field(repr=False, default=b"")

    @classmethod
    def parse(cls, table: Any, path: str) -> "PeerConfig":
        t = _Table(table, path)
        made = cls(_address(f"{path}.address", t._get("address", None)),
                   t.get_int("spi_in", 256, 256, 0xFFFFFFFF), _hexkey(f"{path}.key_in", t._get("key_in", None)),
                   t.get_int("spi_out", 256, 256, 0xFFFFFFFF), _hexkey(f"{path}.key_out", t._get("key_out", None)))
        t.done()
        return made


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    """``[router.security]``: the router's Kerberos identity, keytab, KDC, and AH peers.  Absent: the router
    forwards but runs no handover protocol."""

    principal: str
    keys: tuple[KeyConfig, ...] = ()
    peers: tuple[PeerConfig, ...] = ()
    kdc: str | None = None  # "host:port" of its realm's KDC, for key cases 2 and 3
    max_sessions: int = 4096  # authenticated MNs at once; a full table refuses new ones, counted
    max_handovers: int = 64  # concurrent handovers towards this router (HE "insufficient resources" beyond)
    ah_sequence_file: str | None = None  # keeps the outbound AH counters across restarts (RFC 4302 §3.3.2)
    session_file: str | None = None  # keeps the MNs' sessions (their keys; mode 0600) across restarts
    mechanism: str = "lwkerb"  # lwkerb | gssapi (standard Kerberos: MIT krb5 through GSS-API, key case 1)
    keytab: str | None = None  # gssapi: the standard keytab file holding ``principal``'s keys
    rcache: str | None = None  # gssapi: MIT's replay cache, e.g. "file2:/var/lib/fmipfast/rcache2"

    @classmethod
    def parse(cls, table: Any, path: str) -> "SecurityConfig":
        t = _Table(table, path)
        principal = _principal(f"{path}.principal", t._get("principal", None))
        mechanism = t.get_choice("mechanism", "lwkerb", MECHANISMS)
        gss_files = {name: (t.get_str(name) if name in table else None) for name in ("keytab", "rcache")}
        if mechanism == "gssapi" and gss_files["keytab"] is None:
            raise ConfigError(f"{path}.keytab", "missing: the gssapi mechanism accepts with a keytab file")
        if mechanism == "lwkerb" and any(v is not None for v in gss_files.values()):
            raise ConfigError(f"{path}.keytab", "keytab and rcache are for mechanism = \"gssapi\"")
        keys = tuple(KeyConfig.parse(x, f"{path}.keys[{i}]") for i, x in enumerate(t.get_list("keys")))
        peers = tuple(PeerConfig.parse(x, f"{path}.peers[{i}]") for i, x in enumerate(t.get_list("peers")))
        for i, peer in enumerate(peers):
            for other in peers[:i]:
                if peer.address == other.address:
                    raise ConfigError(f"{path}.peers[{i}].address", f"{peer.address} is listed twice")
                if peer.spi_in == other.spi_in:
                    raise ConfigError(f"{path}.peers[{i}].spi_in", f"{peer.spi_in} is already the inbound SPI of "
                                                                  f"{other.address}: an inbound SPI names one SA")
        kdc = t._get("kdc", None)
        if kdc is not None:
            _hostport(f"{path}.kdc", kdc)
        if mechanism == "lwkerb" and not any(k.principal == principal for k in keys) and kdc is None:
            raise ConfigError(f"{path}.keys", f"no key for {principal} and no kdc: no AP-REQ could be verified")
        files: dict[str, str | None] = {}
        for name in ("ah_sequence_file", "session_file"):
            value = t.get_str(name) if name in table else None
            if value is not None and value.endswith("/"):
                raise ConfigError(f"{path}.{name}", f"expected a file path, got {_show(value)}")
            files[name] = value
        made = cls(principal, keys, peers, kdc, t.get_int("max_sessions", 4096, 1, 1 << 24),
                   t.get_int("max_handovers", 64, 1, 1 << 20), files["ah_sequence_file"], files["session_file"],
                   mechanism, gss_files["keytab"], gss_files["rcache"])
        t.done()
        return made


#: The largest handover-buffer and resolve-queue arenas together (4 GiB).
MAX_ARENA_OCTETS = 1 << 32


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """``[router]``: the engine's tables and bounds (every capacity named, docs/conventions.md §2)."""

    name: str = "router"
    interfaces: tuple[InterfaceConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()
    neighbors: tuple[NeighborConfig, ...] = ()
    ring: RingConfig = field(default_factory=RingConfig)
    batch_size: int = 256
    ncache_capacity: int = 4096
    buffer_slots: int = 4096
    buffer_slot_size: int = 2048
    buffer_per_mn_packets: int = 64
    buffer_per_mn_bytes: int = 131072
    buffer_lifetime_ms: int = 3000
    # The route switch (docs/spec-notes.md): after the Attach, direct traffic to the NCoA is held until the
    # PAR's tunnel has been idle this long (0: never held), and never longer than reorder_hold_max_ms.
    reorder_hold_idle_ms: int = 10
    reorder_hold_max_ms: int = 200
    resolve_queue_packets: int = 3  # RFC 4861 §7.2.2 per-destination queue (Linux unres_qlen)
    resolve_retries: int = 3  # MAX_MULTICAST_SOLICIT, RFC 4861 §10
    resolve_interval_ms: int = 1000  # RETRANS_TIMER
    reachable_time_ms: int = 30000  # REACHABLE_TIME
    icmp_error_rate: int = 100  # RFC 4443 §2.4(f) token bucket: errors per second
    icmp_error_burst: int = 10
    peers: tuple[str, ...] = ()  # routers whose IPv6-in-IPv6 packets are decapsulated (docs/design.md §1)
    security: SecurityConfig | None = None  # the handover protocol; None: forwarding only
    # Handover buffers at once (the PacketBuffer's key space, shared by the NAR machine and the engine): an HI
    # beyond it is answered "insufficient resources" (fmipfast.keys).
    buffer_keys: int = 1024
    # NARs the PAR's tunnels lead to at once (the node's tunnel peer rows, reused once no tunnel refers to a
    # NAR): a tunnel to a NAR beyond them is refused (Engine.tunnel_add returns -1).
    tunnel_peers: int = 256
    # Handovers the NAR's side rehearses on throwaway state at start (fmipfast.warmup), so the first MN to hand
    # over here does not pay for cold code: 0 turns it off.
    warm_up_handovers: int = 12
    scheduling: SchedulingConfig = field(default_factory=SchedulingConfig)

    @classmethod
    def parse(cls, table: Mapping[str, Any], prefix: str) -> "RouterConfig":
        t = _Table(table, prefix)
        interfaces = tuple(InterfaceConfig.parse(x, f"{prefix}.interfaces[{i}]")
                           for i, x in enumerate(t.get_list("interfaces")))
        names = [i.name for i in interfaces]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ConfigError(f"{prefix}.interfaces[{i}].name", f"interface {name!r} is listed twice")
        routes = tuple(RouteConfig.parse(x, f"{prefix}.routes[{i}]") for i, x in enumerate(t.get_list("routes")))
        neighbors = tuple(NeighborConfig.parse(x, f"{prefix}.neighbors[{i}]")
                          for i, x in enumerate(t.get_list("neighbors")))
        pairs: tuple[tuple[str, tuple[RouteConfig | NeighborConfig, ...]], ...] = (("routes", routes),
                                                                                  ("neighbors", neighbors))
        for kind, items in pairs:
            for i, item in enumerate(items):
                if item.interface not in names:
                    raise ConfigError(f"{prefix}.{kind}[{i}].interface",
                                      f"{item.interface!r} is not one of the router's interfaces {names}")
        ring = RingConfig.parse(t._get("ring", {}), f"{prefix}.ring")
        made = cls(
            t.get_str("name", "router"), interfaces, routes, neighbors, ring,
            t.get_int("batch_size", 256, 1, 65536), t.get_int("ncache_capacity", 4096, 16, 1 << 24),
            t.get_int("buffer_slots", 4096, 1, 1 << 22), t.get_int("buffer_slot_size", 2048, 1280 + 18, 65536 + 18),
            t.get_int("buffer_per_mn_packets", 64, 1, 1 << 20), t.get_int("buffer_per_mn_bytes", 131072, 1500, 1 << 30),
            t.get_int("buffer_lifetime_ms", 3000, 1, 3_600_000),
            t.get_int("reorder_hold_idle_ms", 10, 0, 10_000), t.get_int("reorder_hold_max_ms", 200, 1, 60_000),
            t.get_int("resolve_queue_packets", 3, 0, 1024),
            t.get_int("resolve_retries", 3, 1, 100), t.get_int("resolve_interval_ms", 1000, 10, 60000),
            t.get_int("reachable_time_ms", 30000, 100, 3_600_000), t.get_int("icmp_error_rate", 100, 0, 1_000_000),
            t.get_int("icmp_error_burst", 10, 1, 1_000_000),
            tuple(_address(f"{prefix}.peers[{i}]", p) for i, p in enumerate(t.get_list("peers"))),
            SecurityConfig.parse(t._get("security", None), f"{prefix}.security") if "security" in table else None,
            t.get_int("buffer_keys", 1024, 1, 1 << 20), t.get_int("tunnel_peers", 256, 1, 65536),
            t.get_int("warm_up_handovers", 12, 0, 1000),
            SchedulingConfig.parse(t._get("scheduling", {}), f"{prefix}.scheduling"))
        t.done()
        # The handover buffer and the resolve queues are arenas of slots allocated at start (zero-filled): bound
        # their sum, so a start-up cannot fail on memory the operator never meant to give.
        arena = (made.buffer_slots + max(16, made.resolve_queue_packets * 256)) * made.buffer_slot_size
        if arena > MAX_ARENA_OCTETS:
            raise ConfigError(f"{prefix}.buffer_slots", f"the buffers would take {arena} octets ((buffer_slots + "
                                                        f"256 x resolve_queue_packets) x buffer_slot_size), more "
                                                        f"than {MAX_ARENA_OCTETS}")
        for i, iface in enumerate(made.interfaces):
            if made.ring.mode == "frames" and iface.mtu + RING_FRAME_OVERHEAD > made.ring.frame_size:
                raise ConfigError(f"{prefix}.ring.frame_size", f"{made.ring.frame_size} octets do not hold a frame "
                                                                f"of interfaces[{i}] ({iface.name}, MTU {iface.mtu}): "
                                                                f"need MTU + {RING_FRAME_OVERHEAD}")
        if made.security is not None and made.ring.fanout_group:
            # Each fanout worker is a process with its own neighbor, proxy and tunnel tables: an HI handled by
            # one would proxy and buffer there only, and the frames hashed to the others would miss it.
            raise ConfigError(f"{prefix}.ring.fanout_group", "the handover protocol ([router.security]) runs in "
                                                              "one worker: fanout workers do not share their "
                                                              "neighbor, proxy and tunnel tables yet")
        return made


@dataclass(frozen=True, slots=True)
class MnKerberosConfig:
    """``[mn.kerberos]``: the MN's own Kerberos identity and its realms' KDCs, for tickets fetched on demand
    (AS at home, TGS with referrals) and cross-realm TGTs precached from the RAs' adjacent realms (draft §3)."""

    principal: str
    key: bytes | None = field(repr=False, default=None)  # its long-term key (hex), or
    password: str | None = field(repr=False, default=None)  # a password (Scrypt string-to-key)
    kvno: int = 1
    kdcs: tuple[tuple[str, str], ...] = ()  # (realm, "host:port"); the home realm's is required
    precache: bool = True

    @classmethod
    def parse(cls, table: Any, path: str) -> "MnKerberosConfig":
        t = _Table(table, path)
        principal = _principal(f"{path}.principal", t._get("principal", None))
        key, password = t._get("key", None), t._get("password", None)
        if (key is None) == (password is None):
            raise ConfigError(f"{path}.key", "give exactly one of key (64 hexadecimal digits) or password")
        if password is not None and (not isinstance(password, str) or not password):
            raise ConfigError(f"{path}.password", "expected a non-empty string")
        kdcs_table = t._get("kdcs", {})
        if not isinstance(kdcs_table, Mapping):
            raise ConfigError(f"{path}.kdcs", f"expected a table of realm = \"host:port\", got {_show(kdcs_table)}")
        kdcs = []
        for realm, where in kdcs_table.items():
            _realm(f"{path}.kdcs", realm)
            kdcs.append((str(realm), _hostport(f"{path}.kdcs.{realm}", where)))
        home = principal.rpartition("@")[2]
        if home not in dict(kdcs):
            raise ConfigError(f"{path}.kdcs", f"no KDC for the home realm {home}")
        made = cls(principal, None if key is None else _hexkey(f"{path}.key", key), password,
                   t.get_int("kvno", 1, 0, 255), tuple(kdcs), t.get_bool("precache", True))
        t.done()
        return made


#: The Kerberos mechanisms ([router.security] mechanism, [mn] mechanism).
MECHANISMS = ("lwkerb", "gssapi")


@dataclass(frozen=True, slots=True)
class MnGssapiConfig:
    """``[mn.gssapi]``: the MN's standard Kerberos credentials (``[mn] mechanism = "gssapi"``): a credential
    cache (``kinit``; default: MIT's, ``KRB5CCNAME``) and/or a client keytab (an unattended MN: MIT gets the
    initial ticket from it), and the routers whose service tickets to precache: per adjacent realm (an RA's
    adjacent-realms option names realms; the tickets are for these routers) and from the start (``precache``:
    routers whose RAs name no realm, or whose tickets should be there before any RA)."""

    ccache: str | None = None
    client_keytab: str | None = None
    principal: str | None = None  # the MN's own name (default: the cache's)
    adjacent: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (realm, (router principal, ...))
    precache: tuple[str, ...] = ()  # router principals fetched in the background when the daemon starts
    precache_retry_s: int = 10  # a router whose ticket could not be fetched is asked for again after this

    @classmethod
    def parse(cls, table: Any, path: str) -> "MnGssapiConfig":
        t = _Table(table, path)
        files = {name: (t.get_str(name) if name in table else None) for name in ("ccache", "client_keytab")}
        principal = _principal(f"{path}.principal", t._get("principal", None)) if "principal" in table else None
        adjacent_table = t._get("adjacent", {})
        if not isinstance(adjacent_table, Mapping):
            raise ConfigError(f"{path}.adjacent",
                              f"expected a table of realm = [principals], got {_show(adjacent_table)}")
        adjacent = []
        for realm, routers in adjacent_table.items():
            _realm(f"{path}.adjacent", realm)
            if not isinstance(routers, list):
                raise ConfigError(f"{path}.adjacent.{realm}", f"expected a list of principals, got {_show(routers)}")
            adjacent.append((str(realm), tuple(_principal(f"{path}.adjacent.{realm}[{i}]", r)
                                               for i, r in enumerate(routers))))
        precache = tuple(_principal(f"{path}.precache[{i}]", r) for i, r in enumerate(t.get_list("precache")))
        listed = sum(len(routers) for _, routers in adjacent)
        for key, count in (("adjacent", listed), ("precache", listed + len(precache))):
            if count > MAX_PRECACHE_ROUTERS:
                raise ConfigError(f"{path}.{key}", f"{count} routers listed: at most {MAX_PRECACHE_ROUTERS} "
                                  "(adjacent and precache together; each is a KDC exchange in the background)")
        made = cls(files["ccache"], files["client_keytab"], principal, tuple(adjacent), precache,
                   t.get_int("precache_retry_s", 10, 1, 3600))
        t.done()
        return made


@dataclass(frozen=True, slots=True)
class MnConfig:
    """``[mn]``: the mobile-node daemon (``fmipfast mn``): its interface, the access router it attaches to at
    start, its credentials, where its Binding Updates go, and how it changes link when a handover says so."""

    interface: str = ""
    router: str = ""  # the access router's address it attaches to at start (draft §2: the PAR-to-be)
    router_principal: str = ""  # that router's Kerberos principal (the AP-REQ of the initial Attach)
    address: str = ""  # the MN's care-of address on that link, already configured on ``interface``
    ccache: str | None = None  # a credentials file (security.ccache.save_credentials; mode 0600), and/or
    kerberos: MnKerberosConfig | None = None  # tickets from the KDCs (needed: one of the two)
    home_agent: str | None = None  # where Binding Updates go (the Attach carries one); None: no BU
    keep_pcoa: bool = True  # keep the previous CoA until the BU is acknowledged (or pcoa_release_ms)
    pcoa_release_ms: int = 1000  # after the BAck (or the handover, without home_agent) the PCoA goes
    switch_command: tuple[str, ...] = ()  # run at ReadyToSwitch; "{nar}" becomes the NAR's address
    switch_timeout_ms: int = 2000  # keep below the routers' handover lifetime (3000 ms by default)
    renew_before_s: int = 30  # re-attach to the router this long before the session's ticket ends
    renew_retry_s: int = 10  # ... and after a failed renewal, try again this much later
    reattach_s: int = 5  # with no router session (a failed attach), attach again after this, doubling to 300 s
    mechanism: str = "lwkerb"  # lwkerb | gssapi (standard Kerberos: [mn.gssapi])
    gssapi: MnGssapiConfig | None = None
    scheduling: SchedulingConfig = field(default_factory=SchedulingConfig)  # [mn.scheduling], set at start

    @property
    def configured(self) -> bool:
        return bool(self.interface)

    @classmethod
    def parse(cls, table: Mapping[str, Any], prefix: str) -> "MnConfig":
        t = _Table(table, prefix)
        home = t._get("home_agent", None)
        command = t.get_list("switch_command")
        for i, word in enumerate(command):
            if not isinstance(word, str) or not word or "\x00" in word:
                raise ConfigError(f"{prefix}.switch_command[{i}]", f"expected a non-empty string, got {_show(word)}")
        ccache = t.get_str("ccache") if "ccache" in table else None
        krb = MnKerberosConfig.parse(t._get("kerberos", None), f"{prefix}.kerberos") if "kerberos" in table else None
        mechanism = t.get_choice("mechanism", "lwkerb", MECHANISMS)
        gss = MnGssapiConfig.parse(t._get("gssapi", None), f"{prefix}.gssapi") if "gssapi" in table else None
        if mechanism == "gssapi":
            gss = gss or MnGssapiConfig()
            if ccache is not None or krb is not None:
                raise ConfigError(f"{prefix}.ccache", "ccache and [mn.kerberos] are lwkerb's; with mechanism = "
                                                      "\"gssapi\" the credentials are in [mn.gssapi]")
        elif gss is not None:
            raise ConfigError(f"{prefix}.gssapi", "[mn.gssapi] is for mechanism = \"gssapi\"")
        elif ccache is None and krb is None:
            raise ConfigError(f"{prefix}.ccache", "missing: the MN needs a credentials file or an [mn.kerberos] "
                                                  "section to get tickets")
        made = cls(t.get_ifname("interface"), _address(f"{prefix}.router", t._get("router", None)),
                   _principal(f"{prefix}.router_principal", t._get("router_principal", None)),
                   _address(f"{prefix}.address", t._get("address", None)), ccache, krb,
                   None if home is None else _address(f"{prefix}.home_agent", home), t.get_bool("keep_pcoa", True),
                   t.get_int("pcoa_release_ms", 1000, 0, 3_600_000), tuple(command),
                   t.get_int("switch_timeout_ms", 2000, 1, 600_000), t.get_int("renew_before_s", 30, 0, 86_400),
                   t.get_int("renew_retry_s", 10, 1, 3600), t.get_int("reattach_s", 5, 1, 3600), mechanism, gss,
                   SchedulingConfig.parse(t._get("scheduling", {}), f"{prefix}.scheduling"))
        t.done()
        return made


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration; every section has defaults, so an empty file is valid."""

    codepoints: CodepointsConfig = field(default_factory=CodepointsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    router: RouterConfig = field(default_factory=RouterConfig)
    mn: MnConfig = field(default_factory=MnConfig)


_SECTIONS: dict[str, Any] = {"codepoints": CodepointsConfig, "logging": LoggingConfig, "router": RouterConfig,
                             "mn": MnConfig}


def from_mapping(data: Mapping[str, Any], *, source: str | None = None) -> Config:
    """Validate a parsed TOML document (or any mapping of the same shape) into a :class:`Config`."""
    try:
        sections = {}
        for name, table in data.items():
            cls = _SECTIONS.get(name)
            if cls is None:
                raise ConfigError(name, f"unknown section; known sections: {', '.join(_SECTIONS)}")
            if not isinstance(table, Mapping):
                raise ConfigError(name, f"expected a table, got {type(table).__name__}")
            known = {f.name for f in dataclasses.fields(cls)}
            for key in table:
                if key not in known:
                    raise ConfigError(f"{name}.{key}", f"unknown key; known keys: {', '.join(sorted(known))}")
            sections[name] = cls.parse(table, name)
        return Config(**sections)
    except ConfigError as exc:
        raise _one_line(exc, source) from None


def _printable(text: str, limit: int) -> str:
    """``text`` with control characters escaped (a TOML key may hold a newline) and cut to ``limit``."""
    out = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
    return out if len(out) <= limit else out[:limit - 3] + "..."


def _one_line(exc: ConfigError, source: str | None) -> ConfigError:
    """The error as one printable line of bounded length, with ``source`` if it had none."""
    key = None if exc.key is None else _printable(exc.key, 200)
    return ConfigError(key, _printable(exc.problem, 300), source=exc.source or source)


def loads(text: str, *, source: str | None = None) -> Config:
    """Parse TOML text; a TOML syntax error is a ConfigError with its line and column."""
    return from_mapping(parse_toml(text, source=source), source=source)


def load(path: str | os.PathLike[str]) -> Config:
    """Read and validate a TOML configuration file."""
    return from_mapping(read_toml(path), source=os.fspath(path))


#: The defaults, as a commented TOML file (``fmipfast check-config --defaults`` prints it).
DEFAULTS_TOML = """\
# fmipfast configuration (every key optional; these are the defaults)

[codepoints]            # docs/design.md §2: ICMPv6 type (informational, 138-255) and one Code per message
type = 200
handover_redirect = 1
handover_redirect_ack = 2
handover = 3
authenticated_mn = 4
attach = 5
handover_error = 6
forwarding_disable = 7

[logging]
level = "info"          # debug | info | warning | error
format = "text"         # text | json

[router]                # `fmipfast router`: the access-router engine
name = "router"
batch_size = 256                # frames per classify call
ncache_capacity = 4096          # neighbor cache entries; a full table refuses and counts
buffer_slots = 4096             # handover buffer: frames held across all mobile nodes
buffer_slot_size = 2048         # largest frame a slot holds
buffer_per_mn_packets = 64      # per mobile node; the oldest is dropped beyond (RFC 4861 §7.2.2)
buffer_per_mn_bytes = 131072
buffer_lifetime_ms = 3000       # a buffered frame older than this is dropped
buffer_keys = 1024              # handovers buffering at once; an HI beyond is refused "insufficient resources"
tunnel_peers = 256              # NARs the tunnels lead to at once; a tunnel to a NAR beyond is refused
reorder_hold_idle_ms = 10       # after an Attach, direct traffic to the NCoA waits until the tunnel from the
                                # PAR has been idle this long, so it cannot overtake tunnelled packets (0: off)
reorder_hold_max_ms = 200       # ... and never longer than this
resolve_queue_packets = 3       # frames held per unresolved next hop (RFC 4861 §7.2.2)
resolve_retries = 3             # Neighbor Solicitations before giving up (MAX_MULTICAST_SOLICIT)
resolve_interval_ms = 1000      # between them (RETRANS_TIMER)
reachable_time_ms = 30000       # REACHABLE_TIME
icmp_error_rate = 100           # ICMPv6 errors per second (RFC 4443 §2.4(f))
icmp_error_burst = 10
peers = []                      # routers whose IPv6-in-IPv6 packets are decapsulated (docs/design.md §1)
warm_up_handovers = 12          # the NAR's side of a handover rehearsed this often on throwaway state at
#                               # start, so the first MN does not pay for cold code (0: off)

[router.scheduling]             # CPU scheduling of the router's process, set at start (sched(7)); under
#                               # systemd rather CPUSchedulingPolicy=/CPUSchedulingPriority=/Nice= (docs/operations.md)
policy = "inherit"              # inherit (as started) | other | batch | fifo | rr (fifo, rr: realtime, needs
#                               # CAP_SYS_NICE; the engine preempts ordinary processes when a frame wakes it)
priority = 0                    # fifo, rr: 1-99 (default 10); other policies: 0
# nice = 0                      # other, batch: -20..19 (absent: as started)

[router.ring]                   # AF_PACKET ring geometry
mode = "blocks"                 # blocks (TPACKET_V3) | frames (TPACKET_V2: every frame handed over at once)
block_size = 262144             # multiple of 4096
block_count = 16
timeout_ms = 2                  # blocks: a partly filled block is handed over at the retire timer, every
#                               # this many ms: a frame's latency at low load (1 is the least; docs/operations.md)
frame_size = 2048               # frames: slot size, a multiple of 16 dividing block_size; holds the link's
#                               # MTU + 80 (a longer frame is cut to it and dropped as truncated)
tx_frames = 512
fanout_group = 0                # > 0: join this PACKET_FANOUT group (several workers; forwarding only:
#                               # workers do not share tables, so not with [router.security])
control_socket = true           # ND, echo and fmipfast messages on a socket of their own that wakes the
#                               # engine per frame, never waiting for a block to retire (not with fanout)

# [[router.interfaces]]         # one table per interface the engine owns
# name = "eth1"
# role = "access"               # access (Router Advertisements, mobile nodes) | upstream
# addresses = ["2001:db8:1::1/64"]
# mtu = 1500
# ra_min_interval_ms = 3000     # RFC 6275 §7.5 allows 30 ms on mobility links
# ra_max_interval_ms = 10000
# ra_lifetime_s = 1800
# adjacent_realms = ["B.EXAMPLE"]   # the draft §6.1.1 list in RAs
#
# [[router.routes]]
# prefix = "::/0"
# via = "2001:db8:ff::1"
# interface = "eth0"
#
# [router.security]             # the handover protocol (absent: forwarding only)
# principal = "host/nar@B.EXAMPLE"
# kdc = "192.0.2.53:8888"       # its realm's KDC, for Kerberos key cases 2 and 3
# max_sessions = 4096           # authenticated MNs at once (a full table refuses new ones, counted)
# max_handovers = 64            # concurrent handovers towards this router
# ah_sequence_file = "/var/lib/fmipfast/ah-seq.json"  # outbound AH counters kept across restarts (RFC 4302
#                               # §3.3.2: needed for anti-replay with manual keys; without it peers drop a
#                               # restarted router's messages as replays)
# session_file = "/var/lib/fmipfast/sessions.json"   # the MNs' sessions (keys, 0600) across restarts;
#                               # without it a restart makes every attached MN's next handover fail
# mechanism = "lwkerb"          # or "gssapi": standard Kerberos (MIT krb5 through GSS-API, pip install
#                               # 'fmipfast[krb5]'); then principal = "access/nar.b.example@B.EXAMPLE" and:
# keytab = "/etc/fmipfast/nar.keytab"             # gssapi: the standard keytab (kadmin ktadd)
# rcache = "file2:/var/lib/fmipfast/nar.rcache2"  # gssapi: MIT's replay cache (default: MIT's own)
# [[router.security.keys]]      # keytab: AP-REQs for these are verified locally (case 1)
# principal = "host/nar@B.EXAMPLE"
# kvno = 4
# key = "<64 hex digits>"
# [[router.security.peers]]     # manual AH SAs with a peer router (HMAC-SHA-256-128)
# address = "2001:db8:1::1"
# spi_in = 4097
# key_in = "<64 hex digits>"
# spi_out = 4098
# key_out = "<64 hex digits>"
#
# [[router.neighbors]]          # static next hops
# address = "2001:db8:ff::1"
# mac = "02:00:5e:10:00:ff"
# interface = "eth0"

# [mn]                          # `fmipfast mn`: the mobile node (interface ... address required, and
#                               # ccache or [mn.kerberos])
# interface = "wlan0"
# router = "2001:db8:1::1"      # the access router it attaches to at start
# router_principal = "host/par@A.EXAMPLE"
# address = "2001:db8:1::21b:63ff:fe84:45e6"    # its care-of address there, already configured
# ccache = "/var/lib/fmipfast/mn.ccache"         # tickets for the routers (mode 0600)
# home_agent = "2001:db8:ff::10"                 # where Binding Updates go (the Attach carries one)
# keep_pcoa = true              # keep the previous care-of address until the BU is acknowledged
# pcoa_release_ms = 1000        # ... and this long after
# switch_command = ["/usr/local/sbin/roam-to", "{nar}"]  # at ReadyToSwitch; {nar}: the NAR address
# switch_timeout_ms = 2000      # the roam must finish by then (keep below the routers' 3 s handover lifetime:
#                               # a Forwarding Disable after it finds no handover and no session at the PAR)
# renew_before_s = 30           # re-attach (a fresh ticket, a new key) this long before the session's ticket ends
# renew_retry_s = 10            # ... retried this often while the old session lasts
# reattach_s = 5                # no router session left (every attach failed): try again after this, doubling
# mechanism = "lwkerb"          # or "gssapi": standard Kerberos, credentials in [mn.gssapi] (not ccache/[mn.kerberos])
# [mn.gssapi]
# ccache = "FILE:/var/lib/fmipfast/mn.krb5cc"    # kinit's cache (default: KRB5CCNAME), and/or
# client_keytab = "/etc/fmipfast/mn.keytab"      # an unattended MN's keytab (MIT kinits from it)
# adjacent = { "B.EXAMPLE" = ["access/nar.b.example@B.EXAMPLE"] }  # precached when an RA names the realm
# precache = []                 # routers' service principals precached as soon as the daemon runs
# precache_retry_s = 10         # a ticket that could not be fetched is asked for again after this
# [mn.kerberos]                 # tickets from the KDCs, cross-realm TGTs precached from RAs (draft §3)
# principal = "mn1@HOME.EXAMPLE"
# password = "..."              # or key = "<64 hex digits>" (kvno = 1)
# kdcs = { "HOME.EXAMPLE" = "[2001:db8:ff::53]:88", "B.EXAMPLE" = "[2001:db8:2::53]:88" }
# precache = true
# [mn.scheduling]               # the MN daemon's CPU scheduling, set at start: as [router.scheduling] (fifo: its
#                               # carrier and the Redirect are read the moment they come, whatever else runs)
# policy = "inherit"
# priority = 0
"""

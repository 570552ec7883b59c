"""The light-weight Kerberos KDC: a real asyncio UDP service (docs/design.md §4), and the client helper routers
and mobile nodes use to talk to it.

One KDC per realm.  It answers:

* **AS-REQ** (RFC 4120 §3.1) — initial tickets, usually the TGT ``krbtgt/R@R``; pre-authentication with
  PA-ENC-TIMESTAMP is required unless ``require_preauth = false``;
* **TGS-REQ** (§3.3) — service tickets for principals of this realm; for another realm, a cross-realm TGT
  ``krbtgt/NEXT@R`` for the next realm on the configured realm graph (a referral the client follows), with
  the transited realms recorded as authorization TLVs;
* **OPEN-REQ** — the draft's key cases 2 and 3: a router of this realm (authenticated with its own key,
  and listed in ``routers``) asks the KDC to open a ticket sealed under ``access/R@R``; for
  ``access/H@H`` of another realm the KDC forwards the request along the realm graph, authenticated with
  the inter-realm key ``krbtgt/NEXT@R``, and reseals the answer under the requesting router's key.

Limits: a token bucket per source address (``rate``/``burst``), a bounded table of buckets
(``max_sources``; a new source when the table is full evicts only a refilled, idle bucket, else it is
refused), a bounded replay cache, a bounded reply cache (a retransmitted request gets the same reply,
RFC 4120 §3.3.3.1).  Every refusal is counted in :attr:`KdcServer.counters`.

Run it as ``python -m fmipfast.security.kdc --config FILE.toml`` (prints ``READY <host> <port>`` once
bound) or in-process with :func:`start_kdc`.  The TOML keys are documented in docs/security.md.

Ownership/threading: a :class:`Kdc` belongs to one asyncio loop; its tables are mutated without locks.
Imports only ``fmipfast.errors``, the standard library, ``cryptography`` and its sibling
:mod:`.lwkerb` (docs/conventions.md §9).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fmipfast.errors import ConfigError
from fmipfast.histogram import Histogram
from fmipfast.security.lwkerb import (
    AUTHZ_TRANSITED,
    DEFAULT_SKEW,
    ApReq,
    AsReq,
    Authenticator,
    AuthenticatorIntegrity,
    ClientMismatch,
    ClockSkew,
    Credentials,
    EncKdcRepPart,
    EncTicketPart,
    ErrorCode,
    KdcRep,
    KdcUnreachable,
    Key,
    Keytab,
    KrbError,
    LkbError,
    LkbMalformed,
    MsgType,
    NoKey,
    OpenRep,
    OpenReq,
    Principal,
    ReplayCache,
    ReplayCacheFull,
    ReplayDetected,
    TgsReq,
    Ticket,
    TicketExpired,
    TicketFlag,
    TicketIntegrity,
    TicketNotYetValid,
    UnknownRealm,
    Usage,
    WrongKeyVersion,
    access_principal,
    ap_req_binding_for_request,
    build_as_req,
    build_tgs_req,
    error_from_krb,
    krbtgt,
    read_kdc_rep,
    seal,
    unseal,
)
from fmipfast.tomlfile import read_toml, show

__all__ = [
    "KDC_COUNTERS",
    "Kdc",
    "KdcClient",
    "KdcConfig",
    "KdcServer",
    "TokenBucketTable",
    "config_from_mapping",
    "error_text",
    "get_service_ticket",
    "load_config",
    "main",
    "read_toml",
    "serve",
    "start_kdc",
]

_US = 1_000_000

#: Exception -> KRB-ERROR code the KDC answers with (one table, docs/conventions.md §8).
_EXC_CODE: dict[type, ErrorCode] = {
    LkbMalformed: ErrorCode.MALFORMED,
    WrongKeyVersion: ErrorCode.BADKEYVER,
    TicketIntegrity: ErrorCode.BAD_INTEGRITY,
    AuthenticatorIntegrity: ErrorCode.BAD_INTEGRITY,
    ClientMismatch: ErrorCode.BADMATCH,
    ClockSkew: ErrorCode.SKEW,
    TicketExpired: ErrorCode.TKT_EXPIRED,
    TicketNotYetValid: ErrorCode.TKT_NYV,
    ReplayDetected: ErrorCode.REPEAT,
    ReplayCacheFull: ErrorCode.REPEAT,
    UnknownRealm: ErrorCode.UNKNOWN_REALM,
    NoKey: ErrorCode.S_PRINCIPAL_UNKNOWN,
    KdcUnreachable: ErrorCode.SVC_UNAVAILABLE,
}


class _Refuse(LkbError):
    """Internal: answer with this KRB-ERROR code."""

    def __init__(self, code: ErrorCode, text: str) -> None:
        super().__init__(text)
        self.error_code = code
        self.code = code.name.lower()


def _code_for(exc: LkbError) -> ErrorCode:
    if isinstance(exc, _Refuse):
        return exc.error_code
    if hasattr(exc, "error_code") and exc.error_code:  # relayed from a peer KDC
        try:
            return ErrorCode(exc.error_code)
        except ValueError:
            return ErrorCode.GENERIC
    for cls in type(exc).__mro__:
        if cls in _EXC_CODE:
            return _EXC_CODE[cls]
    return ErrorCode.GENERIC


#: The KRB-ERROR text field: one length octet.
ERROR_TEXT_OCTETS = 255


def error_text(text: str, limit: int = ERROR_TEXT_OCTETS) -> str:
    """``text`` cut to at most ``limit`` octets of UTF-8 on a character boundary (marked with "..."), so the
    KRB-ERROR carrying it is well formed: a cut inside a multi-byte character would make the client drop the
    whole PDU as malformed and report the KDC unreachable instead of its error."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit:
        return raw.decode("utf-8")
    return raw[:limit - 3].decode("utf-8", "ignore") + "..."


def _krb_error(data: bytes) -> KrbError:
    """A KRB-ERROR as sent, its text read leniently (invalid UTF-8 replaced, a length past the end cut): a
    peer's error is shown rather than taken for a malformed reply.  Header or fixed fields missing:
    :class:`LkbMalformed`."""
    try:
        return KrbError.decode(data)
    except LkbMalformed:
        if len(data) < 17 or data[0] != MsgType.ERROR:
            raise
        code, stime, nonce = int.from_bytes(data[2:4], "big"), int.from_bytes(data[4:8], "big"), \
            int.from_bytes(data[8:16], "big")
        return KrbError(code, stime, nonce, data[17:17 + data[16]].decode("utf-8", "replace"))


# ============================================================================================ config


@dataclass
class KdcConfig:
    """A KDC's configuration (docs/security.md "KDC configuration" has the TOML form).

    ``keytab`` holds every key the KDC knows: its clients and routers, ``krbtgt/R@R``, ``access/R@R``,
    and the inter-realm keys ``krbtgt/X@R`` (issued here, used by X) and ``krbtgt/R@X`` (issued by X,
    accepted here).  ``routes`` maps a realm to the next realm towards it (a direct neighbour maps to
    itself implicitly); ``peers`` maps a neighbour realm to its KDC's ``(host, port)``.
    """

    realm: str
    keytab: Keytab
    routers: frozenset[str] = frozenset()  # principal names of this realm allowed to send OPEN-REQ
    routes: dict[str, str] = field(default_factory=dict)
    peers: dict[str, tuple[str, int]] = field(default_factory=dict)
    listen: tuple[str, int] = ("127.0.0.1", 0)
    ticket_lifetime: int = 36000
    skew: float = DEFAULT_SKEW
    require_preauth: bool = True
    rate: float = 200.0  # requests per second per source
    burst: int = 50
    max_sources: int = 4096
    replay_capacity: int = 65536
    reply_cache: int = 1024
    forward_timeout: float = 1.0
    forward_retries: int = 1

    def next_hop(self, realm: str) -> str:
        """The neighbour realm towards ``realm``; :class:`UnknownRealm` if the graph has no way."""
        hop = self.routes.get(realm, realm)
        if hop == self.realm or krbtgt(hop, self.realm) not in self.keytab:
            raise UnknownRealm(f"realm {realm}: no route from {self.realm}")
        return hop


_show = show


def _hostname_ok(host: str) -> bool:
    """An IP address (an IPv6 one may carry a zone id) or a DNS name (resolved when the socket is bound)."""
    import ipaddress
    import re

    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    return (0 < len(host) <= 253 and host.isascii()
            and all(re.fullmatch(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?", label)
                    for label in host.rstrip(".").split(".")))


def _addr(s: object, key: str, *, lowest_port: int = 0, source: str | None = None) -> tuple[str, int]:
    """``HOST:PORT`` (an IPv6 host in brackets) -> (host, port), the port within ``lowest_port``..65535."""
    if not isinstance(s, str):
        raise ConfigError(key, f"must be a string HOST:PORT, got {type(s).__name__}", source=source)
    host, sep, port = s.rpartition(":")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if (not sep or not port.isascii() or not port.isdigit() or not lowest_port <= int(port) <= 65535
            or not _hostname_ok(bare) or (host.startswith("[") and ":" not in bare)):
        raise ConfigError(key, f"{_show(s)} is not HOST:PORT (an IPv6 host in brackets, port {lowest_port}..65535)",
                          source=source)
    return bare, int(port)


_TOP_KEYS = {"realm", "listen", "routers", "ticket_lifetime", "skew", "require_preauth", "replay_capacity",
             "reply_cache", "forward_timeout", "forward_retries", "rate", "keys", "peers", "routes"}
_RATE_KEYS = {"rate", "burst", "max_sources"}
_KEY_KEYS = ("principal", "kvno", "key", "password")

#: (type, default, lowest, highest) of every scalar key; ``[rate]`` keys under "rate.".  A float key takes an
#: integer too and refuses nan and inf; every value is range-checked.
_SCALARS: dict[str, tuple[type, object, float, float]] = {
    "ticket_lifetime": (int, 36000, 1, 10 * 365 * 86400),  # ticket times are 32-bit seconds
    "skew": (float, DEFAULT_SKEW, 0, 86400),
    "require_preauth": (bool, True, 0, 1),
    "replay_capacity": (int, 65536, 1, 1 << 24),
    "reply_cache": (int, 1024, 0, 1 << 20),
    "forward_timeout": (float, 1.0, 0.001, 60),
    "forward_retries": (int, 1, 0, 10),
    "rate.rate": (float, 200.0, 0, 1e9),
    "rate.burst": (int, 50, 1, 1 << 30),
    "rate.max_sources": (int, 4096, 1, 1 << 24),
}


def _realm_ok(realm: object) -> bool:
    """A realm whose ``krbtgt/REALM`` and ``access/REALM`` principals can be encoded."""
    if not isinstance(realm, str) or not realm or "@" in realm or "\x00" in realm:
        return False
    try:
        krbtgt(realm)
        access_principal(realm)
    except ValueError:
        return False
    return True


def config_from_mapping(m: object, source: str | None = None) -> KdcConfig:
    """Build a :class:`KdcConfig` from parsed TOML; :class:`ConfigError` names the key and the problem, in one
    printable line (a TOML key may hold any character)."""
    try:
        return _config_from_mapping(m, source)
    except ConfigError as exc:
        def printable(text: str, limit: int) -> str:
            out = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
            return out if len(out) <= limit else out[:limit - 3] + "..."

        raise ConfigError(None if exc.key is None else printable(exc.key, 200), printable(exc.problem, 300),
                          source=exc.source or source) from None


def _config_from_mapping(m: object, source: str | None) -> KdcConfig:

    def err(key: str | None, problem: str) -> ConfigError:
        return ConfigError(key, problem, source=source)

    def get(d: dict, k: str, typ: type, where: str = "", default: Any = None, *, required: bool = False,
            lo: float | None = None, hi: float | None = None) -> Any:
        """The one typed, bounded read of the KDC file: a float is finite, every number within lo..hi."""
        if k not in d:
            if required:
                raise err(f"{where}{k}", "missing")
            return default
        v: Any = d[k]
        key = f"{where}{k}"
        if typ is float:
            finite = isinstance(v, int) or (isinstance(v, float) and math.isfinite(v))
            if isinstance(v, bool) or not finite:
                raise err(key, f"must be a finite number in {lo:g}..{hi:g}, got {type(v).__name__} {_show(v)}")
            if not lo <= v <= hi:  # type: ignore[operator]
                raise err(key, f"must be a finite number in {lo:g}..{hi:g}, got {_show(v)}")
            return float(v)
        if not isinstance(v, typ) or (typ is not bool and isinstance(v, bool)):
            raise err(key, f"must be {typ.__name__}, got {type(v).__name__}")
        v = d[k]  # (typed Any again for the checks below)
        if typ is int and lo is not None and hi is not None and not lo <= v <= hi:
            raise err(key, f"must be an integer in {lo:g}..{hi:g}, got {_show(v)}")
        if typ is str and "\x00" in v:
            raise err(key, "must not contain NUL")
        return v

    def scalar(d: dict, name: str, where: str = "") -> Any:
        typ, default, lo, hi = _SCALARS[where + name]
        return get(d, name, typ, where, default, lo=lo, hi=hi)

    if not isinstance(m, dict):
        raise err(None, "not a table")
    for k in m:
        if k not in _TOP_KEYS:
            raise err(k, "unknown key")
    realm = get(m, "realm", str, required=True)
    if not _realm_ok(realm):
        raise err("realm", "must be a non-empty realm name without '@', at most 248 octets of UTF-8 "
                           f"(krbtgt/REALM fits 255), got {_show(realm)}")
    scalars = {k: scalar(m, k) for k in _SCALARS if "." not in k}
    scalars["listen"] = _addr(get(m, "listen", str, default="127.0.0.1:0"), "listen", source=source)
    rate = get(m, "rate", dict, default={})
    for k in rate:
        if k not in _RATE_KEYS:
            raise err(f"rate.{k}", "unknown key")
    scalars.update({k: scalar(rate, k, "rate.") for k in _RATE_KEYS})
    kt = Keytab()
    for i, ent in enumerate(get(m, "keys", list, default=[])):
        w = f"keys[{i}]."
        if not isinstance(ent, dict):
            raise err(f"keys[{i}]", "must be a table")
        for k in ent:
            if k not in _KEY_KEYS:
                raise err(w + k, "unknown key")
        try:
            p = Principal.parse(get(ent, "principal", str, w, required=True))
        except ValueError as exc:
            raise err(w + "principal", str(exc)) from None
        kvno = get(ent, "kvno", int, w, 1, lo=0, hi=255)
        if "key" in ent and "password" in ent:
            raise err(w + "key", "give one of key (hex) or password, not both")
        if "key" in ent:
            try:
                raw = bytes.fromhex(get(ent, "key", str, w))
                kt.add(p, Key(kvno, raw))
            except ValueError:
                raise err(w + "key", "must be 64 hexadecimal digits (a 32-octet key)") from None
        elif "password" in ent:
            password = get(ent, "password", str, w)
            if not password:
                raise err(w + "password", "must be a non-empty string")
            kt.add(p, Key.from_password(password, p, kvno))
        else:
            raise err(w + "key", "one of key (hex) or password is required")
    for req in (krbtgt(realm), access_principal(realm)):
        if req not in kt:
            raise err("keys", f"the KDC needs a key for {req}")
    peers = {}
    for r, a in get(m, "peers", dict, default={}).items():
        if not _realm_ok(r) or r == realm:
            raise err("peers", f"{_show(r)} is not a neighbour realm name")
        peers[r] = _addr(a, f"peers.{r}", lowest_port=1, source=source)
    routes = get(m, "routes", dict, default={})
    for r, hop in routes.items():
        if not _realm_ok(r):
            raise err("routes", f"{_show(r)} is not a realm name")
        if not _realm_ok(hop):
            raise err(f"routes.{r}", "must be a realm name")
    routers = get(m, "routers", list, default=[])
    for i, name in enumerate(routers):
        try:
            ok = isinstance(name, str) and "@" not in name and Principal(name, realm) is not None
        except ValueError:
            ok = False
        if not ok:
            raise err(f"routers[{i}]", f"must be a principal name of this realm (1-255 octets, no '@'), "
                                       f"got {_show(name)}")
    return KdcConfig(realm=realm, keytab=kt, routers=frozenset(routers), routes=dict(routes), peers=peers,
                     **scalars)  # type: ignore[arg-type]


#: The largest KDC file read (it is a few kilobytes).


def load_config(path: str) -> KdcConfig:
    return config_from_mapping(read_toml(path), source=path)


# ============================================================================================ rate limiting


class TokenBucketTable:
    """Per-source token buckets, at most ``max_sources`` of them (LRU order).  When the table is full a new
    source may take the slot of the least recently seen source only if that bucket has refilled (it carries
    no state worth keeping); otherwise the new source is refused."""

    def __init__(self, rate: float, burst: int, max_sources: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self.max_sources, self.clock = rate, float(burst), max_sources, clock
        self._b: OrderedDict[str, tuple[float, float]] = OrderedDict()  # src -> (tokens, last)

    def __len__(self) -> int:
        return len(self._b)

    def allow(self, src: str) -> str | None:
        """None if allowed, else the counter name of the refusal (``rate_limited``/``sources_full``)."""
        now = self.clock()
        ent = self._b.get(src)
        if ent is None:
            if len(self._b) >= self.max_sources:
                old_src, (tok, last) = next(iter(self._b.items()))
                if tok + max(0.0, now - last) * self.rate < self.burst:
                    return "sources_full"
                del self._b[old_src]
            tokens = self.burst
        else:
            # a clock stepped back (the KDC's wall clock) refills nothing, and takes nothing away either
            tokens = min(self.burst, ent[0] + max(0.0, now - ent[1]) * self.rate)
            self._b.move_to_end(src)
        if tokens < 1.0:
            self._b[src] = (tokens, now)
            return "rate_limited"
        self._b[src] = (tokens - 1.0, now)
        return None


# ============================================================================================ the KDC


KDC_COUNTERS = ("as_ok", "tgs_ok", "tgs_referral", "open_ok", "open_forwarded", "errors", "malformed",
                "rate_limited", "sources_full", "reply_cache_hits", "dropped")


#: The request types timed apart (``fmipfast_kdc_request_duration_seconds{type=...}``); anything else is "other".
REQUEST_TYPES = {MsgType.AS_REQ: "as_req", MsgType.TGS_REQ: "tgs_req", MsgType.OPEN_REQ: "open_req", -1: "other"}


class Kdc:
    """The protocol logic of one realm's KDC, without sockets: ``await handle(datagram, source)`` returns
    the reply datagram (or None to stay silent)."""

    def __init__(self, cfg: KdcConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.clock = clock
        self.replay = ReplayCache(cfg.replay_capacity, cfg.skew)
        self.buckets = TokenBucketTable(cfg.rate, cfg.burst, cfg.max_sources, clock)
        self._replies: OrderedDict[bytes, bytes] = OrderedDict()
        self.counters: dict[str, int] = dict.fromkeys(KDC_COUNTERS, 0)
        # how long each request took, arrival to reply (monotonic: the KDC's ``clock`` is wall time for tickets)
        self.latency: dict[str, Histogram] = {t: Histogram() for t in REQUEST_TYPES.values()}
        self._peer_clients: dict[str, KdcClient] = {}

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    # -- entry point
    async def handle(self, data: bytes, source: str = "local") -> bytes | None:
        refused = self.buckets.allow(source)
        if refused is not None:
            self._count(refused)
            return None
        started = time.monotonic()
        try:
            return await self._handle(data)
        finally:
            kind = REQUEST_TYPES.get(data[0] if data else -1, "other")
            self.latency[kind].observe(max(0.0, time.monotonic() - started))

    async def _handle(self, data: bytes) -> bytes | None:
        cache_key = bytes(data)  # the request itself is the reply-cache key (bounded: reply_cache entries)
        cached = self._replies.get(cache_key)
        if cached is not None:
            self._count("reply_cache_hits")
            return cached
        nonce = 0
        try:
            if not data:
                raise LkbMalformed("empty datagram")
            t = data[0]
            if t == MsgType.AS_REQ:
                req = AsReq.decode(data)
                nonce = req.nonce
                reply = self._as(req)
            elif t == MsgType.TGS_REQ:
                treq = TgsReq.decode(data)
                nonce = treq.nonce
                reply = self._tgs(treq)
            elif t == MsgType.OPEN_REQ:
                oreq = OpenReq.decode(data)
                nonce = oreq.nonce
                reply = await self._open(oreq)
            else:
                raise LkbMalformed(f"message type {t} is not a KDC request")
        except LkbError as exc:
            self._count("malformed" if isinstance(exc, LkbMalformed) else "errors")
            self._count("err_" + _code_for(exc).name.lower())
            reply = KrbError(_code_for(exc), int(self.clock()), nonce, error_text(str(exc))).encode()
        except Exception:  # a fault of ours, not a refusal: no answer, counted, and the request never raises
            self._count("dropped")
            return None
        self._replies[cache_key] = reply
        if len(self._replies) > self.cfg.reply_cache:
            self._replies.popitem(last=False)
        return reply

    # -- helpers
    def _now(self) -> float:
        return self.clock()

    def _times(self, till: int, cap: int | None = None) -> tuple[int, int, int]:
        now = int(self._now())
        end = min(till, now + self.cfg.ticket_lifetime)
        if cap is not None:
            end = min(end, cap)
        if end <= now:
            raise _Refuse(ErrorCode.POLICY, "requested lifetime ends in the past")
        return now, now, end

    def _issue(self, client: Principal, server: Principal, flags: int, authtime: int, start: int, end: int,
               transited: tuple[str, ...]) -> tuple[Ticket, bytes]:
        key = self.cfg.keytab.get(server)
        skey = os.urandom(32)
        authz = tuple((AUTHZ_TRANSITED, r.encode("utf-8")) for r in transited)
        part = EncTicketPart(flags, authtime, start, end, skey, client, authz)
        return Ticket.issue(server, key, part), skey

    # -- AS (RFC 4120 §3.1)
    def _as(self, req: AsReq) -> bytes:
        kt = self.cfg.keytab
        if req.client.realm != self.cfg.realm or req.client not in kt:
            raise _Refuse(ErrorCode.C_PRINCIPAL_UNKNOWN, f"unknown client {req.client}")
        if req.server.realm != self.cfg.realm or req.server not in kt:
            raise _Refuse(ErrorCode.S_PRINCIPAL_UNKNOWN, f"unknown server {req.server}")
        flags = TicketFlag.INITIAL
        if req.pa_enc_timestamp is not None:
            ckey = kt.get(req.client, req.pa_kvno)
            try:
                raw = unseal(ckey, Usage.PA_ENC_TIMESTAMP, req.client.encode(), req.pa_enc_timestamp,
                             AuthenticatorIntegrity, "PA-ENC-TIMESTAMP")
            except AuthenticatorIntegrity:
                raise _Refuse(ErrorCode.PREAUTH_FAILED, "pre-authentication failed") from None
            if len(raw) != 8 or abs(int(self._now() * _US) - int.from_bytes(raw, "big")) > self.cfg.skew * _US:
                raise _Refuse(ErrorCode.PREAUTH_FAILED, "pre-authentication timestamp outside the skew window")
            flags |= TicketFlag.PRE_AUTHENT
        elif self.cfg.require_preauth:
            raise _Refuse(ErrorCode.PREAUTH_REQUIRED, "pre-authentication required")
        else:
            ckey = kt.get(req.client)
        authtime, start, end = self._times(req.till)
        ticket, skey = self._issue(req.client, req.server, flags, authtime, start, end, ())
        part = EncKdcRepPart(skey, req.nonce, int(flags), authtime, start, end, req.server)
        enc = seal(ckey, Usage.AS_REP, req.client.encode(), part.encode())
        self._count("as_ok")
        return KdcRep(MsgType.AS_REP, req.client, ticket, enc, ckey.kvno).encode()

    # -- TGS (RFC 4120 §3.3)
    def _check_ap(self, ap: ApReq, binding: bytes, usage: Usage) -> tuple[EncTicketPart, Authenticator, Key]:
        key = self.cfg.keytab.get(ap.ticket.server, ap.ticket.kvno)
        part = ap.ticket.open(key)
        skey = Key(0, part.session_key)
        auth = Authenticator.decode(unseal(skey, usage, b"", ap.authenticator, AuthenticatorIntegrity,
                                           "authenticator"))
        if auth.client != part.client:
            raise ClientMismatch("authenticator and ticket name different clients")
        if auth.binding != binding:
            raise _Refuse(ErrorCode.MODIFIED, "authenticator is not bound to this request body")
        now = self._now()
        now_us = int(round(now * _US))
        if abs(now_us - auth.ctime_us) > self.cfg.skew * _US:
            raise ClockSkew("authenticator outside the skew window")
        if part.starttime > now + self.cfg.skew:
            raise TicketNotYetValid("TGT not yet valid")
        if now > part.endtime + self.cfg.skew:
            raise TicketExpired("TGT expired")
        self.replay.check_and_add((ap.ticket.server, auth.client, auth.ctime_us, auth.nonce), auth.ctime_us, now_us)
        return part, auth, skey

    def _tgs(self, req: TgsReq) -> bytes:
        realm = self.cfg.realm
        tsrv = req.ap_req.ticket.server
        if tsrv.name != f"krbtgt/{realm}":
            raise _Refuse(ErrorCode.POLICY, f"{tsrv} is not a TGT for {realm}")
        part, _auth, skey = self._check_ap(req.ap_req, ap_req_binding_for_request(req.body()),
                                           Usage.TGS_AUTHENTICATOR)
        transited = part.transited
        if tsrv.realm != realm and tsrv.realm != part.client.realm:
            transited += (tsrv.realm,)  # a cross-realm TGT issued by an intermediate realm
        if req.server.realm != realm:
            hop = self.cfg.next_hop(req.server.realm)
            server, outcome = krbtgt(hop, realm), "tgs_referral"
        else:
            server, outcome = req.server, "tgs_ok"
            if server not in self.cfg.keytab:
                raise _Refuse(ErrorCode.S_PRINCIPAL_UNKNOWN, f"unknown server {server}")
        _, start, end = self._times(req.till, part.endtime)
        ticket, new_key = self._issue(part.client, server, part.flags & ~TicketFlag.INITIAL, part.authtime,
                                      start, end, transited)
        rep = EncKdcRepPart(new_key, req.nonce, part.flags & ~TicketFlag.INITIAL, part.authtime, start, end, server)
        enc = seal(skey, Usage.TGS_REP, part.client.encode(), rep.encode())
        reply = KdcRep(MsgType.TGS_REP, part.client, ticket, enc, 0).encode()
        self._count(outcome)  # only a ticket issued counts: a refusal above is counted under its error
        return reply

    # -- OPEN (cases 2 and 3)
    async def _open(self, req: OpenReq) -> bytes:
        realm = self.cfg.realm
        p = req.requester
        is_peer = p.realm != realm and p.name == f"krbtgt/{realm}"
        if not is_peer and not (p.realm == realm and p.name in self.cfg.routers):
            raise _Refuse(ErrorCode.POLICY, f"{p} may not open tickets here")
        rkey = self.cfg.keytab.get(p, req.kvno)
        try:
            ctime = req.ctime_us(rkey)
        except LkbError:
            raise _Refuse(ErrorCode.MODIFIED, "OPEN-REQ does not verify under the requester's key") from None
        if abs(int(round(self._now() * _US)) - ctime) > self.cfg.skew * _US:
            raise ClockSkew("OPEN-REQ outside the skew window")
        tsrv = req.ticket.server
        if tsrv == access_principal(realm):
            part = req.ticket.open(self.cfg.keytab.get(tsrv, req.ticket.kvno))
            outcome = "open_ok"
        elif tsrv == access_principal(tsrv.realm):
            hop = self.cfg.next_hop(tsrv.realm)
            part = await self._forward(hop, req.ticket)
            outcome = "open_forwarded"
        else:
            raise _Refuse(ErrorCode.NOKEY, f"{tsrv} is not an access ticket this KDC can open")
        reply = OpenRep.build(rkey, req.nonce, part).encode()
        self._count(outcome)
        return reply

    async def _forward(self, hop: str, ticket: Ticket) -> EncTicketPart:
        addr = self.cfg.peers.get(hop)
        if addr is None:
            raise UnknownRealm(f"no KDC address for neighbour realm {hop}")
        cli = self._peer_clients.get(hop)
        if cli is None:
            me = krbtgt(hop, self.cfg.realm)
            cli = KdcClient(addr, principal=me, key=self.cfg.keytab.get(me), clock=self.clock,
                            timeout=self.cfg.forward_timeout, retries=self.cfg.forward_retries)
            self._peer_clients[hop] = cli
        return await cli.open_ticket(ticket)


# ============================================================================================ UDP server


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, kdc: Kdc) -> None:
        self.kdc = kdc
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task] = set()

    # A datagram endpoint is handed a DatagramTransport; typeshed's DatagramProtocol narrows the same way.
    def connection_made(self, transport: asyncio.DatagramTransport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        t = asyncio.ensure_future(self._serve(data, addr))
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def _serve(self, data: bytes, addr: tuple[Any, ...]) -> None:
        try:
            reply = await self.kdc.handle(data, addr[0])
        except Exception:  # never let one datagram kill the server; count it
            self.kdc._count("dropped")
            return
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


class KdcServer:
    """A running in-process KDC: ``.address`` (host, port), ``.kdc`` (counters), ``.close()``."""

    def __init__(self, kdc: Kdc, transport: asyncio.DatagramTransport, proto: _Proto) -> None:
        self.kdc = kdc
        self._transport = transport
        self._proto = proto
        self.address: tuple[str, int] = transport.get_extra_info("sockname")[:2]

    @property
    def counters(self) -> dict[str, int]:
        return self.kdc.counters

    def close(self) -> None:
        for t in list(self._proto.tasks):
            t.cancel()
        self._transport.close()


async def start_kdc(cfg: KdcConfig, *, clock: Callable[[], float] = time.time,
                    host: str | None = None, port: int | None = None) -> KdcServer:
    """Bind the KDC's UDP socket on the running loop and serve; returns a :class:`KdcServer`."""
    kdc = Kdc(cfg, clock=clock)
    loop = asyncio.get_running_loop()
    h, p = cfg.listen
    transport, proto = await loop.create_datagram_endpoint(lambda: _Proto(kdc),
                                                           local_addr=(host or h, p if port is None else port))
    return KdcServer(kdc, transport, proto)


# ============================================================================================ client


class _ClientProto(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.queue.put_nowait(data)


def _reply_nonce(data: bytes) -> int | None:
    """The nonce a reply echoes in clear (KRB-ERROR, OPEN-REP), or None for AS/TGS-REP (nonce sealed)."""
    try:
        if data[:1] == bytes((MsgType.ERROR,)):
            return _krb_error(data).nonce
        if data[:1] == bytes((MsgType.OPEN_REP,)):
            return OpenRep.decode(data).nonce
    except LkbMalformed:
        return -1
    return None


def _raise_krb_error(reply: bytes) -> bytes:
    """``reply``, unless it is a KRB-ERROR: then the mapped :class:`LkbError` with the KDC's code and text."""
    if reply[:1] == bytes((MsgType.ERROR,)):
        raise error_from_krb(_krb_error(reply))
    return reply


class KdcClient:
    """Talks to one KDC over UDP with a per-attempt ``timeout`` and ``retries`` retransmissions of the same
    datagram (the KDC's reply cache answers a retransmission with the same reply).

    With ``principal`` and ``key`` (a router's, or a KDC's inter-realm key) it is also the
    :class:`~fmipfast.security.lwkerb.TicketOpener` an :class:`~fmipfast.security.lwkerb.ApVerifier` uses
    for cases 2 and 3.
    """

    def __init__(self, address: tuple[str, int], *, principal: Principal | None = None, key: Key | None = None,
                 clock: Callable[[], float] = time.time, timeout: float = 1.0, retries: int = 2) -> None:
        self.address = (address[0], int(address[1]))
        self.principal = principal
        self.key = key
        self.clock = clock
        self.timeout = timeout
        self.retries = retries
        self.counters: dict[str, int] = {"requests": 0, "retransmits": 0, "timeouts": 0, "stray": 0}
        self.latency = Histogram()  # seconds from the first send to the reply, of the requests answered

    def __repr__(self) -> str:
        return f"KdcClient({self.address}, principal={self.principal})"

    async def request(self, data: bytes, nonce: int) -> bytes:
        """Send ``data``; return the first reply that is not a stray (a clear nonce other than ``nonce``)."""
        loop = asyncio.get_running_loop()
        try:
            transport, proto = await loop.create_datagram_endpoint(_ClientProto, remote_addr=self.address)
        except OSError as exc:
            self.counters["timeouts"] += 1
            raise KdcUnreachable(f"KDC {self.address[0]}:{self.address[1]}: {exc.strerror or exc}") from None
        self.counters["requests"] += 1
        started = loop.time()
        try:
            for attempt in range(self.retries + 1):
                if attempt:
                    self.counters["retransmits"] += 1
                transport.sendto(data)
                deadline = loop.time() + self.timeout
                while True:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        reply = await asyncio.wait_for(proto.queue.get(), left)
                    except asyncio.TimeoutError:
                        break
                    n = _reply_nonce(reply)
                    if n is None or n == nonce or (n == 0 and reply[:1] == bytes((MsgType.ERROR,))):
                        self.latency.observe(max(0.0, loop.time() - started))
                        return reply
                    self.counters["stray"] += 1
            self.counters["timeouts"] += 1
            raise KdcUnreachable(f"no reply from KDC {self.address[0]}:{self.address[1]} after "
                                 f"{self.retries + 1} attempts")
        finally:
            transport.close()

    # -- exchanges
    async def as_exchange(self, client: Principal, client_key: Key, server: Principal | None = None,
                          *, lifetime: int = 36000) -> Credentials:
        req = build_as_req(client, server or krbtgt(client.realm), client_key, now=self.clock(), lifetime=lifetime)
        return read_kdc_rep(_raise_krb_error(await self.request(req.encode(), req.nonce)), client_key, req.nonce)

    async def tgs_exchange(self, tgt: Credentials, server: Principal, *, lifetime: int = 36000) -> Credentials:
        req = build_tgs_req(tgt, server, now=self.clock(), lifetime=lifetime)
        return read_kdc_rep(_raise_krb_error(await self.request(req.encode(), req.nonce)), tgt.session_key,
                            req.nonce)

    async def open_ticket(self, ticket: Ticket) -> EncTicketPart:
        if self.principal is None or self.key is None:
            raise NoKey("this KDC client has no principal/key to authenticate OPEN-REQ")
        nonce = int.from_bytes(os.urandom(8), "big") or 1
        req = OpenReq.build(self.principal, self.key, ticket, nonce, self.clock())
        reply = await self.request(req.encode(), nonce)
        rep = OpenRep.decode(_raise_krb_error(reply))
        if rep.nonce != nonce:
            raise LkbMalformed("OPEN-REP nonce does not match")
        return rep.open(self.key)


async def get_service_ticket(tgt: Credentials, server: Principal, kdcs: dict[str, tuple[str, int]], *,
                             clock: Callable[[], float] = time.time, timeout: float = 1.0, retries: int = 2,
                             max_hops: int = 8) -> Credentials:
    """Follow cross-realm referrals to ``server`` (RFC 4120 §3.3.1): a TGT ``krbtgt/R@X`` is presented to
    R's KDC (``kdcs`` maps a realm to its KDC address); an answer for ``krbtgt/NEXT@R`` is a referral
    taken to NEXT's KDC, until the service ticket comes back.  Raises :class:`UnknownRealm` for a realm
    without an address, or after ``max_hops`` referrals."""
    creds = tgt
    for _ in range(max_hops):
        if not creds.server.name.startswith("krbtgt/"):
            raise LkbMalformed(f"{creds.server} is not a ticket-granting ticket")
        realm = creds.server.name.removeprefix("krbtgt/")
        addr = kdcs.get(realm)
        if addr is None:
            raise UnknownRealm(f"no KDC address for realm {realm}")
        got = await KdcClient(addr, clock=clock, timeout=timeout, retries=retries).tgs_exchange(creds, server)
        if got.server == server:
            return got
        if not got.server.name.startswith("krbtgt/"):
            raise LkbMalformed(f"KDC answered with a ticket for {got.server}, asked for {server}")
        creds = got
    raise UnknownRealm(f"more than {max_hops} referrals towards {server.realm}")


# ============================================================================================ process entry


def main(argv: list[str] | None = None) -> int:
    """``python -m fmipfast.security.kdc --config FILE.toml``: serve until SIGTERM/SIGINT."""
    ap = argparse.ArgumentParser(prog="fmipfast-kdc", description="fmipfast light-weight Kerberos KDC")
    ap.add_argument("--config", required=True, help="TOML file (keys in docs/security.md)")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"fmipfast-kdc: {exc}", file=sys.stderr)
        return 2
    return serve(cfg, prog="fmipfast-kdc", source=args.config)


def serve(cfg: KdcConfig, *, prog: str = "fmipfast-kdc", source: str | None = None, notify: Any = None,
          endpoints: Callable[[KdcServer], Any] | None = None) -> int:
    """Serve ``cfg`` until SIGTERM/SIGINT: ``READY host port`` once bound, the counters as one JSON line at the
    end; 0, or 2 with a one-line error when ``listen`` cannot be bound (a name that does not resolve, an
    address not on this host, a port in use).

    ``notify`` (an :class:`fmipfast.sdnotify.Notifier`, given by ``fmipfast kdc``) is told READY once the socket
    is bound -- the keys were loaded with ``cfg`` -- then the counters as STATUS, WATCHDOG pings from this loop,
    and STOPPING at the end.  ``endpoints(server)`` (a coroutine function) starts what else the daemon serves
    (its metrics) and returns the servers to close at exit."""

    async def run() -> int:
        try:
            server = await start_kdc(cfg)
        except (OSError, OverflowError, ValueError) as exc:
            host, port = cfg.listen
            where = f"{source}: " if source else ""
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            print(f"{prog}: {where}listen: cannot bind {host}:{port}: {reason}", file=sys.stderr)
            return 2
        extra: list[Any] = []
        if endpoints is not None:
            try:
                extra = list(await endpoints(server))
            except (OSError, ValueError) as exc:
                server.close()
                print(f"{prog}: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
                return 2
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        host, port = server.address
        print(f"READY {host} {port}", flush=True)
        if notify is not None:
            notify.ready(status_line(server))
            notify.start(loop, lambda: status_line(server))
        try:
            await stop.wait()
        finally:
            if notify is not None:
                notify.stopping("stopping")
                notify.close()
            for srv in extra:
                await srv.close()
            server.close()
        # like the router daemon: the final counters, one JSON line, for whoever ran us
        print(json.dumps(dict(server.counters), sort_keys=True), flush=True)
        return 0

    return asyncio.run(run())


def status_line(server: KdcServer) -> str:
    """One line for ``systemctl status``: the realm, where it listens, the answers given and refused."""
    c = server.counters
    host, port = server.address
    return (f"realm {server.kdc.cfg.realm} on {host}:{port}: {c['as_ok']} AS, {c['tgs_ok'] + c['tgs_referral']} TGS, "
            f"{c['open_ok']} OPEN answered; {c['errors'] + c['malformed']} errors, "
            f"{c['rate_limited'] + c['sources_full']} rate-limited")


if __name__ == "__main__":
    sys.exit(main())

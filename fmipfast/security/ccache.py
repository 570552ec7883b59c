"""The mobile node's credential cache, with background precaching of cross-realm TGTs (draft §3).

The draft: "The list of adjacent realms can be used by the MN to precache crossrealm lightweight TGT's
targeted at adjacent realms (as a background task).  This performance optimization allows subsequent
authentications for adjacent realms to skip exchanges with the remote user's KDC. Instead, a local KDC
will be used."  :class:`TicketCache` holds the MN's home TGT (AS exchange, RFC 4120 §3.1), cross-realm TGTs
``krbtgt/R@HOME`` and service tickets; :meth:`TicketCache.get` starts from the best TGT it holds, so after
:meth:`TicketCache.precache` a ticket for a service in an adjacent realm costs one TGS exchange at that
realm's KDC and none at home.

Bounded: at most ``capacity`` credentials; expired ones go first, then the one that expires soonest (never
the home TGT).  A credential is used only while ``endtime - renew_margin`` is in the future.  Every outcome
is counted in :attr:`TicketCache.counters`; background precaching never raises (failures are counted and
kept in :attr:`TicketCache.last_errors`).

Ownership: one asyncio event loop (the MN agent's); no locking.  Keys are never shown in reprs.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from collections.abc import Awaitable, Callable, Iterable

from fmipfast.errors import FmipError
from fmipfast.security.kdc import KdcClient, get_service_ticket
from fmipfast.security.lwkerb import Credentials, Key, LkbError, Principal, Ticket, UnknownRealm, krbtgt
from fmipfast.security.statefile import write_private

__all__ = ["TicketCache", "save_credentials", "load_credentials", "CredentialFileError", "MAX_FILE_CREDENTIALS"]

#: Bounds of a credentials file: entries, and octets read.
MAX_FILE_CREDENTIALS = 256
MAX_FILE_OCTETS = 1 << 20
_FILE_FORMAT = "fmipfast-ccache-1"


class CredentialFileError(FmipError, ValueError):
    """A credentials file that cannot be used: its path, and the entry and field at fault."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem


def save_credentials(path: str | os.PathLike[str], creds: Iterable[Credentials]) -> None:
    """Write ``creds`` to ``path`` (JSON, mode 0600, replaced atomically): what an MN daemon that does not
    talk to a KDC itself starts from (``[mn] ccache``), like a Kerberos FILE: credential cache."""
    entries = [{"client": str(c.client), "server": str(c.server), "ticket": c.ticket.encode().hex(),
                "session_key": {"kvno": c.session_key.kvno, "key": c.session_key.value.hex()},
                "flags": c.flags, "authtime": c.authtime, "starttime": c.starttime, "endtime": c.endtime}
               for c in creds]
    if len(entries) > MAX_FILE_CREDENTIALS:
        raise ValueError(f"at most {MAX_FILE_CREDENTIALS} credentials per file, got {len(entries)}")
    write_private(path, (json.dumps({"format": _FILE_FORMAT, "credentials": entries}, indent=1) + "\n").encode())


def load_credentials(path: str | os.PathLike[str]) -> dict[Principal, Credentials]:
    """Read a file written by :func:`save_credentials`, keyed by server principal.  Refuses (with
    :class:`CredentialFileError` naming the entry and field) a file others may read — it holds session keys —
    a file over :data:`MAX_FILE_OCTETS`, and any malformed entry; expiry is the ticket user's to check."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            st = os.fstat(fh.fileno())
            if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise CredentialFileError(name, f"mode {stat.S_IMODE(st.st_mode):04o}: session keys must not be "
                                                "readable by group or others (chmod 600)")
            raw = fh.read(MAX_FILE_OCTETS + 1)
    except OSError as exc:
        raise CredentialFileError(name, f"cannot read: {exc.strerror}") from None
    if len(raw) > MAX_FILE_OCTETS:
        raise CredentialFileError(name, f"larger than {MAX_FILE_OCTETS} octets")
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CredentialFileError(name, f"not JSON: {exc}") from None
    except RecursionError:  # json's parser recurses per level of nesting
        raise CredentialFileError(name, "not JSON: nested too deeply") from None
    if not isinstance(doc, dict) or doc.get("format") != _FILE_FORMAT:
        raise CredentialFileError(name, f"not an fmipfast credentials file (format {_FILE_FORMAT!r} expected)")
    entries = doc.get("credentials")
    if not isinstance(entries, list) or len(entries) > MAX_FILE_CREDENTIALS:
        raise CredentialFileError(name, f"credentials: expected a list of at most {MAX_FILE_CREDENTIALS} entries")
    out: dict[Principal, Credentials] = {}
    for i, e in enumerate(entries):
        where = f"credentials[{i}]"
        try:
            if not isinstance(e, dict):
                raise ValueError("expected an object")
            field = "client"
            client = Principal.parse(e["client"])
            field = "server"
            server = Principal.parse(e["server"])
            field = "ticket"
            ticket = Ticket.decode(bytes.fromhex(e["ticket"]))
            if ticket.server != server:
                raise ValueError(f"the ticket is for {ticket.server}, not {server}")
            field = "session_key"
            key = Key(int(e["session_key"]["kvno"]), bytes.fromhex(e["session_key"]["key"]))
            field = "times"
            flags, authtime, starttime, endtime = (int(e[k]) for k in ("flags", "authtime", "starttime", "endtime"))
            if not authtime <= endtime or not starttime <= endtime:
                raise ValueError("endtime before authtime or starttime")
        except (KeyError, TypeError, ValueError, LkbError) as exc:
            raise CredentialFileError(name, f"{where}.{field}: {exc}") from None
        out[server] = Credentials(client, server, ticket, key, flags, authtime, starttime, endtime)
    return out

COUNTERS = ("hits", "misses", "as_exchanges", "fetched", "fetch_failed", "precached", "precache_failed",
            "precache_deferred", "precache_skipped", "evicted")

#: RAs are not authenticated: any on-link host can list realms.  Of one RA's list, only the first this many
#: realms are precached (the rest counted ``precache_skipped``): an adjacent-realms option names the few realms
#: a router's neighbours belong to, not hundreds.
MAX_PRECACHE_REALMS = 16
#: How many failed realms the cache remembers (for ``precache_retry_s`` and :attr:`TicketCache.last_errors`);
#: the oldest failure is forgotten first, so made-up realms cannot grow the cache's memory.
MAX_PRECACHE_FAILURES = 64


class TicketCache:
    """Credentials of one client principal, fetched from the KDCs of ``kdcs`` (realm -> (host, port))."""

    def __init__(self, client: Principal, key: Key, kdcs: dict[str, tuple[str, int]], *,
                 clock: Callable[[], float] = time.time, capacity: int = 64, renew_margin: float = 60.0,
                 timeout: float = 1.0, retries: int = 2, precache_retry_s: float = 10.0) -> None:
        if capacity < 2:
            raise ValueError("capacity must hold at least the home TGT and one ticket")
        if client.realm not in kdcs:
            raise UnknownRealm(f"no KDC address for the home realm {client.realm}")
        self.client = client
        self._key = key
        self.kdcs = dict(kdcs)
        self.clock = clock
        self.capacity = capacity
        self.renew_margin = renew_margin
        self.timeout = timeout
        self.retries = retries
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.last_errors: dict[str, str] = {}
        self._creds: dict[Principal, Credentials] = {}
        self._inflight: dict[Principal, asyncio.Future[Credentials]] = {}
        self._precache_failed_at: dict[str, float] = {}
        self.precache_retry_s = precache_retry_s

    def __repr__(self) -> str:
        return f"TicketCache({self.client}, {len(self._creds)} credentials)"

    def __len__(self) -> int:
        return len(self._creds)

    @property
    def home_tgt_principal(self) -> Principal:
        return krbtgt(self.client.realm)

    def cached(self, server: Principal) -> Credentials | None:
        """A usable cached credential for ``server`` (not counted as a hit or miss), or None."""
        creds = self._creds.get(server)
        if creds is not None and creds.endtime - self.renew_margin > self.clock():
            return creds
        return None

    def _store(self, creds: Credentials) -> None:
        if creds.server not in self._creds and len(self._creds) >= self.capacity:
            now = self.clock()
            victims = [c for c in self._creds.values() if c.server != self.home_tgt_principal]
            victims.sort(key=lambda c: (c.endtime - self.renew_margin > now, c.endtime))
            del self._creds[victims[0].server]
            self.counters["evicted"] += 1
        self._creds[creds.server] = creds

    async def _once(self, server: Principal, fetch: Callable[[], Awaitable[Credentials]]) -> Credentials:
        """Coalesce concurrent fetches of the same credential into one exchange."""
        pending = self._inflight.get(server)
        if pending is not None:
            return await asyncio.shield(pending)
        task: asyncio.Future[Credentials] = asyncio.ensure_future(fetch())
        self._inflight[server] = task
        try:
            creds = await task
        finally:
            self._inflight.pop(server, None)
        self._store(creds)
        return creds

    async def home_tgt(self) -> Credentials:
        """The home TGT ``krbtgt/HOME@HOME``, from the AS exchange when not cached."""
        creds = self.cached(self.home_tgt_principal)
        if creds is not None:
            return creds

        async def fetch() -> Credentials:
            self.counters["as_exchanges"] += 1
            client = KdcClient(self.kdcs[self.client.realm], clock=self.clock, timeout=self.timeout,
                               retries=self.retries)
            return await client.as_exchange(self.client, self._key)

        return await self._once(self.home_tgt_principal, fetch)

    def _start_for(self, server: Principal) -> Credentials | None:
        """The most specific cached TGT to start a fetch for ``server`` from: one issued for the server's
        own realm (precached), else None (start from the home TGT)."""
        if server.realm == self.client.realm:
            return None
        return self.cached(krbtgt(server.realm, self.client.realm))

    async def get(self, server: Principal) -> Credentials:
        """A valid credential for ``server``: cached, or fetched along the realm graph (counted)."""
        creds = self.cached(server)
        if creds is not None:
            self.counters["hits"] += 1
            return creds
        self.counters["misses"] += 1

        async def fetch() -> Credentials:
            start = self._start_for(server) or await self.home_tgt()
            try:
                got = await get_service_ticket(start, server, self.kdcs, clock=self.clock, timeout=self.timeout,
                                               retries=self.retries)
            except LkbError:
                self.counters["fetch_failed"] += 1
                raise
            self.counters["fetched"] += 1
            return got

        return await self._once(server, fetch)

    async def precache(self, realms: Iterable[str]) -> dict[str, bool]:
        """Fetch a cross-realm TGT ``krbtgt/R@HOME`` for every adjacent realm R (the RA's list) that has
        none yet; returns realm -> success.  Failures are counted and recorded, never raised."""
        results: dict[str, bool] = {}
        wanted = [r for r in dict.fromkeys(realms) if r != self.client.realm]
        if len(wanted) > MAX_PRECACHE_REALMS:
            self.counters["precache_skipped"] += len(wanted) - MAX_PRECACHE_REALMS
            del wanted[MAX_PRECACHE_REALMS:]
        for realm in wanted:
            principal = krbtgt(realm, self.client.realm)
            if self.cached(principal) is not None:
                results[realm] = True
                continue
            failed = self._precache_failed_at.get(realm)
            if failed is not None and self.clock() - failed < self.precache_retry_s:
                # every RA (30-70 ms apart on a mobility link) asks again: a realm whose KDC just failed waits
                self.counters["precache_deferred"] += 1
                results[realm] = False
                continue
            try:
                await self.get(principal)
            except (LkbError, OSError) as exc:
                self.counters["precache_failed"] += 1
                self._remember_failure(realm, f"{type(exc).__name__}: {exc}")
                results[realm] = False
            else:
                self.counters["precached"] += 1
                self.last_errors.pop(realm, None)
                self._precache_failed_at.pop(realm, None)
                results[realm] = True
        return results

    def _remember_failure(self, realm: str, error: str) -> None:
        for book in (self._precache_failed_at, self.last_errors):
            book.pop(realm, None)  # re-inserted last: the dicts keep failures oldest first
            while len(book) >= MAX_PRECACHE_FAILURES:
                del book[next(iter(book))]
        self._precache_failed_at[realm] = self.clock()
        self.last_errors[realm] = error

    def precache_in_background(self, realms: Iterable[str]) -> asyncio.Task[dict[str, bool]]:
        """Run :meth:`precache` as a background task of the running loop (the draft's "background task")."""
        return asyncio.get_running_loop().create_task(self.precache(list(realms)), name="fmipfast-precache")

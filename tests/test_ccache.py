"""The MN's ticket cache and precaching of cross-realm TGTs (draft §3), against real in-process KDCs: after
precaching, a ticket for the adjacent realm costs one exchange at that realm's KDC and none at home."""

from __future__ import annotations

import asyncio
import os
import tomllib

import pytest

from fmipfast.security import kdc as K
from fmipfast.security import lwkerb as L
from fmipfast.security.ccache import TicketCache

A, B, C = "REALM-A", "REALM-B", "REALM-C"
MN = L.Principal("mn1", A)
PASSWORD = "precache me"


def _hex() -> str:
    return os.urandom(32).hex()


def _toml(realm: str, keys: dict[str, str], extra: str = "") -> str:
    body = f'realm = "{realm}"\nlisten = "127.0.0.1:0"\n{extra}\n'
    for principal, key in keys.items():
        if principal.startswith("mn1@"):
            body += f'[[keys]]\nprincipal = "{principal}"\npassword = "{key}"\n'
        else:
            body += f'[[keys]]\nprincipal = "{principal}"\nkey = "{key}"\n'
    return body


async def _world(clock=None):
    """KDC-A (home) and KDC-B (adjacent, inter-realm keys with A); realm C has a KDC address but no
    inter-realm key with A, so precaching it fails."""
    a2b, b2a = _hex(), _hex()
    cfg_a = K.config_from_mapping(tomllib.loads(_toml(A, {
        f"krbtgt/{A}@{A}": _hex(), f"access/{A}@{A}": _hex(), f"mn1@{A}": PASSWORD,
        f"krbtgt/{B}@{A}": a2b, f"krbtgt/{A}@{B}": b2a})))
    cfg_b = K.config_from_mapping(tomllib.loads(_toml(B, {
        f"krbtgt/{B}@{B}": _hex(), f"access/{B}@{B}": _hex(), f"krbtgt/{B}@{A}": a2b, f"krbtgt/{A}@{B}": b2a})))
    cfg_c = K.config_from_mapping(tomllib.loads(_toml(C, {f"krbtgt/{C}@{C}": _hex(), f"access/{C}@{C}": _hex()})))
    kw = {} if clock is None else {"clock": clock}
    servers = [await K.start_kdc(cfg, **kw) for cfg in (cfg_a, cfg_b, cfg_c)]
    return servers, {A: servers[0].address, B: servers[1].address, C: servers[2].address}


def _run(coro):
    return asyncio.run(coro)


def test_precache_makes_the_adjacent_realm_local():
    async def scenario():
        servers, addrs = await _world()
        kdc_a, kdc_b, _ = servers
        try:
            cache = TicketCache(MN, L.Key.from_password(PASSWORD, MN), addrs)
            assert await cache.precache([B, B, A]) == {B: True}  # duplicates and the home realm skipped
            assert cache.counters["precached"] == 1 and cache.counters["as_exchanges"] == 1
            home_before = dict(kdc_a.counters)
            creds = await cache.get(L.access_principal(B))
            assert creds.server == L.access_principal(B) and creds.client == MN
            assert kdc_a.counters == home_before, "the home KDC was asked again after precaching"
            assert kdc_b.counters["tgs_ok"] == 1
            again = await cache.get(L.access_principal(B))
            assert again is creds and cache.counters["hits"] == 1
        finally:
            for s in servers:
                s.close()

    _run(scenario())


def test_without_precache_the_home_kdc_gives_a_referral():
    async def scenario():
        servers, addrs = await _world()
        kdc_a, kdc_b, _ = servers
        try:
            cache = TicketCache(MN, L.Key.from_password(PASSWORD, MN), addrs)
            creds = await cache.get(L.access_principal(B))
            assert creds.server == L.access_principal(B)
            assert kdc_a.counters["as_ok"] == 1 and kdc_a.counters["tgs_referral"] + kdc_a.counters["tgs_ok"] == 1
            assert kdc_b.counters["tgs_ok"] == 1
        finally:
            for s in servers:
                s.close()

    _run(scenario())


def test_precache_failure_is_counted_not_raised():
    async def scenario():
        servers, addrs = await _world()
        try:
            cache = TicketCache(MN, L.Key.from_password(PASSWORD, MN), {**addrs, "REALM-NOWHERE": ("127.0.0.1", 9)},
                                timeout=0.2, retries=0)
            task = cache.precache_in_background([C, B])
            result = await task
            assert result == {C: False, B: True}
            assert cache.counters["precache_failed"] == 1 and "REALM-C" in cache.last_errors
            # the next RA lists C again at once: deferred (precache_retry_s), not another round of timeouts
            assert await cache.precache([C]) == {C: False}
            assert cache.counters["precache_failed"] == 1 and cache.counters["precache_deferred"] == 1
        finally:
            for s in servers:
                s.close()

    _run(scenario())


def test_expiry_renewal_and_bounded_capacity():
    now = [1_800_000_000.0]

    async def scenario():
        servers, addrs = await _world(clock=lambda: now[0])
        try:
            cache = TicketCache(MN, L.Key.from_password(PASSWORD, MN), addrs, clock=lambda: now[0], capacity=3,
                                renew_margin=60)
            first = await cache.get(L.access_principal(A))
            now[0] = first.endtime - 59  # inside the renew margin: fetched anew
            second = await cache.get(L.access_principal(A))
            assert second is not first and cache.counters["fetched"] == 2
            await cache.precache([B])
            await cache.get(L.access_principal(B))  # home TGT + access/A + krbtgt/B@A + access/B > 3
            assert len(cache) == 3 and cache.counters["evicted"] >= 1
            assert cache.cached(cache.home_tgt_principal) is not None, "the home TGT is never evicted"
        finally:
            for s in servers:
                s.close()

    _run(scenario())


def test_concurrent_gets_share_one_exchange():
    async def scenario():
        servers, addrs = await _world()
        try:
            cache = TicketCache(MN, L.Key.from_password(PASSWORD, MN), addrs)
            got = await asyncio.gather(*(cache.get(L.access_principal(A)) for _ in range(5)))
            assert all(c is got[0] for c in got)
            assert servers[0].counters["as_ok"] == 1 and cache.counters["fetched"] == 1
        finally:
            for s in servers:
                s.close()

    _run(scenario())


def test_bad_arguments_and_key_hygiene():
    key = L.Key.from_password(PASSWORD, MN)
    with pytest.raises(L.UnknownRealm):
        TicketCache(MN, key, {B: ("127.0.0.1", 1)})
    with pytest.raises(ValueError):
        TicketCache(MN, key, {A: ("127.0.0.1", 1)}, capacity=1)
    assert key.value.hex() not in repr(TicketCache(MN, key, {A: ("127.0.0.1", 1)}))


# ---------------------------------------------------------------- the credentials file (fmipfast mn)

def _creds(server: L.Principal, lifetime: int = 3600) -> L.Credentials:
    key = L.Key(3, os.urandom(32))
    skey = L.Key(0, os.urandom(32))
    part = L.EncTicketPart(L.TicketFlag.PRE_AUTHENT, 1000, 1000, 1000 + lifetime, skey.value, MN)
    return L.Credentials(MN, server, L.Ticket.issue(server, key, part), skey, part.flags, 1000, 1000, 1000 + lifetime)


def test_credentials_file_round_trip_and_mode(tmp_path):
    from fmipfast.security.ccache import load_credentials, save_credentials

    path = tmp_path / "mn.ccache"
    servers = [L.Principal("host/par", A), L.Principal("host/nar", B)]
    made = [_creds(s) for s in servers]
    save_credentials(path, made)
    assert os.stat(path).st_mode & 0o777 == 0o600
    got = load_credentials(path)
    assert list(got) == servers
    for c in made:
        back = got[c.server]
        assert back.ticket == c.ticket and back.session_key.value == c.session_key.value
        assert (back.client, back.flags, back.authtime, back.starttime, back.endtime) == (
            c.client, c.flags, c.authtime, c.starttime, c.endtime)


@pytest.mark.parametrize("damage, problem", [
    (lambda d: d.update(format="krb5"), "not an fmipfast credentials file"),
    (lambda d: d.update(credentials={}), "credentials: expected a list"),
    (lambda d: d["credentials"][0].update(client="nobody"), "credentials[0].client"),
    (lambda d: d["credentials"][0].update(ticket="00ff"), "credentials[0].ticket"),
    (lambda d: d["credentials"][0].update(server="host/other@REALM-A"), "credentials[0].ticket: the ticket is for"),
    (lambda d: d["credentials"][0]["session_key"].update(key="abcd"), "credentials[0].session_key"),
    (lambda d: d["credentials"][0].update(endtime=5), "credentials[0].times"),
    (lambda d: d["credentials"][0].pop("flags"), "credentials[0].times"),
])
def test_credentials_file_errors_name_the_entry(tmp_path, damage, problem):
    import json

    from fmipfast.security.ccache import CredentialFileError, load_credentials, save_credentials

    path = tmp_path / "mn.ccache"
    save_credentials(path, [_creds(L.Principal("host/par", A))])
    doc = json.loads(path.read_text())
    damage(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(CredentialFileError) as info:
        load_credentials(path)
    assert problem in str(info.value) and str(path) in str(info.value)


def test_credentials_file_refused_when_others_may_read_it(tmp_path):
    from fmipfast.security.ccache import MAX_FILE_OCTETS, CredentialFileError, load_credentials, save_credentials

    path = tmp_path / "mn.ccache"
    save_credentials(path, [_creds(L.Principal("host/par", A))])
    os.chmod(path, 0o644)
    with pytest.raises(CredentialFileError, match="mode 0644: session keys must not be readable"):
        load_credentials(path)
    with pytest.raises(CredentialFileError, match="cannot read"):
        load_credentials(tmp_path / "missing")
    big = tmp_path / "big"
    big.write_bytes(b" " * (MAX_FILE_OCTETS + 1))
    os.chmod(big, 0o600)
    with pytest.raises(CredentialFileError, match="larger than"):
        load_credentials(big)
    junk = tmp_path / "junk"
    junk.write_bytes(b"\xff{")
    os.chmod(junk, 0o600)
    with pytest.raises(CredentialFileError, match="not JSON"):
        load_credentials(junk)


def test_a_hostile_ra_cannot_make_the_mn_ask_or_remember_without_bound():
    """RAs are unauthenticated (any on-link host can send one, hop limit 255 from a link-local source): an RA
    listing hundreds of made-up realms costs at most MAX_PRECACHE_REALMS exchanges, and what the cache keeps
    of failures stays bounded however many RAs come."""
    from fmipfast.security.ccache import MAX_PRECACHE_FAILURES, MAX_PRECACHE_REALMS

    async def scenario():
        servers, addrs = await _world()
        try:
            cache = TicketCache(MN, L.Key.from_password(PASSWORD, MN), addrs, timeout=0.2, retries=0)
            ras = 5  # 80 failures: past MAX_PRECACHE_FAILURES
            for ra in range(ras):
                realms = [f"FAKE-{ra}-{i}.EXAMPLE" for i in range(300)]
                result = await cache.precache(realms)
                assert len(result) == MAX_PRECACHE_REALMS and not any(result.values())
            assert cache.counters["precache_failed"] == ras * MAX_PRECACHE_REALMS
            assert cache.counters["precache_skipped"] == ras * (300 - MAX_PRECACHE_REALMS)
            assert len(cache._precache_failed_at) <= MAX_PRECACHE_FAILURES
            assert len(cache.last_errors) <= MAX_PRECACHE_FAILURES
            await asyncio.sleep(0.5)  # the home KDC's per-source token bucket (burst 50, 200/s) refills
            assert await cache.precache([B]) == {B: True}  # the real adjacent realm still works
        finally:
            for s in servers:
                s.close()

    _run(scenario())

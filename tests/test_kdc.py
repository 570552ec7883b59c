"""The light-weight Kerberos KDC (fmipfast.security.kdc): the draft's key cases 2 and 3 against real KDC
processes on loopback, cross-realm referrals, rate limiting, bounded state, and configuration errors.
No mocks: every KDC here is the real UDP service, as a subprocess or in-process (``start_kdc``)."""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fmipfast
from fmipfast.errors import ConfigError
from fmipfast.security import kdc as K
from fmipfast.security import lwkerb as L

A, B, X = "REALM-A", "REALM-B", "REALM-X"
MN = L.Principal("mn1", A)
NAR = L.Principal("nar1", B)
BINDING = L.HandoverBinding("2001:db8:b::99", "2001:db8:a::99", "2001:db8:b::1", 42)
MN_PASSWORD = "correct horse battery staple"
REPO = str(Path(fmipfast.__file__).resolve().parent.parent)


def hexkey() -> str:
    return os.urandom(32).hex()


class Keys:
    """The key material of a two-realm world (A = the MN's home, B = the NAR's realm)."""

    def __init__(self) -> None:
        self.tgt_a, self.acc_a, self.tgt_b, self.acc_b = hexkey(), hexkey(), hexkey(), hexkey()
        self.a_to_b = hexkey()  # krbtgt/REALM-B@REALM-A: A issues, B accepts
        self.b_to_a = hexkey()  # krbtgt/REALM-A@REALM-B: B issues/forwards, A accepts
        self.nar = hexkey()
        self.mn = L.Key.from_password(MN_PASSWORD, MN)

    def toml_a(self) -> str:
        return f"""
realm = "{A}"
listen = "127.0.0.1:0"
skew = 300
[[keys]]
principal = "krbtgt/{A}@{A}"
key = "{self.tgt_a}"
[[keys]]
principal = "access/{A}@{A}"
key = "{self.acc_a}"
[[keys]]
principal = "mn1@{A}"
password = "{MN_PASSWORD}"
[[keys]]
principal = "krbtgt/{B}@{A}"
key = "{self.a_to_b}"
[[keys]]
principal = "krbtgt/{A}@{B}"
key = "{self.b_to_a}"
"""

    def toml_b(self, a_addr: tuple[str, int]) -> str:
        return f"""
realm = "{B}"
listen = "127.0.0.1:0"
routers = ["nar1"]
[peers]
"{A}" = "{a_addr[0]}:{a_addr[1]}"
[rate]
rate = 1000.0
burst = 1000
[[keys]]
principal = "krbtgt/{B}@{B}"
key = "{self.tgt_b}"
[[keys]]
principal = "access/{B}@{B}"
key = "{self.acc_b}"
[[keys]]
principal = "nar1@{B}"
key = "{self.nar}"
[[keys]]
principal = "krbtgt/{B}@{A}"
key = "{self.a_to_b}"
[[keys]]
principal = "krbtgt/{A}@{B}"
key = "{self.b_to_a}"
"""


def _start(path: Path) -> tuple[subprocess.Popen, tuple[str, int]]:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "fmipfast.security.kdc", "--config", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    deadline = time.monotonic() + 20
    line = b""
    while time.monotonic() < deadline:
        r, _, _ = select.select([proc.stdout], [], [], 0.2)
        if r:
            line = proc.stdout.readline()
            break
        if proc.poll() is not None:
            break
    if not line.startswith(b"READY "):
        proc.kill()
        raise RuntimeError(f"KDC did not become ready: {line!r} {proc.stderr.read().decode()[-2000:]}")
    _, host, port = line.decode().split()
    return proc, (host, int(port))


@pytest.fixture(scope="module")
def realms(tmp_path_factory, request):
    """KDC processes for realms A and B on loopback; always killed in the finalizer."""
    keys = Keys()
    d = tmp_path_factory.mktemp("kdc")
    procs: list[subprocess.Popen] = []

    def fin():
        for p in procs:
            p.kill()
            p.wait(timeout=10)
            for s in (p.stdout, p.stderr):
                s.close()

    request.addfinalizer(fin)
    (d / "a.toml").write_text(keys.toml_a())
    pa, a_addr = _start(d / "a.toml")
    procs.append(pa)
    (d / "b.toml").write_text(keys.toml_b(a_addr))
    pb, b_addr = _start(d / "b.toml")
    procs.append(pb)
    return keys, {A: a_addr, B: b_addr}


def nar_verifier(keys: Keys, b_addr, *, with_kdc: bool = True) -> L.ApVerifier:
    kt = L.Keytab()
    nar_key = L.Key(1, bytes.fromhex(keys.nar))
    kt.add(NAR, nar_key)
    opener = K.KdcClient(b_addr, principal=NAR, key=nar_key, timeout=2.0, retries=1) if with_kdc else None
    return L.ApVerifier(B, kt, opener=opener)


async def mn_tgt(keys: Keys, addrs) -> L.Credentials:
    return await K.KdcClient(addrs[A]).as_exchange(MN, keys.mn)


# ================================================================================ the three cases, real KDCs


def test_case2_local_kdc_opens_ticket(realms):
    keys, addrs = realms

    async def go():
        tgt = await mn_tgt(keys, addrs)
        assert tgt.server == L.krbtgt(A) and tgt.flags & L.TicketFlag.PRE_AUTHENT
        # A refers the MN to B (krbtgt/REALM-B@REALM-A), B issues access/REALM-B@REALM-B
        creds = await K.get_service_ticket(tgt, L.access_principal(B), addrs)
        assert creds.ticket.server == L.access_principal(B)
        ap, auth = L.build_ap_req(creds, BINDING, now=time.time())
        v = nar_verifier(keys, addrs[B])
        ctx = await v.verify(ap.encode(), BINDING)
        assert ctx.case == 2 and ctx.client == MN
        assert v.counters["case2"] == 1 and v.counters["ok"] == 1
        L.check_ap_rep(ctx.ap_rep().encode(), creds.session_key, auth)
        return ctx

    asyncio.run(go())


def test_case3_local_kdc_asks_home_kdc(realms):
    keys, addrs = realms

    async def go():
        tgt = await mn_tgt(keys, addrs)
        creds = await K.KdcClient(addrs[A]).tgs_exchange(tgt, L.access_principal(A))  # home access ticket
        ap, _ = L.build_ap_req(creds, BINDING, now=time.time())
        v = nar_verifier(keys, addrs[B])
        ctx = await v.verify(ap.encode(), BINDING)
        assert ctx.case == 3 and ctx.client == MN and ctx.ticket_part.session_key == creds.session_key.value
        assert v.counters["case3"] == 1

    asyncio.run(go())


def test_case1_ticket_for_the_nar_verified_locally(realms):
    keys, addrs = realms

    async def go():
        tgt = await mn_tgt(keys, addrs)
        creds = await K.get_service_ticket(tgt, NAR, addrs)
        assert creds.ticket.server == NAR
        ap, _ = L.build_ap_req(creds, BINDING, now=time.time())
        v = nar_verifier(keys, addrs[B], with_kdc=False)
        ctx = v.verify_local(ap.encode(), BINDING)
        assert ctx.case == 1 and v.counters["case1"] == 1

    asyncio.run(go())


# ================================================================================ negative, real KDCs


def _access_ticket(keys: Keys, realm: str, kvno: int = 1, key_hex: str | None = None) -> L.Credentials:
    now = int(time.time())
    skey = L.Key(0, os.urandom(32))
    part = L.EncTicketPart(0, now, now, now + 600, skey.value, MN)
    t = L.Ticket.issue(L.access_principal(realm), L.Key(kvno, bytes.fromhex(key_hex or keys.acc_b)), part)
    return L.Credentials(MN, t.server, t, skey, 0, now, now, now + 600)


def _verify_fails(keys, addrs, creds, exc, counter, binding=BINDING, ap=None):
    v = nar_verifier(keys, addrs[B])
    if ap is None:
        ap, _ = L.build_ap_req(creds, BINDING, now=time.time())
    with pytest.raises(exc):
        asyncio.run(v.verify(ap.encode(), binding))
    assert v.counters[counter] == 1 and v.counters["ok"] == 0
    return v


def test_case2_wrong_key_version(realms):
    keys, addrs = realms
    _verify_fails(keys, addrs, _access_ticket(keys, B, kvno=7), L.WrongKeyVersion, "bad_kvno")


def test_case2_tampered_ticket(realms):
    keys, addrs = realms
    creds = _access_ticket(keys, B)
    ct = bytearray(creds.ticket.enc.ciphertext)
    ct[3] ^= 1
    bad = L.Ticket(creds.ticket.server, creds.ticket.kvno, L.Sealed(creds.ticket.enc.nonce, bytes(ct)))
    ap, _ = L.build_ap_req(L.Credentials(MN, bad.server, bad, creds.session_key, 0, 0, 0, 0), BINDING, now=time.time())
    _verify_fails(keys, addrs, creds, L.TicketIntegrity, "bad_ticket", ap=ap)


def test_case3_tampered_ticket_relayed_from_home(realms):
    keys, addrs = realms
    creds = _access_ticket(keys, A, key_hex=keys.acc_b)  # sealed under the wrong key for access/REALM-A
    _verify_fails(keys, addrs, creds, L.TicketIntegrity, "bad_ticket")


def test_case2_binding_to_another_router(realms):
    keys, addrs = realms
    other = L.HandoverBinding("2001:db8:b::99", "2001:db8:a::99", "2001:db8:c::1", 42)
    _verify_fails(keys, addrs, _access_ticket(keys, B), L.BindingMismatch, "binding_mismatch", binding=other)


def test_unknown_realm_open_and_tgs(realms):
    keys, addrs = realms
    _verify_fails(keys, addrs, _access_ticket(keys, "REALM-Z"), L.UnknownRealm, "unknown_realm")

    async def go():
        tgt = await mn_tgt(keys, addrs)
        with pytest.raises(L.UnknownRealm):
            await K.KdcClient(addrs[A]).tgs_exchange(tgt, L.Principal("nar1", "REALM-Z"))
        with pytest.raises(L.UnknownRealm):  # the client has no address for a realm
            await K.get_service_ticket(tgt, L.access_principal(B), {A: addrs[A]})

    asyncio.run(go())


def test_only_listed_routers_may_open(realms):
    keys, addrs = realms
    creds = _access_ticket(keys, B)

    async def go():
        # the MN itself (a valid principal of A, wrong realm and not a router) cannot open a ticket
        cli = K.KdcClient(addrs[B], principal=MN, key=keys.mn, timeout=2.0)
        with pytest.raises(L.KdcError) as ei:
            await cli.open_ticket(creds.ticket)
        assert ei.value.error_code == L.ErrorCode.POLICY
        # a router with a wrong key is refused too
        cli = K.KdcClient(addrs[B], principal=NAR, key=L.Key(1, bytes(32)), timeout=2.0)
        with pytest.raises(L.KdcError) as ei:
            await cli.open_ticket(creds.ticket)
        assert ei.value.error_code == L.ErrorCode.MODIFIED

    asyncio.run(go())


def test_preauth_failed_and_unknown_client(realms):
    keys, addrs = realms

    async def go():
        with pytest.raises(L.KdcError) as ei:
            await K.KdcClient(addrs[A]).as_exchange(MN, L.Key.from_password("wrong", MN))
        assert ei.value.error_code == L.ErrorCode.PREAUTH_FAILED
        with pytest.raises(L.KdcError) as ei:
            await K.KdcClient(addrs[A]).as_exchange(L.Principal("nobody", A), keys.mn)
        assert ei.value.error_code == L.ErrorCode.C_PRINCIPAL_UNKNOWN

    asyncio.run(go())


def test_kdc_unreachable_counted():
    async def go():
        # a bound UDP socket that never answers
        loop = asyncio.get_running_loop()
        silent, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        addr = silent.get_extra_info("sockname")[:2]
        try:
            kt = L.Keytab()
            v = L.ApVerifier(B, kt, opener=K.KdcClient(addr, principal=NAR, key=L.Key.random(), timeout=0.05,
                                                       retries=1))
            creds = _access_ticket(Keys(), B)
            ap, _ = L.build_ap_req(creds, BINDING, now=time.time())
            with pytest.raises(L.KdcUnreachable):
                await v.verify(ap.encode(), BINDING)
            assert v.counters["kdc_unreachable"] == 1
            assert v.opener.counters["retransmits"] == 1 and v.opener.counters["timeouts"] == 1
        finally:
            silent.close()

    asyncio.run(go())


# ================================================================================ in-process KDCs


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _cfg(realm: str, keys: dict[str, L.Key], **kw) -> K.KdcConfig:
    kt = L.Keytab()
    for p, k in keys.items():
        kt.add(L.Principal.parse(p), k)
    return K.KdcConfig(realm=realm, keytab=kt, **kw)


def test_multi_hop_referral_records_transited_realm():
    """A -> X -> B: the MN follows two referrals; B's ticket lists X as transited."""
    ax, xb, mnk, nark = L.Key.random(), L.Key.random(), L.Key.random(), L.Key.random()

    async def go():
        ka = await K.start_kdc(_cfg(A, {f"krbtgt/{A}@{A}": L.Key.random(), f"access/{A}@{A}": L.Key.random(),
                                        f"mn1@{A}": mnk, f"krbtgt/{X}@{A}": ax}, routes={B: X}))
        kx = await K.start_kdc(_cfg(X, {f"krbtgt/{X}@{X}": L.Key.random(), f"access/{X}@{X}": L.Key.random(),
                                        f"krbtgt/{X}@{A}": ax, f"krbtgt/{B}@{X}": xb}))
        kb = await K.start_kdc(_cfg(B, {f"krbtgt/{B}@{B}": L.Key.random(), f"access/{B}@{B}": L.Key.random(),
                                        f"krbtgt/{B}@{X}": xb, f"nar1@{B}": nark}))
        try:
            addrs = {A: ka.address, X: kx.address, B: kb.address}
            tgt = await K.KdcClient(ka.address).as_exchange(MN, mnk)
            creds = await K.get_service_ticket(tgt, NAR, addrs)
            part = creds.ticket.open(nark)
            assert part.transited == (X,) and part.client == MN
            assert ka.counters["tgs_referral"] == 1 and kx.counters["tgs_referral"] == 1
            assert kb.counters["tgs_ok"] == 1
        finally:
            for s in (ka, kx, kb):
                s.close()

    asyncio.run(go())


def test_rate_limit_and_retransmission_reply_cache():
    clock = Clock(1_800_000_000.0)
    mnk = L.Key.random()

    async def go():
        srv = await K.start_kdc(_cfg(A, {f"krbtgt/{A}@{A}": L.Key.random(), f"access/{A}@{A}": L.Key.random(),
                                         f"mn1@{A}": mnk}, rate=1.0, burst=3), clock=clock)
        try:
            req = L.build_as_req(MN, L.krbtgt(A), mnk, now=clock()).encode()
            k = srv.kdc
            r1 = await k.handle(req, "10.0.0.1")
            r2 = await k.handle(req, "10.0.0.1")  # a retransmission: the same reply, from the reply cache
            assert r1 == r2 and k.counters["reply_cache_hits"] == 1 and k.counters["as_ok"] == 1
            assert await k.handle(b"\x0a", "10.0.0.1") is not None  # third token: answered (malformed)
            assert k.counters["malformed"] == 1
            assert await k.handle(req, "10.0.0.1") is None  # bucket empty: silent drop
            assert k.counters["rate_limited"] == 1
            assert await k.handle(req, "10.0.0.2") is not None  # other sources unaffected
            clock.t += 1.0  # one token back
            assert await k.handle(req, "10.0.0.1") is not None
            # and over real UDP the client gets its AS-REP
            creds = await K.KdcClient(srv.address, clock=clock).as_exchange(MN, mnk)
            assert creds.server == L.krbtgt(A)
        finally:
            srv.close()

    asyncio.run(go())


def test_token_bucket_table_is_bounded():
    clock = Clock(0.0)
    t = K.TokenBucketTable(rate=1.0, burst=2, max_sources=2, clock=clock)
    assert t.allow("a") is None and t.allow("b") is None
    assert t.allow("c") == "sources_full"  # a's and b's buckets are not refilled: refuse, keep them
    assert len(t) == 2
    clock.t = 1.0  # 'a' (LRU) has refilled to 2 tokens: its slot may be taken
    assert t.allow("c") is None and len(t) == 2
    assert t.allow("c") is None and t.allow("c") == "rate_limited"


def test_kdc_answers_garbage_with_error_only():
    async def go():
        srv = await K.start_kdc(_cfg(A, {f"krbtgt/{A}@{A}": L.Key.random(), f"access/{A}@{A}": L.Key.random()},
                                     burst=10_000, rate=10_000))
        try:
            pdus = [b"", b"\x00", b"\x0c\x01\xff", os.urandom(100), L.KrbError(1).encode(), b"\x28\x01" + bytes(50)]
            for p in pdus:
                reply = await srv.kdc.handle(p, "x")
                assert isinstance(L.decode_pdu(reply), L.KrbError)
            assert srv.kdc.counters["malformed"] == len(pdus)
        finally:
            srv.close()

    asyncio.run(go())


def test_tgs_replay_and_expired_tgt_refused():
    clock = Clock(1_800_000_000.0)
    mnk = L.Key.random()

    async def go():
        srv = await K.start_kdc(_cfg(A, {f"krbtgt/{A}@{A}": L.Key.random(), f"access/{A}@{A}": L.Key.random(),
                                         f"mn1@{A}": mnk}, ticket_lifetime=100), clock=clock)
        try:
            cli = K.KdcClient(srv.address, clock=clock, timeout=1.0)
            tgt = await cli.as_exchange(MN, mnk)
            req = L.build_tgs_req(tgt, L.access_principal(A), now=clock())
            ok = await srv.kdc.handle(req.encode(), "s")
            assert L.read_kdc_rep(ok, tgt.session_key, req.nonce).server == L.access_principal(A)
            # the same authenticator in a different request body: replay cache or binding catches it
            forged = L.TgsReq(req.ap_req, L.access_principal(A), req.nonce + 1, req.till)
            err = L.decode_pdu(await srv.kdc.handle(forged.encode(), "s"))
            assert err.error_code == L.ErrorCode.MODIFIED
            clock.t += 100 + 301
            with pytest.raises(L.TicketExpired):
                await cli.tgs_exchange(tgt, L.access_principal(A))
        finally:
            srv.close()

    asyncio.run(go())


def test_case3_forwarded_over_two_hops_and_dead_peer():
    """NAR in B, ticket from A's KDC, B reaches A only through X: B -> X -> A and back, resealed at each
    hop.  Then X's peer A is gone: the router sees kdc_unreachable (SVC_UNAVAILABLE relayed)."""
    k_bx, k_xa, nark, acc_a = L.Key.random(), L.Key.random(), L.Key.random(), L.Key.random()

    async def go():
        ka = await K.start_kdc(_cfg(A, {f"krbtgt/{A}@{A}": L.Key.random(), f"access/{A}@{A}": acc_a,
                                        f"krbtgt/{A}@{X}": k_xa}))
        kx = await K.start_kdc(_cfg(X, {f"krbtgt/{X}@{X}": L.Key.random(), f"access/{X}@{X}": L.Key.random(),
                                        f"krbtgt/{X}@{B}": k_bx, f"krbtgt/{A}@{X}": k_xa},
                                    peers={A: ka.address}, forward_timeout=0.2, forward_retries=0))
        kb = await K.start_kdc(_cfg(B, {f"krbtgt/{B}@{B}": L.Key.random(), f"access/{B}@{B}": L.Key.random(),
                                        f"krbtgt/{X}@{B}": k_bx, f"nar1@{B}": nark},
                                    routers=frozenset({"nar1"}), routes={A: X}, peers={X: kx.address},
                                    forward_timeout=1.0, forward_retries=0))
        try:
            now = int(time.time())
            skey = L.Key(0, os.urandom(32))
            part = L.EncTicketPart(0, now, now, now + 600, skey.value, MN)
            t = L.Ticket.issue(L.access_principal(A), acc_a, part)
            creds = L.Credentials(MN, t.server, t, skey, 0, now, now, now + 600)
            kt = L.Keytab()
            kt.add(NAR, nark)
            v = L.ApVerifier(B, kt, opener=K.KdcClient(kb.address, principal=NAR, key=nark, timeout=3.0,
                                                       retries=0))
            ap, _ = L.build_ap_req(creds, BINDING, now=time.time())
            ctx = await v.verify(ap.encode(), BINDING)
            assert ctx.case == 3 and ctx.session_key == skey
            assert kb.counters["open_forwarded"] == 1 and kx.counters["open_forwarded"] == 1
            assert ka.counters["open_ok"] == 1
            ka.close()  # the home KDC goes away
            ap, _ = L.build_ap_req(creds, BINDING, now=time.time())
            with pytest.raises(L.KdcUnreachable):
                await v.verify(ap.encode(), BINDING)
            assert v.counters["kdc_unreachable"] == 1 and v.counters["ok"] == 1
        finally:
            for s in (ka, kx, kb):
                s.close()

    asyncio.run(go())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_kdc_never_raises_on_arbitrary_datagrams(data):
    kdc = _FUZZ_KDC
    reply = asyncio.run(kdc.handle(data, "fuzz"))
    assert reply is not None
    assert isinstance(L.decode_pdu(reply), (L.KrbError, L.KdcRep, L.OpenRep))


_FUZZ_KDC = K.Kdc(_cfg(A, {f"krbtgt/{A}@{A}": L.Key.random(), f"access/{A}@{A}": L.Key.random(),
                           f"mn1@{A}": L.Key.random()}, rate=1e9, burst=10**9))


# ================================================================================ configuration


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('realm = "R"\n[[keys]]\nprincipal = "krbtgt/R@R"\nkey = "zz"\n')
    with pytest.raises(ConfigError) as ei:
        K.load_config(str(bad))
    assert ei.value.key == "keys[0].key"
    bad.write_text('realm = "R"\n')
    with pytest.raises(ConfigError) as ei:
        K.load_config(str(bad))
    assert ei.value.key == "keys"
    bad.write_text('realm = 3\n')
    with pytest.raises(ConfigError) as ei:
        K.load_config(str(bad))
    assert ei.value.key == "realm"
    bad.write_text('realm = [')
    with pytest.raises(ConfigError):
        K.load_config(str(bad))


@pytest.mark.parametrize(("text", "key"), [
    ('realm = "R"\nskew = "soon"\n', "skew"),
    ('realm = "R"\nbogus = 1\n', "bogus"),
    ('realm = "R"\n[rate]\nburst = 0\n', "rate.burst"),
    ('realm = "R"\nlisten = "nohost"\n', "listen"),
    ('realm = "R"\n[[keys]]\nprincipal = "a@R"\nkvno = 300\nkey = "00"\n', "keys[0].kvno"),
    ('realm = "R"\n[[keys]]\nprincipal = "noat"\nkey = "00"\n', "keys[0].principal"),
    ('realm = "R"\n[[keys]]\nprincipal = "a@R"\n', "keys[0].key"),
    ('realm = "R"\n[[keys]]\nprincipal = "a@R"\nkey = "00"\nskew = 3\n', "keys[0].skew"),
])
def test_config_type_errors_name_the_key(tmp_path, text, key):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as ei:
        K.load_config(str(f))
    assert ei.value.key == key


def test_config_full_file_parses(tmp_path):
    keys = Keys()
    f = tmp_path / "b.toml"
    f.write_text('ticket_lifetime = 600\nreply_cache = 8\n' + keys.toml_b(("127.0.0.1", 9)))
    cfg = K.load_config(str(f))
    assert cfg.realm == B and cfg.peers == {A: ("127.0.0.1", 9)} and cfg.routers == frozenset({"nar1"})
    assert cfg.ticket_lifetime == 600 and cfg.reply_cache == 8 and cfg.rate == 1000.0
    assert cfg.next_hop(A) == A
    with pytest.raises(L.UnknownRealm):
        cfg.next_hop("REALM-Z")
    assert keys.nar not in repr(cfg)


def test_cli_exits_2_on_bad_config(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('realm = "R"\n')
    env = dict(os.environ, PYTHONPATH=REPO)
    p = subprocess.run([sys.executable, "-m", "fmipfast.security.kdc", "--config", str(bad)], capture_output=True,
                       env=env, timeout=30)
    assert p.returncode == 2 and b"keys" in p.stderr
    assert bytes.fromhex(Keys().nar) not in p.stderr


# ================================================================================ refusals counted, errors readable


def _world(clock, **kw):
    mnk, nark, acc = L.Key.random(), L.Key.random(), L.Key.random()
    cfg = _cfg(A, {f"krbtgt/{A}@{A}": L.Key.random(), f"access/{A}@{A}": acc, f"mn1@{A}": mnk, f"nar1@{A}": nark,
                   f"svc/x@{A}": L.Key.random(), f"krbtgt/{B}@{A}": L.Key.random()},
               routers=frozenset({"nar1"}), **kw)
    return K.Kdc(cfg, clock=clock), mnk, nark, acc


_OUTCOMES = ("as_ok", "tgs_ok", "tgs_referral", "open_ok", "open_forwarded", "errors", "malformed")


@pytest.mark.parametrize("server", [L.Principal("svc/x", A), L.Principal("svc/y", B)], ids=["service", "referral"])
def test_tgs_refused_for_its_lifetime_is_counted_as_that_error_only(server):
    """A TGS-REQ whose lifetime would end in the past passes every check but the last: the refusal is an
    error (err_policy), and neither tgs_ok nor tgs_referral moves."""
    clock = Clock(1_800_000_000.0)
    kdc, mnk, _, _ = _world(clock)

    async def go():
        asr = L.build_as_req(MN, L.krbtgt(A), mnk, now=clock())
        tgt = L.read_kdc_rep(await kdc.handle(asr.encode(), "s"), mnk, asr.nonce)
        before = dict(kdc.counters)
        req = L.build_tgs_req(tgt, server, now=clock(), lifetime=-10)
        err = L.decode_pdu(await kdc.handle(req.encode(), "s"))
        assert isinstance(err, L.KrbError) and err.error_code == L.ErrorCode.POLICY
        moved = {k: kdc.counters.get(k, 0) - before.get(k, 0) for k in kdc.counters}
        assert moved["tgs_ok"] == 0 and moved["tgs_referral"] == 0
        assert moved["errors"] == 1 and moved["err_policy"] == 1
        ok = L.build_tgs_req(tgt, server, now=clock())
        assert not isinstance(L.decode_pdu(await kdc.handle(ok.encode(), "s")), L.KrbError)
        assert kdc.counters["tgs_ok"] + kdc.counters["tgs_referral"] == 1

    asyncio.run(go())


@pytest.mark.parametrize("shift", range(4))
def test_error_text_is_cut_on_a_character_boundary(shift):
    for char in ("é", "€", "𝄞"):
        text = "x" * shift + char * 200
        cut = K.error_text(text)
        raw = cut.encode("utf-8")
        assert len(raw) <= 255 and cut.endswith("...") and text.startswith(cut[:-3])
        reply = L.KrbError(L.ErrorCode.GENERIC, 0, 1, cut).encode()
        assert L.decode_pdu(reply).text == cut
    assert K.error_text("short é") == "short é"


@pytest.mark.parametrize("shift", range(3))
def test_client_sees_the_kdcs_error_for_a_long_multibyte_name(shift):
    """An unknown client whose name is long and multi-byte: the KRB-ERROR text is cut at 255 octets; the cut
    must fall between characters, so the client shows the KDC's error, not 'unreachable'."""
    clock = Clock(time.time())

    async def go():
        srv = await K.start_kdc(_cfg(A, {f"krbtgt/{A}@{A}": L.Key.random(), f"access/{A}@{A}": L.Key.random()}),
                                clock=clock)
        try:
            who = L.Principal("x" * shift + "é" * 120, A)
            reply = await srv.kdc.handle(L.build_as_req(who, L.krbtgt(A), None, now=clock()).encode(), "s")
            err = L.decode_pdu(reply)
            assert err.error_code == L.ErrorCode.C_PRINCIPAL_UNKNOWN and "unknown client" in err.text
            cli = K.KdcClient(srv.address, clock=clock, timeout=0.5, retries=0)
            with pytest.raises(L.LkbError) as info:
                await cli.as_exchange(who, L.Key.random())
            assert not isinstance(info.value, L.KdcUnreachable), info.value
            assert "C_PRINCIPAL_UNKNOWN" in str(info.value) and "unknown client" in str(info.value)
        finally:
            srv.close()

    asyncio.run(go())


def test_client_shows_a_peer_error_whose_text_is_not_utf8():
    """A KDC that cuts its text inside a character (as this one once did): the client still reports its error."""
    async def go():
        loop = asyncio.get_running_loop()

        class Peer(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                self.transport = transport

            def datagram_received(self, data, addr):
                good = L.KrbError(L.ErrorCode.POLICY, 0, 0, "refused: é").encode()
                self.transport.sendto(good[:-1], addr)  # the last octet of 'é' cut off, the length kept

        transport, _ = await loop.create_datagram_endpoint(Peer, local_addr=("127.0.0.1", 0))
        try:
            cli = K.KdcClient(transport.get_extra_info("sockname")[:2], timeout=0.5, retries=0)
            with pytest.raises(L.LkbError) as info:
                await cli.as_exchange(MN, L.Key.random())
            assert not isinstance(info.value, L.KdcUnreachable) and "refused" in str(info.value)
        finally:
            transport.close()

    asyncio.run(go())


class _Seeds:
    """Well-formed AS, TGS (service, referral, unknown realm) and OPEN requests for one in-process KDC whose
    reply cache is off, so every datagram is handled afresh."""

    def __init__(self) -> None:
        self.clock = Clock(1_800_000_000.0)
        self.kdc, mnk, nark, acc = _world(self.clock, rate=1e9, burst=10 ** 9, reply_cache=0)
        clock = self.clock

        async def make():
            asr = L.build_as_req(MN, L.krbtgt(A), mnk, now=clock())
            tgt = L.read_kdc_rep(await self.kdc.handle(asr.encode(), "s"), mnk, asr.nonce)
            now = int(clock())
            skey = L.Key(0, os.urandom(32))
            ticket = L.Ticket.issue(L.access_principal(A), acc, L.EncTicketPart(0, now, now, now + 600, skey.value, MN))
            return [asr.encode(), L.build_as_req(MN, L.krbtgt(A), None, now=clock()).encode(),
                    L.build_tgs_req(tgt, L.Principal("svc/x", A), now=clock()).encode(),
                    L.build_tgs_req(tgt, L.Principal("svc/y", B), now=clock()).encode(),
                    L.build_tgs_req(tgt, L.Principal("svc/z", "REALM-Z"), now=clock()).encode(),
                    L.OpenReq.build(L.Principal("nar1", A), nark, ticket, 77, clock()).encode()]

        self.pdus = asyncio.run(make())


_SEEDS = _Seeds()
_MUTATION = st.tuples(st.sampled_from(["set", "cut", "insert", "ff", "zero"]), st.integers(0, 2000),
                      st.integers(0, 255))


def _mutate(data: bytes, mutations) -> bytes:
    b = bytearray(data)
    for op, where, value in mutations:
        i = where % (len(b) + 1)
        if op == "set" and i < len(b):
            b[i] = value
        elif op == "cut":
            del b[i:]
        elif op == "insert":
            b.insert(i, value)
        elif op == "ff":
            b[i:i + 4] = b"\xff" * 4
        elif op == "zero":
            b[i:i + 8] = bytes(8)
    return bytes(b)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, len(_SEEDS.pdus) - 1), st.lists(_MUTATION, max_size=4),
       st.one_of(st.sampled_from([0.0, -400.0, 400.0, 36000.0 + 100]), st.floats(-1e6, 1e6)))
def test_kdc_answers_mutated_requests_with_a_wellformed_pdu_and_counts_one_outcome(seed, mutations, shift):
    """Real requests with octets changed, cut or inserted, at a clock moved back or forth (36100 s: the TGT has
    ended but is within the skew, so only the lifetime check refuses): the KDC never raises;
    it answers a well-formed PDU (a KRB-ERROR whose text is valid UTF-8, or a reply), and exactly one outcome
    counter moves per request."""
    kdc = _SEEDS.kdc
    _SEEDS.clock.t = 1_800_000_000.0 + shift
    data = _mutate(_SEEDS.pdus[seed], mutations)
    before = sum(kdc.counters.get(k, 0) for k in _OUTCOMES)
    reply = asyncio.run(kdc.handle(data, "fuzz"))
    assert reply is not None
    assert isinstance(L.decode_pdu(reply), (L.KrbError, L.KdcRep, L.OpenRep))
    assert sum(kdc.counters.get(k, 0) for k in _OUTCOMES) == before + 1


def test_a_clock_stepped_back_does_not_empty_the_buckets():
    clock = Clock(1000.0)
    t = K.TokenBucketTable(rate=200.0, burst=50, max_sources=4, clock=clock)
    assert t.allow("a") is None
    clock.t -= 5.0  # the wall clock steps back five seconds
    assert t.allow("a") is None and t.allow("b") is None


def test_an_internal_fault_is_a_counted_drop_not_an_exception(monkeypatch):
    """A fault of the KDC's own (here a struct.error from deep inside) is a counted drop: handle() never raises."""
    import struct

    clock = Clock(1_800_000_000.0)
    kdc, mnk, _, _ = _world(clock)

    def broken(req):
        raise struct.error("a fault of the KDC's own")

    monkeypatch.setattr(kdc, "_as", broken)
    req = L.build_as_req(MN, L.krbtgt(A), mnk, now=clock()).encode()
    assert asyncio.run(kdc.handle(req, "s")) is None
    assert kdc.counters["dropped"] == 1 and kdc.counters["as_ok"] == 0

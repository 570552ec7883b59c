"""Known-answer vectors for every light-weight Kerberos PDU (tests/golden/lwkerb.py).

One AS / TGS / AP / OPEN exchange is built from fixed keys, times and nonces through the same builders the
client, the KDC and the verifier use; every PDU (and the plaintext sealed inside it) must come out octet for
octet as committed.  The committed octets are then decoded and their fields compared with literals, and every
sealed blob is opened with ``cryptography``'s AES-GCM directly, with the associated data put together from
the layout in docs/security.md — not through lwkerb — so a change to the layout, the AAD or the key usage
fails here even if encoder and decoder change together.
"""

from __future__ import annotations

import hashlib
import re

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fmipfast.security import lwkerb as L
from tests.golden import lwkerb as G


def golden(name: str) -> bytes:
    return bytes.fromhex(re.sub(r"#[^\n]*", "", G.VECTORS[name]).replace(" ", "").replace("\n", ""))


MN = L.Principal("mn1", G.REALM_A)
NAR = L.Principal("nar1", G.REALM_B)
TGS = L.krbtgt(G.REALM_A)
ACCESS = L.access_principal(G.REALM_B)
K_MN = L.Key(1, G.K_MN)
K_TGS = L.Key(2, G.K_TGS)
K_NAR = L.Key(3, G.K_NAR)
K_ACCESS = L.Key(4, G.K_ACCESS)
BINDING = L.HandoverBinding(G.NCOA, G.PCOA, G.NAR_ADDRESS, G.IDENTIFIER)
T0 = G.NOW
FLAGS_TGT = int(L.TicketFlag.INITIAL | L.TicketFlag.PRE_AUTHENT)
FLAGS_SVC = int(L.TicketFlag.PRE_AUTHENT)


def build_exchange() -> dict[str, bytes]:
    """The exchange of tests/golden/lwkerb.py, built with the real builders (only the randomness is fixed)."""
    out: dict[str, bytes] = {}
    as_req = L.build_as_req(MN, TGS, K_MN, now=T0, lifetime=36000, nonce=G.AS_NONCE, seal_nonce=G.GCM[1])
    out["as_req"] = as_req.encode()
    out["as_req_nopa"] = L.build_as_req(MN, TGS, None, now=T0, lifetime=36000, nonce=G.AS_NONCE).encode()
    # KDC: the TGT and the AS-REP (kdc.KdcServer._as does the same with a random session key and nonces)
    tgt_part = L.EncTicketPart(FLAGS_TGT, T0, T0, T0 + 36000, G.SK_TGT, MN)
    out["tgt.enc_part"] = tgt_part.encode()
    tgt = L.Ticket.issue(TGS, K_TGS, tgt_part, seal_nonce=G.GCM[2])
    out["tgt"] = tgt.encode()
    as_rep_part = L.EncKdcRepPart(G.SK_TGT, G.AS_NONCE, FLAGS_TGT, T0, T0, T0 + 36000, TGS)
    out["as_rep.enc_part"] = as_rep_part.encode()
    as_rep = L.KdcRep(L.MsgType.AS_REP, MN, tgt, L.seal(K_MN, L.Usage.AS_REP, MN.encode(), as_rep_part.encode(),
                                                         nonce=G.GCM[3]), K_MN.kvno)
    out["as_rep"] = as_rep.encode()
    tgt_creds = L.read_kdc_rep(out["as_rep"], K_MN, G.AS_NONCE)
    # TGS exchange for nar1@REALM-B's ticket
    tgs_req = L.build_tgs_req(tgt_creds, NAR, now=T0 + 1, lifetime=3600, nonce=G.TGS_NONCE,
                              auth_nonce=G.AUTH_NONCE_TGS, seal_nonce=G.GCM[4])
    out["tgs_req"] = tgs_req.encode()
    svc_part = L.EncTicketPart(FLAGS_SVC, T0, T0 + 1, T0 + 3601, G.SK_SVC, MN, ((L.AUTHZ_TRANSITED, b"REALM-X"),))
    out["ticket.enc_part"] = svc_part.encode()
    ticket = L.Ticket.issue(NAR, K_NAR, svc_part, seal_nonce=G.GCM[5])
    out["ticket"] = ticket.encode()
    tgs_rep_part = L.EncKdcRepPart(G.SK_SVC, G.TGS_NONCE, FLAGS_SVC, T0, T0 + 1, T0 + 3601, NAR)
    out["tgs_rep.enc_part"] = tgs_rep_part.encode()
    tgs_rep = L.KdcRep(L.MsgType.TGS_REP, MN, ticket, L.seal(tgt_creds.session_key, L.Usage.TGS_REP, MN.encode(),
                                                             tgs_rep_part.encode(), nonce=G.GCM[6]), 0)
    out["tgs_rep"] = tgs_rep.encode()
    creds = L.read_kdc_rep(out["tgs_rep"], tgt_creds.session_key, G.TGS_NONCE)
    # AP exchange at the NAR (case 1), through the real verifier
    ap_req, auth = L.build_ap_req(creds, BINDING, now=T0 + 2, auth_nonce=G.AUTH_NONCE_AP, seal_nonce=G.GCM[7])
    out["ap_req.authenticator"] = auth.encode()
    out["ap_req"] = ap_req.encode()
    keytab = L.Keytab()
    keytab.add(NAR, K_NAR)
    ctx = L.ApVerifier(G.REALM_B, keytab, clock=lambda: T0 + 2).verify_local(out["ap_req"], BINDING)
    out["ap_rep.enc_part"] = L.EncApRepPart(auth.ctime_us, auth.nonce).encode()
    out["ap_rep"] = ctx.ap_rep(seal_nonce=G.GCM[8]).encode()
    out["krb_error"] = L.KrbError(int(L.ErrorCode.SKEW), T0 + 3, G.TGS_NONCE, "clock skew").encode()
    # OPEN exchange (case 2): nar1 asks its KDC to open an access ticket
    access_ticket = L.Ticket.issue(ACCESS, K_ACCESS, svc_part, seal_nonce=G.GCM[9])
    out["open_req"] = L.OpenReq.build(NAR, K_NAR, access_ticket, G.OPEN_NONCE, T0 + 2, seal_nonce=G.GCM[10]).encode()
    out["open_rep"] = L.OpenRep.build(K_NAR, G.OPEN_NONCE, svc_part, seal_nonce=G.GCM[11]).encode()
    return out


BUILT = build_exchange()


def test_every_vector_is_built_and_every_built_pdu_has_a_vector():
    assert set(BUILT) == set(G.VECTORS)


@pytest.mark.parametrize("name", sorted(G.VECTORS))
def test_encoding_reproduces_the_vector(name):
    assert BUILT[name].hex() == golden(name).hex()


def _aesgcm_open(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Sealed = nonce (12) || length (2) || ciphertext+tag, opened without lwkerb."""
    assert int.from_bytes(sealed[12:14], "big") == len(sealed) - 14
    return AESGCM(key).decrypt(sealed[:12], sealed[14:], aad)


def _p(principal: L.Principal) -> bytes:
    n, r = principal.name.encode(), principal.realm.encode()
    return bytes((len(n),)) + n + bytes((len(r),)) + r


def test_ticket_fields_and_independent_open():
    raw = golden("ticket")
    t = L.Ticket.decode(raw)
    assert (t.version, t.kvno, t.server) == (1, 3, L.Principal("nar1", "REALM-B"))
    clear = bytes((1, 3)) + _p(NAR)
    assert raw[:len(clear)] == clear and t.enc.nonce == G.GCM[5]
    assert _aesgcm_open(G.K_NAR, raw[len(clear):], bytes((2,)) + clear) == golden("ticket.enc_part")
    part = L.EncTicketPart.decode(golden("ticket.enc_part"))
    assert (part.flags, part.authtime, part.starttime, part.endtime) == (0x10, T0, T0 + 1, T0 + 3601)
    assert part.session_key == G.SK_SVC and part.client == L.Principal("mn1", "REALM-A")
    assert part.authz == ((1, b"REALM-X"),) and part.transited == ("REALM-X",)
    assert t.open(K_NAR) == part


def test_tgt_fields():
    raw = golden("tgt")
    t = L.Ticket.decode(raw)
    assert (t.kvno, t.server) == (2, L.Principal("krbtgt/REALM-A", "REALM-A"))
    clear = bytes((1, 2)) + _p(TGS)
    assert _aesgcm_open(G.K_TGS, raw[len(clear):], bytes((2,)) + clear) == golden("tgt.enc_part")
    part = L.EncTicketPart.decode(golden("tgt.enc_part"))
    assert (part.flags, part.endtime, part.session_key, part.authz) == (0x18, T0 + 36000, G.SK_TGT, ())


def test_as_req_fields():
    raw = golden("as_req")
    req = L.decode_pdu(raw)
    assert isinstance(req, L.AsReq)
    assert (req.client, req.server, req.nonce, req.till, req.options) == (MN, TGS, G.AS_NONCE, T0 + 36000, 0)
    assert req.pa_kvno == 1 and req.pa_enc_timestamp is not None and req.pa_enc_timestamp.nonce == G.GCM[1]
    body = bytes((10, 1, 0)) + _p(MN) + _p(TGS) + G.AS_NONCE.to_bytes(8, "big") + (T0 + 36000).to_bytes(4, "big")
    assert raw[:len(body)] == body and raw[len(body):len(body) + 2] == b"\x01\x01"
    ctime = _aesgcm_open(G.K_MN, raw[len(body) + 2:], bytes((1,)) + _p(MN))
    assert ctime == (T0 * 10**6).to_bytes(8, "big")
    nopa = golden("as_req_nopa")
    assert nopa == body + b"\x00"
    assert L.AsReq.decode(nopa).pa_enc_timestamp is None


def test_as_rep_fields_and_client_reading():
    raw = golden("as_rep")
    rep = L.decode_pdu(raw)
    assert isinstance(rep, L.KdcRep)
    assert (rep.msg_type, rep.client, rep.kvno) == (L.MsgType.AS_REP, MN, 1)
    assert rep.ticket.encode() == golden("tgt")
    head = bytes((11, 1)) + _p(MN) + len(golden("tgt")).to_bytes(2, "big") + golden("tgt") + b"\x01"
    assert raw[:len(head)] == head
    assert _aesgcm_open(G.K_MN, raw[len(head):], bytes((3,)) + _p(MN)) == golden("as_rep.enc_part")
    part = L.EncKdcRepPart.decode(golden("as_rep.enc_part"))
    assert (part.session_key, part.nonce, part.flags, part.server) == (G.SK_TGT, G.AS_NONCE, 0x18, TGS)
    creds = L.read_kdc_rep(raw, K_MN, G.AS_NONCE)
    assert creds.session_key.value == G.SK_TGT and creds.endtime == T0 + 36000


def test_tgs_req_fields_and_body_binding():
    raw = golden("tgs_req")
    req = L.decode_pdu(raw)
    assert isinstance(req, L.TgsReq)
    assert (req.server, req.nonce, req.till, req.options) == (NAR, G.TGS_NONCE, T0 + 1 + 3600, 0)
    assert req.ap_req.ticket.encode() == golden("tgt") and req.ap_req.options == 0
    ap_len = int.from_bytes(raw[2:4], "big")
    body = raw[4 + ap_len:]
    assert body == b"\x00" + _p(NAR) + G.TGS_NONCE.to_bytes(8, "big") + (T0 + 3601).to_bytes(4, "big")
    ap = raw[4:4 + ap_len]
    t_len = int.from_bytes(ap[3:5], "big")
    auth = _aesgcm_open(G.SK_TGT, ap[5 + t_len:], bytes((7,)))
    a = L.Authenticator.decode(auth)
    assert (a.client, a.ctime_us, a.nonce) == (MN, (T0 + 1) * 10**6, G.AUTH_NONCE_TGS)
    assert a.binding == b"\x02" + hashlib.sha256(body).digest()[:16]


def test_tgs_rep_fields():
    raw = golden("tgs_rep")
    rep = L.decode_pdu(raw)
    assert isinstance(rep, L.KdcRep) and (rep.msg_type, rep.kvno) == (L.MsgType.TGS_REP, 0)
    assert rep.ticket.encode() == golden("ticket")
    head_len = 2 + len(_p(MN)) + 2 + len(golden("ticket")) + 1
    assert _aesgcm_open(G.SK_TGT, raw[head_len:], bytes((8,)) + _p(MN)) == golden("tgs_rep.enc_part")
    part = L.EncKdcRepPart.decode(golden("tgs_rep.enc_part"))
    assert (part.session_key, part.nonce, part.starttime, part.endtime, part.server) == (
        G.SK_SVC, G.TGS_NONCE, T0 + 1, T0 + 3601, NAR)


def test_ap_req_fields_and_verification():
    raw = golden("ap_req")
    req = L.decode_pdu(raw)
    assert isinstance(req, L.ApReq)
    assert raw[:3] == bytes((14, 1, 1)) and req.options == 1 and req.ticket.encode() == golden("ticket")
    t_len = int.from_bytes(raw[3:5], "big")
    assert t_len == len(golden("ticket"))
    assert _aesgcm_open(G.SK_SVC, raw[5 + t_len:], bytes((11,))) == golden("ap_req.authenticator")
    a = L.Authenticator.decode(golden("ap_req.authenticator"))
    assert (a.client, a.ctime_us, a.nonce) == (MN, (T0 + 2) * 10**6, G.AUTH_NONCE_AP)
    assert a.binding == (b"\x01" + bytes.fromhex("20010db8000b00000000000000000099")
                         + bytes.fromhex("20010db8000a00000000000000000099")
                         + bytes.fromhex("20010db8000b00000000000000000001") + b"\x01\x02")
    assert L.HandoverBinding.decode(a.binding) == BINDING
    keytab = L.Keytab()
    keytab.add(NAR, K_NAR)
    ctx = L.ApVerifier(G.REALM_B, keytab, clock=lambda: T0 + 2).verify_local(raw, BINDING)
    assert ctx.case == 1 and ctx.session_key.value == G.SK_SVC


def test_ap_rep_fields():
    raw = golden("ap_rep")
    assert len(raw) == 48 and raw[:2] == bytes((15, 1))
    assert _aesgcm_open(G.SK_SVC, raw[2:], bytes((12,))) == golden("ap_rep.enc_part")
    assert golden("ap_rep.enc_part") == ((T0 + 2) * 10**6).to_bytes(8, "big") + G.AUTH_NONCE_AP
    auth = L.Authenticator.decode(golden("ap_req.authenticator"))
    assert L.check_ap_rep(raw, L.Key(0, G.SK_SVC), auth) == L.EncApRepPart((T0 + 2) * 10**6, G.AUTH_NONCE_AP)


def test_krb_error_fields():
    raw = golden("krb_error")
    assert raw == (bytes((30, 1)) + (37).to_bytes(2, "big") + (T0 + 3).to_bytes(4, "big")
                   + G.TGS_NONCE.to_bytes(8, "big") + b"\x0aclock skew")
    err = L.decode_pdu(raw)
    assert err == L.KrbError(37, T0 + 3, G.TGS_NONCE, "clock skew")
    with pytest.raises(L.ClockSkew):
        L.read_kdc_rep(raw, K_MN, G.TGS_NONCE)


def test_open_req_and_open_rep_fields():
    raw = golden("open_req")
    req = L.decode_pdu(raw)
    assert isinstance(req, L.OpenReq)
    assert (req.requester, req.kvno, req.nonce, req.ticket.server) == (NAR, 3, G.OPEN_NONCE, ACCESS)
    clear_len = 2 + len(_p(NAR)) + 1 + 8 + 2 + len(req.ticket.encode())
    assert _aesgcm_open(G.K_NAR, raw[clear_len:], bytes((40,)) + raw[:clear_len]) == ((T0 + 2) * 10**6).to_bytes(
        8, "big")
    assert req.ctime_us(K_NAR) == (T0 + 2) * 10**6
    assert req.ticket.open(K_ACCESS) == L.EncTicketPart.decode(golden("ticket.enc_part"))
    rep_raw = golden("open_rep")
    rep = L.decode_pdu(rep_raw)
    assert isinstance(rep, L.OpenRep) and rep.nonce == G.OPEN_NONCE
    assert _aesgcm_open(G.K_NAR, rep_raw[10:], bytes((41,)) + rep_raw[:10]) == golden("ticket.enc_part")
    assert rep.open(K_NAR) == L.EncTicketPart.decode(golden("ticket.enc_part"))


def test_sizes_match_the_documented_table():
    """docs/security.md §3.12 (client mn1@REALM-A, NAR nar1@REALM-B, no authorization data): the AP-REQ there
    has no transited TLV; ours carries one of 2 + 7 octets in its ticket."""
    assert len(golden("as_req")) == 90 and len(golden("tgt")) == 115 and len(golden("as_rep")) == 239
    assert len(golden("ap_req")) == 219 + 9 and len(golden("ap_rep")) == 48
    assert len(golden("krb_error")) == 17 + len("clock skew")

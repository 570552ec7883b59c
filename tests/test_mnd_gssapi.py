"""``fmipfast mn`` (fmipfast/mnd.py) with ``[mn] mechanism = "gssapi"`` on a real kernel (root), against real MIT
KDCs (k5test, ``tests/mitrealm.py``): the ``tests/test_mnd.py`` harness -- the daemon on ``mn0``, the peer
namespace playing both access routers -- with the routers accepting GSS-API tokens with their keytabs.

The daemon hands over from its kinit cache; a router of the other mechanism refuses it before verifying
anything (counted ``mechanism_mismatch``, as ``fmipfast router`` does: ``security.gss.check_mechanism``); the
routers' service tickets are precached into the cache in the background, from ``[mn.gssapi] precache`` at
start and from an RA's adjacent realms, and a ticket that cannot be fetched is counted and logged, never
raised."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

import pytest

from fmipfast.config import MnConfig, MnGssapiConfig
from fmipfast.mn import MnState
from fmipfast.protocol import Trigger
from fmipfast.security import lwkerb as L
from fmipfast.security.ccache import save_credentials
from tests.test_mnagent import AR_A, AR_A_LL, AR_B, NCOA_B, P_A, PCOA_A, ROOT, Lab, Peer, _credentials, _until
from tests.test_mnagent import lab as lab  # noqa: F401  (the fixture)
from tests.test_mnd import _flip, _run

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not ROOT, reason="needs root for network namespaces, raw sockets and netlink "
                                                  "(CI runs as root)")]
if not ROOT:
    print("test_mnd_gssapi: not root, the MN daemon's standard Kerberos tests are skipped", file=sys.stderr)

from tests.mitrealm import NAR_SERVICE, PAR_SERVICE, B, cached_services, two_realms  # noqa: E402

GHOST = "access/ghost.b.example@B.EXAMPLE"  # in no KDC: its ticket cannot be fetched


@pytest.fixture(scope="module")
def realms():
    with two_realms() as r:
        r.par_keytab = r.service(PAR_SERVICE)
        r.nar_keytab = r.service(NAR_SERVICE)
        yield r


class Checked:
    """A router's verifier behind the mechanism check ``fmipfast router`` makes first."""

    def __init__(self, verifier: Any, mechanism: str) -> None:
        self.verifier, self.mechanism = verifier, mechanism
        self.counters = verifier.counters
        self.refusals: list[str] = []

    def verify_local(self, pdu: bytes, binding: Any) -> Any:
        from fmipfast.security.gss import check_mechanism

        try:
            check_mechanism(self.mechanism, pdu, self.counters)
            return self.verifier.verify_local(pdu, binding)
        except L.LkbError as exc:
            self.refusals.append(f"{type(exc).__name__}: {exc}")
            raise


def _gss_routers(realms, tmp_path) -> dict[str, Checked]:
    from fmipfast.security.gss import GssVerifier

    return {name: Checked(GssVerifier(kt, svc, rcache=f"file2:{tmp_path}/{name}.rcache2"), "gssapi")
            for name, kt, svc in (("A", realms.par_keytab, PAR_SERVICE), ("B", realms.nar_keytab, NAR_SERVICE))}


def _gss_daemon(lab: Lab, realms, tmp_path, switch: tuple[str, ...] = ("true",), **gss: Any):
    from fmipfast.mnd import MnDaemon

    ccache = realms.kinit(str(tmp_path / "mn.krb5cc"))  # a fresh cache per test: its TGT only
    cfg = MnConfig("mn0", str(AR_A), PAR_SERVICE, str(PCOA_A), switch_command=switch, pcoa_release_ms=100,
                   mechanism="gssapi", gssapi=MnGssapiConfig(ccache=ccache, **gss))
    with lab.mn.enter():
        return MnDaemon(cfg), ccache


def test_a_gssapi_daemon_hands_over_between_gssapi_routers(lab: Lab, realms, tmp_path):
    routers = _gss_routers(realms, tmp_path)
    peer = Peer(lab, routers)  # type: ignore[arg-type]
    daemon, ccache = _gss_daemon(lab, realms, tmp_path, _flip(lab), precache=(NAR_SERVICE,))

    async def body() -> None:
        await _until(lambda: daemon.gss.counters["precached"] == 1, "the NAR's ticket precached at start")
        assert NAR_SERVICE in cached_services(ccache)
        peer.feed("A", Trigger(PCOA_A, AR_B, L.Principal.parse(NAR_SERVICE)))
        await _until(lambda: daemon.counters["pcoa_released"] == 1, "the handover and the PCoA's release")

    _run(peer, daemon, body)
    st = daemon.status()
    assert (st["state"], st["router"], st["coa"]) == ("attached", str(AR_B), str(NCOA_B)), st
    assert st["counters"]["daemon"]["handovers_completed"] == 1 and st["counters"]["mn"]["bad_ap_rep"] == 0
    # the initial attach's token at A, the handover's at B (the HI), each the GSS-API mechanism's
    assert routers["A"].counters["ok"] == 1 and routers["B"].counters["ok"] == 1
    assert routers["A"].refusals == routers["B"].refusals == []
    tickets = st["counters"]["tickets"]  # the initiator's counters, exported like the ticket cache's
    # two tickets made ready (A's for the attach, B's precached after A's RA); the handover to B reuses B's
    assert tickets["precached"] == 1 and tickets["ticket_errors"] == 0, tickets
    assert tickets["tickets"] == 2 and tickets["tickets_reused"] >= 1, tickets
    assert 'fmipfast_mn_tickets_total{interface="mn0",event="precached"} 1' in daemon.metrics()
    assert {PAR_SERVICE, NAR_SERVICE} <= set(cached_services(ccache))


def test_an_ra_naming_an_adjacent_realm_precaches_its_routers_tickets(lab: Lab, realms, tmp_path, caplog):
    """The PAR's RA lists realm B (draft §6.1.1): the daemon fetches the tickets of ``[mn.gssapi] adjacent``'s
    routers for B into the credential cache in the background.  One of them is in no KDC: counted, logged
    once, asked for again only after ``precache_retry_s``; the daemon goes on, attached."""
    from fmipfast.messages import AdjacentRealms as RealmsOption
    from fmipfast.messages import RouterAdvertisement, encode

    peer = Peer(lab, _gss_routers(realms, tmp_path))  # type: ignore[arg-type]
    daemon, ccache = _gss_daemon(lab, realms, tmp_path, adjacent=((B, (NAR_SERVICE, GHOST)),), precache_retry_s=60)
    ra = encode(RouterAdvertisement(options=(RealmsOption((B, "C.EXAMPLE")),)), AR_A_LL, "ff02::1")
    all_ff02 = __import__("ipaddress").IPv6Address("ff02::1")

    async def body() -> None:
        assert NAR_SERVICE not in cached_services(ccache)
        peer.send(ra, AR_A_LL, all_ff02, 255)
        await _until(lambda: daemon.gss.counters["precache_errors"] == 1 and daemon.gss.counters["precached"] == 1,
                     "the precache of realm B's routers")
        assert NAR_SERVICE in cached_services(ccache)
        peer.send(ra, AR_A_LL, all_ff02, 255)  # the next RA: one cached, one deferred; no KDC asked
        await _until(lambda: daemon.gss.counters["precache_deferred"] == 1, "the deferred retry")

    with caplog.at_level(logging.WARNING, logger="fmipfast.mnd"):
        _run(peer, daemon, body)
    c = daemon.gss.counters
    assert (c["precached"], c["precache_errors"], c["precache_cached"], c["precache_deferred"]) == (1, 1, 1, 1), c
    assert GHOST in daemon.gss.last_errors and NAR_SERVICE not in daemon.gss.last_errors
    warned = [r.getMessage() for r in caplog.records if "precached" in r.getMessage()]
    assert len(warned) == 1 and GHOST in warned[0], warned
    assert daemon.agent.mn.state == MnState.ATTACHED and daemon.agent.counters["precache_errors"] == 0
    assert daemon.agent.mn.counters["precache_requests"] == 2


@pytest.mark.parametrize("mn_mechanism", ["gssapi", "lwkerb"], ids=["gssapi-mn-lwkerb-router",
                                                                      "lwkerb-mn-gssapi-router"])
def test_a_router_of_the_other_mechanism_refuses_the_attach_and_counts_it(lab: Lab, realms, tmp_path, mn_mechanism):
    tickets, lw_verifiers = _credentials(time.time())
    if mn_mechanism == "gssapi":
        routers = {k: Checked(v, "lwkerb") for k, v in lw_verifiers.items()}
        daemon, _ = _gss_daemon(lab, realms, tmp_path)
    else:
        from fmipfast.mnd import MnDaemon

        routers = _gss_routers(realms, tmp_path)
        save_credentials(tmp_path / "mn.ccache", tickets.values())
        cfg = MnConfig("mn0", str(AR_A), str(P_A), str(PCOA_A), str(tmp_path / "mn.ccache"))
        with lab.mn.enter():
            daemon = MnDaemon(cfg)
    peer = Peer(lab, routers)  # type: ignore[arg-type]

    async def body() -> None:
        await _until(lambda: routers["A"].counters.get("mechanism_mismatch", 0) >= 1, "the refusal")
        await asyncio.sleep(0.2)

    _run(peer, daemon, body, attached=False)
    assert routers["A"].counters["ok"] == 0 and peer.routers["A"].counters["initial_refused"] >= 1
    other = "lwkerb" if mn_mechanism == "gssapi" else "gssapi"
    assert routers["A"].refusals[0] == (f"MechanismMismatch: this router accepts {other} authenticators; the MN "
                                        f"sent one of {mn_mechanism}"), routers["A"].refusals
    assert daemon.agent.mn.state != MnState.ATTACHED and daemon.agent.mn.counters["initial_attached"] == 0

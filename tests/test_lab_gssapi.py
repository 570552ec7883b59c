"""``fmipfast lab run --kerberos gssapi``: the fast handover over real namespaces, veth and two AF_PACKET engines,
authenticated with standard Kerberos -- two MIT realms (``krb5kdc`` processes made by k5test), the engines
accepting with keytabs, the MN initiating from its ``kinit`` cache and precaching the NAR's service ticket when
the PAR's Router Advertisement names realm B.

Root only (CI runs as root); the MIT tools skip with the reason like every gssapi test (``tests/mitrealm.py``:
a failure under FMIPFAST_REQUIRE_TOOLS=1).  Correctness only, as ``tests/test_lab_run.py``: nothing lost,
duplicated or reordered, both engines conserve, the NAR buffered and flushed, each router verified one GSS-API
token."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.geteuid() == 0
pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not ROOT, reason="needs root for network namespaces (CI runs as root)")]
if not ROOT:
    print("test_lab_gssapi: not root, the real-link handover with MIT Kerberos is skipped", file=sys.stderr)

from tests.mitrealm import NAR_SERVICE, PAR_SERVICE  # noqa: E402  (skips or fails without the MIT tools)
from tests.test_lab_run import _ours_of  # noqa: E402

PREFIX = f"fmipfast-g{os.getpid()}-"


def _cli(*argv: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run([sys.executable, "-m", "fmipfast", "lab", "run", "--prefix", PREFIX, *argv],
                          capture_output=True, text=True, env=env, timeout=timeout)


def test_the_fast_handover_over_the_lab_with_mit_tickets_loses_nothing():
    # 10 ms from ReadyToSwitch to the port going down, as the lwkerb run's test (tests/test_lab_run.py)
    done = _cli("--kerberos", "gssapi", "--json", "--switch-delay-ms", "10")
    assert done.returncode == 0, done.stderr[-3000:]
    assert _ours_of(PREFIX) == []  # torn down
    m = json.loads(done.stdout)
    assert m["kerberos"] == "gssapi" and m["case"] == 1
    assert m["sent"] == 2200 and (m["received"], m["lost"], m["duplicated"], m["reordered"]) == (2200, 0, 0, 0), m
    assert m["buffered"] > 0 and m["flushed"] == m["buffered"] and m["lost_ranges"] == []
    for name in ("par", "nar"):
        assert m["engines"][name]["conservation"]["holds"], m["engines"][name]
    # each engine verified one GSS-API initiator token (the PAR the initial Attach's, the NAR the HI's) and
    # refused none; the MN fetched its two service tickets, the NAR's precached from the PAR's RA
    g = m["gssapi"]
    assert g["services"] == {"par": PAR_SERVICE, "nar": NAR_SERVICE}
    assert g["par"] == {"ok": 1, "case1": 1} and g["nar"] == {"ok": 1, "case1": 1}, g
    assert g["mn"].get("precached", 0) >= 1 and g["mn"].get("ticket_errors", 0) == 0, g["mn"]
    assert g["mn"].get("precache_errors", 0) == 0, g["mn"]
    events = [what for what, _ in m["timeline_ms"]]
    order = ["mn send Attach to", "attached_par", "trigger", "mn recv HandoverRedirect", "mn send HandoverRedirectAck",
             "ready_to_switch", "layer 2: port up on brB", "mn recv AuthenticatedMN from fe80", "attached_nar",
             "mn recv BAck"]
    at = [next(i for i, e in enumerate(events) if e.startswith(o)) for o in order]
    assert at == sorted(at), events
    for bad in ("tx_errors", "netlink_errors", "callback_errors", "ticket_errors", "precache_errors"):
        assert m["mn_counters"].get(bad, 0) == 0, m["mn_counters"]


def test_gssapi_has_key_case_1_only_and_nothing_is_built_for_another():
    done = _cli("--kerberos", "gssapi", "--case", "2", timeout=60)
    assert done.returncode == 2 and "case 2 does not exist with kerberos 'gssapi'" in done.stderr, done.stderr
    assert _ours_of(PREFIX) == []

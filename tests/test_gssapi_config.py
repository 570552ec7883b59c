"""``[router.security] mechanism = "gssapi"`` and ``[mn] mechanism = "gssapi"`` with ``[mn.gssapi]``: parsed,
checked, and every mistake named by its key (no KDC needed)."""

from __future__ import annotations

import pytest

from fmipfast import config
from fmipfast.errors import ConfigError
from tests.test_config import ROUTER

GSS_ROUTER = ROUTER + """
[router.security]
principal = "access/nar.b.example@B.EXAMPLE"
mechanism = "gssapi"
keytab = "/etc/fmipfast/nar.keytab"
rcache = "file2:/var/lib/fmipfast/nar.rcache2"
"""

MN = """
[mn]
interface = "mn0"
router = "2001:db8:1::5eff:fe10:1"
router_principal = "access/par.a.example@A.EXAMPLE"
address = "2001:db8:1::21b:63ff:fe84:45e6"
mechanism = "gssapi"
[mn.gssapi]
ccache = "FILE:/run/mn.krb5cc"
client_keytab = "/etc/fmipfast/mn.keytab"
adjacent = { "B.EXAMPLE" = ["access/nar.b.example@B.EXAMPLE"] }
precache = ["access@nar.b.example", "access/nar2.b.example@B.EXAMPLE"]
precache_retry_s = 30
"""


def test_a_gssapi_router_needs_a_keytab_and_no_lwkerb_keys():
    sec = config.loads(GSS_ROUTER).router.security
    assert (sec.mechanism, sec.keytab, sec.rcache) == ("gssapi", "/etc/fmipfast/nar.keytab",
                                                       "file2:/var/lib/fmipfast/nar.rcache2")
    assert sec.keys == () and sec.kdc is None
    assert config.loads(ROUTER + '[router.security]\nprincipal = "h/p@A.EXAMPLE"\nkdc = "127.0.0.1:88"\n') \
        .router.security.mechanism == "lwkerb"


@pytest.mark.parametrize("edit, key, problem", [
    (('keytab = "/etc/fmipfast/nar.keytab"\n', ""), "router.security.keytab", "missing"),
    (('mechanism = "gssapi"', 'mechanism = "heimdal"'), "router.security.mechanism", "gssapi"),
    (('mechanism = "gssapi"', 'mechanism = "lwkerb"'), "router.security.keytab", "gssapi"),
])
def test_gssapi_router_mistakes_are_named(edit, key, problem):
    with pytest.raises(ConfigError) as info:
        config.loads(GSS_ROUTER.replace(*edit, 1))
    assert info.value.key == key and problem in info.value.problem


def test_a_gssapi_mn_takes_its_credentials_from_mn_gssapi():
    mn = config.loads(MN).mn
    assert mn.mechanism == "gssapi" and mn.ccache is None and mn.kerberos is None
    assert mn.gssapi.ccache == "FILE:/run/mn.krb5cc" and mn.gssapi.client_keytab == "/etc/fmipfast/mn.keytab"
    assert mn.gssapi.adjacent == (("B.EXAMPLE", ("access/nar.b.example@B.EXAMPLE",)),)
    assert mn.gssapi.precache == ("access@nar.b.example", "access/nar2.b.example@B.EXAMPLE")
    assert mn.gssapi.precache_retry_s == 30
    # no [mn.gssapi]: MIT's default cache (KRB5CCNAME), nothing precached at start, a failure retried after 10 s
    bare = config.loads(MN.split("[mn.gssapi]")[0]).mn
    assert bare.gssapi is not None and bare.gssapi.ccache is None
    assert (bare.gssapi.precache, bare.gssapi.precache_retry_s, bare.gssapi.adjacent) == ((), 10, ())


@pytest.mark.parametrize("edit, key, problem", [
    (('mechanism = "gssapi"\n', 'mechanism = "gssapi"\nccache = "/run/mn.ccache"\n'), "mn.ccache", "[mn.gssapi]"),
    (('mechanism = "gssapi"\n', ""), "mn.gssapi", "mechanism"),
    (('adjacent = { "B.EXAMPLE" = ["access/nar.b.example@B.EXAMPLE"] }', 'adjacent = { "B.EXAMPLE" = "x" }'),
     "mn.gssapi.adjacent.B.EXAMPLE", "list"),
    (('adjacent = { "B.EXAMPLE" = ["access/nar.b.example@B.EXAMPLE"] }', 'adjacent = { "B.EXAMPLE" = ["nar"] }'),
     "mn.gssapi.adjacent.B.EXAMPLE[0]", "principal"),
    (('client_keytab', 'keytab'), "mn.gssapi.keytab", ""),
    (('precache = ["access@nar.b.example", ', 'precache = ["nar", '), "mn.gssapi.precache[0]", "principal"),
    (('precache = [', 'precache = 7 #'), "mn.gssapi.precache", "array"),
    (('precache_retry_s = 30', 'precache_retry_s = 0'), "mn.gssapi.precache_retry_s", "1"),
    # bounded: each router is a KDC exchange in the background (64 at most, adjacent and precache together)
    (('precache = [', 'precache = [' + '"access/r@B.EXAMPLE", ' * 64), "mn.gssapi.precache", "at most 64"),
    (('adjacent = { "B.EXAMPLE" = [', 'adjacent = { "B.EXAMPLE" = [' + '"access/r@B.EXAMPLE", ' * 70),
     "mn.gssapi.adjacent", "at most 64"),
])
def test_gssapi_mn_mistakes_are_named(edit, key, problem):
    with pytest.raises(ConfigError) as info:
        config.loads(MN.replace(*edit, 1))
    assert info.value.key == key and problem in info.value.problem


def test_missing_mit_pieces_are_named_before_anything_is_made(monkeypatch, capsys):
    """``--kerberos gssapi`` without MIT's programs or the Python packages: one message naming each missing
    piece and its package, exit status 2 (the demo and the lab alike), never a traceback."""
    import os
    import sys

    from fmipfast import cli
    from fmipfast.lab import mitrealms

    monkeypatch.setattr(mitrealms, "_program", lambda name: None if name in ("krb5kdc", "kinit") else f"/x/{name}")
    monkeypatch.setitem(sys.modules, "k5test", None)
    with pytest.raises(mitrealms.MitUnavailable) as info:
        with mitrealms.two_realms():
            pass
    text = str(info.value)
    assert isinstance(info.value, ImportError)
    assert "'k5test' (pip install k5test)" in text and "MIT's krb5kdc, kinit" in text, text
    assert "apt-get install krb5-kdc krb5-user" in text and "kdb5_util" not in text, text
    assert cli.main(["demo", "--kerberos", "gssapi"]) == 2
    assert "fmipfast demo: standard Kerberos (--kerberos gssapi) needs real MIT realms" in capsys.readouterr().err
    if os.geteuid() == 0:  # the lab needs root before anything else
        prefix = f"fmipfast-m{os.getpid()}-"
        assert cli.main(["lab", "run", "--kerberos", "gssapi", "--prefix", prefix]) == 2
        err = capsys.readouterr().err
        assert err.startswith("fmipfast lab run: standard Kerberos") and "krb5kdc" in err, err

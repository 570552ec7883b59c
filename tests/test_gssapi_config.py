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
    # no [mn.gssapi]: MIT's default cache (KRB5CCNAME)
    bare = config.loads(MN.split("[mn.gssapi]")[0]).mn
    assert bare.gssapi is not None and bare.gssapi.ccache is None


@pytest.mark.parametrize("edit, key, problem", [
    (('mechanism = "gssapi"\n', 'mechanism = "gssapi"\nccache = "/run/mn.ccache"\n'), "mn.ccache", "[mn.gssapi]"),
    (('mechanism = "gssapi"\n', ""), "mn.gssapi", "mechanism"),
    (('adjacent = { "B.EXAMPLE" = ["access/nar.b.example@B.EXAMPLE"] }', 'adjacent = { "B.EXAMPLE" = "x" }'),
     "mn.gssapi.adjacent.B.EXAMPLE", "list"),
    (('adjacent = { "B.EXAMPLE" = ["access/nar.b.example@B.EXAMPLE"] }', 'adjacent = { "B.EXAMPLE" = ["nar"] }'),
     "mn.gssapi.adjacent.B.EXAMPLE[0]", "principal"),
    (('client_keytab', 'keytab'), "mn.gssapi.keytab", ""),
])
def test_gssapi_mn_mistakes_are_named(edit, key, problem):
    with pytest.raises(ConfigError) as info:
        config.loads(MN.replace(*edit, 1))
    assert info.value.key == key and problem in info.value.problem

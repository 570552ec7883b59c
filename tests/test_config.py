"""TOML configuration: defaults, remapped codepoints, and errors that name the key and the problem."""

from __future__ import annotations

import pytest

from fmipfast import config
from fmipfast.constants import DEFAULT_CODEPOINTS, Codepoints
from fmipfast.errors import ConfigError


def test_empty_file_is_all_defaults():
    cfg = config.loads("")
    assert cfg == config.Config()
    assert cfg.codepoints.profile() == DEFAULT_CODEPOINTS


def test_defaults_toml_round_trips():
    assert config.loads(config.DEFAULTS_TOML) == config.Config()


def test_remapped_codepoints():
    cfg = config.loads("[codepoints]\ntype = 240\nattach = 17\n[logging]\nlevel = 'debug'\n")
    assert cfg.codepoints.profile() == Codepoints(type=240, attach=17)
    assert cfg.logging.level == "debug"


@pytest.mark.parametrize("text, key, problem", [
    ("[codepoints]\ntype = 300\n", "codepoints.type", "out of range 128-255"),
    ("[codepoints]\ntype = 'x'\n", "codepoints.type", "expected an integer"),
    ("[codepoints]\ntype = 133\n", "codepoints.type", "already used by echo/ND"),
    ("[codepoints]\nattach = 1\n", "codepoints.attach", "also used by handover_redirect"),
    ("[codepoints]\nhandover = -1\n", "codepoints.handover", "out of range 0-255"),
    ("[codepoints]\ntypo = 1\n", "codepoints.typo", "unknown key"),
    ("[nope]\n", "nope", "unknown section"),
    ("codepoints = 3\n", "codepoints", "expected a table"),
    ("[logging]\nlevel = 'loud'\n", "logging.level", "not one of"),
    ("[codepoints]\ntype = true\n", "codepoints.type", "expected an integer"),
])
def test_errors_name_key_and_problem(text, key, problem):
    with pytest.raises(ConfigError) as info:
        config.loads(text, source="x.toml")
    assert info.value.key == key
    assert problem in info.value.problem
    assert str(info.value).startswith(f"x.toml: {key}: ")


def test_syntax_error_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.loads("[codepoints\n")
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(tmp_path / "missing.toml")
    bad = tmp_path / "bin.toml"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        config.load(bad)


def test_config_is_frozen():
    cfg = config.Config()
    with pytest.raises(AttributeError):
        cfg.codepoints = None  # type: ignore[misc]
    with pytest.raises(AttributeError):
        DEFAULT_CODEPOINTS.type = 1  # type: ignore[misc]


ROUTER = """
[router]
name = "par"
ncache_capacity = 1024
[router.ring]
block_size = 65536
[[router.interfaces]]
name = "par-a"
addresses = ["2001:db8:1::1/64"]
ra_min_interval_ms = 30
ra_max_interval_ms = 70
adjacent_realms = ["B.EXAMPLE"]
[[router.interfaces]]
name = "par-up"
role = "upstream"
addresses = ["2001:db8:100::1/64"]
[[router.routes]]
prefix = "::/0"
via = "2001:db8:100::ff"
interface = "par-up"
[[router.neighbors]]
address = "2001:db8:100::ff"
mac = "02:00:5e:10:00:ff"
interface = "par-up"
"""


def test_router_section():
    r = config.loads(ROUTER).router
    assert r.name == "par" and r.ncache_capacity == 1024 and r.ring.block_size == 65536
    assert [i.name for i in r.interfaces] == ["par-a", "par-up"] and r.interfaces[1].role == "upstream"
    assert r.interfaces[0].addresses == (("2001:db8:1::1", 64),) and r.interfaces[0].adjacent_realms == ("B.EXAMPLE",)
    assert r.routes[0].prefix == ("::", 0) and r.neighbors[0].mac == bytes.fromhex("02005e1000ff")


@pytest.mark.parametrize("edit, key, problem", [
    (("ncache_capacity = 1024", "ncache_capacity = 3"), "router.ncache_capacity", "out of range"),
    (('role = "upstream"', 'role = "core"'), "router.interfaces[1].role", "not one of"),
    (('["2001:db8:1::1/64"]', '["2001:db8:1::1"]'), "router.interfaces[0].addresses[0]", "expected an IPv6 prefix"),
    (('prefix = "::/0"', 'prefix = "2001:db8::1/64"'), "router.routes[0].prefix", "host bits set"),
    (('interface = "par-up"\n[[router.neighbors]]', 'interface = "eth9"\n[[router.neighbors]]'),
     "router.routes[0].interface", "not one of the router's interfaces"),
    (('mac = "02:00:5e:10:00:ff"', 'mac = "02:00:5e"'), "router.neighbors[0].mac", "expected a MAC"),
    (("block_size = 65536", "block_size = 65537"), "router.ring.block_size", "not a multiple of the 4096"),
    (("block_size = 65536", 'block_size = 65536\nmode = "v2"'), "router.ring.mode", "not one of"),
    (("block_size = 65536", 'block_size = 65536\nmode = "frames"\nframe_size = 1000'), "router.ring.frame_size",
     "not a multiple of 16 dividing"),
    (("block_size = 65536", 'block_size = 65536\nmode = "frames"\nframe_size = 1024'), "router.ring.frame_size",
     "do not hold a frame of interfaces[0] (par-a, MTU 1500): need MTU + 80"),
    (("ra_max_interval_ms = 70", "ra_max_interval_ms = 20"), "router.interfaces[0].ra_max_interval_ms",
     "out of range"),
    (('name = "par"', 'name = "par"\ncolour = "red"'), "router.colour", "unknown key"),
    (('adjacent_realms = ["B.EXAMPLE"]', "adjacent_realms = [5]"), "router.interfaces[0].adjacent_realms[0]",
     "a realm is a string"),
])
def test_router_errors_name_the_key_path(edit, key, problem):
    old, new = edit
    assert old in ROUTER
    with pytest.raises(ConfigError) as info:
        config.loads(ROUTER.replace(old, new, 1))
    assert info.value.key == key and problem in info.value.problem


def test_a_per_frame_ring_takes_its_slots_from_the_mtu():
    r = config.loads(ROUTER.replace("block_size = 65536", 'block_size = 65536\nmode = "frames"', 1)).router
    assert (r.ring.mode, r.ring.frame_size) == ("frames", 2048)
    assert config.loads(ROUTER).router.ring.mode == "blocks"
    # the default slot holds a 1968-octet MTU; a larger one needs a larger slot
    big = ROUTER.replace('name = "par-a"', 'name = "par-a"\nmtu = 1969', 1)
    with pytest.raises(ConfigError, match="need MTU \\+ 80"):
        config.loads(big.replace("block_size = 65536", 'block_size = 65536\nmode = "frames"', 1))
    assert config.loads(big.replace("block_size = 65536", 'block_size = 65536\nmode = "frames"\n'
                                    'frame_size = 4096', 1)).router.ring.frame_size == 4096
    assert config.loads(big).router.ring.mode == "blocks"  # a block ring has no slots


def test_router_warm_up_and_scheduling():
    """[router] warm_up_handovers and [router.scheduling]: by default a dozen rehearsed handovers and the process's
    scheduling left as started; a realtime policy takes a priority (10 unless given), the others a nice value."""
    r = config.loads(ROUTER).router
    assert r.warm_up_handovers == 12 and r.scheduling == config.SchedulingConfig("inherit", 0, None)
    r = config.loads(ROUTER.replace('name = "par"', 'name = "par"\nwarm_up_handovers = 0', 1)
                     + '\n[router.scheduling]\npolicy = "fifo"\n').router
    assert r.warm_up_handovers == 0 and r.scheduling == config.SchedulingConfig("fifo", 10, None)
    r = config.loads(ROUTER + '\n[router.scheduling]\npolicy = "rr"\npriority = 50\n').router
    assert r.scheduling == config.SchedulingConfig("rr", 50, None)
    r = config.loads(ROUTER + '\n[router.scheduling]\npolicy = "other"\nnice = -5\n').router
    assert r.scheduling == config.SchedulingConfig("other", 0, -5)
    assert config.loads(ROUTER + "\n[router.scheduling]\nnice = 3\n").router.scheduling.nice == 3


def test_router_warm_up_handovers_is_a_count():
    with pytest.raises(ConfigError, match="warm_up_handovers"):
        config.loads(ROUTER.replace('name = "par"', 'name = "par"\nwarm_up_handovers = -1', 1))


SECURITY = ROUTER + f"""
[router.security]
principal = "host/par@A.EXAMPLE"
kdc = "127.0.0.1:8888"
[[router.security.keys]]
principal = "host/par@A.EXAMPLE"
kvno = 3
key = "{'11' * 32}"
[[router.security.peers]]
address = "2001:db8:100::2"
spi_in = 4098
key_in = "{'22' * 32}"
spi_out = 4097
key_out = "{'33' * 32}"
"""


def test_router_security_section():
    sec = config.loads(SECURITY).router.security
    assert sec.principal == "host/par@A.EXAMPLE" and sec.kdc == "127.0.0.1:8888"
    assert (sec.max_sessions, sec.max_handovers, sec.ah_sequence_file, sec.session_file) == (4096, 64, None, None)
    assert config.loads(SECURITY.replace('kdc = "127.0.0.1:8888"', 'kdc = "127.0.0.1:8888"\nah_sequence_file = '
                                         '"/var/lib/fmipfast/ah-seq.json"')).router.security.ah_sequence_file \
        == "/var/lib/fmipfast/ah-seq.json"
    assert sec.keys[0].kvno == 3 and sec.keys[0].key == bytes([0x11]) * 32
    assert sec.peers[0].spi_in == 4098 and sec.peers[0].key_out == bytes([0x33]) * 32
    assert "11" * 8 not in repr(sec)  # keys never in reprs
    assert config.loads(ROUTER).router.security is None


@pytest.mark.parametrize("edit, key, problem", [
    (('principal = "host/par@A.EXAMPLE"\nkdc', 'principal = "host-par"\nkdc'), "router.security.principal",
     "expected a principal"),
    (('key = "' + "11" * 32, 'key = "' + "11" * 31), "router.security.keys[0].key", "31 octets"),
    (('key_in = "' + "22" * 32, 'key_in = "zz' + "22" * 31), "router.security.peers[0].key_in", "not hexadecimal"),
    (("spi_in = 4098", "spi_in = 7"), "router.security.peers[0].spi_in", "out of range"),
    (('kdc = "127.0.0.1:8888"', 'kdc = "127.0.0.1"'), "router.security.kdc", "host:port"),
    (('kdc = "127.0.0.1:8888"', 'kdc = "127.0.0.1:8888"\nmax_sessions = 0'), "router.security.max_sessions",
     "out of range"),
    (('kdc = "127.0.0.1:8888"', 'kdc = "127.0.0.1:8888"\nah_sequence_file = "/var/lib/"'),
     "router.security.ah_sequence_file", "expected a file path"),
    (('kdc = "127.0.0.1:8888"', 'kdc = "127.0.0.1:8888"\nah_sequence_file = 3'),
     "router.security.ah_sequence_file", "expected"),
])
def test_router_security_errors(edit, key, problem):
    old, new = edit
    assert old in SECURITY
    with pytest.raises(ConfigError) as info:
        config.loads(SECURITY.replace(old, new, 1))
    assert info.value.key == key and problem in info.value.problem


def test_security_needs_a_way_to_verify():
    text = SECURITY.replace('kdc = "127.0.0.1:8888"\n', "").replace('principal = "host/par@A.EXAMPLE"\nkvno',
                                                                    'principal = "other@A.EXAMPLE"\nkvno')
    with pytest.raises(ConfigError, match="no key for host/par@A.EXAMPLE and no kdc"):
        config.loads(text)


MN = """
[mn]
interface = "mn0"
router = "2001:db8:1::5eff:fe10:1"
router_principal = "host/par@A.EXAMPLE"
address = "2001:db8:1::21b:63ff:fe84:45e6"
ccache = "/run/mn.ccache"
home_agent = "2001:db8:ff::10"
pcoa_release_ms = 250
switch_command = ["/usr/local/sbin/roam-to", "{nar}"]
"""


def test_mn_section():
    mn = config.loads(MN).mn
    assert mn.configured and mn.interface == "mn0" and mn.router == "2001:db8:1::5eff:fe10:1"
    assert mn.router_principal == "host/par@A.EXAMPLE" and mn.home_agent == "2001:db8:ff::10"
    assert mn.switch_command == ("/usr/local/sbin/roam-to", "{nar}") and mn.pcoa_release_ms == 250
    assert mn.keep_pcoa is True and mn.switch_timeout_ms == 2000
    assert not config.loads("").mn.configured  # no [mn]: a router's file, or only defaults


@pytest.mark.parametrize("edit, key, problem", [
    (('interface = "mn0"\n', ""), "mn.interface", "missing"),
    (('router = "2001:db8:1::5eff:fe10:1"', 'router = "10.0.0.1"'), "mn.router", "IPv6 address"),
    (('router_principal = "host/par@A.EXAMPLE"', 'router_principal = "par"'), "mn.router_principal",
     "expected a principal"),
    (('address = "2001:db8:1::21b:63ff:fe84:45e6"\n', ""), "mn.address", "IPv6 address"),
    (('ccache = "/run/mn.ccache"\n', ""), "mn.ccache", "missing"),
    (('home_agent = "2001:db8:ff::10"', "home_agent = 7"), "mn.home_agent", "IPv6 address"),
    (("pcoa_release_ms = 250", "pcoa_release_ms = -1"), "mn.pcoa_release_ms", "out of range"),
    (('"/usr/local/sbin/roam-to", "{nar}"', '"/usr/local/sbin/roam-to", 5'), "mn.switch_command[1]",
     "non-empty string"),
    (("pcoa_release_ms = 250", "pcoa_release = 250"), "mn.pcoa_release", "unknown key"),
])
def test_mn_errors_name_the_key(edit, key, problem):
    old, new = edit
    assert old in MN
    with pytest.raises(ConfigError) as info:
        config.loads(MN.replace(old, new, 1))
    assert info.value.key == key and problem in info.value.problem, (info.value.key, info.value.problem)


def test_mn_scheduling():
    """[mn.scheduling]: the MN daemon's CPU scheduling, the same table as [router.scheduling] -- by default the
    process as started; a realtime policy takes a priority (10 unless given), the others a nice value."""
    assert config.loads(MN).mn.scheduling == config.SchedulingConfig("inherit", 0, None)
    assert config.loads(MN + '\n[mn.scheduling]\npolicy = "fifo"\n').mn.scheduling == config.SchedulingConfig("fifo",
                                                                                                            10, None)
    assert config.loads(MN + '\n[mn.scheduling]\npolicy = "rr"\npriority = 20\n').mn.scheduling == \
        config.SchedulingConfig("rr", 20, None)
    assert config.loads(MN + "\n[mn.scheduling]\nnice = -4\n").mn.scheduling == \
        config.SchedulingConfig("inherit", 0, -4)


@pytest.mark.parametrize("section", ["router", "mn"])
@pytest.mark.parametrize("table, key, problem", [
    ('policy = "deadline"', "policy", "not one of"),
    ('policy = "fifo"\npriority = 0', "priority", "take a priority of 1-99"),
    ('policy = "fifo"\npriority = 100', "priority", "out of range"),
    ('policy = "other"\npriority = 5', "priority", "the others none"),
    ('policy = "batch"\npriority = 5', "priority", "the others none"),
    ('policy = "fifo"\nnice = 0', "nice", "no nice value"),
    ('policy = "rr"\nnice = 0', "nice", "no nice value"),
    ("nice = -21", "nice", "out of range"),
    ("nice = 20", "nice", "out of range"),
    ("niceness = 1", "niceness", "unknown key"),
])
def test_scheduling_errors_name_the_key(section, table, key, problem):
    """[router.scheduling] and [mn.scheduling]: the same table, checked the same way."""
    with pytest.raises(ConfigError) as info:
        config.loads({"router": ROUTER, "mn": MN}[section] + f"\n[{section}.scheduling]\n" + table + "\n")
    assert info.value.key == f"{section}.scheduling.{key}" and problem in info.value.problem, \
        (info.value.key, info.value.problem)


def test_mn_scheduling_must_be_a_table():
    with pytest.raises(ConfigError) as info:
        config.loads(MN.replace("pcoa_release_ms = 250", 'pcoa_release_ms = 250\nscheduling = "fifo"', 1))
    assert info.value.key == "mn.scheduling" and "expected a table" in info.value.problem, info.value.problem


KRB = MN.replace('ccache = "/run/mn.ccache"\n', "") + """
[mn.kerberos]
principal = "mn1@HOME.EXAMPLE"
password = "secret"
kdcs = { "HOME.EXAMPLE" = "[2001:db8:ff::10]:8801", "B.EXAMPLE" = "[2001:db8:ff::10]:8803" }
"""


def test_mn_kerberos_section():
    mn = config.loads(KRB).mn
    assert mn.ccache is None and mn.kerberos is not None
    k = mn.kerberos
    assert k.principal == "mn1@HOME.EXAMPLE" and k.password == "secret" and k.key is None and k.precache
    assert dict(k.kdcs) == {"HOME.EXAMPLE": "[2001:db8:ff::10]:8801", "B.EXAMPLE": "[2001:db8:ff::10]:8803"}
    assert "secret" not in repr(mn)


@pytest.mark.parametrize("edit, key, problem", [
    (('password = "secret"', 'password = "secret"\nkey = "' + "11" * 32 + '"'), "mn.kerberos.key", "exactly one"),
    (('password = "secret"', 'key = "' + "11" * 31 + '"'), "mn.kerberos.key", "31 octets"),
    (('"HOME.EXAMPLE" = "[2001:db8:ff::10]:8801", ', ""), "mn.kerberos.kdcs", "no KDC for the home realm"),
    (('"B.EXAMPLE" = "[2001:db8:ff::10]:8803"', '"B.EXAMPLE" = "nowhere"'), "mn.kerberos.kdcs.B.EXAMPLE",
     "host:port"),
    (('principal = "mn1@HOME.EXAMPLE"', 'principal = "mn1"'), "mn.kerberos.principal", "expected a principal"),
    (("[mn.kerberos]", "[mn.kerbero]"), "mn.kerbero", "unknown key"),
])
def test_mn_kerberos_errors_name_the_key(edit, key, problem):
    old, new = edit
    assert old in KRB
    with pytest.raises(ConfigError) as info:
        config.loads(KRB.replace(old, new, 1))
    assert info.value.key == key and problem in info.value.problem, (info.value.key, info.value.problem)


def test_the_handover_protocol_refuses_fanout_workers():
    """Fanout workers keep their own tables: a handover handled by one would be missed by the others."""
    with pytest.raises(ConfigError) as info:
        config.loads(SECURITY.replace("block_size = 65536", "block_size = 65536\nfanout_group = 7", 1))
    assert info.value.key == "router.ring.fanout_group" and "one worker" in info.value.problem
    forwarding_only = ROUTER.replace("block_size = 65536", "block_size = 65536\nfanout_group = 7", 1)
    assert config.loads(forwarding_only).router.ring.fanout_group == 7

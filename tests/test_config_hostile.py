"""Hostile configuration files against every loader the ``fmipfast`` command uses: whatever the file holds, the
result is a configuration or a one-line :class:`ConfigError` naming the file or the key -- never a traceback --
and the commands exit 2 (``check-config``: 1 for a value it refuses, 2 for a file it cannot read)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fmipfast import config
from fmipfast.cli import main
from fmipfast.errors import ConfigError
from fmipfast.security import kdc as K

REPO = str(Path(__file__).resolve().parent.parent)
KEY1, KEY2, KEY3 = "11" * 32, "22" * 32, "33" * 32

KDC = f"""realm = "A.EXAMPLE"
listen = "127.0.0.1:0"
[[keys]]
principal = "krbtgt/A.EXAMPLE@A.EXAMPLE"
key = "{KEY1}"
[[keys]]
principal = "access/A.EXAMPLE@A.EXAMPLE"
key = "{KEY2}"
"""

ROUTER = f"""[router]
name = "par"
[[router.interfaces]]
name = "par-a"
addresses = ["2001:db8:1::1/64"]
adjacent_realms = ["B.EXAMPLE"]
[[router.interfaces]]
name = "par-up"
role = "upstream"
[[router.routes]]
prefix = "::/0"
via = "2001:db8:ff::1"
interface = "par-up"
[router.security]
principal = "host/par@A.EXAMPLE"
kdc = "127.0.0.1:8888"
[[router.security.keys]]
principal = "host/par@A.EXAMPLE"
kvno = 2
key = "{KEY1}"
[[router.security.peers]]
address = "2001:db8:2::1"
spi_in = 4097
key_in = "{KEY2}"
spi_out = 4098
key_out = "{KEY3}"
"""

MN = """[mn]
interface = "mn0"
router = "2001:db8:1::1"
router_principal = "host/par@A.EXAMPLE"
address = "2001:db8:1::2"
ccache = "/nonexistent/mn.ccache"
"""

DEEP_ARRAY = "a = " + "[" * 10_000 + "]" * 10_000 + "\n"
DEEP_INLINE = "a = " + "{b = " * 3000 + "1" + "}" * 3000 + "\n"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------------ the one reader: any parser failure is named


@pytest.mark.parametrize("content, problem", [
    (DEEP_ARRAY.encode(), "nested too deeply"),
    (DEEP_INLINE.encode(), "nested too deeply"),
    (b'realm = "R\xff"\n', "not UTF-8 at byte 10"),
    (b"a = " + b"9" * 5000 + b"\n", "not valid TOML"),  # beyond Python's integer-digit limit
    (b"[a\n", "not valid TOML"),
], ids=["deep-array", "deep-inline-table", "not-utf8", "huge-integer", "syntax"])
@pytest.mark.parametrize("reader", [config.read_toml, K.read_toml], ids=["config", "kdc"])
def test_every_parser_failure_is_a_config_error_naming_the_file(tmp_path, reader, content, problem):
    path = tmp_path / "hostile.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        reader(str(path))
    assert problem in str(info.value) and str(info.value).startswith(f"{path}: ")


@pytest.mark.parametrize("reader", [config.read_toml, K.read_toml], ids=["config", "kdc"])
def test_unreadable_files_are_config_errors(tmp_path, reader):
    with pytest.raises(ConfigError, match="cannot read"):
        reader(str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="cannot read"):
        reader(str(tmp_path))  # a directory
    with pytest.raises(ConfigError, match="cannot read"):
        reader(str(tmp_path / "nul\x00.toml"))
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (config.MAX_FILE_OCTETS + 1))
    with pytest.raises(ConfigError, match="larger than"):
        reader(str(big))


@pytest.mark.parametrize("command", [
    ["router", "--config"], ["mn", "--config"], ["kdc", "--config"], ["decode", "--config", "{}", os.devnull],
], ids=["router", "mn", "kdc", "decode"])
@pytest.mark.parametrize("content", [DEEP_ARRAY, DEEP_INLINE, "\udcff"], ids=["deep-array", "deep-inline", "non-utf8"])
def test_every_command_refuses_a_hostile_file_in_one_line_with_status_2(tmp_path, capsys, command, content):
    path = tmp_path / "hostile.toml"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    argv = [str(path) if a == "{}" else a for a in command]
    if argv[-1] == "--config":
        argv.append(str(path))
    code, _, err = _run(capsys, *argv)
    assert code == 2 and str(path) in _one_line(err)


def test_check_config_refuses_an_unreadable_file_with_status_2_and_a_bad_value_with_1(tmp_path, capsys):
    path = tmp_path / "hostile.toml"
    path.write_text(DEEP_ARRAY)
    code, _, err = _run(capsys, "check-config", str(path))
    assert code == 2 and "nested too deeply" in _one_line(err)
    path.write_text("[codepoints]\ntype = 300\n")
    code, _, err = _run(capsys, "check-config", str(path))
    assert code == 1 and "codepoints.type" in _one_line(err)


def test_kdc_module_entry_refuses_a_deep_file_in_one_line(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text(DEEP_INLINE)
    proc = subprocess.run([sys.executable, "-m", "fmipfast.security.kdc", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 2 and "nested too deeply" in _one_line(proc.stderr)


# ------------------------------------------------------------------ the KDC's values: finite, in range, named


@pytest.mark.parametrize("edit, key", [
    ("skew = nan", "skew"),
    ("skew = inf", "skew"),
    ("skew = -inf", "skew"),
    ("forward_timeout = nan", "forward_timeout"),
    ("forward_timeout = inf", "forward_timeout"),
    ("[rate]\nrate = nan", "rate.rate"),
    ("[rate]\nrate = inf", "rate.rate"),
    ("[rate]\nrate = -1.0", "rate.rate"),
    ("skew = 1e300", "skew"),
    ("skew = 1" + "0" * 400, "skew"),  # beyond a float: no OverflowError
    ("[rate]\nrate = -1" + "0" * 400, "rate.rate"),
    ("ticket_lifetime = 9223372036854775807", "ticket_lifetime"),
    ("replay_capacity = 9223372036854775807", "replay_capacity"),
    ("forward_retries = 9223372036854775807", "forward_retries"),
    ("[rate]\nburst = -5", "rate.burst"),
    ("[rate]\nmax_sources = 0", "rate.max_sources"),
    ('listen = "127.0.0.1:99999"', "listen"),
    ('listen = "127.0.0.1:٣"', "listen"),  # a non-ASCII digit: isdigit() says yes, int() too
    ('listen = ":88"', "listen"),
    ('listen = "a b:88"', "listen"),
    ('listen = 88', "listen"),
    ('routers = ["nar@B"]', "routers[0]"),
    ('routers = [""]', "routers[0]"),
    ('[peers]\n"B.EXAMPLE" = "127.0.0.1:0"', "peers.B.EXAMPLE"),
    ('[peers]\n"B.EXAMPLE" = 5', "peers.B.EXAMPLE"),
    ('[routes]\n"B.EXAMPLE" = ""', "routes.B.EXAMPLE"),
    ('[[keys]]\nprincipal = "mn@A.EXAMPLE"\npassword = ""', "keys[2].password"),
    (f'[[keys]]\nprincipal = "mn@A.EXAMPLE"\npassword = "pw"\nkey = "{KEY1}"', "keys[2].key"),
])
def test_kdc_values_are_finite_and_in_range_and_the_error_names_the_key(tmp_path, capsys, edit, key):
    path = tmp_path / "kdc.toml"
    base = KDC.replace('listen = "127.0.0.1:0"\n', "") if edit.startswith("listen") else KDC
    head, _, tail = base.partition("[[keys]]")
    path.write_text(head + (edit + "\n" if not edit.startswith("[") else "") + "[[keys]]" + tail
                    + (edit + "\n" if edit.startswith("[") else ""))
    with pytest.raises(ConfigError) as info:
        K.load_config(str(path))
    assert info.value.key == key, info.value
    code, _, err = _run(capsys, "kdc", "--config", str(path))
    assert code == 2 and f"{key}: " in _one_line(err)


def test_kdc_realm_whose_tgs_name_does_not_fit_is_refused(tmp_path):
    realm = "R" * 250  # krbtgt/RRR... would be 257 octets
    path = tmp_path / "kdc.toml"
    path.write_text(KDC.replace("A.EXAMPLE", realm))
    with pytest.raises(ConfigError) as info:
        K.load_config(str(path))
    assert info.value.key == "realm"


def test_kdc_listen_name_that_does_not_resolve_is_one_line_status_2(tmp_path, capsys):
    path = tmp_path / "kdc.toml"
    path.write_text(KDC.replace("127.0.0.1:0", "no-such-host.invalid:0"))
    code, _, err = _run(capsys, "kdc", "--config", str(path))
    assert code == 2 and "listen: cannot bind no-such-host.invalid:0" in _one_line(err)


# ------------------------------------------------------------------ check-config: every kind, the daemons' rules


@pytest.mark.parametrize("text, kind", [
    (KDC, "kdc"), (ROUTER, "router"), (MN, "mn"), ("[codepoints]\ntype = 201\n", "codepoints"), ("", "codepoints"),
    (config.DEFAULTS_TOML, "codepoints"),
])
def test_check_config_recognises_every_kind_the_cli_runs(tmp_path, capsys, text, kind):
    path = tmp_path / "c.toml"
    path.write_text(text)
    code, out, err = _run(capsys, "check-config", str(path))
    assert code == 0, err
    assert f"{path}: ok: {kind} configuration" in out
    code, out, err = _run(capsys, "check-config", "--kind", kind, str(path))
    assert code == 0 and f"ok: {kind} configuration" in out, err


@pytest.mark.parametrize("text, kind, key", [
    (KDC, "router", "realm"),
    ("", "mn", "mn.interface"),
    ("[codepoints]\ntype = 201\n", "kdc", "codepoints"),
    (ROUTER, "kdc", "router"),
])
def test_check_config_kind_applies_that_commands_rules(tmp_path, capsys, text, kind, key):
    path = tmp_path / "c.toml"
    path.write_text(text)
    code, _, err = _run(capsys, "check-config", "--kind", kind, str(path))
    assert code == 1 and f"{key}: " in _one_line(err)


LONG = "h" * 300


@pytest.mark.parametrize("text, old, new, key", [
    # what `fmipfast router` died on although check-config said ok
    (ROUTER, 'principal = "host/par@A.EXAMPLE"\nkdc', f'principal = "{LONG}@A.EXAMPLE"\nkdc',
     "router.security.principal"),
    (ROUTER, 'principal = "host/par@A.EXAMPLE"\nkvno', f'principal = "{LONG}@A.EXAMPLE"\nkvno',
     "router.security.keys[0].principal"),
    (ROUTER, "@A.EXAMPLE", "@" + "R" * 250, "router.security.principal"),
    (ROUTER, 'kdc = "127.0.0.1:8888"', 'kdc = "127.0.0.1:٨٨"', "router.security.kdc"),
    (ROUTER, 'kdc = "127.0.0.1:8888"', 'kdc = ":8888"', "router.security.kdc"),
    (ROUTER, 'kdc = "127.0.0.1:8888"', 'kdc = ["127.0.0.1:8888"]', "router.security.kdc"),
    (ROUTER, "spi_out = 4098\nkey_out",
     f'spi_out = 4098\nkey_out = "{KEY3}"\n[[router.security.peers]]\naddress = "2001:db8:3::1"\nspi_in = 4097\n'
     f'key_in = "{KEY2}"\nspi_out = 4099\nkey_out', "router.security.peers[1].spi_in"),
    (ROUTER, "spi_out = 4098\nkey_out",
     f'spi_out = 4098\nkey_out = "{KEY3}"\n[[router.security.peers]]\naddress = "2001:db8:2::1"\nspi_in = 4099\n'
     f'key_in = "{KEY2}"\nspi_out = 4099\nkey_out', "router.security.peers[1].address"),
    # interface names the kernel refuses
    (ROUTER, 'name = "par-a"', 'name = "a-very-long-ifname"', "router.interfaces[0].name"),
    (ROUTER, 'name = "par-a"', 'name = "par/a"', "router.interfaces[0].name"),
    (ROUTER, 'name = "par-a"', 'name = "par a"', "router.interfaces[0].name"),
    (ROUTER, 'name = "par-a"', 'name = "par\\u0000"', "router.interfaces[0].name"),
    (ROUTER, 'name = "par-a"', 'name = ".."', "router.interfaces[0].name"),
    (MN, 'interface = "mn0"', 'interface = "wlan0:1"', "mn.interface"),
    # addresses with zone ids, multicast or unspecified where a unicast address is used
    (ROUTER, '"2001:db8:1::1/64"', '"fe80::1%eth0/64"', "router.interfaces[0].addresses[0]"),
    (ROUTER, '"2001:db8:1::1/64"', '"ff02::1/64"', "router.interfaces[0].addresses[0]"),
    (ROUTER, 'via = "2001:db8:ff::1"', 'via = "fe80::1%par-up"', "router.routes[0].via"),
    (ROUTER, 'address = "2001:db8:2::1"', 'address = "::"', "router.security.peers[0].address"),
    (MN, 'router = "2001:db8:1::1"', 'router = "ff02::2"', "mn.router"),
    (MN, 'address = "2001:db8:1::2"', 'address = "fe80::2%mn0"', "mn.address"),
    # prefixes with host bits (a route), non-ASCII, empty strings, NULs
    (ROUTER, 'prefix = "::/0"', 'prefix = "2001:db8::1/32"', "router.routes[0].prefix"),
    (ROUTER, 'adjacent_realms = ["B.EXAMPLE"]', 'adjacent_realms = [""]', "router.interfaces[0].adjacent_realms[0]"),
    (ROUTER, 'adjacent_realms = ["B.EXAMPLE"]', 'adjacent_realms = ["' + "é" * 200 + '"]',
     "router.interfaces[0].adjacent_realms[0]"),
    (ROUTER, 'adjacent_realms = ["B.EXAMPLE"]', "adjacent_realms = [" + ", ".join(f'"{i:03d}{"r" * 200}"'
                                                                                  for i in range(8)) + "]",
     "router.interfaces[0].adjacent_realms"),  # the RA would not fit the 1500-octet MTU
    (MN, 'ccache = "/nonexistent/mn.ccache"', 'ccache = "/tmp/a\\u0000b"', "mn.ccache"),
    (MN + '[mn.kerberos]\nprincipal = "mn1@A.EXAMPLE"\npassword = "pw"\nkdcs = { "A.EXAMPLE" = "[::1]:88" }\n',
     '"[::1]:88"', '"[::1]:0"', "mn.kerberos.kdcs.A.EXAMPLE"),
    (MN + '[mn.kerberos]\nprincipal = "mn1@A.EXAMPLE"\npassword = "pw"\nkdcs = { "A.EXAMPLE" = "[::1]:88" }\n',
     '"[::1]:88"', '"[::1]:²"', "mn.kerberos.kdcs.A.EXAMPLE"),
    (MN, 'router_principal = "host/par@A.EXAMPLE"', f'router_principal = "{LONG}@A.EXAMPLE"', "mn.router_principal"),
])
def test_check_config_refuses_what_the_daemon_would_refuse_or_crash_on(tmp_path, capsys, text, old, new, key):
    assert old in text
    path = tmp_path / "c.toml"
    path.write_text(text.replace(old, new, 1))
    code, _, err = _run(capsys, "check-config", str(path))
    assert code == 1 and f"{key}: " in _one_line(err), err
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert info.value.key == key


def test_the_router_daemon_and_check_config_agree_on_the_principal(tmp_path, capsys):
    """The refusal check-config gives is the router's own, before any interface is touched."""
    path = tmp_path / "r.toml"
    path.write_text(ROUTER.replace("host/par@A", f"{LONG}@A"))
    code, _, err = _run(capsys, "router", "--config", str(path))
    assert code == 2 and "router.security.principal: " in _one_line(err)


def test_check_config_defaults_are_accepted(tmp_path, capsys):
    code, out, _ = _run(capsys, "check-config", "--defaults")
    path = tmp_path / "d.toml"
    path.write_text(out)
    assert code == 0 and _run(capsys, "check-config", str(path))[0] == 0


# ------------------------------------------------------------------ any document: a result or a ConfigError

_SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e300, 2 ** 64, -1, 0, 1, 255, 256, 65535, 65536,
                     10 ** 400, -(10 ** 400)]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["", "\x00", "a\x00b", "é" * 300, "x" * 300, "eth0", "2001:db8::1", "fe80::1%eth0",
                     "2001:db8::1/64", "::/0", "host/par@A.EXAMPLE", "@", "a@b@c", "127.0.0.1:0", "[::1]:88",
                     "11" * 32, "krbtgt/A@A", "A.EXAMPLE", "text", "json", "access", "upstream"]),
)
_KEYS = st.one_of(st.sampled_from([
    "codepoints", "logging", "router", "mn", "type", "attach", "level", "format", "name", "interfaces", "routes",
    "neighbors", "ring", "security", "principal", "keys", "peers", "kdc", "key", "kvno", "address", "addresses",
    "prefix", "via", "interface", "mac", "spi_in", "key_in", "spi_out", "key_out", "adjacent_realms", "mtu",
    "block_size", "router_principal", "ccache", "kerberos", "kdcs", "password", "switch_command", "realm",
    "listen", "routers", "skew", "rate", "burst", "max_sources", "routes", "ticket_lifetime", "forward_timeout",
    "A.EXAMPLE", "fanout_group", "session_file"]), st.text(max_size=8))
_VALUES = st.recursive(_SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(_KEYS, inner, max_size=5)), max_leaves=25)
_DOCS = st.dictionaries(_KEYS, _VALUES, max_size=6)


def _loaders():
    from fmipfast import cli

    return {"config": config.from_mapping, "kdc": K.config_from_mapping,
            "check": lambda doc: cli._check_mapping(doc, "auto", "<doc>")}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_DOCS)
def test_any_document_is_a_configuration_or_a_config_error(doc):
    for name, load in _loaders().items():
        try:
            load(doc)
        except ConfigError as exc:
            assert "\n" not in str(exc), (name, str(exc))
            assert len(str(exc)) < 500, (name, str(exc))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([KDC, ROUTER, MN, config.DEFAULTS_TOML]), st.data())
def test_any_value_in_a_real_file_is_accepted_or_named(text, data):
    """Each line of a real configuration in turn given an arbitrary value: accepted, or refused naming a key."""
    import tomllib

    doc = tomllib.loads(text)
    paths = []

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + [k])
        elif isinstance(node, list) and node and all(isinstance(x, dict) for x in node):
            for i, v in enumerate(node):
                walk(v, path + [i])
        else:
            paths.append(path)

    walk(doc, [])
    path = data.draw(st.sampled_from(paths))
    value = data.draw(_VALUES)
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    for name, load in _loaders().items():
        if name == "kdc" and text is not KDC:
            continue
        try:
            load(doc)
        except ConfigError as exc:
            assert "\n" not in str(exc) and len(str(exc)) < 500, (name, str(exc))


def _toml(value) -> str:
    """A TOML form of ``value`` (inline tables and arrays; None is dropped by the caller)."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else "inf" if value == math.inf else "-inf" if value == -math.inf \
            else repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON's escapes are TOML basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value if v is not None) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items() if v is not None) + "}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(_DOCS, st.sampled_from(["auto", "codepoints", "router", "mn", "kdc"]))
def test_check_config_of_any_document_is_one_line_and_a_known_status(tmp_path, capsys, doc, kind):
    """The whole path a user takes: a TOML file on disk, read by the one reader, checked as any kind."""
    text = "".join(f"{_toml(k)} = {_toml(v)}\n" for k, v in doc.items() if v is not None)
    path = tmp_path / "doc.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    code = main(["check-config", "--kind", kind, str(path)])
    out, err = capsys.readouterr()
    assert code in (0, 1, 2)
    if code:
        _one_line(err)
    else:
        assert out.startswith(f"{path}: ok: ")


def test_buffers_the_host_could_not_allocate_are_refused():
    text = "[router]\nbuffer_slots = 4194304\nbuffer_slot_size = 65554\n"
    with pytest.raises(ConfigError) as info:
        config.loads(text)
    assert info.value.key == "router.buffer_slots" and "octets" in info.value.problem
    config.loads("[router]\nbuffer_slots = 60000\nbuffer_slot_size = 65554\n")  # just under 4 GiB with the queues


@pytest.mark.parametrize("value, ok", [
    ("127.0.0.1:88", True), ("[2001:db8::53]:88", True), ("[fe80::1%eth0]:88", True), ("kdc.example:88", True),
    ("::1:88", True),  # accepted as before: the last ':' starts the port
    ("[kdc.example]:88", False), ("[]:88", False), ("a..b:88", False), ("127.0.0.1:0", False),
])
def test_kdc_addresses_of_router_and_mn(value, ok):
    text = ROUTER.replace('kdc = "127.0.0.1:8888"', f'kdc = "{value}"')
    if ok:
        assert config.loads(text).router.security.kdc == value
    else:
        with pytest.raises(ConfigError) as info:
            config.loads(text)
        assert info.value.key == "router.security.kdc"


def test_many_prefixes_on_an_access_link_must_fit_the_ra():
    many = ", ".join(f'"2001:db8:{i:x}::1/64"' for i in range(50))
    with pytest.raises(ConfigError) as info:
        config.loads(ROUTER.replace('addresses = ["2001:db8:1::1/64"]\nadjacent_realms = ["B.EXAMPLE"]',
                                    f"addresses = [{many}]"))
    assert info.value.key == "router.interfaces[0].addresses"
    config.loads(ROUTER.replace('addresses = ["2001:db8:1::1/64"]\nadjacent_realms = ["B.EXAMPLE"]',
                                f'addresses = [{many}]\nrole = "upstream"'))  # no Router Advertisements there


@pytest.mark.parametrize("value", ["0", "-1", "65537", "1e3", '"256"', "true", "99999999999999999999999"])
def test_tunnel_peers_out_of_range_or_not_an_integer_is_refused(value):
    with pytest.raises(ConfigError) as info:
        config.loads(f"[router]\ntunnel_peers = {value}\n")
    assert info.value.key == "router.tunnel_peers"
    assert config.loads("[router]\ntunnel_peers = 1\n").router.tunnel_peers == 1
    assert config.loads("[router]\ntunnel_peers = 65536\n").router.tunnel_peers == 65536
    assert config.loads("[router]\n").router.tunnel_peers == 256

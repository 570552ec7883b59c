"""The configurations in examples/ are what the daemons accept: ``fmipfast check-config`` recognises each
file's kind and validates it with the loader of the command that reads it, and the example deployment is
consistent (the keys the routers and KDCs share are the same, every realm's KDC is where the others look)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from fmipfast.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
KINDS = {"par.toml": "router", "nar.toml": "router", "mn.toml": "mn", "kdc-home.toml": "kdc", "kdc-a.toml": "kdc",
         "kdc-b.toml": "kdc"}


def _toml(name: str) -> dict:
    return tomllib.loads((EXAMPLES / name).read_text())


def test_every_example_is_listed():
    assert sorted(p.name for p in EXAMPLES.glob("*.toml")) == sorted(KINDS)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_check_config_recognises_and_accepts_each_example(name, capsys):
    assert main(["check-config", str(EXAMPLES / name)]) == 0
    out = capsys.readouterr().out
    assert f": ok: {KINDS[name]} configuration" in out
    assert main(["check-config", "--kind", KINDS[name], str(EXAMPLES / name)]) == 0


@pytest.mark.parametrize("name, wrong", [("par.toml", "kdc"), ("kdc-a.toml", "router"), ("mn.toml", "router")])
def test_the_wrong_kind_is_refused_with_a_hint(name, wrong, capsys):
    assert main(["check-config", "--kind", wrong, str(EXAMPLES / name)]) == 1
    err = capsys.readouterr().err
    assert f"checked as a {wrong} configuration" in err and f"looks like a {KINDS[name]} one" in err


def test_an_unknown_kind_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["check-config", "--kind", "bogus", str(EXAMPLES / "par.toml")])
    assert exc.value.code == 2 and "invalid choice: 'bogus'" in capsys.readouterr().err


def test_a_file_of_no_known_kind_says_so(tmp_path, capsys):
    path = tmp_path / "other.toml"
    path.write_text("[server]\nport = 80\n")
    assert main(["check-config", str(path)]) == 1
    assert "not a configuration fmipfast knows" in capsys.readouterr().err


def _keys(doc: dict) -> dict[str, str]:
    return {k["principal"]: k.get("key") or k.get("password") for k in doc.get("keys", [])}


def test_the_deployment_is_consistent():
    par, nar, mn = _toml("par.toml")["router"], _toml("nar.toml")["router"], _toml("mn.toml")["mn"]
    home, a, b = _keys(_toml("kdc-home.toml")), _keys(_toml("kdc-a.toml")), _keys(_toml("kdc-b.toml"))
    # the routers' own keys are the ones their realms' KDCs issue tickets under (key case 1)
    assert par["security"]["keys"][0]["key"] == a["host/par@A.EXAMPLE"]
    assert nar["security"]["keys"][0]["key"] == b["host/nar@B.EXAMPLE"]
    # the AH SAs mirror each other
    (p,), (n,) = par["security"]["peers"], nar["security"]["peers"]
    assert (p["spi_out"], p["key_out"], p["spi_in"], p["key_in"]) == (n["spi_in"], n["key_in"], n["spi_out"],
                                                                      n["key_out"])
    # cross-realm keys agree; case 2 needs B's access key, case 3 B's key towards HOME on both sides
    for realm, kdc in (("A.EXAMPLE", a), ("B.EXAMPLE", b)):
        assert kdc[f"krbtgt/{realm}@HOME.EXAMPLE"] == home[f"krbtgt/{realm}@HOME.EXAMPLE"]
    assert "access/B.EXAMPLE@B.EXAMPLE" in b and "access/HOME.EXAMPLE@HOME.EXAMPLE" in home
    assert b["krbtgt/HOME.EXAMPLE@B.EXAMPLE"] == home["krbtgt/HOME.EXAMPLE@B.EXAMPLE"]
    # the MN's password and KDC addresses are those of the KDCs
    assert mn["kerberos"]["password"] == home["mn1@HOME.EXAMPLE"]
    listens = {d["realm"]: d["listen"] for d in map(_toml, ("kdc-home.toml", "kdc-a.toml", "kdc-b.toml"))}
    assert mn["kerberos"]["kdcs"] == listens
    assert nar["security"]["kdc"] == listens["B.EXAMPLE"] and par["security"]["kdc"] == listens["A.EXAMPLE"]
    assert _toml("kdc-b.toml")["peers"]["HOME.EXAMPLE"] == listens["HOME.EXAMPLE"]

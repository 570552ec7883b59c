"""Every mirror of a fact whose home is in Python agrees with that home (docs/conventions.md §2, §5).

* ``includes/consts.pxi`` is generated from fmipfast/constants.py by ``fmipfast._genconsts``: the committed
  file must be what the generator writes now, and its values what constants.py says (parsed independently).
* ``includes/wire.pxd`` holds the ``*_LEN`` sizes by hand: each equals constants.py's (or its RFC value).
* fmipfast/_linux.py holds the Linux ABI numbers for Python; the compiled core takes them from the system
  headers, and both must agree.
* The modules that use these numbers import them instead of restating them (a source scan).

The source-text checks run in every mode (no build needed); the checks of the compiled values and struct
sizes are only collected when the extension is available (conftest.HAVE_CORE) and then request the ``core``
fixture, so a missing build fails instead of passing silently.
"""

from __future__ import annotations

import ast
import enum
import re
from pathlib import Path

import pytest

from fmipfast import _genconsts, _linux, constants
from tests.conftest import HAVE_CORE

PKG = Path(__file__).resolve().parent.parent / "fmipfast"
INCLUDES = PKG / "includes"
PREFIXES = _genconsts.MIRRORS

# wire.pxd sizes/offsets with no constants.py counterpart, and the RFC value each must have.
WIRE_ONLY = {
    "IID_LEN": 8,  # RFC 4291 §2.5.1
    "ICMP6_CKSUM_OFFSET": 2,  # RFC 4443 §2.1
    "IP6_PSEUDO_HDR_LEN": 40,  # RFC 8200 §8.1
}

STRUCTS = {"eth_hdr": "ETH_HDR_LEN", "ip6_hdr": "IP6_HDR_LEN", "icmp6_hdr": "ICMP6_HDR_LEN"}

_ENUM_LINE = re.compile(r"^\s+([A-Z][A-Z0-9_]*)\s*=\s*(0x[0-9A-Fa-f]+|\d+)\b")


def _parse(path: Path) -> dict[str, int]:
    """NAME -> value of every `NAME = literal` line inside the file's `cdef enum:` blocks."""
    values: dict[str, int] = {}
    in_enum = False
    for line in path.read_text().splitlines():
        if line.startswith("cdef enum"):
            in_enum = True
            continue
        if in_enum and line and not line[0].isspace():
            in_enum = False
        match = _ENUM_LINE.match(line) if in_enum else None
        if match:
            assert match.group(1) not in values, f"{path.name}: {match.group(1)} defined twice"
            values[match.group(1)] = int(match.group(2), 0)
    return values


CONSTS = _parse(INCLUDES / "consts.pxi")
WIRE = _parse(INCLUDES / "wire.pxd")


def _expected(name: str) -> int:
    """The constants.py value a consts.pxi name mirrors."""
    for prefix, cls in PREFIXES.items():
        if name.startswith(prefix):
            member = name[len(prefix) :]
            if member == "ALL" and issubclass(cls, enum.IntFlag):
                return int(sum(cls))
            return int(cls[member])
    value = getattr(constants, name)
    assert isinstance(value, int) and not isinstance(value, enum.Enum)
    return value


def test_parsed_something():
    assert len(CONSTS) >= 60 and len(WIRE) >= 10


def test_consts_pxi_is_generated_from_constants():
    assert (INCLUDES / "consts.pxi").read_text() == _genconsts.render(), \
        "includes/consts.pxi is stale: run python -m fmipfast._genconsts"
    assert _genconsts.values() == CONSTS


@pytest.mark.parametrize("name", sorted(CONSTS))
def test_consts_pxi_value(name):
    assert CONSTS[name] == _expected(name)


@pytest.mark.parametrize("prefix", sorted(PREFIXES))
def test_consts_pxi_mirrors_every_member(prefix):
    cls = PREFIXES[prefix]
    assert {f"{prefix}{member.name}" for member in cls} <= set(CONSTS), cls.__name__


def test_wire_lengths_match_constants():
    sizes = {name: value for name, value in vars(constants).items() if name.endswith("_LEN")}
    for name, value in sizes.items():
        assert WIRE.get(name) == value, name
    for name, value in WIRE.items():
        expected = getattr(constants, name) if hasattr(constants, name) else WIRE_ONLY[name]
        assert value == expected, name


def test_no_name_in_both_files():
    assert not set(CONSTS) & set(WIRE)


# The Linux ABI numbers' one Python home is fmipfast/_linux.py: no other module assigns one of its names.
_RESTATED = re.compile(r"^\s*(" + "|".join(_linux.__all__) + r")\s*(,\s*\w+\s*)*=", re.M)


def test_linux_numbers_are_not_restated():
    restated = {f"{path.relative_to(PKG.parent)}: {m.group(1)}"
                for path in sorted(PKG.rglob("*.py")) if path.name != "_linux.py"
                for m in _RESTATED.finditer(path.read_text())}
    assert not restated


def test_linux_names_are_all_exported():
    tree = ast.parse((PKG / "_linux.py").read_text())
    assigned = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                if isinstance(t, ast.Name) and t.id.isupper()}
    assert assigned == set(_linux.__all__)


if HAVE_CORE:

    def test_compiled_consts_match_sources(core):
        assert core._consts() == CONSTS
        assert core._wire_consts() == WIRE

    def test_compiled_linux_numbers_match_linux_py(core):
        assert core._linux_consts() == {name: getattr(_linux, name) for name in _linux.__all__}

    def test_struct_sizes(core):
        sizes = core._struct_sizes()
        assert set(sizes) == set(STRUCTS)
        for struct, length in STRUCTS.items():
            assert sizes[struct] == getattr(constants, length) == WIRE[length], struct

"""The compiled core's constants agree with fmipfast/constants.py (docs/conventions.md §2, §5).

``includes/consts.pxi`` mirrors the IntEnums as plain ``cdef enum`` ints and ``includes/wire.pxd`` holds
the ``*_LEN`` sizes.  The source-text checks run in every mode (no build needed); the checks of the
compiled values and struct sizes are only collected when the extension is available (conftest.HAVE_CORE)
and then request the ``core`` fixture, so a missing build fails instead of passing silently.
"""

from __future__ import annotations

import ast
import enum
import inspect
import re
from pathlib import Path

import pytest

from fmipfast import backend, constants
from tests.conftest import HAVE_CORE

INCLUDES = Path(__file__).resolve().parent.parent / "fmipfast" / "includes"

# consts.pxi prefix -> the IntEnum it mirrors (the prefixes keep clear of system-header macros).
PREFIXES = {
    "NH_": constants.IpProto,
    "ETYPE_": constants.EtherType,
    "ICMP6T_": constants.Icmp6Type,
    "FMIPCODE_": constants.FmipCode,
    "SUBOPT_": constants.SubOptType,
    "ADDRKIND_": constants.AddressKind,
    "HOSTATUS_": constants.HandoverStatus,
    "NDOPT_": constants.NdOptType,
    "NDFMIP_": constants.NdFmipSubtype,
    "MHTYPE_": constants.MhType,
    "HRDFLAG_": constants.HrdFlag,
    "HIFLAG_": constants.HiFlag,
    "HCFLAG_": constants.HandoverControlFlag,
    "VERDICT_": constants.Verdict,
    "DROP_": constants.DropReason,
    "ACTION_": constants.Action,
    "NCFLAG_": constants.NeighborFlag,
    "NCSTATE_": constants.NeighborState,
}

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
            return int(cls[name[len(prefix) :]])
    value = getattr(constants, name)
    assert isinstance(value, int) and not isinstance(value, enum.Enum)
    return value


def test_parsed_something():
    assert len(CONSTS) >= 60 and len(WIRE) >= 10


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


if HAVE_CORE:

    def test_compiled_consts_match_sources(core):
        # the Verdict/DropReason mirrors are exported by the parse fragment's own hook
        assert {**core._consts(), **core._parse_consts(), **core._node_consts()} == {**CONSTS, **WIRE}

    def test_struct_sizes(core):
        sizes = core._struct_sizes()
        assert set(sizes) == set(STRUCTS)
        for struct, length in STRUCTS.items():
            assert sizes[struct] == getattr(constants, length) == WIRE[length], struct

    def test_stub_mirrors_docstrings(core):
        # docs/conventions.md §1: _core.pyi carries the same docstrings as the compiled functions.
        stub = ast.parse((INCLUDES.parent / "_core.pyi").read_text())
        documented = {node.name: ast.get_docstring(node) for node in stub.body if isinstance(node, ast.FunctionDef)}
        assert set(backend.KERNELS) <= set(documented)
        for name, doc in documented.items():
            compiled = inspect.cleandoc(getattr(core, name).__doc__.split("\n", 1)[1])  # drop signature
            assert doc == compiled, name

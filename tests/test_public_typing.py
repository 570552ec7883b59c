"""The public API is typed for a user's type checker: ``fmipfast``'s root re-exports and ``fmipfast.backend``
carry the signatures of ``fmipfast/_core.pyi`` (their one home), and the vocabulary modules (constants, errors)
are typed Python.  A user's program that uses them correctly passes ``mypy --strict`` (and runs); one with
mistakes gets an error on each wrong line.  The stub's ``__all__`` is the compiled module's, and the stub carries
signatures only: the docstrings live once, in the .pyx, and the compiled objects carry them."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import HAVE_CORE

ROOT = Path(__file__).resolve().parent.parent
STUB = ROOT / "fmipfast" / "_core.pyi"

GOOD = '''
from __future__ import annotations

import numpy as np
import numpy.typing as npt

import fmipfast
from fmipfast import Batch, NeighborCache, PacketBuffer, classify
from fmipfast.backend import (
    Fib,
    Node,
    eui64_from_mac48,
    icmp6_checksum,
    icmp6_checksum_fill,
    icmp6_checksum_ok,
    internet_checksum,
    link_local_from_mac48,
    ncoa_batch,
    ncoa_from_prefix,
)
from fmipfast.constants import DEFAULT_CODEPOINTS, Codepoints, DropReason, NeighborState, Verdict
from fmipfast.errors import DerivationError, FmipError, MalformedPacket


def main() -> None:
    implementation: str = fmipfast.IMPLEMENTATION
    version: str = fmipfast.__version__
    arena = np.zeros(256, dtype=np.uint8)
    offsets = np.array([0], dtype=np.int64)
    lengths = np.array([60], dtype=np.uint32)
    batch: Batch = classify(arena, offsets, lengths, codepoints=Codepoints(type=250))
    out = classify(arena, offsets, lengths, codepoints=DEFAULT_CODEPOINTS, out=Batch(4))
    verdicts: npt.NDArray[np.uint8] = batch.verdict
    rows: int = batch.n + len(out)
    reason = DropReason(int(batch.drop_reason[0]))
    text: str = reason.description
    forwarded = bool(verdicts[0] == Verdict.FORWARD)

    nc = NeighborCache(16, seed=bytes(16))
    index: npt.NDArray[np.int64] = nc.lookup(np.zeros((1, 16), dtype=np.uint8))
    states: npt.NDArray[np.uint8] = nc.states
    reachable = bool(states[0] == NeighborState.REACHABLE)
    buffered = PacketBuffer(slots=8, slot_size=256, max_keys=4)
    held: npt.NDArray[np.uint8] = buffered.push(np.zeros(1, dtype=np.int32), arena, offsets, lengths, 0)
    frames, starts, sizes = buffered.flush(0, 1)

    fib = Fib(np.zeros((1, 16), dtype=np.uint8), np.zeros(1, dtype=np.uint8), np.zeros(1, dtype=np.int32))
    route: npt.NDArray[np.int32] = fib.lookup(np.zeros((1, 16), dtype=np.uint8))
    node = Node(nc, 4, 1)
    node.set_interfaces(np.zeros((1, 6), dtype=np.uint8))
    node.set_routes(fib, np.zeros(1, dtype=np.int32), np.zeros((1, 16), dtype=np.uint8), np.zeros(1, dtype=np.uint8))
    present: int = node.run(batch, arena, offsets, lengths, np.zeros(0, dtype=np.uint32), 0, from_wire=False)
    actions: npt.NDArray[np.uint8] = node.action

    src, dst = bytes(15) + b"\\x01", bytes(15) + b"\\x02"
    message = bytearray(b"\\x80\\x00\\x00\\x00")
    icmp6_checksum_fill(src, dst, message)
    ok: bool = icmp6_checksum_ok(src, dst, message)
    checksum: int = icmp6_checksum(src, dst, bytes(message)) + internet_checksum(np.zeros(4, dtype=np.uint8))
    ncoa: bytes = ncoa_from_prefix(bytes(16), 64, bytes(16))
    eui: bytes = eui64_from_mac48(bytes(6))
    many: npt.NDArray[np.uint8] = ncoa_batch(np.zeros((2, 16), dtype=np.uint8), 64, np.zeros((2, 16), dtype=np.uint8))
    try:
        link_local_from_mac48(bytes(5))
    except (DerivationError, ValueError) as exc:
        where: int | None = exc.offset if isinstance(exc, MalformedPacket) else None
        assert isinstance(exc, (FmipError, ValueError)), where
    print(implementation, version, rows, text, forwarded, index, reachable, held, frames, starts, sizes, route,
          present, actions, ok, checksum, ncoa, eui, many)


main()
'''

# each line marked "# E" must get an error, and no other line
BAD = '''
from __future__ import annotations

import numpy as np

import fmipfast
from fmipfast import NeighborCache, PacketBuffer, classify
from fmipfast.backend import Fib, Node, icmp6_checksum, ncoa_from_prefix
from fmipfast.constants import DropReason

arena = np.zeros(256, dtype=np.uint8)
offsets = np.array([0], dtype=np.int64)
lengths = np.array([60], dtype=np.uint32)
classify(arena, offsets)  # E: lengths missing
classify(arena, offsets, lengths, codepoints=200)  # E: an int is no Codepoints
batch = classify(arena, offsets, lengths)
count: str = batch.n  # E: n is an int
batch.verdict = 3  # E: an array, not an int
nc = NeighborCache("16")  # E: capacity is an integer
nc.lookup()  # E: keys missing
PacketBuffer(8)  # E: keyword-only parameters
Fib(np.zeros((1, 16), dtype=np.uint8), np.zeros(1, dtype=np.uint8), np.zeros(1, dtype=np.int32), seed=5)  # E
node = Node(nc, 4)  # E: interfaces missing
node.run(batch, arena, offsets, lengths, np.zeros(0, dtype=np.uint32), 0, from_wire="yes")  # E: a bool
value: bytes = icmp6_checksum(bytes(16), bytes(16), b"")  # E: an int, not bytes
ncoa_from_prefix(bytes(16), "64", bytes(16))  # E: prefix length is an integer
DropReason.NO_SUCH_REASON  # E: no such member
fmipfast.IMPLEMENTATION + 1  # E: a str
'''


def _mypy(tmp_path: Path, *files: Path) -> subprocess.CompletedProcess:
    """mypy --strict as a user would run it: only the user's files reported (fmipfast followed, silently)."""
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")
    env = {**os.environ, "MYPYPATH": str(ROOT)}  # this work tree's fmipfast, not an installed one
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), "--strict", "--follow-imports=silent",
         "--python-version", "3.11", "--no-incremental", "--cache-dir", os.devnull, "--show-error-codes",
         "--no-error-summary", *map(str, files)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )


def test_mypy_strict_accepts_correct_use_and_reports_each_mistake(tmp_path):
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text(textwrap.dedent(GOOD))
    bad.write_text(textwrap.dedent(BAD))
    proc = _mypy(tmp_path, good, bad)
    assert proc.stderr == "", proc.stderr
    reported: dict[str, set[int]] = {"good.py": set(), "bad.py": set()}
    for line in proc.stdout.splitlines():
        match = re.match(r"(good\.py|bad\.py):(\d+): error:", line)
        if match:
            reported[match[1]].add(int(match[2]))
    assert not reported["good.py"], proc.stdout
    marked = {i for i, text in enumerate(bad.read_text().splitlines(), 1) if "# E" in text}
    assert len(marked) == 14
    assert reported["bad.py"] == marked, proc.stdout
    # and the correct program is correct at run time too, on the implementation in use
    run = subprocess.run([sys.executable, str(good)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr


def _stub_all() -> list[str]:
    names: list[str] = []
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__all__"]:
            names = list(ast.literal_eval(node.value))
        elif isinstance(node, ast.AugAssign) and getattr(node.target, "id", None) == "__all__":
            names += ast.literal_eval(node.value)
    return names


def _stub_defined() -> set[str]:
    defined: set[str] = set()
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defined.add(node.target.id)
    return defined


@pytest.mark.skipif(not HAVE_CORE, reason="needs the compiled fmipfast._core")
def test_stub_all_is_the_compiled_all():
    from fmipfast import _core

    stub = _stub_all()
    assert len(stub) == len(set(stub)), "a name twice in the stub's __all__"
    assert sorted(stub) == sorted(_core.__all__)


def test_stub_declares_every_public_name_backend_exports():
    from fmipfast import backend

    assert set(backend.KERNELS) | set(backend.CLASSES) | {"RING_WALK_ERRORS"} <= _stub_defined()
    assert set(_stub_all()) <= _stub_defined()


def test_stub_carries_signatures_only():
    tree = ast.parse(STUB.read_text())
    documented = [getattr(node, "name", "<module>") for node in ast.walk(tree)
                  if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(node) is not None]
    assert not documented, "docstrings belong in the .pyx (docs/conventions.md §1)"


@pytest.mark.skipif(not HAVE_CORE, reason="needs the compiled fmipfast._core")
def test_every_public_compiled_name_is_documented():
    from fmipfast import _core

    for name in _core.__all__:
        obj = getattr(_core, name)
        if callable(obj):
            assert (obj.__doc__ or "").strip(), name


@pytest.mark.skipif(not HAVE_CORE, reason="needs the compiled fmipfast._core")
def test_every_public_class_and_kernel_is_in_both_implementations_all():
    from fmipfast import _core, backend, reference

    public = set(backend.KERNELS) | set(backend.CLASSES)
    assert public <= set(_core.__all__) and public <= set(reference.__all__)

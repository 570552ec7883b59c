"""The fuzz campaign, bounded for CI (fuzz/README.md).

* Every committed corpus file and regression input goes through its target without atheris: a broken
  contract fails the test with the input and the traceback.
* Every target is fuzzed with atheris for ``FMIPFAST_FUZZ_SECONDS`` (default 13) seconds, its own
  regressions and corpus first; any crash fails the test and prints the crashing input.

Each target runs in a subprocess, so a kernel that crashes the interpreter fails its test instead of the
session.  The kernel targets compare fmipfast._core with fmipfast.reference, so they run only where the
compiled core is (not under FMIPFAST_PUREPYTHON=1; FMIPFAST_REQUIRE_EXTENSIONS=1 makes a missing core an
error in conftest).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fuzz.run import CORPUS, REGRESSIONS, ROOT, inputs
from fuzz.targets import KERNEL_TARGETS, TARGETS, ContractViolation, Reader
from tests.conftest import HAVE_CORE

SECONDS = int(os.environ.get("FMIPFAST_FUZZ_SECONDS", "13"))  # 11 targets x (13 s + start-up) ~ 2.8 min
TARGET_PARAMS = [
    pytest.param(name, marks=pytest.mark.skipif(name in KERNEL_TARGETS and not HAVE_CORE,
                                                reason="compares the compiled core with the reference"))
    for name in TARGETS
]


def atheris_or_skip() -> None:
    """atheris is in the test extra (pip install -e '.[test]'): a machine without it fails the fuzzing tests,
    it never skips them."""
    import atheris  # noqa: F401


def _fuzz(*args: str, timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return subprocess.run([sys.executable, "-m", "fuzz", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, errors="replace", timeout=timeout)


def test_every_target_has_a_seed_corpus():
    for name in TARGETS:
        assert inputs(CORPUS / name), f"fuzz/corpus/{name}/ is empty; run `python -m fuzz seed`"
    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    assert total < 2_000_000, f"the committed corpus is {total} octets; merge it down (python -m fuzz merge)"


@pytest.mark.parametrize("target", TARGET_PARAMS)
def test_replay_corpus_and_regressions(target):
    """Fast: the committed inputs only, no atheris."""
    files = inputs(REGRESSIONS / target) + inputs(CORPUS / target)
    assert files
    r = _fuzz("replay", "-v", target, timeout=300)
    lines = r.stderr.splitlines()
    started = [line for line in lines if line.startswith("replaying ")]
    report = "\n".join(line for line in lines if not line.startswith("replaying "))
    last = f"(last input started: {started[-1][10:]})\n" if started else ""
    assert r.returncode == 0, f"replay {target} failed (exit {r.returncode}) {last}{r.stdout}\n{report[-12000:]}"
    assert f"replay {target}: {len(files)} inputs, 0 failed" in r.stdout


@pytest.mark.parametrize("target", TARGET_PARAMS)
def test_fuzz_bounded(target, tmp_path):
    """Coverage-guided, bounded: FMIPFAST_FUZZ_SECONDS per target; fails on any crash."""
    atheris_or_skip()
    r = _fuzz("run", target, "--seconds", str(SECONDS), "--work", str(tmp_path / "work"), timeout=SECONDS + 240)
    report = f"{r.stdout}\n{r.stderr[-12000:]}"
    assert r.returncode == 0, f"fuzzing {target} found a crash (exit {r.returncode}):\n{report}"
    assert f"fuzz {target}: " in r.stdout and " 0 crash(es), exit 0" in r.stdout, report


# ---------------------------------------------------------------------------------------------------
# The harness itself can fail: a contract break is reported, not swallowed


def test_reader_defaults_past_the_end():
    r = Reader(b"\x01\x02\x03")
    assert (r.u8(), r.u16(), r.u32(), r.take(5), r.rest()) == (1, 0x0203, 0, b"", b"")


def test_a_broken_contract_is_a_failure():
    from fuzz.targets import _compare_outcomes

    with pytest.raises(ContractViolation, match="compiled ok"):
        _compare_outcomes("x", ("ok", 1), ("raise", ("ValueError", "no")), lambda a, b: None)
    with pytest.raises(ContractViolation, match="differ"):
        _compare_outcomes("x", ("ok", 1), ("ok", 2), lambda a, b: "differ")
    with pytest.raises(ContractViolation, match="raised"):
        _compare_outcomes("x", ("raise", ("ValueError", "a")), ("raise", ("ValueError", "b")), lambda a, b: None)
    _compare_outcomes("x", ("raise", ("ValueError", "a")), ("raise", ("ValueError", "a")), lambda a, b: None)


def test_the_runner_fails_on_a_crash_and_prints_the_input(tmp_path):
    atheris_or_skip()
    work = tmp_path / "work"
    work.mkdir()
    (work / "x").write_bytes(b"boom!")
    r = _fuzz("run", "_selftest", "--seconds", "5", "--work", str(work), timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 crash(es)" in r.stdout and b"boom!".hex() in r.stdout and "ContractViolation" in r.stdout


def test_replay_fails_on_a_broken_contract(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"boom")
    r = _fuzz("replay", "_selftest", str(bad), timeout=60)
    assert r.returncode == 1 and "1 failed" in r.stdout and "ContractViolation" in r.stderr

"""Linters as tests (docs/conventions.md §10, uvloop's tests/test_sourcecode.py): ruff over the whole tree and mypy
over the package, so a lint regression fails CI like any other bug."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff():
    proc = _run("ruff", "check", "fmipfast", "tests", "bench")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy():
    proc = _run("mypy", "fmipfast")
    assert proc.returncode == 0, proc.stdout + proc.stderr

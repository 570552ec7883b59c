"""Packaging: ``python -m build`` makes a source distribution that holds every Cython source of the repository
(.pyx, .pxi, .pxd, .h) and none of the C Cython generates, and a wheel that installs into a fresh virtual
environment and runs ``fmipfast demo`` with no Cython and no C compiler anywhere on its PATH.

Both build from a copy of the repository's files (so the generated C of a build never lands in the work tree),
with build isolation: the build requirements of pyproject.toml, fetched as a user's ``pip`` would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CYTHON_SOURCES = (".pyx", ".pxi", ".pxd", ".h")
_NOT_SOURCE = {".git", ".venv", "build", "dist", "__pycache__", ".hypothesis", ".pytest_cache", ".benchmarks"}


def _repo_files() -> list[str]:
    """The repository's files (tracked, and new ones not ignored), relative paths."""
    if (REPO / ".git").exists() and shutil.which("git"):
        out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"],
                             capture_output=True, check=True, timeout=60).stdout.decode()
        return sorted(p for p in out.split("\0") if p and (REPO / p).is_file())
    out = []
    for p in REPO.rglob("*"):  # no git: the tree, less what a build or a test run leaves in it
        rel = p.relative_to(REPO)
        generated = p.suffix in (".so", ".pyc") or str(rel) in ("fmipfast/_core.c", "fmipfast/_core.html")
        if p.is_file() and not _NOT_SOURCE & set(rel.parts) and not generated:
            out.append(str(rel))
    return sorted(out)


def _copy(dest: Path) -> Path:
    for rel in _repo_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    return dest


def _build(src: Path, out: Path, *what: str) -> list[Path]:
    """``python -m build [what] --outdir out src`` as a release build (none of the FMIPFAST_* build switches)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FMIPFAST_")}
    done = subprocess.run([sys.executable, "-m", "build", *what, "--outdir", str(out), str(src)],
                          capture_output=True, text=True, env=env, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return sorted(out.iterdir())


def _sdist_members(sdist: Path) -> set[str]:
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
    return {n.split("/", 1)[1] for n in names if "/" in n}


def _check_sdist(sdist: Path) -> None:
    members = _sdist_members(sdist)
    sources = [p for p in _repo_files() if p.endswith(CYTHON_SOURCES)]
    assert "fmipfast/_core.pyx" in sources and any(p.endswith(".h") for p in sources)
    missing = [p for p in sources if p not in members]
    assert not missing, f"the sdist lacks {missing}"
    generated = sorted(m for m in members if m.endswith((".c", ".so", ".html")) and m.startswith("fmipfast/"))
    assert not generated, f"the sdist carries build outputs {generated}"
    for needed in ("pyproject.toml", "setup.py", "README.md", "LICENSE", "fmipfast/wireshark/fmipfast.lua",
                   "contrib/systemd/fmipfast-kdc.service", "contrib/grafana/fmipfast.json", "docs/operations.md"):
        assert needed in members, needed


def test_every_subpackage_is_listed_for_setuptools():
    """pyproject.toml names the packages (no discovery): a new subpackage left out of the list would be missing
    from the wheel while every test of the work tree passes."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "fmipfast").rglob("__init__.py")}
    assert found == listed


def test_the_sdist_holds_every_cython_source_and_no_generated_c(tmp_path):
    src = _copy(tmp_path / "src")
    (sdist,) = _build(src, tmp_path / "dist", "--sdist")
    assert sdist.name.endswith(".tar.gz")
    _check_sdist(sdist)
    assert not (REPO / "fmipfast" / "_core.c").exists() or "_core.c" not in _repo_files()


@pytest.mark.slow
def test_the_wheel_installs_and_runs_the_demo_without_cython_or_a_compiler(tmp_path):
    """sdist -> wheel (built from the sdist, the extension compiled there), then a fresh venv where pip installs
    only binaries, a PATH with the venv alone, CC and CXX that fail: ``fmipfast demo`` from an unrelated
    directory runs the secure fast handover on the compiled kernels."""
    src = _copy(tmp_path / "src")
    artifacts = _build(src, tmp_path / "dist")  # the sdist, then the wheel from it
    sdist = next(p for p in artifacts if p.name.endswith(".tar.gz"))
    wheel = next(p for p in artifacts if p.name.endswith(".whl"))
    _check_sdist(sdist)
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert any(n.startswith("fmipfast/_core.") and n.endswith(".so") for n in names), names
    assert "fmipfast/_core.c" not in names and "fmipfast/wireshark/fmipfast.lua" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    vbin = venv / "bin"
    # nothing of the build machine's environment but where pip finds packages (its configuration under HOME)
    env = {"PATH": str(vbin), "CC": "/bin/false", "CXX": "/bin/false", "LANG": "C.UTF-8"}
    env |= {k: v for k, v in os.environ.items() if k == "HOME" or k.startswith("PIP_") or k.lower().endswith("_proxy")}
    assert shutil.which("cc", path=env["PATH"]) is None and shutil.which("gcc", path=env["PATH"]) is None
    assert shutil.which("cython", path=env["PATH"]) is None
    done = subprocess.run([str(vbin / "python"), "-m", "pip", "install", "-q", "--only-binary", ":all:", str(wheel)],
                          capture_output=True, text=True, env=env, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = subprocess.run([str(vbin / "python"), "-c", "import fmipfast, importlib.util; print(fmipfast.__file__); "
                            "print(fmipfast.IMPLEMENTATION); print(importlib.util.find_spec('Cython'))"],
                           capture_output=True, text=True, env=env, cwd=elsewhere, timeout=300)
    assert probe.returncode == 0, probe.stderr
    where, implementation, cython = probe.stdout.split()
    assert where.startswith(str(venv)) and cython == "None"
    assert implementation == "core", probe.stdout  # the compiled kernels, from the wheel
    demo = subprocess.run([str(vbin / "fmipfast"), "demo"], capture_output=True, text=True, env=env, cwd=elsewhere,
                          timeout=600)
    assert demo.returncode == 0, demo.stderr
    out = demo.stdout
    assert out.startswith("fmipfast demo: secure fast handover (draft-koodli-mobileip-fastv6-02)"), out[:300]
    assert "5. Attach (with the BU)" in out and "4. Authenticated-MN" in out
    summary = {line.split()[0]: line.split()[1:] for line in out.split("\nsummary", 1)[1].splitlines()[1:]
               if line.startswith("  ")}
    assert summary["lost"] == ["0"] and int(summary["received"][0]) == int(summary["sent"][0]) > 0, out
    version = subprocess.run([str(vbin / "fmipfast"), "version"], capture_output=True, text=True, env=env,
                             cwd=elsewhere, timeout=120)
    assert version.returncode == 0 and version.stdout.strip().endswith("(core kernels)"), version.stdout

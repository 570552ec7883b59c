"""The import rules of docs/conventions.md §9, enforced by parsing every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "fmipfast"

# module (or package prefix) -> fmipfast modules it may import.  Anything not listed is forbidden.
VOCAB = {"errors", "constants", "histogram"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "constants": set(),
    "histogram": set(),
    "_version": set(),
    "reference": VOCAB | {"reference"},
    "backend": VOCAB | {"_core", "reference"},
    "messages": VOCAB | {"backend"},
    "frames": VOCAB | {"backend", "messages"},
    "pcap": VOCAB,
    "dissect": VOCAB | {"frames", "messages", "pcap"},
    "tomlfile": VOCAB,
    "config": VOCAB | {"tomlfile"},
    "security": VOCAB | {"security", "tomlfile"},
    "protocol": VOCAB | {"messages", "config", "security"},
    "keys": VOCAB,
    "ar": VOCAB | {"protocol", "messages", "config", "security", "keys"},
    "mn": VOCAB | {"protocol", "messages", "config", "security"},
    "rings": VOCAB | {"backend", "config"},
    "ports": VOCAB | {"rings", "pcap"},
    # the data plane: never the reference (the kernels come through backend); engine is its public import path
    "dataplane": VOCAB | {"dataplane", "ports", "backend", "messages", "config", "frames", "keys"},
    "engine": VOCAB | {"dataplane", "ports", "backend", "messages", "config", "frames", "keys"},
    "mnagent": VOCAB | {"mn", "protocol", "messages", "config", "security", "frames"},
    "control": VOCAB | {"engine", "config", "metrics"},
    "router": VOCAB | {"engine", "ar", "protocol", "security", "control", "frames", "messages", "config"},
    "metrics": VOCAB | {"engine", "config"},
    "mobility": VOCAB | {"messages"},
    "mnd": VOCAB | {"mnagent", "mn", "mobility", "protocol", "messages", "config", "security", "control",
                    "metrics"},
    "sdnotify": set(),  # the standard library only; the daemons (cli) hand it to the KDC
    "__init__": {"_version", "backend"},  # re-exports the batch API (docs/design.md §7)
    "__main__": {"cli"},
    "cli": None,  # anything
    "lab": None,
    "contrib": VOCAB,  # optional third-party integrations (scapy layers); nothing imports them
}


def _owner(path: Path) -> str:
    rel = path.relative_to(PKG).with_suffix("")
    return rel.parts[0]


def _fmipfast_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("fmipfast."):
                    found.add(alias.name.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "fmipfast":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("fmipfast."):
                found.add(node.module.split(".")[1])
    return found


def test_every_module_follows_the_import_rules():
    violations = []
    modules = sorted(PKG.rglob("*.py"))
    assert len(modules) > 10
    for path in modules:
        owner = _owner(path)
        assert owner in ALLOWED, f"{path}: a new module needs a row in ALLOWED (and in docs/conventions.md §9)"
        allowed = ALLOWED[owner]
        if allowed is None:
            continue
        bad = _fmipfast_imports(path) - allowed - {owner}
        if bad:
            violations.append(f"{path.relative_to(PKG.parent)} imports {sorted(bad)}")
    assert not violations, "\n".join(violations)


def test_reference_never_imports_core_and_security_stays_in_its_room():
    for path in (PKG / "reference").rglob("*.py"):
        assert "_core" not in _fmipfast_imports(path), path
    for path in PKG.rglob("*.py"):
        if _owner(path) == "security":
            continue
        text = path.read_text()
        assert "import cryptography" not in text and "from cryptography" not in text, (
            f"{path}: crypto belongs in fmipfast/security (docs/conventions.md §7)")
        assert "import hmac" not in text and "import hashlib" not in text, path


def test_core_pyx_cimports_only_includes():
    text = (PKG / "_core.pyx").read_text()
    assert "cryptography" not in text and "import messages" not in text

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
    "engine": VOCAB | {"rings", "ports", "backend", "messages", "ar", "config", "security", "frames", "keys"},
    "mnagent": VOCAB | {"mn", "protocol", "messages", "config", "security", "frames"},
    "control": VOCAB | {"engine", "config", "metrics"},
    "router": VOCAB | {"engine", "ar", "protocol", "security", "control", "frames", "messages", "config"},
    "metrics": VOCAB | {"engine", "config"},
    "mobility": VOCAB | {"messages"},
    "mnd": VOCAB | {"mnagent", "mn", "mobility", "protocol", "messages", "config", "security", "control",
                    "metrics", "sdnotify", "logsetup"},
    "routerd": VOCAB | {"engine", "ports", "router", "control", "metrics", "sdnotify", "logsetup", "config",
                        "security"},
    "logsetup": {"config"},  # the [logging] table's type; otherwise the standard library
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


def test_cli_parses_and_dispatches_and_assembles_no_daemon():
    """``fmipfast.cli`` is the command line (docs/conventions.md §1): the router and the MN are put together in
    ``routerd`` and ``mnd`` (and the KDC in ``security.kdc.serve``), so cli.py imports none of their parts and
    runs no event loop or signal handler.  It may use ``control``'s client (``ctl``) and hand the KDC its
    notifier and endpoints."""
    tree = ast.parse((PKG / "cli.py").read_text())
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    parts = _fmipfast_imports(PKG / "cli.py") & {"engine", "ports", "rings", "router", "mnagent", "mobility",
                                                  "logsetup"}
    assert not parts, f"cli.py imports daemon parts {sorted(parts)}: they belong in routerd or mnd"
    assert not modules & {"asyncio", "signal"}, "cli.py runs an event loop or handles signals: a daemon's job"
    # and every name it forwards to those modules (setup_logging, router_control, ...) is still there
    from fmipfast import cli

    for name, (module, attr) in cli._MOVED.items():
        assert getattr(cli, name) is getattr(__import__(module, fromlist=[attr]), attr), name

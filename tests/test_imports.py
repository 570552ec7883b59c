"""The import rules of docs/conventions.md §9, enforced by parsing every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "fmipfast"

# module (or package prefix) -> fmipfast modules it may import.  Anything not listed is forbidden.  An entry
# allows that module and those below it: "reference" all of the reference, "reference.derive" only that module.
VOCAB = {"errors", "constants", "histogram", "_linux"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "constants": set(),
    "histogram": set(),
    "_linux": set(),  # the Linux ABI numbers (AF_PACKET, TPACKET_V3)
    "_genconsts": {"constants"},  # writes includes/consts.pxi from constants.py
    "_version": set(),
    "reference": VOCAB | {"reference"},
    "backend": VOCAB | {"_core", "reference"},
    "messages": VOCAB | {"backend"},  # the package fmipfast/messages/; its inner order is MESSAGES_ORDER below
    "frames": VOCAB | {"backend", "messages"},
    "pcap": VOCAB,
    "dissect": VOCAB | {"frames", "messages", "pcap"},
    "tomlfile": VOCAB,
    "config": VOCAB | {"tomlfile"},
    "security": VOCAB | {"security", "tomlfile"},
    # the machines derive addresses through the pure-Python oracle (one home per derivation; never the backend)
    "protocol": VOCAB | {"messages", "config", "security", "reference.derive"},
    "keys": VOCAB,
    # the access router: the package (its façade __init__ and the machine) puts the two roles together; the
    # roles never import each other, and the session table needs nothing but the vocabulary
    "ar": VOCAB | {"protocol", "messages", "config", "security", "keys"},
    "ar.sessions": VOCAB,
    "ar.records": VOCAB | {"ar.sessions", "protocol", "messages", "security"},
    "ar.base": VOCAB | {"ar.records", "ar.sessions", "protocol", "keys"},
    "ar.par": VOCAB | {"ar.base", "ar.records", "protocol", "messages"},
    "ar.nar": VOCAB | {"ar.base", "ar.records", "ar.sessions", "protocol", "messages", "security"},
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

# Inside fmipfast/messages/ (every module there is governed by the "messages" row above): the submodules each
# module may import.  The codec sits on the messages and no message module imports it back; the sub-options
# need the Mobility Header (sub-option 5 carries a Binding Update).  No submodule imports the façade.
MESSAGES_ORDER: dict[str, set[str]] = {
    "base": set(),
    "mobility_header": {"base"},
    "suboptions": {"base", "mobility_header"},
    "fmipv6": {"base", "suboptions"},
    "nd": {"base"},
    "codec": {"base", "suboptions", "fmipv6", "nd"},
    "__init__": {"base", "mobility_header", "suboptions", "fmipv6", "nd", "codec"},
}


def _owner(path: Path) -> str:
    """The most specific row of ALLOWED for ``path``: ``ar/par.py`` is "ar.par" if it has a row, else "ar"."""
    parts = path.relative_to(PKG).with_suffix("").parts
    for n in range(len(parts), 1, -1):
        if ".".join(parts[:n]) in ALLOWED:
            return ".".join(parts[:n])
    return parts[0]


def _is_module(dotted: str) -> bool:
    path = PKG.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or path.is_dir()


def _fmipfast_imports(path: Path) -> set[str]:
    """The fmipfast modules ``path`` imports, dotted below ``fmipfast`` ("messages", "reference.derive")."""
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("fmipfast."):
                    found.add(alias.name.removeprefix("fmipfast."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "fmipfast":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("fmipfast."):
                module = node.module.removeprefix("fmipfast.")
                # ``from fmipfast.reference import derive`` imports the module reference.derive
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    found.add(sub if _is_module(sub) else module)
    return found


def _allowed(module: str, allowed: set[str]) -> bool:
    return any(module == a or module.startswith(a + ".") for a in allowed)


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
        bad = {m for m in _fmipfast_imports(path) if not _allowed(m, allowed | {owner})}
        if bad:
            violations.append(f"{path.relative_to(PKG.parent)} imports {sorted(bad)}")
    assert not violations, "\n".join(violations)


def test_a_dotted_entry_allows_that_module_only(tmp_path):
    assert _allowed("reference.derive", {"reference.derive"}) and _allowed("reference.derive", {"reference"})
    assert not _allowed("reference", {"reference.derive"}) and not _allowed("reference.wire", {"reference.derive"})
    assert not _allowed("referenced", {"reference"})
    src = tmp_path / "m.py"
    src.write_text("from fmipfast.reference import derive, classify\nimport fmipfast.reference.wire\n"
                   "from fmipfast.protocol import Tick\nfrom fmipfast import backend\n")
    assert _fmipfast_imports(src) == {"reference.derive", "reference", "reference.wire", "protocol", "backend"}
    assert _owner(PKG / "ar" / "sessions.py") == "ar.sessions" and _owner(PKG / "ar" / "machine.py") == "ar"
    assert _owner(PKG / "security" / "ah.py") == "security" and _owner(PKG / "__init__.py") == "__init__"
    # the data plane stays off the oracle: only the protocol machines may derive through it
    assert not any(_allowed(m, ALLOWED["engine"]) for m in ("reference", "reference.derive"))


def _messages_imports(path: Path) -> set[str]:
    """The submodules of fmipfast.messages that ``path`` imports; ``"__init__"`` for the package itself."""
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            found.add("relative import")
        names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                 else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
        for name in names:
            if name == "fmipfast.messages":
                found.add("__init__")
            elif name.startswith("fmipfast.messages."):
                found.add(name.split(".")[2])
        if isinstance(node, ast.ImportFrom) and node.module == "fmipfast":
            found.update("__init__" for alias in node.names if alias.name == "messages")
    return found


def test_messages_package_has_no_import_cycle():
    modules = sorted((PKG / "messages").glob("*.py"))
    assert {p.stem for p in modules} == set(MESSAGES_ORDER), "a module of fmipfast/messages/ needs a MESSAGES_ORDER row"
    violations = [f"messages/{p.name} imports {sorted(bad)}" for p in modules
                  if (bad := _messages_imports(p) - MESSAGES_ORDER[p.stem])]
    assert not violations, "\n".join(violations)
    done: list[str] = []  # the table itself is acyclic: a topological order exists
    while len(done) < len(MESSAGES_ORDER):
        ready = [m for m, deps in MESSAGES_ORDER.items() if m not in done and deps <= set(done)]
        assert ready, f"MESSAGES_ORDER has a cycle among {sorted(set(MESSAGES_ORDER) - set(done))}"
        done += ready
    assert done[-1] == "__init__" and "codec" not in set().union(*(MESSAGES_ORDER[m] for m in done[:-1]))


def test_reference_never_imports_core_and_security_stays_in_its_room():
    for path in (PKG / "reference").rglob("*.py"):
        assert not any(_allowed(m, {"_core"}) for m in _fmipfast_imports(path)), path
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

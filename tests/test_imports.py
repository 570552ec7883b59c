"""The import rules of docs/conventions.md §9, enforced by parsing every module's imports, and no import cycle
anywhere in the package."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "fmipfast"

# module (or package prefix, dotted: "lab.simulated") -> the fmipfast modules (or package prefixes) it may
# import; a module's row is the longest prefix of its name that has one.  An entry allows that module and those
# below it: "reference" all of the reference, "reference.derive" only that module.  Anything not listed is
# forbidden.
VOCAB = {"errors", "constants", "histogram", "_linux"}


def _lwkerb(*modules: str) -> set[str]:
    return {f"security.lwkerb.{m}" for m in modules}


ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "constants": set(),
    "histogram": set(),
    "_linux": set(),  # the Linux ABI numbers (AF_PACKET, TPACKET_V3)
    "rtnetlink": set(),  # the rtnetlink layouts the MN agent and the lab speak
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
    # light-weight Kerberos: a row per module, in layers -- each row names only modules whose rows are above it
    # (test below); the package's own row covers its façade __init__, which no submodule may import
    "security.lwkerb.constants": set(),
    "security.lwkerb.errors": {"errors"},
    "security.lwkerb.wire": _lwkerb("constants", "errors"),
    "security.lwkerb.keys": _lwkerb("constants", "errors", "wire"),
    "security.lwkerb.ticket": _lwkerb("constants", "errors", "wire", "keys"),
    "security.lwkerb.pdus": _lwkerb("constants", "errors", "wire", "keys", "ticket"),
    "security.lwkerb.client": _lwkerb("constants", "errors", "wire", "keys", "ticket", "pdus"),
    "security.lwkerb.replay": _lwkerb("constants", "errors"),
    "security.lwkerb.verifier": _lwkerb("constants", "errors", "wire", "keys", "ticket", "pdus", "replay"),
    "security.lwkerb": _lwkerb("constants", "errors", "wire", "keys", "ticket", "pdus", "client", "replay",
                               "verifier"),
    # the machines' vocabulary; it derives addresses with the backend's kernels for ar and mn, which never import
    # the backend themselves (a built package runs the compiled core there, never the oracle)
    "protocol": VOCAB | {"messages", "config", "security", "backend"},
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
    # the data plane: never the reference (the kernels come through backend); engine is its public import path
    "dataplane": VOCAB | {"dataplane", "ports", "backend", "messages", "config", "frames", "keys"},
    "engine": VOCAB | {"dataplane"},  # the public import path of the data plane
    "mnagent": VOCAB | {"mn", "protocol", "messages", "config", "security", "frames", "rtnetlink"},
    "control": VOCAB | {"engine", "config", "metrics"},
    "router": VOCAB | {"engine", "ar", "protocol", "security", "control", "frames", "messages", "config"},
    "metrics": VOCAB | {"engine", "config"},
    "mobility": VOCAB | {"messages"},
    "mnd": VOCAB | {"mnagent", "mn", "mobility", "protocol", "messages", "config", "security", "control",
                    "metrics", "sdnotify", "logsetup", "scheduling"},
    "scheduling": VOCAB | {"config"},  # a daemon's [<daemon>.scheduling], set at start (routerd, mnd)
    # a router's first handover rehearsed at start on throwaway state (an engine over in-memory ports, an agent)
    "warmup": VOCAB | {"engine", "ports", "router", "protocol", "security", "frames", "messages", "config"},
    "routerd": VOCAB | {"engine", "ports", "router", "warmup", "control", "metrics", "sdnotify", "logsetup", "config",
                        "security", "scheduling"},
    "logsetup": {"config", "errors"},  # the [logging] table's type, the escape; otherwise the standard library
    "sdnotify": set(),  # the standard library only; the daemons (cli) hand it to the KDC
    "__init__": {"_version", "backend"},  # re-exports the batch API (docs/design.md §7)
    "__main__": {"cli"},
    "cli": None,  # anything
    # the lab: two halves that never import each other, and what they share (docs/design.md §6)
    "lab": set(),  # the package's docstring
    "lab.mitrealms": VOCAB | {"security"},
    "lab.sample": VOCAB | {"backend", "frames", "messages", "pcap", "security"},
    "lab.simulated": VOCAB | {"lab.mitrealms", "backend", "config", "frames", "messages", "ports", "engine",
                              "protocol", "mn", "router", "control", "security", "mobility", "pcap"},
    "lab.namespaces": VOCAB | {"lab.mitrealms", "messages", "rings", "mn", "mnagent", "mobility", "control",
                               "security", "rtnetlink"},
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


def _dotted(path: Path) -> str:
    """``fmipfast/lab/simulated/demo.py`` -> ``lab.simulated.demo`` (``__init__`` kept: ``lab.__init__``)."""
    return ".".join(path.relative_to(PKG).with_suffix("").parts)


def _row(name: str) -> str | None:
    """The ALLOWED key governing module ``name``: the longest dotted prefix of it that has a row."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in ALLOWED:
            return ".".join(parts)
        parts.pop()
    return None


def _imports(path: Path) -> set[str]:
    """Every fmipfast module ``path`` names in an import, at any depth (functions, TYPE_CHECKING blocks):
    dotted below ``fmipfast`` (``security.gss``); ``from fmipfast.X import y`` gives ``X.y`` (y may be a
    module), ``from fmipfast import y`` gives ``y``; relative imports are resolved from ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    here = _dotted(path).split(".")[:-1] if path.is_relative_to(PKG) else []  # the package holding path
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("fmipfast."):
                    found.add(alias.name[len("fmipfast."):])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            elif node.module == "fmipfast":
                module = ""
            elif node.module and node.module.startswith("fmipfast."):
                module = node.module[len("fmipfast."):]
            else:
                continue
            for alias in node.names:
                found.add(f"{module}.{alias.name}" if module else alias.name)
    return found


def _fmipfast_imports(path: Path) -> set[str]:
    """The top-level fmipfast modules ``path`` imports (``security`` for ``security.gss``)."""
    return {name.split(".")[0] for name in _imports(path)}


def _covered(name: str, prefixes: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_every_module_follows_the_import_rules():
    violations = []
    modules = sorted(PKG.rglob("*.py"))
    assert len(modules) > 10
    for path in modules:
        row = _row(_dotted(path))
        assert row is not None, f"{path}: a new module needs a row in ALLOWED (and in docs/conventions.md §9)"
        allowed = ALLOWED[row]
        if allowed is None:
            continue
        bad = {name for name in _imports(path) if not _covered(name, allowed | {row})}
        if bad:
            violations.append(f"{path.relative_to(PKG.parent)} imports {sorted(bad)}")
    assert not violations, "\n".join(violations)


def test_a_dotted_entry_allows_that_module_only(tmp_path):
    assert _covered("reference.derive", {"reference.derive"}) and _covered("reference.derive", {"reference"})
    assert not _covered("reference", {"reference.derive"}) and not _covered("reference.wire", {"reference.derive"})
    assert not _covered("referenced", {"reference"})
    src = tmp_path / "m.py"
    src.write_text("from fmipfast.reference import derive, classify\nimport fmipfast.reference.wire\n"
                   "from fmipfast.protocol import Tick\nfrom fmipfast import backend\n")
    assert _imports(src) == {"reference.derive", "reference.classify", "reference.wire", "protocol.Tick", "backend"}
    assert not _covered("reference.classify", {"reference.derive"})  # a name of the package is not that module
    rows = {p: _row(_dotted(PKG / p)) for p in ("ar/sessions.py", "ar/machine.py", "security/ah.py", "__init__.py")}
    assert rows == {"ar/sessions.py": "ar.sessions", "ar/machine.py": "ar", "security/ah.py": "security",
                    "__init__.py": "__init__"}
    # production code stays off the oracle: only the backend (which picks it or the compiled core) imports it
    users = {row for row, allowed in ALLOWED.items() if allowed is not None and row not in ("reference", "backend")
             and any(_covered(m, allowed) for m in ("reference", "reference.derive"))}
    assert users == set()


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


def test_the_lab_halves_never_import_each_other():
    """docs/design.md §6: the simulated world and the namespace lab share no code but lab.mitrealms."""
    for path in sorted((PKG / "lab").rglob("*.py")):
        name = _dotted(path)
        for half, other in (("lab.simulated", "lab.namespaces"), ("lab.namespaces", "lab.simulated")):
            if _covered(name, {half}):
                assert not any(_covered(i, {other}) for i in _imports(path)), (path, _imports(path))


def _module_names() -> dict[str, Path]:
    """Every module of the package by dotted name; a package is its ``__init__`` (``lab``; the root ``""``);
    the compiled extension by its stub."""
    out = {}
    for path in sorted(PKG.rglob("*.py")) + sorted(PKG.rglob("*.pyi")):
        parts = list(path.relative_to(PKG).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.setdefault(".".join(parts), path)
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the modules it imports (at any depth in it), within fmipfast.  ``from fmipfast.X import y``
    is an edge to ``X.y`` when that is a module, else to ``X``; any other name to the longest module prefix."""
    modules = _module_names()

    def resolve(name: str) -> str:
        parts = name.split(".") if name else []
        while parts and ".".join(parts) not in modules:
            parts.pop()
        return ".".join(parts)

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        if path.suffix != ".py":
            graph[name] = set()
            continue
        edges = {resolve(i) for i in _imports(path)}
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) through every back edge of a depth-first walk: none iff acyclic."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if state.get(root):
            continue
        path, stack = [root], [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return cycles


def test_find_cycles_finds_them():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []
    assert find_cycles({"x": {"x"}}) == [["x", "x"]]


def test_the_package_has_no_import_cycle():
    """No two modules of fmipfast import each other, directly or around a longer loop -- function-level
    imports included: a cycle hidden inside a function still makes each module need the other."""
    graph = import_graph()
    assert {"lab.simulated.demo", "lab.simulated.world", "_core", "security.gss"} <= set(graph)
    assert "lab.simulated.world" in graph["lab.simulated.handover"]
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c or "fmipfast" for c in cyc) for cyc in cycles)


def test_the_lwkerb_rows_are_layers():
    """security/lwkerb/: every module has its own row, and a row names only lwkerb modules whose rows are above
    it (and fmipfast.errors): constants and errors at the bottom, the verifier on top."""
    package = PKG / "security" / "lwkerb"
    rows = [row for row in ALLOWED if row.startswith("security.lwkerb.")]
    assert {row.rpartition(".")[2] for row in rows} == {p.stem for p in package.glob("*.py")} - {"__init__"}, (
        "a module of security/lwkerb/ needs its row in ALLOWED")
    above: set[str] = set()
    for row in rows:
        deps = ALLOWED[row]
        assert deps is not None and deps - {"errors"} <= above, f"{row} names {sorted(deps - above)}, not above it"
        above.add(row)
    assert _row(_dotted(package / "keys.py")) == "security.lwkerb.keys"
    assert _row(_dotted(package / "__init__.py")) == "security.lwkerb"


def test_reference_never_imports_core_and_security_stays_in_its_room():
    for path in (PKG / "reference").rglob("*.py"):
        assert not any(_covered(m, {"_core"}) for m in _imports(path)), path
    for path in PKG.rglob("*.py"):
        if (_row(_dotted(path)) or "").partition(".")[0] == "security":  # security and security.lwkerb.*
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



def test_the_lab_reads_as_its_two_halves():
    """fmipfast/lab/ is the simulated world, the namespace lab, and the two modules both use (docs/design.md §6);
    a module at its top level is a third thing and belongs in one of the halves."""
    top = {p.name for p in (PKG / "lab").iterdir() if p.name != "__pycache__"}
    assert top == {"__init__.py", "simulated", "namespaces", "mitrealms.py", "sample.py"}, sorted(top)

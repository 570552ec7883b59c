"""``fmipfast lab up|status|move|down``: the lab of docs/design.md §6 left running between commands (root).

``up`` builds :class:`~fmipfast.lab.namespaces.topology.LabTopology`, writes the PAR's and the NAR's ``[router]``
configurations into the state directory, starts ``fmipfast router`` in the ``par`` and ``nar`` namespaces with
their control sockets, then ``fmipfast mn`` in ``mn`` (an ``[mn]`` configuration and a credentials file with
tickets for both routers), waits for each to print ``READY`` and for the MN to attach to the PAR, and records
everything in ``state.json``; the lab then outlives the command.  A failure at any step tears down what was
built.  A handover is then driven by hand through the PAR's control socket (``fmipfast ctl ... handover``):
the MN daemon's switch command is ``fmipfast lab move`` to the NAR's link.  ``status`` reads the state and
asks each daemon for its counters (the MN: its status) through the control API.  ``move`` moves the MN's
bridge port to link A or B (the layer-2 handover).  ``down`` stops the daemons (SIGTERM, so each writes its
final counters to its log), then removes every namespace of the prefix, and with them every link; it also
cleans the leftovers of a crashed ``up``.

State directory: ``/run/fmipfast-lab/<prefix>`` unless ``--state`` names another.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fmipfast.lab.namespaces import topology
from fmipfast.lab.namespaces.run import router_security
from fmipfast.lab.namespaces.topology import LabError, LabTopology, write_config

__all__ = ["up", "status", "move", "down", "state_dir", "READY_TIMEOUT_S"]

READY_TIMEOUT_S = 20.0
ENGINES = ("par", "nar")


def state_dir(prefix: str, state: str | os.PathLike[str] | None = None) -> Path:
    return Path(state) if state is not None else Path("/run/fmipfast-lab") / prefix.rstrip("-")


def _start(lab: LabTopology, sdir: Path, name: str, ns: str, argv: list[str], env: dict[str, str],
           timeout: float) -> dict[str, Any]:
    """Spawn a daemon with its log files in ``sdir``, wait for its READY line; its state record."""
    log = sdir / f"{name}.log"
    with open(log, "w") as out, open(log.with_suffix(".err"), "w") as err:
        proc = lab.spawn(ns, argv, stdout=out, stderr=err, env=env)
    _wait_ready(log, proc, name, timeout)
    return {"pid": proc.pid, "log": str(log)}


def _mn_config(lab: LabTopology, sdir: Path, prefix: str) -> str:
    """The MN daemon's configuration: attach to the PAR with the PCoA, tickets from the lab's KDCs (cross-realm
    TGTs precached from the RAs); at a handover, move to the NAR's link."""
    from fmipfast.lab.namespaces.run import P_PAR, mn_kerberos

    move = [sys.executable, "-m", "fmipfast", "lab", "move", "--prefix", prefix, "--state", str(sdir), "--to", "{nar}"]
    out: list[str] = []
    topology._toml_table("mn", {"interface": lab.mn_if, "router": str(lab.par_address), "router_principal": str(P_PAR),
                                "address": str(lab.pcoa), "home_agent": str(lab.cn_address), "switch_command": move,
                                "switch_timeout_ms": 20000, "kerberos": mn_kerberos(lab)}, out)
    return "\n".join(out) + "\n"


def _wait_ready(log: Path, proc: subprocess.Popen, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        if any(line.startswith("READY ") for line in text.splitlines()):
            return
        if proc.poll() is not None:
            err = log.with_suffix(".err")
            raise LabError(f"the {name} daemon exited with status {proc.returncode} before READY: "
                           f"{err.read_text().strip() if err.exists() else ''}")
        time.sleep(0.05)
    raise LabError(f"the {name} daemon printed no READY within {timeout:.0f} s (log {log})")


def up(prefix: str = topology.DEFAULT_PREFIX, state: str | os.PathLike[str] | None = None,
       ready_timeout: float = READY_TIMEOUT_S) -> dict[str, Any]:
    """Build the lab; start both engines, the CN's binding cache and KDCs, and the MN daemon; wait until the
    MN is attached to the PAR; record the state and return it.  Raises :class:`LabError` (nothing left
    behind) when any step fails."""
    sdir = state_dir(prefix, state)
    if (sdir / "state.json").exists():
        raise LabError(f"a lab is recorded in {sdir}: run 'fmipfast lab down' first")
    lab = LabTopology(prefix=prefix)
    lab.up()
    try:
        sdir.mkdir(parents=True, exist_ok=True)
        env = topology.child_env()
        engines: dict[str, Any] = {}
        for name in ENGINES:
            cfg = sdir / f"{name}.toml"
            # the handover protocol as `lab run` configures it (case-1 keys, AH between the routers), so
            # `fmipfast ctl --socket <par.sock> handover ...` drives a handover by hand
            security = router_security(lab, name)
            security["ah_sequence_file"] = str(sdir / f"{name}.ah-seq.json")  # AH counters across a restart
            security["session_file"] = str(sdir / f"{name}.sessions.json")  # ... and the MNs' sessions
            # JSON logs: every protocol step of the engine's router agent, one object per line, in <name>.err
            write_config(cfg, lab.router_config(name, security=security) + '\n[logging]\nformat = "json"\n')
            sock = sdir / f"{name}.sock"
            if sock.exists():
                sock.unlink()
            engines[name] = {**_start(lab, sdir, name, name, [sys.executable, "-m", "fmipfast", "router", "--config",
                                                              str(cfg), "--control", str(sock)], env, ready_timeout),
                             "config": str(cfg), "control": str(sock)}
        # at the CN: its binding cache (answers the MN's Binding Updates with BAcks) and the KDCs of the MN's
        # home realm and of realms A and B; then the mobile node, which gets its tickets from them
        bcache = _start(lab, sdir, "bcache", "cn", [sys.executable, "-m", "fmipfast.lab.namespaces.traffic", "bcache"],
                        env, ready_timeout)
        from fmipfast.lab.namespaces.run import kdc_configs

        kdcs = {}
        for realm, text in kdc_configs(lab).items():
            name = f"kdc-{realm.split('.')[0].lower()}"
            kcfg = sdir / f"{name}.toml"
            write_config(kcfg, text)
            kdcs[name] = _start(lab, sdir, name, "cn", [sys.executable, "-m", "fmipfast", "kdc", "--config",
                                                        str(kcfg)], env, ready_timeout)
        cfg = sdir / "mn.toml"
        write_config(cfg, _mn_config(lab, sdir, prefix))
        sock = sdir / "mn.sock"
        mn = {**_start(lab, sdir, "mn", "mn", [sys.executable, "-m", "fmipfast", "mn", "--config", str(cfg),
                                               "--control", str(sock)], env, ready_timeout),
              "config": str(cfg), "control": str(sock)}
        _wait_attached(str(sock), ready_timeout)
        record = {
            "prefix": prefix,
            "namespaces": dict(lab.names),
            "engines": engines,
            "mn": mn,
            "bcache": bcache,
            "kdcs": kdcs,
            "addresses": {"cn": str(lab.cn_address), "par": str(lab.par_address), "nar": str(lab.nar_address),
                          "pcoa": str(lab.pcoa), "ncoa": str(lab.ncoa)},
            "mn_link": lab.mn_link,
            "started": time.time(),
        }
        (sdir / "state.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    except BaseException:
        lab.down()
        shutil.rmtree(sdir, ignore_errors=True)
        raise
    lab.detach()
    return record


def _wait_attached(sock: str, timeout: float) -> None:
    from fmipfast.control import ControlClient, ControlError

    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = ControlClient(sock, timeout=2.0).call("status")
            if last["state"] == "attached":
                return
        except (ControlError, OSError) as exc:
            last = str(exc)
        time.sleep(0.05)
    raise LabError(f"the MN did not attach to the PAR within {timeout:.0f} s: {last}")


def _daemons(record: dict[str, Any]) -> dict[str, Any]:
    return {**record["engines"], **{k: record[k] for k in ("mn", "bcache") if k in record},
            **record.get("kdcs", {})}


def _load(prefix: str, state: str | os.PathLike[str] | None) -> dict[str, Any]:
    path = state_dir(prefix, state) / "state.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise LabError(f"no lab is recorded in {path.parent} (fmipfast lab up?)") from None
    except json.JSONDecodeError as exc:
        raise LabError(f"{path}: not a lab state file: {exc}") from None


def status(prefix: str = topology.DEFAULT_PREFIX, state: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The recorded state with, per engine, ``alive`` and its live counters and conservation (or the error
    its control socket gave), and which of the lab's namespaces exist."""
    from fmipfast.control import ControlClient, ControlError

    record = _load(prefix, state)
    present = set(topology._present_namespaces())
    record["namespaces_present"] = sorted(n for n in record["namespaces"].values() if n in present)
    for name, eng in _daemons(record).items():
        try:
            os.kill(eng["pid"], 0)
            eng["alive"] = True
        except ProcessLookupError:
            eng["alive"] = False
        if name.startswith("kdc-"):  # no control socket: alive is what there is to say
            continue
        if "control" not in eng:  # the binding cache: its log has a line per binding
            log = Path(eng["log"])
            eng["bindings"] = [json.loads(line) for line in (log.read_text().splitlines() if log.exists() else ())
                               if line.startswith('{"t_ns"')]
            continue
        try:
            eng["counters" if name != "mn" else "status"] = ControlClient(eng["control"], timeout=3.0).call(
                "counters" if name != "mn" else "status")
        except (ControlError, OSError) as exc:
            eng["error"] = str(exc)
    return record


def move(prefix: str = topology.DEFAULT_PREFIX, state: str | os.PathLike[str] | None = None, to: str = "B",
         gap_ms: float = 30.0) -> dict[str, Any]:
    """The layer-2 handover of a lab that is up: the MN's bridge port to link ``to`` ("A", "B", or the address of
    the router on that link — what the MN daemon's switch command passes) after ``gap_ms`` without a link."""
    record = _load(prefix, state)
    links = {record["addresses"]["par"]: "A", record["addresses"]["nar"]: "B", "A": "A", "B": "B"}
    if to not in links:
        raise LabError(f"move: {to!r} is not a link (A, B) or a router's address ({record['addresses']['par']}, "
                       f"{record['addresses']['nar']})")
    lab = LabTopology.attach(prefix, record.get("mn_link", "A"))
    try:
        done = lab.move_mn(links[to], gap_ms)
    finally:
        lab.detach()
    record["mn_link"] = done.new
    path = state_dir(prefix, state) / "state.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return {"from": done.old, "to": done.new, "gap_ms": done.gap_ms}


def down(prefix: str = topology.DEFAULT_PREFIX, state: str | os.PathLike[str] | None = None,
         grace: float = 5.0) -> dict[str, Any]:
    """Stop the engines (SIGTERM, SIGKILL after ``grace`` seconds), delete the lab's namespaces and the state
    directory.  Works without a state file too (a crashed ``up``).  Returns what was removed, with each
    engine's final JSON summary when it wrote one."""
    sdir = state_dir(prefix, state)
    try:
        record: dict[str, Any] | None = _load(prefix, state)
    except LabError:
        record = None
    finals: dict[str, Any] = {}
    if record is not None:
        for name, eng in _daemons(record).items():
            pid = eng["pid"]
            try:
                os.killpg(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                continue
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                try:
                    os.killpg(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            log = Path(eng["log"])
            lines = log.read_text().strip().splitlines() if log.exists() else []
            if lines and lines[-1].startswith("{"):
                try:
                    finals[name] = json.loads(lines[-1])
                except json.JSONDecodeError:
                    pass
    removed = topology.cleanup(prefix)  # SIGKILLs whatever is still inside, then deletes the namespaces
    shutil.rmtree(sdir, ignore_errors=True)
    return {"namespaces_removed": removed, "engines": finals}

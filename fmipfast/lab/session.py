"""``fmipfast lab up|status|down``: the lab of DESIGN.md §6 left running between commands (root).

``up`` builds :class:`~fmipfast.lab.topology.LabTopology`, writes the PAR's and the NAR's ``[router]``
configurations into the state directory, starts ``fmipfast router`` in the ``par`` and ``nar`` namespaces with
their control sockets, waits for each to print ``READY`` and records everything in ``state.json``; the lab then
outlives the command.  A failure at any step tears down what was built.  ``status`` reads the state and asks
each engine for its counters through the control API.  ``down`` stops the engines (SIGTERM, so each writes its
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

from fmipfast.lab import topology
from fmipfast.lab.run import router_security
from fmipfast.lab.topology import LabError, LabTopology

__all__ = ["up", "status", "down", "state_dir", "READY_TIMEOUT_S"]

READY_TIMEOUT_S = 20.0
ENGINES = ("par", "nar")


def state_dir(prefix: str, state: str | os.PathLike[str] | None = None) -> Path:
    return Path(state) if state is not None else Path("/run/fmipfast-lab") / prefix.rstrip("-")


def _wait_ready(log: Path, proc: subprocess.Popen, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        if any(line.startswith("READY ") for line in text.splitlines()):
            return
        if proc.poll() is not None:
            err = log.with_suffix(".err")
            raise LabError(f"the {name} engine exited with status {proc.returncode} before READY: "
                           f"{err.read_text().strip() if err.exists() else ''}")
        time.sleep(0.05)
    raise LabError(f"the {name} engine printed no READY within {timeout:.0f} s (log {log})")


def up(prefix: str = topology.DEFAULT_PREFIX, state: str | os.PathLike[str] | None = None,
       ready_timeout: float = READY_TIMEOUT_S) -> dict[str, Any]:
    """Build the lab, start both engines, record the state; returns it.  Raises :class:`LabError` (nothing
    left behind) when any step fails."""
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
            cfg.write_text(lab.router_config(name, security=router_security(lab, name)))
            sock = sdir / f"{name}.sock"
            if sock.exists():
                sock.unlink()
            log = sdir / f"{name}.log"
            with open(log, "w") as out, open(log.with_suffix(".err"), "w") as err:
                proc = lab.spawn(name, [sys.executable, "-m", "fmipfast", "router", "--config", str(cfg),
                                        "--control", str(sock)], stdout=out, stderr=err, env=env)
            _wait_ready(log, proc, name, ready_timeout)
            engines[name] = {"pid": proc.pid, "config": str(cfg), "control": str(sock), "log": str(log)}
        record = {
            "prefix": prefix,
            "namespaces": dict(lab.names),
            "engines": engines,
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
    for eng in record["engines"].values():
        try:
            os.kill(eng["pid"], 0)
            eng["alive"] = True
        except ProcessLookupError:
            eng["alive"] = False
        try:
            eng["counters"] = ControlClient(eng["control"], timeout=3.0).call("counters")
        except (ControlError, OSError) as exc:
            eng["error"] = str(exc)
    return record


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
        for name, eng in record["engines"].items():
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

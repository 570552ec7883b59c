"""fmipfast.warmup: the NAR's side of a handover rehearsed on throwaway state at start -- every rehearsed
handover reaches the Authenticated-MN through the real engine and agent code, on any data-plane geometry a
configuration may give, and nothing of the rehearsal survives it; the router daemon runs it one handover per
turn of its loop, and a rehearsal that fails costs a warning, never the router (fmipfast.routerd); the daemon's
[router.scheduling]."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import subprocess
import sys

import pytest

from fmipfast import config, routerd, warmup
from fmipfast.config import RouterConfig
from fmipfast.engine import Engine
from fmipfast.router import RouterAgent


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[RouterAgent]:
    made: list[RouterAgent] = []
    init = RouterAgent.__init__

    def record(self: RouterAgent, *args: object, **kwargs: object) -> None:
        init(self, *args, **kwargs)  # type: ignore[arg-type]
        made.append(self)

    monkeypatch.setattr(RouterAgent, "__init__", record)
    return made


def test_every_rehearsed_handover_completes_through_the_engine(monkeypatch):
    made = _counting(monkeypatch)
    assert warmup.warm_up(RouterConfig(), handovers=5) == 5
    (agent,) = made
    c, e = agent.ar.counters, agent.engine.counters
    assert c["hi_admitted"] == c["attached"] == 5 and agent.ah_counters["verified"] == 5
    # the datagrams were buffered (direct and decapsulated), flushed and forwarded to the MN: the paths the
    # first real Attach takes
    assert e["buffered"] == e["flushed"] == 5 * 2 * warmup._DATAGRAMS and e["decapsulated"] == 5 * warmup._DATAGRAMS
    assert agent.engine.requeue_counters["forwarded"] == e["flushed"]
    assert agent.engine.conservation()["holds"] and sum(agent.engine.drop_counts().values()) == 0


@pytest.mark.parametrize("geometry", [{"batch_size": 1}, {"buffer_slot_size": 1298},
                                      {"batch_size": 3, "ncache_capacity": 16},
                                      {"buffer_per_mn_packets": 1, "reorder_hold_idle_ms": 0}])
def test_any_geometry_a_configuration_allows(geometry):
    assert warmup.warm_up(dataclasses.replace(RouterConfig(), **geometry), handovers=2) == 2


def test_nothing_of_the_rehearsal_outlives_it():
    gc.collect()
    before = sum(isinstance(o, (Engine, RouterAgent)) for o in gc.get_objects())
    assert warmup.warm_up(RouterConfig(), handovers=2) == 2
    gc.collect()
    assert sum(isinstance(o, (Engine, RouterAgent)) for o in gc.get_objects()) == before


def test_the_count_comes_from_the_configuration(monkeypatch):
    made = _counting(monkeypatch)
    assert warmup.warm_up(dataclasses.replace(RouterConfig(), warm_up_handovers=0)) == 0 and made == []
    assert warmup.warm_up(dataclasses.replace(RouterConfig(), warm_up_handovers=3)) == 3


def test_the_daemon_rehearses_one_handover_per_turn_and_a_failure_is_a_warning(monkeypatch, caplog):
    """routerd.warm_up_on: the rehearsal's steps run one per turn of the serving loop (other callbacks run between
    them), the count from the configuration, a summary logged at the end; 0 rehearses nothing; a step that raises
    ends the rehearsal with a warning and the loop goes on."""
    order: list[str] = []

    def steps(cfg: RouterConfig, codepoints: object) -> object:
        for i in range(cfg.warm_up_handovers):
            order.append(f"step{i}")
            yield i + 1

    async def serve(cfg: config.Config) -> None:
        loop = asyncio.get_running_loop()
        routerd.warm_up_on(loop, cfg)
        for i in range(4):
            order.append(f"loop{i}")
            await asyncio.sleep(0)

    monkeypatch.setattr(routerd, "rehearsal", steps)
    with caplog.at_level(logging.INFO, "fmipfast.router"):
        asyncio.run(serve(config.loads("[router]\nwarm_up_handovers = 3\n")))
    assert order == ["loop0", "step0", "loop1", "step1", "loop2", "step2", "loop3"]
    assert "warm-up: 3 of 3 rehearsed handovers completed" in caplog.text
    order.clear()
    asyncio.run(serve(config.loads("[router]\nwarm_up_handovers = 0\n")))
    assert order == ["loop0", "loop1", "loop2", "loop3"]

    def broken(cfg: RouterConfig, codepoints: object) -> object:
        yield 1
        raise RuntimeError("no")

    monkeypatch.setattr(routerd, "rehearsal", broken)
    with caplog.at_level(logging.WARNING, "fmipfast.router"):
        asyncio.run(serve(config.loads("[router]\nwarm_up_handovers = 3\n")))
    assert "warm-up failed (the first handover will be slower): RuntimeError: no" in caplog.text


def test_the_rehearsal_steps_one_handover_at_a_time():
    assert list(warmup.rehearsal(RouterConfig(), handovers=3)) == [1, 2, 3]
    assert list(warmup.rehearsal(RouterConfig(), handovers=0)) == []


# ------------------------------------------------------------------------------- [router.scheduling]


def test_the_default_scheduling_changes_nothing(monkeypatch):
    def refuse(*args: object) -> None:
        raise AssertionError("called")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    monkeypatch.setattr(os, "setpriority", refuse)
    routerd.apply_scheduling(config.SchedulingConfig())


def test_a_refused_policy_or_nice_value_is_a_startup_error_naming_the_key(monkeypatch):
    def refuse(*args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    monkeypatch.setattr(os, "setpriority", refuse)
    with pytest.raises(routerd.StartupError, match=r"router.scheduling.policy: cannot set fifo \(priority 10\): "
                                                   r"Operation not permitted; a realtime policy needs CAP_SYS_NICE"):
        routerd.apply_scheduling(config.SchedulingConfig("fifo", 10))
    with pytest.raises(routerd.StartupError, match="router.scheduling.nice: cannot set -3"):
        routerd.apply_scheduling(config.SchedulingConfig("inherit", 0, -3))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CAP_SYS_NICE) for a realtime policy")
@pytest.mark.root
def test_the_policy_is_set_for_the_process_and_its_later_threads():
    """In a child (never this test process): FIFO at the priority asked for, inherited by a thread started after."""
    probe = "\n".join((
        "import os, threading",
        "from fmipfast import config, routerd",
        "routerd.apply_scheduling(config.SchedulingConfig('fifo', 7))",
        "def now(): return os.sched_getscheduler(0), os.sched_getparam(0).sched_priority",
        "seen = []",
        "t = threading.Thread(target=lambda: seen.append(now()))",
        "t.start(); t.join()",
        "print(now() == (os.SCHED_FIFO, 7), seen == [(os.SCHED_FIFO, 7)])",
        "routerd.apply_scheduling(config.SchedulingConfig('other', 0, 5))",
        "print(now() == (os.SCHED_OTHER, 0), os.getpriority(os.PRIO_PROCESS, 0))", ""))
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if "Operation not permitted" in out.stderr:
        pytest.skip("this host refuses realtime scheduling even to root (a container without CAP_SYS_NICE)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "True", "5"]



@pytest.mark.skipif(warmup.frames.backend.IMPLEMENTATION != "core",
                    reason="the compiled kernels are what a built package runs")
def test_the_nars_side_of_a_handover_runs_no_reference_code():
    """A built router runs the compiled kernels: the rehearsal's handovers after its first (which also builds
    its world) are the NAR's real per-handover path -- the HI, the proxy entries, the buffered datagrams, the
    Attach, the flush -- so no function of ``fmipfast/reference/`` may run in them.  (Two ran: the MN's MAC
    derived from its EUI-64 at the Attach, and every neighbor-cache upsert with an enum state, which the
    compiled ``insert_one`` handed to the reference's argument check.)"""
    import os

    from fmipfast import backend

    home = os.path.dirname(backend._reference.__file__) + os.sep
    ran: set[str] = set()

    def profile(frame, event, _arg):  # type: ignore[no-untyped-def]
        if event == "call" and frame.f_code.co_filename.startswith(home):
            ran.add(f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_code.co_qualname}")

    steps = warmup.rehearsal(RouterConfig(), handovers=3)
    assert next(steps) == 1
    sys.setprofile(profile)
    try:
        done = list(steps)
    finally:
        sys.setprofile(None)
    assert done == [2, 3] and ran == set()

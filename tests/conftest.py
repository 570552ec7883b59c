"""Shared fixtures.  ``impl`` runs a test on both kernel implementations, ids ``py`` and ``c``
(docs/conventions.md §4).  Under FMIPFAST_PUREPYTHON=1 the compiled one is not collected at all (it is not
built), and under FMIPFAST_REQUIRE_EXTENSIONS=1 a missing extension fails the session."""

from __future__ import annotations

import logging
import os
import signal

import pytest
from hypothesis import settings

from fmipfast import reference

# Property tests assert results, never time: a loaded 2-core CI machine must not fail them on hypothesis's
# default 200 ms deadline.  Example counts stay as each test sets them.
settings.register_profile("fmipfast", deadline=None)
settings.load_profile("fmipfast")

# Tests send SIGINT to the commands they start (^C on a live pipe, on a lab run).  A shell without job control
# starts its background jobs with SIGINT ignored, and an ignored signal stays ignored across exec: Python then
# never turns ^C into KeyboardInterrupt in those commands.  The suite gives its children the default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

#: Long soak and fuzz runs (``@pytest.mark.slow``) run with ``--run-slow`` or FMIPFAST_SLOW=1; the default
#: run (and CI) runs each one's bounded version instead.
RUN_SLOW = os.environ.get("FMIPFAST_SLOW", "") not in ("", "0")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the long soak and fuzz tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:  # every test that needs root says so in its skip reason: mark it, so `-m root` selects it
        if any(m.name == "skipif" and "needs root" in str(m.kwargs.get("reason", ""))
               for m in item.iter_markers()):
            item.add_marker(pytest.mark.root)
    if RUN_SLOW or config.getoption("--run-slow") or "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="long run: give --run-slow or FMIPFAST_SLOW=1 (the default run has its "
                                   "bounded version)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)

try:
    from fmipfast import _core
except ImportError as exc:  # pragma: no cover - depends on the build
    _core = None
    if os.environ.get("FMIPFAST_REQUIRE_EXTENSIONS", "") not in ("", "0"):
        raise ImportError(f"FMIPFAST_REQUIRE_EXTENSIONS=1 but fmipfast._core is missing: {exc}") from exc

PURE = os.environ.get("FMIPFAST_PUREPYTHON", "") not in ("", "0")

IMPLS = [pytest.param(reference, id="py")]
if _core is not None and not PURE:
    IMPLS.append(pytest.param(_core, id="c"))

HAVE_CORE = _core is not None and not PURE


@pytest.fixture(autouse=True)
def _root_logger_as_it_was():
    """Tests that run a command in process (``cli.main``) set the daemons' logging up on the root logger: put
    its handlers and level back afterwards, so one test's set-up does not log into the next test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):  # pytest's own capture handlers come and go with each phase: left to it
        if h not in handlers and not type(h).__module__.startswith("_pytest"):
            root.removeHandler(h)
    root.setLevel(level)


@pytest.fixture(params=IMPLS)
def impl(request):
    """The kernel module under test: fmipfast.reference (py) or fmipfast._core (c)."""
    return request.param


@pytest.fixture
def core():
    """The compiled core; only requested by tests that compare it with the reference."""
    if not HAVE_CORE:
        pytest.fail("compiled core requested but not available")  # never silently skipped
    return _core

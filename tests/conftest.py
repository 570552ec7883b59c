"""Shared fixtures.  ``impl`` runs a test on both kernel implementations, ids ``py`` and ``c``
(STYLE.md rule 30).  Under FMIPFAST_PUREPYTHON=1 the compiled one is not collected at all (it is not
built), and under FMIPFAST_REQUIRE_EXTENSIONS=1 a missing extension fails the session."""

from __future__ import annotations

import os

import pytest

from fmipfast import reference

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

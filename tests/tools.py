"""External programs some tests compare against or run (tshark, editcap, systemd-analyze).

They are optional for a developer: a missing one skips the tests that need it, with the reason printed in
pytest's summary (``-ra``).  CI sets ``FMIPFAST_REQUIRE_TOOLS=1`` (``.ci/run`` installs them), and then a
missing tool fails those tests instead, so CI can never pass by skipping them.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRED = os.environ.get("FMIPFAST_REQUIRE_TOOLS", "") not in ("", "0")


def external_tool(name: str, package: str = "tshark") -> str:
    """The path of ``name``; skip the calling test when it is not installed (fail under FMIPFAST_REQUIRE_TOOLS=1)."""
    path = shutil.which(name)
    if path is None:
        why = f"{name} is not installed (optional: apt-get install {package})"
        if REQUIRED:
            pytest.fail(f"{why}; FMIPFAST_REQUIRE_TOOLS=1 requires it")
        pytest.skip(why)
    return path

"""External programs some tests compare against or run (tshark, editcap, systemd-analyze).

They are required where they can be had: as root (who can install them; ``.ci/run`` does, and runs as root)
or with ``FMIPFAST_REQUIRE_TOOLS=1``, a missing one fails the tests that need it, so no run there passes by
skipping them.  Only a user who is not root may go without them: the tests that need a missing one are then
skipped, with the reason printed in pytest's summary (``-ra``); ``FMIPFAST_REQUIRE_TOOLS=0`` asks for that
as root too.
"""

from __future__ import annotations

import os
import shutil

import pytest

_SETTING = os.environ.get("FMIPFAST_REQUIRE_TOOLS", "")
#: Whether a missing tool fails the tests that need it (see the module): as root unless told otherwise.
REQUIRED = _SETTING not in ("", "0") if _SETTING else os.geteuid() == 0
#: What a failure says about why the tool is required.
WHY_REQUIRED = ("FMIPFAST_REQUIRE_TOOLS=1 requires it" if _SETTING else
                "required when running as root (install it, or set FMIPFAST_REQUIRE_TOOLS=0 to skip these tests)")


def external_tool(name: str, package: str = "tshark") -> str:
    """The path of ``name``; skip the calling test when it is not installed (fail under FMIPFAST_REQUIRE_TOOLS=1)."""
    path = shutil.which(name)
    if path is None:
        why = f"{name} is not installed (apt-get install {package})"
        if REQUIRED:
            pytest.fail(f"{why}; {WHY_REQUIRED}")
        pytest.skip(f"{why}; optional when not running as root")
    return path

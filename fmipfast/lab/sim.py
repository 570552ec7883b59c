"""Moved to :mod:`fmipfast.lab.simulated.sim`.  This name stays an alias of that module -- the same module object,
so every name it had (and anything patched on it) is that module's."""

import sys

from fmipfast.lab.simulated import sim as _module
from fmipfast.lab.simulated.sim import *  # noqa: F403 -- the public names, for type checkers

sys.modules[__name__] = _module

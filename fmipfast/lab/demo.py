"""Moved to :mod:`fmipfast.lab.simulated.demo`.  This name stays an alias of that module -- the same module object,
so every name it had (and anything patched on it) is that module's."""

import sys

from fmipfast.lab.simulated import demo as _module
from fmipfast.lab.simulated.demo import *  # noqa: F403 -- the public names, for type checkers

sys.modules[__name__] = _module

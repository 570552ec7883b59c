"""Moved to :mod:`fmipfast.lab.namespaces.traffic`.  This name stays an alias of that module -- the same module object,
so every name it had (and anything patched on it) is that module's."""

import sys

from fmipfast.lab.namespaces import traffic as _module
from fmipfast.lab.namespaces.traffic import *  # noqa: F403 -- the public names, for type checkers

if __name__ == "__main__":  # `python -m fmipfast.lab.traffic`, as before
    sys.exit(_module.main())
sys.modules[__name__] = _module

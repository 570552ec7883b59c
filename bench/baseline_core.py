"""Load a second build of fmipfast._core (e.g. main's) beside the one under test, for same-run "before" rows.

    FMIPFAST_BASELINE_CORE=/path/to/other/fmipfast/_core.cpython-311-x86_64-linux-gnu.so \
        PYTHONPATH=. python bench/bench_classify.py ...

The extension is loaded as ``fmipfast_baseline._core`` (the last component must stay ``_core``: it names the
module's init function), after ``fmipfast`` itself, so both builds share the pure-Python package.  Benchmark
use only.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
from types import ModuleType

ENV = "FMIPFAST_BASELINE_CORE"


def inherit(runner) -> None:
    """Pass $FMIPFAST_BASELINE_CORE on to pyperf's worker processes (pyperf filters their environment)."""
    args = runner.parse_args()
    if os.environ.get(ENV):
        args.inherit_environ = [*(args.inherit_environ or []), ENV]


def load() -> ModuleType | None:
    """The baseline build named by $FMIPFAST_BASELINE_CORE, or None when unset."""
    path = os.environ.get(ENV)
    if not path:
        return None
    import fmipfast  # noqa: F401  (first: the baseline's own imports of fmipfast.* must find it loaded)

    name = "fmipfast_baseline._core"
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    if spec is None:
        raise ImportError(f"{ENV}={path}: not loadable")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module

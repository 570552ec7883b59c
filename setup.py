"""Build of the one extension, fmipfast._core (docs/conventions.md §1).

Environment switches:
  FMIPFAST_PUREPYTHON=1  build nothing; the package runs on fmipfast.reference.
  FMIPFAST_DEBUG=1       -O0 -g, ASan + UBSan, FMIPFAST_DEBUG C macro (asserts in kernels).
  FMIPFAST_ANNOTATE=1    write Cython's HTML annotation next to _core.pyx.
  FMIPFAST_FUZZ=1        build with clang and -fsanitize=fuzzer-no-link (coverage for atheris; with DEBUG too).
Cython warnings are errors, so a new warning fails the build (and CI).
"""

import os
import sys

from setuptools import Extension, setup

PUREPYTHON = os.environ.get("FMIPFAST_PUREPYTHON", "") not in ("", "0")
DEBUG = os.environ.get("FMIPFAST_DEBUG", "") not in ("", "0")
ANNOTATE = os.environ.get("FMIPFAST_ANNOTATE", "") not in ("", "0")
FUZZ = os.environ.get("FMIPFAST_FUZZ", "") not in ("", "0")

# The only directive dict (docs/conventions.md §2): boundscheck/initializedcheck stay on globally; kernels opt out
# one by one with a "# SAFETY:" comment naming their length guard.
DIRECTIVES = {
    "language_level": 3,
    "embedsignature": True,
    "wraparound": False,
    "boundscheck": True,
    "initializedcheck": True,
    "cdivision": True,
}


def extensions():
    if PUREPYTHON:
        return []
    import numpy
    from Cython.Build import cythonize
    from Cython.Compiler import Options

    Options.warning_errors = True
    if DEBUG:
        cflags = ["-O0", "-g3", "-fno-omit-frame-pointer", "-fsanitize=address,undefined"]
        lflags = ["-fsanitize=address,undefined"]
        macros = [("FMIPFAST_DEBUG", "1")]
    else:
        cflags = ["-O3"]
        lflags = []
        macros = [("FMIPFAST_DEBUG", "0")]
    if FUZZ:  # clang's SanitizerCoverage, so atheris sees the kernels' edges (fuzz/README.md)
        os.environ.setdefault("CC", "clang")
        os.environ.setdefault("LDSHARED", "clang -shared")
        cflags.append("-fsanitize=fuzzer-no-link")
        lflags.append("-fsanitize=fuzzer-no-link")
    macros.append(("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"))
    ext = Extension(
        "fmipfast._core",
        sources=["fmipfast/_core.pyx"],
        include_dirs=["fmipfast/includes", numpy.get_include()],
        define_macros=macros,
        extra_compile_args=cflags + ["-Wno-unused-function"],
        extra_link_args=lflags,
    )
    return cythonize(
        [ext],
        compiler_directives=DIRECTIVES,
        annotate=ANNOTATE,
        compile_time_env={"FMIPFAST_DEBUG": DEBUG},
        force="--force" in sys.argv,
    )


setup(ext_modules=extensions())

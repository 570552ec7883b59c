"""The campaign runner: ``python -m fuzz COMMAND`` (or ``python fuzz/run.py COMMAND``).

    list                         the targets and their contracts
    run TARGET [--seconds N]     fuzz one target with atheris in a child process, for N seconds (default 60);
                                 its own corpus and regressions are run first; exit 1 on any crash, with the
                                 crashing input and the child's report printed
    replay TARGET [PATH ...]     run inputs (default: every corpus and regression file of TARGET) through the
                                 target in this process, without atheris; exit 1 on the first broken contract
    seed [TARGET ...]            rebuild fuzz/corpus/ from the samples, the golden vectors and the encoders
    runtime                      build fuzz/.work/asan_with_fuzzer.so (clang's ASan runtime + libFuzzer), which
                                 `run` preloads for a clang ASan build of _core (FMIPFAST_FUZZ=1 FMIPFAST_DEBUG=1)
    merge TARGET                 fold what ``run`` found (fuzz/.work/TARGET) into fuzz/corpus/TARGET, keeping
                                 only inputs that add coverage (libFuzzer -merge=1)

``run`` writes new inputs to fuzz/.work/TARGET/ (not committed) and crash inputs to
fuzz/.work/TARGET-artifacts/; ``--save`` also copies each crash into fuzz/regressions/TARGET/ under a short
hash.  If ``fmipfast._core`` was built with AddressSanitizer (``FMIPFAST_DEBUG=1``), the child gets the
matching ASan runtime preloaded and aborts on the first report.
"""

from __future__ import annotations

import argparse
import faulthandler
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CORPUS = HERE / "corpus"
REGRESSIONS = HERE / "regressions"
WORK = HERE / ".work"

if str(ROOT) not in sys.path:  # `python fuzz/run.py` as well as `python -m fuzz`
    sys.path.insert(0, str(ROOT))


def inputs(directory: Path) -> list[Path]:
    """The input files of a corpus or regression directory (README and dotfiles are not inputs)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.name != "README.md")


def short_hash(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:12]


# ------------------------------------------------------------------------------------------- sanitizers


def _core_path() -> Path | None:
    found = sorted((ROOT / "fmipfast").glob("_core*.so"))
    return found[0] if found else None


def _clang_file(name: str) -> Path:
    out = subprocess.run(["clang", f"-print-file-name={name}"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def build_runtime() -> Path:
    """fuzz/.work/asan_with_fuzzer.so: clang's ASan runtime and libFuzzer (no main) in one preloadable library.

    atheris must not take its coverage callbacks from the ASan runtime (whose weak defaults would swallow
    them); with libFuzzer preloaded next to ASan it uses that libFuzzer ("Using preloaded libfuzzer") and
    both the Python and the kernels' native coverage reach it.  Built from the clang installation's own
    archives (asan_preinit is left out: a shared library cannot have .preinit_array)."""
    out = WORK / "asan_with_fuzzer.so"
    asan = _clang_file("libclang_rt.asan-x86_64.a")
    extra = [_clang_file("libclang_rt.asan_cxx-x86_64.a"), _clang_file("libclang_rt.fuzzer_no_main-x86_64.a")]
    for lib in (asan, *extra):
        if not lib.is_file():
            raise SystemExit(f"{lib} not found: install clang (apt-get install clang)")
    WORK.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["ar", "x", str(asan)], cwd=tmp, check=True)
        objects = sorted(str(p) for p in Path(tmp).glob("*.o") if not p.name.startswith("asan_preinit"))
        subprocess.run(["clang++", "-shared", "-o", str(out), *objects, "-Wl,--whole-archive", *map(str, extra),
                        "-Wl,--no-whole-archive", "-lpthread", "-ldl", "-lrt", "-lm"], check=True)
    return out


def sanitizer_env() -> dict[str, str]:
    """LD_PRELOAD and options for an ASan/UBSan-built ``_core`` (empty for a plain build)."""
    core = _core_path()
    if core is None:
        return {}
    blob = core.read_bytes()
    if b"__asan_init" not in blob and b"__ubsan_handle" not in blob:
        return {}
    env = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:quarantine_size_mb=16",
           "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}
    for name in env:  # the caller's own options (e.g. a UBSan suppressions file while triaging) come last: they win
        if os.environ.get(name):
            env[name] += ":" + os.environ[name]
    if b"__asan_init" in blob:
        if b"clang version" in blob:
            runtime = WORK / "asan_with_fuzzer.so"
            if not runtime.is_file():
                runtime = build_runtime()
        else:  # gcc: its libasan also defines the coverage callbacks, so atheris gets no coverage feedback
            runtime = Path(subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                                          text=True).stdout.strip())
            env["FMIPFAST_FUZZ_BLIND"] = "1"
        if not runtime.is_file():
            raise SystemExit(f"fmipfast._core is built with ASan but its runtime was not found ({runtime})")
        env["LD_PRELOAD"] = str(runtime)
    return env


def native_coverage() -> bool:
    """Whether ``_core`` carries SanitizerCoverage counters (built with ``FMIPFAST_FUZZ=1``)."""
    core = _core_path()
    return core is not None and b"__sanitizer_cov_8bit_counters_init" in core.read_bytes()


def _wrapper(name: str, directory: Path) -> Path:
    """An executable that starts the atheris child of ``name``: libFuzzer re-runs its own argv[0] for -merge and
    -fork, and a Python module cannot be run that way."""
    path = directory / f"fuzz-{name}.sh"
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m fuzz _child {name} "$@"\n')
    path.chmod(0o755)
    return path


# ------------------------------------------------------------------------------------------- commands


def cmd_list(_args: argparse.Namespace) -> int:
    from fuzz.targets import TARGETS

    for name, t in TARGETS.items():
        print(f"{name:10} {'kernel ' if t.kernel else '       '}{t.doc}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    extra = sanitizer_env()
    if extra.get("LD_PRELOAD") and not os.environ.get("LD_PRELOAD"):  # an ASan-built _core needs its runtime
        extra.pop("FMIPFAST_FUZZ_BLIND", None)
        path = os.pathsep.join([str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
        os.execve(sys.executable, [sys.executable, "-m", "fuzz", *sys.argv[1:]],
                  {**os.environ, **extra, "PYTHONPATH": path})
    from fuzz.targets import get

    target = get(args.target)
    paths = [Path(p) for p in args.paths] or (inputs(REGRESSIONS / args.target) + inputs(CORPUS / args.target))
    failed = 0
    faulthandler.enable()  # a kernel that crashes the process still says where
    for path in paths:
        data = path.read_bytes()
        if args.verbose:
            print(f"replaying {path}", file=sys.stderr, flush=True)
        try:
            target.one(data)
        except Exception:
            failed += 1
            print(f"FAIL {args.target} {path} ({len(data)} octets): {data[:256].hex()}", file=sys.stderr)
            traceback.print_exc()
    print(f"replay {args.target}: {len(paths)} inputs, {failed} failed")
    return 1 if failed else 0


_PULSE = re.compile(r"#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+)(?: corp: (\d+)/\S+)?.*?exec/s: (\d+)")
_STAT = re.compile(r"stat::(\w+):\s+(\d+)")


def cmd_run(args: argparse.Namespace) -> int:
    from fuzz.targets import get

    name = get(args.target).name
    work = Path(args.work) if args.work else WORK / name
    work.mkdir(parents=True, exist_ok=True)
    artifacts = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-artifacts-"))
    dirs = [str(work)] + [str(d) for d in (REGRESSIONS / name, CORPUS / name) if d.is_dir()]
    flags = [f"-max_total_time={args.seconds}", f"-artifact_prefix={artifacts}/", f"-timeout={args.timeout}",
             "-rss_limit_mb=2048", "-max_len=65536", "-print_final_stats=1", "-reload=0"]
    dictionary = HERE / "dicts" / f"{name}.dict"
    if dictionary.is_file():
        flags.append(f"-dict={dictionary}")
    if args.runs is not None:
        flags.append(f"-runs={args.runs}")
    cmd = [sys.executable, "-m", "fuzz", "_child", name, *flags, *args.libfuzzer, *dirs]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(sanitizer_env())
    env.pop("FMIPFAST_FUZZ_TOLERATE", None)
    wrapper_dir = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
    env["FMIPFAST_FUZZ_ARGV0"] = str(_wrapper(name, wrapper_dir))
    if args.tolerate:
        env["FMIPFAST_FUZZ_TOLERATE"] = args.tolerate
    kind = ("ASan+UBSan, " if "UBSAN_OPTIONS" in env else "") + \
        ("native+Python coverage" if native_coverage() else "Python coverage")
    if env.pop("FMIPFAST_FUZZ_BLIND", None):
        # gcc's libasan defines the coverage callbacks itself: atheris would get no feedback at all, and libFuzzer
        # would not even keep the corpus (so the regressions would pass unseen).  Refuse rather than pass blind.
        print(f"fuzz {name}: fmipfast._core is a gcc ASan build (FMIPFAST_DEBUG=1): its runtime swallows atheris's "
              "coverage. Build with clang instead (make fuzz-build: FMIPFAST_FUZZ=1 FMIPFAST_DEBUG=1) or use the "
              "plain build; `python -m fuzz replay` works on any build.", flush=True)
        return 2
    print(f"fuzz {name}: {args.seconds} s, {kind}, corpus dirs {' '.join(dirs)}", flush=True)
    started = time.monotonic()
    log: list[str] = []
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace") as child:
        assert child.stdout is not None
        for line in child.stdout:
            log.append(line)
            if args.verbose:
                sys.stderr.write(line)
        rc = child.wait()
    elapsed = time.monotonic() - started
    pulse = stats = None
    stats = dict(_STAT.findall("".join(log)))
    for line in log:
        m = _PULSE.search(line)
        if m:
            pulse = m
    crashes = sorted(p for p in artifacts.iterdir() if p.is_file())
    execs = int(stats.get("number_of_executed_units", pulse.group(1) if pulse else 0))
    eps = int(stats.get("average_exec_per_sec", pulse.group(6) if pulse else 0))
    cov, ft = (pulse.group(3), pulse.group(4)) if pulse else ("?", "?")
    corp = pulse.group(5) if pulse and pulse.group(5) else "?"
    print(f"fuzz {name}: {execs} inputs in {elapsed:.0f} s ({eps} exec/s), cov {cov} ft {ft}, corpus {corp}, "
          f"{len(crashes)} crash(es), exit {rc}", flush=True)
    failed = rc != 0 or bool(crashes)
    if failed:
        print(f"---- {name}: the fuzzer's report ----\n{_report(log)}", flush=True)
    for crash in crashes:
        data = crash.read_bytes()
        print(f"---- {name}: crashing input {crash.name} ({len(data)} octets) ----\n{data[:1024].hex()}", flush=True)
        # the same input once more, alone, for a Python traceback (faulthandler's, for a native crash)
        again = subprocess.run([sys.executable, "-m", "fuzz", "replay", name, str(crash)], cwd=ROOT, env=env,
                               capture_output=True, text=True, errors="replace", timeout=120)
        lines = [line for line in again.stderr.splitlines() if not line.lstrip().startswith("#")]
        print(f"---- {name}: replayed alone (exit {again.returncode}) ----\n" + "\n".join(lines[-30:]), flush=True)
        if args.save:
            dest = REGRESSIONS / name
            dest.mkdir(parents=True, exist_ok=True)
            kind_ = crash.name.split("-", 1)[0]
            target_file = dest / f"{kind_}-{short_hash(data)}"
            target_file.write_bytes(data)
            print(f"saved {target_file.relative_to(ROOT)}", flush=True)
    shutil.rmtree(wrapper_dir, ignore_errors=True)
    if not args.keep:
        shutil.rmtree(artifacts, ignore_errors=True)
    return 1 if failed else 0


_MARKERS = ("=== Uncaught Python exception", "runtime error:", "ERROR: AddressSanitizer", "ERROR: libFuzzer",
            "Fatal Python error", "==ERROR:")


def _report(log: list[str]) -> str:
    """The part of the child's output that says what went wrong: from the first exception or sanitizer
    report (40 lines of it) and the last 15 lines (the input, the stats)."""
    start = next((i for i, line in enumerate(log) if any(m in line for m in _MARKERS)), max(len(log) - 60, 0))
    head = log[start:start + 40]
    tail = log[max(start + 40, len(log) - 15):]
    return "".join(head) + ("    ...\n" if tail and start + 40 < len(log) - 15 else "") + "".join(tail)


def cmd_merge(args: argparse.Namespace) -> int:
    name = args.target
    dest = CORPUS / name
    dest.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, **sanitizer_env())
    env.pop("FMIPFAST_FUZZ_BLIND", None)
    env["PYTHONPATH"] = str(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        env["FMIPFAST_FUZZ_ARGV0"] = str(_wrapper(name, Path(tmp)))
        cmd = [sys.executable, "-m", "fuzz", "_child", name, "-merge=1", f"-artifact_prefix={tmp}/", str(dest),
               str(WORK / name)]
        return subprocess.call(cmd, cwd=ROOT, env=env)


def cmd_runtime(_args: argparse.Namespace) -> int:
    print(build_runtime())
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from fuzz.seeds import write_all

    for name, count, size in write_all(CORPUS, args.targets or None):
        print(f"corpus {name}: {count} files, {size} octets")
    return 0


def child(argv: list[str]) -> None:
    """The atheris process: instrument fmipfast's Python code, load the target, hand over to libFuzzer."""
    import atheris

    name, rest = argv[0], argv[1:]
    with atheris.instrument_imports(include=["fmipfast"]):
        from fuzz.targets import get

        target = get(name)
        target.setup()
    one = target.one
    tolerate = os.environ.get("FMIPFAST_FUZZ_TOLERATE")
    if tolerate:  # triage only (run --tolerate): step over a known crash to look for the next one
        known = re.compile(tolerate)

        def one(data: bytes) -> None:
            try:
                target.one(data)
            except Exception as exc:
                if not known.search(f"{type(exc).__name__}: {exc}"):
                    raise

    atheris.Setup([os.environ.get("FMIPFAST_FUZZ_ARGV0", sys.argv[0]), *rest], one)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_child"]:
        child(argv[1:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list").set_defaults(func=cmd_list)
    p = sub.add_parser("run")
    p.add_argument("target")
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--runs", type=int, default=None, help="stop after this many inputs")
    p.add_argument("--timeout", type=int, default=10, help="seconds one input may take (a slow input is a crash)")
    p.add_argument("--work", help="corpus output directory (default fuzz/.work/TARGET)")
    p.add_argument("--save", action="store_true", help="copy crash inputs into fuzz/regressions/TARGET/")
    p.add_argument("--keep", action="store_true", help="keep the artifacts directory")
    p.add_argument("-v", "--verbose", action="store_true", help="echo the fuzzer's output")
    p.add_argument("--tolerate", metavar="REGEX", help="triage only, never in CI: an exception whose "
                   "'Type: message' matches is not a crash (to look past a known defect)")
    p.add_argument("libfuzzer", nargs="*", help="extra libFuzzer flags (after --)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("replay")
    p.add_argument("target")
    p.add_argument("paths", nargs="*")
    p.add_argument("-v", "--verbose", action="store_true", help="name each input before running it")
    p.set_defaults(func=cmd_replay)
    p = sub.add_parser("seed")
    p.add_argument("targets", nargs="*", help="default: every target (lwkerb's seeds differ each time: nonces)")
    p.set_defaults(func=cmd_seed)
    sub.add_parser("runtime").set_defaults(func=cmd_runtime)
    p = sub.add_parser("merge")
    p.add_argument("target")
    p.set_defaults(func=cmd_merge)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

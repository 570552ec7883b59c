"""The README tells a newcomer the truth: its test command is what CI runs, its main job works, its
library example runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _sh_blocks() -> list[str]:
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", README, re.S)]


def test_readme_has_exactly_two_commands_and_ci_runs_the_test_one():
    blocks = _sh_blocks()
    assert len(blocks) == 2, blocks
    main_job, tests = blocks
    assert "fmipfast demo" in main_job
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci, "the README's test command must appear verbatim in .ci/run"


def test_main_job_command_works(tmp_path):
    main_job = _sh_blocks()[0]
    cmd = main_job.split("&&")[-1].split()  # the part after the install: fmipfast demo ...
    assert cmd[:2] == ["fmipfast", "demo"]
    pure = os.environ.get("FMIPFAST_PUREPYTHON", "") not in ("", "0")
    extra = ["--rate", "250"] if pure else []  # the pure-Python engine: the same run, a lighter stream
    proc = subprocess.run([sys.executable, "-m", "fmipfast", *cmd[1:], *extra], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "1. Handover Redirect" in proc.stdout and "layer-3 interruption" in proc.stdout
    if not pure:
        # the abridged output shown in the README is really what it prints, line for line
        shown = re.search(r"What the first command prints.*?```\n(.*?)```", README, re.S).group(1)
        for line in shown.splitlines():
            if line.strip() and line.strip() != "...":
                assert line in proc.stdout, line


def test_sample_decode_command_in_the_readme_works():
    assert "fmipfast decode samples/handover.pcap" in README
    proc = subprocess.run([sys.executable, "-m", "fmipfast", "decode", "samples/handover.pcap"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "0 bad checksum, 0 malformed" in proc.stdout


def test_library_example_runs():
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "2001:db8:2:0:21b:63ff:fe84:45e6"

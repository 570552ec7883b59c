"""The repository explains itself: every path, link and citation in a tracked text file points at something
the repository holds (docs/conventions.md §12).

Checked in every tracked text file (fuzz/corpus/ holds fuzz inputs, not text, and is left out):

* no citation of documents a clone does not contain (the outside design and style notes, a sibling
  ``shared`` directory);
* every relative path that climbs up a directory stays inside the repository and exists;
* every path to a markdown file under ``docs/`` exists, and a ``§N`` after it names a numbered heading of
  that file;
* in markdown, every link ``[text](target#anchor)`` that is not a URL resolves to a tracked file or
  directory, and its anchor to a heading of the target (anchors computed as GitHub computes them).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Spelled in pieces so this file does not match its own patterns.
FORBIDDEN = [
    re.compile(r"\b" + "DESIGN" + r"(?:\.md)?\s+§"),
    re.compile("DESIGN" + r"\.md"),
    re.compile("STYLE" + r"(?:\.md)?\s+(?:import\s+)?rules?\b"),
    re.compile("STYLE" + r"\.md"),
    re.compile(r"\.\./" + "shared"),
    re.compile(r"/work/" + "shared"),
]

MD_LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
UP_PATH = re.compile(r"(?<![\w./-])((?:\.\./)+[\w./-]*)")
DOCS_PATH = re.compile(r"(?<![\w./-])(docs/[\w./-]+?\.md)(#[\w-]+)?((?:\s*(?:,|and)?\s*§\d+)*)")
CODE_SPAN = re.compile(r"`[^`]*`")


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


@cache
def repository_files() -> tuple[str, ...]:
    """The files of the repository: git's list in a checkout, the tree of an unpacked sdist otherwise."""
    if shutil.which("git") is not None and (ROOT / ".git").exists():
        files = _git("ls-files", "-z").split("\0")
    else:  # an unpacked sdist: every file but what a build or a run leaves behind
        skip_dirs = {".git", ".venv", "build", "dist", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache",
                     ".hypothesis", ".work", ".eggs"}
        files = [str(p.relative_to(ROOT)) for p in sorted(ROOT.rglob("*"))
                 if p.is_file() and not skip_dirs & set(p.relative_to(ROOT).parts)
                 and not p.name.endswith((".so", ".pyc")) and p.name != "_core.c" and ".egg-info" not in str(p)]
    return tuple(p for p in files if p)


@cache
def tracked() -> tuple[str, ...]:
    return tuple(p for p in repository_files() if not p.startswith("fuzz/corpus/"))


@cache
def tracked_dirs() -> frozenset[str]:
    dirs = set()
    for p in tracked():
        parts = p.split("/")
        for i in range(1, len(parts)):
            dirs.add("/".join(parts[:i]))
    return frozenset(dirs)


def text_files() -> list[tuple[str, str]]:
    out = []
    for p in tracked():
        path = ROOT / p
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue
        try:
            out.append((p, data.decode("utf-8")))
        except UnicodeDecodeError:
            continue
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def headings(markdown: str) -> list[str]:
    out, fence = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
            continue
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m and not fence:
            out.append(m.group(1))
    return out


@cache
def anchors(rel: str) -> frozenset[str]:
    seen: dict[str, int] = {}
    found = set()
    for h in headings((ROOT / rel).read_text(encoding="utf-8")):
        base = slug(h)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return frozenset(found)


@cache
def numbered_sections(rel: str) -> frozenset[int]:
    return frozenset(int(m.group(1)) for h in headings((ROOT / rel).read_text(encoding="utf-8"))
                     if (m := re.match(r"(\d+)\.?\s", h)))


def _inside(rel: str) -> bool:
    return rel in tracked() or rel in tracked_dirs()


def _resolve(source: str, target: str) -> str | None:
    """Repository-relative path of ``target`` as seen from ``source``; None when it leaves the repository."""
    full = (ROOT / source).parent.joinpath(target).resolve()
    try:
        return full.relative_to(ROOT).as_posix()
    except ValueError:
        return None


def problems_in(rel: str, text: str) -> list[str]:
    found = []
    is_md = rel.endswith(".md")
    fence = False
    for no, line in enumerate(text.splitlines(), 1):
        where = f"{rel}:{no}"
        for pat in FORBIDDEN:
            if pat.search(line):
                found.append(f"{where}: cites a document outside the repository: {line.strip()[:100]}")
                break
        for m in UP_PATH.finditer(line):
            target = m.group(1).rstrip(".")
            res = _resolve(rel, target)
            if res is None:
                found.append(f"{where}: {target} leaves the repository")
            elif not _inside(res):
                found.append(f"{where}: {target} does not exist in the repository")
        for m in DOCS_PATH.finditer(line):
            doc, anchor, secs = m.group(1), m.group(2), m.group(3)
            if doc not in tracked():
                found.append(f"{where}: {doc} does not exist")
                continue
            if anchor and anchor[1:] not in anchors(doc):
                found.append(f"{where}: {doc} has no heading for {anchor}")
            for n in re.findall(r"§(\d+)", secs or ""):
                if int(n) not in numbered_sections(doc):
                    found.append(f"{where}: {doc} has no section {n}")
        if is_md:
            if line.lstrip().startswith("```"):
                fence = not fence
                continue
            if fence:
                continue
            for m in MD_LINK.finditer(CODE_SPAN.sub("", line)):
                target = m.group(1)
                if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                    continue
                path, _, anchor = target.partition("#")
                res = _resolve(rel, path) if path else rel
                if res is None:
                    found.append(f"{where}: link {target} leaves the repository")
                    continue
                if not _inside(res):
                    found.append(f"{where}: link {target} points at nothing in the repository")
                    continue
                if anchor and res.endswith(".md") and anchor not in anchors(res):
                    found.append(f"{where}: link {target}: {res} has no heading with anchor #{anchor}")
    return found


def test_every_reference_stays_inside_the_repository():
    files = text_files()
    assert len(files) > 50 and any(p == "README.md" for p, _ in files)
    problems = [p for rel, text in files for p in problems_in(rel, text)]
    assert not problems, f"{len(problems)} references leave the repository or point at nothing:\n" + \
        "\n".join(problems)


def test_the_checker_finds_what_it_must():
    """The checks catch each kind of bad reference (so a passing run above means something)."""
    up = "." + "./"
    docs = "docs" + "/"
    bad = [
        "see " + "DESIGN" + ".md §4",
        "after " + "STYLE" + ".md rule 3",
        f"[x]({up}shared/notes.md)",
        f"[y]({docs}design.md#no-such-heading)",
        f"[z]({docs}missing.md)",
        f"{docs}design.md §99",
        f"{up}outside/file.py",
        f"{up}{up}{up}etc/passwd",
    ]
    for line in bad:
        assert problems_in("README.md", line), line
    assert problems_in("README.md", f"[d]({docs}design.md#4-security) and {docs}design.md §5, §6") == []
    assert problems_in("docs/api/batch.md", f"[d]({up}design.md#2-wire-codepoints)") == []


@pytest.mark.parametrize("heading, anchor", [
    ("1. Roles and the flow", "1-roles-and-the-flow"),
    ("4. Retransmission (`protocol.Backoff`)", "4-retransmission-protocolbackoff"),
    ("Codepoints ([design §2](design.md#2-wire-codepoints))", "codepoints-design-2"),
    ("3.2 Ticket — 80 + P(server)", "32-ticket--80--pserver"),
])
def test_anchors_are_computed_as_github_does(heading, anchor):
    assert slug(heading) == anchor


def test_the_fuzz_inputs_do_not_name_documents_outside_the_repository():
    """The corpus holds mutated configuration files too: their comments must not send a reader outside."""
    corpus = [p for p in repository_files() if p.startswith("fuzz/corpus/")]
    assert corpus
    named = [p for p in corpus if any(rx.search((ROOT / p).read_bytes().decode("latin-1")) for rx in FORBIDDEN)]
    assert not named, named

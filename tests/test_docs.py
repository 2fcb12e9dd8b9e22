"""The documentation stays true: docs/flags.md is what tools/flags_doc.py writes from the absl
flag definitions, and every relative link in README.md and docs/ reaches a file and heading."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import unicodedata
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT_UNDERLINE = re.compile(r"^ {0,3}(?:=+|-+)[ \t]*$")
NOT_A_PARAGRAPH = re.compile(r"^\s*$|^ {0,3}(?:#|>|[-*+][ \t]|\d+[.)][ \t]|\||<)")
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)((?:(?!\n[ \t]*\n).)+?)(?<!`)\1(?!`)", re.S)
HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]"  # [text] or ![alt], one level of nested brackets
    r"\(\s*(<[^>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)"  # (target
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)"  # "title")
)
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]*(<[^>\n]*>|\S+)", re.M)
HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']*)[\"']", re.I)
HTML_ANCHOR = re.compile(r"<a\b[^>]*?\b(?:name|id)\s*=\s*[\"']([^\"']+)[\"']", re.I)
EXTERNAL = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)")


@pytest.mark.parametrize("command, flag", [
    (["export_savedmodel.py"], "--run_dir"),
    (["tools/local_workers.py"], "--threads_per_worker"),
    (["-m", "optfusion_tf.demo"], "--workdir"),
])
def test_help_lists_the_program_s_own_flags(command, flag) -> None:
    """`--help` (not only `--helpfull`) shows what docs/flags.md documents: absl lists the key
    flags of sys.argv[0], which for these three programs used to be none."""
    done = subprocess.run([sys.executable, *command, "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert f"  {flag}:" in done.stdout, done.stdout + done.stderr  # (absl's --help exits 1)


def test_flags_page_is_current() -> None:
    # In a fresh process: the generator defines each program's flags in absl's global FLAGS,
    # which other tests in this process may hold already.
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "flags_doc.py"), "--check"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, (done.stdout + done.stderr).strip()


def github_slug(text: str) -> str:
    """GitHub's anchor of a heading whose rendered text is `text` (github-slugger): lower
    case, every character but letters, digits, marks, `-`, `_` and space removed, spaces to `-`."""
    kept = (c for c in text.lower() if c in "-_ " or unicodedata.category(c)[0] in "LNM")
    return "".join(kept).replace(" ", "-")


def heading_text(markdown: str) -> str:
    """The rendered text of a heading's Markdown: code spans, links, images, emphasis, HTML
    tags, entities and backslash escapes reduced to their text."""
    parts = re.split(r"(`+[^`]*`+)", markdown.strip())
    text = ""
    for i, part in enumerate(parts):
        if i % 2:  # a code span: its content, verbatim
            text += part.strip("`").strip()
            continue
        part = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", part)
        part = re.sub(r"<[^>]+>", "", part)
        part = re.sub(r"(?<![A-Za-z0-9])_+([^_]+?)_+(?![A-Za-z0-9])", r"\1", part)
        part = re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", part)
        text += html.unescape(part)
    return text.strip()


class Slugger:
    """GitHub's anchors of one document's headings: a repeated one gets -1, -2, ..."""

    def __init__(self) -> None:
        self.occurrences: dict[str, int] = {}

    def slug(self, markdown: str) -> str:
        original = result = github_slug(heading_text(markdown))
        while result in self.occurrences:
            self.occurrences[original] += 1
            result = f"{original}-{self.occurrences[original]}"
        self.occurrences[result] = 0
        return result


def without_code(text: str, code_spans: bool = True) -> list[str]:
    """The lines of a Markdown document with fenced code blocks, HTML comments and (with
    `code_spans`) code spans blanked (line numbers and columns kept)."""
    lines, fence = [], None
    for line in text.split("\n"):
        opening = FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(1)
            lines.append("")
        elif fence is not None:
            closing = re.match(r"^ {0,3}(`{3,}|~{3,})[ \t]*$", line)
            if closing and closing.group(1)[0] == fence[0] and len(closing.group(1)) >= len(fence):
                fence = None
            lines.append("")
        else:
            lines.append(line)
    blank = "\n".join(lines)
    for pattern in (HTML_COMMENT, CODE_SPAN) if code_spans else (HTML_COMMENT,):
        blank = pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), blank)
    return blank.split("\n")


@lru_cache(maxsize=None)
def anchors(path: Path) -> frozenset[str]:
    """The anchors of a Markdown file: its ATX and setext headings' slugs and HTML anchors."""
    slugger, found, previous = Slugger(), set(), ""
    for line in without_code(path.read_text(encoding="utf-8"), code_spans=False):
        atx = ATX_HEADING.match(line)
        if atx:
            found.add(slugger.slug(atx.group(1) or ""))
        elif SETEXT_UNDERLINE.match(line) and not NOT_A_PARAGRAPH.match(previous):
            found.add(slugger.slug(previous))
        found.update(HTML_ANCHOR.findall(line))
        previous = "" if atx else line
    return frozenset(found)


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every link and image in a Markdown file outside code."""
    lines = without_code(path.read_text(encoding="utf-8"))
    text = "\n".join(lines)
    found = []
    for pattern in (INLINE_LINK, REFERENCE_DEFINITION, HTML_LINK):
        for match in pattern.finditer(text):
            target = match.group(1).strip("<>")
            found.append((text.count("\n", 0, match.start(1)) + 1, target))
    return sorted(found)


def broken_reason(source: Path, target: str) -> str | None:
    """Why the relative link `target` in `source` does not resolve, or None when it does (or
    is not relative)."""
    if EXTERNAL.match(target) or target in ("", "#"):
        return None
    path, _, anchor = target.partition("#")
    path = unquote(path.split("?")[0])
    if not path:
        dest = source
    elif path.startswith("/"):  # GitHub: relative to the repository root
        dest = REPO / path.lstrip("/")
    else:
        dest = source.parent / path
    dest = Path(os.path.normpath(dest))
    if dest != REPO and REPO not in dest.parents:
        return "outside the repository"
    if not dest.exists():
        return "no such file"
    if anchor and dest.is_file() and dest.suffix.lower() == ".md":
        if unquote(anchor) not in anchors(dest):
            return f"no heading with this anchor in {dest.relative_to(REPO)}"
    return None


def documents() -> list[Path]:
    """README.md and every Markdown file under docs/."""
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def test_relative_links_resolve() -> None:
    broken = [
        f"{path.relative_to(REPO)}:{line}: {target} ({reason})"
        for path in documents()
        for line, target in links(path)
        for reason in [broken_reason(path, target)]
        if reason
    ]
    assert not broken, f"{len(broken)} broken relative link(s):\n" + "\n".join(broken)


def test_github_slugs() -> None:
    assert github_slug(heading_text("Deliberate differences from the reference")) == (
        "deliberate-differences-from-the-reference"
    )
    assert github_slug(heading_text("Figures (`bench/distributed_bench.py`)")) == (
        "figures-benchdistributed_benchpy"
    )
    assert github_slug(heading_text("Modes (`fusion=`)")) == "modes-fusion"
    assert github_slug(heading_text("`lazy_adam`: why it is ours")) == "lazy_adam-why-it-is-ours"
    assert github_slug(heading_text("Data: raw click logs -> TFRecords")) == (
        "data-raw-click-logs---tfrecords"
    )
    assert github_slug(heading_text("[Serving](#x) with *TF Serving*")) == "serving-with-tf-serving"
    slugger = Slugger()
    assert [slugger.slug("Results") for _ in range(3)] == ["results", "results-1", "results-2"]


def test_link_finder_skips_code_and_reads_anchors(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Top\n\nSee [a](#top), ![img](pic.png \"title\") and `[not](code.md)`.\n\n"
        "```\n[not](fenced.md)\n# not a heading\n```\n\nSetext heading\n--------------\n\n"
        "## Top\n### `lazy_adam`: why\n",
        encoding="utf-8",
    )
    assert links(doc) == [(3, "#top"), (3, "pic.png")]
    assert anchors(doc) == {"top", "top-1", "setext-heading", "lazy_adam-why"}

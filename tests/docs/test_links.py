"""The docs' relative links and the repository paths they name all exist.

Pure: reads Markdown files, no servers and no Django. Checked in README.md and
docs/**/*.md:
- every relative link `[text](path)` resolves to a file or folder of the
  repository, and a `#anchor` (in the same file or another Markdown file)
  names one of that file's headings, slugged the way GitHub slugs them;
- every path in backticks that starts at a top-level folder of the repository
  (`embeddings/search/selectors.py`, `tests/audit/`) exists, so that a file
  moved or renamed shows up here rather than in a reader's dead end. The
  archived history (docs/archive/) is exempt from this one: it quotes the
  paths of its day on purpose.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

pytestmark = pytest.mark.pure

PROJECT_DIR = Path(__file__).resolve().parents[2]
DOCS = sorted([PROJECT_DIR / "README.md", *(PROJECT_DIR / "docs").rglob("*.md")])
HISTORY = PROJECT_DIR / "docs" / "archive"

FENCE = re.compile(r"^ {0,3}(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
INLINE_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
TOP_LEVEL = {p.name for p in PROJECT_DIR.iterdir() if not p.name.startswith(".")} | {".ci"}
REPO_PATH = re.compile(r"^\.?[A-Za-z0-9_-]+(?:/[A-Za-z0-9_.-]+)*/?$")
MIGRATION_LABEL = re.compile(r"^([a-z_]+)/(\d{4}_\w+)$")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced and not line.startswith("    "):  # indented code blocks too
            lines.append((number, line))
    return lines


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading (github-slugger): the rendered text, lower case,
    punctuation and symbols dropped, each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link renders as its text
    text = INLINE_CODE.sub(lambda m: m.group(2), text)
    text = re.sub(r"(\*+|(?<!\w)_+|_+(?!\w))", "", text)  # emphasis markers, not snake_case
    text = re.sub(r"<[^>]+>", "", text).lower()
    kept = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LNM")
    return kept.replace(" ", "-")


def anchors_of(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors: set[str] = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        anchors.update(HTML_ANCHOR.findall(line))
        heading = HEADING.match(line)
        if heading is None:
            continue
        slug = github_slug(heading.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")  # duplicates get -1, -2, ...
    return anchors


def links_of(path: Path) -> list[tuple[int, str]]:
    found = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        without_code = INLINE_CODE.sub("", line)
        found += [(number, target) for target in INLINE_LINK.findall(without_code)]
        reference = REFERENCE_LINK.match(without_code)
        if reference:
            found.append((number, reference.group(1)))
    return found


def is_external(target: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) is not None  # https:, mailto:, ...


def broken_links(path: Path, root: Path = PROJECT_DIR) -> list[str]:
    problems = []
    for number, target in links_of(path):
        if is_external(target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(root)}:{number}: {target}"
        if not linked.exists():
            problems.append(f"{where} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors_of(linked):
            problems.append(f"{where} (no heading #{anchor} in {linked.name})")
    return problems


def named_paths(path: Path) -> list[tuple[int, str]]:
    """Paths in backticks that start at a top-level entry of the repository."""
    found = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        for match in INLINE_CODE.finditer(line):
            token = match.group(2).strip().split("::")[0]  # tests/x.py::test_name names the file
            if "/" in token and REPO_PATH.match(token) and token.split("/")[0] in TOP_LEVEL:
                found.append((number, token))
    return found


def exists(token: str) -> bool:
    migration = MIGRATION_LABEL.match(token)  # `embeddings/0006_name`: Django's name for a migration
    if migration:
        return (PROJECT_DIR / migration.group(1) / "migrations" / f"{migration.group(2)}.py").exists()
    return (PROJECT_DIR / token).exists()


def missing_paths(path: Path) -> list[str]:
    return [f"{path.relative_to(PROJECT_DIR)}:{number}: `{token}`"
            for number, token in named_paths(path) if not exists(token)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(PROJECT_DIR)))
def test_relative_links_resolve(doc):
    problems = broken_links(doc)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", [d for d in DOCS if HISTORY not in d.parents],
                         ids=lambda p: str(p.relative_to(PROJECT_DIR)))
def test_repository_paths_named_in_backticks_exist(doc):
    problems = missing_paths(doc)
    assert not problems, "\n".join(problems)


def test_github_slugs():
    assert github_slug("What remains elsewhere after a deletion") == "what-remains-elsewhere-after-a-deletion"
    assert github_slug("7. Crypto-shredding") == "7-crypto-shredding"
    assert github_slug("For other parts of the service: `emit_event`") == "for-other-parts-of-the-service-emit_event"
    assert github_slug("The auditors' console (`/console/`)") == "the-auditors-console-console"
    assert github_slug("Flow 1: search by photo (`POST /v1/search`)") == "flow-1-search-by-photo-post-v1search"
    assert github_slug("Tenant API (role `auditor`)") == "tenant-api-role-auditor"


def test_the_checks_catch_what_they_are_for(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# Title\n\n## Part two\n\n[ok](#part-two) [bad](#part-three) [gone](missing.md)\n"
                   "```\n[in code](nowhere.md)\n```\n`[in code](nowhere.md)` [web](https://example.com)\n",
                   encoding="utf-8")
    problems = broken_links(doc, root=tmp_path)
    assert [p.split(": ", 1)[1] for p in problems] == ["#part-three (no heading #part-three in doc.md)",
                                                       "missing.md (no such file)"]


def test_a_migration_is_named_by_its_label():
    assert exists("embeddings/0001_initial")
    assert not exists("embeddings/0999_no_such_migration")
    assert exists("embeddings/search/selectors.py") and not exists("embeddings/search/nothing.py")

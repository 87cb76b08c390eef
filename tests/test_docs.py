"""The project's documents stand alone: nothing they name lies outside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _documents() -> list[Path]:
    tracked = subprocess.run(["git", "ls-files", "*.md"], cwd=REPO, capture_output=True,
                             text=True, check=False).stdout.split()  # fmt: skip
    found = [REPO / p for p in tracked] or sorted(REPO.glob("**/*.md"))
    return [p for p in found if ".venv" not in p.parts and ".pytest_cache" not in p.parts]


DOCS = _documents()
OUTSIDE = re.compile(r"(/work/|\.\./shared|/home/|/root/|/tmp/[A-Za-z])")
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_documents_name_no_paths_of_a_development_machine(doc: Path) -> None:
    hits = [f"{i}: {line.strip()}" for i, line in enumerate(doc.read_text().splitlines(), 1)
            if OUTSIDE.search(line)]  # fmt: skip
    assert hits == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve_inside_the_repository(doc: Path) -> None:
    broken = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a URL or an anchor on the same page
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if not path.is_relative_to(REPO) or not path.exists():
            broken.append(target)
    assert broken == []


def test_the_design_the_code_cites_is_in_the_repository() -> None:
    for name in ("design.md", "stack-notes.md", "architecture.md"):
        assert (REPO / "docs" / name).is_file()
    assert "## 1." in (REPO / "docs" / "design.md").read_text()  # "DESIGN §1" etc.

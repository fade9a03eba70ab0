"""The docs stand on their own: every relative link in docs/ resolves inside the repository, and no
module cites a file outside it (the design map and notes live in docs/, not in a shared folder)."""

import re

import pytest

from tests.conftest import ROOT

LINK = re.compile(r"\]\(([^)\s]+)\)")
DOCS = sorted((ROOT / "docs").rglob("*.md"))
APPS = ("kefu", "kb", "inference", "chat", "analytics", "bench")


def relative_links(text: str) -> list[str]:
    return [target for target in LINK.findall(text) if not re.match(r"^(https?:|mailto:|#)", target)]


@pytest.mark.parametrize("page", DOCS, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_in_the_docs_resolves_inside_the_repository(page):
    # given a page of docs/, when its relative links are followed
    targets = [(page.parent / target.split("#")[0]).resolve() for target in relative_links(page.read_text())]
    # then each names a file of this repository
    missing = [str(target) for target in targets if not target.exists() or ROOT not in target.parents]
    assert not missing, f"{page.name} links outside the repository or to nothing: {missing}"


def test_the_architecture_page_is_there_and_links_its_companions():
    links = relative_links((ROOT / "docs" / "ARCHITECTURE.md").read_text())
    assert {"DESIGN-NOTES.md", "CONTRACTS.md", "retrieval-baselines.md"} <= {link.split("#")[0] for link in links}


def test_no_module_cites_a_file_outside_the_repository():
    citing = [str(path.relative_to(ROOT)) for app in APPS for path in (ROOT / app).rglob("*.py")
              if "shared/" in path.read_text(encoding="utf-8", errors="replace")]
    assert not citing, f"cite shared/ (outside the repository): {citing}"

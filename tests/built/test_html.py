"""Checks of the built book as a reader downloads it: run after ``make book`` by .ci/run,
``pytest tests/built --built-book _build/html`` (skipped without ``--built-book``).

Every page loads nothing from the network (MathJax included: the math renders offline),
every local link and image resolves inside the HTML folder, every figure links its four
files at the stable URL ``figures/<id>.<ext>`` and carries one citation naming the commit and
profile that made it, and one figure's rerun command, run again, gives the same data file.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

import nbformat

from memlab.citations import CITATION_FILE, CITE_CLASS, FILES, FOLDER

RERUN_FIGURE = "fig-phase-transition-memorization"
"""The figure whose rerun command the build check runs (its chapter reads its models from the store: seconds)."""


class Page(HTMLParser):
    """The resources a page loads (script, stylesheet, image, ...), its links and its figure anchors."""

    def __init__(self, text: str):
        super().__init__()
        self.loads: list[str] = []
        self.links: list[str] = []
        self.figures: list[str] = []
        self.citations: list[dict] = []
        self.reruns: list[str] = []
        self._in_rerun = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "video") and attrs.get("src"):
            self.loads.append(attrs["src"])
        if tag == "link" and attrs.get("href") and not {"canonical", "next", "prev", "index", "search"} & set(
                (attrs.get("rel") or "").split()):
            self.loads.append(attrs["href"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag == "figure" and re.match(r"fig-[a-z0-9-]+$", attrs.get("id") or ""):
            self.figures.append(attrs["id"])
        if tag == "details" and CITE_CLASS in (attrs.get("class") or "").split():
            self.citations.append(attrs)
        if tag == "pre" and "memlab-rerun" in (attrs.get("class") or "").split():
            self._in_rerun = True
            self.reruns.append("")

    def handle_endtag(self, tag):
        if tag == "pre":
            self._in_rerun = False

    def handle_data(self, data):
        if self._in_rerun:
            self.reruns[-1] += data


@pytest.fixture(scope="module")
def pages(html) -> dict[Path, Page]:
    return {path: Page(path.read_text(encoding="utf-8")) for path in sorted(html.rglob("*.html"))
            if "_static" not in path.parts}


def local_target(page: Path, url: str) -> Path | None:
    """The file a relative URL of ``page`` names (None for a remote URL, a mailto or a bare anchor)."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    return (page.parent / unquote(parts.path)).resolve()


def test_no_page_loads_anything_from_the_network(pages):
    remote = {f"{page.name}: {url}" for page, parsed in pages.items() for url in parsed.loads
              if urlsplit(url).scheme in ("http", "https") or url.startswith("//")}
    assert not remote, f"pages load from the network (they would not render offline): {sorted(remote)[:10]}"


def test_mathjax_is_served_from_the_build(html, pages):
    with_math = [page for page, parsed in pages.items() if any("mathjax" in url.lower() for url in parsed.loads)]
    assert len(with_math) >= 5, "the chapters' math needs MathJax"
    for page in with_math:
        (url,) = [url for url in pages[page].loads if "mathjax" in url.lower()]
        target = local_target(page, url)
        assert target == (html / "_static" / "mathjax" / "tex-chtml.js").resolve(), (page.name, url)
        assert target.stat().st_size > 100_000


def test_every_local_link_and_resource_resolves(html, pages):
    broken = set()
    for page, parsed in pages.items():
        for url in parsed.loads + parsed.links:
            target = local_target(page, url)
            if target is not None and not target.exists():
                broken.add(f"{page.relative_to(html)}: {url}")
    assert not broken, f"{len(broken)} broken local link(s): {sorted(broken)[:10]}"


def test_every_figure_links_its_files_at_stable_urls(html, pages):
    figures = {fig: page for page, parsed in pages.items() for fig in parsed.figures}
    assert len(figures) >= 20, f"only {len(figures)} figures in the book"
    problems = []
    for fig, page in figures.items():
        expected = {(html / FOLDER / f"{fig}.{suffix}").resolve() for suffix in FILES}
        linked = {local_target(page, url) for url in pages[page].links}
        problems += [f"{page.name}: {fig} does not link {path.name}" for path in expected - linked]
        problems += [f"{path.name} was not published" for path in expected if not path.is_file()]
    downloads = [f"{page.name}: {url}" for page, parsed in pages.items() for url in parsed.links if "_downloads/" in url]
    assert not problems and not downloads, (problems + downloads)[:10]


@pytest.fixture(scope="module")
def repository(html) -> Path:
    """The git work tree the book was built from."""
    found = subprocess.run(["git", "-C", str(html), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if found.returncode != 0:
        pytest.fail(f"the built book {html} is not inside a git work tree")
    return Path(found.stdout.strip())


def is_commit_of(repository: Path, commit: str) -> bool:
    """Whether ``commit`` (maybe suffixed -dirty) is HEAD or one of its ancestors."""
    sha = commit.removesuffix("-dirty")
    return bool(re.fullmatch(r"[0-9a-f]{40}", sha)) and subprocess.run(
        ["git", "-C", str(repository), "merge-base", "--is-ancestor", sha, "HEAD"]).returncode == 0


def chapter_parameters(executed: Path) -> dict:
    """The values the executed chapter ran with: its parameters cell, then papermill's injected one."""
    values: dict = {}
    for cell in nbformat.read(executed, as_version=4).cells:
        if {"parameters", "injected-parameters"} & set(cell.metadata.get("tags", [])):
            exec(cell.source, {}, values)
    return values


def test_every_figure_cites_the_commit_and_profile_that_made_it(html, pages, repository):
    problems, cited = [], 0
    for page, parsed in pages.items():
        if not parsed.figures:
            continue
        values = chapter_parameters(repository / "book" / "chapters" / f"{page.stem}.ipynb")
        expected_profile = values.get("profile") or values.get("sweep") or ""
        for fig in parsed.figures:
            citations = [c for c in parsed.citations if c.get("data-figure") == fig]
            record = json.loads((html / FOLDER / f"{fig}.json").read_text())
            if len(citations) != 1:
                problems.append(f"{page.name}: {fig} has {len(citations)} citations")
                continue
            cited += 1
            commit, profile = citations[0]["data-commit"], citations[0]["data-profile"]
            if commit != record["git_commit"] or not is_commit_of(repository, commit):
                problems.append(f"{fig}: commit {commit} (provenance {record['git_commit']})")
            if profile != (expected_profile if record["profile"] else ""):
                problems.append(f"{fig}: profile {profile!r}, chapter ran with {expected_profile!r}")
    assert cited >= 20 and not problems, problems[:10]


def test_the_published_citation_file_names_a_commit_of_the_book(html, repository):
    published = (html / CITATION_FILE).read_text()
    assert published.startswith((repository / CITATION_FILE).read_text().rstrip("\n"))
    (commit,) = re.findall(r'^commit: "([^"]+)"$', published, re.M)
    assert is_commit_of(repository, commit), commit


def test_a_figures_rerun_command_gives_the_same_data(html, pages, repository, tmp_path):
    """The command under RERUN_FIGURE, run in a fresh root (the same sources and results store),
    writes the CSV that the book published."""
    (command,) = [rerun for parsed in pages.values() for fig, rerun in zip(
        [c["data-figure"] for c in parsed.citations], parsed.reruns) if fig == RERUN_FIGURE]
    words = shlex.split(command)
    assert words[:3] == ["python", "-m", "memlab.book"], command
    for name in ("notebooks", "memlab", "benchmarks", "results", "requirements.lock", "_toc.yml"):
        (tmp_path / name).symlink_to(repository / name)
    subprocess.run([sys.executable, *words[1:], "--no-html", "--root", str(tmp_path)], check=True,
                   capture_output=True, timeout=600)
    rerun = tmp_path / "book" / "chapters" / FOLDER / f"{RERUN_FIGURE}.csv"
    assert rerun.read_bytes() == (html / FOLDER / f"{RERUN_FIGURE}.csv").read_bytes()

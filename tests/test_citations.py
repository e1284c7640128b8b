"""Tests of the book's Sphinx set-up on a throwaway Sphinx project (a few seconds each): the
figure files are published at stable URLs, each figure carries its citation, and MathJax is
served from the build itself."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import yaml

import pytest
from sphinx.application import Sphinx

from memlab.citations import CITATION_FILE, FILES
from memlab.figures import git_commit

ROOT = Path(__file__).resolve().parents[1]
PROVENANCE = {"git_commit": "0123abc", "git_date": "2026-12-01", "profile": "ci",
              "command": "python -m memlab.book page -p N 50"}

PAGE = """# A chapter

Some math, $x^2$.

```{{figure}} figures/{fig}.png
:name: {fig}

A caption. Files: {{figure-files}}`{fig}`.
```
"""


def build(tmp_path: Path, fig: str, files=tuple(FILES), provenance=PROVENANCE, page=PAGE) -> tuple[Path, list[str]]:
    """Build a one-page project whose page sits in book/chapters/ (as the real chapters do) and
    links ``fig``, having written only ``files`` of it (its provenance ``provenance``), with the
    book's CITATION.cff; returns (the HTML folder, the warnings)."""
    src, out = tmp_path / "src", tmp_path / "html"
    chapter = src / "book" / "chapters"
    (chapter / "figures").mkdir(parents=True)
    for suffix in files:
        text = json.dumps(provenance) if suffix == "json" else f"{suffix} of {fig}\n"
        (chapter / "figures" / f"{fig}.{suffix}").write_text(text)
    (chapter / "page.md").write_text(page.format(fig=fig))
    (src / CITATION_FILE).write_text((ROOT / CITATION_FILE).read_text())
    (src / "index.md").write_text("# Book\n\n```{toctree}\nbook/chapters/page\n```\n")
    (src / "conf.py").write_text(
        "extensions = ['myst_parser', 'sphinx-mathjax-offline', 'memlab.citations']\n"
        "myst_enable_extensions = ['dollarmath']\n")
    warnings: list[str] = []

    class Collect:
        def write(self, text):
            warnings.append(text)

        def flush(self):
            pass

    app = Sphinx(str(src), str(src), str(out), str(tmp_path / "doctrees"), "html",
                 status=None, warning=Collect(), freshenv=True)
    app.build()
    # a second Sphinx app in one process warns that sphinx's own nodes are registered already
    return out, [line for line in warnings if line.strip() and "is already registered" not in line]


def test_citations_are_published_at_stable_urls_that_the_caption_links(tmp_path):
    fig = "fig-page-curve"
    out, warnings = build(tmp_path, fig)
    assert not warnings
    page = (out / "book" / "chapters" / "page.html").read_text()
    links = re.findall(r'href="([^"]*figures/[^"]+)"', page)
    assert links == [f"../../figures/{fig}.{suffix}" for suffix in FILES]
    for link in links:  # each resolves from the page to the file the chapter wrote
        published = (out / "book" / "chapters" / link).resolve()
        expected = (tmp_path / "src" / "book" / "chapters" / "figures" / published.name).read_text()
        assert published.read_text() == expected


def test_every_figure_carries_its_citation_and_rerun_command_from_its_provenance(tmp_path):
    fig = "fig-page-curve"
    out, warnings = build(tmp_path, fig)
    assert not warnings
    page = (out / "book" / "chapters" / "page.html").read_text()
    (block,) = re.findall(r'<figure[^>]*id="fig-page-curve".*?</figure>', page, re.S)
    assert 'data-commit="0123abc"' in block and 'data-profile="ci"' in block
    (bibtex,) = [html.unescape(re.sub(r"<[^>]+>", "", text))
                 for text in re.findall(r'<pre class="memlab-bibtex">(.*?)</pre>', block, re.S)]
    book = yaml.safe_load((ROOT / CITATION_FILE).read_text())
    assert bibtex.startswith(f"@misc{{memlab:{fig},")
    assert f"title        = {{{{{book['title']}}}, figure {fig}}}" in bibtex
    assert "year         = {2026}" in bibtex and f"version      = {{{book['version']}}}" in bibtex
    # URLs relative to the page (no html_baseurl), which the page's script makes absolute
    assert "\\url{../../book/chapters/page.html#fig-page-curve}" in bibtex
    assert "commit 0123abc, profile ci" in bibtex
    assert f"\\url{{../../figures/{fig}.csv}}" in bibtex and f"\\url{{../../figures/{fig}.json}}" in bibtex
    assert 'data-memlab-url="../../book/chapters/page.html#fig-page-curve"' in block
    (rerun,) = re.findall(r'<pre class="memlab-rerun">(.*?)</pre>', block, re.S)
    assert html.unescape(rerun) == PROVENANCE["command"]
    published = yaml.safe_load((out / CITATION_FILE).read_text())
    assert published == {**book, "commit": git_commit()}


def test_a_figure_whose_provenance_lacks_its_command_is_an_error_naming_it(tmp_path):
    lacking = {key: value for key, value in PROVENANCE.items() if key != "command"}
    _, warnings = build(tmp_path, "fig-page-curve", provenance=lacking)
    assert any("fig-page-curve.json has no command" in line and "ERROR" in line for line in warnings), warnings


def test_citations_outside_a_figure_is_an_error(tmp_path):
    _, warnings = build(tmp_path, "fig-page-curve", page="# A chapter\n\nFiles: {{figure-files}}`{fig}`.\n")
    assert any("not inside a figure's caption" in line and "ERROR" in line for line in warnings), warnings


def test_a_figure_with_a_missing_file_is_an_error_naming_it(tmp_path):
    _, warnings = build(tmp_path, "fig-page-curve", files=("png", "svg", "csv"))
    assert any("fig-page-curve.json" in line and "ERROR" in line for line in warnings), warnings


def test_mathjax_is_served_from_the_build_not_a_cdn(tmp_path):
    out, _ = build(tmp_path, "fig-page-curve")
    page = (out / "book" / "chapters" / "page.html").read_text()
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', page)
    mathjax = [src for src in scripts if "mathjax" in src.lower()]
    assert mathjax == ["../../_static/mathjax/tex-chtml.js"], scripts
    assert (out / "_static" / "mathjax" / "tex-chtml.js").stat().st_size > 100_000
    assert not [src for src in scripts if re.match(r"(https?:)?//", src)]

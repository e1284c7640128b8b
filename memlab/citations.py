"""The Sphinx extension that publishes every figure's files at a stable URL, with its citation.

A chapter writes a figure's files beside its executed notebook as
``figures/<id>.{png,svg,csv,json}`` (memlab.figures.save_figure). In a caption, the role

    Files: {figure-files}`fig-<chapter>-<slug>`.

renders the links "PNG, SVG, data, provenance", and the HTML build

- copies the four files to ``<html>/figures/<id>.<ext>``: one folder at the root of the book
  whose URLs do not change from build to build (Sphinx's own downloads sit under content-hash
  folders);
- puts under the figure a folded block "Cite or rerun this figure": a BibTeX entry and a
  plain-text citation naming the figure's id, its anchor URL, the commit and profile that made
  it and its data and provenance files, and the command that executes it again, all read from
  the figure's provenance file (its ``<id>.json``) and the book's ``CITATION.cff``;
- publishes ``CITATION.cff`` at the root of the HTML with ``commit:`` set to the commit built.

A figure whose files are missing, or whose provenance lacks what its citation needs, is a build
error naming them. Without ``html_baseurl`` the URLs are written relative to the page and made
absolute by the reader's browser. Loaded from ``_config.yml`` (``sphinx: extra_extensions``).
"""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import yaml
from docutils import nodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from memlab.figures import FIG_ID, git_commit, git_date

FOLDER = "figures"
"""The figures' folder beside a page's source, and the published one at the root of the HTML."""
FILES = {"png": "PNG", "svg": "SVG", "csv": "data", "json": "provenance"}
"""Suffix of each file of a figure -> its link text."""
CITATION_FILE = "CITATION.cff"
"""The book's citation metadata, at the root of the source and of the HTML."""
LINKS_CLASS = "memlab-figure-files"
"""HTML class of the links of one figure's files (the citation goes under the figure around them)."""
CITE_CLASS = "memlab-cite"
"""HTML class of the block under each figure (tests/built finds the citations by it)."""
ABSOLUTIZE = """document.addEventListener("DOMContentLoaded", () => {
  for (const span of document.querySelectorAll("[data-memlab-url]")) {
    span.textContent = new URL(span.dataset.memlabUrl, document.baseURI).href;
  }
});"""
"""Writes each relative URL of a citation as the absolute URL the reader opened the page at."""

logger = logging.getLogger(__name__)


def published_files(env) -> dict[str, dict[str, str]]:
    """docname -> {figure id: source folder} of the figures that the build publishes."""
    if not hasattr(env, "memlab_citations"):
        env.memlab_citations = {}
    return env.memlab_citations


def figure_files_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``{figure-files}`<id>``` -> links to <root>/figures/<id>.<ext>, one per file of FILES."""
    env = inliner.document.settings.env
    fig_id = text.strip()
    folder = Path(env.doc2path(env.docname)).parent / FOLDER
    missing = [f"{fig_id}.{suffix}" for suffix in FILES if not (folder / f"{fig_id}.{suffix}").is_file()]
    problem = (f"{fig_id!r} is not a figure id 'fig-<chapter>-<slug>'" if not FIG_ID.match(fig_id)
               else f"figure {fig_id} has no file(s) {', '.join(missing)} in {folder}" if missing else None)
    if problem:
        message = inliner.reporter.error(f"{{figure-files}}: {problem}", line=lineno)
        return [inliner.problematic(rawtext, rawtext, message)], [message]
    published_files(env).setdefault(env.docname, {})[fig_id] = str(folder)
    up = root_prefix(env, env.docname)
    links = nodes.inline(classes=[LINKS_CLASS], fig_id=fig_id, folder=str(folder))
    for suffix, label in FILES.items():
        if len(links):
            links += nodes.Text(", ")
        links += nodes.reference(label, label, refuri=f"{up}{FOLDER}/{fig_id}.{suffix}")
    return [links], []


def root_prefix(env, docname: str) -> str:
    """The relative path from the page of ``docname`` to the root of the HTML ('../../')."""
    return "../" * env.app.builder.get_target_uri(docname).count("/")


def book_metadata(srcdir: str | Path) -> dict:
    """CITATION.cff at the root of the book's source: title, authors, version, date-released."""
    path = Path(srcdir) / CITATION_FILE
    try:
        record = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"{path} is missing or not valid YAML ({error}); every figure's citation reads it") from None
    if not isinstance(record, dict) or not {"title", "authors", "version"} <= set(record):
        raise ValueError(f"{path} must give title, authors and version (Citation File Format 1.2.0)")
    return record


def author_names(book: dict) -> str:
    """The CFF authors as BibTeX writes them: 'Family, Given and ...', an entity's name in braces."""
    names = []
    for author in book["authors"]:
        if "name" in author:
            names.append("{" + author["name"] + "}")
        else:
            names.append(", ".join(part for part in (author.get("family-names"), author.get("given-names")) if part))
    return " and ".join(names)


def entry(key: str, title: str, book: dict, year: str, note: str, url: str) -> tuple[str, str]:
    """(BibTeX @misc entry, plain text) citing ``title`` (braced as BibTeX keeps it) of the book."""
    bibtex = "\n".join([
        f"@misc{{{key},",
        f"  author       = {{{author_names(book)}}},",
        f"  title        = {{{title}}},",
        f"  year         = {{{year}}},",
        f"  version      = {{{book['version']}}},",
        f"  howpublished = {{\\url{{{url}}}}},",
        f"  note         = {{{note}}},",
        "}",
    ])
    people = ", ".join(a.get("name") or " ".join(filter(None, (a.get("given-names"), a.get("family-names"))))
                       for a in book["authors"])
    plain = re.sub(r"\\url\{([^}]*)\}", r"\1", note)
    text = f"{people} ({year}). {title.replace('{', '').replace('}', '')}, version {book['version']}, {url}. {plain}"
    return bibtex, text


MARKER = "\0{}\0"
"""Stands for a URL in an entry until the entry is escaped as HTML (addresses)."""


def as_html(bibtex: str, text: str, urls: dict[str, str], baseurl: str, page_prefix: str) -> str:
    """The entry and its text as HTML, each MARKER of ``urls`` (name -> path below the HTML root)
    written as its URL: absolute with a baseurl, else relative and made absolute in the browser."""

    def address(root_relative: str) -> str:
        if baseurl:
            return html.escape(baseurl.rstrip("/") + "/" + root_relative)
        relative = html.escape(page_prefix + root_relative)
        return f'<span data-memlab-url="{relative}">{relative}</span>'

    def fill(value: str) -> str:
        escaped = html.escape(value)
        for name, path in urls.items():
            escaped = escaped.replace(html.escape(MARKER.format(name)), address(path))
        return escaped

    return (f'<p>BibTeX:</p>\n<pre class="memlab-bibtex">{fill(bibtex)}</pre>\n'
            f'<p>Text:</p>\n<p class="memlab-citation-text">{fill(text)}</p>\n')


def provenance_of(fig_id: str, folder: Path) -> dict:
    """The figure's provenance file, with what its citation needs; ValueError naming what is not there."""
    path = folder / f"{fig_id}.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"provenance {path} is unreadable ({error})") from None
    lacking = [key for key in ("git_commit", "command") if not record.get(key)]
    if lacking:
        raise ValueError(f"provenance {path} has no {', '.join(lacking)}: execute its chapter with "
                         "python -m memlab.book, which records them")
    return record


def citation_block(fig_id: str, record: dict, book: dict, page_prefix: str, page_uri: str, baseurl: str) -> str:
    """The HTML of the folded block "Cite or rerun this figure" under the figure ``fig_id``."""
    commit, profile = record["git_commit"], record.get("profile")
    year = (record.get("git_date") or str(book.get("date-released", "")))[:4]
    made = f"commit {commit}" + (f", profile {profile}" if profile else "")
    note = (f"Computed at {made}. Data: \\url{{{MARKER.format('csv')}}}; "
            f"provenance: \\url{{{MARKER.format('json')}}}")
    bibtex, text = entry(f"memlab:{fig_id}", f"{{{book['title']}}}, figure {fig_id}", book, year, note,
                         MARKER.format("url"))
    urls = {"url": f"{page_uri}#{fig_id}", "csv": f"{FOLDER}/{fig_id}.csv", "json": f"{FOLDER}/{fig_id}.json"}
    return (f'<details class="{CITE_CLASS}" data-figure="{fig_id}" data-commit="{html.escape(commit)}"'
            f' data-profile="{html.escape(profile or "")}">\n'
            "<summary>Cite or rerun this figure</summary>\n"
            + as_html(bibtex, text, urls, baseurl, page_prefix) +
            "<p>Rerun (in a clone of the repository at that commit; it writes the figure's files to "
            "<code>book/chapters/figures/</code>):</p>\n"
            f'<pre class="memlab-rerun">{html.escape(record["command"])}</pre>\n</details>')


class BookCitation(SphinxDirective):
    """``{book-citation}``: the book's BibTeX entry and text, from CITATION.cff and the commit built."""

    def run(self):
        try:
            book = book_metadata(self.env.srcdir)
        except ValueError as error:
            raise self.error(str(error)) from None
        commit = git_commit()
        year = (git_date() or str(book.get("date-released", "")))[:4]
        bibtex, text = entry("memlab", f"{{{book['title']}}}", book, year, f"Commit {commit}.", MARKER.format("url"))
        block = as_html(bibtex, text, {"url": "index.html"}, self.config.html_baseurl,
                        root_prefix(self.env, self.env.docname))
        return [nodes.raw("", f'<div class="memlab-book-citation" data-commit="{html.escape(commit)}">\n'
                          f"{block}</div>", format="html")]


def add_citations(app, doctree, docname) -> None:
    """Under every figure whose caption links its files, its citation block (HTML builds only)."""
    if app.builder.format != "html":
        return
    for links in [node for node in doctree.findall(nodes.inline) if LINKS_CLASS in node["classes"]]:
        figure = links.parent
        while figure is not None and not isinstance(figure, nodes.figure):
            figure = figure.parent
        fig_id = links["fig_id"]
        try:
            if figure is None:
                raise ValueError(f"{{figure-files}}`{fig_id}` is not inside a figure's caption")
            block = citation_block(fig_id, provenance_of(fig_id, Path(links["folder"])), book_metadata(app.srcdir),
                                   root_prefix(app.env, docname), app.builder.get_target_uri(docname),
                                   app.config.html_baseurl)
        except ValueError as error:
            logger.error(f"figure {fig_id}: {error}", location=links)
            continue
        figure += nodes.raw("", block, format="html")


def purge(app, env, docname) -> None:
    published_files(env).pop(docname, None)


def merge(app, env, docnames, other) -> None:
    published_files(env).update({name: published_files(other)[name] for name in docnames
                                 if name in published_files(other)})


def copy_files(app, exception) -> None:
    """After a successful HTML build, copy every linked figure's files to <html>/figures/, and
    CITATION.cff to <html>/CITATION.cff with the commit built."""
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / FOLDER
    target.mkdir(parents=True, exist_ok=True)
    for figures in published_files(app.env).values():
        for fig_id, folder in figures.items():
            for suffix in FILES:
                shutil.copyfile(Path(folder) / f"{fig_id}.{suffix}", target / f"{fig_id}.{suffix}")
    source = Path(app.srcdir) / CITATION_FILE
    if source.is_file():
        text = source.read_text(encoding="utf-8").rstrip("\n")
        (Path(app.outdir) / CITATION_FILE).write_text(f'{text}\ncommit: "{git_commit()}"\n', encoding="utf-8")


def setup(app):
    app.add_role("figure-files", figure_files_role)
    app.add_directive("book-citation", BookCitation)
    app.add_js_file(None, body=ABSOLUTIZE)
    app.connect("doctree-resolved", add_citations)
    app.connect("env-purge-doc", purge)
    app.connect("env-merge-info", merge)
    app.connect("build-finished", copy_files)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "env_version": 2}

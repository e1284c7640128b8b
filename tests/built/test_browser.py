"""The built book in a real browser, as a reader sees it: Debian's Chromium driven by Playwright
(``make check-book`` installs it; no browser download) opens every page of ``_build/html``,
served on localhost with every other address refused, as on an offline machine.

Each page is opened once (the ``visits`` fixture); the tests then check what the reader would
see: the math typeset by MathJax (no raw ``\\(...\\)`` or ``$...$`` left), every image loaded,
every figure anchor of the intro and the captions resolving, every file link answering, no
Python warning or traceback in an output, and every figure's citation with absolute URLs.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import pytest

pytest.importorskip("playwright")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
"""Headless Chromium as root on a closed network: without the background-networking flags it
keeps trying to reach Google's hosts."""
PYTHON_TROUBLE = re.compile(r"Traceback \(most recent call last\)|\b[A-Z]\w*Warning\b|\bwarnings\.warn\b")

COLLECT = """() => {
  const skip = "pre, code, script, style, textarea, mjx-container, .highlight";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const raw = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.parentElement.closest(skip)) continue;
    const text = node.textContent;
    if (/\\\\\\(|\\\\\\[|\\$\\$|\\$[^$\\s][^$]*\\$/.test(text)) raw.push(text.trim().slice(0, 80));
  }
  return {
    raw_math: raw,
    untypeset: [...document.querySelectorAll("span.math, div.math")]
      .filter(el => !el.querySelector("mjx-container")).map(el => el.textContent.slice(0, 80)),
    typeset: document.querySelectorAll("mjx-container").length,
    broken_images: [...document.images].filter(img => !img.complete || img.naturalWidth === 0)
      .map(img => img.getAttribute("src")),
    images: document.images.length,
    ids: [...document.querySelectorAll("[id]")].map(el => el.id),
    links: [...document.querySelectorAll("a[href]")].map(a => a.href),
    figure_links: [...document.querySelectorAll("a[href*='#fig-']")].map(a => a.href),
    outputs: [...document.querySelectorAll(".cell_output")].map(el => el.innerText),
    figures: [...document.querySelectorAll("figure[id^='fig-']")].map(fig => ({
      id: fig.id,
      citations: [...fig.querySelectorAll("details.memlab-cite")].map(d => ({
        figure: d.dataset.figure,
        urls: [...d.querySelectorAll("[data-memlab-url]")].map(span => span.textContent)})),
    })),
  };
}"""


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `make check-book` installs Debian's chromium")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_FLAGS}


@pytest.fixture(scope="module")
def served(html):
    """The HTML folder on http://127.0.0.1:<port>/ for the module's tests."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def visits(browser, served, html):
    """page (relative to the HTML root) -> what COLLECT read off it once MathJax finished; and
    the requests to any other host, which were refused."""
    context = browser.new_context()
    remote: list[str] = []

    def only_local(route):
        if route.request.url.startswith(served):
            route.continue_()
        else:
            remote.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    seen = {}
    for path in sorted(html.rglob("*.html")):
        name = path.relative_to(html).as_posix()
        if name.startswith("_static/") or name in ("index.html", "genindex.html", "search.html"):  # index: a redirect
            continue
        page.goto(served + name, wait_until="load")
        if page.evaluate("() => document.querySelector('span.math, div.math') !== null"):
            page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                                   timeout=20_000)
            page.evaluate("() => MathJax.startup.promise")
        seen[name] = page.evaluate(COLLECT)
    seen["<remote requests>"] = remote
    yield seen
    context.close()


def pages(visits):
    return {name: found for name, found in visits.items() if not name.startswith("<")}


def test_the_browser_loads_nothing_from_the_network(visits):
    assert len(pages(visits)) >= 10
    assert not visits["<remote requests>"], visits["<remote requests>"][:10]


def test_all_math_is_typeset_offline(visits):
    found = pages(visits)
    assert sum(page["typeset"] for page in found.values()) >= 100, "MathJax typeset (almost) nothing"
    raw = {name: page["raw_math"] + page["untypeset"] for name, page in found.items()
           if page["raw_math"] or page["untypeset"]}
    assert not raw, raw


def test_every_image_loads(visits):
    found = pages(visits)
    assert sum(page["images"] for page in found.values()) >= 20
    broken = {name: page["broken_images"] for name, page in found.items() if page["broken_images"]}
    assert not broken, broken


def test_every_figure_anchor_resolves(visits, served):
    found = pages(visits)
    ids = {name: set(page["ids"]) for name, page in found.items()}
    checked, broken = 0, []
    for name, page in found.items():
        for link in page["figure_links"]:
            target, anchor = urldefrag(link)
            target = target[len(served):] if target.startswith(served) else target
            checked += 1
            if anchor not in ids.get(target, ()):
                broken.append(f"{name}: {link}")
    assert checked >= 20 and any(found["book/intro.html"]["figure_links"]), checked
    assert not broken, broken


def test_every_file_link_answers(visits, served, browser):
    files = {link for page in pages(visits).values() for link in page["links"]
             if link.startswith(served) and not urlsplit(link).path.endswith((".html", "/"))}
    assert len(files) >= 80, len(files)
    context = browser.new_context()
    try:
        failing = [link for link in sorted(files) if context.request.head(link).status != 200]
    finally:
        context.close()
    assert not failing, failing


def test_no_python_warning_or_traceback_in_an_output(visits):
    trouble = {name: [text[:200] for text in page["outputs"] if PYTHON_TROUBLE.search(text)]
               for name, page in pages(visits).items()}
    trouble = {name: texts for name, texts in trouble.items() if texts}
    assert not trouble, trouble


def test_every_figure_has_one_citation_with_absolute_urls(visits, served):
    figures = [(name, figure) for name, page in pages(visits).items() for figure in page["figures"]]
    assert len(figures) >= 20
    problems = []
    for name, figure in figures:
        if [c["figure"] for c in figure["citations"]] != [figure["id"]]:
            problems.append(f"{name}: {figure['id']} has citations {figure['citations']}")
        elif not figure["citations"][0]["urls"] or not all(
                url.startswith(served) for url in figure["citations"][0]["urls"]):
            problems.append(f"{name}: {figure['id']} citation URLs {figure['citations'][0]['urls']}")
    assert not problems, problems

"""The checks of a built book (``make check-book``: ``pytest tests/built --built-book _build/html``)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def html(request) -> Path:
    """The HTML folder given by --built-book; the tests are skipped without it."""
    folder = request.config.getoption("built_book", default=None)
    if folder is None:
        pytest.skip("checks of the built book: run `make check-book` (pytest tests/built --built-book _build/html)")
    folder = Path(folder).resolve()
    if not (folder / "index.html").is_file():
        pytest.fail(f"--built-book {folder}: no index.html there; build the book first (make book)")
    return folder

"""Tests of the book driver (memlab.book): build keys, parameter checks, staleness and failures.

Every test builds a throwaway book under tmp_path; none touches the real book/. Two tests
execute a real two-cell notebook on the python3 kernel (about a second each); the others
replace the execution by a fake that records what would run.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat
import pytest

from memlab import book

PARAMETERS_CELL = """# %% tags=["parameters"]
n: int = 3  # how many things
scale: float = 1.0  # a factor
"""


def make_book(tmp_path, body="print(n * scale)", chapters=("chap",)) -> book.BookPaths:
    """A book under tmp_path whose chapters have the parameters cell above and ``body``."""
    paths = book.BookPaths(
        root=tmp_path,
        notebooks=tmp_path / "notebooks",
        chapters=tmp_path / "book" / "chapters",
        package=tmp_path / "pkg",
        lock=tmp_path / "requirements.lock",
        results=tmp_path / "results",
    )
    paths.notebooks.mkdir()
    paths.package.mkdir()
    (paths.package / "mod.py").write_text("X = 1\n")
    paths.lock.write_text("numpy==2.4.6\n")
    for chapter in chapters:
        paths.source(chapter).write_text(PARAMETERS_CELL + "\n# %%\n" + body + "\n")
    return paths


def key_of(paths: book.BookPaths, parameters=None, chapter="chap") -> str:
    return book.build_key(paths.source(chapter), paths.package, paths.lock, parameters or {}, paths.results)


def fake_execute(calls: list):
    """Stands in for book.execute: records (chapter, parameters), writes the notebook unexecuted."""

    def execute(chapter, paths, nb, key, parameters):
        calls.append((chapter, dict(parameters)))
        paths.chapters.mkdir(parents=True, exist_ok=True)
        nb.metadata[book.METADATA_KEY] = {"build_key": key, "parameters": dict(parameters)}
        nbformat.write(nb, paths.executed(chapter))
        return paths.executed(chapter)

    return execute


# --- build key ---------------------------------------------------------------------------


def test_build_key_is_stable_ignoring_parameter_order_and_modification_times(tmp_path):
    paths = make_book(tmp_path)
    key = key_of(paths, {"n": 1, "scale": 2.0})
    # checkpoints and the ci profile (recomputed from the code) do not enter the key
    (paths.results / "paper").mkdir(parents=True)
    (paths.results / "paper" / "k.ckpt.json").write_text("{}")
    (paths.results / "ci").mkdir()
    (paths.results / "ci" / "k.json").write_text("{}")
    os.utime(paths.source("chap"), (1, 1))
    os.utime(paths.package / "mod.py", (1, 1))
    (paths.package / "__pycache__").mkdir()
    (paths.package / "__pycache__" / "mod.cpython-311.py").write_text("stale")
    assert key_of(paths, {"scale": 2.0, "n": 1}) == key


@pytest.mark.parametrize(
    "change",
    [
        "source",
        "package file",
        "new package file",
        "package file in a subfolder",
        "benchmark script beside the package",
        "lock",
        "parameter value",
        "parameter type",
        "new parameter",
        "new stored result",
    ],
)
def test_build_key_changes_with_every_input(tmp_path, change):
    paths = make_book(tmp_path)
    parameters = {"n": 1}
    before = key_of(paths, parameters)
    if change == "source":
        paths.source("chap").write_text(paths.source("chap").read_text() + "# edited\n")
    elif change == "package file":
        (paths.package / "mod.py").write_text("X = 2\n")
    elif change == "new package file":
        (paths.package / "other.py").write_text("")
    elif change == "package file in a subfolder":
        (paths.package / "sub").mkdir()
        (paths.package / "sub" / "deep.py").write_text("")
    elif change == "benchmark script beside the package":
        (paths.package.parent / "benchmarks").mkdir()
        (paths.package.parent / "benchmarks" / "bench.py").write_text("")
    elif change == "lock":
        paths.lock.write_text("numpy==2.4.7\n")
    elif change == "new stored result":
        (paths.results / "paper").mkdir(parents=True)
        (paths.results / "paper" / "abc.json").write_text("{}")
    elif change == "parameter value":
        parameters = {"n": 2}
    elif change == "parameter type":
        parameters = {"n": 1.0}
    elif change == "new parameter":
        parameters = {"n": 1, "scale": 1.0}
    assert key_of(paths, parameters) != before


# --- parameters --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("400", 400),
        ("-3", -3),
        ("1e-3", 1e-3),
        ("0.5", 0.5),
        ("True", True),
        ("false", False),
        ("None", None),
        ("[1, 2.5]", [1, 2.5]),
        ("{a: 1}", {"a": 1}),
        ("uniform", "uniform"),
        ("a: b", "a: b"),
    ],
)
def test_parse_value_types_like_papermill(text, value):
    parsed = book.parse_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_unknown_parameter_names_it_and_lists_the_allowed_ones(tmp_path):
    paths = make_book(tmp_path)
    with pytest.raises(ValueError, match=r"chapter 'chap' has no parameter 'm'; its parameters are: n, scale"):
        book.prepare("chap", paths, {"m": 1})


def test_unknown_parameter_on_the_command_line_exits_2_and_runs_nothing(tmp_path, capsys, monkeypatch):
    paths = make_book(tmp_path, chapters=("chap", "other"))
    calls = []
    monkeypatch.setattr(book, "execute", fake_execute(calls))
    status = book.main(["chap", "other", "-p", "n", "5", "-p", "nn", "1", "--no-html"], paths=paths)
    assert status == 2
    assert "no parameter 'nn'" in capsys.readouterr().err
    assert calls == []


def test_wrongly_typed_parameter_names_the_value_and_the_type(tmp_path):
    paths = make_book(tmp_path)
    with pytest.raises(TypeError, match=r"parameter 'n' must be int .* got 'abc'"):
        book.prepare("chap", paths, {"n": "abc"})
    book.prepare("chap", paths, {"scale": 2})  # an int is a fine float


def test_parameter_line_that_papermill_cannot_read_is_an_error(tmp_path):
    paths = make_book(tmp_path)
    paths.source("chap").write_text(PARAMETERS_CELL + "k: int = 2  # the grid M = N/k\n")
    with pytest.raises(ValueError, match=r"papermill cannot read the parameter\(s\) k"):
        book.prepare("chap", paths, {})


def test_missing_chapter_names_the_known_ones(tmp_path):
    paths = make_book(tmp_path)
    with pytest.raises(ValueError, match=r"no chapter 'nope'.*chapters: chap"):
        book.prepare("nope", paths, {})


def test_toc_chapters_in_order_skipping_other_pages(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: book/intro\nparts:\n"
        "  - caption: A\n    chapters:\n      - file: book/chapters/b\n      - file: book/chapters/a\n"
        "  - caption: B\n    chapters:\n      - file: book/bibliography\n"
    )
    assert book.toc_chapters(toc) == ["b", "a"]


# --- staleness (fake execution) ----------------------------------------------------------


def test_chapter_runs_again_exactly_when_its_key_changes(tmp_path, monkeypatch):
    paths = make_book(tmp_path)
    calls = []
    monkeypatch.setattr(book, "execute", fake_execute(calls))
    log = []
    assert book.run_chapters(["chap"], paths, {}, log=log.append) == ["chap"]
    assert book.run_chapters(["chap"], paths, {}, log=log.append) == []
    assert book.run_chapters(["chap"], paths, {"n": 4}, log=log.append) == ["chap"]
    assert book.run_chapters(["chap"], paths, {"n": 4}, force=True, log=log.append) == ["chap"]
    (paths.package / "mod.py").write_text("X = 3\n")
    assert book.run_chapters(["chap"], paths, {"n": 4}, log=log.append) == ["chap"]
    assert calls == [("chap", {}), ("chap", {"n": 4}), ("chap", {"n": 4}), ("chap", {"n": 4})]
    assert book.stored_record(paths.executed("chap"))["build_key"] == key_of(paths, {"n": 4})


def test_unselected_chapters_keep_current_results_and_rerun_stale_ones_with_defaults(tmp_path, monkeypatch):
    paths = make_book(tmp_path, chapters=("a", "b"))
    calls = []
    monkeypatch.setattr(book, "execute", fake_execute(calls))
    book.run_chapters(["a"], paths, {"n": 7}, log=lambda _: None)
    book.run_chapters(["b"], paths, {}, complete=["a", "b"], log=lambda _: None)
    assert calls == [("a", {"n": 7}), ("b", {})]  # a is current with n=7: kept
    paths.source("a").write_text(paths.source("a").read_text() + "# edited\n")
    book.run_chapters(["b"], paths, {}, complete=["a", "b"], log=lambda _: None)
    assert calls[2:] == [("a", {})]  # a is stale: rerun with its defaults


# --- real execution ----------------------------------------------------------------------


def test_execution_runs_in_the_chapter_folder_and_stores_the_key(tmp_path):
    body = "\n".join(
        ["from pathlib import Path", 'Path("figures").mkdir()', 'Path("figures/out.txt").write_text(str(n * scale))']
    )
    paths = make_book(tmp_path, body=body)
    assert book.run_chapters(["chap"], paths, {"n": 5}, log=lambda _: None) == ["chap"]
    assert (paths.chapters / "figures" / "out.txt").read_text() == "5.0"
    record = book.stored_record(paths.executed("chap"))
    assert record["build_key"] == key_of(paths, {"n": 5})
    assert record["parameters"] == {"n": 5}
    assert nbformat.read(paths.executed("chap"), as_version=4).metadata.papermill.input_path == "notebooks/chap.py"
    assert not paths.partial("chap").exists() and not paths.failed("chap").exists()


def test_plumbing_is_hidden_and_the_parameters_and_teaching_cells_are_shown():
    """A reader sees the parameters, the cells tagged show-input and every output; code that
    shows nothing (imports, glue) is removed, code with an output is folded above it."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    glued = new_output("display_data", data={book.GLUED + "text/plain": "1"}, metadata={"scrapbook": {}})
    printed = new_output("stream", name="stdout", text="1\n")
    cells = {
        "parameters": new_code_cell("n = 1", metadata={"tags": ["parameters"]}),
        "injected": new_code_cell("n = 2", metadata={"tags": ["injected-parameters"]}),
        "imports": new_code_cell("import numpy"),
        "glue": new_code_cell("glue('n', n, display=False)", outputs=[glued]),
        "prints": new_code_cell("print(n)", outputs=[glued, printed]),
        "table": new_code_cell("df", outputs=[new_output("execute_result", data={"text/html": "<table/>"})]),
        "teaches": new_code_cell("loss(x)", metadata={"tags": ["show-input"]}),
        "removed": new_code_cell("x", metadata={"tags": ["remove-cell"]}),
    }
    nb = new_notebook(cells=[new_markdown_cell("# Title"), *cells.values()])
    book.hide_plumbing(nb)
    tags = {name: cell.metadata.get("tags", []) for name, cell in cells.items()}
    assert tags == {"parameters": ["parameters"], "injected": ["injected-parameters"],
                    "imports": ["remove-input"], "glue": ["remove-input"], "prints": ["hide-input"],
                    "table": ["hide-input"], "teaches": ["show-input"], "removed": ["remove-cell"]}
    assert "tags" not in nb.cells[0].metadata


def test_failing_chapter_exits_1_removes_the_old_result_and_keeps_the_failed_notebook(tmp_path, capsys):
    paths = make_book(tmp_path, body="1 / (n - n)")
    paths.chapters.mkdir(parents=True)
    paths.executed("chap").write_text(json.dumps({"metadata": {book.METADATA_KEY: {"build_key": "old"}}}))
    status = book.main(["chap", "--no-html"], paths=paths)
    assert status == 1
    err = capsys.readouterr().err
    assert "chapter 'chap' failed" in err and "ZeroDivisionError" in err
    assert not paths.executed("chap").exists()
    assert not paths.partial("chap").exists()
    failed = nbformat.read(paths.failed("chap"), as_version=4)
    errors = [out for cell in failed.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]
    assert any(out.get("ename") == "ZeroDivisionError" for out in errors)


# --- variant pages -----------------------------------------------------------------------


def write_variant(paths: book.BookPaths, page="big", text="chapter: chap\ntitle: Big things\nparameters: {n: 6}\n"):
    paths.variant(page).write_text(text)


def test_variant_page_runs_its_chapter_retitled_with_its_parameters_and_figure_names(tmp_path):
    body = "\n".join(['from pathlib import Path', 'Path("figures").mkdir(exist_ok=True)',
                      'Path("figures/fig-chap-out.txt").write_text(str(n * scale))'])
    paths = make_book(tmp_path, body=body)
    paths.source("chap").write_text("# %% [markdown]\n# # Things\n#\n# See fig-chap-out.\n\n"
                                    + paths.source("chap").read_text())
    write_variant(paths)
    assert book.run_chapters(["big"], paths, {"scale": 2.0}, log=lambda _: None) == ["big"]
    assert (paths.chapters / "figures" / "fig-big-out.txt").read_text() == "12.0"   # n from the variant
    assert not (paths.chapters / "figures" / "fig-chap-out.txt").exists()
    nb = nbformat.read(paths.executed("big"), as_version=4)
    assert nb.cells[0].source == "# Big things\n\nSee fig-big-out."
    assert nb.metadata.papermill.input_path == "notebooks/big.yml"
    record = book.stored_record(paths.executed("big"))
    assert record["parameters"] == {"scale": 2.0} and record["variant_parameters"] == {"n": 6}
    assert book.run_chapters(["big"], paths, {"scale": 2.0}, log=lambda _: None) == []
    write_variant(paths, text="chapter: chap\ntitle: Big things\nparameters: {n: 7}\n")
    assert book.run_chapters(["big"], paths, {"scale": 2.0}, log=lambda _: None) == ["big"]  # the variant changed
    assert (paths.chapters / "figures" / "fig-big-out.txt").read_text() == "14.0"


def test_variant_of_a_chapter_with_underscores_renames_its_hyphenated_figure_ids():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Things\n\nSee fig-my-chap-out."),
                                         nbformat.v4.new_code_cell('publish(fig, "fig-my-chap-out", data, {})')])
    nb = book.as_variant(nb, "my_chap", "my_chap_paper", "Big things")
    assert nb.cells[0].source == "# Big things\n\nSee fig-my-chap-paper-out."
    assert nb.cells[1].source == 'publish(fig, "fig-my-chap-paper-out", data, {})'


def test_figure_is_saved_with_its_data_and_provenance_under_an_id_that_is_its_html_anchor(tmp_path):
    import pandas as pd
    from matplotlib import pyplot as plt

    from memlab.figures import save_figure

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    data = pd.DataFrame({"x": [0, 1], "y": [1, 0]})
    with pytest.raises(ValueError, match="'fig-phase_transition-losses' must look like .* no '_'"):
        save_figure(fig, "fig-phase_transition-losses", data, {"seed": 0}, tmp_path)
    paths = save_figure(fig, "fig-phase-transition-losses", data, {"seed": 0}, tmp_path)
    plt.close(fig)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"fig-phase-transition-losses.{ext}"
                                                          for ext in ("csv", "json", "png", "svg")]
    record = json.loads(paths["json"].read_text())
    assert record["params"] == {"seed": 0} and record["id"] == "fig-phase-transition-losses"
    assert "git_commit" in record and record["packages"]["torch"]
    assert pd.read_csv(paths["csv"]).equals(data)


@pytest.mark.parametrize("text, message", [
    ("chapter: chap\nparameters: {n: 6}\n", "exactly chapter .*, title .* and parameters"),
    ("chapter: nope\ntitle: T\nparameters: {}\n", "chapter 'nope' has no source"),
    ("chapter: chap\ntitle: T\nparameters: {m: 1}\n", "has no parameter 'm'"),
    ("chapter: chap\ntitle: T\nparameters: {n: 1.5}\n", "parameter 'n' must be int"),
    ("chapter: [chap\n", "is not valid YAML"),
])
def test_malformed_variant_page_is_an_error_naming_it(tmp_path, text, message):
    paths = make_book(tmp_path)
    paths.source("chap").write_text("# %% [markdown]\n# # Things\n\n" + paths.source("chap").read_text())
    write_variant(paths, text=text)
    with pytest.raises((ValueError, TypeError), match=message):
        book.prepare("big", paths, {})


# --- the real chapters -------------------------------------------------------------------

CHAPTER_SOURCES = sorted(book.BookPaths.at(Path(__file__).parent.parent).notebooks.glob("*.py"))


@pytest.mark.parametrize("source", CHAPTER_SOURCES, ids=lambda path: path.stem)
def test_every_figure_of_a_chapter_is_shown_with_links_to_its_files(source):
    """Authors cite a figure with its data: each published figure is on the page, which links
    its picture (PNG, SVG), its numbers (CSV) and its provenance (JSON) with {figure-files}."""
    text = source.read_text()
    published = set(re.findall(r'publish\(\w+, "(fig-[^"]+)"', text))
    shown = set(re.findall(r"\{glue:figure\} (fig-\S+)", text))
    assert published == shown, f"{source.name}: published {sorted(published)}, shown {sorted(shown)}"
    unlinked = sorted(shown - set(re.findall(r"\{figure-files\}`(fig-[^`]+)`", text)))
    assert not unlinked, f"{source.name} does not link the files of {unlinked}"


@pytest.mark.parametrize("source", CHAPTER_SOURCES, ids=lambda path: path.stem)
def test_glued_markdown_is_parsed_as_myst_so_its_math_renders(source):
    """myst-nb reads a {glue:md} value as CommonMark unless the role says `name:myst`, and then
    shows $...$ as text (the built book did)."""
    plain = re.findall(r"\{glue:md\}`([^`:]+)`", source.read_text())
    assert not plain, f"{source.name}: write {{glue:md}}`name:myst` for {plain}"


@pytest.mark.parametrize("value, text", [(11121.069499, "11,121"), (0.80125, "0.8013"), (1e9, "1,000,000,000"),
                                         (2e-6, "2e-06"), (999.96, "1,000"), (-1234.5, "-1,234"), (0.8, "0.8"),
                                         (3, "3"), ("uniform", "uniform"), (float("nan"), "nan")])
def test_tables_print_floats_to_four_significant_digits(value, text):
    from memlab.figures import table_text

    assert table_text(value) == text

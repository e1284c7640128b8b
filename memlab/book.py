"""Build the book: execute each chapter with papermill, then render it with Jupyter Book.

Run as ``python -m memlab.book [CHAPTER ...] [-p NAME VALUE ...] [--force] [--no-html]``.

A chapter is a Jupytext percent-format notebook ``notebooks/<name>.py``. The driver
converts it, executes it with papermill in ``book/chapters/`` (so a chapter writes its
figure files under ``figures/``) and writes the executed notebook atomically to
``book/chapters/<name>.ipynb``. That notebook carries a build key in its metadata: a
sha256 over the chapter source, every ``memlab/*.py`` file, the parameters,
``requirements.lock`` and the stored results (``results/``). A chapter is executed again exactly when its key changes (or with
``--force``), so the rendered results are never stale.

A page of the book may also be a *variant*: ``notebooks/<page>.yml`` names a chapter, a
title and parameters, and the page is that chapter executed with them (the paper-scale
pages, read from the results store, are variants of the ci chapters). The variant's title
replaces the chapter's, and its figures are named ``fig-<page>-<slug>`` instead of
``fig-<chapter>-<slug>`` (names written with '-' for '_'), so that both pages can be in the book.

A chapter that fails leaves no ``<name>.ipynb`` (nothing stale is rendered) and is kept
as ``<name>.failed.ipynb`` for debugging. Finally, unless ``--no-html``, the driver runs
``jupyter-book build`` with warnings as errors.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jupytext
import nbformat
import papermill
import yaml

KERNEL_NAME = "python3"
METADATA_KEY = "memlab"
"""Key of the notebook metadata entry that holds the build key and the parameters."""
CHAPTER_DIR = "book/chapters"
"""Folder, relative to the repository root, of the executed chapters (the toc names them there)."""
JUPYTER_BOOK_FLAGS = ("--warningiserror", "--nitpick", "--keep-going", "--all")
"""``--all`` rebuilds every page, so that warnings of unchanged pages are reported too."""

_TYPE_CHECKS = {
    "int": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "float": lambda value: isinstance(value, (int, float)) and not isinstance(value, bool),
    "bool": lambda value: isinstance(value, bool),
    "str": lambda value: isinstance(value, str),
}
"""Annotated parameter types that the driver checks; other annotations are not checked."""

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class ChapterFailed(RuntimeError):
    """A chapter raised during execution; ``failed`` is the notebook kept for debugging."""

    def __init__(self, chapter: str, failed: Path | None, cause: BaseException):
        self.chapter = chapter
        self.failed = failed
        kept = f"kept for debugging: {failed}" if failed else "no notebook was written"
        detail = _ANSI_ESCAPE.sub("", str(cause)).strip()
        super().__init__(f"chapter '{chapter}' failed ({kept})\n{detail}")


@dataclass(frozen=True)
class BookPaths:
    """Where the driver reads sources and writes executed chapters."""

    root: Path  # repository root: holds _toc.yml and _config.yml, and is Jupyter Book's source
    notebooks: Path  # chapter sources notebooks/<name>.py
    chapters: Path  # executed chapters <name>.ipynb; the working directory of each execution
    package: Path  # every *.py file below it enters the build key
    lock: Path  # the pinned environment; enters the build key
    results: Path  # the results store; its stored entries enter the build key

    @classmethod
    def at(cls, root: Path) -> BookPaths:
        """The repository layout below ``root``."""
        root = Path(root).resolve()
        return cls(
            root=root,
            notebooks=root / "notebooks",
            chapters=root / CHAPTER_DIR,
            package=root / "memlab",
            lock=root / "requirements.lock",
            results=root / "results",
        )

    @property
    def toc(self) -> Path:
        return self.root / "_toc.yml"

    def source(self, chapter: str) -> Path:
        return self.notebooks / f"{chapter}.py"

    def variant(self, page: str) -> Path:
        return self.notebooks / f"{page}.yml"

    def executed(self, chapter: str) -> Path:
        return self.chapters / f"{chapter}.ipynb"

    def failed(self, chapter: str) -> Path:
        return self.chapters / f"{chapter}.failed.ipynb"

    def partial(self, chapter: str) -> Path:
        return self.chapters / f".{chapter}.partial.ipynb"


def toc_chapters(toc: Path) -> list[str]:
    """Names of the chapters that ``_toc.yml`` lists under ``book/chapters/``, in order."""
    entries = yaml.safe_load(Path(toc).read_text(encoding="utf-8"))
    names: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            file = node.get("file")
            if isinstance(file, str) and file.startswith(CHAPTER_DIR + "/"):
                names.append(Path(file).stem)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(entries)
    return names


def parse_value(text: str) -> Any:
    """A ``-p NAME VALUE`` value, typed as papermill types it.

    ``True``/``true``, ``False``/``false``, ``None``/``null``; then an int, then a float
    (so ``1e-3`` is a float); then a YAML flow list or mapping (``[1, 2]``, ``{a: 1}``);
    anything else stays a string.
    """
    keywords = {"True": True, "true": True, "False": False, "false": False, "None": None, "null": None}
    if text in keywords:
        return keywords[text]
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    if text.strip()[:1] in ("[", "{"):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"parameter value {text!r} is not a valid YAML list or mapping: {error}") from None
    return text


def read_chapter(source: Path) -> nbformat.NotebookNode:
    """The chapter source converted to a notebook, with the kernel the driver executes it on."""
    if not Path(source).is_file():
        raise FileNotFoundError(f"chapter source {source} does not exist")
    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3", "language": "python"}
    return nb


def declared_parameters(nb: nbformat.NotebookNode) -> dict[str, dict[str, str]]:
    """The parameters of the notebook's ``parameters`` cell: name -> {inferred_type_name, default, help}.

    They are read by papermill (so ``papermill --help-notebook`` shows the same). Papermill
    skips a line it cannot parse, such as one with a second ``=`` in its comment; a name
    that the cell assigns but papermill missed raises ValueError.
    """
    declared = papermill.inspect_notebook(nb)
    missed = [name for name in assigned_parameter_names(nb) if name not in declared]
    if missed:
        raise ValueError(
            f"papermill cannot read the parameter(s) {', '.join(missed)} of the parameters cell; "
            "write one `name: type = value  # help` per line, with no '=' in the comment"
        )
    return declared


def assigned_parameter_names(nb: nbformat.NotebookNode) -> list[str]:
    """Names assigned at the top level of the first cell tagged ``parameters`` (empty if none)."""
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                return []
            names = []
            for statement in tree.body:
                if isinstance(statement, ast.Assign):
                    targets = statement.targets
                else:
                    targets = [getattr(statement, "target", None)]  # AnnAssign, AugAssign
                names += [target.id for target in targets if isinstance(target, ast.Name)]
            return names
    return []


def check_parameters(chapter: str, parameters: Mapping[str, Any], declared: Mapping[str, Mapping[str, str]]) -> None:
    """Raise ValueError for a parameter the chapter does not declare, TypeError for a wrongly typed one."""
    allowed = ", ".join(declared) if declared else "none (it has no cell tagged 'parameters')"
    for name, value in parameters.items():
        if name not in declared:
            raise ValueError(f"chapter '{chapter}' has no parameter '{name}'; its parameters are: {allowed}")
        type_name = declared[name].get("inferred_type_name", "None")
        check = _TYPE_CHECKS.get(type_name)
        if check is not None and not check(value):
            raise TypeError(
                f"chapter '{chapter}' parameter '{name}' must be {type_name} "
                f"(default {declared[name].get('default')}), got {value!r} of type {type(value).__name__}"
            )


def build_key(source: Path, package: Path, lock: Path, parameters: Mapping[str, Any],
              results: Path | None = None, variant: Path | None = None) -> str:
    """sha256 over the chapter source (and the variant file of a variant page), every ``*.py``
    file of the package and of ``benchmarks/`` beside it (the performance appendix runs the
    benchmark script), the parameters, the lock file and the stored results (every
    ``results/<profile>/*.json`` entry but checkpoints; not the ``ci`` profile, which the
    chapters recompute from the code and so adds nothing to the key).

    File contents count, not modification times; the parameters count as canonical JSON,
    so their order does not matter but their types do (``1`` differs from ``1.0``).
    """
    digest = hashlib.sha256()

    def feed(label: str, data: bytes) -> None:
        digest.update(label.encode() + b"\0" + len(data).to_bytes(8, "big") + data)

    feed("source", Path(source).read_bytes())
    if variant is not None:
        feed("variant", Path(variant).read_bytes())
    package = Path(package)
    for folder, label in ((package, "package"), (package.parent / "benchmarks", "benchmarks")):
        for path in sorted(folder.rglob("*.py")) if folder.is_dir() else []:
            if "__pycache__" not in path.parts:
                feed(f"{label}/{path.relative_to(folder).as_posix()}", path.read_bytes())
    feed("parameters", json.dumps(dict(parameters), sort_keys=True, separators=(",", ":")).encode())
    feed("lock", Path(lock).read_bytes())
    if results is not None and Path(results).is_dir():
        for path in sorted(Path(results).glob("*/*.json")):
            if path.parent.name != "ci" and not path.name.endswith(".ckpt.json"):
                feed(f"results/{path.relative_to(results).as_posix()}", path.read_bytes())
    return digest.hexdigest()


def stored_record(executed: Path) -> dict[str, Any] | None:
    """The driver's metadata entry of an executed notebook, or None if absent or unreadable."""
    try:
        nb = json.loads(Path(executed).read_text(encoding="utf-8"))
        record = nb["metadata"][METADATA_KEY]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if isinstance(record, dict) else None


def read_variant(page: str, paths: BookPaths) -> tuple[str, str, dict[str, Any]]:
    """(chapter, title, parameters) of the variant page ``notebooks/<page>.yml``; ValueError if malformed."""
    file = paths.variant(page)
    try:
        spec = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"variant page {file} is not valid YAML: {error}") from None
    fields = {"chapter": str, "title": str, "parameters": dict}
    if not isinstance(spec, dict) or set(spec) != set(fields) or not all(
            isinstance(spec[name], kind) for name, kind in fields.items()):
        raise ValueError(f"variant page {file} must be a mapping with exactly chapter (a chapter name), "
                         f"title (a string) and parameters (a mapping); got {spec!r}")
    if not paths.source(spec["chapter"]).is_file():
        raise ValueError(f"variant page {file}: chapter '{spec['chapter']}' has no source "
                         f"{paths.source(spec['chapter'])}")
    return spec["chapter"], spec["title"], spec["parameters"]


def as_variant(nb: nbformat.NotebookNode, chapter: str, page: str, title: str) -> nbformat.NotebookNode:
    """The chapter's notebook retitled, with its figures fig-<chapter>-* renamed fig-<page>-* (the
    names written with '-' for '_', as figure ids are: see memlab.figures)."""
    first = next((cell for cell in nb.cells if cell.cell_type == "markdown"), None)
    if first is None or not first.source.startswith("# "):
        raise ValueError(f"chapter '{chapter}' must open with a markdown cell '# <title>' to have variant pages")
    first.source = "# " + title + "".join(first.source.partition("\n")[1:])
    for cell in nb.cells:
        cell.source = cell.source.replace(f"fig-{chapter.replace('_', '-')}-", f"fig-{page.replace('_', '-')}-")
    return nb


def page_source(page: str, paths: BookPaths) -> str:
    """The source file of a page, relative to the root: notebooks/<page>.py or .yml."""
    return (paths.source(page) if paths.source(page).is_file() else paths.variant(page)).relative_to(
        paths.root).as_posix()


def prepare(chapter: str, paths: BookPaths, parameters: Mapping[str, Any]) -> tuple[nbformat.NotebookNode, str]:
    """Read and check a page (a chapter or a variant): its notebook and its build key. Raises
    before anything runs. A variant's own parameters are kept in the notebook's metadata; the
    ones given here override them."""
    source, variant, fixed = paths.source(chapter), None, {}
    if not source.is_file() and paths.variant(chapter).is_file():
        variant = paths.variant(chapter)
        base, title, fixed = read_variant(chapter, paths)
        source = paths.source(base)
    if not source.is_file():
        known = sorted({path.stem for path in paths.notebooks.glob("*.py")} |
                       {path.stem for path in paths.notebooks.glob("*.yml")})
        raise ValueError(f"no chapter '{chapter}': {source} does not exist; chapters: {', '.join(known) or 'none'}")
    nb = read_chapter(source)
    if variant is not None:
        nb = as_variant(nb, base, chapter, title)
        nb.metadata[METADATA_KEY] = {"variant_parameters": fixed}
    try:
        declared = declared_parameters(nb)
    except ValueError as error:
        raise ValueError(f"chapter '{chapter}' ({source}): {error}") from None
    check_parameters(chapter, {**fixed, **parameters}, declared)
    return nb, build_key(source, paths.package, paths.lock, parameters, paths.results, variant)


def is_current(chapter: str, paths: BookPaths, key: str) -> bool:
    """Whether the executed notebook of ``chapter`` exists and was built with ``key``."""
    record = stored_record(paths.executed(chapter))
    return record is not None and record.get("build_key") == key


def execute(chapter: str, paths: BookPaths, nb: nbformat.NotebookNode, key: str, parameters: Mapping[str, Any]) -> Path:
    """Execute a prepared chapter with papermill in ``paths.chapters``; return the executed notebook.

    The previous executed copy is removed first; the new one appears only when the whole
    notebook ran. On failure the partial notebook is kept as ``<name>.failed.ipynb`` and
    ChapterFailed is raised.
    """
    paths.chapters.mkdir(parents=True, exist_ok=True)
    executed, failed, partial = paths.executed(chapter), paths.failed(chapter), paths.partial(chapter)
    for stale in (executed, failed, partial):
        stale.unlink(missing_ok=True)
    fixed = nb.metadata.get(METADATA_KEY, {}).get("variant_parameters", {})
    nb.metadata[METADATA_KEY] = {"build_key": key, "parameters": dict(parameters), "source": page_source(chapter, paths)}
    if fixed:
        nb.metadata[METADATA_KEY]["variant_parameters"] = fixed
    previous = os.environ.get(COMMAND_VARIABLE)
    os.environ[COMMAND_VARIABLE] = rerun_command(chapter, parameters)   # the kernel inherits it
    try:
        papermill.execute_notebook(
            nb,
            str(partial),
            parameters={**fixed, **parameters},
            kernel_name=KERNEL_NAME,
            language="python",
            progress_bar=True,
            cwd=str(paths.chapters),
        )
    except BaseException as error:
        kept = None
        if partial.exists():
            _finish(partial, failed, page_source(chapter, paths))
            kept = failed
        if isinstance(error, Exception):
            raise ChapterFailed(chapter, kept, error) from error
        raise
    finally:
        if previous is None:
            os.environ.pop(COMMAND_VARIABLE, None)
        else:
            os.environ[COMMAND_VARIABLE] = previous
    _finish(partial, executed, page_source(chapter, paths))
    return executed


COMMAND_VARIABLE = "MEMLAB_BOOK_COMMAND"
"""Environment variable in which a chapter's kernel finds the command that executes it again
(memlab.figures records it in every figure's provenance)."""


def rerun_command(page: str, parameters: Mapping[str, Any]) -> str:
    """The command line that executes ``page`` with ``parameters`` again (a variant's own
    parameters are in its page), each value written so that parse_value reads it back."""
    words = ["python", "-m", "memlab.book", page]
    for name, value in parameters.items():
        text = value if isinstance(value, str) else json.dumps(value) if isinstance(value, (list, dict)) else repr(value)
        if parse_value(text) != value or type(parse_value(text)) is not type(value):
            raise ValueError(f"parameter {name}={value!r} cannot be written on a command line")
        words += ["-p", name, text]
    return shlex.join(words)


def _finish(partial: Path, destination: Path, source: str) -> None:
    """Move the notebook papermill wrote to ``destination`` in one step (os.replace), its
    plumbing hidden (hide_plumbing).

    Papermill records its input in the metadata; given a notebook object, it stores the
    whole notebook there, which is replaced by the source path.
    """
    try:
        nb = nbformat.read(partial, as_version=4)
    except (OSError, ValueError):
        pass  # unreadable (papermill stopped mid-write): keep it as it is for debugging
    else:
        record = nb.metadata.get("papermill", {})
        record["input_path"] = source
        record["output_path"] = f"{CHAPTER_DIR}/{destination.name}"
        hide_plumbing(nb)
        nbformat.write(nb, partial)
    os.replace(partial, destination)


SHOWN_TAGS = ("parameters", "injected-parameters", "show-input")
"""Tags of the code cells that the page shows: the parameters, and the cells that teach."""
GLUED = "application/papermill.record/"
"""Prefix of the mime types of a value glued with display=False, which the page does not show."""


def hide_plumbing(nb: nbformat.NotebookNode) -> None:
    """Tag the code a reader need not read: a code cell that is not tagged with one of
    SHOWN_TAGS (or already tagged hide-*/remove-*) gets ``hide-input`` (its code folded under
    a toggle above its output) when it shows an output, ``remove-input`` when it shows none
    (imports, glue calls, checks). The source file keeps every line."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.setdefault("tags", [])
        if set(SHOWN_TAGS) & set(tags) or any(tag.startswith(("hide-", "remove-")) for tag in tags):
            continue
        shows = any(output.get("output_type") not in ("display_data", "execute_result") or not all(
            mime.startswith(GLUED) for mime in output.get("data", {})) for output in cell.get("outputs", []))
        tags.append("hide-input" if shows else "remove-input")


def run_chapters(
    selected: Sequence[str],
    paths: BookPaths,
    parameters: Mapping[str, Any],
    force: bool = False,
    complete: Sequence[str] = (),
    log: Callable[[str], None] = lambda line: print(line, flush=True),
) -> list[str]:
    """Bring chapters up to date; return the names of those that were executed.

    ``selected`` chapters get ``parameters`` (and are re-executed when ``force``).
    ``complete`` chapters that are not selected only need a current executed copy: one
    whose key matches its stored parameters is kept, anything else is executed with the
    chapter's default parameters. Every chapter is checked before any runs.
    """
    plans = []
    for chapter in selected:
        nb, key = prepare(chapter, paths, parameters)
        plans.append((chapter, nb, key, dict(parameters), force))
    for chapter in complete:
        if chapter in selected:
            continue
        record = stored_record(paths.executed(chapter))
        if record is not None:
            stored = record.get("parameters") or {}
            try:
                nb, key = prepare(chapter, paths, stored)
            except (ValueError, TypeError):
                pass  # the stored parameters no longer fit the chapter: run it with its defaults
            else:
                if is_current(chapter, paths, key):
                    plans.append((chapter, nb, key, stored, False))
                    continue
        nb, key = prepare(chapter, paths, {})
        plans.append((chapter, nb, key, {}, False))

    ran = []
    for chapter, nb, key, chapter_parameters, chapter_force in plans:
        described = " ".join(f"{name}={value!r}" for name, value in chapter_parameters.items()) or "default parameters"
        if not chapter_force and is_current(chapter, paths, key):
            log(f"memlab.book: {chapter}: up to date ({described}), not executed")
            continue
        log(f"memlab.book: {chapter}: executing with {described}")
        execute(chapter, paths, nb, key, chapter_parameters)
        ran.append(chapter)
    return ran


def build_html(root: Path) -> int:
    """Run ``jupyter-book build`` on ``root`` with warnings as errors; return its exit status."""
    beside = Path(sys.executable).with_name("jupyter-book")
    program = str(beside) if beside.exists() else shutil.which("jupyter-book")
    if program is None:
        raise FileNotFoundError("jupyter-book is not installed in this environment (see requirements.lock)")
    return subprocess.run([program, "build", str(root), *JUPYTER_BOOK_FLAGS], check=False).returncode


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m memlab.book",
        description="Execute the book's chapters (only those whose sources, parameters or environment "
        "changed) and build the HTML book in _build/html.",
    )
    parser.add_argument(
        "chapters", nargs="*", metavar="CHAPTER", help="chapters to execute (default: every chapter of _toc.yml)"
    )
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a chapter parameter, typed as papermill types it (int, float, True/False, None, "
        "YAML list, else string); applies to every chapter executed by this command",
    )
    parser.add_argument("--force", action="store_true", help="execute the chapters even if they are up to date")
    parser.add_argument("--no-html", action="store_true", help="execute only, do not run jupyter-book")
    parser.add_argument(
        "--show-parameters", action="store_true", help="list each chapter's parameters and exit, executing nothing"
    )
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root (default: the current folder)")
    return parser.parse_args(argv)


def show_parameters(chapters: Sequence[str], paths: BookPaths) -> None:
    for chapter in chapters:
        nb, _ = prepare(chapter, paths, {})
        fixed = nb.metadata.get(METADATA_KEY, {}).get("variant_parameters", {})
        print(f"{chapter} ({page_source(chapter, paths)}):")
        declared = declared_parameters(nb)
        for name, spec in declared.items():
            default = repr(fixed[name]) if name in fixed else spec["default"]
            print(f"  {name}: {spec['inferred_type_name']} = {default}  # {spec['help']}")
        if not declared:
            print("  (no parameters)")


def main(argv: Sequence[str] | None = None, paths: BookPaths | None = None) -> int:
    """The command line; returns the exit status (0 built, 1 a chapter or the HTML build failed, 2 bad input)."""
    args = parse_args(argv)
    paths = paths or BookPaths.at(args.root)
    toc = toc_chapters(paths.toc) if paths.toc.exists() else []
    selected = list(args.chapters) or toc
    try:
        parameters = {name: parse_value(value) for name, value in args.parameter}
        if args.show_parameters:
            show_parameters(selected, paths)
            return 0
        complete = [] if args.no_html else toc
        run_chapters(selected, paths, parameters, force=args.force, complete=complete)
        if args.no_html:
            return 0
        status = build_html(paths.root)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"memlab.book: error: {error}", file=sys.stderr)
        return 2
    except ChapterFailed as error:
        print(f"memlab.book: {error}", file=sys.stderr)
        return 1
    if status != 0:
        print(f"memlab.book: jupyter-book build failed (exit status {status})", file=sys.stderr)
        return 1
    print(f"memlab.book: book built in {paths.root / '_build' / 'html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

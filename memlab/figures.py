"""The book's one figure style, and saving a figure with its data and provenance.

Every figure has a stable id `fig-<chapter>-<slug>`, the chapter's name written with '-' for '_'
(fig-phase-transition-losses): Sphinx writes HTML anchors that way, so the id is at once the
files' name and the figure's anchor in its page. It is written as
    <id>.png, <id>.svg   the picture (SVG without a date, so reruns give the same file)
    <id>.csv             the plotted data
    <id>.json            parameters, seed, profile, git commit, package versions and the command that reruns it
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

import matplotlib
import matplotlib.pyplot
import pandas as pd
import seaborn as sns

FIG_ID = re.compile(r"^fig-[a-z0-9]+(?:-[a-z0-9]+)+$")
PACKAGES = ("memlab", "torch", "numpy", "matplotlib", "seaborn", "pandas", "papermill", "jupyter-book")


def use_style() -> None:
    """The one seaborn style of the whole book, and its tables' numbers (table_text)."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    matplotlib.rcParams.update({"figure.dpi": 110, "savefig.dpi": 200, "savefig.bbox": "tight",
                                "svg.hashsalt": "memlab", "figure.figsize": (6.4, 4.0)})
    pd.set_option("display.float_format", table_text)


def table_text(value) -> str:
    """A value as the book's tables print it: a float to 4 significant digits, with thousands
    separated from 1,000 on (11121.069 -> '11,121', 0.80125 -> '0.8013', 1e9 -> '1,000,000,000',
    2e-06 -> '2e-06'); anything else as str()."""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:,.0f}" if abs(value) >= 999.95 else f"{value:.4g}"
    return str(value)


def git_commit() -> str:
    """The current git commit, suffixed '-dirty' when the work tree has changes; 'unknown' outside git."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def git_date() -> str | None:
    """The date (YYYY-MM-DD) of the current git commit; None outside git."""
    try:
        return subprocess.run(["git", "show", "-s", "--format=%cs", "HEAD"], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def provenance() -> dict:
    """Git commit and its date, Python and package versions."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"git_commit": git_commit(), "git_date": git_date(), "python": platform.python_version(), "packages": versions}


def profile_of(params: dict) -> str | None:
    """The name of the profile (or sweep) that made a figure, from its parameters: params["profile"]
    (a name, or a profile's to_dict()), else params["sweep"]["name"]; None for a chapter without profiles."""
    for key in ("profile", "sweep"):
        value = params.get(key)
        if isinstance(value, dict):
            value = value.get("name")
        if isinstance(value, str):
            return value
    return None


def save_figure(fig, fig_id: str, data: pd.DataFrame, params: dict, outdir: str | Path = "figures") -> dict[str, Path]:
    """Write fig as <outdir>/<fig_id>.{png,svg,csv,json}; returns the paths by suffix.

    data: the plotted numbers, one row per plotted point; params: everything that
    determined them (JSON-serialisable, the seed included).
    """
    if not FIG_ID.match(fig_id):
        raise ValueError(f"figure id {fig_id!r} must look like 'fig-<chapter>-<slug>' (lowercase letters, digits "
                         "and '-', no '_': the HTML anchor must be the id itself)")
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = {suffix: outdir / f"{fig_id}.{suffix}" for suffix in ("png", "svg", "csv", "json")}
    fig.savefig(paths["png"])
    fig.savefig(paths["svg"], metadata={"Date": None})
    data.to_csv(paths["csv"], index=False)
    record = {"id": fig_id, "params": params, "profile": profile_of(params),
              "command": os.environ.get("MEMLAB_BOOK_COMMAND"),  # set by memlab.book: the command that reruns it
              **provenance(), "files": {k: p.name for k, p in paths.items()}}
    paths["json"].write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return paths


def publish(fig, fig_id: str, data: pd.DataFrame, params: dict, outdir: str | Path = "figures") -> None:
    """save_figure, then glue the figure under its id for a `{glue:figure}` in the chapter."""
    from myst_nb import glue

    save_figure(fig, fig_id, data, params, outdir)
    glue(fig_id, fig, display=False)
    matplotlib.pyplot.close(fig)

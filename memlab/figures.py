"""The book's one figure style, and saving a figure with its data and provenance.

Every figure has a stable id `fig-<chapter>-<slug>`, the chapter's name written with '-' for '_'
(fig-phase-transition-losses): Sphinx writes HTML anchors that way, so the id is at once the
files' name and the figure's anchor in its page. It is written as
    <id>.png, <id>.svg   the picture (SVG without a date, so reruns give the same file)
    <id>.csv             the plotted data
    <id>.json            parameters, seed, git commit and package versions
"""

from __future__ import annotations

import json
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
    """The one seaborn style of the whole book."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    matplotlib.rcParams.update({"figure.dpi": 110, "savefig.dpi": 200, "savefig.bbox": "tight",
                                "svg.hashsalt": "memlab", "figure.figsize": (6.4, 4.0)})


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


def provenance() -> dict:
    """Git commit, Python and package versions."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"git_commit": git_commit(), "python": platform.python_version(), "packages": versions}


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
    record = {"id": fig_id, "params": params, **provenance(), "files": {k: p.name for k, p in paths.items()}}
    paths["json"].write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return paths


def publish(fig, fig_id: str, data: pd.DataFrame, params: dict, outdir: str | Path = "figures") -> None:
    """save_figure, then glue the figure under its id for a `{glue:figure}` in the chapter."""
    from myst_nb import glue

    save_figure(fig, fig_id, data, params, outdir)
    glue(fig_id, fig, display=False)
    matplotlib.pyplot.close(fig)

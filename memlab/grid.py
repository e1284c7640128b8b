"""The capacities M at which a setting is trained to locate its transition (SPEC 6, 7).

Two searches locate M_pt, the first M whose memorization ratio is >= 1/2:
- the paper's two-stage grid: the coarse grid M = N/10, ..., N, then about 10 more M inside the
  transition band (`coarse_grid`, `transition_band`, `refine_grid`);
- an adaptive search (`next_stage`): stages of a few models, each splitting the bracket
  (the largest M known below 1/2, the smallest known at or above it) until it is one M wide.
  Its stages take coarse-grid capacities while the bracket holds some (so it reuses, and is
  reused by, the two-stage grid's models), then any M. It assumes the ratio rises with M (true
  of every stored grid up to its binomial noise: see tests/test_grid.py) and trains far fewer
  and smaller models: it never trains the coarse grid above the transition nor the band below it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

MEMORIZES = 0.5
"""A model memorizes when its memorization ratio is >= 1/2; M_pt is the first such M (SPEC 7)."""
BAND = (0.1, 0.9)
"""The transition starts where the ratio first reaches 0.1 and ends where it reaches 0.9 (SPEC 6)."""


def coarse_grid(N: int, n: int = 10) -> list[int]:
    """M = N/n, 2N/n, ..., N (rounded, distinct)."""
    return sorted({max(1, round(N * j / n)) for j in range(1, n + 1)})


def transition_band(Ms: Sequence[int], ratios: Sequence[float]) -> tuple[int, int]:
    """(start, end) of the transition on a coarse grid (SPEC 6).

    start: the last M with ratio < 0.1 before the first M with ratio >= 0.1 (0 if the first M
    already reaches it); end: the first M with ratio >= 0.9 after one below 0.9 (the largest
    M if none reaches it).
    """
    lo, hi = BAND
    first_up = next((i for i, r in enumerate(ratios) if r >= lo), len(Ms) - 1)
    start = Ms[first_up - 1] if first_up > 0 else 0
    end = next((Ms[i] for i in range(first_up, len(Ms)) if ratios[i] >= hi), Ms[-1])
    return start, end


def refine_grid(start: int, end: int, exclude: Sequence[int], n: int = 10) -> list[int]:
    """About n capacities evenly spaced strictly inside (start, end), none of them in exclude."""
    inside = np.linspace(start, end, n + 2)[1:-1]
    return sorted({int(round(m)) for m in inside} - set(exclude) - {start, end})


def first_memorizing(Ms: Sequence[int], ratios: Sequence[float]) -> int | None:
    """M_pt: the first M whose memorization ratio is >= 1/2, or None."""
    return next((M for M, r in sorted(zip(Ms, ratios)) if r >= MEMORIZES), None)


def bracket(known: Mapping[int, float], N: int) -> tuple[int, int]:
    """(lo, hi): hi the smallest known M whose ratio is >= 1/2 (N + 1 if none), lo the largest
    known M below hi (0 if none: no component, nothing memorized). M_pt lies in (lo, hi]."""
    hi = min((M for M, r in known.items() if r >= MEMORIZES), default=N + 1)
    lo = max((M for M in known if M < hi), default=0)
    return lo, hi


def next_stage(known: Mapping[int, float], N: int, per_stage: int = 1,
               allowed: Sequence[int] | None = None) -> list[int]:
    """The adaptive search's next capacities to train, given the ratios `known` ({M: ratio}) of
    the models trained so far; [] when it is done (then M_pt = `adaptive_pt(known, N)`).

    The bracket (lo, hi) of `bracket` is split into per_stage + 1 parts at capacities of the
    coarse grid while it holds some, then of `allowed` (default every M in 1..N): a k-ary
    search that ends when no allowed capacity lies strictly inside the bracket.
    """
    if isinstance(per_stage, bool) or not isinstance(per_stage, int) or per_stage < 1:
        raise ValueError(f"per_stage={per_stage!r} must be a positive int (models trained per stage)")
    if isinstance(N, bool) or not isinstance(N, int) or N < 1:
        raise ValueError(f"N={N!r} must be a positive int")
    out = sorted(M for M in known if not 1 <= M <= N)
    if out:
        raise ValueError(f"known capacities {out} must lie in 1..N={N}")
    lo, hi = bracket(known, N)
    allowed = range(1, N + 1) if allowed is None else sorted(set(allowed))
    for level in (set(coarse_grid(N)) & set(allowed), allowed):
        inside = [M for M in sorted(level) if lo < M < hi and M not in known]
        if inside:
            picks = np.linspace(0, len(inside) - 1, per_stage + 2)[1:-1] if len(inside) > per_stage else None
            return inside if picks is None else sorted({inside[int(round(i))] for i in picks})
    return []


def adaptive_pt(known: Mapping[int, float], N: int) -> int | None:
    """M_pt of a finished adaptive search: the top of its bracket (None if no M up to N memorizes)."""
    hi = bracket(known, N)[1]
    return hi if hi <= N else None


def adaptive_search(ratio, N: int, per_stage: int = 1, allowed: Sequence[int] | None = None,
                    known: Mapping[int, float] | None = None) -> tuple[int | None, list[list[int]]]:
    """Run the adaptive search against `ratio(Ms) -> ratios` (a stage at a time): (M_pt, stages)."""
    known, stages = dict(known or {}), []
    while stage := next_stage(known, N, per_stage, allowed):
        known.update(zip(stage, ratio(stage)))
        stages.append(stage)
    return adaptive_pt(known, N), stages

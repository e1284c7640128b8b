"""The capacity searches: the adaptive search finds the two-stage grid's M_pt, for less training."""

import pytest

from memlab.grid import adaptive_pt, adaptive_search, bracket, coarse_grid, first_memorizing, next_stage
from memlab.sweep import stored_grids


@pytest.mark.parametrize("N", [1, 7, 20, 50, 200])
@pytest.mark.parametrize("per_stage", [1, 2, 3])
def test_the_adaptive_search_finds_every_threshold_of_a_step(N, per_stage):
    """A ratio that jumps from 0 to 1 at T: the search returns T (None for T > N), never trains an
    M twice, and takes about log_(per_stage + 1)(N) stages."""
    for T in range(1, N + 2):
        M_pt, stages = adaptive_search(lambda Ms: [float(M >= T) for M in Ms], N, per_stage)
        trained = [M for stage in stages for M in stage]
        assert M_pt == (T if T <= N else None)
        assert len(trained) == len(set(trained)) and all(1 <= M <= N for M in trained)
        assert all(len(stage) <= per_stage for stage in stages[:-1])
        assert len(stages) <= 2 * N.bit_length()          # coarse then fine: each about log2 of its points


def test_the_search_starts_on_the_coarse_grid_and_reuses_what_is_known():
    assert next_stage({}, 200) == [100]                        # the middle of the coarse grid
    assert next_stage({}, 200, per_stage=2) == [80, 140]
    assert bracket({100: 0.0, 160: 0.6, 180: 0.9}, 200) == (100, 160)
    assert next_stage({100: 0.0, 160: 0.6, 180: 0.9}, 200) == [120]     # the lower of two coarse M inside
    assert next_stage({140: 0.2, 160: 0.6}, 200) == [150]      # no coarse M inside: any M
    assert next_stage({149: 0.2, 150: 0.6}, 200) == [] and adaptive_pt({149: 0.2, 150: 0.6}, 200) == 150
    assert next_stage({200: 0.4}, 200) == [] and adaptive_pt({200: 0.4}, 200) is None
    assert next_stage({140: 0.2, 160: 0.6}, 200, allowed=[140, 155, 160]) == [155]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="per_stage=0 must be a positive int"):
        next_stage({}, 50, per_stage=0)
    with pytest.raises(ValueError, match=r"known capacities \[51\] must lie in 1..N=50"):
        next_stage({51: 1.0}, 50)
    with pytest.raises(ValueError, match="N=0 must be a positive int"):
        next_stage({}, 0)


def test_on_every_stored_grid_the_adaptive_search_finds_its_M_pt_for_at_most_half_the_training():
    """Run against the stored models alone (allowed: the M the two-stage grid trained), the search
    returns the grid's M_pt, training at most half its model-steps (the sum of the M trained:
    0.25-0.43 of it on the 13 grids stored in December)."""
    grids = stored_grids()
    assert len(grids) >= 13
    for what, N, grid in ((g["run"], g["N"], g["ratios"]) for g in grids):
        M_pt, stages = adaptive_search(lambda Ms: [grid[M] for M in Ms], N, allowed=list(grid))
        assert M_pt == first_memorizing(list(grid), list(grid.values())), what
        assert sum(map(sum, stages)) <= 0.5 * sum(grid), what
        assert set(coarse_grid(N)) <= set(grid), what

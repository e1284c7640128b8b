"""Memorization rule, its interval, and the softmax-sparsity lemmas."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memlab.metrics import (effective_number, memorization_ratio, memorized, set_deviation, set_gap,
                            softmax_deviation, top_gap, wilson_interval)
from memlab.theory import set_bound, softmax_bound


def test_memorization_rule_at_its_boundary():
    """Training points 0 and 4 on a line (in d = 2): x = (1, 0) has d1 = 1 = d2 / 9 exactly."""
    train = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 50.0]], dtype=torch.float64)
    x = torch.tensor([[1.0, 0.0], [1.001, 0.0], [0.999, 0.0], [2.0, 0.0], [4.0, 0.0]], dtype=torch.float64)
    assert memorized(x, train).tolist() == [True, False, True, False, True]


def test_wilson_interval_closed_form_and_coverage(gen):
    zq = 1.959963984540054
    lo, hi = wilson_interval(torch.tensor(0), 50)
    assert float(lo) == 0.0 and math.isclose(float(hi), zq**2 / (50 + zq**2), rel_tol=1e-12)
    # coverage of the 95% interval for p = 0.3, n = 50 over 20,000 experiments: 0.95 +- 0.01
    k = (torch.rand(20_000, 50, generator=gen, dtype=torch.float64) < 0.3).sum(1)
    lo, hi = wilson_interval(k, 50)
    coverage = float(((lo <= 0.3) & (0.3 <= hi)).double().mean())
    assert 0.93 <= coverage <= 0.97
    with pytest.raises(ValueError, match="level=1.5 must lie in"):
        wilson_interval(torch.tensor(1), 10, 1.5)


def test_memorization_ratio_counts_and_interval():
    train = torch.tensor([[0.0], [10.0]], dtype=torch.float64)
    x = torch.tensor([[0.0], [10.0], [5.0], [4.0]], dtype=torch.float64)   # 2 of 4 memorized
    ratio, lo, hi = memorization_ratio(x, train)
    assert float(ratio) == 0.5 and float(lo) < 0.5 < float(hi)


scores = st.lists(st.floats(-30, 30, allow_nan=False), min_size=2, max_size=40)


@settings(max_examples=300, deadline=None)
@given(v=scores, T=st.floats(0.01, 10.0), p=st.sampled_from([1.0, 2.0, math.inf]))
def test_lemma_d1_bound_holds(v, T, p):
    v = torch.tensor(v, dtype=torch.float64)
    bound = softmax_bound(top_gap(v), v.numel(), T)
    assert float(softmax_deviation(v, T, p)) <= float(bound) * (1 + 1e-9) + 1e-12


@settings(max_examples=300, deadline=None)
@given(v=scores, T=st.floats(0.01, 10.0), p=st.sampled_from([1.0, 2.0, math.inf]), data=st.data())
def test_lemma_d2_set_bound_holds(v, T, p, data):
    v = torch.tensor(v, dtype=torch.float64)
    n = v.numel()
    members = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    S = torch.tensor(members)
    S[v.argmax()] = True
    if bool(S.all()):
        return
    bound = set_bound(set_gap(v, S), n, int(S.sum()), p, T)
    assert float(set_deviation(v, S, T, p)) <= float(bound) * (1 + 1e-9) + 1e-12


def test_lemma_d1_is_tight_for_two_entries():
    """n = 2, gap g: ||softmax - e_1||_1 = 2/(1 + e^g), below the bound 2 e^-g by a factor 1/(1 + e^-g)."""
    g = torch.tensor(10.0, dtype=torch.float64)
    v = torch.stack([g, torch.zeros_like(g)])
    ratio = float(softmax_deviation(v, 1.0, 1) / softmax_bound(g, 2))
    assert math.isclose(ratio, 1 / (1 + math.exp(-10)), rel_tol=1e-9)


def test_effective_number():
    assert math.isclose(float(effective_number(torch.full((7,), 1 / 7, dtype=torch.float64))), 7.0, rel_tol=1e-12)
    assert float(effective_number(torch.tensor([1.0, 0.0, 0.0]))) == 1.0


def test_near_counts_follow_the_one_third_rule():
    """Training points at 0 and 10 on a line, true means at 4 and 20: a mean at 0.1 is near a
    training point, one at 4.2 near a true mean, one at 2 (2 from the point, 2 from the mean) near
    neither; a rule of 1/2 instead counts 1.0 (1 from 0, 3 from 4, 9 from 10) near the point."""
    from memlab.metrics import near_counts
    train = torch.tensor([[0.0], [10.0]], dtype=torch.float64)
    true = torch.tensor([[4.0], [20.0]], dtype=torch.float64)
    means = torch.tensor([[0.1], [4.2], [2.0], [1.0]], dtype=torch.float64)
    assert near_counts(means, train, true) == (1, 1)
    assert near_counts(means, train, true, ratio=1 / 2) == (2, 1)
    assert near_counts(means[:1], train, true[:1]) == (1, 0)      # one true mean: no runner-up

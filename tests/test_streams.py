import itertools

import pytest
import torch

from memlab.streams import HASHED, generator, stream_seed


def test_training_streams_keep_the_seeds_the_stored_models_were_trained_with():
    """The formulas the stored models were trained with (before the streams had names)."""
    for seed, M, step in itertools.product((0, 1, 7), (2, 20, 200), (0, 1, 49_999)):
        assert stream_seed(seed, "data") == seed
        assert stream_seed(seed, "init", M) == seed * 1_000_003 + M
        assert torch.equal(torch.rand(4, generator=generator(seed, "train_noise", step)),
                           torch.rand(4, generator=torch.Generator().manual_seed(seed * 1_000_003 + 7919 * step + 1)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_two_named_streams_of_a_seed_draw_the_same(seed):
    """The first draws of every named stream of one seed (init for M = 2..400, the first 200 training
    steps, the hashed streams with and without an index) are pairwise different. (init at M = 1 and
    train_noise at step 0 share a seed by their legacy formulas: no stored model has M = 1.)"""
    names = [("data",)] + [("init", M) for M in range(2, 401)] + [("train_noise", k) for k in range(200)]
    names += [(name,) for name in HASHED] + [(name, i) for name in HASHED for i in range(3)]
    first = {tuple(torch.rand(3, generator=generator(seed, *name)).tolist()): name for name in names}
    assert len(first) == len(names)
    assert stream_seed(seed, "init", 1) == stream_seed(seed, "train_noise", 0)   # the documented exception


def test_bad_streams_are_refused_by_name():
    with pytest.raises(ValueError, match="'ddim_starts' must be one of"):
        stream_seed(0, "ddim_starts")
    with pytest.raises(ValueError, match="seed=-1 must be a non-negative int"):
        stream_seed(-1, "data")
    with pytest.raises(ValueError, match="'init' takes one index"):
        stream_seed(0, "init")

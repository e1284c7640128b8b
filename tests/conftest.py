import pytest
import torch

from memlab.gmm import make_problem


@pytest.fixture
def gen():
    """A fresh seeded generator per test: tests are deterministic."""
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def paper_problem():
    """The paper's main setting N=200, d=50, K=12 (float64)."""
    return make_problem(200, 50, 12, torch.Generator().manual_seed(0))

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


def pytest_addoption(parser):
    parser.addoption("--built-book", metavar="HTML", default=None,
                     help="the HTML folder of a built book (make book: _build/html) for the tests of "
                     "tests/built, which .ci/run runs after the build; they are skipped without it")

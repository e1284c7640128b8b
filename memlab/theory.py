"""The paper's approximations, as closed forms (SPEC 8).

- Theorem 3.1, generalizing excess:  E[L_t(ideal) - L_t(mem)] ~ d var / (psi_t var + 1).
- Theorem 3.2, partial memorization: E[L_t(pmem_M) - L_t(mem)] ~ C (1 - M/N) d var,
  1 <= C <= 2 (the paper's figures use C = 2, its code C = 1).
- Eq. 21, the crossover of the two under a weighting lambda:
  M*/N = 1 - E_t[lambda / (psi_t var + 1)] / (C E_t[lambda]).
- Lemmas D.1/D.2, softmax sparsity: ||softmax(v/T) - e_k||_p <= 2 (n-1) exp(-gamma/T), and
  restricting the softmax to a set S that holds the maximum changes it by at most
  (1 + |S|)^(1/p) (n - |S|) exp(-gamma_S / T).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from memlab.schedule import psi


def generalizing_excess(t: Tensor, d: int, var: float = 1.0) -> Tensor:
    """Theorem 3.1: d var / (psi_t var + 1), same shape as t (x0 units)."""
    return d * var / (psi(t) * var + 1)


def memorizing_excess(m_ratio: Tensor | float, d: int, C: float, var: float = 1.0) -> Tensor:
    """Theorem 3.2: C (1 - M/N) d var, same shape as m_ratio = M/N (x0 units, any t)."""
    return C * (1 - torch.as_tensor(m_ratio, dtype=torch.float64)) * d * var


def crossover(lam: Tensor, times: Tensor, C: float, var: float = 1.0) -> Tensor:
    """Eq. 21: the predicted M*/N = 1 - E_t[lambda/(psi var + 1)] / (C E_t[lambda]).

    lam, times: [T] the weighting on the grid. d cancels, so M* is linear in N.
    """
    if not C > 0:
        raise ValueError(f"C={C} must be > 0")
    if bool((lam < 0).any()) or not bool((lam > 0).any()):
        raise ValueError("the weighting lambda must be >= 0 and not all zero")
    return 1 - (lam / (psi(times) * var + 1)).mean() / (C * lam.mean())


def _check_p(p: float) -> None:
    if not p >= 1:
        raise ValueError(f"p={p} must be >= 1 (math.inf allowed)")


def softmax_bound(gap: Tensor, n: int, T: float = 1.0) -> Tensor:
    """Lemma D.1: 2 (n - 1) exp(-gap / T), a bound on ||softmax(v/T) - e_k||_p for all p >= 1.

    gap: the margin between the largest and second-largest entry of v; n: its length.
    """
    return 2 * (n - 1) * torch.exp(-gap / T)


def set_bound(gap_S: Tensor, n: int, size: int | Tensor, p: float, T: float = 1.0) -> Tensor:
    """Lemma D.2: (1 + |S|)^(1/p) (n - |S|) exp(-gap_S / T).

    Bounds ||softmax(v/T) - softmax restricted to S||_p, where S (|S| = size) holds the
    maximum of v and gap_S = max_S v - max_{not S} v; size may be a tensor of sizes (one per row).
    """
    _check_p(p)
    return (1 + size) ** (0.0 if math.isinf(p) else 1 / p) * (n - size) * torch.exp(-gap_S / T)

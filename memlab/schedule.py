"""The forward process and its time grid: the only home of the time convention.

SPEC section 3: X_t = alpha_t X_0 + sigma_t Z with alpha_t = sqrt(1 - t^2), sigma_t = t,
and the signal-to-noise ratio psi_t = alpha_t^2 / sigma_t^2. One 26-point grid,
t = 0.999 ... 0.001, serves training, sampling and every loss plot.
"""

from __future__ import annotations

import torch
from torch import Tensor

T_MAX = 0.999
T_MIN = 0.001
GRID_SIZE = 26
REPRESENTATIVE_INDEX = 16
"""Grid index (counted from t = 0.999) of "the representative time" t = 0.3603 of the loss plots."""


def check_times(t: Tensor) -> None:
    """Raise ValueError unless every time lies in the open interval (0, 1)."""
    if not torch.is_tensor(t):
        raise TypeError(f"times must be a torch.Tensor, got {type(t).__name__}")
    if t.numel() and not bool(((t > 0) & (t < 1)).all()):
        bad = t[~((t > 0) & (t < 1))].flatten()[0].item()
        raise ValueError(f"time t={bad} is outside the open interval (0, 1) of the forward process")


def alpha(t: Tensor) -> Tensor:
    """alpha_t = sqrt(1 - t^2), the signal scale; same shape as t."""
    return torch.sqrt(1 - t**2)


def sigma(t: Tensor) -> Tensor:
    """sigma_t = t, the noise scale; same shape as t."""
    return t


def psi(t: Tensor) -> Tensor:
    """psi_t = alpha_t^2 / sigma_t^2, the signal-to-noise ratio; same shape as t."""
    return (1 - t**2) / t**2


def time_grid(dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> Tensor:
    """The 26 grid times [T], descending from 0.999 to 0.001 (linspace reversed)."""
    return torch.linspace(T_MIN, T_MAX, GRID_SIZE, dtype=dtype, device=device).flip(0)


def representative_time(dtype: torch.dtype = torch.float64) -> Tensor:
    """The representative time t = grid[16] = 0.3603 (psi = 6.704), a 0-dim tensor."""
    return time_grid(dtype)[REPRESENTATIVE_INDEX]


def noisy(x0: Tensor, t: Tensor, z: Tensor) -> Tensor:
    """x_t = alpha_t x0 + sigma_t z; t broadcasts against x0[..., 0] (trailing axis d)."""
    return alpha(t)[..., None] * x0 + sigma(t)[..., None] * z

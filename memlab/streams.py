"""The named random streams of a seed: the one place every generator of the library and the chapters comes from.

A stream is named by (seed, name, index...). The training streams keep the integer seeds they had
when the stored models were trained (so those models stay valid); every other stream is seeded
from a hash of (seed, name, index), so no two named streams of a seed share their draws.

- data:        the true means, training and held-out sets (`Setting.problem`): seed
- init:        model M's initial parameters: seed * 1_000_003 + M
- train_noise: training step k's times and noise, shared by all models: seed * 1_000_003 + 7919 k + 1
- the rest (evaluation and the chapters' Monte Carlo draws): sha256 of (seed, name, index)
"""

from __future__ import annotations

import hashlib

import torch

LEGACY = ("data", "init", "train_noise")
HASHED = ("ddim", "train_loss", "test_loss",   # the evaluation of a trained model (memlab.evaluate)
          "reference_loss",                    # Monte Carlo losses of reference denoisers (ideal, pmem_M, ...)
          "toy", "vectors", "draws")           # chapter-only draws: toy samples, random score vectors, extra draws
STREAMS = LEGACY + HASHED


def stream_seed(seed: int, name: str, *index: int) -> int:
    """The integer seed of stream `name` of `seed` (index: M for init, the step for train_noise)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative int")
    if name not in STREAMS:
        raise ValueError(f"stream {name!r} must be one of {STREAMS}")
    if name == "data" and not index:
        return seed
    if name == "init" and len(index) == 1:
        return seed * 1_000_003 + index[0]
    if name == "train_noise" and len(index) == 1:
        return seed * 1_000_003 + 7919 * index[0] + 1
    if name in LEGACY:
        raise ValueError(f"stream {name!r} takes {'no index' if name == 'data' else 'one index'}, got {index}")
    digest = hashlib.sha256(repr((seed, name, *index)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, name: str, *index: int) -> torch.Generator:
    """A fresh CPU torch.Generator for stream `name` of `seed` (see stream_seed)."""
    return torch.Generator().manual_seed(stream_seed(seed, name, *index))

"""scikit-learn's bundled digits: a fixed central hold-out and per-client partitions.

Everything is derived from the job's seed, so every process (ServerApp, any ClientApp, any
machine) computes the same split without exchanging data.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

CENTRAL_FRACTION = 0.2
LOCAL_EVAL_FRACTION = 0.2


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # float32, features scaled to [0, 1]
    y: np.ndarray  # int64 labels


@lru_cache(maxsize=8)
def _pool_and_holdout(seed: int) -> tuple[Split, Split]:
    digits = load_digits()
    x = digits.data.astype(np.float64)
    y = digits.target.astype(np.int64)
    x_pool, x_hold, y_pool, y_hold = train_test_split(x, y, test_size=CENTRAL_FRACTION, random_state=seed, stratify=y)
    # Standardise per pixel with statistics of the training pool (never the hold-out); every
    # process derives the same numbers from the seed.
    mean, std = x_pool.mean(axis=0), x_pool.std(axis=0)
    std[std == 0] = 1.0

    def scale(a: np.ndarray) -> np.ndarray:
        scaled: np.ndarray = ((a - mean) / std).astype(np.float32)
        return scaled

    return Split(scale(x_pool), y_pool), Split(scale(x_hold), y_hold)


def central_holdout(seed: int) -> Split:
    """The 20% hold-out the ServerApp evaluates the global model on (never given to clients)."""
    return _pool_and_holdout(seed)[1]


def _iid_indices(n: int, num_partitions: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [np.sort(part) for part in np.array_split(rng.permutation(n), num_partitions)]


def _dirichlet_indices(y: np.ndarray, num_partitions: int, alpha: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Per class, split its samples across partitions by Dirichlet(alpha) proportions."""
    parts: list[list[int]] = [[] for _ in range(num_partitions)]
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        proportions = rng.dirichlet(np.full(num_partitions, alpha))
        cuts = (np.cumsum(proportions)[:-1] * len(idx)).astype(int)
        for pid, chunk in enumerate(np.split(idx, cuts)):
            parts[pid].extend(chunk.tolist())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


@lru_cache(maxsize=32)
def client_data(
    partition_id: int, num_partitions: int, partitioning: str, alpha: float, seed: int
) -> tuple[Split, Split]:
    """(train, local evaluation) data of one partition."""
    if not 0 <= partition_id < num_partitions:
        raise ValueError(f"partition-id {partition_id} outside 0..{num_partitions - 1}")
    pool, _ = _pool_and_holdout(seed)
    rng = np.random.default_rng(seed)
    if partitioning == "iid":
        parts = _iid_indices(len(pool.y), num_partitions, rng)
    elif partitioning == "dirichlet":
        parts = _dirichlet_indices(pool.y, num_partitions, alpha, rng)
    else:
        raise ValueError(f"unknown partitioning {partitioning!r}")
    idx = parts[partition_id]
    local_rng = np.random.default_rng(seed * 1_000 + partition_id)
    eval_idx = np.sort(local_rng.permutation(idx)[: int(round(len(idx) * LOCAL_EVAL_FRACTION))])
    # Train on the whole partition; evaluate locally on a fixed sample of it.
    return Split(pool.x[idx], pool.y[idx]), Split(pool.x[eval_idx], pool.y[eval_idx])

"""Per-client contribution figures of one round: each update's artifact bytes, its L2 norm
(client model minus the round's starting model) and its cosine similarity to the aggregate
update (new global model minus the round's starting model). Computed in float64."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord

from flp_flower.model import sha256_hex, state_bytes


@dataclass(frozen=True)
class UpdateBlob:
    sha256: str
    data: bytes


def update_blob(arrays: ArrayRecord) -> UpdateBlob:
    """The update as `torch.save` bytes of its state dict (what replay loads back)."""
    data = state_bytes(arrays.to_torch_state_dict())
    return UpdateBlob(sha256_hex(data), data)


def _delta(arrays: ArrayRecord, start: ArrayRecord) -> np.ndarray:
    parts = [arrays[k].numpy().astype(np.float64).ravel() - start[k].numpy().astype(np.float64).ravel() for k in start]
    return np.concatenate(parts) if parts else np.zeros(0)


def norm_and_cosine(update: ArrayRecord, start: ArrayRecord, aggregate: ArrayRecord) -> tuple[float, float | None]:
    """(||update - start||, cos(update - start, aggregate - start)); the cosine is None when
    either vector is zero (a client that sent the starting model back contributes nothing)."""
    d = _delta(update, start)
    agg = _delta(aggregate, start)
    norm = float(np.linalg.norm(d))
    agg_norm = float(np.linalg.norm(agg))
    if norm == 0.0 or agg_norm == 0.0 or not math.isfinite(norm * agg_norm):
        return norm, None
    cosine = float(np.dot(d, agg)) / (norm * agg_norm)
    return norm, max(-1.0, min(1.0, cosine))


STATE_ATTRIBUTES = ("m_t", "v_t")  # FedOpt's moments (FedAdam, FedYogi, FedAdagrad)


def strategy_state_blob(strategy: Any) -> UpdateBlob | None:
    """The strategy's state after a round (FedAdam's first and second moments) as `torch.save`
    bytes of {"m_t/<key>": tensor, "v_t/<key>": tensor}; None for stateless strategies (FedAvg)."""
    state: dict[str, torch.Tensor] = {}
    for name in STATE_ATTRIBUTES:
        for key, array in (getattr(strategy, name, None) or {}).items():
            state[f"{name}/{key}"] = torch.from_numpy(np.array(array, copy=True))
    if not state:
        return None
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    return UpdateBlob(sha256_hex(data), data)

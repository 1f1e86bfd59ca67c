"""The model (MLP 64-64-10), its training and evaluation loops, and a stable byte encoding."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import torch
from torch import nn

NUM_FEATURES = 64
NUM_CLASSES = 10


class Mlp(nn.Module):
    """MLP 64-64-10 with a ReLU hidden layer."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(NUM_FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, NUM_CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.layers(x)
        return out


def new_model(seed: int) -> Mlp:
    """A freshly initialised model; the same seed gives the same weights."""
    torch.manual_seed(seed)
    return Mlp()


def train_epochs(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    lr: float,
    batch_size: int,
    epochs: int,
    seed: int,
    proximal_mu: float = 0.0,
) -> float:
    """Plain SGD over shuffled mini-batches; returns the mean training loss of the last epoch.

    With `proximal_mu` > 0 the FedProx proximal term (mu/2)*||w - w_global||^2 is added.
    """
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    params = list(model.parameters())
    loss_fn = nn.CrossEntropyLoss()
    global_params = [p.detach().clone() for p in params]
    generator = torch.Generator().manual_seed(seed)
    model.train()
    mean_loss = 0.0
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=generator)
        total, seen = 0.0, 0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            for p in params:
                p.grad = None  # what torch.optim's zero_grad() does by default
            loss = loss_fn(model(xt[idx]), yt[idx])
            if proximal_mu > 0:
                prox = sum(((p - g) ** 2).sum() for p, g in zip(params, global_params, strict=True))
                loss = loss + (proximal_mu / 2) * prox
            loss.backward()
            sgd_step(params, lr)
            total += float(loss.item()) * len(idx)
            seen += len(idx)
        mean_loss = total / max(seen, 1)
    return mean_loss


def sgd_step(params: list[nn.Parameter], lr: float) -> None:
    """One plain SGD update, `p -= lr * grad`: on CPU tensors, bit for bit what `torch.optim.SGD`
    without momentum or weight decay does (its single-tensor path; tests/fl_runtime/
    test_flower_app_units.py checks it). Written out because torch.optim's first `step()` imports
    `torch._dynamo`, ~1.6 CPU-seconds in every process that trains: each simulation actor of every
    run and each ClientApp executor, more than a whole job's training costs here."""
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p.add_(p.grad, alpha=-lr)


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy) on the given data."""
    if len(x) == 0:
        return 0.0, 0.0
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
        yt = torch.from_numpy(y)
        loss = float(nn.functional.cross_entropy(logits, yt).item())
        accuracy = int((logits.argmax(dim=1) == yt).sum().item()) / len(y)
    return loss, accuracy


def state_bytes(state: dict[str, torch.Tensor]) -> bytes:
    """The model as `torch.save` bytes (loadable with `torch.load(..., weights_only=True)`)."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in state.items()}, buffer)
    return buffer.getvalue()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

"""The Flower app's pieces on their own: partitions, strategies, model bytes, run config."""

from __future__ import annotations

import sys

import httpx
import numpy as np
import pytest

from domain.events import JobConfig
from fl_runtime.app_dir import APP_DIR, declared_run_config
from fl_runtime.run_config import UnsupportedHyperparameter, run_config_for

sys.path.insert(0, str(APP_DIR))

from flp_flower import data, model, strategies  # noqa: E402
from flp_flower.reporter import PlatformReporter, ReportRejected  # noqa: E402
from flp_flower.settings import RunSettings  # noqa: E402


@pytest.mark.parametrize("partitioning", ["iid", "dirichlet"])
def test_partitions_are_disjoint_cover_the_pool_and_depend_only_on_the_seed(partitioning: str) -> None:
    pool, holdout = data._pool_and_holdout(7)
    parts = [data.client_data(pid, 3, partitioning, 0.3, 7)[0] for pid in range(3)]
    assert sum(len(p.y) for p in parts) == len(pool.y) == 1797 - len(holdout.y)
    rows = np.concatenate([p.x for p in parts])
    assert len(np.unique(rows, axis=0)) == len(np.unique(pool.x, axis=0))
    again = data.client_data.__wrapped__(1, 3, partitioning, 0.3, 7)[0]
    assert np.array_equal(again.x, parts[1].x) and np.array_equal(again.y, parts[1].y)
    assert len(holdout.y) == 360  # the 20% central hold-out


def test_dirichlet_partitions_are_skewed_iid_are_balanced() -> None:
    iid = [np.bincount(data.client_data(p, 3, "iid", 0.1, 1)[0].y, minlength=10) for p in range(3)]
    skewed = [np.bincount(data.client_data(p, 3, "dirichlet", 0.1, 1)[0].y, minlength=10) for p in range(3)]
    assert max(np.std(c / c.sum()) for c in iid) < max(np.std(c / max(c.sum(), 1)) for c in skewed)


def test_model_bytes_are_stable_for_the_same_weights() -> None:
    a, b = model.new_model(3), model.new_model(3)
    assert model.sha256_hex(model.state_bytes(a.state_dict())) == model.sha256_hex(model.state_bytes(b.state_dict()))
    assert model.state_bytes(a.state_dict()) != model.state_bytes(model.new_model(4).state_dict())


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("fedavg", strategies.RecordingFedAvg),
        ("fedprox", strategies.RecordingFedProx),
        ("fedadam", strategies.RecordingFedAdam),
    ],
)
def test_each_strategy_is_flowers_own_plus_recording(name: str, cls: type) -> None:
    settings = RunSettings(
        job_id="j",
        platform_url="",
        platform_token="",
        strategy=name,
        rounds=2,
        num_clients=3,
        min_clients=2,
        partitioning="iid",
        dirichlet_alpha=0.5,
        seed=1,
        lr=0.1,
        batch_size=32,
        local_epochs=1,
        proximal_mu=0.01,
        server_lr=0.1,
        reply_timeout=5.0,
        report_retries=1,
        fail_partitions=frozenset(),
    )
    strategy = strategies.build_strategy(settings)
    assert (strategy.min_train_nodes, strategy.min_available_nodes) == (2, 3)
    assert type(strategy) is cls


def test_run_config_maps_the_job_and_checks_hyperparameters() -> None:
    config = JobConfig(
        name="x", rounds=4, min_clients=2, num_clients=3, strategy="fedprox", hyperparameters={"batch_size": 16}
    )
    rc = run_config_for("job-1", config, "http://127.0.0.1:9", 30.0, "tok")
    assert rc["num-server-rounds"] == 4 and rc["strategy"] == "fedprox" and rc["batch-size"] == 16
    assert rc["platform-token"] == "tok" and rc["reply-timeout"] == 30.0
    assert set(rc) <= set(declared_run_config())
    with pytest.raises(UnsupportedHyperparameter):
        run_config_for("j", config.model_copy(update={"hyperparameters": {"seed": 3}}), "u", 1.0)
    with pytest.raises(UnsupportedHyperparameter):
        run_config_for("j", config.model_copy(update={"hyperparameters": {"lr": "fast"}}), "u", 1.0)


def _reporter(answers: list[int | Exception], retries: int) -> tuple[PlatformReporter, list[float], list[str]]:
    """A reporter against a scripted platform: each request gets the next status (or error)."""
    sleeps: list[float] = []
    seen: list[str] = []

    def platform(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Idempotency-Key", ""))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, json={})

    transport = httpx.MockTransport(platform)
    return PlatformReporter("http://flp", "j1", retries=retries, transport=transport, sleep=sleeps.append), sleeps, seen


def test_reports_are_retried_with_backoff_until_accepted() -> None:
    reporter, sleeps, seen = _reporter([httpx.ConnectError("down"), 503, 429, 200], retries=4)
    reporter.post_round(3, {"round": 3})
    assert seen == ["job-j1-round-3"] * 4  # the same idempotency key on every attempt
    assert sleeps == [0.2, 0.4, 0.8]


def test_report_retries_bound_the_attempts_and_cap_the_backoff() -> None:
    reporter, sleeps, _ = _reporter([503] * 8, retries=8)
    with pytest.raises(ReportRejected, match="503"):
        reporter.post_round(1, {})
    assert sleeps == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]  # 8 attempts, 7 waits
    reporter, sleeps, _ = _reporter([httpx.ConnectError("down")] * 2, retries=2)
    with pytest.raises(httpx.ConnectError):
        reporter.fail_job("x")
    assert sleeps == [0.2]


def test_a_refusal_is_not_retried() -> None:
    reporter, sleeps, seen = _reporter([409, 200], retries=5)
    with pytest.raises(ReportRejected, match="409"):
        reporter.put_artifact("ab" * 32, b"x")
    assert (seen, sleeps) == ([""], [])


@pytest.mark.parametrize("proximal_mu", [0.0, 0.5])
def test_training_equals_torch_optim_sgd_bit_for_bit(proximal_mu: float) -> None:
    """`train_epochs` updates weights with its own SGD step; the weights and loss must be exactly
    those of the same loop on `torch.optim.SGD` (so a job's results do not depend on which is used)."""
    import torch

    part = data.client_data(0, 3, "iid", 0.3, 7)[0]
    ours, reference = model.new_model(3), model.new_model(3)
    loss = model.train_epochs(ours, part.x, part.y, lr=0.1, batch_size=32, epochs=2, seed=5, proximal_mu=proximal_mu)

    xt, yt = torch.from_numpy(part.x), torch.from_numpy(part.y)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    start = [p.detach().clone() for p in reference.parameters()]
    generator = torch.Generator().manual_seed(5)
    for _ in range(2):
        order = torch.randperm(len(xt), generator=generator)
        total, seen = 0.0, 0
        for at in range(0, len(order), 32):
            idx = order[at : at + 32]
            optimizer.zero_grad()
            batch_loss = torch.nn.CrossEntropyLoss()(reference(xt[idx]), yt[idx])
            if proximal_mu > 0:
                prox = sum(((p - g) ** 2).sum() for p, g in zip(reference.parameters(), start, strict=True))
                batch_loss = batch_loss + (proximal_mu / 2) * prox
            batch_loss.backward()
            optimizer.step()
            total += float(batch_loss.item()) * len(idx)
            seen += len(idx)
    assert loss == total / seen
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), reference.parameters(), strict=True))


def test_training_does_not_import_torch_dynamo() -> None:
    """torch.optim's first step imports torch._dynamo (~1.6 CPU-s in every process that trains);
    a ClientApp's training must not."""
    import subprocess

    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); from flp_flower import data, model; "
        "part = data.client_data(0, 3, 'iid', 0.3, 7)[0]; "
        "model.train_epochs(model.new_model(1), part.x, part.y, lr=0.1, batch_size=32, epochs=1, seed=1); "
        "print('torch._dynamo' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(APP_DIR)], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["False"], out.stderr

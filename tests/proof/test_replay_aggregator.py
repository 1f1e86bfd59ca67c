"""The replay aggregator is the strategy's aggregation, bit for bit: for random small weight
tensors and example counts, the live `RecordingFedAvg` / `RecordingFedAdam` of the Flower app
(what the ServerApp runs) and replay (from the update artifacts' bytes, with Flower's own class
rebuilt from the recorded parameters) give identical arrays, dtype and order, round after round."""

from __future__ import annotations

import sys

import numpy as np
import torch
from flwr.app import ArrayRecord, Message, Metadata, MetricRecord, RecordDict
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.replay import aggregate_round, build_strategy, load_arrays, model_bytes, strategy_state_bytes
from domain.provenance import JobProvenance, StrategySpec
from fl_runtime.app_dir import APP_DIR

sys.path.insert(0, str(APP_DIR))

from flp_flower.contributions import norm_and_cosine, update_blob  # noqa: E402
from flp_flower.model import new_model, state_bytes  # noqa: E402
from flp_flower.round_log import RoundLog  # noqa: E402
from flp_flower.settings import RunSettings  # noqa: E402
from flp_flower.strategies import build_strategy as build_live  # noqa: E402
from flp_flower.strategies import strategy_params  # noqa: E402

SHAPES = {"a.weight": (3, 2), "a.bias": (3,), "b.weight": (2, 3)}


def settings_for(strategy: str, clients: int) -> RunSettings:
    config = {"strategy": strategy, "num-clients": clients, "min-clients": clients, "reply-timeout": 1.0}
    return RunSettings.from_run_config(config)


def reply(arrays: ArrayRecord, num: int, node: int, rnd: int) -> Message:
    metrics = MetricRecord({"train_loss": 0.5, "num-examples": num, "partition-id": node})
    meta = Metadata(
        run_id=1, message_id=f"m{rnd}-{node}", src_node_id=node + 1, dst_node_id=0, reply_to_message_id="",
        group_id=str(rnd), created_at=0.0, ttl=60.0, message_type="train",
    )  # fmt: skip
    msg: Message = Message(content=RecordDict({"arrays": arrays, "metrics": metrics}), metadata=meta)  # type: ignore[call-overload]
    return msg


tensor = st.integers(0, 2**32 - 1).map(lambda seed: np.random.default_rng(seed))


@settings(max_examples=25, deadline=None)
@given(
    strategy=st.sampled_from(["fedavg", "fedadam"]),
    seeds=st.lists(st.integers(0, 2**32 - 1), min_size=2, max_size=4),
    counts=st.data(),
    rounds=st.integers(1, 3),
)
def test_replay_aggregates_bit_for_bit_like_the_live_strategy(
    strategy: str, seeds: list[int], counts: st.DataObject, rounds: int
) -> None:
    clients = len(seeds)
    live_settings = settings_for(strategy, clients)
    live = build_live(live_settings)
    flower_class, params = strategy_params(live_settings)
    spec = StrategySpec(name=strategy, flower_class=flower_class, params=params)
    replayed = build_strategy(JobProvenance(initial_model_sha256="0" * 64, strategy=spec, app_sha256="0" * 64))
    start = ArrayRecord({k: torch.zeros(s, dtype=torch.float32) for k, s in SHAPES.items()})
    replay_start = start
    for rnd in range(1, rounds + 1):
        updates = []
        for i, seed in enumerate(seeds):
            rng = np.random.default_rng(seed + rnd)
            state = {k: torch.from_numpy(rng.normal(0, 1, s).astype(np.float32)) for k, s in SHAPES.items()}
            num = counts.draw(st.integers(1, 10_000))
            updates.append((ArrayRecord(state), num, i))
        # live: what the ServerApp's strategy does with the replies (FedOpt remembers the start)
        live.current = RoundLog(round=rnd, started=0.0, start=start, sampled=[i + 1 for i in range(clients)])
        if hasattr(live, "current_arrays"):
            live.current_arrays = {k: a.numpy() for k, a in start.items()}
        live_arrays, _ = live.aggregate_train(rnd, [reply(a, n, i, rnd) for a, n, i in updates])
        # replay: from the artifacts' bytes, in the recorded order
        loaded = [(load_arrays(update_blob(a).data), n) for a, n, _ in updates]
        replay_arrays = aggregate_round(replayed, rnd, replay_start, loaded)
        assert list(live_arrays.keys()) == list(replay_arrays.keys())
        for k in live_arrays:
            x, y = live_arrays[k].numpy(), replay_arrays[k].numpy()
            assert x.dtype == y.dtype and x.shape == y.shape
            assert x.tobytes() == y.tobytes()
        assert model_bytes(live_arrays.to_torch_state_dict()) == model_bytes(replay_arrays.to_torch_state_dict())
        live_state = live.current.state
        assert (live_state is None) == (strategy == "fedavg")
        assert strategy_state_bytes(replayed) == live_state  # FedAdam's moments, bit for bit
        weights = [u.weight for u in live.current.results.values()]
        assert abs(sum(w for w in weights if w is not None) - 1.0) <= 1e-12
        start, replay_start = live_arrays, replay_arrays


def test_model_bytes_are_the_server_apps_encoding() -> None:
    state = new_model(7).state_dict()
    assert model_bytes(state) == state_bytes(state)


def test_an_update_equal_to_the_round_start_has_norm_zero() -> None:
    start = ArrayRecord({k: torch.ones(s) for k, s in SHAPES.items()})
    moved = ArrayRecord({k: torch.full(s, 3.0) for k, s in SHAPES.items()})
    assert norm_and_cosine(start, start, moved) == (0.0, None)
    norm, cosine = norm_and_cosine(moved, start, moved)
    assert norm == np.sqrt(sum(np.prod(s) for s in SHAPES.values()) * 4.0) and abs(cosine - 1.0) < 1e-12

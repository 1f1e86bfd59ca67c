"""The ClientApp: local SGD on the node's partition, local evaluation on its held-out part."""

from __future__ import annotations

import time

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from flp_flower.data import client_data
from flp_flower.model import Mlp, evaluate, train_epochs
from flp_flower.settings import RunSettings, partition_of
from flp_flower.wire import pack, unpack

torch.set_num_threads(1)

app = ClientApp()

PARTITION_KEY = "partition-id"


class InjectedClientFailure(RuntimeError):
    """Raised on purpose for partitions listed in the run config's `fail-partitions`."""


def _model_from(msg: Message) -> Mlp:
    model = Mlp()
    arrays = unpack(msg.content)["arrays"]  # packed on the wire (flp_flower.wire)
    assert isinstance(arrays, ArrayRecord)
    model.load_state_dict(arrays.to_torch_state_dict())
    return model


@app.train()
def train(msg: Message, context: Context) -> Message:
    settings = RunSettings.from_context(context)
    pid, n = partition_of(context)
    if pid in settings.fail_partitions:
        raise InjectedClientFailure(f"injected failure on partition {pid}")
    if pid in settings.stall_partitions:
        time.sleep(settings.stall_seconds)  # a node that goes silent (its reply comes too late)
    train_set, _ = client_data(pid, n, settings.partitioning, settings.dirichlet_alpha, settings.seed)
    model = _model_from(msg)
    config = msg.content["config"]
    server_round = int(config.get("server-round", 0))  # type: ignore[arg-type]
    mu = float(config.get("proximal-mu", 0.0))  # type: ignore[arg-type]
    loss = train_epochs(
        model,
        train_set.x,
        train_set.y,
        lr=settings.lr,
        batch_size=settings.batch_size,
        epochs=settings.local_epochs,
        seed=settings.seed * 100_003 + server_round * 1_009 + pid,
        proximal_mu=mu,
    )
    metrics = MetricRecord({"train_loss": loss, "num-examples": len(train_set.y), PARTITION_KEY: pid})
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics})
    return Message(content=pack(content), reply_to=msg)


@app.evaluate()
def evaluate_local(msg: Message, context: Context) -> Message:
    settings = RunSettings.from_context(context)
    pid, n = partition_of(context)
    _, eval_set = client_data(pid, n, settings.partitioning, settings.dirichlet_alpha, settings.seed)
    loss, accuracy = evaluate(_model_from(msg), eval_set.x, eval_set.y)
    metrics = MetricRecord(
        {"eval_loss": loss, "eval_acc": accuracy, "num-examples": len(eval_set.y), PARTITION_KEY: pid}
    )
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)


@app.query()
def warm_up(msg: Message, context: Context) -> Message:
    """The ServerApp's warm-up before round 1: load this node's partition (and with it torch and
    the dataset), so the first round's reply timeout measures training, not start-up."""
    settings = RunSettings.from_context(context)
    pid, n = partition_of(context)
    client_data(pid, n, settings.partitioning, settings.dirichlet_alpha, settings.seed)
    return Message(content=RecordDict({"metrics": MetricRecord({PARTITION_KEY: pid})}), reply_to=msg)

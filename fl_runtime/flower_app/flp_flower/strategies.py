"""FedAvg / FedProx / FedAdam that record every round (sampled, replies, failures, metrics).

`RecordingFedAvg` overrides the hooks `Strategy.start` calls per round; the subclasses put it in
front of Flower's FedProx / FedAdam in the MRO, so the algorithms stay Flower's own. Replies are
aggregated in partition order, so the same seed gives bit-identical models and metrics.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp import strategy as flwr_strategy
from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from flp_flower.contributions import norm_and_cosine, strategy_state_blob, update_blob
from flp_flower.round_log import ClientUpdate, RoundLog, client_id, error_name
from flp_flower.settings import RunSettings

PARTITION_KEY = "partition-id"
WEIGHT_KEY = "num-examples"
MIN_NODE_WAIT_S = 60.0  # nodes may take a while to connect (simulation: Ray start-up)
WARM_UP_TIMEOUT_S = 120.0  # for every node's first message: its ClientApp loading (Ray actors, torch)
NODE_POLL_S = 0.5


class NotEnoughClients(RuntimeError):
    """A round cannot go on: fewer nodes than the job's minimum are available or replied."""

    def __init__(self, reason: str, round_no: int | None = None, failures: list[dict[str, str]] | None = None) -> None:
        super().__init__(reason)
        self.round = round_no
        self.failures = failures or []  # the round's failed clients, as FailJob's `failures`


def aggregate_without_partition(records: list[RecordDict], weight_key: str) -> MetricRecord:
    aggregated = aggregate_metricrecords(records, weight_key)
    if PARTITION_KEY in aggregated:
        del aggregated[PARTITION_KEY]
    return aggregated


def _metrics_of(msg: Message) -> dict[str, Any]:
    records = list(msg.content.metric_records.values())
    return dict(records[0]) if records else {}


def _partition(msg: Message) -> int:
    if msg.has_error():
        return -1
    value = _metrics_of(msg).get(PARTITION_KEY, -1)
    return int(value) if isinstance(value, int | float) else -1


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v) for k, v in metrics.items() if k not in (PARTITION_KEY, WEIGHT_KEY) and isinstance(v, int | float)
    }


def _scalar_record(record: MetricRecord | None) -> dict[str, float]:
    return _scalars(dict(record)) if record is not None else {}


def wait_for_nodes(grid: Grid, needed: int, timeout_s: float) -> None:
    """Flower's sampler waits forever for nodes; give up after the job's reply timeout."""
    poll = Retrying(
        stop=stop_after_delay(timeout_s),
        wait=wait_fixed(NODE_POLL_S),
        retry=retry_if_result(lambda connected: connected < needed),
    )
    try:
        poll(lambda: len(list(grid.get_node_ids())))
    except RetryError as exc:
        connected = exc.last_attempt.result()
        raise NotEnoughClients(
            f"only {connected} of the {needed} nodes needed connected within {timeout_s:g}s"
        ) from None


def warm_up(grid: Grid, timeout_s: float) -> None:
    """One `query` message to every connected node before round 1, with a start-up sized timeout.
    A node's first message waits for its ClientApp to load (on the simulation engine, for Ray to
    start its actors); on a busy machine that alone can exceed the job's reply timeout and fail a
    round in which no client was slow at training. Nodes that do not answer are sampled anyway."""
    messages = [Message(content=RecordDict(), dst_node_id=node, message_type="query") for node in grid.get_node_ids()]
    if messages:
        list(grid.send_and_receive(messages, timeout=timeout_s))


class RecordingFedAvg(FedAvg):
    """FedAvg plus a per-round `RoundLog` of what happened (see module docstring)."""

    settings: RunSettings
    current: RoundLog | None = None
    on_round_start: Callable[[int, list[str]], None] | None = None  # (round, sampled client ids)

    def attach(self, settings: RunSettings) -> None:
        self.settings = settings

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        wait_for_nodes(grid, self.min_available_nodes, max(self.settings.reply_timeout, MIN_NODE_WAIT_S))
        if server_round == 1:
            warm_up(grid, max(self.settings.reply_timeout, WARM_UP_TIMEOUT_S))
        self.current = RoundLog(round=server_round, started=time.monotonic(), start=arrays)
        messages = list(super().configure_train(server_round, arrays, config, grid))
        self.current.sampled = [m.metadata.dst_node_id for m in messages]
        if self.on_round_start is not None:
            self.on_round_start(server_round, [client_id(n) for n in self.current.sampled])
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        assert self.current is not None and self.current.round == server_round
        ordered = sorted(replies, key=_partition)
        log = self.current
        for msg in ordered:
            node = msg.metadata.src_node_id
            if msg.has_error():
                log.failures[node] = (error_name(msg.error.code), msg.error.reason)
            else:
                reply_metrics = _metrics_of(msg)
                blob = update_blob(next(iter(msg.content.array_records.values())))
                log.results[node] = ClientUpdate(
                    int(reply_metrics.get(WEIGHT_KEY, 0)),
                    _scalars(reply_metrics),
                    update_sha256=blob.sha256,
                    update=blob.data,
                )
        log.mark_silent({m.metadata.src_node_id for m in ordered}, self.settings.reply_timeout)
        if len(log.results) < self.settings.min_clients:
            reason = (
                f"round {server_round}: {len(log.results)} of {len(log.sampled)} sampled clients "
                f"replied, the job needs min_clients={self.settings.min_clients}"
                + (f" ({log.failure_summary()})" if log.failures else "")
            )
            raise NotEnoughClients(reason, server_round, log.failure_records())
        arrays, metrics = super().aggregate_train(server_round, ordered)
        log.train_metrics = _scalar_record(metrics)
        self._record_contributions(ordered, arrays)
        if (state := strategy_state_blob(self)) is not None:
            log.state_sha256, log.state = state.sha256, state.data
        return arrays, metrics

    def _record_contributions(self, ordered: list[Message], aggregate: ArrayRecord | None) -> None:
        """Each reply's weight as Flower's aggregation computes it (n_i / sum n, in this order),
        its update norm and its cosine to the aggregate update."""
        log = self.current
        assert log is not None
        total = sum(u.num_examples for u in log.results.values())
        for msg in ordered:
            update = log.results.get(msg.metadata.src_node_id)
            if update is None or msg.has_error():
                continue
            update.weight = update.num_examples / total if total else None
            if aggregate is not None and log.start is not None:
                arrays = next(iter(msg.content.array_records.values()))
                update.update_norm, update.cosine_to_aggregate = norm_and_cosine(arrays, log.start, aggregate)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        ordered = sorted(replies, key=_partition)
        metrics = super().aggregate_evaluate(server_round, ordered)
        if self.current is not None and self.current.round == server_round:
            self.current.evaluate_metrics = _scalar_record(metrics)
            for msg in ordered:
                node = msg.metadata.src_node_id
                if not msg.has_error() and node in self.current.results:
                    self.current.results[node].metrics.update(_scalars(_metrics_of(msg)))
        return metrics


class RecordingFedProx(RecordingFedAvg, FedProx):
    pass


class RecordingFedAdam(RecordingFedAvg, FedAdam):
    pass


FLOWER_CLASSES: dict[str, tuple[str, type[RecordingFedAvg]]] = {
    "fedavg": ("FedAvg", RecordingFedAvg),
    "fedprox": ("FedProx", RecordingFedProx),
    "fedadam": ("FedAdam", RecordingFedAdam),
}


def strategy_params(settings: RunSettings) -> tuple[str, dict[str, bool | int | float | str]]:
    """(Flower class name, the scalar constructor parameters): what the strategy is built with
    and what the platform records in JobStarted for replay."""
    if settings.strategy not in FLOWER_CLASSES:
        raise ValueError(f"unknown strategy {settings.strategy!r}")
    params: dict[str, bool | int | float | str] = {
        "fraction_train": 1.0,
        "fraction_evaluate": 1.0,
        "min_train_nodes": settings.min_clients,
        "min_evaluate_nodes": settings.min_clients,
        "min_available_nodes": settings.num_clients,
        "weighted_by_key": WEIGHT_KEY,
    }
    if settings.strategy == "fedprox":
        params["proximal_mu"] = settings.proximal_mu
    elif settings.strategy == "fedadam":
        params.update(eta=settings.server_lr, eta_l=settings.lr)
    flower_class = FLOWER_CLASSES[settings.strategy][0]
    # and every other scalar default of Flower's constructor (beta_1, tau, ...), so the record is whole
    for name, parameter in inspect.signature(getattr(flwr_strategy, flower_class).__init__).parameters.items():
        default = parameter.default
        if name not in params and isinstance(default, bool | int | float | str) and name != "self":
            params[name] = default
    return flower_class, params


def build_strategy(settings: RunSettings) -> RecordingFedAvg:
    _, recorded = strategy_params(settings)
    params: dict[str, Any] = dict(recorded)
    cls = FLOWER_CLASSES[settings.strategy][1]
    strategy = cls(
        **params,
        train_metrics_aggr_fn=aggregate_without_partition,
        evaluate_metrics_aggr_fn=aggregate_without_partition,
    )
    strategy.attach(settings)
    return strategy

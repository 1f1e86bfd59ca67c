"""The ServerApp: runs the job's strategy and reports every round to the flp platform."""

from __future__ import annotations

import logging
import random
import time

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp

from flp_flower.data import central_holdout
from flp_flower.model import Mlp, evaluate, new_model, sha256_hex, state_bytes
from flp_flower.prompt_grid import PromptGrid
from flp_flower.reporter import PlatformReporter, ReportRejected
from flp_flower.settings import RunSettings
from flp_flower.strategies import NotEnoughClients, RecordingFedAvg, build_strategy

torch.set_num_threads(1)
log = logging.getLogger("flp_flower.server")

app = ServerApp()


class RoundPublisher:
    """Central evaluation + report; called by `Strategy.start` as the last step of each round."""

    def __init__(self, settings: RunSettings, strategy: RecordingFedAvg, reporter: PlatformReporter | None) -> None:
        self.settings = settings
        self.strategy = strategy
        self.reporter = reporter
        self.holdout = central_holdout(settings.seed)

    def __call__(self, server_round: int, arrays: ArrayRecord) -> MetricRecord:
        model = Mlp()
        state = arrays.to_torch_state_dict()
        model.load_state_dict(state)
        loss, accuracy = evaluate(model, self.holdout.x, self.holdout.y)
        metrics = MetricRecord({"central_loss": loss, "central_acc": accuracy})
        round_log = self.strategy.current
        if server_round == 0 or round_log is None or round_log.round != server_round:
            return metrics
        round_log.central_metrics = {"central_loss": loss, "central_acc": accuracy}
        blob = state_bytes(state)
        sha = sha256_hex(blob)
        body = round_log.to_command(time.monotonic() - round_log.started, sha)
        if self.reporter is not None:
            if self.settings.keep_client_updates:  # the updates first: no event references a missing artifact
                for update in round_log.results.values():
                    if update.update_sha256 is not None and update.update is not None:
                        self.reporter.put_artifact(update.update_sha256, update.update)
            if round_log.state_sha256 is not None and round_log.state is not None:
                self.reporter.put_artifact(round_log.state_sha256, round_log.state)
            self.reporter.put_artifact(sha, blob)
            self.reporter.post_round(server_round, body)
        log.info("round %s reported: %s", server_round, round_log.central_metrics)
        return metrics


@app.main()
def main(grid: Grid, context: Context) -> None:
    settings = RunSettings.from_context(context)
    random.seed(settings.seed)
    strategy = build_strategy(settings)
    reporter = (
        PlatformReporter(
            settings.platform_url,
            settings.job_id,
            settings.platform_token,
            retries=settings.report_retries,
            traceparent=settings.traceparent,
        )
        if settings.platform_url and settings.job_id
        else None
    )
    if reporter is not None:
        strategy.on_round_start = reporter.round_started  # RoundStarted (and ClientJoined) as a round begins
    try:
        initial = new_model(settings.seed).state_dict()
        initial_blob = state_bytes(initial)
        initial_sha = sha256_hex(initial_blob)
        if reporter is not None:
            reporter.put_artifact(initial_sha, initial_blob)  # JobStarted references it
        strategy.start(
            grid=PromptGrid(grid),  # replies as they come, not every 3 s
            initial_arrays=ArrayRecord(initial),
            num_rounds=settings.rounds,
            timeout=settings.reply_timeout,
            train_config=ConfigRecord({"lr": settings.lr}),
            evaluate_fn=RoundPublisher(settings, strategy, reporter),
        )
    except Exception as exc:
        # Tell the platform why (e.g. fewer than min_clients replied), then fail the Flower run.
        if reporter is not None and not isinstance(exc, ReportRejected):
            try:
                if isinstance(exc, NotEnoughClients):
                    reporter.fail_job(str(exc), exc.round, exc.failures)
                else:
                    reporter.fail_job(f"ServerApp: {exc!r}")
            except Exception:
                log.exception("could not report the failure to the platform")
        raise
    finally:
        if reporter is not None:
            reporter.close()

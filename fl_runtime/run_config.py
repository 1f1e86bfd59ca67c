"""A job's configuration as the Flower app's run config (`[tool.flwr.app.config]` keys)."""

from __future__ import annotations

from domain.events import JobConfig
from fl_runtime.app_dir import declared_run_config
from fl_runtime.control import Scalar

# Keys the platform sets itself; a job's hyper-parameters may not override them.
PLATFORM_KEYS = frozenset(
    {
        "job-id",
        "platform-url",
        "platform-token",
        "traceparent",
        "strategy",
        "num-server-rounds",
        "num-clients",
        "min-clients",
        "partitioning",
        "dirichlet-alpha",
        "seed",
    }
)


class UnsupportedHyperparameter(ValueError):
    pass


def _coerce(key: str, value: Scalar, default: Scalar) -> Scalar:
    try:
        if isinstance(default, bool):
            if isinstance(value, str):  # "false" from a command line is False, not a non-empty string
                if value.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.strip().lower() in ("true", "1", "yes")
            return bool(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise UnsupportedHyperparameter(f"hyperparameter {key}={value!r} is not a {type(default).__name__}") from None


def run_config_for(
    job_id: str,
    config: JobConfig,
    platform_url: str,
    reply_timeout_s: float,
    token: str | None = None,
    traceparent: str | None = None,
) -> dict[str, Scalar]:
    """Run config for one job. Hyper-parameter names may use `_` or `-` (`batch_size`); a job's
    `reply_timeout` overrides the platform's default."""
    declared = declared_run_config()
    run_config: dict[str, Scalar] = {
        "job-id": job_id,
        "platform-url": platform_url,
        "strategy": config.strategy,
        "num-server-rounds": config.rounds,
        "num-clients": config.num_clients,
        "min-clients": config.min_clients,
        "partitioning": config.partitioning,
        "dirichlet-alpha": float(config.dirichlet_alpha),
        "seed": config.seed,
        "reply-timeout": float(reply_timeout_s),
    }
    if token:
        run_config["platform-token"] = token
    if traceparent:
        run_config["traceparent"] = traceparent  # the ServerApp's reports continue the job's trace
    for name, value in config.hyperparameters.items():
        key = name.replace("_", "-")
        if key not in declared or key in PLATFORM_KEYS:
            allowed = sorted(set(declared) - PLATFORM_KEYS)
            raise UnsupportedHyperparameter(f"unknown hyperparameter {name!r}; the Flower app takes {allowed}")
        run_config[key] = _coerce(name, value, declared[key])
    return run_config

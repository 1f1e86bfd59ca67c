"""What an auditor needs to re-execute a job's aggregation, recorded with the job's events.

`JobProvenance` travels in `JobStarted` (schema v2): the initial model's artifact, the Flower
strategy class and the scalar parameters it was built with, the app code's hash and the versions
of the libraries that did the arithmetic. `ClientUpdateReceived` (schema v2) carries each
update's artifact hash and the aggregation weight the strategy used.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from domain.values import FiniteFloat, Key, Sha256Hex

StrategyParam = bool | int | FiniteFloat | str


class StrategySpec(BaseModel):
    """The strategy as Flower built it: `flwr.serverapp.strategy.<flower_class>(**params)`."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    name: str = Field(min_length=1, max_length=100, description="flp's strategy name (fedavg, fedadam, ...)")
    flower_class: str = Field(min_length=1, max_length=100, description="class in flwr.serverapp.strategy")
    weighted_by_key: str = Field(default="num-examples", max_length=200)
    params: dict[Key, StrategyParam] = Field(default_factory=dict, max_length=200)


class JobProvenance(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    initial_model_sha256: Sha256Hex
    strategy: StrategySpec
    app_sha256: Sha256Hex = Field(description="sha256 over the Flower app directory's files")
    versions: dict[Key, str] = Field(default_factory=dict, max_length=50, description="flwr, torch, numpy, python")
    keep_client_updates: bool = True

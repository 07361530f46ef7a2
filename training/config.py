"""The training job's configuration: validated, frozen, loadable from YAML (``--config``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nextbest.errors import ConfigError, describe_validation_error

Learner = Literal["s", "t", "dr"]
DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "default.yaml"
RETRAIN_CONFIG = Path(__file__).resolve().parent / "configs" / "retrain.yaml"


class BoosterParams(BaseModel):
    """LightGBM parameters of one tuning candidate; the number of trees is found by early stopping."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_leaves: int = Field(31, ge=2, le=1024)
    min_child_samples: int = Field(50, ge=1)
    learning_rate: float = Field(0.05, gt=0, le=1)
    max_trees: int = Field(1500, ge=10)
    feature_fraction: float = Field(0.9, gt=0, le=1)
    bagging_fraction: float = Field(0.9, gt=0, le=1)
    lambda_l2: float = Field(1.0, ge=0)


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    learners: tuple[Learner, ...] = ("s", "t", "dr")
    grid: tuple[BoosterParams, ...] = (
        BoosterParams(num_leaves=15, min_child_samples=100),
        BoosterParams(num_leaves=31, min_child_samples=40),
    )
    test_fraction: float = Field(0.5, gt=0, lt=1, description="Customers held out for evaluation.")
    valid_fraction: float = Field(0.2, gt=0, lt=1, description="Share of the rest used for early stopping.")
    decision_margin: float = Field(
        0.25, ge=0, description="Act only when the expected incremental net value exceeds this (currency)."
    )
    early_stopping_rounds: int = Field(50, ge=5)
    crossfit_folds: int = Field(2, ge=2, le=10, description="Folds for the DR-learner's nuisance models.")
    min_rows_per_action: int = Field(100, ge=0)
    calibrate: bool = True
    seed: int = 0
    threads: int = Field(2, ge=1)
    backend: Literal["local", "dask"] = Field(
        "local", description="Where the LightGBM fits run: in process, or lightgbm.dask on a Dask cluster."
    )
    dask_address: str | None = Field(
        None, description="Dask scheduler address (tcp://host:8786); none: a LocalCluster for the job."
    )
    feature_service: str = "nba_v1"
    model_name: str = "nextbest-uplift"
    experiment: str = "nextbest"

    @model_validator(mode="after")
    def _address_needs_dask(self) -> TrainConfig:
        """An address with the local backend would be silently ignored: say so instead."""
        if self.dask_address is not None and self.backend != "dask":
            raise ValueError(f"dask_address {self.dask_address!r} is set but backend is {self.backend!r}; use dask")
        return self


def load_train_config(path: Path | None = None) -> TrainConfig:
    file = path or DEFAULT_CONFIG
    if not file.is_file():
        raise ConfigError(f"training config {file} does not exist")
    try:
        raw = yaml.safe_load(file.read_text()) or {}
        return TrainConfig.model_validate(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, prefix=f"{file}: ")) from exc

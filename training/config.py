"""The training job's configuration: validated, frozen, loadable from YAML (``--config``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nextbest.errors import ConfigError, describe_validation_error

Learner = Literal["s", "t", "dr"]
DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "default.yaml"
RETRAIN_CONFIG = Path(__file__).resolve().parent / "configs" / "retrain.yaml"
# ``num_leaves: auto``: smaller trees on small data. On the synthetic world at 10,000 training rows, 15 leaves
# instead of 31 gave 4 points more lift capture (mean of seeds 7-9); see docs/decision-quality.md.
SMALL_DATA_ROWS = 30_000
SMALL_DATA_LEAVES = 15


class BoosterParams(BaseModel):
    """LightGBM parameters of one tuning candidate; the number of trees is found by early stopping."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    num_leaves: Annotated[int, Field(ge=2, le=1024)] | Literal["auto"] = Field(
        31,
        description=f"Leaves per tree; auto: {SMALL_DATA_LEAVES} below {SMALL_DATA_ROWS:,} training rows, else 31.",
    )
    min_child_samples: int = Field(50, ge=1)
    learning_rate: float = Field(0.05, gt=0, le=1)
    max_trees: int = Field(1500, ge=10)
    feature_fraction: float = Field(0.9, gt=0, le=1)
    bagging_fraction: float = Field(0.9, gt=0, le=1)
    lambda_l2: float = Field(1.0, ge=0)

    def for_rows(self, rows: int) -> BoosterParams:
        """These parameters for a training set of ``rows`` rows (``num_leaves: auto`` resolved)."""
        if self.num_leaves != "auto":
            return self
        return self.model_copy(update={"num_leaves": SMALL_DATA_LEAVES if rows < SMALL_DATA_ROWS else 31})


#: The DR-learner's pseudo-outcome divides by the logged propensity, floored here (inverse weights at most 20):
#: unfloored weights of 30-150 where a confounded log rarely acted are noise, not estimates. It is variance
#: control, not a cure for extrapolating there: on causalml's nie_wager mode 3 (a constant effect that pays for
#: everyone) it moved seed 0 at 200,000 rows from 0.9973 to 0.9999 lift capture and seed 1 at 50,000 rows from
#: 1.0000 to 0.9986 (docs/decision-quality.md).
DR_PROPENSITY_FLOOR = 0.05
#: The overlap guard's threshold (nextbest.model.overlap): customers the log gave one arm less than one time in
#: ten. Against 0.05 (the DR-learner's floor) it kept nie_wager_m3 seed 1 at 50,000 rows at 0.9999 instead of
#: 0.9997, and on mode 4 with thin overlap (adj 2, 10,000 rows, seeds 0-2) left 5.2% of customers worse off
#: instead of 6.0% at 0.897 lift capture instead of 0.904 (docs/decision-quality.md).
OVERLAP_GUARD = 0.1
#: The least decision margin, in units of the data's value scale (the standard deviation of the logged net
#: reward). Customers whose estimated gain is within noise of zero fall on either side of it at random, and
#: the ones on the wrong side are given an action that loses: on nie_wager_m2 at 10,000 rows (seeds 0-2) a
#: floor of 0.01 left 1.6% of customers worse off instead of 1.9% at the same lift capture (0.992), and it
#: took customers out of "worse off" on every scenario measured, at 0-0.007 of lift capture where several
#: actions compete (docs/decision-quality.md).
MARGIN_FLOOR = 0.01


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    learners: tuple[Learner, ...] = Field(
        ("s", "t", "dr"), description="Learner families, each cross-fitted for every target and tuning candidate."
    )
    dr_max_row_treatments: int = Field(
        400_000,
        ge=0,
        description="The DR-learner fits one effect model per treatment on every row: it is skipped (with a "
        "note) when rows x treatments exceed this.",
    )
    dr_propensity_floor: float = Field(
        DR_PROPENSITY_FLOOR,
        ge=0.0,
        lt=1.0,
        description="The DR-learner's pseudo-outcome divides by the logged propensity, floored here (weights of "
        "at most 1/floor; 0: unbounded).",
    )
    overlap_guard: float = Field(
        OVERLAP_GUARD,
        ge=0.0,
        lt=0.5,
        description="Where the log took an action or the control with a probability below this (by a propensity "
        "model fitted on the log) and the blend's learners disagree on the action's effect, the model uses its "
        "average effect instead (0: off). Only fitted when some logged propensity is outside [it, 1 - it].",
    )
    targets: Literal["auto", "conversion", "revenue", "both"] = Field(
        "auto",
        description="What the learners predict: P(convert) (times an order-value head), revenue itself, or both. "
        "auto: conversion when non-converters bring no revenue, plus revenue when converters' revenue varies "
        "within an action; revenue alone when non-converters have revenue (a continuous outcome).",
    )
    grid: tuple[BoosterParams, ...] = (BoosterParams(num_leaves="auto", min_child_samples=50, learning_rate=0.05),)
    folds: int = Field(3, ge=2, le=10, description="Cross-fitting folds (by customer) for selection and evaluation.")
    test_fraction: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Customers held out of training for an extra evaluation; 0: evaluate out of fold, and the "
        "model is refitted on every row.",
    )
    stacking: bool = Field(True, description="Blend the learners by their out-of-fold fit to DR targets.")
    decision_margin: float | Literal["auto"] = Field(
        "auto",
        description="Act only when the expected incremental net value exceeds this (currency); auto: chosen on "
        "out-of-fold policy value in units of the data's value scale.",
    )
    decision_margin_floor: float = Field(
        MARGIN_FLOOR,
        ge=0.0,
        le=1.0,
        description="With decision_margin auto: the least margin, in units of the data's value scale (the "
        "standard deviation of the logged net reward); a larger one is taken only when it pays beyond noise.",
    )
    weighting: Literal["none", "ipw"] = Field(
        "none", description="Inverse-propensity weights in the outcome models (unweighted is better; see learners)."
    )
    early_stopping_rounds: int = Field(50, ge=5)
    crossfit_folds: int = Field(2, ge=2, le=10, description="Folds for the DR-learner's nuisance models.")
    crossfit_stopping: Literal["inner", "fold"] = Field(
        "inner",
        description="Where each cross-fitted model stops adding trees: on a share of its own training rows "
        "(inner), so no out-of-fold prediction depends on the scored rows' outcomes through the tree count, or "
        "on the fold it then scores (fold, the earlier default, which leaks; docs/decision-quality.md, "
        "'Cross-fitting without a leak').",
    )
    min_rows_per_action: int = Field(
        20, ge=0, description="Rows every action needs in the data (thin ones skip per-action learners)."
    )
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

    @field_validator("decision_margin")
    @classmethod
    def _finite_margin(cls, value: float | str) -> float | str:
        if isinstance(value, float) and (value != value or value < 0 or value == float("inf")):
            raise ValueError("must be a finite number >= 0 or 'auto'")
        return value

    @model_validator(mode="after")
    def _address_needs_dask(self) -> TrainConfig:
        """An address with the local backend would be silently ignored: say so instead."""
        if self.dask_address is not None and self.backend != "dask":
            raise ValueError(f"dask_address {self.dask_address!r} is set but backend is {self.backend!r}; use dask")
        return self

    def for_rows(self, rows: int) -> TrainConfig:
        """This configuration for a training set of ``rows`` rows (every grid entry's ``auto`` resolved)."""
        grid = tuple(p.for_rows(rows) for p in self.grid)
        return self if grid == self.grid else self.model_copy(update={"grid": grid})


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

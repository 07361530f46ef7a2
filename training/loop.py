"""The closed loop, simulated end to end: customers of the synthetic world arrive and are decided by the running
service over HTTP; their outcomes are drawn from the world's ground truth and sent back as feedback; after each
round the service's own log trains a challenger, the promotion gate decides, and the service reloads the new
champion without a restart. The true value of every round's decisions is known, so the report shows whether
the loop learns: from a weak start toward the oracle.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from nextbest.core.catalog import ActionCatalog
from nextbest.settings import Settings
from nextbest.training.config import BoosterParams, TrainConfig

Say = Callable[[str], None]


@dataclass(frozen=True)
class LoopConfig:
    rounds: int = 5
    decisions: int = 20_000
    weak_rows: int = 600  # historical campaign rows the weak starting champion is trained on
    batch_size: int = 500
    seed: int = 11
    channel: str = "any"


@dataclass
class RoundResult:
    round: int
    decisions: int
    model_version: str | None
    true_value: float
    oracle_value: float  # the best action for every customer, ignoring guardrails
    eligible_oracle_value: float  # the best action the guardrails allow
    no_action_value: float
    exploration_share: float
    control_share: float
    degraded_share: float
    conversions: int
    gate: str = ""
    promoted: bool = False
    seconds: float = 0.0
    # The greedy policies (no exploration, same guardrails) of the serving champion and of the challenger
    # retrained after the round, valued on the round's customers by the ground truth: was the gate right?
    champion_policy_value: float | None = None
    challenger_policy_value: float | None = None

    @property
    def ratio(self) -> float:
        return self.true_value / self.eligible_oracle_value if self.eligible_oracle_value else float("nan")


@dataclass
class LoopReport:
    rounds: list[RoundResult] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rounds": [{**asdict(r), "ratio_to_eligible_oracle": r.ratio} for r in self.rounds],
            "artifacts": self.artifacts,
        }


class GroundTruth:
    """The world's true response at ``as_of`` for every customer and action (truth/now.parquet)."""

    def __init__(self, data_dir: Path, catalog: ActionCatalog) -> None:
        t = pd.read_parquet(data_dir / "truth" / "now.parquet").set_index("customer_id").sort_index()
        self.ids = t.index.to_numpy()
        self.index = {str(int(c)): i for i, c in enumerate(self.ids)}  # canonical ids: the service answers "42"
        self.p = t[[f"p_{a}" for a in catalog.ids]].to_numpy()
        self.revenue = t[[f"revenue_{a}" for a in catalog.ids]].to_numpy()
        self.net = t[[f"net_{a}" for a in catalog.ids]].to_numpy()

    def rows(self, customers: list[str | int]) -> np.ndarray:
        return np.array([self.index[str(c)] for c in customers])


def weak_start(settings: Settings, catalog: ActionCatalog, cfg: LoopConfig, say: Say) -> int:
    """A deliberately weak champion: a small model trained on a few hundred historical campaign rows."""
    import mlflow

    from nextbest.model.registry import CHAMPION
    from nextbest.training.jobs import build_dataset, run_training

    train_cfg = TrainConfig(
        learners=("s",), grid=(BoosterParams(num_leaves=7, min_child_samples=20),), min_rows_per_action=10
    )
    full = build_dataset(settings, catalog, train_cfg, None)
    sample = full.subset(np.random.default_rng(cfg.seed).permutation(len(full.frame)) < cfg.weak_rows)
    say(f"weak start: a model trained on {len(sample.frame)} historical campaign rows")
    outcome = run_training(settings, catalog, train_cfg, dataset=sample, run_name="weak-start")
    mlflow.MlflowClient().set_registered_model_alias(train_cfg.model_name, CHAMPION, str(outcome.version))
    return int(outcome.version or 0)


@dataclass(frozen=True)
class RoundLog:
    """What the loop needs to value other policies on a round's customers: the served decisions' ids, the
    truth rows of their customers and which actions the guardrails allowed."""

    decision_ids: list[str]
    truth_rows: np.ndarray
    eligible: np.ndarray


def play_round(
    client: httpx.Client,
    truth: GroundTruth,
    catalog: ActionCatalog,
    customers: list[int],
    cfg: LoopConfig,
    rng: np.random.Generator,
    advance: Callable[[int], None] | None = None,
) -> tuple[RoundResult, RoundLog]:
    """Decide for ``customers``, draw their outcomes from the truth and send feedback; returns the round's
    true figures (before retraining) and its decisions."""
    decisions: list[dict[str, Any]] = []
    for start in range(0, len(customers), cfg.batch_size):
        chunk = customers[start : start + cfg.batch_size]
        body = {"requests": [{"customer_id": c, "channel": cfg.channel} for c in chunk]}
        response = client.post("/decide/batch", json=body)
        response.raise_for_status()
        decisions.extend(response.json()["decisions"])
        if advance is not None:
            advance(len(chunk))
    rows = truth.rows([d["customer_id"] for d in decisions])
    chosen = np.array([catalog.index[d["action"]] for d in decisions])
    eligible = np.zeros((len(decisions), len(catalog.ids)), dtype=bool)
    eligible[:, catalog.index[catalog.control]] = True
    for i, d in enumerate(decisions):
        for c in d["candidates"]:
            if c["eligible"]:
                eligible[i, catalog.index[c["action"]]] = True
    net = truth.net[rows]
    p = truth.p[rows, chosen]
    converted = rng.random(len(rows)) < p
    order_value = np.divide(truth.revenue[rows, chosen], p, out=np.zeros_like(p), where=p > 0)
    revenue = converted * order_value * rng.lognormal(-0.5 * 0.25**2, 0.25, len(rows))
    items = []
    for i, d in enumerate(decisions):
        if d["action"] != catalog.control and not d["degraded"]:
            items.append({"decision_id": d["decision_id"], "type": "impression"})
        if converted[i]:
            items.append(
                {"decision_id": d["decision_id"], "type": "conversion", "revenue": round(float(revenue[i]), 2)}
            )
    for start in range(0, len(items), 5_000):
        response = client.post("/feedback/batch", json={"items": items[start : start + 5_000]})
        response.raise_for_status()
        if not all(r["recorded"] for r in response.json()["results"]):
            raise RuntimeError("the service did not record every feedback item of the round")
    result = RoundResult(
        round=0,
        decisions=len(decisions),
        model_version=decisions[0]["model_version"] if decisions else None,
        true_value=float(net[np.arange(len(rows)), chosen].mean()),
        oracle_value=float(net.max(axis=1).mean()),
        eligible_oracle_value=float(np.where(eligible, net, -np.inf).max(axis=1).mean()),
        no_action_value=float(net[:, catalog.index[catalog.control]].mean()),
        exploration_share=float(np.mean([d["explored"] for d in decisions])),
        control_share=float(np.mean([d["control"] for d in decisions])),
        degraded_share=float(np.mean([d["degraded"] for d in decisions])),
        conversions=int(converted.sum()),
    )
    return result, RoundLog([d["decision_id"] for d in decisions], rows, eligible)


def greedy_values(
    settings: Settings, catalog: ActionCatalog, truth: GroundTruth, played: RoundLog, versions: list[str | None]
) -> list[float | None]:
    """True value of each model version's greedy policy under the round's guardrails, on the features the
    round's decisions were served with (read back from the decision log)."""
    from nextbest.core.arbitration import choose
    from nextbest.core.features import DEFAULT_FEATURE_SERVICE
    from nextbest.io.decision_log import open_decision_log
    from nextbest.model.registry import load_version
    from nextbest.training.dataset import from_decision_log, logged_feature_service
    from nextbest.training.evaluation import score

    assert settings.decision_log_url is not None
    wanted = set(played.decision_ids)
    with open_decision_log(settings.decision_log_url) as log:
        rows = [r for r in log.training_rows() if r["decision_id"] in wanted and not r["degraded"]]
    if not rows:
        return [None for _ in versions]
    ds = from_decision_log(rows, catalog, logged_feature_service(rows, DEFAULT_FEATURE_SERVICE), 0)
    position = {d: i for i, d in enumerate(played.decision_ids)}
    at = np.array([position[d] for d in ds.frame["decision_id"]])
    net = truth.net[played.truth_rows[at]]
    out: list[float | None] = []
    for version in versions:
        if version is None:
            out.append(None)
            continue
        model, _ = load_version(settings.serving.model_name, version, settings.home / "models")
        s = score(model, ds, catalog)
        chosen = choose(s.net_uplift, played.eligible[at], catalog.index[catalog.control], model.decision_margin)
        out.append(float(net[np.arange(len(chosen)), chosen].mean()))
    return out


def run_loop(
    settings: Settings,
    catalog: ActionCatalog,
    cfg: LoopConfig,
    client: httpx.Client,
    say: Say,
    retrain_cfg: TrainConfig | None = None,
    advance: Callable[[int], None] | None = None,
) -> LoopReport:
    """Play ``cfg.rounds`` rounds against the service behind ``client`` (its base URL and API key set);
    retrain, gate and reload after each."""
    from nextbest.training.config import RETRAIN_CONFIG, load_train_config
    from nextbest.training.jobs import run_retraining

    assert settings.data_dir is not None
    truth = GroundTruth(settings.data_dir, catalog)
    rng = np.random.default_rng(cfg.seed)
    order = [int(c) for c in rng.permutation(truth.ids)]
    retrain = retrain_cfg or load_train_config(RETRAIN_CONFIG)
    started = time.time()
    report = LoopReport()
    for r in range(1, cfg.rounds + 1):
        t0 = time.perf_counter()
        offset = ((r - 1) * cfg.decisions) % len(order)
        customers = (order[offset:] + order[:offset])[: cfg.decisions]
        say(f"round {r}/{cfg.rounds}: {len(customers):,} decisions")
        result, played = play_round(client, truth, catalog, customers, cfg, rng, advance)
        result.round = r
        say(f"round {r}: retrain on the log, promotion gate")
        days = (time.time() - started + 5) / 86_400  # this run's decisions only, not an earlier run's
        outcome, decision = run_retraining(settings, catalog, retrain, since_days=days)
        result.gate, result.promoted = decision.reason, decision.promoted
        challenger = str(outcome.version) if outcome.version is not None else None
        result.champion_policy_value, result.challenger_policy_value = greedy_values(
            settings, catalog, truth, played, [result.model_version, challenger]
        )
        if decision.promoted:
            reload = client.post("/admin/reload").json()
            say(f"round {r}: service reloaded model v{reload['model']['version']}")
        result.seconds = time.perf_counter() - t0
        report.rounds.append(result)
    return report

"""Promotion: move ``@champion`` to the challenger only when it is better beyond noise.

Both policies are scored on the same rows (the challenger's logged evaluation split: its held-out customers, or
every training row with the challenger's out-of-fold predictions, never its in-sample ones) and compared by
the paired difference of their doubly robust per-row terms (one common outcome model, the challenger's, so
the difference reflects the decisions, not the two models' opinions). The challenger is promoted when the
lower end of the 95% interval of (challenger - champion) exceeds the margin. Without a champion the
incumbent is doing nothing for everyone. Every decision, promoted or not, is logged with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nextbest.core import ope
from nextbest.core.catalog import ActionCatalog
from nextbest.errors import NotFoundError
from nextbest.settings import Settings
from nextbest.training import tracking
from nextbest.training.config import TrainConfig
from nextbest.training.evaluation import model_policy, score
from nextbest.training.jobs import logged_set, scored_for


@dataclass(frozen=True)
class PromotionDecision:
    promoted: bool
    reason: str
    challenger_version: int
    champion_version: int | None
    challenger_value: dict[str, Any]
    champion_value: dict[str, Any]
    difference: dict[str, Any]


def _champion_scores(champion: Any, record: Any, rows: Any, catalog: ActionCatalog) -> Any:
    """The champion's scores on the challenger's rows, honest as well: on rows the champion was trained on,
    its own out-of-fold predictions (logged with its training run); elsewhere the model, which never saw them."""
    import pandas as pd

    from nextbest.training.evaluation import scored
    from nextbest.training.oof_rows import logged_predictions, row_keys

    s = score(champion, rows, catalog)
    try:
        own = logged_set(record, "test", champion, catalog)
    except Exception:  # an older run without a logged split: the model's scores
        return s
    found = logged_predictions(own.frame, catalog.ids)
    if found is None:
        return s
    position = pd.Series(np.arange(len(own.frame)), index=row_keys(own.frame)).groupby(level=0).first()
    at = position.reindex(row_keys(rows.frame)).to_numpy()
    seen = ~np.isnan(at)
    if not seen.any():
        return s
    p, revenue = s.p.copy(), s.revenue.copy()
    p[seen], revenue[seen] = found[0][at[seen].astype(int)], found[1][at[seen].astype(int)]
    return scored(rows, catalog, p, revenue, s.X)


def _describe(est: dict[str, Any]) -> str:
    return f"{est['value']:+.3f} (95% CI {est['ci_low']:+.3f} .. {est['ci_high']:+.3f})"


def promote(
    settings: Settings, catalog: ActionCatalog, cfg: TrainConfig, margin: float = 0.0, dry_run: bool = False
) -> PromotionDecision:
    import mlflow

    tracking.configure(settings, cfg.experiment)
    challenger, ch_record = tracking.load_version(cfg.model_name, tracking.CHALLENGER)
    try:
        champion, cp_record = tracking.load_version(cfg.model_name, tracking.CHAMPION)
    except NotFoundError:
        champion, cp_record = None, None

    test = logged_set(ch_record, "test", challenger, catalog)
    s_ch = scored_for(challenger, test, catalog)
    n_actions = len(catalog.ids)
    args = (s_ch.reward, s_ch.action, s_ch.propensity)
    ch_terms = ope.dr_terms(
        *args, ope.deterministic_policy(model_policy(s_ch, catalog, challenger.decision_margin), n_actions), s_ch.q_hat
    )
    if champion is not None and cp_record is not None and int(cp_record.version) == int(ch_record.version):
        est = ope.from_terms(ch_terms, "dr").as_dict()
        return PromotionDecision(
            False,
            f"version {ch_record.version} is already the champion",
            int(ch_record.version),
            int(cp_record.version),
            est,
            est,
            {"value": 0.0},
        )
    if champion is not None:
        s_cp = _champion_scores(champion, cp_record, test, catalog)
        incumbent = ope.deterministic_policy(model_policy(s_cp, catalog, champion.decision_margin), n_actions)
        incumbent_name = f"champion v{cp_record.version}"
    else:
        incumbent = ope.deterministic_policy(np.full(s_ch.reward.size, catalog.index[catalog.control]), n_actions)
        incumbent_name = "no champion yet: doing nothing"
    cp_terms = ope.dr_terms(*args, incumbent, s_ch.q_hat)
    diff = ope.difference(ch_terms, cp_terms, "dr")
    ch_estimate, cp_estimate = ope.from_terms(ch_terms, "dr"), ope.from_terms(cp_terms, "dr")
    ch_value, cp_value = ch_estimate.as_dict(), cp_estimate.as_dict()
    promoted = diff.ci_low > margin
    verdict = "promoted" if promoted else "not promoted"
    reason = (
        f"challenger v{ch_record.version} vs {incumbent_name} on {diff.n:,} held-out customers: "
        f"difference {_describe(diff.as_dict())} per customer (DR, paired); margin {margin:g} -> {verdict}"
        + ("" if promoted else ": the interval does not clear the margin")
    )
    decision = PromotionDecision(
        promoted,
        reason,
        int(ch_record.version),
        int(cp_record.version) if cp_record else None,
        ch_value,
        cp_value,
        diff.as_dict(),
    )
    with mlflow.start_run(run_name=f"promote-v{ch_record.version}"):
        mlflow.set_tags(
            {
                "challenger_version": str(ch_record.version),
                "champion_version": str(cp_record.version) if cp_record else "none",
                "promoted": str(promoted and not dry_run),
                "reason": reason,
            }
        )
        mlflow.log_metrics(
            {
                "challenger_dr_value": ch_estimate.value,
                "incumbent_dr_value": cp_estimate.value,
                "difference": diff.value,
                "difference_ci_low": diff.ci_low,
                "difference_ci_high": diff.ci_high,
                "margin": margin,
            }
        )
    if promoted and not dry_run:
        client = mlflow.MlflowClient()
        if cp_record is not None:
            client.set_registered_model_alias(cfg.model_name, "previous_champion", str(cp_record.version))
        client.set_registered_model_alias(cfg.model_name, tracking.CHAMPION, str(ch_record.version))
        client.set_model_version_tag(cfg.model_name, str(ch_record.version), "promotion", reason)
    return decision

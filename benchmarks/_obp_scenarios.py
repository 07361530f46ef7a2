"""obp's ``SyntheticBanditDataset`` as external scenarios (``_scenarios`` has the list): clicks with six
actions, a continuous reward with ten, and the twenty-action probe."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from _scenario_base import Scenario, _catalog, _softmax, _timestamps  # type: ignore[import-not-found]

# --- obp SyntheticBanditDataset ---------------------------------------------------------------------------
OBP_ACTIONS = ("hold", "offer_a", "offer_b", "offer_c", "offer_d", "offer_e")
OBP_COSTS = (0.0, 0.02, 0.02, 0.03, 0.03, 0.05)


def _bandit_frames(
    fb: dict[str, Any], hold: dict[str, Any], names: Sequence[str], seed: int, outcomes: dict[str, np.ndarray]
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(log, held-out customers, feature names) from obp's logged feedback ``fb`` and the held-out draw
    ``hold``: UUID customer ids, the contexts as features, the logged action, ``outcomes`` and its pscore."""
    rng = np.random.default_rng(seed)
    n_log, n_holdout = len(fb["action"]), len(hold["action"])
    feats = [f"c{j}" for j in range(fb["context"].shape[1])]
    ids = [str(uuid.UUID(int=int(v))) for v in rng.integers(0, 2**63, n_log + n_holdout)]
    log = pd.DataFrame({"customer_id": ids[:n_log], "event_timestamp": _timestamps(n_log, rng)})
    log = pd.concat([log, pd.DataFrame(fb["context"], columns=feats)], axis=1)
    log["action"] = np.array(names, dtype=object)[fb["action"]]
    for column, values in outcomes.items():
        log[column] = values
    log["propensity"] = fb["pscore"]
    holdout = pd.concat(
        [pd.DataFrame({"customer_id": ids[n_log:]}), pd.DataFrame(hold["context"], columns=feats)], axis=1
    )
    return log, holdout, feats


def obp_bandit(
    n_log: int, n_holdout: int, seed: int, targeted: bool = False, uniform_share: float = 0.3, sharpness: float = 1.0
) -> Scenario:
    """``targeted``: a softmax policy mixed with ``uniform_share`` of uniform (0.3: every action keeps >= 5%;
    smaller shares and a ``sharpness`` above 1 give the thin logs of a production bandit)."""
    from obp.dataset import SyntheticBanditDataset, logistic_reward_function

    k, dim = len(OBP_ACTIONS), 6
    policy_rng = np.random.default_rng(seed + 1)
    weights = sharpness * policy_rng.normal(0.0, 0.8, size=(dim, k))

    def targeted_behaviour(context: np.ndarray, action_context: np.ndarray, random_state: int | None = None) -> Any:
        probs = _softmax(context @ weights)
        return (1.0 - uniform_share) * probs + uniform_share / k

    def behaviour(context: np.ndarray) -> np.ndarray:
        if targeted:
            return np.asarray(targeted_behaviour(context, np.eye(k)))
        return np.full((context.shape[0], k), 1.0 / k)

    dataset = SyntheticBanditDataset(
        n_actions=k,
        dim_context=dim,
        reward_type="binary",
        reward_function=logistic_reward_function,
        behavior_policy_function=targeted_behaviour if targeted else None,
        random_state=seed,
    )
    fb = dataset.obtain_batch_bandit_feedback(n_rounds=n_log)
    hold = dataset.obtain_batch_bandit_feedback(n_rounds=n_holdout)
    clicks = fb["reward"].astype(int)
    log, holdout, feats = _bandit_frames(fb, hold, OBP_ACTIONS, seed, {"converted": clicks, "revenue": clicks * 1.0})
    truth = hold["expected_reward"] * 1.0 - np.asarray(OBP_COSTS)[None, :]
    actions = [
        {"id": a, "channels": ["email"], "category": "none" if a == "hold" else "promo", "value": 1, "cost": c}
        for a, c in zip(OBP_ACTIONS, OBP_COSTS, strict=True)
    ]
    return Scenario(
        name="obp_targeted" if targeted else "obp",
        description="obp SyntheticBanditDataset, 6 actions, logistic clicks worth 1, control 'hold'",
        log=log,
        holdout=holdout,
        truth=truth,
        catalog=_catalog(actions, "hold"),
        features=feats,
        log_policy=behaviour(fb["context"]),
        holdout_policy=behaviour(hold["context"]),
        value_per_conversion=dict.fromkeys(OBP_ACTIONS, 1.0),
    )


OBP_CONTINUOUS_ACTIONS = 10
OBP_CONTINUOUS_COST = 0.1  # per send of any action but the control


def obp_continuous(n_log: int, n_holdout: int, seed: int) -> Scenario:
    """obp's ``SyntheticBanditDataset`` with a continuous reward (an order value, linear in the context and
    the action, Gaussian noise of sd 1), ten actions, and obp's own linear logging policy (not uniform:
    probabilities 0.06-0.14 per action). The first action is the control; the others cost 0.1 per send."""
    from obp.dataset import SyntheticBanditDataset, linear_behavior_policy, linear_reward_function

    k, dim = OBP_CONTINUOUS_ACTIONS, 5
    dataset = SyntheticBanditDataset(
        n_actions=k,
        dim_context=dim,
        reward_type="continuous",
        reward_function=linear_reward_function,
        behavior_policy_function=linear_behavior_policy,
        random_state=seed,
    )
    fb = dataset.obtain_batch_bandit_feedback(n_rounds=n_log)
    hold = dataset.obtain_batch_bandit_feedback(n_rounds=n_holdout)

    def policy(context: np.ndarray) -> np.ndarray:  # the logging probabilities, as the generator drew them
        return np.asarray(linear_behavior_policy(context, dataset.action_context, random_state=seed))

    names = ["control", *(f"action_{j}" for j in range(1, k))]
    costs = np.array([0.0, *([OBP_CONTINUOUS_COST] * (k - 1))])
    log, holdout, feats = _bandit_frames(fb, hold, names, seed, {"revenue": fb["reward"].astype(float)})
    actions = [
        {"id": a, "channels": ["email"], "category": "none" if j == 0 else "promo", "value": 1, "cost": float(c)}
        for j, (a, c) in enumerate(zip(names, costs, strict=True))
    ]
    return Scenario(
        name="obp_continuous",
        description="obp SyntheticBanditDataset, 10 actions, continuous linear reward, obp's linear logging policy",
        log=log,
        holdout=holdout,
        truth=hold["expected_reward"] - costs[None, :],
        catalog=_catalog(actions, "control"),
        features=feats,
        log_policy=policy(fb["context"]),
        holdout_policy=policy(hold["context"]),
        outcome="continuous",
    )


def obp_many(n_log: int, n_holdout: int, seed: int, k: int = 20) -> Scenario:
    """obp's ``SyntheticBanditDataset`` with ``k`` actions logged uniformly (logistic clicks worth 1, the
    control ``hold``, a cost per send drawn between 0 and 0.05 per action): few rows per action."""
    from obp.dataset import SyntheticBanditDataset, logistic_reward_function

    dataset = SyntheticBanditDataset(
        n_actions=k, dim_context=6, reward_type="binary", reward_function=logistic_reward_function, random_state=seed
    )
    fb = dataset.obtain_batch_bandit_feedback(n_rounds=n_log)
    hold = dataset.obtain_batch_bandit_feedback(n_rounds=n_holdout)
    names = ["hold", *(f"offer_{j:02d}" for j in range(1, k))]
    costs = np.array([0.0, *np.random.default_rng(seed + 1).uniform(0.0, 0.05, k - 1).round(3)])
    clicks = fb["reward"].astype(int)
    log, holdout, feats = _bandit_frames(fb, hold, names, seed, {"converted": clicks, "revenue": clicks * 1.0})
    actions = [
        {"id": a, "channels": ["email"], "category": "none" if j == 0 else "promo", "value": 1, "cost": float(c)}
        for j, (a, c) in enumerate(zip(names, costs, strict=True))
    ]
    return Scenario(
        name="obp_many",
        description=f"obp SyntheticBanditDataset, {k} actions logged uniformly, clicks worth 1",
        log=log,
        holdout=holdout,
        truth=hold["expected_reward"] - costs[None, :],
        catalog=_catalog(actions, "hold"),
        features=feats,
        log_policy=np.full((n_log, k), 1.0 / k),
        holdout_policy=np.full((n_holdout, k), 1.0 / k),
        value_per_conversion=dict.fromkeys(names, 1.0),
    )

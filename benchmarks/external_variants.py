"""Experiments on variants of the external scenarios, for phenomena the main table does not hold.

``python benchmarks/external_variants.py --mode 1 --adj 2 --size 10000 --seeds 0 1 2 3 4`` runs causalml's
``synthetic_data`` with ``adj``, which shifts the treatment propensities toward 0 (thin overlap: treated
logged with probability 0.015-0.55 in mode 1), and values nextbest (greedy, its defaults, as in
``external_quality.py --path inprocess``) beside the S-, T- and X-learner references on 50,000 held-out
customers. Two hypotheses can be tried with the generator's own propensities standing in for a perfect
propensity model:

* ``--propensity-feature``: the propensity of treatment as one more feature, in the log and for the held-out
  customers (against an S-learner's regularisation-induced confounding);
* ``--overlap-shrink T [T ...]``: nextbest's estimated effect replaced by its average where the propensity of
  either arm is below T (against extrapolating where the log rarely acted), valued after the fact;
* ``--shrink-disagreeing T [T ...]``: the same, only for customers on whom the blend's members (the learners
  of net value) disagree on the sign of the effect (what the overlap guard, ``overlap_guard`` in the training
  config, now does at serving with a propensity model fitted on the log; this is the post hoc check with the
  generator's propensities, on top of whatever the guard already did).

``--obp-thin UNIFORM_SHARE SHARPNESS`` runs obp's bandit instead, logged by a sharper targeted policy with
less uniform mixed in (the thin log of a production bandit: ``0.05 2`` leaves most treatments below 5% for
most customers), nextbest beside the references; ``--train-config`` trains nextbest with another config (for
example ``overlap_guard: 0``).

Not part of the README's table; the figures are in docs/decision-quality.md ("Not settled").
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
PROPENSITY_COLUMN = "logging_score"  # not p_<action>: those names are read as ground truth by `train --data`


def _figures(lift: float, worse: float) -> str:
    return f"lift capture {lift:7.4f}   worse than nothing {worse:6.2%}"


def _members_disagree(model: Any, sc: Any) -> np.ndarray:
    """(n,) whether the blend's net-value members disagree on the sign of the treatment's net effect (action 1
    against the control, action 0, as in every nie_wager scenario); all False with fewer than two members."""
    X = model.encoder.transform_frame(sc.holdout)
    net = [m.predict(X, sc.actions, sc.control) - sc.costs for m in model.members if m.target == "revenue"]
    if len(net) < 2:
        return np.zeros(len(sc.holdout), dtype=bool)
    from nextbest.model.overlap import disagreement

    out: np.ndarray = disagreement(net, 0)[:, 1]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", type=int, default=1, choices=[1, 2, 3, 4])
    parser.add_argument("--adj", type=float, default=2.0, help="causalml's shift of the propensities toward 0")
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--holdout", type=int, default=50_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--propensity-feature", action="store_true")
    parser.add_argument("--overlap-shrink", type=float, nargs="*", default=[])
    parser.add_argument("--shrink-disagreeing", type=float, nargs="*", default=[])
    parser.add_argument("--no-references", action="store_true")
    parser.add_argument(
        "--obp-thin",
        type=float,
        nargs=2,
        metavar=("UNIFORM_SHARE", "SHARPNESS"),
        help="instead of nie_wager: obp's bandit logged by a softmax policy this sharp, mixed with this share of "
        "uniform (0.3 1 is obp_targeted; 0.05 2 leaves most actions below 5%% for most customers)",
    )
    parser.add_argument("--train-config", type=Path, default=None, help="a training config for nextbest")
    args = parser.parse_args()
    if args.obp_thin and (args.propensity_feature or args.overlap_shrink or args.shrink_disagreeing):
        parser.error("--obp-thin runs nextbest and the references only")
    warnings.filterwarnings("ignore")

    import causalml.dataset as causal_datasets
    from _references import REFERENCES  # type: ignore[import-not-found]
    from _scenarios import nie_wager, obp_bandit  # type: ignore[import-not-found]
    from external_quality import evaluate, nextbest_inprocess  # type: ignore[import-not-found]

    # nie_wager imports synthetic_data from causalml.dataset when called: give it the shifted propensities
    causal_datasets.synthetic_data = functools.partial(causal_datasets.synthetic_data, adj=args.adj)
    refs = [] if args.no_references else ["s_learner", "t_learner", "x_learner"]
    totals: dict[str, list[tuple[float, float]]] = {}
    for seed in args.seeds:
        if args.obp_thin:
            share, sharpness = args.obp_thin
            sc = obp_bandit(args.size, args.holdout, seed, True, share, sharpness)
        else:
            sc = nie_wager(args.mode, args.size, args.holdout, seed)
        treat_log, treat_hold = sc.log_policy[:, 1:].min(axis=1), sc.holdout_policy[:, 1]
        if args.propensity_feature:
            sc.log[PROPENSITY_COLUMN] = treat_log
            sc.holdout[PROPENSITY_COLUMN] = treat_hold
        figures = {}
        for ref in refs:
            q = REFERENCES[ref](sc, seed)
            figures[ref] = evaluate(sc, q.argmax(axis=1), q)
        with tempfile.TemporaryDirectory(prefix="nextbest-variant-") as tmp:
            keep = args.shrink_disagreeing != []
            greedy, _, _, scores, info = nextbest_inprocess(sc, Path(tmp), args.train_config, keep=keep)
        figures["nextbest"] = evaluate(sc, greedy, scores)
        effect = scores[:, 1] - scores[:, 0]
        thinness = np.minimum(treat_hold, 1 - treat_hold)
        for threshold in args.overlap_shrink:
            chosen = np.where(np.where(thinness < threshold, effect.mean(), effect) > 0, 1, 0)
            figures[f"nextbest, shrunk below {threshold}"] = evaluate(sc, chosen, None)
        if args.shrink_disagreeing:
            disagree = _members_disagree(info["model"], sc)
            for threshold in args.shrink_disagreeing:
                shrink = disagree & (thinness < threshold)
                chosen = np.where(np.where(shrink, effect.mean(), effect) > 0, 1, 0)
                figures[f"nextbest, disagreeing below {threshold}"] = evaluate(sc, chosen, None)
        what = f"obp, thin {args.obp_thin}" if args.obp_thin else f"mode {args.mode}, adj {args.adj}"
        print(
            f"{what}, {args.size:,} rows, seed {seed}: (least likely) treatment logged with probability "
            f"{treat_log.min():.3f}-{treat_log.max():.3f}; nextbest {info['blend']}, overlap guard on "
            f"{info['guarded'] or 0:.2%} of the log"
        )
        for name, f in figures.items():
            totals.setdefault(name, []).append((f["lift_capture"], f["worse_than_nothing"]))
            print(f"  {name:<32} {_figures(f['lift_capture'], f['worse_than_nothing'])}")
    print(f"mean over seeds {args.seeds}:")
    for name, values in totals.items():
        lift, worse = np.mean(values, axis=0)
        print(f"  {name:<32} {_figures(lift, worse)}")


if __name__ == "__main__":
    main()

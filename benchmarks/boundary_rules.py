"""Decision rules at the boundary: what other rules would have decided with nextbest's own scores.

The customers a policy leaves worse off than with nothing sit where the estimated effect is near zero. This
script trains nextbest as ``external_quality.py --path inprocess`` does (defaults, no tuning), then decides
the same held-out customers again with rules that trade lift for fewer customers worse off, and prints each
rule's lift capture and share worse than nothing beside the default's and the references':

* ``margin 0.005`` ... ``margin 0.02``: act only when the best effect exceeds that many value scales (the
  model's own unit: the standard deviation of the logged net reward), whatever the out-of-fold evidence says;
* ``calibrated``: the effects' spread around their average rescaled by the slope of the doubly robust (DR)
  contrasts on the model's out-of-fold ones (a best linear predictor, clipped to [0, 3]: it shrinks a spread
  the DR contrasts do not back, and stretches one they back more than the model shows);
* ``shrunk``: the same slope clipped to [0, 1], taken unconditionally (the default takes a shrinkage only when
  it wins out of fold);
* ``isotonic``: each treatment's effect replaced by an isotonic regression of its DR contrasts on the model's
  out-of-fold effects (a causal isotonic calibration);
* ``constant``: every customer gets the action whose average effect is best (the model's own average).

Everything is fitted on the out-of-fold predictions the training already made (read from the blend it chose)
and applied to the held-out customers' scores. Not part of the README's table; the figures are in
docs/decision-quality.md ("Not settled").

    python benchmarks/boundary_rules.py --scenarios nie_wager_m2 obp --sizes 10000 [--seeds 0 1 2]
        [--references s_learner x_learner] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
MARGINS = (0.005, 0.01, 0.02)


def _decide(effects: np.ndarray, control: int, threshold: float = 0.0) -> np.ndarray:
    """The best action where its effect (against the control, whose column is 0) clears ``threshold``."""
    best = effects.copy()
    best[:, control] = -np.inf
    chosen = best.argmax(axis=1)
    return np.where(best[np.arange(len(best)), chosen] > threshold, chosen, control)


def _slope(deviation: np.ndarray, target: np.ndarray) -> float:
    denominator = float((deviation * deviation).sum())
    return float((deviation * target).sum()) / denominator if denominator > 0 else 0.0


def rules(blend: Any, held: np.ndarray, control: int, scale: float) -> dict[str, np.ndarray]:
    """Each rule's choices for the held-out customers, from the blend's out-of-fold net values and DR targets
    (``blend``: ``training.selection.Blend``) and the held-out net values ``held`` (n, K)."""
    from sklearn.isotonic import IsotonicRegression

    from nextbest.training.stacking import _contrast_rows

    oof, dr = _contrast_rows(blend.q_blend, control), _contrast_rows(blend.gamma, control)
    average = oof.mean(axis=0)
    effects = np.delete(held - held[:, [control]], control, axis=1)
    slope = _slope((oof - average).ravel(), (dr - average).ravel())

    def full(treatments: np.ndarray) -> np.ndarray:
        return np.insert(treatments, control, 0.0, axis=1)

    out = {f"margin {m}": _decide(full(effects), control, m * scale) for m in MARGINS}
    out["calibrated"] = _decide(full(average + min(max(slope, 0.0), 3.0) * (effects - average)), control)
    out["shrunk"] = _decide(full(average + min(max(slope, 0.0), 1.0) * (effects - average)), control)
    isotonic = [
        IsotonicRegression(out_of_bounds="clip").fit(oof[:, j], dr[:, j]).predict(effects[:, j])
        for j in range(effects.shape[1])
    ]
    out["isotonic"] = _decide(full(np.column_stack(isotonic)), control)
    out["constant"] = _decide(full(np.tile(average, (len(effects), 1))), control)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", nargs="+", required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--holdout", type=int, default=50_000)
    parser.add_argument("--references", nargs="*", default=["s_learner", "x_learner"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    from _references import REFERENCES  # type: ignore[import-not-found]
    from _scenarios import PROBES, SCENARIOS  # type: ignore[import-not-found]
    from external_quality import evaluate, nextbest_inprocess  # type: ignore[import-not-found]

    import nextbest.training.pipeline as pipeline

    chosen: list[Any] = []
    choose_blend = pipeline.choose_blend

    def keep_blend(*a: Any, **kw: Any) -> Any:  # the blend training chose, with its out-of-fold arrays
        chosen.append(choose_blend(*a, **kw))
        return chosen[-1]

    pipeline.choose_blend = keep_blend  # type: ignore[assignment]
    results: list[dict[str, Any]] = []
    totals: dict[tuple[str, int, str], list[tuple[float, float]]] = {}
    for name in args.scenarios:
        for size in args.sizes:
            for seed in args.seeds:
                sc = {**SCENARIOS, **PROBES}[name](size, args.holdout, seed)
                control = sc.actions.index(sc.control)
                figures: dict[str, dict[str, Any]] = {}
                for ref in args.references:
                    q = REFERENCES[ref](sc, seed)
                    figures[ref] = evaluate(sc, q.argmax(axis=1), None)
                with tempfile.TemporaryDirectory(prefix="nextbest-boundary-") as tmp:
                    greedy, _, _, scores, info = nextbest_inprocess(sc, Path(tmp), keep=True)
                figures["nextbest"] = evaluate(sc, greedy, None)
                for rule, choice in rules(chosen[-1], scores, control, info["model"].value_scale or 1.0).items():
                    figures[f"nextbest, {rule}"] = evaluate(sc, choice, None)
                print(f"{name}, {size:,} rows, seed {seed}: blend {info['blend']}")
                for policy, f in figures.items():
                    lift, worse = f["lift_capture"], f["worse_than_nothing"]
                    totals.setdefault((name, size, policy), []).append((lift, worse))
                    results.append({"scenario": name, "size": size, "seed": seed, "policy": policy, **f})
                    print(f"  {policy:<28} lift capture {lift:7.4f}   worse than nothing {worse:6.2%}")
                if args.json:
                    args.json.write_text(json.dumps(results, indent=1, default=float))
    print(f"\nmean over seeds {args.seeds}:")
    for (name, size, policy), values in totals.items():
        lift, worse = np.mean(values, axis=0)
        print(f"  {name:<22} {size:>8,} {policy:<28} lift capture {lift:7.4f}   worse than nothing {worse:6.2%}")


if __name__ == "__main__":
    main()

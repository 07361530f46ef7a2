"""The same training job in process and on lightgbm.dask (a LocalCluster, 2 workers x 1 thread), on the same
data in the same run: wall time and decision quality against the ground truth (true value, ratio to the
oracle, lift capture, DR estimate with its 95% interval), and how closely the two models' predictions agree.

Then the cost of early stopping on Dask, on the S-learner's design matrix: the stopping callbacks (the whole
validation split scored incrementally by LightGBM on every worker) against the same number of trees fitted
without them, and against stopping without callbacks: fitting all ``max_trees``, then scoring every prefix.

    python benchmarks/training_dask.py [--customers 100000] [--seed 7] [--learners s t dr]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _count_fits() -> list[int]:
    """Counts LightGBM fits (every learner's and the value head's) by wrapping ``fit_booster``."""
    from nextbest.training import heads, learners

    calls = [0]
    original = learners.fit_booster

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    learners.fit_booster = counted  # type: ignore[assignment]
    heads.fit_booster = counted  # type: ignore[assignment]
    return calls


def _stopping_cost(result: Any, catalog: Any, cfg: Any) -> None:
    import numpy as np

    from nextbest.model.descriptors import ActionDescriptors
    from nextbest.training.distributed import training_backend
    from nextbest.training.learners import fit_booster, stabilised_weights

    enc = result.model.encoder
    d = ActionDescriptors.from_catalog(catalog, enc.feature_names)

    def design(split: str) -> tuple[Any, Any, Any]:
        part = result.splits[split]
        action = part.action_index(catalog)
        X = d.design(enc.transform_frame(part.frame), action)
        w = stabilised_weights(action, part.frame["propensity"].to_numpy())
        return X, part.frame["converted"].to_numpy(), w

    train, valid = design("train"), design("valid")
    params, rounds = cfg.grid[0], cfg.early_stopping_rounds
    cats = [*enc.categorical_indices, len(enc.feature_names)]
    with training_backend(cfg.model_copy(update={"backend": "dask"})) as fitter:
        assert fitter is not None
        seen: list[dict[str, Any]] = []
        original = fitter.fit

        def capture(lgb_params: dict[str, Any], *rest: Any) -> Any:
            seen.append(lgb_params)  # fit_booster's LightGBM parameters, for the plain fits below
            return original(lgb_params, *rest)

        fitter.fit = capture  # type: ignore[method-assign]
        fit_booster(params.model_copy(update={"max_trees": 10}), "binary", train, valid, cats, 5, cfg.seed, 1)  # warm
        t0 = time.perf_counter()
        booster = fit_booster(params, "binary", train, valid, cats, rounds, cfg.seed, cfg.threads)
        with_callbacks = time.perf_counter() - t0
        best = booster.num_trees()

        def plain(trees: int) -> tuple[float, Any]:
            t = time.perf_counter()  # the data placement included, as in fit_booster
            X, y, w = fitter.spread(train, len(fitter.workers))
            model = fitter.estimator(seen[-1], trees)
            model.fit(X, y, sample_weight=w, categorical_feature=cats)
            return time.perf_counter() - t, model.booster_

        no_callbacks, _ = plain(best + rounds)
        full_fit, full = plain(params.max_trees)
    Xv, n = valid[0], full.num_trees()
    t0 = time.perf_counter()
    np.cumsum([full.predict(Xv, raw_score=True, start_iteration=i, num_iteration=1) for i in range(n)], axis=0)
    one_tree_steps = time.perf_counter() - t0
    ks = np.linspace(1, n, 12).astype(int)  # predict(num_iteration=k) costs about k: integrate 12 samples
    costs = []
    for k in ks:
        t = time.perf_counter()
        full.predict(Xv, num_iteration=int(k))
        costs.append(time.perf_counter() - t)
    prefixes = float(np.trapezoid(costs, ks))
    print(f"\nearly stopping on Dask, S-learner: {len(train[1]):,} training rows, {len(valid[1]):,} validation rows")
    rows = [
        (f"fit with the stopping callbacks ({best} best + {rounds} trees)", with_callbacks),
        (f"the same {best + rounds} trees without them", no_callbacks),
        (f"instead: all max_trees ({params.max_trees}) without them", full_fit),
        ("  + its validation curve, one tree per predict call", one_tree_steps),
        ("  + its validation curve, predict(num_iteration=k) for each k (est.)", prefixes),
    ]
    for label, seconds in rows:
        print(f"  {label:<70} {seconds:7.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--learners", nargs="+", default=None, help="default: the default config's (s t dr)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    import numpy as np

    from nextbest.core.catalog import load_catalog
    from nextbest.features.store import apply
    from nextbest.settings import load_settings
    from nextbest.training.config import TrainConfig
    from nextbest.training.jobs import build_dataset, world_logging_policy
    from nextbest.training.pipeline import train
    from nextbest.world.config import WorldConfig
    from nextbest.world.generate import generate_world

    cfg = TrainConfig() if args.learners is None else TrainConfig(learners=tuple(args.learners))
    settings = load_settings(home=Path(tempfile.mkdtemp(prefix="nextbest-dask-")))
    catalog = load_catalog(settings.catalog_path)  # type: ignore[arg-type]
    world = WorldConfig(customers=args.customers, seed=args.seed, as_of=datetime(2026, 10, 1, tzinfo=UTC))
    print(f"generating {args.customers:,} customers, building the training set through Feast ...", flush=True)
    generate_world(world, catalog, settings.data_dir)  # type: ignore[arg-type]
    apply(settings)
    ds = build_dataset(settings, catalog, cfg, None)
    logging_probs = world_logging_policy(settings, catalog, ds)
    fits = _count_fits()
    results, seconds, counts = {}, {}, {}
    for backend in ("local", "dask"):
        fits[0] = 0
        t0 = time.perf_counter()
        results[backend] = train(ds, catalog, cfg.model_copy(update={"backend": backend}), logging_probs=logging_probs)
        seconds[backend], counts[backend] = time.perf_counter() - t0, fits[0]

    local = results["local"]
    print(
        f"\n{local.sizes['train']:,} training rows, {local.sizes['valid']:,} validation, {local.sizes['test']:,} held "
        f"out; {len(local.candidates)} candidates ({' '.join(cfg.learners)} x {len(cfg.grid)}); "
        f"oracle {local.report.truth['oracle_value']:.3f}, no action {local.report.truth['no_action_true_value']:.3f}"
    )
    print(
        f"{'backend':<18} {'wall s':>6} {'cluster s':>9} {'fit+tune s':>10} {'fits':>5} {'trees':>6} {'chosen':>6} "
        f"{'true value':>10} {'vs oracle':>9} {'lift capture':>12} {'DR value [95% CI]':>24}"
    )
    for backend, r in results.items():
        m, chosen = r.report.policies["model"], f"{r.chosen.learner}-{r.chosen.grid_index}"
        dr, trees = m["dr"], sum(c.trees for c in r.candidates)
        print(
            f"{r.model.metadata['training_backend']:<18} {seconds[backend]:6.1f} "
            f"{r.timings.get('cluster', 0.0):9.1f} {r.timings['fit_and_tune']:10.1f} {counts[backend]:5d} "
            f"{trees:6d} {chosen:>6} {m['true_value']:10.3f} {m['ratio_to_oracle']:9.1%} {m['lift_capture']:12.1%} "
            f"{dr['value']:8.3f} [{dr['ci_low']:6.3f}, {dr['ci_high']:6.3f}]"
        )
    test = local.splits["test"].frame
    p = {b: r.model.predict(r.model.encoder.transform_frame(test))[0] for b, r in results.items()}
    uplift = {b: (v - v[:, [0]])[:, 1:].ravel() for b, v in p.items()}
    gap = results["dask"].report.policies["model"]["true_value"] - local.report.policies["model"]["true_value"]
    print(
        f"held-out agreement: P(convert) correlation {np.corrcoef(p['local'].ravel(), p['dask'].ravel())[0, 1]:.4f}, "
        f"uplift correlation {np.corrcoef(uplift['local'], uplift['dask'])[0, 1]:.4f}; "
        f"true value dask - local {gap:+.3f} ({gap / local.report.truth['oracle_value']:+.2%} of the oracle)"
    )
    _stopping_cost(results["dask"], catalog, cfg)


if __name__ == "__main__":
    main()

"""Decision quality on data nextbest did not generate: nextbest as a user runs it, beside reference learners.

For every scenario (``benchmarks/_scenarios.py``: causalml's ``make_uplift_classification``,
``make_uplift_classification_logistic`` and ``synthetic_data`` modes 1-4, obp's ``SyntheticBanditDataset``
with clicks and with a continuous reward, randomised and targeted logs; ``--scenarios`` also takes the probes
``obp_many`` and ``uplift_logistic_rare``, which the default run leaves out), training size and seed, the
same logged rows go to

* **nextbest**, exactly as a user runs it, with default settings and no per-scenario tuning:
  ``nextbest train --data log.parquet --catalog actions.yaml``, then
  ``nextbest decide-batch --input holdout.parquet --model challenger --scores`` (``--path cli``, the default;
  ``--path inprocess`` calls the same functions without MLflow and subprocesses, for quick iterations);
* the references of ``benchmarks/_references.py``: a plain LightGBM S-learner (action as a feature, regression
  on net value), a LightGBM T-learner with early stopping, causalml's X-learner and UpliftRandomForest (or its
  causal forest for a continuous outcome), propensity-only ranking, the best single action; and doing nothing
  and the oracle.

Every policy is valued on the held-out customers with the scenario's truth (expected net value of every
action): value per customer, ratio to the oracle, lift capture (value - nothing) / (oracle - nothing), share
of customers given an action worse than doing nothing, and the Qini coefficient of each treatment's ranking
against its true uplift. nextbest is reported three times: its greedy choice, as explored (the served action
with 5% value-aware exploration, the control group aside) and as served (exploration and the 1% control
group, which gives no action by design). A (scenario, size) passes when nextbest's greedy lift capture,
averaged over seeds, is at least the best reference's, it is above doing nothing in every seed, and its share
worse than nothing is no larger than that best reference's.

    pip install -e '.[bench]'    # causalml, obp (and torch for it): make bench installs them
    python benchmarks/external_quality.py [--sizes 10000 50000 200000] [--seeds 0 1 2] [--scenarios ...]
        [--holdout 50000] [--path cli|inprocess] [--cache refs.json] [--json results.json] [--no-forest]
        [--markdown] [--from-json results.json ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

REFERENCE_NAMES = ("s_learner", "t_learner", "x_learner", "uplift_forest")  # the learners nextbest must match
BASELINES = ("propensity_only", "best_single_action")
SERVED_WITHIN = 0.02  # lift capture the served policy (exploring, control group) may cost against greedy


def true_qini(score: np.ndarray, uplift: np.ndarray, bins: int = 100) -> float:
    """Qini coefficient of ranking customers by ``score`` against their true ``uplift``: the area between the
    model's cumulative-gain curve and random targeting, over the same area for the perfect ranking."""
    n = uplift.size
    if n == 0 or np.allclose(uplift, uplift[0]):
        return float("nan")
    at = np.linspace(0, n, bins + 1).astype(int)
    fraction = at / n

    def area(order: np.ndarray) -> float:
        gain = np.concatenate([[0.0], np.cumsum(uplift[order])])[at]
        return float(np.trapezoid(gain - fraction * uplift.sum(), fraction))

    best = area(np.argsort(-uplift, kind="stable"))
    score = np.nan_to_num(score, nan=-np.inf)
    return area(np.argsort(-score, kind="stable")) / best if best > 0 else float("nan")


def evaluate(sc: Any, chosen: np.ndarray, scores: np.ndarray | None) -> dict[str, Any]:
    truth = sc.truth
    control = sc.actions.index(sc.control)
    rows = np.arange(len(truth))
    value = float(truth[rows, chosen].mean())
    oracle = float(truth.max(axis=1).mean())
    nothing = float(truth[:, control].mean())
    out: dict[str, Any] = {
        "value": value,
        "ratio_to_oracle": value / oracle if oracle else float("nan"),
        "lift_capture": (value - nothing) / (oracle - nothing) if oracle != nothing else float("nan"),
        "worse_than_nothing": float((truth[rows, chosen] < truth[:, control] - 1e-9).mean()),
        "mix": {a: float((chosen == k).mean()) for k, a in enumerate(sc.actions)},
    }
    if scores is not None:
        out["qini"] = {
            a: true_qini(scores[:, k] - scores[:, control], truth[:, k] - truth[:, control])
            for k, a in enumerate(sc.actions)
            if k != control
        }
    return out


# --- nextbest, as a user runs it ------------------------------------------------------------------------------
def _write_inputs(sc: Any, work: Path) -> tuple[Path, Path, Path]:
    import yaml

    log, holdout, catalog = work / "log.parquet", work / "holdout.parquet", work / "actions.yaml"
    sc.log.to_parquet(log)
    sc.holdout.to_parquet(holdout)
    catalog.write_text(yaml.safe_dump(sc.catalog, sort_keys=False))
    return log, holdout, catalog


def nextbest_cli(
    sc: Any, work: Path, config: Path | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """``nextbest train --data`` and ``nextbest decide-batch``, in a fresh NEXTBEST_HOME, defaults otherwise."""
    import pandas as pd

    log, holdout, catalog = _write_inputs(sc, work)
    exe = str(Path(sys.executable).with_name("nextbest"))
    env = {**os.environ, "NEXTBEST_HOME": str(work / "home")}
    env.pop("NEXTBEST_CATALOG_PATH", None)
    started = time.perf_counter()
    extra = ["--config", str(config)] if config is not None else []
    subprocess.run([exe, "train", "--data", str(log), "--catalog", str(catalog), *extra], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    train_s = time.perf_counter() - started
    out = work / "decisions.parquet"
    subprocess.run(
        [exe, "decide-batch", "--input", str(holdout), "--output", str(out), "--model", "challenger", "--scores"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    frame = pd.read_parquet(out)
    return (*_decoded(sc, frame), {"train_seconds": train_s})


def nextbest_inprocess(
    sc: Any, work: Path, config: Path | None = None, keep: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """The same functions as the CLI path (file validation, training with default settings, the batch
    decision core with the default rules), without MLflow and subprocesses; ``keep``: the model in the info."""
    from nextbest.core.catalog import ActionCatalog
    from nextbest.core.decision import DecisionPolicy
    from nextbest.core.features import all_fields
    from nextbest.core.rules import load_ruleset
    from nextbest.serving.batch import inline_features, run_batch
    from nextbest.settings import load_settings
    from nextbest.training.config import load_train_config
    from nextbest.training.dataset import from_frame
    from nextbest.training.pipeline import train

    settings = load_settings(home=work / "home")
    catalog = ActionCatalog.model_validate(sc.catalog)
    cfg = load_train_config(config)
    started = time.perf_counter()
    result = train(from_frame(sc.log, catalog, "file:log.parquet", cfg.min_rows_per_action), catalog, cfg)
    train_s = time.perf_counter() - started
    assert settings.rules_path is not None
    ruleset = load_ruleset(settings.rules_path, settings.rule_params_path)
    policy = DecisionPolicy(catalog, ruleset, fields=all_fields())
    frame = sc.holdout.copy()
    decided = run_batch(policy, result.model, frame, inline_features(frame, result.model), "any", scores=True).frame
    guard = result.model.metadata.get("overlap_guard")
    info: dict[str, Any] = {
        "train_seconds": train_s,
        "blend": result.blend,
        "margin": result.model.decision_margin,
        "guarded": None if guard is None else guard["guarded_share"],
        "gates": result.chosen.valid_value["selection"]["gates"],  # the blend's evidence (benchmarks/gate_evidence.py)
    }
    if keep:
        info["model"] = result.model
    return (*_decoded(sc, decided), info)


def _decoded(sc: Any, frame: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    index = {a: k for k, a in enumerate(sc.actions)}
    if list(frame["customer_id"].astype(str)) != list(sc.holdout["customer_id"].astype(str)):
        raise RuntimeError("decide-batch returned customers in another order")
    greedy = frame["greedy_action"].map(index).to_numpy()
    served = frame["action"].map(index).to_numpy()
    explored = np.where(frame["control"].to_numpy(dtype=bool), greedy, served)  # served, but for the control group
    scores = np.column_stack([frame[f"net_value__{a}"].to_numpy(dtype=float) for a in sc.actions])
    return greedy, served, explored, scores


# --- the run ----------------------------------------------------------------------------------------------------
def _source_hash() -> str:
    digest = hashlib.sha256()
    for name in ("_scenario_base.py", "_scenarios.py", "_obp_scenarios.py", "_references.py"):
        digest.update((HERE / name).read_bytes())
    return digest.hexdigest()[:12]


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from _references import REFERENCES  # type: ignore[import-not-found]
    from _scenarios import PROBES, SCENARIOS  # type: ignore[import-not-found]
    from tqdm import tqdm

    cache: dict[str, Any] = {}
    if args.cache and Path(args.cache).is_file():
        cache = json.loads(Path(args.cache).read_text())
    version = _source_hash()
    refs = [r for r in (*REFERENCE_NAMES, *BASELINES) if not (args.no_forest and r == "uplift_forest")]
    runner = partial(nextbest_cli if args.path == "cli" else nextbest_inprocess, config=args.train_config)
    rows: list[dict[str, Any]] = []
    jobs = [(s, n, seed) for s in args.scenarios for n in args.sizes for seed in args.seeds]
    for name, size, seed in tqdm(jobs, desc="external quality", unit="run"):
        sc = {**SCENARIOS, **PROBES}[name](size, args.holdout, seed)
        control = sc.actions.index(sc.control)
        base = {"scenario": name, "size": len(sc.log), "seed": seed}  # rows logged (ihdp has at most 522)
        nothing = np.full(len(sc.truth), control)
        rows.append({**base, "policy": "no_action", **evaluate(sc, nothing, None)})
        rows.append({**base, "policy": "oracle", **evaluate(sc, sc.truth.argmax(axis=1), sc.truth)})
        for ref in refs:
            key = f"{version}:{name}:{size}:{seed}:{args.holdout}:{ref}"
            if key not in cache:
                started = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    q = REFERENCES[ref](sc, seed)
                cache[key] = {**evaluate(sc, q.argmax(axis=1), q), "seconds": time.perf_counter() - started}
                if args.cache:
                    Path(args.cache).write_text(json.dumps(cache))
            rows.append({**base, "policy": ref, **cache[key]})
        with tempfile.TemporaryDirectory(prefix="nextbest-external-") as tmp:
            greedy, served, explored, scores, info = runner(sc, Path(tmp))
        rows.append({**base, "policy": "nextbest", **evaluate(sc, greedy, scores), **info})
        rows.append({**base, "policy": "nextbest_explored", **evaluate(sc, explored, None)})
        rows.append({**base, "policy": "nextbest_served", **evaluate(sc, served, None)})
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1, default=float))
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sd over seeds per (scenario, size, policy), and the verdict per (scenario, size)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    frame["qini_mean"] = frame["qini"].map(
        lambda q: float(np.nanmean(list(q.values()))) if isinstance(q, dict) and q else np.nan
    )
    out = []
    for (scenario, size), group in frame.groupby(["scenario", "size"], sort=False):
        stats = group.groupby("policy", sort=False).agg(
            value=("value", "mean"),
            ratio=("ratio_to_oracle", "mean"),
            lift=("lift_capture", "mean"),
            lift_sd=("lift_capture", "std"),
            lift_min=("lift_capture", "min"),
            worse=("worse_than_nothing", "mean"),
            qini=("qini_mean", "mean"),
            seeds=("seed", "nunique"),
        )
        refs = stats.loc[[r for r in (*REFERENCE_NAMES, *BASELINES) if r in stats.index]]
        best = refs["lift"].idxmax()
        nb = stats.loc["nextbest"]
        ok = (
            nb["lift"] >= refs.loc[best, "lift"] - 1e-12
            and nb["lift_min"] > 0
            and nb["worse"] <= refs.loc[best, "worse"]
        )
        for policy, s in stats.iterrows():
            verdict = ("PASS" if ok else "FAIL") if policy == "nextbest" else ""
            out.append(
                {"scenario": scenario, "size": size, "policy": policy, **s.to_dict(), "best_reference": best,
                 "verdict": verdict}
            )  # fmt: skip
    return out


def print_table(summary: list[dict[str, Any]]) -> None:
    head = (
        f"{'scenario':<22}{'size':>8} {'policy':<20}{'value':>9}{'vs oracle':>10}{'lift capture':>16}"
        f"{'worse':>8}{'qini':>7}"
    )
    print(head)
    last = None
    for r in summary:
        if (r["scenario"], r["size"]) != last:
            print("-" * len(head))
            last = (r["scenario"], r["size"])
        sd = "" if np.isnan(r["lift_sd"]) else f" ± {r['lift_sd']:.3f}"
        print(
            f"{r['scenario']:<22}{r['size']:>8,} {r['policy']:<20}{r['value']:>9.4f}{r['ratio']:>10.1%}"
            f"{r['lift']:>9.3f}{sd:<7}{r['worse']:>8.1%}{r['qini']:>7.3f}"
            + (f"  {r['verdict']} (best reference: {r['best_reference']})" if r["verdict"] else "")
        )


def markdown_table(summary: list[dict[str, Any]]) -> str:
    """The README's table: lift capture (mean ± sd over seeds) per scenario and size, nextbest beside every
    reference, the share of customers worse off than with nothing, and the verdict."""
    cols = ["nextbest", "nextbest_explored", "nextbest_served", *REFERENCE_NAMES, *BASELINES]
    heads = ["nextbest", "explored", "served", "S-learner", "T-learner", "X-learner", "uplift forest",
             "propensity only", "best single action"]  # fmt: skip
    lines = [
        "| scenario | rows | " + " | ".join(heads) + " | worse than nothing: nextbest / best ref. | verdict |",
        "|---|---:|" + "---:|" * len(heads) + "---:|---|",
    ]
    groups: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for r in summary:
        groups.setdefault((r["scenario"], r["size"]), {})[r["policy"]] = r
    for (scenario, size), by in groups.items():
        nb = by["nextbest"]
        best = nb["best_reference"]
        cells = []
        for c in cols:
            r = by.get(c)
            if r is None:
                cells.append("–")
                continue
            sd = "" if np.isnan(r["lift_sd"]) else f" ± {r['lift_sd']:.3f}"
            text = f"{r['lift']:.3f}{sd}"
            cells.append(f"**{text}**" if c == best or c == "nextbest" else text)
        worse = f"{nb['worse']:.1%} / {by[best]['worse']:.1%}"
        lines.append(f"| {scenario} | {size:,} | " + " | ".join(cells) + f" | {worse} | {nb['verdict']} |")
    return "\n".join(lines)


def serving_cost(summary: list[dict[str, Any]]) -> str:
    """How much lift capture exploring and the control group cost: greedy minus explored and minus served,
    the largest over (scenario, size), against the 0.02 the served value must stay within."""
    lift = {(r["scenario"], r["size"], r["policy"]): r["lift"] for r in summary}
    cells = [
        (lift[(s, n, "nextbest")] - lift[(s, n, "nextbest_explored")], lift[(s, n, "nextbest")] - lift[(s, n, p)], s, n)
        for (s, n, p) in lift
        if p == "nextbest_served"
    ]
    if not cells:
        return "no served figures"
    explore, served, scenario, size = max(cells, key=lambda c: c[1])
    verdict = "within" if served <= SERVED_WITHIN else "NOT within"
    return (
        f"greedy - served: at most {served:.3f} ({scenario}, {size:,}; exploring {explore:.3f} of it), "
        f"{verdict} {SERVED_WITHIN}"
    )


def main() -> None:
    from _scenarios import PROBES, SCENARIOS  # type: ignore[import-not-found]

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=[*SCENARIOS, *PROBES])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--holdout", type=int, default=50_000)
    parser.add_argument("--path", choices=["cli", "inprocess"], default="cli")
    parser.add_argument(
        "--train-config", type=Path, default=None, help="a training config for nextbest (experiments; default: none)"
    )
    parser.add_argument("--cache", help="JSON file caching reference results between runs")
    parser.add_argument("--json", help="write every run's figures here")
    parser.add_argument("--no-forest", action="store_true", help="skip causalml's uplift forest (slow at 200k)")
    parser.add_argument("--markdown", action="store_true", help="also print the README's table")
    parser.add_argument(
        "--from-json", nargs="+", help="summarise the runs saved by earlier --json files instead of running"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    started = time.perf_counter()
    if args.from_json:
        rows = [r for f in args.from_json for r in json.loads(Path(f).read_text())]
        wanted = {(s, n, seed) for s in args.scenarios for n in args.sizes for seed in args.seeds}
        rows = [r for r in rows if (r["scenario"], r["size"], r["seed"]) in wanted]
    else:
        rows = run(args)
    summary = summarise(rows)
    print_table(summary)
    if args.markdown:
        print("\n" + markdown_table(summary))
    verdicts = [r for r in summary if r["verdict"]]
    passed = sum(r["verdict"] == "PASS" for r in verdicts)
    source = f"from {', '.join(args.from_json)}" if args.from_json else f"path {args.path}"
    print("\n" + serving_cost(summary))
    print(f"{passed}/{len(verdicts)} (scenario, size) PASS; {time.perf_counter() - started:.0f} s; {source}")


if __name__ == "__main__":
    main()

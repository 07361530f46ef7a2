"""What the blend's gate decided, what the out-of-fold policy value said, and what either would have been worth.

nextbest blends its learners only when the blend explains the doubly robust contrasts better than the anchor
(an S-learner) out of fold by ``stacking.GATE_Z`` standard errors (``training/stacking.py``). Training also
records the same step judged by the out-of-fold DR value of its decisions (``stacking.policy_gate``, evidence
only). This script trains nextbest with its defaults, and again with the blend taken whatever the gate says
where that would change the model (every run with ``--always``), and prints per run both pieces of evidence
(as z: the blend's advantage over the anchor in standard errors) beside the held-out lift capture of each
("nan": not trained), then per scenario the mean lift capture of the default and of a gate that takes the
blend when either the contrasts or the policy value favour it beyond ``GATE_Z`` (with ``--always``, of the
blend always too).

External scenarios are trained exactly as ``external_quality.py --path inprocess`` does; ``--world-sizes``
adds the synthetic world as ``policy_quality.py`` trains it (half the customers held out for the truth):

    python benchmarks/gate_evidence.py --scenarios ihdp --sizes 10000 --seeds $(seq 0 29)
    python benchmarks/gate_evidence.py --scenarios uplift_cls obp nie_wager_m1 --sizes 1000
    python benchmarks/gate_evidence.py --scenarios --world-sizes 10000 50000 --world-seeds 7 8 9

Needs the ``bench`` extra (``make bench`` installs it) for the external scenarios. Runs with a single learner
(nothing to blend) show no evidence.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: One training run: given whether to force the blend, its held-out lift capture and the blend's evidence.
Run = Callable[[bool], tuple[float, dict[str, Any]]]


@contextlib.contextmanager
def blend_forced(force: bool) -> Iterator[None]:
    """The blend's gate open whatever the evidence (every other step as in training), or nothing changed."""
    from nextbest.training import stacking

    if not force:
        yield
        return
    original = stacking.blend_weights

    def always(
        oofs: list[np.ndarray], gamma: np.ndarray, control: int, folds: np.ndarray, anchor: int = 0, z: float = 0.0
    ) -> Any:
        return original(oofs, gamma, control, folds, anchor, -np.inf)

    with mock.patch.object(stacking, "blend_weights", always):
        yield


def scenario_runs(names: list[str], sizes: list[int], seeds: list[int], holdout: int) -> Iterator[tuple[str, Run]]:
    import external_quality as eq  # type: ignore[import-not-found]
    from _scenarios import PROBES, SCENARIOS  # type: ignore[import-not-found]

    for name in names:
        for size in sizes:
            for seed in seeds:
                sc = {**SCENARIOS, **PROBES}[name](size, holdout, seed)

                def run(force: bool, sc: Any = sc) -> tuple[float, dict[str, Any]]:
                    with tempfile.TemporaryDirectory(prefix="nextbest-gate-") as tmp, warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        with blend_forced(force):
                            greedy, _served, _explored, scores, info = eq.nextbest_inprocess(sc, Path(tmp))
                    return float(eq.evaluate(sc, greedy, scores)["lift_capture"]), info["gates"].get("blend", {})

                yield f"{name:<16} {len(sc.log):>7} {seed:>4}", run


def world_runs(sizes: list[int], world_seeds: list[int], train_seeds: list[int]) -> Iterator[tuple[str, Run]]:
    from nextbest.core.catalog import load_catalog
    from nextbest.features.store import apply
    from nextbest.settings import load_settings
    from nextbest.training.config import TrainConfig
    from nextbest.training.jobs import build_dataset, world_logging_policy
    from nextbest.training.pipeline import train
    from nextbest.world.config import WorldConfig
    from nextbest.world.generate import generate_world

    for size in sizes:
        for world_seed in world_seeds:
            settings = load_settings(home=Path(tempfile.mkdtemp(prefix="nextbest-gate-world-")))
            catalog = load_catalog(settings.catalog_path)  # type: ignore[arg-type]
            world = WorldConfig(customers=2 * size, seed=world_seed, as_of=datetime(2026, 10, 1, tzinfo=UTC))
            generate_world(world, catalog, settings.data_dir)  # type: ignore[arg-type]
            apply(settings)
            ds = build_dataset(settings, catalog, TrainConfig(), None)
            for train_seed in train_seeds:

                def run(
                    force: bool, ds: Any = ds, catalog: Any = catalog, settings: Any = settings, seed: int = train_seed
                ) -> tuple[float, dict[str, Any]]:
                    cfg = TrainConfig(test_fraction=0.5, seed=seed)  # as benchmarks/policy_quality.py
                    with blend_forced(force):
                        result = train(ds, catalog, cfg, logging_probs=world_logging_policy(settings, catalog, ds))
                    lift = float(result.report.policies["model"]["lift_capture"])
                    return lift, result.chosen.valid_value["selection"]["gates"].get("blend", {})

                yield f"{'world':<16} {size:>7} {f'{world_seed}/{train_seed}':>4}", run  # seed: world/training


def _z(difference: float, se: float) -> float:
    """``difference`` in standard errors; nan where both sides decided alike (no spread at all)."""
    return difference / se if se > 0 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", nargs="*", default=["ihdp"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--holdout", type=int, default=50_000)
    parser.add_argument("--world-sizes", nargs="*", type=int, default=[], help="the synthetic world's customers")
    parser.add_argument("--world-seeds", nargs="+", type=int, default=[7, 8, 9])
    parser.add_argument("--train-seeds", nargs="+", type=int, default=[0, 1, 2], help="for the world")
    parser.add_argument("--always", action="store_true", help="train the blend-always model on every run")
    args = parser.parse_args()

    from nextbest.training.stacking import GATE_Z

    groups: dict[str, list[tuple[float, float, float]]] = {}
    print(f"{'scenario':<16} {'rows':>7} {'seed':>4} {'contrasts z':>11} {'policy z':>8} {'default':>8} {'blend':>8}")
    runs = [*scenario_runs(args.scenarios, args.sizes, args.seeds, args.holdout)] if args.scenarios else []
    for label, run in (*runs, *world_runs(args.world_sizes, args.world_seeds, args.train_seeds)):
        lift, evidence = run(False)
        by_loss = _z(-evidence["loss_difference"], evidence["se"]) if evidence else float("nan")
        by_value = (
            _z(evidence["policy_value"]["difference"], evidence["policy_value"]["se"]) if evidence else float("nan")
        )
        taken = bool(evidence.get("taken", False))
        take = taken or bool(evidence.get("policy_value", {}).get("beyond_z", False))
        blended = lift if taken else float("nan")  # the gate took the blend: the same model
        if np.isnan(blended) and (args.always or take):
            blended, _ = run(True)
        print(f"{label} {by_loss:>+11.2f} {by_value:>+8.2f} {lift:>8.3f} {blended:>8.3f}", flush=True)
        groups.setdefault(label.rsplit(maxsplit=1)[0], []).append((lift, blended if take else lift, blended))
    for group, rows in groups.items():
        default, either, always = (np.array(col) for col in zip(*rows, strict=True))
        print(
            f"{group} mean lift capture: default {default.mean():.3f}, blend when either z > {GATE_Z:g} "
            f"{either.mean():.3f} ({int((default != either).sum())} of {len(default)} runs differ)"
            + (f", blend always {always.mean():.3f}" if args.always else ""),
            flush=True,
        )


if __name__ == "__main__":
    main()

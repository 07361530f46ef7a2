"""A throw-away home for the decision benchmarks: a world in Feast, a small trained champion, and a 20-action
catalog variant the champion can score.

The shipped catalog has 7 actions and the synthetic world knows the true response to those only, so the model
is trained on them; the 20-action variant adds channel variants of the shipped treatments (``discount_10`` by
SMS, push and app, ...) with the same economics and consent needs. The S-learner scores any action through
its descriptors (discount, promotional, contact, consent channel), so the widened model is the trained
boosters with 20 descriptor rows: the work per request is exactly that of a 20-candidate decision. It is
registered as a new version and aliased ``@champion``, so the service and ``mlflow models serve`` load it
like any trained model.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import yaml
from _common import build_world

READY = "bench-ready.json"
#: channel variants of the shipped treatments: 7 shipped actions + 13 variants = 20 candidates
VARIANTS: dict[str, tuple[str, ...]] = {
    "email_promo": ("sms", "push"),
    "sms_reminder": ("email", "push"),
    "discount_10": ("sms", "push", "app"),
    "discount_20": ("sms", "push", "app"),
    "push_nudge": ("email",),
    "help_content": ("sms", "push"),
}
CONSENT = {"email": "email", "sms": "sms", "push": "push", "app": "push"}


def write_catalog(shipped: Path, out: Path) -> Path:
    """The shipped catalog plus a channel variant per (treatment, channel) in :data:`VARIANTS`."""
    raw = yaml.safe_load(shipped.read_text())
    by_id = {a["id"]: a for a in raw["actions"]}
    extra = []
    for base, channels in VARIANTS.items():
        for channel in channels:
            action = {k: v for k, v in by_id[base].items() if k != "eligibility"}
            action.update(id=f"{base}_{channel}", channels=[channel], consent=CONSENT[channel])
            action["description"] = f"{by_id[base].get('description', base)} (via {channel})"
            if channel in ("push", "app"):
                action["eligibility"] = "customer.app_user == 1"
            extra.append(action)
    raw["actions"] = [*raw["actions"], *extra]
    raw["version"] = f"{raw.get('version', '1')}-bench20"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


def widen(model: Any, catalog: Any) -> Any:
    """The trained S-learner scoring every action of ``catalog`` (descriptors per action, same boosters)."""
    from nextbest.model.descriptors import ActionDescriptors
    from nextbest.model.policy_model import ConversionHead, PolicyModel, ValueHead

    assert model.conversion.kind == "s", "the benchmark champion is an S-learner"
    descriptors = ActionDescriptors.from_catalog(catalog, model.feature_names)
    assert descriptors.action_ids[: len(model.action_ids)] == model.action_ids, "variants must come after"
    base = {a: next((b for b in model.action_ids if a == b or a.startswith(f"{b}_")), a) for a in catalog.ids}
    fallback, codes = model.value.fallback, model.value.codes
    value = ValueHead(
        model.value.booster,
        {a.id: float(a.discount) for a in catalog.actions},
        {a: float(fallback.get(base[a], 0.0)) for a in catalog.ids} if fallback else {},
        None if codes is None else {a: codes.get(base[a], float("nan")) for a in catalog.ids},
    )
    assert not model.members, "the benchmark champion is one conversion learner"
    return PolicyModel(
        encoder=model.encoder,
        action_ids=catalog.ids,
        control=model.control,
        conversion=ConversionHead("s", model.conversion.boosters, descriptors),
        value=value,
        calibration=model.calibration,
        decision_margin=model.decision_margin,
        metadata={
            **model.metadata,
            "name": "bench-20-actions",
            "actions": len(catalog.ids),
            # the catalog it scores, which the service checks against the live one (else it refuses the model)
            "catalog": catalog.model_dump(mode="json"),
            "catalog_hash": catalog.content_hash,
        },
    )


def prepare(home: Path, customers: int = 10_000) -> dict[str, Any]:
    """Build (or reuse, when ``home`` already holds one) the benchmark world; returns its description:
    ``home``, ``catalog`` (the 20-action file), ``version`` (the @champion), ``customers``, ``setup_s``."""
    marker = home / READY
    if marker.is_file():
        return dict(json.loads(marker.read_text()))
    started = time.perf_counter()
    import mlflow

    from nextbest.core.catalog import load_catalog
    from nextbest.training import tracking
    from nextbest.training.config import BoosterParams, TrainConfig
    from nextbest.training.jobs import run_training

    print(f"building a world of {customers:,} customers in {home} ...", flush=True)
    settings: Any = build_world(home, customers)
    shipped = load_catalog(settings.catalog_path)
    print("training a small champion (S-learner) ...", flush=True)
    cfg = TrainConfig(
        learners=("s",),
        targets="conversion",
        grid=(BoosterParams(num_leaves=15, min_child_samples=50, max_trees=200),),
        threads=2,
    )
    outcome = run_training(settings, shipped, cfg)
    catalog_path = write_catalog(settings.catalog_path, home / "catalog" / "actions20.yaml")
    wide = widen(outcome.result.model, load_catalog(catalog_path))
    with mlflow.start_run(run_name="bench-20-actions"):
        from nextbest.core.features import DEFAULT_FEATURE_SERVICE

        tags = {"feature_service": DEFAULT_FEATURE_SERVICE, "learner": "s", "source": "benchmark"}
        _, version = tracking.log_policy_model(wide, outcome.result.splits["test"].frame, cfg.model_name, tags)
    mlflow.MlflowClient().set_registered_model_alias(cfg.model_name, tracking.CHAMPION, str(version))
    info = {
        "home": str(home),
        "catalog": str(catalog_path),
        "version": version,
        "customers": customers,
        "setup_s": round(time.perf_counter() - started, 1),
    }
    marker.write_text(json.dumps(info, indent=2))
    print(f"world ready in {info['setup_s']:.0f} s (champion version {version}, 20 actions)", flush=True)
    return info


def world_from_args(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, Path, dict[str, Any]]:
    """Parse the script's arguments plus ``--customers`` and ``--home``, quiet the libraries' warnings, and
    prepare the world: ``(args, home, world)``."""
    parser.add_argument("--customers", type=int, default=10_000, help="Customers of the world (feature rows).")
    parser.add_argument("--home", type=Path, default=None, help="Reuse (or build once into) this home.")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    home = args.home or Path(tempfile.mkdtemp(prefix="nextbest-bench-"))
    return args, home, prepare(home, args.customers)


def settings_with_fresh_log(home: Path, world: dict[str, Any], prefix: str) -> Any:
    """The world's settings with a new, empty SQLite decision log of this run (in a new folder of ``home``)."""
    from nextbest.settings import load_settings

    log_dir = Path(tempfile.mkdtemp(prefix=prefix, dir=home))
    return load_settings(
        home=home, catalog_path=Path(world["catalog"]), decision_log_url=f"sqlite:///{log_dir / 'decisions.db'}"
    )

"""Choosing the model by validation policy value, robustly to noise.

Policy values of good candidates differ by less than their estimation noise on a validation split (net
revenue per customer is a noisy reward), so a plain argmax picks noise as often as signal. The rule is the
one-standard-error rule of model selection, made paired:

1. estimate every candidate policy's value on the validation split (SNIPS, per-row terms);
2. find the best; keep every candidate whose paired difference to the best is not significantly negative;
3. among those, prefer the learner listed first in the config (the most shared model), then the more
   regularised tuning candidate (fewer leaves), then the smaller model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nextbest.core import ope
from nextbest.core.arbitration import choose

Array = np.ndarray


@dataclass(frozen=True)
class Option:
    candidate: int  # index into the candidate list
    margin: float
    terms: Array  # per-row SNIPS terms on the validation split
    preference: tuple[int, int, int]  # (learner order, leaves, trees): smaller is preferred

    @property
    def value(self) -> float:
        return float(np.mean(self.terms))


def policy_terms(net_uplift: Array, margin: float, control: int, reward: Array, action: Array, prop: Array) -> Array:
    chosen = choose(net_uplift, np.ones(net_uplift.shape, bool), control, margin)
    target = ope.deterministic_policy(chosen, net_uplift.shape[1])
    return ope.snips_terms(reward, action, prop, target)


def select(options: list[Option], level: float = 0.95) -> tuple[Option, dict[str, Any]]:
    """The preferred option among those not significantly worse than the best; plus the evidence."""
    best = max(options, key=lambda o: o.value)
    admissible = []
    for option in options:
        diff = ope.difference(option.terms, best.terms, "snips", level)
        if option is best or diff.ci_high >= 0.0:
            admissible.append(option)
    chosen = min(admissible, key=lambda o: o.preference)
    evidence = {
        "best_value": best.value,
        "best_candidate": best.candidate,
        "best_margin": best.margin,
        "chosen_value": chosen.value,
        "admissible": len(admissible),
        "options": len(options),
        "difference_to_best": ope.difference(chosen.terms, best.terms, "snips", level).as_dict(),
    }
    return chosen, evidence

"""Every rule test case in rules/cases passes, and every shipped rule has a firing and a non-firing case."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextbest.core.catalog import ActionCatalog
from nextbest.core.rules import Ruleset, load_ruleset
from nextbest.core.rules.cases import CaseFile, LoadedCase, coverage, load_cases, run_cases
from nextbest.errors import ConfigError

PROJECT = Path(__file__).resolve().parents[4]
CASE_FILES = sorted((PROJECT / "rules" / "cases").glob("*.yaml"))


@pytest.fixture(scope="module")
def shipped() -> Ruleset:
    return load_ruleset(PROJECT / "rules" / "guardrails.yaml", PROJECT / "rules" / "params" / "default.yaml")


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_case_file_passes(path: Path, shipped: Ruleset, catalog: ActionCatalog) -> None:
    results = run_cases(shipped, catalog, load_cases([path]))
    failed = [str(r) for r in results if not r.passed]
    assert results and not failed, "\n".join(failed)


def test_every_shipped_rule_has_a_firing_and_a_non_firing_case(shipped: Ruleset, catalog: ActionCatalog) -> None:
    results = run_cases(shipped, catalog, load_cases(CASE_FILES))
    missing = {rule: cov for rule, cov in coverage(shipped, results).items() if cov != (True, True)}
    assert len(CASE_FILES) >= 5 and not missing, f"(fires, does not fire) missing for {missing}"


def test_a_wrong_expectation_fails_with_a_readable_reason(shipped: Ruleset, catalog: ActionCatalog) -> None:
    case = CaseFile.model_validate(
        {
            "cases": [
                {
                    "name": "wrong",
                    "rules": ["no_promo_open_ticket"],
                    "customer": {"open_tickets": 2},
                    "expect": {"email_promo": "allowed", "help_content": {"lever": 2.0}},
                }
            ]
        }
    ).cases[0]
    (result,) = run_cases(shipped, catalog, [LoadedCase("inline", case)])
    assert not result.passed
    assert result.failures == (
        "email_promo: expected allowed, got suppressed by no_promo_open_ticket",
        "help_content: expected lever 2.0, got 1.0",
    )
    assert result.fired == {"email_promo": ("no_promo_open_ticket",), "help_content": ()}


def test_bad_case_files_are_rejected_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("cases:\n  - name: x\n    expect: {email_promo: maybe}\n")
    with pytest.raises(ConfigError, match=rf"^{bad}: cases.0.expect.email_promo"):
        load_cases([bad])

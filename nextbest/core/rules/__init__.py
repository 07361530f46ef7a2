"""Guardrail rules as data: a rule file is parsed and validated (``ruleset``), its CEL conditions compiled once
(``compiler``, ``syntax``), planned per candidate set (``plan``), evaluated for one decision (``engine``,
``context``, ``values``) or vectorised over a batch (``batch``), and checked against the features a model serves
(``check``) and against case files (``cases``). Loading a rule file: :func:`load_ruleset`."""

from nextbest.core.rules.ruleset import (
    MAX_RULES,
    ParamsFile,
    RuleFile,
    Ruleset,
    RuleSpec,
    build_ruleset,
    compile_rule,
    load_params,
    load_ruleset,
    parse_params,
    parse_yaml,
)

__all__ = [
    "MAX_RULES",
    "ParamsFile",
    "RuleFile",
    "RuleSpec",
    "Ruleset",
    "build_ruleset",
    "compile_rule",
    "load_params",
    "load_ruleset",
    "parse_params",
    "parse_yaml",
]

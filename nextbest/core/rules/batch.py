"""Rule evaluation for many customers at once (outbound campaigns, rule simulation), same semantics as
:meth:`RuleEngine.evaluate` row by row.

Converting values into CEL is the dominant cost, and most conditions read one or two low-cardinality fields
(a ticket count, an opt-in flag, a tier). So the plan's elements are grouped by the fields they read, the
customers are grouped by the values of those fields, and each group's program runs once per *distinct*
value combination; results are scattered back and combined with the static (catalog-only) states as numpy
arrays. A condition reading a continuous feature degrades gracefully to one small evaluation per customer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cel
import numpy as np

from nextbest.core.contact import HistoryBuilder
from nextbest.core.rules.compiler import Rule
from nextbest.core.rules.engine import Plan, RuleEngine
from nextbest.core.rules.syntax import paths, references
from nextbest.core.rules.values import (
    ERROR,
    TRUE,
    HistoryPaths,
    RequestInfo,
    RuleEvaluation,
    RuleHit,
    error_text,
    history_values,
    merge_paths,
)
from nextbest.errors import DataError

_CODE_FALSE, _CODE_TRUE, _CODE_OTHER = 0, 1, 2
_ABSENT = ("<absent>",)  # a key missing from a history map (distinct from a present None)


@dataclass(frozen=True)
class BatchRuleEvaluation:
    """Rule outcome for n customers × K candidates. Pairs ``p`` are the (rule, candidate) combinations the
    catalog allows at all; ``fired``/``skipped`` are (n, P). Error messages are one representative per pair."""

    action_ids: tuple[str, ...]
    suppressed: np.ndarray  # (n, K) bool
    lever: np.ndarray  # (n, K)
    rules: tuple[Rule, ...]
    pair_rule: np.ndarray  # (P,) index into ``rules``
    pair_candidate: np.ndarray  # (P,) index into ``action_ids``
    fired: np.ndarray  # (n, P): applied hits (errors with on_error=fire included), shadow rules included
    errored: np.ndarray  # (n, P): the condition could not be evaluated
    skipped: np.ndarray  # (n, P): errored and skipped (on_error=skip)
    messages: Mapping[int, str]
    version: str

    def __len__(self) -> int:
        return int(self.suppressed.shape[0])

    def _hit(self, i: int, p: int) -> RuleHit:
        rule = self.rules[int(self.pair_rule[p])]
        error = self.messages.get(p, "error") if self.errored[i, p] else None
        action = self.action_ids[int(self.pair_candidate[p])]
        return RuleHit(rule.id, action, rule.effect, rule.message, rule.mode, error, rule.lever)

    def row(self, i: int) -> RuleEvaluation:
        """Customer ``i``'s outcome in the single-request form."""
        hits = tuple(self._hit(i, int(p)) for p in np.flatnonzero(self.fired[i]))
        skipped = tuple(self._hit(i, int(p)) for p in np.flatnonzero(self.skipped[i]))
        return RuleEvaluation(
            self.action_ids, self.suppressed[i].copy(), self.lever[i].copy(), hits, skipped, self.version
        )


def _convert_column(name: str, values: Any, convert: Callable[[Any], Any], n: int) -> list[Any]:
    """One feature column as CEL-ready values, None where missing."""
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise DataError(f"feature column {name!r} must have {n} values; got shape {arr.shape}")
    if arr.dtype.kind in "iub":
        return [convert(v) for v in arr.tolist()] if convert is not int else arr.astype(np.int64).tolist()
    if arr.dtype.kind == "f":
        out: list[Any] = arr.tolist() if convert is float else [None] * n
        missing = np.isnan(arr)
        if convert is not float:
            for i in np.flatnonzero(~missing):
                out[i] = convert(out[i] if out[i] is not None else arr[i].item())
        for i in np.flatnonzero(missing):
            out[i] = None
        return out
    column: list[Any] = []
    for v in arr.tolist():
        try:
            v = None if v is None else convert(v)
        except (TypeError, ValueError):
            v = None
        column.append(v if v == v else None)
    return column


def _fingerprint(value: Any) -> Any:
    """A hashable stand-in for a history value (maps nest)."""
    if type(value) is dict:
        return tuple((k, _fingerprint(v)) for k, v in value.items())
    return value


def _history_columns(histories: Sequence[Mapping[str, Any]], hpaths: HistoryPaths) -> list[list[Any]]:
    """Per-row hashable values of exactly the history paths a group of elements reads."""
    if hpaths is None:
        return [[_fingerprint(dict(h)) for h in histories]]
    cols: list[list[Any]] = []
    for key, subs in sorted(hpaths.items()):
        if subs is None:
            cols.append([_fingerprint(h.get(key, _ABSENT)) for h in histories])
        else:
            for sub in sorted(subs):
                values = (h.get(key, _ABSENT) for h in histories)
                cols.append([v.get(sub, _ABSENT) if type(v) is dict else _fingerprint(v) for v in values])
    return cols


def _group(cols: list[Sequence[Any]], n: int) -> np.ndarray:
    """Group id per row (ids in order of first appearance) for the value combinations in ``cols``."""
    if not cols:
        return np.zeros(n, dtype=np.int64)
    index: dict[tuple[Any, ...], int] = {}
    ids = [index.setdefault(key, len(index)) for key in zip(*cols, strict=True)]
    return np.array(ids, dtype=np.int64)


def evaluate_batch(
    engine: RuleEngine,
    candidates: tuple[str, ...],
    columns: Mapping[str, Any],
    request: RequestInfo,
    histories: Sequence[Mapping[str, Any]] | None = None,
    n: int | None = None,
) -> BatchRuleEvaluation:
    """Evaluate the rules for every row of ``columns`` (feature name -> n values, missing as None/NaN).
    ``histories`` (one map per row) defaults to "never contacted"; the request is shared by all rows."""
    if n is None:
        n = len(next(iter(columns.values()))) if columns else len(histories or ())
    plan = engine.plan(candidates, request.now)
    k = len(candidates)
    flat = [(r, c, s, err, e) for r, pairs in plan.rules for c, s, err, e in pairs]
    pair_rule = np.array([f[0] for f in flat], dtype=np.int64)
    pair_cand = np.array([f[1] for f in flat], dtype=np.int64)
    states = np.array([f[2] for f in flat], dtype=np.int8)
    pair_elem = np.array([f[4] if f[4] >= 0 else len(plan.sources) for f in flat], dtype=np.int64)
    elements = np.full((n, len(plan.sources) + 1), _CODE_TRUE, dtype=np.int8)  # last column: "no element"
    messages: dict[int, str] = {}
    element_messages = _evaluate_elements(engine, plan, columns, request, histories, n, elements)
    for p, f in enumerate(flat):
        message = f[3] if f[2] == ERROR else element_messages.get(f[4])
        if message is not None:
            messages[p] = message
    values = elements[:, pair_elem]
    clean = (states == TRUE)[None, :] & (values == _CODE_TRUE)
    errored = np.where(states == TRUE, values == _CODE_OTHER, values != _CODE_FALSE)
    fire_on_error = np.array([engine.rules[r].on_error == "fire" for r in pair_rule], dtype=bool)
    fired = clean | (errored & fire_on_error)
    skipped = errored & ~fire_on_error
    suppressed = np.zeros((n, k), dtype=bool)
    lever = np.ones((n, k))
    for p in range(len(flat)):
        rule = engine.rules[int(pair_rule[p])]
        if rule.mode != "enforce":
            continue
        if rule.suppress:
            suppressed[:, pair_cand[p]] |= fired[:, p]
        else:
            lever[:, pair_cand[p]] *= np.where(fired[:, p], rule.lever, 1.0)
    return BatchRuleEvaluation(
        action_ids=candidates,
        suppressed=suppressed,
        lever=lever,
        rules=engine.rules,
        pair_rule=pair_rule,
        pair_candidate=pair_cand,
        fired=fired,
        errored=errored,
        skipped=skipped,
        messages=messages,
        version=engine.version,
    )


def _evaluate_elements(
    engine: RuleEngine,
    plan: Plan,
    columns: Mapping[str, Any],
    request: RequestInfo,
    histories: Sequence[Mapping[str, Any]] | None,
    n: int,
    out: np.ndarray,
) -> dict[int, str]:
    """Fill ``out[:, e]`` with codes for every element; returns a representative message per failing one."""
    messages: dict[int, str] = {}
    if not plan.sources:
        return messages
    converters = dict(plan.customer)
    customer_cols = {
        name: _convert_column(name, columns[name], conv, n) if name in columns else [None] * n
        for name, conv in converters.items()
    }
    req = request.as_map()
    empty = HistoryBuilder(engine.catalog.channels, engine.catalog.control).empty()
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[int]] = {}
    group_paths: dict[tuple[tuple[str, ...], tuple[str, ...]], HistoryPaths] = {}
    for e, source in enumerate(plan.sources):
        refs = references(source)
        fields = tuple(sorted(converters)) if "customer" in refs.dynamic else tuple(sorted(refs.fields["customer"]))
        hp = paths(source, "history")
        key = (fields, (tuple(sorted(hp)) if hp is not None else ("*",)) if histories is not None else ())
        groups.setdefault(key, []).append(e)
        group_paths[key] = merge_paths(group_paths.get(key, {}), hp)
    for key, members in groups.items():
        fields, hpaths = key[0], group_paths[key]
        program = plan.programs.get(tuple(members))
        if program is None:
            source = "[" + ", ".join(f"({plan.sources[e]})" for e in members) + "]"
            program = plan.programs[tuple(members)] = cel.compile(source)
        cols: list[Sequence[Any]] = [customer_cols[f] for f in fields]
        if histories is not None:
            cols.extend(_history_columns(histories, hpaths))
        inverse = _group(cols, n)
        reps = np.unique(inverse, return_index=True)[1]
        rows: list[list[int]] = []
        for rep in reps.tolist():
            values: dict[str, Any] = {"request": req}
            values["customer"] = {f: c[rep] for f, c in zip(fields, cols, strict=False) if c[rep] is not None}
            values["history"] = history_values(histories[rep] if histories is not None else empty, hpaths)
            ctx = cel.Context(values)
            try:
                results: Sequence[object] = program.execute(ctx)
            except Exception:
                results = [engine.element(plan.sources[e], ctx) for e in members]
            row = [_CODE_TRUE if v is True else _CODE_FALSE if v is False else _CODE_OTHER for v in results]
            if _CODE_OTHER in row:
                for e, v, c in zip(members, results, row, strict=True):
                    if c == _CODE_OTHER and e not in messages:
                        messages[e] = error_text(v)
            rows.append(row)
        out[:, members] = np.array(rows, dtype=np.int8)[inverse]
    return messages

"""Reusing a CEL context across requests: only the variables whose values changed are converted again.

Converting Python values into CEL is most of what evaluating rules costs (about a microsecond per map entry;
running the compiled program on a ready context takes under one). A :class:`cel.Context` keeps each
variable's converted value until that variable is replaced, so a context kept per plan and per thread, with
``add_variable`` for the variables that differ from the previous request's, skips the conversions of
whatever repeats: the request map within a second, the history of never-contacted customers. Values are
compared strictly (same types, not only ``==``: ``1 == 1.0 == True`` in Python, not in CEL).
"""

from __future__ import annotations

import threading
from typing import Any

import cel


class ContextCache:
    """One reusable context per thread (contexts are not thread-safe)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def context(self, values: dict[str, Any]) -> cel.Context:
        local = self._local
        ctx: cel.Context | None = getattr(local, "ctx", None)
        last: dict[str, Any] | None = getattr(local, "values", None)
        if ctx is None or last is None or last.keys() != values.keys():
            ctx = local.ctx = cel.Context(values)
            local.values = values
            return ctx
        try:
            for name, value in values.items():
                if not same(last[name], value):
                    ctx.add_variable(name, value)
        except BaseException:  # half updated: start from a new context next time
            local.ctx = local.values = None
            raise
        local.values = values
        return ctx


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types, recursively through maps and lists (what CEL would see as the same)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)

"""Source surgery on CEL expressions: split a condition into its top-level ``&&`` conjuncts, list the fields it
reads, and inline constants (rule parameters, catalog attributes) as literals.

``cel.Program`` only reports which *variables* an expression uses, not which fields of them, and offers no way
to partially evaluate. Both are needed: field references for ``rules check`` and for building the smallest
possible evaluation context, splitting and inlining so that whatever depends only on the catalog is evaluated
once at load rather than on every request. A small lexer (string literals and comments are single tokens)
keeps all of this from ever touching text inside a string.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import cel

VARIABLES = ("customer", "action", "request", "history", "params")
MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|//[^\n]*)
   |(?P<str>(?:[rR][bB]?|[bB][rR])(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|"[^"\n]*"|'[^'\n]*')
   |[bB]?(?:\"\"\"(?:\\[\s\S]|[^\\])*?\"\"\"|'''(?:\\[\s\S]|[^\\])*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
   |(?P<num>0[xX][0-9a-fA-F]+[uU]?|\d*\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+[uU]?)
   |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
   |(?P<op>&&|\|\||==|!=|<=|>=|[-+*/%!<>?:.,()\[\]{}])
    """,
    re.VERBOSE,
)
_OPEN, _CLOSE = "([{", ")]}"


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # str | num | ident | op
    text: str
    start: int
    end: int


def tokenize(source: str) -> list[Token]:
    """Tokens without whitespace and comments; raises ValueError at a character CEL would not accept."""
    out: list[Token] = []
    pos = 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:
            raise ValueError(f"unexpected character {source[pos]!r} at offset {pos}")
        kind = m.lastgroup or "op"
        if kind != "ws":
            out.append(Token(kind, m.group(), m.start(), m.end()))
        pos = m.end()
    return out


@dataclass
class References:
    """What an expression reads. ``fields[var]`` are the names accessed as ``var.name`` or ``var['name']``;
    ``dynamic`` holds variables used whole or indexed by a computed key (their fields cannot be listed)."""

    variables: set[str] = field(default_factory=set)
    fields: dict[str, set[str]] = field(default_factory=lambda: {v: set() for v in VARIABLES})
    dynamic: set[str] = field(default_factory=set)
    bound: set[str] = field(default_factory=set)  # comprehension variables (the ``c`` in ``exists(c, ...)``)
    shadowed: set[str] = field(default_factory=set)  # reserved names misused as comprehension variables


def _string_value(token: Token) -> str | None:
    try:
        value = cel.evaluate(token.text)
    except Exception:
        return None
    return value if isinstance(value, str) else None


def _is_variable(tokens: list[Token], i: int) -> bool:
    """An identifier is a variable unless it is a member (``x.customer``) or a function name (``f(``)."""
    if i > 0 and tokens[i - 1].text == ".":
        return False
    return not (i + 1 < len(tokens) and tokens[i + 1].text == "(")


def _is_binder(tokens: list[Token], i: int) -> bool:
    """``.exists(c, ...)``: the identifier right after a comprehension macro's parenthesis."""
    return (
        i >= 3
        and tokens[i - 1].text == "("
        and tokens[i - 2].text in MACROS
        and tokens[i - 3].text == "."
        and i + 1 < len(tokens)
        and tokens[i + 1].text == ","
    )


def _field_at(tokens: list[Token], i: int) -> tuple[str | None, int]:
    """The field accessed right after the variable at ``i`` and the index past the access."""
    if i + 2 < len(tokens) and tokens[i + 1].text == "." and tokens[i + 2].kind == "ident":
        return tokens[i + 2].text, i + 3
    if i + 3 < len(tokens) and tokens[i + 1].text == "[" and tokens[i + 2].kind == "str" and tokens[i + 3].text == "]":
        return _string_value(tokens[i + 2]), i + 4
    return None, i + 1


def references(source: str) -> References:
    tokens = tokenize(source)
    refs = References()
    for i, tok in enumerate(tokens):
        if tok.kind != "ident":
            continue
        if _is_binder(tokens, i):
            (refs.shadowed if tok.text in VARIABLES else refs.bound).add(tok.text)
            continue
        if tok.text not in VARIABLES or not _is_variable(tokens, i):
            continue
        refs.variables.add(tok.text)
        name, _ = _field_at(tokens, i)
        if name is None:
            refs.dynamic.add(tok.text)
        else:
            refs.fields[tok.text].add(name)
    return refs


def _top_level(tokens: list[Token]) -> list[tuple[int, str]]:
    """Indexes and texts of the operator tokens at parenthesis depth 0."""
    depth, out = 0, []
    for i, tok in enumerate(tokens):
        if tok.kind != "op":
            continue
        if tok.text in _OPEN:
            depth += 1
        elif tok.text in _CLOSE:
            depth -= 1
        elif depth == 0:
            out.append((i, tok.text))
    return out


def _wrapped(tokens: list[Token]) -> bool:
    """True when the first ``(`` closes at the last token: ``(a && b)``."""
    if len(tokens) < 2 or tokens[0].text != "(" or tokens[-1].text != ")":
        return False
    depth = 0
    for i, tok in enumerate(tokens):
        if tok.kind == "op" and tok.text in _OPEN:
            depth += 1
        elif tok.kind == "op" and tok.text in _CLOSE:
            depth -= 1
            if depth == 0:
                return i == len(tokens) - 1
    return False


def paths(source: str, variable: str) -> dict[str, set[str] | None] | None:
    """Two-level field paths of ``variable`` read by ``source``: ``{field: {subfield, ...}}``, ``None`` for a
    field read whole, or ``None`` overall when the variable itself is read whole or by a computed key. Lets a
    context carry ``history.channel_7d.email`` without the other channels."""
    tokens = tokenize(source)
    out: dict[str, set[str] | None] = {}
    for i, tok in enumerate(tokens):
        if tok.kind != "ident" or tok.text != variable or not _is_variable(tokens, i) or _is_binder(tokens, i):
            continue
        name, after = _field_at(tokens, i)
        if name is None:
            return None
        sub, end = _field_at(tokens, after - 1)
        if end < len(tokens) and tokens[end].text == "(":  # a method call, not a field
            sub = None
        known = out.get(name, set())
        if sub is None or known is None:
            out[name] = None
        else:
            known.add(sub)
            out[name] = known
    return out


def _split(source: str, operators: frozenset[str]) -> list[str]:
    tokens = tokenize(source)
    if not tokens:
        return []
    if _wrapped(tokens):
        inner = source[tokens[0].end : tokens[-1].start]
        return _split(inner, operators)
    top = _top_level(tokens)
    if "?" in {t for _, t in top} or ("||" in {t for _, t in top} and "||" not in operators):
        return [source.strip()]
    cuts = [i for i, text in top if text in operators]
    if not cuts:
        return [source.strip()]
    parts, begin = [], 0
    for i in cuts:
        parts.append(source[tokens[begin].start : tokens[i].start])
        begin = i + 1
    parts.append(source[tokens[begin].start : tokens[-1].end])
    return [leaf for part in parts for leaf in _split(part, operators)]


def split_conjuncts(source: str) -> list[str]:
    """Top-level ``&&`` operands (flattening parenthesised ones). Splitting is exact because CEL's ``&&`` is
    commutative: false if any operand is false, an error if none is false but one errs, else true."""
    return _split(source, frozenset({"&&"}))


def split_leaves(source: str) -> list[str]:
    """Operands of top-level ``&&`` and ``||`` (and of ``!``), for type checking each comparison on its own."""
    out = []
    for leaf in _split(source, frozenset({"&&", "||"})):
        tokens = tokenize(leaf)
        if len(tokens) > 1 and tokens[0].text == "!":
            out.extend(split_leaves(leaf[tokens[1].start :]))
        else:
            out.append(leaf)
    return out


def literal(value: object) -> str:
    """CEL source for a plain value; round-trips exactly (floats via ``repr``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f'double("{value}")'
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{literal(str(k))}: {literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as a CEL literal")


def _operand(value: object) -> str:
    """A literal usable wherever the replaced expression stood: scalars bare (so ``m["email"]`` stays a
    recognisable field access), negative numbers and collections in parentheses."""
    text = literal(value)
    if isinstance(value, str | bool) or value is None or (isinstance(value, int | float) and text[0].isdigit()):
        return text
    return f"({text})"


def inline(source: str, variable: str, values: Mapping[str, object]) -> str:
    """Replace every read of ``variable`` by literals from ``values``: ``has(v.x)`` by true/false, ``v.x`` and
    ``v['x']`` by the value, the bare variable by the whole map. Unknown fields must be rejected beforehand."""
    tokens = tokenize(source)
    edits: list[tuple[int, int, str]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.kind != "ident" or tok.text != variable or not _is_variable(tokens, i) or _is_binder(tokens, i):
            i += 1
            continue
        name, after = _field_at(tokens, i)
        is_has = i >= 2 and tokens[i - 1].text == "(" and tokens[i - 2].text == "has"
        if name is not None and is_has and after < len(tokens) and tokens[after].text == ")":
            edits.append((tokens[i - 2].start, tokens[after].end, "true" if name in values else "false"))
            i = after + 1
        elif name is not None and name in values:
            edits.append((tok.start, tokens[after - 1].end, _operand(values[name])))
            i = after
        else:
            edits.append((tok.start, tok.end, _operand(dict(values))))
            i += 1
    out = source  # right to left, so earlier offsets stay valid
    for start, end, text in sorted(edits, reverse=True):
        out = out[:start] + text + out[end:]
    return out


def normalize(source: str) -> str:
    """One line, no comments, single spaces between tokens: safe to join into a larger expression."""
    return " ".join(t.text for t in tokenize(source))


def first_line(message: str) -> str:
    """CEL errors span several lines (source excerpt, caret); keep the informative one."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    for line in lines:
        if "ERROR:" in line:
            return line.split("ERROR:", 1)[1].strip()
    return lines[0] if lines else "error"

"""`dlrun report --filter`: a condition over the report's columns, parsed with `ast` and evaluated
here, node by node, over a whitelist. A filter is data, not code: it is never handed to
`DataFrame.query` or `eval`, whose `@name` syntax and attribute access reach any Python object
(`@pd.io.common.os.system("...")` runs a shell command).

The grammar is what `df.query` users write: column names (dotted ones such as `optim.lr`, or any
name in backticks), numbers, strings, True/False/None, comparisons (chained ones too), `and`,
`or`, `not` (and pandas' `&`, `|`, `~`), unary minus, and `in`, `not in`, `==`, `!=` against a
list of constants. Missing values compare as in pandas: false, except under `!=`.
"""

from __future__ import annotations

import ast
import difflib
import operator
import re
from dataclasses import dataclass

import pandas as pd

# An unknown name's message lists this many choices: one readable line even for a 30-key sweep.
MAX_LISTED = 20
# An offending part is quoted up to this many characters: enough to recognise, never a wall.
MAX_QUOTED = 80

_COMPARISONS = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_MEMBERSHIP = (ast.In, ast.NotIn, ast.Eq, ast.NotEq)  # pandas reads `x == [a, b]` as `x in [a, b]`
# Every node a filter may hold; anything else is refused before a single value is computed.
_ALLOWED = (
    ast.Expression,
    ast.Compare,
    ast.BoolOp,
    ast.UnaryOp,
    ast.Name,
    ast.Attribute,
    ast.Constant,
    ast.List,
    ast.Tuple,
    ast.Load,
    ast.And,
    ast.Or,
    ast.Not,
    ast.Invert,
    ast.USub,
    *_COMPARISONS,
    ast.In,
    ast.NotIn,
)
_CONSTANTS = (bool, int, float, str, type(None))
# Why each refused kind of node is refused, in the one-line refusal.
_ARE_NOT = "are not allowed"
_REFUSED = {
    ast.Call: f"calls {_ARE_NOT}",
    ast.Subscript: f"subscripts {_ARE_NOT}",
    ast.Slice: f"subscripts {_ARE_NOT}",
    ast.Lambda: f"lambdas {_ARE_NOT}",
    ast.JoinedStr: f"f-strings {_ARE_NOT}",
    ast.FormattedValue: f"f-strings {_ARE_NOT}",
    ast.ListComp: f"comprehensions {_ARE_NOT}",
    ast.SetComp: f"comprehensions {_ARE_NOT}",
    ast.DictComp: f"comprehensions {_ARE_NOT}",
    ast.GeneratorExp: f"comprehensions {_ARE_NOT}",
    ast.NamedExpr: f"assignments (:=) {_ARE_NOT}",
    ast.BinOp: "arithmetic is not allowed",
    ast.IfExp: f"if-else expressions {_ARE_NOT}",
    ast.Dict: f"dicts {_ARE_NOT}",
    ast.Set: f"sets {_ARE_NOT}",
    ast.Is: "'is' is not allowed (use ==)",
    ast.IsNot: "'is not' is not allowed (use !=)",
    ast.UAdd: "unary + is not allowed",
}


def name_list(names) -> str:
    """`names` joined for a message, cut after MAX_LISTED with how many more there are."""
    names = [str(name) for name in names]
    more = f", ... ({len(names) - MAX_LISTED} more)" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more


def filter_rows(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """The rows of `frame` for which the condition `where` holds (grammar: the module docstring).
    Raises ValueError, in one line naming the offending part, for anything else."""
    try:
        source, backticked = _scan(where)
        tree = ast.parse(source, mode="eval")
        evaluator = _Filter(frame, source, backticked)
        evaluator.check(tree)
        return frame[evaluator.mask(evaluator.value(tree.body), tree.body)]
    except SyntaxError as error:
        problem = f"not a valid expression ({error.msg}){_syntax_hint(where)}"
    except (RecursionError, MemoryError):
        problem = "nested too deeply"
    except _Refused as error:
        problem = str(error)
    raise ValueError(f"bad --filter '{_quoted(where, 4 * MAX_QUOTED)}': {problem}") from None


class _Refused(Exception):
    """A filter outside the grammar; the message names the offending part."""


def _quoted(text: str, limit: int = MAX_QUOTED) -> str:
    """`text` on one line, cut to `limit` characters."""
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _scan(where: str) -> tuple[str, dict]:
    """`where` as Python source, and each backticked column name by the placeholder put in its
    place. Outside strings, pandas' `&`/`|` become `and`/`or` (pandas gives them the precedence of
    those, so `a > 1 & b < 2` means what it says) and pandas' `@variable` is refused."""
    out, backticked, i = [], {}, 0
    while i < len(where):
        char = where[i]
        if char in "'\"":
            end = _string_end(where, i)
            out.append(where[i:end])
            i = end
            continue
        if char == "`":
            end = where.find("`", i + 1)
            if end < 0:
                raise _Refused(f"unclosed backtick: {_quoted(where[i:])}")
            placeholder = f"_bq{len(backticked)}_"
            backticked[placeholder] = where[i + 1 : end]
            out.append(placeholder)
            i = end + 1
            continue
        if char == "@":
            name = re.match(r"@[\w.]*", where[i:]).group()
            raise _Refused(f"@variables are not allowed (a filter names columns only): {name}")
        out.append({"&": " and ", "|": " or "}.get(char, char))
        i += 1
    return "".join(out), backticked


def _string_end(text: str, start: int) -> int:
    """Where the string literal opening at `start` ends (len(text) when it never closes)."""
    quote = text[start] * 3 if text.startswith(text[start] * 3, start) else text[start]
    i = start + len(quote)
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text.startswith(quote, i):
            return i + len(quote)
        else:
            i += 1
    return len(text)


def _syntax_hint(where: str) -> str:
    """How to fix a filter Python cannot parse: a column name that is not a Python name (a
    keyword such as `model.lambda`, a space, a dash) goes in backticks."""
    unquoted = re.sub(r"`[^`]*`|'[^']*'|\"[^\"]*\"", "", where)
    dotted = re.search(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+", unquoted)
    if dotted:
        return f"; wrap a column name that is not a Python name in backticks, e.g. `{dotted.group()}` > 0.1"
    return ""


@dataclass
class _Filter:
    """Evaluates a parsed filter over `frame`: a value is a column (Series), a constant, or a
    tuple of constants (a list, only on the right of a membership test)."""

    frame: pd.DataFrame
    source: str
    backticked: dict

    def part(self, node: ast.AST) -> str:
        text = ast.get_source_segment(self.source, node) or type(node).__name__
        for placeholder, name in self.backticked.items():
            text = text.replace(placeholder, f"`{name}`")
        return _quoted(text.strip())

    def refuse(self, what: str, node: ast.AST):
        raise _Refused(f"{what}: {self.part(node)}")

    def check(self, tree: ast.AST) -> None:
        """Refuse the outermost node outside the grammar (ast.walk goes outside in)."""
        for node in ast.walk(tree):
            # an operator has no place in the text: the expression it sits in is named instead
            for part in (node, *getattr(node, "ops", ()), getattr(node, "op", node)):
                if not isinstance(part, _ALLOWED):
                    self.refuse(_REFUSED.get(type(part), f"{type(part).__name__} is not allowed"), node)
            name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")
            if name.startswith("_") and name not in self.backticked:
                self.refuse("names starting with _ are not allowed", node)
            if isinstance(node, ast.Constant) and type(node.value) not in _CONSTANTS:
                self.refuse("only numbers, strings, True, False and None are allowed", node)

    def value(self, node: ast.AST):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.Name, ast.Attribute)):
            return self.column(node)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.BoolOp):
            masks = [self.mask(self.value(each), each) for each in node.values]
            combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
            result = masks[0]
            for mask in masks[1:]:
                result = combine(result, mask)
            return result
        if isinstance(node, ast.UnaryOp):
            return self.unary(node)
        if isinstance(node, (ast.List, ast.Tuple)):
            self.refuse("a list goes only on the right of in, not in, == or !=", node)
        self.refuse(f"{type(node).__name__} is not allowed", node)  # check() let it through

    def column(self, node: ast.AST) -> pd.Series:
        """The column a name, a backticked name or a dotted chain of names (`optim.lr`) means."""
        if isinstance(node, ast.Name):
            name = self.backticked.get(node.id, node.id)
        else:  # an attribute of a real column (lr.real) is Python reaching into an object
            name = _dotted(node, self.backticked)
            if name is None or (
                name not in self.frame.columns and _dotted(node.value, {}) in self.frame.columns
            ):
                self.refuse("attribute access is not allowed", node)
        if name not in self.frame.columns:
            raise _Refused(
                f"unknown column '{name}'{_near(name, self.frame.columns)} "
                f"(columns: {name_list(self.frame.columns)})"
            )
        return self.frame[name]

    def unary(self, node: ast.UnaryOp):
        operand = self.value(node.operand)
        if isinstance(node.op, (ast.Not, ast.Invert)):
            return ~self.mask(operand, node.operand)
        numeric = (
            pd.api.types.is_numeric_dtype(operand) and not pd.api.types.is_bool_dtype(operand)
            if isinstance(operand, pd.Series)
            else type(operand) in (int, float)
        )
        if not numeric:
            self.refuse("unary minus needs a number", node)
        return -operand

    def compare(self, node: ast.Compare):
        """A comparison, chained ones (`0.1 < lr < 1`) as the `and` of each pair."""
        left, result = self.value(node.left), True
        for op, right_node in zip(node.ops, node.comparators):
            right = self.operand(right_node, op)
            result = result & self.pair(op, left, right, node)
            left = right
        return result

    def operand(self, node: ast.AST, op: ast.cmpop):
        """The right side of a comparison: a list only after in, not in, == or !=."""
        if not isinstance(node, (ast.List, ast.Tuple)):
            if isinstance(op, (ast.In, ast.NotIn)):
                self.refuse("in needs a list on its right, e.g. status in ['completed', 'pruned']", node)
            return self.value(node)
        if not isinstance(op, _MEMBERSHIP):
            self.refuse("a list goes only on the right of in, not in, == or !=", node)
        return tuple(self.constant(each) for each in node.elts)

    def constant(self, node: ast.AST):
        """A list's element: a constant, or a negative number."""
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            value = self.constant(node.operand)
            if type(value) in (int, float):
                return -value
        elif isinstance(node, ast.Constant):
            return node.value
        self.refuse("a list holds constants only", node)

    def pair(self, op: ast.cmpop, left, right, node: ast.Compare):
        if isinstance(left, tuple):
            self.refuse("a list goes only on the right of in, not in, == or !=", node)
        try:
            if isinstance(right, tuple):
                negated = isinstance(op, (ast.NotIn, ast.NotEq))
                if isinstance(left, pd.Series):
                    return ~left.isin(right) if negated else left.isin(right)
                return (left in right) != negated
            return _COMPARISONS[type(op)](left, right)
        except (TypeError, ValueError, OverflowError) as error:
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            self.refuse(f"cannot compare ({first})", node)

    def mask(self, value, node: ast.AST) -> pd.Series:
        """`value` as one True/False per row; a column of True/False reads a missing cell as False."""
        if pd.api.types.is_bool(value):
            return pd.Series(value, index=self.frame.index)
        if isinstance(value, pd.Series):
            if pd.api.types.is_bool_dtype(value):
                return value
            known = value.dropna()
            if value.dtype == object and len(known) and known.map(type).eq(bool).all():
                return value.eq(True)
        self.refuse("not a condition (compare it, e.g. lr > 0.1)", node)


def _dotted(node: ast.AST, backticked: dict) -> str | None:
    """'optim.lr' for the chain of plain names optim.lr; None for anything else."""
    if isinstance(node, ast.Name) and node.id not in backticked:
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, backticked)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _near(name: str, columns) -> str:
    """'; did you mean ...?' naming columns close to `name`: misspelt (lrr), or the same key
    with or without its group (lr for optim.lr, or optim.lr for lr)."""
    columns = [str(column) for column in columns]
    last = name.rsplit(".", 1)[-1]
    near = [c for c in columns if c.endswith(f".{name}") or c == last != name]
    near += [c for c in difflib.get_close_matches(name, columns, n=3) if c not in near]
    return f"; did you mean {' or '.join(repr(c) for c in near[:3])}?" if near else ""

"""The QBO query language: a tokenizer, a recursive-descent parser and an evaluator.

Grammar (QBO_API.md §2)::

    SELECT ( * [, prop]... | COUNT(*) | prop [, prop]... ) FROM Entity
      [WHERE cond [AND cond]...] [ORDER BY|ORDERBY prop [ASC|DESC] [, ...]]
      [STARTPOSITION n] [MAXRESULTS n]
    cond := prop (= | < | > | <= | >=) value | prop IN (value, ...) | prop LIKE 'pattern'

Keywords, entity and property names are case-insensitive. Strings are single-quoted with
backslash escapes. OR, joins and unknown properties are rejected with QBO's 4000/4001 faults.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from qbo_pipelines.sandbox import errors, ledger
from qbo_pipelines.sandbox.clock import parse_instant
from qbo_pipelines.sandbox.specs import BOOLEANS, BY_LOWER, DATES, DATETIMES, NUMERIC, Spec
from qbo_pipelines.sandbox.state import Company, Obj

DEFAULT_MAX = 100
MAX_MAX = 1000
KEYWORDS = {"select", "from", "where", "and", "or", "in", "like", "order", "orderby", "by",
            "asc", "desc", "startposition", "maxresults", "count", "true", "false", "join",
            "not", "null", "is", "group", "having", "iterator"}
EXPECT_AFTER_COND = ('<EOF> <AND> "iterator" "maxresults" <OR> "order" "orderby" '
                     '"startposition"')


@dataclass
class Token:
    kind: str  # IDENT, KEYWORD, STRING, NUMBER, OP, PUNCT, EOF
    text: str
    column: int
    value: Any = None

    def describe(self) -> str:
        if self.kind == "EOF":
            return "<EOF>"
        label = {"IDENT": "<IDENTIFIER>", "STRING": "<STRING_LITERAL>",
                 "NUMBER": "<INTEGER>"}.get(self.kind)
        if self.kind == "KEYWORD":
            label = f"<{self.text.upper()}>"
        return f'" {label} "{self.text} ""' if label else f'"{self.text}"'


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "'":
            i = _string(text, i, tokens)
        elif ch.isdigit() or (ch in "-." and i + 1 < len(text) and text[i + 1].isdigit()):
            match = re.compile(r"-?\d*\.?\d+").match(text, i)
            assert match is not None
            tokens.append(Token("NUMBER", match.group(), i + 1, match.group()))
            i = match.end()
        elif ch.isalpha() or ch == "_":
            match = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*").match(text, i)
            assert match is not None
            word = match.group()
            kind = "KEYWORD" if word.lower() in KEYWORDS else "IDENT"
            tokens.append(Token(kind, word, i + 1))
            i = match.end()
        elif text.startswith(("<=", ">=", "<>", "!="), i):
            tokens.append(Token("OP", text[i:i + 2], i + 1))
            i += 2
        elif ch in "=<>":
            tokens.append(Token("OP", ch, i + 1))
            i += 1
        elif ch in "(),*":
            tokens.append(Token("PUNCT", ch, i + 1))
            i += 1
        else:
            raise errors.parse_error(
                f'Lexical error at line 1, column {i + 1}.  Encountered: "{ch}" ({ord(ch)}), '
                'after : ""')
    tokens.append(Token("EOF", "", len(text) + 1))
    return tokens


def _string(text: str, start: int, tokens: list[Token]) -> int:
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 >= len(text):
                break
            out.append(text[i + 1])
            i += 2
        elif ch == "'":
            tokens.append(Token("STRING", text[start:i + 1], start + 1, "".join(out)))
            return i + 1
        else:
            out.append(ch)
            i += 1
    raise errors.parse_error(
        f"Lexical error at line 1, column {len(text) + 1}.  Encountered: <EOF> after : "
        f'"{text[start:]}"')


@dataclass
class Condition:
    prop: str
    op: str
    values: list[Any]


@dataclass
class Query:
    spec: Spec
    count: bool = False
    where: list[Condition] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)
    start: int = 1
    max_results: int = DEFAULT_MAX


class Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.pos = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def next(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def fail(self, expecting: str) -> errors.QboFault:
        token = self.tok
        return errors.parse_error(
            f"Encountered {token.describe()} at line 1, column {token.column}.\n"
            f"Was expecting one of:\n    {expecting}")

    def keyword(self, *words: str) -> str | None:
        if self.tok.kind == "KEYWORD" and self.tok.text.lower() in words:
            return self.next().text.lower()
        return None

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            raise self.fail(f'"{word}"')

    def expect_punct(self, ch: str) -> None:
        if not (self.tok.kind == "PUNCT" and self.tok.text == ch):
            raise self.fail(f'"{ch}"')
        self.next()

    def is_punct(self, ch: str) -> bool:
        return self.tok.kind == "PUNCT" and self.tok.text == ch

    def parse(self) -> Query:
        self.expect_keyword("select")
        count = self._projection()
        self.expect_keyword("from")
        query = Query(spec=self._entity(), count=count)
        if self.keyword("where"):
            query.where = self._conditions(query.spec)
        if self.keyword("order", "orderby"):
            query.order = self._order(query.spec)
        self._paging(query)
        if self.tok.kind != "EOF":
            raise self.fail(EXPECT_AFTER_COND)
        return query

    def _projection(self) -> bool:
        if self.keyword("count"):
            self.expect_punct("(")
            self.expect_punct("*")
            self.expect_punct(")")
            return True
        # SELECT *, Sku FROM Item (python-quickbooks) and field lists are accepted; QBO always
        # returns whole objects.
        while True:
            if self.is_punct("*") or self.tok.kind == "IDENT":
                self.next()
            else:
                raise self.fail('"*" <IDENTIFIER> "count"')
            if not self.is_punct(","):
                return False
            self.next()

    def _entity(self) -> Spec:
        token = self.tok
        if token.kind != "IDENT":
            raise self.fail("<IDENTIFIER>")
        self.next()
        if self.is_punct(",") or (self.tok.kind == "KEYWORD" and self.tok.text.lower() == "join"):
            raise self.fail(EXPECT_AFTER_COND.replace(' <OR> ', ' "where" '))
        spec = BY_LOWER.get(token.text.lower())
        if spec is None:
            raise errors.invalid_query(f"Entity '{token.text}' is not supported or invalid")
        return spec

    def _prop(self, spec: Spec) -> str:
        token = self.tok
        if token.kind != "IDENT":
            raise self.fail("<IDENTIFIER>")
        self.next()
        return canonical(spec, token.text)

    def _conditions(self, spec: Spec) -> list[Condition]:
        conds = [self._condition(spec)]
        while True:
            if self.keyword("and"):
                conds.append(self._condition(spec))
            elif self.tok.kind == "KEYWORD" and self.tok.text.lower() == "or":
                raise errors.invalid_query("OR operation is not supported in the query")
            else:
                return conds

    def _condition(self, spec: Spec) -> Condition:
        prop = self._prop(spec)
        if self.keyword("in"):
            self.expect_punct("(")
            values = [self._value()]
            while self.is_punct(","):
                self.next()
                values.append(self._value())
            self.expect_punct(")")
            return Condition(prop, "IN", values)
        if self.keyword("like"):
            if self.tok.kind != "STRING":
                raise self.fail("<STRING_LITERAL>")
            return Condition(prop, "LIKE", [self.next().value])
        if self.tok.kind != "OP" or self.tok.text in ("<>", "!="):
            raise self.fail('"=" "<" ">" "<=" ">=" "in" "like"')
        op = self.next().text
        return Condition(prop, op, [self._value()])

    def _value(self) -> Any:
        token = self.tok
        if token.kind in ("STRING", "NUMBER"):
            self.next()
            return token.value
        if token.kind == "KEYWORD" and token.text.lower() in ("true", "false"):
            self.next()
            return token.text.lower() == "true"
        raise self.fail('<STRING_LITERAL> <INTEGER> "true" "false"')

    def _order(self, spec: Spec) -> list[tuple[str, bool]]:
        if self.tok.kind == "KEYWORD" and self.tok.text.lower() == "by":
            self.next()
        order = []
        while True:
            prop = self._prop(spec)
            descending = self.keyword("asc", "desc") == "desc"
            order.append((prop, descending))
            if not self.is_punct(","):
                return order
            self.next()

    def _paging(self, query: Query) -> None:
        for _ in range(2):
            word = self.keyword("startposition", "maxresults")
            if word is None:
                return
            if self.tok.kind != "NUMBER":
                raise self.fail("<INTEGER>")
            value = int(Decimal(self.next().text))
            if value < 1:
                raise errors.invalid_query(f"value {value} is too small. Min allowed value is 1")
            if word == "maxresults" and value > MAX_MAX:
                raise errors.invalid_query(
                    f"value {value} is too large. Max allowed value is {MAX_MAX}")
            if word == "startposition":
                query.start = value
            else:
                query.max_results = value


def canonical(spec: Spec, name: str) -> str:
    lowered = name.lower()
    for known in spec.fields:
        if known.lower() == lowered:
            return known
    raise errors.invalid_query(f"property '{name}' is not queryable")


def parse(text: str) -> Query:
    return Parser(text).parse()


# ---------------------------------------------------------------------------------------------
# Evaluation


def _field(company: Company, spec: Spec, obj: Obj, prop: str) -> Any:
    if prop == "MetaData.LastUpdatedTime":
        return company.updated.get(spec.name, {}).get(obj["Id"])
    if prop == "MetaData.CreateTime":
        return parse_instant(obj["MetaData"]["CreateTime"], company.utc_offset)
    value = obj.get(prop)
    if isinstance(value, dict):
        for key in ("value", "Address", "FreeFormNumber", "URI"):
            if key in value:
                return value[key]
        return None
    return value


def _coerce(company: Company, prop: str, value: Any) -> Any:
    if value is None:
        return None
    try:
        if prop in NUMERIC:
            return Decimal(str(value))
        if prop in DATETIMES:
            if isinstance(value, float):
                return value
            return parse_instant(str(value), company.utc_offset)
        if prop in DATES:
            return str(value)[:10]
        if prop in BOOLEANS:
            return value if isinstance(value, bool) else str(value).lower() == "true"
    except (InvalidOperation, ValueError) as exc:
        raise errors.invalid_query(f"invalid value {value!r} for property {prop}") from exc
    return str(value).lower()


def _predicate(company: Company, spec: Spec, cond: Condition) -> Callable[[Obj], bool]:
    """Compile one condition (literals are coerced once, not per row)."""
    prop = cond.prop

    def actual(obj: Obj) -> Any:
        return _coerce(company, prop, _field(company, spec, obj, prop))

    if cond.op == "LIKE":
        pattern = "".join(".*" if ch == "%" else re.escape(ch) for ch in str(cond.values[0]))
        compiled = re.compile(pattern, re.I | re.S)
        return lambda obj: (value := actual(obj)) is not None and bool(
            compiled.fullmatch(str(value)))
    wanted = [_coerce(company, prop, v) for v in cond.values]
    if cond.op in ("=", "IN"):
        return lambda obj: (value := actual(obj)) is not None and value in wanted
    target = wanted[0]
    compare: Callable[[Any, Any], bool] = {
        "<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge}[cond.op]
    return lambda obj: (value := actual(obj)) is not None and type(value) is type(
        target) and compare(value, target)


def _sort_key(company: Company, spec: Spec, prop: str, obj: Obj) -> tuple[int, Any]:
    value = _coerce(company, prop, _field(company, spec, obj, prop))
    return (0, "") if value is None else (1, value)


def select(company: Company, query: Query) -> list[Obj]:
    spec = query.spec
    rows = list(company.entities.get(spec.name, {}).values())
    mentions_active = any(c.prop == "Active" for c in query.where)
    if spec.name_list and not mentions_active:
        rows = [r for r in rows if r.get("Active", True) is not False]
    for cond in query.where:
        keep = _predicate(company, spec, cond)
        rows = [r for r in rows if keep(r)]
    # Stored in creation (= Id) order; sorting only matters after a state load.
    rows.sort(key=lambda r: int(r["Id"]) if str(r["Id"]).isdigit() else 0)
    for prop, descending in reversed(query.order):
        rows.sort(key=lambda r, p=prop: _sort_key(company, spec, p, r),  # type: ignore[misc]
                  reverse=descending)
    return rows


def execute(company: Company, text: str) -> Obj:
    """Run a query; the result is the value of ``QueryResponse``."""
    query = parse(text)
    ledger.ledger_of(company)  # balances are current (rebuilt after a state load)
    rows = select(company, query)
    if query.count:
        return {"totalCount": len(rows)}
    page = rows[query.start - 1:query.start - 1 + query.max_results]
    if not page:
        return {}
    return {query.spec.name: page, "startPosition": query.start, "maxResults": len(page)}

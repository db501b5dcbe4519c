"""Query building: literals escaped, identifiers validated, no way to widen a query."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qbo_pipelines.qbo import query as q

# A reference tokenizer of QBO's query language (independent of the builder): strings are
# single-quoted with backslash escapes.
_TOKEN_RE = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<word>[A-Za-z_][A-Za-z0-9_.]*|\d+)"
    r"|(?P<op><=|>=|[=<>(),*]))",
    re.DOTALL,
)


def tokens(statement: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(statement):
        if statement[pos:].strip() == "":
            break
        m = _TOKEN_RE.match(statement, pos)
        assert m is not None, f"untokenizable at {pos}: {statement[pos:]!r}"
        out.append(m.group(m.lastgroup or "word"))
        pos = m.end()
    return out


no_control = st.text(
    alphabet=st.characters(
        blacklist_categories=["Cs"], blacklist_characters=[chr(c) for c in [*range(32), 127]]
    )
)


def test_R41_obrien_and_backslash_escaped() -> None:
    assert q.quote_string("O'Brien") == r"'O\'Brien'"
    assert q.quote_string('O\'Brien \\ "x"') == "'O\\'Brien \\\\ \"x\"'"
    assert q.quote_string("Café ☕ 東京") == "'Café ☕ 東京'"


@pytest.mark.parametrize("bad", ["a\nb", "tab\there", "nul\x00", "del\x7f"])
def test_control_characters_rejected(bad: str) -> None:
    with pytest.raises(q.QueryBuildError):
        q.quote_string(bad)


@given(no_control)
def test_R41_any_string_round_trips(value: str) -> None:
    assert q.unquote_string(q.quote_string(value)) == value


@given(no_control)
def test_R41_crafted_value_cannot_widen_query(value: str) -> None:
    statement = q.select("Customer", q.eq("DisplayName", value)).page(1, 10).build()
    toks = tokens(statement)
    assert toks[:7] == ["SELECT", "*", "FROM", "Customer", "WHERE", "DisplayName", "="]
    assert q.unquote_string(toks[7]) == value
    assert toks[8:] == ["STARTPOSITION", "1", "MAXRESULTS", "10"]


def test_injection_attempt_stays_one_literal() -> None:
    evil = "x' OR DisplayName LIKE '%"
    statement = q.select("Customer", q.eq("DisplayName", evil)).build()
    assert statement == r"SELECT * FROM Customer WHERE DisplayName = 'x\' OR DisplayName LIKE \'%'"
    assert len(tokens(statement)) == 8


@pytest.mark.parametrize(
    "name", ["Display Name", "Id; DROP", "a'b", "", "1abc", "x--", "Meta..Data", "a)b"]
)
def test_identifiers_validated(name: str) -> None:
    with pytest.raises(q.QueryBuildError):
        q.field_name(name)
    with pytest.raises(q.QueryBuildError):
        q.select("Customer", q.eq(name, "v")).build()


@pytest.mark.parametrize("name", ["Customer WHERE", "customer;", "Item*", ""])
def test_entity_names_validated(name: str) -> None:
    with pytest.raises(q.QueryBuildError):
        q.select(name)


def test_full_statement() -> None:
    since = datetime(2024, 1, 31, 10, 20, 30, 123456, tzinfo=timezone(timedelta(hours=-7)))
    statement = (
        q.select("Invoice", q.gte("MetaData.LastUpdatedTime", since), q.in_("Id", ["1", "2"]))
        .where(q.eq("Balance", Decimal("10.50")), q.eq("Active", True))
        .order_by("MetaData.LastUpdatedTime")
        .order_by("Id", descending=True)
        .page(1001, 1000)
        .build()
    )
    assert statement == (
        "SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime >= '2024-01-31T10:20:30-07:00'"
        " AND Id IN ('1', '2') AND Balance = '10.50' AND Active = true"
        " ORDERBY MetaData.LastUpdatedTime, Id DESC STARTPOSITION 1001 MAXRESULTS 1000"
    )


def test_count_statement_drops_paging() -> None:
    statement = q.select("Customer").page(1, 5).order_by("Id").count().build()
    assert statement == "SELECT COUNT(*) FROM Customer"


def test_values_by_type() -> None:
    assert q.literal(5) == "5"
    assert q.literal(False) == "false"
    assert q.literal(date(2024, 2, 29)) == "'2024-02-29'"
    assert q.literal(datetime(2024, 1, 1, tzinfo=UTC)) == "'2024-01-01T00:00:00+00:00'"
    with pytest.raises(q.QueryBuildError):
        q.literal(datetime(2024, 1, 1))  # naive
    with pytest.raises(q.QueryBuildError):
        q.literal(Decimal("NaN"))


@pytest.mark.parametrize(("start", "size"), [(0, 10), (1, 0), (1, 1001)])
def test_paging_bounds(start: int, size: int) -> None:
    with pytest.raises(q.QueryBuildError):
        q.select("Customer").page(start, size)


def test_in_needs_values_and_like_needs_string() -> None:
    with pytest.raises(q.QueryBuildError):
        q.select("Customer", q.in_("Id", [])).build()
    with pytest.raises(q.QueryBuildError):
        q.select("Customer", q.Condition("Balance", "LIKE", 5)).build()


def test_conditions_from_mapping() -> None:
    conds = q.conditions_from({"DisplayName": "A", "Active": True})
    assert [c.render() for c in conds] == ["DisplayName = 'A'", "Active = true"]

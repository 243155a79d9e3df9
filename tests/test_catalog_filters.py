"""Filters -> Polars expressions and parameterized SQL; snippet literals. Pure logic."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest
from psycopg import sql

from neuralake.catalog import CatalogError, Filter
from neuralake.catalog.filters import bind, normalize, to_expr, to_sql
from neuralake.catalog.snippets import py_literal, sql_literal, sql_query

FRAME = pl.DataFrame(
    {
        "id": [1, 2, 3, 4, 5],
        "task": ["rest", "cursor_control", "webgrid", None, "free_play"],
        "q": [0.1, 0.5, 0.9, 0.7, None],
    }
)


def ids(filters) -> list[int]:
    return FRAME.filter(to_expr(filters)).get_column("id").to_list()


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (Filter("id", "=", 2), [2]),
        (Filter("id", "!=", 2), [1, 3, 4, 5]),
        (Filter("id", "<", 3), [1, 2]),
        (Filter("id", "<=", 3), [1, 2, 3]),
        (Filter("id", ">", 3), [4, 5]),
        (Filter("id", ">=", 3), [3, 4, 5]),
        (Filter("task", "in", ["rest", "webgrid"]), [1, 3]),
        (Filter("task", "not in", ["rest", "webgrid"]), [2, 5]),
        (Filter("task", "contains", "grid"), [3]),
        (Filter("q", ">", 0.6), [3, 4]),
    ],
)
def test_every_op_selects_the_rows_it_names(flt: Filter, expected: list[int]) -> None:
    assert ids([flt]) == expected


def test_a_list_is_and_and_a_list_of_lists_is_or_of_ands() -> None:
    assert ids([Filter("id", ">", 1), Filter("id", "<", 4)]) == [2, 3]
    either = [[Filter("id", "=", 1)], [Filter("id", ">", 3), Filter("q", ">", 0.5)]]
    assert ids(either) == [1, 4]


def test_no_filters_mean_no_expression() -> None:
    assert to_expr(None) is None
    assert to_expr([]) is None


def test_contains_matches_regex_characters_literally() -> None:
    frame = pl.DataFrame({"s": ["a.b", "axb"]})
    assert frame.filter(to_expr([Filter("s", "contains", "a.b")])).height == 1


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (lambda: Filter("id", "~", 1), "unknown filter op '~'"),
        (lambda: Filter("id", "in", 1), "needs a list value"),
        (lambda: Filter("task", "contains", 3), "needs a string value"),
        (lambda: normalize([("id", "=", 1)]), "is not a Filter"),
        (lambda: normalize([[Filter("id", "=", 1)], []]), "empty AND-group"),
        (lambda: normalize([Filter("id", "=", 1), [Filter("id", "=", 2)]]), "list of Filter"),
        (lambda: normalize(Filter("id", "=", 1)), r"pass a list, filters=\[Filter"),
        (lambda: normalize("id = 1"), "filters is a str"),
    ],
)
def test_malformed_filters_fail_with_the_fix(bad, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        bad()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, r"compares with null, which matches no row.*\.is_null\(\)"),
        (float("nan"), r"compares with nan.*\.is_nan\(\)"),
        (float("inf"), "compares with inf"),
        ([1, None], "compares with null"),
        ({"a": 1}, "has a dict value"),
    ],
)
def test_null_nan_and_odd_values_are_refused_when_written(value, message: str) -> None:
    op = "in" if isinstance(value, list) else "="
    with pytest.raises(CatalogError, match=message):
        Filter("q", op, value)


@pytest.mark.parametrize("column", ["a%b", "a b", 'we"ird', "1st", ""])
def test_filter_columns_must_be_identifiers(column: str) -> None:
    # A '%' would reach psycopg's query text as a placeholder, even inside quotes.
    with pytest.raises(CatalogError, match="is not an identifier"):
        Filter(column, "=", 1)


def test_a_generator_of_filters_is_read_once_and_works() -> None:
    gen = (Filter("id", ">", n) for n in (1, 2))
    assert ids(gen) == [3, 4, 5]
    assert normalize(f for f in [Filter("id", "=", 1)]) == [[Filter("id", "=", 1)]]


DATES = pl.DataFrame(
    {
        "d": [date(2026, 1, 1), date(2026, 1, 2)],
        "t": [datetime(2026, 1, 1, 10, tzinfo=UTC), datetime(2026, 1, 2, 10, tzinfo=UTC)],
        "n": pl.Series([1, 2], dtype=pl.Int16),
        "s": ["1", "2"],
    }
)


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (Filter("d", "=", "2026-01-01"), 1),
        (Filter("d", "in", ["2026-01-02", date(2026, 1, 1)]), 2),
        (Filter("t", ">", "2026-01-01T12:00:00"), 1),  # no zone: UTC
        (Filter("t", "<", datetime(2026, 1, 1, 12)), 1),  # naive: UTC
        (Filter("n", "=", "2"), 1),
        (Filter("n", "<", 1.5), 1),  # numbers stay numbers: not cast to 1
        (Filter("s", "=", 2), 1),
    ],
)
def test_values_are_cast_to_the_column_type(flt: Filter, expected: int) -> None:
    bound = bind([flt], DATES.schema)
    assert DATES.filter(to_expr(bound)).height == expected
    _, params = to_sql(bound)  # PostgreSQL gets the same typed values
    assert type(params[0]) is type(bound[0][0].value)


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        (Filter("d", "=", "01/02/2026"), "is not an ISO Date such as '2026-11-01'"),
        (Filter("n", "=", "two"), "cannot be cast to 'n'.s type Int16"),
        (Filter("n", "contains", "1"), "'contains' matches text, but 'n' is Int16"),
    ],
)
def test_values_that_cannot_be_cast_fail_with_the_column_type(flt: Filter, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        bind([flt], DATES.schema)


INJECTIONS = ["x' OR '1'='1", "'; DROP TABLE patients; --", 'a"b', "100%_"]


@pytest.mark.parametrize("value", INJECTIONS)
def test_sql_values_are_parameters_never_text(value: str) -> None:
    where, params = to_sql([Filter("code", "=", value), Filter("cohort", "contains", value)])
    text = where.as_string(None)
    assert value not in text
    assert text.count("%s") == 2
    assert params == [value, value]


def test_sql_column_names_are_quoted_identifiers() -> None:
    where, _ = to_sql([Filter("Mixed_Case", "=", 1)])
    assert where.as_string(None) == '("Mixed_Case" = %s)'


def test_sql_or_of_ands_and_lists() -> None:
    where, params = to_sql([[Filter("a", "in", [1, 2])], [Filter("b", "not in", ["x"])]])
    assert where.as_string(None) == '("a" = ANY(%s)) OR (NOT ("b" = ANY(%s)))'
    assert params == [[1, 2], ["x"]]
    assert to_sql(None)[0].as_string(None) == sql.SQL("TRUE").as_string(None)


def test_snippet_sql_literals_double_quotes() -> None:
    assert sql_literal("it's") == "'it''s'"
    assert sql_literal([1, "a"]) == "(1, 'a')"
    assert sql_literal(True) == "TRUE"
    query = sql_query("patients", [Filter("code", "=", "x' OR '1'='1")])
    assert query == "SELECT * FROM patients WHERE code = 'x'' OR ''1''=''1' LIMIT 100"
    assert sql_literal(date(2026, 1, 1)) == "DATE '2026-01-01'"
    assert sql_literal(2.5) == "2.5"


@pytest.mark.parametrize("value", [None, float("nan"), float("inf"), [1, None], object()])
def test_snippet_literals_refuse_values_without_a_literal(value) -> None:
    with pytest.raises(CatalogError, match="has no literal"):
        sql_literal(value)
    with pytest.raises(CatalogError, match="has no literal"):
        py_literal(value)


def test_snippets_keep_or_groups() -> None:
    groups = [[Filter("a", "=", 1), Filter("b", "<", 2)], [Filter("c", "=", "x")]]
    assert (
        sql_query("t", groups) == "SELECT * FROM t WHERE (a = 1 AND b < 2) OR (c = 'x') LIMIT 100"
    )

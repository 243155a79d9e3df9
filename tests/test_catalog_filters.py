"""Filters -> Polars expressions and parameterized SQL; snippet literals. Pure logic."""

from __future__ import annotations

import polars as pl
import pytest
from psycopg import sql

from neuralake.catalog import CatalogError, Filter
from neuralake.catalog.filters import normalize, to_expr, to_sql
from neuralake.catalog.snippets import sql_literal, sql_query

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
        ([Filter("id", "~", 1)], "unknown filter op '~'"),
        ([Filter("id", "in", 1)], "needs a list value"),
        ([Filter("task", "contains", 3)], "needs a string value"),
        ([("id", "=", 1)], "is not a Filter"),
        ([[Filter("id", "=", 1)], []], "empty AND-group"),
        ([Filter("id", "=", 1), [Filter("id", "=", 2)]], "list of Filter"),
    ],
)
def test_malformed_filters_fail_with_the_fix(bad, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        normalize(bad)


INJECTIONS = ["x' OR '1'='1", "'; DROP TABLE patients; --", 'a"b', "100%_"]


@pytest.mark.parametrize("value", INJECTIONS)
def test_sql_values_are_parameters_never_text(value: str) -> None:
    where, params = to_sql([Filter("code", "=", value), Filter("cohort", "contains", value)])
    text = where.as_string(None)
    assert value not in text
    assert text.count("%s") == 2
    assert params == [value, value]


def test_sql_column_names_are_quoted_identifiers() -> None:
    where, _ = to_sql([Filter('we"ird', "=", 1)])
    assert where.as_string(None) == '("we""ird" = %s)'


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

"""PostgresTable over a real connection: parameterized filters, lazy reads, joins."""

from __future__ import annotations

import dataclasses
import uuid

import polars as pl
import psycopg
import pytest

from neuralake import delta
from neuralake.catalog import Filter
from neuralake.catalog.examples import neuro
from neuralake.catalog.examples.seed import load_patients, seed
from neuralake.catalog.filters import bind, to_expr
from neuralake.datagen import Simulation

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def patients(stack_settings):
    """A PostgresTable over a fresh relation holding 6 patients (and one hostile code)."""
    relation = f"patients_{uuid.uuid4().hex[:8]}"
    frame = Simulation(rows=1, sessions=6, patients=6, seed=1).patients_table()
    frame = frame.with_columns(
        code=pl.when(pl.col("patient_id") == 6).then(pl.lit("100%_x'y")).otherwise("code")
    )
    load_patients(stack_settings.postgres_dsn, frame, relation)
    table = dataclasses.replace(neuro.patients, relation=relation)
    yield table, frame
    with psycopg.connect(stack_settings.postgres_dsn) as conn:
        conn.execute(psycopg.sql.SQL("DROP TABLE {}").format(psycopg.sql.Identifier(relation)))


def test_reads_with_filters_and_columns(patients, stack_settings) -> None:
    table, _ = patients
    got = table.scan(
        filters=[Filter("patient_id", ">=", 3), Filter("cohort", "in", ["pilot", "main"])],
        columns=["patient_id", "code"],
        settings=stack_settings,
    ).collect()
    assert got.columns == ["patient_id", "code"]
    assert got.sort("patient_id")["patient_id"].to_list() == [3, 4, 5, 6]
    assert got.schema == pl.Schema({"patient_id": pl.Int32, "code": pl.String})


@pytest.mark.parametrize(
    "value", ["x' OR '1'='1", "'; DROP TABLE patients; --", "P0001' --", "%", "_"]
)
def test_hostile_values_are_data_not_sql(patients, stack_settings, value: str) -> None:
    table, frame = patients
    got = table.scan(filters=[Filter("code", "=", value)], settings=stack_settings).collect()
    assert got.height == 0
    assert table.scan(settings=stack_settings).collect().height == frame.height  # still there


def test_contains_is_literal_and_quotes_are_matched(patients, stack_settings) -> None:
    table, _ = patients
    for needle in ["100%_", "x'y"]:
        got = table.scan(filters=[Filter("code", "contains", needle)], settings=stack_settings)
        assert got.collect()["patient_id"].to_list() == [6]


def test_query_text_never_holds_values(patients) -> None:
    table, _ = patients
    query, params = table.query([Filter("code", "=", "x' OR 1=1")], ["code"], limit=5)
    text = query.as_string(None)
    assert "OR 1=1" not in text and text.endswith("LIMIT %s")
    assert params == ["x' OR 1=1", 5]


def test_reads_are_lazy_and_later_filters_still_apply(patients, stack_settings) -> None:
    table, _ = patients
    lazy = table.scan(settings=stack_settings)
    assert "postgres" in lazy.explain()
    assert lazy.filter(pl.col("patient_id") == 2).collect()["patient_id"].to_list() == [2]
    assert lazy.head(2).collect().height == 2


def test_one_lazyframe_joins_delta_function_and_postgres(stack_settings, request) -> None:
    prefix = f"s3://{stack_settings.bucket}/test-pg-{uuid.uuid4().hex[:8]}"
    settings = dataclasses.replace(stack_settings, warehouse_uri=prefix)
    seed(settings)
    request.addfinalizer(lambda: delta.drop_table(prefix, settings.storage_options))
    joined = (
        neuro.sessions.scan(settings=settings)
        .join(neuro.session_quality.scan(settings=settings), on=["session_id", "task"])
        .join(neuro.patients.scan(settings=settings), on="patient_id")
        .select("session_id", "task", "code", "cohort", "spike_rate_hz")
        .collect()
    )
    assert joined.height == 4
    assert joined["code"].str.starts_with("P").all()


def test_text_values_are_cast_like_polars_does(patients, stack_settings) -> None:
    table, frame = patients
    middle = frame.sort("enrolled_at")["enrolled_at"][3]
    text = middle.replace(tzinfo=None).isoformat()  # ISO text without a zone: UTC
    filters = [Filter("enrolled_at", ">=", text), Filter("patient_id", "!=", "1")]
    from_postgres = table.scan(filters=filters, settings=stack_settings).collect()
    in_polars = frame.lazy().filter(to_expr(bind(filters, frame.schema))).collect()
    assert sorted(from_postgres["patient_id"]) == sorted(in_polars["patient_id"])
    assert 0 < from_postgres.height < frame.height

"""The 22 TPC-H queries as Polars LazyFrame plans, one function per query.

Each function takes the tables (name -> LazyFrame from ``pl.scan_delta``) and returns
the plan; nothing runs until ``.collect()``. They follow the SQL texts in
:mod:`neuralake.lab.bench.queries.sql` clause by clause, with the same parameters, so that
the answers can be compared row by row. Correlated subqueries (Q2, Q4, Q17, Q20-Q22)
become a group-by and a join, which is how every optimizer here decorrelates them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from functools import partial

import polars as pl

Tables = Mapping[str, pl.LazyFrame]
col = pl.col


def _revenue() -> pl.Expr:
    return col("l_extendedprice") * (1 - col("l_discount"))


def q1(t: Tables) -> pl.LazyFrame:
    return (
        t["lineitem"]
        .filter(col("l_shipdate") <= date(1998, 9, 2))
        .group_by("l_returnflag", "l_linestatus")
        .agg(
            col("l_quantity").sum().alias("sum_qty"),
            col("l_extendedprice").sum().alias("sum_base_price"),
            _revenue().sum().alias("sum_disc_price"),
            (_revenue() * (1 + col("l_tax"))).sum().alias("sum_charge"),
            col("l_quantity").mean().alias("avg_qty"),
            col("l_extendedprice").mean().alias("avg_price"),
            col("l_discount").mean().alias("avg_disc"),
            pl.len().alias("count_order"),
        )
        .sort("l_returnflag", "l_linestatus")
    )


def q2(t: Tables) -> pl.LazyFrame:
    europe = (
        t["partsupp"]
        .join(t["supplier"], left_on="ps_suppkey", right_on="s_suppkey")
        .join(t["nation"], left_on="s_nationkey", right_on="n_nationkey")
        .join(t["region"], left_on="n_regionkey", right_on="r_regionkey")
        .filter(col("r_name") == "EUROPE")
    )
    parts = t["part"].filter((col("p_size") == 15) & col("p_type").str.ends_with("BRASS"))
    candidates = parts.join(europe, left_on="p_partkey", right_on="ps_partkey")
    cheapest = candidates.group_by("p_partkey").agg(col("ps_supplycost").min().alias("min_cost"))
    return (
        candidates.join(cheapest, on="p_partkey")
        .filter(col("ps_supplycost") == col("min_cost"))
        .select(
            "s_acctbal",
            "s_name",
            "n_name",
            "p_partkey",
            "p_mfgr",
            "s_address",
            "s_phone",
            "s_comment",
        )
        .sort(
            ["s_acctbal", "n_name", "s_name", "p_partkey"], descending=[True, False, False, False]
        )
        .head(100)
    )


def q3(t: Tables) -> pl.LazyFrame:
    cutoff = date(1995, 3, 15)
    return (
        t["customer"]
        .filter(col("c_mktsegment") == "BUILDING")
        .join(
            t["orders"].filter(col("o_orderdate") < cutoff),
            left_on="c_custkey",
            right_on="o_custkey",
        )
        .join(
            t["lineitem"].filter(col("l_shipdate") > cutoff),
            left_on="o_orderkey",
            right_on="l_orderkey",
        )
        .group_by(col("o_orderkey").alias("l_orderkey"), "o_orderdate", "o_shippriority")
        .agg(_revenue().sum().alias("revenue"))
        .select("l_orderkey", "revenue", "o_orderdate", "o_shippriority")
        .sort(["revenue", "o_orderdate"], descending=[True, False])
        .head(10)
    )


def q4(t: Tables) -> pl.LazyFrame:
    late = t["lineitem"].filter(col("l_commitdate") < col("l_receiptdate"))
    return (
        t["orders"]
        .filter(col("o_orderdate").is_between(date(1993, 7, 1), date(1993, 10, 1), closed="left"))
        .join(late, left_on="o_orderkey", right_on="l_orderkey", how="semi")
        .group_by("o_orderpriority")
        .agg(pl.len().alias("order_count"))
        .sort("o_orderpriority")
    )


def q5(t: Tables) -> pl.LazyFrame:
    return (
        t["region"]
        .filter(col("r_name") == "ASIA")
        .join(t["nation"], left_on="r_regionkey", right_on="n_regionkey")
        .join(t["customer"], left_on="n_nationkey", right_on="c_nationkey")
        .join(
            t["orders"].filter(
                col("o_orderdate").is_between(date(1994, 1, 1), date(1995, 1, 1), closed="left")
            ),
            left_on="c_custkey",
            right_on="o_custkey",
        )
        .join(t["lineitem"], left_on="o_orderkey", right_on="l_orderkey")
        .join(
            t["supplier"],
            left_on=["l_suppkey", "n_nationkey"],
            right_on=["s_suppkey", "s_nationkey"],
        )
        .group_by("n_name")
        .agg(_revenue().sum().alias("revenue"))
        .sort("revenue", descending=True)
    )


def q6(t: Tables) -> pl.LazyFrame:
    return (
        t["lineitem"]
        .filter(
            col("l_shipdate").is_between(date(1994, 1, 1), date(1995, 1, 1), closed="left")
            & col("l_discount").is_between(0.05, 0.07)
            & (col("l_quantity") < 24)
        )
        .select((col("l_extendedprice") * col("l_discount")).sum().alias("revenue"))
    )


def q7(t: Tables) -> pl.LazyFrame:
    nations = t["nation"].filter(col("n_name").is_in(["FRANCE", "GERMANY"]))
    suppliers = t["supplier"].join(
        nations.select(col("n_nationkey"), col("n_name").alias("supp_nation")),
        left_on="s_nationkey",
        right_on="n_nationkey",
    )
    customers = t["customer"].join(
        nations.select(col("n_nationkey"), col("n_name").alias("cust_nation")),
        left_on="c_nationkey",
        right_on="n_nationkey",
    )
    return (
        t["lineitem"]
        .filter(col("l_shipdate").is_between(date(1995, 1, 1), date(1996, 12, 31)))
        .join(suppliers, left_on="l_suppkey", right_on="s_suppkey")
        .join(t["orders"], left_on="l_orderkey", right_on="o_orderkey")
        .join(customers, left_on="o_custkey", right_on="c_custkey")
        .filter(col("supp_nation") != col("cust_nation"))
        .group_by("supp_nation", "cust_nation", col("l_shipdate").dt.year().alias("l_year"))
        .agg(_revenue().sum().alias("revenue"))
        .sort("supp_nation", "cust_nation", "l_year")
    )


def q8(t: Tables) -> pl.LazyFrame:
    america = (
        t["region"]
        .filter(col("r_name") == "AMERICA")
        .join(t["nation"], left_on="r_regionkey", right_on="n_regionkey")
        .join(t["customer"], left_on="n_nationkey", right_on="c_nationkey")
        .select("c_custkey")
    )
    supplier_nation = t["supplier"].join(
        t["nation"].select("n_nationkey", col("n_name").alias("nation")),
        left_on="s_nationkey",
        right_on="n_nationkey",
    )
    return (
        t["part"]
        .filter(col("p_type") == "ECONOMY ANODIZED STEEL")
        .join(t["lineitem"], left_on="p_partkey", right_on="l_partkey")
        .join(
            t["orders"].filter(col("o_orderdate").is_between(date(1995, 1, 1), date(1996, 12, 31))),
            left_on="l_orderkey",
            right_on="o_orderkey",
        )
        .join(america, left_on="o_custkey", right_on="c_custkey")
        .join(supplier_nation, left_on="l_suppkey", right_on="s_suppkey")
        .with_columns(_revenue().alias("volume"), col("o_orderdate").dt.year().alias("o_year"))
        .group_by("o_year")
        .agg(
            (
                pl.when(col("nation") == "BRAZIL").then(col("volume")).otherwise(0).sum()
                / col("volume").sum()
            ).alias("mkt_share")
        )
        .sort("o_year")
    )


def q9(t: Tables) -> pl.LazyFrame:
    return (
        t["part"]
        .filter(col("p_name").str.contains("green", literal=True))
        .join(t["lineitem"], left_on="p_partkey", right_on="l_partkey")
        .join(
            t["partsupp"],
            left_on=["p_partkey", "l_suppkey"],
            right_on=["ps_partkey", "ps_suppkey"],
        )
        .join(t["supplier"], left_on="l_suppkey", right_on="s_suppkey")
        .join(t["orders"], left_on="l_orderkey", right_on="o_orderkey")
        .join(t["nation"], left_on="s_nationkey", right_on="n_nationkey")
        .group_by(col("n_name").alias("nation"), col("o_orderdate").dt.year().alias("o_year"))
        .agg((_revenue() - col("ps_supplycost") * col("l_quantity")).sum().alias("sum_profit"))
        .sort(["nation", "o_year"], descending=[False, True])
    )


def q10(t: Tables) -> pl.LazyFrame:
    return (
        t["customer"]
        .join(
            t["orders"].filter(
                col("o_orderdate").is_between(date(1993, 10, 1), date(1994, 1, 1), closed="left")
            ),
            left_on="c_custkey",
            right_on="o_custkey",
        )
        .join(
            t["lineitem"].filter(col("l_returnflag") == "R"),
            left_on="o_orderkey",
            right_on="l_orderkey",
        )
        .join(t["nation"], left_on="c_nationkey", right_on="n_nationkey")
        .group_by("c_custkey", "c_name", "c_acctbal", "c_phone", "n_name", "c_address", "c_comment")
        .agg(_revenue().sum().alias("revenue"))
        .select(
            "c_custkey",
            "c_name",
            "revenue",
            "c_acctbal",
            "n_name",
            "c_address",
            "c_phone",
            "c_comment",
        )
        .sort("revenue", descending=True)
        .head(20)
    )


def q11(t: Tables, scale: float) -> pl.LazyFrame:
    german = (
        t["partsupp"]
        .join(t["supplier"], left_on="ps_suppkey", right_on="s_suppkey")
        .join(t["nation"], left_on="s_nationkey", right_on="n_nationkey")
        .filter(col("n_name") == "GERMANY")
        .with_columns((col("ps_supplycost") * col("ps_availqty")).alias("value"))
    )
    threshold = german.select((col("value").sum() * (0.0001 / scale)).alias("threshold"))
    return (
        german.group_by("ps_partkey")
        .agg(col("value").sum())
        .join(threshold, how="cross")
        .filter(col("value") > col("threshold"))
        .select("ps_partkey", "value")
        .sort("value", descending=True)
    )


def q12(t: Tables) -> pl.LazyFrame:
    urgent = col("o_orderpriority").is_in(["1-URGENT", "2-HIGH"])
    return (
        t["lineitem"]
        .filter(
            col("l_shipmode").is_in(["MAIL", "SHIP"])
            & (col("l_commitdate") < col("l_receiptdate"))
            & (col("l_shipdate") < col("l_commitdate"))
            & col("l_receiptdate").is_between(date(1994, 1, 1), date(1995, 1, 1), closed="left")
        )
        .join(t["orders"], left_on="l_orderkey", right_on="o_orderkey")
        .group_by("l_shipmode")
        .agg(
            urgent.cast(pl.Int64).sum().alias("high_line_count"),
            (~urgent).cast(pl.Int64).sum().alias("low_line_count"),
        )
        .sort("l_shipmode")
    )


def q13(t: Tables) -> pl.LazyFrame:
    orders = t["orders"].filter(~col("o_comment").str.contains("special.*requests"))
    return (
        t["customer"]
        .join(orders, left_on="c_custkey", right_on="o_custkey", how="left")
        .group_by("c_custkey")
        .agg(col("o_orderkey").count().alias("c_count"))
        .group_by("c_count")
        .agg(pl.len().alias("custdist"))
        .sort(["custdist", "c_count"], descending=[True, True])
    )


def q14(t: Tables) -> pl.LazyFrame:
    return (
        t["lineitem"]
        .filter(col("l_shipdate").is_between(date(1995, 9, 1), date(1995, 10, 1), closed="left"))
        .join(t["part"], left_on="l_partkey", right_on="p_partkey")
        .select(
            (
                100.0
                * pl.when(col("p_type").str.starts_with("PROMO"))
                .then(_revenue())
                .otherwise(0)
                .sum()
                / _revenue().sum()
            ).alias("promo_revenue")
        )
    )


def q15(t: Tables) -> pl.LazyFrame:
    revenue = (
        t["lineitem"]
        .filter(col("l_shipdate").is_between(date(1996, 1, 1), date(1996, 4, 1), closed="left"))
        .group_by(col("l_suppkey").alias("supplier_no"))
        .agg(_revenue().sum().round(2).alias("total_revenue"))
    )
    return (
        t["supplier"]
        .join(revenue, left_on="s_suppkey", right_on="supplier_no")
        .filter(col("total_revenue") == col("total_revenue").max())
        .select("s_suppkey", "s_name", "s_address", "s_phone", "total_revenue")
        .sort("s_suppkey")
    )


def q16(t: Tables) -> pl.LazyFrame:
    complaints = t["supplier"].filter(col("s_comment").str.contains("Customer.*Complaints"))
    return (
        t["part"]
        .filter(
            (col("p_brand") != "Brand#45")
            & ~col("p_type").str.starts_with("MEDIUM POLISHED")
            & col("p_size").is_in([49, 14, 23, 45, 19, 3, 36, 9])
        )
        .join(t["partsupp"], left_on="p_partkey", right_on="ps_partkey")
        .join(complaints, left_on="ps_suppkey", right_on="s_suppkey", how="anti")
        .group_by("p_brand", "p_type", "p_size")
        .agg(col("ps_suppkey").n_unique().alias("supplier_cnt"))
        .sort(
            ["supplier_cnt", "p_brand", "p_type", "p_size"], descending=[True, False, False, False]
        )
    )


def q17(t: Tables) -> pl.LazyFrame:
    parts = t["part"].filter((col("p_brand") == "Brand#23") & (col("p_container") == "MED BOX"))
    lines = parts.join(t["lineitem"], left_on="p_partkey", right_on="l_partkey")
    limits = lines.group_by("p_partkey").agg((0.2 * col("l_quantity").mean()).alias("limit"))
    return (
        lines.join(limits, on="p_partkey")
        .filter(col("l_quantity") < col("limit"))
        .select((col("l_extendedprice").sum() / 7.0).alias("avg_yearly"))
    )


def q18(t: Tables) -> pl.LazyFrame:
    big = (
        t["lineitem"]
        .group_by("l_orderkey")
        .agg(col("l_quantity").sum().alias("total"))
        .filter(col("total") > 300)
        .select("l_orderkey")
    )
    return (
        t["orders"]
        .join(big, left_on="o_orderkey", right_on="l_orderkey", how="semi")
        .join(t["customer"], left_on="o_custkey", right_on="c_custkey")
        .join(t["lineitem"], left_on="o_orderkey", right_on="l_orderkey")
        .group_by(
            "c_name",
            col("o_custkey").alias("c_custkey"),
            "o_orderkey",
            "o_orderdate",
            "o_totalprice",
        )
        .agg(col("l_quantity").sum().alias("sum_qty"))
        .sort(["o_totalprice", "o_orderdate"], descending=[True, False])
        .head(100)
    )


def q19(t: Tables) -> pl.LazyFrame:
    def bucket(brand: str, containers: list[str], low: int, top_size: int) -> pl.Expr:
        return (
            (col("p_brand") == brand)
            & col("p_container").is_in(containers)
            & col("l_quantity").is_between(low, low + 10)
            & col("p_size").is_between(1, top_size)
        )

    small = ["SM CASE", "SM BOX", "SM PACK", "SM PKG"]
    medium = ["MED BAG", "MED BOX", "MED PKG", "MED PACK"]
    large = ["LG CASE", "LG BOX", "LG PACK", "LG PKG"]
    return (
        t["lineitem"]
        .filter(
            col("l_shipmode").is_in(["AIR", "AIR REG"])
            & (col("l_shipinstruct") == "DELIVER IN PERSON")
        )
        .join(t["part"], left_on="l_partkey", right_on="p_partkey")
        .filter(
            bucket("Brand#12", small, 1, 5)
            | bucket("Brand#23", medium, 10, 10)
            | bucket("Brand#34", large, 20, 15)
        )
        .select(_revenue().sum().alias("revenue"))
    )


def q20(t: Tables) -> pl.LazyFrame:
    shipped = (
        t["lineitem"]
        .filter(col("l_shipdate").is_between(date(1994, 1, 1), date(1995, 1, 1), closed="left"))
        .group_by("l_partkey", "l_suppkey")
        .agg((0.5 * col("l_quantity").sum()).alias("half_qty"))
    )
    forest = t["part"].filter(col("p_name").str.starts_with("forest"))
    suppliers = (
        t["partsupp"]
        .join(forest, left_on="ps_partkey", right_on="p_partkey", how="semi")
        .join(shipped, left_on=["ps_partkey", "ps_suppkey"], right_on=["l_partkey", "l_suppkey"])
        .filter(col("ps_availqty") > col("half_qty"))
        .select("ps_suppkey")
    )
    return (
        t["supplier"]
        .join(
            t["nation"].filter(col("n_name") == "CANADA"),
            left_on="s_nationkey",
            right_on="n_nationkey",
        )
        .join(suppliers, left_on="s_suppkey", right_on="ps_suppkey", how="semi")
        .select("s_name", "s_address")
        .sort("s_name")
    )


def q21(t: Tables) -> pl.LazyFrame:
    lineitem = t["lineitem"]
    late = lineitem.filter(col("l_receiptdate") > col("l_commitdate"))
    # Orders with more than one supplier, and orders where exactly one supplier was late.
    multi = (
        lineitem.group_by("l_orderkey")
        .agg(col("l_suppkey").n_unique().alias("n"))
        .filter(col("n") > 1)
        .select("l_orderkey")
    )
    one_late = (
        late.group_by("l_orderkey")
        .agg(col("l_suppkey").n_unique().alias("n"))
        .filter(col("n") == 1)
        .select("l_orderkey")
    )
    return (
        late.join(multi, on="l_orderkey", how="semi")
        .join(one_late, on="l_orderkey", how="semi")
        .join(
            t["orders"].filter(col("o_orderstatus") == "F"),
            left_on="l_orderkey",
            right_on="o_orderkey",
        )
        .join(t["supplier"], left_on="l_suppkey", right_on="s_suppkey")
        .join(
            t["nation"].filter(col("n_name") == "SAUDI ARABIA"),
            left_on="s_nationkey",
            right_on="n_nationkey",
        )
        .group_by("s_name")
        .agg(pl.len().alias("numwait"))
        .sort(["numwait", "s_name"], descending=[True, False])
        .head(100)
    )


def q22(t: Tables) -> pl.LazyFrame:
    codes = ["13", "31", "23", "29", "30", "18", "17"]
    customers = t["customer"].with_columns(col("c_phone").str.slice(0, 2).alias("cntrycode"))
    chosen = customers.filter(col("cntrycode").is_in(codes))
    average = chosen.filter(col("c_acctbal") > 0.0).select(col("c_acctbal").mean().alias("avg"))
    return (
        chosen.join(average, how="cross")
        .filter(col("c_acctbal") > col("avg"))
        .join(t["orders"], left_on="c_custkey", right_on="o_custkey", how="anti")
        .group_by("cntrycode")
        .agg(pl.len().alias("numcust"), col("c_acctbal").sum().alias("totacctbal"))
        .sort("cntrycode")
    )


_PLANS = {n: globals()[f"q{n}"] for n in range(1, 23)}


def plan(number: int, scale: float) -> Callable[[Tables], pl.LazyFrame]:
    """The Polars plan function of TPC-H query ``number`` for scale factor ``scale``."""
    return partial(q11, scale=scale) if number == 11 else _PLANS[number]

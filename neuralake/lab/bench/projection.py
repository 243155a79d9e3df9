"""A larger scale factor projected from two measured ones, instead of run.

For each (query, engine), the median times at two scales give a line: a fixed cost and a
cost per lineitem row (TPC-H's tables all grow in step with lineitem's 6,000,000 rows
per scale factor). The projection is that line at the larger scale. It assumes every
query stays linear in the rows and that memory holds out (no spilling), so it is a
lower estimate for the joins that would spill, and it says so. A slope below zero (the
larger scale ran faster, i.e. noise) is taken as zero and counted.
"""

from __future__ import annotations

from neuralake.errors import ConfigError
from neuralake.lab.bench import report

LINEITEM_ROWS_PER_SF = 6_000_000


def _medians(document: dict) -> dict[tuple[str, str], float]:
    return {(r["query"], r["engine"]): r["median_s"] for r in document["results"]}


def _ceiling(document: dict) -> dict[tuple[str, str], float]:
    queries = document.get("ceiling", {}).get("queries", {})
    return {(q, "ceiling (read)"): v["read_s"] for q, v in queries.items()}


def project(small: dict, large: dict, scale: float) -> dict:
    """Fit ``small`` and ``large`` (two result documents) per query and engine; project."""
    if not small["scale"] < large["scale"] < scale:
        raise ConfigError(
            f"project from two smaller scales to a larger one: got SF{small['scale']:g}, "
            f"SF{large['scale']:g} -> SF{scale:g}"
        )
    rows_s, rows_l = (d["scale"] * LINEITEM_ROWS_PER_SF for d in (small, large))
    rows_p = scale * LINEITEM_ROWS_PER_SF
    times_s = _medians(small) | _ceiling(small)
    times_l = _medians(large) | _ceiling(large)
    fits, clamped = [], 0
    for key in sorted(times_s.keys() & times_l.keys()):
        slope = (times_l[key] - times_s[key]) / (rows_l - rows_s)
        clamped += slope < 0
        slope = max(slope, 0.0)
        fixed = times_l[key] - slope * rows_l
        fits.append(
            {
                "query": key[0],
                "engine": key[1],
                "fixed_s": round(fixed, 4),
                "ns_per_row": round(slope * 1e9, 3),
                "projected_s": round(fixed + slope * rows_p, 3),
            }
        )
    totals: dict[str, float] = {}
    for fit in fits:
        totals[fit["engine"]] = round(totals.get(fit["engine"], 0.0) + fit["projected_s"], 2)
    return {
        "scale": scale,
        "from_scales": [small["scale"], large["scale"]],
        "from_load_average": [
            small["machine"]["load_average_after"][0],
            large["machine"]["load_average_after"][0],
        ],
        "what": "per query and engine, median time = fixed + per-row cost x lineitem rows, "
        "fitted through the two measured scales; projected, not run",
        "negative_slopes_set_to_zero": clamped,
        "totals_s": totals,
        "measured_totals_s": {
            str(d["scale"]): report.totals(d)
            | ({"ceiling (read)": d["ceiling"]["read_s"]} if d.get("ceiling") else {})
            for d in (small, large)
        },
        "fits": fits,
    }


def markdown(projection: dict) -> str:
    """Measured and projected totals per engine, as a Markdown table."""
    small, large = (f"{s:g}" for s in projection["from_scales"])
    measured = projection["measured_totals_s"]
    names = list(projection["totals_s"])
    lines = [
        f"| engine | SF{small} measured | SF{large} measured | "
        f"SF{projection['scale']:g} projected |",
        "|---|---:|---:|---:|",
    ]
    for name in names:
        cells = [measured[s].get(name) for s in (str(projection["from_scales"][0]),)]
        cells.append(measured[str(projection["from_scales"][1])].get(name))
        shown = [f"{c:.2f} s" if c is not None else "" for c in cells]
        lines.append(f"| {name} | {shown[0]} | {shown[1]} | {projection['totals_s'][name]:.1f} s |")
    return "\n".join(lines)

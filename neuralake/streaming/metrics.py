"""Read a process's Prometheus ``/metrics`` page into something a lesson can print.

The writer's three processes (ingest, compact, vacuum) serve the Prometheus text format;
``prometheus_client``'s parser does the reading, so this module only flattens it::

    samples(url)            # a DataFrame: metric, name, labels, value
    values(url)             # {"neuralake_writer_rows_total": 1e6, 'x{partition="0"}': 3, ...}
"""

from __future__ import annotations

import httpx
import polars as pl
from prometheus_client.parser import text_string_to_metric_families

from neuralake.errors import StackError


def scrape(url: str, timeout: float = 3.0) -> str:
    """The text of ``url`` (e.g. ``http://127.0.0.1:9464/metrics``); ``StackError`` if down."""
    try:
        response = httpx.get(url, timeout=timeout).raise_for_status()
    except httpx.HTTPError as err:
        raise StackError(
            f"no metrics at {url} ({type(err).__name__}): is the writer running? "
            "(neuralake writer status)"
        ) from err
    return response.text


def samples(url: str) -> pl.DataFrame:
    """Every sample: its family (``metric``), sample ``name``, ``labels`` text and ``value``."""
    rows = [
        (family.name, sample.name, _labels(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(scrape(url))
        for sample in family.samples
    ]
    return pl.DataFrame(
        rows,
        schema={"metric": pl.String, "name": pl.String, "labels": pl.String, "value": pl.Float64},
        orient="row",
    )


def values(url: str) -> dict[str, float]:
    """``{'name{labels}': value}``, e.g. ``neuralake_writer_consumer_lag{partition="0"}``."""
    return {f"{name}{labels}": value for _, name, labels, value in samples(url).iter_rows()}


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{value}"' for key, value in sorted(labels.items())) + "}"

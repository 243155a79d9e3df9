"""The hot path: the catalog's tables served by ROAPI, and the clients that query them.

- :mod:`neuralake.api.client`: SQL, REST and GraphQL over HTTP into a Polars DataFrame
  (Arrow IPC on the wire, not JSON), with one-line errors.
- :mod:`neuralake.lab.api.serve`: write the catalog's ROAPI config where the stack serves
  it, and reload ROAPI.
- :mod:`neuralake.api.baseline`: the FastAPI + Polars service an engineer would write
  instead, for the latency comparison.
- :mod:`neuralake.api.window`: the serving window, a live table's recent rows in one
  small Parquet object that ROAPI holds in memory (the fresh hot path).
- :mod:`neuralake.api.latency`: percentiles of repeated queries.
- :mod:`neuralake.api.explain`: where a ROAPI query's time goes (``EXPLAIN ANALYZE``
  scan metrics: files, row groups, bytes, metadata loads, in-memory batches).
- :mod:`neuralake.api.sample`: bronze-shaped rows to fill a benchmark table.
"""

from neuralake.api.client import QueryError, RoapiClient, query

__all__ = ["QueryError", "RoapiClient", "query"]

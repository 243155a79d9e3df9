"""Query ROAPI over HTTP and get a Polars DataFrame.

ROAPI answers in JSON unless asked otherwise. With ``Accept:
application/vnd.apache.arrow.stream`` it sends the Arrow IPC stream of its result
batches: typed columns (an ``Int16`` stays ``Int16``, a timestamp keeps its time zone)
that Polars reads without parsing, where JSON would turn every value into text first.

The real API is one POST::

    httpx.post("http://127.0.0.1:8084/api/sql", content="SELECT ...",
               headers={"Accept": "application/vnd.apache.arrow.stream"})

:class:`RoapiClient` wraps it with a kept-alive connection (a new TCP connection per
query costs more than a point query itself) and turns ROAPI's JSON errors into
:class:`QueryError` with the first line of ROAPI's message.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import polars as pl

import neuralake
from neuralake.errors import NeuralakeError, StackError
from neuralake.settings import Settings

ARROW_STREAM = "application/vnd.apache.arrow.stream"

#: ROAPI 0.12.7's scan panics when a query reads no data column of a partitioned Delta
#: table (``count(*)`` filtered on the partition column only); the hint names the fix.
_PANIC_HINTS = {
    "StructArray": "count(*) of a partitioned Delta table panics in ROAPI 0.12.7: "
    "count a data column instead, e.g. count(voltage_uv)",
}


#: Nothing answered, or the connection broke before an answer (what ``requests`` called a
#: ConnectionError); a read timeout is not among them: the server is there, only slow.
_UNREACHABLE = (httpx.NetworkError, httpx.ConnectTimeout, httpx.RemoteProtocolError)


class QueryError(NeuralakeError, ValueError):
    """ROAPI refused a query (bad SQL, unknown table or column, a ROAPI defect)."""


class RoapiClient:
    """SQL, REST and GraphQL queries against one ROAPI server, answers as DataFrames.

    ``RoapiClient()`` talks to the stack's ROAPI (``settings().roapi_http``).
    """

    def __init__(
        self, http: str | None = None, settings: Settings | None = None, timeout: float = 30
    ) -> None:
        address = http or (settings or neuralake.settings()).roapi_http
        self.base = address if address.startswith("http") else f"http://{address}"
        self.timeout = timeout
        self.session = httpx.Client()  # one kept-alive connection for every query

    def sql(self, query: str) -> pl.DataFrame:
        """Run SQL (DataFusion's dialect) and return the result."""
        return self._arrow("POST", "/api/sql", content=query.encode())

    def rest(
        self,
        table: str,
        *,
        columns: list[str] | None = None,
        filters: dict[str, Any] | None = None,
        sort: str | None = None,
        limit: int | None = None,
    ) -> pl.DataFrame:
        """``GET /api/tables/{table}``: columns, equality filters, sort and limit.

        String filter values are sent quoted (``filter[name]='abc'``), as ROAPI needs.
        """
        params: dict[str, str] = {}
        if columns:
            params["columns"] = ",".join(columns)
        for column, value in (filters or {}).items():
            params[f"filter[{column}]"] = f"'{value}'" if isinstance(value, str) else str(value)
        if sort:
            params["sort"] = sort
        if limit is not None:
            params["limit"] = str(limit)
        return self._arrow("GET", f"/api/tables/{table}", params=params)

    def graphql(self, query: str) -> pl.DataFrame:
        """``POST /api/graphql``, e.g. ``{t(filter: {channel: 3}, limit: 5) {channel}}``."""
        return self._arrow("POST", "/api/graphql", content=query.encode())

    def tables(self) -> dict[str, list[str]]:
        """Every served table and its column names (``GET /api/schema``)."""
        schema = self._request("GET", "/api/schema", headers={}).json()
        return {name: [f["name"] for f in s["fields"]] for name, s in sorted(schema.items())}

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> RoapiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _arrow(self, method: str, path: str, **kwargs: Any) -> pl.DataFrame:
        response = self._request(method, path, headers={"Accept": ARROW_STREAM}, **kwargs)
        if not response.content:  # no batches at all: ROAPI sends an empty body
            return pl.DataFrame()
        return pl.read_ipc_stream(response.content)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = self.base + path
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except _UNREACHABLE as err:
            raise StackError(
                f"ROAPI is not answering at {self.base}: start it with `neuralake api serve` "
                "(or `make up` once a catalog wrote its config)"
            ) from err
        if response.status_code >= 400:
            raise QueryError(_error_line(response))
        return response


def _error_line(response: httpx.Response) -> str:
    """ROAPI's error as one line: kind, first line of the message, and a hint if known."""
    try:
        body = response.json()
        kind, message = body.get("error", "error"), str(body.get("message", ""))
    except json.JSONDecodeError:
        kind, message = f"HTTP {response.status_code}", response.text
    message = " ".join(message.split())
    for marker, hint in _PANIC_HINTS.items():
        if marker in message:
            return f"ROAPI {kind}: {hint}"
    return f"ROAPI {kind}: {message[:300]}"


def query(sql: str, settings: Settings | None = None) -> pl.DataFrame:
    """One SQL query against the stack's ROAPI (opens and closes a connection)."""
    with RoapiClient(settings=settings) as client:
        return client.sql(sql)

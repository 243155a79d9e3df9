"""The service an engineer writes instead of ROAPI: FastAPI + Polars over one Delta table.

It is the honest comparison for ROAPI: the table read into a Polars DataFrame at start,
re-read when the Delta log has a new version (checked every ``refresh_s`` seconds, like
ROAPI's ``reload_interval``), and a ``POST /sql`` endpoint that runs the same SQL
through Polars' SQL engine and answers in Arrow IPC, as the client asks ROAPI to. It
is about 60 lines; it serves one table, over HTTP only (no PostgreSQL wire, no Flight
SQL, no GraphQL), and each new table or query shape is more code to write and deploy.

Run it (the lesson and the benchmark start it in a separate process)::

    python -m neuralake.api.baseline --uri s3://neuralake/warehouse/t --name t --port 8090
"""

from __future__ import annotations

import argparse
import io
import threading
import time

import polars as pl
from deltalake import DeltaTable
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

import neuralake

ARROW_STREAM = "application/vnd.apache.arrow.stream"


class Snapshot:
    """The table in memory, re-read by a background thread when a new version lands."""

    def __init__(self, uri: str, storage_options: dict[str, str], refresh_s: float) -> None:
        self.uri, self.options, self.refresh_s = uri, storage_options, refresh_s
        self.log = DeltaTable(uri, storage_options=storage_options)
        self.frame = pl.read_delta(self.log)
        self.version = self.log.version()
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        while True:
            time.sleep(self.refresh_s)
            self.log.update_incremental()
            if self.log.version() != self.version:
                self.frame, self.version = pl.read_delta(self.log), self.log.version()


def create_app(uri: str, name: str, refresh_s: float = 2.0) -> FastAPI:
    """A FastAPI app serving the Delta table at ``uri`` as ``name`` through ``POST /sql``."""
    snapshot = Snapshot(uri, neuralake.settings().storage_options, refresh_s)
    app = FastAPI(title=f"{name} (FastAPI + Polars)")

    @app.get("/health")
    def health() -> dict[str, int]:
        return {"version": snapshot.version, "rows": snapshot.frame.height}

    def run(query: str) -> bytes:
        try:
            result = pl.SQLContext({name: snapshot.frame}).execute(query, eager=True)
        except Exception as err:  # Polars' SQL errors: the client's mistake, one line back
            raise HTTPException(400, " ".join(str(err).split())[:300]) from err
        sink = io.BytesIO()
        result.write_ipc_stream(sink)
        return sink.getvalue()

    @app.post("/sql")
    async def sql(request: Request) -> Response:
        query = (await request.body()).decode()
        return Response(await run_in_threadpool(run, query), media_type=ARROW_STREAM)

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--refresh-s", type=float, default=2.0)
    args = parser.parse_args()
    app = create_app(args.uri, args.name, args.refresh_s)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

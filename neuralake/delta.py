"""Small helpers for looking inside Delta tables, where the raw API is awkward to teach with.

Lessons use ``deltalake`` and ``polars`` directly; these helpers only summarise what those
APIs return (:func:`inspect`, :func:`history`, :func:`file_stats`), read the transaction
log on any warehouse through :mod:`neuralake.storage` (:func:`log_files`,
:func:`read_commit`), count what a query really
reads from S3 (:class:`RequestLog`), turn storage failures into one-line errors that
name the fix (:func:`storage_errors`, :func:`first_line`), and give a lesson a clean table
to start from (:func:`fresh_table`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import ParseResult, unquote, urlparse

import httpx
import polars as pl
from deltalake import DeltaTable
from deltalake.exceptions import SchemaMismatchError
from deltalake.exceptions import TableNotFoundError as DeltaTableNotFound

from neuralake import storage
from neuralake.errors import (
    BucketNotFoundError,
    ConfigError,
    CredentialsError,
    EndpointUnreachableError,
    StorageError,
    TableNotFoundError,
    TableSchemaError,
)

if TYPE_CHECKING:
    from botocore.client import BaseClient

# delta-rs' optimize() aims for 100 MiB files (``delta.targetFileSize``); a file under a
# quarter of that is "small": it costs a request and a footer read for little data.
TARGET_FILE_BYTES = 100 * 2**20
SMALL_FILE_BYTES = TARGET_FILE_BYTES // 4


def open_table(
    uri: str, storage_options: dict[str, str] | None = None, version: int | None = None
) -> DeltaTable:
    """``DeltaTable(uri)`` with storage failures turned into one-line errors."""
    with storage_errors(uri, storage_options):
        return DeltaTable(uri, version=version, storage_options=storage_options or None)


def inspect(
    uri: str,
    storage_options: dict[str, str] | None = None,
    *,
    small_file_bytes: int = SMALL_FILE_BYTES,
) -> pl.DataFrame:
    """One row describing the table now: version, files, sizes, small files, protocol."""
    table = open_table(uri, storage_options)
    with storage_errors(uri, storage_options):
        files = pl.DataFrame(table.get_add_actions(flatten=True))
        protocol = table.protocol()
        last = table.history(limit=1)[0]
    sizes = files.get_column("size_bytes")
    total = int(sizes.sum())
    return pl.DataFrame(
        {
            "version": [table.version()],
            "files": [sizes.len()],
            "rows": [int(files.get_column("num_records").sum())],
            "bytes": [total],
            "mean_file_bytes": [total // sizes.len() if sizes.len() else 0],
            "small_files": [int((sizes < small_file_bytes).sum())],
            "partition_columns": [table.metadata().partition_columns],
            "min_reader_version": [protocol.min_reader_version],
            "min_writer_version": [protocol.min_writer_version],
            "reader_features": [protocol.reader_features or []],
            "writer_features": [protocol.writer_features or []],
            "last_operation": [last["operation"]],
            "last_commit": [datetime.fromtimestamp(last["timestamp"] / 1000, tz=UTC)],
        },
        schema_overrides={
            "partition_columns": pl.List(pl.String),
            "reader_features": pl.List(pl.String),
            "writer_features": pl.List(pl.String),
        },
    )


def history(uri: str, storage_options: dict[str, str] | None = None) -> pl.DataFrame:
    """Every commit, newest first: version, UTC time, operation, its parameters and metrics."""
    table = open_table(uri, storage_options)
    with storage_errors(uri, storage_options):
        commits = table.history()
    return pl.DataFrame(
        {
            "version": [c["version"] for c in commits],
            "timestamp": [datetime.fromtimestamp(c["timestamp"] / 1000, tz=UTC) for c in commits],
            "operation": [c["operation"] for c in commits],
            "parameters": [json.dumps(c.get("operationParameters", {})) for c in commits],
            "metrics": [json.dumps(c.get("operationMetrics", {})) for c in commits],
        },
        schema_overrides={"version": pl.Int64, "timestamp": pl.Datetime("us", "UTC")},
    )


# -- the transaction log, read as plain files -------------------------------------------


def log_files(uri: str, storage_options: dict[str, str] | None = None) -> pl.DataFrame:
    """The files in ``_delta_log/``: name and size, in name (= version) order."""
    with storage_errors(uri, storage_options):
        listing = storage.list_files(f"{uri.rstrip('/')}/_delta_log", storage_options)
    return pl.DataFrame(listing, schema={"name": pl.String, "bytes": pl.Int64}, orient="row").sort(
        "name"
    )


def read_commit(
    uri: str, version: int, storage_options: dict[str, str] | None = None
) -> list[dict]:
    """The actions of one commit file, ``_delta_log/<version padded to 20 digits>.json``."""
    key = f"{uri.rstrip('/')}/_delta_log/{version:020d}.json"
    with storage_errors(uri, storage_options):
        text = storage.read_text(key, storage_options)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def data_files(uri: str, storage_options: dict[str, str] | None = None) -> pl.DataFrame:
    """Every Parquet file stored under the table, whether a version uses it or not.

    Compare with ``len(DeltaTable(uri).file_uris())`` (the files the current version
    uses) to see what ``vacuum`` would reclaim.
    """
    with storage_errors(uri, storage_options):
        listing = storage.list_files(uri, storage_options, recursive=True)
    files = [(name, size) for name, size in listing if name.endswith(".parquet")]
    files = [(n, b) for n, b in files if not n.startswith("_delta_log/")]
    return pl.DataFrame(files, schema={"name": pl.String, "bytes": pl.Int64}, orient="row")


def s3_client(storage_options: dict[str, str]) -> BaseClient:
    """A boto3 S3 client for the same server and credentials as delta-rs' storage options.

    It fails fast (one attempt, 3 s to connect): it is used to explain failures, and a
    student should not wait for retries to learn that the stack is down.
    """
    import boto3
    from botocore.config import Config

    kwargs = {
        "endpoint_url": storage_options.get("AWS_ENDPOINT_URL"),
        "region_name": storage_options.get("AWS_REGION"),
        "aws_access_key_id": storage_options.get("AWS_ACCESS_KEY_ID"),
        "aws_secret_access_key": storage_options.get("AWS_SECRET_ACCESS_KEY"),
    }
    config = Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 1})
    return boto3.client("s3", config=config, **{k: v for k, v in kwargs.items() if v})


def file_stats(table: DeltaTable, column: str) -> pl.DataFrame:
    """Each data file of the current version with its rows, bytes and min/max of ``column``.

    These are the statistics the ``add`` action of each file carries in the log: a reader
    compares them with a filter to skip files without opening them.
    """
    actions = pl.DataFrame(table.get_add_actions(flatten=True))
    if f"min.{column}" not in actions.columns:
        raise ConfigError(
            f"the add actions carry no statistics for {column!r}: pick a column of "
            f"{table.schema().to_arrow().names} or write the table with statistics"
        )
    return actions.select(
        pl.col("path").str.split("/").list.last().alias("file"),
        pl.col("num_records").alias("rows"),
        pl.col("size_bytes").alias("bytes"),
        pl.col(f"min.{column}").alias("min"),
        pl.col(f"max.{column}").alias("max"),
    ).sort("min", "max", "file")


def column_bytes(table: DeltaTable) -> pl.DataFrame:
    """Compressed bytes of each column, summed over the data files of the current version.

    Read from the Parquet footers (a few KiB per file), through delta-rs' own storage
    access, so it works on any warehouse. It explains a size change: a rewrite that
    reorders rows changes how well each column compresses.
    """
    totals: dict[str, int] = {}
    for fragment in table.to_pyarrow_dataset().get_fragments():
        footer = fragment.metadata
        for group in range(footer.num_row_groups):
            for index in range(footer.num_columns):
                column = footer.row_group(group).column(index)
                name = column.path_in_schema
                totals[name] = totals.get(name, 0) + column.total_compressed_size
    return pl.DataFrame({"column": list(totals), "bytes": list(totals.values())})


# -- what a query reads from S3 -------------------------------------------------------------


@dataclass(frozen=True)
class S3Request:
    """One request a client sent to S3: method, object key, HTTP status, body bytes returned."""

    method: str
    key: str
    status: int
    bytes: int


class RequestLog:
    """Count the S3 requests and bytes that delta-rs or Polars send while it is open.

    A pass-through HTTP proxy on 127.0.0.1 forwards every request unchanged to the real
    endpoint and records it. Point a reader at it with :attr:`storage_options`::

        with delta.RequestLog(s.storage_options) as log:
            pl.scan_delta(uri, storage_options=log.storage_options).filter(...).collect()
        log.summary()   # files opened, bytes of Parquet read, requests to the log

    That is the ground truth of "files skipped": a file a reader skipped was never
    requested. Only this process's requests pass through it, so other clients of the same
    server do not disturb the count (the server's own metrics would count them all).
    Request signatures stay valid because the ``Host`` header is forwarded as signed.
    The proxy is a thread of this process: a call that holds Python's GIL while it waits
    for S3 (``DeltaTable.is_deltatable``) can never be answered through it.
    """

    def __init__(self, storage_options: dict[str, str]) -> None:
        endpoint = storage_options.get("AWS_ENDPOINT_URL", "")
        upstream = urlparse(endpoint)
        if upstream.scheme != "http" or not upstream.hostname:
            raise ConfigError(
                f"RequestLog needs a plain-http S3 endpoint such as the stack's "
                f"http://127.0.0.1:9000, not {endpoint or 'a local warehouse or AWS S3'}: use "
                "the stack profile"
            )
        self.requests: list[S3Request] = []
        self._lock = threading.Lock()
        # One client for every forwarded request: making one costs about 20 ms.
        self._client = httpx.Client()
        handler = _proxy_handler(self, upstream, self._client)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        #: Where readers send their requests instead: point ``s3_endpoint`` or
        #: ``AWS_ENDPOINT_URL`` here (:attr:`storage_options` does the latter).
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.storage_options = {**storage_options, "AWS_ENDPOINT_URL": self.endpoint}

    def __enter__(self) -> RequestLog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def record(self, request: S3Request) -> None:
        with self._lock:
            self.requests.append(request)

    def clear(self) -> None:
        """Forget what was recorded, e.g. between opening a table and querying it."""
        with self._lock:
            self.requests.clear()

    def frame(self) -> pl.DataFrame:
        """Every recorded request as a table: method, key, status, bytes."""
        with self._lock:
            rows = [r.__dict__ for r in self.requests]
        schema = {"method": pl.String, "key": pl.String, "status": pl.Int64, "bytes": pl.Int64}
        return pl.DataFrame(rows, schema=schema)

    def summary(self) -> dict[str, int]:
        """Data files opened and their bytes, requests to ``_delta_log/``, all requests."""
        requests = self.frame()
        data = requests.filter(
            (pl.col("method") == "GET") & pl.col("key").str.ends_with(".parquet")
        ).filter(~pl.col("key").str.contains("/_delta_log/"))
        log = requests.filter(pl.col("key").str.contains("/_delta_log/"))
        return {
            "data files opened": data["key"].n_unique(),
            "data bytes read": int(data["bytes"].sum()),
            "log requests": log.height,
            "requests": requests.height,
        }


def _proxy_handler(
    log: RequestLog, upstream: ParseResult, client: httpx.Client
) -> type[BaseHTTPRequestHandler]:
    """A request handler class that forwards to ``upstream`` and records into ``log``."""

    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as S3 clients expect

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            # client.send(httpx.Request(...)), not client.get(): it adds no headers of its
            # own, so the request goes on exactly as the reader signed it.
            request = httpx.Request(
                self.command,
                upstream.geturl().rstrip("/") + self.path,
                headers=list(self.headers.items()),
                content=body,
            )
            response = client.send(request, stream=True)
            try:
                payload = b"".join(response.iter_raw())  # the bytes as sent, not decoded
            finally:
                response.close()
            # Record before answering: once the client has its bytes, the count is final.
            key = unquote(urlparse(self.path).path).lstrip("/")
            log.record(S3Request(self.command, key, response.status_code, len(payload)))
            self.send_response_only(response.status_code, response.reason_phrase)
            for name, value in response.headers.multi_items():
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(name, value)
            declared = response.headers.get("Content-Length")
            head = self.command == "HEAD"
            self.send_header("Content-Length", declared if head and declared else str(len(payload)))
            self.end_headers()
            if not head:
                self.wfile.write(payload)

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the requests are recorded in the log, not printed."""

    return Forward


# -- errors -------------------------------------------------------------------------------


@contextmanager
def storage_errors(uri: str, storage_options: dict[str, str] | None = None) -> Iterator[None]:
    """Re-raise delta-rs and boto3 failures as one-line errors that name the fix.

    delta-rs reports every S3 failure as a multi-line ``OSError`` chain. When one happens
    on ``s3://``, a single boto3 ``head_bucket`` call tells the three usual causes apart
    (nothing listening, refused credentials, missing bucket); anything else is re-raised
    unchanged rather than guessed at.
    """
    try:
        yield
    except SchemaMismatchError as error:
        raise TableSchemaError(
            f"the data does not match the schema of {uri}: {first_line(error)}; "
            "fix the columns or pass schema_mode='merge' to add new ones"
        ) from error
    except (DeltaTableNotFound, FileNotFoundError) as error:
        if (cause := diagnose(uri, storage_options or {})) is not None:
            raise cause from error
        raise TableNotFoundError(
            f"no Delta table at {uri}: write it first (e.g. datagen.write_tables) "
            "or check the table name"
        ) from error
    except OSError as error:
        if isinstance(error, StorageError):
            raise
        if (cause := diagnose(uri, storage_options or {})) is not None:
            raise cause from error
        raise


def diagnose(uri: str, storage_options: dict[str, str]) -> StorageError | None:
    """Why ``uri``'s object store fails, as an error naming the fix; None if it answers."""
    url = urlparse(uri)
    if url.scheme != "s3":
        return None
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    endpoint = storage_options.get("AWS_ENDPOINT_URL", "AWS S3")
    try:
        s3_client(storage_options).head_bucket(Bucket=url.netloc)
    except EndpointConnectionError:
        return EndpointUnreachableError(
            f"nothing answers at the S3 endpoint {endpoint}: start the stack "
            "(neuralake stack up) or fix NEURALAKE_S3_ENDPOINT"
        )
    except NoCredentialsError:
        return CredentialsError(
            f"no S3 credentials for {endpoint}: set NEURALAKE_S3_ACCESS_KEY_ID "
            "and NEURALAKE_S3_SECRET_ACCESS_KEY"
        )
    except ClientError as error:
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status in (401, 403):
            return CredentialsError(
                f"the S3 server at {endpoint} refused the credentials: check "
                "NEURALAKE_S3_ACCESS_KEY_ID and NEURALAKE_S3_SECRET_ACCESS_KEY"
            )
        if status == 404:
            return BucketNotFoundError(
                f"bucket {url.netloc!r} does not exist at {endpoint}: create it "
                "(neuralake stack up creates the lab's bucket) or fix NEURALAKE_S3_BUCKET"
            )
        return None
    return None


def first_line(error: BaseException) -> str:
    """The first line of an error's message (delta-rs' messages run to many lines)."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def drop_table(uri: str, storage_options: dict[str, str] | None = None) -> int:
    """Delete every object under ``uri``: a Delta table is only files, so this drops it.

    Returns how many objects were deleted (0 if there was no table). Lessons and labs use
    it to start from a clean table, so running them twice gives the same result.
    """
    with storage_errors(uri, storage_options):
        return storage.delete(uri, storage_options)


def fresh_table(uri: str, storage_options: dict[str, str] | None = None) -> str:
    """``uri``, after dropping any table stored there: a lesson that re-runs starts clean."""
    drop_table(uri, storage_options)
    return uri

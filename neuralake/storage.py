"""The files under a warehouse URI, the same way on ``file://`` and ``s3://``.

delta-rs and Polars reach the warehouse through ``storage_options``; these helpers take
the same dict and hand it to pyarrow's filesystems (``LocalFileSystem``,
``S3FileSystem``), so listing, reading and deleting a table's files is one code path
whether the warehouse is a laptop folder or a bucket::

    storage.list_files(s.table_uri("signals") + "/_delta_log", s.storage_options)
    storage.read_text(uri + "/_delta_log/00000000000000000000.json", s.storage_options)

On S3 a "folder" is only a key prefix: a prefix with no objects under it does not exist,
like a folder that was never made.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote, urlparse

from pyarrow import fs

from neuralake.errors import ConfigError


def filesystem(uri: str, storage_options: Mapping[str, str] | None = None) -> fs.FileSystem:
    """The pyarrow filesystem that holds ``uri``, with delta-rs' storage options applied."""
    scheme = urlparse(uri).scheme
    if scheme == "file":
        return fs.LocalFileSystem()
    if scheme != "s3":
        raise ConfigError(f"{uri} is not a warehouse URI: use s3://bucket/prefix or file:///path")
    options = storage_options or {}
    endpoint = urlparse(options.get("AWS_ENDPOINT_URL", ""))
    return fs.S3FileSystem(
        access_key=options.get("AWS_ACCESS_KEY_ID"),
        secret_key=options.get("AWS_SECRET_ACCESS_KEY"),
        region=options.get("AWS_REGION"),
        endpoint_override=endpoint.netloc or None,  # None: AWS itself
        scheme=endpoint.scheme or "https",
    )


def path(uri: str) -> str:
    """``uri`` as a path inside its filesystem: ``/abs/dir`` or ``bucket/key``."""
    url = urlparse(uri)
    inside = unquote(url.path) if url.scheme == "file" else f"{url.netloc}{url.path}"
    return inside.rstrip("/") or "/"


def list_files(
    uri: str, storage_options: Mapping[str, str] | None = None, recursive: bool = False
) -> list[tuple[str, int]]:
    """(name relative to ``uri``, size) of each file under ``uri``, sorted by name.

    Raises ``FileNotFoundError`` when nothing is there.
    """
    entries = _entries(uri, storage_options, recursive=recursive, allow_not_found=False)
    return sorted((name, entry.size) for name, entry in entries if entry.is_file)


def list_folders(uri: str, storage_options: Mapping[str, str] | None = None) -> list[str]:
    """The names of the folders directly under ``uri`` (none if nothing is there)."""
    entries = _entries(uri, storage_options, recursive=False, allow_not_found=True)
    return sorted(name for name, entry in entries if entry.type == fs.FileType.Directory)


def read_text(uri: str, storage_options: Mapping[str, str] | None = None) -> str:
    """The whole file at ``uri`` as UTF-8 text."""
    with filesystem(uri, storage_options).open_input_stream(path(uri)) as stream:
        return stream.read().decode()


def delete(uri: str, storage_options: Mapping[str, str] | None = None) -> int:
    """Delete the folder ``uri`` and every file under it; how many files that was."""
    store, inside = filesystem(uri, storage_options), path(uri)
    if store.get_file_info(inside).type == fs.FileType.NotFound:
        return 0
    entries = _entries(uri, storage_options, recursive=True, allow_not_found=True)
    store.delete_dir(inside)
    return sum(entry.is_file for _, entry in entries)


def _entries(
    uri: str, storage_options: Mapping[str, str] | None, *, recursive: bool, allow_not_found: bool
) -> list[tuple[str, fs.FileInfo]]:
    inside = path(uri)
    selector = fs.FileSelector(inside, recursive=recursive, allow_not_found=allow_not_found)
    found = filesystem(uri, storage_options).get_file_info(selector)
    return [(entry.path[len(inside) :].lstrip("/"), entry) for entry in found]

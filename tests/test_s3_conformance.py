"""The stack's S3 server does what delta-rs needs: conditional writes (so concurrent
commits never overwrite each other), ranged reads, multipart uploads, and persistence."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import uuid

import boto3
import pyarrow as pa
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from deltalake import DeltaTable, write_deltalake

import neuralake
from neuralake.lab.stack import control

pytestmark = pytest.mark.stack
WRITERS = 8


def append_one(uri: str, storage_options: dict[str, str], writer: int) -> None:
    """Runs in its own process: one delta-rs commit, no locking configured at all."""
    batch = pa.table({"writer": pa.array([writer] * 10, pa.int32())})
    write_deltalake(uri, batch, mode="append", storage_options=storage_options)


def test_eight_concurrent_delta_rs_appenders_all_commit(stack_settings):
    s = stack_settings
    uri = s.table_uri(f"tests/concurrent_{uuid.uuid4().hex[:8]}")
    write_deltalake(
        uri, pa.table({"writer": pa.array([], pa.int32())}), storage_options=s.storage_options
    )
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(WRITERS) as pool:
        pool.starmap(append_one, [(uri, s.storage_options, w) for w in range(WRITERS)])

    table = DeltaTable(uri, storage_options=s.storage_options)
    assert table.version() == WRITERS  # versions 1..8 on top of the create
    writers = table.to_pyarrow_table().column("writer").to_pylist()
    assert sorted(set(writers)) == list(range(WRITERS)), "a commit was lost"
    assert len(writers) == WRITERS * 10


def test_second_if_none_match_put_of_the_same_key_is_refused(stack_settings):
    s3 = boto3.client("s3", **stack_settings.boto3_kwargs)
    key = f"tests/conditional/{uuid.uuid4().hex}.json"
    s3.put_object(Bucket=stack_settings.bucket, Key=key, Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=stack_settings.bucket, Key=key, Body=b"second", IfNoneMatch="*")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    body = s3.get_object(Bucket=stack_settings.bucket, Key=key)["Body"].read()
    assert body == b"first"


def test_ranged_get_returns_exactly_the_range(stack_settings):
    s3 = boto3.client("s3", **stack_settings.boto3_kwargs)
    key = f"tests/ranged/{uuid.uuid4().hex}"
    data = os.urandom(1 << 20)
    s3.put_object(Bucket=stack_settings.bucket, Key=key, Body=data)
    part = s3.get_object(Bucket=stack_settings.bucket, Key=key, Range="bytes=1000-1999")
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["Body"].read() == data[1000:2000]


def test_multipart_upload_of_17_mib_round_trips(stack_settings, tmp_path):
    s3 = boto3.client("s3", **stack_settings.boto3_kwargs)
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(17 << 20))
    key = f"tests/multipart/{uuid.uuid4().hex}"
    config = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
    s3.upload_file(str(source), stack_settings.bucket, key, Config=config)
    head = s3.head_object(Bucket=stack_settings.bucket, Key=key)
    assert head["ETag"].strip('"').endswith("-4"), "expected a 4-part multipart upload"
    target = tmp_path / "back.bin"
    s3.download_file(stack_settings.bucket, key, str(target))
    assert (
        hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
    )


def test_a_restarted_server_keeps_every_object(isolated_env):
    s = neuralake.settings("stack")
    control.up(s, only=["minio"], echo=lambda _: None)
    try:
        s3 = boto3.client("s3", **s.boto3_kwargs)
        keys = {f"tests/restart/{i}": os.urandom(100 + i) for i in range(20)}
        for key, body in keys.items():
            s3.put_object(Bucket=s.bucket, Key=key, Body=body)
        control.down(s, echo=lambda _: None)
        control.up(s, only=["minio"], echo=lambda _: None)
        for key, body in keys.items():
            assert s3.get_object(Bucket=s.bucket, Key=key)["Body"].read() == body
    finally:
        control.down(s, echo=lambda _: None)

"""S3 as a production blob store, against moto's S3 server on loopback (no mocks): presigned
URLs, object metadata and encryption passed through ``storage_options``, credentials from the
environment or the default AWS chain, and secrets that never reach output or logs."""

from __future__ import annotations

import json
import logging
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import s3server
from test_cli import ok, run, write

import veritas_store as vs
from veritas_store_plugins.fsspec_blobs import FsspecBlobStore

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(64))
SECRET = "wJalrXUtnFEMI-K7MDENG-NEVER-PRINT-ME"
TOKEN = "FwoGZXIvYXdzEXAMPLE-SESSION-TOKEN"


def _query(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def _download(url: str) -> tuple[bytes, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read(), response.headers["Content-Type"]


def _regional(server: s3server.S3Server, **extra: Any) -> dict[str, Any]:
    client = {"endpoint_url": server.endpoint_url, "region_name": "eu-central-1"}
    return server.storage_options(client_kwargs=client, **extra)


def _head(server: s3server.S3Server, bucket: str, key: str) -> dict[str, Any]:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=s3server.ACCESS_KEY,
        aws_secret_access_key=s3server.SECRET_KEY,
    )
    return client.head_object(Bucket=bucket, Key=key)


def test_presigned_urls_are_sigv4_when_a_region_is_set(s3_server: s3server.S3Server) -> None:
    bucket = s3_server.make_bucket()
    store = FsspecBlobStore(f"s3://{bucket}/shots", _regional(s3_server))
    store.put("a1/0000.png", PNG, "image/png")
    url = store.url("a1/0000.png", expires=90)
    query = _query(url)
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Expires"] == "90"
    assert "/eu-central-1/s3/aws4_request" in query["X-Amz-Credential"]
    assert "Signature" not in query  # not the legacy SigV2 form
    assert _download(url) == (PNG, "image/png")


def test_without_a_region_or_with_an_explicit_version_the_options_decide(
    s3_server: s3server.S3Server,
) -> None:
    bucket = s3_server.make_bucket()
    plain = FsspecBlobStore(f"s3://{bucket}/p", s3_server.storage_options())
    plain.put("k.png", PNG, "image/png")
    assert "X-Amz-Algorithm" not in _query(plain.url("k.png"))  # botocore's default form
    assert _download(plain.url("k.png"))[0] == PNG
    chosen = FsspecBlobStore(
        f"s3://{bucket}/p", _regional(s3_server, config_kwargs={"signature_version": "s3"})
    )
    assert "X-Amz-Algorithm" not in _query(chosen.url("k.png"))
    assert _download(chosen.url("k.png"))[0] == PNG


def test_encryption_and_content_type_from_a_config_file(
    s3_server: s3server.S3Server, tmp_path: Path
) -> None:
    bucket = s3_server.make_bucket()
    config = write(
        tmp_path / "prod.toml",
        f"""
        [audits.backends.memory]
        type = "memory"

        [blobs.backends.s3]
        type = "fsspec"
        url = "s3://{bucket}/prod"
        storage_options = {{ skip_instance_cache = true, s3_additional_kwargs = {{ ServerSideEncryption = "AES256" }}, client_kwargs = {{ endpoint_url = "{s3_server.endpoint_url}", region_name = "eu-central-1" }} }}
        """,  # noqa: E501
    )
    with vs.open_stores(config) as stores:
        stores.audits.create(vs.Audit(id="a1", url="https://shop.example"))
        shot = stores.screenshots.save("a1", 0, "home", PNG)
        url = stores.blobs.url(shot.blob_key)
    head = _head(s3_server, bucket, f"prod/{shot.blob_key}")
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentType"] == "image/png" == shot.content_type
    assert _query(url)["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert _download(url) == (PNG, "image/png")


def test_credentials_from_the_environment(
    s3_server: s3server.S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENVIRONMENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    bucket = s3_server.make_bucket()
    options = {"skip_instance_cache": True, "client_kwargs": _regional(s3_server)["client_kwargs"]}
    store = FsspecBlobStore(f"s3://{bucket}/p", options)  # no key or secret in the config
    store.put("k.png", PNG, "image/png")
    url = store.url("k.png")
    assert _query(url)["X-Amz-Credential"].startswith("AKIAFROMENVIRONMENT/")
    assert _download(url)[0] == PNG


def test_credentials_from_the_shared_credentials_file(
    s3_server: s3server.S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The default AWS chain: no key in the config or the environment, a profile in a file.
    credentials = write(
        tmp_path / "credentials",
        f"""
        [veritas]
        aws_access_key_id = AKIAFROMPROFILEFILE
        aws_secret_access_key = {SECRET}
        """,
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_PROFILE", "veritas")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    bucket = s3_server.make_bucket()
    options = {"skip_instance_cache": True, "client_kwargs": _regional(s3_server)["client_kwargs"]}
    store = FsspecBlobStore(f"s3://{bucket}/p", options)
    store.put("k.png", PNG, "image/png")
    assert store.get("k.png") == PNG
    assert _query(store.url("k.png"))["X-Amz-Credential"].startswith("AKIAFROMPROFILEFILE/")


def test_secrets_are_never_printed(
    s3_server: s3server.S3Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = s3_server.make_bucket()
    config = write(
        tmp_path / "prod.toml",
        f"""
        [audits.backends.memory]
        type = "memory"

        [blobs.backends.s3]
        type = "fsspec"
        url = "s3://{bucket}/prod"
        storage_options = {{ key = "AKIAKEYINCONFIG", secret = "{SECRET}", skip_instance_cache = true, client_kwargs = {{ endpoint_url = "{s3_server.endpoint_url}", region_name = "eu-central-1", aws_session_token = "{TOKEN}" }} }}
        """,  # noqa: E501
    )
    text = ok(tmp_path, "check", "--config", str(config))
    report = ok(tmp_path, "check", "--config", str(config), "--json")
    (s3,) = [b for b in json.loads(report)["backends"] if b["backend"] == "s3"]
    assert s3["status"] == "ok"
    assert s3["options"]["storage_options"]["secret"] == "***"
    bad = write(tmp_path / "bad.toml", config.read_text().replace(bucket, "x"))  # no bucket
    failed = run(tmp_path, "check", "--config", str(bad), "--json")
    for output in (text, report, failed.stdout, failed.stderr):
        assert SECRET not in output and TOKEN not in output

    # every logger at DEBUG, botocore's and s3fs's included
    with caplog.at_level(logging.DEBUG), vs.open_stores(config) as stores:
        stores.blobs.put("k.png", PNG, "image/png")
        assert stores.blobs.get("k.png") == PNG
        stores.blobs.url("k.png")
        shown = repr(stores) + repr(stores.blobs.backends["s3"]) + repr(stores.config)
    assert caplog.records  # the libraries did log
    assert SECRET not in caplog.text + shown
    # A presigned URL carries a session token by design (and botocore logs it at DEBUG while
    # signing one); nothing of ours shows it.
    assert TOKEN not in shown


def test_key_ids_and_keys_are_masked_in_reported_options() -> None:
    from veritas_store.wiring.config import redact

    shown = redact(
        {"client_kwargs": {"aws_access_key_id": "AKIAID", "aws_secret_access_key": SECRET}}
    )
    assert shown == {"client_kwargs": {"aws_access_key_id": "***", "aws_secret_access_key": "***"}}

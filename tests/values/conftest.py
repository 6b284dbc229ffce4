"""A real S3-protocol server for the object store tests: moto in server mode, on a free
port of 127.0.0.1, reached over HTTP by s3fs exactly as a remote service would be."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

#: Credentials the local server accepts (any will do); set in the environment, where
#: s3fs looks for them, never in a configuration file.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "ledgerflow-test",
    "AWS_SECRET_ACCESS_KEY": "ledgerflow-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of an S3-protocol server running for the test session."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict[str, Any]]:
    """A new, empty bucket: ``(name, values.store_options)``; credentials in the environment."""
    import boto3

    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    bucket = f"lf-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return bucket, {"endpoint_url": s3_endpoint}

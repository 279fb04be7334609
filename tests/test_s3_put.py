"""`lib/aws/s3_put.QuickPut`: PutObject signed and sent without botocore's per-call pipeline, falling back
to `put_object` for anything but a 200."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import boto3
import moto
import pytest
from botocore.exceptions import ClientError
from fake_servers import s3_server

from lib.aws.s3_put import QuickPut


@pytest.fixture
def creds(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDQUICKPUT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return boto3.Session(region_name="us-east-1")


def test_objects_land_whole_with_their_encryption_through_the_quick_way(creds):
    with moto.mock_aws():
        client = creds.client("s3")
        client.create_bucket(Bucket="step-code")
        put = QuickPut(client, creds.get_credentials())
        bodies = {f"p/step {i}/function/payload.pkl": bytes([i]) * (100 + i) for i in range(20)}
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda kv: put.put("step-code", *kv), bodies.items()))
        put.put("step-code", "p/secret.pkl", b"sealed", kms_key="arn:aws:kms:us-east-1:123456789012:key/k1")

        assert (put.quick, put.slow) == (21, 0)  # moto answered the quick PUTs themselves
        for key, body in bodies.items():
            assert client.get_object(Bucket="step-code", Key=key)["Body"].read() == body
        head = client.head_object(Bucket="step-code", Key="p/secret.pkl")
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == (
            "aws:kms", "arn:aws:kms:us-east-1:123456789012:key/k1")


def test_a_put_is_signed_with_sigv4_over_its_payload(creds):
    with s3_server(lambda n, path: 200) as (url, received):
        put = QuickPut(creds.client("s3", endpoint_url=url), creds.get_credentials())
        put.put("bucket", "runs/a b/payload.pkl", b"\x00pickle")

    assert (put.quick, put.slow) == (1, 0) and len(received) == 1
    request = received[0]
    assert request["path"] == "/bucket/runs/a%20b/payload.pkl" and request["body"] == b"\x00pickle"
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["x-amz-content-sha256"] == hashlib.sha256(b"\x00pickle").hexdigest()  # S3 checks the bytes
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDQUICKPUT/")
    assert "/us-east-1/s3/aws4_request" in headers["authorization"]


def test_anything_but_a_200_is_sent_again_the_long_way(creds):
    # the quick PUT meets a server error; botocore's put_object sends it again and it lands
    with s3_server(lambda n, path: 500 if n == 1 else 200) as (url, received):
        put = QuickPut(creds.client("s3", endpoint_url=url), creds.get_credentials())
        put.put("bucket", "k", b"body")
    assert (put.quick, put.slow) == (0, 1)
    assert [r["body"] for r in received] == [b"body", b"body"]


def test_a_refusal_raises_botocores_own_error(creds):
    with s3_server(lambda n, path: 403) as (url, received):
        put = QuickPut(creds.client("s3", endpoint_url=url), creds.get_credentials())
        with pytest.raises(ClientError, match="AccessDenied"):
            put.put("bucket", "k", b"body")
    assert len(received) == 2 and (put.quick, put.slow) == (0, 0)

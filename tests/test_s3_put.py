"""`lib/aws/s3_put.QuickPut`: PutObject signed and sent without botocore's per-call pipeline, falling back
to `put_object` for anything but a 200."""

from __future__ import annotations

import base64
import hashlib
import zlib
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


def sigv4_signature_holds(request: dict, endpoint: str, secret: str, region: str) -> bool:
    """Whether the SigV4 signature of a request, as the server received it, is the one its secret gives:
    what S3 checks (the path, the signed headers and the payload's hash as they arrived)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers = {k.lower(): v for k, v in request["headers"].items()}
    auth = headers["authorization"]
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    access = auth.split("Credential=")[1].split("/")[0]
    again = AWSRequest("PUT", endpoint + request["path"], data=request["body"],
                       headers={h: headers[h] for h in signed})
    again.context["timestamp"] = headers["x-amz-date"]
    signer = S3SigV4Auth(Credentials(access, secret, headers.get("x-amz-security-token")), "s3", region)
    expected = signer.signature(signer.string_to_sign(again, signer.canonical_request(again)), again)
    return auth.split("Signature=")[1] == expected


def test_a_put_is_signed_with_sigv4_over_its_payload_for_the_clients_region(creds, monkeypatch):
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token-of-a-role")  # temporary credentials, as a role's
    session = boto3.Session(region_name="eu-west-1")
    with s3_server(lambda n, path: 200) as (url, received):
        put = QuickPut(session.client("s3", endpoint_url=url), session.get_credentials())
        put.put("bucket", "runs/a b+c/payload.pkl", b"\x00pickle", kms_key="alias/steps")

    assert (put.quick, put.slow) == (1, 0) and len(received) == 1
    request = received[0]
    assert request["path"] == "/bucket/runs/a%20b%2Bc/payload.pkl" and request["body"] == b"\x00pickle"
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["x-amz-content-sha256"] == hashlib.sha256(b"\x00pickle").hexdigest()  # S3 checks the bytes
    crc = base64.b64encode(zlib.crc32(b"\x00pickle").to_bytes(4, "big")).decode()
    assert (headers["x-amz-checksum-crc32"], headers["x-amz-sdk-checksum-algorithm"]) == (crc, "CRC32")
    assert headers["x-amz-security-token"] == "token-of-a-role"
    assert "/eu-west-1/s3/aws4_request" in headers["authorization"]
    signed = headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"x-amz-security-token", "x-amz-server-side-encryption-aws-kms-key-id", "x-amz-checksum-crc32",
            "host"} <= set(signed)
    assert sigv4_signature_holds(request, url, "secret", "eu-west-1")
    request["headers"]["x-amz-date"] = "20200101T000000Z"  # the check itself can fail
    assert not sigv4_signature_holds(request, url, "secret", "eu-west-1")


def test_anything_but_a_200_is_sent_again_the_long_way_and_so_is_the_rest_of_that_bucket(creds):
    # the quick PUT meets a server error; botocore's put_object sends it again and it lands; the next
    # object of that bucket goes straight through put_object, another bucket's the quick way
    with s3_server(lambda n, path: 500 if n == 1 else 200) as (url, received):
        put = QuickPut(creds.client("s3", endpoint_url=url), creds.get_credentials())
        put.put("bucket", "k", b"body")
        put.put("bucket", "k2", b"body2")
        put.put("other", "k3", b"body3")
    assert (put.quick, put.slow) == (1, 2)
    assert [r["body"] for r in received] == [b"body", b"body", b"body2", b"body3"]
    agents = [r["headers"]["User-Agent"] for r in received]
    assert "quick-put" not in agents[1] + agents[2] and "quick-put" in agents[3]


def test_a_refusal_raises_botocores_own_error(creds):
    with s3_server(lambda n, path: 403) as (url, received):
        put = QuickPut(creds.client("s3", endpoint_url=url), creds.get_credentials())
        with pytest.raises(ClientError, match="AccessDenied"):
            put.put("bucket", "k", b"body")
    assert len(received) == 2 and (put.quick, put.slow) == (0, 0)

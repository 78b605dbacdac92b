"""S3 intake against moto's server mode over real HTTP.

`./dev test` sets AWS_ENDPOINT_URL (and test credentials); by hand, start
`.venv/bin/moto_server -H 127.0.0.1 -p PORT` and export AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID=testing, AWS_SECRET_ACCESS_KEY=testing, AWS_DEFAULT_REGION=us-east-1.
"""

from __future__ import annotations

import os
import uuid

import pytest

from embeddings.engine import decode_image
from faceservice.outbound.errors import FetchRefused, ImageTooLarge, S3ObjectNotFound
from faceservice.outbound.s3 import default_client, fetch_s3_object

pytestmark = pytest.mark.skipif(not os.environ.get("AWS_ENDPOINT_URL"),
                                reason="AWS_ENDPOINT_URL not set (run through ./dev test or start moto_server)")


@pytest.fixture(scope="module")
def bucket():
    client = default_client()
    assert client.meta.endpoint_url.rstrip("/") == os.environ["AWS_ENDPOINT_URL"].rstrip("/")
    name = f"engine-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    import io

    import numpy as np
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.full((32, 48, 3), 200, dtype=np.uint8)).save(out, "JPEG")
    return out.getvalue()


def test_fetch_object(bucket, jpeg, no_new_temp_files):
    default_client().put_object(Bucket=bucket, Key="faces/a.jpg", Body=jpeg)
    data = fetch_s3_object(bucket, "faces/a.jpg", max_bytes=len(jpeg))
    assert data == jpeg and decode_image(data).shape == (32, 48, 3)


def test_object_over_the_limit_is_refused(bucket, jpeg):
    default_client().put_object(Bucket=bucket, Key="big.jpg", Body=jpeg + b"\0" * 5000)
    with pytest.raises(ImageTooLarge) as info:
        fetch_s3_object(bucket, "big.jpg", max_bytes=len(jpeg))
    assert info.value.code == "image_too_large"


def test_missing_key_and_bucket(bucket):
    with pytest.raises(S3ObjectNotFound) as info:
        fetch_s3_object(bucket, "nope.jpg", max_bytes=1000)
    assert info.value.code == "s3_object_not_found"
    with pytest.raises(S3ObjectNotFound):
        fetch_s3_object(f"missing-{uuid.uuid4().hex[:8]}", "x.jpg", max_bytes=1000)


def test_bucket_allow_list(bucket, jpeg):
    default_client().put_object(Bucket=bucket, Key="ok.jpg", Body=jpeg)
    assert fetch_s3_object(bucket, "ok.jpg", max_bytes=10**6, allowed_buckets={bucket}) == jpeg
    with pytest.raises(FetchRefused):
        fetch_s3_object(bucket, "ok.jpg", max_bytes=10**6, allowed_buckets={"another-bucket"})


def test_explicit_client(bucket, jpeg):
    import boto3

    client = boto3.client("s3")  # reads AWS_ENDPOINT_URL from the environment itself
    client.put_object(Bucket=bucket, Key="c.jpg", Body=jpeg)
    assert fetch_s3_object(bucket, "c.jpg", max_bytes=10**6, client=client) == jpeg

"""Read an image object from S3 (or an S3-compatible store) into memory.

boto3 reads AWS_ENDPOINT_URL, credentials and region from the environment by
itself, so the same code talks to AWS, MinIO or moto. The size is checked on
the response's ContentLength before a byte of the body is read, and the read
is capped anyway (a store may lie or stream).
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import Any

from faceservice.outbound.errors import FetchFailed, FetchRefused, FetchTimeout, ImageTooLarge, S3ObjectNotFound

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound", "NoSuchVersion"})
_DENIED_CODES = frozenset({"AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId",
                           "SignatureDoesNotMatch", "ExpiredToken"})

_client_lock = threading.Lock()
_default_client: Any = None


def default_client() -> Any:
    """A shared S3 client (boto3 clients are thread-safe; creating them is not)."""
    global _default_client
    with _client_lock:
        if _default_client is None:
            import boto3
            from botocore.config import Config

            _default_client = boto3.session.Session().client(
                "s3",
                config=Config(connect_timeout=5, read_timeout=20,
                              retries={"max_attempts": 3, "mode": "standard"}),
            )
        return _default_client


def fetch_s3_object(
    bucket: str,
    key: str,
    *,
    max_bytes: int,
    client: Any = None,
    allowed_buckets: Collection[str] | None = None,
) -> bytes:
    """The object's bytes, or an ImageError.

    allowed_buckets: when given, other buckets are refused (FetchRefused) before
    any request: our credentials may reach buckets a tenant must not name.
    """
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectTimeoutError,
        ReadTimeoutError,
    )

    if not bucket or not key:
        raise S3ObjectNotFound("an S3 bucket and key are both required")
    if allowed_buckets is not None and bucket not in allowed_buckets:
        raise FetchRefused(f"the bucket {bucket!r} is not allowed")
    s3 = client or default_client()
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
        body = response["Body"]
        try:
            declared = int(response.get("ContentLength") or 0)
            if declared > max_bytes:
                raise ImageTooLarge(f"the S3 object is {declared} bytes; the limit is {max_bytes}")
            data = body.read(max_bytes + 1)
        finally:
            body.close()
    except ClientError as exc:
        raise _client_error(exc, bucket) from exc
    except (ConnectTimeoutError, ReadTimeoutError) as exc:
        raise FetchTimeout("the S3 store did not answer in time") from exc
    except BotoCoreError as exc:
        raise FetchFailed(f"reading from S3 failed ({type(exc).__name__})") from exc
    if len(data) > max_bytes:
        raise ImageTooLarge(f"the S3 object exceeds the limit of {max_bytes} bytes")
    return data


def _client_error(exc: Exception, bucket: str) -> Exception:
    error = getattr(exc, "response", {}).get("Error", {})
    code = str(error.get("Code", ""))
    if code in _NOT_FOUND_CODES:
        return S3ObjectNotFound(f"the S3 object does not exist in bucket {bucket!r}")
    if code in _DENIED_CODES:
        return FetchFailed(f"access to the S3 object in bucket {bucket!r} was denied")
    return FetchFailed(f"reading from S3 failed ({code or 'unknown error'})")

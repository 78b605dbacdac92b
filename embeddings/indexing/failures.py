"""Why an index asset failed: transient (retry with backoff) or permanent (fail it), with a stable code.

`tests/embeddings/indexing/test_pipeline.py` lists the cases; docs/JOBS.md,
"Retries", the table. Every failure of an asset passes through `classify` once
(pipeline.record_failure), so it is counted here, by code
(faceservice_index_asset_failures_total).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import httpcore
from botocore.exceptions import BotoCoreError, ClientError
from django.db import InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeout

from embeddings.engine.errors import ModelsUnavailable
from faceservice import metrics
from faceservice.errors import Conflict, ImageError, Unprocessable
from faceservice.outbound.errors import FetchFailed, FetchTimeout
from tenants.data_keys import NoDataKey
from tenants.kms.errors import KmsError, KmsUnavailable

# HTTP answers worth another try: the server may well answer differently later.
TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
# S3 / botocore error codes that mean "slow down" or "try again".
TRANSIENT_S3 = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
                          "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable", "503", "500"})


@dataclass(frozen=True)
class Failure:
    code: str
    message: str
    transient: bool


class HttpStatusError(FetchFailed):
    """The image URL answered with a non-2xx status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the server answered HTTP {status}")
        self.status = status


def classify(exc: BaseException) -> Failure:
    """Transient (retry) or permanent (fail the asset), with a stable error code; counted by code."""
    failure = _classify(exc)
    metrics.count_index_failure(failure.code, transient=failure.transient)
    return failure


def _classify(exc: BaseException) -> Failure:
    if isinstance(exc, HttpStatusError):
        return Failure(exc.code, exc.public_message, transient=exc.status in TRANSIENT_HTTP)
    if isinstance(exc, ModelsUnavailable):
        # Its message names server folders: what the tenant reads later holds only the default one.
        return Failure(exc.code, exc.default_message, transient=True)
    if isinstance(exc, FetchTimeout):
        return Failure(exc.code, exc.public_message, transient=True)
    if isinstance(exc, FetchFailed):
        return Failure(exc.code, exc.public_message, transient=_transient_fetch_cause(exc.__cause__))
    if isinstance(exc, (ImageError, Conflict, Unprocessable)):
        # A bad image; the collection deleted or bound to another model; the subject full.
        return Failure(exc.code, exc.public_message, transient=False)
    if isinstance(exc, KmsUnavailable):
        return Failure("key_service_unavailable", "the key service is busy or unreachable", transient=True)
    if isinstance(exc, KmsError):
        return Failure("key_unavailable", "the tenant's data key cannot be used", transient=False)
    if isinstance(exc, NoDataKey):
        return Failure("key_unavailable", "the tenant's data key was destroyed", transient=False)
    if isinstance(exc, (OperationalError, InterfaceError, RedisConnectionError, RedisTimeout)):
        return Failure("service_unavailable", "a backing service was unavailable", transient=True)
    return Failure("internal_error", "the asset could not be processed", transient=False)


def _transient_fetch_cause(cause: BaseException | None) -> bool:
    """FetchFailed wraps network errors (retry), DNS failures (retry) and S3 answers (depends)."""
    if cause is None:
        return False
    if isinstance(cause, (httpcore.NetworkError, httpcore.ProtocolError, socket.gaierror, ConnectionError,
                          TimeoutError)):
        return True
    if isinstance(cause, ClientError):
        return str(cause.response.get("Error", {}).get("Code", "")) in TRANSIENT_S3
    return isinstance(cause, BotoCoreError)

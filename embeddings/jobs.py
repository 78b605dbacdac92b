"""The worker's side of an index job: one asset from claim to faces.

claim (PostgreSQL) -> fetch the bytes (URL through the SSRF guard, S3, or the
sealed inline image) -> decode in memory -> detect + embed (the process-wide
engine) -> complete (faces + asset state in one transaction). Errors are
sorted into transient (retry with backoff) and permanent (the asset fails
with the error's code); see `classify`.
"""

from __future__ import annotations

import functools
import logging
import socket
import ssl
import time
from dataclasses import dataclass

import httpx
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError

from embeddings import inline_images, job_services
from embeddings.engine import ImageError, decode_image
from embeddings.engine.errors import FetchFailed, FetchTimeout, ModelsUnavailable
from embeddings.engine.fetch import IMAGE_ACCEPT, REDIRECT_STATUSES, Timeouts, safe_request
from embeddings.face_models import face_engine
from embeddings.image_sources import fetch_bytes, image_limits
from embeddings.models import IndexJobAsset
from embeddings.vector_index import ensure_vector_index
from faceservice.tenancy import tenant_context
from tenants.kms.errors import KmsError, KmsUnavailable

logger = logging.getLogger(__name__)

# HTTP answers worth another try: the server may well answer differently later.
TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
# S3 / botocore error codes that mean "slow down" or "try again".
TRANSIENT_S3 = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
                          "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable", "503", "500"})

_indexed_models: set[str] = set()


class HttpStatusError(FetchFailed):
    """The image URL answered with a non-2xx status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the server answered HTTP {status}")
        self.status = status


@dataclass(frozen=True)
class Processed:
    faces: list
    left_out: list
    model_id: str
    timings: dict[str, float]


def run_asset(*, tenant_id: str, job_asset_id: str) -> str:
    """Process one job asset if it is ours to process. Returns what happened (for logs and tests)."""
    claim = job_services.claim_asset(tenant_id=tenant_id, job_asset_id=job_asset_id)
    if claim is None:
        return "skipped"
    try:
        processed = process(claim)
        return job_services.complete_asset(claim=claim, faces=processed.faces, left_out=processed.left_out,
                                           model_id=processed.model_id, timings=processed.timings)
    except Exception as exc:  # every failure is classified and recorded
        failure = classify(exc)
        if failure.code == "internal_error":
            logger.error("index asset failed unexpectedly", exc_info=exc,
                         extra={"tenant_id": tenant_id, "job_asset_id": job_asset_id})
        else:
            logger.info("index asset failed", extra={"tenant_id": tenant_id, "job_asset_id": job_asset_id,
                                                      "code": failure.code, "transient": failure.transient,
                                                      "attempt": claim.attempt})
        if failure.transient:
            return job_services.retry_asset(claim=claim, failure=failure)
        return job_services.fail_asset(claim=claim, failure=failure)


def process(claim: job_services.Claim) -> Processed:
    """Fetch, decode and analyse; nothing is written. The image lives in memory only."""
    started = time.perf_counter()
    data = fetch(claim)
    fetched = time.perf_counter()
    image = decode_image(data, image_limits())
    del data
    engine = face_engine()
    analysis = engine.analyze(image, claim.options.analyze_options())
    del image
    analysed = time.perf_counter()
    ensure_index(engine.model_id, engine.dimension)
    return Processed(faces=list(analysis.faces), left_out=list(analysis.left_out), model_id=analysis.model_id,
                     timings={"fetch_ms": round((fetched - started) * 1000, 1),
                              "analyze_ms": round((analysed - fetched) * 1000, 1)})


def fetch(claim: job_services.Claim) -> bytes:
    if claim.source_kind == IndexJobAsset.SourceKind.INLINE:
        with tenant_context(claim.tenant_id):
            return inline_images.read(tenant_id=claim.tenant_id, job_id=claim.job_id,
                                      job_asset_id=claim.job_asset_id)
    if claim.source_kind == IndexJobAsset.SourceKind.URL:
        return fetch_url(claim.source["url"])
    return fetch_bytes(claim.image_source())


@functools.cache
def tls_context() -> ssl.SSLContext:
    # Building a context loads the CA bundle (tens of ms): once per process, not per image.
    return httpx.create_ssl_context()


def fetch_url(url: str) -> bytes:
    """Like fetch_image_url, but keeps the status so 5xx/429 can be told from 404."""
    response = safe_request("GET", url, headers={"Accept": IMAGE_ACCEPT},
                            timeout=Timeouts.of(settings.FETCH_TIMEOUT_SECONDS), max_bytes=settings.MAX_IMAGE_BYTES,
                            allowed_networks=settings.FETCH_ALLOWED_NETWORKS, ssl_context=tls_context())
    if response.status_code in REDIRECT_STATUSES or not response.is_success:
        raise HttpStatusError(response.status_code)
    return response.content


def ensure_index(model_id: str, dimension: int) -> None:
    """Create the model's HNSW index the first time this process sees the model.

    Outside any transaction that writes faces (CREATE INDEX would wait on it).
    Failing here is not fatal: search falls back to exact scans.
    """
    if model_id in _indexed_models:
        return
    try:
        ensure_vector_index(model_id, dimension)
    except DatabaseError:
        logger.warning("could not create the vector index; will try again", exc_info=True)
        return
    _indexed_models.add(model_id)


def classify(exc: BaseException) -> job_services.Failure:
    """Transient (retry) or permanent (fail the asset), with a stable error code."""
    if isinstance(exc, HttpStatusError):
        return job_services.Failure(exc.code, _public(exc), transient=exc.status in TRANSIENT_HTTP)
    if isinstance(exc, (FetchTimeout, ModelsUnavailable)):
        return job_services.Failure(exc.code, _public(exc), transient=True)
    if isinstance(exc, FetchFailed):
        return job_services.Failure(exc.code, _public(exc), transient=_transient_fetch_cause(exc.__cause__))
    if isinstance(exc, ImageError):
        return job_services.Failure(exc.code, _public(exc), transient=False)
    if isinstance(exc, KmsUnavailable):
        return job_services.Failure("key_service_unavailable", "the key service is busy or unreachable",
                                    transient=True)
    if isinstance(exc, KmsError):
        return job_services.Failure("key_unavailable", "the tenant's data key cannot be used", transient=False)
    from tenants.data_keys import NoDataKey

    if isinstance(exc, NoDataKey):
        return job_services.Failure("key_unavailable", "the tenant's data key was destroyed", transient=False)
    if isinstance(exc, (OperationalError, InterfaceError)) or _is_redis_error(exc):
        return job_services.Failure("service_unavailable", "a backing service was unavailable", transient=True)
    return job_services.Failure("internal_error", "the asset could not be processed", transient=False)


def _transient_fetch_cause(cause: BaseException | None) -> bool:
    """FetchFailed wraps network errors (retry), DNS failures (retry) and S3 answers (depends)."""
    if cause is None:
        return False
    try:
        import httpcore

        if isinstance(cause, (httpcore.NetworkError, httpcore.ProtocolError)):
            return True
    except ImportError:  # pragma: no cover - httpcore is a dependency of the engine
        pass
    if isinstance(cause, (socket.gaierror, ConnectionError, TimeoutError)):
        return True
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(cause, ClientError):
        return str(cause.response.get("Error", {}).get("Code", "")) in TRANSIENT_S3
    return isinstance(cause, BotoCoreError)


def _is_redis_error(exc: BaseException) -> bool:
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeout
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, (RedisConnectionError, RedisTimeout))


def _public(exc: ImageError) -> str:
    # Some engine messages are for operators only (e.g. model folders).
    return getattr(exc, "public_message", exc.message)

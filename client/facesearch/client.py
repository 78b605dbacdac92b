"""`Client`: one typed method per API operation, iterators over cursor pages, `wait_for_job`.

Written by hand rather than generated: see README.md ("Why hand-written").
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import httpx

from facesearch import __version__
from facesearch._transport import Transport
from facesearch.errors import DeletionTimeout, JobTimeout
from facesearch.types import (
    TERMINAL_JOB_STATES,
    ApiKey,
    AuditEvent,
    CompareResult,
    Deletion,
    Face,
    ImageSource,
    Job,
    JobAsset,
    QualityFilter,
    Receipt,
    Role,
    SearchResult,
    Tenant,
    WebhookDelivery,
    WebhookEndpoint,
)

# A photo to upload (a path, its bytes or an open binary file), or a source the server
# reads itself: {"url": ...}, {"s3": {"bucket", "key"}} or {"base64": ...}.
Image = str | os.PathLike | bytes | IO[bytes] | ImageSource
PURGE_CONFIRMATION = "delete all face data"


@dataclass(frozen=True)
class UploadAsset:
    """One file of a multipart index job: your asset id, the person if known, the image."""

    asset_id: str
    image: str | os.PathLike | bytes | IO[bytes]
    subject_id: str | None = None


class Client:
    """A face search service client.

        with Client("http://localhost:8000", api_key) as fs:
            result = fs.search("probe.jpg", top_k=5)

    `url` and `api_key` default to `FACESEARCH_URL` and `FACESEARCH_API_KEY`.
    Answers of 429 and 503 are retried up to `max_retries` times, honouring `Retry-After`
    (waiting at most `max_wait` seconds each time); what still fails raises `APIError`.
    """

    def __init__(self, url: str | None = None, api_key: str | None = None, *, timeout: float = 60.0,
                 max_retries: int = 5, max_wait: float = 60.0, http: httpx.Client | None = None) -> None:
        url = url or os.environ.get("FACESEARCH_URL")
        api_key = api_key or os.environ.get("FACESEARCH_API_KEY")
        if not url or not api_key:
            raise ValueError("give the service URL and an API key (or set FACESEARCH_URL and FACESEARCH_API_KEY)")
        self._http = Transport(base_url=url, api_key=api_key, timeout=timeout, max_retries=max_retries,
                               max_wait=max_wait, user_agent=f"facesearch-client/{__version__}", http=http)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:  # never the key
        return f"Client({self.base_url!r})"

    @property
    def base_url(self) -> str:
        return self._http.base_url

    # --- Search and compare --------------------------------------------------------------

    def search(self, image: Image | None = None, *, face_id: str | None = None,
               faces: Literal["all", "largest"] = "all", max_faces: int | None = None, top_k: int | None = None,
               threshold: float | None = None, target_fpir: float | None = None,
               quality_filter: QualityFilter | None = None, subject_ids: Iterable[str] | None = None,
               asset_ids: Iterable[str] | None = None, group_by: Literal["subject"] | None = None) -> SearchResult:
        """Search your faces (1:N) with a photo, or with the id of a face you indexed.

        The threshold follows from `target_fpir` (the server's default: 1 %) and the gallery size, or is a
        fixed `threshold` (not both). `quality_filter` leaves out query faces below a quality bar.
        """
        if (image is None) == (face_id is None):
            raise ValueError("give exactly one of image or face_id")
        if threshold is not None and target_fpir is not None:
            raise ValueError("give threshold or target_fpir, not both")
        fields = _fields(face_id=face_id, faces=faces, max_faces=max_faces, top_k=top_k, threshold=threshold,
                         target_fpir=target_fpir, quality_filter=quality_filter, subject_ids=_list(subject_ids),
                         asset_ids=_list(asset_ids), group_by=group_by)
        if image is None or _is_source(image):
            body = {**fields, **({"image": image} if image is not None else {})}
            return self._post("/v1/search", json=body, repeatable=True)
        return self._post("/v1/search", data=fields, files=[("image", _file(image, "image"))], repeatable=True)

    def compare(self, target: Image, references: Mapping[str, Image] | Iterable[Image], *,
                threshold: float | None = None, max_false_match_rate: float | None = None) -> CompareResult:
        """The largest face of `target` against the largest face of each of 1-10 references.

        `references` maps names to images, or lists images (named by their file names). A match is decided
        at `max_false_match_rate` (from the model's calibration) or a fixed `threshold` (not both); by
        default the server's FACE_MATCH_THRESHOLD. Stores nothing and reads nothing stored.
        """
        if threshold is not None and max_false_match_rate is not None:
            raise ValueError("give threshold or max_false_match_rate, not both")
        named = (list(references.items()) if isinstance(references, Mapping)
                 else [(_name_of(image, f"reference-{i + 1}"), image) for i, image in enumerate(references)])
        fields = _fields(threshold=threshold, max_false_match_rate=max_false_match_rate)
        if _is_source(target) or any(_is_source(image) for _, image in named):
            body = {**fields, "target": _as_source(target),
                    "references": [{"name": name, "image": _as_source(image)} for name, image in named]}
            return self._post("/v1/compare", json=body, repeatable=True)
        files = [("target", _file(target, "target"))]
        files += [("reference", (name, _file(image, name)[1], "application/octet-stream")) for name, image in named]
        return self._post("/v1/compare", data=fields, files=files, repeatable=True)

    # --- Index jobs ------------------------------------------------------------------------

    def create_index_job(self, assets: Iterable[Mapping[str, Any]], *, options: Mapping[str, Any] | None = None,
                         faces_expire_at: str | None = None, idempotency_key: str | None = None) -> Job:
        """Submit a JSON index job: assets `{"asset_id", "subject_id"?, "image": {url | s3 | base64}}`.

        With an `idempotency_key` a retried submission returns the same job, so the client
        also retries it after a dropped connection.
        """
        body = _fields(assets=list(assets), options=dict(options) if options else None,
                       faces_expire_at=faces_expire_at)
        return self._post("/v1/index-jobs", json=body, headers=_idempotency(idempotency_key),
                          repeatable=idempotency_key is not None)

    def upload_index_job(self, assets: Iterable[UploadAsset], *, options: Mapping[str, Any] | None = None,
                         faces_expire_at: str | None = None, idempotency_key: str | None = None) -> Job:
        """Submit an index job with the photos in the request (multipart): no URL or bucket needed.

        The request holds a `manifest` part (JSON: the assets, each naming its file part)
        and one file part per asset. The server's per-file and per-request limits apply
        (docs/API.md, "Limits"): split large folders into several jobs.
        """
        manifest: dict[str, Any] = _fields(options=dict(options) if options else None,
                                           faces_expire_at=faces_expire_at)
        manifest["assets"], files = [], []
        for i, asset in enumerate(assets):
            part = f"file{i}"
            manifest["assets"].append(_fields(asset_id=asset.asset_id, subject_id=asset.subject_id, file=part))
            files.append((part, _file(asset.image, asset.asset_id)))
        return self._post("/v1/index-jobs", data={"manifest": json.dumps(manifest)}, files=files,
                          headers=_idempotency(idempotency_key), repeatable=idempotency_key is not None)

    def get_index_job(self, job_id: str) -> Job:
        return self._get(f"/v1/index-jobs/{job_id}")

    def iter_index_jobs(self, *, state: Iterable[str] | None = None, created_after: str | None = None,
                        created_before: str | None = None, limit: int | None = None) -> Iterator[Job]:
        """Your index jobs, newest first, every page."""
        return self._pages("/v1/index-jobs", state=_list(state), created_after=created_after,
                           created_before=created_before, limit=limit)

    def iter_job_assets(self, job_id: str, *, state: Iterable[str] | None = None,
                        limit: int | None = None) -> Iterator[JobAsset]:
        """A job's per-asset results in submission order: state, faces, left-out faces, error."""
        return self._pages(f"/v1/index-jobs/{job_id}/assets", state=_list(state), limit=limit)

    def cancel_index_job(self, job_id: str) -> Job:
        return self._post(f"/v1/index-jobs/{job_id}/cancel")

    def wait_for_job(self, job_id: str, timeout: float | None = 600.0, *, poll_interval: float = 1.0) -> Job:
        """Poll a job until it is finished (succeeded, partially_failed, failed or cancelled).

        Raises `JobTimeout` after `timeout` seconds (None: wait for ever); the job keeps running.
        """
        return self._poll(lambda: self.get_index_job(job_id), lambda job: job["state"] in TERMINAL_JOB_STATES,
                          JobTimeout, timeout=timeout, poll_interval=poll_interval)

    # --- Faces and deletion ----------------------------------------------------------------

    def iter_faces(self, *, asset_id: str | None = None, subject_id: str | None = None,
                   limit: int | None = None) -> Iterator[Face]:
        """Face metadata (never embeddings), newest first, of an asset, a subject or all of them."""
        return self._pages("/v1/faces", asset_id=asset_id, subject_id=subject_id, limit=limit)

    def delete_faces(self, *, face_ids: Iterable[str] | None = None, asset_ids: Iterable[str] | None = None,
                     subject_ids: Iterable[str] | None = None) -> Receipt | Deletion:
        """Delete faces now (a receipt), or, past the server's synchronous limit, queue it (a deletion).

        A queued deletion has a `status`; `get_deletion(id)` shows its receipt once done.
        """
        body = _fields(face_ids=_list(face_ids), asset_ids=_list(asset_ids), subject_ids=_list(subject_ids))
        if not body:
            raise ValueError("give face_ids, asset_ids or subject_ids")
        return self._post("/v1/faces/delete", json=body)

    def purge_faces(self, *, confirm: str) -> Receipt | Deletion:
        """Delete every face of the tenant and shred its keys. `confirm` must be PURGE_CONFIRMATION."""
        return self._post("/v1/faces/purge", json={"confirm": confirm})

    def get_deletion(self, deletion_id: str) -> Deletion:
        """A queued deletion (the 202 of `delete_faces` or `purge_faces`): its status, and its receipt once done."""
        return self._get(f"/v1/deletions/{deletion_id}")

    def wait_for_deletion(self, deletion_id: str, timeout: float | None = 600.0, *,
                          poll_interval: float = 1.0) -> Deletion:
        """Poll a queued deletion until it has succeeded; its `receipt` is then set.

        Raises `DeletionTimeout` after `timeout` seconds (None: wait for ever); the deletion goes on.
        """
        return self._poll(lambda: self.get_deletion(deletion_id), lambda deletion: deletion["status"] == "succeeded",
                          DeletionTimeout, timeout=timeout, poll_interval=poll_interval)

    def get_receipt(self, receipt_id: str) -> Receipt:
        return self._get(f"/v1/receipts/{receipt_id}")

    # --- Tenant, keys, statistics ----------------------------------------------------------

    def get_tenant(self) -> Tenant:
        return self._get("/v1/tenant")

    def update_tenant(self, *, face_retention_days: int | None) -> Tenant:
        return self._request("PATCH", "/v1/tenant", json={"face_retention_days": face_retention_days})

    def get_stats(self) -> dict[str, Any]:
        return self._get("/v1/stats")

    def iter_api_keys(self, *, limit: int | None = None) -> Iterator[ApiKey]:
        return self._pages("/v1/api-keys", limit=limit)

    def create_api_key(self, *, name: str, roles: Iterable[Role], expires_at: str | None = None) -> ApiKey:
        """A new key; its secret is in `key`, in this answer only."""
        return self._post("/v1/api-keys", json={"name": name, "roles": list(roles), "expires_at": expires_at})

    def revoke_api_key(self, api_key_id: str) -> None:
        self._request("DELETE", f"/v1/api-keys/{api_key_id}")

    # --- Webhooks --------------------------------------------------------------------------

    def iter_webhooks(self, *, limit: int | None = None) -> Iterator[WebhookEndpoint]:
        return self._pages("/v1/webhooks", limit=limit)

    def create_webhook(self, *, url: str, events: Iterable[str], description: str | None = None,
                       enabled: bool | None = None) -> WebhookEndpoint:
        """Register an endpoint; its signing secret is in `secret`, in this answer only."""
        body = _fields(url=url, events=list(events), description=description, enabled=enabled)
        return self._post("/v1/webhooks", json=body)

    def get_webhook(self, endpoint_id: str) -> WebhookEndpoint:
        return self._get(f"/v1/webhooks/{endpoint_id}")

    def update_webhook(self, endpoint_id: str, *, url: str | None = None, events: Iterable[str] | None = None,
                       description: str | None = None, enabled: bool | None = None) -> WebhookEndpoint:
        body = _fields(url=url, events=_list(events), description=description, enabled=enabled)
        return self._request("PATCH", f"/v1/webhooks/{endpoint_id}", json=body)

    def delete_webhook(self, endpoint_id: str) -> None:
        self._request("DELETE", f"/v1/webhooks/{endpoint_id}")

    def rotate_webhook_secret(self, endpoint_id: str) -> WebhookEndpoint:
        return self._post(f"/v1/webhooks/{endpoint_id}/rotate-secret")

    def test_webhook(self, endpoint_id: str) -> WebhookDelivery:
        """Send a `webhook.test` event; the answer is the queued delivery."""
        return self._post(f"/v1/webhooks/{endpoint_id}/test")

    def iter_webhook_deliveries(self, endpoint_id: str, *, state: str | None = None, event_type: str | None = None,
                                limit: int | None = None) -> Iterator[WebhookDelivery]:
        return self._pages(f"/v1/webhooks/{endpoint_id}/deliveries", state=state, event_type=event_type,
                           limit=limit)

    def get_webhook_delivery(self, endpoint_id: str, delivery_id: str) -> WebhookDelivery:
        return self._get(f"/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}")

    def redeliver_webhook(self, endpoint_id: str, delivery_id: str) -> WebhookDelivery:
        return self._post(f"/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver")

    # --- Audit -----------------------------------------------------------------------------

    def iter_audit_events(self, **filters: Any) -> Iterator[AuditEvent]:
        """Audit events, newest first. Filters: action (or "key.*"), actor_id, actor_type, outcome,
        receipt_id, target_id, since, until, limit."""
        return self._pages("/v1/audit/events", **filters)

    def export_audit_events(self, file_format: Literal["csv", "jsonl"] = "jsonl", **filters: Any) -> Iterator[bytes]:
        """The export, streamed in chunks: write them to a file as they come."""
        return self._http.stream("GET", f"/v1/audit/events/export.{file_format}", params=_fields(**filters))

    # --- Service health (no key needed, sent anyway) ---------------------------------------

    def ready(self) -> bool:
        """Whether the service can serve requests now (`/readyz`)."""
        try:
            self._request("GET", "/readyz")
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            return False
        return True

    # --- Plumbing ---------------------------------------------------------------------------

    def _pages(self, path: str, **params: Any) -> Iterator[Any]:
        """Every result of a cursor-paginated list, following `next` links lazily."""
        url: str | None = path
        query: dict[str, Any] | None = _fields(**params)
        while url:
            page = self._request("GET", url, params=query)
            yield from page["results"]
            url, query = page.get("next"), None  # the next link carries the filters and cursor

    def _poll(self, fetch: Callable[[], Any], done: Callable[[Any], bool], timeout_error: Callable[[Any], Exception],
              *, timeout: float | None, poll_interval: float) -> Any:
        """fetch() until done(answer), or raise timeout_error(last answer) once `timeout` has passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = min(0.2, poll_interval)
        while True:
            answer = fetch()
            if done(answer):
                return answer
            if deadline is not None and time.monotonic() + interval > deadline:
                raise timeout_error(answer)
            self._http.sleep(interval)
            interval = min(poll_interval, interval * 2)  # quick answers for small work, few polls for large

    def _get(self, path: str) -> Any:
        return self._request("GET", path)

    def _post(self, path: str, **kwargs: Any) -> Any:
        return self._request("POST", path, **kwargs)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        return response.json() if response.content else None


def _fields(**values: Any) -> dict[str, Any]:
    """The given values without the Nones: unset fields take the server's defaults."""
    return {key: value for key, value in values.items() if value is not None}


def _list(values: Iterable[str] | None) -> list[str] | None:
    return None if values is None else list(values)


def _idempotency(key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": key} if key else {}


def _is_source(image: object) -> bool:
    return isinstance(image, Mapping)


def _as_source(image: Image) -> ImageSource:
    """A JSON image source; uploads become inline base64 (for a JSON body mixing both kinds)."""
    if _is_source(image):
        return image  # type: ignore[return-value]
    return {"base64": base64.b64encode(_file(image, "image")[1]).decode()}


def _name_of(image: Image, default: str) -> str:
    if isinstance(image, (str, os.PathLike)):
        return Path(image).name
    return Path(getattr(image, "name", "") or default).name


def _file(image: Image, default_name: str) -> tuple[str, bytes, str]:
    """(file name, bytes, content type) of an upload. Read whole: a retry must resend it."""
    if isinstance(image, (str, os.PathLike)):
        return Path(image).name, Path(image).read_bytes(), "application/octet-stream"
    if isinstance(image, bytes):
        return default_name, image, "application/octet-stream"
    if hasattr(image, "read"):
        return _name_of(image, default_name), image.read(), "application/octet-stream"
    raise TypeError(f"not an image to upload: {type(image).__name__}")

"""The API's answers as TypedDicts: plain dicts at run time, checked by your type checker.

Mirrors the OpenAPI schema (`/api/schema/`); fields the server adds later simply appear
in the dicts. Only the shapes a caller reads field by field are spelled out.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

JobState = Literal["queued", "running", "succeeded", "partially_failed", "failed", "cancelled"]
TERMINAL_JOB_STATES: frozenset[str] = frozenset({"succeeded", "partially_failed", "failed", "cancelled"})
Role = Literal["admin", "indexer", "searcher", "comparer", "auditor"]
QualityFilter = Literal["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"]


class S3Location(TypedDict):
    bucket: str
    key: str


class ImageSource(TypedDict, total=False):
    """Exactly one of base64, url, s3: an image the server reads for itself."""

    base64: str
    url: str
    s3: S3Location


class Match(TypedDict):
    face_id: str
    asset_id: str
    subject_id: str | None
    similarity: float
    false_match_rate: float | None  # the model calibration's estimate at this similarity


class FaceQuality(TypedDict):
    sharpness: float
    brightness: float


class Pose(TypedDict):
    yaw: float
    pitch: float
    roll: float


class SearchedFace(TypedDict):
    bbox: list[float] | None
    det_score: float | None
    quality: FaceQuality | None
    pose: Pose | None
    matches: list[Match]


class SearchResult(TypedDict, total=False):
    model_id: str
    collection: str
    threshold: float
    threshold_source: Literal["target_fpir", "fixed", "default, no calibration"]
    target_fpir: float | None
    gallery_size: int | None
    quality_filter: QualityFilter
    faces: list[SearchedFace]
    left_out: list[dict[str, Any]]
    timings_ms: dict[str, float]


class Comparison(TypedDict):
    name: str
    similarity: float | None
    false_match_rate: float | None
    match: bool
    faces_found: int
    error: str | None


class CompareResult(TypedDict):
    model_id: str
    threshold: float
    threshold_source: Literal["max_false_match_rate", "fixed", "default"]
    max_false_match_rate: float | None
    target_faces_found: int
    comparisons: list[Comparison]


class JobCounts(TypedDict):
    assets_total: int
    assets_done: int
    assets_failed: int
    assets_cancelled: int
    assets_pending: int
    faces_indexed: int
    faces_left_out: int


class Job(TypedDict):
    id: str
    state: JobState
    progress: float
    counts: JobCounts
    options: dict[str, Any]
    faces_expire_at: str | None
    idempotency_key: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    timings: dict[str, Any]
    status_url: str
    results_url: str


class FaceResult(TypedDict):
    face_id: str
    bbox: list[float]
    det_score: float


class AssetError(TypedDict):
    code: str
    message: str


class JobAsset(TypedDict):
    asset_id: str
    subject_id: str | None
    position: int
    state: str
    source: dict[str, Any]
    attempts: int
    faces: list[FaceResult]
    left_out: list[dict[str, Any]]
    superseded: bool
    error: AssetError | None
    next_attempt_at: str | None
    started_at: str | None
    finished_at: str | None
    timings: dict[str, Any]


class Face(TypedDict):
    id: str
    asset_id: str
    subject_id: str | None
    bbox: list[float]
    det_score: float
    model_id: str
    job_id: str | None
    created_at: str
    expires_at: str | None


class Receipt(TypedDict):
    receipt_id: str
    requested: dict[str, Any]
    faces_deleted: int
    assets_deleted: int
    keys_destroyed: int
    deleted_at: str


class Deletion(TypedDict):
    id: str
    status: Literal["queued", "running", "succeeded"]
    status_url: str
    requested: dict[str, Any]
    receipt: Receipt | None
    created_at: str


class ApiKey(TypedDict, total=False):
    id: str
    name: str
    prefix: str
    roles: list[Role]
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None
    key: str  # only in the answer that created it


class Tenant(TypedDict, total=False):
    id: str
    name: str
    status: str
    face_retention_days: int | None
    created_at: str
    updated_at: str


class WebhookEndpoint(TypedDict, total=False):
    id: str
    url: str
    description: str
    events: list[str]
    enabled: bool
    disabled_reason: str
    created_at: str
    updated_at: str
    secret: str  # only when created or rotated


class WebhookDelivery(TypedDict, total=False):
    id: str
    event_id: str
    event_type: str
    state: str
    attempts: int
    payload: Any
    attempt_log: list[dict[str, Any]]


class AuditEvent(TypedDict, total=False):
    id: str
    seq: int
    occurred_at: str
    actor_type: str
    actor_id: str
    role: str
    action: str
    target: Any
    outcome: str
    details: dict[str, Any]
    request_id: str
    receipt_id: str | None
    hash: str

"""Index jobs over HTTP. Thin: parse, call a service or selector, render.

Submitting answers 202 at once; the work runs on Celery workers, and the job's
state, counters and per-asset results are read back here (or pushed by webhook).

Over 400 lines: a job is submitted in two forms (a JSON body, or a multipart
manifest with its file parts) that share one set of inputs and outputs; they are
read together here. The next endpoint of this package should take the outputs
to a module of their own.
"""

from __future__ import annotations

import hashlib
import json
import re

from django.conf import settings
from django.urls import reverse
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiRequest, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from embeddings.api import ImageSourceInput, checked_upload
from embeddings.engine import ImageError
from embeddings.image_sources import ImageSource
from embeddings.indexing import selectors as job_selectors
from embeddings.indexing import services as job_services
from embeddings.indexing.models import IndexJob, IndexJobAsset
from embeddings.store.fields import collection_field
from embeddings.store.quality_fields import LEFT_OUT_REASONS_HELP, pose_output, quality_filter_field, quality_output
from faceservice.api.fields import InputSerializer
from faceservice.api.pagination import NewestFirstCursorPagination, PositionCursorPagination, paginate
from faceservice.api.queries import query_params
from faceservice.api.uploads import ManyFilesMultiPartParser
from faceservice.api.views import TenantAPIView
from faceservice.errors import ApplicationError, InvalidRequest

JOB_ROLES = ("admin", "indexer")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces

ERRORS = {
    400: OpenApiResponse(description="Invalid request (invalid_request)"),
    404: OpenApiResponse(description="Unknown job, or another tenant's (not_found)"),
    413: OpenApiResponse(description="Request body too large (request_too_large)"),
    422: OpenApiResponse(description="Idempotency-Key reused with another body (idempotency_key_reused)"),
}


# --- Output ---------------------------------------------------------------------------

class JobCountsOutput(serializers.Serializer):
    assets_total = serializers.IntegerField()
    assets_done = serializers.IntegerField(help_text="Assets indexed")
    assets_failed = serializers.IntegerField()
    assets_cancelled = serializers.IntegerField()
    assets_pending = serializers.IntegerField(help_text="Not finished yet (waiting, queued, running, retrying)")
    faces_indexed = serializers.IntegerField()
    faces_left_out = serializers.IntegerField(help_text="Detected but not indexed (too small, low score, ...)")


class JobOutput(serializers.Serializer):
    id = serializers.UUIDField()
    collection = serializers.CharField(help_text="The collection its faces go to")
    state = serializers.ChoiceField(choices=IndexJob.State.choices)
    progress = serializers.FloatField(help_text="Finished assets / all assets, 0 to 1")
    counts = JobCountsOutput()
    options = serializers.DictField()
    faces_expire_at = serializers.DateTimeField(allow_null=True)
    idempotency_key = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    timings = serializers.DictField(help_text="queue_ms (created to started), run_ms (started to finished)")
    status_url = serializers.CharField()
    results_url = serializers.CharField(help_text="Per-asset results, paged")

    def to_representation(self, job: IndexJob) -> dict:
        return {
            "id": str(job.id), "collection": job.collection.name, "state": job.state,
            "progress": round(job.assets_finished / job.assets_total, 4) if job.assets_total else 1.0,
            "counts": {"assets_total": job.assets_total, "assets_done": job.assets_done,
                       "assets_failed": job.assets_failed, "assets_cancelled": job.assets_cancelled,
                       "assets_pending": job.assets_total - job.assets_finished,
                       "faces_indexed": job.faces_indexed, "faces_left_out": job.faces_left_out},
            "options": job.options,
            "faces_expire_at": _iso(job.faces_expire_at), "idempotency_key": job.idempotency_key,
            "created_at": _iso(job.created_at), "started_at": _iso(job.started_at),
            "finished_at": _iso(job.finished_at), "timings": _job_timings(job),
            "status_url": reverse("index-job", kwargs={"job_id": job.id}),
            "results_url": reverse("index-job-assets", kwargs={"job_id": job.id}),
        }


def _iso(value):
    return serializers.DateTimeField().to_representation(value) if value else None


def _job_timings(job: IndexJob) -> dict:
    def ms(start, end):
        return round((end - start).total_seconds() * 1000) if start and end else None

    return {"queue_ms": ms(job.created_at, job.started_at), "run_ms": ms(job.started_at, job.finished_at)}


class FaceResultOutput(serializers.Serializer):
    face_id = serializers.UUIDField()
    bbox = serializers.ListField(child=serializers.FloatField())
    det_score = serializers.FloatField()
    quality = quality_output(allow_null=True, required=False)
    pose = pose_output(allow_null=True, required=False)


class LeftOutOutput(serializers.Serializer):
    bbox = serializers.ListField(child=serializers.FloatField())
    det_score = serializers.FloatField()
    size = serializers.FloatField()
    reason = serializers.CharField(help_text=LEFT_OUT_REASONS_HELP)
    quality = quality_output(allow_null=True, required=False)
    pose = pose_output(allow_null=True, required=False)


class AssetErrorOutput(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class JobAssetOutput(serializers.Serializer):
    asset_id = serializers.CharField()
    subject_id = serializers.CharField(allow_null=True)
    position = serializers.IntegerField()
    state = serializers.ChoiceField(choices=IndexJobAsset.State.choices)
    source = serializers.DictField(help_text="kind, and the host or bucket once finished")
    attempts = serializers.IntegerField()
    faces = FaceResultOutput(many=True)
    left_out = LeftOutOutput(many=True)
    superseded = serializers.BooleanField(help_text="A newer submission of this asset was indexed first")
    error = AssetErrorOutput(allow_null=True, help_text="Why it failed (or the last transient error)")
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    timings = serializers.DictField()

    def to_representation(self, row: IndexJobAsset) -> dict:
        source = {"kind": row.source_kind}
        if row.state in IndexJobAsset.TERMINAL_STATES:
            source.update(row.source)  # already reduced to host / bucket
        return {
            "asset_id": row.asset_id, "subject_id": row.subject_id, "position": row.position,
            "state": row.state, "source": source, "attempts": row.attempts,
            "faces": row.faces, "left_out": row.left_out, "superseded": row.superseded,
            "error": {"code": row.error_code, "message": row.error_message} if row.error_code else None,
            "next_attempt_at": _iso(row.next_attempt_at), "started_at": _iso(row.started_at),
            "finished_at": _iso(row.finished_at), "timings": row.timings,
        }


# --- Input ------------------------------------------------------------------------------

class OptionsInput(InputSerializer):
    max_faces = serializers.IntegerField(min_value=1, max_value=100, required=False, allow_null=True,
                                         help_text="Keep at most this many faces per image, largest first")
    min_face_size = serializers.FloatField(min_value=0, max_value=10000, required=False, default=0.0,
                                           help_text="Pixels, shorter side of the face box")
    min_det_score = serializers.FloatField(min_value=0, max_value=1, required=False, default=0.5)
    subject_faces = serializers.ChoiceField(
        choices=[job_services.SUBJECT_FACES_LARGEST, job_services.SUBJECT_FACES_ALL], required=False,
        default=job_services.SUBJECT_FACES_LARGEST,
        help_text="For assets with a subject_id: `largest` (default) labels only the photo's largest face "
                  "with the subject and leaves the others out (reason `not_largest_face`); `all` labels "
                  "every face. Assets without a subject_id always keep every face.")
    quality_filter = quality_filter_field(default="AUTO", what="faces (they are not indexed)")


class AssetInput(InputSerializer):
    asset_id = serializers.CharField(max_length=255, help_text="Your id for the image")
    subject_id = serializers.CharField(max_length=255, required=False, allow_null=True,
                                       help_text="Your id for the person, if known")
    image = ImageSourceInput(help_text="Exactly one of base64, url (https), s3 {bucket, key}")

    def validate_image(self, value):
        url = value.get("url")
        if url and not url.lower().startswith("https://") and not settings.INDEX_ALLOW_HTTP_URLS:
            raise serializers.ValidationError("image URLs must use https")
        return value


class SubmitInput(InputSerializer):
    collection = collection_field(help_text="The collection the faces go to; absent: `default`")
    assets = AssetInput(many=True, allow_empty=False, min_length=1)
    options = OptionsInput(required=False)
    faces_expire_at = serializers.DateTimeField(required=False, allow_null=True,
                                                help_text="Faces of this job are deleted at this time")

    def validate_assets(self, value):
        limit = settings.INDEX_JOB_MAX_ASSETS
        if len(value) > limit:
            raise serializers.ValidationError(f"at most {limit} assets per job; split larger batches")
        ids = [asset["asset_id"] for asset in value]
        if len(set(ids)) != len(ids):
            raise serializers.ValidationError("each asset_id may appear once per job")
        return value


class FileAssetInput(InputSerializer):
    asset_id = serializers.CharField(max_length=255, help_text="Your id for the image")
    subject_id = serializers.CharField(max_length=255, required=False, allow_null=True,
                                       help_text="Your id for the person, if known")
    file = serializers.CharField(max_length=255, help_text="The name of the file part holding the image")


class ManifestInput(SubmitInput):
    """A multipart job's `manifest` part: the JSON body's fields, each asset naming its file part."""

    assets = FileAssetInput(many=True, allow_empty=False, min_length=1)

    def validate_assets(self, value):
        files = [asset["file"] for asset in value]
        if len(set(files)) != len(files):
            raise serializers.ValidationError("each file part may hold one asset's image")
        return super().validate_assets(value)


class IndexJobUpload(serializers.Serializer):
    """The multipart form: a `manifest` text part (JSON) and one file part per asset, named by it."""

    manifest = ManifestInput(help_text="JSON, sent as a text part (curl: -F 'manifest=<manifest.json')")


class IndexJobUploadExtension(OpenApiSerializerExtension):
    # The file parts' names are the client's own (the manifest's "file" values): document them as
    # any further property holding a binary file.
    target_class = IndexJobUpload

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        schema["additionalProperties"] = {"type": "string", "format": "binary",
                                          "description": "The image of the asset whose `file` names this part"}
        return schema


class FileMissing(InvalidRequest):
    code = "file_missing"
    default_message = "The manifest names a file part that the request does not carry."


class UnexpectedFile(InvalidRequest):
    code = "unexpected_file"
    default_message = "The request carries a file part that the manifest does not name."


class JobFilterInput(serializers.Serializer):
    state = serializers.MultipleChoiceField(choices=IndexJob.State.choices, required=False)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)


class AssetFilterInput(serializers.Serializer):
    state = serializers.MultipleChoiceField(choices=IndexJobAsset.State.choices, required=False)


# --- Views --------------------------------------------------------------------------------

class IndexJobListApi(TenantAPIView):
    allowed_roles = JOB_ROLES
    parser_classes = [JSONParser, ManyFilesMultiPartParser]
    pagination_class = NewestFirstCursorPagination

    @extend_schema(
        request={"application/json": SubmitInput,
                 "multipart/form-data": OpenApiRequest(IndexJobUpload,
                                                       encoding={"manifest": {"contentType": "application/json"}})},
        summary="Submit an index job (202: runs in the background)",
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER,
                                     pattern=IDEMPOTENCY_KEY.pattern,
                                     description="1-255 printable ASCII characters, no spaces. Retrying with "
                                                 "the same key and body returns the same job")],
        responses={202: JobOutput, **ERRORS},
    )
    def post(self, request):
        """Index the faces of up to `INDEX_JOB_MAX_ASSETS` images in the background: each asset is your
        `asset_id`, an optional `subject_id` (the person), and an image given as base64, an https URL or an
        S3 object. The answer is `202` at once with the job (`Location` points to it); poll it, or register
        a webhook for `job.succeeded` / `job.failed`. Re-indexing an asset replaces its faces. Send an
        `Idempotency-Key` to retry safely. Faces may expire at `faces_expire_at`.

        Or send the images as files: a multipart form with a text part `manifest` (the same JSON, each
        asset naming its file part in `"file"` instead of an `"image"`) and one file part per asset, each
        at most 15 MiB, the whole request at most 60 MiB. A refused file is named, with its asset, in
        `details.files`, and no job is made.

        Example body: `{"assets": [{"asset_id": "photo-1", "subject_id": "alice",
        "image": {"url": "https://example.com/alice.jpg"}}]}`
        """
        key = request.headers.get("Idempotency-Key")
        if key is not None and not IDEMPOTENCY_KEY.match(key):
            raise InvalidRequest("Idempotency-Key must be 1-255 printable ASCII characters.")
        values, specs, fingerprinted = _submission(request)
        submitted = job_services.submit_index_job(
            tenant_id=self.tenant_id, assets=specs,
            options=job_services.JobOptions(**values.get("options", {})), actor=self.actor(),
            fingerprint=job_services.request_fingerprint(tenant_id=self.tenant_id, body=fingerprinted),
            idempotency_key=key, faces_expire_at=values.get("faces_expire_at"),
            collection=values.get("collection"))
        body = JobOutput(submitted.job).data
        headers = {"Location": body["status_url"]}
        if not submitted.created:
            headers["Idempotent-Replayed"] = "true"
        return Response(body, status=status.HTTP_202_ACCEPTED, headers=headers)

    @extend_schema(parameters=[JobFilterInput], responses={200: JobOutput(many=True), 400: ERRORS[400]},
                   summary="List index jobs, newest first (cursor pages)")
    def get(self, request):
        """Your index jobs, newest first, filtered by `state` (one or several, `?state=running,queued`) and
        creation time. A page holds `limit` jobs (default 50, at most 500); follow `next`."""
        filters = query_params(JobFilterInput, request)
        jobs = job_selectors.jobs_of(tenant_id=self.tenant_id, states=filters.get("state", ()),
                                     created_after=filters.get("created_after"),
                                     created_before=filters.get("created_before"))
        return paginate(self, jobs, JobOutput)


def _submission(request) -> tuple[dict, list[job_services.AssetSpec], object]:
    """The validated fields, the assets, and what the idempotency fingerprint covers (JSON or multipart)."""
    if request.content_type.startswith("multipart/form-data"):
        return _files_submission(request)
    data = SubmitInput(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data, _asset_specs(data.validated_data["assets"]), request.data


def _files_submission(request) -> tuple[dict, list[job_services.AssetSpec], object]:
    manifest = _manifest_of(request)
    data = ManifestInput(data=manifest)
    if not data.is_valid():
        raise serializers.ValidationError({"manifest": data.errors})
    values = data.validated_data
    images = _uploaded_images(values["assets"], request.FILES)
    specs = [job_services.AssetSpec(asset_id=asset["asset_id"], subject_id=asset.get("subject_id"),
                                    source=ImageSource(data=images[asset["file"]]))
             for asset in values["assets"]]
    # The files by digest: a retry with other bytes under the same Idempotency-Key is refused.
    digests = {part: hashlib.sha256(data).hexdigest() for part, data in images.items()}
    return values, specs, {"manifest": manifest, "files": digests}


def _manifest_of(request) -> dict:
    if "manifest" in request.FILES:
        raise serializers.ValidationError(
            {"manifest": ["send the manifest as a text part, not a file (curl: -F 'manifest=<manifest.json')"]})
    text = request.POST.get("manifest")
    if text is None:
        raise serializers.ValidationError(
            {"manifest": ['this text part is required: JSON {"assets": [{"asset_id", "subject_id"?, "file"}]}']})
    try:
        manifest = json.loads(text)
    except ValueError:
        raise serializers.ValidationError({"manifest": ["not valid JSON"]}) from None
    if not isinstance(manifest, dict):
        raise serializers.ValidationError({"manifest": ["must be a JSON object"]})
    return manifest


def _uploaded_images(assets: list[dict], files) -> dict[str, bytes]:
    """Each named file part's bytes; every part refused (and why, for which asset) in one answer."""
    images, refused = {}, []
    for asset in assets:
        part, uploads = asset["file"], files.getlist(asset["file"])
        if len(uploads) != 1:
            error = (UnexpectedFile("several file parts have this name; send one per asset") if uploads
                     else FileMissing("no file part of this name (send the image as a file part)"))
            refused.append((part, asset["asset_id"], error))
            continue
        try:
            images[part] = checked_upload(uploads[0])
        except ApplicationError as exc:  # too large, not an image, a format we do not accept
            refused.append((part, asset["asset_id"], exc))
    named = {asset["file"] for asset in assets}
    refused += [(part, None, UnexpectedFile()) for part in files if part not in named]
    if refused:
        raise _refusal(refused)
    return images


def _refusal(refused: list[tuple[str, str | None, ApplicationError]]) -> ApplicationError:
    """One answer for every refused file: their shared code and status, or 400 invalid_request when mixed."""
    details = {"files": [{"file": part, "asset_id": asset_id, **error.as_dict()}
                         for part, asset_id, error in refused]}
    kind = type(refused[0][2]) if len({error.code for _, _, error in refused}) == 1 else InvalidRequest
    count = f"{len(refused)} file{' was' if len(refused) == 1 else 's were'}"
    return kind(f"{count} refused: details.files says which, for which asset, and why.", details=details)


def _asset_specs(assets: list[dict]) -> list[job_services.AssetSpec]:
    specs, errors = [], {}
    for index, asset in enumerate(assets):
        try:
            source = ImageSourceInput.to_source(asset["image"])
        except ImageError as exc:  # bad base64, too large: name the asset
            errors[index] = {"image": [f"{exc.code}: {exc.message}"]}
            continue
        specs.append(job_services.AssetSpec(asset_id=asset["asset_id"], source=source,
                                            subject_id=asset.get("subject_id")))
    if errors:
        raise serializers.ValidationError({"assets": errors})
    return specs


class IndexJobApi(TenantAPIView):
    allowed_roles = JOB_ROLES

    @extend_schema(responses={200: JobOutput, 404: ERRORS[404]}, summary="An index job's state and counts")
    def get(self, request, job_id):
        """An index job: its `state`, `progress` (0 to 1), counts of assets and faces, and timings."""
        return Response(JobOutput(job_selectors.job_of(tenant_id=self.tenant_id, job_id=job_id)).data)


class IndexJobAssetsApi(TenantAPIView):
    allowed_roles = JOB_ROLES
    pagination_class = PositionCursorPagination

    @extend_schema(parameters=[AssetFilterInput], responses={200: JobAssetOutput(many=True), 404: ERRORS[404]},
                   summary="Per-asset results of a job, in submission order (cursor pages)")
    def get(self, request, job_id):
        """Each asset of a job, in the order submitted: its state, the faces indexed (ids and boxes), the
        faces left out and why, and the error of a failed asset. Filter by `state`. A page holds `limit`
        assets (default 100, at most 1000); follow `next`."""
        filters = query_params(AssetFilterInput, request)
        rows = job_selectors.job_assets_of(tenant_id=self.tenant_id, job_id=job_id,
                                           states=filters.get("state", ()))
        return paginate(self, rows, JobAssetOutput)


class IndexJobCancelApi(TenantAPIView):
    allowed_roles = JOB_ROLES

    @extend_schema(request=None, responses={200: JobOutput, 404: ERRORS[404],
                                            409: OpenApiResponse(description="The job already finished")},
                   summary="Cancel a job (finished assets keep their faces)")
    def post(self, request, job_id):
        """Stop a job: assets not started are cancelled; those already indexed keep their faces. A job
        that has finished cannot be cancelled (`409`)."""
        job = job_services.cancel_job(tenant_id=self.tenant_id, job_id=job_id, actor=self.actor())
        return Response(JobOutput(job).data)

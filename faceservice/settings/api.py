"""The HTTP API: request sizes, rate limits, REST framework and the OpenAPI schema."""

from pydantic import Field

from faceservice.settings.environment import Variables, export, read, shown
from faceservice.settings.jobs import INDEX_JOB_MAX_ASSETS


class Requests(Variables):
    """Requests and rate limits"""

    MAX_IMAGE_BYTES: int = Field(15 * 1024 * 1024, description="largest image, uploaded or fetched (15 MiB)")
    MAX_IMAGE_PIXELS: int = Field(40_000_000, description="largest decoded image (decompression bombs)")
    MAX_REQUEST_BYTES: int = Field(
        default_factory=lambda variables: 4 * variables["MAX_IMAGE_BYTES"], json_schema_extra=shown(
            "4 × `MAX_IMAGE_BYTES`"), description="largest request body (JSON and multipart alike)")
    RATE_LIMIT_PER_KEY: str = Field(
        "600/min", exclude=True,
        description="requests per API key (DRF rate syntax: `N/s`, `N/min`, `N/hour`, `N/day`)")
    RATE_LIMIT_PER_IP: str = Field("1200/min", exclude=True, description="requests per client address")
    NUM_PROXIES: int = Field(
        0, exclude=True, description="proxies in front that append to `X-Forwarded-For`; the per-IP rate "
        "limit uses the address the nearest trusted one saw")
    API_KEY_CACHE_SECONDS: int = Field(
        5, description="how long a process keeps a verified API key (saves a database lookup per request). "
        "Revoking a key or suspending a tenant is immediate in the process that does it and takes up to "
        "this long in the others; `0` turns the cache off")


_requests = read(Requests)
export(_requests, globals())

# Images stay in memory, never in temp files: only our in-memory handler, since
# Django's default TemporaryFileUploadHandler would spill large uploads to /tmp,
# which the privacy promise forbids.
FILE_UPLOAD_HANDLERS = ["faceservice.api.uploads.InMemoryOnlyUploadHandler"]
FILE_UPLOAD_MAX_MEMORY_SIZE = _requests.MAX_REQUEST_BYTES
DATA_UPLOAD_MAX_MEMORY_SIZE = _requests.MAX_REQUEST_BYTES
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2000
# One file part per asset: a multipart index job may carry as many files as a job
# holds assets (search and compare take at most a few). Django refuses more with
# TooManyFilesSent, which the error handler answers as a JSON 413.
DATA_UPLOAD_MAX_NUMBER_FILES = INDEX_JOB_MAX_ASSETS

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["faceservice.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["faceservice.api.permissions.HasRole"],
    "DEFAULT_THROTTLE_CLASSES": [
        "faceservice.api.throttles.ApiKeyRateThrottle",
        "faceservice.api.throttles.ClientIpRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "api_key": _requests.RATE_LIMIT_PER_KEY,
        "client_ip": _requests.RATE_LIMIT_PER_IP,
    },
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        # DRF's, with nesting bounded: a body too deep to parse is a 400, not a RecursionError.
        "faceservice.api.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "faceservice.api.schema.TenantAutoSchema",
    "EXCEPTION_HANDLER": "faceservice.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "NUM_PROXIES": _requests.NUM_PROXIES,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Face search service API",
    "DESCRIPTION": (
        "Multi-tenant face search: index faces from your images, search by a new photo, "
        "compare photos, delete face data. Authenticate with `Authorization: Bearer <api key>`. "
        "Every error has the shape `{\"error\": {\"code\", \"message\", \"request_id\", \"details\"?}}` "
        "(the `ErrorOutput` schema); every answer carries `X-Request-ID`. Lists are cursor pages "
        "`{\"next\", \"previous\", \"results\"}`: follow `next` until it is null."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    # Our PATCH serializers are not partial: document the fields they require as required.
    "COMPONENT_SPLIT_PATCH": False,
    "SCHEMA_PATH_PREFIX": r"/v1",
    # The docs pages load the pinned Swagger UI and ReDoc builds of drf-spectacular-sidecar
    # from our own /static/, never a CDN: they work offline, and no third-party script runs
    # on the page where users paste their API key. No online validator badge either.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # Several models have a `state` field with different choices; name each enum.
    "ENUM_NAME_OVERRIDES": {
        "IndexJobStateEnum": "embeddings.models.IndexJob.State",
        "IndexJobAssetStateEnum": "embeddings.models.IndexJobAsset.State",
        "WebhookDeliveryStateEnum": "tenants.models.WebhookDelivery.State",
    },
}

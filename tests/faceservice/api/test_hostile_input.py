"""No 500 on any input (issue #18): every body that cannot be read is a 4xx in the JSON error shape.

Each class is closed where it starts: a body nested deeper than the parser's
recursion limit (faceservice/api/parsers.py), and every request Django refuses
while reading it as too large or suspicious (faceservice/api/errors.py
`refused_by_django`, for DRF views and for Django's handler400 alike). Hypothesis
then throws arbitrary bytes, deep JSON and wrong content types at POST routes.
"""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import (
    BadRequest,
    DisallowedHost,
    DisallowedRedirect,
    RequestDataTooBig,
    SuspiciousFileOperation,
    SuspiciousMultipartForm,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.test import override_settings
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from faceservice.api.errors import refused_by_django
from faceservice.api.parsers import MAX_JSON_DEPTH, nesting_depth
from tests.conftest import PROJECT_DIR, assert_json_error

POST_ROUTES = ["/v1/search", "/v1/compare", "/v1/index-jobs", "/v1/api-keys", "/v1/faces/delete"]
API_DOC = (PROJECT_DIR / "docs" / "API.md").read_text()
# database=None: no .hypothesis/ folder in the working tree. One transaction holds every example.
FUZZ = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture
def admin(tenant, make_key) -> APIClient:
    # raise_request_exception=False: answer as in production (a 500 is returned, not raised).
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(tenant, ('admin',))}")
    return client


def nested(depth: int, opener: str = "[") -> str:
    """`[[[…]]]` or `{"a":{"a":…1}}`, `depth` levels deep."""
    if opener == "{":
        return '{"a":' * depth + "1" + "}" * depth
    return "[" * depth + "]" * depth


def assert_refused_cleanly(response) -> None:
    """A 4xx in our one JSON error shape, with a code that docs/API.md documents."""
    content = response.content.decode(errors="replace")
    assert 400 <= response.status_code < 500, f"{response.status_code}: {content[:300]}"
    assert response["Content-Type"].startswith("application/json"), content[:300]
    error = response.json()["error"]
    assert error["request_id"] == response["X-Request-ID"]
    assert f"`{error['code']}`" in API_DOC, error


# --- JSON nested too deep ----------------------------------------------------------------

@pytest.mark.parametrize("path", POST_ROUTES)
def test_json_nested_past_the_recursion_limit_is_400_malformed_request(admin, path):
    body = nested(1000)  # 2 kB: deeper than Python's recursion limit lets json parse
    assert len(body) <= 2100
    error = assert_json_error(admin.post(path, body, content_type="application/json"), 400, "malformed_request")
    assert str(MAX_JSON_DEPTH) in error["message"]


@pytest.mark.parametrize("path", POST_ROUTES)
def test_json_one_level_past_the_bound_is_400_malformed_request(admin, path):
    # Parses fine, but no documented body is that deep: refused before any serializer walks it.
    body = nested(MAX_JSON_DEPTH + 1, "{")
    assert_json_error(admin.post(path, body, content_type="application/json"), 400, "malformed_request")


def test_json_at_the_bound_reaches_validation(admin):
    body = json.loads(nested(MAX_JSON_DEPTH - 1, "{"))  # one level inside the top object
    response = admin.post("/v1/api-keys", {"name": "k", "roles": ["searcher"], "extra": body}, format="json")
    assert response.status_code == 201, response.content[:300]


@pytest.mark.pure
@pytest.mark.parametrize(("value", "depth"), [
    (1, 0), ("x", 0), ([], 1), ({}, 1), ([1, [2, [3]]], 3), ({"a": [{"b": {}}]}, 4), ([[], [[[]]], []], 4),
])
def test_nesting_depth(value, depth):
    assert nesting_depth(value) == depth


@pytest.mark.pure
def test_nesting_depth_needs_no_recursion():
    value: list = []
    for _ in range(100_000):
        value = [value]
    assert nesting_depth(value) == 100_001


# --- What Django refuses while reading a request ------------------------------------------

DJANGO_REFUSALS = [
    (RequestDataTooBig, 413, "request_too_large"),
    (TooManyFieldsSent, 413, "request_too_large"),
    (TooManyFilesSent, 413, "request_too_large"),
    (DisallowedHost, 400, "malformed_request"),
    (SuspiciousMultipartForm, 400, "malformed_request"),
    (SuspiciousFileOperation, 400, "malformed_request"),
    (DisallowedRedirect, 400, "malformed_request"),
    (SuspiciousOperation, 400, "malformed_request"),
    (MultiPartParserError, 400, "malformed_request"),
    (BadRequest, 400, "malformed_request"),
    (UnreadablePostError, 400, "malformed_request"),
]


def _documented(status: int, code: str) -> bool:
    """docs/API.md's error table has a row for this status naming this code."""
    return any(line.startswith(f"| {status} |") and f"`{code}`" in line for line in API_DOC.splitlines())


@pytest.mark.pure
@pytest.mark.parametrize(("kind", "status", "code"), DJANGO_REFUSALS, ids=lambda v: getattr(v, "__name__", v))
def test_every_django_refusal_maps_to_a_documented_4xx(kind, status, code):
    error = refused_by_django(kind("django-detail-0123"))
    assert (error.http_status, error.code) == (status, code)
    assert _documented(status, code)
    assert "django-detail-0123" not in error.public_message  # Django's detail is for the log only


@pytest.mark.pure
def test_other_exceptions_are_not_refusals():
    assert refused_by_django(RuntimeError("a bug")) is None
    assert refused_by_django(ValueError("a bug")) is None


def _files(count: int) -> dict:
    return {f"f{i}": SimpleUploadedFile(f"{i}.jpg", b"\xff\xd8", content_type="image/jpeg") for i in range(count)}


@pytest.mark.parametrize("path", ["/v1/search", "/v1/index-jobs", "/v1/api-keys"])
@override_settings(DATA_UPLOAD_MAX_NUMBER_FILES=5)
def test_more_files_than_allowed_is_413_in_an_api_view(admin, path):
    assert_json_error(admin.post(path, _files(6), format="multipart"), 413, "request_too_large")


@override_settings(DATA_UPLOAD_MAX_NUMBER_FILES=5)
def test_more_files_than_allowed_is_413_outside_the_api_too(db):
    # The auditors' console reads its form with Django, not DRF: handler400 answers.
    response = APIClient(raise_request_exception=False).post("/console/login", _files(6), format="multipart")
    assert_json_error(response, 413, "request_too_large")


def test_more_files_than_an_index_job_holds_is_413(admin):
    # The case at the real limit, one file past it (files are a few bytes each).
    from django.conf import settings as django_settings

    count = django_settings.DATA_UPLOAD_MAX_NUMBER_FILES + 1
    assert_json_error(admin.post("/v1/index-jobs", _files(count), format="multipart"), 413, "request_too_large")


@override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=10)
def test_too_many_query_parameters_is_413(admin):
    query = "&".join(f"p{i}=1" for i in range(11))
    error = assert_json_error(admin.get(f"/v1/faces?{query}"), 413, "request_too_large")
    assert "query parameters" in error["message"]


@override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=10)
def test_too_many_form_fields_is_413_outside_the_api_too(db):
    fields = "&".join(f"p{i}=1" for i in range(11))
    response = APIClient(raise_request_exception=False).post(
        "/console/login", fields, content_type="application/x-www-form-urlencoded")
    assert_json_error(response, 413, "request_too_large")


@pytest.mark.parametrize("path", ["/v1/tenant", "/v1/nope", "/console/login", "/healthz"])
def test_an_unknown_host_is_400_malformed_request(admin, path):
    error = assert_json_error(admin.get(path, HTTP_HOST="evil.example.test"), 400, "malformed_request")
    assert "Host" in error["message"]


# --- Hypothesis: whatever the body, never a 500 --------------------------------------------

CONTENT_TYPES = st.sampled_from([
    "application/json", "application/json; charset=utf-8", "application/json; charset=latin-1",
    "application/json; charset=utf-16", "application/json; charset=nonsense",
    "multipart/form-data", "multipart/form-data; boundary=xyz", "multipart/form-data; boundary=",
    "application/x-www-form-urlencoded", "text/plain", "image/jpeg", "", "*/*", "application/json;;;",
])
ROUTES = st.sampled_from(POST_ROUTES)


@FUZZ
@given(path=ROUTES, content_type=CONTENT_TYPES, body=st.binary(max_size=2048))
@example(path="/v1/search", content_type="application/json", body=b"[" * 1500 + b"]" * 1500)
@example(path="/v1/index-jobs", content_type="application/json", body=b'{"assets": ' + b"[" * 2000)
@example(path="/v1/compare", content_type="multipart/form-data; boundary=xyz", body=b"--xyz\r\n\r\n--xyz--")
@example(path="/v1/search", content_type="application/json", body=b"\xff\xfe{\x00}\x00")
@example(path="/v1/api-keys", content_type="application/json", body=b'{"name": "' + b"9" * 5000 + b'"}')
def test_arbitrary_bytes_never_answer_500(admin, path, content_type, body):
    # generic(): the body as it is, whatever the content type (post() would encode an empty one).
    assert_refused_cleanly(admin.generic("POST", path, body, content_type=content_type))


def _json_values(max_leaves: int = 30):
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(max_size=8), inner, max_size=4), max_leaves=max_leaves)


@FUZZ
@given(path=ROUTES, value=_json_values(), depth=st.integers(0, 3000), opener=st.sampled_from("[{"))
def test_any_json_at_any_depth_never_answers_500(admin, path, value, depth, opener):
    # A random value, wrapped `depth` times in arrays or objects.
    text = json.dumps(value, allow_nan=True)
    body = ('{"a":' * depth + text + "}" * depth) if opener == "{" else ("[" * depth + text + "]" * depth)
    response = admin.post(path, body, content_type="application/json")
    assert_refused_cleanly(response)
    if depth + nesting_depth(value) > MAX_JSON_DEPTH:
        assert response.json()["error"]["code"] == "malformed_request"


@FUZZ
@given(path=ROUTES, body=st.dictionaries(st.sampled_from(["image", "target", "references", "assets", "name",
                                                          "roles", "face_ids", "subject_ids", "top_k"]),
                                         _json_values(10), max_size=4))
def test_documented_fields_with_wrong_values_never_answer_500(admin, path, body):
    response = admin.post(path, json.dumps(body, allow_nan=True), content_type="application/json")
    assert response.status_code < 500, response.content[:300]

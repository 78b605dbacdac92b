"""An unexpected exception is a JSON 500 that reveals nothing of what went wrong."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.conftest import assert_json_error
from tests.faceservice.api.boom_urls import SECRET_DETAIL

pytestmark = pytest.mark.urls("tests.faceservice.api.boom_urls")


def _assert_reveals_nothing(response) -> None:
    error = assert_json_error(response, 500, "internal_error")
    body = response.content.decode()
    assert SECRET_DETAIL not in body and "RuntimeError" not in body and "File \"" not in body
    assert error["message"] == "Something went wrong on our side."


def test_exception_in_an_api_view_is_a_bare_json_500(tenant, client_for):
    _assert_reveals_nothing(client_for(tenant, roles=("searcher",)).get("/v1/test-boom"))


def test_exception_in_a_plain_view_is_a_bare_json_500(db):
    client = APIClient(raise_request_exception=False)  # answer as in production, do not re-raise
    _assert_reveals_nothing(client.get("/test-plain-boom"))

"""Fixtures for the KMS tests. Nothing here needs the database.

AWS tests run against moto's server mode over real HTTP. `./dev test` starts
one and exports AWS_ENDPOINT_URL (+ test credentials); by hand:

    .venv/bin/moto_server -H 127.0.0.1 -p 5055 &
    AWS_ENDPOINT_URL=http://127.0.0.1:5055 AWS_ACCESS_KEY_ID=testing \
    AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 \
    .venv/bin/python -m pytest tests/tenants/kms -q
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable

import pytest


@pytest.fixture
def aws_endpoint() -> str:
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        pytest.skip("AWS_ENDPOINT_URL is not set (no moto server); run via ./dev test")
    return endpoint


@pytest.fixture
def kms_admin(aws_endpoint):
    """A plain boto3 KMS client for test set-up (creating / disabling keys)."""
    import boto3

    return boto3.session.Session().client("kms")


@pytest.fixture
def new_kms_key(kms_admin) -> Callable[..., str]:
    def make(alias: bool = False) -> str:
        key_id = kms_admin.create_key(Description="faceservice test key")["KeyMetadata"]["KeyId"]
        if alias:
            name = f"alias/faceservice-test-{uuid.uuid4().hex[:12]}"
            kms_admin.create_alias(AliasName=name, TargetKeyId=key_id)
            return name
        return key_id

    return make

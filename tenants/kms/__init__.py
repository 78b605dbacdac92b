"""Tenant key management: envelope encryption of per-tenant data keys.

Pure Python (no Django): configuration is passed in, so the Django side wraps
these in its own services. Public API::

    provider = get_provider("local", path=".run/kms/master.keys")
    provider = get_provider("aws", key_id="alias/faceservice")
    dk = provider.generate_data_key(context={"tenant": tenant_id})
    # store dk.wrapped and dk.master_key_id; keep dk.plaintext in memory only
    dek = provider.decrypt_data_key(wrapped=..., context=..., master_key_id=...)

See docs/SECURITY.md, "1. Key hierarchy".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import DATA_KEY_BYTES, DataKey, KeyState, KmsProvider, canonical_context
from .cache import DataKeyCache
from .errors import (
    DecryptionFailed,
    InsecureKeyFile,
    KeyDisabled,
    KeyNotFound,
    KmsError,
    KmsUnavailable,
)
from .local import LocalKmsProvider

if TYPE_CHECKING:
    from .aws import AwsKmsProvider

__all__ = [
    "DATA_KEY_BYTES",
    "AwsKmsProvider",
    "DataKey",
    "DataKeyCache",
    "DecryptionFailed",
    "InsecureKeyFile",
    "KeyDisabled",
    "KeyNotFound",
    "KeyState",
    "KmsError",
    "KmsProvider",
    "KmsUnavailable",
    "LocalKmsProvider",
    "canonical_context",
    "get_provider",
]


def __getattr__(name: str) -> Any:
    # boto3 is imported only when the AWS provider is actually used.
    if name == "AwsKmsProvider":
        from .aws import AwsKmsProvider
        return AwsKmsProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_provider(name: str, **options: Any) -> KmsProvider:
    """Build a provider by name: ``"local"`` (options: path, key_id, create) or
    ``"aws"`` (options: key_id, region_name, endpoint_url, client,
    connect_timeout, read_timeout, max_attempts, key_state_ttl)."""
    if name == "local":
        return LocalKmsProvider(**options)
    if name == "aws":
        from .aws import AwsKmsProvider
        return AwsKmsProvider(**options)
    raise ValueError(f"unknown KMS provider {name!r} (expected 'local' or 'aws')")

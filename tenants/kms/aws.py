"""AWS KMS provider (boto3).

- Data keys: GenerateDataKey(KeySpec=AES_256, EncryptionContext); unwrap with
  Decrypt(KeyId, EncryptionContext) so a blob made under another key is refused;
  rewrap with ReEncrypt, so the plaintext data key never leaves KMS.
- The endpoint comes from boto3's own configuration (``AWS_ENDPOINT_URL`` /
  ``AWS_ENDPOINT_URL_KMS``, region, credentials chain) unless passed in.
- Retries: botocore "standard" mode (exponential backoff with jitter on
  throttling and transient errors), bounded connect/read timeouts. What is
  still failing after that surfaces as :class:`KmsUnavailable`.
- Key state: before using a master key we check DescribeKey's KeyState (cached
  for ``key_state_ttl`` seconds) and raise :class:`KeyDisabled` unless it is
  Enabled. Real KMS refuses disabled keys itself, but emulators such as moto do
  not, and checking first gives one clear error either way. A disabled key can
  therefore still be used for up to ``key_state_ttl`` seconds by a process that
  saw it enabled, unless KMS itself refuses (it does, in AWS).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from .base import DATA_KEY_BYTES, DataKey, KeyState, KmsProvider, check_context, check_wrapped
from .errors import DecryptionFailed, KeyDisabled, KeyNotFound, KmsError, KmsUnavailable

_DISABLED_CODES = {"DisabledException", "KMSInvalidStateException"}
_NOT_FOUND_CODES = {"NotFoundException"}
# On Decrypt/ReEncrypt these mean "this blob does not open with that key/context".
# (moto answers AccessDeniedException where AWS answers IncorrectKeyException.)
_DECRYPT_FAILURE_CODES = {"InvalidCiphertextException", "IncorrectKeyException",
                          "AccessDeniedException"}
_TRANSIENT_CODES = {"ThrottlingException", "Throttling", "TooManyRequestsException",
                    "RequestLimitExceeded", "KMSInternalException", "InternalFailure",
                    "InternalError", "ServiceUnavailable", "ServiceUnavailableException",
                    "DependencyTimeoutException", "KeyUnavailableException", "RequestTimeout",
                    "RequestTimeoutException"}


class AwsKmsProvider(KmsProvider):
    """Data keys wrapped by AWS KMS.

    ``key_id``: key id, key ARN, alias name (``alias/...``) or alias ARN of the
    master key for new data keys. ``client``: an existing boto3 KMS client (its
    configuration is then used as is); otherwise one is built from a fresh
    boto3 session with the region / endpoint given or taken from the environment.
    """

    name = "aws"

    def __init__(self, *, key_id: str, region_name: str | None = None,
                 endpoint_url: str | None = None, client: Any = None,
                 connect_timeout: float = 3.0, read_timeout: float = 10.0,
                 max_attempts: int = 4, key_state_ttl: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not isinstance(key_id, str) or not key_id:
            raise KmsError("AwsKmsProvider needs the master key id, ARN or alias")
        self._key_id = key_id
        if client is None:
            config = Config(retries={"mode": "standard", "max_attempts": max_attempts},
                            connect_timeout=connect_timeout, read_timeout=read_timeout)
            kwargs: dict[str, Any] = {"config": config}
            if region_name:
                kwargs["region_name"] = region_name
            if endpoint_url:
                kwargs["endpoint_url"] = endpoint_url
            # A session per provider: boto3's default session is not thread-safe
            # to create clients from; the client itself is.
            client = boto3.session.Session().client("kms", **kwargs)
        self._client = client
        self._key_state_ttl = key_state_ttl
        self._clock = clock
        self._state_lock = threading.Lock()
        self._states: dict[str, tuple[KeyState, float]] = {}

    def __repr__(self) -> str:
        return f"AwsKmsProvider(key_id={self._key_id!r})"

    def __reduce__(self):
        raise TypeError("KMS providers must not be pickled")

    # --- errors -------------------------------------------------------------------

    @contextmanager
    def _calling(self, operation: str, key_id: str, *, unwrapping: bool = False) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            where = f"KMS {operation} ({key_id}): {code or 'error'}"
            if code in _DISABLED_CODES:
                self.forget_key_state(key_id)
                raise KeyDisabled(where) from exc
            if code in _NOT_FOUND_CODES:
                raise KeyNotFound(where) from exc
            if unwrapping and code in _DECRYPT_FAILURE_CODES:
                raise DecryptionFailed(where) from exc
            if code in _TRANSIENT_CODES or status >= 500:
                raise KmsUnavailable(where) from exc
            raise KmsError(where) from exc
        except (BotoConnectionError, HTTPClientError) as exc:
            raise KmsUnavailable(f"KMS {operation} ({key_id}): {type(exc).__name__}") from exc
        except BotoCoreError as exc:  # no credentials, bad parameters, ...
            raise KmsError(f"KMS {operation} ({key_id}): {type(exc).__name__}") from exc

    # --- key state ----------------------------------------------------------------

    def describe(self, master_key_id: str) -> KeyState:
        with self._calling("DescribeKey", master_key_id):
            meta = self._client.describe_key(KeyId=master_key_id)["KeyMetadata"]
        state = KeyState.from_aws(meta.get("KeyState", ""))
        if state is KeyState.ENABLED and meta.get("Enabled") is False:
            state = KeyState.DISABLED
        with self._state_lock:
            self._states[master_key_id] = (state, self._clock() + self._key_state_ttl)
        return state

    def forget_key_state(self, master_key_id: str | None = None) -> None:
        """Drop cached key states (all, or one key's) so the next use re-checks."""
        with self._state_lock:
            if master_key_id is None:
                self._states.clear()
            else:
                self._states.pop(master_key_id, None)

    def _require_enabled(self, master_key_id: str) -> None:
        with self._state_lock:
            cached = self._states.get(master_key_id)
        fresh = cached is not None and cached[1] > self._clock()
        state = cached[0] if fresh else self.describe(master_key_id)
        if not state.usable:
            raise KeyDisabled(f"KMS key {master_key_id} is {state.value}")

    def resolve_key_id(self, master_key_id: str) -> str:
        """The key ARN behind an id or alias (store this, not an alias)."""
        with self._calling("DescribeKey", master_key_id):
            return self._client.describe_key(KeyId=master_key_id)["KeyMetadata"]["Arn"]

    # --- KmsProvider ---------------------------------------------------------------

    @property
    def current_key_id(self) -> str:
        return self._key_id

    def generate_data_key(self, *, context: Mapping[str, str]) -> DataKey:
        context = check_context(context)
        self._require_enabled(self._key_id)
        with self._calling("GenerateDataKey", self._key_id):
            response = self._client.generate_data_key(
                KeyId=self._key_id, KeySpec="AES_256", EncryptionContext=context)
        plaintext = response["Plaintext"]
        if len(plaintext) != DATA_KEY_BYTES:
            raise KmsError("KMS GenerateDataKey returned a key of the wrong length")
        return DataKey(plaintext=plaintext, wrapped=response["CiphertextBlob"],
                       master_key_id=response["KeyId"])

    def decrypt_data_key(self, *, wrapped: bytes, context: Mapping[str, str],
                         master_key_id: str) -> bytes:
        context = check_context(context)
        blob = check_wrapped(wrapped)
        self._require_enabled(master_key_id)
        with self._calling("Decrypt", master_key_id, unwrapping=True):
            response = self._client.decrypt(CiphertextBlob=blob, KeyId=master_key_id,
                                            EncryptionContext=context)
        plaintext = response["Plaintext"]
        if len(plaintext) != DATA_KEY_BYTES:
            raise DecryptionFailed("KMS Decrypt returned something that is not a data key")
        return plaintext

    def rewrap(self, *, wrapped: bytes, context: Mapping[str, str], source_key_id: str,
               destination_key_id: str) -> bytes:
        context = check_context(context)
        blob = check_wrapped(wrapped)
        self._require_enabled(source_key_id)
        self._require_enabled(destination_key_id)
        with self._calling("ReEncrypt", source_key_id, unwrapping=True):
            response = self._client.re_encrypt(
                CiphertextBlob=blob, SourceKeyId=source_key_id,
                SourceEncryptionContext=context, DestinationKeyId=destination_key_id,
                DestinationEncryptionContext=context)
        return response["CiphertextBlob"]

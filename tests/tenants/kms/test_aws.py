"""AwsKmsProvider against moto's server mode over real HTTP.

Skipped only when AWS_ENDPOINT_URL is unset (see conftest.py). moto does not
refuse disabled or pending-deletion keys, so those tests first show that moto
itself still decrypts, then that our provider refuses.
"""

from __future__ import annotations

import pickle
import socket

import pytest

from tenants.kms import (
    DecryptionFailed,
    KeyDisabled,
    KeyNotFound,
    KeyState,
    KmsUnavailable,
    get_provider,
)

CTX = {"tenant_id": "0b5e1f7a-aws", "key_version": "1", "purpose": "face-data"}


def aws(key_id, **options):
    return get_provider("aws", key_id=key_id, **options)


def test_generate_and_decrypt_round_trip(new_kms_key):
    key_id = new_kms_key()
    provider = aws(key_id)
    dk = provider.generate_data_key(context=CTX)
    assert len(dk.plaintext) == 32
    assert dk.plaintext not in dk.wrapped
    assert dk.master_key_id.startswith("arn:aws:kms:") and dk.master_key_id.endswith(key_id)
    assert provider.decrypt_data_key(wrapped=dk.wrapped, context=CTX,
                                     master_key_id=dk.master_key_id) == dk.plaintext
    assert provider.decrypt_data_key(wrapped=dk.wrapped, context=CTX,
                                     master_key_id=key_id) == dk.plaintext
    assert provider.describe(key_id) is KeyState.ENABLED
    assert dk.plaintext.hex() not in repr(dk)
    with pytest.raises(TypeError):
        pickle.dumps(dk)


def test_alias_is_resolved_to_the_key_arn(new_kms_key, kms_admin):
    alias = new_kms_key(alias=True)
    provider = aws(alias)
    dk = provider.generate_data_key(context=CTX)
    arn = provider.resolve_key_id(alias)
    assert arn == dk.master_key_id
    assert kms_admin.describe_key(KeyId=arn)["KeyMetadata"]["Arn"] == arn
    assert provider.decrypt_data_key(wrapped=dk.wrapped, context=CTX,
                                     master_key_id=arn) == dk.plaintext


@pytest.mark.parametrize("context", [
    {**CTX, "tenant_id": "someone-else"},
    {**CTX, "key_version": "2"},
    {**CTX, "extra": "x"},
])
def test_wrong_encryption_context_fails(new_kms_key, context):
    provider = aws(new_kms_key())
    dk = provider.generate_data_key(context=CTX)
    with pytest.raises(DecryptionFailed):
        provider.decrypt_data_key(wrapped=dk.wrapped, context=context,
                                  master_key_id=dk.master_key_id)


def test_tampered_blob_or_other_master_key_fails(new_kms_key):
    provider = aws(new_kms_key())
    other = new_kms_key()
    dk = provider.generate_data_key(context=CTX)
    tampered = bytearray(dk.wrapped)
    tampered[-1] ^= 0x01
    with pytest.raises(DecryptionFailed):
        provider.decrypt_data_key(wrapped=bytes(tampered), context=CTX,
                                  master_key_id=dk.master_key_id)
    with pytest.raises(DecryptionFailed):
        provider.decrypt_data_key(wrapped=dk.wrapped, context=CTX, master_key_id=other)


def test_reencrypt_to_a_second_key(new_kms_key):
    first, second = new_kms_key(), new_kms_key()
    provider = aws(first)
    dk = provider.generate_data_key(context=CTX)
    rewrapped = provider.rewrap(wrapped=dk.wrapped, context=CTX,
                                source_key_id=dk.master_key_id, destination_key_id=second)
    assert rewrapped != dk.wrapped
    assert provider.decrypt_data_key(wrapped=rewrapped, context=CTX,
                                     master_key_id=second) == dk.plaintext
    with pytest.raises(DecryptionFailed):
        provider.decrypt_data_key(wrapped=rewrapped, context=CTX, master_key_id=first)
    with pytest.raises(DecryptionFailed):
        provider.rewrap(wrapped=dk.wrapped, context={**CTX, "tenant_id": "x"},
                        source_key_id=first, destination_key_id=second)


def _moto_still_decrypts(kms_admin, wrapped, key_id):
    """moto ignores key state; proves the refusal below is our code's."""
    out = kms_admin.decrypt(CiphertextBlob=wrapped, KeyId=key_id, EncryptionContext=CTX)
    return len(out["Plaintext"]) == 32


def test_disabled_key_is_refused(new_kms_key, kms_admin):
    key_id, spare = new_kms_key(), new_kms_key()
    provider = aws(key_id, key_state_ttl=0)
    dk = provider.generate_data_key(context=CTX)
    spare_dk = aws(spare).generate_data_key(context=CTX)
    kms_admin.disable_key(KeyId=key_id)
    assert _moto_still_decrypts(kms_admin, dk.wrapped, key_id)

    assert provider.describe(key_id) is KeyState.DISABLED
    with pytest.raises(KeyDisabled):
        provider.generate_data_key(context=CTX)
    with pytest.raises(KeyDisabled):
        provider.decrypt_data_key(wrapped=dk.wrapped, context=CTX, master_key_id=dk.master_key_id)
    with pytest.raises(KeyDisabled):  # as a re-wrap destination
        provider.rewrap(wrapped=spare_dk.wrapped, context=CTX, source_key_id=spare,
                        destination_key_id=key_id)
    kms_admin.enable_key(KeyId=key_id)
    assert provider.decrypt_data_key(wrapped=dk.wrapped, context=CTX,
                                     master_key_id=dk.master_key_id) == dk.plaintext


def test_key_pending_deletion_is_refused(new_kms_key, kms_admin):
    key_id = new_kms_key()
    provider = aws(key_id, key_state_ttl=0)
    dk = provider.generate_data_key(context=CTX)
    kms_admin.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert _moto_still_decrypts(kms_admin, dk.wrapped, key_id)
    assert provider.describe(key_id) is KeyState.PENDING_DELETION
    with pytest.raises(KeyDisabled):
        provider.decrypt_data_key(wrapped=dk.wrapped, context=CTX, master_key_id=dk.master_key_id)
    with pytest.raises(KeyDisabled):
        provider.generate_data_key(context=CTX)


def test_cached_key_state_can_be_forgotten(new_kms_key, kms_admin):
    key_id = new_kms_key()
    provider = aws(key_id, key_state_ttl=3600)
    dk = provider.generate_data_key(context=CTX)  # caches "Enabled"
    kms_admin.disable_key(KeyId=key_id)
    provider.forget_key_state(key_id)
    with pytest.raises(KeyDisabled):
        provider.decrypt_data_key(wrapped=dk.wrapped, context=CTX, master_key_id=key_id)


def test_unknown_key_is_not_found(aws_endpoint):
    provider = aws("alias/faceservice-does-not-exist", key_state_ttl=0)
    with pytest.raises(KeyNotFound):
        provider.generate_data_key(context=CTX)


def test_unreachable_endpoint_is_transient(aws_endpoint):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    provider = aws("alias/anything", endpoint_url=f"http://127.0.0.1:{port}",
                   max_attempts=2, connect_timeout=0.5, read_timeout=0.5)
    with pytest.raises(KmsUnavailable):
        provider.generate_data_key(context=CTX)

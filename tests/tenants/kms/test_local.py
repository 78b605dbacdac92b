"""LocalKmsProvider: the embedded keyring-file KMS."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import stat

import pytest

from tenants.kms import (
    DataKey,
    DecryptionFailed,
    InsecureKeyFile,
    KeyDisabled,
    KeyNotFound,
    KeyState,
    KmsError,
    LocalKmsProvider,
    get_provider,
)

pytestmark = pytest.mark.pure

CTX = {"tenant_id": "7d0c2f8e-0001", "key_version": "1", "purpose": "face-data"}


@pytest.fixture
def keyring(tmp_path):
    return tmp_path / "kms" / "master.keys"


@pytest.fixture
def provider(keyring):
    return LocalKmsProvider(path=keyring)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_round_trip(provider):
    dk = provider.generate_data_key(context=CTX)
    assert isinstance(dk, DataKey)
    assert len(dk.plaintext) == 32
    assert dk.master_key_id == "local-000001" == provider.current_key_id
    assert dk.plaintext not in dk.wrapped
    assert provider.decrypt_data_key(wrapped=dk.wrapped, context=CTX,
                                     master_key_id=dk.master_key_id) == dk.plaintext
    # Context order does not matter (canonical JSON), a fresh key differs.
    reordered = dict(reversed(list(CTX.items())))
    assert provider.decrypt_data_key(wrapped=dk.wrapped, context=reordered,
                                     master_key_id=dk.master_key_id) == dk.plaintext
    assert provider.generate_data_key(context=CTX).plaintext != dk.plaintext


def test_another_process_reads_the_same_keyring(keyring, provider):
    dk = provider.generate_data_key(context=CTX)
    other = get_provider("local", path=keyring)
    assert other.decrypt_data_key(wrapped=dk.wrapped, context=CTX,
                                  master_key_id=dk.master_key_id) == dk.plaintext


@pytest.mark.parametrize("context", [
    {**CTX, "tenant_id": "7d0c2f8e-0002"},   # another tenant
    {**CTX, "key_version": "2"},
    {**CTX, "extra": "x"},
    {k: v for k, v in CTX.items() if k != "purpose"},
    {"tenant_id7d0c2f8e-0001": "", "key_version": "1", "purpose": "face-data"},
])
def test_wrong_context_fails(provider, context):
    dk = provider.generate_data_key(context=CTX)
    with pytest.raises(DecryptionFailed):
        provider.decrypt_data_key(wrapped=dk.wrapped, context=context,
                                  master_key_id=dk.master_key_id)


def test_empty_or_non_string_context_is_refused(provider):
    with pytest.raises(KmsError):
        provider.generate_data_key(context={})
    with pytest.raises(KmsError):
        provider.generate_data_key(context={"tenant_id": 5})


def test_every_single_bit_flip_of_the_wrapped_key_fails(provider):
    dk = provider.generate_data_key(context=CTX)
    for i in range(len(dk.wrapped)):
        for bit in range(8):
            tampered = bytearray(dk.wrapped)
            tampered[i] ^= 1 << bit
            with pytest.raises(DecryptionFailed):
                provider.decrypt_data_key(wrapped=bytes(tampered), context=CTX,
                                          master_key_id=dk.master_key_id)
    for bad in (dk.wrapped[:-1], dk.wrapped + b"\0", b"", dk.wrapped[:3]):
        with pytest.raises(DecryptionFailed):
            provider.decrypt_data_key(wrapped=bad, context=CTX, master_key_id=dk.master_key_id)


def test_keyring_is_created_0600_in_a_0700_folder_even_with_a_loose_umask(keyring):
    old = os.umask(0)
    try:
        LocalKmsProvider(path=keyring).generate_data_key(context=CTX)
    finally:
        os.umask(old)
    assert mode(keyring) == 0o600
    assert mode(keyring.parent) == 0o700
    assert keyring.read_text().startswith("# faceservice-local-kms-keyring v1\n")
    assert not [p for p in keyring.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("loose_mode", [0o644, 0o640, 0o604, 0o660])
def test_group_or_world_readable_keyring_is_refused(keyring, provider, loose_mode):
    dk = provider.generate_data_key(context=CTX)
    os.chmod(keyring, loose_mode)
    with pytest.raises(InsecureKeyFile):
        LocalKmsProvider(path=keyring).generate_data_key(context=CTX)
    # The provider that already loaded it notices the chmod too.
    with pytest.raises(InsecureKeyFile):
        provider.decrypt_data_key(wrapped=dk.wrapped, context=CTX, master_key_id=dk.master_key_id)
    os.chmod(keyring, 0o600)
    assert provider.decrypt_data_key(wrapped=dk.wrapped, context=CTX,
                                     master_key_id=dk.master_key_id) == dk.plaintext


def test_symlinked_keyring_and_writable_folder_are_refused(tmp_path, keyring, provider):
    provider.generate_data_key(context=CTX)
    link = tmp_path / "kms" / "link.keys"
    link.symlink_to(keyring)
    with pytest.raises(InsecureKeyFile):
        LocalKmsProvider(path=link).generate_data_key(context=CTX)
    os.chmod(keyring.parent, 0o777)  # noqa: S103 - the unsafe folder under test
    try:
        with pytest.raises(InsecureKeyFile):
            LocalKmsProvider(path=keyring).generate_data_key(context=CTX)
    finally:
        os.chmod(keyring.parent, 0o700)


def test_missing_keyring_is_not_recreated_behind_our_back(keyring, provider):
    provider.generate_data_key(context=CTX)
    keyring.unlink()
    with pytest.raises(KmsError):
        provider.generate_data_key(context=CTX)
    assert not keyring.exists()
    with pytest.raises(KeyNotFound):
        _ = LocalKmsProvider(path=keyring.with_name("absent.keys"), create=False).current_key_id


def test_two_master_keys_and_rewrap(keyring, provider):
    old = provider.generate_data_key(context=CTX)
    new_id = provider.create_master_key()
    assert new_id == "local-000002" == provider.current_key_id
    assert provider.key_ids() == ["local-000001", "local-000002"]
    # Other processes see the rotation.
    assert LocalKmsProvider(path=keyring).current_key_id == new_id
    # New data keys use the new master key; old ones still open.
    assert provider.generate_data_key(context=CTX).master_key_id == new_id
    assert provider.decrypt_data_key(wrapped=old.wrapped, context=CTX,
                                     master_key_id="local-000001") == old.plaintext

    rewrapped = provider.rewrap(wrapped=old.wrapped, context=CTX,
                                source_key_id="local-000001", destination_key_id=new_id)
    assert rewrapped != old.wrapped
    assert provider.decrypt_data_key(wrapped=rewrapped, context=CTX,
                                     master_key_id=new_id) == old.plaintext
    # The re-wrapped blob is bound to the new key and to the context.
    with pytest.raises(DecryptionFailed):
        provider.decrypt_data_key(wrapped=rewrapped, context=CTX, master_key_id="local-000001")
    with pytest.raises(DecryptionFailed):
        provider.decrypt_data_key(wrapped=old.wrapped, context=CTX, master_key_id=new_id)
    with pytest.raises(DecryptionFailed):
        provider.rewrap(wrapped=old.wrapped, context={**CTX, "tenant_id": "other"},
                        source_key_id="local-000001", destination_key_id=new_id)
    # Retire the old master key: its blobs no longer open, the re-wrapped one does.
    provider.set_key_state("local-000001", KeyState.DISABLED)
    assert provider.describe("local-000001") is KeyState.DISABLED
    with pytest.raises(KeyDisabled):
        provider.decrypt_data_key(wrapped=old.wrapped, context=CTX, master_key_id="local-000001")
    assert provider.decrypt_data_key(wrapped=rewrapped, context=CTX,
                                     master_key_id=new_id) == old.plaintext


def test_pinned_and_disabled_current_key(keyring, provider):
    provider.generate_data_key(context=CTX)
    provider.create_master_key()
    pinned = LocalKmsProvider(path=keyring, key_id="local-000001")
    assert pinned.generate_data_key(context=CTX).master_key_id == "local-000001"
    provider.set_key_state("local-000002", KeyState.DISABLED)
    with pytest.raises(KeyDisabled):
        provider.generate_data_key(context=CTX)
    provider.set_key_state("local-000002", KeyState.ENABLED)
    assert provider.describe("local-000002") is KeyState.ENABLED
    with pytest.raises(KeyNotFound):
        provider.describe("local-000009")


def _race(path, barrier, queue):
    barrier.wait()
    provider = LocalKmsProvider(path=path)
    dk = provider.generate_data_key(context=CTX)
    queue.put((dk.master_key_id, dk.wrapped, dk.plaintext))


def test_processes_racing_on_first_use_agree_on_one_master_key(keyring):
    ctx = multiprocessing.get_context("fork")
    n = 8
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(keyring, barrier, queue)) for _ in range(n)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=30) for _ in range(n)]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    lines = [line for line in keyring.read_text().splitlines() if not line.startswith("#")]
    assert len(lines) == 1
    reader = LocalKmsProvider(path=keyring)
    for key_id, wrapped, plaintext in results:
        assert reader.decrypt_data_key(wrapped=wrapped, context=CTX,
                                       master_key_id=key_id) == plaintext


def test_data_key_is_never_shown_or_pickled(provider):
    dk = provider.generate_data_key(context=CTX)
    text = repr(dk) + str(dk)
    assert dk.plaintext.hex() not in text and repr(dk.plaintext) not in text
    with pytest.raises(TypeError):
        pickle.dumps(dk)
    with pytest.raises(TypeError):
        pickle.dumps(provider)


def test_unknown_provider_name():
    with pytest.raises(ValueError):
        get_provider("vault")

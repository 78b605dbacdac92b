"""faceservice.sealing: the one sealed-blob format (pure, no database)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from faceservice import sealing
from faceservice.sealing import SealError, associated_data, open_sealed, seal, sealed_size

pytestmark = pytest.mark.pure

KEY = hashlib.sha256(b"test key").digest()
OTHER_KEY = hashlib.sha256(b"another key").digest()
AAD = associated_data("purpose", "tenant-a", "row-1", 3)


def test_round_trip_and_layout():
    blob = seal(KEY, b"secret payload", associated_data=AAD)
    assert len(blob) == sealed_size(len(b"secret payload")) == 1 + 12 + 14 + 16
    assert blob[0] == sealing.FORMAT_VERSION
    assert b"secret payload" not in blob
    assert open_sealed(KEY, blob, associated_data=AAD) == b"secret payload"
    assert seal(KEY, b"secret payload", associated_data=AAD) != blob  # a fresh nonce each time


def test_empty_plaintext_round_trips():
    blob = seal(KEY, b"", associated_data=AAD)
    assert len(blob) == sealed_size(0)
    assert open_sealed(KEY, blob, associated_data=AAD) == b""


def test_the_version_byte_is_bound_into_the_associated_data():
    blob = seal(KEY, b"x", associated_data=AAD)
    nonce, body = blob[1:13], blob[13:]
    assert AESGCM(KEY).decrypt(nonce, body, blob[:1] + AAD) == b"x"
    with pytest.raises(Exception):  # noqa: B017 - AES-GCM's InvalidTag: the version is part of what is bound
        AESGCM(KEY).decrypt(nonce, body, AAD)


def test_wrong_key_or_associated_data_fails():
    blob = seal(KEY, b"x", associated_data=AAD)
    with pytest.raises(SealError):
        open_sealed(OTHER_KEY, blob, associated_data=AAD)
    with pytest.raises(SealError):
        open_sealed(KEY, blob, associated_data=associated_data("purpose", "tenant-b", "row-1", 3))
    with pytest.raises(SealError):
        open_sealed(KEY, blob, associated_data=b"")


def test_every_bit_flip_fails():
    blob = seal(KEY, b"payload", associated_data=AAD)
    for index in range(len(blob)):
        for bit in range(8):
            tampered = bytearray(blob)
            tampered[index] ^= 1 << bit
            with pytest.raises(SealError):
                open_sealed(KEY, bytes(tampered), associated_data=AAD)


@pytest.mark.parametrize("bad", [b"", b"\x01", b"\x01" + bytes(27), b"\x02" + bytes(40)])
def test_truncated_or_unknown_version_fails(bad):
    with pytest.raises(SealError):
        open_sealed(KEY, bad, associated_data=AAD)


def test_keys_must_be_32_bytes():
    with pytest.raises(ValueError):
        seal(b"short", b"x", associated_data=AAD)
    with pytest.raises(ValueError):
        open_sealed(KEY[:16], seal(KEY, b"x", associated_data=AAD), associated_data=AAD)


def test_associated_data_is_unambiguous():
    assert associated_data("ab", "c") != associated_data("a", "bc")
    assert associated_data("a", "") != associated_data("a")
    assert associated_data(1) == (8).to_bytes(4, "big") + (1).to_bytes(8, "big")
    assert associated_data("é", b"\x00") == b"\x00\x00\x00\x02\xc3\xa9\x00\x00\x00\x01\x00"
    assert associated_data("1") != associated_data(1)


@pytest.mark.parametrize("part", [True, -1, 2**64, 1.5, None])
def test_associated_data_refuses_what_it_cannot_encode_unambiguously(part):
    with pytest.raises((TypeError, ValueError)):
        associated_data(part)


def test_derive_key_separates_purposes():
    a = sealing.derive_key(KEY, salt=b"purpose-a", info=b"")
    assert len(a) == 32 and a != KEY
    assert sealing.derive_key(KEY, salt=b"purpose-a", info=b"") == a
    assert sealing.derive_key(KEY, salt=b"purpose-b", info=b"") != a
    assert sealing.derive_key(KEY, salt=b"purpose-a", info=associated_data(2)) != a

"""One authenticated-encryption format for everything the service seals.

Embeddings, inline images, webhook signing secrets and the embedded KMS's
wrapped data keys are all sealed here, so there is one format to review::

    version (1 byte) || nonce (12 random bytes) || AES-256-GCM ciphertext || tag (16)

The associated data is required at every call (a blob must be bound to where
it belongs: tenant, row, key version...) and the version byte is bound into it
too, so a blob cannot be re-labelled as another version. Build it with
:func:`associated_data`, whose length prefixes make it unambiguous.

Key separation stays with the callers, in one style: each purpose derives its
own key with :func:`derive_key` (HKDF-SHA256, a salt naming the purpose), from
the secret it belongs with (a tenant's data key, the webhook key); a KMS
master key, which has one use, seals directly. Pure Python + cryptography.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["FORMAT_VERSION", "SealError", "associated_data", "derive_key", "open_sealed", "seal",
           "sealed_size"]

FORMAT_VERSION = 1
_VERSION_BYTE = bytes([FORMAT_VERSION])
_NONCE_BYTES = 12  # random 96-bit nonces: rotate a key long before 2**32 seals under it
_TAG_BYTES = 16
KEY_BYTES = 32  # AES-256


class SealError(Exception):
    """A blob did not open: wrong key or associated data, tampered, truncated or unknown version."""


def associated_data(*parts: str | bytes | int) -> bytes:
    """Each part as a 4-byte big-endian length and its bytes, so ("ab", "c") and
    ("a", "bc") differ. str is UTF-8; int is 8 bytes big-endian (0 <= n < 2**64)."""
    return b"".join(len(p).to_bytes(4, "big") + p for p in map(_part_bytes, parts))


def _part_bytes(value: str | bytes | int) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < 2**64:
            raise ValueError("integer parts of associated data must be in [0, 2**64)")
        return value.to_bytes(8, "big")
    raise TypeError(f"associated data parts are str, bytes or int, not {type(value).__name__}")


def derive_key(secret: bytes, *, salt: bytes, info: bytes) -> bytes:
    """A 32-byte key for one purpose: HKDF-SHA256 (RFC 5869) of ``secret``.

    ``salt`` names the purpose (distinct purposes never share a key), ``info``
    what the key is further bound to (e.g. :func:`associated_data` of a key version)."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=info).derive(bytes(secret))


def seal(key: bytes, plaintext: bytes, *, associated_data: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext`` under a 32-byte ``key``, bound to ``associated_data``."""
    nonce = os.urandom(_NONCE_BYTES)
    return _VERSION_BYTE + nonce + _cipher(key).encrypt(nonce, bytes(plaintext), _VERSION_BYTE + associated_data)


def open_sealed(key: bytes, blob: bytes, *, associated_data: bytes) -> bytes:
    """The plaintext of a :func:`seal` blob; :class:`SealError` unless the key,
    the associated data and every byte of the blob are the ones it was sealed with."""
    return opener(key)(blob, associated_data=associated_data)


def opener(key: bytes) -> Callable[..., bytes]:
    """:func:`open_sealed` for many blobs under one key, the cipher set up once
    (a search opens every candidate's embedding under the same key)."""
    cipher = _cipher(key)

    def open_blob(blob: bytes, *, associated_data: bytes) -> bytes:
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise TypeError("a sealed blob is bytes")
        blob = bytes(blob)
        if len(blob) < sealed_size(0) or blob[:1] != _VERSION_BYTE:
            raise SealError("not a sealed blob (unknown version or truncated)")
        try:
            return cipher.decrypt(blob[1:1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES:],
                                  _VERSION_BYTE + associated_data)
        except InvalidTag:
            raise SealError("sealed blob did not verify (wrong key or associated data, or tampered)") from None

    return open_blob


def sealed_size(plaintext_size: int) -> int:
    """Size in bytes of the blob that seals ``plaintext_size`` bytes."""
    return 1 + _NONCE_BYTES + plaintext_size + _TAG_BYTES


def _cipher(key: bytes) -> AESGCM:
    if not isinstance(key, (bytes, bytearray, memoryview)) or len(key) != KEY_BYTES:
        raise ValueError(f"a sealing key is {KEY_BYTES} bytes (AES-256)")
    return AESGCM(bytes(key))

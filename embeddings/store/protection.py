"""Protection of face embeddings under a tenant's data key (DEK).

Two things are derived from a tenant's 32-byte DEK (per key version):

1. The *canonical* embedding of each face is sealed with AES-256-GCM
   (:func:`encrypt_embedding`, the one format of faceservice/sealing.py). It
   is what exact re-ranking and re-keying read.
2. The *searchable* vector is a protected template y = R·x
   (:func:`projection_matrix`, :func:`project`), R a secret orthogonal matrix.
   Cosine similarity and inner product are preserved, so pgvector HNSW works
   unchanged inside a tenant, while templates from different tenants (or raw
   embeddings from any other system) do not match. It is renewable: re-keying
   maps y to R_new·R_oldᵀ·y (:func:`reproject`) without touching the images.
   It is *not* encryption: see docs/SECURITY.md.

Key separation: the DEK is never used directly. The sealing key, the
fingerprint and the projection seed are derived from it with HKDF-SHA256
(sealing.derive_key) under distinct salts, so the uses cannot interact.

A sealed embedding's plaintext is the float32 little-endian vector; its
associated data binds a purpose label, tenant id, face id, key version and
model id, so a blob moved to another face, tenant, version or model does not open.

Pure Python + NumPy + cryptography; no Django.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from faceservice import sealing
from faceservice.secret_cache import SecretCache

__all__ = [
    "FORMAT_VERSION",
    "EmbeddingIntegrityError",
    "clear_projection_cache",
    "configure_projection_cache",
    "decrypt_embedding",
    "decrypt_embeddings",
    "dek_fingerprint",
    "encrypt_embedding",
    "encrypted_size",
    "project",
    "projection_matrix",
    "reproject",
]

FORMAT_VERSION = sealing.FORMAT_VERSION
_DEK_BYTES = 32
_MAX_DIMENSION = 8192

_ENCRYPTION_SALT = b"faceservice/embedding-encryption-key/v2"
_AAD_LABEL = "faceservice/embedding"
_FINGERPRINT_SALT = b"faceservice/dek-fingerprint/v2"
_PROJECTION_SALT = b"faceservice/projection-salt/v1"
_PROJECTION_LABEL = b"faceservice/projection-matrix/v1"


class EmbeddingIntegrityError(Exception):
    """An encrypted embedding did not verify: tampered, truncated, or opened with
    the wrong key, tenant, face, key version or model. No vector is returned."""


# --- helpers --------------------------------------------------------------------------


def _text(value: object, name: str) -> str:
    if isinstance(value, uuid.UUID):
        value = str(value)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str (or UUID), not {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    return value


def _key_version(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("key_version must be an int")
    if not 0 <= value < 2**63:
        raise ValueError("key_version out of range")
    return value


def _dek(value: object) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError("dek must be bytes")
    value = bytes(value)
    if len(value) != _DEK_BYTES:
        raise ValueError(f"dek must be {_DEK_BYTES} bytes (AES-256)")
    return value


def dek_fingerprint(dek: bytes) -> str:
    """A one-way 128-bit identifier of a DEK (hex), safe to log or use as a
    cache key; it reveals nothing about the key."""
    return sealing.derive_key(_dek(dek), salt=_FINGERPRINT_SALT, info=b"")[:16].hex()


def _sealing_key(dek: bytes) -> bytes:
    return sealing.derive_key(_dek(dek), salt=_ENCRYPTION_SALT, info=b"")


def _aad(tenant_id: object, face_id: object, key_version: object, model_id: object) -> bytes:
    return sealing.associated_data(_AAD_LABEL, _text(tenant_id, "tenant_id"), _text(face_id, "face_id"),
                                   _key_version(key_version), _text(model_id, "model_id"))


def encrypted_size(dimension: int) -> int:
    """Size in bytes of an encrypted embedding of ``dimension`` floats."""
    return sealing.sealed_size(4 * dimension)


# --- canonical embedding: AES-256-GCM ---------------------------------------------------


def encrypt_embedding(*, dek: bytes, embedding: np.ndarray, tenant_id: str, face_id: str,
                      key_version: int, model_id: str) -> bytes:
    """Encrypt one embedding (1-D, finite) as float32 little-endian under ``dek``,
    bound to tenant, face, key version and model."""
    vector = np.asarray(embedding)
    if vector.ndim != 1 or not 0 < vector.shape[0] <= _MAX_DIMENSION:
        raise ValueError("embedding must be a non-empty 1-D vector")
    if not np.issubdtype(vector.dtype, np.number) or np.iscomplexobj(vector):
        raise TypeError("embedding must be real numbers")
    payload = np.ascontiguousarray(vector, dtype="<f4")
    if not np.isfinite(payload).all():
        raise ValueError("embedding contains NaN or infinity")
    return sealing.seal(_sealing_key(dek), payload.tobytes(),
                        associated_data=_aad(tenant_id, face_id, key_version, model_id))


def decrypt_embedding(*, dek: bytes, ciphertext: bytes, tenant_id: str, face_id: str,
                      key_version: int, model_id: str,
                      dimension: int | None = None) -> np.ndarray:
    """Decrypt what :func:`encrypt_embedding` made; the same tenant, face, key
    version, model and key must be given. Returns a new float32 vector.

    Raises :class:`EmbeddingIntegrityError` on any mismatch or tampering (and
    if ``dimension`` is given and does not match)."""
    return decrypt_embeddings(dek=dek, ciphertexts=[ciphertext], face_ids=[face_id], tenant_id=tenant_id,
                              key_version=key_version, model_id=model_id, dimension=dimension)[0]


def decrypt_embeddings(*, dek: bytes, ciphertexts: list[bytes], face_ids: list[str], tenant_id: str,
                       key_version: int, model_id: str, dimension: int | None = None) -> list[np.ndarray]:
    """:func:`decrypt_embedding` for several faces under one key (a search's
    candidates): the key is derived once, not once per face."""
    open_blob = sealing.opener(_sealing_key(dek))
    return [_open(open_blob, ciphertext, _aad(tenant_id, face_id, key_version, model_id), dimension)
            for ciphertext, face_id in zip(ciphertexts, face_ids, strict=True)]


def _open(open_blob: Callable[..., bytes], ciphertext: bytes, aad: bytes, dimension: int | None) -> np.ndarray:
    if not isinstance(ciphertext, (bytes, bytearray, memoryview)):
        raise TypeError("ciphertext must be bytes")
    try:
        payload = open_blob(ciphertext, associated_data=aad)
    except sealing.SealError:
        raise EmbeddingIntegrityError(
            "encrypted embedding failed authentication (tampered, truncated, or wrong key / "
            "tenant / face / key version / model)") from None
    if not payload or len(payload) % 4:
        raise EmbeddingIntegrityError("decrypted payload is not a float32 vector")
    vector = np.frombuffer(payload, dtype="<f4").astype(np.float32)  # native, writable copy
    if dimension is not None and vector.shape[0] != dimension:
        raise EmbeddingIntegrityError(
            f"embedding has dimension {vector.shape[0]}, expected {dimension}")
    return vector


# --- protected template: secret orthogonal projection -------------------------------------


def _projection_seed(dek: bytes, key_version: int, dimension: int, model_id: str) -> bytes:
    # Pinned by test_golden_values_pin_the_derivation: these bytes must never
    # change, or every stored template stops matching.
    info = sealing.associated_data(_PROJECTION_LABEL, _key_version(key_version),
                                   _text(model_id, "model_id"), dimension.to_bytes(4, "big"))
    return sealing.derive_key(dek, salt=_PROJECTION_SALT, info=info)


def _gaussian_matrix(seed: bytes, dimension: int) -> np.ndarray:
    """A d×d matrix of independent standard normals, fully determined by ``seed``.

    Why not ``numpy.random.Generator(PCG64(seed)).standard_normal``: NumPy does
    not promise that Generator's distribution methods give the same numbers
    across NumPy versions ("Generator does not provide a version compatibility
    guarantee"). If an upgrade changed them, every tenant's R would silently
    change and every stored template would stop matching. So the random bits
    come from AES-256-CTR keyed by the seed (a CSPRNG whose output is fixed by
    definition, using all 256 bits of the seed), and the normals from the
    Box-Muller transform written out here.
    """
    count = dimension * dimension
    pairs = (count + 1) // 2
    stream = Cipher(algorithms.AES(seed), modes.CTR(bytes(16))).encryptor()
    words = np.frombuffer(stream.update(bytes(16 * pairs)) + stream.finalize(), dtype="<u8")
    # 53-bit uniforms in (0, 1]: never 0, so log() is finite.
    uniform = ((words >> np.uint64(11)).astype(np.float64) + 1.0) * (1.0 / 2.0**53)
    u1, u2 = uniform[:pairs], uniform[pairs:]
    radius = np.sqrt(-2.0 * np.log(u1))
    angle = (2.0 * math.pi) * u2
    normals = np.empty(2 * pairs, dtype=np.float64)
    normals[0::2] = radius * np.cos(angle)
    normals[1::2] = radius * np.sin(angle)
    return normals[:count].reshape(dimension, dimension)


def _orthogonal_from_seed(seed: bytes, dimension: int) -> np.ndarray:
    """Haar-distributed orthogonal matrix: QR of a Gaussian matrix with the signs
    of R's diagonal moved into Q (Mezzadri, 2007). Without the sign fix Q is
    not uniformly distributed (and depends on LAPACK's sign convention)."""
    q, r = np.linalg.qr(_gaussian_matrix(seed, dimension))
    signs = np.where(np.diagonal(r) < 0.0, -1.0, 1.0)
    q *= signs[np.newaxis, :]
    matrix = np.ascontiguousarray(q, dtype=np.float32)
    matrix.setflags(write=False)
    return matrix


# Projection matrices keyed by (DEK fingerprint, key version, model id, dimension).
# The matrices are themselves secret (with R a template can be inverted), so they
# follow the secret-cache rules (bounded, expiring, never pickled or shown, emptied
# after fork); the DEK itself is never part of the key. Entries expire so that a
# shredded tenant's R does not outlive its DEK in a worker for long.
_matrix_cache: SecretCache[tuple[str, int, str, int], np.ndarray] = SecretCache(
    label="projection matrix cache", contents="secret matrices", max_entries=64, ttl_seconds=600.0)


def configure_projection_cache(*, max_entries: int | None = None,
                               ttl_seconds: float | None = None) -> None:
    """Resize / re-time the process-wide projection matrix cache (0 disables it).
    At d=512 each entry is 1 MiB."""
    _matrix_cache.configure(max_entries=max_entries, ttl_seconds=ttl_seconds)


def clear_projection_cache() -> None:
    """Forget every cached projection matrix in this process."""
    _matrix_cache.clear()


def projection_matrix(*, dek: bytes, key_version: int, dimension: int,
                      model_id: str) -> np.ndarray:
    """The tenant's secret orthogonal matrix R (float32, d×d, read-only) for this
    key version and model: HKDF-SHA256(DEK; info = purpose, key version, model
    id, dimension) → 32-byte seed → AES-CTR bit stream → Gaussian d×d → QR with
    sign fix. Deterministic for a given DEK + version + model + dimension;
    cached per process and built once per key at a time (about 40 ms at d=512)."""
    dek = _dek(dek)
    key_version = _key_version(key_version)
    if isinstance(dimension, bool) or not isinstance(dimension, int) \
            or not 2 <= dimension <= _MAX_DIMENSION:
        raise ValueError(f"dimension must be an int in [2, {_MAX_DIMENSION}]")
    model = _text(model_id, "model_id")
    cache_key = (dek_fingerprint(dek), key_version, model, dimension)
    return _matrix_cache.get_or_load(
        cache_key,
        lambda: _orthogonal_from_seed(_projection_seed(dek, key_version, dimension, model), dimension))


def _square(matrix: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float32)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError("projection matrix must be square")
    return m


def _vectors(x: np.ndarray, dimension: int, name: str) -> np.ndarray:
    v = np.asarray(x, dtype=np.float32)
    if v.ndim not in (1, 2) or v.shape[-1] != dimension:
        raise ValueError(f"{name} must have shape ({dimension},) or (n, {dimension})")
    return v


def project(matrix: np.ndarray, x: np.ndarray) -> np.ndarray:
    """y = R·x for one vector (d,) or each row of a batch (n, d); float32."""
    r = _square(matrix)
    v = _vectors(x, r.shape[0], "x")
    if v.ndim == 1:
        return r @ v
    return v @ r.T


def reproject(old_matrix: np.ndarray, new_matrix: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Re-key templates: R_new·R_oldᵀ·y for one vector or each row of a batch.
    Equals projecting the original embedding under R_new (to float32 rounding)."""
    old = _square(old_matrix)
    new = _square(new_matrix)
    if old.shape != new.shape:
        raise ValueError("old and new projection matrices differ in dimension")
    v = _vectors(y, old.shape[0], "y")
    if v.ndim == 1:
        return new @ (old.T @ v)
    return (v @ old) @ new.T

"""embeddings.store.protection: AES-GCM sealed embeddings and the orthogonal projection."""

from __future__ import annotations

import hashlib
import uuid

import numpy as np
import pytest

from embeddings.store import protection as p
from embeddings.store.protection import (
    EmbeddingIntegrityError,
    decrypt_embedding,
    decrypt_embeddings,
    encrypt_embedding,
    project,
    projection_matrix,
    reproject,
)

pytestmark = pytest.mark.pure

D = 512


def dek(label: str) -> bytes:
    """Fixed test keys, so the statistical tests are deterministic."""
    return hashlib.sha256(label.encode()).digest()


FIELDS = {"tenant_id": "tenant-a", "face_id": "face-0001", "key_version": 3,
          "model_id": "buffalo_l/w600k_r50"}


def unit(rng, n, d):
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def vector():
    return np.random.default_rng(1).standard_normal(D).astype(np.float32)


@pytest.fixture(autouse=True)
def _fresh_cache():
    p.clear_projection_cache()
    yield
    p.clear_projection_cache()


# --- encryption -------------------------------------------------------------------------


def test_round_trip(vector):
    blob = encrypt_embedding(dek=dek("a"), embedding=vector, **FIELDS)
    assert blob[0] == p.FORMAT_VERSION
    assert len(blob) == p.encrypted_size(D) == 1 + 12 + 4 * D + 16
    assert vector.astype("<f4").tobytes() not in blob
    out = decrypt_embedding(dek=dek("a"), ciphertext=blob, **FIELDS)
    assert out.dtype == np.float32 and out.shape == (D,)
    assert np.array_equal(out, vector)
    out[0] = 42.0  # the result is a private, writable copy
    # A fresh nonce each time.
    assert encrypt_embedding(dek=dek("a"), embedding=vector, **FIELDS) != blob


def test_float64_input_is_stored_as_float32(vector):
    blob = encrypt_embedding(dek=dek("a"), embedding=vector.astype(np.float64), **FIELDS)
    assert np.array_equal(decrypt_embedding(dek=dek("a"), ciphertext=blob, **FIELDS), vector)


def test_uuid_ids_equal_their_string_form(vector):
    tenant = uuid.uuid4()
    fields = {**FIELDS, "tenant_id": tenant}
    blob = encrypt_embedding(dek=dek("a"), embedding=vector, **fields)
    out = decrypt_embedding(dek=dek("a"), ciphertext=blob, **{**FIELDS, "tenant_id": str(tenant)})
    assert np.array_equal(out, vector)


def _flip(blob: bytes, index: int, bit: int = 0) -> bytes:
    b = bytearray(blob)
    b[index] ^= 1 << bit
    return bytes(b)


def test_any_bit_flip_in_nonce_ciphertext_or_tag_fails(vector):
    blob = encrypt_embedding(dek=dek("a"), embedding=vector, **FIELDS)
    positions = list(range(0, 13)) + list(range(13, len(blob), 37)) + list(range(len(blob) - 16,
                                                                              len(blob)))
    for index in positions:
        for bit in (0, 7):
            with pytest.raises(EmbeddingIntegrityError):
                decrypt_embedding(dek=dek("a"), ciphertext=_flip(blob, index, bit), **FIELDS)
    for bad in (blob[:-1], blob + b"\0", blob[:20], b"", b"\x02" + blob[1:]):
        with pytest.raises(EmbeddingIntegrityError):
            decrypt_embedding(dek=dek("a"), ciphertext=bad, **FIELDS)


@pytest.mark.parametrize("change", [
    {"tenant_id": "tenant-b"},
    {"face_id": "face-0002"},
    {"key_version": 4},
    {"model_id": "antelopev2/glintr100"},
    # Length prefixes: moving a character between fields is a different binding.
    {"tenant_id": "tenant-af", "face_id": "ace-0001"},
])
def test_any_changed_binding_fails(vector, change):
    blob = encrypt_embedding(dek=dek("a"), embedding=vector, **FIELDS)
    with pytest.raises(EmbeddingIntegrityError):
        decrypt_embedding(dek=dek("a"), ciphertext=blob, **{**FIELDS, **change})


def test_wrong_key_or_dimension_fails(vector):
    blob = encrypt_embedding(dek=dek("a"), embedding=vector, **FIELDS)
    with pytest.raises(EmbeddingIntegrityError):
        decrypt_embedding(dek=dek("b"), ciphertext=blob, **FIELDS)
    with pytest.raises(EmbeddingIntegrityError):
        decrypt_embedding(dek=dek("a"), ciphertext=blob, dimension=128, **FIELDS)
    assert decrypt_embedding(dek=dek("a"), ciphertext=blob, dimension=D, **FIELDS).shape == (D,)


def test_bad_inputs_are_refused(vector):
    with pytest.raises(ValueError):
        encrypt_embedding(dek=b"short", embedding=vector, **FIELDS)
    with pytest.raises(ValueError):
        encrypt_embedding(dek=dek("a"), embedding=np.array([1.0, np.nan]), **FIELDS)
    with pytest.raises(ValueError):
        encrypt_embedding(dek=dek("a"), embedding=np.array([1.0, np.inf]), **FIELDS)
    with pytest.raises(ValueError):
        encrypt_embedding(dek=dek("a"), embedding=vector.reshape(2, -1), **FIELDS)
    with pytest.raises(ValueError):
        encrypt_embedding(dek=dek("a"), embedding=vector, **{**FIELDS, "face_id": ""})
    with pytest.raises(TypeError):
        encrypt_embedding(dek=dek("a"), embedding=vector, **{**FIELDS, "key_version": "3"})
    with pytest.raises(TypeError):
        encrypt_embedding(dek=dek("a"), embedding=vector, **{**FIELDS, "face_id": 7})


# --- projection -----------------------------------------------------------------------


def R(label="a", version=1, d=D, model="buffalo_l/w600k_r50"):
    return projection_matrix(dek=dek(label), key_version=version, dimension=d, model_id=model)


def test_batch_decrypt_equals_one_by_one_and_checks_each_binding(vector):
    key = dek("batch")
    rows = [(f"face-{i}", vector * (i + 1)) for i in range(4)]
    sealed = [encrypt_embedding(dek=key, embedding=v, **{**FIELDS, "face_id": face}) for face, v in rows]
    common = {k: v for k, v in FIELDS.items() if k != "face_id"}
    opened = decrypt_embeddings(dek=key, ciphertexts=sealed, face_ids=[face for face, _ in rows], **common)
    for (face, v), batch, one in zip(rows, opened, sealed, strict=True):
        assert np.array_equal(batch, v)
        assert np.array_equal(batch, decrypt_embedding(dek=key, ciphertext=one, **{**FIELDS, "face_id": face}))
    swapped = [rows[1][0], rows[0][0], rows[2][0], rows[3][0]]  # two ciphertexts under each other's face ids
    with pytest.raises(EmbeddingIntegrityError):
        decrypt_embeddings(dek=key, ciphertexts=sealed, face_ids=swapped, **common)
    tampered = [*sealed[:3], sealed[3][:-1] + bytes([sealed[3][-1] ^ 1])]
    with pytest.raises(EmbeddingIntegrityError):
        decrypt_embeddings(dek=key, ciphertexts=tampered, face_ids=[face for face, _ in rows], **common)


def test_projection_is_orthogonal_float32_and_read_only():
    m = R()
    assert m.shape == (D, D) and m.dtype == np.float32
    m64 = m.astype(np.float64)
    assert np.abs(m64.T @ m64 - np.eye(D)).max() < 1e-6
    assert np.abs(m64 @ m64.T - np.eye(D)).max() < 1e-6
    with pytest.raises(ValueError):
        m[0, 0] = 1.0


def test_projection_is_deterministic_for_key_and_version():
    first = R().copy()
    p.clear_projection_cache()
    assert np.array_equal(R(), first)
    assert R() is R()  # cached


@pytest.mark.parametrize("other", [
    {"label": "b"}, {"version": 2}, {"model": "antelopev2/glintr100"},
])
def test_projection_differs_across_keys_versions_and_models(other):
    a, b = R(), R(**other)
    assert not np.allclose(a, b)
    # Not merely different: unrelated. Entries of Aᵀ·B look like a random
    # orthogonal matrix's (about 1/sqrt(d)), not like the identity.
    cross = a.astype(np.float64).T @ b.astype(np.float64)
    assert abs(np.trace(cross)) / D < 0.2


def test_dimension_is_bound_into_the_derivation():
    small, large = R(d=64), R(d=65)
    assert not np.allclose(small, large[:64, :64], atol=1e-3)


def test_golden_values_pin_the_derivation():
    """Stored templates depend on R never changing for a given key: this pins
    HKDF → AES-CTR → Box-Muller → QR + sign fix (tolerance covers LAPACK builds)."""
    key = bytes(range(32))
    seed = p._projection_seed(key, 1, 8, "golden-model")
    assert seed.hex() == "792e3a002d4707a4d590a9344333988b6321fac6da6b1d2dc801596569ed758f"
    gauss = p._gaussian_matrix(seed, 8)
    assert np.allclose(gauss[0, :4], [-0.3508938439471171, 1.3099816593181273,
                                      -0.2354666985316431, 2.137528538461547], atol=1e-12)
    m = projection_matrix(dek=key, key_version=1, dimension=8, model_id="golden-model")
    assert np.allclose(m[0], [-0.1265059858560562, 0.43966713547706604, -0.3450477421283722,
                              0.5311410427093506, 0.3514508306980133, -0.08854781091213226,
                              -0.056128744035959244, -0.504986584186554], atol=1e-6)
    assert np.allclose(m[:, 0], [-0.1265059858560562, -0.36490902304649353, 0.3552285432815552,
                                 -0.4410342872142792, 0.2744908332824707, 0.271557092666626,
                                 -0.25006887316703796, 0.5643723607063293], atol=1e-6)


def test_sign_fix_makes_the_first_column_uniform_in_sign():
    """Without multiplying by sign(diag(R)), LAPACK's Householder QR always
    yields Q[0, 0] < 0, so the matrices would not be Haar-distributed."""
    corner = [R(label=f"k{i}", d=16)[0, 0] for i in range(64)]
    assert 16 < sum(c > 0 for c in corner) < 48
    entries = np.concatenate([R(label=f"k{i}", d=64).ravel() for i in range(8)])
    assert abs(entries.mean()) < 0.01 and abs(entries.std() * 8 - 1) < 0.05  # ~N(0, 1/d)


def test_project_single_and_batch_agree():
    m = R()
    x = unit(np.random.default_rng(2), 10, D).astype(np.float32)
    batch = project(m, x)
    assert batch.dtype == np.float32 and batch.shape == (10, D)
    for i in range(10):
        single = project(m, x[i])
        assert single.dtype == np.float32
        assert np.allclose(single, batch[i], atol=1e-6)
    assert np.allclose(batch, (m.astype(np.float64) @ x.T.astype(np.float64)).T, atol=1e-5)
    with pytest.raises(ValueError):
        project(m, x[:, :100])


def test_cosine_similarity_is_preserved():
    m = R()
    rng = np.random.default_rng(3)
    a, b = unit(rng, 2000, D), unit(rng, 2000, D)
    # include genuinely similar pairs, like two photos of one face
    b[:500] = a[:500] + 0.3 * unit(rng, 500, D)
    b[:500] /= np.linalg.norm(b[:500], axis=1, keepdims=True)
    before = (a * b).sum(axis=1)
    pa = project(m, a.astype(np.float32)).astype(np.float64)
    pb = project(m, b.astype(np.float32)).astype(np.float64)
    after = (pa * pb).sum(axis=1) / np.linalg.norm(pa, axis=1) / np.linalg.norm(pb, axis=1)
    assert np.abs(after - before).max() < 1e-6
    assert np.abs(np.linalg.norm(pa, axis=1) - 1).max() < 1e-5


def test_the_same_face_does_not_match_across_tenants():
    d, n = 128, 2000
    x = unit(np.random.default_rng(4), n, d).astype(np.float32)
    ya = project(R("tenant-a", d=d), x).astype(np.float64)
    yb = project(R("tenant-b", d=d), x).astype(np.float64)
    cross = np.abs((ya * yb).sum(axis=1))
    raw = np.abs((ya * x).sum(axis=1))  # a leaked template vs the raw embedding
    for cos in (cross, raw):
        assert cos.mean() < 0.1          # ~ sqrt(2 / (pi d)) = 0.07
        assert np.quantile(cos, 0.99) < 0.3
        assert cos.max() < 0.45
    assert np.allclose((ya * ya).sum(axis=1), 1, atol=1e-5)

    # A search across tenants finds nothing better than chance; within one, all.
    top_within = np.argmax(ya[:200] @ ya[:200].T, axis=1)
    top_across = np.argmax(ya[:200] @ yb[:200].T, axis=1)
    assert (top_within == np.arange(200)).all()
    assert (top_across == np.arange(200)).mean() < 0.05


def test_reproject_equals_projecting_fresh_under_the_new_key():
    old, new = R("a", version=1), R("a2", version=2)
    x = unit(np.random.default_rng(5), 300, D).astype(np.float32)
    y_old = project(old, x)
    fresh = project(new, x)
    moved = reproject(old, new, y_old)
    assert moved.dtype == np.float32
    assert np.abs(moved - fresh).max() < 1e-5
    assert np.abs(reproject(old, new, y_old[7]) - fresh[7]).max() < 1e-5
    # and the old templates no longer match the new ones
    assert np.abs((y_old * fresh).sum(axis=1)).mean() < 0.1


def test_cache_holds_no_dek():
    key = dek("cache-check")
    projection_matrix(dek=key, key_version=1, dimension=16, model_id="m")
    assert len(p._matrix_cache) == 1
    for cache_key, (matrix, _expires) in p._matrix_cache._entries.items():
        assert key not in cache_key and key.hex() not in repr(cache_key)
        assert key not in matrix.tobytes()
    assert cache_key[0] == p.dek_fingerprint(key) and key.hex() not in cache_key[0]

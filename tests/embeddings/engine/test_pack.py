"""Model pack loading: layouts, identity, and clear errors when files are missing."""

from __future__ import annotations

import hashlib
import re

import pytest

from embeddings.engine import EngineConfig, FaceEngine, ModelsUnavailable, get_engine
from tests.conftest import PROJECT_DIR
from tests.embeddings.engine.conftest import MODEL_ROOT, PACK, engine_config, needs_shared

pytestmark = [pytest.mark.pure, needs_shared]


def _link_pack(folder):
    """A pack folder of symlinks to the shared models (never copies)."""
    folder.mkdir(parents=True)
    for name in ("det_500m.onnx", "mobilefacenet.onnx"):
        (folder / name).symlink_to(MODEL_ROOT / PACK / name)


def test_model_id_and_dimension_come_from_the_files(engine):
    digest = hashlib.sha256()
    for name in ("det_500m.onnx", "mobilefacenet.onnx"):
        digest.update(hashlib.sha256((MODEL_ROOT / PACK / name).read_bytes()).digest())
    assert engine.model_id == f"{PACK}:{digest.hexdigest()[:8]}"
    assert re.fullmatch(r"[\w.-]+:[0-9a-f]{8}", engine.model_id)
    assert engine.dimension == 128  # mobilefacenet; buffalo_l would say 512
    info = engine.info()
    assert info["dimension"] == 128 and info["model_id"] == engine.model_id
    assert str(MODEL_ROOT) not in repr(info)  # no server paths in status output


def test_both_layouts_load(tmp_path):
    _link_pack(tmp_path / "flat" / "mypack")
    _link_pack(tmp_path / "nested" / "models" / "mypack")
    for root in ("flat", "nested"):
        engine = FaceEngine(EngineConfig(model_root=str(tmp_path / root), pack="mypack", warmup=False))
        assert engine.model_id.startswith("mypack:") and engine.dimension == 128


def test_missing_pack_says_where_files_go(tmp_path):
    with pytest.raises(ModelsUnavailable) as info:
        FaceEngine(EngineConfig(model_root=str(tmp_path), pack="buffalo_l"))
    message = str(info.value)
    assert str(tmp_path / "buffalo_l") in message and str(tmp_path / "models" / "buffalo_l") in message
    assert "never downloaded" in message
    assert info.value.code == "models_unavailable" and info.value.http_status == 503
    assert info.value.as_dict()["message"] == "the face models are not available"  # no paths to clients
    assert not (tmp_path / "buffalo_l").exists() and not (tmp_path / "models").exists()


@pytest.mark.parametrize("content", [b"", b"not an onnx model at all" * 10])
def test_unreadable_model_file(tmp_path, content):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "det.onnx").write_bytes(content)
    with pytest.raises(ModelsUnavailable):
        FaceEngine(EngineConfig(model_root=str(tmp_path), pack="broken"))


def test_pack_without_recognizer(tmp_path):
    folder = tmp_path / "halfpack"
    folder.mkdir()
    (folder / "det_500m.onnx").symlink_to(MODEL_ROOT / PACK / "det_500m.onnx")
    with pytest.raises(ModelsUnavailable, match="recognizer"):
        FaceEngine(EngineConfig(model_root=str(tmp_path), pack="halfpack"))


def test_empty_pack_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelsUnavailable, match=r"no \.onnx files"):
        FaceEngine(EngineConfig(model_root=str(tmp_path), pack="empty"))


@pytest.mark.parametrize("pack", ["../models", "a/b", ".."])
def test_pack_name_cannot_escape_the_root(pack):
    with pytest.raises(ModelsUnavailable, match="invalid model pack name"):
        FaceEngine(EngineConfig(model_root=str(MODEL_ROOT), pack=pack))


def test_get_engine_loads_once_per_config():
    assert get_engine(engine_config(640)) is get_engine(engine_config(640))
    assert get_engine(engine_config(640)) is not get_engine(engine_config(320))


def test_config_from_env():
    config = EngineConfig.from_env({"FACE_MODEL_ROOT": "/m", "FACE_MODEL_PACK": "p", "FACE_DEVICE": "CUDA",
                                    "FACE_DET_SIZE": "320", "FACE_INTRA_OP_THREADS": "2"})
    assert (config.model_root, config.pack, config.device, config.det_size, config.intra_op_threads) == (
        "/m", "p", "cuda", (320, 320), 2)
    assert EngineConfig.from_env({}).pack == "buffalo_l"
    with pytest.raises(ValueError):
        EngineConfig(det_size=(300, 300))


def test_cuda_request_falls_back_to_cpu_without_cuda(tmp_path):
    engine = FaceEngine(EngineConfig(model_root=str(MODEL_ROOT), pack=PACK, device="cuda", warmup=False))
    import onnxruntime

    has_cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    expected = "CUDAExecutionProvider" if has_cuda else "CPUExecutionProvider"
    assert engine.providers[0] == expected


FORK_PROBE = """
import multiprocessing, sys
import numpy as np
from embeddings.engine import EngineConfig, get_engine

config = EngineConfig(model_root=sys.argv[1], pack=sys.argv[2], intra_op_threads=1, inter_op_threads=1)

def probe(parent_object_id):
    engine = get_engine(config)
    blank = np.full((200, 200, 3), 128, dtype=np.uint8)
    return engine.model_id, id(engine) == parent_object_id, len(engine.analyze(blank).faces)

if __name__ == "__main__":
    parent = get_engine(config)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        child_id, same_object, faces = pool.apply(probe, (id(parent),))
    print(child_id == parent.model_id, same_object, faces)
"""


def test_forked_child_loads_its_own_engine():
    """A prefork child (Celery) must not reuse the parent's onnxruntime sessions.

    Run in a fresh, single-threaded interpreter: forking the test process
    itself, which holds other threads' locks, can deadlock the child.
    """
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", FORK_PROBE, str(MODEL_ROOT), PACK], capture_output=True,
                            text=True, timeout=180, cwd=PROJECT_DIR)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["True", "False", "0"]

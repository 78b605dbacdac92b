"""The operator's fetch_pack tool, against a local HTTP server (no internet here)."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from embeddings.engine import fetch_pack

pytestmark = pytest.mark.pure


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("buffalo_x/det_test.onnx", b"detector bytes")
        zf.writestr("../../evil.onnx", b"path traversal attempt")
        zf.writestr("README.txt", b"not a model")
    return out.getvalue()


ZIP = _zip()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(ZIP)))
        self.end_headers()
        self.wfile.write(ZIP)


@pytest.fixture
def url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/buffalo_x.zip"
    server.shutdown()
    server.server_close()


def test_refuses_without_accepting_the_licence(tmp_path, capsys):
    assert fetch_pack.main(["--pack", "buffalo_l", "--root", str(tmp_path)]) == 2
    assert "non-commercial" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_installs_only_onnx_files_flat(tmp_path, url):
    args = ["--pack", "buffalo_x", "--root", str(tmp_path), "--url", url, "--accept-licence"]
    assert fetch_pack.main([*args, "--sha256", hashlib.sha256(ZIP).hexdigest()]) == 0
    folder = tmp_path / "models" / "buffalo_x"
    assert sorted(p.name for p in folder.iterdir()) == ["det_test.onnx", "evil.onnx"]
    assert not (tmp_path.parent / "evil.onnx").exists()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["buffalo_x"]  # no leftovers
    assert fetch_pack.main(args) == 1  # never overwrites without --force
    assert fetch_pack.main([*args, "--force"]) == 0


def test_checksum_mismatch_installs_nothing(tmp_path, url):
    args = ["--pack", "buffalo_x", "--root", str(tmp_path), "--url", url, "--accept-licence", "--sha256", "0" * 64]
    assert fetch_pack.main(args) == 1
    assert not (tmp_path / "models" / "buffalo_x").exists()


def test_default_url_is_insightfaces_release():
    assert fetch_pack.pack_url("buffalo_l").startswith("https://github.com/deepinsight/insightface/releases/")

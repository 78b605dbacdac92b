"""SSRF-safe fetching against real local servers (HTTP and HTTPS) on 127.0.0.1.

Over 400 lines: one test per refusal class of the SSRF guard, kept together
so that the whole guard is reviewed in one place.

127.0.0.0/8 is admitted through `allowed_networks` where a test needs the
local server; everything else goes through the same guard production uses.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from PIL import Image

from embeddings.engine import decode_image
from faceservice.outbound import http as fetch_module
from faceservice.outbound.errors import FetchFailed, FetchRefused, FetchTimeout, ImageTooLarge
from faceservice.outbound.http import Timeouts, fetch_image_url, refusal_reason, safe_request

pytestmark = pytest.mark.pure

LOCAL = ("127.0.0.0/8",)
FAST = Timeouts(connect=1.0, read=1.0, total=5.0)


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((40, 30, 3), 120, dtype=np.uint8)).save(out, "JPEG")
    return out.getvalue()


JPEG = _jpeg()


class _Handler(BaseHTTPRequestHandler):
    log: list[dict] = []

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def _record(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.log.append({"method": self.command, "path": self.path, "host": self.headers.get("Host"),
                         "headers": dict(self.headers), "body": body, "sni": getattr(self.server, "last_sni", None)})
        return body

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self._record()
        self._send(201, b"got:" + body, {"X-Echo-Host": self.headers.get("Host", "")})

    def do_GET(self) -> None:
        self._record()
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/img":
            self._send(200, JPEG, {"Content-Type": "image/jpeg"})
        elif url.path == "/redirect":
            self._send(int(query.get("status", ["302"])[0]), headers={"Location": query["to"][0]})
        elif url.path.startswith("/loop/"):
            n = int(url.path.rsplit("/", 1)[1])
            self._send(302, headers={"Location": f"/loop/{n + 1}"})
        elif url.path.startswith("/status/"):
            self._send(int(url.path.rsplit("/", 1)[1]), b"nope")
        elif url.path == "/headers":
            self._send(200, repr(sorted(k.lower() for k in self.headers)).encode())
        elif url.path == "/big-streamed":  # no Content-Length: ends when the connection closes
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(200):
                    self.wfile.write(b"\0" * 65536)
            except OSError:
                pass
            self.close_connection = True
        elif url.path == "/big-declared":
            self.send_response(200)
            self.send_header("Content-Length", str(10**9))
            self.end_headers()
            self.wfile.write(b"\0" * 1000)
        elif url.path == "/stall":
            time.sleep(3)
            with contextlib.suppress(OSError):  # the client gave up, as it should
                self._send(200, b"late")
        elif url.path == "/drip":  # one byte per 0.2 s: never trips a read timeout
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(40):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass
        else:
            self._send(404)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _serve(tls: ssl.SSLContext | None = None):
    server = _Server(("127.0.0.1", 0), _Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@pytest.fixture(scope="module")
def server():
    srv = _serve()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def base(server) -> str:
    _Handler.log.clear()
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def fake_dns(monkeypatch):
    """Map names to addresses without real DNS; counts lookups per name."""
    table: dict[str, list[str]] = {}
    calls: dict[str, int] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in table:
            return real(host, port, *args, **kwargs)
        calls[host] = calls.get(host, 0) + 1
        answers = table[host]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port)) for a in answers]

    monkeypatch.setattr(fetch_module, "_getaddrinfo", getaddrinfo)
    return table, calls



# Success --------------------------------------------------------------------

def test_fetch_from_allowed_local_server(base, no_new_temp_files):
    data = fetch_image_url(f"{base}/img", max_bytes=1_000_000, allowed_networks=LOCAL, timeout=FAST)
    assert data == JPEG and decode_image(data).shape == (40, 30, 3)
    assert _Handler.log[-1]["headers"].get("Accept-Encoding") == "identity"


def test_connects_to_the_checked_address_with_the_real_host_name(server, base, fake_dns):
    table, calls = fake_dns
    table["images.example.test"] = ["127.0.0.1"]
    port = server.server_address[1]
    data = fetch_image_url(f"http://images.example.test:{port}/img", max_bytes=10**6,
                           allowed_networks=LOCAL, timeout=FAST)
    assert data == JPEG
    assert _Handler.log[-1]["host"] == f"images.example.test:{port}"  # Host header keeps the name
    assert calls["images.example.test"] == 1  # resolved once: nothing to rebind


def test_redirect_within_allowed_space_is_followed(base):
    data = fetch_image_url(f"{base}/redirect?to=/img", max_bytes=10**6, allowed_networks=LOCAL, timeout=FAST)
    assert data == JPEG and [r["path"] for r in _Handler.log] == ["/redirect?to=/img", "/img"]


def test_post_for_webhooks_and_no_redirect_following(base):
    response = safe_request("POST", f"{base}/echo", body=b'{"a":1}', headers={"Content-Type": "application/json"},
                            timeout=FAST, max_bytes=1000, allowed_networks=LOCAL, follow_redirects=False)
    assert response.status_code == 201 and response.content == b'got:{"a":1}'
    assert response.headers["x-echo-host"].startswith("127.0.0.1:")
    redirect = safe_request("GET", f"{base}/redirect?to=http://169.254.169.254/", timeout=FAST, max_bytes=1000,
                            allowed_networks=LOCAL, follow_redirects=False)
    assert redirect.status_code == 302 and redirect.headers["location"] == "http://169.254.169.254/"


def test_cross_origin_redirect_drops_credentials(server, fake_dns):
    table, _ = fake_dns
    table["a.example.test"] = ["127.0.0.1"]
    table["b.example.test"] = ["127.0.0.1"]
    port = server.server_address[1]
    _Handler.log.clear()
    response = safe_request("GET", f"http://a.example.test:{port}/redirect?to=http://b.example.test:{port}/headers",
                            headers={"Authorization": "Bearer s3cret", "X-Trace": "1"},
                            timeout=FAST, max_bytes=1000, allowed_networks=LOCAL)
    assert "authorization" in _Handler.log[0]["headers"].keys() | {k.lower() for k in _Handler.log[0]["headers"]}
    assert b"authorization" not in response.content and b"x-trace" in response.content


# Refusals -------------------------------------------------------------------

SSRF_URLS = [
    "http://127.0.0.1/",
    "http://127.0.0.1:8000/admin?token=SECRET",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:7f00:1]/",
    "http://localhost/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://0.0.0.0/",
    "http://[::]/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "http://240.0.0.1/",
    "http://[fe80::1]/",
    "http://[fd00:ec2::254]/",
    "http://[fc00::1]/",
    "http://[2002:7f00:1::]/",  # 6to4 wrapping 127.0.0.1
    "http://[2002:a9fe:a9fe::]/",  # 6to4 wrapping 169.254.169.254
    "http://[64:ff9b::7f00:1]/",  # NAT64 wrapping 127.0.0.1
    "http://2130706433/",  # 127.0.0.1 as one decimal number
    "http://0x7f.1/",
    "http://127.1/",
]


@pytest.mark.parametrize("url", SSRF_URLS)
def test_ssrf_targets_are_refused_quickly(url, no_new_temp_files):
    started = time.perf_counter()
    with pytest.raises(FetchRefused) as info:
        fetch_image_url(url, max_bytes=1000, timeout=FAST)
    assert time.perf_counter() - started < 1.0
    assert info.value.code == "fetch_refused" and info.value.http_status == 422
    assert "SECRET" not in str(info.value)  # no query strings in messages


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "ftp://example.com/x.jpg", "gopher://127.0.0.1:6379/_INFO", "dict://127.0.0.1:11211/",
    "javascript:alert(1)", "data:image/png;base64,AAAA", "http://user:pw@example.com/x.jpg", "http:///nohost",
    "not a url at all",
])
def test_non_http_and_malformed_urls_are_refused(url):
    with pytest.raises(FetchRefused):
        fetch_image_url(url, max_bytes=1000, timeout=FAST)


def test_local_server_is_refused_without_the_allow_list(base):
    with pytest.raises(FetchRefused, match="loopback"):
        fetch_image_url(f"{base}/img", max_bytes=1000, timeout=FAST)
    assert _Handler.log == []  # not even connected


def test_metadata_stays_refused_inside_allowed_networks():
    with pytest.raises(FetchRefused, match="metadata"):
        fetch_image_url("http://169.254.169.254/", max_bytes=1000, timeout=FAST, allowed_networks=["0.0.0.0/0"])
    assert refusal_reason(__import__("ipaddress").ip_address("169.254.1.1"), ["169.254.0.0/16"]) is None


def test_dns_name_resolving_to_a_private_address(fake_dns):
    table, _ = fake_dns
    table["intranet.example.test"] = ["10.20.30.40"]
    table["mixed.example.test"] = ["93.184.215.14", "192.168.0.10"]
    table["v6.example.test"] = ["::1"]
    for host in table:
        with pytest.raises(FetchRefused, match=host):
            fetch_image_url(f"https://{host}/face.jpg", max_bytes=1000, timeout=FAST)


@pytest.mark.parametrize("target", [
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.7/internal.jpg",
    "http://[::1]/img",
    "file:///etc/passwd",
])
def test_redirect_to_a_forbidden_place_is_refused(base, target):
    with pytest.raises(FetchRefused):
        fetch_image_url(f"{base}/redirect?to={target}", max_bytes=1000, allowed_networks=LOCAL, timeout=FAST)
    assert len(_Handler.log) == 1  # only the first hop reached a server


def test_redirect_limit(base):
    with pytest.raises(FetchFailed, match="too many redirects"):
        fetch_image_url(f"{base}/loop/0", max_bytes=1000, allowed_networks=LOCAL, timeout=FAST, max_redirects=3)
    assert [r["path"] for r in _Handler.log] == ["/loop/0", "/loop/1", "/loop/2", "/loop/3"]


# Limits and failures ------------------------------------------------------------

def test_size_limit_while_streaming(base, no_new_temp_files):
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge) as info:
        fetch_image_url(f"{base}/big-streamed", max_bytes=200_000, allowed_networks=LOCAL, timeout=FAST)
    assert info.value.code == "image_too_large" and time.perf_counter() - started < 2


def test_size_limit_on_declared_length(base):
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge, match="announced"):
        fetch_image_url(f"{base}/big-declared", max_bytes=200_000, allowed_networks=LOCAL, timeout=FAST)
    assert time.perf_counter() - started < 1


def test_read_timeout_on_a_stalling_server(base):
    started = time.perf_counter()
    with pytest.raises(FetchTimeout) as info:
        fetch_image_url(f"{base}/stall", max_bytes=1000, allowed_networks=LOCAL,
                        timeout=Timeouts(connect=1, read=0.5, total=5))
    assert info.value.code == "fetch_timeout" and time.perf_counter() - started < 1.5


def test_total_deadline_on_a_dripping_server(base):
    started = time.perf_counter()
    with pytest.raises(FetchTimeout):
        fetch_image_url(f"{base}/drip", max_bytes=10_000, allowed_networks=LOCAL,
                        timeout=Timeouts(connect=1, read=1, total=1))
    assert time.perf_counter() - started < 2.5


def test_slow_dns_times_out(monkeypatch):
    def slow(*args, **kwargs):
        time.sleep(2)
        return []

    monkeypatch.setattr(fetch_module, "_getaddrinfo", slow)
    started = time.perf_counter()
    with pytest.raises(FetchTimeout):
        fetch_image_url("http://slow.example.test/", max_bytes=10, timeout=Timeouts(connect=0.3, read=1, total=3))
    assert time.perf_counter() - started < 1


def test_http_error_status(base):
    with pytest.raises(FetchFailed, match="HTTP 404"):
        fetch_image_url(f"{base}/status/404", max_bytes=1000, allowed_networks=LOCAL, timeout=FAST)


def test_connection_refused_and_unknown_host(fake_dns):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchFailed):
        fetch_image_url(f"http://127.0.0.1:{port}/", max_bytes=10, allowed_networks=LOCAL, timeout=FAST)
    with pytest.raises(FetchFailed, match="could not be resolved"):
        fetch_image_url("http://no-such-host.invalid/", max_bytes=10, timeout=FAST)


# HTTPS: SNI and certificate checks use the name, the socket uses the checked IP -------

def _certificates(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "secure.example.test")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("secure.example.test")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    # The server side needs files for load_cert_chain: these are throw-away test keys in tmp_path.
    (tmp / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp / "leaf.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp / "leaf.pem", tmp / "leaf.key")
    client_ctx = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server_ctx, client_ctx


def test_https_uses_sni_and_verifies_the_name(tmp_path, fake_dns):
    server_ctx, client_ctx = _certificates(tmp_path)
    seen: list[str | None] = []
    server_ctx.sni_callback = lambda sock, name, ctx: seen.append(name)
    server = _serve(server_ctx)
    try:
        port = server.server_address[1]
        table, _ = fake_dns
        table["secure.example.test"] = ["127.0.0.1"]
        table["other.example.test"] = ["127.0.0.1"]
        data = fetch_image_url(f"https://secure.example.test:{port}/img", max_bytes=10**6,
                               allowed_networks=LOCAL, timeout=FAST, ssl_context=client_ctx)
        assert data == JPEG and seen[-1] == "secure.example.test"
        with pytest.raises(FetchFailed):  # certificate is not for this name
            fetch_image_url(f"https://other.example.test:{port}/img", max_bytes=10**6,
                            allowed_networks=LOCAL, timeout=FAST, ssl_context=client_ctx)
        with pytest.raises(FetchFailed):  # by IP: no SAN for it
            fetch_image_url(f"https://127.0.0.1:{port}/img", max_bytes=10**6,
                            allowed_networks=LOCAL, timeout=FAST, ssl_context=client_ctx)
    finally:
        server.shutdown()
        server.server_close()


def test_internationalised_names_are_resolved_in_their_idna_form(fake_dns):
    table, calls = fake_dns
    table["xn--bcher-kva.example"] = ["10.0.0.8"]
    with pytest.raises(FetchRefused, match="private"):
        fetch_image_url("http://bücher.example/face.jpg", max_bytes=10, timeout=FAST)
    assert calls == {"xn--bcher-kva.example": 1}

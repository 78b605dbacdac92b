"""SSRF-safe HTTP(S) requests: image URLs now, webhook delivery too.

How the guard works, per hop (the first request and every redirect):
1. Only http and https URLs, without user:password@.
2. The host is resolved once here (a getaddrinfo with a deadline) and every
   address it resolves to is checked: loopback, private, link-local, shared
   (CGNAT), multicast, reserved, unspecified and cloud-metadata addresses are
   refused, also when wrapped in IPv6 (IPv4-mapped ::ffff:a.b.c.d,
   IPv4-compatible, 6to4 2002::/16, NAT64 64:ff9b::/96). A host with any bad
   address is refused as a whole. `allowed_networks` re-admits networks
   (e.g. 127.0.0.0/8 in tests, an internal image store); metadata addresses
   are never admitted.
3. The connection goes to exactly the address that was checked: httpcore (the
   transport under httpx) gets a network backend that ignores the name and
   dials the pinned IP. The URL keeps the real host name, so the Host header,
   TLS SNI and certificate verification all use the name. There is no second
   DNS lookup, so no DNS-rebinding window. We use httpcore directly rather
   than httpx.Client because a client would honour HTTP(S)_PROXY variables,
   and a proxy would resolve the name again on its own.
4. Redirects are followed by us, not the transport, each re-checked from 1,
   at most `max_redirects`. Bodies are streamed and cut at `max_bytes`;
   connect/read timeouts plus an overall deadline bound the time. We ask for
   identity encoding, so there is no decompression to bomb.
Error messages name the host at most, never the full URL (query strings can
carry tokens).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from urllib.parse import urljoin

import httpcore
import httpx

from faceservice.outbound.errors import FetchFailed, FetchRefused, FetchTimeout, ImageTooLarge

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NetworkLike = str | ipaddress.IPv4Network | ipaddress.IPv6Network

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "faceservice-fetch/1"
IMAGE_ACCEPT = "image/jpeg, image/png, image/webp;q=0.9, */*;q=0.1"
_CHUNK = 64 * 1024

# Cloud instance-metadata endpoints, refused even inside allowed_networks.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean
    "169.254.170.2",    # AWS ECS task metadata
    "169.254.170.23",   # AWS EKS pod identity
    "fd00:ec2::254",    # AWS IMDS over IPv6
    "fd00:ec2::23",     # AWS EKS pod identity over IPv6
    "100.100.100.200",  # Alibaba Cloud
    "168.63.129.16",    # Azure WireServer (a public address)
))
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})

# getaddrinfo has no timeout of its own: run it on a small pool and wait with one.
_resolver_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="safe-fetch-dns")
_getaddrinfo = socket.getaddrinfo  # tests replace this to fake DNS answers


@dataclass(frozen=True)
class Timeouts:
    """connect: per TCP/TLS connect (and DNS); read: per socket read;
    total: deadline for the whole request including redirects."""

    connect: float = 3.0
    read: float = 10.0
    total: float = 30.0

    @classmethod
    def of(cls, value: Timeouts | float) -> Timeouts:
        if isinstance(value, Timeouts):
            return value
        return cls(connect=float(value), read=float(value), total=float(value))


@dataclass(frozen=True)
class SafeResponse:
    """status_code, headers (lower-case names) and the body, read in full."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes = field(repr=False)
    url: str = field(repr=False)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300


# Address policy ------------------------------------------------------------

def parse_networks(networks: Iterable[NetworkLike]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """CIDR strings (or network objects) -> network objects; ValueError if malformed."""
    return tuple(ipaddress.ip_network(n, strict=False) if isinstance(n, str) else n for n in networks)


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, NAT64)."""
    if address.version != 6:
        return None
    assert isinstance(address, ipaddress.IPv6Address)
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in net for net in _NAT64) or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal_reason(address: IPAddress, allowed_networks: Iterable[NetworkLike] = ()) -> str | None:
    """Why a connection to `address` is refused, or None if it is allowed."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    inner = embedded_ipv4(address)
    if inner is not None and inner in METADATA_ADDRESSES:
        return "a cloud metadata address"
    target = inner or address
    networks = parse_networks(allowed_networks)
    if any(target.version == n.version and target in n for n in networks):
        return None
    if any(address.version == n.version and address in n for n in networks):
        return None
    for flag, reason in (
        ("is_unspecified", "an unspecified address"), ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"), ("is_multicast", "a multicast address"),
        ("is_private", "a private address"), ("is_reserved", "a reserved address"),
    ):
        if getattr(target, flag):
            return reason
    if not target.is_global:
        return "a non-public address"  # e.g. 100.64.0.0/10 shared address space
    return None


# URL and DNS ---------------------------------------------------------------

@dataclass(frozen=True)
class _Target:
    url: httpx.URL
    host: str  # as in the URL (IDNA-encoded, IPv6 without brackets)
    port: int
    addresses: tuple[str, ...]  # checked, in connection order


def _parse(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise FetchRefused("the URL is malformed") from exc
    if parsed.scheme not in ("http", "https"):
        raise FetchRefused("only http and https URLs are allowed")
    if not parsed.host:
        raise FetchRefused("the URL has no host")
    if parsed.userinfo:
        raise FetchRefused("URLs with user:password@ credentials are not allowed")
    return parsed


def _resolve(host: str, port: int, timeout: float) -> list[IPAddress]:
    future = _resolver_pool.submit(_getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=max(timeout, 0.001))
    except FutureTimeout as exc:
        raise FetchTimeout(f"resolving {host} timed out") from exc
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise FetchFailed(f"the host {host} could not be resolved") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise FetchFailed(f"the host {host} has no addresses")
    return addresses


def check_url(
    url: str,
    *,
    allowed_networks: Iterable[NetworkLike] = (),
    allowed_ports: Collection[int] | None = None,
    timeout: float = 3.0,
) -> _Target:
    """Parse, resolve and vet one URL; FetchRefused if it must not be fetched."""
    parsed = _parse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if allowed_ports is not None and port not in allowed_ports:
        raise FetchRefused(f"port {port} is not allowed")
    host = parsed.raw_host.decode("ascii")  # IDNA-encoded, as DNS and TLS SNI want it
    addresses = _resolve(host, port, timeout)
    for address in addresses:
        reason = refusal_reason(address, allowed_networks)
        if reason is not None:
            raise FetchRefused(f"the host {host} resolves to {reason}")
    return _Target(parsed, host, port, tuple(str(a) for a in addresses))


# Transport -----------------------------------------------------------------

class _PinnedBackend(httpcore.NetworkBackend):
    """Dials the vetted addresses, whatever name httpcore asks for."""

    def __init__(self, target: _Target) -> None:
        self._target = target
        self._backend = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options: Iterable | None = None,
                    ) -> httpcore.NetworkStream:
        if host != self._target.host or port != self._target.port:  # one pool per hop
            raise httpcore.ConnectError("unexpected connection target")
        error: Exception | None = None
        for address in self._target.addresses:
            try:
                return self._backend.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:  # try the next vetted address
                error = exc
        raise error or httpcore.ConnectError("no address to connect to")

    def connect_unix_socket(self, *args: object, **kwargs: object) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def _default_ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def _send_once(target: _Target, method: str, headers: list[tuple[str, str]], body: bytes | None,
               timeouts: Timeouts, deadline: float, max_bytes: int,
               ssl_context: ssl.SSLContext | None) -> SafeResponse:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchTimeout(f"fetching from {target.host} took too long")
    extensions = {"timeout": {"connect": min(timeouts.connect, remaining), "read": min(timeouts.read, remaining),
                              "write": min(timeouts.read, remaining), "pool": min(timeouts.connect, remaining)}}
    pool = httpcore.ConnectionPool(
        ssl_context=ssl_context or _default_ssl_context(), max_connections=1,
        network_backend=_PinnedBackend(target), retries=0,
    )
    url = httpcore.URL(scheme=target.url.raw_scheme, host=target.url.raw_host,
                       port=target.url.port, target=target.url.raw_path)
    try:
        with pool, pool.stream(method, url, headers=headers, content=body, extensions=extensions) as response:
            response_headers = _headers(response.headers)
            content = b"" if method == "HEAD" else _read_capped(response, response_headers, max_bytes,
                                                                deadline, target.host)
            return SafeResponse(response.status, response_headers, content, str(target.url))
    except httpcore.TimeoutException as exc:
        raise FetchTimeout(f"{target.host} did not answer in time") from exc
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
        raise FetchFailed(f"the connection to {target.host} failed ({type(exc).__name__})") from exc


def _headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def _read_capped(response: httpcore.Response, headers: Mapping[str, str], max_bytes: int,
                 deadline: float, host: str) -> bytes:
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ImageTooLarge(f"{host} announced {declared} bytes; the limit is {max_bytes}")
    parts: list[bytes] = []
    size = 0
    for chunk in response.iter_stream():
        size += len(chunk)
        if size > max_bytes:
            raise ImageTooLarge(f"the response from {host} exceeds the limit of {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise FetchTimeout(f"fetching from {host} took too long")
        parts.append(chunk)
    return b"".join(parts)


# Public API ------------------------------------------------------------------

def safe_request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: Timeouts | float = Timeouts(),
    max_bytes: int,
    allowed_networks: Iterable[NetworkLike] = (),
    follow_redirects: bool = True,
    max_redirects: int = 3,
    allowed_ports: Collection[int] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> SafeResponse:
    """One HTTP(S) request through the SSRF guard (see the module docstring).

    Any status is returned as a response (a redirect too, when not following).
    Raises FetchRefused, FetchFailed, FetchTimeout or ImageTooLarge (body over
    max_bytes); all are ImageError with a `code`.
    """
    timeouts = Timeouts.of(timeout)
    deadline = time.monotonic() + timeouts.total
    networks = parse_networks(allowed_networks)
    method = method.upper()
    request_headers = _initial_headers(headers)
    current = url
    for hop in range(max_redirects + 1):
        target = check_url(current, allowed_networks=networks, allowed_ports=allowed_ports,
                           timeout=min(timeouts.connect, max(deadline - time.monotonic(), 0.0)))
        response = _send_once(target, method, list(request_headers.items()), body,
                              timeouts, deadline, max_bytes, ssl_context)
        location = response.headers.get("location")
        if not follow_redirects or response.status_code not in REDIRECT_STATUSES or not location:
            return response
        if hop == max_redirects:
            break
        following = urljoin(str(target.url), location.strip())
        method, body = _redirect_method(method, response.status_code, body)
        request_headers = _redirect_headers(request_headers, target.url, _parse(following), body)
        current = following
    raise FetchFailed(f"too many redirects (the limit is {max_redirects})")


def fetch_image_url(
    url: str,
    *,
    max_bytes: int,
    timeout: Timeouts | float = Timeouts(),
    allowed_networks: Iterable[NetworkLike] = (),
    max_redirects: int = 3,
    ssl_context: ssl.SSLContext | None = None,
) -> bytes:
    """GET an image's bytes through the guard; FetchFailed on a non-2xx answer."""
    response = safe_request(
        "GET", url, headers={"Accept": IMAGE_ACCEPT}, timeout=timeout, max_bytes=max_bytes,
        allowed_networks=allowed_networks, max_redirects=max_redirects, ssl_context=ssl_context,
    )
    if response.status_code in REDIRECT_STATUSES:
        raise FetchFailed("the server answered with a redirect without a location")
    if not response.is_success:
        raise FetchFailed(f"the server answered HTTP {response.status_code}")
    return response.content


def _initial_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    result = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    for name, value in (headers or {}).items():
        if name.lower() in ("host", "content-length", "transfer-encoding", "accept-encoding"):
            continue  # set by us / the transport
        result[name] = value
    return result


def _redirect_method(method: str, status: int, body: bytes | None) -> tuple[str, bytes | None]:
    """303 (and 301/302 after POST, as browsers do) continue as a body-less GET."""
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        return "GET", None
    return method, body


def _redirect_headers(headers: dict[str, str], old: httpx.URL, new: httpx.URL,
                      body: bytes | None) -> dict[str, str]:
    result = dict(headers)
    if (old.scheme, old.host, old.port) != (new.scheme, new.host, new.port):
        # Credentials were meant for the first origin only.
        result = {k: v for k, v in result.items() if k.lower() not in _SENSITIVE_HEADERS}
    if body is None:
        result = {k: v for k, v in result.items() if k.lower() != "content-type"}
    return result

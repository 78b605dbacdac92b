"""HTTP with retries: 429 and 503 honour `Retry-After`, other failures back off exponentially.

What is retried, and why it is safe:
- 429 and 503 on any method: the server refused the request before doing anything (a refused
  request counts against no rate limit; 503 answers before work starts).
- Connection errors only on requests that may run twice: reads, and writes the caller marks
  as repeatable (an index job with an Idempotency-Key, search and compare, which store nothing).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from facesearch.errors import APIError, retry_after_seconds

RETRY_STATUSES = frozenset({429, 503})
REPEATABLE_METHODS = frozenset({"GET", "HEAD", "DELETE"})


class Transport:
    def __init__(self, *, base_url: str, api_key: str, timeout: float, max_retries: int, max_wait: float,
                 user_agent: str, http: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        base = urlsplit(self.base_url)
        self.origin = f"{base.scheme}://{base.netloc}"
        self.max_retries = max_retries
        self.max_wait = max_wait
        self.sleep = sleep
        # The key lives in the client's default headers only: never in a URL, a log or an error.
        self.http = http or httpx.Client(timeout=timeout)
        self.headers = {"Authorization": f"Bearer {api_key}", "User-Agent": user_agent,
                        "Accept": "application/json"}

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, *, repeatable: bool | None = None,
                headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        """The answer to a request, retried as the module says; an error answer raises `APIError`."""
        repeatable = method in REPEATABLE_METHODS if repeatable is None else repeatable
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = self.http.request(method, self.url(path), headers={**self.headers, **(headers or {})},
                                             **kwargs)
            except httpx.TransportError:
                if not repeatable or last:
                    raise
                self.sleep(self._backoff(attempt))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                self.sleep(self._wait(response, attempt))
                continue
            if response.is_error:
                raise APIError.from_response(response)
            return response
        raise AssertionError("unreachable")

    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[bytes]:
        """The body of a streamed answer in chunks (audit exports: too large to hold in memory)."""
        for attempt in range(self.max_retries + 1):
            with self.http.stream(method, self.url(path), headers=self.headers, **kwargs) as response:
                if response.status_code in RETRY_STATUSES and attempt < self.max_retries:
                    self.sleep(self._wait(response, attempt))
                    continue
                if response.is_error:
                    response.read()
                    raise APIError.from_response(response)
                yield from response.iter_bytes()
                return

    def url(self, path: str) -> str:
        """Our base URL joined with a path, or with the path and query of a `next` link.

        A `next` link's host is what the server saw, which behind a proxy may not be
        reachable from here: only its path and query are kept.
        """
        if path.startswith(("http://", "https://")):
            parts = urlsplit(path)
            return self.origin + parts.path + (f"?{parts.query}" if parts.query else "")
        return self.base_url + path

    def _wait(self, response: httpx.Response, attempt: int) -> float:
        told = retry_after_seconds(response)
        return min(self.max_wait, told if told is not None else self._backoff(attempt))

    def _backoff(self, attempt: int) -> float:
        # Full jitter (AWS architecture blog, "Exponential Backoff and Jitter"): spreads
        # the retries of many parallel uploads instead of having them return together.
        return min(self.max_wait, random.uniform(0, 0.5 * 2 ** attempt))

"""Container health check: GET /readyz as the proxy would send it; exit 0 when ready.

The Host header must be one of ALLOWED_HOSTS, and X-Forwarded-Proto: https keeps
SECURE_SSL_REDIRECT from answering 301 instead of the probe's real status.
"""

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    host = os.environ.get("ALLOWED_HOSTS", "localhost").split(",")[0].strip().lstrip(".")
    port = os.environ.get("PORT", "8000")
    request = urllib.request.Request(f"http://127.0.0.1:{port}/readyz",
                                     headers={"Host": host, "X-Forwarded-Proto": "https"})
    try:
        with urllib.request.urlopen(request, timeout=8) as response:  # noqa: S310 - fixed local URL
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"not ready: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

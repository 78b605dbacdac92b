"""The web process's metrics as deployed: gunicorn with two workers, scraped on the arbiter's own port.

Each worker process counts its own requests; the arbiter (multiprocess mode,
deploy/gunicorn.conf.py) must show their sum, and the API's port must not serve them.
"""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import PROJECT_DIR
from tests.deploy.test_gunicorn import GUNICORN, PROXY_HEADERS, _free_port, _get, _production_env, _wait_until_started

REQUESTS = 12


def _scrape(port: int) -> dict[tuple, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        text = response.read().decode()
    return {(sample.name, *sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_the_arbiter_serves_the_sum_of_every_worker(django_db_setup):
    port, metrics_port = _free_port(), _free_port()
    env = _production_env(port)
    env.update(WEB_CONCURRENCY="2", METRICS_WEB_PORT=str(metrics_port), METRICS_ADDRESS="127.0.0.1")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = subprocess.Popen([str(GUNICORN), "-c", "deploy/gunicorn.conf.py", "faceservice.wsgi"],
                              cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_until_started(port, server)
        for _ in range(REQUESTS):
            assert _get(port, "/v1/tenant", **PROXY_HEADERS) == 401
        samples = _scrape(metrics_port)
        answered = sum(value for (name, *labels), value in samples.items()
                       if name == "faceservice_http_requests_total" and ("route", "v1/tenant") in labels)
        assert answered == REQUESTS
        # The API's own port does not serve them: a JSON 404 like any unknown path.
        assert _get(port, "/metrics", **PROXY_HEADERS) == 404
        directories = list(Path("/dev/shm").glob(f"faceservice-metrics-web-{server.pid}"))
        assert len(directories) == 1 and any(directories[0].glob("*.db"))
    finally:
        server.terminate()
        server.wait(timeout=30)
    # The arbiter removes the directory it made when it stops.
    assert not Path(f"/dev/shm/faceservice-metrics-web-{server.pid}").exists()

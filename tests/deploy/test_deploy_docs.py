"""docs/DEPLOY.md and the deploy files agree with the settings the code reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from faceservice.settings.docs import TABLES
from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.pure

DEPLOY_DIR = PROJECT_DIR / "deploy"
DEPLOY_DOC = PROJECT_DIR / "docs" / "DEPLOY.md"

ENVIRON_READ = re.compile(r"os\.environ(?:\.get\(|\[)\s*\"([A-Z][A-Z0-9_]*)\"")
# Read by libraries or the runtime rather than by our code.
THIRD_PARTY = {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "DJANGO_SETTINGS_MODULE"}
# Services whose environment is their own image's (PostgreSQL, Redis), not ours.
FOREIGN_SERVICES = {"postgres", "redis"}


def _names_read_by(*paths: Path) -> set[str]:
    names: set[str] = set()
    for path in paths:
        text = path.read_text()
        names |= set(ENVIRON_READ.findall(text))
    return names


def _settings_names() -> set[str]:
    declared = {name for variables in TABLES for name in variables.model_fields}
    return declared | _names_read_by(*(PROJECT_DIR / "faceservice" / "settings").glob("*.py"))


def _deploy_script_names() -> set[str]:
    return _names_read_by(*DEPLOY_DIR.glob("*.py"))


def _compose_names() -> set[str]:
    compose = yaml.safe_load((DEPLOY_DIR / "compose.yaml").read_text())
    return {name for service, spec in compose["services"].items() if service not in FOREIGN_SERVICES
            for name in spec.get("environment", {})}


def _k8s_names() -> set[str]:
    names: set[str] = set()
    for path in (DEPLOY_DIR / "k8s").glob("*.yaml"):
        for document in filter(None, yaml.safe_load_all(path.read_text())):
            if document["kind"] in {"ConfigMap", "Secret"}:
                names |= set(document.get("data") or {}) | set(document.get("stringData") or {})
            for container in _containers(document):
                names |= {entry["name"] for entry in container.get("env", [])}
    return names


def _k8s_referenced_names() -> set[str]:
    """Variables Kubernetes expands in a container's args: $(WORKER_CONCURRENCY)."""
    return {name for path in (DEPLOY_DIR / "k8s").glob("*.yaml")
            for name in re.findall(r"\$\(([A-Z][A-Z0-9_]*)\)", path.read_text())}


def _containers(document: dict) -> list[dict]:
    spec = document.get("spec", {}).get("template", {}).get("spec", {})
    return spec.get("containers", [])


def test_every_setting_is_documented():
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]*)`", DEPLOY_DOC.read_text()))
    missing = sorted((_settings_names() | _deploy_script_names()) - documented)
    assert not missing, f"add these to the tables in docs/DEPLOY.md: {missing}"


def test_compose_and_kubernetes_set_only_variables_something_reads():
    known = _settings_names() | _deploy_script_names() | _k8s_referenced_names() | THIRD_PARTY
    unknown = sorted((_compose_names() | _k8s_names()) - known)
    assert not unknown, f"set in deploy/ but read by nothing (a typo?): {unknown}"


def test_the_scan_finds_the_settings_it_should():
    # Guards the regular expressions above: if they broke, the tests above would pass vacuously.
    assert {"SECRET_KEY", "DATABASE_URL", "MAX_IMAGE_BYTES", "ALLOWED_HOSTS",
            "ALLOW_LOCAL_KMS_IN_PRODUCTION"} <= _settings_names()
    assert {"WEB_CONCURRENCY", "APP_DB_ROLE"} <= _deploy_script_names()
    assert {"DATABASE_URL", "KMS_KEY_ID"} <= _compose_names() & _k8s_names()


def test_web_worker_and_beat_run_one_image_and_never_as_a_superuser_url():
    compose = yaml.safe_load((DEPLOY_DIR / "compose.yaml").read_text())
    ours = {name: spec for name, spec in compose["services"].items() if name not in FOREIGN_SERVICES}
    assert {spec["image"] for spec in ours.values()} == {"${FACESERVICE_IMAGE:-faceservice:latest}"}
    for name, spec in ours.items():
        url = spec["environment"]["DATABASE_URL"]
        assert "postgres:${" not in url and "//postgres:" not in url, (name, url)
        expected_role = "faceservice_owner" if name == "migrate" else "faceservice_app"
        assert url.startswith(f"postgresql://{expected_role}:"), (name, url)

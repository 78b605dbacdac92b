"""Production refuses to start with insecure settings."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from faceservice.settings.security import production_problems
from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.pure

STRONG_SECRET = "q" * 20 + "7Hk2-vN9_pX4wZ1rT6yB3mC8sD5fG0jL"  # 52 characters, no dev prefix

SECURE = {
    "DEBUG": False,
    "SECRET_KEY": STRONG_SECRET,
    "ALLOWED_HOSTS": ["faces.example.com"],
    "DATABASE_URL": "postgresql://faceservice:pw@db.internal:5432/faceservice",
    "KMS_PROVIDER": "aws",
    "KMS_KEY_ID": "alias/faceservice",
}

INSECURE_CASES = {
    "debug on": ({"DEBUG": True}, "DEBUG"),
    "secret missing": ({"SECRET_KEY": ""}, "SECRET_KEY"),
    "secret short": ({"SECRET_KEY": "x" * 49}, "SECRET_KEY"),
    "dev secret": ({"SECRET_KEY": "dev-only-insecure-secret-key-change-me" + "x" * 20}, "SECRET_KEY"),
    "no hosts": ({"ALLOWED_HOSTS": []}, "ALLOWED_HOSTS"),
    "any host": ({"ALLOWED_HOSTS": ["faces.example.com", "*"]}, "ALLOWED_HOSTS"),
    "no database": ({"DATABASE_URL": ""}, "DATABASE_URL"),
    "aws without key id": ({"KMS_KEY_ID": ""}, "KMS_KEY_ID"),
    "unknown kms": ({"KMS_PROVIDER": "vault"}, "KMS_PROVIDER"),
}


def test_secure_settings_have_no_problems(monkeypatch):
    monkeypatch.delenv("ALLOW_LOCAL_KMS_IN_PRODUCTION", raising=False)
    assert production_problems(SECURE) == []


@pytest.mark.parametrize(("change", "named"), INSECURE_CASES.values(), ids=INSECURE_CASES.keys())
def test_each_insecure_setting_is_refused(change, named):
    problems = production_problems({**SECURE, **change})
    assert len(problems) == 1 and named in problems[0], problems


def test_local_kms_needs_an_explicit_opt_in(monkeypatch):
    local = {**SECURE, "KMS_PROVIDER": "local", "KMS_KEY_ID": ""}
    monkeypatch.delenv("ALLOW_LOCAL_KMS_IN_PRODUCTION", raising=False)
    assert any("KMS_PROVIDER=local" in problem for problem in production_problems(local))
    monkeypatch.setenv("ALLOW_LOCAL_KMS_IN_PRODUCTION", "1")
    assert production_problems(local) == []


# --- starting Django for real ------------------------------------------------------------

PRODUCTION_ENV_NAMES = ["DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "KMS_PROVIDER",
                        "KMS_KEY_ID", "ALLOW_LOCAL_KMS_IN_PRODUCTION", "FACESERVICE_ENV"]


def _start_django(**env: str) -> subprocess.CompletedProcess:
    clean = {name: value for name, value in os.environ.items() if name not in PRODUCTION_ENV_NAMES}
    clean.update(DJANGO_SETTINGS_MODULE="faceservice.settings", FACESERVICE_ENV="production", **env)
    return subprocess.run([sys.executable, "-c", "import django; django.setup(); print('started')"],
                          env=clean, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120)


def test_production_start_with_insecure_env_fails_naming_the_problems():
    result = _start_django(DEBUG="1", SECRET_KEY="short", ALLOWED_HOSTS="*", KMS_PROVIDER="aws")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    for named in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "KMS_KEY_ID"):
        assert named in result.stderr, (named, result.stderr[-2000:])
    assert "started" not in result.stdout


def test_production_start_with_secure_env_passes():
    result = _start_django(SECRET_KEY=STRONG_SECRET, ALLOWED_HOSTS="faces.example.com",
                           DATABASE_URL=SECURE["DATABASE_URL"], KMS_PROVIDER="aws",
                           KMS_KEY_ID="alias/faceservice")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "started" in result.stdout

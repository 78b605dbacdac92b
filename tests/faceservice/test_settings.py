"""Typed settings: each variable parsed by its type, documented once, and a bad one named at start."""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

import faceservice.settings
from faceservice.celery import app
from faceservice.settings import docs
from faceservice.settings.environment import CommaList, Flag, Variables, read
from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.pure

DEPLOY_DOC = PROJECT_DIR / "docs" / "DEPLOY.md"
# Where the service itself reads variables (bench/ and tests/ set their own).
SERVICE_CODE = ["faceservice", "tenants", "embeddings", "audit", "deploy"]
ENVIRON_READ = re.compile(r"os\.(?:getenv\(|environ\[|environ\.(?:get|setdefault|pop)\()\s*[\"']([A-Z][A-Z0-9_]*)[\"']")
# Set by the runtime or read by libraries (boto3), not settings of ours.
NOT_OURS = {"DJANGO_SETTINGS_MODULE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"}
BAD_VALUE = "not-a-value-7f3a"


def _declared_names() -> set[str]:
    return {name for variables in docs.TABLES for name in variables.model_fields}


def _names_read_from_os_environ() -> set[str]:
    return {name for folder in SERVICE_CODE for path in (PROJECT_DIR / folder).rglob("*.py")
            for name in ENVIRON_READ.findall(path.read_text())}


def _names_referenced_by_deploy_files() -> set[str]:
    """`${NAME...}` in compose.yaml, `$(NAME)` in the Kubernetes manifests (a worker's --concurrency)."""
    compose = (PROJECT_DIR / "deploy" / "compose.yaml").read_text()
    manifests = "".join(path.read_text() for path in (PROJECT_DIR / "deploy" / "k8s").glob("*.yaml"))
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", compose)) | set(re.findall(r"\$\(([A-Z][A-Z0-9_]*)\)", manifests))


def _documented_names() -> set[str]:
    """The variables in the first column of the tables under "Production settings"."""
    text = DEPLOY_DOC.read_text()
    section = text[text.index("## Production settings\n"):]
    section = section[:section.index("\n## ", 1)]
    first_cells = re.findall(r"^\| ([^|]*`[A-Z][A-Z0-9_]*`[^|]*) \|", section, re.MULTILINE)
    return {name for cell in first_cells for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cell)}


# --- documented once -----------------------------------------------------------------

def test_deploy_doc_tables_are_the_generated_ones():
    documented = docs.documented_tables(DEPLOY_DOC.read_text())
    assert documented == docs.tables(), "run `python -m faceservice.settings.docs --write`"


def test_every_variables_class_has_a_table():
    modules = [importlib.import_module(f"faceservice.settings.{info.name}")
               for info in pkgutil.iter_modules(faceservice.settings.__path__)]
    defined = {value for module in modules for value in vars(module).values()
               if isinstance(value, type) and issubclass(value, Variables) and value.__module__ == module.__name__}
    assert defined - {Variables} == set(docs.TABLES)


def test_every_variable_the_code_reads_is_documented():
    read_by_code = (_declared_names() | _names_read_from_os_environ()) - NOT_OURS
    missing = sorted(read_by_code - _documented_names())
    assert not missing, f"add these to docs/DEPLOY.md (Production settings): {missing}"


def test_every_documented_variable_is_read_by_something():
    read = _declared_names() | _names_read_from_os_environ() | _names_referenced_by_deploy_files() | NOT_OURS
    unread = sorted(_documented_names() - read)
    assert not unread, f"documented in docs/DEPLOY.md but read by nothing: {unread}"


def test_the_scans_find_what_they_should():
    # Guards the regular expressions: broken, they would let the tests above pass vacuously.
    assert {"ALLOW_LOCAL_KMS_IN_PRODUCTION", "OPENBLAS_NUM_THREADS", "WEB_CONCURRENCY"} <= _names_read_from_os_environ()
    assert {"DEBUG", "SEARCH_CANDIDATE_FACTOR", "AWS_REGION", "PORT", "WORKER_CONCURRENCY"} <= _documented_names()
    assert len(_declared_names()) > 90


def test_each_variable_is_declared_once():
    names = [name for variables in docs.TABLES for name in variables.model_fields]
    assert len(names) == len(set(names))


# --- typed parsing ---------------------------------------------------------------------

class Sample(Variables):
    SETTINGS_TEST_COUNT: int = 3
    SETTINGS_TEST_RATIO: float = 0.5
    SETTINGS_TEST_ENABLED: Flag = True
    SETTINGS_TEST_NAME: str = "default"
    SETTINGS_TEST_ITEMS: CommaList = ["x"]


def test_values_are_parsed_by_type(monkeypatch):
    for name, value in {"SETTINGS_TEST_COUNT": " 12 ", "SETTINGS_TEST_RATIO": "0.25", "SETTINGS_TEST_ENABLED": " Off",
                        "SETTINGS_TEST_NAME": "n", "SETTINGS_TEST_ITEMS": " a , b,, c "}.items():
        monkeypatch.setenv(name, value)
    sample = read(Sample)
    assert (sample.SETTINGS_TEST_COUNT, sample.SETTINGS_TEST_RATIO, sample.SETTINGS_TEST_ENABLED) == (12, 0.25, False)
    assert (sample.SETTINGS_TEST_NAME, sample.SETTINGS_TEST_ITEMS) == ("n", ["a", "b", "c"])


def test_unset_variables_take_their_defaults():
    sample = read(Sample)
    assert (sample.SETTINGS_TEST_COUNT, sample.SETTINGS_TEST_NAME, sample.SETTINGS_TEST_ITEMS) == (3, "default", ["x"])


def test_empty_numbers_and_flags_are_unset_but_empty_text_and_lists_are_values(monkeypatch):
    for name in Sample.model_fields:
        monkeypatch.setenv(name, "")
    sample = read(Sample)
    assert (sample.SETTINGS_TEST_COUNT, sample.SETTINGS_TEST_RATIO, sample.SETTINGS_TEST_ENABLED) == (3, 0.5, True)
    assert (sample.SETTINGS_TEST_NAME, sample.SETTINGS_TEST_ITEMS) == ("", [])


@pytest.mark.parametrize("word", ["1", "true", "YES", "on"])
def test_flag_true_words(monkeypatch, word):
    monkeypatch.setenv("SETTINGS_TEST_ENABLED", word)
    assert read(Sample).SETTINGS_TEST_ENABLED is True


def test_names_are_case_sensitive(monkeypatch):
    monkeypatch.setenv("settings_test_count", "99")
    assert read(Sample).SETTINGS_TEST_COUNT == 3


TYPED = [(variables, name) for variables in docs.TABLES for name, field in variables.model_fields.items()
         if field.annotation in (int, float, bool)]


@pytest.mark.parametrize(("variables", "name"), TYPED, ids=[name for _, name in TYPED])
def test_a_bad_value_is_refused_naming_the_variable_not_the_value(monkeypatch, variables, name):
    monkeypatch.setenv(name, BAD_VALUE)
    with pytest.raises(ImproperlyConfigured) as refused:
        read(variables)
    assert name in str(refused.value) and BAD_VALUE not in str(refused.value)


def test_a_bad_value_stops_the_start_naming_the_variable():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "faceservice.settings", "SEARCH_CANDIDATE_FACTOR": BAD_VALUE}
    result = subprocess.run([sys.executable, "-c", "import django; django.setup(); print('started')"],
                            env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "started" not in result.stdout
    assert "ImproperlyConfigured" in result.stderr and "SEARCH_CANDIDATE_FACTOR" in result.stderr, result.stderr[-2000:]
    assert BAD_VALUE not in result.stderr


# --- what the settings make of them ----------------------------------------------------------

def test_production_only_https_settings_stay_off_in_development():
    # SECURE_SSL_REDIRECT defaults to on: exported in development it would redirect every request.
    assert not settings.PRODUCTION
    assert settings.SECURE_SSL_REDIRECT is False and settings.SECURE_HSTS_SECONDS == 0


def test_variables_feeding_built_settings_are_not_settings_of_their_own():
    for name in ("FACESERVICE_ENV", "FACESERVICE_RUN_DIR", "DB_CONN_MAX_AGE", "CELERY_VISIBILITY_TIMEOUT",
                 "RATE_LIMIT_PER_KEY", "NUM_PROXIES", "CONSOLE_IDLE_TIMEOUT_SECONDS"):
        assert not hasattr(settings, name), name


def test_the_beat_schedule_and_routes_name_registered_tasks():
    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    unknown = sorted((scheduled | set(settings.CELERY_TASK_ROUTES)) - set(app.tasks))
    assert not unknown, f"no Celery task has these names: {unknown}"


def test_env_example_sets_only_what_compose_reads():
    example = (PROJECT_DIR / "deploy" / "env.example").read_text()
    names = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
    compose = (PROJECT_DIR / "deploy" / "compose.yaml").read_text()
    unread = sorted(names - set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", compose)))
    assert names and not unread, f"deploy/env.example sets what compose.yaml never reads: {unread}"

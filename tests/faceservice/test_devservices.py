"""`./dev run`'s closing block (issue #14), its web process, its supervision and `./dev audit`'s verdict (#18)."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from faceservice.devservices import (
    AUDIT_IGNORE_FILE,
    ISSUE_KEY_COMMAND,
    PROJECT_DIR,
    Background,
    Supervisor,
    accepted_advisories,
    audit_findings,
    demo_key_banner,
    web_server,
)

pytestmark = pytest.mark.pure

CREATED = """Tenant 'demo' created: 0b9f0a52-0000-4000-8000-000000000000
API key (roles admin, indexer, searcher), shown only now:
fsk_abcd1234_secretsecretsecret
"""
EXISTS = "Tenant 'demo' exists already; its keys were shown when they were made.\n"


def test_a_new_demo_key_is_shown_in_a_block_with_an_example():
    banner = demo_key_banner(CREATED, "8000")
    lines = banner.splitlines()
    assert lines[0] == lines[-1] == "=" * 78
    assert "    fsk_abcd1234_secretsecretsecret" in lines
    assert "Bearer fsk_abcd1234_secretsecretsecret' http://127.0.0.1:8000/v1/tenant" in banner


def test_on_a_restart_it_says_which_command_issues_another():
    banner = demo_key_banner(EXISTS, "8000")
    assert "fsk_" not in banner and ISSUE_KEY_COMMAND in banner
    assert "manage.py issue_api_key demo --name" in ISSUE_KEY_COMMAND and "--roles admin" in ISSUE_KEY_COMMAND


# --- the web process --------------------------------------------------------------------

def test_the_web_process_runs_on_the_deployed_gunicorn_settings_and_nothing_more():
    # No access-log flag can sneak in here: deploy/gunicorn.conf.py (accesslog None) decides.
    args = web_server({}, 8123).args
    assert args[args.index("--config") + 1] == str(PROJECT_DIR / "deploy" / "gunicorn.conf.py")
    assert not [arg for arg in args if "access" in arg or "log" in arg]
    assert args[-2:] == ["--bind", "127.0.0.1:8123"]


def test_the_deployed_gunicorn_settings_write_no_access_log():
    config: dict = {}
    exec((PROJECT_DIR / "deploy" / "gunicorn.conf.py").read_text(), config)  # noqa: S102 - our own file
    assert config["accesslog"] is None


# --- supervision -------------------------------------------------------------------------

def _sleeper(name: str) -> Background:
    return Background(name, [sys.executable, "-c", "import time; time.sleep(120)"])


def _supervise_until(supervisor: Supervisor, done, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the supervisor did not act in time"
        supervisor.check()
        time.sleep(0.02)


def test_a_process_that_dies_is_restarted_after_a_back_off_and_the_others_keep_running(capsys):
    worker, web = _sleeper("worker"), _sleeper("web")
    worker.start()
    web.start()
    supervisor = Supervisor([worker, web], base_seconds=0.3)
    try:
        first, web_pid = worker.process.pid, web.process.pid
        os.killpg(first, signal.SIGKILL)
        killed_at = time.monotonic()
        _supervise_until(supervisor, lambda: worker.process.pid != first)
        waited = time.monotonic() - killed_at
        assert worker.process.poll() is None and 0.3 <= waited < 5
        assert web.process.pid == web_pid and web.process.poll() is None  # untouched
        assert "worker exited with code -9; restarting it in 0.3s (restart 1)" in capsys.readouterr().err

        # It dies again at once: the back-off doubles rather than spinning.
        second = worker.process.pid
        os.killpg(second, signal.SIGKILL)
        _supervise_until(supervisor, lambda: worker.process.pid != second)
        assert "restarting it in 0.6s (restart 2)" in capsys.readouterr().err
    finally:
        supervisor.stop()  # what Ctrl-C does: every process stops
    assert worker.process.poll() is not None and web.process.poll() is not None


def test_a_process_that_keeps_dying_is_retried_with_a_growing_back_off(capsys):
    crashing = Background("beat", [sys.executable, "-c", "raise SystemExit(3)"])
    crashing.start()
    supervisor = Supervisor([crashing], base_seconds=0.1)
    try:
        _supervise_until(supervisor, lambda: supervisor.processes[0].restarts >= 4)
    finally:
        supervisor.stop()
    delays = [line.split("restarting it in ")[1].split("s ")[0]
              for line in capsys.readouterr().err.splitlines() if "restarting it in" in line]
    assert delays[:4] == ["0.1", "0.2", "0.4", "0.8"]


# --- ./dev audit ------------------------------------------------------------------------

def _report(*dependencies: dict) -> dict:
    return {"dependencies": list(dependencies), "fixes": []}


DJANGO_VULN = {"id": "PYSEC-2099-1", "aliases": ["CVE-2099-0001", "GHSA-xxxx-yyyy-zzzz"], "fix_versions": ["5.2.99"]}


def test_a_vulnerable_pin_is_named_with_its_advisory_and_fixed_version():
    report = _report({"name": "django", "version": "5.2.19", "vulns": [DJANGO_VULN]},
                     {"name": "numpy", "version": "2.4.6", "vulns": []})
    vulnerable, unaudited = audit_findings(report, accepted={})
    assert vulnerable == ["django==5.2.19: PYSEC-2099-1 (fixed in: 5.2.99)"] and unaudited == []


@pytest.mark.parametrize("advisory", ["PYSEC-2099-1", "CVE-2099-0001", "GHSA-xxxx-yyyy-zzzz"])
def test_an_accepted_advisory_is_accepted_under_any_of_its_ids(advisory):
    report = _report({"name": "django", "version": "5.2.19", "vulns": [DJANGO_VULN]})
    assert audit_findings(report, accepted={advisory: "not reachable from our code"}) == ([], [])


def test_a_package_that_could_not_be_looked_up_is_reported_except_our_own():
    report = _report({"name": "django", "version": "5.2.19", "skip_reason": "Dependency not found on PyPI"},
                     {"name": "facesearch-client", "version": "0.1.0", "skip_reason": "not on PyPI"})
    assert audit_findings(report, accepted={}) == ([], ["django"])


def test_accepted_advisories_need_a_reason(tmp_path):
    listing = tmp_path / "pip-audit-ignore"
    listing.write_text("# comment\n\nPYSEC-2099-1 2099-01-01: only the admin uses it  # note\n")
    assert accepted_advisories(listing) == {"PYSEC-2099-1": "2099-01-01: only the admin uses it"}
    listing.write_text("GHSA-xxxx-yyyy-zzzz\n")
    with pytest.raises(ValueError, match="no reason"):
        accepted_advisories(listing)


def test_the_project_accepts_no_advisory_without_a_reason():
    assert isinstance(accepted_advisories(AUDIT_IGNORE_FILE), dict)

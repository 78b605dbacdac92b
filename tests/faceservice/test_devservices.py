"""`./dev run`'s closing block: the demo key where it can be seen, or how to issue one (issue #14)."""

from __future__ import annotations

import pytest

from faceservice.devservices import ISSUE_KEY_COMMAND, demo_key_banner

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

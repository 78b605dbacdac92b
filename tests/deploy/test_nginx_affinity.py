"""deploy/nginx/faceservice.conf routes every key of a tenant to the same web node: its maps, read from
the file and applied the way nginx applies them, to keys the service really issues."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.conftest import PROJECT_DIR

CONF = (PROJECT_DIR / "deploy" / "nginx" / "faceservice.conf").read_text()


def _map(variable: str) -> list[tuple[re.Pattern, str]]:
    """The regex entries of one `map ... $variable { ... }` block, as (pattern, captured group's name)."""
    block = re.search(r"map \S+ \$" + variable + r" \{(.*?)\n\}", CONF, re.S).group(1)
    entries = []
    for pattern, _ in re.findall(r'"(~\*?[^"]+)"\s+\$(\w+);', block):
        flags = re.I if pattern.startswith("~*") else 0
        nginx_regex = pattern.lstrip("~*").replace("(?<", "(?P<")
        entries.append((re.compile(nginx_regex, flags), "tag"))
    return entries


def tenant_tag(authorization: str = "", x_api_key: str = "", remote_addr: str = "203.0.113.9") -> str:
    for pattern, group in _map("faceservice_tenant_tag"):
        if match := pattern.search(authorization):
            return match.group(group)
    for pattern, group in _map("faceservice_key_tag"):
        if match := pattern.search(x_api_key):
            return match.group(group)
    return remote_addr


def test_the_proxy_hashes_on_the_tenant_tag_consistently():
    upstream = re.search(r"upstream faceservice_web \{(.*?)\}", CONF, re.S).group(1)
    assert "hash $faceservice_tenant_tag consistent;" in upstream
    assert len(re.findall(r"^\s*server ", upstream, re.M)) >= 2


def test_the_proxy_logs_no_query_string_header_or_body():
    log_format = re.search(r"log_format faceservice_safe.*?;", CONF, re.S).group(0)
    for leaky in ("$request ", "$request_uri", "$args", "$query_string", "$http_", "$request_body"):
        assert leaky not in log_format, leaky
    assert "access_log /var/log/nginx/faceservice.log faceservice_safe;" in CONF


def test_every_key_of_a_tenant_gets_the_tenants_tag(db):
    from audit.services import Actor
    from tenants import services
    from tenants.api_keys import routing_tag

    operator = Actor.operator("tests")
    tags = {}
    for _ in range(2):
        tenant = services.create_tenant(name=f"route-{uuid.uuid4().hex[:8]}", actor=operator)
        keys = [services.create_api_key(tenant_id=tenant.id, name=f"k{i}", roles=["searcher"], actor=operator)
                .plaintext for i in range(3)]
        seen = {tenant_tag(authorization=f"Bearer {key}") for key in keys}
        seen |= {tenant_tag(x_api_key=key) for key in keys}
        assert seen == {routing_tag(tenant.id)}, seen
        tags[tenant.id] = seen.pop()
    assert tenant_tag() == "203.0.113.9"  # no key: by address


@pytest.mark.pure
def test_routing_tags_spread_tenants_evenly():
    from tenants.api_keys import routing_tag

    tags = [int(routing_tag(uuid.uuid4()), 16) for _ in range(4000)]
    per_node = [sum(1 for t in tags if t % 4 == node) for node in range(4)]
    assert min(per_node) > 800  # 1,000 each on average

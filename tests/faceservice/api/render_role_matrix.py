"""Print docs/ROLES.md from the role table in role_matrix.py.

    .venv/bin/python -m tests.faceservice.api.render_role_matrix > docs/ROLES.md
"""

from __future__ import annotations

import sys

from tests.faceservice.api.role_matrix import ALL_ROLES, ENDPOINTS, ROLE_PURPOSES

REGENERATE = ".venv/bin/python -m tests.faceservice.api.render_role_matrix > docs/ROLES.md"


def render() -> str:
    lines = [
        "# Roles and endpoints",
        "",
        f"<!-- Generated from tests/faceservice/api/role_matrix.py; do not edit. Regenerate with: {REGENERATE} -->",
        "",
        "Every API key holds one or more roles. A request is allowed when the key holds",
        "at least one role marked for its method and path; otherwise it gets",
        "`403` with error code `forbidden` (and the refusal is audited). A missing,",
        "revoked or expired key, or a key of a suspended tenant, gets `401` before any",
        "role is looked at.",
        "",
        "| Role | For |",
        "|---|---|",
        *(f"| `{role}` | {ROLE_PURPOSES[role]} |" for role in ALL_ROLES),
        "",
        "| Method | Path | " + " | ".join(ALL_ROLES) + " | What |",
        "|---|---|" + "---|" * len(ALL_ROLES) + "---|",
        *(_row(endpoint) for endpoint in ENDPOINTS),
        "",
        "This table and the test suite read the same source: `tests/faceservice/api/role_matrix.py`.",
        "The tests call every row with a key of every role, and fail when a `/v1` route",
        "has no row. To change a role or add an endpoint, edit that file and regenerate",
        "this page with:",
        "",
        f"    {REGENERATE}",
        "",
    ]
    return "\n".join(lines)


def _row(endpoint) -> str:
    marks = " | ".join("✓" if role in endpoint.roles else "" for role in ALL_ROLES)
    return f"| {endpoint.method} | `{endpoint.path}` | {marks} | {endpoint.summary} |"


if __name__ == "__main__":
    sys.stdout.write(render())

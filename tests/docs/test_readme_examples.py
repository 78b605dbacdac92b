"""The README's "Call it" examples run as written: every curl command, in order, from the repository root,
against a live server and worker, with only $KEY and the host substituted; each answer is checked."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PROJECT_DIR

README = PROJECT_DIR / "README.md"
HOST = "localhost:8000"


def _call_it_commands() -> list[str]:
    """The shell commands of the "Call it" section's code block: continuation lines joined, comments and
    the `export KEY=` line (the key is the test's) left out."""
    text = README.read_text()
    section = text[text.index("## Call it"):text.index("### Python client")]
    commands, current = [], ""
    for line in section.splitlines():
        if not line.startswith("    ") or line.strip().startswith("#"):
            continue
        current += line.strip().removesuffix("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            commands.append(current.strip())
            current = ""
    assert commands and commands[0].startswith("export KEY="), commands
    return commands[1:]


def _command_with(fragment: str) -> str:
    (command,) = [command for command in _call_it_commands() if fragment in command]
    return command


@pytest.mark.pure
def test_every_curl_of_the_readme_is_in_the_call_it_section():
    """So that the live test below runs every one."""
    in_section = sum(command.count("curl ") for command in _call_it_commands())
    assert in_section == README.read_text().count("curl ") == 6


@pytest.mark.pure
def test_index_job_example_is_a_valid_multipart_submission(settings):
    from embeddings.indexing.apis import ManifestInput

    words = shlex.split(_command_with("/v1/index-jobs -H"))
    forms = dict(words[i + 1].split("=", 1) for i, word in enumerate(words) if word == "-F")
    manifest = ManifestInput(data=json.loads(forms.pop("manifest")))
    assert manifest.is_valid(), manifest.errors
    (asset,) = manifest.validated_data["assets"]
    photo = forms[asset["file"]]
    assert photo.startswith("@") and (PROJECT_DIR / photo[1:]).is_file(), photo  # a real local photo


@pytest.mark.pure
def test_every_photo_of_the_examples_exists():
    photos = re.findall(r"=@(\S+)", " ".join(_call_it_commands()))
    assert len(photos) == 5 and all((PROJECT_DIR / photo).is_file() for photo in photos), photos


@dataclass
class Answer:
    status: int
    body: dict


class ReadmeShell:
    """Runs README commands as written with bash from the repository root. `curl` is wrapped to record each
    answer's headers and body as it passes (its output is unchanged, so pipes work); a variable a command
    assigns (`JOB=$(...)`) is handed to the commands after it, as a terminal would keep it."""

    def __init__(self, server: str, key: str, work: Path) -> None:
        self.host = server.removeprefix("http://")
        self.env = {**os.environ, "KEY": key}
        self.work = work

    def run(self, command: str) -> Answer:
        headers, body = self.work / "headers", self.work / "body"
        assigned = re.findall(r"^(\w+)=\$\(", command)
        script = "\n".join([
            f'curl() {{ command curl --dump-header "{headers}" "$@" | tee "{body}"; }}',
            command.replace(HOST, self.host),
            *(f'printf %s "${name}" > "{self.work / name}"' for name in assigned)])
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True,
                              timeout=120, cwd=PROJECT_DIR, env=self.env)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        for name in assigned:
            self.env[name] = (self.work / name).read_text()
        statuses = [line.split()[1] for line in headers.read_text().splitlines() if line.startswith("HTTP/")]
        return Answer(int(statuses[-1]), json.loads(body.read_text()))  # the last: after any 100 Continue


def test_every_call_it_example_runs_as_written(committed_db, tmp_path):
    """A fresh tenant with the demo key's roles; the answers the README's comments promise."""
    from audit.services import Actor
    from embeddings.indexing.models import IndexJobAsset
    from faceservice.tenancy import platform_scope
    from tenants import services
    from tests.client.conftest import running_server, running_worker

    tenant = services.create_tenant(name=f"readme-{os.urandom(4).hex()}", actor=Actor.operator("tests"))
    key = services.create_api_key(tenant_id=tenant.id, name="readme", roles=["admin", "indexer", "searcher"],
                                  actor=Actor.operator("tests")).plaintext
    tenant_info, index, poll, search, compare, delete = _call_it_commands()
    with running_server(tmp_path) as server, running_worker(tmp_path):
        shell = ReadmeShell(server, key, tmp_path)

        answer = shell.run(tenant_info)
        assert (answer.status, answer.body["id"]) == (200, str(tenant.id)), answer

        answer = shell.run(index)
        assert (answer.status, answer.body["id"]) == (202, shell.env["JOB"]), answer
        with platform_scope():
            rows = list(IndexJobAsset.objects.filter(job_id=shell.env["JOB"]).values_list(
                "asset_id", "subject_id", "source_kind"))
        assert rows == [("photo-1", "obama", "inline")]

        deadline = time.monotonic() + 60
        while (answer := shell.run(poll)).body["state"] in ("queued", "running"):  # poll, as the README says
            assert time.monotonic() < deadline, answer
            time.sleep(0.5)
        assert (answer.status, answer.body["state"]) == (200, "succeeded"), answer

        answer = shell.run(search)
        best = answer.body["faces"][0]["matches"][0]
        assert (answer.status, best["subject_id"], best["asset_id"]) == (200, "obama", "photo-1"), answer

        answer = shell.run(compare)
        assert answer.status == 200, answer
        assert [comparison["match"] for comparison in answer.body["comparisons"]] == [True, False], answer

        answer = shell.run(delete)
        assert answer.status == 200, answer
        assert (answer.body["requested"], answer.body["faces_deleted"]) == ({"subject_ids": ["obama"]}, 1)

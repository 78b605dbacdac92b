"""The restore drill (docs/OPERATIONS.md, "Backups and restore"), run by every `./dev test`.

Faces of real photos are indexed for two tenants, one of them is purged
(crypto-shredding), the database is dumped with deploy/backup.sh and restored
with deploy/restore.sh into a FRESH PostgreSQL server, started the way
`./dev test` starts its own (faceservice/devservices.py EmbeddedPostgres, same
binaries). A fresh server rather than a second database on the running one:
that is what a disaster needs (no role, no extension, no setting carried over
by accident), and it costs a few seconds of initdb.

The restored database is then read by a separate process, as an operator
would after a restore: the service's own code with DATABASE_URL pointing at
the new server and the same KMS keyring and anchor key. It must show:
- every face of the kept tenant decrypts to the same embedding, and the same
  probes find the same faces with the same similarities;
- every audit chain verifies as it did before the dump (anchors included), and
  `manage.py verify_audit_chain` passes for the purged tenant's chain;
- the purged tenant stays unreadable: no face row, every data key destroyed,
  nothing its sealed embeddings or wrapped key were anywhere in the database.

It also pins the limit docs/SECURITY.md section 7 states: a backup taken BEFORE
the purge still holds the wrapped key, and the master key still opens it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg import sql

from tests.conftest import FACES_DIR, PROJECT_DIR

KNOWN = FACES_DIR / "known-people"
BACKUP_SCRIPT = PROJECT_DIR / "deploy" / "backup.sh"
RESTORE_SCRIPT = PROJECT_DIR / "deploy" / "restore.sh"
RESULT_MARK = "RESTORE-DRILL-RESULT "
TOP_K = 5

pytestmark = [
    pytest.mark.skipif(not os.environ.get("DATABASE_SUPERUSER_URL"),
                       reason="needs DATABASE_SUPERUSER_URL to dump every tenant (./dev test sets it)"),
    pytest.mark.skipif(not KNOWN.is_dir(), reason=f"{KNOWN} is missing"),
]


# --- What both sides compute: the source in this process, the restored copy in a child --------------

def embedding_digests(tenant_id: str) -> dict[str, str]:
    """{face id: SHA-256 of its decrypted float32 embedding}: proof every face opens, and to what."""
    from embeddings.store.models import Face
    from embeddings.store.protection import decrypt_embedding
    from faceservice.tenancy import tenant_context
    from tenants.data_keys import data_key

    digests = {}
    with tenant_context(tenant_id):
        for face in Face.objects.filter(tenant_id=tenant_id):
            vector = decrypt_embedding(dek=data_key(tenant_id=tenant_id, version=face.key_version),
                                       ciphertext=bytes(face.embedding_ciphertext), tenant_id=str(tenant_id),
                                       face_id=str(face.id), key_version=face.key_version,
                                       model_id=face.model_id)
            digests[str(face.id)] = hashlib.sha256(vector.astype("<f4").tobytes()).hexdigest()
    return digests


def search_results(tenant_id: str, probes: list[list[float]], model_id: str) -> list[list[list]]:
    """Each probe's best TOP_K faces (no threshold): [face id, subject id, exact similarity]."""
    from embeddings.search.selectors import search_faces_many

    found = search_faces_many(tenant_id=tenant_id, embeddings=[np.asarray(p, dtype=np.float32) for p in probes],
                              model_id=model_id, top_k=TOP_K, threshold=-1.0)
    return [[[str(m.face_id), m.subject_id, float(m.similarity)] for m in matches] for matches in found]


def chain_outcomes() -> dict[str, bool]:
    """{chain: verifies}, for every chain in the database (anchors checked too)."""
    from audit.verification import all_chains, verify_chain

    return {chain: verify_chain(chain).ok for chain in all_chains()}


def purged_state(tenant_id: str) -> dict:
    """What the service itself can still read of a purged tenant."""
    from embeddings.store.models import Asset, Face
    from faceservice.tenancy import tenant_context
    from tenants.data_keys import NoDataKey, data_key
    from tenants.models import TenantKey

    with tenant_context(tenant_id):
        faces = Face.objects.filter(tenant_id=tenant_id).count()
        assets = Asset.objects.filter(tenant_id=tenant_id).count()
        keys = list(TenantKey.objects.filter(tenant_id=tenant_id).values_list("version", "status", "wrapped_key"))
    unreadable = []
    for version, _, _ in keys:
        try:
            data_key(tenant_id=tenant_id, version=version)
        except NoDataKey:
            unreadable.append(version)
    return {"faces": faces, "assets": assets, "unreadable_versions": unreadable,
            "keys": [[version, status, wrapped is not None] for version, status, wrapped in keys]}


def read_back() -> None:
    """The child process's part: read the restored database as the service would; JSON in, JSON out."""
    request = json.loads(sys.stdin.read())
    kept, purged = request["kept"], request["purged"]
    result = {"digests": embedding_digests(kept),
              "search": search_results(kept, request["probes"], request["model_id"]),
              "chains": chain_outcomes(), "purged": purged_state(purged)}
    print(RESULT_MARK + json.dumps(result), flush=True)


# --- The drill ---------------------------------------------------------------------------------------

def enrol(tenant_ids: list, analyses: list[tuple[str, str, object]], model_id: str) -> None:
    from django.utils import timezone

    from audit.services import Actor
    from embeddings.store import services

    for tenant_id in tenant_ids:
        for subject_id, asset_id, face in analyses:
            services.replace_asset_faces(tenant_id=tenant_id, asset_id=asset_id, subject_id=subject_id,
                                         faces=[face], model_id=model_id, submitted_at=timezone.now(),
                                         actor=Actor.system("restore-drill"))


def analyse_photos() -> tuple[list[tuple[str, str, object]], list[list[float]], str]:
    """(each enrol photo's largest face as (subject, asset id, face), every probe face's embedding, model id)."""
    from embeddings.engine import decode_image
    from embeddings.face_engine import face_engine

    engine = face_engine()
    enrolled = []
    for person in sorted((KNOWN / "enroll").iterdir()):
        for path in sorted(person.iterdir()):
            faces = engine.analyze(decode_image(path.read_bytes())).faces
            enrolled.append((person.name, f"{person.name}/{path.name}", faces[0]))
    probes = [face.embedding.tolist() for path in sorted((KNOWN / "probe").iterdir())
              for face in engine.analyze(decode_image(path.read_bytes())).faces]
    return enrolled, probes, engine.model_id


def secrets_of(tenant_id) -> tuple[list[tuple], list[tuple]]:
    """The purged tenant's sealed faces and wrapped keys, as any backup taken before the purge holds them."""
    from embeddings.store.models import Face
    from faceservice.tenancy import tenant_context
    from tenants.models import TenantKey

    with tenant_context(tenant_id):
        faces = [(str(f.id), bytes(f.embedding_ciphertext), f.key_version, f.model_id)
                 for f in Face.objects.filter(tenant_id=tenant_id)]
        keys = [(k.version, bytes(k.wrapped_key), k.master_key_id)
                for k in TenantKey.objects.filter(tenant_id=tenant_id)]
    return faces, keys


def run_script(script: Path, env: dict[str, str], *args: str) -> None:
    done = subprocess.run([str(script), *args], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"{script.name} failed:\n{done.stdout}\n{done.stderr}"


def restored_env(server) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": server.app_url(), "DATABASE_SUPERUSER_URL": server.superuser_url()}


def read_back_in_child(server, request: dict) -> dict:
    code = ("import django; django.setup(); "
            "from tests.deploy.test_restore_drill import read_back; read_back()")
    done = subprocess.run([sys.executable, "-c", code], input=json.dumps(request), env=restored_env(server),
                          cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK))
    return json.loads(line[len(RESULT_MARK):])


def verify_chain_command(server, tenant_id) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "verify_audit_chain", "--tenant", str(tenant_id),
                           "--no-record"], env=restored_env(server), cwd=PROJECT_DIR, capture_output=True,
                          text=True, timeout=120)


def blobs_found(superuser_url: str, blobs: list[bytes]) -> list[str]:
    """Every bytea column of every table that holds one of the blobs, read past row-level security."""
    hits = []
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        columns = conn.execute("SELECT table_name, column_name FROM information_schema.columns "
                               "WHERE table_schema = 'public' AND data_type = 'bytea'").fetchall()
        for table, column in columns:
            query = sql.SQL("SELECT count(*) FROM {} WHERE {} = ANY(%s)").format(
                sql.Identifier(table), sql.Identifier(column))
            found = conn.execute(query, [blobs]).fetchone()
            if found[0]:
                hits.append(f"{table}.{column}")
    return hits


@pytest.fixture
def fresh_server():
    """A second throw-away PostgreSQL server, made the way `./dev test` makes its own."""
    from faceservice.devservices import EmbeddedPostgres, free_port

    run_dir = Path(tempfile.mkdtemp(prefix="faceservice-restore-"))
    server = EmbeddedPostgres(run_dir / "postgres", port=free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


@dataclass
class Source:
    """The source database as it stands at the dump: what the restored copy must reproduce."""

    kept: str
    purged: str
    probes: list[list[float]]
    model_id: str
    digests: dict[str, str]  # the kept tenant's faces
    searched: list[list[list]]  # the kept tenant's best matches per probe
    chains: dict[str, bool]
    faces_enrolled: int
    purged_blobs: list[bytes]  # the purged tenant's sealed embeddings and wrapped keys, before the purge
    purged_key: tuple[int, bytes, str]  # (version, wrapped key, master key id), as an older backup holds it


def prepare_source() -> Source:
    """Two tenants with the same real faces; one purged; chain heads anchored, as beat would."""
    from audit.anchors import anchor_chain_heads
    from audit.services import Actor
    from embeddings.store.services import purge_tenant_face_data
    from tenants import services as tenant_services
    from tests.conftest import unique_name

    operator = Actor.operator("restore-drill")
    kept, purged = (tenant_services.create_tenant(name=unique_name("restore"), actor=operator) for _ in range(2))
    enrolled, probes, model_id = analyse_photos()
    enrol([kept.id, purged.id], enrolled, model_id)
    digests, searched = embedding_digests(str(kept.id)), search_results(str(kept.id), probes, model_id)
    purged_faces, purged_keys = secrets_of(purged.id)
    receipt = purge_tenant_face_data(tenant_id=purged.id, actor=operator)
    assert receipt.faces_deleted == len(enrolled) and receipt.keys_destroyed == 1
    anchor_chain_heads()  # the restored chains must still match their signed anchors
    return Source(kept=str(kept.id), purged=str(purged.id), probes=probes, model_id=model_id, digests=digests,
                  searched=searched, chains=chain_outcomes(), faces_enrolled=len(enrolled),
                  purged_blobs=[f[1] for f in purged_faces] + [k[1] for k in purged_keys],
                  purged_key=purged_keys[0])


def back_up_and_restore(dump: Path, server) -> None:
    """deploy/backup.sh from the test database, deploy/restore.sh into the fresh server."""
    bin_dir = {"PG_BIN_DIR": str(server.bin_dir)}
    run_script(BACKUP_SCRIPT, {**bin_dir, "BACKUP_DATABASE_URL": os.environ["DATABASE_SUPERUSER_URL"]}, str(dump))
    restore_env = {**bin_dir, "RESTORE_DATABASE_URL": server.superuser_url()}
    run_script(RESTORE_SCRIPT, restore_env, str(dump))
    again = subprocess.run([str(RESTORE_SCRIPT), str(dump)], env={**os.environ, **restore_env},
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "already holds" in again.stderr  # never over live data


def test_a_dump_restored_into_a_fresh_server_reads_searches_and_verifies_the_same(committed_db, tmp_path,
                                                                                    fresh_server):
    from tenants.data_keys import encryption_context, kms_provider

    source = prepare_source()
    assert source.chains[source.kept] and source.chains[source.purged], source.chains
    back_up_and_restore(tmp_path / "faceservice.dump", fresh_server)
    restored = read_back_in_child(fresh_server, {"kept": source.kept, "purged": source.purged,
                                                 "probes": source.probes, "model_id": source.model_id})
    # Faces decrypt to the same embeddings, and search the same (exact similarities).
    assert restored["digests"] == source.digests and len(source.digests) == source.faces_enrolled
    assert restored["search"] == source.searched and all(source.searched)
    # Every chain verifies exactly as before (other tests tamper with their own chains on purpose).
    assert {chain: restored["chains"].get(chain) for chain in source.chains} == source.chains
    # And as the operator checks it (one tenant: the command costs a Django start-up, ~3.5 s here).
    command = verify_chain_command(fresh_server, source.purged)
    assert command.returncode == 0 and "1 audit chain(s) verified" in command.stdout, command.stdout + command.stderr
    # The purged tenant stays shredded: no face, no asset, no key that opens, none of its blobs anywhere.
    assert restored["purged"] == {"faces": 0, "assets": 0, "unreadable_versions": [1],
                                  "keys": [[1, "destroyed", False]]}
    assert blobs_found(fresh_server.superuser_url(), source.purged_blobs) == []
    # The limit of crypto-shredding (docs/SECURITY.md section 7): an OLDER backup's wrapped key
    # still opens while its master key exists; only destroying that master key ends it.
    version, wrapped, master_key_id = source.purged_key
    assert kms_provider().decrypt_data_key(wrapped=wrapped, context=encryption_context(source.purged, version),
                                           master_key_id=master_key_id)

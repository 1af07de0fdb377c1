"""The pipelines beside the serving tier (`parley serve --pipelines`, which `make run` uses): the Dagster webserver
and daemon, with their instance (runs, event logs, schedules, sensor cursors) in PostgreSQL.

The Dagster processes get the platform's database URL, so the pipeline code talks to the same PostgreSQL server as
the serving tier (the embedded one by default), and DAGSTER_HOME under the data directory. Their logs go to
`$DATA_DIR/logs/` (Dagster clears folders of its own under DAGSTER_HOME). They are stopped when the server stops,
and die with it if it is killed (PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from core.settings import Settings

DAGSTER_DATABASE = "dagster"
WORKSPACE = Path(__file__).resolve().parent.parent / "workspace.yaml"
STOP_TIMEOUT_S = 15
# The instance's URL travels by environment variable, so a password never lands in dagster.yaml.
URL_VARIABLE = "PARLEY_DAGSTER_STORAGE_URL"

INSTANCE = f"""# Written by `parley serve --pipelines`; edits are overwritten at the next start.
storage:
  postgres:
    postgres_url:
      env: {URL_VARIABLE}
concurrency:
  runs:
    max_concurrent_runs: 2
    tag_concurrency_limits:
      - key: parley/lane
        value: lake
        limit: 1
  pools:
    default_limit: 1  # the dbt build: DuckDB allows one writer per file
telemetry:
  enabled: false
"""


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _psycopg2(url: str) -> str:
    # dagster-postgres binds parameters the psycopg2 way (NOTIFY with a bound channel payload); SQLAlchemy 2.1 maps a
    # bare postgresql:// to psycopg 3, which binds on the server and refuses it. Name the driver.
    parts = urlsplit(url)
    return urlunsplit(("postgresql+psycopg2", parts.netloc, parts.path, parts.query, parts.fragment))


def dagster_storage_url(settings: Settings, platform_url: str) -> str:
    """Dagster's own database: the configured one, else `dagster` on the platform's server (made if missing)."""
    if settings.dagster_postgres_url:
        return _psycopg2(settings.dagster_postgres_url)
    with psycopg.connect(platform_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DAGSTER_DATABASE,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DAGSTER_DATABASE}"')
    return _psycopg2(with_database(platform_url, DAGSTER_DATABASE))


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Pipelines:
    def __init__(self, settings: Settings, *, platform_url: str) -> None:
        self.settings = settings
        self.platform_url = platform_url
        self.processes: list[subprocess.Popen] = []

    @property
    def logs(self) -> Path:
        return self.settings.data_dir.resolve() / "logs"

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.dagster_port}"

    def start(self) -> None:
        home = self.settings.dagster_home
        home.mkdir(parents=True, exist_ok=True)
        (home / "dagster.yaml").write_text(INSTANCE)
        logs = self.logs
        logs.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            URL_VARIABLE: dagster_storage_url(self.settings, self.platform_url),
            "PARLEY_POSTGRES_URL": self.platform_url,
            "PARLEY_DATA_DIR": str(self.settings.data_dir.resolve()),
        }
        bin_dir = Path(sys.executable).parent
        commands = {
            "webserver": [
                str(bin_dir / "dagster-webserver"),
                "-w",
                str(WORKSPACE),
                "-h",
                self.settings.host,
                "-p",
                str(self.settings.dagster_port),
            ],
            "daemon": [str(bin_dir / "dagster-daemon"), "run", "-w", str(WORKSPACE)],
        }
        for name, command in commands.items():
            with (logs / f"dagster-{name}.log").open("ab") as log:
                # Our own executables, from this virtual environment; no shell.
                # A process group each, so stopping takes their code servers and run workers along.
                process = subprocess.Popen(  # noqa: S603
                    command,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent,
                    start_new_session=True,
                )
            self.processes.append(process)

    def stop(self) -> None:
        """SIGTERM to each process group, then SIGKILL to whatever is left. A run killed halfway is safe: the drain
        and every table write are idempotent (core/outbox.py, pipelines/incremental.py)."""
        for process in self.processes:
            _signal_group(process, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
            _signal_group(process, signal.SIGKILL)  # code servers and run workers the leader left behind
        self.processes.clear()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)

"""The warehouse: the dbt project in <repo>/dbt (DuckDB marts over the lake), as Dagster assets.

Every dbt model is an asset `warehouse/<model>` and every dbt test an asset check on the model it tests. The dbt
sources are the lake's Delta tables: `ParleyDbtTranslator` gives each one its lake asset key (source
lake.silver_conversations → silver/conversations), so the models sit downstream of the Python assets in one graph
and `dbt build` runs after the tables it reads.

The dbt subprocess gets the lake root from the `lake` resource (PARLEY_LAKE_ROOT) and the DuckDB file from the `dbt`
resource (PARLEY_DBT_DUCKDB; by default <data_dir>/dbt/parley.duckdb), when a run starts; its artifacts go beside
the DuckDB file. At import this module
reads only the manifest (dbt/target/manifest.json); it runs `dbt parse` first when the manifest is missing or older
than a file of the project.
"""

import functools
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliInvocation, DbtCliResource, DbtProject, dbt_assets

from core.lake import TABLES
from core.settings import load_settings
from pipelines.keys import key
from pipelines.resources import LakeResource

PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt"
GROUP = "warehouse"
LAKE_ROOT_ENV = "PARLEY_LAKE_ROOT"
DUCKDB_ENV = "PARLEY_DBT_DUCKDB"
# What `dbt parse` renders into the manifest: the real locations are only known when a run starts.
LAKE_ROOT_PLACEHOLDER = "${PARLEY_LAKE_ROOT}"
DUCKDB_PLACEHOLDER = "${PARLEY_DBT_DUCKDB}"
PARTIAL_PARSE = "partial_parse.msgpack"
# Not the project's own files: a file of the project newer than the manifest makes it stale.
_PROJECT_SKIP = {"target", "logs", "dbt_packages"}
_LAKE_KEYS = {table.name: key(table) for table in TABLES}


def dbt_executable() -> str:
    """The dbt next to this interpreter (the virtualenv's), so dbt runs without the venv on PATH."""
    beside = Path(sys.executable).with_name("dbt")  # not resolved: the venv's python is a symlink
    if beside.exists():
        return str(beside)
    found = shutil.which("dbt")
    if found is None:
        raise FileNotFoundError(f"no dbt executable beside {sys.executable} nor on PATH (install dbt-duckdb)")
    return found


# ---------------------------------------------------------------------------------------------------------------
# The manifest, prepared at import when needed.


def _newest_project_file(project_dir: Path) -> float:
    newest = 0.0
    for folder, dirs, files in os.walk(project_dir):
        dirs[:] = [d for d in dirs if d not in _PROJECT_SKIP and not d.startswith(".")]
        for name in files:
            if name.endswith((".sql", ".yml", ".yaml", ".csv", ".md")):
                newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime)
    return newest


def manifest_is_current(project: DbtProject) -> bool:
    manifest = project.manifest_path
    return manifest.exists() and manifest.stat().st_mtime >= _newest_project_file(project.project_dir)


def parse_project(project: DbtProject, *, timeout: float = 300) -> Path:
    """`dbt parse` into a private folder, then move manifest.json into place in one rename: processes that prepare
    the project at the same time never read a half-written manifest. Needs no lake and no database. The parse state
    is kept beside the manifest, so the next parse (after an edit) reads only the files that changed."""
    target = project.project_dir / project.target_path
    scratch = target / f".parse-{uuid.uuid4().hex[:8]}"
    scratch.mkdir(parents=True)
    if (target / PARTIAL_PARSE).exists():
        shutil.copy(target / PARTIAL_PARSE, scratch / PARTIAL_PARSE)
    env = {
        **os.environ,
        # Fixed, so the manifest never depends on who parsed it (and the parse state stays valid).
        LAKE_ROOT_ENV: LAKE_ROOT_PLACEHOLDER,
        DUCKDB_ENV: DUCKDB_PLACEHOLDER,
        "DBT_TARGET_PATH": str(scratch),
        "DBT_LOG_PATH": str(scratch),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    started = time.time()
    command = [dbt_executable(), "parse", "--quiet", "--project-dir", str(project.project_dir)]
    command += ["--profiles-dir", str(project.profiles_dir)]
    try:
        done = subprocess.run(  # noqa: S603 (our dbt, fixed arguments)
            command,
            env=env,
            cwd=project.project_dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0 or not (scratch / "manifest.json").exists():
            output = f"{done.stdout}{done.stderr}".strip()
            raise RuntimeError(f"dbt parse failed ({done.returncode}) in {project.project_dir}:\n{output}")
        if (scratch / PARTIAL_PARSE).exists():
            os.replace(scratch / PARTIAL_PARSE, target / PARTIAL_PARSE)
        os.replace(scratch / "manifest.json", project.manifest_path)
        # Dated when the parse started: a file edited while dbt was parsing still makes the manifest stale.
        os.utime(project.manifest_path, (started, started))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return project.manifest_path


def prepare(project: DbtProject) -> Path:
    """The manifest of `project`, parsed first if it is missing or stale. A stale manifest that cannot be rebuilt
    (a read-only install) is used as it is, with a warning."""
    if manifest_is_current(project):
        return project.manifest_path
    try:
        return parse_project(project)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        if not project.manifest_path.exists():
            raise
        dg.get_dagster_logger().warning(f"using a stale dbt manifest, could not re-parse: {exc}")
        return project.manifest_path


DBT_PROJECT = DbtProject(project_dir=PROJECT_DIR, profiles_dir=PROJECT_DIR)
MANIFEST_PATH = prepare(DBT_PROJECT)


# ---------------------------------------------------------------------------------------------------------------
# The graph: lake sources → lake asset keys; models → warehouse/<model>.


class ParleyDbtTranslator(DagsterDbtTranslator):
    """Sources of the `lake` source set are the lake's tables (their `lake_table` meta names the table in
    core/lake.py); models and their tests live under warehouse/."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            meta = dbt_resource_props.get("meta") or {}
            table = meta.get("lake_table")
            if dbt_resource_props["source_name"] != "lake" or table not in _LAKE_KEYS:
                raise ValueError(
                    f"dbt source {dbt_resource_props['unique_id']} must be in the `lake` source with meta.lake_table"
                    f" one of {sorted(_LAKE_KEYS)} (got {table!r})"
                )
            return _LAKE_KEYS[table]
        return dg.AssetKey([GROUP, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return GROUP


TRANSLATOR = ParleyDbtTranslator()


# ---------------------------------------------------------------------------------------------------------------
# Resources.


@functools.cache
def dbt_cli_resource() -> DbtCliResource:
    """dagster-dbt's CLI resource for the project: our dbt executable, the project's own profiles.yml. One per
    process: it runs `dbt --version` the first time it starts dbt (and dbt asks PyPI for its latest version)."""
    return DbtCliResource(
        project_dir=DBT_PROJECT, profiles_dir=str(DBT_PROJECT.profiles_dir), dbt_executable=dbt_executable()
    )


_ENVIRON_LOCK = threading.Lock()


@contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """`values` in os.environ while dagster-dbt starts dbt (it gives the subprocess a copy of os.environ and takes
    no env of its own), restored right after; serialized, for runs that share a process."""
    with _ENVIRON_LOCK:
        saved = {name: os.environ.get(name) for name in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _absolute(location: str) -> str:
    """Local paths absolute (dbt runs in the project folder); URIs as they are."""
    return location if "://" in location else str(Path(location).expanduser().resolve())


KEEP_FAILED_RUNS = 5


def _prune(runs: Path, *, keep: int) -> None:
    """Leave the `keep` newest run folders (failed runs keep theirs, for their dbt.log)."""
    folders = sorted((p for p in runs.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for folder in folders[keep:]:
        shutil.rmtree(folder, ignore_errors=True)


class DbtResource(dg.ConfigurableResource):
    """dbt for the warehouse: `cli` runs dbt against a lake, writing the DuckDB file at `duckdb_path`
    (empty: <PARLEY_DATA_DIR>/dbt/parley.duckdb, read from Settings when a run needs it).

    dbt's artifacts go beside the DuckDB file, in target/<run>/, not into the source tree: `finish` keeps the
    parse state of a successful run (the next run of the same warehouse parses only what changed) and removes the
    run's folder; a failed run's folder stays, and only the newest few are kept."""

    duckdb_path: str = ""

    def database(self) -> Path:
        return Path(_absolute(self.duckdb_path or str(load_settings().data_dir / "dbt" / "parley.duckdb")))

    def cli(
        self,
        args: Sequence[str],
        *,
        lake_root: str,
        context: dg.AssetExecutionContext | None = None,
        raise_on_error: bool = True,
    ) -> DbtCliInvocation:
        database = self.database()
        runs = database.parent / "target"
        runs.mkdir(parents=True, exist_ok=True)
        _prune(runs, keep=KEEP_FAILED_RUNS)
        run = context.run.run_id[:8] if context is not None else "cli"
        target = runs / f"{run}-{uuid.uuid4().hex[:6]}"
        target.mkdir()
        if (runs / PARTIAL_PARSE).exists():
            shutil.copy(runs / PARTIAL_PARSE, target / PARTIAL_PARSE)
        env = {LAKE_ROOT_ENV: _absolute(lake_root), DUCKDB_ENV: str(database)}
        with _environ(env):
            return dbt_cli_resource().cli(
                list(args), context=context, raise_on_error=raise_on_error, target_path=target
            )

    def finish(self, invocation: DbtCliInvocation) -> None:
        """After a successful invocation: keep its parse state, drop its artifacts."""
        state = invocation.target_path / PARTIAL_PARSE
        if state.exists():
            os.replace(state, invocation.target_path.parent / PARTIAL_PARSE)
        shutil.rmtree(invocation.target_path, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------------
# The assets.


@dbt_assets(
    manifest=MANIFEST_PATH,
    project=DBT_PROJECT,
    dagster_dbt_translator=TRANSLATOR,
    name="warehouse",
    # One writer per DuckDB file: give this pool a limit of 1 in the instance's concurrency settings.
    pool=GROUP,
)
def warehouse(context: dg.AssetExecutionContext, dbt: DbtResource, lake: LakeResource):
    """`dbt build` of the selected models and their tests; a failing test fails the step (after the checks that ran
    are reported) and skips the models downstream of it."""
    invocation = dbt.cli(["build"], context=context, lake_root=lake.lake().root)
    yield from invocation.stream()
    dbt.finish(invocation)

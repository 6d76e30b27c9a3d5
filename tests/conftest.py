"""Shared fixtures: the real services the backends are tested against.

PostgreSQL and MariaDB run on this machine (see DESIGN.md); S3 is a moto server on loopback.
A test that needs a service the machine lacks is skipped with a reason naming it, except in CI
(``CI`` set), where a missing service is a failure: CI must never skip these tests.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from veritas_store.plugin_api.registry import reset_registry

PG_URL = os.environ.get("VERITAS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get(
    "VERITAS_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4"
)


def need_service(name: str, problem: BaseException | str) -> None:
    message = f"{name} unavailable: {problem}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI must run every test; start the service)", pytrace=False)
    pytest.skip(message)


def _reachable(url: str, name: str) -> str:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        need_service(name, exc)
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="session")
def pg_url() -> str:
    return _reachable(PG_URL, "PostgreSQL at 127.0.0.1:5432")


@pytest.fixture(scope="session")
def mariadb_url() -> str:
    return _reachable(MARIADB_URL, "MariaDB at 127.0.0.1:3306")


@pytest.fixture(scope="session")
def s3_server():
    try:
        from s3server import start_s3_server

        server = start_s3_server()
    except Exception as exc:
        need_service("moto S3 server", exc)
    yield server
    server.stop()


def drop_prefixed_tables(url: str, prefix: str) -> None:
    engine = sa.create_engine(url)
    try:
        meta = sa.MetaData()
        # reflect only ours: other test runs may be dropping their own tables meanwhile
        meta.reflect(engine, only=lambda name, _meta: name.startswith(prefix))
        meta.drop_all(engine)
    finally:
        engine.dispose()


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}_"


# -- a private PostgreSQL cluster, for tests that stop and restart the server ----------------


class PrivatePostgres:
    """A PostgreSQL cluster of its own on a free loopback port, in a temporary folder.

    Tests may stop, start and restart it; the shared server at 127.0.0.1:5432 is never touched.
    PostgreSQL refuses to run as root, so as root the cluster runs as the ``postgres`` user.
    """

    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        self.folder = tempfile.mkdtemp(prefix="veritas-pg-")
        self.data = os.path.join(self.folder, "data")
        self.log = os.path.join(self.folder, "server.log")
        self._as = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        try:
            self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync",
                      "-E", "UTF8", "--locale=C")  # fmt: skip
            self.start()
        except BaseException:
            self.destroy()
            raise

    def _run(self, tool: str, *args: str) -> None:
        command = [*self._as, os.path.join(self.bindir, tool), *args]
        # cwd: the postgres user may not enter the test's folder
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=120, cwd=self.folder
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr or result.stdout}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c shared_buffers=16MB -c max_connections=40"
        )
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        # -l: without a log file the server would write to (and hold open) our pipe
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-m", "fast", "-w", "restart")

    def destroy(self) -> None:
        with contextlib.suppress(Exception):  # already stopped, or never started
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def private_pg():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    pg_ctl = found[-1] if found else shutil.which("pg_ctl")
    if pg_ctl is None or not os.path.exists(os.path.join(os.path.dirname(pg_ctl), "initdb")):
        need_service("PostgreSQL server binaries (initdb, pg_ctl)", "not installed")
    try:
        cluster = PrivatePostgres(os.path.dirname(pg_ctl))
    except Exception as exc:
        need_service("a private PostgreSQL cluster (initdb and pg_ctl as user postgres)", exc)
    yield cluster
    cluster.destroy()


# -- plugin packages, installed for real -----------------------------------------------------

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_PLUGIN = REPO / "examples" / "veritas-store-jsonfolder"
BROKEN_PLUGINS = [
    REPO / "tests" / "plugin_dists" / "veritas-store-broken-import",
    REPO / "tests" / "plugin_dists" / "veritas-store-misspelled",
]


def pip_install_target(workdir: Path, *projects: Path) -> Path:
    """``pip install --no-deps --target`` the projects (copied first: builds leave files)."""
    sources = []
    for project in projects:
        copy = workdir / "src" / project.name
        shutil.copytree(
            project, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
        )
        sources.append(str(copy))
    target = workdir / "site"
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    command += ["--disable-pip-version-check", "--target", str(target)]
    # Without build isolation it takes a second (setuptools comes with the dev extra); with it,
    # pip first downloads setuptools into a fresh build environment.
    for isolation in (["--no-build-isolation"], []):
        result = subprocess.run(
            [*command, *isolation, *sources], capture_output=True, text=True, timeout=600
        )
        if result.returncode == 0:
            return target
    need_service("pip, to install plugin packages", result.stderr[-3000:])
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the example plugin veritas-store-jsonfolder installed in it."""
    return pip_install_target(tmp_path_factory.mktemp("example-plugin"), EXAMPLE_PLUGIN)


@pytest.fixture(scope="session")
def broken_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the deliberately broken plugin packages of tests/plugin_dists."""
    return pip_install_target(tmp_path_factory.mktemp("broken-plugins"), *BROKEN_PLUGINS)


@contextlib.contextmanager
def plugins_on_path(*sites: Path) -> Iterator[None]:
    """Make the plugins installed in ``sites`` visible to this process's plugin registry."""
    saved = list(sys.path)
    sys.path[:0] = [str(site) for site in sites]
    importlib.invalidate_caches()
    reset_registry()
    try:
        yield
    finally:
        sys.path[:] = saved
        roots = tuple(str(site) for site in sites)
        for name, module in list(sys.modules.items()):
            if (getattr(module, "__file__", None) or "").startswith(roots):
                del sys.modules[name]
        importlib.invalidate_caches()
        reset_registry()


def pythonpath(*sites: Path) -> str:
    return os.pathsep.join(str(site) for site in sites)

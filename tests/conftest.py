"""Shared fixtures: the real services the backends are tested against.

PostgreSQL and MariaDB run on this machine (see DESIGN.md); S3 is a moto server on loopback.
A test that needs a service the machine lacks is skipped with a reason naming it, except in CI
(``CI`` set), where a missing service is a failure: CI must never skip these tests.
"""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

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

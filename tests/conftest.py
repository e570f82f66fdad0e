"""Shared fixtures: real servers started by the harness, torn down even when a test fails.

- ``pg`` / ``pg2``: two PostgreSQL 15 clusters for the session (``pg2`` only when a test asks).
- ``pg_db``: a fresh database on ``pg``, dropped afterwards.
- ``pg_cluster_factory``: clusters of a test's own (custom settings, physical copies, other majors).
- ``pg_major``: ``pg_major(13)`` / ``pg_major(17)``: a session cluster of that PostgreSQL major (binaries
  unpacked by ``scripts/fetch-pg-versions.sh``); ``pg_major(15)`` is ``pg``. ``pg_major(17, 2)``: a second
  one of that major (``pg_major(15, 2)`` is ``pg2``), for streams between two servers of one major.
- ``managed_factory``: login roles with a managed-service profile (no superuser) on ``pg``/``pg2``.
- ``mongo`` / ``mongo_db``: a FerretDB server for the session and a fresh database on it.
- ``run_module``: run a collection module through ansible-playbook.

``DUALBOOT_TEST_PG_URI`` / ``DUALBOOT_TEST_MONGO_URI`` replace the started servers by external ones.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile

import pytest
from harness.paths import ensure_collection_path

ensure_collection_path()

from harness import ansible as _ansible  # noqa: E402
from harness.ferretdb import start_mongo  # noqa: E402
from harness.pg import DEFAULT_VERSION, ExternalPg, ManagedLogin, PgCluster, pg_bin  # noqa: E402


def _start_pg(name: str):
    uri = os.environ.get("DUALBOOT_TEST_PG_URI")
    if uri:
        return ExternalPg(uri)
    return PgCluster(name=name).start()


@pytest.fixture(scope="session")
def pg():
    server = _start_pg("pg")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg2():
    """A second server: for copies across servers. With an external URI it is the same server."""
    server = _start_pg("pg2")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_major(pg, request):
    """``pg_major(version, number=1)``: a cluster of that PostgreSQL major for the session (started on first use)."""
    if os.environ.get("DUALBOOT_TEST_PG_URI"):
        pytest.skip("needs clusters of other majors (initdb/pg_ctl); DUALBOOT_TEST_PG_URI points at an external server")
    clusters = {(DEFAULT_VERSION, 1): pg}

    def get(version: int, number: int = 1) -> PgCluster:
        if (version, number) == (DEFAULT_VERSION, 2):
            return request.getfixturevalue("pg2")
        if (version, number) not in clusters:
            suffix = "" if number == 1 else f"_{number}"
            clusters[version, number] = PgCluster(name=f"pg{version}{suffix}", version=version).start()
        return clusters[version, number]

    yield get
    for key, c in clusters.items():
        if key != (DEFAULT_VERSION, 1):
            c.stop()


@pytest.fixture
def pg_db(pg):
    db = pg.create_database()
    yield db
    pg.drop_database(db.name)


@pytest.fixture
def pg_cluster_factory():
    if os.environ.get("DUALBOOT_TEST_PG_URI"):
        pytest.skip("needs clusters of its own (initdb/pg_ctl); DUALBOOT_TEST_PG_URI points at an external server")
    clusters = []

    def make(settings: dict | None = None, name: str = "own", start: bool = True, version: int = DEFAULT_VERSION) -> PgCluster:
        c = PgCluster(settings=settings, name=name, version=version)
        clusters.append(c)
        return c.start() if start else c

    yield make
    for c in clusters:
        c.stop()


@pytest.fixture
def managed_factory(pg):
    """Login roles with the managed-service profile (see ``ManagedLogin``): ``make(server, without=(...), like=login)``."""
    logins = []

    def make(server=None, without: tuple = (), like: ManagedLogin | None = None) -> ManagedLogin:
        login = ManagedLogin(server or pg, without, like)
        logins.append(login)
        return login

    yield make
    for login in logins:
        login.drop()


@pytest.fixture(scope="session")
def mongo():
    server = start_mongo()
    yield server
    server.stop()


@pytest.fixture
def mongo_db(mongo):
    name = mongo.new_db_name()
    client = mongo.client()
    yield client[name]
    client.drop_database(name)
    client.close()


@pytest.fixture
def cluster_dir():
    """Where a physical copy puts a cluster of its own: ``<private parent>/green``, in a parent the unprivileged
    cluster owner can enter. Afterwards every cluster in that parent is stopped (with its own major's
    binaries) and the parent removed."""
    base = tempfile.mkdtemp(prefix="dualboot-physical-")
    os.chmod(base, 0o711)  # noqa: S103 - the cluster owner must traverse it, nothing is listed
    yield os.path.join(base, "green")
    for data in glob.glob(os.path.join(base, "*")):
        if os.path.exists(os.path.join(data, "postmaster.pid")):
            with open(os.path.join(data, "PG_VERSION")) as f:
                major = int(f.read().strip())
            subprocess.run(
                [str(pg_bin(major) / "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"],
                check=False,
                capture_output=True,
                user="dualboot" if os.geteuid() == 0 else None,
            )
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def run_module():
    return _ansible.run_module

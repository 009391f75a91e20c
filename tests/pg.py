"""Helpers for the tests that run against a real PostgreSQL server (never a stand-in).

``.ci/run`` starts a throwaway cluster (``.ci/postgres``) and sets ``CIFAR_TEST_DB`` to its
URL and ``CIFAR_TEST_PG_DIR`` to its folder. Outside CI, without them, the tests are skipped
with a line that says how to run them; under ``CI=true`` a missing server fails them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from cifar_core import database

HOW = "start one with `.ci/postgres` and set CIFAR_TEST_DB to the URL it prints on its last line"


def server_url() -> str:
    url = os.environ.get("CIFAR_TEST_DB")
    if url:
        return url
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true but CIFAR_TEST_DB is not set: the PostgreSQL tests must run in CI")
    pytest.skip(f"PostgreSQL tests skipped: {HOW}")


def fresh_database(base: str) -> str:
    """A new empty database on the test server; its URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with database.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return base.rsplit("/", 1)[0] + "/" + name


def drop_database(base: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with database.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def env() -> dict:
    """The environment of a worker or tune process: one TensorFlow thread, quiet."""
    return {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TF_NUM_INTRAOP_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }


def start(argv: list[str], log: Path, prefix: list[str] | None = None) -> subprocess.Popen:
    """``python -m cifar_core ARGV`` in the background (its own process group), output to ``log``."""
    handle = open(log, "w")
    return subprocess.Popen(
        [*(prefix or []), sys.executable, "-m", "cifar_core", *argv],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env=env(),
        start_new_session=True,
    )


def wait_for(predicate, timeout: float, what: str, step: float = 0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = predicate()
        if found:
            return found
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def kill(process: subprocess.Popen) -> None:
    """SIGKILL a process and its children: no handler runs, nothing is cleaned up."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def restart_server(pg_dir: str) -> None:
    """Restart the test cluster (fast shutdown: every connection is cut)."""
    pg_ctl = shutil.which("pg_ctl") or "/usr/lib/postgresql/15/bin/pg_ctl"
    command = f"{pg_ctl} -D '{pg_dir}/data' -m fast -w restart > /dev/null"
    subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", command], check=True, timeout=60)

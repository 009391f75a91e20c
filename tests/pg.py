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


class Proxy:
    """A TCP forwarder from ``listen`` addresses to the server on the loopback: how workers in
    other network namespaces (where 127.0.0.1 is their own) reach a loopback-only server."""

    def __init__(self, addresses: list[str], port: int, target: tuple[str, int]):
        import socket
        import threading

        self.target, self.sockets, self.stopped = target, [], threading.Event()
        for address in addresses:
            listener = socket.create_server((address, port))
            listener.settimeout(0.2)
            self.sockets.append(listener)
            threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener) -> None:
        import socket
        import threading

        while not self.stopped.is_set():
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(2)
                except OSError:
                    pass

    def close(self) -> None:
        self.stopped.set()
        for listener in self.sockets:
            listener.close()


def network_namespaces(count: int) -> list[tuple[str, str]]:
    """``count`` network namespaces, each joined to this one by a veth pair: (name, the address
    of this side). Skips the test where namespaces cannot be made (no root, no ``ip``)."""
    tag = uuid.uuid4().hex[:6]
    made = []
    for k in range(1, count + 1):
        name, host_side, ns_side = f"cifar{tag}{k}", f"vc{tag}{k}", f"vn{tag}{k}"
        subnet = f"10.{200 + k}.{int(tag[:2], 16)}"
        commands = [
            f"ip netns add {name}",
            f"ip link add {host_side} type veth peer name {ns_side}",
            f"ip link set {ns_side} netns {name}",
            f"ip addr add {subnet}.1/30 dev {host_side}",
            f"ip link set {host_side} up",
            f"ip netns exec {name} ip addr add {subnet}.2/30 dev {ns_side}",
            f"ip netns exec {name} ip link set {ns_side} up",
            f"ip netns exec {name} ip link set lo up",
        ]
        for command in commands:
            done = subprocess.run(command.split(), capture_output=True, text=True)
            if done.returncode:
                remove_namespaces(made + [(name, "")])
                pytest.skip(f"network namespaces cannot be made here ({command}: {done.stderr.strip()})")
        made.append((name, f"{subnet}.1"))
    return made


def remove_namespaces(made: list[tuple[str, str]]) -> None:
    for name, _ in made:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)  # its veth goes with it

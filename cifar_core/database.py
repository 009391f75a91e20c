"""The PostgreSQL server that coordinates work spread over several machines: its URL, and
one check that names what is wrong with it in one line.

    url = database.url_from(args.queue)     # the option, else $CIFAR_DB, else None
    database.check(url)                     # DatabaseError: "wrong password for user ..."
    database.sqlalchemy_url(url)            # postgresql+psycopg://...  (Optuna's RDBStorage)
    database.libpq_url(url)                 # postgresql://...          (psycopg, procrastinate)

One machine needs none of this: studies keep their journal file and runs their folders.
Either URL form is accepted (``postgresql://``, ``postgres://``, ``postgresql+psycopg://``);
a password left out of it comes from ``PGPASSWORD`` or ``~/.pgpass``, as for ``psql``. What is
written to disk or printed is ``masked``: the password never is.
"""

from __future__ import annotations

import os
import re
import zlib
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from cifar_core.errors import CifarError
from cifar_core.runtime import mask_passwords

ENV = "CIFAR_DB"
SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
CONNECT_TIMEOUT_S = 5


class DatabaseError(CifarError):
    """A coordination server that cannot be used: unreachable, refused, or not set up."""


def url_from(given: str | None) -> str | None:
    """The URL given on the command line, else ``$CIFAR_DB``, else None (one machine)."""
    url = given or os.environ.get(ENV) or None
    if url is not None:
        _parts(url)  # a malformed URL fails here, before anything else happens
    return url


def _parts(url: str):
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise DatabaseError(
            f"{masked(url)!r} is not a PostgreSQL URL: expected postgresql://USER:PASSWORD@HOST:5432/DB"
        )
    if not parts.path.strip("/"):
        raise DatabaseError(f"{masked(url)}: the URL names no database (…@HOST:PORT/DATABASE)")
    return parts


def libpq_url(url: str) -> str:
    """The URL as libpq (psycopg, procrastinate) reads it: ``postgresql://``."""
    return urlunsplit(_parts(url)._replace(scheme="postgresql"))


def sqlalchemy_url(url: str) -> str:
    """The URL as SQLAlchemy (Optuna's RDBStorage) reads it, on the psycopg 3 driver."""
    return urlunsplit(_parts(url)._replace(scheme="postgresql+psycopg"))


def masked(url: str) -> str:
    """``url`` with its password replaced by ``***``: for messages, files and pages."""
    return mask_passwords(url)


def where(url: str) -> str:
    """``user@host:port/db``: the server named without its password."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return f"{user}{parts.hostname}:{parts.port or 5432}{parts.path}"


def reason(error: BaseException) -> str:
    """The one line that says why a connection failed, from psycopg's (multi-line) message."""
    text = str(error)
    fatal = re.findall(r"FATAL:\s+(.*)", text)
    if fatal:
        found = fatal[-1].strip()
        if "password authentication failed" in found:
            return f"wrong password ({found})"
        return found
    if "no password supplied" in text:
        return "no password given: put it in the URL or $CIFAR_DB, or in PGPASSWORD or ~/.pgpass"
    for line in text.splitlines():
        for known in ("Connection refused", "could not translate host name", "timeout expired", "No route"):
            if known in line:
                return line.split("failed: ")[-1].strip()
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def connect(url: str, **options):
    """A psycopg connection, or DatabaseError naming the server and what is wrong."""
    import psycopg

    try:
        return psycopg.connect(libpq_url(url), connect_timeout=CONNECT_TIMEOUT_S, **options)
    except psycopg.Error as error:
        raise DatabaseError(f"PostgreSQL {where(url)}: {reason(error)}") from None


def check(url: str) -> str:
    """Connect once and return the server's version; DatabaseError (one line) otherwise."""
    with connect(url) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


@contextmanager
def exclusive(url: str, name: str):
    """Hold a PostgreSQL advisory lock named ``name`` for the block: processes starting at
    once on a new database take turns creating its tables (CREATE TYPE is not idempotent)."""
    key = zlib.crc32(name.encode())
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        try:
            yield conn
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

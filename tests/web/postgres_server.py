"""A real PostgreSQL server for the tests of the shared feedback store (see conftest.py).

:func:`running_server` runs the machine's own PostgreSQL server (Debian's ``postgresql-15``,
in ``/usr/lib/postgresql/15/bin``; ``make postgres`` installs it), made with ``initdb`` in a
temporary folder and started with ``pg_ctl`` on a free loopback port, then stopped and
removed. PostgreSQL refuses to run as root: run as root (as CI does), the folder belongs to
``nobody`` and the server runs as that user. The role ``lbp`` logs in over TCP with a
password (scram-sha-256), so the tests hold a URL whose password must never be printed.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

PASSWORD = "pg-S3cret/pass"
"""The ``lbp`` role's password: tests check that no output ever shows it."""
UNPRIVILEGED_USER = "nobody"


class NoServer(RuntimeError):
    """The machine has no PostgreSQL server programs."""


def binaries() -> Path | None:
    """The folder with ``initdb``, ``pg_ctl`` and ``postgres``: Debian's newest, else the PATH's."""
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    found = shutil.which("pg_ctl")
    if found:
        folders.append(str(Path(found).resolve().parent))
    for folder in folders:
        if all((Path(folder) / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    """A running server: :meth:`url` names a database on it (with the password)."""

    port: int
    folder: Path

    def url(self, database: str = "lbp", **params: str) -> str:
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
        base = f"postgresql://lbp:{quote(PASSWORD, safe='')}@127.0.0.1:{self.port}/{database}"
        return f"{base}?{query}" if query else base

    def execute(self, sql: str, database: str = "lbp") -> list[tuple[Any, ...]]:
        """Run one statement outside a transaction (CREATE DATABASE needs that); its rows, if any."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            cur = conn.execute(sql)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def new_database(self) -> str:
        """The URL of a new, empty database."""
        name = f"db_{uuid.uuid4().hex[:12]}"
        self.execute(f"CREATE DATABASE {name}", database="postgres")
        return self.url(name)

    def new_schema(self) -> str:
        """A URL whose tables go to a new, empty schema of the ``lbp`` database (``search_path``)."""
        schema = f"t_{uuid.uuid4().hex[:12]}"
        self.execute(f"CREATE SCHEMA {schema}")
        return self.url(options=f"-csearch_path={schema}")


def _as_server_user() -> dict[str, Any]:
    """``subprocess`` arguments that run a program as an unprivileged user when we are root."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(UNPRIVILEGED_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


@contextmanager
def running_server() -> Iterator[PostgresServer]:
    """A new server with the database ``lbp``, stopped and removed on exit.

    Raises:
        NoServer: no ``initdb`` and ``pg_ctl`` on this machine.
        RuntimeError: the server did not start (with its log).
    """
    programs = binaries()
    if programs is None:
        raise NoServer(
            "no PostgreSQL server programs (initdb, pg_ctl): `make postgres` or apt-get install postgresql-15"
        )
    folder = Path(tempfile.mkdtemp(prefix="lbp-pg-"))  # under /tmp: reachable by the server's user
    user = _as_server_user()
    (folder / "password").write_text(PASSWORD + "\n")
    for path in (folder, folder / "password"):
        if user:
            os.chown(path, user["user"], user["group"])
    env = {"PATH": f"{programs}:/usr/bin:/bin", "HOME": str(folder), "LC_ALL": "C", "LANG": "C"}
    data, log, port = folder / "data", folder / "server.log", free_port()

    def run(*args: str, check: bool = True) -> None:
        done = subprocess.run(
            [str(programs / args[0]), *args[1:]], cwd=folder, env=env, capture_output=True, text=True, **user
        )
        if check and done.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}\n{tail}")

    try:
        run(
            "initdb", "-D", str(data), "-U", "lbp", f"--pwfile={folder / 'password'}", "--auth-local=trust",
            "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        run("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        server = PostgresServer(port, folder)
        server.execute("CREATE DATABASE lbp", database="postgres")
        yield server
    finally:
        if (data / "postmaster.pid").exists():
            run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(folder, ignore_errors=True)

"""A throwaway PostgreSQL cluster for tests, benchmarks and trying the shared store by hand.

Uses the machine's `initdb` / `pg_ctl` (on PATH, or under /usr/lib/postgresql/*/bin). The
cluster lives in a fresh temporary directory and listens only on a unix socket there (no TCP
port to collide with); `stop()` ends it and removes the directory. PostgreSQL refuses to run as
root, so as root the server runs as an unprivileged user (BOT_PG_USER, else `postgres` or
`nobody`, whichever exists) that owns the directory.

    python -m bot.store.pgcluster     # start one, print its URL, stop it on Ctrl-C
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DB_USER = "bot"


class ClusterError(RuntimeError):
    """The cluster could not be started; the message says why."""


def find_bin(name: str) -> str:
    """The path of a PostgreSQL server program, or ClusterError naming where it was looked for."""
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        return candidate
    raise ClusterError(
        f"{name} not found on PATH nor in /usr/lib/postgresql/*/bin: install the PostgreSQL "
        "server (Debian: apt-get install postgresql) to run the PostgreSQL store tests"
    )


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in filter(None, (os.environ.get("BOT_PG_USER"), "postgres", "nobody")):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise ClusterError(
        "running as root and no unprivileged account (postgres, nobody) to run PostgreSQL as; set BOT_PG_USER"
    )


class Cluster:
    """One running throwaway cluster; `url(db)` for a database in it."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bot-pg-"))
        self.data = self.dir / "data"
        self.socket_dir = self.dir
        self._user = _run_as()
        self._pg_ctl = find_bin("pg_ctl")
        self._initdb = find_bin("initdb")
        self._started = False

    def _cmd(self, *args: str) -> list[str]:
        if self._user is None:
            return list(args)
        runuser = shutil.which("runuser")
        if runuser:
            return [runuser, "-u", self._user.pw_name, "--", *args]
        return ["su", "-s", "/bin/sh", self._user.pw_name, "-c", " ".join(f"'{a}'" for a in args)]

    def _call(self, *args: str, timeout: float = 60) -> None:
        done = subprocess.run(
            self._cmd(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.dir,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
        )
        if done.returncode != 0:
            raise ClusterError(
                f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
            )

    def start(self) -> Cluster:
        try:
            if self._user is not None:
                os.chown(self.dir, self._user.pw_uid, self._user.pw_gid)
                os.chmod(self.dir, 0o700)
            self._call(
                self._initdb,
                "-D",
                str(self.data),
                "-U",
                DB_USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            )
            options = (
                f"-c listen_addresses='' -c unix_socket_directories={self.socket_dir} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
                "-c shared_buffers=32MB"
            )
            self._call(
                self._pg_ctl,
                "-D",
                str(self.data),
                "-l",
                str(self.dir / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
                timeout=90,
            )
            self._started = True
        except (ClusterError, OSError, subprocess.TimeoutExpired) as e:
            log = self.dir / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            self.stop()
            raise ClusterError(f"the throwaway PostgreSQL cluster did not start: {e}\n{tail}") from e
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{DB_USER}@/{database}?host={self.socket_dir}"

    def stop(self) -> None:
        if self._started:
            self._started = False
            try:
                self._call(self._pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
            except (ClusterError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        import asyncio

        import asyncpg

        async def create() -> None:
            con = await asyncpg.connect(self.url())
            try:
                await con.execute(f'CREATE DATABASE "{name}"')
            finally:
                await con.close()

        asyncio.run(create())
        return self.url(name)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> int:
    with Cluster() as cluster:
        print(cluster.url(), flush=True)
        print("Ctrl-C stops it and removes its files", file=sys.stderr, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

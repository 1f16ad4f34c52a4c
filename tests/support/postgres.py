"""A private, throw-away PostgreSQL server for the JDBC tests: initdb into a temporary folder, start it on a free
loopback port, stop it afterwards. Uses the Debian server binaries (.ci/run installs them when missing)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lakeforge.local_kafka import free_port


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    database: str
    user: str
    password: str

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.database}"


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or ([shutil.which(name)] if shutil.which(name) else [])
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} not found: apt-get install postgresql (the tests start their own server)")
    return found[-1]


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def start(password: str = "lakeforge-test") -> tuple[Postgres, callable]:
    # Its own folder under /tmp: pytest's temporary folders are private to root, and the server runs as postgres.
    workdir = Path(tempfile.mkdtemp(prefix="lakeforge-pg-"))
    data = workdir / "pgdata"
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
    pwfile = workdir / "pw"
    pwfile.write_text(password)
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres", "postgres")
    subprocess.run(_as_server_user([_bin("initdb"), "-D", str(data), "-U", "lakeforge", "--auth=md5", f"--pwfile={pwfile}",
                                    "-E", "UTF8"]), check=True, capture_output=True)
    port = free_port()
    log = workdir / "server.log"
    subprocess.run(_as_server_user([_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                                    "-o", f"-h 127.0.0.1 -p {port} -k {workdir}", "start"]), check=True, capture_output=True)
    server = Postgres("127.0.0.1", port, "postgres", "lakeforge", password)

    def stop() -> None:
        subprocess.run(_as_server_user([_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]), capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)

    deadline = time.time() + 30
    while time.time() < deadline:
        if subprocess.run([_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True).returncode == 0:
            return server, stop
        time.sleep(0.5)
    stop()
    raise RuntimeError(f"PostgreSQL did not accept connections; see {log}")


def psql(server: Postgres, sql: str) -> str:
    env = dict(os.environ, PGPASSWORD=server.password)
    out = subprocess.run([_bin("psql"), "-h", server.host, "-p", str(server.port), "-U", server.user, "-d", server.database,
                          "-v", "ON_ERROR_STOP=1", "-Atc", sql], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"psql failed: {out.stderr.strip()}")
    return out.stdout.strip()

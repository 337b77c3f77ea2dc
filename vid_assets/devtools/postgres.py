"""A throwaway PostgreSQL on loopback from Debian's server binaries (tests, benchmarks)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vid_assets.devtools.net import free_port, wait_port


def pg_bin() -> Path | None:
    root = Path("/usr/lib/postgresql")
    return next(iter(sorted(root.glob("*/bin"))), None) if root.exists() else None


@contextlib.contextmanager
def local_postgres(user: str = "dagster", db: str = "dagster", settings: dict | None = None) -> Iterator[str]:
    """Start a fresh cluster on a free port; yields a ``postgresql+psycopg2://`` URL (the psycopg2
    dialect: with SQLAlchemy 2.1 the default psycopg 3 dialect breaks dagster-postgres' NOTIFY).
    ``settings``: server settings, e.g. ``{"synchronous_commit": "off"}``."""
    bin_dir = pg_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL server binaries not installed (apt-get install postgresql)")
    pg_dir = Path(tempfile.mkdtemp(prefix="vid_assets_pg_"))
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_pg:
        shutil.chown(pg_dir, "postgres", "postgres")
    port = free_port()
    data = str(pg_dir / "data")
    subprocess.run(
        [*as_pg, str(bin_dir / "initdb"), "-D", data, "-A", "trust", "-U", user], check=True, capture_output=True
    )
    opts = f"-p {port} -k {pg_dir} -h 127.0.0.1" + "".join(f" -c {k}={v}" for k, v in (settings or {}).items())
    start = [*as_pg, str(bin_dir / "pg_ctl"), "-D", data, "-l", str(pg_dir / "log"), "-w", "-o", opts, "start"]
    subprocess.run(start, check=True, capture_output=True)
    try:
        wait_port(port)
        createdb = [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", user, db]
        subprocess.run(createdb, check=True, capture_output=True)
        yield f"postgresql+psycopg2://{user}@127.0.0.1:{port}/{db}"
    finally:
        stop = [*as_pg, str(bin_dir / "pg_ctl"), "-D", data, "-m", "immediate", "stop"]
        subprocess.run(stop, capture_output=True)
        shutil.rmtree(pg_dir, ignore_errors=True)

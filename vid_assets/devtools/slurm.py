"""A one-node SLURM cluster on loopback for tests: munge, slurmctld and slurmd (Debian's
``slurm-wlm``), started in a temporary folder with their own ports, key and socket."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from vid_assets.devtools.net import free_port

CONF = """ClusterName=vidtest
SlurmctldHost={host}(127.0.0.1)
AuthType=auth/munge
AuthInfo=socket={root}/munge.sock
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def exe(name: str) -> str | None:
    """A SLURM / munge program, also where Debian puts daemons (``/usr/sbin``, often off PATH)."""
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def why_not() -> str | None:
    """Why a cluster cannot start here (None: it can)."""
    missing = [b for b in ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo") if exe(b) is None]
    if missing:
        return f"SLURM is not installed ({', '.join(missing)} missing; apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "the test cluster runs its daemons as root (SlurmUser=root)"
    return None


@contextlib.contextmanager
def slurm_cluster(root: str | os.PathLike[str]) -> Iterator[dict[str, str]]:
    """Start the cluster under ``root``; yields the environment ``sbatch``/``squeue`` need."""
    root = Path(root)
    for d in ("state", "spool"):
        (root / d).mkdir(parents=True, exist_ok=True)
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    host = socket.gethostname().split(".")[0]
    conf = root / "slurm.conf"
    conf.write_text(
        CONF.format(host=host, root=root, ctld_port=free_port(), d_port=free_port(), cpus=os.cpu_count() or 1)
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    procs = []
    try:
        munge = [
            exe("munged"), "--force", f"--socket={root}/munge.sock", f"--key-file={key}",
            f"--pid-file={root}/munged.pid", f"--log-file={root}/munged.log", f"--seed-file={root}/munge.seed",
        ]  # fmt: skip
        subprocess.run(munge, check=True, capture_output=True, timeout=30)
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([exe(daemon), "-f", str(conf)], check=True, capture_output=True, env=env, timeout=30)
            procs.append(root / f"{daemon}.pid")
            time.sleep(1)
        deadline = time.monotonic() + 60
        sinfo = [exe("sinfo"), "-h", "-o", "%t"]
        while "idle" not in subprocess.run(sinfo, capture_output=True, text=True, env=env).stdout:
            if time.monotonic() > deadline:
                log = (
                    (root / "slurmd.log").read_text(errors="replace")[-2000:] if (root / "slurmd.log").exists() else ""
                )
                raise RuntimeError(f"the SLURM node never became idle\n{log}")
            time.sleep(0.5)
        yield {"SLURM_CONF": str(conf)}
    finally:
        for pid_file in (*procs, root / "munged.pid"):
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid_file.read_text().split()[0]), 15)


def wait_for_job(job_id: str, env: dict[str, str], timeout: float = 600) -> None:
    """Until ``squeue`` no longer lists the job (all its array tasks ended)."""
    deadline = time.monotonic() + timeout
    while subprocess.run([exe("squeue"), "-h", "-j", job_id], capture_output=True, text=True, env=env).stdout.strip():
        if time.monotonic() > deadline:
            raise TimeoutError(f"SLURM job {job_id} still running after {timeout} s")
        time.sleep(1)

"""A real Slurm on this machine for ``make test-slurm``: a controller and two slurmd "nodes" (n1, n2)
on 127.0.0.1, as in ../shared/slurm_local.md. Daemons run in the foreground as children of the test,
so teardown kills them by pid whatever happened; every wait has a timeout."""

import os
import re
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

NODES = ("n1", "n2")
# cred_expire is also how long a requeued job waits before it may start again (120 s by default).
SLURM_CONF = """\
ClusterName=shapvision-test
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
KillWait=5
MinJobAge=300
FirstJobId={first_job_id}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd-%n.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd-%n.log
NodeName=n1 NodeHostname=localhost NodeAddr=127.0.0.1 Port=17001 CPUs={cpus} RealMemory=1000
NodeName=n2 NodeHostname=localhost NodeAddr=127.0.0.1 Port=17002 CPUs={cpus} RealMemory=1000
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


class SlurmSetupError(RuntimeError):
    pass


def wait_for(condition, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise SlurmSetupError(f"timed out after {timeout:.0f} s waiting for {what}")


def run(command: list[str], timeout: float = 30, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)


def ensure_node_names_resolve() -> None:
    """Lightning's MASTER_ADDR is the first node's name: without it torch's rendezvous hangs."""
    for name in NODES:
        try:
            socket.gethostbyname(name)
        except OSError:
            with open("/etc/hosts", "a") as hosts:
                hosts.write(f"127.0.0.1 {' '.join(NODES)}\n")
            return


@contextmanager
def munge_running():
    """munged as the munge user, unless one already answers; stopped by its pid file if started here."""
    if run(["bash", "-c", "munge -n | unmunge"]).returncode == 0:
        yield
        return
    subprocess.run(
        ["install", "-d", "-o", "munge", "-g", "munge", "-m", "0755", "/run/munge"], check=True
    )
    pid_file = Path("/run/munge/munged.pid")
    started = run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"])
    if started.returncode:
        raise SlurmSetupError(f"munged did not start: {started.stderr.strip()}")
    try:
        wait_for(lambda: run(["bash", "-c", "munge -n | unmunge"]).returncode == 0, 10, "munged")
        yield
    finally:
        if pid_file.is_file():
            try:
                os.kill(int(pid_file.read_text().split()[0]), 15)
            except (ProcessLookupError, ValueError):
                pass


@contextmanager
def local_slurm(root: Path):
    """Controller + two nodes configured under ``root``; yields the environment for the client
    commands (``SLURM_CONF``). Job ids start at a number taken from the clock, so run directories
    named by job id never meet those of an earlier bring-up."""
    for tool in ("slurmctld", "slurmd", "sbatch", "munged"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SlurmSetupError(f"{tool} is not installed: `make test-slurm` installs Slurm")
    ensure_node_names_resolve()
    for folder in ("state", "spool/n1", "spool/n2"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    conf = root / "slurm.conf"
    conf.write_text(
        SLURM_CONF.format(
            root=root,
            cpus=os.cpu_count(),
            ctld_port=free_port(),
            first_job_id=int(time.time()) % 6_000_000 * 10 + 1,
        )
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    daemons: list[subprocess.Popen] = []
    with munge_running():
        try:
            for command in (["slurmctld", "-D", "-i"], *(["slurmd", "-D", "-N", n] for n in NODES)):
                log = open(root / f"{command[0]}-{command[-1]}.out", "w")
                daemons.append(
                    subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
                )

            def idle() -> bool:
                dead = [d.args for d in daemons if d.poll() is not None]
                if dead:
                    raise SlurmSetupError(f"{dead} exited; see the logs in {root}")
                result = run(["sinfo", "-h", "-o", "%D %T"], env=env, timeout=10)
                return result.stdout.strip() == f"{len(NODES)} idle"

            wait_for(idle, 60, f"sinfo to show {len(NODES)} idle nodes")
            yield env
        finally:
            for daemon in reversed(daemons):
                daemon.terminate()
            for daemon in reversed(daemons):
                try:
                    daemon.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def job_state(job_id: str, env: dict) -> dict[str, str]:
    """``scontrol show job`` as {field: value} (JobState, Restarts, ExitCode, ...)."""
    result = run(["scontrol", "show", "job", "-o", job_id], env=env, timeout=10)
    return dict(re.findall(r"(\w+)=(\S*)", result.stdout))


def wait_for_job(job_id: str, env: dict, timeout: float, log: Path | None = None) -> dict[str, str]:
    """Wait until the job has ended; fail with its log if it did not complete."""

    def ended():
        state = job_state(job_id, env)
        return (
            state
            if state.get("JobState")
            in {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}
            else None
        )

    try:
        state = wait_for(ended, timeout, f"job {job_id} to end", interval=0.5)
    except SlurmSetupError:
        subprocess.run(["scancel", job_id], env=env, timeout=10)
        raise SlurmSetupError(
            f"job {job_id} did not end in {timeout:.0f} s{job_log(log)}"
        ) from None
    if state["JobState"] != "COMPLETED":
        raise SlurmSetupError(
            f"job {job_id} ended {state['JobState']} ({state.get('ExitCode')}){job_log(log)}"
        )
    return state


def job_log(log: Path | None) -> str:
    if log is None or not log.is_file():
        return ""
    return f"\n--- {log} (last 4000 characters) ---\n{log.read_text()[-4000:]}"

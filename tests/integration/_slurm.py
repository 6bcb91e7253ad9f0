"""A real single-node Slurm for the slurm:// tests: Debian's slurm-wlm 22.05 (``slurmctld``, ``slurmd``,
``slurm-client``) and ``munge``, started here without systemd on 127.0.0.1 and stopped by their own pids.

Nothing of the machine's own Slurm or munge is used or changed: this lab has its own munge key and
socket, its own ``slurm.conf`` (pointed at by ``SLURM_CONF``, which every Slurm command and daemon here
is given), its own free ports, state, spool, pid and log files. What it needs from the machine: root (the
daemons run as root, munged as the ``munge`` user the Debian package creates). The node is named after
``hostname -s`` (slurmd finds its entry by that name) and both daemons are given 127.0.0.1 as their
address, so the host name need not resolve (checked with one that did not, in a UTS namespace).

Choices that make it work on one small machine (found on a 2-core Debian 12 machine, 2026-12):
``ProctrackType=proctrack/linuxproc`` and ``TaskPlugin=task/none`` (no cgroups, which a container may not
have); ``SelectType=select/cons_tres`` with ``CR_Core_Memory`` so that jobs share the node by core and
memory, ``DefMemPerCPU=1024`` (without a default, a job that names no memory takes the whole node); the
node's CPUs and sockets as ``slurmd -C`` reports them and 90% of its memory (all of it and Slurm may drain
the node for low memory); ``ReturnToService=2``. Slurm is up in about a second.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.integration._clusters import free_port, stop_process

DAEMONS = ("slurmctld", "slurmd", "munged")
CLIENTS = ("sbatch", "squeue", "scancel", "sinfo", "scontrol", "munge")
APT = "apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge"


def _tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/usr/bin") if (p := Path(d) / name).is_file()), None
    )


def slurm_unavailable() -> str | None:
    """Why the Slurm lab cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "the Slurm lab runs slurmctld, slurmd and munged as root; these tests run as a user"
    missing = [name for name in (*DAEMONS, *CLIENTS) if _tool(name) is None]
    if missing:
        return f"Slurm is not installed ({', '.join(missing)} missing): {APT}"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return f"no 'munge' user (the munge package creates it): {APT}"
    return None


class SlurmLab:
    """slurmctld, slurmd and munged for one test module, all files under ``workdir`` (munge's under a
    directory of /tmp that the ``munge`` user can reach, since pytest's temporary folders are root's
    alone)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.node = socket.gethostname().split(".")[0]
        self.conf = workdir / "slurm.conf"
        self.logs = workdir / "log"
        self.jobs_dir = workdir / "jobs"  # worker jobs' output (log_directory)
        self.munge_dir: Path | None = None
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    # -- running Slurm commands -----------------------------------------------------------------------

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        """A Slurm client command with this lab's SLURM_CONF (short-lived: its output is captured)."""
        return subprocess.run(
            [_tool(command[0]) or command[0], *command[1:]],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=check,
        )

    def queue(self) -> list[tuple[str, str, str]]:
        """``(job id, state, reason)`` of every job squeue lists now (pending, running, completing)."""
        out = self.run("squeue", "-h", "-o", "%i|%T|%r").stdout
        return [tuple(line.split("|", 2)) for line in out.splitlines() if line.strip()]  # type: ignore[misc]

    def wait_queue_empty(self, timeout: float = 20.0) -> list[tuple[str, str, str]]:
        """Wait until squeue lists no job (a cancelled job shows COMPLETING for a moment); return what
        it lists at the end."""
        deadline = time.monotonic() + timeout
        while (left := self.queue()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return left

    # -- start and stop -------------------------------------------------------------------------------

    def start(self) -> SlurmLab:
        try:
            self._start_munge()
            self._write_conf()
            for daemon in ("slurmctld", "slurmd"):
                self._spawn(daemon, [_tool(daemon) or daemon, "-D", "-f", str(self.conf)])
            self._wait_node_idle()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, command: list[str], **kwargs) -> subprocess.Popen:
        # Output to a file, never a pipe: a daemon that outlives the test would keep pytest waiting.
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.out", "wb") as out:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                **kwargs,
            )
        self.procs[name] = proc
        return proc

    def _start_munge(self) -> None:
        munge = pwd.getpwnam("munge")
        # munged checks that its socket's folder is reachable by everyone and its key is its own alone.
        self.munge_dir = Path(tempfile.mkdtemp(prefix="daskhpo-munge-"))
        self.munge_dir.chmod(0o755)
        key = self.munge_dir / "munge.key"
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(1024))
        for path in (self.munge_dir, key):
            os.chown(path, munge.pw_uid, munge.pw_gid)
        self.munge_socket = self.munge_dir / "munge.socket"
        self._spawn(
            "munged",
            [
                _tool("munged") or "munged",
                "--foreground",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--pid-file={self.munge_dir / 'munged.pid'}",
                f"--seed-file={self.munge_dir / 'munged.seed'}",
                f"--log-file={self.munge_dir / 'munged.log'}",
            ],
            user=munge.pw_uid,
            group=munge.pw_gid,
            extra_groups=[],
        )
        deadline = time.monotonic() + 15
        while True:
            done = self.run("munge", "-n", f"--socket={self.munge_socket}", check=False)
            if done.returncode == 0:
                return
            if time.monotonic() > deadline or self.procs["munged"].poll() is not None:
                raise RuntimeError(
                    f"munged did not start: {done.stderr.strip()}\n{self._log_tail('munged')}"
                )
            time.sleep(0.05)

    def _write_conf(self) -> None:
        found = self.run("slurmd", "-C").stdout
        facts = dict(re.findall(r"(\w+)=(\S+)", found.splitlines()[0]))
        state = self.workdir / "state"
        for sub in ("ctld", "slurmd"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        memory = int(facts["RealMemory"]) * 9 // 10
        self.conf.write_text(
            f"""\
ClusterName=daskhpo
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
StateSaveLocation={state / "ctld"}
SlurmdSpoolDir={state / "slurmd"}
SlurmctldPidFile={self.workdir / "slurmctld.pid"}
SlurmdPidFile={self.workdir / "slurmd.pid"}
SlurmctldLogFile={self.logs / "slurmctld.log"}
SlurmdLogFile={self.logs / "slurmd.log"}
MailProg=/bin/true
InactiveLimit=0
KillWait=5
MinJobAge=60
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={facts["CPUs"]} Boards={facts.get("Boards", 1)} \
SocketsPerBoard={facts["SocketsPerBoard"]} CoresPerSocket={facts["CoresPerSocket"]} \
ThreadsPerCore={facts["ThreadsPerCore"]} RealMemory={memory} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""
        )

    def _wait_node_idle(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited {proc.returncode}:\n{self._log_tail(name)}")
            done = self.run("sinfo", "-h", "-N", "-n", self.node, "-o", "%t", check=False)
            state = done.stdout.strip()
            if state in ("idle", "mix", "alloc"):
                return
            if state.startswith(("drain", "down", "inval")):
                self.run("scontrol", "update", f"NodeName={self.node}", "State=RESUME", check=False)
            time.sleep(0.2)
        raise RuntimeError(
            f"the Slurm node {self.node} is not idle after {timeout} s (sinfo says {state!r}):\n"
            f"{self._log_tail('slurmctld')}\n{self._log_tail('slurmd')}"
        )

    def _log_tail(self, name: str) -> str:
        parts = []
        for path in (self.logs / f"{name}.log", self.logs / f"{name}.out"):
            if path.is_file():
                parts.append(f"-- {path}:\n" + "\n".join(path.read_text().splitlines()[-20:]))
        return "\n".join(parts)

    def _our_stepds(self) -> list[int]:
        """Pids of slurmstepd processes of this lab: slurmd forks them with its environment, so they
        carry this lab's SLURM_CONF."""
        mark = f"SLURM_CONF={self.conf}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() != "slurmstepd":
                    continue
                if mark in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
        return found

    def stop(self) -> None:
        """Cancel every job, stop slurmd, slurmctld and munged (by their pids), remove munge's folder."""
        controller = self.procs.get("slurmctld")
        if controller is not None and controller.poll() is None:
            with contextlib.suppress(Exception):
                ids = [job for job, _, _ in self.queue()]
                if ids:
                    self.run("scancel", *ids, check=False)
                    self.wait_queue_empty(15)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is not None:
                stop_process(proc)
        for pid in self._our_stepds():  # step daemons outlive a stopped slurmd
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.munge_dir is not None:
            shutil.rmtree(self.munge_dir, ignore_errors=True)
            self.munge_dir = None

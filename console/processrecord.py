"""The processes a local demo started, written down in its workdir as they start.

A demo killed outright (``kill -9``, an out-of-memory kill, a crash) runs no cleanup: its Redis,
Milvus, worker and web server keep running and keep their ports and the Milvus data folder. The
next start on the same workdir reads this record and stops them first. A pid alone is not an
identity, since the system hands out a dead process's pid again, so each entry also keeps the
time its process started, and only a process that still matches both is stopped.
"""

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from console.localservices import LocalServiceError


@dataclass(frozen=True)
class RecordedProcess:
    name: str
    pid: int
    started: str
    # Started in a session of its own: signalling the group reaches the children it forked.
    group: bool = False

    @property
    def label(self) -> str:
        return f"{self.name} (pid {self.pid})"


def process_start_time(pid: int) -> str | None:
    """When ``pid`` started, in the system's own terms; None if no live process has that pid.

    A zombie has exited already (it holds no port or file), so it counts as gone.
    """
    if not Path("/proc/self/stat").exists():
        return _start_time_from_ps(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    # The command name in parentheses may hold spaces; the fields after it do not.
    fields = stat.rsplit(")", 1)[1].split()
    state, start_ticks = fields[0], fields[19]
    return None if state in ("Z", "X") else start_ticks


def _start_time_from_ps(pid: int) -> str | None:
    """The same answer where there is no /proc (macOS), from POSIX ``ps``."""
    ps = shutil.which("ps") or "/bin/ps"
    answer = subprocess.run(
        [ps, "-o", "stat=", "-o", "lstart=", "-p", str(pid)],
        capture_output=True,
        text=True,
        env={"LC_ALL": "C"},
        check=False,
    )
    line = answer.stdout.strip()
    if answer.returncode != 0 or not line or line.startswith("Z"):
        return None
    return line.split(None, 1)[1]


def _is_running(process: RecordedProcess) -> bool:
    return process_start_time(process.pid) == process.started


def _send(process: RecordedProcess, signum: signal.Signals) -> None:
    try:
        if process.group:
            os.killpg(process.pid, signum)
        else:
            os.kill(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        # Gone already; or another user's, which the wait below reports as not stopped.
        pass


class ProcessRecord:
    """A JSON file naming the demo that owns a workdir and every process it started."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def claim(self) -> None:
        """Make this process the owner, with no processes yet; call after ``stop_leftovers``."""
        self._write(self._this_process(), [])

    def add(self, name: str, pid: int, *, group: bool = False) -> None:
        """Record a process just started, before anything else can happen to the demo."""
        started = process_start_time(pid)
        if started is None:  # it has exited already: there is nothing to stop later
            return
        owner, processes = self._read()
        processes.append(RecordedProcess(name, pid, started, group))
        self._write(owner or self._this_process(), processes)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def stop_leftovers(self, *, grace: float = 2.0) -> list[str]:
        """Stop what an earlier demo on this workdir left running; returns what was stopped.

        SIGTERM first, SIGKILL after ``grace`` seconds (Milvus may never finish stopping on
        SIGTERM, and the worker has lost its broker anyway); returns once every one has exited,
        so its ports and the Milvus data folder are free. A demo that is still running itself
        is not touched: two demos on one workdir would share one Milvus data folder.
        """
        owner, processes = self._read()
        if owner is not None and _is_running(owner):
            raise LocalServiceError(
                f"A demo (pid {owner.pid}) is already running from {self.path.parent}; stop it "
                "first, or give this one another --workdir."
            )
        running = [process for process in processes if _is_running(process)]
        for process in running:
            _send(process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(map(_is_running, running)) and time.monotonic() < deadline:
            time.sleep(0.1)
        for process in running:
            # A group's leader may be gone while the children it forked are not.
            if process.group or _is_running(process):
                _send(process, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(map(_is_running, running)):
            if time.monotonic() > deadline:
                left = ", ".join(process.label for process in running if _is_running(process))
                raise LocalServiceError(f"Could not stop what an earlier demo left: {left}.")
            time.sleep(0.1)
        self.clear()
        return [process.label for process in running]

    def _this_process(self) -> RecordedProcess:
        started = process_start_time(os.getpid())
        assert started is not None  # this process is alive
        return RecordedProcess("demo", os.getpid(), started)

    def _read(self) -> tuple[RecordedProcess | None, list[RecordedProcess]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None, []
        owner = RecordedProcess(**data["owner"]) if data.get("owner") else None
        return owner, [RecordedProcess(**entry) for entry in data.get("processes", [])]

    def _write(self, owner: RecordedProcess, processes: list[RecordedProcess]) -> None:
        # Written whole and renamed, so a kill in the middle never leaves half a record.
        data = {"owner": asdict(owner), "processes": [asdict(entry) for entry in processes]}
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(data, indent=2), encoding="utf-8")
        os.replace(partial, self.path)

"""`make demo` stopped any way leaves nothing running: a stop signal stops every process it
started, and a demo killed outright is cleaned up by the next start on its workdir."""

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from console.localservices import free_port, port_is_free
from tests.helpers import PROJECT_DIR, wait_until

pytestmark = [
    pytest.mark.milvus,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table"),
]

BANNER = "Upsert Console is running at http://127.0.0.1:"


# A process is its pid and the time it started: pids are handed out again, and soon.
Process = tuple[int, int]


def _process_table() -> dict[Process, tuple[int, int]]:
    """Every live process → (parent pid, process group); a zombie has exited already."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] not in ("Z", "X"):
            table[(int(entry.name), int(fields[19]))] = (int(fields[1]), int(fields[2]))
    return table


def _command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


class Demo:
    """``manage.py rundemo`` as ``make demo`` runs it (or under ``make``), output in a file."""

    def __init__(
        self, tmp_path: Path, name: str, *, workdir: Path, port: int, under_make: bool = False
    ) -> None:
        self.log = tmp_path / f"{name}.log"
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"}
        env.pop("REDIS_URL", None)
        command = [
            sys.executable,
            "manage.py",
            "rundemo",
            "--workdir",
            str(workdir),
            "--port",
            str(port),
        ]
        if under_make:
            makefile = tmp_path / "Makefile"
            makefile.write_text(f"demo:\n\t{shlex.join(command)}\n")
            command = ["make", "--no-print-directory", "-f", str(makefile), "demo"]
        with open(self.log, "w") as output:
            self.process = subprocess.Popen(
                command,
                cwd=PROJECT_DIR,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                # Its own group, as a terminal gives a job: Redis and Milvus join it.
                start_new_session=True,
            )
        (self.itself,) = (found for found in _process_table() if found[0] == self.process.pid)
        self.started: set[Process] = set()
        self.groups = {self.process.pid}

    @property
    def output(self) -> str:
        return self.log.read_text()

    def wait_for_banner(self, timeout: float) -> None:
        wait_until(
            lambda: BANNER in self.output or self.process.poll() is not None, timeout=timeout
        )
        assert BANNER in self.output, self.output

    @property
    def web_port(self) -> int:
        found = re.search(r"running at http://127\.0\.0\.1:(\d+)/", self.output)
        assert found, self.output
        return int(found.group(1))

    def note_children(self) -> None:
        """Remember every process the demo has started so far, and their groups."""
        table = _process_table()
        parents = {self.process.pid}
        while parents:
            children = {found for found, (ppid, _) in table.items() if ppid in parents}
            children -= self.started
            self.started |= children
            self.groups |= {table[child][1] for child in children}
            parents = {pid for pid, _ in children}

    def running(self) -> set[Process]:
        """What is left of what it started: a noted process, or one of a noted group that
        began after the demo did (the worker forks its pool when it pleases)."""
        return {
            found
            for found, (_, pgid) in _process_table().items()
            if found in self.started
            or (pgid in self.groups and found != self.itself and found[1] >= self.itself[1])
        }

    def wait_until_all_gone(self, timeout: float) -> None:
        try:
            wait_until(lambda: not self.running(), timeout=timeout)
        except AssertionError:
            left = {pid: _command_line(pid).replace(b"\0", b" ") for pid, _ in self.running()}
            raise AssertionError(
                f"still running {timeout} s after the demo stopped: {left}"
            ) from None

    def kill_everything(self) -> None:
        """A failed test must not leave its demo running for the rest of the suite."""
        for pid, _ in self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def demos():
    started: list[Demo] = []
    yield started
    for demo in started:
        demo.kill_everything()


def test_the_next_start_stops_what_a_killed_demo_left_and_sigterm_stops_every_process(
    tmp_path, demos
):
    workdir, port = tmp_path / "demo", free_port()
    killed = Demo(tmp_path, "killed", workdir=workdir, port=port)
    demos.append(killed)
    killed.wait_for_banner(timeout=120)
    killed.note_children()
    killed.process.kill()
    killed.process.wait()
    left = killed.running()
    assert killed.started <= left, "everything the killed demo started survives it"

    restarted = Demo(tmp_path, "restarted", workdir=workdir, port=port)
    demos.append(restarted)
    restarted.wait_for_banner(timeout=180)

    assert "Stopped what an earlier demo left running: redis (pid" in restarted.output
    assert not (left & set(_process_table())), "what the killed demo left is gone"
    assert restarted.web_port == port, "the port the old web server held is the demo's again"

    restarted.note_children()
    restarted.process.send_signal(signal.SIGTERM)
    assert restarted.process.wait(timeout=60) == 0, restarted.output
    assert "Stopping (SIGTERM)" in restarted.output
    restarted.wait_until_all_gone(timeout=15)
    # Milvus's port is not checked: another test run's Milvus may take 19530 once it is free.
    assert port_is_free(port)
    assert not (workdir / "processes.json").exists()


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGINT], ids=["SIGHUP", "SIGINT"])
def test_a_stop_signal_while_milvus_starts_stops_what_had_started(tmp_path, demos, signum):
    demo = Demo(tmp_path, "demo", workdir=tmp_path / "demo", port=free_port())
    demos.append(demo)

    def milvus_started() -> bool:
        demo.note_children()
        return any(b"milvus\0run\0standalone" in _command_line(pid) for pid, _ in demo.running())

    wait_until(milvus_started, timeout=120, interval=0.05)
    demo.process.send_signal(signum)

    assert demo.process.wait(timeout=60) == 0, demo.output
    assert f"Stopping ({signum.name})" in demo.output
    assert BANNER not in demo.output
    demo.wait_until_all_gone(timeout=15)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_a_demo_whose_make_is_killed_outright_stops_every_process(tmp_path, demos):
    # make forwards SIGTERM to the demo, but nothing forwards SIGKILL.
    demo = Demo(tmp_path, "demo", workdir=tmp_path / "demo", port=free_port(), under_make=True)
    demos.append(demo)
    demo.wait_for_banner(timeout=120)
    demo.note_children()

    demo.process.kill()
    demo.process.wait()

    demo.wait_until_all_gone(timeout=60)
    assert "Stopping (parent process" in demo.output

"""otter-grader's commands, each run in its own subprocess with its output captured and an optional timeout.

otter starts a Jupyter kernel in a session of its own, so a timeout ends the whole
tree of processes (otter and its kernel), not just otter, and otter's temporary
files go into a temporary folder of the call (``TMPDIR``), removed even when otter was killed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Lines of otter's output kept in a build failure's message.
TAIL_LINES = 15


@dataclass(frozen=True)
class Finished:
    """A finished (or stopped) otter command.

    Attributes:
        returncode: Its exit status; ``None`` when it ran over its timeout and was stopped.
        output: Its standard output and error, interleaved.
        seconds: Its wall time.
    """

    returncode: int | None
    output: str
    seconds: float

    @property
    def timed_out(self) -> bool:
        """Whether it ran over its timeout."""
        return self.returncode is None

    def tail(self, lines: int = TAIL_LINES) -> str:
        """The last non-empty lines of its output, indented, for a message below a one-line error."""
        kept = [line for line in self.output.splitlines() if line.strip()][-lines:]
        return "\n".join(f"    {line}" for line in kept)

    def last_line(self) -> str:
        """Its output's last non-empty line (usually the error otter raised), or a note that it printed nothing."""
        kept = [line.strip() for line in self.output.splitlines() if line.strip()]
        return kept[-1] if kept else "no output"


def otter(args: list[str], cwd: Path, timeout: float | None = None) -> Finished:
    """Run ``python -m otter ARGS`` in ``cwd`` with this interpreter.

    Args:
        args: otter's subcommand and its arguments.
        cwd: Working folder.
        timeout: Seconds after which the command and every process it started are killed.

    Returns:
        The finished command; its ``returncode`` is ``None`` when it was stopped at the timeout.
    """
    with tempfile.TemporaryDirectory(prefix="camstudy-otter-") as temporary:
        return _run([sys.executable, "-m", "otter", *args], cwd, dict(os.environ, TMPDIR=temporary), timeout)


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float | None) -> Finished:
    start = time.monotonic()
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    ) as process:
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_tree(process.pid)
            output, _ = process.communicate()
            return Finished(None, output, time.monotonic() - start)
        except BaseException:  # an interrupt: leave no kernel behind
            _kill_tree(process.pid)
            raise
    return Finished(process.returncode, output, time.monotonic() - start)


def _kill_tree(pid: int) -> None:
    """Kill a process and all its descendants (a Jupyter kernel runs in a session of its own)."""
    import psutil

    try:
        parent = psutil.Process(pid)
        processes = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        return
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(processes, timeout=10)

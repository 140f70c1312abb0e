"""scripts/_proc.sh: `make run` treats a killed, unreaped service (a zombie) as dead."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _alive_file(pidfile: Path) -> bool:
    done = subprocess.run(
        ["bash", "-c", f'source "{ROOT}/scripts/_proc.sh"; alive "$1"', "_", str(pidfile)],
        check=False,
    )
    return done.returncode == 0


def _alive(pid: int, tmp_path: Path) -> bool:
    pidfile = tmp_path / "svc.pid"
    pidfile.write_text(f"{pid}\n")
    return _alive_file(pidfile)


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(") ")[2].split()[0]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs procfs (Linux)")
def test_running_zombie_and_gone_processes(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "600"])
    try:
        assert _alive(proc.pid, tmp_path)
        proc.send_signal(signal.SIGKILL)
        # Not reaped yet: the kernel keeps it as a zombie until we wait() for it.
        while _state(proc.pid) != "Z":
            pass  # the kernel marks the process within microseconds; no timed wait needed
        assert not _alive(proc.pid, tmp_path)
    finally:
        proc.kill()
        proc.wait()
    assert not _alive(proc.pid, tmp_path)


def test_missing_or_empty_pid_file_is_not_alive(tmp_path: Path) -> None:
    assert not _alive_file(tmp_path / "missing.pid")
    (tmp_path / "svc.pid").write_text("")
    assert not _alive_file(tmp_path / "svc.pid")

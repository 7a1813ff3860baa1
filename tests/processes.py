"""Looking at processes from a test, through /proc (Linux): who are a process's children, and
which of them still run."""

from __future__ import annotations

import time
from pathlib import Path


def _stat_fields(pid: int | str) -> list[str]:
    # /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat_fields(entry.name)[1]) == pid:
                    found.append(int(entry.name))
            except OSError:  # gone while we looked
                continue
    return found


def alive(pid: int) -> bool:
    try:
        return _stat_fields(pid)[0] != "Z"  # a zombie has exited; only its status is left
    except OSError:
        return False


def wait_until_gone(pids: list[int], timeout: float = 30) -> list[int]:
    """The pids still running after up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if alive(p)]

"""Worker pools: a worker never outlives the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from processes import children_of, wait_until_gone

from pipeline.workers import process_pool

ROOT = Path(__file__).resolve().parent.parent


def test_the_pool_runs_work_and_its_initializer_in_other_processes(tmp_path):
    with process_pool(2, os.chdir, (str(tmp_path),)) as pool:
        assert pool.submit(os.getpid).result() != os.getpid()
        assert pool.submit(os.getcwd).result() == str(tmp_path)


@pytest.mark.parametrize("start", ["spawn", "fork"])
def test_workers_exit_when_their_parent_is_killed(start):
    # A cron job killed mid-import must not leave its workers blocked on the queue forever.
    script = textwrap.dedent(f"""
        import time
        from pipeline.workers import process_pool
        if __name__ == "__main__":
            pool = process_pool(2, start={start!r})
            busy = [pool.submit(time.sleep, 120) for _ in range(2)]
            print("ready", flush=True)
            time.sleep(120)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        assert parent.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while len(workers := children_of(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(workers) >= 2  # two workers (and spawn's resource tracker)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    assert wait_until_gone(workers) == []

"""Worker pools: a worker never outlives the process that started it."""

from __future__ import annotations

import contextlib
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


def test_a_forked_worker_ends_quietly_on_sigterm_whatever_handler_its_parent_has():
    # systemd stops a unit by sending SIGTERM to every process in it; a forked worker must not
    # run the parent's handler (cli's raises an exception) and print a traceback.
    script = textwrap.dedent("""
        import os, signal, sys, time
        from pipeline.workers import process_pool
        def handler(signum, frame):
            raise KeyboardInterrupt
        if __name__ == "__main__":
            signal.signal(signal.SIGTERM, handler)
            pool = process_pool(2, start="fork")
            pool.submit(os.getpid).result()  # both workers started, now idle on the queue
            print("ready", flush=True)
            time.sleep(120)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert parent.stdout.readline().strip() == "ready"
        workers = children_of(parent.pid)
        assert len(workers) == 2
        for pid in workers:
            # The pool's manager thread may end (and reap) the second worker itself once the
            # first is gone: a worker no longer there has ended too.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        assert wait_until_gone(workers) == []
    finally:
        parent.send_signal(signal.SIGKILL)
        _out, err = parent.communicate()
    assert "Traceback" not in err, err

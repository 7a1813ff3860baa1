"""The one way this project starts worker processes: a pool whose workers die with it.

A ProcessPoolExecutor worker blocks on its task queue forever once the process that started it
is gone: a cron job killed with SIGKILL (or by the OOM killer) would leave its workers behind,
two more after every kill. Each worker here watches its parent and exits when it is gone.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Literal

PARENT_CHECK_SECONDS = 0.5


def process_pool(
    workers: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
    *,
    start: Literal["auto", "spawn", "fork"] = "auto",
) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes that exit when this process does, however it ends.

    ``auto`` forks while this is the only thread, and spawns otherwise: fork starts a worker in
    milliseconds instead of a fresh interpreter's ~0.3 s (importing Pillow and the pipeline),
    but copies other threads' locks mid-operation (storage upload threads, say).
    """
    if start == "auto":
        start = "fork" if threading.active_count() == 1 else "spawn"
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context(start),
        initializer=_start_worker,
        initargs=(os.getpid(), initializer, initargs),
    )


def _start_worker(
    parent_pid: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]
) -> None:
    # Signals are the parent's business: Ctrl-C reaches the whole process group, and the
    # parent cancels the pool; SIGTERM (systemd stops the whole group) ends a worker quietly
    # rather than through a handler a forked worker would inherit from the parent.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    watch = threading.Thread(
        target=_exit_with_parent, args=(parent_pid,), name="memes-parent-watch", daemon=True
    )
    watch.start()
    if initializer is not None:
        initializer(*initargs)


def _exit_with_parent(parent_pid: int) -> None:
    # An orphan is re-parented (to init or a subreaper), so its parent pid changes. Polling
    # works for every start method; a pipe sentinel would stay open in sibling forked workers.
    while os.getppid() == parent_pid:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)

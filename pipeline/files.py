"""The one way this project writes a file: atomically, so a reader or a crash never sees half."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, temp_prefix: str = ".tmp-", sync: bool = True) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename.

    ``sync`` fsyncs before the rename, for files something else will name (a catalog record,
    a storage manifest); a cache can skip it. Files come out 0644 (mkstemp makes 0600), so a
    web server can read a published folder. Raises OSError; the temp file never stays behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            if sync:
                out.flush()
                os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

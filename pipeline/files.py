"""The one way this project writes a file: atomically, so a reader or a crash never sees half."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, temp_prefix: str = ".tmp-", sync: bool = True) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename.

    ``sync`` fsyncs before the rename, for files something else will name (a catalog record,
    a storage manifest); a cache can skip it. Files come out 0644 (mkstemp makes 0600), so a
    web server can read a published folder. Raises OSError; the temp file never stays behind.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a file where a folder should be: name it
        blocker = next((p for p in reversed(path.parents) if p.exists() and not p.is_dir()),
                       path.parent)
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(blocker)) from None
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


class Unreadable(ValueError):
    """read_text_capped could not give a file's text; the message says why, in words that
    follow the file's name: "not found", "is not UTF-8 text (byte 17)", ..."""


def read_text_capped(path: Path, max_bytes: int, encoding: str = "utf-8") -> str:
    """A text file people wrote (a config, a manifest), read with read_capped; Unreadable
    for every reason it cannot be, so callers turn it into one line."""
    try:
        return read_capped(path, max_bytes).decode(encoding)
    except FileNotFoundError:
        raise Unreadable("not found") from None
    except NotRegularFile:  # its message names the path, which the caller names already
        raise Unreadable("cannot be read (not a regular file)") from None
    except OSError as exc:
        raise Unreadable(f"cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise Unreadable(f"is not UTF-8 text (byte {exc.start + 1})") from None
    except TooBig as exc:
        raise Unreadable(f"is {exc}, over {exc.limit:,}") from None


class NotRegularFile(OSError):
    """A FIFO, a device or a socket where a file was expected."""


class TooBig(ValueError):
    """A file over the size it may have; ``size`` is its size on disk when that was known."""

    def __init__(self, limit: int, size: int | None):
        super().__init__(f"over {limit:,} bytes" if size is None else f"{size:,} bytes")
        self.limit = limit
        self.size = size


def read_capped(path: Path, max_bytes: int) -> bytes:
    """A regular file's bytes, never reading more than ``max_bytes`` + 1 of them: a file whose
    size on disk says nothing (/proc/self/pagemap says 0) cannot make us read gigabytes, and
    a FIFO or a device is refused before it is opened. TooBig over the limit, IsADirectoryError
    or NotRegularFile for what is not a regular file, else what os.stat and open raise."""
    info = os.stat(path)
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(21, "Is a directory", str(path))
    if not stat.S_ISREG(info.st_mode):
        raise NotRegularFile(f"{path}: not a regular file")
    if info.st_size > max_bytes:
        raise TooBig(max_bytes, info.st_size)
    with open(path, "rb") as file:
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TooBig(max_bytes, None)
    return data

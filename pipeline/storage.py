"""Where published files go: a folder (file://) or any S3-compatible bucket (s3://).

Both backends keep the same contract:

* Every object gets its Content-Type and a Cache-Control (a year and ``immutable`` for
  content-hashed assets, ``storage.document_max_age`` seconds for everything else).
* A manifest of what is in storage lives in storage itself (``_memes/manifest.json`` under the
  prefix), so a second cron host or a fresh clone knows what is already there: a sync with
  nothing new is one GET of the manifest, no listing and no HEAD per object.
* Uploads run in parallel; only documents whose key + content + headers are not in the
  manifest go up. The caller saves the manifest after the objects it names.
* ``_memes/`` is reserved: no document may be written there, and gc never touches it.
* A lock object (``_memes/lock.json``) serialises several cron hosts.

For file:// storage, Content-Type and Cache-Control cannot be stored with the file, so they
live in the manifest (the web server in front of the folder decides the real headers).
Files are written atomically: a temp file in the same folder, then a rename; temp names start
with ``.memes-tmp-``, a prefix no key may use, so they can never be mistaken for content.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mimetypes
import os
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import cached_property, lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

from pipeline.config import StorageConfig
from pipeline.documents import Document
from pipeline.errors import StorageError
from pipeline.files import write_atomic
from pipeline.library import iso, parse_iso

IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"
META_PREFIX = "_memes/"
MANIFEST_KEY = META_PREFIX + "manifest.json"
LOCK_KEY = META_PREFIX + "lock.json"
TEMP_PREFIX = ".memes-tmp-"
MANIFEST_VERSION = 1
# put_object up to this size; above it a multipart upload (S3 allows 5 GiB in one PUT, but a
# failed 100 MB PUT is retried whole, a failed part only as that part).
MULTIPART_THRESHOLD = 16 * 1024 * 1024
MULTIPART_CHUNK = 8 * 1024 * 1024
MAX_KEY_BYTES = 1024  # the S3 limit


def cache_control_for(document: Document, max_age: int) -> str:
    """The Cache-Control every copy of ``document`` is served with."""
    return IMMUTABLE_CACHE_CONTROL if document.immutable else f"public, max-age={max_age}"


def check_key(key: str) -> str:
    """Return ``key`` if it may name published content, else raise StorageError saying why.

    Keys are relative, '/'-separated, without empty, '.' or '..' segments, outside the
    reserved ``_memes/`` folder and never starting a segment with the temp-file prefix.
    """
    reason = None
    if not isinstance(key, str) or not key:
        reason = "empty"
    elif key.startswith("/") or "\\" in key:
        reason = "must be a relative path with '/' separators"
    elif any(seg in ("", ".", "..") for seg in key.split("/")):
        reason = "empty, '.' or '..' path segment"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        reason = "control character"
    elif key.startswith(META_PREFIX) or key == META_PREFIX.rstrip("/"):
        reason = f"{META_PREFIX} is reserved for the manifest and the lock"
    elif any(seg.startswith(TEMP_PREFIX) for seg in key.split("/")):
        reason = f"'{TEMP_PREFIX}' names temporary files"
    elif len(key.encode("utf-8")) > MAX_KEY_BYTES:
        reason = f"longer than {MAX_KEY_BYTES} bytes"
    if reason:
        raise StorageError(f"invalid storage key {key!r}: {reason}")
    return key


# --- the manifest ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectInfo:
    """One object in storage, as the manifest (or a HEAD) knows it."""

    key: str
    size: int
    sha256: str
    content_type: str
    cache_control: str
    uploaded_at: str  # iso() UTC
    unreferenced_since: str | None = None  # set by gc when no index names the key any more
    writer: str | None = None  # id of the library that wrote it; gc deletes only its own
    acl: str | None = None  # the canned ACL it was given (storage.acl), if any
    source: str | None = None  # digest of what it was made from (Document.source), if known

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["key"]
        for optional in ("unreferenced_since", "writer", "acl", "source"):
            if data[optional] is None:
                del data[optional]
        return data

    @classmethod
    def from_dict(cls, key: str, data: Mapping[str, Any]) -> ObjectInfo:
        return cls(
            key=key,
            size=int(data["size"]),
            sha256=str(data["sha256"]),
            content_type=str(data["content_type"]),
            cache_control=str(data["cache_control"]),
            uploaded_at=str(data["uploaded_at"]),
            unreferenced_since=_optional_time(data.get("unreferenced_since")),
            writer=data.get("writer"),
            acl=data.get("acl"),
            source=data.get("source"),
        )


def _optional_time(value: Any) -> str | None:
    """A manifest time as stored (ISO 8601 text) or None; ValueError for anything else, so
    gc never compares a number or "yesterday" with now."""
    if value is None:
        return None
    try:
        parse_iso(value)
    except (TypeError, ValueError, AttributeError):
        raise ValueError(f"expected an ISO 8601 time, got {value!r:.40}") from None
    return str(value)


class Manifest:
    """key -> ObjectInfo for everything this pipeline put in storage, and the id of the library
    that owns the storage (None: a manifest from before owners were recorded, or none yet).

    Serialised as ``{"version": 1, "owner": id, "objects": {key: {size, sha256, ...}}}`` with
    sorted keys, so two saves of the same state are byte-identical. Every object put records
    the owner at that time as its writer.
    """

    def __init__(self, objects: Iterable[ObjectInfo] = (), owner: str | None = None):
        self._objects: dict[str, ObjectInfo] = {info.key: info for info in objects}
        self.owner = owner
        self.changed = False  # put or remove since it was loaded: it differs from storage's

    def get(self, key: str) -> ObjectInfo | None:
        return self._objects.get(key)

    def source_of(self, key: str) -> str | None:
        """What the object at ``key`` was made from (Document.source), if recorded."""
        info = self._objects.get(key)
        return info.source if info is not None else None

    def keys(self) -> list[str]:
        return sorted(self._objects)

    def values(self) -> list[ObjectInfo]:
        return [self._objects[key] for key in self.keys()]

    def put(self, info: ObjectInfo) -> None:
        if info.writer is None and self.owner is not None:
            info = replace(info, writer=self.owner)
        self._objects[info.key] = info
        self.changed = True

    def remove(self, key: str) -> None:
        self.changed = self._objects.pop(key, None) is not None or self.changed

    def __contains__(self, key: object) -> bool:
        return key in self._objects

    def __len__(self) -> int:
        return len(self._objects)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Manifest)
            and self._objects == other._objects
            and self.owner == other.owner
        )

    @property
    def total_bytes(self) -> int:
        return sum(info.size for info in self._objects.values())

    def is_current(self, document: Document, cache_control: str) -> bool:
        """True if storage already holds exactly this document with these headers."""
        info = self._objects.get(document.key)
        return (
            info is not None
            and info.sha256 == document.sha256
            and info.size == document.size
            and info.content_type == document.content_type
            and info.cache_control == cache_control
        )

    def to_json(self) -> bytes:
        objects = {key: self._objects[key].to_dict() for key in self.keys()}
        doc: dict[str, Any] = {"version": MANIFEST_VERSION, "objects": objects}
        if self.owner is not None:
            doc["owner"] = self.owner
        # Compact: at 10,000+ objects every byte is read and written on each publish.
        text = json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        return text.encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str) -> Manifest:
        """Parse a manifest; ValueError (with the reason) if it is not one."""
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict) or not isinstance(doc.get("objects"), dict):
                raise ValueError("not a manifest (no 'objects' mapping)")
            if doc.get("version") != MANIFEST_VERSION:
                raise ValueError(f"unsupported manifest version {doc.get('version')!r}")
            owner = doc.get("owner")
            if owner is not None and not isinstance(owner, str):
                raise ValueError(f"owner must be a string, got {owner!r}")
            objects = []
            for key, entry in doc["objects"].items():
                try:
                    objects.append(ObjectInfo.from_dict(key, entry))
                except ValueError as exc:
                    raise ValueError(f"entry {key!r:.80}: {exc}") from None
            return cls(objects, owner)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed manifest entry ({exc})") from None
        except RecursionError:  # json.loads of [[[[...: not a manifest, never a traceback
            raise ValueError("not a manifest (nested too deeply)") from None


@dataclass
class SyncReport:
    uploaded: list[str] = field(default_factory=list)
    uploaded_bytes: int = 0
    skipped: list[str] = field(default_factory=list)
    requests: int = 0  # requests to storage made by this put_many


@runtime_checkable
class Storage(Protocol):
    """What publish, verify and gc need from storage; see FileStorage and S3Storage."""

    description: str
    request_counts: Counter[str]

    @property
    def requests(self) -> int: ...
    def load_manifest(self) -> Manifest: ...
    def save_manifest(self, manifest: Manifest) -> None: ...
    def put_many(
        self,
        documents: Sequence[Document],
        manifest: Manifest,
        progress: Callable[[int], None] | None = None,
    ) -> SyncReport: ...
    def head(self, key: str) -> ObjectInfo | None: ...
    def restamp(self, manifest: Manifest) -> list[str]: ...
    def get(self, key: str) -> bytes | None: ...
    def has_objects(self) -> bool: ...
    def delete_many(self, keys: Sequence[str], manifest: Manifest) -> None: ...
    def try_lock(self, owner: str, ttl_seconds: int) -> bool: ...
    def unlock(self, owner: str) -> None: ...
    def url_for(self, key: str) -> str: ...


# --- shared machinery --------------------------------------------------------------------------


def _lock_body(owner: str, ttl_seconds: int) -> bytes:
    now = datetime.now(UTC)
    body = {
        "owner": owner,
        "acquired_at": iso(now),
        "expires_at": iso(now + timedelta(seconds=ttl_seconds)),
    }
    return json.dumps(body).encode("utf-8")


def _lock_owner(data: bytes) -> str | None:
    try:
        owner = json.loads(data).get("owner")
    except (ValueError, AttributeError):
        return None  # a torn or foreign lock body: treat as nobody's (taken over when stale)
    return owner if isinstance(owner, str) else None


class _Backend:
    """put_many planning, the thread pool and request counting, shared by both backends."""

    description: str

    def __init__(self, config: StorageConfig):
        self.config = config
        self.request_counts: Counter[str] = Counter()
        self._count_lock = threading.Lock()

    @property
    def requests(self) -> int:
        """Requests made to storage so far (for file://, file operations)."""
        return sum(self.request_counts.values())

    def _count(self, operation: str) -> None:
        with self._count_lock:
            self.request_counts[operation] += 1

    def get(self, key: str) -> bytes | None:
        raise NotImplementedError

    def load_manifest(self) -> Manifest:
        """What is in storage, from the manifest kept there; empty for a new target."""
        data = self.get(MANIFEST_KEY)
        if data is None:
            return Manifest()
        try:
            return Manifest.from_json(data)
        except ValueError as exc:
            raise StorageError(f"storage {self.description}: {MANIFEST_KEY}: {exc}") from None

    def _put_document(self, document: Document, cache_control: str) -> None:
        raise NotImplementedError

    def _now(self) -> str:
        return iso(datetime.now(UTC))

    def put_many(
        self,
        documents: Sequence[Document],
        manifest: Manifest,
        progress: Callable[[int], None] | None = None,
    ) -> SyncReport:
        """Upload, in parallel, the documents the manifest does not already hold as they are.

        The manifest is updated in memory for every document that went up (the caller saves
        it). ``progress(n)`` is called with the number of documents just finished (skipped
        ones first, in one call), so it can drive a bar of ``len(documents)``. If an upload
        fails, the remaining ones are cancelled and StorageError is raised; the manifest then
        names exactly the documents that did go up, so saving it is still correct.
        """
        before = self.requests
        report = SyncReport()
        todo: dict[str, tuple[Document, str]] = {}
        for document in documents:
            check_key(document.key)
            cache_control = cache_control_for(document, self.config.document_max_age)
            if document.key in todo:
                if todo[document.key][0].sha256 != document.sha256:
                    raise StorageError(f"two different documents for the key {document.key!r}")
                continue
            if manifest.is_current(document, cache_control):
                report.skipped.append(document.key)
                known = manifest.get(document.key)
                if document.source and known is not None and known.source != document.source:
                    manifest.put(replace(known, source=document.source))  # same bytes
                continue
            todo[document.key] = (document, cache_control)
        if progress and report.skipped:
            progress(len(report.skipped))

        def record(document: Document, cache_control: str) -> None:
            info = ObjectInfo(
                key=document.key,
                size=document.size,
                sha256=document.sha256,
                content_type=document.content_type,
                cache_control=cache_control,
                uploaded_at=self._now(),
                acl=self.config.acl,
                source=document.source or None,
            )
            manifest.put(info)
            report.uploaded.append(document.key)
            report.uploaded_bytes += document.size
            if progress:
                progress(1)

        self._upload(list(todo.values()), record)
        report.requests = self.requests - before
        return report

    def restamp(self, manifest: Manifest) -> list[str]:
        """Give every object the manifest records the headers the settings now ask for
        (storage.acl, document_max_age), without uploading its bytes again; return the keys
        changed. The manifest is updated in memory (the caller saves it)."""
        stale = []
        for info in manifest.values():
            if info.key.startswith(META_PREFIX):
                continue
            immutable = info.cache_control == IMMUTABLE_CACHE_CONTROL
            wanted = replace(
                info,
                cache_control=IMMUTABLE_CACHE_CONTROL if immutable
                else f"public, max-age={self.config.document_max_age}",
                acl=self.config.acl,
            )  # fmt: skip
            if wanted != info:
                stale.append(wanted)
        if stale:
            workers = max(1, min(self.config.concurrency, len(stale)))
            with ThreadPoolExecutor(workers, thread_name_prefix="memes-restamp") as pool:
                for info in pool.map(self._restamp_one, stale):
                    manifest.put(info)
        return [info.key for info in stale]

    def _restamp_one(self, info: ObjectInfo) -> ObjectInfo:
        """Apply ``info``'s headers to the object in storage; return it."""
        return info  # file://: the headers live in the manifest only

    def _upload(
        self,
        jobs: list[tuple[Document, str]],
        record: Callable[[Document, str], None],
    ) -> None:
        """Run _put_document over jobs on storage.concurrency threads; record() in this thread."""
        if not jobs:
            return
        workers = max(1, min(self.config.concurrency, len(jobs)))
        with ThreadPoolExecutor(workers, thread_name_prefix="memes-upload") as pool:
            futures: dict[Future[None], tuple[Document, str]] = {
                pool.submit(self._put_document, doc, cc): (doc, cc) for doc, cc in jobs
            }
            error: BaseException | None = None
            try:
                for future in as_completed(futures):
                    if future.cancelled():
                        continue
                    exc = future.exception()
                    if exc is None:
                        record(*futures[future])
                    elif error is None:
                        error = exc
                        for other in futures:
                            other.cancel()  # fail fast: don't keep hammering a sick server
            except BaseException:
                for other in futures:  # Ctrl-C: don't wait for the whole queue to drain
                    other.cancel()
                raise
            if error is not None:
                raise error


# --- file:// ---------------------------------------------------------------------------------


class FileStorage(_Backend):
    """A folder, e.g. the document root of a web server, or a test's tmp_path."""

    def __init__(self, config: StorageConfig):
        super().__init__(config)
        self.root = config.local_path
        self.description = "file://" + str(self.root)
        self._manifest_cache: tuple[tuple[int, int], Manifest] | None = None

    def url_for(self, key: str) -> str:
        return "file://" + str(self.root / key)

    def _path(self, key: str) -> Path:
        return self.root / key

    def _fail(self, action: str, key: str, exc: OSError) -> StorageError:
        cause = exc.strerror or exc.__class__.__name__
        return StorageError(f"storage {self.description}: cannot {action} {key}: {cause}")

    def _write(self, key: str, data: bytes) -> None:
        """Write atomically: temp file in the same folder, fsync, rename over the target."""
        try:  # fsync: the manifest saved next must never name an empty file
            write_atomic(self._path(key), data, temp_prefix=TEMP_PREFIX)
        except OSError as exc:
            raise self._fail("write", key, exc) from None

    def _read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise self._fail("read", key, exc) from None

    def _put_document(self, document: Document, cache_control: str) -> None:
        self._count("PutObject")
        self._write(document.key, document.data)

    def save_manifest(self, manifest: Manifest) -> None:
        self._count("PutObject")
        self._write(MANIFEST_KEY, manifest.to_json())

    def _manifest_for_head(self) -> Manifest:
        """The manifest as on disk, re-read only when it changed (verify HEADs every key)."""
        try:
            st = self._path(MANIFEST_KEY).stat()
        except OSError:
            return Manifest()
        stamp = (st.st_mtime_ns, st.st_size)
        if self._manifest_cache is None or self._manifest_cache[0] != stamp:
            data = self._read(MANIFEST_KEY) or b""
            try:
                self._manifest_cache = (stamp, Manifest.from_json(data))
            except ValueError:
                return Manifest()
        return self._manifest_cache[1]

    def head(self, key: str) -> ObjectInfo | None:
        """Size, sha256 and mtime from the file; type and cache control from the manifest."""
        self._count("HeadObject")
        data = self._read(key)
        if data is None:
            return None
        try:
            mtime = self._path(key).stat().st_mtime
        except OSError:
            return None  # deleted between the read and the stat
        known = self._manifest_for_head().get(key)
        if known is not None:
            content_type, cache_control = known.content_type, known.cache_control
        else:
            content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
            cache_control = ""
        return ObjectInfo(
            key=key,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            content_type=content_type,
            cache_control=cache_control,
            uploaded_at=iso(datetime.fromtimestamp(mtime, UTC)),
        )

    def get(self, key: str) -> bytes | None:
        self._count("GetObject")
        return self._read(key)

    def has_objects(self) -> bool:
        """Whether the folder holds any content (anything outside _memes/ and temp files)."""
        self._count("ListObjects")
        for folder, subfolders, files in os.walk(self.root):
            if Path(folder) == self.root:
                subfolders[:] = [d for d in subfolders if d != META_PREFIX.rstrip("/")]
            if any(not name.startswith(TEMP_PREFIX) for name in files):
                return True
        return False

    def delete_many(self, keys: Sequence[str], manifest: Manifest) -> None:
        """Delete files (missing ones are fine) and prune folders left empty."""
        for key in dict.fromkeys(keys):
            check_key(key)
            path = self._path(key)
            self._count("DeleteObject")
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise self._fail("delete", key, exc) from None
            manifest.remove(key)
            parent = path.parent
            while parent != self.root and self.root in parent.parents:
                try:
                    parent.rmdir()
                except OSError:
                    break  # not empty (or gone): stop pruning
                parent = parent.parent

    # The lock: O_CREAT|O_EXCL makes creation atomic, on NFS too.
    def try_lock(self, owner: str, ttl_seconds: int) -> bool:
        path = self._path(LOCK_KEY)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._fail("create", META_PREFIX, exc) from None
        for _ in range(3):
            if self._create_lock(path, owner, ttl_seconds):
                return True
            try:
                data = path.read_bytes()
                age = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue  # released meanwhile: try again
            if _lock_owner(data) == owner:
                return True
            if age <= ttl_seconds:
                return False
            if not self._break_stale(path, data):
                return False
        return False

    def _create_lock(self, path: Path, owner: str, ttl_seconds: int) -> bool:
        body = _lock_body(owner, ttl_seconds)  # before the file exists: nothing to undo
        self._count("PutObject")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise self._fail("create", LOCK_KEY, exc) from None
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(body)
        except OSError as exc:  # a full disk: an empty lock would hold every run off
            path.unlink(missing_ok=True)
            raise self._fail("create", LOCK_KEY, exc) from None
        return True

    def _break_stale(self, path: Path, stale: bytes) -> bool:
        """Move a stale lock aside; False if another host took it over in the meantime."""
        aside = path.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex}")
        try:
            os.rename(path, aside)  # atomic: of two hosts breaking it, one wins
        except FileNotFoundError:
            return True  # someone else broke it; race for the O_EXCL create
        try:
            if aside.read_bytes() != stale:
                # We moved a fresh lock another host had just taken: put it back (link never
                # overwrites) and back off.
                with contextlib.suppress(OSError):
                    os.link(aside, path)
                return False
            return True
        finally:
            with contextlib.suppress(OSError):
                os.unlink(aside)

    def unlock(self, owner: str) -> None:
        """Remove the lock if ``owner`` holds it (a lock taken over by another is left)."""
        path = self._path(LOCK_KEY)
        self._count("GetObject")
        data = self._read(LOCK_KEY)
        if data is None or _lock_owner(data) != owner:
            return
        self._count("DeleteObject")
        with contextlib.suppress(OSError):
            path.unlink()
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # made for the lock alone (a refused run): leave no trace


# --- s3:// -----------------------------------------------------------------------------------

_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "AuthorizationHeaderMalformed",
}


class S3Storage(_Backend):
    """A bucket (and prefix) on AWS S3 or any S3-compatible service.

    One botocore client is shared by the upload threads (clients are thread-safe, sessions
    are not). ``request_counts`` counts every HTTP request sent, by operation name, through
    botocore's ``before-send`` event, retries included.
    """

    def __init__(self, config: StorageConfig, client: Any = None):
        super().__init__(config)
        self.bucket = config.bucket
        self.prefix = config.prefix
        self.client = client if client is not None else make_s3_client(config)
        self.client.meta.events.register("before-send.s3.*", self._on_send)
        self.endpoint = without_userinfo(self.client.meta.endpoint_url)
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.description = f"{where} at {self.endpoint}"
        self.conditional_writes = True  # cleared if the service rejects If-None-Match
        self.gave_up: StorageError | None = None  # set by a timeout: no request after it

    def _on_send(self, event_name: str, **_: Any) -> None:
        if self.gave_up is not None:  # the endpoint stopped answering: fail at once, so a
            raise self.gave_up  # run ends within about 2 x storage.timeout, not n times that
        self._count(event_name.rsplit(".", 1)[-1])

    def url_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    # errors -> one line naming the endpoint, the bucket and the cause
    def _fail(self, exc: Exception, action: str, key: str | None = None) -> StorageError:
        from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

        cause = without_userinfo(describe_s3_error(exc, action, key))
        error = StorageError(f"storage {self.description}: {cause}")
        if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
            self.gave_up = error
        return error

    def _call(self, action: str, key: str | None, fn: Callable[..., Any], **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, action, key) from None

    def _extra(self, content_type: str, cache_control: str, sha256: str | None) -> dict[str, Any]:
        extra: dict[str, Any] = {"ContentType": content_type, "CacheControl": cache_control}
        if sha256:
            extra["Metadata"] = {"sha256": sha256}  # so verify's HEAD can compare content
        return extra

    def _put_document(self, document: Document, cache_control: str) -> None:
        extra = self._extra(document.content_type, cache_control, document.sha256)
        if self.config.acl:
            extra["ACL"] = self.config.acl
        key = self.prefix + document.key
        if document.size <= MULTIPART_THRESHOLD:
            if self._direct_put(key, document, extra):
                return
            self._call(
                "upload", document.key, self.client.put_object,
                Bucket=self.bucket, Key=key, Body=document.data, **extra,
            )  # fmt: skip
            return
        from boto3.s3.transfer import TransferConfig

        transfer = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD,
            multipart_chunksize=MULTIPART_CHUNK,
            max_concurrency=4,
        )
        self._call(
            "upload", document.key, self.client.upload_fileobj,
            Fileobj=BytesIO(document.data), Bucket=self.bucket, Key=key,
            ExtraArgs=extra, Config=transfer,
        )  # fmt: skip

    def _restamp_one(self, info: ObjectInfo) -> ObjectInfo:
        """Copy the object onto itself with the new headers (no bytes go up again)."""
        extra = self._extra(info.content_type, info.cache_control, info.sha256)
        if info.acl:
            extra["ACL"] = info.acl
        key = self.prefix + info.key
        self._call(
            "update", info.key, self.client.copy_object,
            Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": key},
            MetadataDirective="REPLACE", **extra,
        )  # fmt: skip
        return info

    def _direct_put(self, key: str, document: Document, extra: Mapping[str, Any]) -> bool:
        """One PutObject of a small document, signed by botocore's own SigV4 signer and sent on
        the client's own HTTP session (its pool, timeouts and proxies), skipping the per-call
        machinery that costs the client more CPU than the request: parameter validation,
        serialization, endpoint rules, a dozen event hooks and response parsing. The payload
        hash is the document's sha256, already known. The ``before-send`` event still fires
        (request counting, and anyone watching the headers). False, having sent nothing that
        succeeded, when it does not apply or the request did not come back 200: the caller
        then makes the request through put_object, with its retries and error parsing.

        Only for path-style addressing (custom endpoints: SeaweedFS, MinIO); AWS itself goes
        through put_object."""
        if not self._direct:
            return False
        from botocore.awsrequest import AWSRequest

        headers = {"Content-Type": extra["ContentType"], "Cache-Control": extra["CacheControl"]}
        for name, value in extra.get("Metadata", {}).items():
            headers[f"x-amz-meta-{name}"] = value
        if "ACL" in extra:
            headers["x-amz-acl"] = extra["ACL"]
        url = f"{self.endpoint}/{self.bucket}/{quote(key, safe='/~')}"
        request = AWSRequest(method="PUT", url=url, data=document.data, headers=headers)
        request.context["payload_sha256"] = document.sha256
        region = self.client.meta.region_name
        endpoint = self.client._endpoint
        try:
            # The client's own signer hands out its current (refreshed) credentials.
            credentials = self.client._request_signer.get_auth_instance("s3", region).credentials
            _known_payload_auth()(credentials, "s3", region).add_auth(request)
            prepared = endpoint.prepare_request(request)  # headers encoded as botocore does
            self.client.meta.events.emit("before-send.s3.PutObject", request=prepared)
            response = endpoint.http_session.send(prepared)
        except Exception:  # no credentials, connection trouble: put_object retries, reports
            return False
        return response.status_code == 200

    @cached_property
    def _direct(self) -> bool:
        s3 = getattr(self.client.meta.config, "s3", None) or {}
        return (
            s3.get("addressing_style") == "path"
            and self.client.meta.config.signature_version in (None, "s3v4", "v4")
            and self.client.meta.region_name is not None
            and hasattr(self.client, "_request_signer")
            and hasattr(self.client, "_endpoint")
        )

    def _get(self, key: str, action: str) -> tuple[bytes, dict[str, Any]] | None:
        """GET prefix+key; None if there is no such key (a missing bucket is an error)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            return response["Body"].read(), response
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchKey":
                return None
            raise self._fail(exc, action, key) from None
        except BotoCoreError as exc:
            raise self._fail(exc, action, key) from None

    def save_manifest(self, manifest: Manifest) -> None:
        # Never public, never cached: it is bookkeeping, not content.
        self._call(
            "write", MANIFEST_KEY, self.client.put_object,
            Bucket=self.bucket, Key=self.prefix + MANIFEST_KEY, Body=manifest.to_json(),
            **self._extra("application/json", "no-store", None),
        )  # fmt: skip

    def head(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            r = self.client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise self._fail(exc, "inspect", key) from None
        except BotoCoreError as exc:
            raise self._fail(exc, "inspect", key) from None
        return ObjectInfo(
            key=key,
            size=int(r.get("ContentLength", 0)),
            sha256=(r.get("Metadata") or {}).get("sha256", ""),
            content_type=r.get("ContentType", ""),
            cache_control=r.get("CacheControl", ""),
            uploaded_at=iso(r["LastModified"]) if r.get("LastModified") else "",
        )

    def get(self, key: str) -> bytes | None:
        got = self._get(key, "read")
        return None if got is None else got[0]

    def has_objects(self) -> bool:
        """Whether the prefix holds any content (any key outside _memes/)."""
        response = self._call(
            "list", None, self.client.list_objects_v2,
            Bucket=self.bucket, Prefix=self.prefix, MaxKeys=10,
        )  # fmt: skip
        keys = [item["Key"][len(self.prefix) :] for item in response.get("Contents", [])]
        return any(not key.startswith(META_PREFIX) for key in keys) or (
            len(keys) == 10 and bool(response.get("IsTruncated"))
        )

    def delete_many(self, keys: Sequence[str], manifest: Manifest) -> None:
        """DeleteObjects in batches of 1000 (the S3 limit); missing keys are fine."""
        unique = [check_key(key) for key in dict.fromkeys(keys)]
        for start in range(0, len(unique), 1000):
            batch = unique[start : start + 1000]
            response = self._call(
                "delete", batch[0], self.client.delete_objects,
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": self.prefix + k} for k in batch], "Quiet": True},
            )  # fmt: skip
            failed = {e.get("Key", "")[len(self.prefix) :]: e for e in response.get("Errors", [])}
            for key in batch:
                if key not in failed:
                    manifest.remove(key)
            if failed:
                key, err = next(iter(failed.items()))
                raise StorageError(
                    f"storage {self.description}: cannot delete {key}: "
                    f"{err.get('Code', '?')} {err.get('Message', '')}".rstrip()
                )

    # The lock: a conditional PUT (If-None-Match: *) creates it only if absent; a stale lock is
    # replaced with If-Match on the ETag we read, so of two hosts taking it over one wins.
    def try_lock(self, owner: str, ttl_seconds: int) -> bool:
        if not self.conditional_writes:
            return self._try_lock_unconditional(owner, ttl_seconds)
        for _ in range(3):
            created = self._conditional_put(_lock_body(owner, ttl_seconds), IfNoneMatch="*")
            if created is None:  # the service does not do conditional writes
                return self._try_lock_unconditional(owner, ttl_seconds)
            if created:
                return True
            got = self._get(LOCK_KEY, "read")
            if got is None:
                continue  # released meanwhile: race for it again
            data, response = got
            if _lock_owner(data) == owner:
                return True
            if _lock_age(response) <= ttl_seconds:
                return False
            taken = self._conditional_put(_lock_body(owner, ttl_seconds), IfMatch=response["ETag"])
            return bool(taken)
        return False

    def _conditional_put(self, body: bytes, **condition: str) -> bool | None:
        """PUT the lock object under a condition: True done, False refused, None unsupported."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self.prefix + LOCK_KEY, Body=body,
                **self._extra("application/json", "no-store", None), **condition,
            )  # fmt: skip
            return True
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if error.get("Code") in ("PreconditionFailed", "ConditionalRequestConflict") or (
                status in (409, 412)
            ):
                return False
            if error.get("Code") == "NotImplemented" or status == 501:
                self.conditional_writes = False
                return None
            raise self._fail(exc, "write", LOCK_KEY) from None
        except BotoCoreError as exc:
            raise self._fail(exc, "write", LOCK_KEY) from None

    def _try_lock_unconditional(self, owner: str, ttl_seconds: int) -> bool:
        """Weaker fallback for services without conditional writes: read, put, read back.

        Two hosts starting within one round trip of each other can both see a free lock; the
        read-back makes the loser notice in all but the closest races.
        """
        got = self._get(LOCK_KEY, "read")
        if got is not None:
            data, response = got
            if _lock_owner(data) != owner and _lock_age(response) <= ttl_seconds:
                return False
        self._call(
            "write", LOCK_KEY, self.client.put_object,
            Bucket=self.bucket, Key=self.prefix + LOCK_KEY, Body=_lock_body(owner, ttl_seconds),
            **self._extra("application/json", "no-store", None),
        )  # fmt: skip
        back = self._get(LOCK_KEY, "read")
        return back is not None and _lock_owner(back[0]) == owner

    def unlock(self, owner: str) -> None:
        """Delete the lock if ``owner`` holds it (If-Match, so a takeover is never deleted)."""
        from botocore.exceptions import BotoCoreError, ClientError

        got = self._get(LOCK_KEY, "read")
        if got is None or _lock_owner(got[0]) != owner:
            return
        condition = {"IfMatch": got[1]["ETag"]} if self.conditional_writes else {}
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + LOCK_KEY, **condition)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status in (409, 412):
                return  # taken over since we read it: not ours to delete
            if status == 501 and condition:
                self.conditional_writes = False
                self._call(
                    "delete", LOCK_KEY, self.client.delete_object,
                    Bucket=self.bucket, Key=self.prefix + LOCK_KEY,
                )  # fmt: skip
                return
            raise self._fail(exc, "delete", LOCK_KEY) from None
        except BotoCoreError as exc:
            raise self._fail(exc, "delete", LOCK_KEY) from None


@lru_cache(maxsize=1)
def _known_payload_auth() -> type:
    """botocore's SigV4 signer for S3, taking the payload hash from the request's context (a
    document's sha256, already known) instead of hashing the body again."""
    from botocore.auth import S3SigV4Auth

    class KnownPayloadAuth(S3SigV4Auth):
        def payload(self, request: Any) -> str:
            return request.context.get("payload_sha256") or super().payload(request)

    return KnownPayloadAuth


def _lock_age(response: Mapping[str, Any]) -> float:
    """Seconds since the lock object was written, by the server's clock when it tells us.

    Using the server's Date header and Last-Modified (both server time) makes the age immune
    to clock skew between cron hosts.
    """
    modified = response.get("LastModified")
    if modified is None:
        return float("inf")
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    now = datetime.now(UTC)
    if headers.get("date"):
        with contextlib.suppress(TypeError, ValueError):
            now = parsedate_to_datetime(headers["date"])
    return (now - modified).total_seconds()


_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


def without_userinfo(text: str) -> str:
    """A URL, or a message holding one, without its ``user:password@`` part."""
    return _USERINFO.sub("", text)


def describe_s3_error(exc: Exception, action: str = "access", key: str | None = None) -> str:
    """The cause of a botocore error in a few words, never with secrets.

    Connection and credential problems are about the whole storage, so they name no key.
    """
    from botocore import exceptions as bx

    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return "no credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    if isinstance(exc, bx.ConnectTimeoutError):
        return "cannot connect (timed out)"
    if isinstance(exc, bx.EndpointConnectionError):
        text = str(exc.kwargs.get("error", exc)).lower()
        if "refused" in text:
            cause = "connection refused"
        elif "name or service not known" in text or "resolve" in text or "nodename" in text:
            cause = "host name not found"
        elif "timed out" in text:
            cause = "timed out"
        elif "unreachable" in text:
            cause = "network unreachable"
        else:
            cause = "connection failed"
        return f"cannot connect ({cause})"
    if isinstance(exc, bx.ReadTimeoutError):
        return "no response (read timed out)"
    if isinstance(exc, bx.ConnectionClosedError):
        return "connection closed by the server"
    if isinstance(exc, bx.SSLError):
        return "TLS error (check the endpoint URL and certificates)"
    what = f"{action} {key}" if key else action
    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or "?"
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _CREDENTIAL_CODES:
            return f"credentials refused ({code})"
        if code == "NoSuchBucket":
            return "bucket does not exist (NoSuchBucket)"
        if code in ("AccessDenied", "AllAccessDisabled") or status == 403:
            return f"access denied ({code}): check the credentials and the bucket policy"
        message = " ".join(str(error.get("Message") or "").split())
        return f"cannot {what}: {code}{': ' + message if message else ''}"
    first_line = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
    return f"cannot {what}: {first_line}"


def make_s3_client(config: StorageConfig) -> Any:
    """A botocore S3 client for ``config``, tuned to fail fast and to retry sanely.

    Credentials come only from the standard AWS chain (env, profile, instance role). With no
    endpoint_url, botocore honours AWS_ENDPOINT_URL(_S3) itself.
    """
    import boto3
    from botocore.config import Config as BotoConfig

    custom_endpoint = bool(
        config.endpoint_url
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    options: dict[str, Any] = {
        # storage.timeout bounds connecting and each wait for an answer; one retry, so a
        # frozen endpoint fails a request within about twice that (S3Storage then gives up).
        "connect_timeout": config.timeout,
        "read_timeout": config.timeout,
        "retries": {"mode": "standard", "total_max_attempts": 2},
        "max_pool_connections": max(10, config.concurrency + 4),
        "tcp_keepalive": True,
        "user_agent_extra": "memes-pipeline",
    }
    if custom_endpoint:
        # MinIO, SeaweedFS and friends are usually reached by IP or one host name: path-style
        # URLs work everywhere, virtual-host style needs wildcard DNS.
        options["s3"] = {"addressing_style": "path"}
        # botocore >= 1.36 sends CRC checksums some S3-compatible services reject; ask for
        # them only when an operation requires one, unless the user chose via env.
        if "AWS_REQUEST_CHECKSUM_CALCULATION" not in os.environ:
            options["request_checksum_calculation"] = "when_required"
        if "AWS_RESPONSE_CHECKSUM_VALIDATION" not in os.environ:
            options["response_checksum_validation"] = "when_required"
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=config.endpoint_url,
        region_name=config.region,
        config=BotoConfig(**options),
    )


def open_storage(config: StorageConfig) -> Storage:
    """The Storage for ``storage.url``: FileStorage for file://, S3Storage for s3://."""
    if config.is_s3:
        return S3Storage(config)
    return FileStorage(config)


# --- gc --------------------------------------------------------------------------------------


def collect_garbage(
    storage: Storage,
    manifest: Manifest,
    referenced_keys: Iterable[str],
    now: datetime,
    grace: timedelta,
) -> list[str]:
    """Delete objects no index has referenced for longer than ``grace``; return their keys.

    Keys newly unreferenced get ``unreferenced_since = now``; keys referenced again lose the
    mark. ``_memes/`` is never touched, nor any object the manifest's owner did not write
    (an adopted storage's objects). The manifest is updated in memory (caller saves it).
    """
    referenced = set(referenced_keys)
    stamp = iso(now)
    doomed: list[str] = []
    for info in manifest.values():
        if info.key.startswith(META_PREFIX) or info.writer != manifest.owner:
            continue
        if info.key in referenced:
            if info.unreferenced_since is not None:
                manifest.put(replace(info, unreferenced_since=None))
        elif info.unreferenced_since is None:
            manifest.put(replace(info, unreferenced_since=stamp))
        elif now - parse_iso(info.unreferenced_since) >= grace:
            doomed.append(info.key)
    if doomed:
        storage.delete_many(doomed, manifest)
    return doomed

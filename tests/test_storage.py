"""The storage contract, run unchanged against a folder (file://) and a real S3 (SeaweedFS)."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from pipeline import config as config_mod
from pipeline.documents import Document
from pipeline.errors import StorageError
from pipeline.storage import (
    IMMUTABLE_CACHE_CONTROL,
    LOCK_KEY,
    MANIFEST_KEY,
    MULTIPART_THRESHOLD,
    TEMP_PREFIX,
    FileStorage,
    Manifest,
    ObjectInfo,
    S3Storage,
    Storage,
    collect_garbage,
    open_storage,
)

DOCUMENT_CACHE = "public, max-age=300"


def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def webp_bytes(seed: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (seed % 256, (seed * 7) % 256, (seed * 13) % 256)).save(
        out, "WEBP", quality=80
    )
    return out.getvalue()


def site_documents() -> list[Document]:
    """A small published site: two content-hashed renditions and the documents naming them."""
    large = png_bytes((200, 30, 30))
    thumb = png_bytes((30, 200, 30), (16, 12))
    index = json.dumps({"memes": ["cat"]}).encode()
    return [
        Document("i/cat/large.1a2b3c.png", large, "image/png", immutable=True),
        Document("i/cat/thumb.4d5e6f.png", thumb, "image/png", immutable=True),
        Document("index.json", index, "application/json"),
        Document("index.html", b"<!doctype html><title>Memes</title>", "text/html; charset=utf-8"),
        Document("feed.xml", b"<rss/>", "application/rss+xml"),
    ]


class Backend:
    """Makes Storage objects for one target, plus raw access to check what really landed."""

    def __init__(self, kind: str, tmp_path: Path, request: pytest.FixtureRequest):
        self.kind = kind
        self.tmp_path = tmp_path
        if kind == "s3":
            self.server = request.getfixturevalue("s3_server")
            self.bucket = self.server.new_bucket()
            self.url = f"s3://{self.bucket}/site"
        else:
            self.server = None
            self.root = tmp_path / "public"
            self.url = f"file://{self.root}"

    def config(self, **storage: object) -> config_mod.StorageConfig:
        raw: dict[str, object] = {"url": self.url}
        if self.server is not None:
            raw["endpoint_url"] = self.server.endpoint
        raw.update(storage)
        return config_mod.parse({"storage": raw}, root=self.tmp_path).storage

    def storage(self, **storage: object) -> Storage:
        return open_storage(self.config(**storage))

    def stored_keys(self) -> set[str]:
        """Every object under the storage root, found by listing (which storage never does)."""
        if self.server is not None:
            client = self.server.client()
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix="site/"
            )
            return {o["Key"][len("site/") :] for page in pages for o in page.get("Contents", [])}
        if not self.root.exists():
            return set()
        return {str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file()}

    def raw_headers(self, key: str, storage: Storage) -> tuple[str, str]:
        """(Content-Type, Cache-Control) as a client would get them."""
        if self.server is not None:
            head = self.server.client().head_object(Bucket=self.bucket, Key="site/" + key)
            return head["ContentType"], head.get("CacheControl", "")
        info = storage.head(key)  # file:// keeps the headers in the manifest
        assert info is not None
        return info.content_type, info.cache_control


@pytest.fixture(params=["file", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return Backend(request.param, tmp_path, request)


def publish(storage: Storage, documents: list[Document]) -> Manifest:
    manifest = storage.load_manifest()
    storage.put_many(documents, manifest)
    storage.save_manifest(manifest)
    return manifest


# --- round trip and headers ------------------------------------------------------------------


def test_put_get_head_round_trip(backend: Backend) -> None:
    storage = backend.storage()
    docs = site_documents()
    manifest = storage.load_manifest()
    assert len(manifest) == 0

    report = storage.put_many(docs, manifest)

    assert sorted(report.uploaded) == sorted(d.key for d in docs)
    assert report.uploaded_bytes == sum(d.size for d in docs)
    assert report.skipped == []
    for doc in docs:
        assert storage.get(doc.key) == doc.data
        info = storage.head(doc.key)
        assert info is not None
        assert (info.size, info.sha256) == (doc.size, doc.sha256)
        assert manifest.get(doc.key).sha256 == doc.sha256
    assert storage.get("i/nothing/here.png") is None
    assert storage.head("i/nothing/here.png") is None


def test_every_object_gets_its_content_type_and_cache_control(backend: Backend) -> None:
    storage = backend.storage(document_max_age=120)
    docs = site_documents()
    publish(storage, docs)

    for doc in docs:
        content_type, cache_control = backend.raw_headers(doc.key, storage)
        assert content_type == doc.content_type
        if doc.immutable:
            assert cache_control == IMMUTABLE_CACHE_CONTROL
        else:
            assert cache_control == "public, max-age=120"
        info = storage.head(doc.key)
        assert (info.content_type, info.cache_control) == (content_type, cache_control)


def test_default_document_max_age_is_300(backend: Backend) -> None:
    storage = backend.storage()
    publish(storage, site_documents())
    assert backend.raw_headers("index.json", storage)[1] == DOCUMENT_CACHE


def test_only_the_documents_and_the_manifest_reach_storage(backend: Backend) -> None:
    storage = backend.storage()
    docs = site_documents()
    publish(storage, docs)
    storage.try_lock("host-a", 60)
    storage.unlock("host-a")

    assert backend.stored_keys() == {d.key for d in docs} | {MANIFEST_KEY}


def test_keys_with_unicode_and_spaces_work(backend: Backend) -> None:
    storage = backend.storage()
    doc = Document("i/día de memes/größe 1 ✓.png", png_bytes((1, 2, 3)), "image/png")
    manifest = publish(storage, [doc])

    assert storage.get(doc.key) == doc.data
    assert storage.head(doc.key).sha256 == doc.sha256
    assert storage.load_manifest() == manifest
    assert doc.key in backend.stored_keys()


@pytest.mark.parametrize(
    "key",
    ["", "/etc/passwd", "../outside.png", "a//b.png", "a/./b.png", "a\\b.png",
     MANIFEST_KEY, "_memes/other.json", f"i/{TEMP_PREFIX}abc", "line\nbreak.png"],
)  # fmt: skip
def test_keys_that_could_escape_or_collide_are_refused(backend: Backend, key: str) -> None:
    storage = backend.storage()
    manifest = storage.load_manifest()
    with pytest.raises(StorageError, match="invalid storage key"):
        storage.put_many([Document(key, b"x", "text/plain")], manifest)
    assert len(manifest) == 0
    assert backend.stored_keys() == set()


def test_a_large_file_goes_up_in_parts_and_round_trips(backend: Backend) -> None:
    storage = backend.storage()
    data = os.urandom(MULTIPART_THRESHOLD + 3 * 1024 * 1024)
    doc = Document("v/big.0f0f.gif", data, "image/gif", immutable=True)
    publish(storage, [doc])

    assert storage.get(doc.key) == data
    assert storage.head(doc.key).size == len(data)
    assert backend.raw_headers(doc.key, storage) == ("image/gif", IMMUTABLE_CACHE_CONTROL)
    if backend.kind == "s3":
        assert storage.request_counts["UploadPart"] >= 2
        assert storage.request_counts["PutObject"] == 1  # the manifest only


def test_acl_is_sent_only_when_configured_and_never_on_the_manifest(
    s3_server, tmp_path: Path
) -> None:
    # SeaweedFS accepts x-amz-acl but does not report grants back, so check what is sent.
    sent: list[tuple[str, str | None]] = []

    def capture(request, **_: object) -> None:
        acl = request.headers.get("x-amz-acl")
        sent.append((request.url.rsplit("/", 1)[-1], acl.decode() if acl else None))

    for acl, expected in ((None, None), ("public-read", "public-read")):
        bucket = s3_server.new_bucket()
        raw = {"url": f"s3://{bucket}", "endpoint_url": s3_server.endpoint, "acl": acl}
        storage = open_storage(config_mod.parse({"storage": raw}, root=tmp_path).storage)
        storage.client.meta.events.register("before-send.s3.PutObject", capture)
        sent.clear()
        publish(storage, site_documents()[:2])
        assert sorted(sent) == sorted(
            [("manifest.json", None), ("large.1a2b3c.png", expected),
             ("thumb.4d5e6f.png", expected)]
        )  # fmt: skip


def test_aws_endpoint_url_from_the_environment_is_honoured(
    s3_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3_server.new_bucket()
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    cfg = config_mod.parse({"storage": {"url": f"s3://{bucket}/p"}}, root=tmp_path).storage
    storage = open_storage(cfg)
    assert storage.description == f"s3://{bucket}/p at {s3_server.endpoint}"
    publish(storage, site_documents())
    assert storage.get("index.json") == site_documents()[2].data


# --- nothing is uploaded twice ---------------------------------------------------------------


def test_second_sync_of_the_same_documents_makes_no_puts(backend: Backend) -> None:
    storage = backend.storage()
    docs = site_documents()
    publish(storage, docs)
    storage.request_counts.clear()

    manifest = storage.load_manifest()
    report = storage.put_many(docs, manifest)

    assert report.uploaded == [] and report.uploaded_bytes == 0
    assert sorted(report.skipped) == sorted(d.key for d in docs)
    assert report.requests == 0
    assert dict(storage.request_counts) == {"GetObject": 1}  # the manifest, nothing else


def test_a_fresh_storage_like_a_second_host_uploads_nothing(backend: Backend) -> None:
    docs = site_documents()
    publish(backend.storage(), docs)

    second_host = backend.storage()
    manifest = second_host.load_manifest()
    report = second_host.put_many(docs, manifest)

    assert report.uploaded == []
    assert second_host.requests == 1


def test_changed_content_or_cache_policy_is_uploaded_again(backend: Backend) -> None:
    docs = site_documents()
    publish(backend.storage(), docs)

    changed = Document("index.json", b'{"memes": ["cat", "dog"]}', "application/json")
    storage = backend.storage(document_max_age=60)  # non-immutable Cache-Control changes
    manifest = storage.load_manifest()
    report = storage.put_many([changed, *docs[:2]], manifest)
    storage.save_manifest(manifest)

    assert report.uploaded == ["index.json"]
    assert sorted(report.skipped) == sorted(d.key for d in docs[:2])
    assert storage.get("index.json") == changed.data
    assert backend.raw_headers("index.json", storage)[1] == "public, max-age=60"


def test_the_same_document_twice_in_one_call_is_uploaded_once(backend: Backend) -> None:
    storage = backend.storage()
    doc = site_documents()[0]
    report = storage.put_many([doc, doc], storage.load_manifest())
    assert report.uploaded == [doc.key]
    with pytest.raises(StorageError, match="two different documents"):
        storage.put_many([doc, Document(doc.key, b"other", "image/png")], Manifest())


def test_hundreds_of_small_documents_upload_in_parallel(backend: Backend) -> None:
    storage = backend.storage(concurrency=8)
    docs = [
        Document(f"i/m{n:03d}/thumb.{n:06x}.webp", webp_bytes(n), "image/webp", immutable=True)
        for n in range(300)
    ]
    threads_seen: set[str] = set()
    done: list[int] = []

    def progress(n: int) -> None:
        threads_seen.add(threading.current_thread().name)
        done.append(n)

    manifest = storage.load_manifest()
    report = storage.put_many(docs, manifest, progress=progress)
    storage.save_manifest(manifest)

    assert len(report.uploaded) == 300 and sum(done) == 300
    assert threads_seen == {threading.current_thread().name}  # callbacks in the caller's thread
    assert storage.request_counts["PutObject"] == 301
    assert backend.stored_keys() == {d.key for d in docs} | {MANIFEST_KEY}
    fresh = backend.storage().load_manifest()
    assert fresh.keys() == sorted(d.key for d in docs)
    for doc in docs[::37]:
        assert storage.get(doc.key) == doc.data


def test_progress_counts_skipped_documents_too(backend: Backend) -> None:
    storage = backend.storage()
    docs = site_documents()
    manifest = publish(storage, docs[:3])
    done: list[int] = []
    storage.put_many(docs, manifest, progress=done.append)
    assert sum(done) == len(docs)


# --- failures --------------------------------------------------------------------------------


def test_a_failed_upload_raises_and_the_manifest_names_only_what_went_up(
    backend: Backend,
) -> None:
    storage = backend.storage()
    manifest = storage.load_manifest()
    good = site_documents()
    if backend.kind == "s3":
        backend.server.client().delete_bucket(Bucket=backend.bucket)
        expected = "bucket does not exist"
    else:
        # A file where a folder must be: one of the two writes cannot succeed.
        good.append(Document("index.json/inner.json", b"{}", "application/json"))
        expected = "cannot write"

    with pytest.raises(StorageError, match=expected):
        storage.put_many(good, manifest)
    went_up = set(manifest)
    if backend.kind == "s3":
        assert went_up == set()  # no bucket: nothing went up, the manifest names nothing
    else:
        # what went up is named; of the file and the folder of the same name, one could not be
        assert went_up and went_up <= {d.key for d in good}
        assert len(went_up & {"index.json", "index.json/inner.json"}) == 1
        assert not [p for p in backend.root.rglob("*") if p.name.startswith(TEMP_PREFIX)]
    for key in went_up:
        assert storage.get(key) is not None


def test_an_unreachable_endpoint_fails_fast_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from seaweed import free_ports

    port = free_ports(1)[0]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", os.environ.get("AWS_ACCESS_KEY_ID", "k"))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", os.environ.get("AWS_SECRET_ACCESS_KEY", "s"))
    cfg = config_mod.parse(
        {"storage": {"url": "s3://memes", "endpoint_url": f"http://127.0.0.1:{port}"}},
        root=tmp_path,
    ).storage
    storage = open_storage(cfg)
    started = time.monotonic()
    with pytest.raises(StorageError) as caught:
        storage.load_manifest()
    elapsed = time.monotonic() - started

    message = str(caught.value)
    assert message == (
        f"storage s3://memes at http://127.0.0.1:{port}: cannot connect (connection refused)"
    )
    assert "\n" not in message
    assert elapsed < 10


def test_wrong_credentials_name_the_cause_and_no_secret(
    s3_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3_server.new_bucket()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "not-a-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "super-secret-value")
    cfg = config_mod.parse(
        {"storage": {"url": f"s3://{bucket}", "endpoint_url": s3_server.endpoint}}, root=tmp_path
    ).storage
    with pytest.raises(StorageError) as caught:
        open_storage(cfg).load_manifest()
    message = str(caught.value)
    assert message == (
        f"storage s3://{bucket} at {s3_server.endpoint}: credentials refused (InvalidAccessKeyId)"
    )
    assert "super-secret-value" not in message and "not-a-key" not in message


def test_a_missing_bucket_is_named(s3_server, tmp_path: Path) -> None:
    cfg = config_mod.parse(
        {"storage": {"url": "s3://no-such-bucket/p", "endpoint_url": s3_server.endpoint}},
        root=tmp_path,
    ).storage
    with pytest.raises(StorageError) as caught:
        open_storage(cfg).load_manifest()
    assert str(caught.value) == (
        f"storage s3://no-such-bucket/p at {s3_server.endpoint}: "
        "bucket does not exist (NoSuchBucket)"
    )


def test_a_corrupt_manifest_is_reported_not_ignored(backend: Backend) -> None:
    storage = backend.storage()
    if backend.kind == "s3":
        backend.server.client().put_object(
            Bucket=backend.bucket, Key="site/" + MANIFEST_KEY, Body=b"{not json"
        )
    else:
        (backend.root / "_memes").mkdir(parents=True)
        (backend.root / MANIFEST_KEY).write_bytes(b"{not json")
    with pytest.raises(StorageError, match=f"{MANIFEST_KEY}: "):
        storage.load_manifest()


# --- delete and gc ---------------------------------------------------------------------------


def test_delete_many_removes_objects_and_their_manifest_entries(backend: Backend) -> None:
    storage = backend.storage()
    docs = site_documents()
    manifest = publish(storage, docs)

    storage.delete_many(["i/cat/large.1a2b3c.png", "i/cat/thumb.4d5e6f.png", "gone.txt"], manifest)
    storage.save_manifest(manifest)

    assert storage.get("i/cat/large.1a2b3c.png") is None
    assert manifest.keys() == ["feed.xml", "index.html", "index.json"]
    assert backend.stored_keys() == {"feed.xml", "index.html", "index.json", MANIFEST_KEY}
    if backend.kind == "file":
        assert not (backend.root / "i").exists()  # empty folders are pruned


def test_gc_deletes_only_after_the_grace_period(backend: Backend) -> None:
    storage = backend.storage()
    docs = site_documents()
    manifest = publish(storage, docs)
    old, kept = "i/cat/large.1a2b3c.png", {d.key for d in docs} - {"i/cat/large.1a2b3c.png"}
    grace = timedelta(days=7)
    day0 = datetime(2026, 1, 1, 12, tzinfo=UTC)

    assert collect_garbage(storage, manifest, kept, day0, grace) == []
    assert manifest.get(old).unreferenced_since == "2026-01-01T12:00:00Z"
    assert all(manifest.get(k).unreferenced_since is None for k in kept)

    assert collect_garbage(storage, manifest, kept, day0 + timedelta(days=6), grace) == []
    assert storage.get(old) is not None

    assert collect_garbage(storage, manifest, kept, day0 + timedelta(days=7), grace) == [old]
    assert storage.get(old) is None and old not in manifest
    assert all(storage.get(k) is not None for k in kept)


def test_gc_forgets_the_mark_when_a_key_is_referenced_again(backend: Backend) -> None:
    storage = backend.storage()
    docs = site_documents()
    manifest = publish(storage, docs)
    everything = {d.key for d in docs}
    day0 = datetime(2026, 1, 1, tzinfo=UTC)

    collect_garbage(storage, manifest, everything - {"feed.xml"}, day0, timedelta(days=7))
    collect_garbage(storage, manifest, everything, day0 + timedelta(days=1), timedelta(days=7))
    assert manifest.get("feed.xml").unreferenced_since is None
    # Unreferenced again much later: the grace period starts over.
    later = day0 + timedelta(days=30)
    assert collect_garbage(storage, manifest, everything - {"feed.xml"}, later, timedelta(7)) == []
    assert storage.get("feed.xml") is not None


def test_gc_never_touches_the_memes_folder(backend: Backend) -> None:
    storage = backend.storage()
    docs = site_documents()
    manifest = publish(storage, docs)
    saved = storage.get(MANIFEST_KEY)
    manifest.put(ObjectInfo(MANIFEST_KEY, 1, "0" * 64, "application/json", "no-store", "x"))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    deleted: list[str] = []
    for days in (0, 100):
        deleted += collect_garbage(storage, manifest, set(), now + timedelta(days), timedelta(0))
    assert sorted(deleted) == sorted(d.key for d in docs)  # everything else went
    assert storage.get(MANIFEST_KEY) == saved  # the manifest object: untouched, byte for byte


# --- the lock --------------------------------------------------------------------------------


def check_lock_refuses_a_second_owner_until_released(host_a: Storage, host_b: Storage) -> None:
    assert host_a.try_lock("host-a", 3600)
    assert not host_b.try_lock("host-b", 3600)
    assert host_a.try_lock("host-a", 3600)  # re-entrant for its owner
    host_b.unlock("host-b")  # not the owner: nothing happens
    assert not host_b.try_lock("host-b", 3600)

    host_a.unlock("host-a")
    assert host_b.try_lock("host-b", 3600)


def test_lock_refuses_a_second_owner_until_released(backend: Backend) -> None:
    host_a, host_b = backend.storage(), backend.storage()
    check_lock_refuses_a_second_owner_until_released(host_a, host_b)
    if isinstance(host_a, S3Storage):
        assert host_a.conditional_writes, "SeaweedFS should honour If-None-Match / If-Match"


def test_a_stale_lock_is_taken_over(backend: Backend) -> None:
    crashed, rescuer = backend.storage(), backend.storage()
    assert crashed.try_lock("crashed-host", 1)
    time.sleep(2.2)  # the lock is now older than its 1 s ttl

    assert rescuer.try_lock("rescuer", 1)
    assert not crashed.try_lock("crashed-host", 3600)
    crashed.unlock("crashed-host")  # must not release the rescuer's lock
    assert not backend.storage().try_lock("third", 3600)


def test_a_lock_that_could_not_be_written_is_not_left_behind(backend: Backend) -> None:
    """A failure while taking the lock (here a ttl no clock holds) leaves no empty lock file
    that makes every later run exit 75 ("another host holds the publish lock") for lock_ttl."""
    with pytest.raises(OverflowError):
        backend.storage().try_lock("crashed-host", 10**15)
    assert backend.storage().try_lock("next-run", 3600)

def test_exactly_one_of_many_racing_hosts_gets_the_lock(backend: Backend) -> None:
    hosts = [backend.storage() for _ in range(5)]
    barrier = threading.Barrier(len(hosts))
    results: dict[int, bool] = {}

    def contend(n: int) -> Callable[[], None]:
        def run() -> None:
            barrier.wait()
            results[n] = hosts[n].try_lock(f"host-{n}", 3600)

        return run

    threads = [threading.Thread(target=contend(n)) for n in range(len(hosts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results.values()) == 1


def test_file_lock_lives_in_the_memes_folder_and_leaves_no_temp_files(tmp_path: Path) -> None:
    cfg = config_mod.parse({"storage": {"url": f"file://{tmp_path}/pub"}}, root=tmp_path).storage
    storage = open_storage(cfg)
    assert isinstance(storage, FileStorage)
    assert storage.try_lock("host-a", 1)
    assert json.loads((tmp_path / "pub" / LOCK_KEY).read_text())["owner"] == "host-a"
    old = time.time() - 10
    os.utime(tmp_path / "pub" / LOCK_KEY, (old, old))
    assert storage.try_lock("host-b", 1)
    publish(storage, site_documents())
    storage.unlock("host-b")
    leftovers = [p for p in (tmp_path / "pub").rglob("*") if p.name.startswith(TEMP_PREFIX)]
    assert leftovers == []
    assert not (tmp_path / "pub" / LOCK_KEY).exists()


def test_breaking_a_stale_lock_that_was_just_taken_puts_the_fresh_lock_back(
    tmp_path: Path,
) -> None:
    """Host X read a stale lock; before X moves it aside, host Y breaks it and takes a fresh
    one. X then moves Y's fresh lock aside: it must see that and put it back."""
    cfg = config_mod.parse({"storage": {"url": f"file://{tmp_path}/pub"}}, root=tmp_path).storage
    host_x, host_y = open_storage(cfg), open_storage(cfg)
    lock = tmp_path / "pub" / LOCK_KEY
    assert host_y.try_lock("crashed", 1)
    stale = lock.read_bytes()  # what X read
    lock.unlink()  # Y broke the stale lock ...
    assert host_y.try_lock("host-y", 3600)  # ... and holds a fresh one
    fresh = lock.read_bytes()

    assert host_x._break_stale(lock, stale) is False  # type: ignore[attr-defined]
    assert lock.read_bytes() == fresh  # Y's lock is back, as it was
    assert not host_x.try_lock("host-x", 3600)
    assert [p for p in lock.parent.iterdir() if p.name.startswith(TEMP_PREFIX)] == []


@pytest.mark.s3
def test_without_conditional_writes_the_lock_still_excludes_and_ages(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A service without If-None-Match/If-Match (the code clears ``conditional_writes`` when
    one answers 501): the read, put, read-back fallback, on a real SeaweedFS."""
    backend = Backend("s3", tmp_path, request)

    def host() -> S3Storage:
        storage = backend.storage()
        assert isinstance(storage, S3Storage)
        storage.conditional_writes = False  # as if the service had said NotImplemented
        return storage

    host_a, host_b = host(), host()
    check_lock_refuses_a_second_owner_until_released(host_a, host_b)
    time.sleep(2.2)
    assert not host_a.try_lock("host-a", 3600)  # 2 s old: not stale under a 1 h ttl
    assert host_a.try_lock("host-a", 1)  # stale under a 1 s ttl: taken over
    host_b.unlock("host-b")  # must not delete host-a's lock
    assert not host().try_lock("third", 3600)
    assert not host_a.conditional_writes and not host_b.conditional_writes


def test_written_files_are_readable_by_a_web_server(tmp_path: Path) -> None:
    cfg = config_mod.parse({"storage": {"url": f"file://{tmp_path}/pub"}}, root=tmp_path).storage
    publish(open_storage(cfg), site_documents())
    for path in (tmp_path / "pub").rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o044 == 0o044, path


# --- the manifest itself ---------------------------------------------------------------------


def test_manifest_json_round_trip_is_stable() -> None:
    manifest = Manifest(
        [
            ObjectInfo("b.png", 3, "ab" * 32, "image/png", IMMUTABLE_CACHE_CONTROL,
                       "2026-01-01T00:00:00Z"),
            ObjectInfo("a.json", 2, "cd" * 32, "application/json", DOCUMENT_CACHE,
                       "2026-01-02T00:00:00Z", unreferenced_since="2026-01-03T00:00:00Z"),
        ]
    )  # fmt: skip
    data = manifest.to_json()
    again = Manifest.from_json(data)
    assert again == manifest
    assert again.to_json() == data
    assert list(json.loads(data)["objects"]) == ["a.json", "b.png"]
    assert again.total_bytes == 5
    with pytest.raises(ValueError, match="version"):
        Manifest.from_json(b'{"version": 99, "objects": {}}')
    with pytest.raises(ValueError, match="malformed"):
        Manifest.from_json(b'{"version": 1, "objects": {"k": {"size": 1}}}')


def test_open_storage_picks_the_backend(tmp_path: Path) -> None:
    file_cfg = config_mod.parse({"storage": {"url": "file://pub"}}, root=tmp_path).storage
    s3_cfg = config_mod.parse(
        {"storage": {"url": "s3://bucket/pre", "endpoint_url": "http://127.0.0.1:9"}},
        root=tmp_path,
    ).storage
    file_storage = open_storage(file_cfg)
    s3_storage = open_storage(s3_cfg)
    assert isinstance(file_storage, FileStorage)
    assert file_storage.description == f"file://{tmp_path / 'pub'}"
    assert isinstance(s3_storage, S3Storage)
    assert s3_storage.description == "s3://bucket/pre at http://127.0.0.1:9"
    assert s3_storage.url_for("i/x.png") == "s3://bucket/pre/i/x.png"
    assert isinstance(file_storage, Storage) and isinstance(s3_storage, Storage)

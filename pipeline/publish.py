"""The orchestration: due memes -> renditions -> storage -> documents -> mark published ->
newsletter, run as a small state machine that a later run can always finish.

Order matters, and each step is idempotent:
1. take the publish lock (the library's own; plus a lock object in storage for several hosts);
2. finish an unfinished run from the journal, else journal the due memes as a new run;
3. render them (process pool, render cache), upload the content-hashed assets;
4. write the gallery documents, `index.json` last, so the live index never names an object
   that is not there;
5. mark the records published in one transaction, close the journal entry;
6. run the newsletter rule (delivery trouble is a warning, never a failed publish; an
   edition in doubt fails the run, so cron reports it) and upload the newsletter archive
   (a failure there says that the edition was sent, and the next publish uploads it).
A kill at any point leaves the journal entry open; the next run redoes the remaining steps,
and content-hashed names plus the storage manifest make "redo" upload only what is missing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline import gallery, newsletter
from pipeline.config import Config
from pipeline.documents import Document
from pipeline.errors import (
    EXIT_FAILED,
    EXIT_OK,
    LockedError,
    MemesError,
    NotFoundError,
    OwnershipError,
    StorageError,
    UsageError,
)
from pipeline.files import write_atomic
from pipeline.imaging import (
    Placeholder,
    RenderFailure,
    RenderJob,
    RenderResult,
    render_many,
    settings_fingerprint,
)
from pipeline.library import PURGED, Edition, Library, Meme, PublishRun, RenditionAsset, utcnow
from pipeline.storage import (
    META_PREFIX,
    Manifest,
    Storage,
    cache_control_for,
    check_key,
    collect_garbage,
    open_storage,
)

# Catalog meta: what the live documents were written from. A publish compares them with the
# catalog and the config to know, without a single storage request, whether anything changed.
WRITTEN_GENERATION = "written_generation"
DOCUMENT_SETTINGS = "document_settings"  # site and gallery settings, document code: rewrite them
STORAGE_TARGET = "storage_target"  # url + endpoint: a new target gets everything it lacks
CARRY_FROM = "carry_from"  # previous targets out of reach at the switch: copy from them later
HEADER_SETTINGS = "header_settings"  # acl, document max-age: applied to existing objects

Progress = Callable[[int], None]  # advance a progress bar by n
Stages = Callable[[str, int], Progress]  # a progress bar for a stage: (label, total) -> step


@dataclass
class PublishReport:
    published: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (slug, reason)
    # Published memes whose new render failed: (slug, reason); their old renditions stay live.
    not_updated: list[tuple[str, str]] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    uploaded_bytes: int = 0
    skipped: int = 0
    requests: int = 0
    seconds: float = 0.0
    resumed_run: int | None = None
    dry_run: bool = False
    would_upload: list[tuple[str, int]] = field(default_factory=list)  # dry run: (key, bytes)
    newsletter: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # each fails the run (exit 1)

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.failed or self.not_updated or self.errors else EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "failed": [{"slug": s, "reason": r} for s, r in self.failed],
            "not_updated": [{"slug": s, "reason": r} for s, r in self.not_updated],
            "uploaded": self.uploaded,
            "uploaded_objects": len(self.uploaded),
            "uploaded_bytes": self.uploaded_bytes,
            "skipped_objects": self.skipped,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "resumed_run": self.resumed_run,
            "dry_run": self.dry_run,
            "would_upload": [{"key": k, "bytes": b} for k, b in self.would_upload],
            "newsletter": self.newsletter,
            "warnings": self.warnings,
            "errors": self.errors,
        }


# --- locks -----------------------------------------------------------------------------------


@contextmanager
def publish_lock(library: Library, wait: float = 0) -> Iterator[None]:
    """The library's own lock: one publish (or remove, gc, verify --repair) at a time."""
    path = library.root / "publish.lock"
    handle = open(path, "a+")  # noqa: SIM115 - held for the whole run
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise LockedError(
                        f"another memes run holds {path}; try again later (or use --wait)"
                    ) from None
                time.sleep(0.2)
        yield
    finally:
        handle.close()


@contextmanager
def storage_lock(storage: Storage, config: Config) -> Iterator[None]:
    """A lock object in storage, so two cron hosts sharing a bucket never overlap.

    Taken only inside publish_lock, so the owner names this host's library rather than the
    process: a lock left by a run killed here is ours to take again at once, while another
    host's lock holds until it is released or older than storage.lock_ttl.
    """
    owner = f"{socket.gethostname()}:{config.library}"
    if not storage.try_lock(owner, config.storage.lock_ttl):
        raise LockedError(f"another host holds the publish lock in {storage.description}")
    try:
        yield
    finally:
        storage.unlock(owner)


# --- ownership -------------------------------------------------------------------------------


def claim(library: Library, storage: Storage, manifest: Manifest, *, adopt: bool = False) -> bool:
    """Make sure ``manifest`` (just loaded from ``storage``) is this library's to write, and
    make it so; True if it was not before (the caller must save it). OwnershipError, with
    nothing written, for storage another library owns or that holds objects nobody's manifest
    accounts for, unless ``adopt``: then this library owns it from now on, and the objects
    already there stay recorded as the other's, which this library's gc never deletes."""
    ours = library.library_id
    if manifest.owner == ours:
        return False
    where = f"storage {storage.description}"
    if manifest.owner is not None and not adopt:
        raise OwnershipError(
            f"{where} is owned by library {manifest.owner}, not this one ({ours}); one storage "
            "prefix per library (`memes publish --adopt` takes it over, e.g. after a restore)"
        )
    if manifest.owner is None and not adopt:
        if len(manifest) == 0 and storage.has_objects():
            raise OwnershipError(
                f"{where} holds objects but no manifest, so its owner is unknown; "
                "`memes publish --adopt` takes it over"
            )
        if len(manifest) and library.get_meta(WRITTEN_GENERATION) is None:
            raise OwnershipError(
                f"{where} is owned by an unknown library (its manifest names none) and this "
                "library never published; `memes publish --adopt` takes it over"
            )
    # A manifest from before owners were recorded, written by this library: its objects are
    # ours. Adopted storage: what is there stays the writer's (or nobody's).
    legacy = manifest.owner is None and not adopt
    for info in manifest.values():
        if info.writer is None and legacy:
            manifest.put(replace(info, writer=ours))
        elif info.writer is None:
            manifest.put(replace(info, writer=""))
    manifest.owner = ours
    return True


@contextmanager
def owned_storage(library: Library, config: Config, storage: Storage, *,
                  adopt: bool = False) -> Iterator[Manifest]:  # fmt: skip
    """The storage lock and the manifest, for a run that writes storage. Ownership is checked
    under the lock, on the manifest the run then uses (one GET); a refusal writes nothing
    but the lock, which it removes again. A newly claimed manifest is saved at once, before
    any object goes up, so a run that fails part-way still leaves storage marked as ours."""
    with storage_lock(storage, config):
        manifest = storage.load_manifest()
        if claim(library, storage, manifest, adopt=adopt):
            storage.save_manifest(manifest)
        try:
            yield manifest
        except BaseException:
            # Failed part-way: record what did go up (the manifest names exactly that), or
            # the next run would trust entries for keys this run overwrote.
            if manifest.changed:
                with contextlib.suppress(Exception):
                    storage.save_manifest(manifest)
            raise


# --- pieces ----------------------------------------------------------------------------------


def asset_key(slug: str, name: str, sha256: str, extension: str) -> str:
    """Content-hashed, so CDNs cache forever and a republish uploads nothing new."""
    return f"i/{slug}/{name}.{sha256[:16]}.{extension}"


def assets_of(result: RenderResult) -> tuple[list[RenditionAsset], list[Document]]:
    assets, documents = [], []
    for image in result.renditions:
        key = asset_key(result.slug, image.name, image.sha256, image.extension)
        assets.append(
            RenditionAsset(
                name=image.name, key=key, width=image.width, height=image.height,
                content_type=image.content_type, bytes=len(image.data), animated=image.animated,
            )
        )  # fmt: skip
        documents.append(Document(key, image.data, image.content_type, immutable=True))
    return assets, documents


def render_jobs(library: Library, memes: Sequence[Meme]) -> list[RenderJob]:
    """What rendering each meme reads: its original and every field that changes its pixels
    (overlay text, a template's box texts and boxes)."""
    shared: dict[str, Any] = {}  # a template's boxes, read once for all its memes

    def boxes(meme: Meme) -> Any:
        if meme.own_boxes or not meme.template:
            return library.boxes_of(meme)
        if meme.template not in shared:
            shared[meme.template] = library.boxes_of(meme)
        return shared[meme.template]

    return [
        RenderJob(
            slug=m.slug,
            original=library.original_path(m),
            top_text=m.top_text,
            bottom_text=m.bottom_text,
            sha256=m.sha256,  # lets a cache hit skip reading the original
            texts=m.texts,
            boxes=boxes(m),
        )
        for m in memes
    ]


def render_key(job: RenderJob, fingerprint: str) -> str:
    """A digest of every render input of one meme (the job's fields but its slug and path,
    whatever fields it gains) and of the render settings: when it differs from the key its
    renditions were recorded with, the meme is rendered again, under new hashed names."""
    inputs = {k: v for k, v in asdict(job).items() if k not in ("slug", "original")}
    text = json.dumps([fingerprint, inputs], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def stale_renders(library: Library, config: Config, memes: Sequence[Meme]) -> list[Meme]:
    """Published memes whose renditions were made from other inputs or other settings, but
    those whose render failed with the very inputs of now (`memes retry` tries again)."""
    fingerprint = settings_fingerprint(config)
    jobs = render_jobs(library, memes)
    keys = [render_key(job, fingerprint) for job in jobs]
    return [m for m, key in zip(memes, keys, strict=True)
            if m.render_key != key and m.failed_key != key]  # fmt: skip


def storage_target(config: Config) -> str:
    """Where the storage is (url, endpoint): another one is a new target to fill."""
    return json.dumps([config.storage.url, config.storage.endpoint_url])


def header_settings(config: Config) -> str:
    """The settings that shape object headers: a change reaches every existing object."""
    return json.dumps([config.storage.acl, config.storage.document_max_age])


def require_published_storage(library: Library, config: Config) -> None:
    """No edition goes out while the images it shows may not be in storage: after a storage
    target change, the next publish must fill the new target first."""
    previous = library.get_meta(STORAGE_TARGET)
    if previous is not None and previous != storage_target(config):
        raise UsageError(
            f"storage.url is now {config.storage.url}, not yet published to; run `memes "
            "publish` first, so the images an edition shows are in storage"
        )


def sent_images(library: Library) -> set[str]:
    """The rendition keys sent editions show, but those of purged memes (taken down for good):
    they must stay in storage, and move with it to a new target."""
    purged = {m.slug for m in library.memes("removed", renditions=False)
              if m.sha256.startswith(PURGED)}  # fmt: skip
    return {k for k in newsletter.emailed_keys(library) if k.split("/")[1] not in purged}


def carry_sources(library: Library, config: Config) -> list[str]:
    """The previous targets (newest first) the images that cannot be made again are copied
    from: the one the live documents were last written to, if it is not the configured one,
    and those that were out of reach when a switch was published."""
    current = storage_target(config)
    sources = [library.get_meta(STORAGE_TARGET), *json.loads(library.get_meta(CARRY_FROM, "[]"))]
    return [t for t in dict.fromkeys(sources) if t is not None and t != current]


def _carry_over(config: Config, sources: Sequence[str], storage: Storage, manifest: Manifest,
                report: PublishReport, keys: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Copy from the previous targets ``sources`` those of ``keys`` the new target lacks: the
    images sent editions show (an image renamed by a later re-render cannot be made again,
    and mail keeps its URL), and the live renditions of a published meme that could not be
    rendered again. Returns what is still missing (key -> why) and the sources that were out
    of reach (the next publish tries them again)."""
    missing: dict[str, str] = {}
    unreachable: list[str] = []
    documents: list[Document] = []
    wanted = sorted(k for k in set(keys) if k not in manifest)
    for source in sources:
        if not wanted:
            break
        url, endpoint = json.loads(source)
        try:
            old = open_storage(replace(config.storage, url=url, endpoint_url=endpoint))
            known = old.load_manifest()
            copied = []
            for key in wanted:
                data, info = old.get(key), known.get(key)
                if data is None:
                    missing.setdefault(key, f"not on {url} either")
                    continue
                kind = info.content_type if info else "application/octet-stream"
                documents.append(Document(key, data, kind, immutable=True))
                copied.append(key)
        except StorageError as exc:  # the reason that matters: the next publish tries again
            unreachable.append(source)
            missing.update(dict.fromkeys(wanted, f"cannot copy from {url}: {exc}; the next "
                                                 "publish tries again"))  # fmt: skip
            continue
        wanted = [k for k in wanted if k not in copied]
    upload_documents(storage, manifest, documents, report)
    return {k: why for k, why in missing.items() if k not in manifest}, unreachable


def stored(meme: Meme, manifest: Manifest) -> bool:
    """Whether the target holds every rendition of a published meme (a document may name it)."""
    return all(a.key in manifest for a in meme.renditions)


def _not_carried(library: Library, manifest: Manifest, missing: dict[str, str],
                 report: PublishReport) -> None:  # fmt: skip
    """One error line per meme left out of the documents and per edition whose images the
    target lacks, with the reason."""
    if not missing and not report.not_updated:
        # Every published meme that lacked an image was rendered again and uploaded (or
        # failed: not_updated); no copy is missing: none is left out, no catalog load needed.
        return
    for meme in library.published():
        lacking = [a.key for a in meme.renditions if a.key not in manifest]
        if lacking:
            why = missing.get(lacking[0], "not in storage")
            report.errors.append(f"{meme.slug}: left out of the gallery and the newsletter "
                                 f"archive, its live images are not on this target: {why}")
    for edition in library.editions():
        lacking = [k for k in edition.images if k in missing]
        if lacking:
            report.errors.append(f"{_edition_label(edition)}: {len(lacking)} of the images it "
                                 f"shows are not on this target: {missing[lacking[0]]}")


def render_memes(
    library: Library, config: Config, memes: Sequence[Meme], progress: Progress | None = None
) -> tuple[list[RenderResult], list[RenderFailure]]:
    """Render memes from their originals through the library's render cache."""
    jobs = render_jobs(library, memes)
    return render_many(jobs, config, cache_dir=library.root / "cache",
                       workers=config.publish.workers, progress=progress)  # fmt: skip


def gallery_memes(library: Library, extra: Sequence[Meme] = ()) -> list[Meme]:
    """Every meme ever published (removed ones are holes that keep pages stable), with
    `extra` (this run's memes, as they will be) added or replacing, oldest first."""
    by_slug = {m.slug: m for m in library.ever_published()}
    by_slug.update((m.slug, m) for m in extra)  # this run's view of a meme wins
    return list(by_slug.values())  # build_documents puts them in publishing order


def site_documents(library: Library, config: Config, extra: Sequence[Meme] = (),
                   manifest: Manifest | None = None) -> list[Document]:  # fmt: skip
    """The gallery documents and the newsletter archive (upload_documents orders them). With
    the target's ``manifest``, share pages whose inputs have not changed since they went up
    are left out (a publish builds only what changed), and so is a published meme (but those
    in ``extra``) whose renditions the target lacks; without it, every document."""
    memes = gallery_memes(library, extra)
    if manifest is not None:  # never name what the target lacks (an image not carried over)
        fresh = {m.slug for m in extra}
        memes = [m if m.slug in fresh or m.status != "published" or stored(m, manifest)
                 else replace(m, status="removed") for m in memes]  # fmt: skip
    published = [m for m in memes if m.status == "published"]  # as this run leaves them
    made = manifest.source_of if manifest is not None else None
    return gallery.build_documents(memes, config, made) + newsletter.archive_documents(
        library.editions(), published, config
    )


def upload_documents(
    storage: Storage, manifest: Manifest, documents: Sequence[Document], report: PublishReport,
    progress: Progress | None = None,
) -> int:  # fmt: skip
    """Upload what changed, every index strictly after everything it could name: pages,
    permalinks and archive pages first, then the category, tag and newsletter indexes, then
    the root index.json, which names those. Returns how many objects went up. The caller saves
    the manifest once, after the last upload: a manifest that lags storage only costs a
    re-upload, one ahead of it would be a lie."""
    root = [d for d in documents if d.key == gallery.INDEX]
    heads = [d for d in documents if d.key.endswith("/" + gallery.INDEX)]
    rest = [d for d in documents if d.key != gallery.INDEX and d not in heads]
    uploaded = 0
    for batch in (rest, heads, root):
        if not batch:
            continue
        sync = storage.put_many(batch, manifest, progress=progress)
        report.uploaded += sync.uploaded
        report.uploaded_bytes += sync.uploaded_bytes
        report.skipped += len(sync.skipped)
        uploaded += len(sync.uploaded)
    return uploaded


# --- publish ---------------------------------------------------------------------------------


def publish(
    library: Library,
    config: Config,
    *,
    limit: int | None = None,
    dry_run: bool = False,
    wait: float = 0,
    progress: Stages | None = None,
    storage: Storage | None = None,
    now: datetime | None = None,
    adopt: bool = False,
) -> PublishReport:
    """Publish the due memes (see the module docstring for the order of steps). ``adopt``
    takes over storage another library (or none known) owns."""
    started = time.monotonic()
    report = PublishReport(dry_run=dry_run)
    with publish_lock(library, wait):
        run = library.open_run()
        if run is not None:
            memes = [m for m in library.by_slugs(run.slugs) if m.status == "queued"]
            report.resumed_run = run.id
        else:
            memes = library.due(now, limit if limit is not None else config.publish.batch_size)
        refresh = stale_renders(library, config, library.published())
        never_written = library.get_meta(WRITTEN_GENERATION) is None
        documents_stale = (
            library.generation != int(library.get_meta(WRITTEN_GENERATION, "-1"))
            or library.get_meta(DOCUMENT_SETTINGS) != document_settings(config)
            or bool(carry_sources(library, config))
            or library.get_meta(HEADER_SETTINGS) != header_settings(config)
            or bool(refresh)
        ) and not (never_written and not library.ever_published())  # a new, empty library
        if not memes and not documents_stale and run is None and not adopt:
            # Nothing due, nothing changed: no storage request at all, unless an edition
            # went out (now, or earlier without its archive page): its page must go up.
            if not dry_run:
                _newsletter(library, config, report)
                upload_newsletter_archive(library, config, storage, report)
            report.seconds = time.monotonic() - started
            return report
        storage = storage or open_storage(config.storage)
        if dry_run:
            _dry_run(library, config, storage, [*memes, *refresh], report, progress)
        else:
            with owned_storage(library, config, storage, adopt=adopt) as manifest:
                _publish_run(library, config, storage, manifest, memes, refresh, run, report,
                             progress)  # fmt: skip
        report.requests = storage.requests
    report.seconds = time.monotonic() - started
    return report


def _render(
    library: Library, config: Config, memes: Sequence[Meme], report: PublishReport,
    progress: Stages | None,
) -> list[RenderResult]:  # fmt: skip
    """Render ``memes``: a queued meme that fails goes to ``report.failed``, a published one
    (rendered again) to ``report.not_updated``."""
    step = progress("Rendering", len(memes)) if progress else None
    results, failures = render_memes(library, config, memes, step)
    live = {m.slug for m in memes if m.status == "published"}
    for failure in failures:
        into = report.not_updated if failure.slug in live else report.failed
        into.append((failure.slug, failure.reason))
    return results


def _dry_run(library: Library, config: Config, storage: Storage, memes: Sequence[Meme],
             report: PublishReport, progress: Stages | None) -> None:  # fmt: skip
    results = _render(library, config, memes, report, progress)
    manifest = storage.load_manifest()
    claim(library, storage, manifest)  # refuses another library's storage; saves nothing
    planned: list[Document] = []
    shown: list[Meme] = []
    when = utcnow()
    by_slug = {m.slug: m for m in memes}
    for result in results:
        assets, documents = assets_of(result)
        planned += documents
        meme = by_slug[result.slug]
        shown.append(replace(meme, status="published", renditions=tuple(assets),
                             published_at=meme.published_at or when))  # fmt: skip
    planned += site_documents(library, config, shown, manifest)
    max_age = config.storage.document_max_age
    for document in planned:
        if not manifest.is_current(document, cache_control_for(document, max_age)):
            report.would_upload.append((document.key, document.size))
    report.published = [m.slug for m in memes if m.status == "queued"]


def document_settings(config: Config) -> str:
    """A digest of the settings the gallery documents are made from (not the renditions),
    and of the code that makes them (a new version rewrites what it changes, once)."""
    made_by = (config.site, config.gallery, gallery.engine_version())
    return hashlib.sha256(repr(made_by).encode()).hexdigest()


def _publish_run(
    library: Library, config: Config, storage: Storage, manifest: Manifest, memes: list[Meme],
    refresh: list[Meme], run: PublishRun | None, report: PublishReport,
    progress: Stages | None,
) -> None:  # fmt: skip
    """Publish `memes` (queued) and render `refresh` (published) again after an edit or a
    settings change; their old objects stay for caches holding an old index, until `memes gc`.
    Published memes whose objects the storage lacks (a new target, a restored meme) are
    rendered (from the cache) and uploaded too, before any document names them."""
    if run is None and memes:
        run = library.begin_run([m.slug for m in memes])
    # The journal's start time is the publish time: a resumed run rebuilds the very same
    # documents, so finishing it uploads nothing that is already there.
    when = run.started_at if run is not None else utcnow()
    again = {m.slug for m in refresh}
    refresh = [*refresh, *(
        m for m in library.published()
        if m.slug not in again and any(a.key not in manifest for a in m.renditions)
    )]  # fmt: skip
    to_render = [*memes, *refresh]
    results = _render(library, config, to_render, report, progress) if to_render else []
    fingerprint = settings_fingerprint(config)
    keys = {job.slug: render_key(job, fingerprint) for job in render_jobs(library, to_render)}
    library.mark_failed(report.failed)
    library.mark_render_failed([(slug, why, keys[slug]) for slug, why in report.not_updated])
    asset_documents: list[Document] = []
    rendered: dict[str, tuple[list[RenditionAsset], Placeholder]] = {}
    for result in results:
        assets, documents = assets_of(result)
        asset_documents += documents
        rendered[result.slug] = (assets, result.placeholder)
    step = progress("Uploading", len(asset_documents)) if progress and asset_documents else None
    upload_documents(storage, manifest, asset_documents, report, step)
    # What cannot be made again comes from the previous target: what sent editions show, and
    # the live images of a meme not rendered again. A meme whose images are still missing is
    # left out of the documents below, and the next publish tries the copy again.
    kept = library.by_slugs(slug for slug, _ in report.not_updated)
    missing, unreachable = _carry_over(
        config, carry_sources(library, config), storage, manifest, report,
        sent_images(library) | {a.key for m in kept for a in m.renditions},
    )
    if run is not None:
        library.run_step(run.id, "assets")

    for slug, (assets, placeholder) in rendered.items():
        library.set_renditions(slug, assets, placeholder.color, placeholder.blurhash, keys[slug])
    ready = [
        replace(m, status="published", published_at=m.published_at or when)
        for m in library.by_slugs(rendered)
        if m.status == "queued"
    ]
    generation = library.generation
    upload_documents(storage, manifest, site_documents(library, config, ready, manifest), report)
    if run is not None:
        library.run_step(run.id, "documents")
        library.mark_published([m.slug for m in ready], when)
        library.finish_run(run.id)
        generation += 1  # mark_published bumped it; the documents above already show it
    library.set_meta(WRITTEN_GENERATION, str(generation))
    library.set_meta(DOCUMENT_SETTINGS, document_settings(config))
    if library.get_meta(HEADER_SETTINGS) != header_settings(config):
        report.uploaded += storage.restamp(manifest)  # documents above went up with them
        library.set_meta(HEADER_SETTINGS, header_settings(config))
    library.set_meta(CARRY_FROM, json.dumps(unreachable))
    library.set_meta(STORAGE_TARGET, storage_target(config))
    _not_carried(library, manifest, missing, report)
    report.published = [m.slug for m in ready]
    _newsletter(library, config, report, manifest)
    _upload_archive(library, config, storage, manifest, report)
    if report.uploaded:
        storage.save_manifest(manifest)


# --- the newsletter --------------------------------------------------------------------------


def _newsletter(library: Library, config: Config, report: PublishReport,
                manifest: Manifest | None = None) -> None:  # fmt: skip
    """Run the newsletter rule into the report: delivery trouble is a warning (the next
    run sends it), an edition in doubt an error (a person must look). With the target's
    ``manifest``, a due edition waits while the target lacks images of one of its memes."""
    shown = None if manifest is None else (lambda meme: stored(meme, manifest))
    outcome = newsletter.run_rule(library, config, stored=shown)
    report.newsletter = {
        "sent": outcome.sent.number if outcome.sent else None,
        "pending": outcome.pending,
        "due_in": outcome.due_in,
        "in_doubt": [f"{e.kind} {e.number}" for e in outcome.in_doubt],
    }
    if outcome.warning:
        (report.errors if outcome.in_doubt else report.warnings).append(outcome.warning)


def _unarchived(library: Library) -> list[Edition]:
    return [e for e in library.editions() if e.status == "sent" and not e.archived]


def _edition_label(edition: Edition) -> str:
    kind = "" if edition.kind == newsletter.REGULAR else f"{edition.kind} "
    return f"{kind}edition {edition.number}"


def _upload_archive(library: Library, config: Config, storage: Storage, manifest: Manifest,
                    report: PublishReport) -> None:  # fmt: skip
    """Upload the archive pages of sent editions whose page is not up yet. A failure does
    not undo the sending: it says so, and the next publish uploads them."""
    waiting = _unarchived(library)
    if not waiting:
        return
    try:
        shown = [m for m in library.published() if stored(m, manifest)]
        archive = newsletter.archive_documents(library.editions(), shown, config)
        upload_documents(storage, manifest, archive, report)
    except MemesError as exc:
        report.errors.append(_archive_failed(waiting, exc))
        return
    library.mark_archived(waiting)


def _archive_failed(editions: Sequence[Edition], exc: Exception) -> str:
    sent = ", ".join(_edition_label(e) for e in editions)
    return f"sent {sent}; archive upload failed: {exc}; the next publish uploads it"


def upload_newsletter_archive(
    library: Library, config: Config, storage: Storage | None = None,
    report: PublishReport | None = None,
) -> PublishReport:  # fmt: skip
    """With no publish run around it: upload the archive pages of sent editions that are not
    up yet (none: no storage request). Storage trouble comes back in ``report.errors``."""
    report = report if report is not None else PublishReport()
    waiting = _unarchived(library)
    if not waiting:
        return report
    try:
        storage = storage or open_storage(config.storage)
        with owned_storage(library, config, storage) as manifest:
            before = len(report.uploaded)
            _upload_archive(library, config, storage, manifest, report)
            if len(report.uploaded) > before:
                storage.save_manifest(manifest)
    except MemesError as exc:  # no storage, no lock, no manifest
        report.errors.append(_archive_failed(waiting, exc))
    return report


def send_newsletter(
    library: Library, config: Config, *, special: bool = False, resume: bool = False,
    subject: str | None = None, body: str | None = None, slugs: Sequence[str] = (),
    extra: str | None = None,
) -> tuple[list[Edition], PublishReport]:  # fmt: skip
    """`memes newsletter send`: the due edition, a special edition, or the editions in doubt
    sent again; then their archive pages. Holds the publish lock (exit 75 while a publish
    runs), so no other run sends at the same time.

    Returns what was sent and a report whose warnings, errors and exit code the CLI prints."""
    report = PublishReport()
    with publish_lock(library):
        require_published_storage(library, config)
        if special:
            if not subject:
                raise UsageError("--special needs --subject")
            sent = [newsletter.send_special(library, config, subject=subject, body=body,
                                            slugs=slugs)]  # fmt: skip
        elif resume:
            sent = newsletter.resume(library, config)
        else:
            outcome = newsletter.run_rule(library, config, extra=extra)
            sent = [outcome.sent] if outcome.sent else []
            report.newsletter = {"pending": outcome.pending, "due_in": outcome.due_in}
            if outcome.warning:
                failed = outcome.in_doubt or outcome.failed
                (report.errors if failed else report.warnings).append(outcome.warning)
        upload_newsletter_archive(library, config, report=report)
    return sent, report


def confirm_edition(library: Library, config: Config, kind: str,
                    number: int) -> tuple[Edition, PublishReport]:  # fmt: skip
    """`memes newsletter confirm`: an edition in doubt did arrive; record it, upload its page."""
    with publish_lock(library):
        edition = newsletter.confirm_sent(library, kind, number)
        return edition, upload_newsletter_archive(library, config)


# --- remove, verify, gc ----------------------------------------------------------------------


def remove(library: Library, config: Config, slug: str, *, purge: bool = False,
           storage: Storage | None = None) -> Meme:  # fmt: skip
    """Take a meme down: it leaves every index first, then its objects are deleted, except
    the images a sent newsletter shows (mail in inboxes keeps their URLs), unless ``purge``."""
    meme = library.get(slug)
    if meme.status == "removed" and not purge:
        raise NotFoundError(f"meme '{slug}': already removed")
    with publish_lock(library):
        emailed = {k for k in newsletter.emailed_keys(library) if k.startswith(f"i/{slug}/")}
        if meme.status == "published" or (purge and meme.status == "removed" and emailed):
            storage = storage or open_storage(config.storage)
            with owned_storage(library, config, storage) as manifest:
                documents = site_documents(library, config, [replace(meme, status="removed")],
                                           manifest)  # fmt: skip
                upload_documents(storage, manifest, documents, PublishReport())
                doomed = {a.key for a in meme.renditions} | {gallery.permalink_key(slug),
                                                          gallery.page_key(slug)}
                doomed = doomed | emailed if purge else doomed - emailed
                storage.delete_many(sorted(k for k in doomed if manifest.get(k)), manifest)
                storage.save_manifest(manifest)
            if meme.status == "published":
                meme = library.mark_removed(slug)
                library.set_meta(WRITTEN_GENERATION, str(library.generation))
        elif meme.status in ("queued", "failed"):
            meme = library.mark_removed(slug)
        if purge:
            library.purge_original(meme)
    return meme


@dataclass
class VerifyReport:
    checked: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)  # (key, what is wrong)
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems or len(self.repaired) == len(self.problems)

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "ok": self.ok,
            "problems": [{"key": k, "problem": p} for k, p in self.problems],
            "repaired": self.repaired,
        }


def _live_keys(storage: Storage, config: Config, report: VerifyReport) -> dict[str, int | None]:
    """Keys the published index (head, then its `next` pages) names, with the sizes it
    states. A URL that would leave the storage root is reported and never opened."""
    base = config.site.base_url
    named: dict[str, int | None] = {}
    key: str | None = gallery.INDEX
    seen: set[str] = set()
    while key and key not in seen:
        seen.add(key)
        raw = storage.get(key)
        if raw is None:
            break  # reported with the documents below, which name it too
        try:
            document = json.loads(raw)
            entries = list(document.get("memes", []))
            following = document.get("next")
        except (ValueError, AttributeError, TypeError, RecursionError):
            report.problems.append((key, "not a gallery index"))
            break
        for entry in entries:
            urls = [(r.get("url"), r.get("bytes")) for r in entry.get("renditions", {}).values()]
            for url, size in [*urls, (entry.get("url"), None)]:
                if isinstance(url, str) and url.startswith(base):
                    named[url[len(base) :]] = size if isinstance(size, int) else None
        key = following[len(base) :] if isinstance(following, str) and following.startswith(
            base) else None  # fmt: skip
        if key is not None:
            named.setdefault(key, None)
    return named


def verify(library: Library, config: Config, *, repair: bool = False,
           storage: Storage | None = None) -> VerifyReport:  # fmt: skip
    """Every object this library published is in storage as it was written: whatever the
    manifest records (by size and sha256: file:// hashes the bytes, S3 compares the sha256
    stored as object metadata), every object the live index names, the documents, gallery
    page and newsletter archive the library makes, and the images sent editions point at.
    Keys outside the storage root are reported, never opened. ``repair`` uploads again
    every missing or wrong object it can make."""
    storage = storage or open_storage(config.storage)
    manifest = storage.load_manifest()
    if repair:  # refuse another library's storage before checking anything
        claim(library, storage, manifest)
    report = VerifyReport()
    expected: dict[str, tuple[int | None, str | None]] = {
        info.key: (info.size, info.sha256)
        for info in manifest.values()
        if not info.key.startswith(META_PREFIX)
    }
    named = _live_keys(storage, config, report)
    named.update(dict.fromkeys(gallery.asset_keys(library.published())))
    if library.get_meta(WRITTEN_GENERATION) is not None:  # documents were ever written
        named.update(dict.fromkeys(d.key for d in site_documents(library, config)))
    named.update(dict.fromkeys(sent_images(library)))
    for key, size in named.items():
        if key not in expected:
            expected[key] = (size, None)
    for key, (size, sha256) in sorted(expected.items()):
        report.checked += 1
        try:
            check_key(key)
        except StorageError as exc:
            report.problems.append((key, f"unsafe key, not opened: {exc}"))
            continue
        info = storage.head(key)
        if info is None:
            report.problems.append((key, "missing"))
        elif size is not None and info.size != size:
            report.problems.append((key, f"size {info.size}, expected {size}"))
        elif sha256 and info.sha256 and info.sha256 != sha256:
            report.problems.append((key, "content differs from what was uploaded (sha256)"))
    if repair and report.problems:
        _repair(library, config, storage, {k for k, _ in report.problems}, set(named), report)
    return report


def _repair(library: Library, config: Config, storage: Storage, broken: set[str],
            live: set[str], report: VerifyReport) -> None:  # fmt: skip
    """Upload again what is broken; an object only the manifest named (no live document,
    awaiting gc) is forgotten instead."""
    # Both locks, as publish, remove and gc take them: another host must not save its
    # manifest between this load and save.
    with publish_lock(library), owned_storage(library, config, storage) as manifest:
        for key in broken:
            manifest.remove(key)  # the manifest was wrong about it: upload again
        memes = [m for m in library.published() if any(a.key in broken for a in m.renditions)]
        images: list[Document] = []
        results, _ = render_memes(library, config, memes)
        for result in results:
            images += [d for d in assets_of(result)[1] if d.key in broken]
        sync = PublishReport()
        upload_documents(storage, manifest, images, sync)
        # Then the documents, built against the manifest: a meme whose images are still
        # missing (not made again, not carried over) is left out, as a publish leaves it.
        documents = site_documents(library, config, manifest=manifest)
        upload_documents(storage, manifest, [d for d in documents if d.key in broken], sync)
        storage.save_manifest(manifest)  # it forgot the broken keys: save even if none went up
        forgotten = broken - live  # nothing names it: nothing to upload, nothing lost
        report.repaired = sorted((set(sync.uploaded) & broken) | forgotten)


@dataclass
class GcReport:
    """What `memes gc` deleted and what it kept."""

    grace_days: float
    deleted: list[str] = field(default_factory=list)
    deleted_bytes: int = 0
    in_use: int = 0  # objects an index, page or sent mail still references
    waiting: list[tuple[str, str]] = field(default_factory=list)  # (key, unreferenced since)

    def summary(self) -> str:
        """One line for people: what went, what stays and why."""
        days = f"{self.grace_days:g} day" + ("" if self.grace_days == 1 else "s")
        line = f"deleted {len(self.deleted)} objects"
        if self.deleted:
            line += f" ({self.deleted_bytes:,} bytes)"
        line += f"; kept {self.in_use} in use"
        if self.waiting:
            line += f", {len(self.waiting)} unreferenced for less than {days}"
        return line

    def as_dict(self) -> dict[str, Any]:
        return {
            "deleted": self.deleted,
            "deleted_bytes": self.deleted_bytes,
            "in_use": self.in_use,
            "waiting": [{"key": k, "unreferenced_since": since} for k, since in self.waiting],
            "grace_days": self.grace_days,
        }


def gc(library: Library, config: Config, *, grace_days: float | None = None,
       storage: Storage | None = None, now: datetime | None = None) -> GcReport:  # fmt: skip
    """Delete objects no index references any more, once unreferenced for the grace period."""
    storage = storage or open_storage(config.storage)
    grace = config.storage.gc_grace_days if grace_days is None else grace_days
    report = GcReport(grace_days=grace)
    with publish_lock(library), owned_storage(library, config, storage) as manifest:
        referenced = gallery.asset_keys(library.published())
        referenced |= {d.key for d in site_documents(library, config)}
        referenced |= newsletter.emailed_keys(library)  # sent mail keeps its image URLs
        sizes = {info.key: info.size for info in manifest.values()}
        report.deleted = collect_garbage(
            storage, manifest, referenced, now or utcnow(), timedelta(days=grace)
        )
        storage.save_manifest(manifest)
    report.deleted_bytes = sum(sizes[key] for key in report.deleted)
    for info in manifest.values():
        if info.key.startswith(META_PREFIX):
            continue
        if info.unreferenced_since is None:
            report.in_use += 1
        else:
            report.waiting.append((info.key, info.unreferenced_since))
    return report


def render_to_folder(
    library: Library,
    config: Config,
    slugs: Sequence[str],
    out: Path,
    progress: Progress | None = None,
) -> tuple[list[Path], list[str]]:
    """`memes render`: write what would be published, for staff to look at. Returns the files
    written and a line for each slug that is unknown or could not be rendered; NotFoundError
    when not one slug is known."""
    memes: list[Meme] = []
    unknown: list[NotFoundError] = []
    for slug in slugs:
        try:
            memes.append(library.get(slug))
        except NotFoundError as exc:
            unknown.append(exc)
    if unknown and not memes:
        raise unknown[0]
    results, failures = render_memes(library, config, memes, progress)
    written = []
    for result in results:
        folder = out / result.slug
        for image in result.renditions:
            target = folder / f"{image.name}.{image.extension}"
            written.append(write_atomic(target, image.data, sync=False))
    return written, [str(exc) for exc in unknown] + [f"{f.slug}: {f.reason}" for f in failures]

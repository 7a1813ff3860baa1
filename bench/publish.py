"""Storage requests and wall time of `memes publish` on a bucket of >= 10,000 objects, next to
`aws s3 sync` of the same change, on a SeaweedFS started here.

    .venv/bin/python bench/publish.py [--memes 1704] [--new 12] [--aws /tmp/awsvenv/bin/aws]

It builds a published library of `--memes` records without rendering them (fake rendition
bytes under content-hashed keys, the real gallery documents and newsletter archive, one
regular edition per 12 memes), uploads all of it with a manifest, then measures:

A. `publish` with nothing due: in process (expected: 0 requests) and the `memes publish
   --json` command as cron runs it;
B. `publish` of `--new` real 2-megapixel JPEGs (default renditions): requests by operation
   and by what they were for (renditions, documents by kind, manifest, lock), wall time split
   into render and the rest.

The baseline, in the same run: `aws s3 sync` of a local mirror of the same content into a
copy bucket, with nothing changed and with the same change as B (new renditions + changed
documents); wall times from runs without --debug, requests counted from an identical run with
--debug (botocore logs one "Making request for OperationModel(name=...)" per call). awscli
pins its own botocore, so it lives in a separate venv:

    python3 -m venv /tmp/awsvenv && /tmp/awsvenv/bin/pip install awscli

The cold-upload rate (put_many vs aws s3 sync) is bench/upload.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import yaml  # noqa: E402
from common import aws_env, aws_sync, document_kind  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from seaweed import SeaweedServer, seaweed  # noqa: E402

from pipeline import config as config_mod  # noqa: E402
from pipeline import newsletter  # noqa: E402
from pipeline.config import Config  # noqa: E402
from pipeline.documents import Document  # noqa: E402
from pipeline.ingest import MemeFields, add_files  # noqa: E402
from pipeline.library import Library, NewMeme, RenditionAsset  # noqa: E402
from pipeline.publish import WRITTEN_GENERATION, asset_key, publish, site_documents  # noqa: E402
from pipeline.storage import LOCK_KEY, MANIFEST_KEY, Storage, open_storage  # noqa: E402

T0 = datetime(2024, 1, 1, tzinfo=UTC)
CATEGORIES = ("funny", "informative", "tech")
BATCH = 12  # memes per historic publish run and per newsletter edition (the defaults)
OPERATIONS = ("PutObject", "GetObject", "HeadObject", "ListObjectsV2", "DeleteObject")
SHORT = {"PutObject": "PUT", "GetObject": "GET", "HeadObject": "HEAD",
         "ListObjectsV2": "LIST", "DeleteObject": "DELETE", "DeleteObjects": "DELETE"}  # fmt: skip


# --- the library and the bucket ----------------------------------------------------------------


def write_config(work: Path, server: SeaweedServer, bucket: str) -> Path:
    raw = {
        "site": {"title": "Bench memes", "base_url": "https://memes.example.org/"},
        "library": str(work / "library"),
        "storage": {"url": f"s3://{bucket}/site", "endpoint_url": server.endpoint},
        "publish": {"workers": 0},
        "newsletter": {"outbox": str(work / "outbox")},
    }
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def fake_renditions(slug: str, config: Config, rng: random.Random) -> list[Document]:
    """Small stand-ins for one meme's renditions, under the keys publish would give them."""
    documents = []
    for spec in config.renditions:
        size = rng.randint(800, 2400)
        data = (f"{slug}/{spec.name}/".encode() * (size // 8 + 1))[:size]
        key = asset_key(slug, spec.name, hashlib.sha256(data).hexdigest(), spec.extension)
        documents.append(Document(key, data, spec.content_type, immutable=True))
    return documents


def build_library(library: Library, config: Config, count: int) -> list[Document]:
    """`count` published memes with renditions and newsletter history; their rendition bytes."""
    rng = random.Random(11)
    assets: list[Document] = []
    slugs: list[str] = []
    for i in range(count):
        when = T0 + timedelta(hours=2 * i)
        meme = library.add(
            NewMeme(
                title=f"Seed meme {i}", caption=f"When the cron job runs at 3 am, take {i}",
                alt=f"A cat looking at a terminal, number {i}", category=CATEGORIES[i % 3],
                tags=(f"tag{i % 40}", f"tag{(i * 7) % 40}"), credit="@someone",
                original_name=f"seed-{i}.jpg",
                sha256=hashlib.sha256(f"seed-{i}".encode()).hexdigest(), phash="", ext="jpg",
                width=1600, height=1200, format="JPEG", frames=1, publish_at=when,
            ),
            now=when,
        )  # fmt: skip
        documents = fake_renditions(meme.slug, config, rng)
        records = []
        for spec, doc in zip(config.renditions, documents, strict=True):
            height = spec.height or round(min(spec.width, 1600) * 1200 / 1600)
            records.append(RenditionAsset(spec.name, doc.key, min(spec.width, 1600), height,
                                          doc.content_type, doc.size))  # fmt: skip
        library.set_renditions(meme.slug, records, "#7a6b5c", "LEHV6nWB2yk8pyo0adR*.7kCMdnj")
        assets += documents
        slugs.append(meme.slug)
    # Published in runs of BATCH, each run followed by its newsletter edition (as cron does),
    # so a nothing-due publish has no edition to send.
    for number, start in enumerate(range(0, count, BATCH), 1):
        batch = slugs[start : start + BATCH]
        library.mark_published(batch, T0 + timedelta(hours=2 * (start + len(batch))))
        if len(batch) < BATCH:
            break  # a partial run waits for more memes, like the real rule
        memes = library.by_slugs(batch)
        subject = newsletter.regular_subject(memes, config, number=number)
        message_id = f"<regular-{number}@memes.example.org>"
        library.begin_edition(newsletter.REGULAR, batch, subject, message_id, number=number)
        library.finish_edition(newsletter.REGULAR, number)
    return assets


def upload_state(storage: Storage, documents: list[Document]) -> float:
    started = time.perf_counter()
    manifest = storage.load_manifest()
    storage.put_many(documents, manifest)
    storage.save_manifest(manifest)
    return time.perf_counter() - started


def count_objects(server: SeaweedServer, bucket: str) -> int:
    pages = server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sum(page.get("KeyCount", 0) for page in pages)


def write_mirror(mirror: Path, documents: list[Document], mtime: float | None) -> int:
    """Write the documents that differ from the mirror's files; return how many were written.

    ``mtime`` (seconds) back-dates them, so aws s3 sync sees them as older than the bucket's
    copies; None leaves them new, so it uploads them.
    """
    written = 0
    for doc in documents:
        path = mirror / doc.key
        try:
            if path.read_bytes() == doc.data:
                continue
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(doc.data)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        written += 1
    return written


# --- the new memes ------------------------------------------------------------------------------


def make_images(folder: Path, count: int) -> list[Path]:
    """``count`` distinct ~2-megapixel JPEGs (gradients and shapes: photo-like sizes)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        rng = random.Random(n)
        im = Image.linear_gradient("L").resize((1632, 1224)).convert("RGB")
        tint = Image.new("RGB", im.size, tuple(rng.randrange(256) for _ in range(3)))
        im = Image.blend(im, tint, 0.6)
        draw = ImageDraw.Draw(im)
        for _ in range(30):
            x, y = rng.randrange(1632), rng.randrange(1224)
            r = rng.randrange(20, 300)
            draw.ellipse((x - r, y - r, x + r, y + r),
                         fill=tuple(rng.randrange(256) for _ in range(3)))  # fmt: skip
        path = folder / f"new-{n:02d}.jpg"
        im.save(path, quality=90)
        paths.append(path)
    return paths


# --- counting -----------------------------------------------------------------------------------


class RequestLog:
    """Every request a botocore client sends: (operation, key under the storage prefix)."""

    def __init__(self, storage: Any):
        self.bucket, self.prefix = storage.bucket, storage.prefix
        self.calls: list[tuple[str, str]] = []
        self.times: list[float] = []
        storage.client.meta.events.register("before-send.s3.*", self._on_send)

    def _on_send(self, event_name: str, request: Any, **_: Any) -> None:
        path = unquote(urlsplit(request.url).path).lstrip("/")
        key = path.removeprefix(self.bucket + "/").removeprefix(self.prefix)
        self.calls.append((event_name.rsplit(".", 1)[-1], key))
        self.times.append(time.perf_counter())


def purpose(key: str) -> str:
    if key == MANIFEST_KEY:
        return "manifest"
    if key == LOCK_KEY:
        return "lock"
    if key.startswith("i/"):
        return "renditions"
    if key.startswith("newsletter/"):
        return "newsletter archive"
    return document_kind(key)


def by_operation(counts: Counter[str]) -> str:
    merged = Counter({SHORT.get(op, op): n for op, n in counts.items()})
    return " ".join(f"{op} {merged[op]}" for op in ("PUT", "GET", "HEAD", "LIST", "DELETE")) + (
        "".join(f" {op} {n}" for op, n in merged.items() if op not in SHORT.values())
    )


def touch(mirror: Path, keys: list[str], when: float) -> None:
    for key in keys:
        os.utime(mirror / key, (when, when))


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--aws", default=os.environ.get("AWS_CLI") or "/tmp/awsvenv/bin/aws")
    parser.add_argument("--memes", type=int, default=1704, help="published memes to start from")
    parser.add_argument("--new", type=int, default=BATCH, help="new memes to publish")
    args = parser.parse_args()
    aws = args.aws if Path(args.aws).exists() else shutil.which(args.aws)

    work = Path(tempfile.mkdtemp(prefix="memes-bench-publish-"))
    rows: list[tuple[str, str, str]] = []
    try:
        with seaweed() as server:
            os.environ.update(aws_env(server))
            bucket = server.new_bucket("site")
            config_path = write_config(work, server, bucket)
            config = config_mod.load(config_path)
            names = ", ".join(f"{s.name} {s.width}px {s.format}" for s in config.renditions)
            print(f"config: {len(config.renditions)} default renditions ({names}); "
                  f"publish.workers {config.publish.workers}; cores {os.cpu_count()}")  # fmt: skip

            # 1. A published library and a bucket holding it (not measured).
            started = time.perf_counter()
            library = Library(config.library)
            assets = build_library(library, config, args.memes)
            state = assets + site_documents(library, config)
            library.set_meta(WRITTEN_GENERATION, str(library.generation))
            built = time.perf_counter() - started
            mirror = work / "mirror"
            write_mirror(mirror, state, time.time() - 3600)
            seeded = upload_state(open_storage(config.storage), state)
            objects = count_objects(server, bucket)
            print(f"seed: {args.memes} published memes, {len(assets)} renditions + "
                  f"{len(state) - len(assets)} documents, built in {built:.1f}s, uploaded in "
                  f"{seeded:.1f}s; bucket holds {objects} objects "
                  f"({math.ceil(objects / 1000)} list pages)")  # fmt: skip
            # Any other "documents written from" mark publish keeps (settings digests) is set
            # by publish itself: a run with nothing due that finds everything uploaded.
            storage = open_storage(config.storage)
            report = publish(library, config, storage=storage)
            assert not report.uploaded, report.uploaded
            print(f"settling publish (not measured): {storage.requests} requests "
                  f"({by_operation(storage.request_counts)}), uploaded nothing")  # fmt: skip
            copy = None
            if aws:
                copy = server.new_bucket("awscopy")
                cfg = config_mod.parse({"storage": {"url": f"s3://{copy}/site",
                                                    "endpoint_url": server.endpoint}},
                                       root=work)  # fmt: skip
                upload_state(open_storage(cfg.storage), state)
                print(f"copy bucket for aws s3 sync: {count_objects(server, copy)} objects")
            else:
                print(f"aws CLI not found at {args.aws!r}: no baseline run. Install it with")
                print("  python3 -m venv /tmp/awsvenv && /tmp/awsvenv/bin/pip install awscli")

            # 2. A: nothing due.
            storage = open_storage(config.storage)
            report = publish(library, config, storage=storage)
            assert not report.published, report.published
            print(f"\nA. nothing due, in process: {storage.requests} requests "
                  f"({by_operation(storage.request_counts)}), "
                  f"{report.seconds * 1000:.0f} ms")  # fmt: skip
            rows.append(("nothing due: publish()", f"{storage.requests}",
                         f"{report.seconds:.3f}s"))  # fmt: skip
            env = dict(os.environ, MEMES_CONFIG=str(config_path))
            memes_cmd = [str(Path(sys.executable).parent / "memes"), "publish", "--json"]
            started = time.perf_counter()
            done = subprocess.run(memes_cmd, env=env, capture_output=True, text=True, check=True)
            cli_seconds = time.perf_counter() - started
            cli = json.loads(done.stdout)
            print(f"   `memes publish --json`: requests {cli['requests']}, published "
                  f"{len(cli['published'])}, {cli_seconds:.2f}s wall (process start-up and "
                  f"imports included)")  # fmt: skip
            rows.append(("nothing due: memes publish", f"{cli['requests']}",
                         f"{cli_seconds:.2f}s"))  # fmt: skip
            if aws and copy:
                seconds, _, _ = aws_sync(aws, server, mirror, copy)
                _, calls, http = aws_sync(aws, server, mirror, copy, debug=True)
                print(f"   aws s3 sync, nothing changed: {sum(calls.values())} requests "
                      f"({by_operation(calls)}; {http} HTTP), {seconds:.2f}s wall")  # fmt: skip
                rows.append(("nothing changed: aws s3 sync", f"{sum(calls.values())}",
                             f"{seconds:.2f}s"))  # fmt: skip

            # 3. B: publish new real memes.
            images = make_images(work / "incoming", args.new)
            added = add_files(library, config,
                              [(p, MemeFields(caption=f"Fresh meme {p.stem}", category="tech"))
                               for p in images])  # fmt: skip
            assert len(added.added) == args.new, added.rejected
            storage = open_storage(config.storage)
            log = RequestLog(storage)
            marks: dict[str, float] = {}

            def progress(label: str, _total: int) -> None:
                marks.setdefault(label, time.perf_counter())

            started = time.perf_counter()
            report = publish(library, config, storage=storage, progress=progress)
            wall = time.perf_counter() - started
            assert len(report.published) == args.new, (report.published, report.failed)
            render = marks.get("Uploading", started) - marks.get("Rendering", started)
            purposes = Counter((purpose(key), SHORT.get(op, op)) for op, key in log.calls)
            renditions = sum(1 for op, key in log.calls if op == "PutObject" and
                             purpose(key) == "renditions")  # fmt: skip
            doc_puts = Counter(
                purpose(key)
                for op, key in log.calls
                if op == "PutObject" and purpose(key) not in ("renditions", "manifest", "lock")
            )
            manifest = {op: n for (what, op), n in purposes.items() if what == "manifest"}
            lock = {op: n for (what, op), n in purposes.items() if what == "lock"}
            content = storage.requests - sum(manifest.values()) - sum(lock.values())
            print(f"\nB. publish {args.new} new memes: {storage.requests} requests "
                  f"({by_operation(storage.request_counts)}), {wall:.2f}s wall: render "
                  f"{render:.2f}s, the rest (lock, manifest, uploads, documents) "
                  f"{wall - render:.2f}s")  # fmt: skip
            started = time.perf_counter()
            site_documents(library, config)
            building = time.perf_counter() - started
            after_render = [t for (_, key), t in zip(log.calls, log.times, strict=True)
                            if key != LOCK_KEY]  # fmt: skip
            span = after_render[-1] - after_render[0] if after_render else 0.0
            print(f"   of the rest: manifest GET to last request {span:.2f}s (includes "
                  f"building the documents, {building:.2f}s when timed apart)")  # fmt: skip
            print(
                f"   rendition PUTs: {renditions} (expected {args.new} x "
                f"{len(config.renditions)} = {args.new * len(config.renditions)})"
            )
            print(
                f"   changed documents: {sum(doc_puts.values())} "
                f"({', '.join(f'{k} {n}' for k, n in sorted(doc_puts.items()))})"
            )
            print(
                f"   manifest: {manifest} (target: at most 2); lock: {lock} "
                f"(try_lock PUT + unlock GET and DELETE, counted apart)"
            )
            print(f"   uploaded {len(report.uploaded)} objects, {report.uploaded_bytes / 1e6:.1f}"
                  f" MB; skipped {report.skipped}; newsletter {report.newsletter}")  # fmt: skip
            rows.append((f"{args.new} new: publish() all", f"{storage.requests}",
                         f"{wall:.2f}s"))  # fmt: skip
            rows.append((f"{args.new} new: publish() minus render", f"{storage.requests}",
                         f"{wall - render:.2f}s"))  # fmt: skip
            rows.append(
                (
                    "  of which content / manifest / lock",
                    f"{content} / {sum(manifest.values())} / {sum(lock.values())}",
                    "",
                )
            )

            # 4. The same change through aws s3 sync (a mirror of the bucket after B).
            if aws and copy:
                reader = server.client()
                fresh = [
                    Document(a.key, reader.get_object(Bucket=bucket, Key="site/" + a.key)[
                        "Body"].read(), a.content_type, immutable=True)
                    for m in library.by_slugs(report.published) for a in m.renditions
                ]  # fmt: skip
                after = fresh + site_documents(library, config)
                changed = [d.key for d in after if not (mirror / d.key).exists()
                           or (mirror / d.key).read_bytes() != d.data]  # fmt: skip
                write_mirror(mirror, after, None)
                # Timed without --debug, then the same sync again (files touched so they look
                # newer than what the first run uploaded) with --debug for the counts.
                touch(mirror, changed, time.time() + 1)
                seconds, _, _ = aws_sync(aws, server, mirror, copy)
                touch(mirror, changed, time.time() + 1)
                _, calls, http = aws_sync(aws, server, mirror, copy, debug=True)
                puts = calls.get("PutObject", 0) + calls.get("CreateMultipartUpload", 0)
                print(f"\n   aws s3 sync of the same change ({len(changed)} new or changed "
                      f"files): {sum(calls.values())} requests ({by_operation(calls)}; {http} "
                      f"HTTP; {puts} uploads), {seconds:.2f}s wall")  # fmt: skip
                rows.append((f"{args.new} new: aws s3 sync (no render)",
                             f"{sum(calls.values())}", f"{seconds:.2f}s"))  # fmt: skip
            else:
                print(f"\n   aws s3 sync would list {math.ceil(objects / 1000)} pages of "
                      f"1000 keys before uploading anything")  # fmt: skip

        print(f"\n{'case':42}{'requests':>14}{'wall':>10}")
        for case, requests, seconds in rows:
            print(f"{case:42}{requests:>14}{seconds:>10}")
        print("\ncold upload rate: .venv/bin/python bench/upload.py")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

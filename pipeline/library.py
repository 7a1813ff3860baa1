"""The catalog (memes/): Meme records, slugs, status, the publish journal and editions.

The only module that writes the catalog. It is a SQLite database in WAL mode
(``memes/catalog.sqlite``) beside the originals, stored by content hash and never modified
(``memes/originals/ab/<sha256>.<ext>``). Every change is one transaction, so a cron publish
and two staff members can touch it at once, and a kill -9 at any moment leaves either the
whole change or none of it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slugify import slugify

from pipeline.errors import IngestError, MemesError, NotFoundError
from pipeline.files import write_atomic

SCHEMA_VERSION = 1
SLUG_MAX = 60
STATUSES = ("queued", "published", "removed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS memes (
    id INTEGER PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL DEFAULT '',
    caption TEXT NOT NULL,
    alt TEXT NOT NULL,
    category TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]',
    credit TEXT NOT NULL DEFAULT '',
    top_text TEXT NOT NULL DEFAULT '',
    bottom_text TEXT NOT NULL DEFAULT '',
    original_name TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    phash TEXT NOT NULL DEFAULT '',
    ext TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    format TEXT NOT NULL,
    frames INTEGER NOT NULL DEFAULT 1,
    added_at TEXT NOT NULL,
    publish_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',
    published_at TEXT,
    updated_at TEXT NOT NULL,
    placeholder_color TEXT NOT NULL DEFAULT '',
    blurhash TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS memes_status ON memes (status, publish_at, id);
CREATE TABLE IF NOT EXISTS assets (
    meme_id INTEGER NOT NULL REFERENCES memes(id),
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    animated INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (meme_id, name)
);
CREATE TABLE IF NOT EXISTS publish_runs (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    pid INTEGER NOT NULL,
    slugs TEXT NOT NULL,
    step TEXT NOT NULL,
    finished_at TEXT
);
CREATE TABLE IF NOT EXISTS editions (
    kind TEXT NOT NULL,
    number INTEGER NOT NULL,
    status TEXT NOT NULL,
    subject TEXT NOT NULL,
    message_id TEXT NOT NULL,
    slugs TEXT NOT NULL,
    created_at TEXT NOT NULL,
    sent_at TEXT,
    PRIMARY KEY (kind, number)
);
"""


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime) -> str:
    """UTC ISO 8601 with a Z, second precision: sorts as text and reads in every language."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 date or date-time; naive values are taken as UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@dataclass(frozen=True)
class RenditionAsset:
    """One published rendition of a meme: where it is in storage and what it is."""

    name: str
    key: str  # storage key relative to the storage root, e.g. "i/<slug>/large.<hash>.webp"
    width: int
    height: int
    content_type: str
    bytes: int
    animated: bool = False


@dataclass(frozen=True)
class NewMeme:
    """What ingest hands the library: a validated original already stored by hash."""

    title: str
    caption: str
    alt: str
    category: str
    tags: tuple[str, ...]
    credit: str
    original_name: str
    sha256: str
    phash: str
    ext: str
    width: int
    height: int
    format: str
    frames: int
    publish_at: datetime
    top_text: str = ""
    bottom_text: str = ""


@dataclass(frozen=True)
class Meme:
    id: int
    slug: str
    title: str
    caption: str
    alt: str
    category: str
    tags: tuple[str, ...]
    credit: str
    top_text: str
    bottom_text: str
    original_name: str
    sha256: str
    phash: str
    ext: str
    width: int
    height: int
    format: str
    frames: int
    added_at: datetime
    publish_at: datetime
    status: str
    published_at: datetime | None
    updated_at: datetime
    placeholder_color: str = ""
    blurhash: str = ""
    renditions: tuple[RenditionAsset, ...] = field(default=())

    @property
    def animated(self) -> bool:
        return self.frames > 1

    @property
    def original_relpath(self) -> str:
        return original_relpath(self.sha256, self.ext)

    def as_dict(self) -> dict[str, Any]:
        """Plain-data view for `--json` output."""
        return {
            "slug": self.slug,
            "title": self.title,
            "caption": self.caption,
            "alt": self.alt,
            "category": self.category,
            "tags": list(self.tags),
            "credit": self.credit,
            "top": self.top_text,
            "bottom": self.bottom_text,
            "original_name": self.original_name,
            "sha256": self.sha256,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "frames": self.frames,
            "added_at": iso(self.added_at),
            "publish_at": iso(self.publish_at),
            "status": self.status,
            "published_at": iso(self.published_at) if self.published_at else None,
        }


@dataclass(frozen=True)
class PublishRun:
    id: int
    started_at: datetime
    pid: int
    slugs: tuple[str, ...]
    step: str


@dataclass(frozen=True)
class Edition:
    kind: str  # "regular" | "special"
    number: int
    status: str  # "sending" (in doubt if the run died) | "sent"
    subject: str
    message_id: str
    slugs: tuple[str, ...]
    created_at: datetime
    sent_at: datetime | None


def original_relpath(sha256: str, ext: str) -> str:
    """Where an original lives in the library folder: by its hash, fanned out by 2 digits."""
    return f"originals/{sha256[:2]}/{sha256}.{ext}"


def write_original(library_root: Path, data: bytes, sha256: str, ext: str) -> Path:
    """Write an original under its hash, atomically (temp file + rename); idempotent, and safe
    from several processes at once (ingest workers store what they checked)."""
    target = library_root / original_relpath(sha256, ext)
    return target if target.exists() else write_atomic(target, data)


class DuplicateError(IngestError):
    """The exact bytes are in the library already; the message names the existing slug."""


EDITABLE = ("title", "caption", "alt", "category", "tags", "credit", "top_text", "bottom_text",
            "publish_at")  # fmt: skip


def make_slug_base(title: str, caption: str) -> str:
    base = slugify(title or caption, max_length=SLUG_MAX, word_boundary=True, save_order=True)
    return base or "meme"


def _enter_wal_mode(db: sqlite3.Connection, timeout: float = 60.0) -> None:
    """Switch a catalog to WAL, waiting out a concurrent first open.

    Turning a fresh database into WAL needs an exclusive lock and SQLite answers "database is
    locked" at once, without calling the busy handler, when another process is doing the same
    (two cron jobs or two `memes add` starting on a new library). So wait here instead.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


class Library:
    """The meme library folder: catalog.sqlite plus content-addressed originals."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "originals").mkdir(exist_ok=True)
        self.catalog_path = self.root / "catalog.sqlite"
        try:
            self._db = sqlite3.connect(self.catalog_path, timeout=60, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            _enter_wal_mode(self._db)
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=60000")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise MemesError(f"{self.catalog_path}: cannot open catalog: {exc}") from None

    # --- plumbing ------------------------------------------------------------------------

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: take the write lock up front so read-then-write cannot race."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self.transaction() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row["value"]) > SCHEMA_VERSION:
                raise MemesError(
                    f"{self.catalog_path}: catalog schema {row['value']} is newer than this "
                    f"memes ({SCHEMA_VERSION}); upgrade memes"
                )

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row["value"] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def _bump_generation(self, db: sqlite3.Connection) -> None:
        """Published content changed: the gallery documents must be written again."""
        db.execute(
            "INSERT INTO meta VALUES ('generation', '1') ON CONFLICT(key) DO UPDATE "
            "SET value = CAST(value AS INTEGER) + 1"
        )

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation", "0") or 0)

    # --- originals -----------------------------------------------------------------------

    def original_path(self, meme: Meme) -> Path:
        return self.root / meme.original_relpath

    # --- records -------------------------------------------------------------------------

    def _row_to_meme(self, row: sqlite3.Row, assets: Sequence[RenditionAsset] = ()) -> Meme:
        return Meme(
            id=row["id"],
            slug=row["slug"],
            title=row["title"],
            caption=row["caption"],
            alt=row["alt"],
            category=row["category"],
            tags=tuple(json.loads(row["tags"])),
            credit=row["credit"],
            top_text=row["top_text"],
            bottom_text=row["bottom_text"],
            original_name=row["original_name"],
            sha256=row["sha256"],
            phash=row["phash"],
            ext=row["ext"],
            width=row["width"],
            height=row["height"],
            format=row["format"],
            frames=row["frames"],
            added_at=parse_iso(row["added_at"]),
            publish_at=parse_iso(row["publish_at"]),
            status=row["status"],
            published_at=parse_iso(row["published_at"]) if row["published_at"] else None,
            updated_at=parse_iso(row["updated_at"]),
            placeholder_color=row["placeholder_color"],
            blurhash=row["blurhash"],
            renditions=tuple(assets),
        )

    def _memes(
        self,
        where: str,
        params: Sequence[Any] = (),
        order: str = "id",
        *,
        limit: int | None = None,
        renditions: bool = True,
    ) -> list[Meme]:
        """The memes matching ``where``, with their rendition assets unless told not to."""
        sql = f"SELECT * FROM memes WHERE {where} ORDER BY {order}"
        if limit is not None:
            sql, params = sql + " LIMIT ?", [*params, limit]
        rows = self._db.execute(sql, params).fetchall()
        assets: dict[int, list[RenditionAsset]] = {}
        if rows and renditions:
            ids = [row["id"] for row in rows]
            # One query for all assets; chunked to stay under SQLite's variable limit.
            for start in range(0, len(ids), 30000):
                chunk = ids[start : start + 30000]
                marks = ",".join("?" * len(chunk))
                for a in self._db.execute(
                    f"SELECT * FROM assets WHERE meme_id IN ({marks}) ORDER BY meme_id, rowid",
                    chunk,
                ):
                    assets.setdefault(a["meme_id"], []).append(
                        RenditionAsset(
                            name=a["name"],
                            key=a["key"],
                            width=a["width"],
                            height=a["height"],
                            content_type=a["content_type"],
                            bytes=a["bytes"],
                            animated=bool(a["animated"]),
                        )
                    )
        return [self._row_to_meme(row, assets.get(row["id"], ())) for row in rows]

    def add(self, new: NewMeme, *, now: datetime | None = None) -> Meme:
        """Insert one record with a fresh unique slug, in one transaction."""
        now = now or utcnow()
        base = make_slug_base(new.title, new.caption)
        with self.transaction() as db:
            existing = db.execute("SELECT slug FROM memes WHERE sha256=?", (new.sha256,)).fetchone()
            if existing:
                raise DuplicateError(f"duplicate of existing meme '{existing['slug']}'")
            slug = self._free_slug(db, base)
            cursor = db.execute(
                "INSERT INTO memes (slug, title, caption, alt, category, tags, credit, top_text,"
                " bottom_text, original_name, sha256, phash, ext, width, height, format, frames,"
                " added_at, publish_at, status, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,'queued',?)",
                (
                    slug, new.title, new.caption, new.alt, new.category, json.dumps(list(new.tags)),
                    new.credit, new.top_text, new.bottom_text, new.original_name, new.sha256,
                    new.phash, new.ext, new.width, new.height, new.format, new.frames, iso(now),
                    iso(new.publish_at), iso(now),
                ),
            )  # fmt: skip
            meme_id = cursor.lastrowid
        return self._memes("id=?", (meme_id,))[0]

    @staticmethod
    def _free_slug(db: sqlite3.Connection, base: str) -> str:
        taken = {
            row["slug"]
            for row in db.execute(
                "SELECT slug FROM memes WHERE slug=? OR slug LIKE ?", (base, base[:50] + "%-%")
            )
        }
        if base not in taken:
            return base
        # Suffixes are given in order, so with k alike slugs taken, -(k+1) is almost always
        # free: 10,000 memes titled alike cost linear, not quadratic, probing.
        n = len(taken) + 1
        while True:
            suffix = f"-{n}"
            candidate = base[: SLUG_MAX - len(suffix)].rstrip("-") + suffix
            if candidate not in taken:
                return candidate
            n += 1

    def find_by_sha(self, sha256: str) -> Meme | None:
        found = self._memes("sha256=?", (sha256,))
        return found[0] if found else None

    def phashes(self) -> list[tuple[str, str]]:
        """(slug, perceptual hash) of every meme, for near-duplicate checks."""
        return [
            (row["slug"], row["phash"])
            for row in self._db.execute("SELECT slug, phash FROM memes WHERE phash != ''")
        ]

    def get(self, slug: str) -> Meme:
        found = self._memes("slug=?", (slug,))
        if not found:
            raise NotFoundError(f"meme '{slug}': no such slug")
        return found[0]

    def list(self, status: str | None = None, *, renditions: bool = True) -> list[Meme]:
        if status in (None, "all"):
            return self._memes("1", order="added_at, id", renditions=renditions)
        return self._memes("status=?", (status,), order="added_at, id", renditions=renditions)

    def count(self, status: str | None = None) -> int:
        if status in (None, "all"):
            return self._db.execute("SELECT COUNT(*) FROM memes").fetchone()[0]
        return self._db.execute("SELECT COUNT(*) FROM memes WHERE status=?", (status,)).fetchone()[
            0
        ]

    def due(self, now: datetime | None = None, limit: int | None = None) -> list[Meme]:
        """Queued memes whose publish_at has come, oldest first."""
        return self._memes("status='queued' AND publish_at<=?", [iso(now or utcnow())],
                           order="publish_at, id", limit=limit)  # fmt: skip

    def published(self) -> list[Meme]:
        """Every published meme with its renditions, oldest first (publish order)."""
        return self._memes("status='published'", order="published_at, publish_at, id")

    def ever_published(self) -> list[Meme]:
        """Published memes plus removed ones that had been published (the gallery keeps their
        places as holes so its pages stay stable), oldest first."""
        return self._memes(
            "published_at IS NOT NULL AND status IN ('published', 'removed')",
            order="published_at, publish_at, id",
        )

    def by_slugs(self, slugs: Iterable[str]) -> list[Meme]:
        wanted = list(slugs)
        if not wanted:
            return []
        found = {m.slug: m for m in self._memes(f"slug IN ({','.join('?' * len(wanted))})", wanted)}
        return [found[s] for s in wanted if s in found]

    def edit(self, slug: str, **changes: Any) -> Meme:
        """Change editable fields; the slug never changes. A published meme's edit bumps the
        generation so the next publish carries it to the index."""
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
        values = {k: v for k, v in changes.items() if v is not None}
        if not values:
            return self.get(slug)
        if "tags" in values:
            values["tags"] = json.dumps(list(values["tags"]))
        if "publish_at" in values:
            values["publish_at"] = iso(values["publish_at"])
        values["updated_at"] = iso(utcnow())
        with self.transaction() as db:
            row = db.execute("SELECT status FROM memes WHERE slug=?", (slug,)).fetchone()
            if row is None:
                raise NotFoundError(f"meme '{slug}': no such slug")
            assignments = ", ".join(f"{k}=?" for k in values)
            db.execute(f"UPDATE memes SET {assignments} WHERE slug=?", [*values.values(), slug])
            if row["status"] == "published":
                self._bump_generation(db)
        return self.get(slug)

    def set_renditions(
        self,
        slug: str,
        assets: Sequence[RenditionAsset],
        placeholder_color: str,
        blurhash: str,
    ) -> None:
        """Record what a render produced for a meme (replacing any earlier set)."""
        with self.transaction() as db:
            row = db.execute("SELECT id FROM memes WHERE slug=?", (slug,)).fetchone()
            if row is None:
                raise NotFoundError(f"meme '{slug}': no such slug")
            db.execute("DELETE FROM assets WHERE meme_id=?", (row["id"],))
            db.executemany(
                "INSERT INTO assets VALUES (?,?,?,?,?,?,?,?)",
                [
                    (row["id"], a.name, a.key, a.width, a.height, a.content_type, a.bytes,
                     int(a.animated))
                    for a in assets
                ],
            )  # fmt: skip
            db.execute(
                "UPDATE memes SET placeholder_color=?, blurhash=? WHERE id=?",
                (placeholder_color, blurhash, row["id"]),
            )

    def mark_published(self, slugs: Sequence[str], when: datetime | None = None) -> None:
        """Queued -> published for all of them in one transaction (one shared published_at;
        within it, queue order breaks the tie)."""
        when = when or utcnow()
        with self.transaction() as db:
            for slug in slugs:
                db.execute(
                    "UPDATE memes SET status='published', published_at=? "
                    "WHERE slug=? AND status='queued'",
                    (iso(when), slug),
                )
            self._bump_generation(db)

    def mark_removed(self, slug: str) -> Meme:
        with self.transaction() as db:
            row = db.execute("SELECT id, status FROM memes WHERE slug=?", (slug,)).fetchone()
            if row is None:
                raise NotFoundError(f"meme '{slug}': no such slug")
            db.execute(
                "UPDATE memes SET status='removed', updated_at=? WHERE id=?",
                (iso(utcnow()), row["id"]),
            )
            if row["status"] == "published":
                self._bump_generation(db)
        return self.get(slug)

    def purge_original(self, meme: Meme) -> None:
        """Delete a removed meme's original file (`memes remove --purge`)."""
        if meme.status != "removed":
            raise MemesError(f"meme '{meme.slug}': only a removed meme's original can be purged")
        self.original_path(meme).unlink(missing_ok=True)

    # --- publish journal -----------------------------------------------------------------

    def open_run(self) -> PublishRun | None:
        """The unfinished publish run, if a previous run died before finishing."""
        row = self._db.execute(
            "SELECT * FROM publish_runs WHERE finished_at IS NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return PublishRun(
            id=row["id"],
            started_at=parse_iso(row["started_at"]),
            pid=row["pid"],
            slugs=tuple(json.loads(row["slugs"])),
            step=row["step"],
        )

    def begin_run(self, slugs: Sequence[str]) -> PublishRun:
        with self.transaction() as db:
            now = iso(utcnow())
            cursor = db.execute(
                "INSERT INTO publish_runs (started_at, pid, slugs, step) VALUES (?,?,?,?)",
                (now, os.getpid(), json.dumps(list(slugs)), "started"),
            )
            run_id = cursor.lastrowid
        return PublishRun(run_id, parse_iso(now), os.getpid(), tuple(slugs), "started")

    def run_step(self, run_id: int, step: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE publish_runs SET step=? WHERE id=?", (step, run_id))

    def finish_run(self, run_id: int) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE publish_runs SET step='done', finished_at=? WHERE id=?",
                (iso(utcnow()), run_id),
            )

    # --- newsletter editions -------------------------------------------------------------

    def _row_to_edition(self, row: sqlite3.Row) -> Edition:
        return Edition(
            kind=row["kind"],
            number=row["number"],
            status=row["status"],
            subject=row["subject"],
            message_id=row["message_id"],
            slugs=tuple(json.loads(row["slugs"])),
            created_at=parse_iso(row["created_at"]),
            sent_at=parse_iso(row["sent_at"]) if row["sent_at"] else None,
        )

    def editions(self, kind: str | None = None) -> list[Edition]:
        if kind is None:
            rows = self._db.execute("SELECT * FROM editions ORDER BY created_at, kind, number")
        else:
            rows = self._db.execute("SELECT * FROM editions WHERE kind=? ORDER BY number", (kind,))
        return [self._row_to_edition(row) for row in rows]

    def featured_slugs(self) -> set[str]:
        """Slugs already featured (or in doubt) in a regular edition."""
        featured: set[str] = set()
        for edition in self.editions("regular"):
            featured.update(edition.slugs)
        return featured

    def unfeatured_published(self) -> list[Meme]:
        """Published memes not yet in any regular edition, oldest first."""
        featured = self.featured_slugs()
        return [m for m in self.published() if m.slug not in featured]

    def begin_edition(self, kind: str, slugs: Sequence[str], subject: str, message_id: str,
                      number: int | None = None) -> Edition:  # fmt: skip
        """Record an edition as 'sending' before the mail goes out (exactly-once: a run that
        dies after handing it over leaves it in doubt, never silently re-sent)."""
        with self.transaction() as db:
            if number is None:
                row = db.execute(
                    "SELECT COALESCE(MAX(number), 0) + 1 AS n FROM editions WHERE kind=?", (kind,)
                ).fetchone()
                number = row["n"]
            db.execute(
                "INSERT INTO editions VALUES (?,?,?,?,?,?,?,NULL)",
                (kind, number, "sending", subject, message_id, json.dumps(list(slugs)),
                 iso(utcnow())),
            )  # fmt: skip
        return self.edition(kind, number)

    def edition(self, kind: str, number: int) -> Edition:
        row = self._db.execute(
            "SELECT * FROM editions WHERE kind=? AND number=?", (kind, number)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"{kind} edition {number}: no such edition")
        return self._row_to_edition(row)

    def finish_edition(self, kind: str, number: int) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE editions SET status='sent', sent_at=? WHERE kind=? AND number=?",
                (iso(utcnow()), kind, number),
            )

    def abandon_edition(self, kind: str, number: int) -> None:
        """Delivery failed for certain (nothing handed over): forget it so it is due again."""
        with self.transaction() as db:
            db.execute(
                "DELETE FROM editions WHERE kind=? AND number=? AND status='sending'",
                (kind, number),
            )

    def editions_in_doubt(self) -> list[Edition]:
        return [e for e in self.editions() if e.status == "sending"]

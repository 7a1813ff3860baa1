"""The catalog (memes/): Meme records, slugs, status, the publish journal and editions.

The only module that writes the catalog. It is a SQLite database in WAL mode
(``memes/catalog.sqlite``) beside the originals, stored by content hash and never modified
(``memes/originals/ab/<sha256>.<ext>``). Every change is one transaction, so a cron publish
and two staff members can touch it at once, and a kill -9 at any moment leaves either the
whole change or none of it.
"""

from __future__ import annotations

import difflib
import json
import os
import secrets
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_type_hints, overload

from slugify import slugify

from pipeline.errors import (
    CatalogMissingError,
    IngestError,
    LockedError,
    MemesError,
    NotFoundError,
    UsageError,
)
from pipeline.files import write_atomic

if TYPE_CHECKING:  # templates draw with Pillow and fonts: imported where a template is used,
    # so the commands that touch none (list, show, newsletter status...) start without them
    from pipeline.meme_templates import Template, TextBox

# 2: editions carry their note and images; 3: one image, many memes (sha256 not unique) and
# templates
SCHEMA_VERSION = 3
SLUG_MAX = 60
STATUSES = ("queued", "published", "removed", "failed")
PURGED = "purged-"  # a purged meme's sha256 gets this prefix: its bytes may be added anew
ROLES = ("editor", "admin")
SESSION_KEY_FILE = "studio.key"  # the studio's session signing key, mode 0600
# A meme needs its template while it is not removed and has no copy of the boxes of its own
# (`memes template remove --keep-copies`): the one rule for "in use" and for refusing a removal.
NEEDS_TEMPLATE = "status != 'removed' AND own_boxes = ''"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
{memes_table}
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
CREATE TABLE IF NOT EXISTS templates (
    name TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    ext TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    boxes TEXT NOT NULL,
    licence TEXT NOT NULL DEFAULT '',
    credit TEXT NOT NULL DEFAULT '',
    added_at TEXT NOT NULL
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
    note TEXT NOT NULL DEFAULT '',
    images TEXT NOT NULL DEFAULT '[]',
    archived INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, number)
);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS login_failures (
    key TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_key ON login_failures (key, at);
"""


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime) -> str:
    """UTC ISO 8601 with a Z, second precision: sorts as text and reads in every language."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str, zone: tzinfo = UTC) -> datetime:
    """Parse an ISO 8601 date or date-time, in UTC; a value without an offset is a wall-clock
    time in ``zone`` (the config's site.timezone for what people type)."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def local_text(moment: datetime, zone: tzinfo) -> str:
    """A time as people read it: wall clock in ``zone`` with the zone's abbreviation."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


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


# --- a meme's fields, declared once -------------------------------------------------------
#
# The dataclasses below are the one declaration of a meme's fields. Each field's type says how
# it is stored and shown (see _codec); its metadata (``meta(...)``) says what else it is: its
# column's SQL, its key in `--json` output (or none), whether the public gallery object carries
# it and whether `memes edit` may change it. The catalog's columns (and the migration that
# adds a new one), the row mapping, `as_dict` and `gallery.meme_object` are all derived from
# them, so a new field is one edit here.


def meta(*, sql: str | None = None, json: str | None | bool = True, public: bool = False,
         editable: bool = False) -> dict[str, Any]:  # fmt: skip
    """Field metadata: ``sql`` the column definition after its name (default: from the type),
    ``json`` its key in `--json` output (True: the field's name, None: not shown), ``public``
    in the gallery's meme object, ``editable`` by `memes edit`."""
    return {"memes": {"sql": sql, "json": json, "public": public, "editable": editable}}


NOT_A_COLUMN = {"memes": {"column": False}}


@dataclass(frozen=True, kw_only=True)
class MemeFields:
    """What staff type for a meme (CLI options, a manifest row, an edit). Empty values are
    filled by ingest: ``alt`` from the caption and overlay text, ``category`` with the first
    configured one, ``publish_at`` with now."""

    title: str = field(default="", metadata=meta(public=True, editable=True))
    caption: str = field(default="", metadata=meta(sql="TEXT NOT NULL", public=True,
                                                   editable=True))  # fmt: skip
    alt: str = field(default="", metadata=meta(sql="TEXT NOT NULL", public=True, editable=True))
    category: str = field(default="", metadata=meta(sql="TEXT NOT NULL", public=True,
                                                    editable=True))  # fmt: skip
    tags: tuple[str, ...] = field(default=(), metadata=meta(public=True, editable=True))
    credit: str = field(default="", metadata=meta(public=True, editable=True))
    top_text: str = field(default="", metadata=meta(json="top", editable=True))
    bottom_text: str = field(default="", metadata=meta(json="bottom", editable=True))
    # A template's name and its box texts in box order (a classic meme: None and (), its
    # words in top_text and bottom_text); see Meme.box_texts.
    template: str | None = field(default=None, metadata=meta(public=True))
    texts: tuple[str, ...] = field(default=(), metadata=meta(editable=True))
    publish_at: datetime | None = field(default=None, metadata=meta(sql="TEXT NOT NULL",
                                                                    editable=True))  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Inspection:
    """What the content check learned about a file (picklable, from a worker process)."""

    sha256: str = field(metadata=meta(sql="TEXT NOT NULL"))  # one image, many memes
    phash: str = field(metadata=meta(json=None))
    format: str = field(metadata=meta(sql="TEXT NOT NULL"))
    ext: str = field(metadata=meta(sql="TEXT NOT NULL", json=None))
    width: int = field(metadata=meta(public=True))
    height: int = field(metadata=meta(public=True))
    frames: int = field(default=1, metadata=meta(sql="INTEGER NOT NULL DEFAULT 1"))


@dataclass(frozen=True, kw_only=True)
class NewMeme(Inspection, MemeFields):
    """What ingest hands the library: checked fields and an original already stored by hash."""

    original_name: str = field(metadata=meta(sql="TEXT NOT NULL"))
    # Staff typed the alt (1), or it follows the caption and overlay text (0); NULL: a meme
    # from before this was recorded.
    alt_explicit: int | None = field(default=None, metadata=meta(sql="INTEGER", json=None,
                                                                 editable=True))  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Meme(NewMeme):
    """A meme as the catalog records it."""

    id: int = field(metadata=meta(sql="INTEGER PRIMARY KEY", json=None))
    slug: str = field(metadata=meta(sql="TEXT NOT NULL UNIQUE", public=True))
    publish_at: datetime = field(metadata=meta(sql="TEXT NOT NULL", editable=True))
    added_at: datetime
    status: str = field(metadata=meta(sql="TEXT NOT NULL DEFAULT 'queued'"))
    published_at: datetime | None = field(default=None, metadata=meta(public=True))
    updated_at: datetime = field(metadata=meta(json=None))
    placeholder_color: str = field(default="", metadata=meta(json=None))
    blurhash: str = field(default="", metadata=meta(json=None))
    renditions: tuple[RenditionAsset, ...] = field(default=(), metadata=NOT_A_COLUMN)
    # What the recorded renditions were made from (publish.render_key): another key, another
    # render under new names.
    render_key: str = field(default="", metadata=meta(json=None))
    # Why it could not be rendered: a 'failed' meme's reason, or a published meme's whose
    # latest render (after an edit or a settings change) failed, so its old renditions stay
    # live; `failed_key` is the render key of those inputs, which are not tried again.
    failure: str = field(default="")
    failed_key: str = field(default="", metadata=meta(json=None))
    # Its own copy of its template's boxes (JSON), made when the template was removed
    # (`memes template remove NAME --keep-copies`, or while it was removed); '' = the template's.
    own_boxes: str = field(default="", metadata=meta(json=None))

    @property
    def animated(self) -> bool:
        return self.frames > 1

    @property
    def original_relpath(self) -> str:
        return original_relpath(self.sha256, self.ext)

    @property
    def box_texts(self) -> tuple[str, ...]:
        """The texts of its boxes in box (reading) order: a template's, else top and bottom."""
        return self.texts if self.template else (self.top_text, self.bottom_text)

    def as_dict(self) -> dict[str, Any]:
        """Plain-data view for `--json` output (times in UTC ISO 8601 with a Z)."""
        return {c.json: c.to_json(getattr(self, c.name)) for c in MEME_COLUMNS if c.json}

    def public_fields(self) -> dict[str, Any]:
        """The fields the public gallery object carries, as plain data."""
        return {c.name: c.to_json(getattr(self, c.name)) for c in MEME_COLUMNS if c.public}


@dataclass(frozen=True)
class Column:
    """One catalog column of a meme, derived from its dataclass field."""

    name: str
    type: Any  # the field's type, e.g. str, tuple[str, ...], datetime | None
    sql: str
    json: str | None
    public: bool
    editable: bool
    to_sql: Callable[[Any], Any]
    from_sql: Callable[[Any], Any]
    to_json: Callable[[Any], Any]


def field_values(record: Any, cls: type) -> dict[str, Any]:
    """The values of ``cls``'s fields in ``record`` (an instance of it or of a subclass), to
    build another of these dataclasses from."""
    return {f.name: getattr(record, f.name) for f in fields(cls)}


def _same(value: Any) -> Any:
    return value


def _iso_or_none(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None


def _parse_or_none(value: str | None) -> datetime | None:
    return parse_iso(value) if value else None


def _tags_to_sql(value: Sequence[str]) -> str:
    return json.dumps(list(value))


def _tags_from_sql(value: str) -> tuple[str, ...]:
    return tuple(json.loads(value))


# type -> (default column SQL, to SQL, from SQL, to JSON)
_CODECS: dict[Any, tuple[str, Callable[[Any], Any], Callable[[Any], Any], Callable[[Any], Any]]] = {
    str: ("TEXT NOT NULL DEFAULT ''", _same, _same, _same),
    int: ("INTEGER NOT NULL DEFAULT 0", _same, _same, _same),
    int | None: ("INTEGER", _same, _same, _same),
    tuple[str, ...]: ("TEXT NOT NULL DEFAULT '[]'", _tags_to_sql, _tags_from_sql, list),
    datetime: ("TEXT NOT NULL", iso, parse_iso, iso),
    datetime | None: ("TEXT", _iso_or_none, _parse_or_none, _iso_or_none),
    str | None: ("TEXT", _same, _same, _same),
}


def _columns(cls: type) -> tuple[Column, ...]:
    hints = get_type_hints(cls)
    columns = []
    for f in fields(cls):
        spec = f.metadata.get("memes", {})
        if spec.get("column", True) is False:
            continue
        sql, to_sql, from_sql, to_json = _CODECS[hints[f.name]]
        key = spec.get("json", True)
        columns.append(
            Column(
                name=f.name,
                type=hints[f.name],
                sql=spec.get("sql") or sql,
                json=f.name if key is True else key or None,
                public=spec.get("public", False),
                editable=spec.get("editable", False),
                to_sql=to_sql,
                from_sql=from_sql,
                to_json=to_json,
            )
        )
    # The record's identity first: the table's first columns, the first lines of `memes show`.
    return tuple(sorted(columns, key=lambda c: (c.name != "id", c.name != "slug")))


MEME_COLUMNS = _columns(Meme)  # every column of the memes table
NEW_MEME_COLUMNS = _columns(NewMeme)  # what an add supplies; the library sets the rest
MEME_FIELD_COLUMNS = _columns(MemeFields)  # what staff type
EDITABLE = tuple(c.name for c in MEME_COLUMNS if c.editable)
_MEMES_TABLE = "CREATE TABLE IF NOT EXISTS memes (\n    {}\n)".format(
    ",\n    ".join(f"{c.name} {c.sql}" for c in MEME_COLUMNS)
)

@dataclass(frozen=True)
class PublishRun:
    id: int
    started_at: datetime
    pid: int
    slugs: tuple[str, ...]
    step: str


#: An edition's life: recorded ('preparing': certainly not delivered while it lasts), the
#: message transfer began ('sending': in doubt if the run died), delivered ('sent').
EDITION_STATUSES = ("preparing", "sending", "sent")


@dataclass(frozen=True)
class Edition:
    kind: str  # "regular" | "special"
    number: int
    status: str  # one of EDITION_STATUSES
    subject: str
    message_id: str
    slugs: tuple[str, ...]
    created_at: datetime
    sent_at: datetime | None
    note: str = ""  # the extra text block (regular) or body (special) it was sent with
    images: tuple[str, ...] = ()  # rendition keys its email points at (kept by gc forever)
    archived: bool = False  # its archive page went up after it was sent


@dataclass(frozen=True)
class User:
    """A studio account; the password is kept only as its argon2id hash."""

    name: str
    role: str  # "editor" | "admin"
    password_hash: str
    created_at: datetime


def original_relpath(sha256: str, ext: str) -> str:
    """Where an original lives in the library folder: by its hash, fanned out by 2 digits."""
    return f"originals/{sha256[:2]}/{sha256}.{ext}"


def write_original(library_root: Path, data: bytes, sha256: str, ext: str) -> Path:
    """Write an original under its hash, atomically (temp file + rename); idempotent, and safe
    from several processes at once (ingest workers store what they checked)."""
    target = library_root / original_relpath(sha256, ext)
    return target if target.exists() else write_atomic(target, data)


class DuplicateError(IngestError):
    """The same image with the same texts is in the library already; the message names the
    existing slug."""

    def __init__(self, message: str, slug: str = ""):
        super().__init__(message)
        self.slug = slug


def normal_texts(texts: Sequence[str]) -> tuple[str, ...]:
    """Box texts as stored: trimmed, without the empty boxes at the end."""
    out = [t.strip() for t in texts]
    while out and not out[-1]:
        out.pop()
    return tuple(out)


# A meme is its image plus its texts: the same image with other texts is another meme.
_CONTENT_INDEX = (
    "CREATE UNIQUE INDEX IF NOT EXISTS memes_content "
    "ON memes (sha256, COALESCE(template, ''), texts, top_text, bottom_text)"
)
_SAME_CONTENT = (
    "sha256=? AND COALESCE(template, '')=COALESCE(?, '') AND texts=? AND top_text=? "
    "AND bottom_text=?"
)


def _refuse_lost_catalog(root: Path, catalog: Path) -> None:
    """A missing or empty catalog beside stored originals is a lost catalog, never a new
    library (SQLite would happily open an empty file as one)."""
    try:
        empty = catalog.stat().st_size == 0
    except FileNotFoundError:
        empty = True
    if not empty:
        return
    originals = root / "originals"
    if originals.is_dir() and any(p.is_file() for p in originals.rglob("*")):
        raise CatalogMissingError(
            f"{catalog}: catalog missing or empty while {originals} holds originals; "
            "restore catalog.sqlite from a backup"
        )


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


def _migrate_editions(db: sqlite3.Connection) -> None:
    """Schema 1 -> 2: an edition's note and emailed image keys move from the meta table into
    its own columns (idempotent: only what is missing is added or moved)."""
    columns = {row["name"] for row in db.execute("PRAGMA table_info(editions)")}
    for name, declaration in (
        ("note", "TEXT NOT NULL DEFAULT ''"),
        ("images", "TEXT NOT NULL DEFAULT '[]'"),
        ("archived", "INTEGER NOT NULL DEFAULT 0"),
    ):
        if name not in columns:
            db.execute(f"ALTER TABLE editions ADD COLUMN {name} {declaration}")
    moved = db.execute(
        "SELECT key, value FROM meta WHERE key LIKE 'newsletter.note.%' "
        "OR key LIKE 'newsletter.images.%'"
    ).fetchall()
    for row in moved:
        _, field_name, kind, number = row["key"].split(".", 3)
        column = "note" if field_name == "note" else "images"
        db.execute(
            f"UPDATE editions SET {column}=? WHERE kind=? AND number=?",
            (row["value"], kind, int(number)),
        )
        db.execute("DELETE FROM meta WHERE key=?", (row["key"],))


class Library:
    """The meme library folder: catalog.sqlite plus content-addressed originals."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.catalog_path = self.root / "catalog.sqlite"
        _refuse_lost_catalog(self.root, self.catalog_path)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / "originals").mkdir(exist_ok=True)
        except OSError as exc:
            raise MemesError(f"library {self.root}: cannot create it ({exc.strerror})") from None
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
        # Rebuilding the memes table (schema 2 -> 3) needs foreign keys off, which SQLite
        # only allows outside a transaction.
        self._db.execute("PRAGMA foreign_keys=OFF")
        try:
            self._migrate_schema()
        finally:
            self._db.execute("PRAGMA foreign_keys=ON")

    def _migrate_schema(self) -> None:
        with self.transaction() as db:
            for statement in _SCHEMA.replace("{memes_table}", _MEMES_TABLE + ";").split(";"):
                if statement.strip():
                    db.execute(statement)
            # A field added to the dataclasses since this catalog was made: its column.
            have = {row["name"] for row in db.execute("PRAGMA table_info(memes)")}
            for column in MEME_COLUMNS:
                if column.name not in have:
                    db.execute(f"ALTER TABLE memes ADD COLUMN {column.name} {column.sql}")
            table = db.execute("SELECT sql FROM sqlite_master WHERE name='memes'").fetchone()
            if "sha256 TEXT NOT NULL UNIQUE" in table["sql"]:  # schema 1: one meme per image
                names = ", ".join(c.name for c in MEME_COLUMNS)
                db.execute(_MEMES_TABLE.replace(" memes ", " memes_v2 "))
                db.execute(f"INSERT INTO memes_v2 ({names}) SELECT {names} FROM memes")
                db.execute("DROP TABLE memes")
                db.execute("ALTER TABLE memes_v2 RENAME TO memes")
                db.execute("CREATE INDEX memes_status ON memes (status, publish_at, id)")
            db.execute(_CONTENT_INDEX)
            # Made with the catalog (or at the first open of an older one); the storage
            # manifest records it, so no other library publishes over this one's storage.
            db.execute("INSERT OR IGNORE INTO meta VALUES ('library_id', ?)", (uuid.uuid4().hex,))
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row["value"]) > SCHEMA_VERSION:
                raise MemesError(
                    f"{self.catalog_path}: catalog schema {row['value']} is newer than this "
                    f"memes ({SCHEMA_VERSION}); upgrade memes"
                )
            else:
                _migrate_editions(db)
                db.execute(
                    "UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),)
                )

    @overload
    def get_meta(self, key: str) -> str | None: ...
    @overload
    def get_meta(self, key: str, default: str) -> str: ...
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
    def library_id(self) -> str:
        """This library's random id, made with its catalog."""
        return str(self.get_meta("library_id"))

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation", "0") or 0)

    # --- originals -----------------------------------------------------------------------

    def original_path(self, meme: Meme) -> Path:
        return self.root / meme.original_relpath

    # --- records -------------------------------------------------------------------------

    def _row_to_meme(self, row: sqlite3.Row, assets: Sequence[RenditionAsset] = ()) -> Meme:
        values = {c.name: c.from_sql(row[c.name]) for c in MEME_COLUMNS}
        return Meme(**values, renditions=tuple(assets))

    def _select(
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
        values = {c.name: c.to_sql(getattr(new, c.name)) for c in NEW_MEME_COLUMNS}
        values.update(publish_at=iso(new.publish_at or now), added_at=iso(now),
                      updated_at=iso(now), status="queued")  # fmt: skip
        with self.transaction() as db:
            existing = db.execute(
                f"SELECT slug, status FROM memes WHERE {_SAME_CONTENT}",
                (new.sha256, new.template, values["texts"], new.top_text, new.bottom_text),
            ).fetchone()
            if existing and existing["status"] == "removed":
                raise DuplicateError(
                    f"meme '{existing['slug']}' with these bytes was removed; "
                    f"`memes restore {existing['slug']}` brings it back",
                    existing["slug"],
                )
            if existing:
                raise DuplicateError(
                    f"duplicate of existing meme '{existing['slug']}'", existing["slug"]
                )
            values["slug"] = self._free_slug(db, base)
            meme_id = db.execute(
                f"INSERT INTO memes ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})"
                " RETURNING id",
                list(values.values()),
            ).fetchone()[0]
        return self._select("id=?", (meme_id,))[0]

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

    def _no_such_slug(self, slug: str) -> NotFoundError:
        """The error for a slug not in the catalog, suggesting the closest ones."""
        slugs = [row["slug"] for row in self._db.execute("SELECT slug FROM memes")]
        close = difflib.get_close_matches(slug, slugs, n=3)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        return NotFoundError(f"meme '{slug}': no such slug{hint}")

    def find_by_sha(self, sha256: str) -> Meme | None:
        found = self._select("sha256=?", (sha256,))
        return found[0] if found else None

    def phashes(self) -> list[tuple[str, str, str, str | None]]:
        """(slug, perceptual hash, sha256, template) of every meme, for near-duplicate checks
        (memes of the same image or template are not near duplicates of each other)."""
        return [
            (row["slug"], row["phash"], row["sha256"], row["template"])
            for row in self._db.execute(
                "SELECT slug, phash, sha256, template FROM memes WHERE phash != ''"
            )
        ]

    def get(self, slug: str) -> Meme:
        found = self._select("slug=?", (slug,))
        if not found:
            raise self._no_such_slug(slug)
        return found[0]

    def memes(self, status: str | None = None, *, renditions: bool = True) -> list[Meme]:
        """Every meme (or those with this status), in the order they were added. 'failed'
        also takes the published memes whose latest render failed (their old renditions
        are live)."""
        if status in (None, "all"):
            return self._select("1", order="added_at, id", renditions=renditions)
        if status == "failed":
            return self._select("status='failed' OR (status='published' AND failure != '')",
                                order="added_at, id", renditions=renditions)  # fmt: skip
        return self._select("status=?", (status,), order="added_at, id", renditions=renditions)

    def count(self, status: str | None = None) -> int:
        if status in (None, "all"):
            return self._db.execute("SELECT COUNT(*) FROM memes").fetchone()[0]
        return self._db.execute("SELECT COUNT(*) FROM memes WHERE status=?", (status,)).fetchone()[
            0
        ]

    def due(self, now: datetime | None = None, limit: int | None = None) -> list[Meme]:
        """Queued memes whose publish_at has come, oldest first."""
        return self._select("status='queued' AND publish_at<=?", [iso(now or utcnow())],
                           order="publish_at, id", limit=limit)  # fmt: skip

    def published(self) -> list[Meme]:
        """Every published meme with its renditions, oldest first (publish order)."""
        return self._select("status='published'", order="published_at, publish_at, id")

    def ever_published(self) -> list[Meme]:
        """Published memes plus removed ones that had been published (the gallery keeps their
        places as holes so its pages stay stable), oldest first."""
        return self._select(
            "published_at IS NOT NULL AND status IN ('published', 'removed')",
            order="published_at, publish_at, id",
        )

    def by_slugs(self, slugs: Iterable[str]) -> list[Meme]:
        wanted = list(slugs)
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        found = {m.slug: m for m in self._select(f"slug IN ({marks})", wanted)}
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
        columns = {c.name: c for c in MEME_COLUMNS}
        values = {k: columns[k].to_sql(v) for k, v in values.items()}
        values["updated_at"] = iso(utcnow())
        with self.transaction() as db:
            row = db.execute("SELECT status FROM memes WHERE slug=?", (slug,)).fetchone()
            if row is None:
                raise self._no_such_slug(slug)
            assignments = ", ".join(f"{k}=?" for k in values)
            try:
                db.execute(f"UPDATE memes SET {assignments} WHERE slug=?", [*values.values(), slug])
            except sqlite3.IntegrityError:
                twin = self._twin(db, slug, values)
                raise DuplicateError(
                    f"meme '{slug}': these texts would make it a duplicate of meme '{twin}'"
                ) from None
            if row["status"] == "published":
                self._bump_generation(db)
        return self.get(slug)

    def set_renditions(
        self,
        slug: str,
        assets: Sequence[RenditionAsset],
        placeholder_color: str,
        blurhash: str,
        render_key: str = "",
    ) -> None:
        """Record what a render produced for a meme (replacing any earlier set) and the key of
        what it was rendered from, so a change of any render input renders it again; an
        earlier render failure is over."""
        with self.transaction() as db:
            row = db.execute("SELECT id FROM memes WHERE slug=?", (slug,)).fetchone()
            if row is None:
                raise self._no_such_slug(slug)
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
                "UPDATE memes SET placeholder_color=?, blurhash=?, render_key=?, failure='', "
                "failed_key='' WHERE id=?",
                (placeholder_color, blurhash, render_key, row["id"]),
            )

    def mark_published(self, slugs: Sequence[str], when: datetime | None = None) -> None:
        """Queued -> published for all of them in one transaction (one shared published_at;
        within it, queue order breaks the tie). A restored meme keeps its first published_at,
        so it returns to its old place."""
        when = when or utcnow()
        with self.transaction() as db:
            for slug in slugs:
                db.execute(
                    "UPDATE memes SET status='published', published_at=COALESCE(published_at, ?) "
                    "WHERE slug=? AND status='queued'",
                    (iso(when), slug),
                )
            self._bump_generation(db)

    def mark_removed(self, slug: str) -> Meme:
        with self.transaction() as db:
            row = db.execute("SELECT id, status FROM memes WHERE slug=?", (slug,)).fetchone()
            if row is None:
                raise self._no_such_slug(slug)
            db.execute(
                "UPDATE memes SET status='removed', updated_at=? WHERE id=?",
                (iso(utcnow()), row["id"]),
            )
            if row["status"] == "published":
                self._bump_generation(db)
        return self.get(slug)

    def purge_original(self, meme: Meme) -> None:
        """Delete a removed meme's original file (`memes remove --purge`); the record stays
        (its slug is never given again) but no longer holds its bytes, so adding the same file
        later makes a new meme."""
        if meme.status != "removed":
            raise MemesError(f"meme '{meme.slug}': only a removed meme's original can be purged")
        shared = self._db.execute(
            "SELECT (SELECT COUNT(*) FROM memes WHERE sha256=? AND id != ?)"
            " + (SELECT COUNT(*) FROM templates WHERE sha256=?)",
            (meme.sha256, meme.id, meme.sha256),
        ).fetchone()[0]
        if not shared:  # the original is stored once however many memes use it
            self.original_path(meme).unlink(missing_ok=True)
        if not meme.sha256.startswith(PURGED):
            with self.transaction() as db:
                db.execute(
                    "UPDATE memes SET sha256=?, phash='', updated_at=? WHERE id=?",
                    (f"{PURGED}{meme.id}-{meme.sha256}", iso(utcnow()), meme.id),
                )

    @staticmethod
    def _twin(db: sqlite3.Connection, slug: str, values: dict[str, Any]) -> str:
        """The slug of the meme an edit of ``slug`` to ``values`` would duplicate."""
        row = dict(db.execute("SELECT * FROM memes WHERE slug=?", (slug,)).fetchone())
        row.update(values)
        twin = db.execute(
            f"SELECT slug FROM memes WHERE {_SAME_CONTENT} AND slug != ?",
            (row["sha256"], row["template"], row["texts"], row["top_text"], row["bottom_text"],
             slug),
        ).fetchone()  # fmt: skip
        return twin["slug"] if twin else "?"

    # --- templates -----------------------------------------------------------------------

    def templates(self) -> list[Template]:
        """The bundled starter templates, then this library's, by name."""
        from pipeline import meme_templates

        rows = self._db.execute("SELECT * FROM templates ORDER BY name").fetchall()
        return [*meme_templates.starters(), *(self._row_to_template(r) for r in rows)]

    def template(self, name: str) -> Template:
        from pipeline import meme_templates

        found = meme_templates.starter(name)
        if found is not None:
            return found
        row = self._db.execute("SELECT * FROM templates WHERE name=?", (name,)).fetchone()
        if row is None:
            known = ", ".join(t.name for t in self.templates())
            raise NotFoundError(f"template '{name}': no such template (known: {known})")
        return self._row_to_template(row)

    def check_template_name(self, name: str, db: sqlite3.Connection | None = None) -> None:
        """UsageError if ``name`` is taken (by a bundled template or one of this library's)."""
        from pipeline import meme_templates

        if meme_templates.starter(name) is not None:
            raise UsageError(f"template '{name}': that is a bundled template's name")
        if (db or self._db).execute("SELECT 1 FROM templates WHERE name=?", (name,)).fetchone():
            raise UsageError(f"template '{name}': already exists")

    def add_template(self, template: Template) -> Template:
        """Record a template whose image is already stored under its hash (originals/)."""
        from pipeline import meme_templates

        with self.transaction() as db:
            self.check_template_name(template.name, db)
            db.execute(
                "INSERT INTO templates VALUES (?,?,?,?,?,?,?,?,?)",
                (template.name, template.sha256, template.ext, template.width, template.height,
                 meme_templates.boxes_to_json(template.boxes), template.licence,
                 template.credit, iso(utcnow())),
            )  # fmt: skip
        return self.template(template.name)

    def templates_in_use(self) -> set[str]:
        """The names of the templates that memes (other than removed ones) are drawn with;
        a meme with its own copy of the boxes needs its template no more."""
        return {r["template"] for r in self._db.execute(
            f"SELECT DISTINCT template FROM memes WHERE template IS NOT NULL AND {NEEDS_TEMPLATE}"
        )}  # fmt: skip

    def remove_template(self, name: str, *, keep_copies: bool = False) -> list[str]:
        """Forget a template; refused while memes need it (NEEDS_TEMPLATE: not removed, no
        copy of the boxes of their own), unless ``keep_copies``: then every meme made from it
        keeps its own copy of its boxes (its image is already its own original) and renders
        as before. Removed memes always keep a copy, so a restore still renders. Returns the
        slugs that took a copy."""
        from pipeline import meme_templates

        if meme_templates.starter(name) is not None:
            raise UsageError(f"template '{name}': a bundled template cannot be removed")
        with self.transaction() as db:
            row = db.execute("SELECT boxes FROM templates WHERE name=?", (name,)).fetchone()
            if row is None:
                raise NotFoundError(f"template '{name}': no such template")
            users = [r["slug"] for r in db.execute(
                f"SELECT slug FROM memes WHERE template=? AND {NEEDS_TEMPLATE} ORDER BY id", (name,)
            )]  # fmt: skip
            if users and not keep_copies:
                shown = ", ".join(users[:5]) + (f" and {len(users) - 5} more" if len(users) > 5
                                                 else "")  # fmt: skip
                raise UsageError(f"template '{name}': still used by {shown} (--keep-copies "
                                 "gives each its own copy of the boxes)")  # fmt: skip
            copied = [r["slug"] for r in db.execute(
                "SELECT slug FROM memes WHERE template=? AND own_boxes='' ORDER BY slug", (name,)
            )]  # fmt: skip
            db.execute("UPDATE memes SET own_boxes=? WHERE template=? AND own_boxes=''",
                       (row["boxes"], name))  # fmt: skip
            db.execute("DELETE FROM templates WHERE name=?", (name,))
        return copied

    def boxes_of(self, meme: Meme) -> tuple[TextBox, ...] | None:
        """The text boxes a meme is drawn with: its own copy, else its template's; None for
        the classic top and bottom layout."""
        from pipeline import meme_templates

        if meme.own_boxes:
            return meme_templates.boxes_from_json(meme.own_boxes)
        return self.template(meme.template).boxes if meme.template else None

    def template_path(self, template: Template) -> Path:
        """The template's image file (bundled, or in this library's originals)."""
        if template.image is not None:
            return template.image
        return self.root / original_relpath(template.sha256, template.ext)

    @staticmethod
    def _row_to_template(row: sqlite3.Row) -> Template:
        from pipeline import meme_templates

        return meme_templates.Template(
            name=row["name"], sha256=row["sha256"], ext=row["ext"], width=row["width"],
            height=row["height"], boxes=meme_templates.boxes_from_json(row["boxes"]),
            licence=row["licence"], credit=row["credit"],
        )  # fmt: skip

    def restore(self, slug: str) -> Meme:
        """A removed meme comes back to the queue; the next publish renders and uploads it
        again and, if it had been published, puts it back in its old place (its published_at
        is kept), so nothing names its images before they are in storage again. MemesError
        if it is not removed or its original was purged."""
        meme = self.get(slug)
        if meme.status != "removed":
            raise MemesError(f"meme '{slug}': not removed (it is {meme.status})")
        if meme.sha256.startswith(PURGED) or not self.original_path(meme).is_file():
            raise MemesError(f"meme '{slug}': its original was purged; add the file again")
        return self._requeue(meme, "removed")

    def mark_failed(self, failures: Sequence[tuple[str, str]]) -> None:
        """Queued memes that could not be rendered leave the queue with their reasons."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE memes SET status='failed', failure=?, updated_at=? "
                "WHERE slug=? AND status='queued'",
                [(reason, iso(utcnow()), slug) for slug, reason in failures],
            )

    def mark_render_failed(self, failures: Sequence[tuple[str, str, str]]) -> None:
        """Published memes whose new render failed, as (slug, reason, render key): they stay
        published with their old renditions, and the next publishes do not try those very
        inputs again (another edit or settings change, or `memes retry`, does)."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE memes SET failure=?, failed_key=? WHERE slug=? AND status='published'",
                [(reason, key, slug) for slug, reason, key in failures],
            )

    def retry(self, slug: str) -> Meme:
        """A failed meme is queued again (after a config change, say); a published meme
        whose latest render failed is rendered again at the next publish."""
        meme = self.get(slug)
        if meme.status == "published" and meme.failure:
            with self.transaction() as db:
                db.execute("UPDATE memes SET failure='', failed_key='' WHERE id=?", (meme.id,))
            return self.get(slug)
        if meme.status != "failed":
            raise MemesError(f"meme '{slug}': not failed (it is {meme.status})")
        return self._requeue(meme, "failed")

    def _requeue(self, meme: Meme, was: str) -> Meme:
        """Back to the queue from ``was`` ('removed': restore, 'failed': retry)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE memes SET status='queued', failure='', failed_key='', updated_at=? "
                "WHERE id=? AND status=?",
                (iso(utcnow()), meme.id, was),
            )
        return self.get(meme.slug)

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
            run_id = db.execute(
                "INSERT INTO publish_runs (started_at, pid, slugs, step) VALUES (?,?,?,?)"
                " RETURNING id",
                (now, os.getpid(), json.dumps(list(slugs)), "started"),
            ).fetchone()[0]
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
            note=row["note"],
            images=tuple(json.loads(row["images"])),
            archived=bool(row["archived"]),
        )

    def editions(self, kind: str | None = None) -> list[Edition]:
        if kind is None:
            rows = self._db.execute("SELECT * FROM editions ORDER BY created_at, kind, number")
        else:
            rows = self._db.execute("SELECT * FROM editions WHERE kind=? ORDER BY number", (kind,))
        return [self._row_to_edition(row) for row in rows]

    def featured_slugs(self) -> set[str]:
        """Slugs featured (or in doubt) in a regular edition whose transfer began."""
        featured: set[str] = set()
        for edition in self.editions("regular"):
            if edition.status != "preparing":
                featured.update(edition.slugs)
        return featured

    def unfeatured_published(self) -> list[Meme]:
        """Published memes not yet in any regular edition, oldest first."""
        featured = self.featured_slugs()
        return [m for m in self.published() if m.slug not in featured]

    def begin_edition(self, kind: str, number: int, slugs: Sequence[str], subject: str,
                      message_id: str, *, note: str = "",
                      images: Sequence[str] = ()) -> Edition:  # fmt: skip
        """Record an edition as 'preparing' before anything is handed to the server.

        Raises LockedError when another run recorded that number first."""
        try:
            with self.transaction() as db:
                db.execute(
                    "INSERT INTO editions (kind, number, status, subject, message_id, slugs,"
                    " created_at, note, images) VALUES (?,?,'preparing',?,?,?,?,?,?)",
                    (kind, number, subject, message_id, json.dumps(list(slugs)), iso(utcnow()),
                     note, json.dumps(sorted(set(images)))),
                )  # fmt: skip
        except sqlite3.IntegrityError:
            raise LockedError(f"{kind} edition #{number}: another run is sending it") from None
        return self.edition(kind, number)

    def edition(self, kind: str, number: int) -> Edition:
        row = self._db.execute(
            "SELECT * FROM editions WHERE kind=? AND number=?", (kind, number)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"{kind} edition {number}: no such edition")
        return self._row_to_edition(row)

    def _set_edition(self, kind: str, number: int, assignments: str, *values: Any) -> None:
        with self.transaction() as db:
            db.execute(
                f"UPDATE editions SET {assignments} WHERE kind=? AND number=?",
                (*values, kind, number),
            )

    def transfer_edition(self, kind: str, number: int) -> None:
        """The message transfer (SMTP DATA) begins: from now on a dead run leaves it in doubt."""
        self._set_edition(kind, number, "status='sending'")

    def finish_edition(self, kind: str, number: int) -> None:
        """The server accepted it (or its .eml is written): sent, never to be sent again."""
        self._set_edition(kind, number, "status='sent', sent_at=?", iso(utcnow()))

    def add_edition_images(self, kind: str, number: int, images: Iterable[str]) -> None:
        """A resumed edition points at these rendition keys too."""
        keys = set(self.edition(kind, number).images) | set(images)
        self._set_edition(kind, number, "images=?", json.dumps(sorted(keys)))

    def mark_archived(self, editions: Iterable[Edition]) -> None:
        """Their archive pages are in storage."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE editions SET archived=1 WHERE kind=? AND number=? AND status='sent'",
                [(e.kind, e.number) for e in editions],
            )

    def abandon_edition(self, kind: str, number: int) -> None:
        """Delivery failed for certain (nothing handed over): forget it so it is due again."""
        with self.transaction() as db:
            db.execute(
                "DELETE FROM editions WHERE kind=? AND number=? AND status!='sent'",
                (kind, number),
            )

    def editions_in_doubt(self) -> list[Edition]:
        return [e for e in self.editions() if e.status == "sending"]

    # --- studio accounts -----------------------------------------------------------------

    def _row_to_user(self, row: sqlite3.Row) -> User:
        return User(row["name"], row["role"], row["password_hash"], parse_iso(row["created_at"]))

    def users(self) -> list[User]:
        return [self._row_to_user(r) for r in self._db.execute("SELECT * FROM users ORDER BY name")]

    def user(self, name: str) -> User | None:
        row = self._db.execute("SELECT * FROM users WHERE name=?", (name,)).fetchone()
        return self._row_to_user(row) if row else None

    def add_user(self, name: str, role: str, password_hash: str) -> User:
        if role not in ROLES:
            raise UsageError(f"role '{role}': expected one of {', '.join(ROLES)}")
        now = iso(utcnow())
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM users WHERE name=?", (name,)).fetchone():
                raise UsageError(f"user '{name}': already exists")
            db.execute(
                "INSERT INTO users VALUES (?,?,?,?,?)", (name, role, password_hash, now, now)
            )
        return self._row_to_user(
            self._db.execute("SELECT * FROM users WHERE name=?", (name,)).fetchone()
        )

    def set_password(self, name: str, password_hash: str) -> None:
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE users SET password_hash=?, updated_at=? WHERE name=?",
                (password_hash, iso(utcnow()), name),
            )
            if cursor.rowcount == 0:
                raise NotFoundError(f"user '{name}': no such user")

    def remove_user(self, name: str) -> None:
        with self.transaction() as db:
            if db.execute("DELETE FROM users WHERE name=?", (name,)).rowcount == 0:
                raise NotFoundError(f"user '{name}': no such user")
            db.execute("DELETE FROM login_failures WHERE key=?", (f"user:{name}",))

    def login_failures(self, key: str, since: datetime) -> int:
        """Failed logins recorded for ``key`` (``user:NAME`` or ``addr:IP``) since a moment."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM login_failures WHERE key=? AND at>=?", (key, iso(since))
        ).fetchone()
        return int(row[0])

    def record_login_failure(self, keys: Sequence[str], now: datetime,
                             forget_before: datetime) -> None:  # fmt: skip
        """Note one failed login under each key; entries older than ``forget_before`` go."""
        with self.transaction() as db:
            db.execute("DELETE FROM login_failures WHERE at<?", (iso(forget_before),))
            db.executemany("INSERT INTO login_failures VALUES (?,?)",
                           [(key, iso(now)) for key in keys])  # fmt: skip

    def clear_login_failures(self, key: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM login_failures WHERE key=?", (key,))

    def session_key(self) -> bytes:
        """The studio's session signing key: made once, random, readable by the owner only
        (created with mode 0600, never widened); every studio process on this library shares
        it, so a restart keeps people signed in."""
        path = self.root / SESSION_KEY_FILE
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
                handle.flush()
                os.fsync(handle.fileno())
        deadline = time.monotonic() + 5
        while True:  # a studio starting at the same moment may be writing it
            key = path.read_bytes()
            if len(key) == 32 or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if len(key) != 32:
            raise MemesError(f"{path}: not a studio session key (delete it to make a new one)")
        return key

"""The catalog: records, unique stable slugs, one transaction per change."""

from __future__ import annotations

import dataclasses
import multiprocessing
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.errors import LockedError, NotFoundError, UsageError
from pipeline.library import SLUG_MAX, DuplicateError, Library, Meme, NewMeme, make_slug_base


def new_meme(n: int, title: str = "Hello World", **changes) -> NewMeme:
    fields = dict(
        title=title, caption=f"caption {n}", alt=f"alt {n}", category="funny", tags=("a",),
        credit="", original_name=f"{n}.png", sha256=f"{n:064x}", phash="", ext="png",
        width=10, height=10, format="PNG", frames=1,
        publish_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n),
    )  # fmt: skip
    fields.update(changes)
    return NewMeme(**fields)


@pytest.fixture
def library(tmp_path):
    with Library(tmp_path / "memes") as lib:
        yield lib


def test_slugs_are_unique_and_suffixed(library):
    slugs = [library.add(new_meme(n)).slug for n in range(3)]
    assert slugs == ["hello-world", "hello-world-2", "hello-world-3"]


def test_slug_comes_from_caption_when_no_title(library):
    assert library.add(new_meme(1, title="", caption="Ça marche? Oui!")).slug == "ca-marche-oui"


def test_slugs_are_at_most_60_chars_of_a_to_z_digits_and_dashes(library):
    long_title = "Über " * 40
    slugs = [library.add(new_meme(n, title=long_title)).slug for n in range(12)]
    assert len(set(slugs)) == 12
    for slug in slugs:
        assert len(slug) <= SLUG_MAX
        assert all(c.isdigit() or c == "-" or "a" <= c <= "z" for c in slug)


def test_emoji_only_title_still_gets_a_slug():
    assert make_slug_base("🙂🙂", "") == "meme"


def test_slug_never_changes_on_edit(library):
    meme = library.add(new_meme(1))
    edited = library.edit(meme.slug, title="Something else entirely", caption="new")
    assert edited.slug == meme.slug and edited.title == "Something else entirely"


def test_exact_duplicate_names_the_existing_slug(library):
    library.add(new_meme(1))
    with pytest.raises(DuplicateError, match="'hello-world'"):
        library.add(new_meme(1, title="Other"))


def test_due_is_oldest_first_and_respects_publish_at(library):
    for n in (3, 1, 2):
        library.add(new_meme(n, title=f"m{n}"))
    library.add(new_meme(9, title="later", publish_at=datetime(2030, 1, 1, tzinfo=UTC)))
    now = datetime(2027, 1, 1, tzinfo=UTC)
    assert [m.slug for m in library.due(now)] == ["m1", "m2", "m3"]
    assert [m.slug for m in library.due(now, limit=2)] == ["m1", "m2"]


def test_mark_published_and_removed(library):
    a, b = library.add(new_meme(1, title="a")), library.add(new_meme(2, title="b"))
    before = library.generation
    library.mark_published([a.slug, b.slug])
    assert [m.slug for m in library.published()] == ["a", "b"]
    assert library.generation == before + 1
    library.mark_removed("a")
    assert [m.slug for m in library.published()] == ["b"]
    assert [m.slug for m in library.ever_published()] == ["a", "b"]
    with pytest.raises(NotFoundError, match="'zzz'"):
        library.get("zzz")


def test_edit_of_a_published_meme_bumps_the_generation(library):
    meme = library.add(new_meme(1))
    g = library.generation
    library.edit(meme.slug, caption="queued edit")
    assert library.generation == g
    library.mark_published([meme.slug])
    g = library.generation
    library.edit(meme.slug, caption="published edit")
    assert library.generation == g + 1


def test_catalog_uses_wal_and_records_its_schema_version(library):
    db = sqlite3.connect(library.catalog_path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "3"


SCHEMA_1_EDITIONS = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE editions (kind TEXT NOT NULL, number INTEGER NOT NULL, status TEXT NOT NULL,
    subject TEXT NOT NULL, message_id TEXT NOT NULL, slugs TEXT NOT NULL,
    created_at TEXT NOT NULL, sent_at TEXT, PRIMARY KEY (kind, number));
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO editions VALUES ('regular', 1, 'sent', 'S', '<a@x>', '["a"]',
    '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z');
INSERT INTO editions VALUES ('special', 1, 'sending', 'T', '<b@x>', '[]',
    '2026-01-02T00:00:00Z', NULL);
INSERT INTO meta VALUES ('newsletter.note.special.1', 'Hello');
INSERT INTO meta VALUES ('newsletter.images.regular.1', '["i/a/large.1.jpg"]');
INSERT INTO meta VALUES ('generation', '3');
"""


def test_a_schema_1_catalog_moves_edition_notes_and_images_into_their_columns(tmp_path):
    (tmp_path / "m").mkdir()
    db = sqlite3.connect(tmp_path / "m" / "catalog.sqlite")
    db.executescript(SCHEMA_1_EDITIONS)
    db.close()
    with Library(tmp_path / "m") as library:
        regular, special = library.editions("regular")[0], library.editions("special")[0]
        assert (regular.note, regular.images, regular.status) == ("", ("i/a/large.1.jpg",), "sent")
        assert (special.note, special.images, special.status) == ("Hello", (), "sending")
        assert library.get_meta("newsletter.note.special.1") is None
        assert library.get_meta("newsletter.images.regular.1") is None
        assert library.generation == 3  # the rest of meta is left alone
    with Library(tmp_path / "m") as library:  # a second open changes nothing
        assert library.editions("special")[0].note == "Hello"
    db = sqlite3.connect(tmp_path / "m" / "catalog.sqlite")
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "3"


def test_a_newer_catalog_schema_is_refused(tmp_path):
    Library(tmp_path / "m").close()
    db = sqlite3.connect(tmp_path / "m" / "catalog.sqlite")
    db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.commit()
    with pytest.raises(Exception, match="schema 99 is newer"):
        Library(tmp_path / "m")


def test_an_edition_is_in_doubt_only_from_the_transfer_until_it_is_sent(library):
    first = library.begin_edition("regular", 1, ["a"], "s", "<1@x>", note="hi", images=["k"])
    special = library.begin_edition("special", 1, [], "s", "<2@x>")
    assert (first.status, first.note, first.images) == ("preparing", "hi", ("k",))
    assert (special.kind, special.number) == ("special", 1)
    assert library.editions_in_doubt() == []  # nothing handed over yet
    assert library.featured_slugs() == set()  # a dead run's record does not feature them
    library.transfer_edition("regular", 1)
    assert [(e.kind, e.number) for e in library.editions_in_doubt()] == [("regular", 1)]
    assert library.featured_slugs() == {"a"}
    library.finish_edition("regular", 1)
    library.abandon_edition("special", 1)
    assert library.editions_in_doubt() == []
    assert [e.kind for e in library.editions()] == ["regular"]
    library.abandon_edition("regular", 1)  # a sent edition is never forgotten
    assert library.edition("regular", 1).status == "sent"
    with pytest.raises(LockedError, match="another run"):
        library.begin_edition("regular", 1, ["b"], "s", "<3@x>")
    library.begin_edition("regular", 2, ["b"], "s", "<3@x>")
    library.transfer_edition("regular", 2)
    assert library.featured_slugs() == {"a", "b"}
    assert not library.edition("regular", 1).archived
    library.mark_archived(library.editions())
    assert [e.archived for e in library.editions()] == [True, False]  # only sent ones


def _open_library_when_released(root: str, start, results) -> None:
    start.wait()
    try:
        Library(Path(root)).close()
        results.put("ok")
    except Exception as exc:  # the parent asserts on the message
        results.put(str(exc))


def test_processes_opening_a_new_catalog_at_once_all_succeed(tmp_path):
    # Turning a new catalog into WAL fails at once with "database is locked" when another
    # process does the same, without SQLite's busy handler; a fresh library hit it 1 time in 4.
    ctx = multiprocessing.get_context("fork")
    outcomes = []
    for attempt in range(12):
        start, results = ctx.Barrier(6), ctx.Queue()
        procs = [
            ctx.Process(target=_open_library_when_released,
                        args=(str(tmp_path / str(attempt)), start, results))
            for _ in range(6)
        ]  # fmt: skip
        for proc in procs:
            proc.start()
        outcomes += [results.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(timeout=60)
    assert [o for o in outcomes if o != "ok"] == []


# A catalog made by an earlier memes: the memes table as it was first written, before the
# placeholder columns (a field added since gets its column when the catalog is opened).
OLD_MEMES_TABLE = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
CREATE TABLE memes (
    id INTEGER PRIMARY KEY, slug TEXT NOT NULL UNIQUE, title TEXT NOT NULL DEFAULT '',
    caption TEXT NOT NULL, alt TEXT NOT NULL, category TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]', credit TEXT NOT NULL DEFAULT '',
    top_text TEXT NOT NULL DEFAULT '', bottom_text TEXT NOT NULL DEFAULT '',
    original_name TEXT NOT NULL, sha256 TEXT NOT NULL UNIQUE, phash TEXT NOT NULL DEFAULT '',
    ext TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL, format TEXT NOT NULL,
    frames INTEGER NOT NULL DEFAULT 1, added_at TEXT NOT NULL, publish_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued', published_at TEXT, updated_at TEXT NOT NULL
);
INSERT INTO memes (slug, title, caption, alt, category, tags, original_name, sha256, ext, width,
                   height, format, added_at, publish_at, status, published_at, updated_at)
VALUES ('old-one', 'Old one', 'It was here first', 'alt', 'funny', '["cats","work"]', 'a.png',
        'ab12', 'png', 640, 480, 'PNG', '2026-01-01T10:00:00Z', '2026-01-02T10:00:00Z',
        'published', '2026-01-02T10:05:00Z', '2026-01-01T10:00:00Z');
"""


def test_a_catalog_from_an_earlier_version_opens_and_gets_the_new_columns(tmp_path):
    root = tmp_path / "memes"
    root.mkdir()
    with sqlite3.connect(root / "catalog.sqlite") as db:
        db.executescript(OLD_MEMES_TABLE)
    with Library(root) as library:
        meme = library.get("old-one")
        assert (meme.title, meme.tags, meme.width, meme.status) == (
            "Old one", ("cats", "work"), 640, "published")  # fmt: skip
        assert meme.published_at == datetime(2026, 1, 2, 10, 5, tzinfo=UTC)
        assert (meme.placeholder_color, meme.blurhash) == ("", "")
        library.set_renditions("old-one", [], "#102030", "LKO2?U%2Tw=w")
        assert library.get("old-one").blurhash == "LKO2?U%2Tw=w"
        library.add(new_meme(1))  # and new memes go in beside it


def test_every_field_added_comes_back_as_it_went_in(library):
    new = new_meme(7, tags=("x", "y"), credit="someone", top_text="TOP", bottom_text="BOTTOM")
    meme = library.add(new, now=datetime(2026, 5, 1, tzinfo=UTC))
    for f in dataclasses.fields(NewMeme):
        assert getattr(meme, f.name) == getattr(new, f.name), f.name
    assert (meme.status, meme.added_at, meme.published_at) == (
        "queued", datetime(2026, 5, 1, tzinfo=UTC), None)  # fmt: skip


def test_json_view_names_each_field_once_with_times_in_utc():
    record = Meme(
        **dataclasses.asdict(new_meme(3, top_text="T", bottom_text="B")),
        id=1, slug="s", added_at=datetime(2026, 1, 1, tzinfo=UTC), status="queued",
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    data = record.as_dict()
    assert list(data) == [
        "slug", "title", "caption", "alt", "category", "tags", "credit", "top", "bottom",
        "template", "texts", "publish_at", "sha256", "format", "width", "height", "frames",
        "original_name", "added_at", "status", "published_at", "failure",
    ]  # fmt: skip
    assert data["publish_at"] == "2026-01-01T00:03:00Z" and data["tags"] == ["a"]
    assert (data["top"], data["bottom"], data["published_at"]) == ("T", "B", None)


def test_a_meme_with_its_own_copy_of_the_boxes_no_longer_uses_the_template(library):
    """`template remove --keep-copies` gives each meme its own copy of the boxes; a template
    added later under the same name is not in use by them: the studio's in-use list and the
    removal check agree."""
    from pipeline.meme_templates import Template
    from pipeline.overlay import CLASSIC_BOXES

    def template(sha: str) -> Template:
        return Template(name="two", sha256=sha, ext="png", width=10, height=10,
                        boxes=CLASSIC_BOXES)  # fmt: skip

    library.add_template(template("a" * 64))
    made = library.add(new_meme(1, template="two", texts=("TOP", "BOTTOM")))
    assert library.templates_in_use() == {"two"}
    assert library.remove_template("two", keep_copies=True) == [made.slug]
    library.add_template(template("b" * 64))  # another takes the name
    assert library.templates_in_use() == set()
    assert library.remove_template("two") == []  # not refused: nothing uses it
    library.add_template(template("c" * 64))
    user = library.add(new_meme(2, template="two", texts=("A", "B")))
    assert library.templates_in_use() == {"two"}
    with pytest.raises(UsageError, match=f"still used by {user.slug} "):
        library.remove_template("two")

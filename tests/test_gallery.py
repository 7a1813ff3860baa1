"""The gallery documents: schema, stable paging, feeds, text kept exactly as entered."""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from pipeline import config as configuration
from pipeline import gallery
from pipeline.documents import Document
from pipeline.library import Meme, RenditionAsset, iso

BASE = "https://memes.example.org/gallery/"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CATEGORIES = ("funny", "informative", "tech")
TAG_POOL = ("cats", "Monday", "coffee", "dogs", "work")


def make_meme(i: int, **changes) -> Meme:
    """Published meme number i (published i minutes after T0) with three renditions."""
    slug = changes.pop("slug", f"meme-{i}")
    width, height = 1600, 1200
    renditions = (
        RenditionAsset("thumb", f"i/{slug}/thumb.{i:08x}.webp", 320, 240, "image/webp", 9_000),
        RenditionAsset("large", f"i/{slug}/large.{i:08x}.webp", 1200, 900, "image/webp", 90_000),
        RenditionAsset("og", f"i/{slug}/og.{i:08x}.jpg", 1200, 630, "image/jpeg", 120_000),
    )
    fields = dict(
        id=i + 1,
        slug=slug,
        title=f"Meme {i}",
        caption=f"Caption number {i}",
        alt=f"A picture for meme {i}",
        category=CATEGORIES[i % 3],
        tags=tuple(TAG_POOL[j] for j in range(5) if (i >> j) & 1),
        credit="",
        top_text="",
        bottom_text="",
        original_name=f"{slug}.png",
        sha256=hashlib.sha256(slug.encode()).hexdigest(),
        phash="0" * 16,
        ext="png",
        width=width,
        height=height,
        format="PNG",
        frames=1,
        added_at=T0 - timedelta(days=1),
        publish_at=T0 + timedelta(minutes=i),
        status="published",
        published_at=T0 + timedelta(minutes=i),
        updated_at=T0,
        placeholder_color="#336699",
        blurhash="LEHV6nWB2yk8pyo0adR*.7kCMdnj",
        renditions=renditions,
    )
    fields.update(changes)
    return Meme(**fields)


def make_config(tmp_path, page_size: int = 50, feed_size: int = 20):
    return configuration.parse(
        {
            "site": {"title": "Test Memes", "base_url": BASE},
            "gallery": {"page_size": page_size, "feed_size": feed_size},
        },
        root=tmp_path,
    )


def build(memes, cfg) -> dict[str, Document]:
    docs = gallery.build_documents(memes, cfg)
    keys = [d.key for d in docs]
    assert len(keys) == len(set(keys)), "every key once"
    return {d.key: d for d in docs}


def load(doc: Document):
    return json.loads(doc.data.decode("utf-8"))


def follow(docs: dict[str, Document], head_key: str) -> tuple[list[str], list[str]]:
    """Slugs in reading order following `next` from a head, and the keys visited."""
    slugs, visited, key = [], [], head_key
    while key is not None:
        assert key not in visited, "next chain loops"
        visited.append(key)
        page = load(docs[key])
        slugs.extend(m["slug"] for m in page["memes"])
        nxt = page["next"]
        assert nxt is None or nxt.startswith(BASE)
        key = nxt[len(BASE) :] if nxt else None
    return slugs, visited


SCHEMA_FILE = Path(__file__).parent.parent / "pipeline" / "schema.json"  # the contract itself
SCHEMA = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=FormatChecker())


def validator_for(definition: str) -> Draft202012Validator:
    return Draft202012Validator(
        {"$defs": SCHEMA["$defs"], "$ref": f"#/$defs/{definition}"},
        format_checker=FormatChecker(),
    )


def json_documents(docs: dict[str, Document]):
    for key, doc in docs.items():
        if doc.content_type == "application/json":
            yield key, load(doc)


# --- schema --------------------------------------------------------------------------------


def test_schema_is_valid_draft_2020_12_and_published_verbatim(tmp_path):
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    shipped = SCHEMA_FILE.read_bytes()
    docs = build([make_meme(0)], make_config(tmp_path))
    assert docs["schema.json"].data == shipped
    assert gallery.schema() == SCHEMA
    assert docs["schema.json"].content_type == "application/schema+json"


def test_every_json_document_validates_against_the_schema(tmp_path):
    memes = [make_meme(i) for i in range(130)]
    memes[7] = replace(memes[7], status="removed")
    memes[8] = replace(memes[8], tags=("😂", "Cats", "cats"), blurhash="", credit="© me")
    memes[9] = replace(memes[9], frames=12, placeholder_color="#ABCDEF")
    docs = build(memes, make_config(tmp_path, page_size=20))
    index, permalink = validator_for("index"), validator_for("permalink")
    checked = 0
    for key, value in json_documents(docs):
        VALIDATOR.validate(value)
        (permalink if key.startswith("m/") else index).validate(value)
        checked += 1
    assert checked == len(docs) - 6  # all but schema, two feeds and the three static files
    assert {"index.json", "pages/1.json", "categories/tech/index.json", "m/meme-0.json"} <= set(
        docs
    )


def test_schema_rejects_what_a_client_could_not_use():
    good = {
        "version": 1,
        "site": {"title": "t", "base_url": BASE},
        "meme": load(Document("x", json.dumps(_meme_json()).encode(), "application/json")),
    }
    VALIDATOR.validate(good)
    bad_url = json.loads(json.dumps(good))
    bad_url["meme"]["renditions"]["thumb"]["url"] = "i/relative.webp"
    bad_date = json.loads(json.dumps(good))
    bad_date["meme"]["published_at"] = "2026-03-01 12:00"
    missing = json.loads(json.dumps(good))
    del missing["meme"]["alt"]
    for document in (bad_url, bad_date, missing):
        assert not VALIDATOR.is_valid(document)


def _meme_json() -> dict:
    return gallery.meme_object(make_meme(3), BASE)


# --- paging --------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 50, 51, 1000])
def test_following_next_visits_every_meme_once_newest_first(tmp_path, count):
    memes = [make_meme(i) for i in range(count)]
    docs = build(memes, make_config(tmp_path, page_size=50))
    expected = [m.slug for m in reversed(memes)]

    slugs, visited = follow(docs, "index.json")
    assert slugs == expected

    head = load(docs["index.json"])
    assert head["count"] == count
    full_pages = count // 50
    assert len(visited) == max(full_pages, 1)  # head + archived pages 1..F-1
    archived = sorted(k for k in docs if re.fullmatch(r"pages/\d+\.json", k))
    assert archived == sorted(f"pages/{k}.json" for k in range(1, full_pages))
    if count >= 50:
        assert 50 <= len(head["memes"]) <= 99
    if full_pages >= 2:
        assert all(len(load(docs[k])["memes"]) == 50 for k in archived)
        assert load(docs["pages/1.json"])["next"] is None

    for category in CATEGORIES:
        slugs, _ = follow(docs, f"categories/{category}/index.json")
        assert slugs == [m.slug for m in reversed(memes) if m.category == category]
    for tag in TAG_POOL:
        in_tag = [m.slug for m in reversed(memes) if tag in m.tags]
        key = f"tags/{tag.lower()}/index.json"
        if in_tag:
            assert follow(docs, key)[0] == in_tag
        else:
            assert key not in docs


def test_empty_gallery_still_publishes_a_valid_index_feeds_and_category_indexes(tmp_path):
    docs = build([], make_config(tmp_path))
    head = load(docs["index.json"])
    assert (head["count"], head["memes"], head["next"], head["generated_at"]) == (0, [], None, None)
    assert [c["name"] for c in head["categories"]] == list(CATEGORIES)
    for category in CATEGORIES:
        assert load(docs[f"categories/{category}/index.json"])["memes"] == []
    assert feedparser.parse(docs["feed.xml"].data).entries == []
    assert load(docs["feed.json"])["items"] == []


def test_archived_pages_carry_stable_count_and_generated_at(tmp_path):
    memes = [make_meme(i) for i in range(110)]  # 4 full pages: 1..3 archived, head 75..109
    docs = build(memes, make_config(tmp_path, page_size=25))
    page2 = load(docs["pages/2.json"])
    assert page2["count"] == 50
    assert page2["generated_at"] == iso(memes[49].published_at)
    assert page2["next"] == BASE + "pages/1.json"
    head = load(docs["index.json"])
    assert head["count"] == 110
    assert head["generated_at"] == iso(memes[-1].published_at)
    assert head["next"] == BASE + "pages/3.json"
    assert len(head["memes"]) == 25 + 10  # the last full page and the partial one


def changed_keys(old: dict[str, Document], new: dict[str, Document]) -> set[str]:
    return {k for k in new if k not in old or old[k].data != new[k].data}


def index_prefix(key: str) -> str:
    """'' for the root index, 'categories/x/' or 'tags/y/' for the others."""
    match = re.match(r"^((?:categories|tags)/[^/]+/)?(?:index\.json|pages/\d+\.json)$", key)
    assert match, key
    return match.group(1) or ""


@pytest.mark.parametrize("start", [1000, 1040])  # 1040 + 12 fills page 21: one new page
def test_publishing_12_more_rewrites_only_heads_one_page_per_index_and_the_new_memes(
    tmp_path, start
):
    cfg = make_config(tmp_path, page_size=50)
    memes = [make_meme(i) for i in range(start + 12)]
    before = build(memes[:start], cfg)
    after = build(memes, cfg)

    assert set(before) <= set(after), "publishing never drops a document"
    new_permalinks = {f"m/{m.slug}.json" for m in memes[start:]}
    changed = changed_keys(before, after) - new_permalinks - {"feed.xml", "feed.json"}
    pages_per_index: dict[str, list[str]] = {}
    for key in changed:
        if key.endswith("/index.json") or key == "index.json":
            continue
        assert key not in before, f"an existing page was rewritten: {key}"
        pages_per_index.setdefault(index_prefix(key), []).append(key)
    assert all(len(keys) == 1 for keys in pages_per_index.values()), pages_per_index
    if start == 1040:
        assert "pages/20.json" in pages_per_index[""]
    else:
        assert "" not in pages_per_index
    # the untouched majority: every archived page of every index that existed stays identical
    assert len(changed) < 40
    assert all(after[k].data == before[k].data for k in before if k.startswith("m/"))


def test_removing_a_meme_rewrites_only_its_pages_and_leaves_every_index(tmp_path):
    cfg = make_config(tmp_path, page_size=50)
    memes = [make_meme(i) for i in range(1000)]
    victim = memes[123]  # root page 3; also in a category and some tags
    assert victim.tags
    before = build(memes, cfg)
    memes_after = [replace(m, status="removed") if m is victim else m for m in memes]
    after = build(memes_after, cfg)

    assert set(before) - set(after) == {f"m/{victim.slug}.json"}
    for key, value in json_documents(after):
        assert victim.slug not in json.dumps(value), key
    changed = changed_keys(before, after)
    holding = {k for k, v in json_documents(before) if not k.startswith("m/") and
               victim.slug in {m["slug"] for m in v["memes"]}}  # fmt: skip
    heads = {"index.json", f"categories/{victim.category}/index.json"} | {
        f"tags/{t.lower()}/index.json" for t in victim.tags
    }
    assert "pages/3.json" in holding
    assert changed <= holding | heads
    assert holding <= changed
    # the pages around the hole kept their places and bytes
    assert after["pages/2.json"].data == before["pages/2.json"].data
    assert after["pages/4.json"].data == before["pages/4.json"].data
    expected = [m.slug for m in reversed(memes) if m is not victim]
    assert follow(after, "index.json")[0] == expected
    assert load(after["index.json"])["count"] == 999


def test_an_edit_shows_in_the_next_build_on_its_page_and_permalink(tmp_path):
    cfg = make_config(tmp_path, page_size=10)
    memes = [make_meme(i) for i in range(40)]
    before = build(memes, cfg)
    memes[5] = replace(memes[5], caption="Edited caption", title="Edited", alt="New alt")
    after = build(memes, cfg)
    edited = load(after["m/meme-5.json"])["meme"]
    assert (edited["caption"], edited["title"], edited["alt"]) == (
        "Edited caption",
        "Edited",
        "New alt",
    )
    page = load(after["pages/1.json"])
    assert [m["caption"] for m in page["memes"] if m["slug"] == "meme-5"] == ["Edited caption"]
    changed = changed_keys(before, after)
    assert "pages/1.json" in changed and "pages/2.json" not in changed
    assert "index.json" not in changed  # meme 5 is not on the head


def test_same_memes_give_byte_identical_documents_in_any_input_order(tmp_path):
    cfg = make_config(tmp_path, page_size=7)
    memes = [make_meme(i) for i in range(60)]
    memes[10] = replace(memes[10], status="removed")
    first = gallery.build_documents(memes, cfg)
    shuffled = memes[:]
    random.Random(4).shuffle(shuffled)
    second = gallery.build_documents(shuffled, cfg)
    assert [(d.key, d.data, d.content_type) for d in first] == [
        (d.key, d.data, d.content_type) for d in second
    ]


def test_queued_memes_and_memes_removed_before_publishing_are_ignored(tmp_path):
    cfg = make_config(tmp_path, page_size=5)
    memes = [make_meme(i) for i in range(8)]
    queued = replace(make_meme(8), status="queued", published_at=None)
    never = replace(make_meme(9), status="removed", published_at=None)
    assert build([*memes, queued, never], cfg) == build(memes, cfg)


# --- text ----------------------------------------------------------------------------------

TRICKY = [
    "مرحبا بالعالم — هذا ميم",  # Arabic, right-to-left
    "שלום עולם 123",  # Hebrew mixed with digits
    "👩‍👩‍👧‍👦 family 🏳️‍🌈 flag 🇺🇦",  # ZWJ sequences and regional indicators
    "e\u0301 combining, ﬁ ligature, \u2028line separator",
    'quotes " and \\ backslash and \t tab\nand a newline',
    "<b>not bold</b> &amp; 5 > 3",
]


def test_unicode_rtl_and_emoji_text_round_trips_exactly(tmp_path):
    memes = [
        make_meme(i, caption=text, title=text[:12], alt=text, credit=text, tags=(text,))
        for i, text in enumerate(TRICKY)
    ]
    docs = build(memes, make_config(tmp_path))
    shown = {m["slug"]: m for m in load(docs["index.json"])["memes"]}
    for meme, text in zip(memes, TRICKY, strict=True):
        got = shown[meme.slug]
        assert [got["caption"], got["alt"], got["credit"]] == [text] * 3
        assert got["tags"] == [text]
        assert load(docs[f"m/{meme.slug}.json"])["meme"]["caption"] == text
    raw = docs["index.json"].data.decode("utf-8")
    assert "مرحبا بالعالم" in raw and "👩‍👩‍👧‍👦" in raw, "UTF-8 as is, not \\u escapes"
    assert "&lt;" not in raw and "<b>not bold</b> &amp; 5 > 3" in raw
    feed = feedparser.parse(docs["feed.xml"].data)
    assert not feed.bozo
    assert {e.title for e in feed.entries} == {t[:12] for t in TRICKY}


def test_a_script_caption_is_kept_verbatim_in_json_and_escaped_in_feed_html(tmp_path):
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    memes = [make_meme(0, caption=evil, title=evil, alt=evil)]
    docs = build(memes, make_config(tmp_path))
    meme = load(docs["index.json"])["memes"][0]
    assert meme["caption"] == meme["title"] == meme["alt"] == evil
    assert json.dumps(evil, ensure_ascii=False).encode() in docs["m/meme-0.json"].data

    for body in (load(docs["feed.json"])["items"][0]["content_html"],):
        assert "<script" not in body and "&lt;script&gt;" in body
        assert "<img src=x" not in body
    item = feedparser.parse(docs["feed.xml"].data).entries[0]
    assert item.title == evil  # RSS titles are text
    assert "<script" not in item.description


def test_text_xml_cannot_carry_is_dropped_from_the_rss_feed_only(tmp_path):
    text = "bell\x07 and nul\x00 here"
    docs = build([make_meme(0, caption=text, title=text)], make_config(tmp_path))
    assert load(docs["m/meme-0.json"])["meme"]["caption"] == text
    feed = feedparser.parse(docs["feed.xml"].data)
    assert not feed.bozo
    assert feed.entries[0].title == "bell and nul here"


# --- tags and categories -------------------------------------------------------------------


def test_tags_share_an_index_by_slug_and_emoji_only_tags_get_none(tmp_path):
    memes = [
        make_meme(0, tags=("Cats", "😂")),
        make_meme(1, tags=("cats",)),
        make_meme(2, tags=("CATS", "cats")),  # one meme lists a slug once
        make_meme(3, tags=("котики",)),
    ]
    docs = build(memes, make_config(tmp_path))
    assert follow(docs, "tags/cats/index.json")[0] == ["meme-2", "meme-1", "meme-0"]
    assert follow(docs, "tags/kotiki/index.json")[0] == ["meme-3"]
    assert not [k for k in docs if k.startswith("tags/") and "cats" not in k and "kotiki" not in k]
    summaries = {t["slug"]: t for t in load(docs["index.json"])["tags"]}
    assert summaries["cats"]["count"] == 3
    assert summaries["cats"]["url"] == BASE + "tags/cats/index.json"
    assert summaries["kotiki"]["name"] == "котики"
    assert load(docs["m/meme-0.json"])["meme"]["tags"] == ["Cats", "😂"]


def test_root_index_lists_categories_with_counts(tmp_path):
    memes = [make_meme(i) for i in range(10)]
    head = load(build(memes, make_config(tmp_path))["index.json"])
    assert head["categories"] == [
        {"count": 4, "name": "funny", "url": BASE + "categories/funny/index.json"},
        {"count": 3, "name": "informative", "url": BASE + "categories/informative/index.json"},
        {"count": 3, "name": "tech", "url": BASE + "categories/tech/index.json"},
    ]


# --- meme objects --------------------------------------------------------------------------


def test_meme_object_has_absolute_urls_and_placeholder(tmp_path):
    meme = make_meme(4, frames=3)
    docs = build([meme], make_config(tmp_path))
    got = load(docs["index.json"])["memes"][0]
    assert got["url"] == BASE + "m/meme-4.json"
    assert got["renditions"]["large"] == {
        "url": BASE + meme.renditions[1].key,
        "width": 1200,
        "height": 900,
        "content_type": "image/webp",
        "bytes": 90_000,
    }
    assert got["placeholder"] == {"color": "#336699", "blurhash": meme.blurhash}
    assert got["published_at"] == "2026-03-01T12:04:00Z"
    assert got["animated"] is True
    permalink = load(docs["m/meme-4.json"])
    assert permalink["meme"] == got
    assert permalink["site"] == {"title": "Test Memes", "base_url": BASE}


def test_asset_keys_are_the_renditions_of_published_memes_only():
    shown, removed = make_meme(0), replace(make_meme(1), status="removed")
    assert gallery.asset_keys([shown, removed]) == {r.key for r in shown.renditions}


# --- feeds ---------------------------------------------------------------------------------


def test_rss_feed_lists_the_latest_memes_with_absolute_image_enclosures(tmp_path):
    memes = [make_meme(i) for i in range(30)]
    docs = build(memes, make_config(tmp_path, feed_size=20))
    feed = feedparser.parse(docs["feed.xml"].data)
    assert not feed.bozo, feed.bozo_exception
    assert feed.version == "rss20"
    assert feed.feed.title == "Test Memes"
    assert len(feed.entries) == 20
    newest = memes[-1]
    first = feed.entries[0]
    assert first.title == newest.title
    assert first.link == BASE + "index.html#/m/" + newest.slug
    assert [t.term for t in first.tags] == [newest.category]
    assert first.published_parsed[:6] == newest.published_at.timetuple()[:6]
    (enclosure,) = first.enclosures
    assert enclosure.href == BASE + newest.renditions[1].key  # widest whole-image rendition
    assert (enclosure.type, int(enclosure.length)) == ("image/webp", 90_000)
    # lastBuildDate comes from the memes, never the clock
    assert feed.feed.updated_parsed[:6] == newest.published_at.timetuple()[:6]
    assert [e.link.rsplit("/", 1)[1] for e in feed.entries] == [
        m.slug for m in reversed(memes[-20:])
    ]


def test_json_feed_is_json_feed_1_1_with_images_and_attachments(tmp_path):
    memes = [make_meme(i) for i in range(5)]
    docs = build(memes, make_config(tmp_path, feed_size=3))
    assert docs["feed.json"].content_type == "application/feed+json"
    data = load(docs["feed.json"])
    assert data["version"] == "https://jsonfeed.org/version/1.1"
    assert data["feed_url"] == BASE + "feed.json"
    assert [i["id"] for i in data["items"]] == [BASE + f"m/meme-{i}.json" for i in (4, 3, 2)]
    item = data["items"][0]
    assert item["image"] == BASE + memes[4].renditions[1].key
    assert item["attachments"] == [
        {"url": item["image"], "mime_type": "image/webp", "size_in_bytes": 90_000}
    ]
    assert item["tags"][0] == memes[4].category
    assert item["date_published"] == iso(memes[4].published_at)
    # feedparser 6.0 reads no JSON Feed, so check the spec's rules with a schema of them
    Draft202012Validator(JSON_FEED_1_1, format_checker=FormatChecker()).validate(data)
    assert [i["title"] for i in data["items"]] == ["Meme 4", "Meme 3", "Meme 2"]


# The normative requirements of https://jsonfeed.org/version/1.1 (required keys, types).
JSON_FEED_1_1 = {
    "type": "object",
    "required": ["version", "title", "items"],
    "properties": {
        "version": {"const": "https://jsonfeed.org/version/1.1"},
        "title": {"type": "string", "minLength": 1},
        "home_page_url": {"type": "string", "format": "uri"},
        "feed_url": {"type": "string", "format": "uri"},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id"],
                "anyOf": [{"required": ["content_html"]}, {"required": ["content_text"]}],
                "properties": {
                    "id": {"type": "string", "minLength": 1},
                    "url": {"type": "string", "format": "uri"},
                    "image": {"type": "string", "pattern": "^https?://"},
                    "date_published": {"type": "string", "format": "date-time"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "attachments": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["url", "mime_type"],
                            "properties": {
                                "url": {"type": "string", "pattern": "^https?://"},
                                "mime_type": {"type": "string"},
                                "size_in_bytes": {"type": "integer", "minimum": 0},
                            },
                        },
                    },
                },
            },
        },
    },
}


# --- the viewer ----------------------------------------------------------------------------


def test_viewer_is_published_with_cache_busting_and_no_outside_dependencies(tmp_path):
    docs = build([make_meme(0)], make_config(tmp_path))
    page = docs["index.html"].data.decode()
    js, css = docs["gallery.js"].data, docs["gallery.css"].data
    assert f"gallery.js?v={hashlib.sha256(js).hexdigest()[:12]}" in page
    assert f"gallery.css?v={hashlib.sha256(css).hexdigest()[:12]}" in page
    for text in (page, js.decode(), css.decode()):
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text)
        assert "@import" not in text
    assert "innerHTML" not in js.decode() and "insertAdjacentHTML" not in js.decode()
    assert docs["index.html"].content_type.startswith("text/html")


def test_each_meme_carries_its_template_and_box_texts_in_reading_order(tmp_path):
    cfg = make_config(tmp_path)
    classic = make_meme(1, top_text="WHEN CI", bottom_text="IS RED")
    templated = make_meme(2, template="coffee-labels", texts=("Monday", "", "coffee"))
    docs = build([classic, templated], cfg)
    index = load(docs["index.json"])
    by_slug = {m["slug"]: m for m in index["memes"]}
    assert (by_slug["meme-1"]["template"], by_slug["meme-1"]["texts"]) == (
        None, ["WHEN CI", "IS RED"]
    )  # fmt: skip
    assert (by_slug["meme-2"]["template"], by_slug["meme-2"]["texts"]) == (
        "coffee-labels", ["Monday", "coffee"]
    )  # fmt: skip
    permalink = load(docs["m/meme-2.json"])["meme"]
    assert permalink["texts"] == ["Monday", "coffee"]
    validator_for("meme").validate(permalink)

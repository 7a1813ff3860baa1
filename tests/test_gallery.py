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
from bs4 import BeautifulSoup
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


def SHARE_PAGE_KEYS(docs: dict[str, Document]) -> list[str]:  # noqa: N802
    return [k for k in docs if re.fullmatch(r"m/[^/]+\.html", k)]


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
    # all but schema, two feeds, the three static files, sitemap.xml, robots.txt and the share
    # pages of the 129 memes shown
    assert checked == len(docs) - 8 - 129
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
    new_permalinks = {f"m/{m.slug}.{ext}" for m in memes[start:] for ext in ("json", "html")}
    changed = changed_keys(before, after) - new_permalinks - {"feed.xml", "feed.json"}
    # the one older share page: the newest meme before gains its "newer" link
    assert {k for k in changed if k.startswith("m/")} == {f"m/{memes[start - 1].slug}.html"}
    assert "sitemap.xml" in changed
    changed -= {f"m/{memes[start - 1].slug}.html", "sitemap.xml"}
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
    neighbour = f"m/{memes[start - 1].slug}.html"
    assert all(after[k].data == before[k].data for k in before if k.startswith("m/") and
               k != neighbour)  # fmt: skip


def test_removing_a_meme_rewrites_only_its_pages_and_leaves_every_index(tmp_path):
    cfg = make_config(tmp_path, page_size=50)
    memes = [make_meme(i) for i in range(1000)]
    victim = memes[123]  # root page 3; also in a category and some tags
    assert victim.tags
    before = build(memes, cfg)
    memes_after = [replace(m, status="removed") if m is victim else m for m in memes]
    after = build(memes_after, cfg)

    assert set(before) - set(after) == {f"m/{victim.slug}.json", f"m/{victim.slug}.html"}
    for key, value in json_documents(after):
        assert victim.slug not in json.dumps(value), key
    for key in (*SHARE_PAGE_KEYS(after), "sitemap.xml"):
        assert victim.slug not in after[key].data.decode(), key
    changed = changed_keys(before, after)
    # its neighbours now link each other; the sitemap forgets it
    neighbours = {f"m/{memes[122].slug}.html", f"m/{memes[124].slug}.html", "sitemap.xml"}
    assert neighbours <= changed
    changed -= neighbours
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
    edited_at = T0 + timedelta(days=2)
    memes[5] = replace(memes[5], caption="Edited caption", title="Edited", alt="New alt",
                       updated_at=edited_at)  # fmt: skip
    after = build(memes, cfg)
    assert load(after["m/meme-5.json"])["meme"]["updated_at"] == iso(edited_at)
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
    # its share page, the neighbours that name its title, the sitemap
    assert {k for k in changed if k.startswith("m/") or k == "sitemap.xml"} == {
        "m/meme-5.json", "m/meme-5.html", "m/meme-4.html", "m/meme-6.html", "sitemap.xml"
    }
    assert "Edited caption" in after["m/meme-5.html"].data.decode()


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


def test_feed_html_lets_a_right_to_left_caption_and_credit_read_in_their_own_direction(tmp_path):
    """Feed readers show content_html / description as it comes: the caption and credit
    paragraphs carry dir="auto", as the share pages' plaintext bidi does."""
    memes = [make_meme(0, caption="שלום עולם!", credit="צילום: דנה")]
    docs = build(memes, make_config(tmp_path))
    rss = feedparser.parse(docs["feed.xml"].data).entries[0].description
    for body in (load(docs["feed.json"])["items"][0]["content_html"], rss):
        page = BeautifulSoup(body, "html5lib")
        for text in ("שלום עולם!", "צילום: דנה"):
            holder = page.find(string=text).find_parent(attrs={"dir": True})
            assert holder is not None and holder["dir"] == "auto", body


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
    assert got["page_url"] == BASE + "m/meme-4.html"
    assert got["updated_at"] == got["published_at"]  # never edited since
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
    assert first.link == first.id == BASE + f"m/{newest.slug}.html"  # the share page
    assert f'<guid isPermaLink="true">{first.link}</guid>' in docs["feed.xml"].data.decode()
    assert [t.term for t in first.tags] == [newest.category, *newest.tags]
    assert len(newest.tags) >= 2
    assert first.published_parsed[:6] == newest.published_at.timetuple()[:6]
    (enclosure,) = first.enclosures
    assert enclosure.href == BASE + newest.renditions[2].key  # the JPEG og rendition
    assert (enclosure.type, int(enclosure.length)) == ("image/jpeg", 120_000)
    # lastBuildDate comes from the memes, never the clock
    assert feed.feed.updated_parsed[:6] == newest.published_at.timetuple()[:6]
    assert [e.link.rsplit("/", 1)[1] for e in feed.entries] == [
        f"{m.slug}.html" for m in reversed(memes[-20:])
    ]


def test_json_feed_is_json_feed_1_1_with_images_and_attachments(tmp_path):
    memes = [make_meme(i) for i in range(5)]
    docs = build(memes, make_config(tmp_path, feed_size=3))
    assert docs["feed.json"].content_type == "application/feed+json"
    data = load(docs["feed.json"])
    assert data["version"] == "https://jsonfeed.org/version/1.1"
    assert data["feed_url"] == BASE + "feed.json"
    assert [i["id"] for i in data["items"]] == [BASE + f"m/meme-{i}.html" for i in (4, 3, 2)]
    assert all(i["url"] == i["id"] for i in data["items"])
    item = data["items"][0]
    assert item["image"] == BASE + memes[4].renditions[2].key  # the JPEG og rendition
    assert item["attachments"] == [
        {"url": item["image"], "mime_type": "image/jpeg", "size_in_bytes": 120_000}
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


# --- share pages, sitemap, robots.txt ------------------------------------------------------


def soup(doc: Document):
    """The page as a browser parses it (html5lib follows the WHATWG parsing rules)."""
    return BeautifulSoup(doc.data.decode("utf-8"), "html5lib")


def meta(page, name: str) -> str:
    """The content of the one <meta property=name> or <meta name=name>."""
    found = page.head.find_all("meta", attrs={"property": name}) or page.head.find_all(
        "meta", attrs={"name": name}
    )
    assert len(found) == 1, (name, found)
    return found[0]["content"]


def csp_of(page) -> str:
    (tag,) = page.head.find_all("meta", attrs={"http-equiv": "Content-Security-Policy"})
    return tag["content"]


def json_ld(page) -> dict:
    (script,) = page.head.find_all("script")
    assert script["type"] == "application/ld+json" and not script.get("src")
    return json.loads(script.string)


def test_every_published_meme_has_a_share_page_a_link_preview_can_read(tmp_path):
    memes = [make_meme(i) for i in range(5)]
    memes[2] = replace(memes[2], credit="Photo: Ana", tags=("cats", "Monday", "😂"),
                       caption="First line\nsecond line")  # fmt: skip
    memes[3] = replace(memes[3], status="removed")  # a hole: 2 and 4 are neighbours
    docs = build(memes, make_config(tmp_path))
    assert SHARE_PAGE_KEYS(docs) == [f"m/meme-{i}.html" for i in (0, 1, 2, 4)]
    gallery_csp = csp_of(soup(docs["index.html"]))
    assert "script-src 'self'" in gallery_csp and "'unsafe-inline'" not in gallery_csp

    meme = memes[2]
    doc = docs["m/meme-2.html"]
    assert doc.content_type == "text/html; charset=utf-8"
    page = soup(doc)
    url = BASE + "m/meme-2.html"
    index_entry = {m["slug"]: m for m in load(docs["index.json"])["memes"]}["meme-2"]
    assert index_entry["page_url"] == load(docs["m/meme-2.json"])["meme"]["page_url"] == url
    og = meme.renditions[2]
    assert (og.name, og.content_type) == ("og", "image/jpeg")
    assert {
        name: meta(page, name)
        for name in ("og:title", "og:description", "og:url", "og:type", "og:image",
                     "og:image:width", "og:image:height", "og:image:alt", "twitter:card")
    } == {
        "og:title": "Meme 2", "og:description": "First line second line", "og:url": url,
        "og:type": "article", "og:image": BASE + og.key, "og:image:width": "1200",
        "og:image:height": "630", "og:image:alt": meme.alt,
        "twitter:card": "summary_large_image",
    }  # fmt: skip
    (canonical,) = page.head.find_all("link", rel="canonical")
    assert canonical["href"] == url
    assert csp_of(page) == gallery_csp  # the very same policy as the gallery page
    assert page.title.string == "Meme 2 · Test Memes"

    ld = json_ld(page)
    assert ld["@context"] == "https://schema.org" and ld["@type"] == "ImageObject"
    assert ld["contentUrl"] == BASE + meme.renditions[1].key  # the widest whole image
    assert (ld["url"], ld["caption"], ld["creditText"]) == (url, meme.caption, "Photo: Ana")
    assert ld["datePublished"] == iso(meme.published_at)

    body = page.body
    (image,) = body.select("img.meme")
    assert image["alt"] == meme.alt
    assert image["src"] == "../" + meme.renditions[1].key  # relative: works from any host
    widths = [part.rsplit(" ", 1)[1] for part in image["srcset"].split(", ")]
    assert widths == ["320w", "1200w"]  # every whole-image width, not the cropped og
    assert (image["width"], image["height"]) == ("1200", "900")
    (placeholder,) = body.select("img.ph")
    assert placeholder["src"].startswith("data:image/svg+xml,") and "336699" in placeholder["src"]
    assert body.select_one(".title").string == "Meme 2"
    assert body.select_one(".caption").string == "First line\nsecond line"
    assert body.select_one(".credit").string == "Photo: Ana"
    tags = [a.get_text() for a in body.select(".meta .tag")]
    assert tags == ["#cats", "#Monday", "#😂"]
    assert [a["href"] for a in body.select(".meta a.tag")] == [
        "../index.html#/t/cats", "../index.html#/t/monday"
    ]  # the emoji-only tag has no index to link to
    assert body.select_one(".meta a.chip")["href"] == "../index.html#/c/" + meme.category
    assert body.select_one("time")["datetime"] == iso(meme.published_at)
    assert body.select_one("time").string == "1 March 2026"
    # neighbours over the hole, and the way back
    assert body.select_one("a.newer")["href"] == "meme-4.html"
    assert body.select_one("a.older")["href"] == "meme-1.html"
    assert body.select_one("a.back")["href"] == "../index.html"
    assert body.select_one("a.gallery")["href"] == "../index.html#/m/meme-2"
    assert "newer" not in str(soup(docs["m/meme-4.html"]).select("nav a"))
    assert not soup(docs["m/meme-0.html"]).select("a.older")


def test_the_feeds_and_share_pages_point_readers_at_the_gallery_page_itself(tmp_path):
    """The site's home in the RSS channel, the JSON Feed and a share page's JSON-LD is the
    gallery page, a document the build produces, like every other gallery link (newsletter,
    sitemap, share pages): a bare bucket or CDN root serves no index document."""
    docs = build([make_meme(i) for i in range(3)], make_config(tmp_path))
    home = BASE + "index.html"
    assert "index.html" in docs
    rss = feedparser.parse(docs["feed.xml"].data)
    assert rss.feed.link == home
    assert load(docs["feed.json"])["home_page_url"] == home
    assert json_ld(soup(docs["m/meme-1.html"]))["isPartOf"]["url"] == home


def test_share_page_stylesheet_is_the_gallery_one_and_nothing_comes_from_elsewhere(tmp_path):
    docs = build([make_meme(0)], make_config(tmp_path))
    page = soup(docs["m/meme-0.html"])
    css = hashlib.sha256(docs["gallery.css"].data).hexdigest()[:12]
    (stylesheet,) = page.head.find_all("link", rel="stylesheet")
    assert stylesheet["href"] == f"../gallery.css?v={css}"
    assert not page.find_all("script", src=True)
    assert not page.find_all(style=True), "the CSP allows no inline style"
    for tag in page.find_all(["img", "link", "a"]):
        target = tag.get("src") or tag.get("href") or ""
        if tag.name == "link" and "canonical" in tag.get("rel", []):
            continue
        assert not target.startswith(("http:", "https:", "//")), target


def test_script_in_a_caption_cannot_break_out_of_the_json_ld_or_the_page(tmp_path):
    evil = '</script><script>alert(1)</script><!-- "quoted" & <b>'
    memes = [make_meme(0, caption=evil, title=evil, alt=evil, credit=evil, tags=(evil,))]
    docs = build(memes, make_config(tmp_path))
    raw = docs["m/meme-0.html"].data.decode()
    assert raw.count("<script") == 1 and raw.count("</script>") == 1
    page = soup(docs["m/meme-0.html"])
    assert len(page.find_all("script")) == 1
    ld = json_ld(page)  # it still parses, to the very text entered
    assert ld["caption"] == ld["name"] == evil
    assert ld["keywords"] == [evil]
    assert meta(page, "og:title") == evil and meta(page, "og:image:alt") == evil
    assert page.body.select_one(".caption").string == evil
    assert page.body.select_one(".credit").string == evil


def test_a_meme_without_a_jpeg_rendition_has_no_og_image_and_feeds_fall_back(tmp_path):
    meme = make_meme(0)
    meme = replace(meme, renditions=meme.renditions[:2])  # WebP only
    docs = build([meme], make_config(tmp_path))
    page = soup(docs["m/meme-0.html"])
    assert not page.head.find_all("meta", attrs={"property": "og:image"})
    assert meta(page, "twitter:card") == "summary_large_image"
    assert load(docs["feed.json"])["items"][0]["image"] == BASE + meme.renditions[1].key


def test_og_rendition_prefers_the_og_jpeg_then_the_widest_jpeg():
    meme = make_meme(0)
    assert gallery.og_rendition(meme).name == "og"
    social = RenditionAsset("social", "i/x/social.jpg", 1080, 1080, "image/jpeg", 1)
    phone = RenditionAsset("phone", "i/x/phone.jpg", 640, 480, "image/jpeg", 1)
    webp_og = RenditionAsset("og", "i/x/og.webp", 1200, 630, "image/webp", 1)
    assert gallery.og_rendition(replace(meme, renditions=(phone, social, webp_og))) == social
    assert gallery.og_rendition(replace(meme, renditions=(webp_og,))) is None


def test_category_and_tag_indexes_name_what_they_list_on_every_page(tmp_path):
    memes = [make_meme(i, tags=("Cats",) if i % 2 else ("cats", "work")) for i in range(30)]
    docs = build(memes, make_config(tmp_path, page_size=5))
    for category in CATEGORIES:
        for key in follow(docs, f"categories/{category}/index.json")[1]:
            assert load(docs[key])["category"] == category and "tag" not in load(docs[key])
    visited = follow(docs, "tags/cats/index.json")[1]
    assert len(visited) > 1
    assert {load(docs[key])["tag"] for key in visited} == {"Cats"}  # 15 to 15: the first
    assert load(docs["tags/work/index.json"])["tag"] == "work"
    root = load(docs["index.json"])
    assert "category" not in root and "tag" not in root


def test_updated_at_is_the_last_edit_once_published(tmp_path):
    edited = T0 + timedelta(days=3)
    memes = [
        make_meme(0, updated_at=T0 - timedelta(days=1)),  # edited before it was published
        make_meme(1, updated_at=edited),
    ]
    docs = build(memes, make_config(tmp_path))
    got = {m["slug"]: m["updated_at"] for m in load(docs["index.json"])["memes"]}
    assert got == {"meme-0": iso(memes[0].published_at), "meme-1": iso(edited)}
    assert meta(soup(docs["m/meme-1.html"]), "article:modified_time") == iso(edited)


SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
IMAGE_NS = "http://www.google.com/schemas/sitemap-image/1.1"
W3C_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?")


def check_sitemap(data: bytes) -> list:
    """The rules of sitemaps.org's schema (sitemap.xsd 0.9) and Google's image extension
    (sitemap-image.xsd 1.1): UTF-8, a <urlset> in the sitemap namespace of at most 50,000
    <url>, each with one absolute <loc> under 2,048 characters, an optional W3C-datetime
    <lastmod>, nothing else in the sitemap namespace, and <image:image> holding one
    <image:loc> (at most 1,000 per url). Returns the <url> elements."""
    from lxml import etree

    assert data.startswith(b"<?xml") and b"encoding='utf-8'" in data.split(b"\n", 1)[0].lower()
    assert len(data) <= 50 * 1024 * 1024
    root = etree.fromstring(data)
    assert root.tag == f"{{{SITEMAP_NS}}}urlset"
    urls = list(root)
    assert 1 <= len(urls) <= 50_000
    for url in urls:
        assert url.tag == f"{{{SITEMAP_NS}}}url"
        children = [c.tag for c in url]
        assert children.count(f"{{{SITEMAP_NS}}}loc") == 1 and children[0].endswith("}loc")
        allowed = {f"{{{SITEMAP_NS}}}{n}" for n in ("loc", "lastmod", "changefreq", "priority")}
        assert all(tag in allowed or tag.startswith(f"{{{IMAGE_NS}}}") for tag in children)
        loc = url.findtext(f"{{{SITEMAP_NS}}}loc")
        assert re.fullmatch(r"https?://\S+", loc) and len(loc) < 2048
        lastmod = url.findtext(f"{{{SITEMAP_NS}}}lastmod")
        assert lastmod is None or W3C_DATETIME.fullmatch(lastmod), lastmod
        images = url.findall(f"{{{IMAGE_NS}}}image")
        assert len(images) <= 1000
        for image in images:
            assert [c.tag for c in image] == [f"{{{IMAGE_NS}}}loc"]
            assert re.fullmatch(r"https?://\S+", image.findtext(f"{{{IMAGE_NS}}}loc"))
    return urls


def test_sitemap_lists_every_share_page_with_its_image_and_robots_points_at_it(tmp_path):
    memes = [make_meme(i) for i in range(6)]
    memes[1] = replace(memes[1], status="removed")
    memes[4] = replace(memes[4], updated_at=T0 + timedelta(days=5))
    docs = build(memes, make_config(tmp_path))
    assert docs["sitemap.xml"].content_type == "application/xml"
    urls = check_sitemap(docs["sitemap.xml"].data)
    entries = {
        u.findtext(f"{{{SITEMAP_NS}}}loc"): (
            u.findtext(f"{{{SITEMAP_NS}}}lastmod"),
            [i.findtext(f"{{{IMAGE_NS}}}loc") for i in u.findall(f"{{{IMAGE_NS}}}image")],
        )
        for u in urls
    }
    shown = [m for m in memes if m.status == "published"]
    assert set(entries) == {BASE + "index.html"} | {BASE + f"m/{m.slug}.html" for m in shown}
    for m in shown:
        lastmod, images = entries[BASE + f"m/{m.slug}.html"]
        assert images == [BASE + m.renditions[1].key]
        assert lastmod == iso(gallery.updated_at(m))
    assert entries[BASE + "m/meme-4.html"][0] == iso(T0 + timedelta(days=5))
    robots = docs["robots.txt"]
    assert robots.content_type.startswith("text/plain")
    lines = robots.data.decode().splitlines()
    assert "User-agent: *" in lines and f"Sitemap: {BASE}sitemap.xml" in lines


def test_an_empty_gallery_has_a_valid_sitemap(tmp_path):
    docs = build([], make_config(tmp_path))
    (home,) = check_sitemap(docs["sitemap.xml"].data)
    assert home.findtext(f"{{{SITEMAP_NS}}}loc") == BASE + "index.html"


# --- share pages under any sequence of publishes, edits and removals -------------------------

from hypothesis import settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule  # noqa: E402


class SharePages(RuleBasedStateMachine):
    """Publish, edit and remove memes in any order: every published meme has a share page
    linking its nearest published neighbours, a removed one has none, and a build rewrites
    exactly the pages whose meme or neighbours changed (and nothing when nothing did)."""

    def __init__(self):
        super().__init__()
        self.config = make_config(None)
        self.memes: list[Meme] = []
        self.docs = build([], self.config)
        self.expected_changes: set[str] | None = set()

    def shown(self) -> list[Meme]:
        return [m for m in self.memes if m.status == "published"]

    def neighbours(self, slug: str) -> set[str]:
        shown = [m.slug for m in self.shown()]
        if slug not in shown:
            return set()
        i = shown.index(slug)
        return {f"m/{s}.html" for s in shown[max(i - 1, 0) : i + 2] if s != slug}

    @rule(count=st.integers(1, 3))
    def publish(self, count):
        shown = self.shown()
        changed = {f"m/{shown[-1].slug}.html"} if shown else set()
        for _ in range(count):
            meme = make_meme(len(self.memes))
            self.memes.append(meme)
            changed.add(f"m/{meme.slug}.html")
        self.expected_changes = changed

    @rule(pick=st.integers(0, 10_000))
    def remove(self, pick):
        shown = self.shown()
        if not shown:
            return
        victim = shown[pick % len(shown)]
        self.expected_changes = self.neighbours(victim.slug)
        self.memes[self.memes.index(victim)] = replace(victim, status="removed")

    @rule(pick=st.integers(0, 10_000), title=st.sampled_from(["A", "B </script>", "Ç"]))
    def edit_title(self, pick, title):
        shown = self.shown()
        if not shown:
            return
        meme = shown[pick % len(shown)]
        if meme.title == title:
            self.expected_changes = set()
        else:
            self.expected_changes = {f"m/{meme.slug}.html"} | self.neighbours(meme.slug)
        self.memes[self.memes.index(meme)] = replace(meme, title=title)

    @rule()
    def nothing(self):
        self.expected_changes = set()

    @invariant()
    def pages_link_their_neighbours_and_change_only_where_expected(self):
        docs = build(self.memes, self.config)
        shown = self.shown()
        assert sorted(SHARE_PAGE_KEYS(docs)) == sorted(f"m/{m.slug}.html" for m in shown)
        for i, meme in enumerate(shown):
            page = soup(docs[f"m/{meme.slug}.html"])
            older, newer = page.select_one("a.older"), page.select_one("a.newer")
            assert (older["href"] if older else None) == (
                f"{shown[i - 1].slug}.html" if i > 0 else None
            )
            assert (newer["href"] if newer else None) == (
                f"{shown[i + 1].slug}.html" if i + 1 < len(shown) else None
            )
        old_pages = {k: d.data for k, d in self.docs.items() if k.endswith(".html")}
        changed = {k for k in SHARE_PAGE_KEYS(docs) if old_pages.get(k) != docs[k].data}
        assert changed == self.expected_changes
        self.docs = docs


SharePages.TestCase.settings = settings(max_examples=15, stateful_step_count=8, deadline=None)
test_share_pages_follow_every_publish_edit_and_removal = SharePages.TestCase


# --- share pages: built only when what they show changed --------------------------------------


def built_share_pages(memes, cfg, before: dict[str, Document]) -> dict[str, Document]:
    """The share pages a build makes when storage holds ``before`` (the manifest records the
    inputs each page was made from); every other document is as a full build makes it."""
    sources = {key: doc.source for key, doc in before.items()}
    docs = {d.key: d for d in gallery.build_documents(memes, cfg, made=sources.get)}
    full = build(memes, cfg)
    pages = {k: d for k, d in docs.items() if re.fullmatch(r"m/[^/]+\.html", k)}
    assert {k: d.data for k, d in docs.items() if k not in pages} == {
        k: d.data for k, d in full.items() if k not in SHARE_PAGE_KEYS(full)}
    for key, page in pages.items():
        assert page.data == full[key].data, key  # the very bytes a full build makes
    for key in SHARE_PAGE_KEYS(full):
        if key not in pages:  # left out: storage's page is what a full build makes
            assert key in before and before[key].data == full[key].data, key
    return pages


def test_only_the_share_pages_whose_inputs_changed_are_built(tmp_path):
    cfg = make_config(tmp_path, page_size=10)
    memes = [make_meme(i) for i in range(40)]
    before = build(memes, cfg)
    assert built_share_pages(memes, cfg, before) == {}  # nothing changed, nothing built

    edited = list(memes)
    edited[5] = replace(memes[5], caption="Edited caption", updated_at=T0 + timedelta(days=2))
    pages = built_share_pages(edited, cfg, before)
    assert set(pages) == {"m/meme-5.html"}  # neighbours show its title, not its caption
    assert "Edited caption" in pages["m/meme-5.html"].data.decode()

    retitled = list(memes)
    retitled[5] = replace(memes[5], title="New title")
    assert set(built_share_pages(retitled, cfg, before)) == {
        "m/meme-4.html", "m/meme-5.html", "m/meme-6.html"}  # fmt: skip

    more = [*memes, *(make_meme(i) for i in range(40, 52))]
    assert set(built_share_pages(more, cfg, before)) == {
        f"m/meme-{i}.html" for i in range(39, 52)}  # fmt: skip

    removed = [replace(m, status="removed") if m.slug == "meme-7" else m for m in memes]
    pages = built_share_pages(removed, cfg, before)
    assert set(pages) == {"m/meme-6.html", "m/meme-8.html"}  # its page is not made at all
    assert "meme-7" not in pages["m/meme-6.html"].data.decode()


@pytest.mark.parametrize("setting", ["title", "base_url"])
def test_a_site_setting_the_share_pages_show_builds_every_one(tmp_path, setting):
    cfg = make_config(tmp_path)
    memes = [make_meme(i) for i in range(12)]
    before = build(memes, cfg)
    value = {"title": "Renamed Memes", "base_url": "https://other.example.net/"}[setting]
    changed = replace(cfg, site=replace(cfg.site, **{setting: value}))
    pages = built_share_pages(memes, changed, before)
    assert set(pages) == set(SHARE_PAGE_KEYS(before))
    assert all(value in page.data.decode() for page in pages.values())


@pytest.mark.parametrize("change", [
    {"alt": "Another alt"}, {"credit": "@someone"}, {"category": "other"}, {"tags": ("new",)},
    {"placeholder_color": "#112233"}, {"width": 1200}, {"updated_at": T0 + timedelta(days=9)},
    {"published_at": T0 + timedelta(minutes=5, seconds=30)},
    {"renditions": (RenditionAsset("og", "i/meme-5/og.new.jpg", 1200, 630, "image/jpeg", 1),)},
])  # fmt: skip
def test_whatever_a_share_page_shows_builds_it_again(tmp_path, change):
    cfg = make_config(tmp_path)
    memes = [make_meme(i) for i in range(10)]
    before = build(memes, cfg)
    memes[5] = replace(memes[5], **change)
    assert "m/meme-5.html" in built_share_pages(memes, cfg, before)

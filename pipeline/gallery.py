"""The published gallery: index.json and its pages, per-category and per-tag indexes,
one permalink document per meme, RSS and JSON feeds, the JSON Schema and the static viewer.

Everything here is pure: meme records in, :class:`~pipeline.documents.Document` objects out,
byte-identical for the same records (no clock, no randomness, sorted keys).

Stable paging
-------------
Every meme that was ever published gets an *ordinal*: its position in the oldest-first
sequence ordered by ``(published_at, publish_at, id)``. A removed meme keeps its ordinal as a
hole: it is never shown, but the memes after it do not move, so a removal rewrites only the
page it was on. With page size ``S`` page ``k`` (1, 2, ...) holds ordinals
``[(k-1)*S, k*S)``. With ``F`` full pages:

* the head ``index.json`` holds the last full page and the partial page after it (ordinals
  ``[(F-1)*S, N)``, i.e. between S and 2S-1 positions once the gallery has S or more), newest
  first, and its ``next`` points at ``pages/<F-1>.json`` (or is null);
* archived pages ``pages/<k>.json`` exist for k = 1 .. F-1, each ``next`` pointing at
  ``pages/<k-1>.json``; ``pages/1.json`` ends the chain with ``next: null``.

Publishing a batch of at most S memes therefore rewrites the head and writes at most one new
archived page (the one that just filled up); every older page stays byte-identical unless a
meme on it is edited or removed. An archived page's ``generated_at`` is the newest
``published_at`` among its positions and its ``count`` is the number of positions up to and
including it (``k*S``, removed memes included), so neither ever changes. The head's ``count``
is the number of memes it leads to (all pages) and its ``generated_at`` the newest
``published_at`` of its positions (never the clock).

The same scheme, with ordinals counted within the sub-sequence, gives
``categories/<category>/index.json`` + ``pages/<k>.json`` and ``tags/<tag-slug>/...``. Moving
a meme to another category (or changing its tags) shifts the ordinals of the later memes of
both sub-sequences; that is the one edit that rewrites more than its own pages.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources

from feedgen.feed import FeedGenerator
from slugify import slugify

from pipeline.config import Config
from pipeline.documents import Document
from pipeline.library import Meme, RenditionAsset, iso

VERSION = 1

INDEX = "index.json"
SCHEMA = "schema.json"
FEED_XML = "feed.xml"
FEED_JSON = "feed.json"
PAGE_HTML = "index.html"

JSON_TYPE = "application/json"
CONTENT_TYPES = {
    SCHEMA: "application/schema+json",
    FEED_XML: "application/rss+xml",
    FEED_JSON: "application/feed+json",
    PAGE_HTML: "text/html; charset=utf-8",
    "gallery.js": "text/javascript; charset=utf-8",
    "gallery.css": "text/css; charset=utf-8",
}
STATIC_FILES = (PAGE_HTML, "gallery.js", "gallery.css")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Characters XML 1.0 cannot carry at all (lxml refuses them); JSON keeps them as entered.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


# --- public API ----------------------------------------------------------------------------


def build_documents(memes: Sequence[Meme], config: Config) -> list[Document]:
    """Every document of the gallery for these ever-published memes.

    ``memes``: status 'published' ones are shown; 'removed' ones that have a published_at are
    holes that keep page positions stable; anything else (queued) is ignored. The list comes
    in a safe upload order: permalink documents and archived pages before the category/tag
    heads, feeds and ``index.json`` that point at them; the static viewer last.
    """
    base = config.site.base_url
    site = {"base_url": base, "title": config.site.title}
    size = config.gallery.page_size
    sequence = _ever_published(memes)
    visible = [m for m in sequence if m.status == "published"]
    cache_json: dict[int, str] = {m.id: _dumps(meme_object(m, base)) for m in visible}
    site_json = _dumps(site)

    early: list[Document] = [Document(SCHEMA, schema_bytes(), CONTENT_TYPES[SCHEMA])]
    for meme in sorted(visible, key=lambda m: m.slug):
        early.append(_permalink(meme, cache_json[meme.id], site_json))

    pages: list[Document] = []
    heads: list[Document] = []
    index_sets: list[tuple[str, list[Meme]]] = []

    categories = sorted({*config.categories, *(m.category for m in visible)})
    category_summaries = []
    for category in categories:
        path = category_path(category)
        members = [m for m in sequence if m.category == category]
        index_sets.append((path, members))
        category_summaries.append(
            {
                "count": sum(1 for m in members if m.status == "published"),
                "name": category,
                "url": base + path + INDEX,
            }
        )

    tag_members: dict[str, list[Meme]] = {}
    tag_spellings: dict[str, dict[str, int]] = {}
    for meme in sequence:
        seen: set[str] = set()
        for tag in meme.tags:
            slug = tag_slug(tag)
            if not slug or slug in seen:
                continue
            seen.add(slug)
            tag_members.setdefault(slug, []).append(meme)
            if meme.status == "published":
                spellings = tag_spellings.setdefault(slug, {})
                spellings[tag] = spellings.get(tag, 0) + 1
    tag_summaries = []
    for slug in sorted(tag_spellings):  # tags with no visible meme left get no index
        members = tag_members[slug]
        index_sets.append((f"tags/{slug}/", members))
        spellings = tag_spellings[slug]
        name = min(spellings, key=lambda s: (-spellings[s], s))
        tag_summaries.append(
            {
                "count": sum(spellings.values()),
                "name": name,
                "slug": slug,
                "url": base + f"tags/{slug}/" + INDEX,
            }
        )

    root_extra = {"categories": category_summaries, "tags": tag_summaries}
    index_sets.insert(0, ("", sequence))
    root_head: Document | None = None
    for prefix, members in index_sets:
        docs = _paged_index(prefix, members, size, base, site_json, cache_json,
                            root_extra if prefix == "" else None)  # fmt: skip
        pages.extend(docs[:-1])
        if prefix == "":
            root_head = docs[-1]
        else:
            heads.append(docs[-1])

    feeds = [feed_xml(visible, config), feed_json(visible, config)]
    assert root_head is not None
    return [*early, *pages, *heads, *feeds, root_head, *static_documents()]


def asset_keys(memes: Iterable[Meme]) -> set[str]:
    """Storage keys of the renditions the gallery references (published memes only)."""
    return {r.key for m in memes if m.status == "published" for r in m.renditions}


def meme_object(meme: Meme, base_url: str) -> dict:
    """The public JSON shape of one meme (see schema.json ``$defs/meme``)."""
    color = meme.placeholder_color.lower() if meme.placeholder_color else None
    return {
        **meme.public_fields(),
        "texts": [text for text in meme.box_texts if text],
        "animated": meme.animated,
        "placeholder": {"blurhash": meme.blurhash or None, "color": color or "#808080"},
        "renditions": {
            r.name: {
                "bytes": r.bytes,
                "content_type": r.content_type,
                "height": r.height,
                "url": base_url + r.key,
                "width": r.width,
            }
            for r in sorted(meme.renditions, key=lambda r: r.name)
        },
        "url": base_url + permalink_key(meme.slug),
    }


def permalink_key(slug: str) -> str:
    return f"m/{slug}.json"


def category_path(category: str) -> str:
    """Folder of a category's index ('categories/funny/'); config names are already slugs."""
    return f"categories/{slugify(category) or 'uncategorized'}/"


def tag_slug(tag: str) -> str:
    """URL-safe folder name of a tag ('Cats' and 'cats' share one index); '' for a tag such as
    an emoji alone that has no letters to keep (it gets no index, the meme still lists it)."""
    return slugify(tag)


def page_ranges(total: int, size: int) -> tuple[tuple[int, int], list[tuple[int, int, int]]]:
    """Split ``total`` ordinals into the head range and the archived pages.

    Returns ``((head_start, total), [(k, start, end), ...])`` for k = 1 .. F-1 where
    F = total // size: the head holds the last full page and the partial one after it.
    """
    full = total // size
    head_start = max(full - 1, 0) * size
    return (head_start, total), [(k, (k - 1) * size, k * size) for k in range(1, full)]


def is_contain_fit(meme: Meme, rendition: RenditionAsset) -> bool:
    """True when the rendition shows the whole image at the original's aspect ratio (give or
    take the rounding of one pixel), i.e. it was neither cropped nor padded."""
    if meme.width <= 0 or meme.height <= 0:
        return False
    skew = abs(rendition.height * meme.width - rendition.width * meme.height)
    return skew <= max(meme.width, meme.height)


def primary_rendition(meme: Meme) -> RenditionAsset | None:
    """The widest whole-image rendition (the feed image, the permalink view's picture)."""
    if not meme.renditions:
        return None
    fits = [r for r in meme.renditions if is_contain_fit(meme, r)] or list(meme.renditions)
    return max(fits, key=lambda r: (r.width, -r.bytes, r.name))


@cache
def schema_bytes() -> bytes:
    """pipeline/schema.json exactly as shipped; published as ``schema.json``."""
    return resources.files("pipeline").joinpath("schema.json").read_bytes()


def schema() -> dict:
    return json.loads(schema_bytes())


@cache
def static_documents() -> tuple[Document, ...]:
    """The viewer (index.html, gallery.js, gallery.css). index.html asks for the script and
    stylesheet with ``?v=<hash>`` so a browser never pairs a new page with a cached old script.
    """
    folder = resources.files("pipeline").joinpath("static")
    files = {name: folder.joinpath(name).read_bytes() for name in STATIC_FILES}
    page = files[PAGE_HTML]
    for name, marker in (("gallery.js", b"__JS_VERSION__"), ("gallery.css", b"__CSS_VERSION__")):
        page = page.replace(marker, hashlib.sha256(files[name]).hexdigest()[:12].encode())
    files[PAGE_HTML] = page
    return tuple(Document(name, files[name], CONTENT_TYPES[name]) for name in STATIC_FILES)


# --- feeds ---------------------------------------------------------------------------------


def _feed_items(visible: Sequence[Meme], config: Config) -> list[Meme]:
    return list(reversed(visible[-config.gallery.feed_size :])) if visible else []


def view_url(base_url: str, slug: str) -> str:
    """The human permalink: the viewer's single-meme view."""
    return f"{base_url}index.html#/m/{slug}"


def _item_title(meme: Meme) -> str:
    if meme.title.strip():
        return meme.title
    first = meme.caption.strip().splitlines()[0] if meme.caption.strip() else meme.slug
    return shorten(first, 80)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _item_html(meme: Meme, base_url: str) -> str:
    """A small HTML body for feed readers; every text is escaped, never trusted."""
    parts = []
    image = primary_rendition(meme)
    if image is not None:
        parts.append(
            f'<p><img src="{html.escape(base_url + image.key)}" width="{image.width}" '
            f'height="{image.height}" alt="{html.escape(meme.alt)}"></p>'
        )
    if meme.caption:
        parts.append("<p>" + html.escape(meme.caption).replace("\n", "<br>") + "</p>")
    if meme.credit:
        parts.append("<p><small>" + html.escape(meme.credit) + "</small></p>")
    return "".join(parts)


def _xml_text(text: str) -> str:
    return _XML_INVALID.sub("", text)


def _newest(memes: Sequence[Meme]) -> datetime:
    return max((m.published_at for m in memes if m.published_at), default=_EPOCH)


def feed_xml(visible: Sequence[Meme], config: Config) -> Document:
    """RSS 2.0 of the latest ``gallery.feed_size`` memes, each with its image as enclosure."""
    base = config.site.base_url
    items = _feed_items(visible, config)
    fg = FeedGenerator()
    fg.title(_xml_text(config.site.title))
    # feedgen takes the channel <link> from the last link given: the site goes last
    fg.link(href=base + FEED_XML, rel="self", type=CONTENT_TYPES[FEED_XML])
    fg.link(href=base, rel="alternate")
    fg.description(_xml_text(f"The latest memes from {config.site.title}"))
    fg.generator("memes-pipeline")
    fg.lastBuildDate(_newest(visible))  # never the clock: same memes, same bytes
    for meme in reversed(items):  # feedgen prepends: add oldest first to list newest first
        entry = fg.add_entry()
        link = view_url(base, meme.slug)
        entry.guid(link, permalink=True)
        entry.link(href=link)
        entry.title(_xml_text(_item_title(meme)))
        entry.description(_xml_text(_item_html(meme, base)))
        entry.category(term=_xml_text(meme.category))
        entry.pubDate(meme.published_at or _EPOCH)
        image = primary_rendition(meme)
        if image is not None:
            entry.enclosure(base + image.key, image.bytes, image.content_type)
    data = fg.rss_str(pretty=True)
    return Document(FEED_XML, data, CONTENT_TYPES[FEED_XML])


def feed_json(visible: Sequence[Meme], config: Config) -> Document:
    """JSON Feed 1.1 of the latest ``gallery.feed_size`` memes."""
    base = config.site.base_url
    items = []
    for meme in _feed_items(visible, config):
        image = primary_rendition(meme)
        item: dict = {
            "id": base + permalink_key(meme.slug),
            "url": view_url(base, meme.slug),
            "title": _item_title(meme),
            "content_text": meme.caption,
            "content_html": _item_html(meme, base),
            "date_published": iso(meme.published_at or _EPOCH),
            "tags": [meme.category, *(t for t in meme.tags if t != meme.category)],
        }
        if image is not None:
            item["image"] = base + image.key
            item["attachments"] = [
                {
                    "url": base + image.key,
                    "mime_type": image.content_type,
                    "size_in_bytes": image.bytes,
                }
            ]
        items.append(item)
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": config.site.title,
        "home_page_url": base,
        "feed_url": base + FEED_JSON,
        "items": items,
    }
    return Document(FEED_JSON, _dumps(feed).encode("utf-8"), CONTENT_TYPES[FEED_JSON])


# --- indexes -------------------------------------------------------------------------------


def _ever_published(memes: Iterable[Meme]) -> list[Meme]:
    """Published memes and removed-after-publishing holes, oldest first, with ordinals fixed
    by (published_at, publish_at, id) whatever order the caller passed them in."""
    kept = [m for m in memes if m.published_at is not None and m.status in ("published", "removed")]
    return sorted(kept, key=lambda m: (m.published_at, m.publish_at, m.id))


def _dumps(value: object) -> str:
    """The one JSON encoding: sorted keys, compact, UTF-8 text kept as entered."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class _Page:
    key: str
    count: int
    generated_at: str | None
    memes: list[str]  # encoded meme objects, newest first
    next: str | None
    extra: dict | None = None


def _encode_page(page: _Page, site_json: str) -> bytes:
    """Equivalent to _dumps(page dict) but reuses each meme's encoding (the bulk of the work)."""
    fields: dict[str, str] = {
        "count": str(page.count),
        "generated_at": _dumps(page.generated_at),
        "memes": "[" + ",".join(page.memes) + "]",
        "next": _dumps(page.next),
        "site": site_json,
        "version": str(VERSION),
    }
    for name, value in (page.extra or {}).items():
        fields[name] = _dumps(value)
    body = ",".join(f'"{name}":{fields[name]}' for name in sorted(fields))
    return ("{" + body + "}\n").encode("utf-8")


def _paged_index(
    prefix: str,
    members: Sequence[Meme],
    size: int,
    base: str,
    site_json: str,
    encoded: dict[int, str],
    extra: dict | None,
) -> list[Document]:
    """The archived pages of one index (oldest first), then its head document last."""
    (head_start, total), archived = page_ranges(len(members), size)

    def shown(start: int, end: int) -> list[str]:
        return [encoded[m.id] for m in reversed(members[start:end]) if m.status == "published"]

    def newest(start: int, end: int) -> str | None:
        # the sequence is sorted by published_at, so the last position is the newest
        return iso(members[end - 1].published_at or _EPOCH) if end > start else None

    def page_url(k: int) -> str | None:
        return f"{base}{prefix}pages/{k}.json" if k >= 1 else None

    docs = []
    for k, start, end in archived:
        page = _Page(f"{prefix}pages/{k}.json", end, newest(start, end), shown(start, end),
                     page_url(k - 1))  # fmt: skip
        docs.append(Document(page.key, _encode_page(page, site_json), JSON_TYPE))
    head_count = sum(1 for m in members if m.status == "published")
    head = _Page(prefix + INDEX, head_count, newest(head_start, total), shown(head_start, total),
                 page_url(len(archived)), extra)  # fmt: skip
    docs.append(Document(head.key, _encode_page(head, site_json), JSON_TYPE))
    return docs


def _permalink(meme: Meme, meme_json: str, site_json: str) -> Document:
    body = f'{{"meme":{meme_json},"site":{site_json},"version":{VERSION}}}\n'
    return Document(permalink_key(meme.slug), body.encode("utf-8"), JSON_TYPE)

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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

from feedgen.feed import FeedGenerator
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
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
SITEMAP = "sitemap.xml"
ROBOTS = "robots.txt"

JSON_TYPE = "application/json"
CONTENT_TYPES = {
    SCHEMA: "application/schema+json",
    FEED_XML: "application/rss+xml",
    FEED_JSON: "application/feed+json",
    PAGE_HTML: "text/html; charset=utf-8",
    SITEMAP: "application/xml",
    ROBOTS: "text/plain; charset=utf-8",
    "gallery.js": "text/javascript; charset=utf-8",
    "gallery.css": "text/css; charset=utf-8",
}
STATIC_FILES = (PAGE_HTML, "gallery.js", "gallery.css")
#: The rendition a link preview, a feed enclosure and the sitemap's image point at, if JPEG.
OG = "og"
TEMPLATES = Path(__file__).parent / "templates"
#: The Content-Security-Policy of every HTML page of the site (the viewer and the share pages):
#: scripts only from the site's own folder, so no inline script runs whatever a caption holds
#: (a JSON-LD block is data, never run); images from anywhere (renditions may sit on a CDN).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src * data: blob:; "
    "connect-src 'self' http: https:; base-uri 'none'; form-action 'none'"
)
SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
IMAGE_SITEMAP_NS = "http://www.google.com/schemas/sitemap-image/1.1"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_GREY = "#808080"  # the placeholder colour of a meme that has none
_HEX_COLOR = re.compile("#[0-9a-fA-F]{6}")
# Characters XML 1.0 cannot carry at all (lxml refuses them); JSON keeps them as entered.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


# --- public API ----------------------------------------------------------------------------


def build_documents(memes: Sequence[Meme], config: Config,
                    made: Callable[[str], str | None] | None = None) -> list[Document]:  # fmt: skip
    """Every document of the gallery for these ever-published memes.

    ``memes``: status 'published' ones are shown; 'removed' ones that have a published_at are
    holes that keep page positions stable; anything else (queued) is ignored. The list comes
    in a safe upload order: permalink documents and archived pages before the category/tag
    heads, feeds and ``index.json`` that point at them; the static viewer last.

    ``made(key)``: what the object storage holds at ``key`` was made from (the manifest's
    record of Document.source). Share pages whose inputs are unchanged are then left out:
    storage has them already, byte for byte (see share_pages).
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
    early += share_pages(visible, config, made, cache_json)
    early.append(sitemap(visible, config))
    early.append(Document(ROBOTS, robots_txt(base).encode("utf-8"), CONTENT_TYPES[ROBOTS]))

    pages: list[Document] = []
    heads: list[Document] = []
    index_sets: list[tuple[str, list[Meme], dict[str, str] | None]] = []

    categories = sorted({*config.categories, *(m.category for m in visible)})
    category_summaries = []
    for category in categories:
        path = category_path(category)
        members = [m for m in sequence if m.category == category]
        index_sets.append((path, members, {"category": category}))
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
        spellings = tag_spellings[slug]
        name = min(spellings, key=lambda s: (-spellings[s], s))
        index_sets.append((f"tags/{slug}/", members, {"tag": name}))
        tag_summaries.append(
            {
                "count": sum(spellings.values()),
                "name": name,
                "slug": slug,
                "url": base + f"tags/{slug}/" + INDEX,
            }
        )

    root_extra = {"categories": category_summaries, "tags": tag_summaries}
    index_sets.insert(0, ("", sequence, None))
    root_head: Document | None = None
    for prefix, members, names in index_sets:
        docs = _paged_index(prefix, members, size, base, site_json, cache_json,
                            root_extra if prefix == "" else None, names)  # fmt: skip
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
        "placeholder": {"blurhash": meme.blurhash or None, "color": color or _GREY},
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
        "updated_at": iso(updated_at(meme)),
        "url": base_url + permalink_key(meme.slug),
        "page_url": page_url(base_url, meme.slug),
    }


def permalink_key(slug: str) -> str:
    return f"m/{slug}.json"


def page_key(slug: str) -> str:
    """Storage key of a meme's share page, beside its permalink document."""
    return f"m/{slug}.html"


def page_url(base_url: str, slug: str) -> str:
    """The meme's share page: the URL to share, the feeds' item link and id."""
    return base_url + page_key(slug)


def updated_at(meme: Meme) -> datetime:
    """When the meme last changed on the site: its last edit once published, else the
    publishing itself (an edit waits for the next publish, which writes it)."""
    published = meme.published_at or _EPOCH
    return max(published, meme.updated_at)


def category_path(category: str) -> str:
    """Folder of a category's index ('categories/funny/'); config names are already slugs."""
    return f"categories/{slugify(category) or 'uncategorized'}/"


@cache
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
    return max(fits, key=_widest)


def og_rendition(meme: Meme) -> RenditionAsset | None:
    """The image a link preview, a feed enclosure and the sitemap show: the ``og`` rendition
    when it is a JPEG (the format every consumer takes), else the widest JPEG rendition;
    None when the meme has no JPEG rendition at all."""
    jpegs = [r for r in meme.renditions if r.content_type == "image/jpeg"]
    named = [r for r in jpegs if r.name == OG]
    return named[0] if named else max(jpegs, key=_widest, default=None)


def whole_renditions(meme: Meme) -> list[RenditionAsset]:
    """The renditions a ``srcset`` offers: every width of a whole-image rendition (the
    smallest file where two have one width), narrowest first; all of them when none shows
    the whole image."""
    fits = [r for r in meme.renditions if is_contain_fit(meme, r)] or list(meme.renditions)
    by_width: dict[int, RenditionAsset] = {}
    for rendition in sorted(fits, key=lambda r: (r.bytes, r.name)):
        by_width.setdefault(rendition.width, rendition)
    return [by_width[width] for width in sorted(by_width)]


def _widest(rendition: RenditionAsset) -> tuple[int, int, str]:
    return (rendition.width, -rendition.bytes, rendition.name)


@cache
def schema_bytes() -> bytes:
    """pipeline/schema.json exactly as shipped; published as ``schema.json``."""
    return resources.files("pipeline").joinpath("schema.json").read_bytes()


def schema() -> dict:
    return json.loads(schema_bytes())


@cache
def _static_version(name: str) -> str:
    """The short content hash a page asks for a static file with (``?v=``)."""
    folder = resources.files("pipeline").joinpath("static")
    return hashlib.sha256(folder.joinpath(name).read_bytes()).hexdigest()[:12]


@cache
def static_documents() -> tuple[Document, ...]:
    """The viewer (index.html, gallery.js, gallery.css). index.html asks for the script and
    stylesheet with ``?v=<hash>`` so a browser never pairs a new page with a cached old script.
    """
    folder = resources.files("pipeline").joinpath("static")
    files = {name: folder.joinpath(name).read_bytes() for name in STATIC_FILES}
    page = files[PAGE_HTML]
    for name, marker in (("gallery.js", b"__JS_VERSION__"), ("gallery.css", b"__CSS_VERSION__")):
        page = page.replace(marker, _static_version(name).encode())
    files[PAGE_HTML] = page.replace(b"__CSP__", CSP.encode())
    return tuple(Document(name, files[name], CONTENT_TYPES[name]) for name in STATIC_FILES)


# --- feeds ---------------------------------------------------------------------------------


def _feed_items(visible: Sequence[Meme], config: Config) -> list[Meme]:
    return list(reversed(visible[-config.gallery.feed_size :])) if visible else []


def _item_title(meme: Meme) -> str:
    if meme.title.strip():
        return meme.title
    first = meme.caption.strip().splitlines()[0] if meme.caption.strip() else meme.slug
    return shorten(first, 80)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _item_html(meme: Meme, base_url: str) -> str:
    """A small HTML body for feed readers; every text is escaped, never trusted, and takes
    its direction from its own letters (dir="auto": right-to-left captions read as such)."""
    parts = []
    image = primary_rendition(meme)
    if image is not None:
        parts.append(
            f'<p><img src="{html.escape(base_url + image.key)}" width="{image.width}" '
            f'height="{image.height}" alt="{html.escape(meme.alt)}"></p>'
        )
    if meme.caption:
        parts.append('<p dir="auto">' + html.escape(meme.caption).replace("\n", "<br>") + "</p>")
    if meme.credit:
        parts.append('<p dir="auto"><small>' + html.escape(meme.credit) + "</small></p>")
    return "".join(parts)


def _item_tags(meme: Meme) -> list[str]:
    """A feed item's categories: the meme's category, then each of its tags once."""
    return list(dict.fromkeys([meme.category, *meme.tags]))


def _enclosure(meme: Meme) -> RenditionAsset | None:
    """A feed item's image: the JPEG og rendition (auto-posters refuse WebP), else the
    primary one."""
    return og_rendition(meme) or primary_rendition(meme)


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
    fg.link(href=base + PAGE_HTML, rel="alternate")
    fg.description(_xml_text(f"The latest memes from {config.site.title}"))
    fg.generator("memes-pipeline")
    fg.lastBuildDate(_newest(visible))  # never the clock: same memes, same bytes
    for meme in reversed(items):  # feedgen prepends: add oldest first to list newest first
        entry = fg.add_entry()
        link = page_url(base, meme.slug)
        entry.guid(link, permalink=True)
        entry.link(href=link)
        entry.title(_xml_text(_item_title(meme)))
        entry.description(_xml_text(_item_html(meme, base)))
        for term in _item_tags(meme):
            entry.category(term=_xml_text(term))
        entry.pubDate(meme.published_at or _EPOCH)
        image = _enclosure(meme)
        if image is not None:
            entry.enclosure(base + image.key, image.bytes, image.content_type)
    data = fg.rss_str(pretty=True)
    return Document(FEED_XML, data, CONTENT_TYPES[FEED_XML])


def feed_json(visible: Sequence[Meme], config: Config) -> Document:
    """JSON Feed 1.1 of the latest ``gallery.feed_size`` memes."""
    base = config.site.base_url
    items = []
    for meme in _feed_items(visible, config):
        image = _enclosure(meme)
        link = page_url(base, meme.slug)
        item: dict = {
            "id": link,
            "url": link,
            "title": _item_title(meme),
            "content_text": meme.caption,
            "content_html": _item_html(meme, base),
            "date_published": iso(meme.published_at or _EPOCH),
            "date_modified": iso(updated_at(meme)),
            "tags": _item_tags(meme),
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
        "home_page_url": base + PAGE_HTML,
        "feed_url": base + FEED_JSON,
        "items": items,
    }
    return Document(FEED_JSON, _dumps(feed).encode("utf-8"), CONTENT_TYPES[FEED_JSON])


# --- share pages, sitemap, robots.txt ------------------------------------------------------


def share_pages(visible: Sequence[Meme], config: Config,
                made: Callable[[str], str | None] | None = None,
                meme_json: Mapping[int, str] | None = None) -> list[Document]:  # fmt: skip
    """One static HTML page per published meme (``m/<slug>.html``), ``visible`` oldest first:
    each links its older and newer neighbour, so a publish or a removal rewrites the pages
    next to the memes it adds or takes away, and nothing else.

    Each page's Document.source digests everything it is made from (share_source); a page
    whose source is what ``made(key)`` says storage's page was made from is not built at all,
    so a publish renders only the pages that change. ``meme_json``: each meme's public JSON
    by id, if the caller has it already."""
    stylesheet = "../gallery.css?v=" + _static_version("gallery.css")
    base = config.site.base_url
    site = (_share_engine(), stylesheet, base, config.site.title)
    page = None  # the template, loaded once when a first page is built
    pages = []
    for i, meme in enumerate(visible):
        older = visible[i - 1] if i > 0 else None
        newer = visible[i + 1] if i + 1 < len(visible) else None
        key = page_key(meme.slug)
        shown = meme_json[meme.id] if meme_json else _dumps(meme_object(meme, base))
        source = share_source(site, shown, older, newer)
        if made is not None and made(key) == source:
            continue
        page = page or template("share.html")  # once: each lookup would stat the file
        body = page.render(share_context(meme, older, newer, config, stylesheet))
        pages.append(Document(key, body.encode("utf-8"), CONTENT_TYPES[PAGE_HTML],
                              source=source))  # fmt: skip
    return pages


def share_source(site: tuple[str, ...], meme_json: str, older: Meme | None,
                 newer: Meme | None) -> str:  # fmt: skip
    """A digest of a share page's inputs: the engine (template and this module), the site
    settings it shows, the meme's public JSON (every field of the meme a page shows is in
    it: meme_object) and the slug and title of each neighbour it links."""
    neighbours = [[m.slug, _item_title(m)] if m else None for m in (older, newer)]
    shown = meme_json.encode("utf-8")
    digest = hashlib.sha256(json.dumps(site).encode())
    digest.update(b"%d:%s" % (len(shown), shown))  # length-prefixed: no two inputs run together
    digest.update(json.dumps(neighbours).encode())
    return digest.hexdigest()[:24]


@cache
def engine_version() -> str:
    """What turns memes into the gallery documents: this module and the share page template
    (_share_engine), the schema and the viewer's files. Publish compares it with the one the
    documents in storage were written by, so an upgrade that changes them reaches the site at
    the next run, also when no meme is due."""
    digest = hashlib.sha256(_share_engine().encode())
    digest.update(schema_bytes())
    for document in static_documents():
        digest.update(document.data)
    return digest.hexdigest()[:24]


@cache
def _share_engine() -> str:
    """What turns a meme into its share page: share.html and this module (the context, the
    CSP), so a new version of either builds every page once."""
    digest = hashlib.sha256((TEMPLATES / "share.html").read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:24]


def share_context(meme: Meme, older: Meme | None, newer: Meme | None, config: Config,
                  stylesheet: str) -> dict[str, Any]:  # fmt: skip
    """What share.html shows. In-page links are relative (the page works from any host);
    what a crawler reads (canonical, og:*, JSON-LD) is absolute."""
    base = config.site.base_url
    title = _item_title(meme)
    alt = " ".join(meme.alt.split()) or title
    description = shorten(" ".join(meme.caption.split()) or alt, 200)
    sources = whole_renditions(meme)
    shown = next((r for r in sources if r.width >= 1000), sources[-1] if sources else None)
    og = og_rendition(meme)
    published = iso(meme.published_at or _EPOCH)

    def neighbour(other: Meme | None) -> dict[str, str] | None:
        return {"href": f"{quote(other.slug)}.html", "title": _item_title(other)} if other else None

    image: dict[str, Any] = {"src": None, "srcset": "", "sizes": "", "width": meme.width,
                             "height": meme.height}  # fmt: skip
    if shown is not None:
        image = {
            "src": _relative(shown.key),
            "srcset": ", ".join(f"{_relative(r.key)} {r.width}w" for r in sources)
            if len(sources) > 1 else "",
            "sizes": "(max-width: 1000px) 100vw, 1000px",
            "width": shown.width,
            "height": shown.height,
        }  # fmt: skip
    ld: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "ImageObject",
        "name": title,
        "caption": meme.caption,
        "description": description,
        "url": page_url(base, meme.slug),
        "datePublished": published,
        "dateModified": iso(updated_at(meme)),
        "keywords": list(meme.tags),
        "genre": meme.category,
        "isPartOf": {"@type": "WebSite", "name": config.site.title, "url": base + PAGE_HTML},
    }
    primary = primary_rendition(meme)
    if primary is not None:
        ld.update(contentUrl=base + primary.key, encodingFormat=primary.content_type,
                  width=primary.width, height=primary.height)  # fmt: skip
    if sources:
        ld["thumbnailUrl"] = base + sources[0].key
    if meme.credit:
        ld["creditText"] = meme.credit
    return {
        "csp": CSP,
        "site_title": config.site.title,
        "slug": meme.slug,
        "title": title,
        "heading": meme.title,
        "description": description,
        "alt": alt,
        "caption": meme.caption.strip(),
        "credit": meme.credit.strip(),
        "page_url": page_url(base, meme.slug),
        "stylesheet": stylesheet,
        "gallery_href": "../" + PAGE_HTML,
        "view_href": f"../{PAGE_HTML}#/m/{quote(meme.slug)}",
        "og": _og_context(og, base),
        "image": image,
        "placeholder": placeholder_uri(meme),
        "category": {
            "name": meme.category,
            "href": f"../{PAGE_HTML}#/c/{quote(meme.category, safe='')}",
        },
        "tags": [
            {"name": tag, "href": f"../{PAGE_HTML}#/t/{tag_slug(tag)}" if tag_slug(tag) else None}
            for tag in meme.tags
        ],
        "published_at": published,
        "published_label": _date_label(meme.published_at or _EPOCH),
        "updated_at": iso(updated_at(meme)),
        "older": neighbour(older),
        "newer": neighbour(newer),
        "json_ld": script_json(ld),
    }


def _og_context(og: RenditionAsset | None, base: str) -> dict[str, Any] | None:
    if og is None:
        return None
    return {"url": base + og.key, "width": og.width, "height": og.height,
            "content_type": og.content_type}  # fmt: skip


def script_json(value: object) -> Markup:
    """JSON to put inside a <script> data block: ``<``, ``>`` and ``&`` as \\u escapes, so no
    text (``</script>`` in a caption, ``<!--``) can end the block or open markup; a JSON
    parser reads the very same value."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(char, escaped)
    return Markup(text)


def placeholder_uri(meme: Meme) -> str:
    """The placeholder colour as an SVG data: URI, shown under the meme until it loads (the
    CSP allows no inline style, and a data: image costs no request)."""
    valid = _HEX_COLOR.fullmatch(meme.placeholder_color)
    color = meme.placeholder_color.lower() if valid else _GREY
    svg = (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{max(meme.width, 1)}' "
        f"height='{max(meme.height, 1)}'><rect width='100%' height='100%' fill='{color}'/></svg>"
    )
    return "data:image/svg+xml," + quote(svg, safe="/:=' ")


def sitemap(visible: Sequence[Meme], config: Config) -> Document:
    """``sitemap.xml``: the gallery page and every share page (with its last change and, by
    Google's image extension, its image), newest first."""
    base = config.site.base_url
    ElementTree.register_namespace("", SITEMAP_NS)
    ElementTree.register_namespace("image", IMAGE_SITEMAP_NS)
    urlset = ElementTree.Element(f"{{{SITEMAP_NS}}}urlset")

    def url(loc: str, lastmod: datetime | None) -> ElementTree.Element:
        node = ElementTree.SubElement(urlset, f"{{{SITEMAP_NS}}}url")
        ElementTree.SubElement(node, f"{{{SITEMAP_NS}}}loc").text = loc
        if lastmod is not None:
            ElementTree.SubElement(node, f"{{{SITEMAP_NS}}}lastmod").text = iso(lastmod)
        return node

    url(base + PAGE_HTML, max((updated_at(m) for m in visible), default=None))
    for meme in reversed(visible):
        node = url(page_url(base, meme.slug), updated_at(meme))
        image = primary_rendition(meme)
        if image is not None:
            holder = ElementTree.SubElement(node, f"{{{IMAGE_SITEMAP_NS}}}image")
            ElementTree.SubElement(holder, f"{{{IMAGE_SITEMAP_NS}}}loc").text = base + image.key
    ElementTree.indent(urlset)
    data = ElementTree.tostring(urlset, encoding="utf-8", xml_declaration=True) + b"\n"
    return Document(SITEMAP, data, CONTENT_TYPES[SITEMAP])


def robots_txt(base_url: str) -> str:
    """``robots.txt``: everything may be crawled; where the sitemap is. (Crawlers read it at
    the root of a host only: it counts when ``site.base_url`` is one.)"""
    return f"User-agent: *\nAllow: /\n\nSitemap: {base_url}{SITEMAP}\n"


@cache
def template_env() -> Environment:
    """The Jinja2 templates (pipeline/templates), HTML autoescaped, undefined names errors."""
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def template(name: str) -> Any:
    return template_env().get_template(name)


def _relative(key: str) -> str:
    """A storage key as a link from a page in ``m/``."""
    return "../" + quote(key, safe="/")


def _date_label(moment: datetime) -> str:
    """'1 March 2026': the same text whatever the locale."""
    moment = moment.astimezone(UTC)
    months = ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December")  # fmt: skip
    return f"{moment.day} {months[moment.month - 1]} {moment.year}"


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
    names: dict[str, str] | None = None,
) -> list[Document]:
    """The archived pages of one index (oldest first), then its head document last.
    ``names`` (the category or tag the index is for) go into every page; ``extra`` into the
    head only."""
    (head_start, total), archived = page_ranges(len(members), size)

    def shown(start: int, end: int) -> list[str]:
        return [encoded[m.id] for m in reversed(members[start:end]) if m.status == "published"]

    def newest(start: int, end: int) -> str | None:
        # the sequence is sorted by published_at, so the last position is the newest
        return iso(members[end - 1].published_at or _EPOCH) if end > start else None

    def next_url(k: int) -> str | None:
        return f"{base}{prefix}pages/{k}.json" if k >= 1 else None

    docs = []
    for k, start, end in archived:
        page = _Page(f"{prefix}pages/{k}.json", end, newest(start, end), shown(start, end),
                     next_url(k - 1), names)  # fmt: skip
        docs.append(Document(page.key, _encode_page(page, site_json), JSON_TYPE))
    head_count = sum(1 for m in members if m.status == "published")
    head = _Page(prefix + INDEX, head_count, newest(head_start, total), shown(head_start, total),
                 next_url(len(archived)), {**(names or {}), **(extra or {})})  # fmt: skip
    docs.append(Document(head.key, _encode_page(head, site_json), JSON_TYPE))
    return docs


def _permalink(meme: Meme, meme_json: str, site_json: str) -> Document:
    body = f'{{"meme":{meme_json},"site":{site_json},"version":{VERSION}}}\n'
    return Document(permalink_key(meme.slug), body.encode("utf-8"), JSON_TYPE)

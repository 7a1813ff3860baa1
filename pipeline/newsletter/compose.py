"""Composing an edition and its archive: memes in, message and documents out. Pure: no
catalog, no network, no files but the templates it reads.

The email is multipart/alternative (text, HTML) with the list headers; the archive is one
HTML page per sent edition plus ``newsletter/index.html`` and ``newsletter/index.json``.
Header values never carry control characters, whatever the titles hold.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any
from urllib.parse import quote

from jinja2 import Environment

from pipeline import gallery
from pipeline.config import Config
from pipeline.documents import Document
from pipeline.library import Edition, Meme, RenditionAsset, iso, utcnow

REGULAR = "regular"
SPECIAL = "special"

#: Widest image the email shows: the single column is 600 px, the width every client handles.
MAX_IMAGE_WIDTH = 600
#: Widest rendition an email image comes from (twice the shown width at most, for sharp
#: screens), and the most bytes one may weigh: a long edition stays light.
MAX_SOURCE_WIDTH = 1200
MAX_IMAGE_BYTES = 250_000
#: Formats every mail client shows (Outlook desktop shows no WebP; AVIF fails in many).
EMAIL_SAFE_TYPES = ("image/jpeg", "image/png")
#: The first memes of an edition are shown at the column's width; the rest two to a row at
#: COMPACT_IMAGE_WIDTH, so a 30-meme edition stays readable and under Gmail's 102 KB clip.
FEATURED = 3
COMPACT_IMAGE_WIDTH = 264
COMPACT_CAPTION = 140  # characters of caption a compact meme shows

ARCHIVE_PREFIX = "newsletter/"
# The archive pages are served from the gallery's site: the gallery page's policy, with no
# script at all and the inline styles mail HTML is made of.
ARCHIVE_CSP = gallery.CSP.replace("script-src 'self'", "script-src 'none'").replace(
    "style-src 'self'", "style-src 'unsafe-inline'"
)
HTML_TYPE = gallery.CONTENT_TYPES[gallery.PAGE_HTML]

# Messages are 7-bit clean (non-ASCII bodies are quoted-printable or base64), so any server
# takes them, with or without 8BITMIME/SMTPUTF8.
POLICY = default_policy.clone(cte_type="7bit")

_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
# C0 and C1 control characters and DEL: never in a header, never in a one-line field.
# C0, DEL, C1, and the bidi embeddings, overrides and isolates: a header (or a one-line field)
# has no paragraph end to close one, so it would reorder whatever follows it.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class Draft:
    """An edition composed and not yet recorded: what to record and what to hand over."""

    kind: str
    number: int
    subject: str
    note: str | None
    slugs: tuple[str, ...]
    images: tuple[str, ...]  # rendition keys the email points at
    message: EmailMessage

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    @property
    def name(self) -> str:
        return edition_name(self.kind, self.number)


def draft(
    memes: Sequence[Meme],
    config: Config,
    *,
    kind: str,
    number: int,
    subject: str,
    note: str | None,
    message_id: str | None = None,
    date: datetime | None = None,
) -> Draft:
    """Compose an edition (a new Message-ID unless one is given: a resumed edition keeps its)."""
    message_id = message_id or make_msgid(idstring=f"{kind}-{number}", domain=_domain(config))
    message = compose(memes, config, number=number, kind=kind, subject=subject, extra=note,
                      message_id=message_id, date=date)  # fmt: skip
    return Draft(kind=kind, number=number, subject=one_line(subject), note=note,
                 slugs=tuple(m.slug for m in memes),
                 images=tuple(sorted(image_keys(memes, config))), message=message)  # fmt: skip


def edition_name(kind: str, number: int) -> str:
    """`regular-3`, `special-1`: the outbox file name and the Message-ID's id string."""
    return f"{kind}-{number}"


def regular_subject(memes: Sequence[Meme], config: Config, *, number: int) -> str:
    """The subject from ``newsletter.subject``: {number}, {first_title}, {more}, {count}."""
    first = memes[0] if memes else None
    first_title = gallery.shorten(one_line(first.title or first.caption), 80) if first else ""
    more = f" and {len(memes) - 1} more" if len(memes) > 1 else ""
    return one_line(
        config.newsletter.subject.format(
            number=number, first_title=first_title, more=more, count=len(memes)
        )
    )


def unsubscribe_mailto(config: Config) -> str | None:
    """The mailto an edition offers: the configured one; with neither it nor a URL, one to
    the sender asking to unsubscribe (every edition carries one, as mail providers require)."""
    news = config.newsletter
    if news.unsubscribe_mailto or news.unsubscribe_url:
        return news.unsubscribe_mailto
    return f"mailto:{quote(parseaddr(news.sender)[1], safe='@')}?subject=unsubscribe"


def unsubscribe_header(config: Config) -> str:
    """List-Unsubscribe: the configured URL, then the mailto (unsubscribe_mailto)."""
    targets = [config.newsletter.unsubscribe_url, unsubscribe_mailto(config)]
    return ", ".join(f"<{url}>" for url in targets if url)


def compose(
    memes: Sequence[Meme],
    config: Config,
    *,
    number: int,
    kind: str,
    subject: str,
    extra: str | None,
    message_id: str,
    date: datetime | None = None,
) -> EmailMessage:
    """The email: multipart/alternative (text, HTML) with the list headers. Pure."""
    news = config.newsletter
    message = EmailMessage(policy=POLICY)
    message["Subject"] = one_line(subject)
    message["From"] = news.sender
    # Several subscribers go on the envelope only, so none sees the others' addresses.
    message["To"] = news.recipients[0] if len(news.recipients) == 1 else news.sender
    message["Date"] = format_datetime(date or utcnow())
    message["Message-ID"] = message_id
    message["List-Id"] = news.list_id
    message["List-Unsubscribe"] = unsubscribe_header(config)
    if news.unsubscribe_url and news.unsubscribe_url.startswith("https://"):
        # RFC 8058 one-click unsubscribe: only meaningful (and allowed) with an https URL.
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["X-Memes-Edition"] = f"{kind} {number}"
    context = _context(memes, config, number=number, kind=kind, subject=subject, extra=extra)
    message.set_content(_env().get_template("newsletter.txt").render(context))
    message.add_alternative(_html(context, web=False), subtype="html")
    return message


def render_html(
    memes: Sequence[Meme],
    config: Config,
    *,
    number: int,
    kind: str,
    subject: str,
    extra: str | None,
    web: bool = False,
) -> str:
    """The HTML part alone (``web=True``: the archive page, without the mail-only footer)."""
    context = _context(memes, config, number=number, kind=kind, subject=subject, extra=extra)
    return _html(context, web=web)


def _html(context: dict[str, Any], *, web: bool) -> str:
    return _env().get_template("newsletter.html").render(context, web=web, csp=ARCHIVE_CSP)


def pick_rendition(meme: Meme, config: Config) -> RenditionAsset | None:
    """The rendition the email shows: a JPEG or PNG at most MAX_SOURCE_WIDTH wide (None when
    the meme has none: the email then shows its words only), under MAX_IMAGE_BYTES if one
    is; of those the whole image first (contain fit, then pad, then cover), at least 600 px
    wide if there is one (the smallest such, for weight; else the widest)."""
    safe = [a for a in meme.renditions
            if a.content_type in EMAIL_SAFE_TYPES and a.width <= MAX_SOURCE_WIDTH]  # fmt: skip
    light = [a for a in safe if a.bytes < MAX_IMAGE_BYTES]
    if not light:
        return min(safe, key=lambda a: (a.bytes, a.name), default=None)
    fit_rank = {"contain": 0, "pad": 1, "cover": 2}

    def rank(asset: RenditionAsset) -> tuple[int, int, int, str]:
        try:
            fit = config.rendition(asset.name).fit
        except KeyError:
            fit = "contain" if gallery.is_contain_fit(meme, asset) else ""
        wide = asset.width >= MAX_IMAGE_WIDTH
        return (fit_rank.get(fit, 3), 0 if wide else 1, asset.width if wide else -asset.width,
                asset.name)  # fmt: skip

    return min(light, key=rank)


def image_keys(memes: Iterable[Meme], config: Config) -> set[str]:
    """The rendition keys an email featuring these memes points at."""
    return {asset.key for m in memes if (asset := pick_rendition(m, config)) is not None}


def alt_text(meme: Meme) -> str:
    """The image's alt text: the alt field plus the overlay words not already in it."""
    alt = one_line(meme.alt)
    words = [
        one_line(text)
        for text in meme.box_texts
        if text.strip() and one_line(text).lower() not in alt.lower()
    ]
    if words:
        quoted = '"' + " / ".join(words) + '"'
        alt = f"{alt.rstrip('.')}. Text: {quoted}" if alt else f"Text: {quoted}"
    return alt or one_line(meme.title or meme.caption)


def permalink(meme: Meme, config: Config) -> str:
    """The meme's share page (``page_url``), where "See it" goes."""
    return gallery.page_url(config.site.base_url, meme.slug)


# --- the archive --------------------------------------------------------------------------


def archive_path(kind: str, number: int) -> str:
    """Storage key of an edition's archive page."""
    return (
        f"{ARCHIVE_PREFIX}{number}.html"
        if kind == REGULAR
        else (f"{ARCHIVE_PREFIX}special-{number}.html")
    )


def archive_documents(
    editions: Iterable[Edition], published: Iterable[Meme], config: Config
) -> list[Document]:
    """The public archive: one HTML page per sent edition, newsletter/index.html and
    newsletter/index.json (newest first). Memes not in ``published`` (removed since) are left
    out, and a regular edition's subject is recomputed from what remains. Deterministic:
    same editions and memes, same bytes."""
    base = config.site.base_url
    documents: list[Document] = []
    entries: list[dict[str, Any]] = []
    sent = [e for e in editions if e.status == "sent"]
    sent.sort(key=lambda e: (e.sent_at or e.created_at, e.kind, e.number))
    by_slug = {m.slug: m for m in published}
    for edition in sent:
        memes = [by_slug[slug] for slug in edition.slugs if slug in by_slug]
        subject = edition.subject
        if edition.kind == REGULAR:
            subject = regular_subject(memes, config, number=edition.number)
        key = archive_path(edition.kind, edition.number)
        html = render_html(memes, config, number=edition.number, kind=edition.kind,
                           subject=subject, extra=edition.note or None, web=True)  # fmt: skip
        documents.append(Document(key, html.encode("utf-8"), HTML_TYPE))
        entries.append(
            {
                "number": edition.number,
                "kind": edition.kind,
                "subject": subject,
                "sent_at": iso(edition.sent_at or edition.created_at),
                "url": base + key,
                "slugs": [m.slug for m in memes],
            }
        )
    entries.reverse()
    index = {"title": f"{config.site.title} newsletter", "editions": entries}
    documents.append(
        Document(
            ARCHIVE_PREFIX + "index.json",
            (json.dumps(index, ensure_ascii=False, indent=1) + "\n").encode("utf-8"),
            "application/json",
        )
    )
    page = (
        _env()
        .get_template("newsletter_index.html")
        .render(
            title=f"{config.site.title} newsletter",
            gallery_url=base + gallery.PAGE_HTML,
            editions=entries,
            csp=ARCHIVE_CSP,
        )
    )
    documents.append(Document(ARCHIVE_PREFIX + gallery.PAGE_HTML, page.encode("utf-8"), HTML_TYPE))
    return documents


# --- internals ----------------------------------------------------------------------------


def _context(
    memes: Sequence[Meme],
    config: Config,
    *,
    number: int,
    kind: str,
    subject: str,
    extra: str | None,
) -> dict[str, Any]:
    base = config.site.base_url
    news = config.newsletter
    items = []
    for position, meme in enumerate(memes):
        asset = pick_rendition(meme, config)
        compact = position >= FEATURED
        item: dict[str, Any] = {
            "slug": meme.slug,
            "title": one_line(meme.title),
            "label": one_line(meme.title)
            or gallery.shorten(one_line(meme.caption), 80)
            or meme.slug,
            "caption": meme.caption.strip(),
            "short_caption": gallery.shorten(one_line(meme.caption), COMPACT_CAPTION),
            "credit": one_line(meme.credit),
            "permalink": permalink(meme, config),
            "alt": alt_text(meme),
            "image_url": None,
            "width": 0,
            "height": 0,
            "color": meme.placeholder_color if _COLOR.fullmatch(meme.placeholder_color) else "",
        }
        if asset is not None:
            width = min(COMPACT_IMAGE_WIDTH if compact else MAX_IMAGE_WIDTH, asset.width)
            item.update(
                image_url=base + quote(asset.key, safe="/"),
                width=width,
                height=max(1, round(asset.height * width / asset.width)),
            )
        items.append(item)
    heading = f"{config.site.title} #{number}" if kind == REGULAR else one_line(subject)
    return {
        "site_title": config.site.title,
        "subject": one_line(subject),
        "heading": heading,
        "kind": kind,
        "number": number,
        "count": len(items),
        "items": items,
        "featured": items[:FEATURED],
        "compact_rows": [items[i : i + 2] for i in range(FEATURED, len(items), 2)],
        "note_lines": (extra or "").strip("\n").splitlines() if extra and extra.strip() else [],
        "preheader": ", ".join(
            i["title"] or gallery.shorten(one_line(i["caption"]), 40) for i in items[:3]
        ),
        "gallery_url": base + gallery.PAGE_HTML,
        "archive_url": base + ARCHIVE_PREFIX + gallery.PAGE_HTML,
        "unsubscribe_url": news.unsubscribe_url,
        "unsubscribe_mailto": unsubscribe_mailto(config),
    }


def _env() -> Environment:
    """The project's one template environment (pipeline/templates, HTML autoescaped)."""
    return gallery.template_env()


def _domain(config: Config) -> str:
    address = parseaddr(config.newsletter.sender)[1]
    return address.rpartition("@")[2] or "localhost"


def one_line(text: str) -> str:
    """Collapse whitespace and drop control characters: header values (and one-line fields)
    never carry a newline, a NUL, an escape or a bidi override."""
    return " ".join(_CONTROLS.sub("", " ".join(text.split())).split())

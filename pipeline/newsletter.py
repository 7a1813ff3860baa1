"""The newsletter: every ``newsletter.every`` published memes, one email featuring all of them.

The rule runs at the end of every publish and on ``memes newsletter send``: once at least
``every`` memes have been published since the last regular edition, one edition goes out
featuring ALL of them, oldest first. Editions are numbered per kind ('regular', 'special')
and recorded in the catalog, which is what makes delivery exactly-once:

1. the message is composed (a template error leaves nothing recorded),
2. the edition is recorded as 'sending' (``Library.begin_edition``),
3. the message is handed to the SMTP server (or written to the outbox folder),
4. the edition is recorded as 'sent' (``Library.finish_edition``).

A delivery that fails for certain before the server took the message (connection or login
refused, every recipient refused, the message refused) forgets the edition
(``abandon_edition``) so it stays due and the next run sends it. A run that dies, or a
connection that breaks, after the message was handed over leaves the edition 'sending': it
is "in doubt", reported by :func:`status` and by every :func:`run_rule`, never sent again by
the rule (its memes count as featured), and sent again only by an explicit :func:`resume`
(with the same Message-ID, so mail clients that got it twice can tell) or marked delivered
with :func:`confirm_sent`.

The SMTP password comes from ``MEMES_SMTP_PASSWORD`` and is scrubbed from every message this
module raises.
"""

from __future__ import annotations

import base64
import json
import re
import smtplib
import sqlite3
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from pipeline import gallery
from pipeline.config import Config, SmtpConfig
from pipeline.documents import Document
from pipeline.errors import DeliveryError, LockedError, NotFoundError, UsageError
from pipeline.files import write_atomic
from pipeline.library import Edition, Library, Meme, RenditionAsset, iso, utcnow

REGULAR = "regular"
SPECIAL = "special"

#: Widest image the email shows: the single column is 600 px, the width every client handles.
MAX_IMAGE_WIDTH = 600
#: Formats every mail client shows (WebP/AVIF still fail in some desktop clients).
EMAIL_SAFE_TYPES = ("image/jpeg", "image/png", "image/gif")

TEMPLATES = Path(__file__).parent / "templates"
ARCHIVE_PREFIX = "newsletter/"
HTML_TYPE = gallery.CONTENT_TYPES[gallery.PAGE_HTML]

# Messages are 7-bit clean (non-ASCII bodies are quoted-printable or base64), so any server
# takes them, with or without 8BITMIME/SMTPUTF8.
_POLICY = default_policy.clone(cte_type="7bit")

_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


class DeliveryUncertain(DeliveryError):
    """The connection broke after the message was handed over: it may have been delivered.

    The edition stays 'sending' (in doubt) until :func:`resume` or :func:`confirm_sent`.
    """


@dataclass(frozen=True)
class RuleOutcome:
    """What the rule did at the end of a publish (or on ``memes newsletter send``)."""

    sent: Edition | None  # the regular edition sent by this run, if any
    pending: int  # published memes not yet featured in a regular edition
    due_in: int  # how many more must be published before the next edition (0: due now)
    warning: str | None  # one line for the operator (delivery trouble, editions in doubt)


# --- the rule and the commands ------------------------------------------------------------


def run_rule(library: Library, config: Config, *, extra: str | None = None) -> RuleOutcome:
    """Send the next regular edition if at least ``newsletter.every`` memes are waiting.

    Never raises for delivery trouble: a failed delivery leaves the edition due (or in doubt
    if the server may have taken it) and comes back as ``warning``.
    """
    every = config.newsletter.every
    warnings: list[str] = []
    in_doubt = library.editions_in_doubt()
    if in_doubt:
        warnings.append(_doubt_warning(in_doubt))
    pending = library.unfeatured_published()
    sent: Edition | None = None
    if len(pending) >= every:
        number = _next_number(library, REGULAR)
        try:
            sent, refused = _send_new(
                library,
                config,
                kind=REGULAR,
                number=number,
                memes=pending,
                subject=regular_subject(pending, config, number=number),
                note=_extra(config, extra),
            )
            if refused:
                warnings.append(f"newsletter #{sent.number}: {refused}")
        except DeliveryUncertain as exc:
            warnings.append(
                f"newsletter #{number} in doubt: {exc}; it may have been delivered: check, then "
                "run `memes newsletter send --resume` to send it again"
            )
        except DeliveryError as exc:
            warnings.append(
                f"newsletter #{number} not sent: {exc}; it stays due and the next run sends it"
            )
        except LockedError as exc:
            warnings.append(str(exc))
        pending = library.unfeatured_published()
    return RuleOutcome(
        sent=sent,
        pending=len(pending),
        due_in=max(0, every - len(pending)),
        warning="; ".join(warnings) or None,
    )


def send_special(
    library: Library,
    config: Config,
    *,
    subject: str,
    body: str | None,
    slugs: Sequence[str],
) -> Edition:
    """Send a special edition now: a subject, a plain-text body and/or published memes.

    Numbered separately from regular editions and does not reset the regular count.
    Raises UsageError (empty, unknown or unpublished meme), DeliveryError.
    """
    subject = _one_line(subject)
    if not subject:
        raise UsageError("special edition: the subject is empty")
    slugs = list(dict.fromkeys(slugs))  # a meme named twice is featured once
    memes = library.by_slugs(slugs)
    missing = [s for s in slugs if s not in {m.slug for m in memes}]
    if missing:
        raise NotFoundError(f"special edition: no such meme: {', '.join(missing)}")
    unpublished = [m.slug for m in memes if m.status != "published"]
    if unpublished:
        raise UsageError(
            f"special edition: not published, so not on the site: {', '.join(unpublished)}"
        )
    note = body if body and body.strip() else None
    if not memes and not note:
        raise UsageError("special edition: nothing to send (no body and no memes)")
    edition, _ = _send_new(
        library,
        config,
        kind=SPECIAL,
        number=_next_number(library, SPECIAL),
        memes=memes,
        subject=subject,
        note=note,
    )
    return edition


def resume(library: Library, config: Config) -> list[Edition]:
    """Send every edition in doubt again (same number, subject and Message-ID) and record it.

    Memes removed since are left out; an edition left empty by that is dropped, not sent.
    A failed delivery raises DeliveryError and leaves that edition in doubt.
    """
    done: list[Edition] = []
    for edition in library.editions_in_doubt():
        memes = [m for m in library.by_slugs(edition.slugs) if m.status == "published"]
        note = _stored_note(library, edition.kind, edition.number)
        if not memes and not note:
            library.abandon_edition(edition.kind, edition.number)
            continue
        message = compose(
            memes,
            config,
            number=edition.number,
            kind=edition.kind,
            subject=edition.subject,
            extra=note,
            message_id=edition.message_id,
        )
        _remember_images(library, edition.kind, edition.number, memes, config)
        try:
            deliver(message, config, name=_name(edition.kind, edition.number))
        except DeliveryError as exc:
            raise type(exc)(f"{_label(edition)} still in doubt, not sent again: {exc}") from None
        library.finish_edition(edition.kind, edition.number)
        done.append(library.edition(edition.kind, edition.number))
    return done


def confirm_sent(library: Library, kind: str, number: int) -> Edition:
    """Record an edition in doubt as delivered (it did arrive), without sending anything."""
    edition = library.edition(kind, number)
    if edition.status == "sending":
        library.finish_edition(kind, number)
    return library.edition(kind, number)


def status(library: Library, config: Config) -> dict[str, Any]:
    """Where the newsletter stands; reads the catalog only (works offline)."""
    every = config.newsletter.every
    pending = library.unfeatured_published()
    regular = [e for e in library.editions(REGULAR) if e.status == "sent"]
    special = [e for e in library.editions(SPECIAL) if e.status == "sent"]
    smtp = config.newsletter.smtp
    return {
        "every": every,
        "pending": len(pending),
        "due_in": max(0, every - len(pending)),
        "pending_slugs": [m.slug for m in pending],
        "next_number": _next_number(library, REGULAR),
        "last": _edition_dict(regular[-1]) if regular else None,
        "last_special": _edition_dict(special[-1]) if special else None,
        "in_doubt": [_edition_dict(e) for e in library.editions_in_doubt()],
        "delivery": (
            f"smtp {smtp.host}:{smtp.port}" if smtp else f"outbox {config.newsletter.outbox}"
        ),
    }


def preview(library: Library, config: Config, *, extra: str | None = None) -> str:
    """HTML of the next regular edition as it stands now; sends and records nothing."""
    pending = library.unfeatured_published()
    if not pending:
        raise UsageError("newsletter preview: no meme published since the last edition")
    number = _next_number(library, REGULAR)
    return render_html(
        pending,
        config,
        number=number,
        kind=REGULAR,
        subject=regular_subject(pending, config, number=number),
        extra=_extra(config, extra),
    )


# --- composing (pure) ---------------------------------------------------------------------


def regular_subject(memes: Sequence[Meme], config: Config, *, number: int) -> str:
    """The subject from ``newsletter.subject``: {number}, {first_title}, {more}, {count}."""
    first = memes[0] if memes else None
    first_title = gallery.shorten(_one_line(first.title or first.caption), 80) if first else ""
    more = f" and {len(memes) - 1} more" if len(memes) > 1 else ""
    return _one_line(
        config.newsletter.subject.format(
            number=number, first_title=first_title, more=more, count=len(memes)
        )
    )


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
    message = EmailMessage(policy=_POLICY)
    message["Subject"] = _one_line(subject)
    message["From"] = news.sender
    # Several subscribers go on the envelope only, so none sees the others' addresses.
    message["To"] = news.recipients[0] if len(news.recipients) == 1 else news.sender
    message["Date"] = format_datetime(date or utcnow())
    message["Message-ID"] = message_id
    message["List-Id"] = news.list_id
    unsubscribe = []
    if news.unsubscribe_url:
        unsubscribe.append(f"<{news.unsubscribe_url}>")
    if news.unsubscribe_mailto:
        unsubscribe.append(f"<{news.unsubscribe_mailto}>")
    if unsubscribe:
        message["List-Unsubscribe"] = ", ".join(unsubscribe)
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
    return _env().get_template("newsletter.html").render(context, web=web)


def pick_rendition(meme: Meme, config: Config) -> RenditionAsset | None:
    """The rendition the email shows: the whole image (contain fit first, then pad, then
    cover), at least 600 px wide if there is one (the smallest such, for weight; else the
    widest), in a format every mail client shows if there is a choice."""
    if not meme.renditions:
        return None
    fit_rank = {"contain": 0, "pad": 1, "cover": 2}

    def rank(asset: RenditionAsset) -> tuple[int, int, int, int]:
        try:
            fit = config.rendition(asset.name).fit
        except KeyError:
            fit = ""
        wide = asset.width >= MAX_IMAGE_WIDTH
        return (
            fit_rank.get(fit, 3),
            0 if wide else 1,
            0 if asset.content_type in EMAIL_SAFE_TYPES else 1,
            asset.width if wide else -asset.width,
        )

    return min(meme.renditions, key=rank)


def alt_text(meme: Meme) -> str:
    """The image's alt text: the alt field plus the overlay words not already in it."""
    alt = _one_line(meme.alt)
    words = [
        _one_line(text)
        for text in (meme.top_text, meme.bottom_text)
        if text.strip() and _one_line(text).lower() not in alt.lower()
    ]
    if words:
        quoted = '"' + " / ".join(words) + '"'
        alt = f"{alt.rstrip('.')}. Text: {quoted}" if alt else f"Text: {quoted}"
    return alt or _one_line(meme.title or meme.caption)


# --- the archive --------------------------------------------------------------------------


def archive_path(kind: str, number: int) -> str:
    """Storage key of an edition's archive page."""
    return (
        f"{ARCHIVE_PREFIX}{number}.html"
        if kind == REGULAR
        else (f"{ARCHIVE_PREFIX}special-{number}.html")
    )


def archive_documents(
    library: Library, config: Config, published: Sequence[Meme] | None = None
) -> list[Document]:
    """The public archive: one HTML page per sent edition, newsletter/index.html and
    newsletter/index.json (newest first). Removed memes are left out (a regular edition's
    title is recomputed from what remains). Deterministic: same catalog, same bytes.

    ``published``: the published memes as the caller's documents show them (a publish or a
    remove in progress), instead of the catalog's."""
    base = config.site.base_url
    documents: list[Document] = []
    entries: list[dict[str, Any]] = []
    sent = [e for e in library.editions() if e.status == "sent"]
    sent.sort(key=lambda e: (e.sent_at or e.created_at, e.kind, e.number))
    if published is None and sent:
        published = library.published()  # one query for all
    by_slug = {m.slug: m for m in published or ()}
    for edition in sent:
        memes = [by_slug[slug] for slug in edition.slugs if slug in by_slug]
        note = _stored_note(library, edition.kind, edition.number)
        subject = edition.subject
        if edition.kind == REGULAR:
            subject = regular_subject(memes, config, number=edition.number)
        key = archive_path(edition.kind, edition.number)
        html = render_html(
            memes,
            config,
            number=edition.number,
            kind=edition.kind,
            subject=subject,
            extra=note,
            web=True,
        )
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
        )
    )
    documents.append(Document(ARCHIVE_PREFIX + gallery.PAGE_HTML, page.encode("utf-8"), HTML_TYPE))
    return documents


# --- delivery -----------------------------------------------------------------------------


def deliver(message: EmailMessage, config: Config, *, name: str) -> str:
    """Hand the message to the SMTP server, or write ``<outbox>/<name>.eml`` when
    ``newsletter.smtp`` is not set. Returns a one-line note of recipients the server refused
    ('' when all were accepted).

    Raises DeliveryError when it certainly was not delivered, DeliveryUncertain when the
    server may have taken it.
    """
    if config.newsletter.smtp is None:
        _write_outbox(message, config.newsletter.outbox, name)
        return ""
    return _send_smtp(message, config.newsletter.smtp, config)


def _write_outbox(message: EmailMessage, outbox: Path, name: str) -> Path:
    """Atomic (temp file + fsync + rename): a reader never sees half a message."""
    target = outbox / f"{name}.eml"
    try:
        return write_atomic(target, message.as_bytes())
    except OSError as exc:
        raise DeliveryError(
            f"outbox {outbox}: cannot write {target.name}: {exc.strerror or exc}"
        ) from None


def _send_smtp(message: EmailMessage, smtp: SmtpConfig, config: Config) -> str:
    where = f"SMTP server {smtp.host}:{smtp.port}"
    password = smtp.password

    def failure(cause: str, *, certain: bool = True) -> DeliveryError:
        text = _scrub(f"{where}: {cause}", password, smtp.username)
        return DeliveryError(text) if certain else DeliveryUncertain(text)

    sender = parseaddr(config.newsletter.sender)[1]
    recipients = [address for _, address in getaddresses(list(config.newsletter.recipients))]
    data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    context = ssl.create_default_context()
    try:
        if smtp.tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=smtp.timeout, context=context
            )
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
    except (OSError, smtplib.SMTPException) as exc:
        raise failure(f"cannot connect: {_cause(exc)}") from None

    handed_over = False
    try:
        client.ehlo_or_helo_if_needed()
        if smtp.starttls:
            client.starttls(context=context)
            client.ehlo()
        if smtp.username:
            if not password:
                raise failure(f"login as {smtp.username}: MEMES_SMTP_PASSWORD is not set")
            client.login(smtp.username, password)
        code, reply = client.mail(sender)
        if code != 250:
            raise failure(f"sender {sender} refused: {code} {_text(reply)}")
        refused: dict[str, str] = {}
        for recipient in recipients:
            code, reply = client.rcpt(recipient)
            if code not in (250, 251):
                refused[recipient] = f"{code} {_text(reply)}"
        if len(refused) == len(recipients):
            first = next(iter(refused.values()))
            raise failure(f"all {len(recipients)} recipient(s) refused: {first}")
        # From here on the server may have the message: a broken connection is in doubt.
        handed_over = True
        client.data(data)
    except DeliveryError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise failure(f"login as {smtp.username} refused: {_cause(exc)}") from None
    except smtplib.SMTPResponseException as exc:
        # The server answered with an error: it did not take the message (for certain).
        raise failure(f"refused: {_cause(exc)}") from None
    except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
        if handed_over:
            raise failure(
                f"connection lost while handing over the message: {_cause(exc)}", certain=False
            ) from None
        raise failure(_cause(exc)) from None
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()
    if refused:
        listed = ", ".join(f"{r} ({why})" for r, why in refused.items())
        return _scrub(
            f"{where} refused {len(refused)} recipient(s): {listed}", password, smtp.username
        )
    return ""


# --- internals ----------------------------------------------------------------------------


def _send_new(
    library: Library,
    config: Config,
    *,
    kind: str,
    number: int,
    memes: Sequence[Meme],
    subject: str,
    note: str | None,
) -> tuple[Edition, str]:
    """Compose, record as 'sending', deliver, record as 'sent' (see the module docstring)."""
    if not memes and not note:
        raise UsageError(f"{kind} edition #{number}: empty; an empty edition is never sent")
    message_id = make_msgid(idstring=f"{kind}-{number}", domain=_domain(config))
    message = compose(
        memes,
        config,
        number=number,
        kind=kind,
        subject=subject,
        extra=note,
        message_id=message_id,
    )
    slugs = [m.slug for m in memes]
    # The note is kept beside the edition so resume() and the archive can render it again.
    library.set_meta(_note_key(kind, number), note or "")
    _remember_images(library, kind, number, memes, config)
    try:
        library.begin_edition(kind, slugs, subject, message_id, number=number)
    except sqlite3.IntegrityError:
        raise LockedError(f"{kind} edition #{number}: another run is sending it") from None
    if kind == REGULAR:
        # Two runs that raced may have recorded overlapping editions: the lower number wins.
        taken = {slug for e in library.editions(REGULAR) if e.number < number for slug in e.slugs}
        if taken & set(slugs):
            library.abandon_edition(kind, number)
            raise LockedError(f"{kind} edition #{number}: another run is sending these memes")
    try:
        refused = deliver(message, config, name=_name(kind, number))
    except DeliveryUncertain:
        raise  # stays 'sending': in doubt
    except DeliveryError:
        library.abandon_edition(kind, number)
        raise
    library.finish_edition(kind, number)
    return library.edition(kind, number), refused


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
    for meme in memes:
        asset = pick_rendition(meme, config)
        item: dict[str, Any] = {
            "slug": meme.slug,
            "title": _one_line(meme.title),
            "label": _one_line(meme.title)
            or gallery.shorten(_one_line(meme.caption), 80)
            or meme.slug,
            "caption": meme.caption.strip(),
            "credit": _one_line(meme.credit),
            "permalink": permalink(meme, config),
            "alt": alt_text(meme),
            "image_url": None,
            "width": 0,
            "height": 0,
            "color": meme.placeholder_color if _COLOR.fullmatch(meme.placeholder_color) else "",
        }
        if asset is not None:
            width = min(MAX_IMAGE_WIDTH, asset.width)
            item.update(
                image_url=base + quote(asset.key, safe="/"),
                width=width,
                height=max(1, round(asset.height * width / asset.width)),
            )
        items.append(item)
    heading = f"{config.site.title} #{number}" if kind == REGULAR else _one_line(subject)
    return {
        "site_title": config.site.title,
        "subject": _one_line(subject),
        "heading": heading,
        "kind": kind,
        "number": number,
        "count": len(items),
        "items": items,
        "note_lines": (extra or "").strip("\n").splitlines() if extra and extra.strip() else [],
        "preheader": ", ".join(
            i["title"] or gallery.shorten(_one_line(i["caption"]), 40) for i in items[:3]
        ),
        "gallery_url": base + gallery.PAGE_HTML,
        "archive_url": base + ARCHIVE_PREFIX + gallery.PAGE_HTML,
        "unsubscribe_url": news.unsubscribe_url,
        "unsubscribe_mailto": news.unsubscribe_mailto,
    }


def permalink(meme: Meme, config: Config) -> str:
    """The meme's page in the gallery (the reference gallery's permalink view)."""
    return gallery.view_url(config.site.base_url, meme.slug)


@cache
def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _next_number(library: Library, kind: str) -> int:
    return max((e.number for e in library.editions(kind)), default=0) + 1


def _extra(config: Config, extra: str | None) -> str | None:
    text = extra if extra is not None else config.newsletter.extra
    return text if text and text.strip() else None


def _note_key(kind: str, number: int) -> str:
    return f"newsletter.note.{kind}.{number}"


def _images_key(kind: str, number: int) -> str:
    return f"newsletter.images.{kind}.{number}"


def _remember_images(library: Library, kind: str, number: int, memes: Sequence[Meme],
                     config: Config) -> None:  # fmt: skip
    """Record the rendition keys an edition's email points at: mail in inboxes keeps those
    URLs forever, so gc must never delete them, even after a re-render renamed them."""
    keys = set(json.loads(library.get_meta(_images_key(kind, number)) or "[]"))
    keys |= {asset.key for m in memes if (asset := pick_rendition(m, config)) is not None}
    library.set_meta(_images_key(kind, number), json.dumps(sorted(keys)))


def emailed_keys(library: Library) -> set[str]:
    """Every rendition key any edition's email has pointed at (kept by `memes gc`)."""
    keys: set[str] = set()
    for edition in library.editions():
        keys.update(json.loads(library.get_meta(_images_key(edition.kind, edition.number)) or "[]"))
    return keys


def _stored_note(library: Library, kind: str, number: int) -> str | None:
    return library.get_meta(_note_key(kind, number)) or None


def _name(kind: str, number: int) -> str:
    return f"{kind}-{number}"


def _label(edition: Edition) -> str:
    return f"{edition.kind} edition #{edition.number} ({edition.subject!r})"


def _edition_dict(edition: Edition) -> dict[str, Any]:
    return {
        "kind": edition.kind,
        "number": edition.number,
        "subject": edition.subject,
        "status": edition.status,
        "message_id": edition.message_id,
        "slugs": list(edition.slugs),
        "created_at": iso(edition.created_at),
        "sent_at": iso(edition.sent_at) if edition.sent_at else None,
    }


def _doubt_warning(editions: Sequence[Edition]) -> str:
    listed = ", ".join(_label(e) for e in editions)
    return (
        f"in doubt (the server may have it): {listed}; check, then run "
        "`memes newsletter send --resume` to send again"
    )


def _domain(config: Config) -> str:
    address = parseaddr(config.newsletter.sender)[1]
    return address.rpartition("@")[2] or "localhost"


def _one_line(text: str) -> str:
    """Collapse whitespace: header values (and one-line fields) must not carry newlines."""
    return " ".join(text.split())


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    return _one_line(reply)


def _cause(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return _one_line(str(exc)) or type(exc).__name__


def _scrub(text: str, password: str | None, username: str | None = None) -> str:
    """Remove the password (plain or as AUTH PLAIN/LOGIN base64 a server might echo)."""
    if not password:
        return text
    forms = {password, base64.b64encode(password.encode()).decode()}
    if username:
        forms.add(base64.b64encode(f"\0{username}\0{password}".encode()).decode())
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text

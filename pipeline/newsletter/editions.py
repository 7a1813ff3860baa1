"""The newsletter rule and the editions it asks for: which memes an edition features, when
it is due, what the catalog says about editions. Composing is :mod:`.compose`, delivery and
the in-doubt state :mod:`.deliver`; uploading the archive is the orchestrator's
(:mod:`pipeline.publish`), which calls these with the publish lock held.

The rule: once at least ``newsletter.every`` memes have been published since the last
regular edition, one edition goes out featuring ALL of them, oldest first. Editions are
numbered per kind ('regular', 'special'); a special edition does not reset the count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import Config
from pipeline.errors import DeliveryError, LockedError, NotFoundError, UsageError
from pipeline.library import Edition, Library, Meme, iso
from pipeline.newsletter.compose import (
    REGULAR,
    SPECIAL,
    draft,
    one_line,
    regular_subject,
    render_html,
)
from pipeline.newsletter.deliver import DeliveryUncertain, doubt_line, send, settle


@dataclass(frozen=True)
class RuleOutcome:
    """What the rule did at the end of a publish (or on ``memes newsletter send``)."""

    sent: Edition | None  # the regular edition sent by this run, if any
    pending: int  # published memes not yet featured in a regular edition
    due_in: int  # how many more must be published before the next edition (0: due now)
    warning: str | None  # one line for the operator (delivery trouble, editions in doubt)
    in_doubt: tuple[Edition, ...] = field(default=())  # a person must look: exit 1
    failed: bool = False  # an edition was due and did not go out


def run_rule(library: Library, config: Config, *, extra: str | None = None,
             stored: Callable[[Meme], bool] | None = None) -> RuleOutcome:  # fmt: skip
    """Send the next regular edition if at least ``newsletter.every`` memes are waiting.

    Never raises for delivery trouble: a failed delivery leaves the edition due (or in doubt
    if the server may have taken it) and comes back as ``warning``. ``stored(meme)``: whether
    storage holds the meme's images; a due edition waits while one of its memes' does not.
    """
    settle(library, config)
    every = config.newsletter.every
    problems: list[str] = []
    pending = library.unfeatured_published()
    sent: Edition | None = None
    failed = False
    lacking = [m.slug for m in pending if stored is not None and not stored(m)]
    if len(pending) >= every and lacking:
        failed = True
        problems.append(f"newsletter #{next_number(library, REGULAR)} held back: the images of "
                        f"{', '.join(lacking)} are not in storage yet; the next run sends it")
    elif len(pending) >= every:
        number = next_number(library, REGULAR)
        try:
            edition = draft(pending, config, kind=REGULAR, number=number,
                            subject=regular_subject(pending, config, number=number),
                            note=_extra(config, extra))  # fmt: skip
            sent, refused = send(library, config, edition)
            if refused:
                problems.append(f"newsletter #{sent.number}: {refused}")
        except DeliveryUncertain as exc:
            failed = True
            problems.append(f"newsletter #{number}: {exc}")
        except DeliveryError as exc:
            failed = True
            problems.append(
                f"newsletter #{number} not sent: {exc}; it stays due and the next run sends it"
            )
        except (LockedError, ValueError) as exc:  # ValueError: a header the mail cannot carry
            failed = True
            problems.append(f"newsletter #{number} not sent: {one_line(str(exc))}")
        pending = library.unfeatured_published()
    in_doubt = library.editions_in_doubt()
    if in_doubt:
        problems.insert(0, doubt_line(in_doubt))
    return RuleOutcome(
        sent=sent,
        pending=len(pending),
        due_in=max(0, every - len(pending)),
        warning="; ".join(problems) or None,
        in_doubt=tuple(in_doubt),
        failed=failed,
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
    subject = one_line(subject)
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
    settle(library, config)
    number = next_number(library, SPECIAL)
    edition, _ = send(library, config, draft(memes, config, kind=SPECIAL, number=number,
                                             subject=subject, note=note))  # fmt: skip
    return edition


def status(library: Library, config: Config) -> dict[str, Any]:
    """Where the newsletter stands; reads the catalog only (works offline)."""
    every = config.newsletter.every
    pending = library.unfeatured_published()
    regular = [e for e in library.editions(REGULAR) if e.status == "sent"]
    special = [e for e in library.editions(SPECIAL) if e.status == "sent"]
    in_doubt = library.editions_in_doubt()
    smtp = config.newsletter.smtp
    return {
        "every": every,
        "pending": len(pending),
        "due_in": max(0, every - len(pending)),
        "pending_slugs": [m.slug for m in pending],
        "next_number": next_number(library, REGULAR),
        "last": edition_dict(regular[-1]) if regular else None,
        "last_special": edition_dict(special[-1]) if special else None,
        "in_doubt": [edition_dict(e) for e in in_doubt],
        "in_doubt_action": doubt_line(in_doubt) if in_doubt else None,
        "delivery": (
            f"smtp {smtp.host}:{smtp.port}" if smtp else f"outbox {config.newsletter.outbox}"
        ),
    }


def preview(library: Library, config: Config, *, extra: str | None = None) -> str | None:
    """HTML of the next regular edition as it stands now (None: no meme is pending); sends
    and records nothing."""
    pending = library.unfeatured_published()
    if not pending:
        return None
    number = next_number(library, REGULAR)
    return render_html(pending, config, number=number, kind=REGULAR,
                       subject=regular_subject(pending, config, number=number),
                       extra=_extra(config, extra))  # fmt: skip


def emailed_keys(library: Library) -> set[str]:
    """Every rendition key any edition's email has pointed at (kept by `memes gc`)."""
    return {key for edition in library.editions() for key in edition.images}


def next_number(library: Library, kind: str) -> int:
    """The number the next edition of this kind gets (after any settled by :func:`settle`)."""
    taken = [e.number for e in library.editions(kind) if e.status != "preparing"]
    return max(taken, default=0) + 1


def edition_dict(edition: Edition) -> dict[str, Any]:
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


def _extra(config: Config, extra: str | None) -> str | None:
    text = extra if extra is not None else config.newsletter.extra
    return text if text and text.strip() else None

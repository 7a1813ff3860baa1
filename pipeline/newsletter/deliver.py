"""Delivering an edition: to the SMTP server, or as a .eml file in the outbox folder, and the
edition's state in the catalog around it, which is what makes delivery exactly-once:

1. the edition is composed (``compose.draft``; a template error records nothing),
2. it is recorded as 'preparing' (certainly not delivered while it is),
3. just before the message itself is transferred (SMTP DATA) it becomes 'sending',
4. once the server accepted it (or its .eml is written) it is 'sent', never to be sent again.

A failure before the transfer (connection refused, a server that never greets, login
refused, every recipient refused, anything raised on our side) is certain: the record is
dropped and the edition stays due. A run killed while 'preparing' is settled by the next run
(:func:`settle`, with the publish lock held): nothing was handed over, so the record is
dropped and the edition is sent as usual; an outbox edition whose .eml exists is 'sent'.
Only a run that died, or a connection that broke, during the transfer leaves an edition
'sending': "in doubt". It is never sent again by the rule; :func:`resume` sends it again
(same Message-ID, so clients that got it twice can tell), :func:`confirm_sent` records that it
arrived.

The SMTP password comes from ``MEMES_SMTP_PASSWORD`` (UTF-8 works with AUTH PLAIN and
LOGIN) and is scrubbed from every message this module raises.
"""

from __future__ import annotations

import base64
import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from pathlib import Path

from pipeline.config import Config, SmtpConfig
from pipeline.errors import DeliveryError, UsageError
from pipeline.files import write_atomic
from pipeline.library import Edition, Library
from pipeline.newsletter.compose import Draft, draft, edition_name, image_keys, one_line


class DeliveryUncertain(DeliveryError):
    """The connection broke during the transfer: the server may have the message.

    The edition stays 'sending' (in doubt) until :func:`resume` or :func:`confirm_sent`.
    """


def _nothing() -> None:
    return None


# --- the edition's state ----------------------------------------------------------------------


def send(library: Library, config: Config, edition: Draft) -> tuple[Edition, str]:
    """Record, hand over, record as sent (see the module docstring). Returns the edition and
    a note of recipients the server refused ('' when none).

    Raises UsageError (an empty edition), LockedError (another run recorded that number),
    DeliveryError (certainly not delivered: it stays due), DeliveryUncertain (in doubt)."""
    kind, number = edition.kind, edition.number
    if not edition.slugs and not edition.note:
        raise UsageError(f"{kind} edition #{number}: empty; an empty edition is never sent")
    library.begin_edition(kind, number, edition.slugs, edition.subject, edition.message_id,
                          note=edition.note or "", images=edition.images)  # fmt: skip
    transferring = False

    def before_transfer() -> None:
        nonlocal transferring
        library.transfer_edition(kind, number)
        transferring = True

    try:
        refused = deliver(edition.message, config, name=edition.name,
                          before_transfer=before_transfer)  # fmt: skip
    except DeliveryUncertain:
        raise  # stays 'sending': in doubt
    except DeliveryError:
        library.abandon_edition(kind, number)
        raise
    except BaseException:
        if not transferring:  # killed or broken before anything was handed over
            library.abandon_edition(kind, number)
        raise
    library.finish_edition(kind, number)
    return library.edition(kind, number), refused


def settle(library: Library, config: Config) -> None:
    """Settle what dead runs left behind; call with the publish lock held (no live run).

    'preparing': nothing was handed over, so it is dropped (an outbox edition whose .eml was
    written is 'sent'). 'sending' stays in doubt, unless its .eml is in the outbox."""
    for edition in library.editions():
        if edition.status == "sent":
            continue
        if outbox_file(config, edition.kind, edition.number).is_file():
            library.finish_edition(edition.kind, edition.number)
        elif edition.status == "preparing":
            library.abandon_edition(edition.kind, edition.number)


def resume(library: Library, config: Config) -> list[Edition]:
    """Send every edition in doubt again (same number, subject and Message-ID) and record it.

    Memes removed since are left out; an edition left empty by that is dropped, not sent.
    A failed delivery raises DeliveryError and leaves that edition in doubt."""
    done: list[Edition] = []
    for edition in library.editions_in_doubt():
        memes = [m for m in library.by_slugs(edition.slugs) if m.status == "published"]
        if not memes and not edition.note:
            library.abandon_edition(edition.kind, edition.number)
            continue
        again = draft(memes, config, kind=edition.kind, number=edition.number,
                      subject=edition.subject, note=edition.note or None,
                      message_id=edition.message_id)  # fmt: skip
        library.add_edition_images(edition.kind, edition.number, image_keys(memes, config))
        try:
            deliver(again.message, config, name=again.name, before_transfer=_nothing)
        except DeliveryError as exc:
            raise type(exc)(f"{label(edition)} still in doubt, not sent again: {exc}") from None
        library.finish_edition(edition.kind, edition.number)
        done.append(library.edition(edition.kind, edition.number))
    return done


def confirm_sent(library: Library, kind: str, number: int) -> Edition:
    """Record an edition in doubt as delivered (it did arrive), without sending anything."""
    edition = library.edition(kind, number)
    if edition.status != "sent":
        library.finish_edition(kind, number)
    return library.edition(kind, number)


def label(edition: Edition) -> str:
    return f"{edition.kind} edition #{edition.number} ({edition.subject!r})"


def doubt_line(editions: list[Edition]) -> str:
    """What an operator must do about editions in doubt, in one line."""
    listed = ", ".join(label(e) for e in editions)
    confirm = " or ".join(f"`memes newsletter confirm {e.kind} {e.number}`" for e in editions)
    return (
        f"in doubt (the server may have it): {listed}; check the list's archive, then run "
        f"`memes newsletter send --resume` to send it again, or {confirm} if it arrived"
    )


# --- transport ----------------------------------------------------------------------------


def outbox_file(config: Config, kind: str, number: int) -> Path:
    """Where an edition's .eml goes when ``newsletter.smtp`` is not set."""
    return config.newsletter.outbox / f"{edition_name(kind, number)}.eml"


def deliver(message: EmailMessage, config: Config, *, name: str,
            before_transfer: Callable[[], None] = _nothing) -> str:  # fmt: skip
    """Hand the message to the SMTP server, or write ``<outbox>/<name>.eml`` when
    ``newsletter.smtp`` is not set. ``before_transfer`` is called just before SMTP DATA.
    Returns a one-line note of recipients the server refused ('' when all were accepted).

    Raises DeliveryError when it certainly was not delivered, DeliveryUncertain when the
    server may have taken it.
    """
    if config.newsletter.smtp is None:
        _write_outbox(message, config.newsletter.outbox, name)
        return ""
    return _send_smtp(message, config.newsletter.smtp, config, before_transfer)


def _write_outbox(message: EmailMessage, outbox: Path, name: str) -> Path:
    """Atomic (temp file + fsync + rename): a reader never sees half a message."""
    target = outbox / f"{name}.eml"
    try:
        return write_atomic(target, message.as_bytes())
    except OSError as exc:
        raise DeliveryError(
            f"outbox {outbox}: cannot write {target.name}: {exc.strerror or exc}"
        ) from None


def _send_smtp(message: EmailMessage, smtp: SmtpConfig, config: Config,
               before_transfer: Callable[[], None]) -> str:  # fmt: skip
    where = f"SMTP server {smtp.host}:{smtp.port}"
    password = smtp.password

    def failure(cause: str, *, certain: bool = True) -> DeliveryError:
        text = _scrub(f"{where}: {cause}", password, smtp.username)
        return DeliveryError(text) if certain else DeliveryUncertain(text)

    if smtp.username and not password:
        raise failure(f"login as {smtp.username}: MEMES_SMTP_PASSWORD is not set")
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

    transferring = False
    try:
        client.ehlo_or_helo_if_needed()
        if smtp.starttls:
            client.starttls(context=context)
            client.ehlo()
        if smtp.username and password:
            _login(client, smtp.username, password, failure)
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
        before_transfer()
        # From here on the server may have the message: a broken connection is in doubt.
        transferring = True
        code, reply = client.data(data)  # smtplib returns the final reply, whatever it is
        transferring = False
        if code != 250:  # the server answered: it did not take the message (for certain)
            raise failure(f"message refused: {code} {_text(reply)}")
    except DeliveryError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise failure(f"login as {smtp.username} refused: {_cause(exc)}") from None
    except smtplib.SMTPResponseException as exc:
        # The server answered with an error: it did not take the message (for certain).
        raise failure(f"refused: {_cause(exc)}") from None
    except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
        if transferring:
            raise failure(
                f"connection lost while handing over the message: {_cause(exc)}", certain=False
            ) from None
        raise failure(_cause(exc)) from None
    except Exception as exc:  # anything on our side before the transfer: nothing went out
        if transferring:
            raise
        raise failure(f"{type(exc).__name__}: {_cause(exc)}") from None
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


def _login(client: smtplib.SMTP, username: str, password: str,
           failure: Callable[[str], DeliveryError]) -> None:  # fmt: skip
    """AUTH PLAIN or LOGIN with the credentials as UTF-8 (smtplib's login() takes ASCII only);
    other mechanisms through smtplib when the credentials are ASCII."""
    if not client.has_extn("auth"):
        raise failure(f"login as {username}: the server offers no AUTH")
    offered = client.esmtp_features["auth"].upper().split()
    user, secret = username.encode("utf-8"), password.encode("utf-8")
    if "PLAIN" in offered:
        code, reply = client.docmd("AUTH", "PLAIN " + _b64(b"\0" + user + b"\0" + secret))
    elif "LOGIN" in offered:
        code, reply = client.docmd("AUTH", "LOGIN")
        if code == 334:
            code, reply = client.docmd(_b64(user))
        if code == 334:
            code, reply = client.docmd(_b64(secret))
    elif username.isascii() and password.isascii():
        client.login(username, password)
        return
    else:
        raise failure(
            f"login as {username}: the server offers only {' '.join(offered)}, which cannot "
            "carry a non-ASCII password; it needs AUTH PLAIN or LOGIN"
        )
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, reply)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    return one_line(reply)


def _cause(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return one_line(str(exc)) or type(exc).__name__


def _scrub(text: str, password: str | None, username: str | None = None) -> str:
    """Remove the password (plain or as AUTH PLAIN/LOGIN base64 a server might echo)."""
    if not password:
        return text
    forms = {password, _b64(password.encode())}
    if username:
        forms.add(_b64(f"\0{username}\0{password}".encode()))
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text

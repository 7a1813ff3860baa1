"""The newsletter contract, checked against a real SMTP server (aiosmtpd in its own process).

Memes are made in a Library in tmp_path and published directly with mark_published (the
end-to-end path through `memes publish` is tested with the publish command); what arrives is
read back from the server's Maildir.
"""

from __future__ import annotations

import base64
import email
import hashlib
import html
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import traceback
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from bs4 import BeautifulSoup
from click.testing import CliRunner
from test_publish import MEMES, add_memes, make_site, s3_storage_config

from pipeline import config as config_module
from pipeline import gallery, newsletter
from pipeline.cli import cli
from pipeline.config import Config
from pipeline.errors import DeliveryError, NotFoundError, UsageError
from pipeline.library import Library, NewMeme, RenditionAsset

pytestmark = pytest.mark.smtp

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BASE_URL = "https://memes.example.org/"


# --- a real SMTP server ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpServer:
    """An aiosmtpd process on 127.0.0.1 storing what it accepts in a Maildir."""

    def __init__(self, maildir: Path, command: list[str], port: int):
        self.maildir = maildir
        self.port = port
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"SMTP server died: {self.process.stderr.read()!r}"
                    ) from None
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("SMTP server did not start") from None
                time.sleep(0.05)

    @classmethod
    def standard(cls, tmp_path: Path, port: int | None = None) -> SmtpServer:
        """The stock aiosmtpd CLI with its Mailbox handler."""
        port = port or free_port()
        maildir = tmp_path / f"maildir-{port}"
        command = [PYTHON, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}"]
        command += ["-c", "aiosmtpd.handlers.Mailbox", str(maildir)]
        return cls(maildir, command, port)

    @classmethod
    def custom(cls, tmp_path: Path, *options: str) -> SmtpServer:
        """tests/smtp_server.py: AUTH, or a misbehaviour (see its docstring)."""
        port = free_port()
        maildir = tmp_path / f"maildir-{port}"
        command = [PYTHON, str(ROOT / "tests" / "smtp_server.py"), "--port", str(port)]
        command += ["--maildir", str(maildir), *options]
        return cls(maildir, command, port)

    def messages(self) -> list[EmailMessage]:
        """What arrived, in arrival order (Maildir file times, nanoseconds)."""
        files = [f for sub in ("new", "cur") if (self.maildir / sub).is_dir()
                 for f in (self.maildir / sub).iterdir()]  # fmt: skip
        files.sort(key=lambda f: f.stat().st_mtime_ns)
        return [email.message_from_bytes(f.read_bytes(), policy=default_policy) for f in files]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process.stderr.close()


@pytest.fixture
def smtp(tmp_path):
    server = SmtpServer.standard(tmp_path)
    yield server
    server.stop()


# --- a library of memes ---------------------------------------------------------------------


class Memes:
    """A library in tmp_path that publishes memes with renditions, as the publish step does."""

    def __init__(self, root: Path):
        self.library = Library(root / "memes")
        self.counter = 0
        self.clock = datetime(2026, 1, 1, tzinfo=UTC)

    def publish(self, count: int, **fields: Any) -> list[str]:
        slugs = []
        for _ in range(count):
            self.counter += 1
            n = self.counter
            values = {
                "title": f"Meme number {n}",
                "caption": f"Caption {n}",
                "alt": f"Picture {n}",
                "top_text": "",
                "bottom_text": "",
            }
            values.update(fields)
            meme = self.library.add(
                NewMeme(
                    category="funny",
                    tags=("test",),
                    credit="",
                    original_name=f"meme{n}.png",
                    sha256=hashlib.sha256(f"meme {n}".encode()).hexdigest(),
                    phash="",
                    ext="png",
                    width=1600,
                    height=1200,
                    format="PNG",
                    frames=1,
                    publish_at=self.clock,
                    **values,
                )
            )
            self.library.set_renditions(
                meme.slug,
                [
                    RenditionAsset(
                        "thumb", f"i/{meme.slug}/thumb.1a.webp", 320, 240, "image/webp", 9
                    ),
                    RenditionAsset(
                        "phone", f"i/{meme.slug}/phone.4d.jpg", 640, 480, "image/jpeg", 40
                    ),
                    RenditionAsset(
                        "large", f"i/{meme.slug}/large.2b.webp", 1200, 900, "image/webp", 99
                    ),
                    RenditionAsset("og", f"i/{meme.slug}/og.3c.jpg", 1200, 630, "image/jpeg", 50),
                ],
                "#aabbcc",
                "LEHV6nWB2yk8",
            )
            slugs.append(meme.slug)
        # Distinct publish times so "oldest first" is a real order, as batches are in life.
        self.clock += timedelta(minutes=1)
        self.library.mark_published(slugs, self.clock)
        return slugs


@pytest.fixture
def memes(tmp_path):
    made = Memes(tmp_path)
    yield made
    made.library.close()


def make_config(tmp_path: Path, port: int | None = None, **newsletter_keys: Any) -> Config:
    news: dict[str, Any] = {
        "sender": "Memes <memes@example.org>",
        "recipients": ["alice@example.org", "bob@example.org"],
        "list_id": "Memes <memes.example.org>",
        "unsubscribe_url": "https://memes.example.org/unsubscribe",
        "unsubscribe_mailto": "unsubscribe@example.org",
        "outbox": str(tmp_path / "outbox"),
    }
    if port is not None:
        news["smtp"] = {"host": "127.0.0.1", "port": port, "timeout": 10}
    news.update(newsletter_keys)
    return config_module.parse(
        {"site": {"title": "Memes", "base_url": BASE_URL}, "newsletter": news}, root=tmp_path
    )


def edition_of(message: EmailMessage) -> str:
    return str(message["X-Memes-Edition"])


def html_part(message: EmailMessage) -> str:
    return message.get_body(("html",)).get_content()


def text_part(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


class Images(HTMLParser):
    def __init__(self, html: str):
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.links: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        elif tag == "a":
            self.links.append(dict(attrs)["href"])


def featured_order(message: EmailMessage) -> list[str]:
    """Slugs in the order the HTML features them (from the image URLs)."""
    return [img["src"].split("/")[-2] for img in Images(html_part(message)).images]


# --- the rule -------------------------------------------------------------------------------


def test_every_twelve_published_memes_make_one_edition_and_none_is_featured_twice(
    tmp_path, smtp, memes
):
    config = make_config(tmp_path, smtp.port)
    first = memes.publish(5) + memes.publish(7)

    outcome = newsletter.run_rule(memes.library, config)
    assert outcome.warning is None
    assert outcome.sent is not None and outcome.sent.number == 1
    assert (outcome.pending, outcome.due_in) == (0, 12)
    [one] = smtp.messages()
    assert featured_order(one) == first  # all of them, oldest first

    second = memes.publish(11)
    outcome = newsletter.run_rule(memes.library, config)
    assert outcome.sent is None
    assert (outcome.pending, outcome.due_in) == (11, 1)
    assert len(smtp.messages()) == 1

    second += memes.publish(1)
    outcome = newsletter.run_rule(memes.library, config)
    assert outcome.sent is not None and outcome.sent.number == 2
    one, two = smtp.messages()
    assert edition_of(two) == "regular 2"
    assert featured_order(two) == second
    assert not set(featured_order(one)) & set(featured_order(two))

    assert newsletter.run_rule(memes.library, config).sent is None  # nothing left: no mail
    assert len(smtp.messages()) == 2


def test_thirty_published_at_once_make_one_edition_featuring_all_thirty(tmp_path, smtp, memes):
    config = make_config(tmp_path, smtp.port)
    slugs = memes.publish(30)

    outcome = newsletter.run_rule(memes.library, config)

    [message] = smtp.messages()
    assert featured_order(message) == slugs
    assert outcome.sent.slugs == tuple(slugs)
    assert message["Subject"] == "Memes #1: Meme number 1 and 29 more"
    assert (outcome.pending, outcome.due_in) == (0, 12)


def test_a_removed_meme_is_left_out(tmp_path, smtp, memes):
    config = make_config(tmp_path, smtp.port)
    slugs = memes.publish(12)
    memes.library.mark_removed(slugs[3])

    assert newsletter.run_rule(memes.library, config).sent is None  # 11 left: not yet due
    slugs += memes.publish(1)
    newsletter.run_rule(memes.library, config)

    [message] = smtp.messages()
    assert featured_order(message) == slugs[:3] + slugs[4:]
    assert slugs[3] not in html_part(message) + text_part(message)


# --- the email ------------------------------------------------------------------------------


def test_the_email_carries_list_headers_and_text_and_html_parts(tmp_path, smtp, memes):
    config = make_config(tmp_path, smtp.port)
    memes.publish(12)
    newsletter.run_rule(memes.library, config)
    memes.publish(12)
    newsletter.run_rule(memes.library, config)

    one, two = smtp.messages()
    for message in (one, two):
        assert message.get_content_type() == "multipart/alternative"
        kinds = [part.get_content_type() for part in message.iter_parts()]
        assert kinds == ["text/plain", "text/html"]
        assert message["From"] == "Memes <memes@example.org>"
        assert message["To"]  # several subscribers: on the envelope only, not in To
        assert "alice@example.org" not in message["To"]
        assert message["X-RcptTo"] == "alice@example.org, bob@example.org"
        assert message["X-MailFrom"] == "memes@example.org"
        assert message["Date"].datetime.tzinfo is not None
        assert message["List-Id"] == "Memes <memes.example.org>"
        # (folded after the colon on the wire; Python's parser keeps the fold's space)
        assert message["List-Unsubscribe"].strip() == (
            "<https://memes.example.org/unsubscribe>, <mailto:unsubscribe@example.org>"
        )
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["Message-ID"].endswith("@example.org>")
    assert one["Message-ID"] != two["Message-ID"]
    assert one["Subject"] == "Memes #1: Meme number 1 and 11 more"
    assert two["Subject"] == "Memes #2: Meme number 13 and 11 more"
    assert [e.message_id for e in memes.library.editions("regular")] == [
        one["Message-ID"],
        two["Message-ID"],
    ]


def test_every_image_is_an_absolute_url_with_alt_text_and_phone_sized_dimensions(
    tmp_path, smtp, memes
):
    config = make_config(tmp_path, smtp.port)
    memes.publish(11)
    memes.publish(1, alt="A cat at a keyboard", top_text="WHEN THE BUILD", bottom_text="PASSES")
    newsletter.run_rule(memes.library, config)

    [message] = smtp.messages()
    html = html_part(message)
    parsed = Images(html)
    assert len(parsed.images) == 12
    for position, img in enumerate(parsed.images):
        assert img["src"].startswith(BASE_URL + "i/")
        # the whole image as a JPEG (not the WebP large, not the cropped og)
        assert img["src"].endswith("/phone.4d.jpg")
        assert img["alt"]
        # the first three at the column's width, the rest two to a row
        size = (600, 450) if position < 3 else (264, 198)
        assert (int(img["width"]), int(img["height"])) == size
    assert parsed.images[-1]["alt"] == 'A cat at a keyboard. Text: "WHEN THE BUILD / PASSES"'
    assert all(link.startswith(("https://", "mailto:")) for link in parsed.links)
    assert BASE_URL + "m/meme-number-1.html" in parsed.links  # the share page
    assert BASE_URL + "m/meme-number-12.html" in parsed.links
    assert not any("#/m/" in link for link in parsed.links)
    assert BASE_URL + "index.html" in parsed.links
    assert BASE_URL + "newsletter/index.html" in parsed.links
    assert "max-width:600px" in html
    text = text_part(message)
    assert "Meme number 12" in text and BASE_URL + "m/meme-number-12.html" in text


def test_captions_are_escaped_in_html_and_kept_as_text(tmp_path, smtp, memes):
    config = make_config(tmp_path, smtp.port, extra="Hello <b>friends</b>\nsecond line")
    caption = 'Ha <script>alert("x")</script> & more'
    memes.publish(12, caption=caption)
    newsletter.run_rule(memes.library, config)

    [message] = smtp.messages()
    html = html_part(message)
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; more" in html
    assert "Hello &lt;b&gt;friends&lt;/b&gt;<br>second line" in html
    assert caption in text_part(message)
    assert "Hello <b>friends</b>\nsecond line" in text_part(message)


def test_right_to_left_titles_and_captions_read_in_their_own_direction(tmp_path, memes):
    """As on the share pages (unicode-bidi: plaintext), each title, caption and credit in the
    HTML part takes its direction from its own first strong letter (dir="auto"): a Hebrew
    caption in the left-to-right mail keeps its full stop on the left, featured or compact."""
    memes.publish(4, title="כותרת בעברית", caption="שלום עולם!\nשורה שנייה.")
    message = newsletter.compose(memes.library.published(), make_config(tmp_path), number=1,
                                 kind="regular", subject="s", extra="הערה\nnote",
                                 message_id="<x@example.org>")  # fmt: skip
    page = BeautifulSoup(html_part(message), "html5lib")
    texts = [t for t in page.body.find_all(string=True) if re.search("[\u0590-\u05ff]", t)]
    assert len(texts) >= 4 * 2 + 1  # each meme's title and caption, and the note
    for text in texts:
        holder = text.find_parent(attrs={"dir": True})
        assert holder is not None and holder["dir"] == "auto", text.parent
        assert holder.name not in ("html", "body", "table", "td"), holder.name  # its own block


def test_a_bidi_override_in_a_title_cannot_reverse_the_rest_of_the_subject(tmp_path, memes):
    """A header has no end of paragraph to close an override (U+202E) or an isolate: one in
    the first meme's title would show '... and 2 more' reversed in every inbox (the CLI
    escapes the same characters). The subject keeps the title's letters, not its controls."""
    memes.publish(3, title="Launch \u202eday\u2067 \u202a")
    published = memes.library.published()
    config = make_config(tmp_path)
    subject = newsletter.regular_subject(published, config, number=1)
    message = newsletter.compose(published, config, number=1, kind="regular", subject=subject,
                                 extra=None, message_id="<x@example.org>")  # fmt: skip
    parsed = email.message_from_bytes(message.as_bytes(), policy=default_policy)
    assert parsed["Subject"] == "Memes #1: Launch day and 2 more"


def test_compose_is_pure_and_follows_the_subject_template(tmp_path, memes):
    memes.publish(3)
    config = make_config(
        tmp_path,
        subject="{count} memes, #{number}: {first_title}{more}",
        unsubscribe_url="http://memes.example.org/unsubscribe",
        unsubscribe_mailto=None,
    )
    published = memes.library.published()
    subject = newsletter.regular_subject(published, config, number=4)
    assert subject == "3 memes, #4: Meme number 1 and 2 more"
    assert newsletter.regular_subject(published[:1], config, number=5).endswith("Meme number 1")

    message = newsletter.compose(
        published,
        config,
        number=4,
        kind="regular",
        subject=subject,
        extra=None,
        message_id="<x@example.org>",
    )
    assert message["List-Unsubscribe"] == "<http://memes.example.org/unsubscribe>"
    assert message["List-Unsubscribe-Post"] is None  # one-click needs an https URL
    assert memes.library.editions() == []
    assert not (tmp_path / "outbox").exists()


def asset(name: str, width: int, height: int, kind: str, size: int) -> RenditionAsset:
    return RenditionAsset(name, f"i/x/{name}.{kind}", width, height, f"image/{kind}", size)


def test_the_email_image_is_a_jpeg_or_png_at_most_1200_wide_and_under_250_kb(tmp_path, memes):
    config = make_config(tmp_path)
    [slug] = memes.publish(1)
    meme = memes.library.get(slug)  # 1600 x 1200

    def pick(*assets: RenditionAsset) -> str | None:
        chosen = newsletter.pick_rendition(replace(meme, renditions=assets), config)
        return chosen.name if chosen else None

    webp = asset("large", 1200, 900, "webp", 90_000)
    avif = asset("avif", 1200, 900, "avif", 50_000)
    phone = asset("phone", 640, 480, "jpeg", 60_000)
    og = asset("og", 1200, 630, "jpeg", 120_000)
    social = asset("social", 1080, 1080, "jpeg", 200_000)  # pad
    assert pick(webp, avif, phone, og, social) == "phone"  # the whole image, 600 px or more
    assert pick(webp, avif, og, social) == "social"  # padded beats cropped
    assert pick(webp, avif, og) == "og"
    assert pick(webp, avif) is None  # no image rather than one Outlook cannot show
    huge = asset("huge", 2400, 1800, "jpeg", 100_000)  # wider than 1200: never
    assert pick(huge, og) == "og"
    heavy = asset("phone", 640, 480, "jpeg", 260_000)  # over 250 KB: the light one wins
    assert pick(heavy, og) == "og"
    assert pick(heavy, asset("png", 640, 480, "png", 300_000)) == "phone"  # else the lightest


def test_a_thirty_meme_edition_is_compact_after_three_and_its_html_under_100_kb(tmp_path, memes):
    caption = "A caption long enough to be a real one, with a joke in it and a second " * 4
    memes.publish(30, caption=caption.strip(), alt="A picture " * 12)
    config = make_config(tmp_path)
    published = memes.library.published()
    message = newsletter.compose(published, config, number=1, kind="regular", subject="s",
                                 extra=None, message_id="<x@example.org>")  # fmt: skip
    html = html_part(message)
    assert len(html.encode("utf-8")) < 100_000, len(html.encode("utf-8"))
    widths = [int(img["width"]) for img in Images(html).images]
    assert widths == [600] * 3 + [264] * 27
    assert html.count(caption.strip()) == 3  # whole captions for the first three only
    assert html.count(">See it<") == 30


# --- delivery trouble and exactly-once -------------------------------------------------------


def test_smtp_down_warns_keeps_memes_published_and_the_next_run_sends_once(tmp_path, memes):
    slugs = memes.publish(12)
    dead_port = free_port()  # nothing listens there
    outcome = newsletter.run_rule(memes.library, make_config(tmp_path, dead_port))

    assert outcome.sent is None
    assert f"127.0.0.1:{dead_port}" in outcome.warning
    assert "refused" in outcome.warning.lower()
    assert "\n" not in outcome.warning
    assert [m.slug for m in memes.library.published()] == slugs
    assert memes.library.editions() == []
    assert (outcome.pending, outcome.due_in) == (12, 0)

    server = SmtpServer.standard(tmp_path)
    try:
        config = make_config(tmp_path, server.port)
        assert newsletter.run_rule(memes.library, config).sent.number == 1
        assert newsletter.run_rule(memes.library, config).sent is None
        [message] = server.messages()
        assert featured_order(message) == slugs
    finally:
        server.stop()


def test_a_server_that_never_greets_is_a_certain_failure_not_a_doubt(tmp_path, memes):
    """Connected, but no greeting within the timeout: nothing was handed over."""
    hung = SmtpServer.custom(tmp_path, "--never-greet")
    try:
        memes.publish(12)
        smtp = {"host": "127.0.0.1", "port": hung.port, "timeout": 1}
        outcome = newsletter.run_rule(memes.library, make_config(tmp_path, hung.port, smtp=smtp))
        assert outcome.sent is None and outcome.in_doubt == () and outcome.failed
        assert "cannot connect" in outcome.warning and "timed out" in outcome.warning
        assert "stays due" in outcome.warning
        assert memes.library.editions() == []
        assert (outcome.pending, outcome.due_in) == (12, 0)
    finally:
        hung.stop()


def test_all_recipients_refused_leaves_the_edition_due(tmp_path, memes):
    server = SmtpServer.custom(tmp_path, "--refuse-rcpt")
    try:
        memes.publish(12)
        outcome = newsletter.run_rule(memes.library, make_config(tmp_path, server.port))
        assert outcome.sent is None
        assert "recipient" in outcome.warning and "550" in outcome.warning
        assert memes.library.editions() == []
        assert server.messages() == []
    finally:
        server.stop()


def test_a_message_refused_at_the_end_of_data_is_not_recorded_as_sent(tmp_path, memes):
    """The server took the message bytes and answered 554 (a content filter): it did not
    accept the edition, so it is not sent (nor in doubt), it stays due, and the next run
    sends it."""
    server = SmtpServer.custom(tmp_path, "--refuse-data")
    try:
        memes.publish(12)
        outcome = newsletter.run_rule(memes.library, make_config(tmp_path, server.port))
        assert outcome.sent is None and not outcome.in_doubt
        assert "554 5.7.1 message refused by content filter" in outcome.warning
        assert "stays due" in outcome.warning
        assert memes.library.editions() == []
    finally:
        server.stop()
    good = SmtpServer.standard(tmp_path)
    try:
        outcome = newsletter.run_rule(memes.library, make_config(tmp_path, good.port))
        assert outcome.sent is not None and outcome.sent.number == 1
        assert len(good.messages()) == 1
    finally:
        good.stop()


RUN_RULE_AND_DIE = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from pipeline import config, newsletter
    from pipeline.library import Library
    root, port, pid_file = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    pid_file.write_text(str(os.getpid()))
    cfg = config.parse({"site": {"base_url": "https://memes.example.org/"},
                        "newsletter": {"smtp": {"host": "127.0.0.1", "port": port}}}, root=root)
    newsletter.run_rule(Library(root / "memes"), cfg)
    print("survived")
    """
)


def test_a_run_killed_after_handing_the_mail_over_is_in_doubt_until_resume(tmp_path, memes):
    """The server stores the message, then SIGKILLs the sending process before answering."""
    server = SmtpServer.custom(tmp_path, "--kill-pid-file", str(tmp_path / "client.pid"))
    try:
        first = memes.publish(12)
        killed = subprocess.run(
            [PYTHON, "-c", RUN_RULE_AND_DIE, str(tmp_path), str(server.port),
             str(tmp_path / "client.pid")],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert len(server.messages()) == 1

        config = make_config(tmp_path, server.port)
        state = newsletter.status(memes.library, config)
        [doubt] = state["in_doubt"]
        assert (doubt["kind"], doubt["number"], doubt["slugs"]) == ("regular", 1, first)

        outcome = newsletter.run_rule(memes.library, config)  # never re-sends silently
        assert outcome.sent is None
        assert "in doubt" in outcome.warning and "--resume" in outcome.warning
        assert (outcome.pending, outcome.due_in) == (0, 12)  # its memes count as featured
        assert len(server.messages()) == 1

        second = memes.publish(12)  # the rule goes on with the memes after it
        assert newsletter.run_rule(memes.library, config).sent.number == 2
        assert featured_order(server.messages()[-1]) == second

        [resumed] = newsletter.resume(memes.library, config)
        assert (resumed.number, resumed.status) == (1, "sent")
        assert newsletter.resume(memes.library, config) == []
        assert newsletter.status(memes.library, config)["in_doubt"] == []
        messages = server.messages()
        assert len(messages) == 3
        ones = [m for m in messages if edition_of(m) == "regular 1"]
        assert len(ones) == 2
        assert ones[0]["Message-ID"] == ones[1]["Message-ID"]  # clients can tell the copy
        assert featured_order(ones[1]) == first
    finally:
        server.stop()


def test_a_connection_lost_after_the_data_leaves_the_edition_in_doubt(tmp_path, memes):
    server = SmtpServer.custom(tmp_path, "--drop-after-data")
    try:
        memes.publish(12)
        config = make_config(tmp_path, server.port)
        outcome = newsletter.run_rule(memes.library, config)
        assert outcome.sent is None
        assert "in doubt" in outcome.warning
        [edition] = memes.library.editions_in_doubt()
        assert edition.number == 1
        assert len(server.messages()) == 1

        confirmed = newsletter.confirm_sent(memes.library, "regular", 1)
        assert confirmed.status == "sent"
        assert newsletter.run_rule(memes.library, config).warning is None
        assert len(server.messages()) == 1
    finally:
        server.stop()


def test_resume_that_cannot_deliver_keeps_the_edition_in_doubt(tmp_path, memes):
    server = SmtpServer.custom(tmp_path, "--drop-after-data")
    try:
        memes.publish(12)
        newsletter.run_rule(memes.library, make_config(tmp_path, server.port))
    finally:
        server.stop()
    with pytest.raises(DeliveryError, match="still in doubt"):
        newsletter.resume(memes.library, make_config(tmp_path, free_port()))
    assert len(memes.library.editions_in_doubt()) == 1


# --- login and the password -------------------------------------------------------------------


def test_login_uses_the_password_from_the_environment_and_never_shows_it(
    tmp_path, memes, monkeypatch, capsys
):
    password = "Sup3r-s3cret-pa55"
    server = SmtpServer.custom(tmp_path, "--auth", f"memes:{password}")
    try:
        memes.publish(12)
        config = make_config(
            tmp_path, server.port, smtp={"host": "127.0.0.1", "port": server.port,
                                         "username": "memes"}
        )  # fmt: skip

        monkeypatch.delenv("MEMES_SMTP_PASSWORD", raising=False)
        outcome = newsletter.run_rule(memes.library, config)
        assert "MEMES_SMTP_PASSWORD" in outcome.warning

        monkeypatch.setenv("MEMES_SMTP_PASSWORD", "wrong-" + password)
        outcome = newsletter.run_rule(memes.library, config)
        assert outcome.sent is None
        assert "login as memes refused" in outcome.warning
        assert password not in outcome.warning
        with pytest.raises(DeliveryError) as refused:
            newsletter.send_special(memes.library, config, subject="Hi", body="text", slugs=[])
        shown = "".join(traceback.format_exception(refused.value))  # what a crash would print
        assert "login as memes refused" in shown and password not in shown
        assert server.messages() == []

        monkeypatch.setenv("MEMES_SMTP_PASSWORD", password)
        outcome = newsletter.run_rule(memes.library, config)
        assert outcome.sent is not None and outcome.warning is None
        [message] = server.messages()
        assert password not in message.as_string()
        assert password not in json.dumps(newsletter.status(memes.library, config))
        out = capsys.readouterr()
        assert password not in out.out + out.err
    finally:
        server.stop()


# --- special editions, outbox, status, preview, archive ---------------------------------------


def test_a_special_edition_goes_out_at_once_and_does_not_reset_the_regular_count(
    tmp_path, smtp, memes
):
    config = make_config(tmp_path, smtp.port)
    slugs = memes.publish(5)

    special = newsletter.send_special(
        memes.library,
        config,
        subject="Summer break",
        body="We are away in August.\nBack in September <3",
        slugs=slugs[:2],
    )
    assert (special.kind, special.number, special.status) == ("special", 1, "sent")
    [message] = smtp.messages()
    assert message["Subject"] == "Summer break"
    assert edition_of(message) == "special 1"
    assert featured_order(message) == slugs[:2]
    assert "We are away in August.<br>Back in September &lt;3" in html_part(message)
    assert "Back in September <3" in text_part(message)

    state = newsletter.status(memes.library, config)
    assert (state["pending"], state["due_in"], state["last"]) == (5, 7, None)
    assert state["last_special"]["subject"] == "Summer break"

    slugs += memes.publish(7)
    regular = newsletter.run_rule(memes.library, config).sent
    assert (regular.kind, regular.number) == ("regular", 1)
    assert featured_order(smtp.messages()[-1]) == slugs  # the special's two included
    assert (
        newsletter.send_special(memes.library, config, subject="Again", body="x", slugs=[]).number
        == 2
    )


def test_a_special_edition_is_never_empty_and_features_only_published_memes(tmp_path, smtp, memes):
    config = make_config(tmp_path, smtp.port)
    with pytest.raises(UsageError, match="nothing to send"):
        newsletter.send_special(memes.library, config, subject="Hi", body="  \n", slugs=[])
    with pytest.raises(NotFoundError, match="nope"):
        newsletter.send_special(memes.library, config, subject="Hi", body="x", slugs=["nope"])
    removed = memes.publish(1)
    memes.library.mark_removed(removed[0])
    with pytest.raises(UsageError, match="not published"):
        newsletter.send_special(memes.library, config, subject="Hi", body=None, slugs=removed)
    assert smtp.messages() == [] and memes.library.editions() == []


def test_without_smtp_editions_are_written_to_the_outbox(tmp_path, memes):
    config = make_config(tmp_path)  # newsletter.smtp unset: the embedded default
    slugs = memes.publish(12)

    assert newsletter.run_rule(memes.library, config).sent.number == 1
    newsletter.send_special(memes.library, config, subject="Note", body="Hello", slugs=[])

    outbox = tmp_path / "outbox"
    assert sorted(p.name for p in outbox.iterdir()) == ["regular-1.eml", "special-1.eml"]
    message = email.message_from_bytes(
        (outbox / "regular-1.eml").read_bytes(), policy=default_policy
    )
    assert message["Subject"] == "Memes #1: Meme number 1 and 11 more"
    assert featured_order(message) == slugs
    assert newsletter.status(memes.library, config)["delivery"] == f"outbox {outbox}"


def test_status_and_preview_work_offline_and_record_nothing(tmp_path, memes):
    config = make_config(tmp_path, free_port())  # nobody listening
    assert newsletter.preview(memes.library, config) is None  # nothing pending
    slugs = memes.publish(4)

    html = newsletter.preview(memes.library, config, extra="Coming <soon>")
    assert "Memes #1" in html and "Coming &lt;soon&gt;" in html
    assert [img["src"].split("/")[-2] for img in Images(html).images] == slugs

    state = newsletter.status(memes.library, config)
    assert state["pending"] == 4 and state["due_in"] == 8 and state["next_number"] == 1
    assert state["pending_slugs"] == slugs
    assert state["last"] is None and state["in_doubt"] == []
    assert memes.library.editions() == []
    json.dumps(state)  # --json can print it as is


def test_the_archive_lists_sent_editions_and_leaves_removed_memes_out(tmp_path, smtp, memes):
    config = make_config(tmp_path, smtp.port)
    first = memes.publish(12)
    newsletter.run_rule(memes.library, config)
    memes.publish(12)
    newsletter.run_rule(memes.library, config)
    newsletter.send_special(memes.library, config, subject="Hello & welcome", body="Hi",
                            slugs=[])  # fmt: skip
    memes.library.mark_removed(first[0])

    def archive():
        return newsletter.archive_documents(
            memes.library.editions(), memes.library.published(), config
        )

    documents = {d.key: d for d in archive()}
    assert sorted(documents) == [
        "newsletter/1.html",
        "newsletter/2.html",
        "newsletter/index.html",
        "newsletter/index.json",
        "newsletter/special-1.html",
    ]
    index = json.loads(documents["newsletter/index.json"].data)
    listed = [(e["kind"], e["number"], e["url"]) for e in index["editions"]]
    assert listed == [
        ("special", 1, BASE_URL + "newsletter/special-1.html"),
        ("regular", 2, BASE_URL + "newsletter/2.html"),
        ("regular", 1, BASE_URL + "newsletter/1.html"),
    ]
    one = index["editions"][2]
    assert one["slugs"] == first[1:]
    assert one["subject"] == "Memes #1: Meme number 2 and 10 more"
    assert one["sent_at"].endswith("Z")
    page = documents["newsletter/1.html"].data.decode()
    assert f'/m/{first[0]}.html"' not in page and f'/m/{first[1]}.html"' in page
    assert "Hello &amp; welcome" in documents["newsletter/index.html"].data.decode()
    assert documents["newsletter/1.html"].content_type.startswith("text/html")
    again = archive()
    assert [d.sha256 for d in again] == [
        documents[d.key].sha256 for d in again
    ]  # deterministic: unchanged pages are not uploaded again


# --- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1, trusted only where a test says so."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def tls_server(tmp_path: Path, certificate, *, implicit: bool) -> SmtpServer:
    cert, key = certificate
    port = free_port()
    flags = (
        ["--smtpscert", str(cert), "--smtpskey", str(key)]
        if implicit
        else ["--tlscert", str(cert), "--tlskey", str(key)]
    )
    maildir = tmp_path / f"maildir-{port}"
    command = [PYTHON, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}", *flags]
    return SmtpServer(maildir, [*command, "-c", "aiosmtpd.handlers.Mailbox", str(maildir)], port)


def test_starttls_verifies_the_server_certificate(tmp_path, memes, certificate, monkeypatch):
    server = tls_server(tmp_path, certificate, implicit=False)
    try:
        memes.publish(12)
        plain = make_config(tmp_path, server.port)
        refused = newsletter.run_rule(memes.library, plain).warning
        assert "STARTTLS" in refused  # this server takes no mail before STARTTLS

        smtp = {"host": "127.0.0.1", "port": server.port, "starttls": True}
        config = make_config(tmp_path, server.port, smtp=smtp)
        untrusted = newsletter.run_rule(memes.library, config).warning
        assert "certificate not trusted: self-signed" in untrusted  # not trusted by default
        assert server.messages() == [] and memes.library.editions() == []

        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # now trust it
        assert newsletter.run_rule(memes.library, config).sent.number == 1
        [message] = server.messages()
        assert edition_of(message) == "regular 1"
    finally:
        server.stop()


def test_implicit_tls(tmp_path, memes, certificate, monkeypatch):
    server = tls_server(tmp_path, certificate, implicit=True)
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
        memes.publish(12)
        smtp = {"host": "127.0.0.1", "port": server.port, "tls": True}
        outcome = newsletter.run_rule(memes.library, make_config(tmp_path, server.port, smtp=smtp))
        assert outcome.warning is None and outcome.sent.number == 1
        assert len(server.messages()) == 1
    finally:
        server.stop()


# --- `memes publish` and `memes newsletter` as cron runs them --------------------------------


def memes_cli(cfg: Path, *args: str, env: dict[str, str] | None = None,
              timeout: float = 180) -> subprocess.CompletedProcess:  # fmt: skip
    return subprocess.run([*MEMES, "--config", str(cfg), *args], capture_output=True, text=True,
                          env=env, cwd=cfg.parent, timeout=timeout)  # fmt: skip


def site_with_smtp(tmp_path: Path, port: int, **newsletter_keys: Any) -> Path:
    news = {"smtp": {"host": "127.0.0.1", "port": port, "timeout": 60},
            "recipients": ["list@example.org"], **newsletter_keys}  # fmt: skip
    return make_site(tmp_path, publish={"batch_size": 12, "workers": 2}, newsletter=news)


def test_failure_10_a_publish_killed_while_waiting_for_the_greeting_is_not_in_doubt(tmp_path):
    """Issue 9, failure 10: the server accepts the connection and never greets; the publish is
    killed (-9) while it waits. Nothing was handed over, so nothing is in doubt: the next run
    sends the edition as usual."""
    hung = SmtpServer.custom(tmp_path, "--never-greet")
    counter = hung.maildir / "connections"
    try:
        cfg = site_with_smtp(tmp_path, hung.port)
        slugs = add_memes(cfg, 12, size=(200, 150))
        before = int(counter.read_text()) if counter.exists() else 0
        proc = subprocess.Popen([*MEMES, "--config", str(cfg), "publish"], cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 120
        while not (counter.exists() and int(counter.read_text() or 0) > before):
            assert proc.poll() is None and time.monotonic() < deadline, "publish never connected"
            time.sleep(0.05)
        time.sleep(0.3)  # it now waits for the greeting
        proc.kill()
        proc.wait()
    finally:
        hung.stop()

    status = memes_cli(cfg, "newsletter", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["in_doubt"] == []

    server = SmtpServer.standard(tmp_path)
    try:
        cfg = site_with_smtp(tmp_path, server.port)
        again = memes_cli(cfg, "publish", "--json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["newsletter"]["sent"] == 1
        [message] = server.messages()
        assert featured_order(message) == slugs
        assert memes_cli(cfg, "publish", "--json").returncode == 0
        assert len(server.messages()) == 1
    finally:
        server.stop()


def test_failure_4_a_special_edition_sent_without_storage_credentials_is_sent_once(
    tmp_path, s3_server, s3_bucket
):
    """Issue 9, failure 4: the mail went out but the archive could not be uploaded. The
    command says that it was sent (exit 1), and the next publish uploads the archive."""
    cfg = make_site(tmp_path, s3_storage_config(s3_server, s3_bucket))
    [slug] = add_memes(cfg, 1)
    assert memes_cli(cfg, "publish").returncode == 0
    body = tmp_path / "body.txt"
    body.write_text("Hello", encoding="utf-8")
    no_keys = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ACCESS")
               and not k.startswith("AWS_SECRET")}  # fmt: skip

    sent = memes_cli(cfg, "newsletter", "send", "--special", "--subject", "S", "--body",
                     str(body), "--slug", slug, env=no_keys)  # fmt: skip

    assert sent.returncode == 1
    assert sent.stderr.splitlines() == [
        "memes: sent special edition 1; archive upload failed: "
        f"storage s3://{s3_bucket}/site at {s3_server.endpoint}: no credentials found "
        "(set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY); the next publish uploads it"
    ]
    outbox = tmp_path / "memes" / "outbox"
    assert [p.name for p in outbox.iterdir()] == ["special-1.eml"]
    status = json.loads(memes_cli(cfg, "newsletter", "status", "--json").stdout)
    assert status["last_special"]["number"] == 1 and status["in_doubt"] == []

    again = memes_cli(cfg, "publish", "--json")
    assert again.returncode == 0, again.stderr
    client = s3_server.client()
    page = client.get_object(Bucket=s3_bucket, Key="site/newsletter/special-1.html")
    assert b"Hello" in page["Body"].read()
    assert [p.name for p in outbox.iterdir()] == ["special-1.eml"]  # never sent again


# --- hostile input: passwords, headers (issue 10, items 5-7) -----------------------------------


def test_a_utf8_smtp_password_logs_in(tmp_path, memes, monkeypatch):
    password = "Grüße-пароль-密码"
    server = SmtpServer.custom(tmp_path, "--auth", f"memes:{password}")
    try:
        memes.publish(12)
        smtp = {"host": "127.0.0.1", "port": server.port, "username": "memes"}
        config = make_config(tmp_path, server.port, smtp=smtp)
        monkeypatch.setenv("MEMES_SMTP_PASSWORD", password)
        outcome = newsletter.run_rule(memes.library, config)
        assert outcome.warning is None and outcome.sent.number == 1
        assert len(server.messages()) == 1

        monkeypatch.setenv("MEMES_SMTP_PASSWORD", "Grüße-falsch")
        memes.publish(12)
        outcome = newsletter.run_rule(memes.library, config)
        assert "login as memes refused" in outcome.warning and "Grüße" not in outcome.warning
        assert memes.library.editions_in_doubt() == []  # refused before anything went out
        assert len(server.messages()) == 1
    finally:
        server.stop()


def test_a_login_the_server_cannot_offer_is_a_certain_failure_before_anything_is_sent(
    tmp_path, smtp, memes, monkeypatch
):
    memes.publish(12)
    config = make_config(tmp_path, smtp.port, smtp={"host": "127.0.0.1", "port": smtp.port,
                                                    "username": "memes"})  # fmt: skip
    monkeypatch.setenv("MEMES_SMTP_PASSWORD", "Grüße")
    outcome = newsletter.run_rule(memes.library, config)  # this server offers no AUTH at all
    assert outcome.sent is None and not outcome.in_doubt
    assert "offers no AUTH" in outcome.warning and "stays due" in outcome.warning
    assert memes.library.editions() == [] and smtp.messages() == []


def test_no_header_carries_a_control_character_whatever_the_titles_hold(tmp_path, memes):
    memes.publish(1, title="T\x00itle\x01 \x1b[2J\u0085x\u009b\r\nBcc: evil@example.org")
    memes.publish(11)
    config = make_config(tmp_path)
    outcome = newsletter.run_rule(memes.library, config)
    assert outcome.sent is not None
    raw = (tmp_path / "outbox" / "regular-1.eml").read_bytes()
    head = raw.split(b"\n\n", 1)[0].decode("ascii")
    message = email.message_from_bytes(raw, policy=default_policy)
    assert message["Subject"] == "Memes #1: Title [2J x Bcc: evil@example.org and 11 more"
    assert message["Bcc"] is None
    for name, value in message.items():
        assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in str(value)), name
    assert "\x00" not in head and "\x1b" not in head


def test_without_an_unsubscribe_setting_every_edition_says_how_to_unsubscribe(tmp_path, memes):
    memes.publish(12)
    config = make_config(tmp_path, unsubscribe_url=None, unsubscribe_mailto=None)
    newsletter.run_rule(memes.library, config)
    raw = (tmp_path / "outbox" / "regular-1.eml").read_bytes()
    message = email.message_from_bytes(raw, policy=default_policy)
    assert message["List-Unsubscribe"] == "<mailto:memes@example.org?subject=unsubscribe>"
    assert message["List-Unsubscribe-Post"] is None  # one-click needs an https URL


def test_without_an_unsubscribe_setting_both_parts_show_the_headers_mailto(tmp_path, memes):
    """A reader whose mail program hides List-Unsubscribe still finds the way out in the
    body: the same mailto the header names, in the text part and as the HTML part's link."""
    memes.publish(12)
    config = make_config(tmp_path, unsubscribe_url=None, unsubscribe_mailto=None)
    newsletter.run_rule(memes.library, config)
    raw = (tmp_path / "outbox" / "regular-1.eml").read_bytes()
    message = email.message_from_bytes(raw, policy=default_policy)
    target = "mailto:memes@example.org?subject=unsubscribe"
    assert f"Unsubscribe: {target}" in text_part(message)
    assert target in Images(html_part(message)).links


# --- every `memes newsletter` subcommand: success and failure exit codes -----------------------


def cli_run(cfg: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(cfg), *args], catch_exceptions=False)


def cli_site(tmp_path: Path, port: int | None = None, username: str | None = None) -> Path:
    """A config whose library is the `memes` fixture's (tmp_path/memes): delivery to the
    outbox (config.yaml), or to an SMTP server (smtp-PORT.yaml), signing in as ``username``."""
    news: dict[str, Any] = {"recipients": ["list@example.org"]}
    if port is not None:
        news["smtp"] = {"host": "127.0.0.1", "port": port, "timeout": 5}
        if username is not None:
            news["smtp"]["username"] = username
    data = {"site": {"title": "Memes", "base_url": BASE_URL}, "storage": {"url": "file://public"},
            "newsletter": news}  # fmt: skip
    path = tmp_path / ("config.yaml" if port is None else f"smtp-{port}.yaml")
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def put_in_doubt(library: Library, slugs: list[str]) -> None:
    """What a run killed during the SMTP transfer leaves behind."""
    library.begin_edition("regular", 1, slugs, "Memes #1", "<1@example.org>")
    library.transfer_edition("regular", 1)


def test_newsletter_send_exit_codes(tmp_path, memes):
    cfg = cli_site(tmp_path)
    memes.publish(11)
    nothing = cli_run(cfg, "newsletter", "send")
    assert nothing.exit_code == 0 and "no edition due: 11 memes" in nothing.stderr
    memes.publish(1)
    sent = cli_run(cfg, "newsletter", "send", "--json")
    assert sent.exit_code == 0, sent.output
    assert json.loads(sent.stdout)["sent"][0]["number"] == 1
    assert (tmp_path / "public" / "newsletter" / "1.html").is_file()  # its archive page
    missing = cli_run(cfg, "newsletter", "send", "--extra", str(tmp_path / "nope.txt"))
    assert missing.exit_code == 2 and "--extra" in missing.stderr

    memes.publish(12)
    down = cli_run(cli_site(tmp_path, free_port()), "newsletter", "send")
    assert down.exit_code == 1
    assert "not sent" in down.stderr and "stays due" in down.stderr
    assert len(down.stderr.splitlines()) == 1


def test_newsletter_send_special_exit_codes(tmp_path, memes):
    cfg = cli_site(tmp_path)
    [slug] = memes.publish(1)
    assert cli_run(cfg, "newsletter", "send", "--special").exit_code == 2  # no --subject
    unknown = cli_run(cfg, "newsletter", "send", "--special", "--subject", "S", "--slug", "nope")
    assert unknown.exit_code == 2 and "no such meme: nope" in unknown.stderr
    empty = cli_run(cfg, "newsletter", "send", "--special", "--subject", "S")
    assert empty.exit_code == 2 and "nothing to send" in empty.stderr
    ok = cli_run(cfg, "newsletter", "send", "--special", "--subject", "S", "--slug", slug)
    assert ok.exit_code == 0 and ok.stdout == "special #1: S\n"
    down = cli_run(cli_site(tmp_path, free_port()), "newsletter", "send", "--special",
                   "--subject", "T", "--slug", slug)  # fmt: skip
    assert down.exit_code == 1 and "cannot connect" in down.stderr
    assert [e.number for e in memes.library.editions("special")] == [1]


def test_newsletter_resume_and_confirm_exit_codes(tmp_path, memes):
    slugs = memes.publish(12)
    cfg = cli_site(tmp_path)
    nothing = cli_run(cfg, "newsletter", "send", "--resume")
    assert nothing.exit_code == 0 and nothing.stdout == ""
    put_in_doubt(memes.library, slugs)
    down = cli_run(cli_site(tmp_path, free_port()), "newsletter", "send", "--resume")
    assert down.exit_code == 1 and "still in doubt" in down.stderr
    resumed = cli_run(cfg, "newsletter", "send", "--resume")
    assert resumed.exit_code == 0 and resumed.stdout == "regular #1: Memes #1\n"
    assert (tmp_path / "memes" / "outbox" / "regular-1.eml").is_file()

    assert cli_run(cfg, "newsletter", "confirm", "regular", "7").exit_code == 2
    assert cli_run(cfg, "newsletter", "confirm", "weekly", "1").exit_code == 2
    memes.library.begin_edition("special", 1, [], "Hello", "<2@example.org>", note="x")
    memes.library.transfer_edition("special", 1)
    confirmed = cli_run(cfg, "newsletter", "confirm", "special", "1")
    assert confirmed.exit_code == 0 and confirmed.stdout == "special #1: sent\n"
    assert memes.library.editions_in_doubt() == []


def test_newsletter_status_exits_1_while_an_edition_is_in_doubt(tmp_path, memes):
    cfg = cli_site(tmp_path)
    slugs = memes.publish(12)
    fine = cli_run(cfg, "newsletter", "status")
    assert fine.exit_code == 0 and "memes since the last edition: 12" in fine.stdout
    put_in_doubt(memes.library, slugs)
    for args in (["newsletter", "status"], ["newsletter", "status", "--json"], ["publish"]):
        doubt = cli_run(cfg, *args)
        assert doubt.exit_code == 1, args
        [line] = [x for x in doubt.stderr.splitlines() if "in doubt" in x]
        assert "memes newsletter send --resume" in line
        assert "memes newsletter confirm regular 1" in line
    assert json.loads(cli_run(cfg, "newsletter", "status", "--json").stdout)["in_doubt"]


def test_newsletter_preview_exit_codes(tmp_path, memes):
    cfg = cli_site(tmp_path)
    nothing = cli_run(cfg, "newsletter", "preview")
    assert nothing.exit_code == 0 and nothing.stdout == ""
    assert "nothing pending" in nothing.stderr
    slugs = memes.publish(3)
    shown = cli_run(cfg, "newsletter", "preview")
    assert shown.exit_code == 0 and f"/m/{slugs[2]}" in shown.stdout
    out = tmp_path / "preview.html"
    assert cli_run(cfg, "newsletter", "preview", "--out", str(out)).exit_code == 0
    assert f"/m/{slugs[0]}" in out.read_text(encoding="utf-8")
    bad = cli_run(cfg, "newsletter", "preview", "--extra", str(tmp_path / "nope"))
    assert bad.exit_code == 2
    assert cli_run(cfg, "newsletter", "preview", "--out", str(tmp_path)).exit_code == 2  # a folder
    assert memes.library.editions() == []


def test_a_run_killed_after_writing_the_eml_is_settled_as_sent_and_not_written_again(
    tmp_path, memes
):
    """Outbox delivery: the .eml is the handover. A run that died after writing it (before
    recording it) left the edition 'preparing'; the next run records it sent, writes nothing."""
    config = make_config(tmp_path)
    slugs = memes.publish(12)
    edition = newsletter.draft(memes.library.published(), config, kind="regular", number=1,
                               subject="Memes #1", note=None)  # fmt: skip
    memes.library.begin_edition("regular", 1, slugs, edition.subject, edition.message_id)
    eml = tmp_path / "outbox" / "regular-1.eml"
    eml.parent.mkdir()
    eml.write_bytes(edition.message.as_bytes())
    written = eml.stat().st_mtime_ns

    outcome = newsletter.run_rule(memes.library, config)

    assert outcome.sent is None and outcome.warning is None
    assert memes.library.edition("regular", 1).status == "sent"
    assert (outcome.pending, outcome.due_in) == (0, 12)
    assert eml.stat().st_mtime_ns == written
    assert sorted(p.name for p in eml.parent.iterdir()) == ["regular-1.eml"]


def test_the_archive_pages_carry_the_gallery_pages_content_security_policy(tmp_path, smtp, memes):
    """They are served from the gallery's site: no script may run in them, no base or form
    may point elsewhere. Mail HTML styles inline, so only style-src differs."""
    config = make_config(tmp_path, smtp.port)
    memes.publish(12)
    newsletter.run_rule(memes.library, config)
    published_page = next(d for d in gallery.static_documents() if d.key == gallery.PAGE_HTML)
    gallery_page = published_page.data.decode()
    policy = re.search(r'Content-Security-Policy" content="([^"]+)"', gallery_page)
    assert policy
    gallery_csp = dict(d.strip().split(" ", 1) for d in policy[1].split(";"))
    documents = newsletter.archive_documents(
        memes.library.editions(), memes.library.published(), config
    )
    pages = [d for d in documents if d.key.endswith(".html")]
    assert {d.key for d in pages} == {"newsletter/1.html", "newsletter/index.html"}
    for page in pages:
        found = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">',
                          page.data.decode())  # fmt: skip
        assert found, page.key
        csp = dict(d.strip().split(" ", 1) for d in html.unescape(found[1]).split(";"))
        assert csp.pop("style-src") == "'unsafe-inline'"
        assert csp.pop("script-src") == "'none'"
        assert csp == {k: v for k, v in gallery_csp.items() if k[:6] not in ("style-", "script")}
    mail = newsletter.render_html([], config, number=1, kind="regular", subject="s", extra=None)
    assert "Content-Security-Policy" not in mail  # the mail itself has no use for one


def test_an_archive_upload_that_fails_after_the_edition_went_out_never_sends_it_again(tmp_path):
    """Issue 9: once the SMTP server took an edition, a later failure in the same `memes
    publish` (its archive page cannot be written) says it was sent, exits 1, never sends it
    again, and the next publish uploads the archive page."""
    server = SmtpServer.standard(tmp_path)
    try:
        cfg = site_with_smtp(tmp_path, server.port)
        add_memes(cfg, 11, size=(200, 150))
        first = memes_cli(cfg, "publish", "--json")
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["newsletter"]["due_in"] == 1
        public = tmp_path / "public"
        page = public / "newsletter" / "1.html"
        # A real storage failure for that one key: a folder stands where its file must go.
        (page / "in-the-way").mkdir(parents=True)
        add_memes(cfg, 1, start=11, size=(200, 150))

        failed = memes_cli(cfg, "publish", "--json")

        assert failed.returncode == 1, failed.stderr
        assert failed.stderr.splitlines() == [
            f"memes: sent edition 1; archive upload failed: storage file://{public}: cannot "
            "write newsletter/1.html: Is a directory; the next publish uploads it"
        ]
        summary = json.loads(failed.stdout)
        assert summary["newsletter"]["sent"] == 1 and len(summary["published"]) == 1
        assert len(server.messages()) == 1
        status = json.loads(memes_cli(cfg, "newsletter", "status", "--json").stdout)
        assert status["last"]["number"] == 1 and status["last"]["status"] == "sent"
        assert status["in_doubt"] == []

        (page / "in-the-way").rmdir()
        page.rmdir()
        again = memes_cli(cfg, "publish", "--json")
        assert again.returncode == 0, again.stderr
        assert "newsletter/1.html" in json.loads(again.stdout)["uploaded"]
        assert "Memes" in page.read_text(encoding="utf-8")
        assert memes_cli(cfg, "publish").returncode == 0
        assert len(server.messages()) == 1  # sent once, whatever happened after
        checked = memes_cli(cfg, "verify")
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        server.stop()


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_smtp_auth_takes_the_password_from_the_environment_and_never_prints_it(
    tmp_path, memes, mechanism
):
    """`memes newsletter send` logs in with AUTH LOGIN or PLAIN, whichever the server offers,
    with MEMES_SMTP_PASSWORD; a refused login is one line (exit 1, no traceback) that names
    the user and never the password, in any form."""
    password = "Sup3r-s3cret-Grüße"
    server = SmtpServer.custom(tmp_path, "--auth", f"memes:{password}", "--auth-only", mechanism)
    log = server.maildir / "auth.log"
    secrets = [password, base64.b64encode(password.encode()).decode(),
               base64.b64encode(f"\0memes\0{password}".encode()).decode()]  # fmt: skip
    try:
        memes.publish(12)
        cfg = cli_site(tmp_path, server.port, username="memes")
        env = {k: v for k, v in os.environ.items() if k != "MEMES_SMTP_PASSWORD"}

        unset = memes_cli(cfg, "newsletter", "send", env=env)
        assert unset.returncode == 1
        assert unset.stderr.splitlines() == [
            f"memes: newsletter #1 not sent: SMTP server 127.0.0.1:{server.port}: login as "
            "memes: MEMES_SMTP_PASSWORD is not set; it stays due and the next run sends it"
        ]

        wrong = memes_cli(cfg, "newsletter", "send",
                          env={**env, "MEMES_SMTP_PASSWORD": "wrong-" + password})  # fmt: skip
        assert wrong.returncode == 1
        [line] = wrong.stderr.splitlines()
        assert line.startswith(f"memes: newsletter #1 not sent: SMTP server 127.0.0.1:"
                               f"{server.port}: login as memes refused: 535")  # fmt: skip
        assert "Traceback" not in wrong.stdout + wrong.stderr
        assert log.read_text().splitlines() == [f"{mechanism} memes refused"]
        assert server.messages() == []

        sent = memes_cli(cfg, "newsletter", "send", "--json",
                         env={**env, "MEMES_SMTP_PASSWORD": password})  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout)["sent"][0]["number"] == 1
        assert log.read_text().splitlines()[-1] == f"{mechanism} memes ok"
        [message] = server.messages()
        shown = [unset.stdout, unset.stderr, wrong.stdout, wrong.stderr, sent.stdout, sent.stderr,
                 message.as_string(), (tmp_path / "memes" / "catalog.sqlite").read_bytes().decode(
                     "latin-1")]  # fmt: skip
        for secret in secrets:
            assert not any(secret in text for text in shown), secret
    finally:
        server.stop()


def test_smtp_auth_over_starttls_sends_the_password_only_inside_tls(tmp_path, memes, certificate):
    """A server that takes AUTH only over TLS (aiosmtpd's default): with `starttls: true` and
    its certificate trusted, AUTH LOGIN goes over TLS and the edition is delivered; without
    starttls the client is offered no AUTH and says so in one line, the password never sent."""
    password = "Sup3r-s3cret-pa55"
    cert, key = certificate
    server = SmtpServer.custom(tmp_path, "--auth", f"memes:{password}", "--auth-only", "LOGIN",
                               "--starttls", str(cert), str(key))  # fmt: skip
    log = server.maildir / "auth.log"
    env = {**os.environ, "MEMES_SMTP_PASSWORD": password, "SSL_CERT_FILE": str(cert)}
    try:
        memes.publish(12)
        cfg = cli_site(tmp_path, server.port, username="memes")

        clear = memes_cli(cfg, "newsletter", "send", env=env)
        assert clear.returncode == 1
        assert clear.stderr.splitlines() == [
            f"memes: newsletter #1 not sent: SMTP server 127.0.0.1:{server.port}: login as "
            "memes: the server offers no AUTH; it stays due and the next run sends it"
        ]  # AUTH is offered only inside TLS: no password went over the plain connection
        assert not log.exists() and server.messages() == []

        data = yaml.safe_load(cfg.read_text())
        data["newsletter"]["smtp"]["starttls"] = True
        cfg.write_text(yaml.safe_dump(data), encoding="utf-8")
        sent = memes_cli(cfg, "newsletter", "send", "--json", env=env)
        assert sent.returncode == 0, sent.stderr
        assert log.read_text().splitlines() == ["LOGIN memes ok"]
        assert len(server.messages()) == 1
        assert password not in clear.stderr + sent.stdout + sent.stderr
    finally:
        server.stop()

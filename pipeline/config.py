"""config.yaml -> frozen dataclasses, parsed once.

Every error names the file and the key path and what was expected, e.g.
``config.yaml: renditions.thumb.width: expected a positive integer, got 'abc'``.
Every key has a default (see DEFAULTS and the README), so an empty file is a valid config.
Relative paths are resolved against the config file's folder. Secrets never live here:
S3 credentials come from the standard AWS chain, the SMTP password from MEMES_SMTP_PASSWORD.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from pipeline.errors import ConfigError

CONFIG_ENV = "MEMES_CONFIG"
SMTP_PASSWORD_ENV = "MEMES_SMTP_PASSWORD"

FORMATS = ("webp", "jpeg", "png", "gif", "avif")
FITS = ("contain", "cover", "pad")
POSITIONS = (
    "top-left", "top", "top-right",
    "left", "center", "right",
    "bottom-left", "bottom", "bottom-right",
)  # fmt: skip

DEFAULT_RENDITIONS: dict[str, dict[str, Any]] = {
    "thumb": {"width": 320, "format": "webp", "quality": 80, "watermark": False},
    "large": {"width": 1200, "format": "webp", "quality": 82},
    "social": {"width": 1080, "height": 1080, "fit": "pad", "format": "jpeg", "quality": 85},
    "portrait": {"width": 1080, "height": 1350, "fit": "pad", "format": "jpeg", "quality": 85},
    "landscape": {"width": 1200, "height": 675, "fit": "cover", "format": "jpeg", "quality": 85},
    "og": {"width": 1200, "height": 630, "fit": "cover", "format": "jpeg", "quality": 85},
}

DEFAULTS: dict[str, Any] = {
    "site": {"title": "Memes", "base_url": "http://localhost:8000/", "timezone": "UTC"},
    "library": "memes",
    "storage": {
        "url": "file://public",
        "endpoint_url": None,
        "region": None,
        "concurrency": 16,
        "acl": None,
        "document_max_age": 300,
        "gc_grace_days": 7,
        "lock_ttl": 3600,
    },
    "renditions": DEFAULT_RENDITIONS,
    "background": "#ffffff",
    "watermark": {
        "text": "@AEGISAlliance",
        "image": None,
        "font": None,
        "position": "bottom-right",
        "margin": 0.02,
        "opacity": 0.5,
        "size": 0.05,
        "min_width": 400,
    },
    "overlay": {"font": None, "min_font_size": 14},
    "limits": {"max_pixels": 64_000_000, "max_bytes": 52_428_800},
    "categories": ["funny", "informative", "tech"],
    "publish": {"batch_size": 12, "workers": 0},
    "gallery": {"page_size": 50, "feed_size": 50},
    "newsletter": {
        "every": 12,
        "sender": "Memes <memes@example.org>",
        "recipients": ["list@example.org"],
        "smtp": None,
        "outbox": "memes/outbox",
        "list_id": "Memes <memes.example.org>",
        "unsubscribe_url": None,
        "unsubscribe_mailto": None,
        "subject": "Memes #{number}: {first_title}{more}",
        "extra": None,
    },
    "studio": {"secure_cookies": False, "trust_proxy": False},
}

SMTP_DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 25,
    "starttls": False,
    "tls": False,
    "username": None,
    "timeout": 30,
}


@dataclass(frozen=True)
class SiteConfig:
    title: str
    base_url: str  # always ends with "/"
    timezone: str = "UTC"  # IANA name: times typed without an offset, and times shown

    @property
    def zone(self) -> tzinfo:
        return UTC if self.timezone == "UTC" else ZoneInfo(self.timezone)


@dataclass(frozen=True)
class StorageConfig:
    url: str  # file:///abs/path or s3://bucket/prefix (file URLs are made absolute)
    endpoint_url: str | None
    region: str | None
    concurrency: int
    acl: str | None
    document_max_age: int  # Cache-Control max-age for index/pages/feeds
    gc_grace_days: int
    lock_ttl: int  # seconds after which a lock object left by a dead host is taken over

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")

    @property
    def local_path(self) -> Path:
        if self.is_s3:
            raise ValueError("not a file:// storage")
        return Path(self.url[len("file://") :])

    @property
    def bucket(self) -> str:
        return self.url[len("s3://") :].split("/", 1)[0]

    @property
    def prefix(self) -> str:
        """Key prefix inside the bucket: '' or 'some/prefix/' (always ends with '/')."""
        rest = self.url[len("s3://") :].split("/", 1)
        prefix = rest[1].strip("/") if len(rest) > 1 else ""
        return prefix + "/" if prefix else ""


@dataclass(frozen=True)
class RenditionSpec:
    name: str
    width: int
    height: int | None = None
    max_height: int | None = None
    fit: str = "contain"
    format: str = "webp"
    quality: int = 82
    watermark: bool = True
    pad_color: str | None = None  # None: pad with a blurred, darkened copy of the image

    @property
    def extension(self) -> str:
        return "jpg" if self.format == "jpeg" else self.format

    @property
    def content_type(self) -> str:
        return f"image/{self.format}"


@dataclass(frozen=True)
class WatermarkConfig:
    text: str | None
    image: Path | None
    font: Path | None
    position: str
    margin: float  # fraction of the rendition width
    opacity: float
    size: float  # text height or logo width, as a fraction of the rendition width
    min_width: int  # renditions narrower than this get no watermark

    @property
    def enabled(self) -> bool:
        return bool(self.text) or self.image is not None


@dataclass(frozen=True)
class OverlayConfig:
    font: Path | None
    min_font_size: int


@dataclass(frozen=True)
class LimitsConfig:
    max_pixels: int
    max_bytes: int


@dataclass(frozen=True)
class PublishConfig:
    batch_size: int
    workers: int  # 0 = one per core


@dataclass(frozen=True)
class GalleryConfig:
    page_size: int
    feed_size: int


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    starttls: bool
    tls: bool  # implicit TLS (port 465)
    username: str | None
    timeout: float

    @property
    def password(self) -> str | None:
        return os.environ.get(SMTP_PASSWORD_ENV)


@dataclass(frozen=True)
class NewsletterConfig:
    every: int
    sender: str
    recipients: tuple[str, ...]
    smtp: SmtpConfig | None  # None: write .eml files to the outbox folder
    outbox: Path
    list_id: str
    unsubscribe_url: str | None
    unsubscribe_mailto: str | None  # always a mailto: URL
    subject: str
    extra: str | None  # an extra HTML-safe text block (plain text, escaped in the template)


@dataclass(frozen=True)
class StudioConfig:
    secure_cookies: bool  # the session cookie is Secure (the studio is reached over https)
    trust_proxy: bool  # believe X-Forwarded-Proto/-For from the reverse proxy in front


@dataclass(frozen=True)
class Config:
    path: Path | None
    site: SiteConfig
    library: Path
    storage: StorageConfig
    renditions: tuple[RenditionSpec, ...]
    background: str
    watermark: WatermarkConfig
    overlay: OverlayConfig
    limits: LimitsConfig
    categories: tuple[str, ...]
    publish: PublishConfig
    gallery: GalleryConfig
    newsletter: NewsletterConfig
    studio: StudioConfig = StudioConfig(secure_cookies=False, trust_proxy=False)

    def rendition(self, name: str) -> RenditionSpec:
        for spec in self.renditions:
            if spec.name == name:
                return spec
        raise KeyError(name)


# --- parsing -------------------------------------------------------------------------------


class _Reader:
    """Reads typed values out of a mapping, naming file + key path in every error."""

    def __init__(self, source: str, root: Path):
        self.source = source
        self.root = root

    def fail(self, path: str, expected: str, got: Any) -> ConfigError:
        return ConfigError(f"{self.source}: {path}: expected {expected}, got {got!r}")

    def mapping(self, value: Any, path: str, allowed: Mapping[str, Any]) -> dict[str, Any]:
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise self.fail(path, "a mapping", value)
        for key in value:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                known = ", ".join(sorted(allowed))
                raise ConfigError(f"{self.source}: {where}: unknown key (known keys: {known})")
        merged = copy.deepcopy(dict(allowed))
        merged.update(value)
        return merged

    def integer(self, value: Any, path: str, minimum: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise self.fail(path, what, value)
        return value

    def optional_integer(self, value: Any, path: str) -> int | None:
        return None if value is None else self.integer(value, path)

    def number(self, value: Any, path: str, low: float, high: float) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise self.fail(path, f"a number from {low} to {high}", value)
        return float(value)

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, "true or false", value)
        return value

    def string(self, value: Any, path: str, *, empty: bool = False) -> str:
        if not isinstance(value, str) or (not empty and not value.strip()):
            raise self.fail(path, "a non-empty string" if not empty else "a string", value)
        return value

    def optional_string(self, value: Any, path: str) -> str | None:
        return None if value is None else self.string(value, path)

    def choice(self, value: Any, path: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.fail(path, "one of " + ", ".join(choices), value)
        return value

    def color(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not re.fullmatch(r"#[0-9a-fA-F]{6}", value):
            raise self.fail(path, "a colour like '#ffffff'", value)
        return value.lower()

    def url(self, value: Any, path: str) -> str:
        text = self.string(value, path)
        if not re.match(r"https?://[^/\s]+", text):
            raise self.fail(path, "an http(s) URL", value)
        return text if text.endswith("/") else text + "/"

    def path(self, value: Any, path: str, *, must_exist: bool = False) -> Path:
        text = self.string(value, path)
        resolved = (self.root / os.path.expanduser(text)).resolve()
        if must_exist and not resolved.is_file():
            raise ConfigError(f"{self.source}: {path}: file not found: {resolved}")
        return resolved

    def optional_path(self, value: Any, path: str, *, must_exist: bool = False) -> Path | None:
        return None if value is None else self.path(value, path, must_exist=must_exist)

    def timezone(self, value: Any, path: str) -> str:
        expected = "an IANA time zone name such as 'Europe/Berlin' or 'UTC'"
        text = self.string(value, path)
        if text == "UTC":
            return text
        try:
            ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError):
            raise self.fail(path, expected, value) from None
        return text

    def header(self, value: Any, path: str) -> str:
        """A value that ends up in a mail header: one line, no CR, LF or NUL (an injected
        header, or a message no server takes)."""
        text = self.string(value, path)
        if any(c in text for c in "\r\n\0"):
            raise self.fail(path, "one line without CR, LF or NUL (it goes into a mail header)",
                            value)  # fmt: skip
        return text

    def optional_header(self, value: Any, path: str) -> str | None:
        return None if value is None else self.header(value, path)

    def strings(self, value: Any, path: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(path, "a non-empty list of strings", value)
        return tuple(self.string(item, f"{path}[{i}]") for i, item in enumerate(value))


def _storage(r: _Reader, raw: Any) -> StorageConfig:
    d = r.mapping(raw, "storage", DEFAULTS["storage"])
    url = r.string(d["url"], "storage.url")
    if url.startswith("file://"):
        url = "file://" + str(r.path(url[len("file://") :] or ".", "storage.url"))
    elif url.startswith("s3://"):
        if not url[len("s3://") :].split("/", 1)[0]:
            raise r.fail("storage.url", "s3://BUCKET/PREFIX with a bucket name", url)
    else:
        raise r.fail("storage.url", "file://PATH or s3://BUCKET/PREFIX", url)
    endpoint = d["endpoint_url"]
    if endpoint is not None:
        endpoint = r.url(endpoint, "storage.endpoint_url").rstrip("/")
    return StorageConfig(
        url=url,
        endpoint_url=endpoint,
        region=r.optional_string(d["region"], "storage.region"),
        concurrency=r.integer(d["concurrency"], "storage.concurrency"),
        acl=r.optional_string(d["acl"], "storage.acl"),
        document_max_age=r.integer(d["document_max_age"], "storage.document_max_age", 0),
        gc_grace_days=r.integer(d["gc_grace_days"], "storage.gc_grace_days", 0),
        lock_ttl=r.integer(d["lock_ttl"], "storage.lock_ttl"),
    )


RENDITION_KEYS: dict[str, Any] = {
    "width": None,
    "height": None,
    "max_height": None,
    "fit": "contain",
    "format": "webp",
    "quality": 82,
    "watermark": True,
    "pad_color": None,
}


def _avif_supported() -> bool:
    from PIL import features

    return bool(features.check("avif"))


def _renditions(r: _Reader, raw: Any) -> tuple[RenditionSpec, ...]:
    if raw is None:
        raw = DEFAULT_RENDITIONS
    if not isinstance(raw, Mapping) or not raw:
        raise r.fail("renditions", "a mapping of name -> spec", raw)
    specs = []
    for name, spec_raw in raw.items():
        path = f"renditions.{name}"
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
            raise r.fail(path, "a name of lowercase letters, digits, '-' or '_'", name)
        d = r.mapping(spec_raw, path, RENDITION_KEYS)
        if d["width"] is None:
            raise ConfigError(f"{r.source}: {path}.width: missing (expected a positive integer)")
        fmt = r.choice(d["format"], f"{path}.format", FORMATS)
        if fmt == "avif" and not _avif_supported():
            raise ConfigError(
                f"{r.source}: {path}.format: avif is not supported by the installed Pillow"
            )
        height = r.optional_integer(d["height"], f"{path}.height")
        fit = r.choice(d["fit"], f"{path}.fit", FITS)
        specs.append(
            RenditionSpec(
                name=name,
                width=r.integer(d["width"], f"{path}.width"),
                height=height,
                max_height=r.optional_integer(d["max_height"], f"{path}.max_height"),
                fit=fit,
                format=fmt,
                quality=int(r.number(d["quality"], f"{path}.quality", 1, 100)),
                watermark=r.boolean(d["watermark"], f"{path}.watermark"),
                pad_color=None
                if d["pad_color"] is None
                else r.color(d["pad_color"], f"{path}.pad_color"),
            )
        )
    return tuple(specs)


def _watermark(r: _Reader, raw: Any) -> WatermarkConfig:
    if raw is False:  # `watermark: false` switches it off everywhere
        raw = {"text": None, "image": None}
    d = r.mapping(raw, "watermark", DEFAULTS["watermark"])
    text = d["text"]
    if text is not None:
        text = r.string(text, "watermark.text")
    return WatermarkConfig(
        text=text,
        image=r.optional_path(d["image"], "watermark.image", must_exist=True),
        font=r.optional_path(d["font"], "watermark.font", must_exist=True),
        position=r.choice(d["position"], "watermark.position", POSITIONS),
        margin=r.number(d["margin"], "watermark.margin", 0, 0.5),
        opacity=r.number(d["opacity"], "watermark.opacity", 0.05, 1),
        size=r.number(d["size"], "watermark.size", 0.005, 1),
        min_width=r.integer(d["min_width"], "watermark.min_width", 0),
    )


def _newsletter(r: _Reader, raw: Any) -> NewsletterConfig:
    d = r.mapping(raw, "newsletter", DEFAULTS["newsletter"])
    smtp = None
    if d["smtp"] is not None:
        s = r.mapping(d["smtp"], "newsletter.smtp", SMTP_DEFAULTS)
        smtp = SmtpConfig(
            host=r.string(s["host"], "newsletter.smtp.host"),
            port=r.integer(s["port"], "newsletter.smtp.port"),
            starttls=r.boolean(s["starttls"], "newsletter.smtp.starttls"),
            tls=r.boolean(s["tls"], "newsletter.smtp.tls"),
            username=r.optional_string(s["username"], "newsletter.smtp.username"),
            timeout=r.number(s["timeout"], "newsletter.smtp.timeout", 1, 600),
        )
        if smtp.starttls and smtp.tls:
            raise ConfigError(
                f"{r.source}: newsletter.smtp: starttls and tls are exclusive; choose one"
            )
    subject = r.header(d["subject"], "newsletter.subject")
    try:
        subject.format(number=1, first_title="x", more="", count=1)
    except (KeyError, IndexError, ValueError) as exc:
        raise r.fail(
            "newsletter.subject",
            "a template using {number}, {first_title}, {more}, {count}",
            subject,
        ) from exc
    mailto = r.optional_header(d["unsubscribe_mailto"], "newsletter.unsubscribe_mailto")
    if mailto and not mailto.startswith("mailto:"):
        mailto = "mailto:" + mailto  # accept a bare address; List-Unsubscribe needs the URL
    unsubscribe_url = d["unsubscribe_url"]
    if unsubscribe_url is not None:
        unsubscribe_url = r.url(
            r.header(unsubscribe_url, "newsletter.unsubscribe_url"), "newsletter.unsubscribe_url"
        ).rstrip("/")
    return NewsletterConfig(
        every=r.integer(d["every"], "newsletter.every"),
        sender=r.header(d["sender"], "newsletter.sender"),
        recipients=tuple(
            r.header(item, f"newsletter.recipients[{i}]")
            for i, item in enumerate(r.strings(d["recipients"], "newsletter.recipients"))
        ),
        smtp=smtp,
        outbox=r.path(d["outbox"], "newsletter.outbox"),
        list_id=r.header(d["list_id"], "newsletter.list_id"),
        unsubscribe_url=unsubscribe_url,
        unsubscribe_mailto=mailto,
        subject=subject,
        extra=r.optional_string(d["extra"], "newsletter.extra"),
    )


def parse(data: Any, *, source: str = "config.yaml", root: Path | None = None) -> Config:
    """Turn the loaded YAML document into a Config; raises ConfigError naming the key path."""
    root = (root or Path.cwd()).resolve()
    r = _Reader(source, root)
    top = r.mapping(data, "", DEFAULTS)

    site = r.mapping(top["site"], "site", DEFAULTS["site"])
    limits = r.mapping(top["limits"], "limits", DEFAULTS["limits"])
    overlay = r.mapping(top["overlay"], "overlay", DEFAULTS["overlay"])
    publish = r.mapping(top["publish"], "publish", DEFAULTS["publish"])
    gallery = r.mapping(top["gallery"], "gallery", DEFAULTS["gallery"])
    studio = r.mapping(top["studio"], "studio", DEFAULTS["studio"])
    categories = r.strings(top["categories"], "categories")
    for i, category in enumerate(categories):
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", category):
            raise r.fail(f"categories[{i}]", "lowercase letters, digits and '-'", category)

    return Config(
        path=None,
        site=SiteConfig(
            title=r.string(site["title"], "site.title"),
            base_url=r.url(site["base_url"], "site.base_url"),
            timezone=r.timezone(site["timezone"], "site.timezone"),
        ),
        library=r.path(top["library"], "library"),
        storage=_storage(r, top["storage"]),
        renditions=_renditions(r, top["renditions"]),
        background=r.color(top["background"], "background"),
        watermark=_watermark(r, top["watermark"]),
        overlay=OverlayConfig(
            font=r.optional_path(overlay["font"], "overlay.font", must_exist=True),
            min_font_size=r.integer(overlay["min_font_size"], "overlay.min_font_size"),
        ),
        limits=LimitsConfig(
            max_pixels=r.integer(limits["max_pixels"], "limits.max_pixels"),
            max_bytes=r.integer(limits["max_bytes"], "limits.max_bytes"),
        ),
        categories=categories,
        publish=PublishConfig(
            batch_size=r.integer(publish["batch_size"], "publish.batch_size"),
            workers=r.integer(publish["workers"], "publish.workers", 0),
        ),
        gallery=GalleryConfig(
            page_size=r.integer(gallery["page_size"], "gallery.page_size"),
            feed_size=r.integer(gallery["feed_size"], "gallery.feed_size"),
        ),
        newsletter=_newsletter(r, top["newsletter"]),
        studio=StudioConfig(
            secure_cookies=r.boolean(studio["secure_cookies"], "studio.secure_cookies"),
            trust_proxy=r.boolean(studio["trust_proxy"], "studio.trust_proxy"),
        ),
    )


def find_config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config PATH, else $MEMES_CONFIG, else ./config.yaml."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return Path("config.yaml")


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and parse the config file; ConfigError for a missing file or bad YAML."""
    config_path = find_config_path(path)
    name = str(config_path)
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{name}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read config file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{name}: invalid YAML{where}: {problem}") from None
    config = parse(data, source=name, root=config_path.resolve().parent)
    return replace(config, path=config_path.resolve())

"""config.yaml -> frozen dataclasses, parsed once.

Each setting is declared once, below: its type (which carries its check), its default and
what it is for. The checks, the defaults and the README's config reference (``reference()``,
kept true by a test) all come from these declarations; pydantic does the walking.

Every error names the file and the key path and what was expected, e.g.
``config.yaml: renditions.thumb.width: expected a positive integer, got 'abc'``.
Every key has a default, so an empty file is a valid config. Relative paths are resolved
against the config file's folder. Secrets never live here: S3 credentials come from the
standard AWS chain, the SMTP password from MEMES_SMTP_PASSWORD.
"""

from __future__ import annotations

import os
import re
import reprlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import is_dataclass, replace
from datetime import UTC, tzinfo
from functools import cache
from pathlib import Path
from typing import Annotated, Any, get_args, get_type_hints
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from pipeline import safeyaml
from pipeline.errors import ConfigError
from pipeline.files import Unreadable, read_text_capped

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
    "phone": {"width": 640, "format": "jpeg", "quality": 82},
    "large": {"width": 1200, "format": "webp", "quality": 82},
    "social": {"width": 1080, "height": 1080, "fit": "pad", "format": "jpeg", "quality": 85},
    "portrait": {"width": 1080, "height": 1350, "fit": "pad", "format": "jpeg", "quality": 85},
    "landscape": {"width": 1200, "height": 675, "fit": "cover", "format": "jpeg", "quality": 85},
    "og": {"width": 1200, "height": 630, "fit": "cover", "format": "jpeg", "quality": 85},
}

MAX_CONFIG_BYTES = 1_048_576  # a config is a page of text; anything bigger is a mistake
MAX_CONFIG_NODES = 100_000  # values, with aliases expanded (README "Config")

_SHORT = reprlib.Repr()  # a wrong value in a few words, however big the value is
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 2, 60, 60
_SHORT.maxlist = _SHORT.maxdict = _SHORT.maxtuple = _SHORT.maxset = 4
_short = _SHORT.repr

# Every section: unknown keys are errors, defaults are checked like values, objects are frozen.
# The validators are built at the first parse (or the first direct construction of a section),
# not at import: a command that never reads the config (`--help`) does not pay for them, and
# one that does builds the whole schema once, nested sections inline.
SECTION = ConfigDict(extra="forbid", validate_default=True, defer_build=True)


# --- the checks, each a type ---------------------------------------------------------------


def _fail(expected: str, got: Any) -> PydanticCustomError:
    return PydanticCustomError("memes", "expected {expected}, got {got}",
                               {"expected": expected, "got": _short(got)})  # fmt: skip


Check = Callable[[Any], Any]  # a value as YAML gave it -> the value, or a PydanticCustomError


def _checked(expected: str, ok: Callable[[Any], bool], then: Check = lambda v: v) -> Check:
    def check(value: Any) -> Any:
        if not ok(value):
            raise _fail(expected, value)
        return then(value)

    return check


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _nullable(check: Check) -> BeforeValidator:
    """null, or a value ``check`` takes."""
    return BeforeValidator(lambda v: None if v is None else check(v))


_positive = _checked("a positive integer", lambda v: _is_int(v, 1))
PositiveInt = Annotated[int, BeforeValidator(_positive)]
OptionalPositiveInt = Annotated[int | None, _nullable(_positive)]
Count = Annotated[int, BeforeValidator(_checked("an integer >= 0", lambda v: _is_int(v, 0)))]
Flag = Annotated[bool, BeforeValidator(_checked("true or false", lambda v: isinstance(v, bool)))]
_text = _checked("a non-empty string", lambda v: isinstance(v, str) and bool(v.strip()))
Text = Annotated[str, BeforeValidator(_text)]
OptionalText = Annotated[str | None, _nullable(_text)]
_color = _checked("a colour like '#ffffff'",
                  lambda v: isinstance(v, str) and bool(re.fullmatch(r"#[0-9a-fA-F]{6}", v)),
                  str.lower)  # fmt: skip
Color = Annotated[str, BeforeValidator(_color)]


def _header(value: Any) -> str:
    """A value that ends up in a mail header: one line, no CR, LF or NUL (an injected header,
    or a message no server takes)."""
    text = _text(value)
    if any(c in text for c in "\r\n\0"):
        raise _fail("one line without CR, LF or NUL (it goes into a mail header)", value)
    return text


Header = Annotated[str, BeforeValidator(_header)]


def _number(low: float, high: float, then: Check = float) -> BeforeValidator:
    return BeforeValidator(_checked(f"a number from {low} to {high}",
                                    lambda v: isinstance(v, int | float)
                                    and not isinstance(v, bool) and low <= v <= high,
                                    then))  # fmt: skip


def _int_range(low: int, high: int) -> BeforeValidator:
    return BeforeValidator(_checked(f"an integer from {low} to {high}",
                                    lambda v: _is_int(v, low) and v <= high))  # fmt: skip


def _one_of(choices: tuple[str, ...]) -> BeforeValidator:
    return BeforeValidator(_checked("one of " + ", ".join(choices), lambda v: v in choices))


def _http_url(value: Any) -> str:
    if not isinstance(value, str) or not re.match(r"https?://[^/\s]+", value):
        raise _fail("an http(s) URL", value)
    return value if value.endswith("/") else value + "/"


Url = Annotated[str, BeforeValidator(_http_url)]  # always ends with "/"


def _root(info: ValidationInfo) -> Path:
    return Path((info.context or {}).get("root") or Path.cwd())


def _path(value: Any, info: ValidationInfo) -> Path:
    if isinstance(value, Path):
        return value
    if not isinstance(value, str) or not value.strip():
        raise _fail("a non-empty string", value)
    return (_root(info) / os.path.expanduser(value)).resolve()


def _existing_file(value: Any, info: ValidationInfo) -> Path | None:
    if value is None:
        return None
    path = _path(value, info)
    if not path.is_file():
        raise PydanticCustomError("memes", "file not found: {path}", {"path": str(path)})
    return path


ConfigPath = Annotated[Path, BeforeValidator(_path)]  # relative to the config file's folder
OptionalFile = Annotated[Path | None, BeforeValidator(_existing_file)]  # must exist


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise _fail("a non-empty list of strings", value)
    return tuple(value)


Headers = Annotated[tuple[Header, ...], BeforeValidator(_strings)]


def _category(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", value):
        raise _fail("lowercase letters, digits and '-'", value)
    return value


Categories = Annotated[tuple[Annotated[str, BeforeValidator(_category)], ...],
                       BeforeValidator(_strings)]  # fmt: skip


def _timezone(value: Any) -> str:
    expected = "an IANA time zone name such as 'Europe/Berlin' or 'UTC'"
    if not isinstance(value, str) or not value.strip():
        raise _fail("a non-empty string", value)
    if value != "UTC":
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise _fail(expected, value) from None
    return value


def _section(value: Any) -> Any:
    """A section left empty (`site:`) has every default."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) and not is_dataclass(value):
        raise _fail("a mapping", value)
    return value


SECTION_DEFAULTS = BeforeValidator(_section)


def _raw(value: Any) -> Any:
    """A default as it is written in config.yaml: checked and converted like any value (a path
    is relative to the config file's folder)."""
    return value


def _empty() -> Any:
    return {}


# --- the settings ---------------------------------------------------------------------------


@dataclass(frozen=True, config=SECTION)
class SiteConfig:
    title: Text = "Memes"
    base_url: Url = Field(default="http://localhost:8000/",
                          description="public URL of the storage root (CDN)")  # fmt: skip
    timezone: Annotated[str, BeforeValidator(_timezone)] = Field(
        default="UTC",
        description="IANA name, e.g. America/New_York: a time typed without an offset "
        "(--publish-at, manifests) is read in it, and `memes list`/`show` print times in it "
        "with the zone; JSON stays UTC (…Z)",
    )

    @property
    def zone(self) -> tzinfo:
        return UTC if self.timezone == "UTC" else ZoneInfo(self.timezone)


def _storage_url(value: Any, info: ValidationInfo) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail("a non-empty string", value)
    if value.startswith("file://"):
        return "file://" + str(_path(value[len("file://") :] or ".", info))
    if value.startswith("s3://"):
        if not value[len("s3://") :].split("/", 1)[0]:
            raise _fail("s3://BUCKET/PREFIX with a bucket name", value)
        return value
    raise _fail("file://PATH or s3://BUCKET/PREFIX", value)


def _endpoint(value: Any) -> str | None:
    if isinstance(value, str) and "@" in value.split("://", 1)[-1].split("/", 1)[0]:
        raise PydanticCustomError(  # never echo it: the part before @ is a password
            "memes", "must not hold a user name or password (user:pass@); S3 credentials come "
            "from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    return None if value is None else _http_url(value).rstrip("/")


@dataclass(frozen=True, config=SECTION)
class StorageConfig:
    # file:///abs/path or s3://bucket/prefix (file URLs are made absolute)
    url: Annotated[str, BeforeValidator(_storage_url)] = Field(
        default="file://public", description="or s3://BUCKET/PREFIX")
    endpoint_url: Annotated[str | None, BeforeValidator(_endpoint)] = Field(
        default=None, description="S3-compatible endpoint; else env AWS_ENDPOINT_URL")
    region: OptionalText = None
    concurrency: PositiveInt = Field(default=16, description="parallel uploads")
    acl: OptionalText = Field(
        default=None, description="e.g. public-read, for buckets that use ACLs; else a bucket "
        "policy (see S3-compatible storage)")
    document_max_age: Count = Field(
        default=300, description="Cache-Control max-age of index, pages, feeds")
    gc_grace_days: Annotated[int, _int_range(0, 36_500)] = 7  # a timedelta must hold them
    lock_ttl: Annotated[int, _int_range(1, 30 * 86_400)] = Field(
        default=3600, description="a storage lock older than this is taken over")
    timeout: Annotated[float, _number(0.1, 600)] = Field(
        default=30, description="seconds to connect, and to wait for each answer")

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


def _avif_supported() -> bool:
    from PIL import features

    return bool(features.check("avif"))


def _format(value: Any) -> str:
    if value not in FORMATS:
        raise _fail("one of " + ", ".join(FORMATS), value)
    if value == "avif" and not _avif_supported():
        raise PydanticCustomError("memes", "avif is not supported by the installed Pillow")
    return value


@dataclass(frozen=True, config=SECTION)
class RenditionSpec:
    name: str  # the key it has under `renditions`
    width: PositiveInt = Field(description="required, never upscaled")
    height: OptionalPositiveInt = None
    max_height: OptionalPositiveInt = None
    fit: Annotated[str, _one_of(FITS)] = Field(default="contain", description=" | ".join(FITS))
    format: Annotated[str, BeforeValidator(_format)] = Field(
        default="webp", description=" | ".join(FORMATS))
    quality: Annotated[int, _number(1, 100, int)] = 82
    watermark: Flag = Field(default=True, description="default true")
    pad_color: Annotated[str | None, _nullable(_color)] = Field(
        default=None, description="'#rrggbb'; default: a blurred, darkened copy of the image")

    @property
    def extension(self) -> str:
        return "jpg" if self.format == "jpeg" else self.format

    @property
    def content_type(self) -> str:
        return f"image/{self.format}"


def _renditions(value: Any) -> Any:
    """`renditions:` is a mapping name -> spec; each spec gets its name."""
    if value is None:
        value = DEFAULT_RENDITIONS
    if isinstance(value, tuple):  # already specs (dataclasses.replace)
        return value
    if not isinstance(value, Mapping) or not value:
        raise _fail("a mapping of name -> spec", value)
    specs = []
    for name, spec in value.items():
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
            raise _fail("rendition names of lowercase letters, digits, '-' or '_'", name)
        if not isinstance(spec, Mapping):
            raise _fail(f"a mapping of spec keys for {name}", spec)
        if "name" in spec:
            raise PydanticCustomError(
                "memes", "{name}: name: unknown key (a rendition's name is its key)", {"name": name}
            )
        specs.append({**spec, "name": name})
    return specs


@dataclass(frozen=True, config=SECTION)
class WatermarkConfig:
    text: OptionalText = "@AEGISAlliance"
    image: OptionalFile = Field(default=None, description="a PNG logo with alpha instead of text")
    font: OptionalFile = Field(default=None, description="default: the bundled font")
    position: Annotated[str, _one_of(POSITIONS)] = Field(
        default="bottom-right", description=", ".join(POSITIONS))
    margin: Annotated[float, _number(0, 0.5)] = Field(
        default=0.02, description="fraction of the rendition width")
    opacity: Annotated[float, _number(0.05, 1)] = 0.5
    size: Annotated[float, _number(0.005, 1)] = Field(
        default=0.05, description="text height / logo width, fraction of the rendition width")
    min_width: Count = Field(default=400, description="narrower renditions get no watermark")

    @property
    def enabled(self) -> bool:
        return bool(self.text) or self.image is not None


def _watermark(value: Any) -> Any:
    if value is False:  # `watermark: false` switches it off everywhere
        return {"text": None, "image": None}
    return _section(value)


@dataclass(frozen=True, config=SECTION)
class OverlayConfig:
    font: OptionalFile = Field(
        default=None, description="a TTF/OTF tried first, then the bundled Anton and, per "
        "character, fallbacks for Greek, Cyrillic, Arabic, Hebrew, CJK, Hangul, Indic scripts, "
        "Thai, Lao, Khmer, Myanmar, Ethiopic, emoji to Unicode 15 in colour (Noto Color Emoji; "
        "other symbols as outlines)")
    min_font_size: PositiveInt = Field(
        default=14, description="px at 1000 px image width: text wraps at Unicode line breaks "
        "(ICU: Thai/Lao/Khmer between words) and shrinks to fit, down to this")


@dataclass(frozen=True, config=SECTION)
class LimitsConfig:
    max_pixels: PositiveInt = 64_000_000
    max_bytes: PositiveInt = 52_428_800


@dataclass(frozen=True, config=SECTION)
class PublishConfig:
    batch_size: PositiveInt = 12
    workers: Count = Field(default=0, description="0 = one render process per core")


@dataclass(frozen=True, config=SECTION)
class GalleryConfig:
    page_size: PositiveInt = 50
    feed_size: PositiveInt = 50


@dataclass(frozen=True, config=SECTION)
class SmtpConfig:
    host: Text = "127.0.0.1"
    port: PositiveInt = 25
    starttls: Flag = False
    tls: Flag = Field(default=False, description="implicit TLS (port 465)")
    username: OptionalText = None
    timeout: Annotated[float, _number(1, 600)] = 30

    @model_validator(mode="after")
    def _one_kind_of_tls(self) -> SmtpConfig:
        if self.starttls and self.tls:
            raise PydanticCustomError("memes", "starttls and tls are exclusive; choose one")
        return self

    @property
    def password(self) -> str | None:
        return os.environ.get(SMTP_PASSWORD_ENV)


def _subject(value: Any) -> str:
    text = _header(value)
    try:
        text.format(number=1, first_title="x", more="", count=1)
    except (KeyError, IndexError, ValueError):
        raise _fail("a template using {number}, {first_title}, {more}, {count}", value) from None
    return text


def _mailto(value: Any) -> str | None:
    if value is None:
        return None
    text = _header(value)
    if not text.startswith("mailto:"):
        text = "mailto:" + text  # accept a bare address; List-Unsubscribe needs the URL
    return text


def _unsubscribe_url(value: Any) -> str | None:
    return None if value is None else _endpoint(_header(value))


def _smtp(value: Any) -> Any:
    return None if value is None else _section(value)


@dataclass(frozen=True, config=SECTION)
class NewsletterConfig:
    every: PositiveInt = Field(default=12, description="an edition after every 12 published memes")
    sender: Header = "Memes <memes@example.org>"
    recipients: Headers = ("list@example.org",)
    smtp: Annotated[SmtpConfig | None, BeforeValidator(_smtp)] = Field(
        default=None, description="null: .eml files in `outbox`")
    outbox: ConfigPath = _raw("memes/outbox")
    list_id: Header = "Memes <memes.example.org>"
    unsubscribe_url: Annotated[str | None, BeforeValidator(_unsubscribe_url)] = Field(
        default=None, description="https URL: List-Unsubscribe + one-click POST")
    unsubscribe_mailto: Annotated[str | None, BeforeValidator(_mailto)] = Field(
        default=None, description="mailto:... for List-Unsubscribe; with neither, "
        "List-Unsubscribe is <mailto:SENDER?subject=unsubscribe>")
    subject: Annotated[str, BeforeValidator(_subject)] = "Memes #{number}: {first_title}{more}"
    extra: OptionalText = Field(default=None, description="an extra text block in every edition")


@dataclass(frozen=True, config=SECTION)
class StudioConfig:
    secure_cookies: Flag = Field(
        default=False, description="true when the studio is reached over https")
    trust_proxy: Flag = Field(
        default=False, description="believe X-Forwarded-Proto/-For from the proxy in front")


@dataclass(frozen=True, config=SECTION)
class Config:
    path: Path | None = None  # the file it was read from (set by load, never a key)
    site: Annotated[SiteConfig, SECTION_DEFAULTS] = Field(default_factory=_empty)
    library: ConfigPath = Field(default=_raw("memes"), description="the catalog and the originals")
    storage: Annotated[StorageConfig, SECTION_DEFAULTS] = Field(default_factory=_empty)
    renditions: Annotated[tuple[RenditionSpec, ...], BeforeValidator(_renditions)] = Field(
        default_factory=lambda: _raw(DEFAULT_RENDITIONS), description="name -> spec")
    background: Color = Field(
        default="#ffffff", description="transparency is flattened onto this for JPEG")
    watermark: Annotated[WatermarkConfig, BeforeValidator(_watermark)] = Field(
        default_factory=_empty, description="or `watermark: false`")
    overlay: Annotated[OverlayConfig, SECTION_DEFAULTS] = Field(
        default_factory=_empty, description="meme text")
    limits: Annotated[LimitsConfig, SECTION_DEFAULTS] = Field(default_factory=_empty)
    categories: Categories = ("funny", "informative", "tech")
    publish: Annotated[PublishConfig, SECTION_DEFAULTS] = Field(default_factory=_empty)
    gallery: Annotated[GalleryConfig, SECTION_DEFAULTS] = Field(default_factory=_empty)
    newsletter: Annotated[NewsletterConfig, SECTION_DEFAULTS] = Field(default_factory=_empty)
    studio: Annotated[StudioConfig, SECTION_DEFAULTS] = Field(
        default_factory=_empty, description="memes serve")

    def rendition(self, name: str) -> RenditionSpec:
        for spec in self.renditions:
            if spec.name == name:
                return spec
        raise KeyError(name)


@cache
def _adapter() -> TypeAdapter[Config]:
    """The validator of a whole config, built on first use (see SECTION)."""
    return TypeAdapter(Config)


# --- parsing -------------------------------------------------------------------------------


def _where(loc: tuple[int | str, ...], data: Any) -> str:
    """A pydantic error location as the key path people wrote ('renditions.thumb.width',
    'categories[0]'): a mapping turned into a list (renditions) is named by its keys."""
    path, node = "", data
    for part in loc:
        if isinstance(part, int) and isinstance(node, Mapping):
            part = list(node)[part]
        if isinstance(part, int):
            path += f"[{part}]"
            node = node[part] if isinstance(node, list | tuple) and part < len(node) else None
        else:
            path += f".{part}" if path else str(part)
            node = node.get(part) if isinstance(node, Mapping) else None
    return path


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys the section at ``loc`` accepts."""
    cls: Any = Config
    for part in loc:
        hints = get_type_hints(cls, include_extras=True) if _dataclass_in(cls) else {}
        if isinstance(part, str) and part in hints:
            cls = _dataclass_in(hints[part])
        elif isinstance(part, int):
            cls = RenditionSpec if cls is Config else cls
    return sorted(key for key, _, _ in _settings(cls)) if _dataclass_in(cls) else []


def _dataclass_in(hint: Any) -> Any:
    """The settings section class in a field's type, if any."""
    if isinstance(hint, type) and hasattr(hint, "__pydantic_fields__"):
        return hint
    for arg in get_args(hint):
        if found := _dataclass_in(arg):
            return found
    return None


def _message(error: Any, data: Any, source: str) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        known = ", ".join(_known_keys(loc[:-1]))
        return f"{source}: {_where(loc, data)}: unknown key (known keys: {known})"
    if kind == "missing":
        return f"{source}: {_where(loc, data)}: missing"
    if kind == "memes":
        return f"{source}: {_where(loc, data)}: {error['msg']}"
    got = error.get("input")
    return f"{source}: {_where(loc, data)}: {error['msg'][0].lower()}{error['msg'][1:]}, " \
        f"got {_short(got)}"


def parse(data: Any, *, source: str = "config.yaml", root: Path | None = None) -> Config:
    """Turn the loaded YAML document into a Config; raises ConfigError naming the key path."""
    root = (root or Path.cwd()).resolve()
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of settings, got {_short(data)}")
    if "path" in data:
        known = ", ".join(_known_keys(()))
        raise ConfigError(f"{source}: path: unknown key (known keys: {known})")
    try:
        return _adapter().validate_python(dict(data), context={"root": root})
    except ValidationError as exc:
        raise ConfigError(_message(exc.errors()[0], data, source)) from None


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
        text = read_text_capped(config_path, MAX_CONFIG_BYTES)
    except Unreadable as exc:
        raise ConfigError(f"{name}: config file {exc}") from None
    try:
        data = safeyaml.load(text, max_nodes=MAX_CONFIG_NODES)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{name}: invalid YAML{where}: {problem}") from None
    config = parse(data, source=name, root=config_path.resolve().parent)
    return replace(config, path=config_path.resolve())


# --- the README's reference ---------------------------------------------------------------

COMMENT_COLUMN = 42
_FLOW_SECTIONS = ("overlay", "limits", "publish", "gallery")  # short: one line each


def _yaml_value(value: Any) -> str:
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, tuple):
        value = list(value)
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1000,
                          sort_keys=False).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _commented(line: str, comment: str | None) -> Iterator[str]:
    if not comment:
        yield line
        return
    words, width = comment.split(), 100 - COMMENT_COLUMN - 2
    chunks: list[str] = []
    for word in words:
        if chunks and len(chunks[-1]) + 1 + len(word) <= width:
            chunks[-1] += " " + word
        else:
            chunks.append(word)
    for i, chunk in enumerate(chunks):
        head = line if i == 0 else ""
        yield f"{head:<{COMMENT_COLUMN}}# {chunk}" if len(head) < COMMENT_COLUMN else \
            f"{head}  # {chunk}"


def _settings(cls: Any) -> Iterator[tuple[str, Any, str | None]]:
    """(key, default, what it is for) of each setting of a section, in order."""
    for name, info in cls.__pydantic_fields__.items():
        if name not in ("path", "name"):
            yield name, info.get_default(call_default_factory=True), info.description


def reference() -> str:
    """Every key with its default and what it is for, as the README's YAML block."""
    lines: list[str] = []
    hints = get_type_hints(Config, include_extras=True)
    for key, default, note in _settings(Config):
        section = _dataclass_in(hints[key])
        if key == "renditions":
            lines += _commented("renditions:", note)
            width = max(len(n) for n in DEFAULT_RENDITIONS) + 2
            for name, spec in DEFAULT_RENDITIONS.items():
                lines.append(f"  {name + ':':<{width}}{_yaml_value(spec)}")
            keys = [f"{k} ({what})" if what else k for k, _, what in _settings(RenditionSpec)]
            lines += [f"  # {line}" for line in _wrap("spec keys: " + ", ".join(keys), 96)]
        elif section is not None and key in _FLOW_SECTIONS:
            settings = list(_settings(section))
            notes = [f"{k}: {what}" for k, _, what in settings if what]
            lines += _commented(f"{key}: {_yaml_value({k: v for k, v, _ in settings})}",
                                "; ".join(filter(None, [note, *notes])))  # fmt: skip
        elif section is not None:
            lines += _commented(f"{key}:", note)
            for k, value, what in _settings(section):
                if section is NewsletterConfig and k == "smtp":  # null, or a section
                    lines += _commented("  smtp: null", f"{what}; else:")
                    smtp = {h: v for h, v, _ in _settings(SmtpConfig)}
                    lines.append(f"  #  {_yaml_value(smtp)}")
                    continue
                lines += _commented(f"  {k}: {_yaml_value(value)}", what)
        else:
            lines += _commented(f"{key}: {_yaml_value(default)}", note)
    return "\n".join(lines) + "\n"


def _wrap(text: str, width: int) -> list[str]:
    out: list[str] = []
    for word in text.split():
        if out and len(out[-1]) + 1 + len(word) <= width:
            out[-1] += " " + word
        else:
            out.append(word)
    return out


if __name__ == "__main__":  # python -m pipeline.config: the reference, for the README
    print(reference(), end="")

"""File -> validated, hashed original + new Meme record (`memes add`, `memes import`).

A file is judged by its content, never its name. The checks run in this order so the cheap
ones refuse bad input before any pixel is decoded: size on disk, format from the header,
pixel count (frames x width x height) from the header, then a full decode (JPEG in draft
mode: libjpeg still reads every byte, so truncation is caught, at a fraction of the cost).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import yaml
from PIL import Image, ImageFile

from pipeline import (
    heif,  # noqa: F401 - Pillow opens HEIC/HEIF photos
    safeyaml,
    textcheck,
)
from pipeline.config import Config, LimitsConfig
from pipeline.errors import IngestError, NotFoundError, RenderError, UsageError
from pipeline.files import NotRegularFile, TooBig, Unreadable, read_capped, read_text_capped
from pipeline.library import (
    MEME_FIELD_COLUMNS,
    DuplicateError,
    Inspection,
    Library,
    Meme,
    MemeFields,
    NewMeme,
    field_values,
    normal_texts,
    parse_iso,
    write_original,
)
from pipeline.meme_templates import Template
from pipeline.overlay import TextBox
from pipeline.workers import process_pool

ImageFile.LOAD_TRUNCATED_IMAGES = False

# Pillow format name of an accepted image -> file extension of its stored original
ACCEPTED_FORMATS = {
    "JPEG": "jpg",
    "MPO": "jpg",  # phone JPEGs with a depth map / second frame
    "PNG": "png",
    "GIF": "gif",
    "WEBP": "webp",
    "HEIF": "heic",
    "AVIF": "avif",
}
MAX_MANIFEST_BYTES = 64 * 1024 * 1024  # README "Text limits": ~20,000 rows of long captions
NEAR_DUPLICATE_DISTANCE = 6  # of 64 hash bits: resized or recompressed copies land well below
DRAFT_SIDE = 256  # decode JPEGs at no less than this for the check and the perceptual hash
HASH_SOURCE_SIDE = 512  # the perceptual hash reads a 32x32 copy; more would be wasted work
ORIENTATION_TAG = 0x0112


@dataclass
class AddReport:
    added: list[Meme] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    warnings: list[str] = field(default_factory=list)
    already: list[tuple[str, str]] = field(default_factory=list)  # (file, slug): not an error

    @property
    def ok(self) -> bool:
        return not self.rejected


def inspect_bytes(data: bytes, limits: LimitsConfig) -> Inspection:
    """Validate an image by content; IngestError with the reason if it is not acceptable."""
    if not data:
        raise IngestError("empty file")
    if len(data) > limits.max_bytes:
        raise IngestError(f"file is {len(data)} bytes, over limits.max_bytes ({limits.max_bytes})")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:
            raise IngestError("image is too large to open safely (decompression bomb)") from None
        except (Image.UnidentifiedImageError, Image.DecompressionBombWarning):
            raise IngestError("not an image (JPEG, PNG, GIF, WebP or HEIC expected)") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise IngestError(f"corrupt image ({exc})") from None
    with image:
        fmt = image.format or ""
        if fmt not in ACCEPTED_FORMATS:
            raise IngestError(f"unsupported image format {fmt or 'unknown'}")
        width, height = image.size
        if width <= 0 or height <= 0:
            raise IngestError("image has no pixels")
        # Refuse a bomb from the header alone, before decoding a single pixel.
        if width * height > limits.max_pixels:
            raise IngestError(
                f"image is {width}x{height} = {width * height} pixels, over limits.max_pixels "
                f"({limits.max_pixels})"
            )
        # Width and height as displayed: EXIF orientations 5-8 turn the image a quarter.
        try:
            orientation = image.getexif().get(ORIENTATION_TAG, 1)
        except (OSError, ValueError, SyntaxError) as exc:
            raise IngestError(f"corrupt image ({exc})") from None
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        frames = _frame_count(image)
        if frames * width * height > limits.max_pixels:
            raise IngestError(
                f"animation is {frames} frames of {width}x{height}, over limits.max_pixels "
                f"({limits.max_pixels}) in total"
            )
        try:
            small = _decode_all(image, frames)
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise IngestError(f"truncated or corrupt image ({exc})") from None
    return Inspection(
        sha256=hashlib.sha256(data).hexdigest(),
        phash=perceptual_hash(small),
        format=fmt if fmt != "MPO" else "JPEG",
        ext=ACCEPTED_FORMATS[fmt],
        width=width,
        height=height,
        frames=frames,
    )


def _frame_count(image: Image.Image) -> int:
    try:
        return max(1, int(getattr(image, "n_frames", 1)))
    except (OSError, ValueError, EOFError) as exc:
        raise IngestError(f"truncated or corrupt animation ({exc})") from None


def _decode_all(image: Image.Image, frames: int) -> Image.Image:
    """Decode every frame (so corruption anywhere is caught); return a small first frame."""
    if image.format in ("JPEG", "MPO"):
        # Draft mode: DCT scaling by up to 1/8 while libjpeg still entropy-decodes the whole
        # stream (truncation and corruption are still caught). Greyscale output, all the
        # perceptual hash looks at, also skips the colour planes' IDCT and upsampling: a
        # 12 MP photo is checked in about a third of the time of a full RGB decode.
        image.draft("L", (DRAFT_SIDE, DRAFT_SIDE))
    image.load()
    first = image.copy()
    for index in range(1, frames):
        image.seek(index)
        image.load()
    first.thumbnail((HASH_SOURCE_SIDE, HASH_SOURCE_SIDE))
    return first


def perceptual_hash(image: Image.Image) -> str:
    """64-bit perceptual hash (imagehash's difference hash) as 16 hex digits.

    A resized or recompressed copy lands within a few bits. dhash needs numpy only; phash
    would also import scipy, which costs every worker process more than it checks a photo.
    Imported here, in the worker, so commands that never hash do not pay for it at all."""
    import imagehash

    return str(imagehash.dhash(image))


def _inspect_path(
    path: str,
    config: Config,
    texts: tuple[str, ...],
    boxes: tuple[TextBox, ...] | None,
    library_root: str,
) -> Inspection | str:
    """Worker entry point: check one file (that its caption fits it, and that the configured
    renditions can be made of it) and, when it is good,
    store the very bytes that were checked under their hash (so nothing is read or hashed
    twice, and a file changed while being added cannot slip in unchecked). A refused file is
    never stored: deleting it afterwards could take the original of a duplicate being added.
    An Inspection, or the rejection reason."""
    try:
        data = _read_limited(Path(path), config.limits)
        inspection = inspect_bytes(data, config.limits)
        if any(texts):
            from pipeline.overlay import check_overlay  # the renderer decides what fits

            check_overlay(inspection.width, inspection.height, texts, config.overlay, boxes)
        from pipeline.imaging import check_renderable

        check_renderable(inspection.width, inspection.height, inspection.frames, config)
    except (IngestError, RenderError) as exc:
        return str(exc)
    try:
        write_original(Path(library_root), data, inspection.sha256, inspection.ext)
    except OSError as exc:  # a full disk: nothing is left behind (write_atomic), next row
        return f"cannot store the original: {exc.strerror or exc}"
    return inspection


def _read_limited(path: Path, limits: LimitsConfig) -> bytes:
    """The file's bytes, or IngestError with one line for any reason it cannot be read (a
    symlink loop, a name too long, a device, a /proc file that never ends, ...)."""
    try:
        return read_capped(path, limits.max_bytes)
    except TooBig as exc:
        size = f"{exc.size} bytes" if exc.size is not None else "bigger"
        raise IngestError(f"file is {size}, over limits.max_bytes ({limits.max_bytes})") from None
    except FileNotFoundError:
        raise IngestError("no such file") from None
    except IsADirectoryError:
        raise IngestError("is a directory, not an image file") from None
    except PermissionError:
        raise IngestError("permission denied") from None
    except NotRegularFile:
        raise IngestError("not a regular file") from None
    except OSError as exc:
        raise IngestError(f"cannot read: {exc.strerror or exc}") from None
    except ValueError:  # a NUL in the name
        raise IngestError("not a valid file name") from None


def box_texts(fields: MemeFields) -> tuple[str, ...]:
    """The texts of a meme's boxes in box (reading) order: a template's, else top and bottom."""
    return fields.texts if fields.template else (fields.top_text, fields.bottom_text)


class AlreadyAdded(IngestError):
    """This file with these words is in the library already (a manifest imported again)."""

    def __init__(self, slug: str):
        super().__init__(f"already added as {slug}")
        self.slug = slug


def _same_words(meme: Meme, new: NewMeme) -> bool:
    return (meme.caption, meme.title, meme.template, meme.texts, meme.top_text,
            meme.bottom_text) == (new.caption, new.title, new.template, new.texts,
                                  new.top_text, new.bottom_text)  # fmt: skip


def default_alt(fields: MemeFields) -> str:
    """A meme is an image of text: the default alt carries its box texts verbatim, in reading
    order, then the caption."""
    words = " / ".join(t for t in box_texts(fields) if t)
    if words:
        return f"{words} — {fields.caption}" if fields.caption else words
    return fields.caption


def find_category(name: str, config: Config) -> str:
    """The configured category ``name`` means, whatever its case (`Funny` is `funny`);
    IngestError naming the known ones if there is none."""
    wanted = name.strip().lower()
    if wanted in config.categories:
        return wanted
    raise IngestError(f"unknown category '{name}' (known: {', '.join(config.categories)})")


def check_options(fields: MemeFields, config: Config) -> MemeFields:
    """What `memes add` was given, checked as options before any file is: a bad value is a
    usage error naming the option (exit 2), not a rejected file."""
    if not fields.caption.strip():
        raise UsageError("--caption: must not be empty")
    if fields.category:
        try:
            fields = replace(fields, category=find_category(fields.category, config))
        except IngestError as exc:
            raise UsageError(f"--category: {exc}") from None
    return fields


def validate_fields(fields: MemeFields, config: Config) -> MemeFields:
    """Normalise and check what staff typed (pipeline.textcheck); UsageError names the field."""
    checked = replace(
        fields,
        caption=textcheck.caption(fields.caption),
        title=textcheck.title(fields.title),
        tags=textcheck.tags(fields.tags),
        alt=textcheck.alt(fields.alt),
        credit=textcheck.credit(fields.credit),
    )
    category = find_category(fields.category, config) if fields.category else config.categories[0]
    checked = replace(checked, category=category)
    texts, top, bottom = fields.texts, fields.top_text, fields.bottom_text
    if fields.template and (top.strip() or bottom.strip()):
        raise UsageError("top/bottom: a template's boxes take --text (one per box, in order)")
    if not fields.template and texts:  # no template: the classic top and bottom boxes
        if len(texts) > 2 or top.strip() or bottom.strip():
            raise UsageError(
                f"texts: {len(texts)} texts (and top/bottom) for the classic layout's 2 boxes"
            )
        top, bottom = (*texts, "")[:2]
        texts = ()
    return replace(
        checked,
        top_text=textcheck.overlay_text(top, "top"),
        bottom_text=textcheck.overlay_text(bottom, "bottom"),
        texts=normal_texts(checked_texts(texts)),
        template=fields.template or None,
    )


def checked_texts(texts: Sequence[str]) -> tuple[str, ...]:
    """A template meme's box texts, each checked like an overlay text ("text 2: ...")."""
    return tuple(textcheck.overlay_text(text, f"text {n}") for n, text in enumerate(texts, 1))


def add_files(
    library: Library,
    config: Config,
    items: Sequence[tuple[Path, MemeFields]],
    *,
    progress: Callable[[int], None] | None = None,
) -> AddReport:
    """Check every file (in parallel), then add the good ones one transaction each.

    A rejected file leaves nothing in the library; the good ones are still added.
    """
    report = AddReport()
    good: list[tuple[Path, MemeFields]] = []
    boxes: list[tuple[TextBox, ...] | None] = []
    for path, fields in items:
        try:
            checked = validate_fields(fields, config)
            if checked.template:  # the template's image, stored once for all its memes
                template = library.template(checked.template)
                check_text_count(checked.texts, template)
                path = library.template_path(template)
            good.append((path, checked))
            boxes.append(template.boxes if checked.template else None)
        except (IngestError, UsageError, NotFoundError) as exc:  # this one, not the others
            label = f"template {fields.template}" if fields.template else str(path)
            report.rejected.append((label, str(exc)))
            if progress:
                progress(1)
    library_root = str(library.root)
    inspections = _inspect_all(good, boxes, config, library_root)
    # Parsed once: each new file is compared with every meme in the library.
    known_hashes = [
        (slug, int(phash, 16), sha, template) for slug, phash, sha, template in library.phashes()
    ]
    for (path, fields), inspection in zip(good, inspections, strict=True):
        try:
            if isinstance(inspection, str):
                raise IngestError(inspection)
            meme, warning = _add_one(library, path, fields, inspection, known_hashes)
            report.added.append(meme)
            known_hashes.append((meme.slug, int(meme.phash, 16), meme.sha256, meme.template))
            if warning:
                report.warnings.append(warning)
        except AlreadyAdded as exc:  # the same file with the same words: a manifest run again
            report.already.append((str(path), exc.slug))
        except IngestError as exc:  # an exact duplicate: its original is the existing meme's
            report.rejected.append((str(path), str(exc)))
        finally:
            if progress:
                progress(1)
    return report


def _inspect_all(
    items: list[tuple[Path, MemeFields]],
    boxes: list[tuple[TextBox, ...] | None],
    config: Config,
    library_root: str,
) -> Iterator[Inspection | str]:
    """Inspections in input order, each as soon as it is ready, so the caller stores one file
    while the workers are still checking the next ones."""
    n = len(items)
    columns = (
        [str(path) for path, _ in items],
        [config] * n,
        [box_texts(fields) for _, fields in items],
        boxes,
        [library_root] * n,
    )
    workers = min(n, os.cpu_count() or 1)
    if workers <= 1 or n < 4:
        yield from map(_inspect_path, *columns)
        return
    import imagehash  # noqa: F401 - loaded once here, so each forked worker inherits it

    pool = process_pool(workers)
    try:
        yield from pool.map(_inspect_path, *columns, chunksize=2)
    finally:  # the caller stopped early (Ctrl-C): do not check the files nobody will add
        pool.shutdown(wait=True, cancel_futures=True)


def _add_one(
    library: Library,
    path: Path,
    fields: MemeFields,
    inspection: Inspection,
    known_hashes: Iterable[tuple[str, int, str, str | None]],
) -> tuple[Meme, str | None]:
    new = NewMeme(
        **field_values(fields, MemeFields),
        **field_values(inspection, Inspection),
        original_name=path.name,
        alt_explicit=int(bool(fields.alt)),
    )
    if not new.alt:
        new = replace(new, alt=default_alt(fields))
    try:
        meme = library.add(new)
    except DuplicateError as exc:  # the same bytes are in the library already
        existing = library.get(exc.slug) if exc.slug else None
        if existing is not None and existing.status != "removed" and _same_words(existing, new):
            raise AlreadyAdded(exc.slug) from None
        raise IngestError(str(exc)) from None
    new_hash = int(inspection.phash, 16)
    # Memes of the same image or template are meant to look alike: no warning between them.
    distances = [
        ((new_hash ^ other).bit_count(), slug)
        for slug, other, sha, template in known_hashes
        if sha != meme.sha256 and not (template and template == meme.template)
    ]
    distance, slug = min(distances, default=(NEAR_DUPLICATE_DISTANCE + 1, ""))
    warning = None
    if distance <= NEAR_DUPLICATE_DISTANCE:
        warning = f"{path}: added as '{meme.slug}', but it looks like existing meme '{slug}'"
    return meme, warning


# --- import manifests ------------------------------------------------------------------------

# A manifest column per field staff type, named as in `--json` output ("top", "bottom").
FIELD_KEYS = {c.json or c.name: c for c in MEME_FIELD_COLUMNS}
MANIFEST_KEYS = ("file", *FIELD_KEYS)


def read_manifest(
    path: Path, zone: tzinfo = UTC
) -> tuple[list[tuple[Path, MemeFields]], list[tuple[str, str]]]:
    """Rows of a CSV or YAML manifest -> the good ones as (file, fields), and the bad ones as
    (row label, error). A publish_at without an offset is a wall-clock time in ``zone``."""
    try:
        text = read_text_capped(path, MAX_MANIFEST_BYTES, "utf-8-sig")
    except Unreadable as exc:
        raise UsageError(f"{path}: manifest {exc}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            rows = safeyaml.load(text, as_typed=True)  # `top: NO` is the word, not false
        except yaml.YAMLError as exc:
            raise UsageError(f"{path}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
        if not isinstance(rows, list):
            raise UsageError(f"{path}: expected a top-level list of mappings")
        first_line = 1
    elif path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or not {"file", "template"} & set(reader.fieldnames):
            raise UsageError(
                f"{path}: CSV needs a header row with at least 'file' (or 'template') and 'caption'"
            )
        rows = list(reader)
        first_line = 2
    else:
        raise UsageError(f"{path}: manifest must be .csv, .yaml or .yml")
    base = path.resolve().parent
    good: list[tuple[Path, MemeFields]] = []
    bad: list[tuple[str, str]] = []
    for index, row in enumerate(rows):
        try:
            good.append(_manifest_row(row, base, zone))
        except (UsageError, ValueError) as exc:
            bad.append((f"{path.name} row {index + first_line}", str(exc)))
    return good, bad


def _manifest_row(row: Any, base: Path, zone: tzinfo) -> tuple[Path, MemeFields]:
    if not isinstance(row, Mapping):
        raise UsageError("expected a mapping")
    extra = row.get(None)  # csv.DictReader: the values past the header's last column
    if isinstance(extra, list):
        raise UsageError(
            f"{len(row) - 1 + len(extra)} values, but the header names {len(row) - 1} columns "
            '(quote a value that holds a comma: "Hello, world")'
        )
    unknown = [k for k in row if k not in MANIFEST_KEYS]
    if unknown:
        raise UsageError(f"unknown column(s): {', '.join(map(str, unknown))}")
    file = textcheck.as_text(row.get("file"), "file").strip()
    if not file and not row.get("template"):
        raise UsageError("file: missing (or a template)")
    if file and row.get("template"):
        raise UsageError("file and template: give one (a template brings its image)")
    values: dict[str, Any] = {}
    for key, column in FIELD_KEYS.items():
        value = row.get(key)
        if value is None or value == "":
            continue
        if column.type == tuple[str, ...]:  # a list, or text: tags comma-, texts |-separated
            items = value.split("|" if key == "texts" else ",") if isinstance(value, str) else value
            if not isinstance(items, list | tuple):
                items = [items]
            values[column.name] = tuple(textcheck.as_text(item, key) for item in items)
        elif column.type == datetime | None:  # YAML reads an unquoted time as a datetime
            text = value.isoformat() if isinstance(value, datetime) else str(value)
            values[column.name] = parse_publish_at(textcheck.as_text(text, key), zone)
        else:  # a mapping or a list where text is expected refuses the row
            values[column.name] = textcheck.as_text(value, key)
    # A template row's image is the template's (add_files finds it).
    return (base / os.path.expanduser(file) if file else Path()), MemeFields(**values)


def parse_publish_at(text: str, zone: tzinfo = UTC) -> datetime:
    """A publish time as typed; without an offset it is a wall-clock time in ``zone``."""
    try:
        return parse_iso(text, zone)
    except ValueError:
        raise UsageError(f"publish_at: expected an ISO 8601 date-time, got {text!r}") from None


def check_edit(library: Library, config: Config, slug: str, **changes: Any) -> dict[str, Any]:
    """Validate `memes edit` changes the way add validates them; returns the changes to apply."""
    meme = library.get(slug)
    values = {k: v for k, v in changes.items() if v is not None}
    checks: dict[str, Callable[[str], str]] = {
        "caption": textcheck.caption,
        "title": textcheck.title,
        "alt": textcheck.alt,
        "credit": textcheck.credit,
        "top_text": lambda text: textcheck.overlay_text(text, "top"),
        "bottom_text": lambda text: textcheck.overlay_text(text, "bottom"),
    }
    for key, check in checks.items():
        if key in values:
            values[key] = check(values[key])
    if "tags" in values:
        values["tags"] = textcheck.tags(values["tags"])
    if "publish_at" in values and meme.status == "published":  # nothing would read it
        raise UsageError(f"--publish-at: meme '{slug}' is published already; "
                         "a publish time schedules a queued meme")  # fmt: skip
    if "category" in values:
        try:
            values["category"] = find_category(values["category"], config)
        except IngestError as exc:
            raise UsageError(f"--category: {exc}") from None
    numbered = {number: textcheck.overlay_text(text, f"text {number}")
                for number, text in (values.pop("box_texts", None) or {}).items()}  # fmt: skip
    boxes = library.boxes_of(meme)
    if numbered and not meme.template:  # the classic layout: text 1 is top, text 2 bottom
        for number, text in numbered.items():
            if number not in (1, 2):
                raise UsageError(f"--text {number}=: a meme without a template has boxes 1 and 2")
            values["bottom_text" if number == 2 else "top_text"] = text
    elif numbered and boxes is not None:
        edited = list(meme.texts) + [""] * len(boxes)
        for number, text in numbered.items():
            if not 1 <= number <= len(boxes):
                raise UsageError(
                    f"--text {number}=: template '{meme.template}' has boxes 1 to {len(boxes)}"
                )
            edited[number - 1] = text
        values["texts"] = normal_texts(edited)
    if meme.template:  # its words are in its template's boxes, never top and bottom
        if values.pop("top_text", "") or values.pop("bottom_text", ""):
            raise UsageError("--top/--bottom: a template meme's boxes are changed with --text N=")
        values.pop("bottom_text", None)
    if {"top_text", "bottom_text", "texts"} & set(values):
        top = values.get("top_text", meme.top_text)
        bottom = values.get("bottom_text", meme.bottom_text)
        texts = values.get("texts", meme.texts) if meme.template else (top, bottom)
        if any(texts):
            from pipeline.overlay import check_overlay

            check_overlay(meme.width, meme.height, texts, config.overlay, boxes)
    values.update(_alt_change(meme, values))
    return values


def check_text_count(texts: Sequence[str], template: Template) -> None:
    """More texts than the template has boxes is a usage error (fewer leave boxes empty)."""
    if len(texts) > len(template.boxes):
        raise UsageError(
            f"template '{template.name}' has {len(template.boxes)} text boxes; "
            f"{len(texts)} texts given"
        )


def add_template(
    library: Library,
    config: Config,
    image: Path,
    name: str,
    boxes: Sequence[TextBox] | None = None,
    licence: str = "",
    credit: str = "",
) -> Template:
    """Check an image like any meme's, store it by hash and record it as template ``name``
    with ``boxes`` (meme_templates.parse_boxes/read_boxes_file; default: the classic top and
    bottom boxes). `memes template add` and the studio's Templates page both add through
    here."""
    from pipeline import meme_templates
    from pipeline.overlay import CLASSIC_BOXES

    name = meme_templates.check_name(name)
    library.check_template_name(name)  # before the image is stored: a refusal leaves nothing
    licence = textcheck.credit(licence, "licence")
    credit = textcheck.credit(credit)
    try:
        data = _read_limited(Path(image), config.limits)
        inspection = inspect_bytes(data, config.limits)
    except IngestError as exc:
        raise IngestError(f"{image}: {exc}") from None
    template = Template(
        name=name, sha256=inspection.sha256, ext=inspection.ext, width=inspection.width,
        height=inspection.height, boxes=tuple(boxes) if boxes else CLASSIC_BOXES,
        licence=licence, credit=credit,
    )  # fmt: skip
    write_original(library.root, data, inspection.sha256, inspection.ext)
    return library.add_template(template)


def _alt_change(meme: Meme, values: Mapping[str, Any]) -> dict[str, Any]:
    """An explicit alt is kept; one never set (or set to '') follows the current texts."""
    current = MemeFields(caption=meme.caption, top_text=meme.top_text,
                         bottom_text=meme.bottom_text, template=meme.template,
                         texts=meme.texts)  # fmt: skip
    if meme.alt_explicit is None:  # a meme from before the flag: explicit if it differs
        explicit = meme.alt != default_alt(current)
    else:
        explicit = bool(meme.alt_explicit)
    if "alt" in values:
        explicit = bool(values["alt"])
    elif not {"caption", "top_text", "bottom_text", "texts"} & set(values):
        return {}
    if explicit:
        return {"alt_explicit": 1} if "alt" in values else {}
    texts = MemeFields(
        caption=values.get("caption", meme.caption),
        top_text=values.get("top_text", meme.top_text),
        bottom_text=values.get("bottom_text", meme.bottom_text),
        template=meme.template,
        texts=values.get("texts", meme.texts),
    )
    return {"alt": default_alt(texts), "alt_explicit": 0}

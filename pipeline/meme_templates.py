"""Meme templates: an image plus its ordered text boxes (pure: data in, records out).

A template's boxes come from YAML (``memes template add IMAGE --name NAME --boxes FILE``), a
list of mappings in the spirit of memegen's templates::

    - {x: 0.05, y: 0.03, width: 0.9, height: 0.25}          # fractions of the image
    - x: 0.5
      y: 0.6
      width: 0.45
      height: 0.35
      align: right          # left | center | right
      valign: bottom        # top | middle | bottom
      color: "#ffffff"      # the letters
      outline: "#000000"    # the outline round them
      outline_width: 0.07   # of the font size; 0 for none
      style: upper          # upper | none (as typed)
      font: anton           # a bundled font (file name or short name) or a font file's path
      max_font_size: 80     # px when the image is 1000 px wide
      angle: 10             # degrees, counter-clockwise

Without ``--boxes`` a template gets the classic layout: a top box and a bottom box. The
catalog keeps the templates staff add (library.py writes them); the starter templates are
bundled with the package (pipeline/starters/), made from the project's public-domain and CC0
sample photos, and are there in every library.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from PIL import Image, ImageColor, ImageDraw, ImageOps

from pipeline import overlay, safeyaml
from pipeline.errors import UsageError
from pipeline.files import Unreadable, read_text_capped
from pipeline.overlay import TextBox

STARTER_DIR = Path(__file__).resolve().parent / "starters"
NAME_MAX = 60
MAX_BOXES = 20
MAX_BOXES_FILE_BYTES = 1_048_576  # a page of YAML, like a config file
_BOX_KEYS = {f.name for f in fields(TextBox)}


@dataclass(frozen=True)
class Template:
    """One template: its image (stored by content hash) and its boxes in reading order."""

    name: str
    sha256: str
    ext: str
    width: int
    height: int
    boxes: tuple[TextBox, ...]
    licence: str = ""
    credit: str = ""
    bundled: bool = False
    image: Path | None = None  # a bundled template's file (a library's lives in originals/)

    def as_dict(self) -> dict[str, Any]:
        """Plain-data view for `--json` output."""
        return {
            "name": self.name,
            "width": self.width,
            "height": self.height,
            "boxes": boxes_to_data(self.boxes),
            "licence": self.licence,
            "credit": self.credit,
            "bundled": self.bundled,
        }


def check_name(name: str) -> str:
    """A template name: lower-case letters, digits and dashes, as typed on a command line."""
    name = (name or "").strip()
    allowed = all(c.isascii() and (c.isdigit() or c.islower() or c == "-") for c in name)
    if not name or len(name) > NAME_MAX or not allowed:
        raise UsageError(
            f"template name {name!r}: use 1 to {NAME_MAX} lower-case letters, digits and dashes"
        )
    return name


# --- boxes <-> data -------------------------------------------------------------------------


def _fraction(value: Any, where: str, *, low: float = 0.0, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UsageError(f"{where}: expected a number from {low:g} to {high:g}, got {value!r}")
    if not low <= value <= high:
        raise UsageError(f"{where}: expected a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def _choice(value: Any, where: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise UsageError(f"{where}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def _colour(value: Any, where: str) -> str:
    try:
        ImageColor.getrgb(str(value))
    except ValueError:
        raise UsageError(f"{where}: expected a colour such as '#ffffff', got {value!r}") from None
    return str(value)


def resolve_font(value: Any, where: str, base: Path | None) -> Path:
    """A bundled font by name (its short name or file name, any case) or a font file."""
    text = str(value).strip()
    key = text.lower().removesuffix(".ttf").removesuffix(".otf")
    if key in overlay.BUNDLED_FONTS:
        return overlay.BUNDLED_FONTS[key]
    for path in overlay.FONT_DIR.glob("*.[ot]tf"):
        if path.stem.lower() == key:
            return path
    path = Path(text).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if not path.is_file():
        raise UsageError(f"{where}: no bundled font of that name and no such font file: {text!r}")
    try:
        overlay.glyph_coverage(path.resolve())
    except Exception:  # fontTools raises many kinds for a file that is not a font
        raise UsageError(f"{where}: {text!r} is not a TrueType or OpenType font") from None
    return path.resolve()


def parse_box(data: Any, where: str, base: Path | None = None) -> TextBox:
    """One box from its YAML/JSON mapping; UsageError names ``where`` and the key."""
    if not isinstance(data, Mapping):
        raise UsageError(f"{where}: expected a mapping with x, y, width and height")
    unknown = sorted(str(k) for k in data if k not in _BOX_KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}")
    missing = [k for k in ("x", "y", "width", "height") if k not in data]
    if missing:
        raise UsageError(f"{where}: missing {', '.join(missing)}")
    x, y = _fraction(data["x"], f"{where}.x"), _fraction(data["y"], f"{where}.y")
    width = _fraction(data["width"], f"{where}.width", low=0.01)
    height = _fraction(data["height"], f"{where}.height", low=0.01)
    if x + width > 1.0001 or y + height > 1.0001:
        raise UsageError(f"{where}: the box reaches outside the image (x + width, y + height)")
    values: dict[str, Any] = {"x": x, "y": y, "width": width, "height": height}
    if "align" in data:
        values["align"] = _choice(data["align"], f"{where}.align", overlay.ALIGNS)
    if "valign" in data:
        values["valign"] = _choice(data["valign"], f"{where}.valign", overlay.VALIGNS)
    if "style" in data:
        values["style"] = _choice(data["style"], f"{where}.style", overlay.STYLES)
    for key in ("color", "outline"):
        if key in data:
            values[key] = _colour(data[key], f"{where}.{key}")
    if "outline_width" in data:
        values["outline_width"] = _fraction(data["outline_width"], f"{where}.outline_width",
                                            high=0.5)  # fmt: skip
    if data.get("font") is not None:
        values["font"] = resolve_font(data["font"], f"{where}.font", base)
    if data.get("max_font_size") is not None:
        size = data["max_font_size"]
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 1000:
            raise UsageError(f"{where}.max_font_size: expected px from 1 to 1000, got {size!r}")
        values["max_font_size"] = size
    if "angle" in data:
        values["angle"] = _fraction(data["angle"], f"{where}.angle", low=-360, high=360)
    return TextBox(**values)


def parse_boxes(data: Any, where: str, base: Path | None = None) -> tuple[TextBox, ...]:
    if not isinstance(data, list) or not data:
        raise UsageError(f"{where}: expected a list of boxes (mappings)")
    if len(data) > MAX_BOXES:
        raise UsageError(f"{where}: {len(data)} boxes, at most {MAX_BOXES}")
    return tuple(parse_box(item, f"{where}[{i}]", base) for i, item in enumerate(data))


def read_boxes_file(path: Path) -> tuple[TextBox, ...]:
    """The boxes of a YAML file (a list of boxes, or a mapping with a ``boxes`` list)."""
    try:
        data = safeyaml.load(read_text_capped(Path(path), MAX_BOXES_FILE_BYTES))
    except Unreadable as exc:
        if str(exc) == "not found":
            raise UsageError(f"{path}: no such boxes file") from None
        raise UsageError(f"{path}: boxes file {exc}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if isinstance(data, Mapping) and "boxes" in data:
        data = data["boxes"]
    return parse_boxes(data, f"{path}: boxes", Path(path).resolve().parent)


def boxes_to_data(boxes: Sequence[TextBox]) -> list[dict[str, Any]]:
    """Boxes as plain data (JSON in the catalog, YAML/JSON for people); defaults left out."""
    default = TextBox(0, 0, 1, 1)
    out = []
    for box in boxes:
        data = {k: v for k, v in asdict(box).items()
                if k in ("x", "y", "width", "height") or v != getattr(default, k)}  # fmt: skip
        if data.get("font") is not None:
            font = Path(data["font"])
            data["font"] = font.name if font.parent == overlay.FONT_DIR else str(font)
        out.append(data)
    return out


def boxes_to_json(boxes: Sequence[TextBox]) -> str:
    return json.dumps(boxes_to_data(boxes), sort_keys=True)


def boxes_from_json(text: str) -> tuple[TextBox, ...]:
    return parse_boxes(json.loads(text), "boxes")


# --- starter templates -----------------------------------------------------------------------


@lru_cache(maxsize=1)
def starters() -> tuple[Template, ...]:
    """The bundled starter templates (pipeline/starters/starters.yaml), in file order."""
    import hashlib

    spec = yaml.safe_load((STARTER_DIR / "starters.yaml").read_text(encoding="utf-8"))
    out = []
    for entry in spec:
        image = STARTER_DIR / entry["image"]
        with Image.open(image) as im:
            width, height = im.size
        out.append(
            Template(
                name=entry["name"],
                sha256=hashlib.sha256(image.read_bytes()).hexdigest(),
                ext=image.suffix.lstrip(".").replace("jpeg", "jpg"),
                width=width,
                height=height,
                boxes=parse_boxes(entry["boxes"], f"starters.yaml: {entry['name']}"),
                licence=entry["licence"],
                credit=entry["credit"],
                bundled=True,
                image=image,
            )
        )
    return tuple(out)


def starter(name: str) -> Template | None:
    return next((t for t in starters() if t.name == name), None)


# --- preview ---------------------------------------------------------------------------------


def preview_png(path: Path, boxes: Sequence[TextBox]) -> bytes:
    """preview() of the image file at ``path``, as PNG bytes."""
    return picture(path, boxes)


def picture(path: Path, boxes: Sequence[TextBox], *, max_width: int | None = None,
            kind: str = "PNG") -> bytes:  # fmt: skip
    """preview() of the image file at ``path``, first scaled down to ``max_width`` if wider
    (the outlines and numbers are sized for the picture shown), as ``kind`` (PNG or JPEG)."""
    import io

    from pipeline.imaging import to_srgb

    with Image.open(path) as im:
        if max_width and im.width > max_width:
            im.draft("RGB", (max_width, max_width * im.height // im.width))
        im.load()
        image = to_srgb(ImageOps.exif_transpose(im), im.info.get("icc_profile"))  # as rendered
    if max_width and image.width > max_width:
        size = (max_width, max(1, round(image.height * max_width / image.width)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if kind == "JPEG":
        preview(image, boxes).save(out, "JPEG", quality=82)
    else:
        preview(image, boxes).save(out, kind)
    return out.getvalue()


def preview(image: Image.Image, boxes: Sequence[TextBox]) -> Image.Image:
    """The template's picture with each box outlined and numbered (``memes template show``)."""
    out = image.convert("RGB")
    width, height = out.size
    draw = ImageDraw.Draw(out)
    line = max(2, round(width / 300))
    label = overlay.get_font(overlay.WATERMARK_FONT, max(12, round(width / 18)))
    for number, box in enumerate(boxes, start=1):
        x0, y0 = box.x * width, box.y * height
        x1, y1 = x0 + box.width * width, y0 + box.height * height
        corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        if box.angle % 360:
            cx, cy, turn = (x0 + x1) / 2, (y0 + y1) / 2, math.radians(-box.angle)
            corners = [
                (cx + (x - cx) * math.cos(turn) - (y - cy) * math.sin(turn),
                 cy + (x - cx) * math.sin(turn) + (y - cy) * math.cos(turn))
                for x, y in corners
            ]  # fmt: skip
        draw.line([*corners, corners[0]], fill=(0, 0, 0), width=line + 2, joint="curve")
        draw.line([*corners, corners[0]], fill=(255, 214, 0), width=line, joint="curve")
        draw.text(
            (corners[0][0] + 2 * line, corners[0][1] + line), str(number), font=label,
            fill=(255, 214, 0), stroke_width=max(1, line // 2 + 1), stroke_fill=(0, 0, 0),
        )  # fmt: skip
    return out

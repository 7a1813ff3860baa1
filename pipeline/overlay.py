"""Classic meme captions: white text with a black outline at the top and bottom of the image.

Sizes are decided at a reference width (REFERENCE_WIDTH = 1000 px): the image is thought of as
scaled to 1000 px wide (its height scaled alike), the caption is wrapped and shrunk until it
fits there, and the result is scaled to the real image. So ``overlay.min_font_size: 14`` means
"the caption font is at least 14 px when the meme is shown 1000 px wide", whatever the pixel
size of the original, and every rendition shows the same caption in the same place.

Each caption block (top, bottom) is set in the first font of the chain that has a glyph for
every character (configured font or bundled Anton, then the bundled fallbacks below, by
script). A block no single font covers falls back per character run. A character no font of
the chain has is an error (never a box), raised at add time by check_overlay. Glyph coverage
comes from the fonts' own cmap tables, read with fontTools.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont, features

from pipeline.config import OverlayConfig
from pipeline.errors import IngestError

FONT_DIR = Path(__file__).resolve().parent / "fonts"
MEME_FONT = FONT_DIR / "Anton-Regular.ttf"
WATERMARK_FONT = FONT_DIR / "DejaVuSans-Bold.ttf"
# Scripts Anton lacks, each in a bold face: Greek, Cyrillic, Arabic, Hebrew (DejaVu); Chinese
# and Japanese (Droid); Hangul (Nanum Square); then Noto Sans for the South and Southeast Asian
# scripts and Ethiopic. Unmodified Debian files; licences beside them (fonts/README.txt).
NOTO_SCRIPTS = ("Devanagari", "Bengali", "Gurmukhi", "Gujarati", "Tamil", "Telugu", "Kannada",
                "Malayalam", "Sinhala", "Thai", "Lao", "Khmer", "Myanmar", "Ethiopic")  # fmt: skip
FALLBACK_FONTS = (
    FONT_DIR / "DejaVuSans-Bold.ttf",
    FONT_DIR / "DroidSansFallbackFull.ttf",
    FONT_DIR / "NanumSquareB.ttf",
    *(FONT_DIR / f"NotoSans{script}-Bold.ttf" for script in NOTO_SCRIPTS),
    FONT_DIR / "Symbola.ttf",
)
# Emoji (to Unicode 9) and symbols, drawn as outlines like the text. Symbola has Latin letters
# too, in a serif: it only ever sets the characters no other font has, never a whole block.
SYMBOL_FONTS = frozenset({FONT_DIR / "Symbola.ttf"})

REFERENCE_WIDTH = 1000  # px; overlay.min_font_size is measured at this image width
MAX_FONT = 0.10  # largest caption font, as a fraction of the image width
SIDE_MARGIN = 0.04  # free space left and right, fraction of the width
EDGE_MARGIN = 0.02  # free space above the top block and below the bottom one, of the height
MAX_BLOCK = 0.40  # one block may take at most this fraction of the image height
STROKE = 0.07  # outline width, fraction of the font size

_LAYOUT = ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC
# Invisible format characters that may be dropped when the chosen font lacks them
# (emoji variation selectors, zero-width joiners); anything visible must have a glyph.
_DROPPABLE = {0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF} | set(range(0xFE00, 0xFE10))


class OverlayTextError(ValueError):
    """The caption cannot be set: a character without a glyph, or too long to fit."""


# --- glyph coverage (cmap) ------------------------------------------------------------------


@lru_cache(maxsize=16)
def glyph_coverage(path: Path) -> frozenset[int]:
    """Code points the font at ``path`` maps to a real glyph (from its best Unicode cmap)."""
    font = TTFont(path, fontNumber=0, lazy=True)
    # Glyph ids are all we need: numbering the glyphs skips decoding the names in the post
    # table, which is most of the work for a CJK font (0.16 s -> 0.02 s for Droid).
    count = font["maxp"].numGlyphs
    font.setGlyphOrder([".notdef", *(f"glyph{i}" for i in range(1, count))])
    cmap = font.getBestCmap() or {}
    return frozenset(point for point, glyph in cmap.items() if glyph != ".notdef")


@lru_cache(maxsize=64)
def get_font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), max(1, size), layout_engine=_LAYOUT)


def font_chain(primary: Path | None) -> tuple[Path, ...]:
    """Caption fonts in order of preference: the configured (or bundled meme) font first."""
    chain = [Path(primary) if primary else MEME_FONT]
    chain += [f for f in FALLBACK_FONTS if f != chain[0]]
    return tuple(chain)


def clean_text(text: str) -> str:
    """NFC, line endings normalised, other control characters replaced by spaces."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    return "".join(
        " " if unicodedata.category(c) == "Cc" and c != "\n" else c for c in text
    ).strip()


def assign_fonts(text: str, chain: tuple[Path, ...], what: str = "text") -> list[Path | None]:
    """The font for each character of ``text`` (None: invisible, drop it).

    One font for the whole text when one covers it all (keeps one look and lets the shaper do
    bidi across the line); otherwise per character, spaces joining the run before them.
    """
    visible = [ord(c) for c in text if not c.isspace() and ord(c) not in _DROPPABLE]
    for path in chain:
        if path not in SYMBOL_FONTS and glyph_coverage(path).issuperset(visible):
            return [_keep(c, path) for c in text]
    out: list[Path | None] = []
    previous = chain[0]
    for c in text:
        if c.isspace():
            out.append(previous)
            continue
        if ord(c) in _DROPPABLE:  # a variation selector or joiner belongs to the glyph before
            out.append(_keep(c, previous))
            continue
        if unicodedata.category(c) == "So":  # emoji and symbols: all in one style
            chain_here = (*(p for p in chain if p in SYMBOL_FONTS), *chain)
        elif previous in SYMBOL_FONTS:
            chain_here = chain
        else:
            # The primary font first, so Latin after a CJK word is set in it again; else stay
            # in the current run's font while it has the glyph: fewer, longer runs.
            chain_here = (chain[0], previous, *chain[1:])
        found = next((p for p in chain_here if ord(c) in glyph_coverage(p)), None)
        if found is None:
            name = unicodedata.name(c, "unnamed character")
            raise OverlayTextError(
                f"{what}: character {c!r} (U+{ord(c):04X} {name}) is not in any bundled font; "
                "set overlay.font to a font that has it"
            )
        out.append(found)
        previous = found
    return out


def _keep(c: str, path: Path) -> Path | None:
    if ord(c) in _DROPPABLE and ord(c) not in glyph_coverage(path):
        return None
    return path


# --- layout --------------------------------------------------------------------------------

Run = tuple[Path, str]


@dataclass(frozen=True)
class Block:
    """One caption block laid out: its lines (each a tuple of font runs) and font size."""

    lines: tuple[tuple[Run, ...], ...]
    size: int  # px at REFERENCE_WIDTH


@dataclass(frozen=True)
class Layout:
    top: Block | None
    bottom: Block | None

    @property
    def empty(self) -> bool:
        return self.top is None and self.bottom is None


def _runs(text: str, fonts: list[Path | None]) -> tuple[Run, ...]:
    runs: list[list] = []
    for c, f in zip(text, fonts, strict=True):
        if f is None:
            continue
        if runs and runs[-1][0] == f:
            runs[-1][1] += c
        else:
            runs.append([f, c])
    return tuple((f, t) for f, t in runs)


def _line_width(runs: tuple[Run, ...], size: int) -> float:
    stroke = _stroke(size)
    return sum(get_font(f, size).getlength(t) for f, t in runs) + 2 * stroke


def _stroke(size: int) -> int:
    return max(1, round(size * STROKE))


def _tokens(paragraph: str) -> list[tuple[int, int]]:
    """Break opportunities as (start, end) spans: words, and each CJK character alone."""
    spans: list[tuple[int, int]] = []
    start = None
    for i, c in enumerate(paragraph):
        wide = unicodedata.east_asian_width(c) in ("W", "F")
        if c == " ":
            if start is not None:
                spans.append((start, i))
                start = None
        elif wide:
            if start is not None:
                spans.append((start, i))
            spans.append((i, i + 1))
            start = None
        elif start is None:
            start = i
    if start is not None:
        spans.append((start, len(paragraph)))
    return spans


def _wrap(
    text: str, fonts: list[Path | None], size: int, max_w: float, split_words: bool
) -> tuple[tuple[Run, ...], ...] | None:
    """Greedy wrap of ``text`` into lines no wider than max_w; None if a word will not fit."""
    lines: list[tuple[Run, ...]] = []
    offset = 0
    for paragraph in text.split("\n"):
        pfonts = fonts[offset : offset + len(paragraph)]
        offset += len(paragraph) + 1
        wrapped = _wrap_paragraph(paragraph, pfonts, size, max_w, split_words)
        if wrapped is None:
            return None
        lines.extend(wrapped)
    return tuple(line for line in lines if line)


def _wrap_paragraph(
    paragraph: str, fonts: list[Path | None], size: int, max_w: float, split_words: bool
) -> list[tuple[Run, ...]] | None:
    def piece(a: int, b: int) -> tuple[Run, ...]:
        return _runs(paragraph[a:b], fonts[a:b])

    def measure(a: int, b: int) -> float:
        return _line_width(piece(a, b), size)

    lines: list[tuple[Run, ...]] = []
    current: tuple[int, int] | None = None  # span of paragraph text on the current line
    pending = _tokens(paragraph)
    while pending:
        a, b = pending.pop(0)
        if current is not None and measure(current[0], b) <= max_w:
            current = (current[0], b)
            continue
        if current is not None:
            lines.append(piece(*current))
            current = None
        if measure(a, b) <= max_w:
            current = (a, b)
            continue
        if not split_words or b - a == 1:
            return None
        cut = b - 1  # longest head of the word that fits, at least one character
        while cut > a + 1 and measure(a, cut) > max_w:
            cut -= 1
        lines.append(piece(a, cut))
        pending.insert(0, (cut, b))
    if current is not None:
        lines.append(piece(*current))
    return lines


def _block_metrics(lines: tuple[tuple[Run, ...], ...], size: int) -> tuple[int, int, int]:
    """(first baseline offset, line pitch, total height) of a block, outline included."""
    stroke = _stroke(size)
    fonts = {f for line in lines for f, _ in line}
    ascent = max(get_font(f, size).getmetrics()[0] for f in fonts)
    descent = max(get_font(f, size).getmetrics()[1] for f in fonts)
    pitch = ascent + descent
    # Ink can rise above the font's ascent (accents on capitals in display faces).
    top_ink = max(-get_font(f, size).getbbox(t, anchor="ls")[1] for f, t in lines[0])
    bottom_ink = max(get_font(f, size).getbbox(t, anchor="ls")[3] for f, t in lines[-1])
    first = int(max(ascent, top_ink)) + stroke  # FreeType's boxes are whole pixels
    height = first + pitch * (len(lines) - 1) + int(max(descent, bottom_ink)) + stroke
    return first, pitch, height


def _fit_block(
    text: str,
    fonts: list[Path | None],
    width: int,
    height: int,
    min_size: int,
    what: str,
    shape: str,
) -> Block:
    max_w = width * (1 - 2 * SIDE_MARGIN)
    max_h = height * MAX_BLOCK - height * EDGE_MARGIN
    top_size = max(min_size, round(width * MAX_FONT))

    def fits(size: int, split: bool) -> tuple[tuple[Run, ...], ...] | None:
        lines = _wrap(text, fonts, size, max_w, split)
        if lines is None or not lines:
            return None
        return lines if _block_metrics(lines, size)[2] <= max_h else None

    for split in (False, True):  # breaking inside a word only when nothing else fits
        if fits(min_size, split) is None:
            continue
        lo, hi = min_size, top_size  # binary search for the largest size that fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(mid, split) is not None:
                lo = mid
            else:
                hi = mid - 1
        lines = fits(lo, split)
        assert lines is not None  # the search only ever settles on a size that fits
        return Block(lines=lines, size=lo)
    raise OverlayTextError(
        f"{what} does not fit on a {shape} image: it would need a font smaller than "
        f"{min_size} px (overlay.min_font_size, at {REFERENCE_WIDTH} px image width); shorten it"
    )


def layout(width: int, height: int, top: str, bottom: str, overlay: OverlayConfig) -> Layout:
    """Lay out both caption blocks for an image of this shape (see module doc)."""
    if width < 1 or height < 1:
        raise OverlayTextError(f"image size {width}x{height} is not valid")
    ref_h = max(1, round(height * REFERENCE_WIDTH / width))
    chain = font_chain(overlay.font)
    blocks: list[Block | None] = []
    for what, raw in (("top text", top), ("bottom text", bottom)):
        text = clean_text(raw or "")
        if not text:
            blocks.append(None)
            continue
        fonts = assign_fonts(text, chain, what)
        blocks.append(
            _fit_block(
                text,
                fonts,
                REFERENCE_WIDTH,
                ref_h,
                overlay.min_font_size,
                what,
                f"{width}x{height}",
            )  # fmt: skip
        )
    return Layout(top=blocks[0], bottom=blocks[1])


def check_overlay(width: int, height: int, top: str, bottom: str, overlay: OverlayConfig) -> None:
    """Raise IngestError when the caption cannot be set legibly on a width x height image."""
    try:
        layout(width, height, top, bottom, overlay)
    except OverlayTextError as exc:
        raise IngestError(str(exc)) from None


# --- drawing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Placed:
    """A block placed on an image of a given size: font size, metrics and its box."""

    block: Block
    size: int
    first: int  # first baseline, from box top
    pitch: int
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels


@lru_cache(maxsize=64)
def _place(plan: Layout, width: int, height: int) -> tuple[_Placed, ...]:
    """Where each block goes on a width x height image (the one geometry drawing and
    caption_boxes share). Cached: every frame of an animation asks the same question."""
    scale = width / REFERENCE_WIDTH
    max_w = width * (1 - 2 * SIDE_MARGIN)
    edge = round(height * EDGE_MARGIN)
    placed = []
    for block, at_top in ((plan.top, True), (plan.bottom, False)):
        if block is None:
            continue
        size = max(1, round(block.size * scale))
        # Hinting makes widths not exactly proportional to size: shrink until every line fits.
        while size > 1 and max(_line_width(line, size) for line in block.lines) > max_w:
            size -= 1
        first, pitch, block_h = _block_metrics(block.lines, size)
        y0 = edge if at_top else height - edge - block_h
        text_w = max(_line_width(line, size) for line in block.lines)
        x0 = (width - text_w) / 2
        placed.append(_Placed(block, size, first, pitch, (x0, y0, x0 + text_w, y0 + block_h)))
    return tuple(placed)


def caption_boxes(plan: Layout, width: int, height: int) -> list[tuple[float, ...]]:
    """The boxes the captions cover on a width x height image (so a watermark can keep off)."""
    return [] if plan.empty else [p.box for p in _place(plan, width, height)]


def draw_overlay(image: Image.Image, plan: Layout) -> Image.Image:
    """Draw the laid-out captions on a copy of an RGB/RGBA image, scaled to its width."""
    out = image.copy()
    if plan.empty:
        return out
    width, height = out.size
    draw = ImageDraw.Draw(out)
    for placed in _place(plan, width, height):
        block, size, first, pitch = placed.block, placed.size, placed.first, placed.pitch
        y0 = placed.box[1]
        stroke = _stroke(size)
        black = (0, 0, 0, 255) if out.mode == "RGBA" else (0, 0, 0)
        white = (255, 255, 255, 255) if out.mode == "RGBA" else (255, 255, 255)
        # Outline pass for every run first, then the fill pass, so one run's outline never
        # covers the neighbouring run's letters.
        for outline in (True, False):
            for i, line in enumerate(block.lines):
                x = (width - _line_width(line, size)) / 2 + stroke
                baseline = y0 + first + i * pitch
                for path, text in line:
                    font = get_font(path, size)
                    if outline:
                        draw.text(
                            (x, baseline), text, font=font, anchor="ls", fill=black,
                            stroke_width=stroke, stroke_fill=black,
                        )  # fmt: skip
                    else:
                        draw.text((x, baseline), text, font=font, anchor="ls", fill=white)
                    x += font.getlength(text)
    return out

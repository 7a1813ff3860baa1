"""Meme text: text boxes, fitting each text into its box, and drawing it.

A meme's words sit in text boxes (a template's boxes, or the classic layout: one box at the
top and one at the bottom). A box is given in fractions of the image (x, y, width, height)
with its own alignment, colours, outline, case, font, largest font size and angle.

Sizes are decided at a reference width (REFERENCE_WIDTH = 1000 px): the image is thought of as
scaled to 1000 px wide (its height scaled alike), each text is wrapped and shrunk until it
fits its box there, and the result is scaled to the real image. So ``overlay.min_font_size:
14`` means "the text is at least 14 px when the meme is shown 1000 px wide", whatever the
pixel size of the original, and every rendition shows the same words in the same place.

Fitting is bounded work, near-linear in the text's length: line-break opportunities and
grapheme clusters come from ICU (PyICU: UAX #14 line breaking with dictionaries for Thai, Lao,
Khmer and Burmese, which have no spaces between words; UAX #29 grapheme clusters, so a ZWJ
emoji or a letter with its marks is never split); each piece is measured once per font size
tried; wrapping stops as soon as a size is known not to fit; the size is found by bisection.

Fonts are chosen per grapheme: the box's font (else overlay.font, else the bundled Anton) for
everything it has, the bundled fallbacks below for the rest (emoji: Symbola first). One line is
one font size and one baseline whatever fonts it mixes, and an emoji is glued to the word
before it, so it never wraps onto a line of its own. A character no font of the chain has is
an error (never a box), raised at add time by check_overlay. Glyph coverage comes from the
fonts' own cmap tables, read with fontTools.
"""

from __future__ import annotations

import math
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import icu
from PIL import Image, ImageColor, ImageDraw, ImageFont, features

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
# Emoji in colour: Noto Color Emoji (bitmaps at one size, scaled; Debian fonts-noto-color-emoji,
# OFL). Emoji it lacks and other symbols: Symbola, drawn as outlines like the text. Symbola has
# Latin letters too, in a serif: it only ever sets what no other font has, never a whole block.
COLOUR_EMOJI_FONT = FONT_DIR / "NotoColorEmoji.ttf"
SYMBOLA = FONT_DIR / "Symbola.ttf"
SYMBOL_FONTS = frozenset({SYMBOLA, COLOUR_EMOJI_FONT})
_STRIKE = 109  # px: the size of Noto Color Emoji's bitmaps, the only size FreeType loads
# Bundled fonts a template box may name (by file stem, case-insensitive, or this short name).
BUNDLED_FONTS = {"anton": MEME_FONT, "dejavu": WATERMARK_FONT, "symbola": FONT_DIR / "Symbola.ttf"}

REFERENCE_WIDTH = 1000  # px; overlay.min_font_size is measured at this image width
MAX_FONT = 0.10  # largest classic caption font, as a fraction of the image width
SIDE_MARGIN = 0.04  # classic boxes: free space left and right, fraction of the width
EDGE_MARGIN = 0.02  # classic boxes: free space above the top box and below the bottom one
MAX_BLOCK = 0.40  # a classic box may take at most this fraction of the image height
STROKE = 0.07  # default outline width, fraction of the font size

_LAYOUT = ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC
# Invisible format characters that may be dropped when the chosen font lacks them
# (emoji variation selectors, zero-width joiners); anything visible must have a glyph.
_DROPPABLE = {0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF} | set(range(0xFE00, 0xFE10))
ALIGNS = ("left", "center", "right")
VALIGNS = ("top", "middle", "bottom")
STYLES = ("upper", "none")


class OverlayTextError(ValueError):
    """The text cannot be set: a character without a glyph, or too long to fit its box."""


# --- text boxes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TextBox:
    """Where one text goes and how it looks; x, y, width, height are fractions of the image.

    ``outline_width`` is a fraction of the font size (0: no outline); ``max_font_size`` is in
    px at REFERENCE_WIDTH (None: MAX_FONT of the width); ``angle`` in degrees, counter-
    clockwise, about the box's centre; ``font`` a font file (None: overlay.font or Anton)."""

    x: float
    y: float
    width: float
    height: float
    align: str = "center"
    valign: str = "top"
    color: str = "#ffffff"
    outline: str = "#000000"
    outline_width: float = STROKE
    style: str = "upper"
    font: Path | None = None
    max_font_size: int | None = None
    angle: float = 0.0

    def prepare(self, text: str) -> str:
        """The text as this box sets it: cleaned, and in capitals for style upper."""
        text = clean_text(text)
        return text.upper() if self.style == "upper" else text


# The layout of a meme without a template: a top and a bottom box, text as typed.
CLASSIC_BOXES = (
    TextBox(x=SIDE_MARGIN, y=EDGE_MARGIN, width=1 - 2 * SIDE_MARGIN,
            height=MAX_BLOCK - EDGE_MARGIN, valign="top", style="none"),
    TextBox(x=SIDE_MARGIN, y=1 - MAX_BLOCK, width=1 - 2 * SIDE_MARGIN,
            height=MAX_BLOCK - EDGE_MARGIN, valign="bottom", style="none"),
)  # fmt: skip
CLASSIC_LABELS = ("top text", "bottom text")


def box_labels(boxes: Sequence[TextBox]) -> tuple[str, ...]:
    """How errors name each box's text."""
    if tuple(boxes) == CLASSIC_BOXES:
        return CLASSIC_LABELS
    return tuple(f"text {i}" for i in range(1, len(boxes) + 1))


# --- glyph coverage (cmap) ------------------------------------------------------------------


@lru_cache(maxsize=16)
def glyph_coverage(path: Path) -> frozenset[int]:
    """Code points the font at ``path`` maps to a real glyph (from its best Unicode cmap)."""
    from fontTools.ttLib import TTFont  # imported when text is drawn, not at every start

    font = TTFont(path, fontNumber=0, lazy=True)
    # Glyph ids are all we need: numbering the glyphs skips decoding the names in the post
    # table, which is most of the work for a CJK font (0.16 s -> 0.02 s for Droid).
    count = font["maxp"].numGlyphs
    font.setGlyphOrder([".notdef", *(f"glyph{i}" for i in range(1, count))])
    cmap = font.getBestCmap() or {}
    return frozenset(point for point, glyph in cmap.items() if glyph != ".notdef")


@lru_cache(maxsize=128)
def get_font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), max(1, size), layout_engine=_LAYOUT)


class _ColourFace:
    """A colour bitmap font at any size: measured and drawn at its one strike, then scaled."""

    def __init__(self, path: Path, size: int):
        self.font = get_font(path, _STRIKE)
        self.scale = size / _STRIKE

    def getlength(self, text: str) -> float:
        return self.font.getlength(text) * self.scale

    def getmetrics(self) -> tuple[int, int]:
        ascent, descent = self.font.getmetrics()
        return round(ascent * self.scale), round(descent * self.scale)

    def getbbox(self, text: str, anchor: str = "ls") -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = self.font.getbbox(text, anchor=anchor)
        return x0 * self.scale, y0 * self.scale, x1 * self.scale, y1 * self.scale

    def render(self, text: str) -> tuple[Image.Image, int]:
        """The run in colour, scaled, as RGBA; and its baseline's distance from the top."""
        ascent, descent = self.font.getmetrics()
        width = max(1, math.ceil(self.font.getlength(text)))
        tile = Image.new("RGBA", (width, ascent + descent))
        ImageDraw.Draw(tile).text((0, ascent), text, font=self.font, anchor="ls",
                                  embedded_color=True)  # fmt: skip
        size = (max(1, round(width * self.scale)), max(1, round(tile.height * self.scale)))
        return tile.resize(size, Image.Resampling.LANCZOS), round(ascent * self.scale)


@lru_cache(maxsize=128)
def _face(path: Path, size: int) -> ImageFont.FreeTypeFont | _ColourFace:
    """What measures and draws ``path`` at ``size``: FreeType, or the scaled colour font."""
    return _ColourFace(path, size) if path == COLOUR_EMOJI_FONT else get_font(path, size)


def font_chain(primary: Path | None) -> tuple[Path, ...]:
    """Fonts in order of preference: the configured (or bundled meme) font first; colour
    emoji last (assign_fonts tries it first for emoji)."""
    chain = [Path(primary) if primary else MEME_FONT]
    chain += [f for f in (*FALLBACK_FONTS, COLOUR_EMOJI_FONT) if f != chain[0]]
    return tuple(chain)


def clean_text(text: str) -> str:
    """NFC, line endings normalised, other control characters replaced by spaces."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    return "".join(
        " " if unicodedata.category(c) == "Cc" and c != "\n" else c for c in text
    ).strip()


# --- segmentation (ICU) --------------------------------------------------------------------


def _boundaries(iterator: icu.BreakIterator, text: str) -> list[int]:
    """The iterator's boundaries in ``text`` as Python string offsets (ICU counts UTF-16)."""
    iterator.setText(text)
    if text.isascii() or all(ord(c) < 0x10000 for c in text):
        return [0, *iterator]
    to_python, unit = {}, 0
    for index, c in enumerate(text):
        to_python[unit] = index
        unit += 2 if ord(c) >= 0x10000 else 1
    to_python[unit] = len(text)
    return [0, *(to_python[b] for b in iterator)]


_per_thread = threading.local()


def _iterators() -> tuple[icu.BreakIterator, icu.BreakIterator]:
    """(grapheme, line) break iterators; one pair per thread (an iterator holds its text, and
    the studio serves requests from several threads)."""
    pair = getattr(_per_thread, "iterators", None)
    if pair is None:
        root = icu.Locale.getRoot()
        pair = _per_thread.iterators = (
            icu.BreakIterator.createCharacterInstance(root),
            icu.BreakIterator.createLineInstance(root),
        )
    return pair


def graphemes(text: str) -> list[str]:
    """User-perceived characters (UAX #29 extended grapheme clusters)."""
    cuts = _boundaries(_iterators()[0], text)
    return [text[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]


def _is_emoji(point: int) -> bool:
    return icu.Char.hasBinaryProperty(point, icu.UProperty.EXTENDED_PICTOGRAPHIC) or (
        0x1F1E6 <= point <= 0x1F1FF  # regional indicators (flags)
    )


def _emoji_only(text: str) -> bool:
    visible = [ord(c) for c in text if not c.isspace()]
    return any(map(_is_emoji, visible)) and all(
        _is_emoji(p) or p in _DROPPABLE or 0x1F3FB <= p <= 0x1F3FF or p == 0x20E3
        or 0xE0020 <= p <= 0xE007F  # skin tones, keycaps, tag sequences
        for p in visible
    )  # fmt: skip


def _line_pieces(paragraph: str) -> list[tuple[int, int]]:
    """Spans between line-break opportunities (UAX #14; a span keeps its trailing spaces).

    Emoji are glued to the word before them (those opening a paragraph, to the word after),
    so an emoji never wraps onto a line of its own; a paragraph of emoji alone breaks
    between them."""
    cuts = _boundaries(_iterators()[1], paragraph)
    spans = [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]
    emoji = [_emoji_only(paragraph[a:b]) for a, b in spans]
    if all(emoji):
        return spans
    glued: list[tuple[int, int]] = []
    last_alone = False  # the last glued span is emoji only (opening the paragraph)
    for (a, b), alone in zip(spans, emoji, strict=True):
        if glued and (alone or last_alone):
            glued[-1] = (glued[-1][0], b)
            last_alone = last_alone and alone
        else:
            glued.append((a, b))
            last_alone = alone
    return glued


# --- fonts per grapheme ----------------------------------------------------------------------


def assign_fonts(text: str, chain: tuple[Path, ...], what: str = "text") -> list[Path | None]:
    """The font for each character of ``text`` (None: an invisible character to drop).

    Per grapheme cluster (a cluster is never split between fonts): emoji in the symbol font
    first; letters in the first font of the chain that has them, the current run's font next
    (fewer runs); spaces, digits and punctuation stay in the current run's font when it has
    them, so a right-to-left run is not cut by its commas."""
    out: list[Path | None] = []
    previous = chain[0]
    for cluster in graphemes(text):
        points = [ord(c) for c in cluster]
        visible = [p for p in points if p not in _DROPPABLE and not chr(p).isspace()]
        if not visible:  # spaces join the run before (the colour font's are too wide)
            space = chain[0] if previous == COLOUR_EMOJI_FONT else previous
            out.extend(_keep(p, space) for p in points)
            continue
        if any(map(_is_emoji, visible)):  # in colour where we can, else as outlines
            order = (*(p for p in (COLOUR_EMOJI_FONT, SYMBOLA) if p in chain), *chain)
        elif any(chr(p).isalpha() for p in visible) or previous in SYMBOL_FONTS:
            order = (chain[0], previous, *chain[1:])
        else:
            order = (previous, *chain)
        found = next((f for f in order if glyph_coverage(f).issuperset(visible)), None)
        if found is None:
            bad = next(p for p in visible if not any(p in glyph_coverage(f) for f in chain))
            name = unicodedata.name(chr(bad), "unnamed character")
            raise OverlayTextError(
                f"{what}: character {chr(bad)!r} (U+{bad:04X} {name}) is not in any bundled "
                "font; set overlay.font to a font that has it"
            )
        out.extend(_keep(p, found) for p in points)
        previous = found
    return out


def _keep(point: int, path: Path) -> Path | None:
    if point in _DROPPABLE and point not in glyph_coverage(path):
        return None
    return path


# --- layout --------------------------------------------------------------------------------

Run = tuple[Path, str]
Line = tuple[Run, ...]


@dataclass(frozen=True)
class Block:
    """One box's text laid out: its lines (each a tuple of font runs) and font size."""

    lines: tuple[Line, ...]
    size: int  # px at REFERENCE_WIDTH
    box: TextBox = field(default=CLASSIC_BOXES[0])


@dataclass(frozen=True)
class Layout:
    """Every box of a meme laid out, in box order (None: an empty box)."""

    blocks: tuple[Block | None, ...]

    @property
    def empty(self) -> bool:
        return all(block is None for block in self.blocks)

    @property
    def top(self) -> Block | None:
        return self.blocks[0] if self.blocks else None

    @property
    def bottom(self) -> Block | None:
        return self.blocks[1] if len(self.blocks) > 1 else None


def text_runs(text: str, fonts: Sequence[Path | None]) -> tuple[Run, ...]:
    """``text`` cut where its font (from assign_fonts) changes; characters without one dropped."""
    runs: list[list] = []
    for c, f in zip(text, fonts, strict=True):
        if f is None:
            continue
        if runs and (runs[-1][0] is f or runs[-1][0] == f):
            runs[-1][1] += c
        else:
            runs.append([f, c])
    return tuple((f, t) for f, t in runs)


def _stroke(size: int, box: TextBox) -> int:
    return max(1, round(size * box.outline_width)) if box.outline_width > 0 else 0


def _line_width(runs: Line, size: int, box: TextBox) -> float:
    return sum(_face(f, size).getlength(t) for f, t in runs) + 2 * _stroke(size, box)


class _Measure:
    """Widths at one font size, each distinct (font, text) measured once."""

    def __init__(self, size: int):
        self.size = size
        self.known: dict[Run, float] = {}

    def __call__(self, runs: Sequence[Run]) -> float:
        total = 0.0
        for run in runs:
            width = self.known.get(run)
            if width is None:
                width = self.known[run] = _face(run[0], self.size).getlength(run[1])
            total += width
        return total


@dataclass
class _Paragraph:
    """A paragraph split for wrapping: its pieces, each as runs (trailing spaces apart)."""

    text: str
    fonts: list[Path | None]
    pieces: list[tuple[int, int, int]]  # (start, end without trailing spaces, end)

    known: dict[tuple[int, int], tuple[Run, ...]] = field(default_factory=dict)

    def runs(self, a: int, b: int) -> tuple[Run, ...]:
        found = self.known.get((a, b))
        if found is None:
            found = self.known[(a, b)] = text_runs(self.text[a:b], self.fonts[a:b])
        return found


def _paragraphs(text: str, fonts: list[Path | None]) -> list[_Paragraph]:
    out, offset = [], 0
    for paragraph in text.split("\n"):
        pfonts = fonts[offset : offset + len(paragraph)]
        offset += len(paragraph) + 1
        pieces = []
        for a, b in _line_pieces(paragraph):
            trimmed = len(paragraph[a:b].rstrip())
            pieces.append((a, a + trimmed, b))
        out.append(_Paragraph(paragraph, pfonts, pieces))
    return out


def _wrap(
    paragraphs: list[_Paragraph], measure: _Measure, max_w: float, max_lines: int, split: bool
) -> list[Line] | None:
    """Greedy wrap into lines no wider than max_w (outline excluded); None when a piece will
    not fit (and ``split`` is off) or more than max_lines lines would be needed. Each piece is
    measured once; a piece wider than a line is cut between grapheme clusters."""
    lines: list[Line] = []

    def emit(p: _Paragraph, a: int, b: int) -> bool:
        line = p.runs(a, b)
        if line:
            lines.append(line)
        return len(lines) <= max_lines

    for p in paragraphs:
        start: int | None = None  # where the current line starts in p.text
        end = 0  # end of its last piece, trailing spaces excluded
        width = 0.0  # its width with the last piece's trailing spaces
        for a, trim, b in p.pieces:
            core = measure(p.runs(a, trim))
            full = core + measure(p.runs(trim, b))
            if start is not None and width + core <= max_w:
                width += full
                end = trim
                continue
            if start is not None and not emit(p, start, end):
                return None
            start = None
            if core <= max_w:
                start, end, width = a, trim, full
                continue
            if not split:
                return None
            start, end, width = a, a, 0.0  # cut the piece between grapheme clusters
            for cluster in graphemes(p.text[a:trim]):
                k = end + len(cluster)
                w = measure(p.runs(end, k))
                if width + w > max_w and end > start:
                    if not emit(p, start, end):
                        return None
                    start, width = end, 0.0
                end, width = k, width + w
            width += measure(p.runs(trim, b))
        if start is not None and not emit(p, start, end):
            return None
    return lines


def _block_metrics(lines: Sequence[Line], size: int, box: TextBox) -> tuple[int, int, int]:
    """(first baseline offset, line pitch, total height) of a block, outline included."""
    stroke = _stroke(size, box)
    fonts = {f for line in lines for f, _ in line}
    ascent = max(_face(f, size).getmetrics()[0] for f in fonts)
    descent = max(_face(f, size).getmetrics()[1] for f in fonts)
    pitch = ascent + descent
    # Ink can rise above the font's ascent (accents on capitals in display faces).
    top_ink = max(-_face(f, size).getbbox(t, anchor="ls")[1] for f, t in lines[0])
    bottom_ink = max(_face(f, size).getbbox(t, anchor="ls")[3] for f, t in lines[-1])
    first = int(max(ascent, top_ink)) + stroke  # FreeType's boxes are whole pixels
    height = first + pitch * (len(lines) - 1) + int(max(descent, bottom_ink)) + stroke
    return first, pitch, height


def _fit_block(
    text: str,
    fonts: list[Path | None],
    box: TextBox,
    box_w: float,
    box_h: float,
    min_size: int,
    max_size: int,
    what: str,
    shape: str,
) -> Block:
    """The largest size in [min_size, max_size] at which ``text`` fits box_w x box_h."""
    paragraphs = _paragraphs(text, fonts)
    used = {f for f in fonts if f is not None}

    def fits(size: int, split: bool, ink: bool = False) -> tuple[Line, ...] | None:
        """The lines at this size, if they fit (by the fonts' metrics; ``ink``: exactly)."""
        stroke = _stroke(size, box)
        metrics = [_face(f, size).getmetrics() for f in used]
        # Each line takes at least the smallest font's ascent + descent: stop wrapping there.
        max_lines = max(1, int(box_h // max(1, min(a + d for a, d in metrics))))
        lines = _wrap(paragraphs, _Measure(size), box_w - 2 * stroke, max_lines, split)
        if not lines:
            return None
        if ink:
            height = _block_metrics(lines, size, box)[2]
        else:  # as _block_metrics without the ink (measuring it is slow): the bisection's test
            fonts = {f for line in lines for f, _ in line}
            pitch = max(sum(_face(f, size).getmetrics()) for f in fonts)
            height = pitch * len(lines) + 2 * stroke
        return tuple(lines) if height <= box_h else None

    max_size = max(min_size, max_size)
    for split in (False, True):  # breaking inside a word only when nothing else fits
        if fits(min_size, split) is None:
            continue
        lo, hi = min_size, max_size  # bisection for the largest size that fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(mid, split) is not None:
                lo = mid
            else:
                hi = mid - 1
        # Ink rising above the ascent (accents on capitals) may need a size or two less.
        for size in range(lo, min_size - 1, -1):
            lines = fits(size, split, ink=True)
            if lines is not None:
                return Block(lines=lines, size=size, box=box)
    raise OverlayTextError(
        f"{what} does not fit on a {shape} image: it would need a font smaller than "
        f"{min_size} px (overlay.min_font_size, at {REFERENCE_WIDTH} px image width); shorten it"
    )


def layout(
    width: int,
    height: int,
    texts: Sequence[str],
    overlay: OverlayConfig,
    boxes: Sequence[TextBox] | None = None,
) -> Layout:
    """Lay out each text in its box for an image of this shape (see module doc). ``texts``
    are in box order; missing ones leave their boxes empty; more texts than boxes is an
    error."""
    if width < 1 or height < 1:
        raise OverlayTextError(f"image size {width}x{height} is not valid")
    boxes = tuple(boxes) if boxes is not None else CLASSIC_BOXES
    if len(texts) > len(boxes):
        raise OverlayTextError(f"{len(texts)} texts for {len(boxes)} text boxes")
    ref_h = max(1, round(height * REFERENCE_WIDTH / width))
    blocks: list[Block | None] = []
    for box, what, raw in zip(boxes, box_labels(boxes), texts, strict=False):
        text = box.prepare(raw or "")
        if not text:
            blocks.append(None)
            continue
        fonts = assign_fonts(text, font_chain(box.font or overlay.font), what)
        max_size = box.max_font_size or round(REFERENCE_WIDTH * MAX_FONT)
        blocks.append(
            _fit_block(
                text, fonts, box, box.width * REFERENCE_WIDTH, box.height * ref_h,
                overlay.min_font_size, max_size, what, f"{width}x{height}",
            )  # fmt: skip
        )
    blocks += [None] * (len(boxes) - len(blocks))
    return Layout(blocks=tuple(blocks))


def check_overlay(
    width: int,
    height: int,
    texts: Sequence[str],
    overlay: OverlayConfig,
    boxes: Sequence[TextBox] | None = None,
) -> None:
    """Raise IngestError when a text cannot be set legibly in its box on this image."""
    try:
        layout(width, height, texts, overlay, boxes)
    except OverlayTextError as exc:
        raise IngestError(str(exc)) from None


# --- drawing -------------------------------------------------------------------------------

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels


@dataclass(frozen=True)
class _Placed:
    """A block placed on an image of a given size."""

    block: Block
    size: int
    stroke: int
    first: int  # first baseline, from the block's top
    pitch: int
    widths: tuple[float, ...]  # each line's width, outline included
    origin: tuple[float, float]  # the block's top-left, before any rotation
    extent: tuple[float, float]  # the block's width and height
    box: Box  # what it covers on the image (after rotation)


@lru_cache(maxsize=64)
def _place(plan: Layout, width: int, height: int) -> tuple[_Placed, ...]:
    """Where each block goes on a width x height image (the one geometry drawing and
    caption_boxes share). Cached: every frame of an animation asks the same question."""
    scale = width / REFERENCE_WIDTH
    placed = []
    for block in plan.blocks:
        if block is None:
            continue
        box = block.box
        bx, by, bw, bh = box.x * width, box.y * height, box.width * width, box.height * height
        size = max(1, round(block.size * scale))
        # Hinting makes widths not exactly proportional to size: shrink until every line fits.
        while size > 1 and max(_line_width(line, size, box) for line in block.lines) > bw:
            size -= 1
        first, pitch, block_h = _block_metrics(block.lines, size, box)
        widths = tuple(_line_width(line, size, box) for line in block.lines)
        text_w = max(widths)
        x0 = {"left": bx, "right": bx + bw - text_w}.get(box.align, bx + (bw - text_w) / 2)
        y0 = {"top": by, "bottom": by + bh - block_h}.get(box.valign, by + (bh - block_h) / 2)
        cover: Box = (x0, y0, x0 + text_w, y0 + block_h)
        if box.angle % 360:
            cx, cy, turn = x0 + text_w / 2, y0 + block_h / 2, math.radians(box.angle)
            half_w = (abs(math.cos(turn)) * text_w + abs(math.sin(turn)) * block_h) / 2
            half_h = (abs(math.sin(turn)) * text_w + abs(math.cos(turn)) * block_h) / 2
            cover = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
        placed.append(
            _Placed(block, size, _stroke(size, box), first, pitch, widths, (x0, y0),
                    (text_w, block_h), cover)  # fmt: skip
        )
    return tuple(placed)


def caption_boxes(plan: Layout, width: int, height: int) -> list[Box]:
    """The boxes the texts cover on a width x height image (so a watermark can keep off)."""
    return [] if plan.empty else [p.box for p in _place(plan, width, height)]


def _colour(value: str, mode: str) -> tuple[int, ...]:
    rgb = ImageColor.getrgb(value)[:3]
    return (*rgb, 255) if mode == "RGBA" else rgb


def draw_lines(
    image: Image.Image,
    lines: Sequence[tuple[tuple[float, float], Sequence[Run]]],
    size: int,
    stroke: int,
    fill: tuple[int, ...],
    outline: tuple[int, ...],
) -> None:
    """Each line's runs from its (x, baseline), in fonts of ``size``: the outline pass
    (``stroke`` px; none when 0) for every line first, then the fill pass, so one run's outline
    never covers a neighbouring run's letters. Colour emoji are pasted in the fill pass,
    outlined by their own artwork. Captions and the text watermark are drawn by this."""
    draw = ImageDraw.Draw(image)
    for outline_pass in ((True, False) if stroke else (False,)):
        for (x, baseline), line in lines:
            for path, text in line:
                font = _face(path, size)
                if isinstance(font, _ColourFace):
                    if not outline_pass:
                        tile, rise = font.render(text)
                        _composite(image, tile, (round(x), round(baseline) - rise))
                elif outline_pass:
                    draw.text((x, baseline), text, font=font, anchor="ls", fill=outline,
                              stroke_width=stroke, stroke_fill=outline)  # fmt: skip
                else:
                    draw.text((x, baseline), text, font=font, anchor="ls", fill=fill)
                x += font.getlength(text)


def _draw_block(image: Image.Image, placed: _Placed, at: tuple[float, float]) -> None:
    """A placed block's lines, aligned in its box; every run of a line shares its size and
    baseline."""
    box, stroke, text_w = placed.block.box, placed.stroke, placed.extent[0]
    lines = []
    for i, line in enumerate(placed.block.lines):
        lw = placed.widths[i]
        offset = {"left": 0.0, "right": text_w - lw}.get(box.align, (text_w - lw) / 2)
        lines.append(((at[0] + offset + stroke, at[1] + placed.first + i * placed.pitch), line))
    colours = _colour(box.color, image.mode), _colour(box.outline, image.mode)
    draw_lines(image, lines, placed.size, stroke, *colours)


def _composite(image: Image.Image, tile: Image.Image, corner: tuple[int, int]) -> None:
    """Lay an RGBA tile over an RGB or RGBA image at ``corner`` (which may be off the image)."""
    if image.mode == "RGBA":
        x, y = corner
        image.alpha_composite(tile, (max(0, x), max(0, y)), (max(0, -x), max(0, -y)))
    else:
        image.paste(tile, corner, tile)


def draw_overlay(image: Image.Image, plan: Layout) -> Image.Image:
    """Draw the laid-out texts on a copy of an RGB/RGBA image, scaled to its width."""
    out = image.copy()
    if plan.empty:
        return out
    for placed in _place(plan, *out.size):
        if not placed.block.box.angle % 360:
            _draw_block(out, placed, placed.origin)
            continue
        w, h = placed.extent
        tile = Image.new("RGBA", (math.ceil(w), math.ceil(h)))
        _draw_block(tile, placed, (0.0, 0.0))
        # Only the inked part is turned (rotating costs per pixel of the turned tile), its
        # centre carried round the block's centre by the same angle.
        x0, y0, x1, y1 = tile.getbbox() or (0, 0, tile.width, tile.height)
        dx, dy = (x0 + x1 - tile.width) / 2, (y0 + y1 - tile.height) / 2
        angle = math.radians(placed.block.box.angle)
        cx = placed.origin[0] + w / 2 + dx * math.cos(angle) + dy * math.sin(angle)
        cy = placed.origin[1] + h / 2 - dx * math.sin(angle) + dy * math.cos(angle)
        tile = tile.crop((x0, y0, x1, y1))
        tile = tile.rotate(placed.block.box.angle, Image.Resampling.BICUBIC, expand=True)
        _composite(out, tile, (round(cx - tile.width / 2), round(cy - tile.height / 2)))
    return out

"""Meme captions: fitting, wrapping, Unicode coverage, and the add-time check."""

from __future__ import annotations

import pytest
from PIL import Image, ImageChops, ImageStat

from pipeline import config as configuration
from pipeline import overlay
from pipeline.errors import IngestError

OVERLAY = configuration.parse({}).overlay  # min_font_size 14 (px at 1000 px width)


def drawn(size, top="", bottom="", colour=(60, 120, 180)) -> tuple[Image.Image, Image.Image]:
    plain = Image.new("RGB", size, colour)
    return plain, overlay.draw_overlay(plain, overlay.layout(*size, (top, bottom), OVERLAY))


def ink_box(plain: Image.Image, captioned: Image.Image):
    return ImageChops.difference(plain, captioned).getbbox()


def test_bundled_fonts_and_licences_are_present():
    for font in (overlay.MEME_FONT, overlay.WATERMARK_FONT, *overlay.FALLBACK_FONTS):
        assert font.is_file() and overlay.glyph_coverage(font)
    names = {p.name for p in overlay.FONT_DIR.iterdir()}
    assert {"OFL-Anton.txt", "LICENSE-DejaVu.txt", "LICENSE-DroidSansFallback.txt",
            "OFL-Nanum.txt", "OFL-Noto.txt", "LICENSE-Symbola.txt"} <= names  # fmt: skip


def test_glyph_coverage_reads_the_cmap():
    anton = overlay.glyph_coverage(overlay.MEME_FONT)
    dejavu = overlay.glyph_coverage(overlay.WATERMARK_FONT)
    assert {ord(c) for c in "AZaz09é!?"} <= anton
    assert ord("Ж") not in anton and ord("Ж") in dejavu
    assert ord("你") in overlay.glyph_coverage(overlay.FALLBACK_FONTS[1])


def test_caption_sits_at_top_and_bottom_in_white_with_black_outline():
    plain, captioned = drawn((800, 600), "TOP", "BOTTOM")
    top = captioned.crop((0, 0, 800, 200))
    bottom = captioned.crop((0, 400, 800, 600))
    middle = captioned.crop((0, 250, 800, 350))
    for band in (top, bottom):
        extrema = ImageStat.Stat(band).extrema
        assert all(high >= 250 for _, high in extrema)  # white fill
        assert all(low <= 5 for low, _ in extrema)  # black outline
    assert ImageStat.Stat(middle).extrema == [(60, 60), (120, 120), (180, 180)]


def test_very_long_caption_wraps_and_stays_inside_the_image():
    text = " ".join(["when the deploy script works on the first try"] * 6)
    plain, captioned = drawn((600, 900), text, text)
    left, top, right, bottom = ink_box(plain, captioned)
    assert left > 0 and top > 0 and right < 600 and bottom < 900
    block = overlay.layout(600, 900, (text, text), OVERLAY).top
    assert len(block.lines) > 3 and block.size >= OVERLAY.min_font_size


def test_short_caption_is_big_and_long_one_shrinks():
    short = overlay.layout(1000, 1000, ("LOL", ""), OVERLAY).top
    long = overlay.layout(1000, 1000, ("this is a much longer caption " * 4, ""), OVERLAY).top
    assert short.size == round(overlay.REFERENCE_WIDTH * overlay.MAX_FONT)
    assert long.size < short.size


def test_same_layout_at_every_scale():
    """Captions are laid out at the reference width, so a small copy matches a big one."""
    _, big = drawn((2000, 1500), "SAME PLACE", "AT ANY SIZE")
    _, small = drawn((500, 375), "SAME PLACE", "AT ANY SIZE")
    shrunk = big.resize((500, 375), Image.Resampling.LANCZOS)
    difference = ImageStat.Stat(ImageChops.difference(shrunk, small).convert("L")).mean[0]
    assert difference < 12


def test_long_word_breaks_only_when_it_must():
    block = overlay.layout(1000, 1000, ("Donaudampfschifffahrtsgesellschaft", ""), OVERLAY).top
    assert len(block.lines) == 1  # shrinks rather than splitting the word
    # Too long for one line even at the smallest size: broken inside, nothing lost or added,
    # and every piece fits the width.
    word = "Donaudampfschifffahrtsgesellschaftskapitän" * 4
    split = overlay.layout(1000, 1000, (word, ""), OVERLAY).top
    pieces = ["".join(text for _, text in line) for line in split.lines]
    assert len(pieces) > 1 and "".join(pieces) == word
    widest = overlay.REFERENCE_WIDTH * (1 - 2 * overlay.SIDE_MARGIN)
    for line in split.lines:
        assert sum(overlay.get_font(f, split.size).getlength(t) for f, t in line) <= widest


@pytest.mark.parametrize(
    "text",
    [
        "Ça, c'est déjà fait",
        "Привет, мир",
        "مرحبا بالعالم",
        "你好，世界",
        "こんにちは世界",
        "안녕하세요 세계",
        "नमस्ते दुनिया",
        "ওহে বিশ্ব",
        "வணக்கம் உலகம்",
        "สวัสดีชาวโลก",
        "ሰላም ልዑል",
    ],
)
def test_unicode_scripts_render_with_a_font_that_has_them(text):
    plain, captioned = drawn((800, 600), text)
    assert ink_box(plain, captioned) is not None
    block = overlay.layout(800, 600, (text, ""), OVERLAY).top
    for line in block.lines:
        for font, run in line:
            coverage = overlay.glyph_coverage(font)
            assert all(ord(c) in coverage for c in run if not c.isspace()), (font.name, run)


def test_latin_caption_uses_the_meme_font_and_mixed_text_falls_back_per_run():
    latin = overlay.layout(800, 600, ("ONE DOES NOT SIMPLY", ""), OVERLAY).top
    assert {font for line in latin.lines for font, _ in line} == {overlay.MEME_FONT}
    mixed = overlay.layout(800, 600, ("PUTIN 你好", ""), OVERLAY).top
    fonts = [font.name for line in mixed.lines for font, _ in line]
    assert fonts == ["Anton-Regular.ttf", "DroidSansFallbackFull.ttf"]


def test_emoji_are_set_in_colour_and_the_words_around_them_in_the_meme_font():
    fonts = overlay.assign_fonts("FINE 🔥😂 OK ❤️ ☙", overlay.font_chain(None))
    names = [font.name if font else None for font in fonts]
    anton, colour = "Anton-Regular.ttf", "NotoColorEmoji.ttf"
    assert names[:5] == [anton] * 5  # "FINE "
    assert names[5:7] == [colour] * 2  # both emoji
    assert names[7:10] == [anton] * 3  # " OK" (the colour font's space is far too wide)
    assert names[11] == colour and names[12] in (colour, None)  # ❤ and its U+FE0F
    assert names[14] == "Symbola.ttf"  # a symbol the colour font lacks: Symbola's outline
    plain, captioned = drawn((800, 600), "THIS IS FINE 🔥")
    box = ink_box(plain, captioned)
    emoji = captioned.crop((box[2] - 60, box[1], box[2], box[3]))
    # Drawn in colour: orange and yellow flames, not a white letter with a black outline.
    assert any(r > 200 and 60 < g < 200 and b < 80 for _, (r, g, b) in emoji.getcolors(1 << 20))


def test_symbol_font_never_sets_a_whole_caption_of_latin_letters():
    # Symbola has Latin letters, in a serif; a Latin caption stays in Anton whatever follows.
    top = overlay.layout(800, 600, ("DEPLOY ON FRIDAY 👍", ""), OVERLAY).top
    runs = [(font.name, text) for line in top.lines for font, text in line]
    assert {font for font, text in runs if any(c.isalpha() for c in text)} == {"Anton-Regular.ttf"}
    assert {font for font, text in runs if "👍" in text} == {"NotoColorEmoji.ttf"}


def test_missing_glyph_is_an_ingest_error_naming_the_character():
    with pytest.raises(IngestError, match=r"bottom text: character .*U\+1FAE9"):
        overlay.check_overlay(800, 600, ("fine", "tired \U0001fae9"), OVERLAY)  # Unicode 16


def test_text_that_cannot_fit_legibly_is_an_ingest_error():
    long = "a caption far too long for a thin strip of an image to carry legibly"
    with pytest.raises(IngestError, match=r"top text does not fit on a 8000x200 image"):
        overlay.check_overlay(8000, 200, (long, ""), OVERLAY)
    overlay.check_overlay(4000, 400, ("OK", ""), OVERLAY)  # a short word fits a wide image
    overlay.check_overlay(800, 600, ("", ""), OVERLAY)  # no caption, nothing to check


def test_min_font_size_is_configurable():
    strict = configuration.parse({"overlay": {"min_font_size": 60}}).overlay
    text = "a medium length caption that needs a few lines at a large size " * 4
    overlay.check_overlay(1000, 1000, (text, ""), OVERLAY)
    with pytest.raises(IngestError, match="smaller than 60 px"):
        overlay.check_overlay(1000, 1000, (text, ""), strict)


def test_a_script_no_bundled_font_has_is_refused_by_name_pointing_at_overlay_font():
    with pytest.raises(IngestError, match=r"U\+0F56 TIBETAN LETTER BA.*set overlay.font"):
        overlay.check_overlay(800, 600, ("བཀྲ་ཤིས", ""), OVERLAY)


def block_font(path, text: str):
    """A real TrueType font whose only glyphs are solid blocks for the characters of ``text``."""
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    def block(filled: bool):
        pen = TTGlyphPen(None)
        if filled:
            pen.moveTo((50, 0))
            pen.lineTo((50, 700))
            pen.lineTo((850, 700))
            pen.lineTo((850, 0))
            pen.closePath()
        return pen.glyph()

    names = [f"uni{ord(c):04X}" for c in text]
    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder([".notdef", "space", *names])
    builder.setupCharacterMap({32: "space", **{ord(c): f"uni{ord(c):04X}" for c in text}})
    builder.setupGlyf({".notdef": block(False), "space": block(False),
                       **{n: block(True) for n in names}})  # fmt: skip
    builder.setupHorizontalMetrics({n: (900, 50) for n in [".notdef", "space", *names]})
    builder.setupHorizontalHeader(ascent=800, descent=-200)
    builder.setupNameTable({"familyName": "Blocks", "styleName": "Regular"})
    builder.setupOS2()
    builder.setupPost()
    builder.save(str(path))
    return path


def test_overlay_font_brings_the_glyphs_the_bundled_fonts_lack(tmp_path):
    font = block_font(tmp_path / "blocks.ttf", "བཀ")
    tibetan = configuration.parse({"overlay": {"font": str(font)}}, root=tmp_path).overlay
    assert overlay.assign_fonts("བཀ W", overlay.font_chain(font)) == [
        font, font, font, overlay.FALLBACK_FONTS[0]  # the Latin letter from DejaVu
    ]  # fmt: skip
    overlay.check_overlay(800, 600, ("བཀ WORLD", ""), tibetan)
    plain = Image.new("RGB", (800, 600), (60, 120, 180))
    captioned = overlay.draw_overlay(plain, overlay.layout(800, 600, ("བཀ", ""), tibetan))
    box = ink_box(plain, captioned)
    assert box is not None and box[3] < 300  # drawn, in the top half


def test_caption_on_transparent_image_is_opaque():
    plain = Image.new("RGBA", (600, 400), (0, 0, 0, 0))
    captioned = overlay.draw_overlay(plain, overlay.layout(600, 400, ("HI", ""), OVERLAY))
    assert captioned.getchannel("A").getextrema() == (0, 255)


def _fit_in_subprocess(text: str, timeout: float) -> str:
    """Lay out ``text`` as a top caption in a fresh interpreter; its outcome, or 'timeout'."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from pipeline import config, overlay\n"
        "text = sys.stdin.read()\n"
        "try:\n"
        "    overlay.check_overlay(1000, 1000, (text, ''), config.parse({}).overlay)\n"
        "    print('fits')\n"
        "except Exception as exc:\n"
        "    print('refused', type(exc).__name__)\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", script], input=text, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return "timeout"
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        ("W" * 2000, "refused IngestError"),  # one 2,000-letter word: far too long
        ("SO MUCH WOW " * 170, "fits"),  # 2,040 characters of words: small, but legible
        ("SO MUCH WOW " * 850, "refused IngestError"),  # 10,200 characters of words
        ("W" * 10000, "refused IngestError"),  # issue 10: hogged a core for 10 minutes
    ],
)
def test_fitting_a_long_text_is_bounded_work(text, outcome):
    """Issue 10 item 1: fitting was quadratic (every cut point re-measured the whole text)."""
    assert _fit_in_subprocess(text, timeout=20) == outcome


def test_latin_emoji_and_cjk_keep_one_font_and_size_on_their_line():
    """Issue 11: an emoji switched the whole line to a wider sans font and wrapped alone."""
    mixed = overlay.layout(1000, 1000, ("SHIP IT 🎉 你好 NOW", ""), OVERLAY).top
    latin = overlay.layout(1000, 1000, ("SHIP IT NOW", ""), OVERLAY).top
    [line] = mixed.lines
    runs = [(font.name, text) for font, text in line]
    assert {f for f, t in runs if any(c.isascii() and c.isalpha() for c in t)} == {
        "Anton-Regular.ttf"
    }
    assert ("NotoColorEmoji.ttf", "🎉") in runs and any(f.startswith("Droid") for f, _ in runs)
    # The Latin letters are drawn at the size and on the baseline of the Latin-only caption.
    plain = Image.new("RGB", (1000, 1000), (60, 120, 180))
    left = (overlay.TextBox(x=0.05, y=0.05, width=0.9, height=0.3, align="left"),)
    a = overlay.draw_overlay(plain, overlay.layout(1000, 1000, ("SHIP",), OVERLAY, left))
    b = overlay.draw_overlay(plain, overlay.layout(1000, 1000, ("SHIP 🎉 你好",), OVERLAY, left))
    letters = ink_box(plain, a)
    assert ImageChops.difference(a.crop(letters), b.crop(letters)).getbbox() is None
    assert ink_box(plain, b)[2] > letters[2] + 50  # the emoji and CJK follow on the same line
    assert mixed.size == latin.size


def test_an_emoji_never_wraps_onto_a_line_of_its_own():
    words = "WHEN THE RELEASE FINALLY SHIPS ON A FRIDAY AFTERNOON 🎉"
    for width in (400, 600, 800, 1000):
        block = overlay.layout(width, 1000, (words, ""), OVERLAY).top
        for line in block.lines:
            text = "".join(t for _, t in line).strip()
            assert any(c.isalpha() for c in text), (width, text)


def test_a_zwj_family_emoji_is_never_split():
    family = "👨\u200d👩\u200d👧\u200d👦"
    for text in (family * 12, f"{family} " * 12, f"WE ARE {family} FAMILY " * 3):
        block = overlay.layout(300, 1000, (text, ""), OVERLAY).top
        assert len(block.lines) > 1
        for line in block.lines:
            joined = "".join(t for _, t in line)
            assert joined.replace(family, "").strip(" WEARFMILY") == "", joined
            fonts = {f for f, t in line if "\u200d" in t or "👨" in t}
            assert len(fonts) <= 1


def test_thai_breaks_between_words():
    text = "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำในประโยคเลยแม้แต่นิดเดียว"
    block = overlay.layout(300, 1000, (text, ""), OVERLAY).top
    lines = ["".join(t for _, t in line) for line in block.lines]
    assert len(lines) > 1 and "".join(lines) == text
    words = overlay._line_pieces(text)
    ends = {b for _, b in words}
    offset = 0
    for line in lines[:-1]:
        offset += len(line)
        assert offset in ends  # every line ends between two dictionary words


# --- text boxes and their options ------------------------------------------------------------


def box(**options) -> overlay.TextBox:
    return overlay.TextBox(**{"x": 0.1, "y": 0.1, "width": 0.8, "height": 0.3, **options})


def drawn_box(text: str, size=(800, 600), **options) -> tuple[Image.Image, Image.Image]:
    plain = Image.new("RGB", size, (60, 120, 180))
    plan = overlay.layout(*size, (text,), OVERLAY, (box(**options),))
    return plain, overlay.draw_overlay(plain, plan)


def test_box_position_and_size_are_fractions_of_the_image():
    plain, out = drawn_box("HELLO", x=0.5, y=0.6, width=0.4, height=0.3)
    left, top, right, bottom = ink_box(plain, out)
    assert left >= 400 and top >= 360 and right <= 720 and bottom <= 540


@pytest.mark.parametrize(("align", "side"), [("left", 0), ("center", 1), ("right", 2)])
def test_box_align(align, side):
    plain, out = drawn_box("HI", align=align)
    left, _, right, _ = ink_box(plain, out)
    centre = (left + right) / 2
    assert [centre < 250, 300 < centre < 500, centre > 550][side], (align, left, right)


@pytest.mark.parametrize(("valign", "band"), [("top", 0), ("middle", 1), ("bottom", 2)])
def test_box_valign(valign, band):
    plain, out = drawn_box("HI", valign=valign, height=0.8, max_font_size=60)
    _, top, _, bottom = ink_box(plain, out)
    middle = (top + bottom) / 2
    assert [middle < 200, 230 < middle < 370, middle > 400][band], (valign, top, bottom)


def test_box_colours_and_outline_width():
    _, out = drawn_box("HI", color="#ff0000", outline="#00ff00", outline_width=0.1)
    colours = {c for _, c in out.getcolors(1 << 20)}
    assert (255, 0, 0) in colours and (0, 255, 0) in colours
    assert (255, 255, 255) not in colours
    plain, bare = drawn_box("HI", outline_width=0)
    assert not any(c == (0, 0, 0) for _, c in bare.getcolors(1 << 20))  # no outline at all


def test_box_style_upper_and_none():
    upper = overlay.layout(800, 600, ("shout",), OVERLAY, (box(style="upper"),)).blocks[0]
    none = overlay.layout(800, 600, ("shout",), OVERLAY, (box(style="none"),)).blocks[0]
    assert upper.lines[0][0][1] == "SHOUT" and none.lines[0][0][1] == "shout"


def test_box_font_and_max_font_size():
    dejavu = overlay.layout(800, 600, ("HI",), OVERLAY, (box(font=overlay.WATERMARK_FONT),))
    assert dejavu.blocks[0].lines[0][0][0] == overlay.WATERMARK_FONT
    capped = overlay.layout(800, 600, ("HI",), OVERLAY, (box(max_font_size=30),))
    assert capped.blocks[0].size == 30


def test_box_angle_turns_the_text():
    plain, flat = drawn_box("A LONG LINE OF TEXT", y=0.3)
    _, turned = drawn_box("A LONG LINE OF TEXT", y=0.3, angle=20)
    fl, ft, fr, fb = ink_box(plain, flat)
    tl, tt, tr, tb = ink_box(plain, turned)
    assert (tb - tt) > (fb - ft) * 1.5  # rotated: much taller ink box
    plan = overlay.layout(800, 600, ("A LONG LINE OF TEXT",), OVERLAY, (box(y=0.3, angle=20),))
    [cover] = overlay.caption_boxes(plan, 800, 600)
    assert cover[0] <= tl + 1 and cover[1] <= tt + 1 and cover[2] >= tr - 1 and cover[3] >= tb - 1


def _ink_centre(plain: Image.Image, captioned: Image.Image) -> tuple[float, float]:
    ink = ImageChops.difference(plain, captioned).convert("L").point(lambda v: 255 if v else 0)
    columns = list(ink.resize((ink.width, 1), Image.Resampling.BOX).tobytes())
    rows = list(ink.resize((1, ink.height), Image.Resampling.BOX).tobytes())
    return (
        sum(x * v for x, v in enumerate(columns)) / sum(columns),
        sum(y * v for y, v in enumerate(rows)) / sum(rows),
    )


@pytest.mark.parametrize("angle", [30, -75])
def test_a_turned_text_turns_round_its_box_centre(angle):
    """A turned text is its flat drawing turned round its block's centre: the ink's centre
    lands where the flat ink's centre goes (also when the ink sits off the block's middle, as
    capitals do above a line's descent)."""
    import math

    options = {"y": 0.3, "height": 0.2, "align": "left"}
    plain, flat = drawn_box("HELLO WORLD", **options)
    _, turned = drawn_box("HELLO WORLD", angle=angle, **options)
    plan = overlay.layout(800, 600, ("HELLO WORLD",), OVERLAY, (box(angle=angle, **options),))
    [(x0, y0, x1, y1)] = overlay.caption_boxes(plan, 800, 600)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    fx, fy = _ink_centre(plain, flat)
    a = math.radians(angle)  # counter-clockwise on screen, y pointing down
    want = (cx + (fx - cx) * math.cos(a) + (fy - cy) * math.sin(a),
            cy - (fx - cx) * math.sin(a) + (fy - cy) * math.cos(a))  # fmt: skip
    got = _ink_centre(plain, turned)
    assert math.dist(got, want) < 1.5, (got, want)


def test_more_texts_than_boxes_is_an_error():
    with pytest.raises(overlay.OverlayTextError, match="3 texts for 2 text boxes"):
        overlay.layout(800, 600, ("a", "b", "c"), OVERLAY)


def test_line_breaking_is_safe_from_several_threads():
    """The studio lays out texts from several request threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    words = ("alpha", "βήτα", "ภาษาไทย", "你好世界", "🎉 party", "x")
    texts = [f"{word} " * n for n in (1, 7, 300) for word in words] * 10
    alone = [overlay._line_pieces(t) for t in texts]
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(overlay._line_pieces, texts)) == alone

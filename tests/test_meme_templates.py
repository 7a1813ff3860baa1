"""Templates: box files, the bundled starters (against reference renders) and the preview."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from pipeline import config as configuration
from pipeline import meme_templates, overlay
from pipeline.errors import UsageError

OVERLAY = configuration.parse({}).overlay
REFERENCES = Path(__file__).parent / "references"
# Texts for each starter's boxes, in order: what the reference renders show.
STARTER_TEXTS = {
    "launch-day": ("Deploy on Friday? Sure 🚀",),
    "cat-verdict": ("When the tests pass locally", "and CI is red"),
    "coffee-labels": ("Monday standup", "me", "the 4th coffee ☕"),
    "astronaut-four": ("Read the docs", "Ship it", "Docs were wrong", "Houston 👍"),
}


def test_there_are_starters_with_one_two_and_three_or_more_boxes_and_licences():
    starters = meme_templates.starters()
    counts = sorted(len(t.boxes) for t in starters)
    assert counts[0] == 1 and 2 in counts and counts[-1] >= 3
    for t in starters:
        assert t.bundled and t.image.is_file() and t.licence and t.credit
        assert t.name in STARTER_TEXTS
    assert (meme_templates.STARTER_DIR / "LICENSE.txt").is_file()


def render_starter(template: meme_templates.Template) -> Image.Image:
    with Image.open(template.image) as im:
        base = im.convert("RGB")
    plan = overlay.layout(*base.size, STARTER_TEXTS[template.name], OVERLAY, template.boxes)
    return overlay.draw_overlay(base, plan)


@pytest.mark.parametrize("name", list(STARTER_TEXTS))
def test_starter_renders_match_their_references(name):
    """Reference renders were looked at by eye; MEMES_UPDATE_REFERENCES=1 writes them anew."""
    out = render_starter(meme_templates.starter(name))
    reference = REFERENCES / f"starter-{name}.png"
    if os.environ.get("MEMES_UPDATE_REFERENCES"):
        out.save(reference, optimize=True)
    with Image.open(reference) as im:
        expected = im.convert("RGB")
    assert out.size == expected.size
    diff = ImageChops.difference(out, expected).convert("L")
    assert ImageStat.Stat(diff).mean[0] < 1.5  # a few anti-aliased pixels, not a moved word
    assert sum(diff.histogram()[64:]) < out.width * out.height // 200


def write_boxes(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "boxes.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_boxes_file_with_every_option(tmp_path):
    path = write_boxes(
        tmp_path,
        "- {x: 0.1, y: 0.2, width: 0.5, height: 0.3}\n"
        "- x: 0.5\n  y: 0.6\n  width: 0.45\n  height: 0.35\n  align: right\n  valign: bottom\n"
        "  color: '#ffe14d'\n  outline: '#102030'\n  outline_width: 0.1\n  style: none\n"
        "  font: dejavusans-bold\n  max_font_size: 60\n  angle: -12\n",
    )
    first, second = meme_templates.read_boxes_file(path)
    assert (first.x, first.y, first.width, first.height) == (0.1, 0.2, 0.5, 0.3)
    assert first.align == "center" and first.style == "upper"
    assert second == overlay.TextBox(
        x=0.5, y=0.6, width=0.45, height=0.35, align="right", valign="bottom", color="#ffe14d",
        outline="#102030", outline_width=0.1, style="none", font=overlay.WATERMARK_FONT,
        max_font_size=60, angle=-12.0,
    )  # fmt: skip
    # Stored as JSON in the catalog and read back the same.
    assert meme_templates.boxes_from_json(meme_templates.boxes_to_json((first, second))) == (
        first, second
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("- {x: 0.1, y: 0.2, width: 0.5}\n", r"boxes\[0\]: missing height"),
        ("- {x: 0.8, y: 0.2, width: 0.5, height: 0.2}\n", r"boxes\[0\]: the box reaches outside"),
        ("- {x: 0, y: 0, width: 1, height: 1, align: justify}\n", r"boxes\[0\].align: expected"),
        ("- {x: 0, y: 0, width: 1, height: 1, colour: red}\n", r"unknown key\(s\) colour"),
        ("- {x: 0, y: 0, width: 1, height: 1, color: reddish}\n", r"\.color: expected a colour"),
        ("- {x: 0, y: 0, width: 1, height: 1, font: nosuchfont}\n", r"\.font: no bundled font"),
        ("- {x: 0, y: 0, width: 1, height: 1, max_font_size: 0}\n", r"max_font_size: expected"),
        ("{x: 0}\n", r"expected a list of boxes"),
        ("- [1, 2]\n", r"boxes\[0\]: expected a mapping"),
    ],
)
def test_bad_boxes_are_refused_naming_file_box_and_key(tmp_path, text, complaint):
    path = write_boxes(tmp_path, text)
    with pytest.raises(UsageError, match=complaint) as caught:
        meme_templates.read_boxes_file(path)
    assert str(path) in str(caught.value)


BOMB = "".join(  # 9 levels of 9 aliases: a few hundred bytes, 9**9 strings once expanded
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
) + "boxes: [{x: *i, y: 0, width: 1, height: 1}]\n"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        (BOMB, "invalid YAML \\(more than 1,000,000 values"),
        ("[" * 10_000 + "]" * 10_000, "invalid YAML \\(nested more than 50 levels"),
        ("- {x: 0, y: 0, width: 1, height: 1, when: 2030-02-30}\n", r"unknown key\(s\) when"),
    ],
)
def test_a_boxes_file_is_read_with_bounded_work_and_never_a_traceback(tmp_path, text, complaint):
    """`memes template add --boxes` reads YAML from people like a manifest (safeyaml): an alias
    bomb or deep nesting is one line at once, a date that is no date is text."""
    path = write_boxes(tmp_path, text)
    with pytest.raises(UsageError, match=complaint) as caught:
        meme_templates.read_boxes_file(path)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


def test_a_boxes_file_that_is_a_device_or_huge_is_refused_unread(tmp_path):
    with pytest.raises(UsageError, match="/dev/zero: boxes file cannot be read"):
        meme_templates.read_boxes_file(Path("/dev/zero"))
    huge = write_boxes(tmp_path, "- {x: 0, y: 0, width: 1, height: 1}\n" + "#" * 2_000_000)
    with pytest.raises(UsageError, match="boxes file is 2,000,03[0-9] bytes, over 1,048,576"):
        meme_templates.read_boxes_file(huge)

def test_template_names_are_checked():
    assert meme_templates.check_name(" two-cats ") == "two-cats"
    for bad in ("", "Two Cats", "a/b", "x" * 61, "émoji"):
        with pytest.raises(UsageError, match="template name"):
            meme_templates.check_name(bad)


def test_preview_outlines_and_numbers_every_box():
    template = meme_templates.starter("astronaut-four")
    data = meme_templates.preview_png(template.image, template.boxes)
    import io

    with Image.open(io.BytesIO(data)) as picture, Image.open(template.image) as plain:
        changed = ImageChops.difference(picture.convert("RGB"), plain.convert("RGB"))
        w, h = picture.size
        for b in template.boxes[:3]:  # each box's corner is outlined in yellow
            x, y = round(b.x * w), round(b.y * h)
            assert changed.crop((x - 3, y - 3, x + 30, y + 30)).getbbox() is not None
        assert changed.crop((w // 3, h // 3, 2 * w // 3, 2 * h // 3)).getbbox() is None

"""The rendition engine, checked on real image files made in tmp_path."""

from __future__ import annotations

import hashlib
import io
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat, JpegImagePlugin

from pipeline import config as configuration
from pipeline import imaging
from pipeline.errors import RenderError
from pipeline.imaging import (
    RenderFailure,
    RenderJob,
    RenderResult,
    plan_rendition,
    render_many,
    render_meme,
)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
ALL_FORMATS = {
    "j": {"width": 400, "format": "jpeg", "watermark": False},
    "w": {"width": 400, "format": "webp", "watermark": False},
    "p": {"width": 400, "format": "png", "watermark": False},
    "g": {"width": 400, "format": "gif", "watermark": False},
    "a": {"width": 400, "format": "avif", "watermark": False},
}


def make_config(tmp_path: Path, renditions=None, **extra):
    data = {"renditions": renditions or ALL_FORMATS, "watermark": False, **extra}
    return configuration.parse(data, root=tmp_path)


def render(path: Path, cfg, top: str = "", bottom: str = "", **kw) -> RenderResult:
    return render_meme(RenderJob(path.stem, path, top, bottom), cfg, **kw)


def opened(result: RenderResult, name: str) -> Image.Image:
    item = next(r for r in result.renditions if r.name == name)
    return Image.open(io.BytesIO(item.data))


def pixel(img: Image.Image, xy) -> tuple[int, ...]:
    return img.convert("RGB").getpixel(xy)


def close(a, b, tolerance: int = 12) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def srgb_swapped_profile() -> bytes:
    """A valid RGB matrix/TRC ICC profile whose red and blue colorants are swapped versus sRGB:
    a pixel (255, 0, 0) tagged with it *means* sRGB blue."""
    d50 = (0.9642, 1.0, 0.8249)
    red, green, blue = (0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)

    def xyz(v):
        return b"XYZ \0\0\0\0" + b"".join(struct.pack(">i", round(c * 65536)) for c in v)

    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, int(2.2 * 256)) + b"\0\0"
    text = b"swapped rgb\0"
    desc = (
        b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + b"\0" * 8 + b"\0" * 3 + b"\0" * 67
    )
    tags = [
        (b"desc", desc), (b"wtpt", xyz(d50)), (b"rXYZ", xyz(blue)), (b"gXYZ", xyz(green)),
        (b"bXYZ", xyz(red)), (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve),
        (b"cprt", b"text\0\0\0\0public domain\0"),
    ]  # fmt: skip
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (
        struct.pack(">I", size) + b"\0" * 4 + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
        + b"\0" * 12 + b"acsp" + b"\0" * 24 + b"\0" * 4
        + b"".join(struct.pack(">i", round(c * 65536)) for c in d50) + b"\0" * 48
    )  # fmt: skip
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


# --- orientation and metadata ---------------------------------------------------------------


def phone_photo(path: Path) -> Path:
    """Raw pixels 300x400 (portrait) with Orientation=6, camera make/model, GPS, XMP, comment.
    Raw top half red, bottom half blue: displayed (rotated 90 degrees clockwise) red is right."""
    img = Image.new("RGB", (300, 400), (220, 20, 20))
    ImageDraw.Draw(img).rectangle((0, 200, 300, 400), fill=(20, 20, 220))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "SecretCamMake"
    exif[0x0110] = "SecretModel9"
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (52.0, 31.0, 12.0)
    img.save(
        path, "JPEG", quality=95, exif=exif, comment=b"secret comment",
        xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>SecretXMP</x:xmpmeta>",
        icc_profile=srgb_swapped_profile(),
    )  # fmt: skip
    return path


def test_orientation_applied_and_every_metadata_block_dropped(tmp_path):
    source = phone_photo(tmp_path / "phone.jpg")
    raw = source.read_bytes()
    assert b"SecretCamMake" in raw and b"SecretXMP" in raw and b"secret comment" in raw
    result = render(source, make_config(tmp_path))
    for item in result.renditions:
        img = Image.open(io.BytesIO(item.data))
        assert img.size == (400, 300), item.name  # 4:3 landscape
        assert (item.width, item.height) == img.size
        assert not dict(img.getexif()), item.name
        for key in ("exif", "xmp", "XML:com.adobe.xmp", "comment", "icc_profile"):
            assert key not in img.info, (item.name, key)
        for secret in (b"SecretCamMake", b"SecretModel9", b"SecretXMP", b"secret comment"):
            assert secret not in item.data, (item.name, secret)
        assert b"swapped rgb" not in item.data
        # Orientation 6 rotates clockwise: the raw top (red) is now the right half. The swapped
        # profile makes that "red" sRGB blue after conversion, the raw blue sRGB red.
        assert close(pixel(img, (390, 150)), (20, 20, 220), 40), item.name
        assert close(pixel(img, (10, 150)), (220, 20, 20), 40), item.name


def test_embedded_icc_profile_is_converted_to_srgb(tmp_path):
    source = tmp_path / "tagged.png"
    Image.new("RGB", (64, 64), (255, 0, 0)).save(source, icc_profile=srgb_swapped_profile())
    result = render(source, make_config(tmp_path))
    for name in ALL_FORMATS:
        assert close(pixel(opened(result, name), (32, 32)), (0, 0, 255), 20), name


def test_cmyk_and_inverted_adobe_cmyk_come_out_red(tmp_path):
    source = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (64, 64), (0, 255, 255, 0)).save(source, "JPEG", quality=95)
    assert b"Adobe" in source.read_bytes()  # Pillow writes Adobe (inverted) CMYK JPEGs
    tiff = tmp_path / "cmyk.tif"
    Image.new("CMYK", (64, 64), (0, 255, 255, 0)).save(tiff)
    for path in (source, tiff):
        result = render(path, make_config(tmp_path))
        for name in ALL_FORMATS:
            assert close(pixel(opened(result, name), (32, 32)), (255, 0, 0), 16), (path, name)


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    source = tmp_path / "deep.png"
    img = Image.new("I;16", (256, 8))
    for x in range(256):
        for y in range(8):
            img.putpixel((x, y), x * 257)
    img.save(source)
    out = opened(render(source, make_config(tmp_path)), "p")
    assert close(pixel(out, (128, 4)), (128, 128, 128), 3)
    assert close(pixel(out, (64, 4)), (64, 64, 64), 3)


def test_transparency_flattened_on_background_where_format_has_no_alpha(tmp_path):
    source = tmp_path / "sticker.png"
    img = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    ImageDraw.Draw(img).ellipse((50, 50, 150, 150), fill=(0, 200, 0, 255))
    img.save(source)
    result = render(source, make_config(tmp_path))
    jpeg = opened(result, "j")
    assert jpeg.mode == "RGB"
    assert close(pixel(jpeg, (5, 5)), (255, 255, 255), 3)  # white, never black
    assert close(pixel(jpeg, (100, 100)), (0, 200, 0), 16)
    for name in ("w", "p", "a"):
        kept = opened(result, name).convert("RGBA")
        assert kept.getpixel((5, 5))[3] == 0, name
        assert kept.getpixel((100, 100))[3] == 255, name
    dark = render(source, make_config(tmp_path, background="#102030"))
    assert close(pixel(opened(dark, "j"), (5, 5)), (0x10, 0x20, 0x30), 6)


def test_palette_image_with_transparency_keeps_it(tmp_path):
    source = tmp_path / "pal.gif"
    img = Image.new("P", (50, 50), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    ImageDraw.Draw(img).rectangle((20, 20, 30, 30), fill=1)
    img.save(source, transparency=0)
    png = opened(render(source, make_config(tmp_path)), "p").convert("RGBA")
    assert png.getpixel((2, 2))[3] == 0
    assert png.getpixel((25, 25)) == (0, 0, 255, 255)


# --- animation ------------------------------------------------------------------------------

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
DURATIONS = [100, 200, 300, 400]


def animation(path: Path, fmt: str) -> Path:
    frames = []
    for i, colour in enumerate(COLOURS):
        frame = Image.new("RGB", (500, 300), colour)
        ImageDraw.Draw(frame).rectangle((i * 100, 100, i * 100 + 80, 200), fill=(0, 0, 0))
        frames.append(frame)
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:], duration=DURATIONS, loop=0)
    return path


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animation_stays_animated_with_durations_and_loop(tmp_path, fmt):
    source = animation(tmp_path / f"anim.{fmt.lower()}", fmt)
    cfg = make_config(
        tmp_path,
        {
            "w": {"width": 250, "format": "webp"},
            "g": {"width": 250, "format": "gif"},
            "j": {"width": 250, "format": "jpeg"},
        },
        watermark={"text": "@memes", "min_width": 100, "opacity": 1.0},
    )
    result = render(source, cfg)
    for name in ("w", "g"):
        item = next(r for r in result.renditions if r.name == name)
        assert item.animated
        img = Image.open(io.BytesIO(item.data))
        assert img.n_frames == 4 and img.size == (250, 150)
        assert img.info.get("loop") == 0
        durations = []
        for index in range(4):
            img.seek(index)
            img.load()  # WebP sets the frame's duration on load
            durations.append(img.info["duration"])
            frame = img.convert("RGB")
            assert close(pixel(frame, (240, 10)), COLOURS[index], 40), (name, index)
            assert close(pixel(frame, (index * 50 + 20, 75)), (0, 0, 0), 40), (name, index)
            # the watermark is on every frame: the bottom-right corner is not the plain colour
            corner = frame.crop((150, 130, 250, 150))
            assert ImageStat.Stat(corner).extrema != [(c, c) for c in COLOURS[index]]
        assert durations == DURATIONS, name
    still = opened(result, "j")
    assert not getattr(still, "is_animated", False)
    assert close(pixel(still, (240, 10)), COLOURS[0], 30)


def test_an_opaque_animation_is_worked_on_in_rgb_each_frame_resized_once_per_geometry(
    tmp_path, monkeypatch
):
    """Issue 14: no RGBA round trips for an animation without transparency (frames decoded,
    resized, marked and encoded as RGB), each frame resized once per geometry, and renditions
    of one geometry and format (the same bytes) encoded once."""
    source = animation(tmp_path / "anim.gif", "GIF")  # 500x300, 4 opaque frames
    cfg = make_config(
        tmp_path,
        {
            "big": {"width": 1600, "format": "webp", "quality": 80},  # 500 wide: not upscaled
            "mid": {"width": 800, "format": "webp", "quality": 80},  # the same 500x300
            "small": {"width": 250, "format": "webp", "quality": 80},
        },
        watermark={"text": "@memes", "min_width": 100},
    )
    rgba, resizes, encodes = [], [], []
    real_convert, real_resample, real_encode = (
        Image.Image.convert,
        imaging._resample,
        imaging._encode,
    )

    def convert(self, mode=None, *args, **kwargs):
        if mode in ("RGBA", "RGBa") and self.size in ((500, 300), (250, 150)):
            rgba.append((self.mode, self.size))
        return real_convert(self, mode, *args, **kwargs)

    def resample(img, size, *args, **kwargs):
        resizes.append((img.size, tuple(size)))
        return real_resample(img, size, *args, **kwargs)

    def encode(frames, spec, anim):
        encodes.append((spec.name, len(frames), frames[0].mode))
        return real_encode(frames, spec, anim)

    monkeypatch.setattr(Image.Image, "convert", convert)
    monkeypatch.setattr(imaging, "_resample", resample)
    monkeypatch.setattr(imaging, "_encode", encode)
    result = render(source, cfg)
    assert rgba == []
    assert resizes.count(((500, 300), (250, 150))) == 4  # once per frame, for "small" only
    assert encodes == [("big", 4, "RGB"), ("small", 4, "RGB")]
    made = {r.name: r for r in result.renditions}
    assert made["big"].data == made["mid"].data and made["big"].animated
    for item in result.renditions:
        img = Image.open(io.BytesIO(item.data))
        assert img.n_frames == 4 and img.info.get("loop") == 0 and not img.getexif()
        durations = []
        for index in range(4):
            img.seek(index)
            img.load()
            durations.append(img.info["duration"])
        assert durations == DURATIONS


def test_a_transparent_animation_keeps_its_transparency_in_every_frame(tmp_path):
    source = tmp_path / "ghost.gif"
    frames = []
    for i in range(3):
        frame = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
        frame.paste((200, 40 * i, 40, 255), (60 * i, 50, 60 * i + 80, 150))
        frames.append(frame)
    frames[0].save(source, save_all=True, append_images=frames[1:], duration=70, loop=0,
                   disposal=2)  # fmt: skip
    cfg = make_config(tmp_path, {"w": {"width": 150, "format": "webp"},
                                 "g": {"width": 150, "format": "gif"}})  # fmt: skip
    for item in render(source, cfg).renditions:
        img = Image.open(io.BytesIO(item.data))
        assert img.n_frames == 3, item.name
        for index in range(3):
            img.seek(index)
            frame = img.convert("RGBA")
            assert frame.getpixel((145, 5))[3] == 0, (item.name, index)  # clear corner
            x = 30 * index + 20
            assert frame.getpixel((x, 50))[3] == 255, (item.name, index)  # the moving block


# --- geometry -------------------------------------------------------------------------------


def test_never_upscaled(tmp_path):
    source = tmp_path / "small.png"
    Image.new("RGB", (200, 100), (90, 90, 90)).save(source)
    cfg = make_config(
        tmp_path,
        {
            "big": {"width": 1200, "format": "png", "watermark": False},
            "og": {"width": 1200, "height": 630, "fit": "cover", "format": "jpeg"},
            "sq": {"width": 1080, "height": 1080, "fit": "pad", "format": "jpeg"},
        },
    )
    sizes = {r.name: (r.width, r.height) for r in render(source, cfg).renditions}
    assert sizes["big"] == (200, 100)
    assert sizes["og"] == (190, 100)  # the 1200x630 shape, shrunk until the image fills it
    assert sizes["sq"] == (200, 200)  # the image at its own size, padded to the square shape


def test_max_height_limits_tall_screenshots_separately_from_width(tmp_path):
    source = tmp_path / "tall.png"
    Image.new("RGB", (1000, 8000), (10, 10, 10)).save(source)
    cfg = make_config(
        tmp_path,
        {
            "capped": {"width": 600, "max_height": 1000, "format": "png"},
            "wide": {"width": 600, "format": "png"},
        },
    )
    sizes = {r.name: (r.width, r.height) for r in render(source, cfg).renditions}
    assert sizes["capped"] == (125, 1000)
    assert sizes["wide"] == (600, 4800)


def test_cover_crop_keeps_the_interesting_region(tmp_path):
    source = tmp_path / "subject_left.png"
    img = Image.new("RGB", (900, 300), (128, 128, 128))
    draw = ImageDraw.Draw(img)
    for x in range(20, 260, 20):  # a busy, colourful subject near the left edge
        for y in range(20, 280, 20):
            draw.rectangle((x, y, x + 9, y + 9), fill=(255, (x * 3) % 256, 0))
    img.save(source)
    cfg = make_config(tmp_path, {"sq": {"width": 300, "height": 300, "fit": "cover"}})
    out = opened(render(source, cfg), "sq").convert("RGB")
    assert out.size == (300, 300)
    assert ImageStat.Stat(out).stddev[0] > 30  # the checkerboard, not flat grey
    assert close(pixel(out, (295, 150)), (128, 128, 128), 10)  # and it starts at the left


def test_pad_with_colour_and_with_blurred_copy(tmp_path):
    source = tmp_path / "wide.png"
    Image.new("RGB", (400, 200), (250, 200, 40)).save(source)
    cfg = make_config(
        tmp_path,
        {
            "green": {"width": 300, "height": 300, "fit": "pad", "pad_color": "#00ff00"},
            "blur": {"width": 300, "height": 300, "fit": "pad", "format": "png"},
        },
    )
    result = render(source, cfg)
    green = opened(result, "green")
    assert green.size == (300, 300)
    assert close(pixel(green, (150, 10)), (0, 255, 0), 20)
    assert close(pixel(green, (150, 150)), (250, 200, 40), 20)
    blur = opened(result, "blur")
    band, centre = pixel(blur, (150, 10)), pixel(blur, (150, 150))
    assert close(centre, (250, 200, 40), 4)
    assert all(b < c for b, c in zip(band, centre, strict=True) if c > 0)  # darkened copy
    assert band[0] > band[2]  # and a copy of the image's colour, not a flat grey


def test_degenerate_sizes_render(tmp_path):
    dot = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (1, 2, 3)).save(dot)
    strip = tmp_path / "strip.jpg"
    Image.new("RGB", (8000, 200), (200, 100, 50)).save(strip)
    cfg = configuration.parse({}, root=tmp_path)  # the default renditions, watermark on
    for path in (dot, strip):
        result = render(path, cfg)
        for item in result.renditions:
            img = Image.open(io.BytesIO(item.data))
            assert img.size == (item.width, item.height)
            assert 1 <= item.width <= max(1200, 1) and item.width <= Image.open(path).width
    assert result.placeholder.color.startswith("#")


def test_plan_rendition_contract():
    spec = configuration.RenditionSpec(name="x", width=1200, height=630, fit="cover")
    plan = plan_rendition(spec, 4000, 3000)
    assert plan.out == (1200, 630) and plan.region == (4000, 2100)


# --- watermark ------------------------------------------------------------------------------


def test_watermark_marks_its_corner_and_not_the_opposite(tmp_path):
    source = tmp_path / "grey.png"
    Image.new("RGB", (800, 600), (128, 128, 128)).save(source)
    cfg = make_config(
        tmp_path,
        {
            "m": {"width": 800, "format": "png"},
            "off": {"width": 800, "format": "png", "watermark": False},
        },
        watermark={"text": "@memes", "position": "bottom-right"},
    )
    result = render(source, cfg)
    marked, plain = opened(result, "m").convert("RGB"), opened(result, "off").convert("RGB")
    grey = Image.new("RGB", (200, 150), (128, 128, 128))
    assert ImageChops.difference(marked.crop((600, 450, 800, 600)), grey).getbbox() is not None
    assert ImageChops.difference(marked.crop((0, 0, 200, 150)), grey).getbbox() is None
    assert ImageChops.difference(plain, Image.new("RGB", (800, 600), (128,) * 3)).getbbox() is None


def test_watermark_logo_and_min_width(tmp_path):
    logo = tmp_path / "logo.png"
    mark = Image.new("RGBA", (100, 50), (0, 0, 0, 0))
    ImageDraw.Draw(mark).rectangle((10, 10, 90, 40), fill=(255, 0, 0, 255))
    mark.save(logo)
    source = tmp_path / "grey.png"
    Image.new("RGB", (800, 600), (128, 128, 128)).save(source)
    cfg = make_config(
        tmp_path,
        {"big": {"width": 800, "format": "png"}, "small": {"width": 300, "format": "png"}},
        watermark={"image": "logo.png", "position": "top-left", "opacity": 1.0, "min_width": 400},
    )
    result = render(source, cfg)
    big = opened(result, "big").convert("RGB")
    reds = [pixel(big, (x, y)) for x in range(16, 80) for y in range(16, 40)]
    assert any(close(p, (255, 0, 0), 30) for p in reds)
    small = opened(result, "small").convert("RGB")
    assert ImageStat.Stat(small).extrema == [(128, 128)] * 3  # under min_width: no mark


def test_invisible_watermark_is_an_error(tmp_path):
    logo = tmp_path / "blank.png"
    Image.new("RGBA", (100, 50), (0, 0, 0, 0)).save(logo)
    source = tmp_path / "grey.png"
    Image.new("RGB", (800, 600), (128, 128, 128)).save(source)
    cfg = make_config(tmp_path, {"m": {"width": 800}}, watermark={"image": "blank.png"})
    with pytest.raises(RenderError, match=r"^grey: watermark not visible"):
        render(source, cfg)


# --- encoder settings ------------------------------------------------------------------------


def test_renditions_are_encoded_with_what_encoder_options_says(tmp_path, monkeypatch):
    """The encoder settings live in one place (bench/render.py gives the same to every engine
    it times, so they must be the ones the engine really uses)."""
    still = tmp_path / "photo.png"
    Image.open(SAMPLES / "chelsea.png").convert("RGB").save(still)
    moving = animation(tmp_path / "anim.gif", "GIF")
    cfg = make_config(
        tmp_path,
        {
            "j": {"width": 300, "format": "jpeg", "quality": 85},
            "w": {"width": 300, "format": "webp", "quality": 80},
        },
    )

    def made(path: Path) -> dict[str, bytes]:
        return {r.name: r.data for r in render(path, cfg).renditions}

    before_still, before_moving = made(still), made(moving)
    assert not Image.open(io.BytesIO(before_still["j"])).info.get("progressive")
    monkeypatch.setitem(imaging.JPEG_OPTIONS, "progressive", True)
    monkeypatch.setitem(imaging.WEBP_STILL_OPTIONS, "method", 0)
    monkeypatch.setitem(imaging.WEBP_ANIMATED_OPTIONS, "method", 6)
    after_still, after_moving = made(still), made(moving)
    assert Image.open(io.BytesIO(after_still["j"])).info.get("progressive")
    assert after_still["w"] != before_still["w"]
    assert after_moving["w"] != before_moving["w"]
    assert imaging.encoder_options("webp", 80, animated=True)["method"] == 6


# --- determinism, cache, pool ---------------------------------------------------------------


def test_same_inputs_give_same_bytes_in_process_and_in_pool(tmp_path):
    source = phone_photo(tmp_path / "phone.jpg")
    cfg = configuration.parse({}, root=tmp_path)
    first = render(source, cfg, "same", "bytes")
    second = render(source, cfg, "same", "bytes")
    assert [r.data for r in first.renditions] == [r.data for r in second.renditions]
    assert first.placeholder == second.placeholder
    results, failures = render_many(
        [RenderJob("phone", source, "same", "bytes")] * 2, cfg, workers=2
    )
    assert not failures
    for result in results:
        assert [r.data for r in result.renditions] == [r.data for r in first.renditions]


def test_cache_hit_returns_identical_bytes_without_rendering(tmp_path):
    source = tmp_path / "orig.png"
    Image.open(SAMPLES / "chelsea.png").save(source)
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    cfg = configuration.parse({}, root=tmp_path)
    cache = tmp_path / "cache"
    job = RenderJob("cat", source, "cached", "", sha256=sha)
    fresh = render_meme(job, cfg, cache_dir=cache)
    assert not list(cache.rglob(".tmp-*"))  # atomic writes leave no temporaries
    # The original now cannot be decoded: only a cache hit can still answer.
    source.write_bytes(b"not an image any more")
    hit = render_meme(job, cfg, cache_dir=cache)
    assert [r.data for r in hit.renditions] == [r.data for r in fresh.renditions]
    assert hit.placeholder == fresh.placeholder
    with pytest.raises(RenderError, match="^cat: cannot read image"):
        render_meme(job, cfg)  # no cache: it really re-renders
    # A different caption is a different key: a miss, and so an error here.
    with pytest.raises(RenderError):
        render_meme(RenderJob("cat", source, "other", "", sha256=sha), cfg, cache_dir=cache)


def test_render_many_reports_corrupt_original_by_slug_and_renders_the_rest(tmp_path):
    good = tmp_path / "good.png"
    Image.new("RGB", (300, 200), (30, 60, 90)).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(good.read_bytes()[:100])
    jobs = [RenderJob("one", good), RenderJob("broken", bad), RenderJob("two", good)]
    ticks = []
    results, failures = render_many(jobs, make_config(tmp_path), workers=2, progress=ticks.append)
    assert [r.slug for r in results] == ["one", "two"]
    assert failures == [failures[0]] and isinstance(failures[0], RenderFailure)
    assert failures[0].slug == "broken" and "bad.jpg" in failures[0].reason
    assert sum(ticks) == 3
    results, failures = render_many(jobs, make_config(tmp_path), workers=1)
    assert [r.slug for r in results] == ["one", "two"] and failures[0].slug == "broken"


def test_caption_is_on_every_rendition(tmp_path):
    source = tmp_path / "plain.png"
    Image.new("RGB", (900, 600), (60, 120, 180)).save(source)
    cfg = configuration.parse({"watermark": False}, root=tmp_path)
    result = render(source, cfg, "TOP TEXT", "BOTTOM TEXT")
    for item in result.renditions:
        img = Image.open(io.BytesIO(item.data)).convert("RGB")
        low, high = ImageStat.Stat(img).extrema[1]  # green: 120 in the image, 66 in pad bands
        assert high > 230, item.name  # white letters
        assert low < 30, item.name  # black outline


def test_placeholder_colour_and_blurhash(tmp_path):
    source = tmp_path / "red.png"
    img = Image.new("RGB", (200, 100), (200, 30, 30))
    ImageDraw.Draw(img).rectangle((0, 0, 30, 30), fill=(0, 0, 255))
    img.save(source)
    result = render(source, make_config(tmp_path))
    assert close(bytes.fromhex(result.placeholder.color[1:]), (200, 30, 30), 6)
    assert len(result.placeholder.blurhash) == 4 + 2 * 4 * 3  # 4x3 components


def test_peak_memory_for_a_50_megapixel_jpeg(tmp_path):
    """Peak RSS (VmHWM) of a fresh process rendering the default set from a 50 MP JPEG: < 400 MB."""
    source = tmp_path / "huge.jpg"
    Image.radial_gradient("L").resize((8660, 5774)).convert("RGB").save(source, quality=80)
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from pipeline import config
        from pipeline.imaging import RenderJob, render_meme
        cfg = config.parse({{}}, root=Path({str(tmp_path)!r}))
        render_meme(RenderJob("huge", Path({str(source)!r}), "big", "photo"), cfg)
        # VmHWM, not ru_maxrss: Linux carries the parent's peak into ru_maxrss across exec.
        status = Path("/proc/self/status").read_text()
        print(next(l.split()[1] for l in status.splitlines() if l.startswith("VmHWM:")))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    peak_mb = int(out.stdout.split()[-1]) / 1024
    assert peak_mb < 400, peak_mb


def test_heic_original_renders_like_any_photo(tmp_path):
    import pillow_heif

    pillow_heif.register_heif_opener()
    path = tmp_path / "phone.heic"
    img = Image.new("RGB", (600, 400), (30, 160, 60))
    img.save(path, format="HEIF", quality=90)
    result = render(path, make_config(tmp_path))
    with opened(result, "j") as out:
        assert out.size == (400, 267)
        r, g, b = out.convert("RGB").getpixel((10, 10))
        assert g > 120 and r < 80 and b < 100


def test_watermark_keeps_off_the_bottom_caption(tmp_path):
    from pipeline import overlay

    path = tmp_path / "plain.png"
    Image.new("RGB", (800, 600), (120, 120, 120)).save(path)
    spec = {"w": {"width": 800, "format": "png"}}
    mark = {"text": "@Mark", "position": "bottom-right", "size": 0.05, "min_width": 100}
    words = "A BOTTOM CAPTION AS WIDE AS THE IMAGE ITSELF"
    with_mark = opened(render(path, make_config(tmp_path, spec, watermark=mark), bottom=words), "w")
    without = opened(render(path, make_config(tmp_path, spec), bottom=words), "w")
    x0, _, _, y1 = ImageChops.difference(with_mark.convert("RGB"), without.convert("RGB")).getbbox()
    cfg = make_config(tmp_path, spec)
    [caption] = overlay.caption_boxes(overlay.layout(800, 600, ("", words), cfg.overlay), 800, 600)
    assert y1 <= caption[1]  # the mark ends above the words
    assert x0 > 400  # and stays in its corner's column


def _white(img: Image.Image) -> int:
    """How many pixels are near white (the letters' fill; the test images have none)."""
    r, g, b = (c.point(lambda v: 255 if v > 235 else 0) for c in img.convert("RGB").split())
    return ImageChops.darker(ImageChops.darker(r, g), b).histogram()[255]


def test_cover_renditions_keep_top_and_bottom_text_whole(tmp_path):
    """Issue 11: og and landscape of a two-line meme kept only the middle (no punchline)."""
    source = tmp_path / "tall.png"
    Image.new("RGB", (1080, 1350), (60, 120, 180)).save(source)
    cfg = configuration.parse({"watermark": False}, root=tmp_path)  # the default renditions
    result = render(source, cfg, "WHEN THE EDITOR SAYS", "SHIP IT ANYWAY")
    for name in ("og", "landscape"):
        out = opened(result, name).convert("RGB")
        w, h = out.size
        assert _white(out.crop((0, 0, w, h // 5))) > 100, name  # the top text
        assert _white(out.crop((0, h - h // 5, w, h))) > 100, name  # the bottom text
        # No window of this shape holds both: padded, and the bands show no ghost of the words.
        band = out.crop((0, 0, w // 6, h))
        assert _white(band) == 0 and max(hi - lo for lo, hi in band.getextrema()) <= 6, name


def test_cover_crop_moves_its_window_to_keep_one_text(tmp_path):
    source = tmp_path / "tall.png"
    img = Image.new("RGB", (1080, 1350), (60, 120, 180))
    for y in range(900, 1340, 20):  # a busy, colourful subject low in the picture
        ImageDraw.Draw(img).rectangle((100, y, 980, y + 9), fill=(250, 30, 30))
    img.save(source)
    cfg = configuration.parse({"watermark": False}, root=tmp_path)
    out = opened(render(source, cfg, "ONLY A TOP LINE"), "og").convert("RGB")
    w, h = out.size
    assert (w, h) == (1080, 567)  # og's shape, never upscaled
    assert _white(out.crop((0, 0, w, h // 5))) > 100  # the words, at the top
    # A crop, not a pad: the image fills the frame edge to edge.
    assert close(pixel(out, (2, h // 2)), (60, 120, 180), 12)
    assert close(pixel(out, (w - 3, h // 2)), (60, 120, 180), 12)


def test_pad_bands_are_made_from_the_image_before_its_text(tmp_path):
    """Issue 11: the blurred pad bands showed a ghost of the caption."""
    source = tmp_path / "wide.png"
    Image.new("RGB", (1600, 900), (60, 120, 180)).save(source)
    cfg = make_config(tmp_path, {"sq": {"width": 600, "height": 600, "fit": "pad"}})
    out = opened(render(source, cfg, "A TOP TEXT AS WIDE AS THE IMAGE", "AND A BOTTOM ONE"), "sq")
    out = out.convert("RGB")
    for band in (out.crop((0, 0, 600, 120)), out.crop((0, 480, 600, 600))):
        assert max(hi - lo for lo, hi in band.getextrema()) <= 6  # flat: no blurred words


def test_pad_bands_show_through_where_the_padded_image_is_transparent(tmp_path):
    """The bands are painted only around opaque content; under content with transparent
    pixels the whole blurred canvas is made, so no unpainted hole shows through them."""
    source = tmp_path / "half.png"
    img = Image.new("RGBA", (400, 200), (40, 90, 250, 96))  # the left half see-through blue
    img.paste((250, 200, 40, 255), (200, 0, 400, 200))
    img.save(source)
    cfg = make_config(
        tmp_path, {"sq": {"width": 300, "height": 300, "fit": "pad", "format": "png"}}
    )
    out = opened(render(source, cfg), "sq").convert("RGBA")
    band, under = pixel(out, (40, 20)), pixel(out, (40, 150))  # above / in the content
    a = 96 / 255  # the blue laid over the same blurred, darkened canvas the band shows
    assert close(
        under,
        tuple(round(a * c + (1 - a) * b) for c, b in zip((40, 90, 250), band, strict=True)),
        4,
    )


def test_an_animation_over_the_memory_budget_is_refused_naming_the_figures(tmp_path):
    """Every frame of every animated rendition is held at once: over ANIMATION_BUDGET pixels
    the meme is refused with the figures, before the frames held pass the budget."""
    from pipeline import imaging

    source = animation(tmp_path / "anim.gif", "GIF")  # 4 frames
    specs = {"w": {"width": 250, "format": "webp"}, "g": {"width": 250, "format": "gif"}}
    cfg = make_config(tmp_path, specs)
    held = 4 * 2 * 250 * 150
    assert held <= imaging.ANIMATION_BUDGET
    assert [r.animated for r in render(source, cfg).renditions] == [True, True]
    budget = imaging.ANIMATION_BUDGET
    try:
        imaging.ANIMATION_BUDGET = held - 1
        with pytest.raises(RenderError) as refused:
            render(source, cfg)
    finally:
        imaging.ANIMATION_BUDGET = budget
    assert str(refused.value) == (
        f"anim: animation too large: 4 frames x 2 renditions = {held:,} pixels held, over the "
        f"{held - 1:,} budget"
    )


def test_a_render_worker_killed_mid_batch_fails_its_memes_not_the_batch(tmp_path):
    """A worker killed (the OOM killer, kill -9) breaks the pool: every meme not finished is
    reported as failed with the reason, nothing raises, and no worker is left running."""
    import os
    import signal
    import threading
    import time

    from processes import children_of, wait_until_gone

    source = tmp_path / "big.jpg"
    Image.open(SAMPLES / "chelsea.png").convert("RGB").resize((3000, 2000)).save(source)
    jobs = [RenderJob(f"m{i}", source, f"TOP {i}", "") for i in range(8)]
    cfg = configuration.parse({}, root=tmp_path)  # six renditions each: seconds per meme
    killed: list[int] = []

    def render_workers() -> list[int]:  # not the resource tracker spawn also starts
        return [pid for pid in children_of(os.getpid())
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]  # fmt: skip

    def kill_a_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            workers = render_workers()
            if workers:
                time.sleep(1)  # let it start on a job
                os.kill(workers[0], signal.SIGKILL)
                killed.append(workers[0])
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    try:
        results, failures = render_many(jobs, cfg, workers=2)
    finally:
        killer.join()
    assert killed
    assert len(results) + len(failures) == len(jobs)
    assert failures
    assert {f.reason for f in failures} == {"render worker died (out of memory or killed)"}
    assert {r.slug for r in results} | {f.slug for f in failures} == {j.slug for j in jobs}
    assert wait_until_gone(render_workers(), timeout=30) == []


# --- planning: shared pixels, one decode, widths from the previous ---------------------------

WIDTHS_TWICE = {
    f"w{width}-{fmt}": {"width": width, "format": fmt, "quality": 85, "watermark": width > 320}
    for width in (1600, 800, 320)
    for fmt in ("webp", "jpeg")
}


def test_renditions_sharing_a_geometry_are_made_once_each_from_the_larger(tmp_path, monkeypatch):
    """Issue 14: 6 renditions of 3 widths are 3 resizes (not 6), largest first, each from the
    previous width's clean pixels; a JPEG is decoded once, at the reduction the largest allows;
    the watermark tile is made once per size."""
    source = tmp_path / "photo.jpg"
    Image.open(SAMPLES / "chelsea.png").convert("RGB").resize((4000, 3000)).save(source)
    cfg = configuration.parse({"renditions": WIDTHS_TWICE}, root=tmp_path)
    resizes, decodes = [], []
    real_resample, real_draft = imaging._resample, JpegImagePlugin.JpegImageFile.draft

    def resample(img, size, *args, **kwargs):
        if size[0] >= 320:  # renditions, not the placeholder's small copy
            resizes.append((img.size, tuple(size)))
        return real_resample(img, size, *args, **kwargs)

    def draft(self, mode, size):
        decodes.append(size)
        return real_draft(self, mode, size)

    monkeypatch.setattr(imaging, "_resample", resample)
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", draft)
    imaging._mark_tile.cache_clear()
    result = render(source, cfg)
    assert [(r.name, r.width) for r in result.renditions] == [
        (name, int(name[1:].split("-")[0])) for name in WIDTHS_TWICE
    ]
    assert resizes == [((2000, 1500), (1600, 1200)), ((1600, 1200), (800, 600)),
                       ((800, 600), (320, 240))]  # fmt: skip
    assert decodes == [(2000, 1500)]
    assert imaging._mark_tile.cache_info().misses == 2  # 1600 and 800 wide: one tile each


@pytest.mark.parametrize("exif_after_pixels", [False, True])
def test_a_png_is_decoded_once_and_its_orientation_applied(
    tmp_path, monkeypatch, exif_after_pixels
):
    """Pillow reads a PNG's EXIF by decoding it (the chunk may follow the pixels); that decode
    is the one the renditions are made from, not a second one. Without a cache the original is
    not hashed either."""
    from PIL import ImageFile, PngImagePlugin

    source = tmp_path / "shot.png"
    img = Image.new("RGB", (300, 200), (200, 30, 30))
    ImageDraw.Draw(img).rectangle((0, 0, 149, 199), fill=(30, 30, 200))  # raw left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise: the raw left half on top
    img.save(source, exif=exif)
    if exif_after_pixels:  # move the eXIf chunk after IDAT, where cameras and tools put it
        chunks, data = [], source.read_bytes()
        at = 8
        while at < len(data):
            length = int.from_bytes(data[at : at + 4], "big")
            chunks.append(data[at : at + 12 + length])
            at += 12 + length
        exif_chunk = next(c for c in chunks if c[4:8] == b"eXIf")
        chunks.remove(exif_chunk)
        chunks.insert(-1, exif_chunk)
        source.write_bytes(data[:8] + b"".join(chunks))
        assert "exif" not in Image.open(source).info
    cfg = make_config(tmp_path, {"a": {"width": 150, "format": "webp"},
                                 "b": {"width": 100, "format": "jpeg"}})  # fmt: skip
    decodes = []
    real_prepare = ImageFile.ImageFile.load_prepare

    def load_prepare(self):
        if isinstance(self, PngImagePlugin.PngImageFile):
            decodes.append(self.size)
        return real_prepare(self)

    def no_hash(path):
        raise AssertionError(f"{path} hashed without a cache")

    monkeypatch.setattr(ImageFile.ImageFile, "load_prepare", load_prepare)
    monkeypatch.setattr(imaging, "file_sha256", no_hash)
    result = render(source, cfg)
    assert decodes == [(300, 200)]
    for name, size in (("a", (150, 225)), ("b", (100, 150))):
        out = opened(result, name)
        assert out.size == size
        assert close(pixel(out, (size[0] // 2, 5)), (30, 30, 200), 40)  # blue on top
        assert close(pixel(out, (size[0] // 2, size[1] - 5)), (200, 30, 30), 40)


def test_cached_renditions_match_a_fresh_render_when_renditions_are_added(tmp_path):
    """Widths are made from each other, so a cache filled under one rendition set must not
    serve bytes a fresh render under another set would not make."""
    source = tmp_path / "photo.jpg"
    Image.open(SAMPLES / "chelsea.png").convert("RGB").resize((2400, 1600)).save(source)
    cache = tmp_path / "cache"
    small = {"w800-jpeg": WIDTHS_TWICE["w800-jpeg"]}
    render(source, configuration.parse({"renditions": small}, root=tmp_path), cache_dir=cache)
    both = configuration.parse({"renditions": WIDTHS_TWICE}, root=tmp_path)
    cached = render(source, both, cache_dir=cache)
    fresh = render(source, both)
    assert [r.sha256 for r in cached.renditions] == [r.sha256 for r in fresh.renditions]
    assert cached.placeholder == fresh.placeholder


@pytest.mark.parametrize(
    ("size", "box"),
    [((1600, 1067), None), ((333, 222), None), ((300, 300), (250.5, 10.25, 790.5, 550.25)),
     ((60, 40), None), ((40, 40), (100.0, 50.5, 1300.0, 1250.5))],
)  # fmt: skip
def test_renditions_are_resampled_with_lanczos3_like_pillows(size, box):
    """The engine resamples with fast_image_resize (SIMD); its pixels are Pillow's LANCZOS
    ones within rounding (2 levels), for a whole image and for a cover's fractional window,
    and, reducing 6x or more, Pillow's with reducing_gap=3 (box-averaged first)."""
    photo = Image.open(SAMPLES / "chelsea.png").convert("RGB").resize((2000, 1333))
    made = imaging._resample(photo, size, box)
    pillow = photo.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    assert made.mode == "RGB" and made.size == size
    diff = ImageChops.difference(made, pillow).convert("L")
    assert diff.getextrema()[1] <= 2
    assert ImageStat.Stat(diff).mean[0] < 0.5


def test_pad_bands_are_resampled_with_pillows_bicubic_kernel():
    """The blurred pad bands are enlarged with Catmull-Rom, Pillow's BICUBIC, also in SIMD."""
    small = Image.open(SAMPLES / "chelsea.png").convert("RGB").resize((60, 40))
    for size, box in (((1080, 240), None), ((500, 700), (5.5, 2.25, 30.5, 38.0))):
        made = imaging._resample(small, size, box, kernel="bicubic")
        pillow = small.resize(size, Image.Resampling.BICUBIC, box=box)
        assert ImageChops.difference(made, pillow).convert("L").getextrema()[1] <= 2


@pytest.mark.parametrize("size", [(100, 50), (20, 10)])  # (20, 10): box-averaged first
def test_transparent_pixels_lend_no_colour_when_resampled(size):
    """RGBA is resampled premultiplied (as Pillow does): the colour hidden under alpha 0 does
    not bleed into the visible edge, and alpha itself is resampled like Pillow's."""
    img = Image.new("RGBA", (400, 200), (255, 0, 0, 0))  # invisible red
    ImageDraw.Draw(img).rectangle((200, 0, 399, 199), fill=(0, 0, 255, 255))
    made = imaging._resample(img, size)
    pillow = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    assert made.mode == "RGBA"
    for x in range(size[0]):
        r, _, b, a = made.getpixel((x, size[1] // 2))
        if a >= 8:  # wherever a colour shows at all, it is the visible blue, not red
            assert r <= 2 and b >= 250, (x, made.getpixel((x, size[1] // 2)))
    assert ImageChops.difference(made.getchannel("A"), pillow.getchannel("A")).getextrema()[1] <= 2


def test_without_the_simd_resizer_pillow_resizes_alike(tmp_path, monkeypatch):
    """Where cykooz.resizer has no wheel (Linux on ARM, musl), Pillow resizes: a meme renders
    to the same sizes, its pixels within a few levels of the SIMD ones."""
    source = tmp_path / "photo.jpg"
    Image.open(SAMPLES / "chelsea.png").convert("RGB").resize((2400, 1600)).save(source)
    lossless = {  # PNG: the differences seen are the resizers', not an encoder's
        "contain": {"width": 1000, "format": "png"},
        "small": {"width": 300, "format": "png"},
        "cover": {"width": 500, "height": 500, "fit": "cover", "format": "png"},
        "pad": {"width": 700, "height": 900, "fit": "pad", "format": "png"},
    }
    cfg = configuration.parse({"renditions": lossless}, root=tmp_path)
    simd = render(source, cfg)
    monkeypatch.setattr(imaging, "_RESIZER", None)
    plain = render(source, cfg)
    assert imaging._resample(Image.new("RGB", (90, 60)), (30, 20)).size == (30, 20)
    for a, b in zip(simd.renditions, plain.renditions, strict=True):
        assert (a.name, a.width, a.height) == (b.name, b.width, b.height)
        x, y = Image.open(io.BytesIO(a.data)), Image.open(io.BytesIO(b.data))
        diff = ImageChops.difference(x.convert("RGB"), y.convert("RGB")).convert("L")
        assert ImageStat.Stat(diff).mean[0] < 0.5, a.name

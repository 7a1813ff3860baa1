"""The rendition engine: one original in, every configured rendition out as encoded bytes.

For each meme: EXIF orientation applied, colours converted to sRGB (ICC, CMYK, 16-bit,
palette), captions drawn (pipeline.overlay) before any resize so every rendition shows them,
then per rendition: resize (contain / cover around the most interesting region / pad on a
blurred copy or a colour), watermark, and encode with no metadata at all (no EXIF, GPS, XMP,
IPTC, comments or ICC; pixels are sRGB). Animated GIF/WebP stay animated for webp/gif output.

Speed: the still renditions of a meme are planned together. The original is decoded once
(a JPEG with DCT scaling, Image.draft, to the smallest power-of-two reduction that still covers
the largest rendition) and captioned; each scale the renditions need is made as the whole frame,
largest first, each from the previous one (Lanczos3, run with SIMD: _resample); renditions of one
geometry share their pixels (cut, padded and watermarked once, then encoded to each format);
a cover padded to keep a meme's texts whole is one of those scales; the blurred pad bands
come from one small copy of the image without its words, and only the bands are painted;
the watermark tile is made once per size. An animation's frames are decoded once, resized and
marked once per geometry, kept RGB unless they have transparent pixels, and renditions of one
geometry and encoder settings are encoded once.
So a rendition's bytes depend on the original, its spec, the geometries of the other
renditions (not their formats), the watermark and the caption: that is the render cache's key
(ENGINE_VERSION, original sha256, spec, all geometries, background, watermark settings + files,
caption + font settings). render_many spreads memes over a process pool.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import cast

import blurhash
from PIL import Image, ImageChops, ImageCms, ImageFilter, ImageOps

from pipeline import heif  # noqa: F401 - Pillow opens HEIC/HEIF originals
from pipeline import overlay as captions
from pipeline.config import Config, RenditionSpec, WatermarkConfig
from pipeline.errors import RenderError
from pipeline.files import write_atomic
from pipeline.overlay import Box
from pipeline.workers import process_pool

ENGINE_VERSION = "7"  # bump when output bytes change for the same inputs (invalidates caches)
ANIMATED_FORMATS = ("webp", "gif")
# The largest side each output format can encode (WebP's is a hard limit of the format).
FORMAT_MAX_SIDE = {"webp": 16383, "jpeg": 65535, "gif": 65535, "png": 2**31 - 1, "avif": 65535}
ALPHA_FORMATS = ("webp", "png", "gif", "avif")
# Frames x pixels of all animated renditions of one meme held in memory at once (RGBA, 4 bytes
# each): 60 M pixel-frames = 240 MB. Past it the meme fails with the numbers named.
ANIMATION_BUDGET = 60_000_000
PLACEHOLDER_SIZE = 64
_RESAMPLE = Image.Resampling.LANCZOS
_REDUCING_GAP = 3.0  # Image.reduce first, then LANCZOS: fast and indistinguishable
# Renditions are resampled by fast_image_resize (cykooz.resizer): the Lanczos3 convolution of
# Pillow's LANCZOS, with SIMD (AVX2, SSE4.1 or NEON, chosen at run time) where Pillow's is
# scalar. On the bench corpus it is 6-8x faster (2000x1500 -> 1600x1200: 8.6 ms against 54)
# and its pixels are within 2 levels of Pillow's; resizing was ~70 ms of a photo's 140 ms
# outside the encoders. It has wheels for x86-64 (Linux, macOS, Windows) and macOS arm64
# only (pyproject installs it there): elsewhere Pillow resizes, a little slower, alike.
try:
    import cykooz_resizer as simd
except ImportError:  # pragma: no cover - platforms without a wheel
    simd = None
_RESIZER = simd.Resizer() if simd else None
# kernel name -> (Pillow's filter, fast_image_resize's): Catmull-Rom is Pillow's BICUBIC
_KERNELS = {"lanczos": (Image.Resampling.LANCZOS, "lanczos3"),
            "bicubic": (Image.Resampling.BICUBIC, "catmull_rom")}  # fmt: skip
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    Image.DecompressionBombError,
)


# --- public records ------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedImage:
    """One encoded rendition."""

    name: str
    data: bytes
    width: int
    height: int
    content_type: str
    extension: str
    animated: bool

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Placeholder:
    color: str  # dominant colour, '#rrggbb'
    blurhash: str


@dataclass(frozen=True)
class RenderJob:
    """One meme to render; picklable. ``sha256`` (the catalog's hash of the original) spares
    re-reading a large original just to look up the cache; empty means hash the file."""

    slug: str
    original: Path
    top_text: str = ""
    bottom_text: str = ""
    sha256: str = ""
    texts: tuple[str, ...] = ()  # a template meme's box texts, in box order
    boxes: tuple[captions.TextBox, ...] | None = None  # its template's boxes (None: classic)

    @property
    def box_texts(self) -> tuple[str, ...]:
        return self.texts if self.boxes is not None else (self.top_text, self.bottom_text)


@dataclass(frozen=True)
class RenderResult:
    slug: str
    renditions: tuple[RenderedImage, ...]
    placeholder: Placeholder


@dataclass(frozen=True)
class RenderFailure:
    slug: str
    reason: str


# --- geometry -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """Where a rendition's pixels come from, in original (oriented) pixel units."""

    out: tuple[int, int]  # encoded size
    content: tuple[int, int]  # size of the image inside (== out except for pad)
    region: tuple[float, float]  # source region size used (cover crops; else the whole image)
    scale: float  # output pixels per source pixel


def plan_rendition(spec: RenditionSpec, width: int, height: int) -> _Plan:
    """Output geometry of ``spec`` for a width x height original. Never upscales: a box larger
    than the image shrinks, keeping its aspect ratio, until the image fills it."""
    if spec.height is None or spec.fit == "contain":
        limits = [1.0, spec.width / width]
        if spec.height is not None:
            limits.append(spec.height / height)
        if spec.max_height is not None:
            limits.append(spec.max_height / height)
        s = min(limits)
        size = (max(1, round(width * s)), max(1, round(height * s)))
        return _Plan(out=size, content=size, region=(width, height), scale=s)
    box_w, box_h = spec.width, spec.height
    if spec.fit == "cover":
        f = max(box_w / width, box_h / height)
        if f > 1:
            box_w, box_h = max(1, round(box_w / f)), max(1, round(box_h / f))
        s = max(box_w / width, box_h / height)
        region = (min(width, box_w / s), min(height, box_h / s))
        return _Plan(out=(box_w, box_h), content=(box_w, box_h), region=region, scale=s)
    f = min(box_w / width, box_h / height)  # pad
    if f > 1:
        box_w, box_h = max(1, round(box_w / f)), max(1, round(box_h / f))
        f = 1.0
    content = (min(box_w, max(1, round(width * f))), min(box_h, max(1, round(height * f))))
    return _Plan(out=(box_w, box_h), content=content, region=(width, height), scale=f)


def _reduction(plan: _Plan, jpeg: bool) -> int:
    """JPEG DCT-scaling factor (1, 2, 4 or 8) that still leaves >= the pixels the plan needs."""
    if not jpeg or plan.scale <= 0:
        return 1
    factor = 1
    while factor < 8 and plan.scale * factor * 2 <= 1:
        factor *= 2
    return factor


# --- decoding -------------------------------------------------------------------------------


_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def to_srgb(im: Image.Image, icc: bytes | None = None) -> Image.Image:
    """Any decoded image -> 8-bit sRGB "RGB" or "RGBA" (alpha kept only if used)."""
    icc = icc if icc is not None else im.info.get("icc_profile")
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        lo, hi = cast(tuple[int, int], im.getextrema()) if mode == "I" else (0, 65535)
        im = im.convert("I")
        if hi > 255 or mode != "I":  # 16-bit samples: scale, do not clip
            im = im.point(lambda v: v / 257)
        im = im.convert("L")
    elif mode == "F" or mode == "1":
        im = im.convert("L")
    elif mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("PA", "LA", "La", "RGBa"):
        im = im.convert("RGBA")
    elif mode in ("YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            if im.mode in ("CMYK", "L", "RGB", "RGBA"):
                out = "RGBA" if im.mode == "RGBA" else "RGB"
                im = ImageCms.profileToProfile(im, source, _SRGB, outputMode=out) or im
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken or mismatched profile: take the pixels as sRGB
    if im.mode == "RGBA":
        if im.getchannel("A").getextrema()[0] == 255:
            im = im.convert("RGB")
    elif im.mode != "RGB":
        im = im.convert("RGB")  # CMYK without a profile (Pillow reads Adobe-inverted JPEGs), L
    im.info = {}
    return im


class _Source:
    """An opened original: size, orientation, animation facts, and decoded bases on demand."""

    def __init__(self, path: Path):
        self.path = path
        self._bases: dict[int, Image.Image] = {}
        with Image.open(path) as im:
            self.format = im.format
            raw = im.size
            self.animated = bool(getattr(im, "is_animated", False))
            # Pillow finds a PNG's EXIF (orientation) only by decoding it, as the chunk may
            # follow the pixels: that decode is kept as the full-size base, not done twice.
            decoded = im.format == "PNG" and not self.animated and "exif" not in im.info
            if decoded:
                im.load()
            self.orientation = int(im.getexif().get(0x0112, 1) or 1)
            if decoded:
                self._bases[1] = self._orient(to_srgb(im, im.info.get("icc_profile")))
        if self.orientation in (5, 6, 7, 8):
            raw = (raw[1], raw[0])
        self.size: tuple[int, int] = raw

    @property
    def jpeg(self) -> bool:
        return self.format in ("JPEG", "MPO")

    @cached_property
    def frames(self) -> int:
        """How many frames. Counting a GIF's reads every frame's data (slowly, in Python):
        asked only when an animation is refused, not for every one rendered."""
        with Image.open(self.path) as im:
            return int(getattr(im, "n_frames", 1) or 1)

    def _orient(self, im: Image.Image) -> Image.Image:
        method = _TRANSPOSE.get(self.orientation)
        return im.transpose(method) if method is not None else im

    def base(self, factor: int) -> Image.Image:
        """The first frame in sRGB, oriented, reduced 1/factor by the JPEG decoder."""
        if factor not in self._bases:
            with Image.open(self.path) as im:
                if factor > 1 and self.jpeg:
                    w, h = im.size
                    mode = "RGB" if im.mode in ("RGB", "YCbCr") else im.mode
                    im.draft(mode, (max(1, w // factor), max(1, h // factor)))
                im.load()
                icc = im.info.get("icc_profile")
                self._bases[factor] = self._orient(to_srgb(im, icc))
        return self._bases[factor]

    def frames_iter(self) -> Iterator[tuple[Image.Image, int, int]]:
        """(frame in sRGB, oriented, duration ms, disposal) for every frame, decoded once; a
        frame is "RGBA" only if it has transparent pixels, else "RGB". The first frame is
        also the still base. Also sets self.loop (None for a GIF that plays once)."""
        with Image.open(self.path) as im:
            icc = im.info.get("icc_profile")
            self.loop = im.info.get("loop")
            for index in itertools.count():
                try:
                    im.seek(index)  # Pillow composites GIF/WebP frames on seek
                except EOFError:
                    return
                # to_srgb returns a frame of its own (never the file's, which the next seek
                # changes): a copy when there is nothing to convert.
                frame = im.convert("RGBA" if im.has_transparency_data else "RGB")
                frame = self._orient(to_srgb(frame, icc))
                duration = int(im.info.get("duration", 0) or 0)
                disposal = int(getattr(im, "disposal_method", 0) or 0)
                if index == 0:
                    self._bases.setdefault(1, frame)  # what base(1) would decode
                yield frame, duration, disposal


# --- rendition steps -------------------------------------------------------------------------


def _interest_origin(img: Image.Image, crop_w: float, crop_h: float) -> tuple[float, float]:
    """Top-left of the crop window with the most detail (edges + colour saturation).

    The free axis is scanned on a small copy; the window whose summed energy is highest wins,
    ties going to the one nearest the centre (a flat image crops in the middle).
    """
    w, h = img.size
    if crop_w >= w - 0.5 and crop_h >= h - 0.5:
        return 0.0, 0.0
    k = min(1.0, 256 / max(w, h))
    sw, sh = max(3, round(w * k)), max(3, round(h * k))
    small = img.convert("RGB").resize((sw, sh), Image.Resampling.BOX)
    edges = small.convert("L").filter(ImageFilter.FIND_EDGES)
    edges = ImageOps.expand(ImageOps.crop(edges, 1), 1, fill=0)  # filter borders are not edges
    saturation = small.convert("HSV").getchannel("S").point(lambda v: v // 3)
    energy = ImageChops.add(edges, saturation)
    horizontal = crop_w < w - 0.5
    length, window = (sw, crop_w * sw / w) if horizontal else (sh, crop_h * sh / h)
    profile = energy.resize((sw, 1) if horizontal else (1, sh), Image.Resampling.BOX)
    values = list(profile.tobytes())
    win = max(1, min(length, round(window)))
    prefix = [0]
    for v in values:
        prefix.append(prefix[-1] + v)
    centre = (length - win) / 2
    best = max(
        range(length - win + 1), key=lambda i: (prefix[i + win] - prefix[i], -abs(i - centre))
    )
    if horizontal:
        return min(max(0.0, best * w / sw), w - crop_w), max(0.0, (h - crop_h) / 2)
    return max(0.0, (w - crop_w) / 2), min(max(0.0, best * h / sh), h - crop_h)


@dataclass(frozen=True)
class _Geometry:
    """A plan resolved against one decoded base (base pixel units)."""

    plan: _Plan
    box: tuple[float, float, float, float]  # source box in the base


def _window(
    plan: _Plan, size: tuple[int, int], source_size: tuple[int, int]
) -> tuple[float, float]:
    """The size of the plan's crop window in a whole frame of ``size``."""
    k = size[0] / source_size[0]
    return min(size[0], plan.region[0] * k), min(size[1], plan.region[1] * k)


def _union(boxes: Sequence[Box], size: tuple[int, int]) -> Box:
    """The box round all of ``boxes``, clipped to a frame of ``size``."""
    return (max(0.0, min(b[0] for b in boxes)), max(0.0, min(b[1] for b in boxes)),
            min(float(size[0]), max(b[2] for b in boxes)),
            min(float(size[1]), max(b[3] for b in boxes)))  # fmt: skip


def _keeping_texts(
    plan: _Plan,
    spec: RenditionSpec,
    size: tuple[int, int],
    source_size: tuple[int, int],
    keep: Sequence[Box],
) -> _Plan:
    """``plan``, or the padded plan of ``spec`` when no crop window of the plan's shape in a
    whole frame of ``size`` holds every box in ``keep`` (the texts, in its pixels)."""
    rw, rh = _window(plan, size, source_size)
    if keep and (rw < size[0] - 0.5 or rh < size[1] - 0.5):
        ux0, uy0, ux1, uy1 = _union(keep, size)
        if ux1 - ux0 > rw + 0.5 or uy1 - uy0 > rh + 0.5:
            return plan_rendition(replace(spec, fit="pad"), *source_size)
    return plan


def _geometry(
    plan: _Plan,
    base: Image.Image,
    source_size: tuple[int, int],
    spec: RenditionSpec,
    keep: Sequence[Box] = (),
) -> _Geometry:
    """Where the rendition's pixels come from in ``base``. A cover crop keeps every box in
    ``keep`` (the texts, in base pixels) whole inside its window, moved as little as it must
    from the most interesting one; when no window of its shape holds them all, the rendition
    is padded instead, so no text is ever cut."""
    resolved = _keeping_texts(plan, spec, base.size, source_size, keep)
    if resolved != plan:
        return _Geometry(plan=resolved, box=(0.0, 0.0, float(base.width), float(base.height)))
    rw, rh = _window(plan, base.size, source_size)
    x0, y0 = _interest_origin(base, rw, rh)
    if keep and (rw < base.width - 0.5 or rh < base.height - 0.5):
        ux0, uy0, ux1, uy1 = _union(keep, base.size)
        x0 = min(max(0.0, base.width - rw), max(0.0, min(max(x0, ux1 - rw), ux0)))
        y0 = min(max(0.0, base.height - rh), max(0.0, min(max(y0, uy1 - rh), uy0)))
    return _Geometry(plan=plan, box=(x0, y0, x0 + rw, y0 + rh))


def _resample(
    img: Image.Image,
    size: tuple[int, int],
    box: tuple[float, float, float, float] | None = None,
    kernel: str = "lanczos",
) -> Image.Image:
    """``img`` (its ``box`` region, in its pixels, or all of it) resized to ``size`` with
    ``kernel`` (lanczos; bicubic for the blurred pad bands): a new image. RGBA is resized
    premultiplied, as Pillow does, so no colour bleeds from transparent pixels. A reduction
    of 6x or more is first box-averaged (Image.reduce) to within 3x of ``size``, as Pillow's
    reducing_gap does: a full Lanczos window over a 50 MP original costs more than the SIMD
    saves (8660 px wide to 64: 290 ms, not 93)."""
    pillow_filter, simd_filter = _KERNELS[kernel]
    if _RESIZER is None:
        return img.resize(size, pillow_filter, box=box, reducing_gap=_REDUCING_GAP)
    x0, y0, x1, y1 = box if box is not None else (0.0, 0.0, float(img.width), float(img.height))
    fx = max(1, int((x1 - x0) / size[0] / _REDUCING_GAP))
    fy = max(1, int((y1 - y0) / size[1] / _REDUCING_GAP))
    if fx > 1 or fy > 1:  # the box scaled exactly: a reduced edge pixel may average fewer
        img = (img.convert("RGBa") if img.mode == "RGBA" else img).reduce((fx, fy))
        box = (x0 / fx, y0 / fy, x1 / fx, y1 / fy)
    options = simd.ResizeOptions(
        resize_alg=simd.ResizeAlg.convolution(simd.FilterType[simd_filter])
    )
    if box is not None:
        x0, y0 = max(0.0, box[0]), max(0.0, box[1])
        x1, y1 = min(float(img.width), box[2]), min(float(img.height), box[3])
        options.crop_box = simd.CropBox(x0, y0, x1 - x0, y1 - y0)
    out = Image.new("RGBA" if img.mode == "RGBa" else img.mode, size)  # RGBa: premultiplied
    _RESIZER.resize_pil(img, out, options)
    return out


def _apply(
    geo: _Geometry, img: Image.Image, spec: RenditionSpec, backdrop: Image.Image | None = None
) -> Image.Image:
    """A rendition's pixels (a new image) from ``img``, the whole frame at any scale: the crop
    window cut out, resized unless ``img`` is already at the rendition's scale, then padded;
    pad bands come from ``backdrop`` (the image before its text was drawn, so no blurred ghost
    of the words shows in them; any scale), else from ``img``."""
    x0, y0, x1, y1 = geo.box
    if (round(x1 - x0), round(y1 - y0)) == geo.plan.content:
        left, top = round(x0), round(y0)
        content = img.crop((left, top, left + geo.plan.content[0], top + geo.plan.content[1]))
    else:
        content = _resample(img, geo.plan.content, geo.box)
    return _compose(content, img if backdrop is None else backdrop, geo.plan, spec)


def _compose(
    content: Image.Image, pad_source: Image.Image, plan: _Plan, spec: RenditionSpec
) -> Image.Image:
    """The resized content on its canvas: itself for contain and cover, centred on a colour or
    on a blurred, darkened copy of ``pad_source`` (the whole frame, any size) for pad."""
    if plan.content == plan.out:
        return content
    offset = ((plan.out[0] - plan.content[0]) // 2, (plan.out[1] - plan.content[1]) // 2)
    if spec.pad_color:
        canvas = Image.new("RGB", plan.out, spec.pad_color)
    else:  # under opaque content only the bands show: the hole is left unpainted
        hole = None if content.mode == "RGBA" else (*offset, *plan.content)
        canvas = _pad_canvas(pad_source, plan.out, hole)
    if content.mode == "RGBA":
        canvas = canvas.convert("RGBA")
    canvas.paste(content, offset, content if content.mode == "RGBA" else None)
    return canvas


_PAD_SHADE = 0.45  # how far the pad bands are darkened towards black
# Image.blend(band, black, _PAD_SHADE) as a lookup table (the same bytes, for the bands alone).
_PAD_DARKEN = (
    list(
        Image.blend(
            Image.frombytes("L", (256, 1), bytes(range(256))), Image.new("L", (256, 1)), _PAD_SHADE
        ).tobytes()
    )
    * 3
)


def _pad_canvas(
    img: Image.Image, out: tuple[int, int], hole: tuple[int, int, int, int] | None = None
) -> Image.Image:
    """A blurred, darkened copy of ``img`` filling a box of ``out``: the pad bands. With
    ``hole`` (x, y, width, height: where opaque content will be pasted) only the bands around
    it are painted; each is the very pixels the whole canvas would have there."""
    w, h = out
    f = max(w / img.width, h / img.height)
    small = img.convert("RGB").resize(
        (max(1, round(img.width * f / 8)), max(1, round(img.height * f / 8))),
        Image.Resampling.BOX,
        reducing_gap=_REDUCING_GAP,
    )
    sw, sh = small.size
    cw, ch = max(1, round(w / 8)), max(1, round(h / 8))
    small = small.crop(((sw - cw) // 2, (sh - ch) // 2, (sw - cw) // 2 + cw, (sh - ch) // 2 + ch))
    small = small.filter(ImageFilter.GaussianBlur(radius=max(1, min(cw, ch) / 30)))
    if hole is None:
        return _resample(small, out, kernel="bicubic").point(_PAD_DARKEN)
    x, y, hw, hh = hole
    bands = [(0, 0, w, y), (0, y + hh, w, h), (0, y, x, y + hh), (x + hw, y, w, y + hh)]
    canvas = Image.new("RGB", out)
    kx, ky = cw / w, ch / h
    for x0, y0, x1, y1 in bands:
        if x1 > x0 and y1 > y0:
            box = (x0 * kx, y0 * ky, x1 * kx, y1 * ky)
            band = _resample(small, (x1 - x0, y1 - y0), box, kernel="bicubic")
            canvas.paste(band.point(_PAD_DARKEN), (x0, y0))
    return canvas


def _pad_source(img: Image.Image, plans: Sequence[_Plan], size: tuple[int, int]) -> Image.Image:
    """``img`` (the whole frame, of an original of ``size``) reduced once, by a whole factor
    (Image.reduce: box averages), to no less than any pad band of ``plans`` can use: twice
    the 1/8 scale _pad_canvas blurs at."""
    f = max(max(p.out[0] / size[0], p.out[1] / size[1]) for p in plans) / 4
    n = math.floor(min(img.width / (size[0] * f), img.height / (size[1] * f)))
    return img.reduce(n) if n >= 2 else img


def _flatten(img: Image.Image, background: str) -> Image.Image:
    if img.mode != "RGBA":
        return img
    canvas = Image.new("RGBA", img.size, background)
    canvas.alpha_composite(img)
    return canvas.convert("RGB")


# --- watermark -------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _logo(path: Path, stamp: tuple[int, int]) -> Image.Image:
    with Image.open(path) as im:
        return to_srgb(im).convert("RGBA")


def _mark(size: tuple[int, int], wm: WatermarkConfig) -> Image.Image:
    """The watermark as an RGBA tile for a rendition of ``size``, opacity applied; made once
    per size and settings (and logo file version), and only read by its users.

    Its size follows the width (watermark.size); on a rendition too short for that (a wide
    strip) it shrinks to fit inside the margins.
    """
    stamp = None
    if wm.image is not None:
        stat = os.stat(wm.image)
        stamp = (stat.st_mtime_ns, stat.st_size)
    return _mark_tile(size, wm, stamp)


@lru_cache(maxsize=16)
def _mark_tile(
    size: tuple[int, int], wm: WatermarkConfig, stamp: tuple[int, int] | None
) -> Image.Image:
    width, height = size
    room_w = max(1, width - 2 * round(wm.margin * width))
    room_h = max(1, height - 2 * round(wm.margin * width))
    if wm.image is not None and stamp is not None:
        logo = _logo(Path(wm.image), stamp)
        lw = max(1, round(wm.size * width))
        f = min(lw / logo.width, room_w / logo.width, room_h / logo.height)
        tile = logo.resize(
            (max(1, round(logo.width * f)), max(1, round(logo.height * f))), _RESAMPLE
        )
    else:
        text = captions.clean_text(wm.text or "")
        chain = (Path(wm.font),) if wm.font else (captions.WATERMARK_FONT, *captions.FALLBACK_FONTS)
        fonts = captions.assign_fonts(text, chain, "watermark.text")
        px = max(1, round(wm.size * width))
        runs = captions.text_runs(text, fonts)
        while True:
            stroke = max(1, round(px * 0.08))
            total = sum(captions.get_font(f, px).getlength(t) for f, t in runs) + 2 * stroke
            ascent, descent = max(captions.get_font(f, px).getmetrics() for f, _ in runs)
            if (total <= room_w and ascent + descent + 2 * stroke <= room_h) or px <= 1:
                break
            px -= 1
        tile = Image.new("RGBA", (max(1, math.ceil(total)), ascent + descent + 2 * stroke))
        # white on a black outline: reads on light and dark pictures alike
        captions.draw_lines(tile, [((stroke, stroke + ascent), runs)], px, stroke,
                            fill=(255, 255, 255, 255), outline=(0, 0, 0, 255))  # fmt: skip
        bbox = tile.getchannel("A").getbbox()
        if bbox:
            tile = tile.crop(bbox)
    alpha = tile.getchannel("A").point(lambda a: round(a * wm.opacity))
    tile.putalpha(alpha)
    return tile


def _mark_position(
    size: tuple[int, int], tile: Image.Image, wm: WatermarkConfig, avoid: Sequence[Box] = ()
) -> tuple[int, int]:
    """The mark's corner; moved up (bottom positions) or down (top positions) just clear of
    any caption box it would cover, so the mark never sits on a meme's words."""
    w, h = size
    margin = round(wm.margin * w)
    horizontal = "left" if "left" in wm.position else "right" if "right" in wm.position else "c"
    vertical = "top" if "top" in wm.position else "bottom" if "bottom" in wm.position else "c"
    x = {"left": margin, "right": w - tile.width - margin}.get(horizontal, (w - tile.width) // 2)
    y = {"top": margin, "bottom": h - tile.height - margin}.get(vertical, (h - tile.height) // 2)
    hits = [
        b for b in avoid
        if x < b[2] and b[0] < x + tile.width and y < b[3] and b[1] < y + tile.height
    ]  # fmt: skip
    gap = max(2, margin // 2)
    if hits and vertical == "bottom":
        y = math.floor(min(b[1] for b in hits)) - gap - tile.height
    elif hits and vertical == "top":
        y = math.ceil(max(b[3] for b in hits)) + gap
    return max(0, x), min(max(0, y), max(0, h - tile.height))


def _caption_boxes(
    geo: _Geometry, base_size: tuple[int, int], layout: captions.Layout | None
) -> list[Box]:
    """Where the captions drawn on the base land in this rendition (crop, scale, pad)."""
    if not layout:
        return []
    bx0, by0, bx1, by1 = geo.box
    plan = geo.plan
    sx, sy = plan.content[0] / (bx1 - bx0), plan.content[1] / (by1 - by0)
    ox, oy = (plan.out[0] - plan.content[0]) // 2, (plan.out[1] - plan.content[1]) // 2
    return [
        ((x0 - bx0) * sx + ox, (y0 - by0) * sy + oy, (x1 - bx0) * sx + ox, (y1 - by0) * sy + oy)
        for x0, y0, x1, y1 in captions.caption_boxes(layout, *base_size)
    ]


def _watermark(
    img: Image.Image, tile: Image.Image, wm: WatermarkConfig, check: bool,
    avoid: Sequence[Box] = (),
) -> Image.Image:  # fmt: skip
    """Composite the mark (in place, on the rendition's own fresh image); with ``check``, raise
    RenderError unless it visibly changed pixels. Only the mark's box is touched."""
    x, y = _mark_position(img.size, tile, wm, avoid)
    box = (x, y, min(img.width, x + tile.width), min(img.height, y + tile.height))
    before = img.crop(box).convert("RGBA")
    after = before.copy()
    after.alpha_composite(tile.crop((0, 0, box[2] - x, box[3] - y)))
    if check:
        diff = ImageChops.difference(before, after).convert("L")
        changed = sum(diff.histogram()[3:])
        area = max(1, (box[2] - box[0]) * (box[3] - box[1]))
        if tile.width > img.width or tile.height > img.height or changed < max(1, area // 200):
            raise RenderError(
                f"watermark not visible on the {img.width}x{img.height} rendition "
                f"({changed} of {area} pixels changed); check watermark size/opacity/image"
            )
    img.paste(after if img.mode == "RGBA" else after.convert(img.mode), box[:2])
    return img


# --- encoding --------------------------------------------------------------------------------


# Encoder settings, in one place: _encode uses them and bench/render.py gives the very same to
# every engine it times (mapped to libvips' names for pyvips), so its figures compare like work.
#
# JPEG, measured (bench/render.py --jpeg-settings: 33 images, the 1600/800/320 widths of 11
# stills, q85): plain 3.13 MB in 165 ms CPU; optimize (Huffman tables) 2.97 MB (-5.0%) in
# 272 ms (1.65x); progressive 2.89 MB (-7.9%) in 715 ms (4.3x), the same with optimize
# (libjpeg-turbo optimizes progressive scans anyway) in 751 ms. Optimize buys 5% for 3 ms a
# meme; progressive 3% more for 14 ms more, so: optimize, baseline. Chroma 4:2:0 (Pillow's
# default, written out so other encoders can be given the same).
JPEG_OPTIONS: dict[str, object] = {"optimize": True, "progressive": False, "subsampling": "4:2:0"}
# WebP stills: method 4 (Pillow's and libwebp's default; 40% smaller than 0). Animations:
# method 2, 16% smaller than Pillow's animation default (0) at 1.3x the time (4 saves only 5%
# more at twice the time); keyframes every 3-5 frames (Pillow's defaults, written out).
WEBP_STILL_OPTIONS: dict[str, object] = {"method": 4}
WEBP_ANIMATED_OPTIONS: dict[str, object] = {"method": 2, "kmin": 3, "kmax": 5}
PNG_OPTIONS: dict[str, object] = {"compress_level": 6}
AVIF_OPTIONS: dict[str, object] = {"max_threads": 1}


def encoder_options(fmt: str, quality: int, animated: bool = False) -> dict[str, object]:
    """Pillow save() keywords for a rendition of ``fmt`` at ``quality`` (an animation's frames,
    durations, loop and disposal come on top)."""
    if fmt == "jpeg":
        return {"quality": quality, **JPEG_OPTIONS}
    if fmt == "webp":
        return {"quality": quality, **(WEBP_ANIMATED_OPTIONS if animated else WEBP_STILL_OPTIONS)}
    if fmt == "png":
        return dict(PNG_OPTIONS)
    if fmt == "avif":
        return {"quality": quality, **AVIF_OPTIONS}
    if fmt == "gif":
        return {}
    raise RenderError(f"unknown format {fmt!r}")  # pragma: no cover - config validates formats


def _encode(frames: list[Image.Image], spec: RenditionSpec, anim: dict | None) -> bytes:
    """Encode with no metadata: every frame's info is emptied so no EXIF/XMP/ICC/comment rides
    along (PNG and GIF writers would otherwise copy some from Image.info)."""
    for frame in frames:
        frame.info = {}
    out = io.BytesIO()
    first = frames[0]
    fmt = spec.format
    options = encoder_options(fmt, spec.quality, animated=anim is not None)
    if fmt == "jpeg":
        first = first.convert("RGB") if first.mode != "RGB" else first
    if anim is None:
        first.save(out, fmt.upper(), **options)
    elif fmt == "webp":
        first.save(
            out, "WEBP", save_all=True, append_images=frames[1:], duration=anim["durations"],
            loop=anim["loop"], **options,
        )  # fmt: skip
    else:
        params = {"duration": anim["durations"], "disposal": anim["disposal"]}
        if anim["loop"] is not None:
            params["loop"] = anim["loop"]
        first.save(out, "GIF", save_all=True, append_images=frames[1:], **params, **options)
    return out.getvalue()


# --- placeholder -----------------------------------------------------------------------------


def placeholder(img: Image.Image, background: str = "#ffffff") -> Placeholder:
    """Dominant colour (largest median-cut cluster) and a blurhash of a small copy."""
    small = img.copy()
    small.thumbnail((PLACEHOLDER_SIZE, PLACEHOLDER_SIZE), Image.Resampling.BOX)
    small = _flatten(small, background)
    quantized = small.quantize(colors=5, method=Image.Quantize.MEDIANCUT)
    # a palette image's colours are (count, palette index) pairs
    colors = cast(list[tuple[int, int]], quantized.getcolors() or [(1, 0)])
    count, index = max(colors)
    palette = quantized.getpalette() or [0, 0, 0]
    r, g, b = palette[3 * index : 3 * index + 3]
    x, y = (4, 3) if small.width >= small.height else (3, 4)
    with warnings.catch_warnings():  # blurhash-python calls Image.getdata (deprecated)
        warnings.simplefilter("ignore", DeprecationWarning)
        code = blurhash.encode(small, x, y)
    return Placeholder(color=f"#{r:02x}{g:02x}{b:02x}", blurhash=code)


# --- cache -----------------------------------------------------------------------------------

_MAGIC = b"MEMESRC1\n"


@lru_cache(maxsize=32)
def _file_digest(path: str, stamp: tuple[int, int]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    stat = os.stat(path)
    return _file_digest(str(path), (stat.st_mtime_ns, stat.st_size))


def _font_key(path: Path | None) -> str | None:
    return None if path is None else file_sha256(Path(path))


def _cache_keys(job: RenderJob, original_sha: str, config: Config) -> tuple[dict[str, str], str]:
    wm = config.watermark
    wm_key = {
        "text": wm.text,
        "image": None if wm.image is None else file_sha256(Path(wm.image)),
        "font": _font_key(wm.font),
        "position": wm.position,
        "margin": wm.margin,
        "opacity": wm.opacity,
        "size": wm.size,
        "min_width": wm.min_width,
    }
    boxes = None
    if job.boxes is not None:
        from pipeline.meme_templates import boxes_to_data

        boxes = [
            {**data, "font": _font_key(box.font)}
            for data, box in zip(boxes_to_data(job.boxes), job.boxes, strict=True)
        ]
    caption = {
        "top": job.top_text,
        "bottom": job.bottom_text,
        "texts": list(job.texts),
        "boxes": boxes,
        "font": _font_key(config.overlay.font),
        "min_font_size": config.overlay.min_font_size,
    }
    # Widths are made from each other and the decode serves the largest, so every rendition's
    # pixels depend on the geometries of all the others (never on their formats or names).
    geometries = sorted(
        {(s.width, s.height, s.max_height, s.fit) for s in config.renditions}, key=str
    )
    common = {
        "engine": ENGINE_VERSION,
        "original": original_sha,
        "caption": caption,
        "geometries": geometries,
    }

    def digest(extra: dict) -> str:
        return hashlib.sha256(json.dumps({**common, **extra}, sort_keys=True).encode()).hexdigest()

    keys = {
        spec.name: digest(
            {
                "spec": {**asdict(spec), "name": None},  # the name does not change pixels
                "background": config.background,
                "watermark": wm_key if spec.watermark and wm.enabled else None,
            }
        )
        for spec in config.renditions
    }
    return keys, digest({"placeholder": PLACEHOLDER_SIZE, "background": config.background})


def settings_fingerprint(config: Config) -> str:
    """One digest of every setting that shapes rendition bytes (specs, background, watermark
    and its files, caption fonts, engine version): when it changes, published memes must be
    rendered again, and their content-hashed names change with them."""
    keys, placeholder_key = _cache_keys(RenderJob(slug="", original=Path()), "", config)
    return hashlib.sha256(json.dumps([keys, placeholder_key], sort_keys=True).encode()).hexdigest()


class RenderCache:
    """Finished renditions on disk, one file per key; writes are atomic (temp + rename)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.bin"

    def get(self, key: str) -> tuple[dict, bytes] | None:
        try:
            blob = self._path(key).read_bytes()
        except OSError:
            return None
        if not blob.startswith(_MAGIC):
            return None
        head, sep, data = blob[len(_MAGIC) :].partition(b"\n")
        try:
            meta = json.loads(head)
        except ValueError:
            return None
        if not sep or meta.get("sha256") != hashlib.sha256(data).hexdigest():
            return None  # torn or tampered entry: render again
        return meta, data

    def put(self, key: str, meta: dict, data: bytes) -> None:
        head = json.dumps({**meta, "sha256": hashlib.sha256(data).hexdigest()}, sort_keys=True)
        # No fsync: a torn entry fails its checksum on read and is simply rendered again.
        write_atomic(self._path(key), _MAGIC + head.encode() + b"\n" + data, sync=False)


# --- rendering -------------------------------------------------------------------------------


def _rendered(
    spec: RenditionSpec, data: bytes, size: tuple[int, int], animated: bool
) -> RenderedImage:
    return RenderedImage(
        name=spec.name,
        data=data,
        width=size[0],
        height=size[1],
        content_type=spec.content_type,
        extension=spec.extension,
        animated=animated,
    )


def _level_size(plan: _Plan, size: tuple[int, int]) -> tuple[int, int]:
    """The whole (oriented) frame at the plan's scale: what its crop window is cut from."""
    return max(1, round(size[0] * plan.scale)), max(1, round(size[1] * plan.scale))


def _stills(
    source: _Source,
    specs: Sequence[RenditionSpec],
    todo: set[str],
    config: Config,
    layout: captions.Layout | None,
) -> tuple[list[RenderedImage], Image.Image]:
    """The still renditions named in ``todo``, planned with all of ``specs`` (the config's
    still renditions, so a rendition's pixels do not depend on what the cache held), and the
    image the placeholder is made from.

    The original is decoded once (a JPEG at the DCT reduction the largest rendition still
    allows) and captioned. Each scale the renditions need is made as the whole frame, largest
    first, each from the previous one (LANCZOS with reducing_gap). Renditions of one geometry
    share their pixels: cut, padded and watermarked once, then encoded to each format.
    """
    plans = {spec.name: plan_rendition(spec, *source.size) for spec in specs}
    if layout:  # a cover that would cut a text is padded: its scale is one the frame is made at
        for spec in specs:
            size = _level_size(plans[spec.name], source.size)
            keep = captions.caption_boxes(layout, *size)
            plans[spec.name] = _keeping_texts(plans[spec.name], spec, size, source.size, keep)
    small = plan_rendition(RenditionSpec(name="placeholder", width=PLACEHOLDER_SIZE), *source.size)
    needs = [*plans.values(), small]
    factor = min(_reduction(p, source.jpeg) for p in needs)
    img = _captioned_base(source, factor, layout)
    # The pad bands, blurred at 1/8 of their rendition, come from the image without its words
    # reduced once (not from the whole base, resized again for every padded rendition).
    backdrop: Image.Image | None = None
    levels: dict[tuple[int, int], Image.Image] = {}
    for size in sorted({_level_size(p, source.size) for p in needs}, key=_area, reverse=True):
        if img.size != size:
            img = _resample(img, size)
        levels[size] = img
    wm = config.watermark
    shared: dict[tuple, Image.Image] = {}
    made = []
    for spec in specs:
        if spec.name not in todo:
            continue
        plan = plans[spec.name]
        key = (plan, spec.fit, spec.pad_color, spec.watermark)
        if key not in shared:
            level = levels[_level_size(plan, source.size)]
            keep = captions.caption_boxes(layout, *level.size) if layout else []
            geo = _geometry(plan, level, source.size, spec, keep)
            if backdrop is None and geo.plan.content != geo.plan.out and not spec.pad_color:
                backdrop = _pad_source(source.base(factor), list(plans.values()), source.size)
            img = _apply(geo, level, spec, backdrop=backdrop)
            if spec.watermark and wm.enabled and geo.plan.out[0] >= wm.min_width:
                avoid = _caption_boxes(geo, level.size, layout)
                img = _watermark(img, _mark(img.size, wm), wm, check=True, avoid=avoid)
            shared[key] = img
        img = shared[key]
        if spec.format not in ALPHA_FORMATS:
            img = _flatten(img, config.background)
        made.append(_rendered(spec, _encode([img], spec, None), img.size, False))
    return made, levels[_level_size(small, source.size)]


def _area(size: tuple[int, int]) -> int:
    return size[0] * size[1]


def _captioned_base(source: _Source, factor: int, layout: captions.Layout | None) -> Image.Image:
    base = source.base(factor)
    return captions.draw_overlay(base, layout) if layout else base


def _animated(
    source: _Source, specs: list[RenditionSpec], config: Config, layout: captions.Layout | None
) -> list[RenderedImage]:
    """Every animated rendition in one pass over the frames (each frame decoded once)."""
    plans = [plan_rendition(spec, *source.size) for spec in specs]
    per_frame = sum(p.out[0] * p.out[1] for p in plans)
    wm = config.watermark
    # Renditions of one geometry share their frames: each frame is resized and marked once per
    # geometry, and kept in the mode it came in (RGB unless it has transparent pixels).
    keys = [
        (plan, spec.fit, spec.pad_color, spec.watermark)
        for spec, plan in zip(specs, plans, strict=True)
    ]
    groups = list(dict.fromkeys(keys))
    outputs: list[list[Image.Image]] = [[] for _ in groups]
    durations: list[int] = []
    disposals: list[int] = []
    geometries: list[_Geometry] = []
    tiles: list[Image.Image | None] = []
    avoids: list[list[Box]] = []
    transparent = False
    for frame, duration, disposal in source.frames_iter():
        if (len(durations) + 1) * per_frame > ANIMATION_BUDGET:  # refused before holding it
            held = source.frames * per_frame
            raise RenderError(
                f"animation too large: {source.frames} frames x {len(specs)} renditions "
                f"= {held:,} pixels held, over the {ANIMATION_BUDGET:,} budget"
            )
        durations.append(duration)
        disposals.append(disposal)
        backdrop = frame
        if layout:
            frame = captions.draw_overlay(frame, layout)
        if not geometries:  # crop window and watermark from the first frame, kept for all
            keep = captions.caption_boxes(layout, *frame.size) if layout else []
            geometries = [
                _geometry(plan, frame, source.size, specs[keys.index(group)], keep)
                for group in groups
                for plan in group[:1]
            ]
            for (_, _, _, watermark), geo in zip(groups, geometries, strict=True):
                marked = watermark and wm.enabled and geo.plan.out[0] >= wm.min_width
                tiles.append(_mark(geo.plan.out, wm) if marked else None)
            # Every frame has the same size and captions: where they land is computed once.
            avoids = [_caption_boxes(g, frame.size, layout) for g in geometries]
        transparent = transparent or frame.mode == "RGBA"  # to_srgb keeps alpha only if used
        for i, group in enumerate(groups):
            img = _apply(geometries[i], frame, specs[keys.index(group)], backdrop=backdrop)
            if (tile := tiles[i]) is not None:
                img = _watermark(img, tile, wm, check=not outputs[i], avoid=avoids[i])
            outputs[i].append(img)
    if transparent:  # one mode for every frame: the encoders take a sequence of one mode
        outputs = [[f if f.mode == "RGBA" else f.convert("RGBA") for f in o] for o in outputs]
    loop = source.loop
    if loop is None and source.format == "WEBP":
        loop = 0
    results = []
    # Renditions of one geometry, format and encoder settings are the same bytes: encoded once.
    encoded: dict[tuple, bytes] = {}
    for spec, key in zip(specs, keys, strict=True):
        frames = outputs[groups.index(key)]
        anim = {
            "durations": durations,
            # GIF writes a NETSCAPE loop block only when asked; WebP needs a number (1 = once)
            "loop": loop if spec.format == "gif" else (1 if loop is None else loop),
            # Frames are written whole; with transparency, "restore to background" (2) is the
            # disposal that shows each whole frame exactly as the original composited it.
            "disposal": [2] * len(frames) if transparent else disposals,
        }
        same = (key, spec.format, json.dumps(encoder_options(spec.format, spec.quality, True)))
        if same not in encoded:
            encoded[same] = _encode(frames, spec, anim)
        results.append(_rendered(spec, encoded[same], frames[0].size, True))
    return results


def render_meme(job: RenderJob, config: Config, cache_dir: Path | None = None) -> RenderResult:
    """Every configured rendition of one meme, plus its placeholder; RenderError on failure."""
    try:
        return _render_meme(job, config, cache_dir)
    except (RenderError, captions.OverlayTextError, *_DECODE_ERRORS, MemoryError) as exc:
        raise RenderError(f"{job.slug}: {_failure_reason(job, exc)}") from None


def _failure_reason(job: RenderJob, exc: Exception) -> str | None:
    """Why a meme could not be rendered, for an expected failure; None for a bug."""
    if isinstance(exc, (RenderError, captions.OverlayTextError)):
        return str(exc)
    if isinstance(exc, _DECODE_ERRORS):
        return f"cannot read image {job.original.name}: {exc}"
    if isinstance(exc, MemoryError):
        return f"out of memory rendering {job.original.name}"
    return None


def _render_meme(job: RenderJob, config: Config, cache_dir: Path | None) -> RenderResult:
    original = Path(job.original)
    if not original.is_file():
        raise RenderError(f"original not found: {original}")
    cache = RenderCache(cache_dir) if cache_dir is not None else None
    keys: dict[str, str] = {}
    placeholder_key = ""
    done: dict[str, RenderedImage] = {}
    hold: Placeholder | None = None
    if cache is not None:  # without a cache, no key: the original is not read to hash it
        keys, placeholder_key = _cache_keys(job, job.sha256 or file_sha256(original), config)
        for spec in config.renditions:
            hit = cache.get(keys[spec.name])
            if hit:
                meta, data = hit
                done[spec.name] = _rendered(
                    spec, data, (meta["width"], meta["height"]), meta["animated"]
                )
        hit = cache.get(placeholder_key)
        if hit:
            hold = Placeholder(color=hit[0]["color"], blurhash=hit[0]["blurhash"])
    todo = [spec for spec in config.renditions if spec.name not in done]
    if todo or hold is None:
        source = _Source(original)
        if source.size[0] * source.size[1] > config.limits.max_pixels:
            raise RenderError(
                f"{source.size[0]}x{source.size[1]} is over limits.max_pixels "
                f"({config.limits.max_pixels:,})"
            )
        layout = None
        if any((text or "").strip() for text in job.box_texts):
            layout = captions.layout(*source.size, job.box_texts, config.overlay, job.boxes)
        moving = [s for s in todo if source.animated and s.format in ANIMATED_FORMATS]
        made = _animated(source, moving, config, layout) if moving else []
        stills = [
            s for s in config.renditions if not (source.animated and s.format in ANIMATED_FORMATS)
        ]
        still_made, small = _stills(source, stills, {s.name for s in todo}, config, layout)
        made += still_made
        for item in made:
            done[item.name] = item
            if cache is not None:
                meta = {"width": item.width, "height": item.height, "animated": item.animated}
                cache.put(keys[item.name], meta, item.data)
        if hold is None:
            hold = placeholder(small)
            if cache is not None:
                cache.put(placeholder_key, {"color": hold.color, "blurhash": hold.blurhash}, b"")
    return RenderResult(
        slug=job.slug,
        renditions=tuple(done[spec.name] for spec in config.renditions),
        placeholder=hold,
    )


def check_renderable(width: int, height: int, frames: int, config: Config) -> None:
    """RenderError, naming the rendition and the reason, if the configured renditions cannot
    be made of a width x height image of ``frames`` frames: a side over its format's limit,
    a watermark that would not show, an animation over the budget. Geometry only: ingest
    refuses such a file at add time instead of failing it at every publish."""
    wm = config.watermark
    held = 0
    for spec in config.renditions:
        w, h = plan_rendition(spec, width, height).out
        limit = FORMAT_MAX_SIDE.get(spec.format)
        if limit is not None and max(w, h) > limit:
            raise RenderError(
                f"rendition '{spec.name}' would be {w}x{h}, over the {limit} px "
                f"{spec.format.upper()} limit"
            )
        if spec.watermark and wm.enabled and w >= wm.min_width:
            tile = _mark((w, h), wm)
            seen = sum(tile.getchannel("A").point(lambda a: 255 if a >= 8 else 0).histogram()[255:])
            if tile.width > w or tile.height > h or seen < max(1, tile.width * tile.height // 200):
                raise RenderError(
                    f"watermark would not show on the {w}x{h} rendition '{spec.name}'"
                )
        if frames > 1 and spec.format in ANIMATED_FORMATS:
            held += frames * w * h
    if held > ANIMATION_BUDGET:
        raise RenderError(
            f"animation too large: {frames} frames = {held:,} pixels held over the renditions, "
            f"over the {ANIMATION_BUDGET:,} budget"
        )


# --- many memes ------------------------------------------------------------------------------

_worker_state: dict = {}


def _init_worker(config: Config, cache_dir: Path | None) -> None:
    _worker_state["config"] = config
    _worker_state["cache_dir"] = cache_dir


def _run(job: RenderJob) -> RenderResult | RenderFailure:
    return _attempt(job, _worker_state["config"], _worker_state["cache_dir"])


def _attempt(
    job: RenderJob, config: Config, cache_dir: Path | None
) -> RenderResult | RenderFailure:
    try:
        return _render_meme(job, config, cache_dir)
    except Exception as exc:  # one meme's bug must not sink the batch; reported with its type
        return RenderFailure(job.slug, _failure_reason(job, exc) or f"{type(exc).__name__}: {exc}")


def render_many(
    jobs: Sequence[RenderJob],
    config: Config,
    cache_dir: Path | None = None,
    workers: int = 0,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[RenderResult], list[RenderFailure]]:
    """Render every job, in a process pool of ``workers`` (0: one per core).

    Returns (results, failures), each in job order; a meme that fails is reported by slug with
    its reason and the others still render. ``progress(1)`` is called as each job finishes.
    """
    count = min(len(jobs), workers or os.cpu_count() or 1)
    outcomes: list[RenderResult | RenderFailure | None] = [None] * len(jobs)
    if count <= 1:
        for i, job in enumerate(jobs):
            outcomes[i] = _attempt(job, config, cache_dir)
            if progress:
                progress(1)
    else:
        with process_pool(count, _init_worker, (config, cache_dir)) as pool:
            futures = {pool.submit(_run, job): i for i, job in enumerate(jobs)}
            try:
                for future in as_completed(futures):
                    i = futures[future]
                    try:
                        outcomes[i] = future.result()
                    except BrokenProcessPool:
                        outcomes[i] = RenderFailure(
                            jobs[i].slug, "render worker died (out of memory or killed)"
                        )
                    if progress:
                        progress(1)
            except BaseException:  # Ctrl-C or SIGTERM: finish the jobs running, start no more
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    results = [o for o in outcomes if isinstance(o, RenderResult)]
    failures = [o for o in outcomes if isinstance(o, RenderFailure)]
    return results, failures

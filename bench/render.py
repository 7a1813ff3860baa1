"""Rendition throughput per core: render_many against a naive Pillow loop and pyvips, same pool.

    .venv/bin/python bench/render.py [--rounds 3] [--scale 1] [--jpeg-settings] [--only-template]

pyvips comes from the bench extra (`pip install -e '.[bench]'`: pyvips + pyvips-binary);
without it the script measures the other two and says so.

Corpus, generated in a temp dir, in the proportions of issue 14's 55 stills (``--scale 10``
is about that corpus): per scale unit 2 twelve-megapixel phone JPEGs (one stored rotated, EXIF
Orientation 6), 2 PNG screenshots (1170x2532 and 1920x1080), 1 square 1080x1080 JPEG meme and
1 WebP; and, reported apart, animated GIFs (480x320, 24 frames): 2 per 5 scale units, at
least 2 (4 at ``--scale 10``).

Work, each a rendition config given to all three engines:
- ``issue``: widths 1600, 800 and 320, aspect kept, never upscaled, EXIF orientation applied,
  each width as WebP q80 and JPEG q85 (6 files per image), the text watermark (50% opacity,
  bottom-right) on the 1600 and 800 ones;
- ``default``: the default rendition set (``config.parse({})``: contain, cover and pad).

Engines: ``naive`` (decode in full once, then LANCZOS from the full image for every geometry),
``pyvips`` (shrink-on-load thumbnail per geometry from the file, libvips held to one thread per
process) and ``render_many`` (the engine, no cache: Pillow decodes, draws and encodes, and
the Lanczos3 resampling runs in fast_image_resize (cykooz_resizer) with SIMD, as libvips' does,
where Pillow's is scalar; the PSNR below checks its pixels). The same work per image means the
same encoder settings too: encoding is most of the time (WebP alone 40-60%), so an engine given
cheaper settings than another (Pillow's defaults: JPEG without optimize, animated WebP at
method 0) would be timed on less work and bigger files. So every engine encodes with the
engine's own settings, read from ``pipeline.imaging.encoder_options`` (one place; pyvips gets
them under libvips' names, e.g. optimize -> optimize_coding, method -> effort), every engine
marks the same renditions (animations too) with a tile made once per size, and the tables
print the bytes per image each engine wrote, so a reader can see the outputs compare. Each
measurement is a fresh process running one engine on one work and corpus with a pool of 1 or
2 processes (the same pool for every engine); engines are interleaved, rotating their order
each round, and the medians of the rounds are printed with the load average they ran under.
CPU s per image counts the pool's workers too; peak RSS is the largest single process
(VmHWM, or the workers' ru_maxrss). Under each table, the pool-1 CPU s per image by kind of
file (photo, shot, square, web, all): where the ratio comes from; for stills also the CPU s
of encoding alone (the engine's output pixels saved again with the same settings, the part
no engine can skip) and the ceiling it sets, naive / encoding: with every engine on the same
encoder settings, no engine can be further ahead of naive than that.

Then: PSNR of the 800 px JPEG (no watermark) against a LANCZOS resize of the full-resolution
decode, per engine (median over the stills; target >= 38 dB), and the peak RSS of each engine
rendering a 50-megapixel JPEG in a fresh process (both works; limit 400 MB).
Last, the render time of a meme made from a four-box template against the same image without
text (one process, no cache, every default rendition; target: at most 20% more);
``--only-template`` prints that figure alone. ``--jpeg-settings`` also times JPEG encoding with
and without optimize/progressive on the corpus's 1600/800/320 images (the figures behind the
choice in pipeline/imaging.py).
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps, ImageSequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import config as configuration  # noqa: E402
from pipeline.config import Config, RenditionSpec  # noqa: E402
from pipeline.imaging import RenderJob, encoder_options, render_many, render_meme  # noqa: E402
from pipeline.overlay import WATERMARK_FONT  # noqa: E402
from pipeline.workers import process_pool  # noqa: E402

SAMPLES = sorted((ROOT / "samples").glob("*.png")) + sorted((ROOT / "samples").glob("*.jpg"))
ENGINES = ("naive", "pyvips", "render_many")
POOLS = (1, 2)


def issue_config(watermark: bool = True) -> Config:
    """Issue 14's work: 1600/800/320 px wide, each as WebP q80 and JPEG q85."""
    renditions = {
        f"w{width}-{fmt}": {"width": width, "format": fmt, "quality": q, "watermark": width > 320}
        for width in (1600, 800, 320)
        for fmt, q in (("webp", 80), ("jpeg", 85))
    }
    raw: dict = {"renditions": renditions}
    if not watermark:
        raw["watermark"] = {"text": None}
    return configuration.parse(raw)


WORKS: dict[str, Callable[[], Config]] = {
    "issue": issue_config,
    "default": lambda: configuration.parse({}),
}


# --- corpus ----------------------------------------------------------------------------------


def make_corpus(folder: Path, scale: int = 1) -> tuple[list[Path], list[Path]]:
    """(stills, animated GIFs) in folder, in issue 14's proportions times ``scale``."""
    samples = [Image.open(p).convert("RGB") for p in SAMPLES]
    noise = Image.effect_noise((4000, 3000), 24).convert("RGB")
    stills: list[Path] = []
    for i in range(2 * scale):  # 12 MP phone photos, half stored rotated
        photo = Image.blend(
            samples[i % len(samples)].resize((4000, 3000), Image.Resampling.BICUBIC), noise, 0.08
        )
        exif = Image.Exif()
        exif[0x010F] = "BenchCam"
        exif[0x0110] = "Model 12"
        if i % 2:
            photo = photo.transpose(Image.Transpose.ROTATE_90)
            exif[0x0112] = 6
        stills.append(folder / f"photo{i}.jpg")
        photo.save(stills[-1], "JPEG", quality=90, exif=exif)
    for i in range(2 * scale):  # screenshots: flat UI with text-like rows and a picture
        size = (1170, 2532) if i % 2 == 0 else (1920, 1080)
        shot = Image.new("RGB", size, (245, 245, 245))
        draw = ImageDraw.Draw(shot)
        for row in range(60, size[1] - 100, 90):
            draw.rectangle((60, row, 60 + (row * 7) % 900 + 150, row + 40), fill=(40, 40, 40))
        shot.paste(samples[i % len(samples)].resize((1050, 700)), (60, size[1] // 3))
        stills.append(folder / f"shot{i}.png")
        shot.save(stills[-1])
    for i in range(scale):  # square memes: a picture with bold caption bands
        meme = samples[(i + 1) % len(samples)].resize((1080, 1080), Image.Resampling.BICUBIC)
        draw = ImageDraw.Draw(meme)
        font = ImageFont.truetype(str(WATERMARK_FONT), 90)
        for y, text in ((40, "WHEN THE BENCH"), (930, "RUNS ON 2 CORES")):
            draw.text((540, y), text, font=font, anchor="mt", fill="white",
                      stroke_width=6, stroke_fill="black")  # fmt: skip
        stills.append(folder / f"square{i}.jpg")
        meme.save(stills[-1], "JPEG", quality=88)
    for i in range(scale):
        web = Image.blend(samples[(i + 2) % len(samples)].resize((2048, 1536)),
                          noise.crop((0, 0, 2048, 1536)), 0.05)  # fmt: skip
        stills.append(folder / f"web{i}.webp")
        web.save(stills[-1], "WEBP", quality=85)
    animated: list[Path] = []
    for i in range(2 * max(1, scale // 5)):  # 24 frames, 480x320
        base = samples[i % len(samples)].resize((480, 320))
        frames = []
        for f in range(24):
            frame = base.copy()
            ImageDraw.Draw(frame).ellipse((f * 18, 120, f * 18 + 60, 180), fill=(255, 0, 0))
            frames.append(frame)
        animated.append(folder / f"anim{i}.gif")
        frames[0].save(animated[-1], save_all=True, append_images=frames[1:], duration=80, loop=0)
    return stills, animated


# --- the naive loop --------------------------------------------------------------------------


def naive_size(spec: RenditionSpec, width: int, height: int) -> tuple[int, int]:
    if spec.height is not None and spec.fit in ("cover", "pad"):
        box_w, box_h = spec.width, spec.height
        pick = max if spec.fit == "cover" else min
        f = pick(box_w / width, box_h / height)
        if f > 1:  # never upscale: the box shrinks (same shape) until the image fills it
            box_w, box_h = max(1, round(box_w / f)), max(1, round(box_h / f))
        return box_w, box_h
    w = min(spec.width, width)
    return w, max(1, round(height * w / width))


def contained(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    f = min(box[0] / size[0], box[1] / size[1], 1.0)
    return min(box[0], max(1, round(size[0] * f))), min(box[1], max(1, round(size[1] * f)))


def geometry(spec: RenditionSpec) -> tuple:
    return (spec.width, spec.height, spec.max_height, spec.fit)


@functools.lru_cache(maxsize=16)
def naive_tile(width: int, text: str, size: float, opacity: float) -> Image.Image:
    """The text watermark for a rendition ``width`` wide, drawn the plain way (a font at 5% of
    the width, outlined), once per width like the other engines."""
    px = max(1, round(size * width))
    stroke = max(1, round(px * 0.08))
    font = ImageFont.truetype(str(WATERMARK_FONT), px)
    x0, y0, x1, y1 = font.getbbox(text, stroke_width=stroke)
    tile = Image.new("RGBA", (x1 - x0, y1 - y0))
    ImageDraw.Draw(tile).text((-x0, -y0), text, font=font, fill="white",
                              stroke_width=stroke, stroke_fill="black")  # fmt: skip
    tile.putalpha(tile.getchannel("A").point(lambda a: round(a * opacity)))
    return tile


def naive_mark(img: Image.Image, config: Config) -> Image.Image:
    wm = config.watermark
    tile = naive_tile(img.width, wm.text or "", wm.size, wm.opacity)
    margin = round(wm.margin * img.width)
    at = (img.width - tile.width - margin, img.height - tile.height - margin)
    img = img.convert("RGBA")
    img.alpha_composite(tile, at)
    return img.convert("RGB")


def naive_shape(frame: Image.Image, spec: RenditionSpec, size: tuple[int, int]) -> Image.Image:
    if spec.fit == "cover" and spec.height:
        return ImageOps.fit(frame, size, Image.Resampling.LANCZOS)
    if spec.fit == "pad" and spec.height:
        inner = frame.resize(contained(frame.size, size), Image.Resampling.LANCZOS)
        back = ImageOps.fit(inner, size, Image.Resampling.BILINEAR)
        back = back.filter(ImageFilter.GaussianBlur(max(1, min(size) / 30)))
        back = Image.blend(back, Image.new(back.mode, size, 0), 0.45)
        back.paste(inner, ((size[0] - inner.width) // 2, (size[1] - inner.height) // 2))
        return back
    return frame.resize(size, Image.Resampling.LANCZOS)


def naive_render(path: Path, config: Config) -> dict[str, bytes]:
    """What a straightforward script does: decode in full once, then for each geometry resize
    from the full image (LANCZOS), watermark, and save every format of it."""
    with Image.open(path) as im:
        moving = getattr(im, "is_animated", False)
        frames = [f.convert("RGB") for f in ImageSequence.Iterator(im)] if moving else []
        im.seek(0)
        img = ImageOps.exif_transpose(im).convert("RGB")
    out: dict[str, bytes] = {}
    shaped: dict[tuple, list[Image.Image]] = {}
    for spec in config.renditions:
        animate = bool(frames) and spec.format in ("webp", "gif")
        size = naive_size(spec, *img.size)
        key = (geometry(spec), spec.watermark, animate)
        if key not in shaped:
            wm = config.watermark
            marked = spec.watermark and wm.enabled and size[0] >= wm.min_width
            shaped[key] = [
                naive_mark(done, config) if marked else done
                for done in (naive_shape(f, spec, size) for f in (frames if animate else [img]))
            ]
        done, buf = shaped[key], io.BytesIO()
        options = encoder_options(spec.format, spec.quality, animated=animate)
        if animate:
            done[0].save(buf, spec.format.upper(), save_all=True, append_images=done[1:],
                         duration=80, loop=0, **options)  # fmt: skip
        else:
            done[0].save(buf, spec.format.upper(), **options)
        out[spec.name] = buf.getvalue()
    return out


# --- pyvips ----------------------------------------------------------------------------------


# The engine's Pillow encoder options under libvips' names (a new option fails here loudly).
VIPS_OPTION = {
    "quality": "Q", "optimize": "optimize_coding", "progressive": "interlace",
    "subsampling": "subsample_mode", "method": "effort", "kmin": "kmin", "kmax": "kmax",
    "compress_level": "compression",
}  # fmt: skip
VIPS_VALUE = {("subsampling", "4:2:0"): "on", ("subsampling", "4:4:4"): "off"}


def vips_options(fmt: str, quality: int, animated: bool) -> dict:
    return {VIPS_OPTION[k]: VIPS_VALUE.get((k, v), v)
            for k, v in encoder_options(fmt, quality, animated).items()}  # fmt: skip


def vips_render(path: Path, config: Config) -> dict[str, bytes]:
    """The same work in libvips: one shrink-on-load thumbnail per geometry (EXIF orientation
    applied by thumbnail), composite the watermark (on every frame of an animation), save each
    format with the engine's encoder settings."""
    os.environ["VIPS_CONCURRENCY"] = "1"  # one thread per process, like the other engines
    import pyvips

    first = pyvips.Image.new_from_file(str(path))
    n_pages = first.get("n-pages") if "n-pages" in first.get_fields() else 1
    w, h = first.width, first.height
    if "orientation" in first.get_fields() and first.get("orientation") in (5, 6, 7, 8):
        w, h = h, w
    out: dict[str, bytes] = {}
    shaped: dict[tuple, pyvips.Image] = {}
    wm = config.watermark
    for spec in config.renditions:
        animate = n_pages > 1 and spec.format in ("webp", "gif")
        key = (geometry(spec), spec.watermark, animate)
        size = naive_size(spec, w, h)
        if key not in shaped:
            source = f"{path}[n=-1]" if animate else str(path)
            if spec.fit == "cover" and spec.height:
                img = pyvips.Image.thumbnail(source, size[0], height=size[1],
                                             crop="centre")  # fmt: skip
            elif spec.fit == "pad" and spec.height:
                inner = contained((w, h), size)
                img = pyvips.Image.thumbnail(source, inner[0], height=inner[1])
                small = (max(1, size[0] // 8), max(1, size[1] // 8))
                back = pyvips.Image.thumbnail(str(path), small[0], height=small[1],
                                              crop="centre")  # fmt: skip
                back = back.gaussblur(max(1, min(small) / 30)).resize(
                    size[0] / back.width, vscale=size[1] / back.height
                )
                back = (back * 0.55).cast("uchar")
                img = back.insert(img, (size[0] - img.width) // 2, (size[1] - img.height) // 2)
            else:
                img = pyvips.Image.thumbnail(source, size[0], height=10_000_000,
                                             size="down")  # fmt: skip
            if img.hasalpha():
                img = img.flatten(background=[255, 255, 255])
            if spec.watermark and wm.enabled and size[0] >= wm.min_width:
                img = vips_mark(img, config)
            shaped[key] = img.copy_memory()
        img = shaped[key]
        options = vips_options(spec.format, spec.quality, animate)
        out[spec.name] = img.write_to_buffer(f".{spec.format}", keep="none", **options)
    return out


def vips_mark(img, config: Config):  # noqa: ANN201 - pyvips is imported lazily
    """The watermark composited bottom-right on the image, or on every frame of an animation
    (libvips holds its frames as one tall image, page-height rows each)."""
    wm = config.watermark
    tile = vips_tile(img.width, wm.text or "", wm.size, wm.opacity)
    margin = round(wm.margin * img.width)
    fields = img.get_fields()
    page = img.get("page-height") if "page-height" in fields else img.height
    frames = img.height // page
    x, y = img.width - tile.width - margin, page - tile.height - margin
    return img.composite([tile] * frames, ["over"] * frames, x=[x] * frames,
                         y=[y + i * page for i in range(frames)]).flatten()  # fmt: skip


@functools.lru_cache(maxsize=16)
def vips_tile(width: int, text: str, size: float, opacity: float):  # noqa: ANN201
    import pyvips

    px = max(1, round(size * width))
    text = pyvips.Image.text(text, fontfile=str(WATERMARK_FONT),
                             font=f"DejaVu Sans Bold {px}", dpi=72)  # fmt: skip
    stroke = max(1, round(px * 0.08))
    outline = text.embed(stroke, stroke, text.width + 2 * stroke, text.height + 2 * stroke)
    outline = outline.morph(pyvips.Image.new_from_array([[255] * 3] * 3), "dilate")
    fill = text.embed(stroke, stroke, outline.width, outline.height)
    alpha = (outline * opacity).cast("uchar")
    return fill.bandjoin([fill, fill, alpha]).copy(interpretation="srgb").copy_memory()


# --- one measurement (a fresh process) --------------------------------------------------------

_state: dict = {}


def _init(engine: str, work: str) -> None:
    _state["engine"], _state["config"] = engine, WORKS[work]()


def _one(path: Path) -> dict[str, tuple[int, int, int]]:
    """Each rendition's (width, height, bytes)."""
    fn = naive_render if _state["engine"] == "naive" else vips_render
    made = fn(path, _state["config"]).items()
    return {k: (*Image.open(io.BytesIO(v)).size, len(v)) for k, v in made}


def measure(engine: str, work: str, pool: int, paths: list[Path]) -> dict:
    """Wall s, CPU s (this process + its workers), peak RSS MB and each rendition's (width,
    height, bytes) of one run; with a pool of 1, also each file's CPU s (in file order)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started, cpu = time.perf_counter(), time.process_time()
    ticks = [cpu]  # CPU clock as each file is done (one process: files in order)
    if engine == "render_many":
        results, failures = render_many(
            [RenderJob(p.stem, p) for p in paths], WORKS[work](), cache_dir=None, workers=pool,
            progress=lambda _: ticks.append(time.process_time()),
        )  # fmt: skip
        assert not failures, failures
        sizes = {
            r.slug: {i.name: (i.width, i.height, len(i.data)) for i in r.renditions}
            for r in results
        }
    elif pool <= 1:
        _init(engine, work)
        sizes = {}
        for p in paths:
            sizes[p.stem] = _one(p)
            ticks.append(time.process_time())
    else:
        with process_pool(pool, _init, (engine, work)) as workers:
            sizes = dict(zip([p.stem for p in paths], workers.map(_one, paths), strict=True))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu += after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    status = Path("/proc/self/status").read_text()
    own = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
    # VmHWM, not ru_maxrss, for this process: Linux carries a parent's peak across exec.
    rss = max(own, after.ru_maxrss if pool > 1 else 0) / 1024
    per_file = [b - a for a, b in zip(ticks, ticks[1:], strict=False)] if pool <= 1 else []
    return {"wall": wall, "cpu": cpu, "rss": rss, "sizes": sizes, "per_file": per_file}


def run_fresh(engine: str, work: str, pool: int, paths: list[Path]) -> dict:
    cmd = [sys.executable, __file__, "--measure", engine, work, str(pool), *map(str, paths)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{engine} {work} pool {pool} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.splitlines()[-1])
    result["load"] = os.getloadavg()[0]
    return result


# --- quality ---------------------------------------------------------------------------------


def psnr(a: Image.Image, b: Image.Image) -> float:
    import numpy

    x = numpy.asarray(a.convert("RGB"), dtype=numpy.float64)
    y = numpy.asarray(b.convert("RGB"), dtype=numpy.float64)
    mse = float(((x - y) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def psnr_800(paths: list[Path], engines: list[str]) -> dict[str, list[float]]:
    """PSNR of each engine's 800 px JPEG (watermark off) against LANCZOS from the full decode."""
    cfg = issue_config(watermark=False)
    scores: dict[str, list[float]] = {e: [] for e in engines}
    for path in paths:
        with Image.open(path) as im:
            full = ImageOps.exif_transpose(im).convert("RGB")
        for engine in engines:
            if engine == "render_many":
                made = render_meme(RenderJob(path.stem, path), cfg).renditions
                data = next(r.data for r in made if r.name == "w800-jpeg")
            else:
                data = (naive_render if engine == "naive" else vips_render)(path, cfg)["w800-jpeg"]
            ours = Image.open(io.BytesIO(data))
            reference = full.resize(ours.size, Image.Resampling.LANCZOS)
            scores[engine].append(psnr(ours, reference))
    return scores


def jpeg_settings(paths: list[Path], rounds: int = 3) -> None:
    """Bytes and encode time of JPEG q85 with and without optimize/progressive on the corpus's
    1600/800/320 images (LANCZOS from the full decode)."""
    images = []
    for path in paths:
        with Image.open(path) as im:
            full = ImageOps.exif_transpose(im).convert("RGB")
        for width in (1600, 800, 320):
            images.append(full.resize(naive_size(RenditionSpec("x", width), *full.size)))
    print(f"JPEG q85 on {len(images)} images ({len(paths)} stills x 1600/800/320), "
          f"median of {rounds}:")  # fmt: skip
    base = None
    for optimize, progressive in ((False, False), (True, False), (False, True), (True, True)):
        times, size = [], 0
        for _ in range(rounds):
            started, size = time.process_time(), 0
            for img in images:
                buf = io.BytesIO()
                img.save(buf, "JPEG", quality=85, optimize=optimize, progressive=progressive)
                size += buf.tell()
            times.append(time.process_time() - started)
        t = statistics.median(times)
        base = base or (t, size)
        print(f"  optimize={optimize!s:5} progressive={progressive!s:5}: "
              f"{size / 1e6:6.2f} MB ({size / base[1] - 1:+6.1%}) "
              f"{t * 1000:6.0f} ms CPU ({t / base[0]:.2f}x)")  # fmt: skip


def encode_floor(work: str, paths: list[Path], rounds: int = 3) -> list[float]:
    """Each still's CPU s spent in encoding alone: the engine's renditions of it, decoded back
    to pixels outside the clock, then saved again with ``encoder_options`` (median of
    ``rounds``, this process). Every engine saves these pixels with these settings, so no
    engine can go below this: naive / floor is the most any engine can be ahead of naive."""
    config = WORKS[work]()
    specs = {spec.name: spec for spec in config.renditions}
    floors = []
    for path in paths:
        made = render_meme(RenderJob(path.stem, path), config).renditions
        pixels = [(specs[r.name], Image.open(io.BytesIO(r.data))) for r in made]
        for _, img in pixels:
            img.load()
        times = []
        for _ in range(rounds):
            started = time.process_time()
            for spec, img in pixels:
                img.save(io.BytesIO(), spec.format.upper(),
                         **encoder_options(spec.format, spec.quality))  # fmt: skip
            times.append(time.process_time() - started)
        floors.append(statistics.median(times))
    return floors


# --- the report ------------------------------------------------------------------------------


def report(title: str, runs: dict[tuple[str, int], list[dict]], count: int) -> None:
    """One table: per pool size and engine, medians of the rounds, and ratios both by wall time
    (images/s) and by CPU (images per CPU second: what one core does, whatever the load)."""
    print(f"\n{title} ({count} images; medians of {len(next(iter(runs.values())))} rounds)")
    print(f"  {'pool':>4} {'engine':12} {'images/s':>8} {'CPU s/img':>9} {'peak RSS':>9}  "
          f"{'vs naive':>8} {'vs pyvips':>9}  {'CPU vs naive':>12} {'vs pyvips':>9}  "
          f"{'kB/img':>6}  load avg")  # fmt: skip
    for pool in POOLS:
        rate, cpu = {}, {}
        for engine in ENGINES:
            if (engine, pool) in runs:
                rows = runs[engine, pool]
                rate[engine] = count / statistics.median(r["wall"] for r in rows)
                cpu[engine] = statistics.median(r["cpu"] for r in rows) / count
        for engine in rate:
            rows = runs[engine, pool]
            rss = statistics.median(r["rss"] for r in rows)
            loads = [r["load"] for r in rows]
            load = f"{statistics.median(loads):.1f} ({min(loads):.1f}-{max(loads):.1f})"
            vips_wall = f"{rate[engine] / rate['pyvips']:8.2f}x" if "pyvips" in rate else ""
            vips_cpu = f"{cpu['pyvips'] / cpu[engine]:8.2f}x" if "pyvips" in cpu else ""
            written = sum(n for made in rows[0]["sizes"].values() for *_, n in made.values())
            print(f"  {pool:>4} {engine:12} {rate[engine]:8.2f} {cpu[engine]:9.3f} {rss:6.0f} MB  "
                  f"{rate[engine] / rate['naive']:7.2f}x {vips_wall:>9}  "
                  f"{cpu['naive'] / cpu[engine]:11.2f}x {vips_cpu:>9}  "
                  f"{written / count / 1000:6.0f}  {load}")  # fmt: skip


def report_kinds(
    runs: dict[tuple[str, int], list[dict]], paths: list[Path], floor: list[float] | None = None
) -> None:
    """Pool 1, CPU s per image by kind of file (medians of the rounds): where the ratios come
    from. A JPEG photo can be decoded at a DCT reduction and each width made from the
    previous; a PNG or WebP is decoded in full by every engine. With ``floor`` (encode_floor),
    also the encoding alone and the ceiling it sets: naive / floor."""
    kinds = [p.stem.rstrip("0123456789") for p in paths]
    engines = [e for e in ENGINES if (e, 1) in runs]
    print("  pool 1, CPU s/img by kind of file:")
    for kind in [*dict.fromkeys(kinds), "all"]:
        mine = [kind in ("all", k) for k in kinds]
        cpu = {}
        for engine in engines:
            rounds = [sum(t for t, m in zip(r["per_file"], mine, strict=True) if m)
                      for r in runs[engine, 1]]  # fmt: skip
            cpu[engine] = statistics.median(rounds) / sum(mine)
        figures = "  ".join(f"{e} {c:.3f}" for e, c in cpu.items())
        ratio = cpu["naive"] / cpu["render_many"]
        bound = ""
        if floor is not None:
            encode = sum(f for f, m in zip(floor, mine, strict=True) if m) / sum(mine)
            bound = f"; encoding alone {encode:.3f}, ceiling {cpu['naive'] / encode:.2f}x naive"
        print(f"    {kind:7} x{sum(mine):<3} {figures}  ({ratio:.2f}x naive{bound})")


def dimensions(run: dict) -> dict[str, dict[str, tuple[int, int]]]:
    """Each file's renditions' (width, height) in one measurement."""
    sizes = run["sizes"].items()
    return {slug: {k: (w, h) for k, (w, h, _) in made.items()} for slug, made in sizes}


def have_pyvips() -> bool:
    probe = [sys.executable, "-c", "import pyvips"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def template_overhead(folder: Path, repeat: int = 5) -> None:
    """One process, no cache: the best of ``repeat`` renders of every default rendition of a
    2400x2400 photo with the starter template's four texts, and of the same photo bare, the
    two taken in turn."""
    from pipeline import meme_templates

    template = meme_templates.starter("astronaut-four")
    assert template is not None and template.image is not None
    photo = folder / "astronaut-2400.jpg"
    with Image.open(template.image) as im:
        im.convert("RGB").resize((2400, 2400), Image.Resampling.BICUBIC).save(photo, quality=90)
    cfg = configuration.parse({})
    texts = ("Read the docs", "Ship it", "The docs were wrong", "Houston 👍")
    jobs = {
        "no text": RenderJob("bare", photo),
        "four-box template": RenderJob("four", photo, texts=texts, boxes=template.boxes),
    }
    times: dict[str, list[float]] = {label: [] for label in jobs}
    for _ in range(repeat):  # in turn, so a load change mid-run weighs on both alike
        for label, job in jobs.items():
            t0 = time.perf_counter()
            render_meme(job, cfg)
            times[label].append(time.perf_counter() - t0)
    best = {label: min(t) for label, t in times.items()}
    for label in jobs:
        print(f"render of a 2400x2400 JPEG, {label:17}: {best[label] * 1000:7.0f} ms "
              f"(best of {repeat} in turn; one process, every default rendition)")  # fmt: skip
    ratio = best["four-box template"] / best["no text"]
    print(f"four-box template meme / same image without text: {ratio:.2f}x (target <= 1.20x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", type=int, default=1, help="corpus size x (1: 6 stills)")
    parser.add_argument("--jpeg-settings", action="store_true", help="time JPEG encoder options")
    parser.add_argument("--only-template", action="store_true",
                        help="only the four-box template figure")  # fmt: skip
    args = parser.parse_args()
    if args.only_template:
        with tempfile.TemporaryDirectory() as tmp:
            template_overhead(Path(tmp))
        return
    engines = list(ENGINES) if have_pyvips() else [e for e in ENGINES if e != "pyvips"]
    if "pyvips" not in engines:
        print("pyvips not installed (pip install -e '.[bench]'): measuring naive and render_many")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        stills, animated = make_corpus(folder, args.scale)
        total = sum(p.stat().st_size for p in stills + animated)
        print(f"corpus: {len(stills)} stills + {len(animated)} animated GIFs "
              f"({total / 1e6:.1f} MB); cores: {os.cpu_count()}; "
              f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        if args.jpeg_settings:
            jpeg_settings(stills)
        groups = [(work, kind, paths) for work in WORKS
                  for kind, paths in (("stills", stills), ("animated", animated))]  # fmt: skip
        runs: dict[tuple[str, str], dict[tuple[str, int], list[dict]]] = {}
        for r in range(args.rounds):
            order = engines[r % len(engines) :] + engines[: r % len(engines)]
            for work, kind, paths in groups:
                for pool in POOLS:
                    for engine in order:
                        result = run_fresh(engine, work, pool, paths)
                        runs.setdefault((work, kind), {}).setdefault((engine, pool), [])
                        runs[work, kind][engine, pool].append(result)
            print(f"round {r + 1} done, load average {os.getloadavg()[0]:.1f}")
        for (work, kind), group in runs.items():
            naive, ours = (dimensions(group[engine, 1][0]) for engine in ("naive", "render_many"))
            assert ours == naive, f"{work} {kind}: rendition sizes differ from the naive loop's"
            paths = stills if kind == "stills" else animated
            report(f"{work} work, {kind}", group, len(paths))
            report_kinds(group, paths, encode_floor(work, paths) if kind == "stills" else None)
        print("\nrendition sizes: render_many == naive loop on every file and rendition")

        scores = psnr_800(stills, engines)
        print("\nPSNR of the 800 px JPEG vs LANCZOS from the full decode (target >= 38 dB): "
              + ", ".join(f"{e} median {statistics.median(s):.1f} dB (min {min(s):.1f})"
                          for e, s in scores.items()))  # fmt: skip

        huge = folder / "huge" / "huge.jpg"
        huge.parent.mkdir()
        gradient = Image.radial_gradient("L").resize((8660, 5774)).convert("RGB")
        gradient.save(huge, quality=85)
        del gradient
        for work in WORKS:
            peaks = {e: run_fresh(e, work, 1, [huge])["rss"] for e in engines}
            print(f"peak RSS rendering a 50 MP JPEG, {work} work (fresh process, limit 400 MB): "
                  + ", ".join(f"{e} {mb:.0f} MB" for e, mb in peaks.items()))  # fmt: skip
        print()
        template_overhead(folder)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--measure"]:
        engine, work, pool, *files = sys.argv[2:]
        print(json.dumps(measure(engine, work, int(pool), [Path(f) for f in files])))
    else:
        main()

"""Rendition throughput: render_many (process pool, draft decoding) against a naive Pillow loop.

Makes its own corpus in a temp dir: 12-megapixel phone-style JPEGs with EXIF (orientation,
camera make), PNG phone screenshots and animated GIFs. Renders the default rendition set
(``config.parse({})``) with render_many (all cores, no cache) and with a naive loop (one
process, full decode and LANCZOS from the full image for every rendition), prints images/s for
both and the ratio, asserts both made renditions of identical dimensions, then prints the peak
RSS of a fresh process rendering a 50-megapixel JPEG.

    .venv/bin/python bench/render.py [--count 12] [--workers 0]
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps, ImageSequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import config as configuration  # noqa: E402
from pipeline.config import RenditionSpec  # noqa: E402
from pipeline.imaging import RenderJob, render_many, render_meme  # noqa: E402

SAMPLES = sorted((ROOT / "samples").glob("*.png")) + sorted((ROOT / "samples").glob("*.jpg"))


def make_corpus(folder: Path, count: int) -> list[Path]:
    """count files: about half 12 MP JPEGs, a third PNG screenshots, the rest animated GIFs."""
    paths = []
    noise = Image.effect_noise((4000, 3000), 24).convert("RGB")
    for i in range(count):
        sample = Image.open(SAMPLES[i % len(SAMPLES)]).convert("RGB")
        kind = i % 6
        if kind in (0, 1, 2):  # phone photo, some stored rotated (Orientation 6)
            photo = Image.blend(sample.resize((4000, 3000), Image.Resampling.BICUBIC), noise, 0.08)
            exif = Image.Exif()
            exif[0x010F] = "BenchCam"
            exif[0x0110] = "Model 12"
            if kind == 1:
                photo = photo.transpose(Image.Transpose.ROTATE_90)
                exif[0x0112] = 6
            path = folder / f"photo{i}.jpg"
            photo.save(path, "JPEG", quality=90, exif=exif)
        elif kind in (3, 4):  # phone screenshot: flat UI with text-like rows and a picture
            shot = Image.new("RGB", (1170, 2532), (245, 245, 245))
            draw = ImageDraw.Draw(shot)
            for row in range(60, 2400, 90):
                draw.rectangle((60, row, 60 + (row * 7) % 900 + 150, row + 40), fill=(40, 40, 40))
            shot.paste(sample.resize((1050, 700)), (60, 900))
            path = folder / f"shot{i}.png"
            shot.save(path)
        else:  # animated GIF, 24 frames
            frames = []
            base = sample.resize((480, 320))
            for f in range(24):
                frame = base.copy()
                ImageDraw.Draw(frame).ellipse((f * 18, 120, f * 18 + 60, 180), fill=(255, 0, 0))
                frames.append(frame)
            path = folder / f"anim{i}.gif"
            frames[0].save(path, save_all=True, append_images=frames[1:], duration=80, loop=0)
        paths.append(path)
    return paths


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


def naive_render(path: Path, specs: tuple[RenditionSpec, ...]) -> dict[str, tuple[int, int]]:
    """What a straightforward script does: decode in full and resize from it every time."""
    sizes = {}
    for spec in specs:
        with Image.open(path) as im:
            animated = getattr(im, "is_animated", False) and spec.format in ("webp", "gif")
            frames = [f.convert("RGB") for f in ImageSequence.Iterator(im)] if animated else None
            img = ImageOps.exif_transpose(im).convert("RGB")
        size = naive_size(spec, *img.size)
        out = io.BytesIO()
        fmt = spec.format.upper()

        def shape(frame: Image.Image, spec=spec, size=size) -> Image.Image:
            if spec.fit == "cover" and spec.height:
                return ImageOps.fit(frame, size, Image.Resampling.LANCZOS)
            if spec.fit == "pad" and spec.height:
                return ImageOps.pad(frame, size, Image.Resampling.LANCZOS, color="#000000")
            return frame.resize(size, Image.Resampling.LANCZOS)

        if frames:
            done = [shape(f) for f in frames]
            done[0].save(out, fmt, save_all=True, append_images=done[1:], quality=spec.quality)
        else:
            shape(img).save(out, fmt, quality=spec.quality)
        result = Image.open(io.BytesIO(out.getvalue()))
        sizes[spec.name] = result.size
    return sizes


def peak_rss_mb(source: Path, mode: str) -> float:
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(ROOT)!r})
        from pipeline import config
        cfg = config.parse({{}})
        if {mode!r} == "engine":
            from pipeline.imaging import RenderJob, render_meme
            render_meme(RenderJob("huge", Path({str(source)!r}), "BIG", "PHOTO"), cfg)
        else:
            sys.path.insert(0, {str(ROOT / "bench")!r})
            from render import naive_render
            naive_render(Path({str(source)!r}), cfg.renditions)
        # VmHWM, not ru_maxrss: Linux carries the parent's peak into ru_maxrss across exec.
        status = Path("/proc/self/status").read_text()
        print(next(l.split()[1] for l in status.splitlines() if l.startswith("VmHWM:")))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=12, help="corpus size (default 12)")
    parser.add_argument("--workers", type=int, default=0, help="pool size (0: one per core)")
    args = parser.parse_args()
    cfg = configuration.parse({})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        corpus = make_corpus(folder, args.count)
        print(
            f"corpus: {len(corpus)} files in {time.perf_counter() - t0:.1f}s "
            f"({sum(p.stat().st_size for p in corpus) / 1e6:.1f} MB); cores: {os.cpu_count()}"
        )
        print(f"renditions: {', '.join(s.name for s in cfg.renditions)}")

        naive, naive_each = {}, {}
        for p in corpus:
            t0 = time.perf_counter()
            naive[p.stem] = naive_render(p, cfg.renditions)
            naive_each[p.stem] = time.perf_counter() - t0
        naive_s = sum(naive_each.values())

        t0 = time.perf_counter()
        jobs = [RenderJob(p.stem, p) for p in corpus]
        results, failures = render_many(jobs, cfg, cache_dir=None, workers=args.workers)
        engine_s = time.perf_counter() - t0
        assert not failures, failures
        for result in results:
            ours = {r.name: (r.width, r.height) for r in result.renditions}
            assert ours == naive[result.slug], (result.slug, ours, naive[result.slug])

        n = len(corpus)
        print(
            f"naive loop (1 process, full decode per rendition): {naive_s:6.1f}s "
            f"{n / naive_s:6.2f} images/s"
        )
        print(
            f"render_many (pool, draft decode, reducing_gap):     {engine_s:6.1f}s "
            f"{n / engine_s:6.2f} images/s"
        )
        print(f"speed-up: {naive_s / engine_s:.1f}x (target >= 3x); rendition sizes identical")

        # The same engine in this one process, per kind of file: what the pool multiplies.
        kinds: dict[str, list[float]] = {}
        for p in corpus:
            t0 = time.perf_counter()
            render_meme(RenderJob(p.stem, p), cfg)
            kind = p.stem.rstrip("0123456789")
            kinds.setdefault(kind, [0.0, 0.0])
            kinds[kind][0] += naive_each[p.stem]
            kinds[kind][1] += time.perf_counter() - t0
        for kind, (slow, fast) in kinds.items():
            print(
                f"  one process, {kind:5}: naive {slow:5.1f}s engine {fast:5.1f}s "
                f"= {slow / fast:.1f}x"
            )
        print(
            f"  (pool of {args.workers or os.cpu_count()} over the engine's one-process time: "
            f"{sum(f for _, f in kinds.values()) / engine_s:.1f}x; "
            f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
        )

        huge = folder / "huge.jpg"
        gradient = Image.radial_gradient("L").resize((8660, 5774)).convert("RGB")
        gradient.save(huge, quality=85)
        del gradient
        print(
            f"peak RSS rendering a 50 MP JPEG (fresh process, VmHWM): "
            f"engine {peak_rss_mb(huge, 'engine'):.0f} MB (limit 400 MB), "
            f"naive {peak_rss_mb(huge, 'naive'):.0f} MB"
        )


if __name__ == "__main__":
    main()

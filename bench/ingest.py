"""Ingest and catalog speed: `memes import` against a plain Pillow loop; `memes list --json`.

Makes its own corpus in a temp dir: --count distinct 12-megapixel (4000x3000) phone-style
JPEGs, quality 90, with camera EXIF (Make, Model, Orientation, DateTimeOriginal, GPS); some are
stored sideways with Orientation 6 the way phones do. Generation time is printed, not counted.

1. Baseline, one process: ``Image.open(p).load()`` for every file (a full decode).
2. Ours: ``memes import --json manifest.csv`` into a fresh library, timed as the whole command
   (Python start-up, imports, validation, hashing, storing the originals, the catalog). Prints
   images/s for both and the ratio (target: at least 3x) and asserts every file was added.
3. ``memes list --json`` on a 10,000-meme library (most published with six renditions each,
   so the catalog holds what a real one does), timed as the whole command over a few runs
   against ``python -c pass`` in the same run (target: under 1 s).

    .venv/bin/python bench/ingest.py [--count 100] [--rounds 3] [--memes 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import RENDITIONS  # noqa: E402

from pipeline.library import Library, NewMeme, RenditionAsset  # noqa: E402

SAMPLES = sorted((ROOT / "samples").glob("*.png")) + sorted((ROOT / "samples").glob("*.jpg"))
SIZE = (4000, 3000)
LIST_TARGET_S = 1.0
INGEST_TARGET_X = 3.0

# --- corpus ----------------------------------------------------------------------------------

_bases: dict[int, Image.Image] = {}


def _base(index: int) -> Image.Image:
    """A photo-like 12 MP frame: a sample upscaled with sensor-ish noise (made once per worker,
    so 100 files cost 100 JPEG encodes, not 100 resizes)."""
    key = index % len(SAMPLES)
    if key not in _bases:
        sample = Image.open(SAMPLES[key]).convert("RGB").resize(SIZE, Image.Resampling.BICUBIC)
        noise = Image.effect_noise(SIZE, 40).convert("RGB")
        _bases[key] = Image.blend(sample, noise, 0.15)  # ~3.4 MB at q90, like a phone
    return _bases[key]


def _phone_exif(index: int, orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "BenchPhone"  # Make
    exif[0x0110] = f"Model {12 + index % 4}"  # Model
    exif[0x0112] = orientation
    exif[0x0131] = "17.1.2"  # Software
    exif[0x0132] = "2025:06:01 12:00:00"  # DateTime
    exif[0x8825] = {  # GPS IFD
        1: "N",
        2: (52.0, 22.0, float(index % 60)),
        3: "E",
        4: (4.0, 53.0, 42.5),
        6: 12.5,
    }
    exif.get_ifd(0x8769)[0x9003] = "2025:06:01 12:00:00"  # DateTimeOriginal
    return exif


def make_photo(folder: str, index: int) -> str:
    """One distinct phone photo: the base with big shapes and a label placed by index, so each
    file differs in content (not just bytes) and its perceptual hash moves too."""
    photo = _base(index).copy()
    draw = ImageDraw.Draw(photo)
    x, y = (index * 373) % 2400, (index * 211) % 1600
    hue = (index * 47 % 256, index * 91 % 256, index * 13 % 256)
    draw.ellipse((x, y, x + 1600, y + 1400), fill=hue)
    draw.rectangle((3000 - x, 2000 - y // 2, 3900 - x // 3, 2900), fill=hue[::-1])
    draw.text((200 + x // 2, 200 + y // 3), f"photo {index}", fill="white", font_size=240)
    orientation = 1
    if index % 4 == 1:  # held upright: stored landscape, displayed portrait
        orientation = 6
    path = Path(folder) / f"IMG_{4000 + index}.jpg"
    photo.save(path, "JPEG", quality=90, exif=_phone_exif(index, orientation))
    return str(path)


def make_corpus(folder: Path, count: int) -> list[Path]:
    workers = min(count, os.cpu_count() or 1)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        made = list(pool.map(make_photo, [str(folder)] * count, range(count), chunksize=4))
    return [Path(p) for p in made]


# --- ingest ----------------------------------------------------------------------------------


def memes_command() -> list[str]:
    """The installed console script beside this interpreter (what staff run), else -m."""
    script = Path(sys.executable).with_name("memes")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from pipeline.cli import main; main()"]


def baseline_decode(paths: list[Path]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of a full decode of every file in this process."""
    start, cpu = time.perf_counter(), time.process_time()
    for path in paths:
        with Image.open(path) as image:
            image.load()
    return time.perf_counter() - start, time.process_time() - cpu


def children_cpu() -> float:
    """CPU seconds of waited-for child processes, their own pool workers included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def import_corpus(folder: Path, paths: list[Path], run: int) -> tuple[float, float, dict]:
    """A fresh library + manifest, then the whole `memes import` command, timed."""
    site = folder / f"site{run}"
    site.mkdir()
    (site / "config.yaml").write_text("library: library\n", encoding="utf-8")
    manifest = site / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["file", "caption", "title", "tags"])
        for i, path in enumerate(paths):
            writer.writerow([str(path), f"Holiday photo number {i}", f"Photo {i}", "bench,photo"])
    start, cpu = time.perf_counter(), children_cpu()
    done = subprocess.run(
        [*memes_command(), "--config", str(site / "config.yaml"), "import", "--json",
         str(manifest)],
        capture_output=True, text=True, cwd=site,
    )  # fmt: skip
    elapsed, cpu = time.perf_counter() - start, children_cpu() - cpu
    if done.returncode != 0:
        sys.exit(f"memes import failed ({done.returncode}):\n{done.stderr}")
    return elapsed, cpu, json.loads(done.stdout)


# --- list ------------------------------------------------------------------------------------

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def build_library(root: Path, count: int) -> float:
    """count memes through Library.add (the real insert path: unique slug, one transaction
    each); 80% then published with six renditions, written in one bulk transaction (a bench
    shortcut for what `memes publish` records meme by meme)."""
    start = time.perf_counter()
    with Library(root) as library:
        slugs = []
        for i in range(count):
            meme = library.add(
                NewMeme(
                    title=f"{i} times the build finished before the coffee did",
                    caption=f"Caption {i}: a cat staring at a laptop screen — مرحبا ☕",
                    alt=f"A cat staring at a laptop screen, variant {i}",
                    category=("funny", "informative", "tech")[i % 3],
                    tags=(f"tag{i % 40}", f"tag{(i * 7) % 40}"),
                    credit="@someone",
                    original_name=f"IMG_{i}.jpg",
                    sha256=f"{i:064x}",
                    phash=f"{(i * 0x9E3779B97F4A7C15) % 2**64:016x}",
                    ext="jpg",
                    width=4000,
                    height=3000,
                    format="JPEG",
                    frames=1,
                    publish_at=T0 + timedelta(hours=i),
                    top_text="TOP TEXT" if i % 5 == 0 else "",
                    bottom_text="BOTTOM TEXT" if i % 5 == 0 else "",
                ),
                now=T0 + timedelta(hours=i),
            )
            slugs.append(meme.slug)
    published = slugs[: count * 4 // 5]
    db = sqlite3.connect(root / "catalog.sqlite", isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        rows = db.execute("SELECT id, slug FROM memes").fetchall()
        ids = {slug: meme_id for meme_id, slug in rows}
        db.executemany(
            "UPDATE memes SET status='published', published_at=publish_at,"
            " placeholder_color='#7a6b5c', blurhash='LEHV6nWB2yk8pyo0adR*.7kCMdnj' WHERE slug=?",
            [(s,) for s in published],
        )
        db.executemany(
            "INSERT INTO assets VALUES (?,?,?,?,?,?,?,?)",
            [
                (ids[s], a.name, a.key, a.width, a.height, a.content_type, a.bytes, 0)
                for s in published
                for a in (
                    RenditionAsset(name, f"i/{s}/{name}.{ids[s]:012x}.{t[6:]}", w, h, t, 50_000)
                    for name, w, h, t in RENDITIONS
                )
            ],
        )
        db.execute("COMMIT")
    finally:
        db.close()
    return time.perf_counter() - start


def time_command(argv: list[str], runs: int, cwd: Path) -> tuple[list[float], bytes]:
    times, out = [], b""
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, cwd=cwd)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            sys.exit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr.decode()}")
        out = done.stdout
    return times, out


# --- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100, help="photos to import (default 100)")
    parser.add_argument("--memes", type=int, default=10_000, help="library size for list")
    parser.add_argument("--runs", type=int, default=5, help="runs of memes list")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of baseline + import")
    args = parser.parse_args()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="memes-bench-") as tmp:
        folder = Path(tmp)
        photos = folder / "photos"
        photos.mkdir()
        t0 = time.perf_counter()
        corpus = make_corpus(photos, args.count)
        size_mb = sum(p.stat().st_size for p in corpus) / 1e6
        print(
            f"corpus: {len(corpus)} JPEGs {SIZE[0]}x{SIZE[1]} q90 with EXIF, {size_mb:.0f} MB, "
            f"made in {time.perf_counter() - t0:.1f}s (not counted); cores: {os.cpu_count()}"
        )

        # Alternate rounds, best of each: a machine shared with other work slows a two-process
        # import more than a one-process loop, so single runs swing the ratio.
        n, base_s, ours_s, base_cpu, ours_cpu = len(corpus), *[float("inf")] * 4
        for run in range(args.rounds):
            wall, cpu = baseline_decode(corpus)
            base_s, base_cpu = min(base_s, wall), min(base_cpu, cpu)
            wall, cpu, summary = import_corpus(folder, corpus, run)
            ours_s, ours_cpu = min(ours_s, wall), min(ours_cpu, cpu)
            assert not summary["rejected"], summary["rejected"]
            assert len(summary["added"]) == n, f"{len(summary['added'])} of {n} added"
        added = len(summary["added"])
        print(f"best of {args.rounds} alternating rounds each:")
        print(f"baseline: Image.open(p).load(), 1 process: {base_s:6.2f}s {n / base_s:6.2f} img/s")
        print(
            f"ours:     memes import (whole command):    {ours_s:6.2f}s {n / ours_s:6.2f} img/s "
            f"({added} added, {len(summary['warnings'])} near-duplicate warnings)"
        )
        print(
            f"CPU:      baseline {base_cpu / n * 1000:.0f} ms/img, ours {ours_cpu / n * 1000:.0f} "
            f"ms/img all processes ({base_cpu / ours_cpu:.2f}x less work; the wall-clock ratio "
            f"adds the cores, {os.cpu_count()} here, less whatever else runs)"
        )
        ratio = base_s / ours_s
        verdict = "ok" if ratio >= INGEST_TARGET_X else "MISSED"
        print(f"ratio:    {ratio:.2f}x the plain loop (target >= {INGEST_TARGET_X:g}x: {verdict})")
        rows.append(("plain decode loop", f"{n / base_s:.2f} img/s", "baseline"))
        rows.append(("memes import", f"{n / ours_s:.2f} img/s", f"{ratio:.2f}x (>= 3x: {verdict})"))

        site = folder / "big"
        site.mkdir()
        (site / "config.yaml").write_text("library: library\n", encoding="utf-8")
        build_s = build_library(site / "library", args.memes)
        print(f"library:  {args.memes} memes built in {build_s:.1f}s (not counted)")
        python_s, _ = time_command([sys.executable, "-c", "pass"], args.runs, site)
        list_s, out = time_command([*memes_command(), "list", "--json"], args.runs, site)
        listed = json.loads(out)
        assert len(listed) == args.memes, f"{len(listed)} of {args.memes} listed"
        best, median = min(list_s), statistics.median(list_s)
        verdict = "ok" if median < LIST_TARGET_S else "MISSED"
        print(
            f"list:     memes list --json ({len(out) / 1e6:.1f} MB out), {args.runs} runs: "
            f"best {best:.3f}s median {median:.3f}s (target < {LIST_TARGET_S:g}s: {verdict}); "
            f"python -c pass: best {min(python_s):.3f}s"
        )
        rows.append(("python -c pass", f"{min(python_s):.3f}s", "start-up alone"))
        rows.append(
            (f"memes list --json ({args.memes})", f"{median:.3f}s median",
             f"best {best:.3f}s (< 1 s: {verdict})")
        )  # fmt: skip

    width = max(len(r[0]) for r in rows)
    print()
    for name, figure, note in rows:
        print(f"  {name:<{width}}  {figure:>16}  {note}")
    print(f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()

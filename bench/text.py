"""Adding a meme with the most text allowed: bounded work, whatever the words (issue 10).

Times the whole `memes add` command (Python start-up, the image check, the text checks and
fitting the overlay text to the image, the catalog) on a 1200x900 JPEG, best of --runs each,
into a fresh library per case:

1. baseline: a short caption, no overlay text;
2. a 300-character overlay text (the maximum) of words, at the top;
3. a 300-character overlay text that is one word (no break point: the worst case to fit);
4. the longest text allowed in every field: title 200, caption 2,000, alt 2,000, credit 200,
   top and bottom 300 characters each.

Prints seconds, the ratio to the baseline and the time the text adds to it (target: under
1 s for every case; the whole command's own cost depends on the machine and its load).

    .venv/bin/python bench/text.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import textcheck  # noqa: E402

TARGET_S = 1.0


def words(length: int, word: str = "WHEN YOU ") -> str:
    return (word * (length // len(word) + 1))[:length].strip().ljust(length, "X")


def cases() -> list[tuple[str, list[str]]]:
    longest = [
        "--title", words(textcheck.MAX_TITLE, "Title "),
        "--caption", words(textcheck.MAX_CAPTION, "caption "),
        "--alt", words(textcheck.MAX_ALT, "alt "),
        "--credit", words(textcheck.MAX_CREDIT, "credit "),
        "--top", words(textcheck.MAX_OVERLAY),
        "--bottom", words(textcheck.MAX_OVERLAY, "THEY SAID "),
    ]  # fmt: skip
    return [
        ("baseline: caption only", ["--caption", "Monday again"]),
        (f"top text, {textcheck.MAX_OVERLAY} chars of words",
         ["--caption", "x", "--top", words(textcheck.MAX_OVERLAY)]),
        (f"top text, one {textcheck.MAX_OVERLAY}-char word",
         ["--caption", "x", "--top", "W" * textcheck.MAX_OVERLAY]),
        ("every field at its maximum", longest),
    ]  # fmt: skip


def image(path: Path, seed: int) -> Path:
    noise = Image.effect_noise((1200, 900), 30 + seed).convert("RGB")
    noise.save(path, "JPEG", quality=85)
    return path


def time_add(folder: Path, args: list[str], runs: int) -> float:
    """Best wall time of `memes add FILE ARGS` over `runs` runs, each a new image."""
    best = float("inf")
    for run in range(runs):
        picture = image(folder / f"{run}.jpg", run)
        argv = [sys.executable, "-m", "pipeline.cli", "add", str(picture), *args]
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=folder, capture_output=True, text=True)
        best = min(best, time.perf_counter() - start)
        if done.returncode != 0:
            sys.exit(f"memes add failed ({done.returncode}): {done.stderr.strip()}")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per case (default 3)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="memes-bench-text-") as tmp:
        baseline = None
        for n, (name, add_args) in enumerate(cases()):
            folder = Path(tmp) / str(n)
            folder.mkdir()
            (folder / "config.yaml").write_text("library: memes\n", encoding="utf-8")
            seconds = time_add(folder, add_args, args.runs)
            baseline = baseline or seconds
            extra = seconds - baseline
            verdict = "ok" if extra < TARGET_S else "MISSED"
            rows.append((name, f"{seconds:.3f}s", f"{seconds / baseline:.2f}x baseline, "
                         f"text adds {extra:+.3f}s (< {TARGET_S:g} s: {verdict})"))  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print(f"memes add, whole command, best of {args.runs}:")
    for name, figure, note in rows:
        print(f"  {name:<{width}}  {figure:>8}  {note}")
    print(f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()

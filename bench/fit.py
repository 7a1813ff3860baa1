"""Text fitting: how long overlay.layout takes to fit (or refuse) a text, by its length.

Issue 10: fitting used to be quadratic (500 characters 1.7 s, 1,000 characters 9.6 s, 10,000
characters still running after 10 minutes). Prints the time for a 300-character text (the
overlay text limit), for the longest text a field takes (2,000, a caption) and for 10,000
characters, each as words and as one unbreakable word, in a classic top box and in a small
template box; then the ratio of the longest to the 300-character time (near-linear: about 7
for 2,000 / 300).

    .venv/bin/python bench/fit.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import config as configuration  # noqa: E402
from pipeline import overlay  # noqa: E402

WORDS = "when the deploy script works on the first try we all go home early "


def timed(text: str, boxes: tuple[overlay.TextBox, ...] | None) -> tuple[float, str]:
    cfg = configuration.parse({}).overlay
    overlay._place.cache_clear()
    t0 = time.perf_counter()
    try:
        plan = overlay.layout(1000, 1000, (text,), cfg, boxes)
        outcome = f"fits, {plan.blocks[0].size} px, {len(plan.blocks[0].lines)} lines"
    except overlay.OverlayTextError:
        outcome = "refused (does not fit)"
    return time.perf_counter() - t0, outcome


def main() -> None:
    small = (overlay.TextBox(x=0.1, y=0.1, width=0.4, height=0.3),)
    overlay.layout(1000, 1000, ("WARM UP 🎉 你好",), configuration.parse({}).overlay)
    for label, boxes in (("classic top box", None), ("template box 40% x 30%", small)):
        times = {}
        for length in (300, 2000, 10000):
            for kind, source in (("words", WORDS), ("one word", "W")):
                text = (source * (length // len(source) + 1))[:length]
                seconds, outcome = timed(text, boxes)
                times[(length, kind)] = seconds
                print(
                    f"{label:24} {length:6} chars of {kind:8}: {seconds * 1000:8.1f} ms  {outcome}"
                )
        ratio = times[(2000, "words")] / max(times[(300, "words")], 1e-9)
        print(f"{label:24} 2,000 / 300 characters of words: {ratio:.1f}x (linear would be 6.7x)")


if __name__ == "__main__":
    main()

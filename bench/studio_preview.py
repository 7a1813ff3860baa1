"""The studio's live preview (issue 12: "under 300 ms for a 1080 px meme").

Through Flask's test client on a fresh library (no network, no browser: the server's share
of the wait), --runs requests each, every one with other words so nothing is cached:

1. baseline: an uploaded 1080x1080 photo with the classic top and bottom texts
   (`/uploads/<token>/preview?top=..&bottom=..`), what the Make page asks while typing;
2. a template meme: a 1080x1080 template with two drawn boxes, a text in each
   (`/templates/<name>/preview?text=..&text=..`).

Prints the median and the slowest request of each, and the template's median as a ratio of
the baseline's (target: a median under 300 ms).

    .venv/bin/python bench/studio_preview.py [--runs 20]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from factories import jpeg_bytes  # noqa: E402
from studio_helpers import make_users, new_app, sign_in, studio_config, token  # noqa: E402

TARGET_MS = 300.0


def timed(client, url: str, queries: list[dict]) -> list[float]:
    times = []
    for query in queries:
        start = time.perf_counter()
        response = client.get(url, query_string=query)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.get_data(as_text=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as folder:
        config = studio_config(Path(folder), limits={"max_bytes": 5_000_000,
                                                     "max_pixels": 64_000_000})  # fmt: skip
        make_users(config)
        client = sign_in(new_app(config), "ada")
        photo = jpeg_bytes(1080, 1080, 4)
        upload = client.post("/uploads", data={"file": (io.BytesIO(photo), "photo.jpg")},
                             headers={"X-CSRFToken": token(client, "/make")})  # fmt: skip
        preview = upload.get_json()["preview"]
        made = client.post("/templates", data={
            "csrf_token": token(client, "/templates"), "name": "bench-two",
            "image": (io.BytesIO(photo), "template.jpg"),
            "box_x": ["5%", "50%"], "box_y": ["5%", "60%"],
            "box_width": ["90%", "45%"], "box_height": ["25%", "35%"],
        }, content_type="multipart/form-data")  # fmt: skip
        assert made.status_code == 303, made.get_data(as_text=True)
        words = [f"WHEN THE BUILD {n} IS GREEN" for n in range(runs + 1)]
        classic = [{"top": w, "bottom": f"ON THE {n}TH TRY"} for n, w in enumerate(words)]
        boxes = [{"text": [w, f"ON THE {n}TH TRY"]} for n, w in enumerate(words)]
        timed(client, preview, classic[:1])  # fonts loaded, caches warm: not counted
        base = timed(client, preview, classic[1:])
        template = timed(client, "/templates/bench-two/preview", boxes[1:])
    for label, times in (("baseline: classic top+bottom, 1080x1080", base),
                         ("template meme, 2 boxes, 1080x1080", template)):  # fmt: skip
        print(f"{label:44} median {statistics.median(times):6.1f} ms   "
              f"slowest {max(times):6.1f} ms   ({len(times)} requests)")
    ratio = statistics.median(template) / statistics.median(base)
    verdict = "under" if statistics.median(template) < TARGET_MS else "OVER"
    print(f"template / baseline median: {ratio:.2f}x; {verdict} the {TARGET_MS:.0f} ms target")


if __name__ == "__main__":
    main()

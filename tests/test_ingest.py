"""`memes add` / `memes import`: judged by content, deduplicated, nothing half-written."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from factories import animated_gif, jpeg, noise_image, png, save
from PIL import Image
from processes import children_of, wait_until_gone

from pipeline.cli import cli
from pipeline.errors import UsageError
from pipeline.ingest import read_manifest
from pipeline.library import Library

MEMES = [sys.executable, "-m", "pipeline.cli"]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "config.yaml").write_text(
        "limits: {max_pixels: 4000000, max_bytes: 3000000}\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MEMES_CONFIG", raising=False)
    return tmp_path


def memes(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def records(workdir: Path):
    with Library(workdir / "memes") as library:
        return library.memes()


def test_add_prints_the_slug_and_queues_the_meme(workdir):
    result = memes("add", str(jpeg(workdir / "a.jpg")), "--caption", "Monday again",
                   "--tag", "Work", "--tag", "work", "--category", "tech")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "monday-again"
    [meme] = records(workdir)
    assert (meme.status, meme.category, meme.tags, meme.alt) == (
        "queued", "tech", ("work",), "Monday again"
    )  # fmt: skip
    assert (meme.width, meme.height, meme.format, meme.frames) == (640, 480, "JPEG", 1)
    original = workdir / "memes" / meme.original_relpath
    assert original.read_bytes() == (workdir / "a.jpg").read_bytes()


def test_add_json_prints_an_array_of_slugs(workdir):
    files = [str(png(workdir / f"{n}.png", seed=n)) for n in range(2)]
    result = memes("add", *files, "--caption", "Same caption", "--json")
    assert json.loads(result.stdout) == ["same-caption", "same-caption-2"]


def corrupt_variants(workdir: Path) -> dict[str, tuple[Path, str]]:
    good = jpeg(workdir / "good.jpg", 800, 600).read_bytes()
    (workdir / "empty.jpg").write_bytes(b"")
    (workdir / "notes.png").write_text("just some text\n")
    (workdir / "page.jpg").write_text("<html><body>hi</body></html>")
    (workdir / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"></svg>')
    (workdir / "cut.jpg").write_bytes(good[: len(good) // 2])
    broken = bytearray(png(workdir / "p.png", 300, 300).read_bytes())
    broken[200:260] = bytes(60)
    (workdir / "broken.png").write_bytes(bytes(broken))
    return {
        "empty.jpg": (workdir / "empty.jpg", "empty file"),
        "notes.png": (workdir / "notes.png", "not an image"),
        "page.jpg": (workdir / "page.jpg", "not an image"),
        "logo.svg": (workdir / "logo.svg", "not an image"),
        "cut.jpg": (workdir / "cut.jpg", "truncated or corrupt"),
        "broken.png": (workdir / "broken.png", "corrupt"),
    }


@pytest.mark.parametrize(
    "name", ["empty.jpg", "notes.png", "page.jpg", "logo.svg", "cut.jpg", "broken.png"]
)
def test_bad_files_are_rejected_with_one_line_and_nothing_kept(workdir, name):
    path, reason = corrupt_variants(workdir)[name]
    result = memes("add", str(path), "--caption", "x")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and reason in lines[0], lines
    assert "Traceback" not in result.output
    assert records(workdir) == []
    assert not any((workdir / "memes" / "originals").rglob("*.*"))


def png_with_header_size(path: Path, width: int, height: int) -> Path:
    """A tiny valid PNG whose header claims width x height: a decompression bomb."""
    data = bytearray(png(path, 8, 8).read_bytes())
    ihdr = bytearray(data[12:29])
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(data))
    return path


def test_a_decompression_bomb_is_refused_from_its_header(workdir):
    # Far over what Pillow opens at all: refused as a bomb before any pixel is read.
    bomb = png_with_header_size(workdir / "bomb.png", 100_000, 100_000)
    started = time.monotonic()
    result = memes("add", str(bomb), "--caption", "boom")
    assert time.monotonic() - started < 5
    assert (result.exit_code, result.stderr.strip()) == (
        1, f"memes: {bomb}: image is too large to open safely (decompression bomb)")  # fmt: skip
    # Within what Pillow opens, over limits.max_pixels (4,000,000 here): refused by that limit,
    # still from the header alone (the 8x8 pixels behind it would decode fine).
    big = png_with_header_size(workdir / "big.png", 5_000, 5_000)
    result = memes("add", str(big), "--caption", "big")
    assert (result.exit_code, result.stderr.strip()) == (
        1, f"memes: {big}: image is 5000x5000 = 25000000 pixels, over limits.max_pixels "
           "(4000000)")  # fmt: skip
    assert records(workdir) == []


def test_animation_counts_frames_times_pixels(workdir):
    ok = animated_gif(workdir / "ok.gif", frames=3, size=(200, 200))
    too_long = animated_gif(workdir / "long.gif", frames=120, size=(200, 200))
    result = memes("add", str(ok), str(too_long), "--caption", "gif")
    assert result.exit_code == 1
    assert "long.gif: animation is 120 frames of 200x200" in result.stderr
    [meme] = records(workdir)
    assert meme.frames == 3


def test_a_file_over_max_bytes_is_refused(workdir):
    big = save(noise_image(2000, 1500, 1), workdir / "big.png", format="PNG", compress_level=0)
    assert big.stat().st_size > 3_000_000
    result = memes("add", str(big), "--caption", "big")
    assert result.exit_code == 1 and "over limits.max_bytes" in result.stderr


def test_unknown_category_and_empty_caption(workdir):
    img = str(jpeg(workdir / "a.jpg"))
    result = memes("add", img, "--caption", "x", "--category", "cats")
    assert result.exit_code == 2 and "--category: unknown category 'cats'" in result.stderr
    assert memes("add", img, "--caption", "  ").exit_code == 2
    assert memes("add", img).exit_code == 2  # missing --caption is a usage error
    assert records(workdir) == []


def test_good_files_are_added_even_when_others_are_rejected(workdir):
    (workdir / "bad.jpg").write_text("nope")
    result = memes("add", str(jpeg(workdir / "a.jpg")), str(workdir / "bad.jpg"), "--caption", "c")
    assert result.exit_code == 1
    assert result.stdout.strip() == "c"
    assert len(records(workdir)) == 1


def test_exact_duplicate_is_rejected_naming_the_existing_slug(workdir):
    img = jpeg(workdir / "a.jpg")
    memes("add", str(img), "--caption", "First post")
    copy = workdir / "renamed-copy.jpg"
    copy.write_bytes(img.read_bytes())
    result = memes("add", str(copy), "--caption", "Repost")
    assert result.exit_code == 1
    assert "duplicate of existing meme 'first-post'" in result.stderr
    assert len(records(workdir)) == 1


def test_near_duplicate_is_added_with_a_warning(workdir):
    original = jpeg(workdir / "a.jpg", 1200, 900, seed=7)
    memes("add", str(original), "--caption", "Original")
    from PIL import Image

    with Image.open(original) as im:
        im.resize((600, 450)).save(workdir / "small.jpg", quality=60)
    result = memes("add", str(workdir / "small.jpg"), "--caption", "Resized repost")
    assert result.exit_code == 0
    assert "looks like existing meme 'original'" in result.stderr
    different = memes("add", str(jpeg(workdir / "b.jpg", seed=99)), "--caption", "Other")
    assert "looks like" not in different.stderr


def test_publish_at_and_alt_defaults(workdir):
    result = memes("add", str(jpeg(workdir / "a.jpg")), "--caption", "Later",
                   "--publish-at", "2031-02-03T04:05:06+01:00")  # fmt: skip
    assert result.exit_code == 0
    [meme] = records(workdir)
    assert meme.publish_at.isoformat() == "2031-02-03T03:05:06+00:00"
    bad = memes(
        "add", str(jpeg(workdir / "b.jpg", seed=3)), "--caption", "x", "--publish-at", "soon"
    )
    assert bad.exit_code == 2 and "publish-at" in bad.output


def test_import_csv_and_yaml_manifests(workdir):
    pics = workdir / "pics"
    jpeg(pics / "a.jpg", seed=1)
    png(pics / "b.png", seed=2)
    (pics / "bad.jpg").write_text("x")
    (workdir / "m.csv").write_text(
        "file,caption,title,category,tags,credit\n"
        'pics/a.jpg,Cap A,Title A,tech,"linux, Open Source",NASA\n'
        "pics/bad.jpg,Cap bad,,,,\n"
        "pics/b.png,,,,,\n",
        encoding="utf-8",
    )
    result = memes("import", "m.csv")
    assert result.exit_code == 1
    assert result.stdout.split() == ["title-a"]
    assert "bad.jpg: not an image" in result.stderr
    assert "b.png: caption: must not be empty" in result.stderr
    assert "1 added, 2 rejected" in result.stderr
    [meme] = records(workdir)
    assert meme.tags == ("linux", "open source") and meme.credit == "NASA"

    (workdir / "m.yaml").write_text(
        f"- file: {pics / 'b.png'}\n  caption: Absolute path\n  tags: [x, y]\n"
        "- {file: pics/missing.jpg, caption: Gone}\n",
        encoding="utf-8",
    )
    result = memes("import", "m.yaml", "--json")
    summary = json.loads(result.stdout)
    assert summary["added"] == ["absolute-path"]
    assert summary["rejected"] == [{"file": str(workdir / "pics/missing.jpg"),
                                    "reason": "no such file"}]  # fmt: skip


def test_two_processes_adding_50_memes_each_at_once(workdir):
    for who in ("a", "b"):
        for n in range(50):
            png(workdir / who / f"{n}.png", 64, 48, seed=hash((who, n)) % 10_000_000)
    env = {**os.environ, "MEMES_CONFIG": str(workdir / "config.yaml")}
    procs = [
        subprocess.Popen(
            [
                *MEMES,
                "add",
                *[str(p) for p in sorted((workdir / who).glob("*.png"))],
                "--caption",
                "Same caption for all",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for who in ("a", "b")
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    slugs = [line for out, _ in outputs for line in out.split()]
    assert len(slugs) == 100 and len(set(slugs)) == 100
    assert len({m.slug for m in records(workdir)}) == 100


def test_kill_9_during_an_import_leaves_a_clean_catalog(workdir):
    pics = workdir / "pics"
    rows = ["file,caption"]
    for n in range(150):
        png(pics / f"{n}.png", 64, 48, seed=n)
        rows.append(f"pics/{n}.png,Meme {n}")
    (workdir / "m.csv").write_text("\n".join(rows) + "\n")
    env = {**os.environ, "MEMES_CONFIG": str(workdir / "config.yaml")}
    proc = subprocess.Popen([*MEMES, "import", "m.csv"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    catalog = workdir / "memes" / "catalog.sqlite"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill it once some, not all, are in
        if catalog.exists():
            count = sqlite3.connect(catalog).execute(
                "SELECT COUNT(*) FROM sqlite_master WHERE name='memes'").fetchone()[0]  # fmt: skip
            if (
                count
                and sqlite3.connect(catalog).execute("SELECT COUNT(*) FROM memes").fetchone()[0] > 5
            ):
                break
        time.sleep(0.02)
    workers = children_of(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert workers and wait_until_gone(workers) == []  # no checking process left behind
    db = sqlite3.connect(catalog)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    added = records(workdir)
    assert 0 < len(added) < 150
    for meme in added:  # no half record: every record has its original on disk
        assert (workdir / "memes" / meme.original_relpath).is_file()
    # and the rest can be imported afterwards
    result = memes("import", "m.csv")
    assert len(records(workdir)) == 150
    assert "already added as meme-" in result.stderr and result.exit_code == 0


def test_size_is_recorded_as_displayed_after_exif_orientation(workdir):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display: a phone photo held upright
    path = jpeg(workdir / "phone.jpg", 400, 300, exif=exif.tobytes())
    assert memes("add", str(path), "--caption", "Upright").exit_code == 0
    [meme] = records(workdir)
    assert (meme.width, meme.height) == (300, 400)


def test_overlay_text_that_cannot_fit_is_refused_at_add_time(workdir):
    img = str(jpeg(workdir / "small.jpg", 400, 60))
    long_top = "WHEN YOU " * 33  # within the 300-character limit, too much for 400x60
    result = memes("add", img, "--caption", "Too long", "--top", long_top)
    assert result.exit_code == 1 and "small.jpg" in result.stderr
    assert records(workdir) == []
    assert not any((workdir / "memes" / "originals").rglob("*.jpg"))  # nothing left behind
    ok = memes("add", img, "--caption", "Fits", "--top", "ONE DOES NOT", "--bottom", "SIMPLY")
    assert ok.exit_code == 0, ok.output
    [meme] = records(workdir)
    assert (meme.top_text, meme.bottom_text) == ("ONE DOES NOT", "SIMPLY")
    assert meme.alt == "ONE DOES NOT / SIMPLY — Fits"  # a meme is an image of text


def test_a_refused_row_leaves_the_original_of_a_later_copy_in_place(workdir):
    # Row 1's caption cannot fit, row 2 is the same bytes with one that does: row 2's meme
    # must keep its original (the workers check every row before the first is added).
    pics = workdir / "pics"
    jpeg(pics / "a.jpg", 200, 150)
    (pics / "a-copy.jpg").write_bytes((pics / "a.jpg").read_bytes())
    for n in range(3):
        png(pics / f"{n}.png", 64, 48, seed=50 + n)
    rows = [
        "file,caption,top",
        f"pics/a.jpg,Too long,{'WHEN YOU ' * 400}",
        "pics/a-copy.jpg,Fits,OK",
    ]
    rows += [f"pics/{n}.png,Other {n}," for n in range(3)]
    (workdir / "m.csv").write_text("\n".join(rows) + "\n")
    result = memes("import", "m.csv")
    assert result.exit_code == 1 and "a.jpg" in result.stderr
    added = records(workdir)
    assert len(added) == 4
    for meme in added:
        assert (workdir / "memes" / meme.original_relpath).is_file(), meme.slug


def test_heic_from_a_phone_is_accepted_by_content(workdir):
    from factories import noise_image

    import pipeline.ingest  # noqa: F401 - registers the HEIF plugin, for writing one here

    path = workdir / "IMG_0001.HEIC"
    noise_image(400, 300, seed=5).save(path, format="HEIF", quality=80)
    renamed = workdir / "photo.jpg"  # the name lies; the content decides
    renamed.write_bytes(path.read_bytes())
    result = memes("add", str(renamed), "--caption", "From a phone")
    assert result.exit_code == 0, result.output
    [meme] = records(workdir)
    assert (meme.format, meme.ext, meme.width, meme.height) == ("HEIF", "heic", 400, 300)


# --- a meme is its image plus its texts; templates --------------------------------------------


def test_the_same_image_with_two_texts_is_two_memes_stored_once(workdir):
    """Issue 11: a template could not be used twice (the second meme was a 'duplicate')."""
    img = png(workdir / "cat.png")
    first = memes("add", str(img), "--caption", "A", "--top", "WHEN THE TESTS",
                  "--bottom", "PASS LOCALLY")  # fmt: skip
    copy = workdir / "copy.png"
    copy.write_bytes(img.read_bytes())
    second = memes("add", str(copy), "--caption", "B", "--top", "WHEN CI", "--bottom", "IS RED")
    assert (first.exit_code, second.exit_code) == (0, 0), second.output
    assert "looks like" not in second.stderr  # the same image on purpose: no warning
    a, b = records(workdir)
    assert a.sha256 == b.sha256 and a.original_relpath == b.original_relpath
    assert len(list((workdir / "memes" / "originals").rglob("*.png"))) == 1
    again = memes("add", str(img), "--caption", "C", "--top", "WHEN CI", "--bottom", "IS RED")
    assert again.exit_code == 1 and "duplicate of existing meme 'b'" in again.stderr
    assert len(records(workdir)) == 2


def test_memes_from_a_starter_template(workdir):
    listed = memes("template", "list", "--json")
    names = {t["name"]: t for t in json.loads(listed.stdout)}
    assert {"launch-day", "cat-verdict", "coffee-labels"} <= set(names)
    assert all(t["licence"] for t in names.values())
    one = memes("add", "--template", "cat-verdict", "--text", "When the tests pass",
                "--text", "locally", "--caption", "Tests")  # fmt: skip
    two = memes("add", "--template", "cat-verdict", "--text", "When CI", "--caption", "CI")
    assert (one.exit_code, two.exit_code) == (0, 0), two.output
    a, b = records(workdir)
    assert (a.template, a.texts, b.texts) == (
        "cat-verdict", ("When the tests pass", "locally"), ("When CI",)
    )  # fmt: skip
    assert a.alt == "When the tests pass / locally — Tests"  # box texts, then the caption
    assert a.sha256 == b.sha256
    same = memes("add", "--template", "cat-verdict", "--text", "When CI", "--caption", "Again")
    assert same.exit_code == 1 and "duplicate of existing meme 'ci'" in same.stderr
    too_many = memes("add", "--template", "launch-day", "--text", "a", "--text", "b",
                     "--caption", "x")  # fmt: skip
    assert too_many.exit_code == 2
    assert "template 'launch-day' has 1 text boxes; 2 texts given" in too_many.stderr
    unknown = memes("add", "--template", "nope", "--text", "a", "--caption", "x")
    assert unknown.exit_code == 2 and "template 'nope': no such template" in unknown.stderr


def test_a_text_that_does_not_fit_its_box_is_refused_naming_the_box(workdir):
    with (workdir / "config.yaml").open("a") as config:
        config.write("overlay: {min_font_size: 60}\n")
    long = "so many words " * 8
    result = memes("add", "--template", "launch-day", "--text", long, "--caption", "x")
    assert result.exit_code == 1 and "text 1 does not fit" in result.stderr
    assert records(workdir) == []


def test_template_add_list_show_remove(workdir):
    boxes = workdir / "boxes.yaml"
    boxes.write_text(
        "- {x: 0.05, y: 0.05, width: 0.9, height: 0.4}\n"
        "- {x: 0.05, y: 0.55, width: 0.9, height: 0.4, color: '#ffe14d'}\n"
    )
    img = png(workdir / "two.png", 800, 600, seed=3)
    added = memes("template", "add", str(img), "--name", "two-panels", "--boxes", str(boxes),
                  "--licence", "CC0")  # fmt: skip
    assert added.exit_code == 0 and added.stdout.strip() == "two-panels"
    assert "two-panels\t2 boxes\t800x600\tlibrary\tCC0" in memes("template", "list").stdout
    shown = memes("template", "show", "two-panels", "--out", str(workdir / "show.png"))
    assert "box 2: x: 0.05, y: 0.55" in shown.stdout
    from PIL import Image

    with Image.open(workdir / "show.png") as picture:
        assert picture.size == (800, 600)
    again = memes("template", "add", str(img), "--name", "two-panels")
    assert again.exit_code == 2 and "already exists" in again.stderr
    made = memes("add", "--template", "two-panels", "--text", "TOP", "--text", "BOTTOM",
                 "--caption", "Panels")  # fmt: skip
    assert made.exit_code == 0
    refused = memes("template", "remove", "two-panels")
    assert refused.exit_code == 2 and "still used by panels" in refused.stderr
    assert memes("remove", "panels").exit_code == 0
    assert memes("template", "remove", "two-panels").exit_code == 0
    assert "two-panels" not in memes("template", "list").stdout
    bundled = memes("template", "remove", "launch-day")
    assert bundled.exit_code == 2 and "bundled" in bundled.stderr


def test_a_refused_template_name_stores_no_image(workdir):
    img = png(workdir / "t.png", 300, 200, seed=5)
    assert memes("template", "add", str(img), "--name", "mine").exit_code == 0
    originals = sorted((workdir / "memes" / "originals").rglob("*.*"))
    other = png(workdir / "other.png", 300, 200, seed=6)
    for name in ("cat-verdict", "mine"):  # a bundled name, a taken name
        refused = memes("template", "add", str(other), "--name", name)
        assert refused.exit_code == 2, refused.output
    assert sorted((workdir / "memes" / "originals").rglob("*.*")) == originals


def test_template_licence_and_credit_are_checked_text(workdir):
    img = png(workdir / "t.png", 300, 200, seed=5)
    bad = memes("template", "add", str(img), "--name", "t", "--licence", "CC0\x1b[2J")
    assert bad.exit_code == 2 and "licence: contains a control character" in bad.stderr
    assert not (workdir / "memes" / "originals").exists() or not list(
        (workdir / "memes" / "originals").rglob("*.*"))


def renders(workdir: Path, slug: str) -> dict[str, bytes]:
    out = workdir / "look"
    shutil.rmtree(out, ignore_errors=True)
    assert memes("render", slug, "--out", str(out)).exit_code == 0
    return {p.name: p.read_bytes() for p in sorted((out / slug).iterdir())}


def test_template_remove_keep_copies_leaves_its_memes_drawn_as_before(workdir):
    """Issue 11: `template remove` is refused while memes use the template, unless they keep
    their own copy: then each renders exactly as before, even after another template takes
    the name, its texts can still be edited box by box, and a removed one can be restored."""
    (workdir / "config.yaml").write_text(yaml.safe_dump({"renditions": {
        "large": {"width": 400, "format": "webp", "quality": 80}}}), encoding="utf-8")
    boxes = workdir / "boxes.yaml"
    boxes.write_text(
        "- {x: 0.05, y: 0.05, width: 0.9, height: 0.4, color: '#ffe14d'}\n"
        "- {x: 0.05, y: 0.55, width: 0.9, height: 0.4, align: left}\n"
    )
    img = png(workdir / "two.png", 800, 600, seed=3)
    assert memes("template", "add", str(img), "--name", "two-panels", "--boxes",
                 str(boxes)).exit_code == 0  # fmt: skip
    made = [memes("add", "--template", "two-panels", "--text", "TOP", "--text", text,
                  "--caption", f"Panels {text}").stdout.strip() for text in ("ONE", "TWO")]
    kept, gone = made
    assert memes("remove", gone).exit_code == 0
    before = renders(workdir, kept)

    refused = memes("template", "remove", "two-panels")
    assert refused.exit_code == 2
    assert refused.stderr.strip() == (f"memes: template 'two-panels': still used by {kept} "
                                      "(--keep-copies gives each its own copy of the boxes)")
    removed = memes("template", "remove", "two-panels", "--keep-copies")
    assert removed.exit_code == 0 and removed.stdout == "two-panels\n"
    assert "2 memes keep their own copy" in removed.stderr
    assert "two-panels" not in memes("template", "list").stdout
    assert renders(workdir, kept) == before

    # Another template under the same name changes nothing for the memes that kept a copy.
    other = png(workdir / "other.png", 640, 640, seed=9)
    assert memes("template", "add", str(other), "--name", "two-panels").exit_code == 0
    assert renders(workdir, kept) == before
    assert memes("edit", kept, "--text", "2=LATER").exit_code == 0
    assert renders(workdir, kept) != before
    too_far = memes("edit", kept, "--text", "3=NOPE")
    assert too_far.exit_code == 2 and "has boxes 1 to 2" in too_far.stderr

    assert memes("restore", gone).exit_code == 0
    assert set(renders(workdir, gone)) == set(before)


def test_edit_one_box_text(workdir):
    memes("add", "--template", "coffee-labels", "--text", "Monday", "--text", "me",
          "--caption", "Coffee")  # fmt: skip
    result = memes("edit", "coffee", "--text", "3=the 4th coffee", "--text", "1=Tuesday")
    assert result.exit_code == 0, result.output
    [meme] = records(workdir)
    assert meme.texts == ("Tuesday", "me", "the 4th coffee")
    bad = memes("edit", "coffee", "--text", "4=nope")
    assert bad.exit_code == 2 and "has boxes 1 to 3" in bad.stderr
    classic = memes("add", str(png(workdir / "c.png")), "--caption", "Classic", "--top", "UP")
    assert classic.exit_code == 0
    assert memes("edit", "classic", "--text", "2=DOWN").exit_code == 0
    assert records(workdir)[1].bottom_text == "DOWN"


def test_import_rows_with_template_and_texts(workdir):
    (workdir / "m.yaml").write_text(
        "- {template: coffee-labels, texts: [Monday, me, coffee], caption: One}\n"
        "- {template: coffee-labels, texts: [Tuesday], caption: Two}\n", encoding="utf-8"
    )
    (workdir / "m.csv").write_text(
        "template,texts,caption\ncoffee-labels,Wed|nesday,Three\n", encoding="utf-8"
    )
    assert memes("import", "m.yaml").exit_code == 0
    assert memes("import", "m.csv").exit_code == 0
    assert [m.texts for m in records(workdir)] == [
        ("Monday", "me", "coffee"), ("Tuesday",), ("Wed", "nesday"),
    ]  # fmt: skip


def test_an_import_row_naming_an_unknown_template_is_refused_and_the_others_go_in(workdir):
    (workdir / "m.yaml").write_text(
        "- {template: no-such, texts: [A], caption: Gone}\n"
        "- {template: launch-day, texts: [A, B], caption: Too many}\n"
        "- {template: launch-day, texts: [Liftoff], caption: Kept}\n", encoding="utf-8"
    )
    result = memes("import", "m.yaml")
    assert result.exit_code == 1, result.output
    assert [m.caption for m in records(workdir)] == ["Kept"]
    lines = result.stderr.splitlines()
    assert lines[0].startswith("memes: template no-such: ") and "no such template" in lines[0]
    assert lines[1].startswith("memes: template launch-day: ")
    assert lines[-1].startswith("1 added, 2 rejected")


def test_an_import_row_with_an_impossible_yaml_date_is_refused_alone(workdir):
    png(workdir / "a.png")
    (workdir / "m.yaml").write_text(
        "- {file: a.png, caption: Bad, top: A, publish_at: 2030-02-30}\n"
        "- {file: a.png, caption: Good, top: B, publish_at: 2030-01-01T10:00:00+02:00}\n",
        encoding="utf-8",
    )
    result = memes("import", "m.yaml")
    assert result.exit_code == 1, result.output
    assert "m.yaml row 1: publish_at: expected an ISO 8601 date-time, got '2030-02-30'" in (
        result.stderr
    )
    assert [m.caption for m in records(workdir)] == ["Good"]


def test_a_csv_row_with_more_values_than_the_header_is_refused_not_cut(workdir):
    """An unquoted comma in a caption makes one value more than the header names: the row is
    refused, naming the fix, instead of the caption's end being dropped without a word."""
    png(workdir / "a.png")
    (workdir / "m.csv").write_text(
        'file,caption,top\na.png,Hello, world,A\na.png,"Hello, world",B\n', encoding="utf-8"
    )
    result = memes("import", "m.csv")
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[0] == (
        "memes: m.csv row 2: 4 values, but the header names 3 columns "
        '(quote a value that holds a comma: "Hello, world")'
    )
    assert [(m.caption, m.top_text) for m in records(workdir)] == [("Hello, world", "B")]


def test_a_publish_time_for_a_published_meme_is_refused_not_silently_kept(workdir):
    """`memes edit --publish-at` only schedules a queued meme: on a published one it changed a
    stored value nothing reads, and said the edit worked."""
    memes("add", str(png(workdir / "a.png")), "--caption", "Out already")
    with Library(workdir / "memes") as library:
        library.mark_published(["out-already"])
    result = memes("edit", "out-already", "--publish-at", "2035-01-01T00:00")
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "memes: --publish-at: meme 'out-already' is published already; "
        "a publish time schedules a queued meme\n"
    )
    [meme] = records(workdir)
    assert meme.publish_at.year != 2035
    assert memes("edit", "out-already", "--caption", "Still editable").exit_code == 0


def test_yaml_manifest_words_are_taken_as_typed_not_as_yaml_1_1_values(workdir):
    """YAML 1.1 reads `NO` as false, `10:00` as 600 and `007` as 7: a meme would show FALSE
    where the editor typed NO. Every scalar of a row is the text typed (only null is empty)."""
    png(workdir / "a.png")
    (workdir / "m.yaml").write_text(
        "- {file: a.png, title: 007, caption: 1.10, top: NO, bottom: 10:00,\n"
        "   tags: [on, 1e3, ~], publish_at: 2030-01-01 10:00:00+02:00}\n", encoding="utf-8"
    )
    result = memes("import", "m.yaml")
    assert result.exit_code == 0, result.output
    [meme] = records(workdir)
    assert (meme.title, meme.caption, meme.top_text, meme.bottom_text, meme.tags) == (
        "007", "1.10", "NO", "10:00", ("on", "1e3")
    )  # fmt: skip
    assert meme.publish_at.isoformat() == "2030-01-01T08:00:00+00:00"


def test_a_schema_2_catalog_is_migrated(workdir):
    """A catalog made before templates: one meme per image (sha256 UNIQUE); it opens, keeps
    its memes, and takes a second meme of the same image."""
    memes("add", str(png(workdir / "a.png")), "--caption", "Old", "--top", "OLD")
    db = sqlite3.connect(workdir / "memes" / "catalog.sqlite")
    sql = db.execute("SELECT sql FROM sqlite_master WHERE name='memes'").fetchone()[0]
    old = sql.replace("sha256 TEXT NOT NULL", "sha256 TEXT NOT NULL UNIQUE")
    old = old.replace("CREATE TABLE memes", "CREATE TABLE memes_old")
    db.executescript(
        f"DROP INDEX memes_content; {old}; INSERT INTO memes_old SELECT * FROM memes;"
        "DROP TABLE memes; ALTER TABLE memes_old RENAME TO memes;"
        "ALTER TABLE memes DROP COLUMN texts; ALTER TABLE memes DROP COLUMN template;"
        "UPDATE meta SET value='2' WHERE key='schema_version';"
    )
    db.close()
    result = memes("add", str(workdir / "a.png"), "--caption", "New", "--top", "NEW")
    assert result.exit_code == 0, result.output
    assert [m.top_text for m in records(workdir)] == ["OLD", "NEW"]
    db = sqlite3.connect(workdir / "memes" / "catalog.sqlite")
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("3",)


def test_a_template_meme_refuses_top_and_bottom_but_takes_them_empty(workdir):
    memes("add", "--template", "cat-verdict", "--text", "ONE", "--caption", "Cat")
    refused = memes("edit", "cat", "--top", "NOPE")
    assert refused.exit_code == 2 and "--text N=" in refused.stderr
    assert memes("edit", "cat", "--top", "", "--caption", "Cat again").exit_code == 0
    [meme] = records(workdir)
    assert (meme.texts, meme.top_text, meme.caption) == (("ONE",), "", "Cat again")


def test_edit_checks_its_values_the_way_add_does(workdir):
    img = str(jpeg(workdir / "small.jpg", 200, 150))
    assert memes("add", img, "--caption", "Fits", "--top", "ONE DOES NOT").exit_code == 0
    # the overlay must still fit the image once edited
    too_long = memes("edit", "fits", "--bottom", "WHEN YOU " * 400)
    assert too_long.exit_code == 2  # over the 300-character limit, before any fitting
    assert "bottom: 3,599 characters, over the maximum of 300" in too_long.stderr
    assert memes("edit", "fits", "--caption", "   ").exit_code == 2
    [meme] = records(workdir)
    assert (meme.caption, meme.bottom_text) == ("Fits", "")  # nothing changed
    # values are normalised as add normalises them
    edited = memes("edit", "fits", "--title", "  Spaced  ", "--tag", " Work ", "--tag", "work",
                   "--top", "")  # fmt: skip
    assert edited.exit_code == 0, edited.output
    [meme] = records(workdir)
    assert (meme.title, meme.tags, meme.top_text) == ("Spaced", ("work",), "")


# --- hostile manifests and unreadable files (issue 10 items 3 and 4) --------------------------


def test_a_manifest_alias_bomb_is_one_line_in_bounded_memory(workdir):
    from test_safeyaml import BOMB

    (workdir / "bomb.yaml").write_text(BOMB + "rows:\n- {file: a.jpg, caption: *i}\n")
    result = subprocess.run([*MEMES, "import", "bomb.yaml"], cwd=workdir, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "memes: bomb.yaml: invalid YAML (more than 1,000,000 values once its aliases are "
        "expanded)\n"
    )
    tracemalloc.start()
    try:
        with pytest.raises(UsageError):
            read_manifest(workdir / "bomb.yaml")
        assert tracemalloc.get_traced_memory()[1] < 100 * 2**20  # peak, in this process
    finally:
        tracemalloc.stop()


def test_unreadable_files_are_one_line_each_and_the_other_rows_go_in(workdir):
    jpeg(workdir / "a.jpg", seed=1)
    jpeg(workdir / "b.jpg", seed=2)
    (workdir / "loop1.jpg").symlink_to("loop2.jpg")
    (workdir / "loop2.jpg").symlink_to("loop1.jpg")
    rows = [
        ("a.jpg", "A"),
        ("loop1.jpg", "Loop"),
        ("n" * 300 + ".jpg", "Long"),
        ("/proc/self/pagemap", "Pagemap"),
        ("/dev/zero", "Zero"),
        ("b.jpg", "B"),
    ]
    (workdir / "m.csv").write_text(
        "file,caption\n" + "".join(f"{f},{c}\n" for f, c in rows), encoding="utf-8"
    )
    result = subprocess.run([*MEMES, "import", "m.csv"], cwd=workdir, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.split() == ["a", "b"]
    lines = result.stderr.splitlines()
    assert lines[-1] == "2 added, 4 rejected, 0 warnings"
    assert "pagemap: file is bigger, over limits.max_bytes (3000000)" in result.stderr
    assert "loop1.jpg: cannot read: Too many levels of symbolic links" in result.stderr
    assert ".jpg: cannot read: File name too long" in result.stderr
    assert "/dev/zero: not a regular file" in result.stderr
    originals = list((workdir / "memes" / "originals").rglob("*.*"))
    assert len(originals) == 2  # nothing orphaned, no temp file left


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs (root only): a real ENOSPC, not a simulated one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_while_storing_an_original_refuses_that_row_only(workdir, small_disk):
    (workdir / "config.yaml").write_text(f"library: {small_disk / 'memes'}\n")
    jpeg(workdir / "a.jpg", 200, 150, seed=1)
    random = Image.frombytes("RGB", (800, 700), os.urandom(800 * 700 * 3))
    save(random, workdir / "big.png")  # 1.7 MB that do not compress: more than the disk
    jpeg(workdir / "b.jpg", 200, 150, seed=2)
    (workdir / "m.csv").write_text("file,caption\na.jpg,A\nbig.png,Big\nb.jpg,B\n")
    result = subprocess.run([*MEMES, "import", "m.csv"], cwd=workdir, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stdout.split() == ["a", "b"]
    assert f"{workdir / 'big.png'}: cannot store the original: No space left on device" in (
        result.stderr
    )
    originals = sorted(p.suffix for p in (small_disk / "memes" / "originals").rglob("*"))
    assert [s for s in originals if s] == [".jpg", ".jpg"]  # no .png, no temp file


def test_an_unwritable_library_folder_is_one_line(workdir, small_disk):
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    (workdir / "config.yaml").write_text(f"library: {small_disk / 'memes'}\n")
    result = subprocess.run([*MEMES, "list", "--json"], cwd=workdir, capture_output=True,
                            text=True)  # fmt: skip
    message = f"library {small_disk / 'memes'}: cannot create it (Read-only file system)"
    assert (result.returncode, result.stderr) == (1, f"memes: {message}\n")
    assert json.loads(result.stdout) == {"error": message, "exit": 1}

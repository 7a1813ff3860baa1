"""Issue 9: the published state never drifts from the library.

One regression test per failure the issue lists (storage switch, overlay edits, frozen alt,
restore, header settings, ownership, verify, memes that cannot render), on real file://
folders and the session's real SeaweedFS.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import yaml
from factories import noise_image, png, save
from seaweed import Relay
from test_publish import add_memes, make_site, run, s3_storage_config

from pipeline import config as config_module
from pipeline.library import Library
from pipeline.publish import publish, verify
from pipeline.storage import FileStorage, open_storage

BASE = "https://cdn.example.org/memes/"


def set_config(cfg: Path, **changes) -> None:
    """Merge ``changes`` (section -> mapping or value) into the config file."""
    data = yaml.safe_load(cfg.read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    cfg.write_text(yaml.safe_dump(data), encoding="utf-8")


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under a folder: relative path -> (sha256, mtime_ns)."""
    return {
        p.relative_to(folder).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                           p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*")) if p.is_file()
    }  # fmt: skip


def index_entries(public: Path) -> list[dict]:
    entries, key = [], "index.json"
    while key:
        doc = json.loads((public / key).read_text())
        entries += doc["memes"]
        key = doc["next"][len(BASE) :] if doc["next"] else None
    return entries


def rendition_keys(entry: dict) -> set[str]:
    return {r["url"][len(BASE) :] for r in entry["renditions"].values()}


def permalink(public: Path, slug: str) -> dict:
    return json.loads((public / "m" / f"{slug}.json").read_text())["meme"]


# --- 1. a storage switch uploads what the new target lacks -----------------------------------


def test_a_storage_switch_uploads_every_object_the_live_documents_name(tmp_path):
    cfg = make_site(tmp_path)
    add_memes(cfg, 2)
    assert run(cfg, "publish").exit_code == 0
    set_config(cfg, storage={"url": "file://public2"})
    add_memes(cfg, 1, start=5)
    result = run(cfg, "publish", "--json")
    assert result.exit_code == 0, result.output
    public2 = tmp_path / "public2"
    entries = index_entries(public2)
    assert len(entries) == 3
    for entry in entries:
        for key in rendition_keys(entry) | {f"m/{entry['slug']}.json"}:
            assert (public2 / key).is_file(), key
    for static in ("index.html", "gallery.js", "gallery.css", "feed.xml", "feed.json"):
        assert (public2 / static).is_file(), static
    checked = run(cfg, "verify")
    assert checked.exit_code == 0, checked.output


def test_a_switch_to_s3_uploads_what_the_bucket_lacks(tmp_path, s3_server, s3_bucket):
    cfg = make_site(tmp_path)
    add_memes(cfg, 2)
    assert run(cfg, "publish").exit_code == 0
    set_config(cfg, storage=s3_storage_config(s3_server, s3_bucket))
    assert run(cfg, "publish").exit_code == 0
    checked = run(cfg, "verify", "--json")
    assert checked.exit_code == 0, checked.output
    client = s3_server.client()
    index = json.loads(client.get_object(Bucket=s3_bucket, Key="site/index.json")["Body"].read())
    for entry in index["memes"]:
        for key in rendition_keys(entry):
            client.head_object(Bucket=s3_bucket, Key="site/" + key)


# --- 2. an overlay edit renders again under new names ----------------------------------------


def test_an_overlay_edit_renders_the_meme_again_under_new_names(tmp_path):
    cfg = make_site(tmp_path)
    image = png(tmp_path / "in" / "a.png", 480, 360, seed=3)
    added = run(cfg, "add", str(image), "--caption", "Works", "--top", "IT WORKS")
    slug = added.stdout.strip()
    assert run(cfg, "publish").exit_code == 0
    public = tmp_path / "public"
    before = rendition_keys(index_entries(public)[0])
    assert run(cfg, "edit", slug, "--top", "IT WORKED ON MY MACHINE").exit_code == 0
    summary = json.loads(run(cfg, "publish", "--json").stdout)
    after = rendition_keys(index_entries(public)[0])
    assert after and not after & before  # every rendition has new pixels, so a new name
    assert after <= set(summary["uploaded"])
    assert all((public / key).is_file() for key in after)
    look = tmp_path / "look"
    run(cfg, "render", slug, "--out", str(look))
    large = next(k for k in after if "/large." in k)
    assert (public / large).read_bytes() == (look / slug / "large.webp").read_bytes()
    assert run(cfg, "verify").exit_code == 0


# --- 3. alt text that was never set follows the texts ----------------------------------------


def test_a_caption_edit_derives_the_default_alt_again_and_keeps_an_explicit_one(tmp_path):
    cfg = make_site(tmp_path)
    a = png(tmp_path / "in" / "a.png", 480, 360, seed=4)
    b = png(tmp_path / "in" / "b.png", 480, 360, seed=5)
    derived = run(cfg, "add", str(a), "--caption", "The electoin night results").stdout.strip()
    explicit = run(cfg, "add", str(b), "--caption", "Other", "--alt", "A cat").stdout.strip()
    assert run(cfg, "publish").exit_code == 0
    run(cfg, "edit", derived, "--caption", "The election night results are in.")
    run(cfg, "edit", explicit, "--caption", "Changed")
    assert run(cfg, "publish").exit_code == 0
    public = tmp_path / "public"
    assert permalink(public, derived)["alt"] == "The election night results are in."
    assert permalink(public, explicit)["alt"] == "A cat"
    feed = json.loads((public / "feed.json").read_text())
    assert "The electoin night" not in json.dumps(feed)  # the slug keeps its typo, no text does
    run(cfg, "edit", derived, "--bottom", "WOW")
    with Library(tmp_path / "memes") as library:
        assert library.get(derived).alt == "WOW — The election night results are in."


# --- 5. remove and restore -------------------------------------------------------------------


def test_a_removed_meme_is_restored_to_its_old_place_and_not_featured_again(tmp_path):
    cfg = make_site(tmp_path, newsletter={"every": 2})
    first, second = add_memes(cfg, 2)
    assert run(cfg, "publish").exit_code == 0  # edition #1 features both
    public = tmp_path / "public"
    published_at = permalink(public, first)["published_at"]
    assert run(cfg, "remove", first).exit_code == 0
    again = run(cfg, "add", str(tmp_path / "incoming" / "0.png"), "--caption", "Again")
    assert again.exit_code == 1
    assert f"memes restore {first}" in again.stderr
    assert run(cfg, "restore", second).exit_code == 1  # not removed
    restored = run(cfg, "restore", first)
    assert restored.exit_code == 0, restored.output
    [newer] = add_memes(cfg, 1, start=7)
    assert run(cfg, "publish").exit_code == 0
    entries = index_entries(public)
    assert [e["slug"] for e in entries] == [newer, second, first]  # newest first, old place
    restored_entry = next(e for e in entries if e["slug"] == first)
    assert restored_entry["published_at"] == published_at
    assert all((public / key).is_file() for key in rendition_keys(restored_entry))
    status = json.loads(run(cfg, "newsletter", "status", "--json").stdout)
    assert status["pending"] == 1  # the new meme only: the restored one was featured
    assert run(cfg, "verify").exit_code == 0


def test_after_purge_the_same_bytes_make_a_new_meme_and_restore_refuses(tmp_path):
    cfg = make_site(tmp_path)
    [slug] = add_memes(cfg, 1)
    assert run(cfg, "publish").exit_code == 0
    assert run(cfg, "remove", slug, "--purge").exit_code == 0
    assert run(cfg, "restore", slug).exit_code == 1
    again = run(cfg, "add", str(tmp_path / "incoming" / "0.png"), "--caption", "Meme")
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() not in ("", slug)


def test_a_manifest_run_again_reports_rows_already_added_and_exits_0(tmp_path):
    cfg = make_site(tmp_path)
    png(tmp_path / "m" / "a.png", 300, 200, seed=1)
    png(tmp_path / "m" / "b.png", 300, 200, seed=2)
    manifest = tmp_path / "m" / "memes.yaml"
    manifest.write_text(yaml.safe_dump([{"file": "a.png", "caption": "A"},
                                        {"file": "b.png", "caption": "B"}]))  # fmt: skip
    first = run(cfg, "import", str(manifest))
    assert first.exit_code == 0, first.output
    second = run(cfg, "import", str(manifest))
    assert second.exit_code == 0, second.output
    assert "already added as a" in second.stderr and "already added as b" in second.stderr


# --- 6. header settings reach existing objects -----------------------------------------------


def test_an_acl_or_cache_setting_added_later_reaches_every_existing_object(
    tmp_path, s3_server, s3_bucket
):
    cfg = make_site(tmp_path, s3_storage_config(s3_server, s3_bucket))
    add_memes(cfg, 2)
    assert run(cfg, "publish").exit_code == 0
    set_config(cfg, storage={"acl": "public-read", "document_max_age": 60})
    config = config_module.load(cfg)
    storage = open_storage(config.storage)
    sent: dict[str, str | None] = {}

    def capture(request, **_: object) -> None:
        acl = request.headers.get("x-amz-acl")
        key = request.url.split(f"/{s3_bucket}/site/", 1)[-1].split("?", 1)[0]
        sent[key] = acl.decode() if acl else None

    storage.client.meta.events.register("before-send.s3.*", capture)
    with Library(config.library) as library:
        report = publish(library, config, storage=storage)
    assert report.requests > 0
    client = s3_server.client()
    index = json.loads(client.get_object(Bucket=s3_bucket, Key="site/index.json")["Body"].read())
    named = {"index.json"} | {f"m/{e['slug']}.json" for e in index["memes"]}
    for entry in index["memes"]:
        named |= rendition_keys(entry)
    for key in named:
        assert sent.get(key) == "public-read", key
    head = client.head_object(Bucket=s3_bucket, Key="site/index.json")
    assert head["CacheControl"] == "public, max-age=60"


# --- 7. a library never publishes over storage it does not own -------------------------------


def test_a_second_library_on_the_same_storage_is_refused_and_changes_nothing(tmp_path):
    cfg = make_site(tmp_path)
    add_memes(cfg, 2)
    assert run(cfg, "publish").exit_code == 0
    other = tmp_path / "hostB"
    other.mkdir()
    cfg_b = make_site(other, storage={"url": f"file://{tmp_path / 'public'}"})
    [slug_b] = add_memes(cfg_b, 1, start=9)
    public = tmp_path / "public"
    before = snapshot(public)
    for args in (("publish",), ("gc", "--grace-days", "0"), ("verify", "--repair")):
        result = run(cfg_b, *args)
        assert result.exit_code == 2, (args, result.output)
        assert str(public) in result.stderr and "owned by library" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    run(cfg_b, "publish")  # cannot publish, so the meme stays queued ...
    assert run(cfg_b, "remove", slug_b).exit_code == 0  # ... and a queued remove needs no storage
    assert snapshot(public) == before


def test_a_published_remove_from_another_library_is_refused(tmp_path):
    cfg = make_site(tmp_path)
    add_memes(cfg, 1)
    assert run(cfg, "publish").exit_code == 0
    public = tmp_path / "public"
    (tmp_path / "b").mkdir()
    cfg_b = make_site(tmp_path / "b", storage={"url": f"file://{public}"})
    [slug_b] = add_memes(cfg_b, 1, start=4)
    public_b = tmp_path / "b" / "public"
    set_config(cfg_b, storage={"url": f"file://{public_b}"})
    assert run(cfg_b, "publish").exit_code == 0  # its own storage
    set_config(cfg_b, storage={"url": f"file://{public}"})
    before = snapshot(public)
    result = run(cfg_b, "remove", slug_b)
    assert result.exit_code == 2 and "owned by library" in result.stderr
    assert snapshot(public) == before


def test_a_prefix_with_objects_and_no_manifest_is_refused_until_adopted(tmp_path):
    cfg = make_site(tmp_path)
    add_memes(cfg, 2)
    assert run(cfg, "publish").exit_code == 0
    public = tmp_path / "public"
    (public / "_memes" / "manifest.json").unlink()
    (tmp_path / "b").mkdir()
    cfg_b = make_site(tmp_path / "b", storage={"url": f"file://{public}"})
    add_memes(cfg_b, 1, start=6)
    before = snapshot(public)
    refused = run(cfg_b, "publish")
    assert refused.exit_code == 2 and str(public) in refused.stderr
    assert "--adopt" in refused.stderr
    assert snapshot(public) == before
    adopted = run(cfg_b, "publish", "--adopt")
    assert adopted.exit_code == 0, adopted.output
    run(cfg_b, "gc", "--grace-days", "0")
    run(cfg_b, "gc", "--grace-days", "0")
    for key in before:  # objects it did not write are never deleted by its gc
        if not key.endswith(".json") and key.startswith("i/"):
            assert (public / key).is_file(), key


def test_adopting_another_librarys_storage_never_deletes_its_objects(tmp_path):
    cfg = make_site(tmp_path)
    add_memes(cfg, 2)
    assert run(cfg, "publish").exit_code == 0
    public = tmp_path / "public"
    theirs = {k for k in snapshot(public) if k.startswith("i/")}
    (tmp_path / "b").mkdir()
    cfg_b = make_site(tmp_path / "b", storage={"url": f"file://{public}"})
    add_memes(cfg_b, 1, start=6)
    assert run(cfg_b, "publish", "--adopt").exit_code == 0
    assert run(cfg_b, "gc", "--grace-days", "0").exit_code == 0
    assert run(cfg_b, "gc", "--grace-days", "0").exit_code == 0
    assert all((public / key).is_file() for key in theirs)
    add_memes(cfg, 1, start=8)
    assert run(cfg, "publish").exit_code == 2  # now the first library is the stranger


def test_a_missing_or_empty_catalog_next_to_originals_is_refused(tmp_path):
    cfg = make_site(tmp_path)
    add_memes(cfg, 1)
    catalog = tmp_path / "memes" / "catalog.sqlite"
    for extra in ("catalog.sqlite-wal", "catalog.sqlite-shm"):
        (tmp_path / "memes" / extra).unlink(missing_ok=True)
    catalog.write_bytes(b"")
    for args in (("publish",), ("list",)):
        result = run(cfg, *args)
        assert result.exit_code == 2, result.output
        assert "catalog" in result.stderr and "backup" in result.stderr
    catalog.unlink()
    assert run(cfg, "publish").exit_code == 2
    assert not catalog.exists()


# --- 8. verify checks everything it published ------------------------------------------------


def test_verify_finds_missing_documents_and_repair_restores_them(tmp_path):
    cfg = make_site(tmp_path)
    add_memes(cfg, 2)
    assert run(cfg, "publish").exit_code == 0
    public = tmp_path / "public"
    gone = ["gallery.js", "feed.xml", "categories/funny/index.json"]
    for key in gone:
        (public / key).unlink()
    result = run(cfg, "verify", "--json")
    assert result.exit_code == 1
    problems = {p["key"]: p["problem"] for p in json.loads(result.stdout)["problems"]}
    assert set(gone) <= set(problems)
    repaired = run(cfg, "verify", "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert all((public / key).is_file() for key in gone)
    assert run(cfg, "verify").exit_code == 0


def test_verify_finds_a_same_size_overwrite(tmp_path):
    cfg = make_site(tmp_path)
    add_memes(cfg, 1)
    assert run(cfg, "publish").exit_code == 0
    public = tmp_path / "public"
    victim = public / sorted(rendition_keys(index_entries(public)[0]))[0]
    original = victim.read_bytes()
    victim.write_bytes(os.urandom(len(original)))
    result = run(cfg, "verify", "--json")
    assert result.exit_code == 1
    assert [p["key"] for p in json.loads(result.stdout)["problems"]] == [
        victim.relative_to(public).as_posix()
    ]
    assert run(cfg, "verify", "--repair").exit_code == 0
    assert victim.read_bytes() == original


def test_verify_never_opens_a_key_outside_the_storage_root(tmp_path):
    cfg = make_site(tmp_path)
    add_memes(cfg, 1)
    assert run(cfg, "publish").exit_code == 0
    public = tmp_path / "public"
    index = json.loads((public / "index.json").read_text())
    index["memes"][0]["renditions"]["thumb"]["url"] = BASE + "../../secret.txt"
    index["memes"][0]["renditions"]["large"]["url"] = BASE + "/etc/passwd"
    (public / "index.json").write_text(json.dumps(index))
    opened: list[str] = []

    class Watching(FileStorage):
        def head(self, key):
            opened.append(key)
            return super().head(key)

        def get(self, key):
            opened.append(key)
            return super().get(key)

    config = config_module.load(cfg)
    with Library(config.library) as library:
        report = verify(library, config, storage=Watching(config.storage))
    keys = {key for key, _ in report.problems}
    assert {"../../secret.txt", "/etc/passwd"} <= keys
    assert not any(".." in key or key.startswith("/") for key in opened)


# --- 9. memes that cannot render -------------------------------------------------------------


def test_images_no_rendition_can_be_made_of_are_refused_at_add(tmp_path):
    renditions = {"thumb": {"width": 320, "format": "webp", "watermark": False},
                  "large": {"width": 1200, "format": "webp"}}  # the default sizes
    cfg = make_site(tmp_path, renditions=renditions)
    files = {
        "tall": save(noise_image(1, 100000, seed=1), tmp_path / "in" / "tall.png"),
        "wide": save(noise_image(100000, 1, seed=2), tmp_path / "in" / "wide.png"),
        "strip": save(noise_image(20000, 40, seed=3), tmp_path / "in" / "strip.png"),
    }
    frames = [noise_image(1000, 1000, seed=i).convert("P") for i in range(60)]
    gif = tmp_path / "in" / "long.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=40, loop=0)
    files["long"] = gif
    result = run(cfg, "add", *map(str, files.values()), "--caption", "Bad")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4, result.stderr
    assert "16383" in next(line for line in lines if "tall.png" in line)
    assert "watermark" in next(line for line in lines if "wide.png" in line)
    assert "watermark" in next(line for line in lines if "strip.png" in line)
    assert "animation" in next(line for line in lines if "long.gif" in line)
    with Library(tmp_path / "memes") as library:
        assert library.count() == 0


def test_a_meme_that_fails_to_render_is_marked_failed_and_no_longer_blocks(tmp_path):
    cfg = make_site(tmp_path)
    bad, good = add_memes(cfg, 2)
    with Library(tmp_path / "memes") as library:
        original = library.original_path(library.get(bad))
    saved = original.read_bytes()
    original.write_bytes(saved[:200])  # truncated after it was checked
    first = run(cfg, "publish", "--limit", "1")
    assert first.exit_code == 1 and bad in first.stderr
    second = run(cfg, "publish", "--limit", "1", "--json")
    assert json.loads(second.stdout)["published"] == [good]
    listed = run(cfg, "list", "--status", "failed")
    assert listed.exit_code == 0 and listed.stdout.startswith(bad)
    with Library(tmp_path / "memes") as library:
        assert library.get(bad).status == "failed"
        assert "cannot read image" in library.get(bad).as_dict()["failure"]
    original.write_bytes(saved)
    assert run(cfg, "retry", bad).exit_code == 0
    assert json.loads(run(cfg, "publish", "--json").stdout)["published"] == [bad]


def test_a_published_meme_whose_render_fails_keeps_its_live_images_and_is_marked(tmp_path):
    """A pixel-changing edit whose new render cannot be made: the old renditions stay live and
    named in the index, the publish says so (exit 1), `memes list` shows the failure, the next
    publishes do not try again silently, and `memes retry` clears it."""
    cfg = make_site(tmp_path)
    [slug] = add_memes(cfg, 1)
    assert run(cfg, "publish").exit_code == 0
    public = tmp_path / "public"
    before = rendition_keys(index_entries(public)[0])
    with Library(tmp_path / "memes") as library:
        original = library.original_path(library.get(slug))
    saved = original.read_bytes()
    original.write_bytes(saved[:200])  # the original is damaged: no new render can be made
    assert run(cfg, "edit", slug, "--top", "IT WORKED ON MY MACHINE").exit_code == 0

    failed = run(cfg, "publish", "--json")
    assert failed.exit_code == 1
    summary = json.loads(failed.stdout)
    [line] = [x for x in failed.stderr.splitlines() if slug in x]
    assert "cannot read image" in line and "old renditions stay live" in line
    assert f"memes retry {slug}" in line
    assert summary["failed"] == [] and [f["slug"] for f in summary["not_updated"]] == [slug]
    assert rendition_keys(index_entries(public)[0]) == before  # still live, still named
    assert run(cfg, "verify").exit_code == 0
    with Library(tmp_path / "memes") as library:
        meme = library.get(slug)
        assert meme.status == "published" and "cannot read image" in meme.failure

    listed = run(cfg, "list", "--status", "failed")
    assert listed.exit_code == 0 and listed.stdout.startswith(slug)
    assert "published" in listed.stdout and "cannot read image" in listed.stdout
    shown = json.loads(run(cfg, "list", "--json").stdout)
    assert shown[0]["status"] == "published" and "cannot read image" in shown[0]["failure"]

    # Marked: the next publishes do not render it again behind everyone's back.
    again = run(cfg, "publish", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["not_updated"] == []

    original.write_bytes(saved)
    retried = run(cfg, "retry", slug)
    assert retried.exit_code == 0 and retried.stdout.split() == [slug, "published"]
    assert run(cfg, "list", "--status", "failed").stdout == ""
    fixed = run(cfg, "publish", "--json")
    assert fixed.exit_code == 0, fixed.output
    after = rendition_keys(index_entries(public)[0])
    assert after and not after & before  # the edit reached the images at last
    with Library(tmp_path / "memes") as library:
        assert library.get(slug).failure == ""
    assert run(cfg, "verify").exit_code == 0


def test_a_published_meme_failing_after_a_settings_change_is_tried_again_on_the_next_change(
    tmp_path,
):
    """The failure is recorded for the inputs that failed: another edit or settings change
    is a new attempt at the next publish, without `memes retry`."""
    cfg = make_site(tmp_path)
    [slug] = add_memes(cfg, 1)
    assert run(cfg, "publish").exit_code == 0
    with Library(tmp_path / "memes") as library:
        original = library.original_path(library.get(slug))
    saved = original.read_bytes()
    original.write_bytes(saved[:200])
    renditions = yaml.safe_load(cfg.read_text())["renditions"]
    set_config(cfg, renditions={n: {**r, "quality": 61} for n, r in renditions.items()})
    assert run(cfg, "publish").exit_code == 1
    assert run(cfg, "publish").exit_code == 0  # the same inputs: not tried again
    original.write_bytes(saved)
    set_config(cfg, renditions={n: {**r, "quality": 62} for n, r in renditions.items()})
    assert run(cfg, "publish").exit_code == 0
    with Library(tmp_path / "memes") as library:
        assert library.get(slug).failure == ""
    assert run(cfg, "list", "--status", "failed").stdout == ""


def test_a_meme_that_cannot_be_rendered_again_moves_to_a_new_target_with_its_live_images(
    tmp_path,
):
    """Found by the state machine: a storage switch, then a published meme whose new render
    fails: the new target gets its old renditions (copied from the previous target), so its
    index names nothing missing."""
    cfg = make_site(tmp_path)
    [slug] = add_memes(cfg, 1)
    assert run(cfg, "publish").exit_code == 0
    before = rendition_keys(index_entries(tmp_path / "public")[0])
    with Library(tmp_path / "memes") as library:
        original = library.original_path(library.get(slug))
    original.write_bytes(original.read_bytes()[:200])
    assert run(cfg, "edit", slug, "--top", "NEW WORDS").exit_code == 0
    set_config(cfg, storage={"url": "file://public2"})
    moved = run(cfg, "publish", "--json")
    assert moved.exit_code == 1
    assert [f["slug"] for f in json.loads(moved.stdout)["not_updated"]] == [slug]
    public2 = tmp_path / "public2"
    assert rendition_keys(index_entries(public2)[0]) == before
    assert all((public2 / key).is_file() for key in before)
    checked = run(cfg, "verify")
    assert checked.exit_code == 0, checked.output


def test_no_edition_goes_out_while_a_new_storage_lacks_its_images(tmp_path):
    cfg = make_site(tmp_path)
    [slug] = add_memes(cfg, 1)
    assert run(cfg, "publish").exit_code == 0
    set_config(cfg, storage={"url": "file://public2"})
    special = ("newsletter", "send", "--special", "--subject", "S", "--slug", slug)
    refused = run(cfg, *special)
    assert refused.exit_code == 2 and "memes publish" in refused.stderr
    assert not list((tmp_path / "memes" / "outbox").glob("*.eml"))
    assert run(cfg, "publish").exit_code == 0
    assert run(cfg, *special).exit_code == 0
    assert len(list((tmp_path / "memes" / "outbox").glob("*.eml"))) == 1


# --- a storage switch while the previous target is out of reach ------------------------------


TEXT_TYPES = (".json", ".html", ".xml", ".txt", ".js", ".css")


def dangling(objects: dict[str, bytes]) -> set[str]:
    """Keys the stored documents (index, pages, feeds, share pages, archive) name under the
    site's base URL that are not among ``objects``."""
    named: set[str] = set()
    for key, data in objects.items():
        if key.endswith(TEXT_TYPES):
            found = re.findall(re.escape(BASE) + r"""([^\s"'<>)?#\\]+)""", data.decode())
            named.update(found)
    return {key for key in named if key not in objects and not key.endswith("/")}


def folder_objects(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in folder.rglob("*") if p.is_file()}  # fmt: skip


def bucket_objects(server, bucket: str, prefix: str = "site/") -> dict[str, bytes]:
    client = server.client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    return {key[len(prefix) :]: client.get_object(Bucket=bucket, Key=key)["Body"].read()
            for key in keys}  # fmt: skip


def behind_relay(cfg: Path, server, bucket: str, relay: Relay) -> None:
    """Publish to ``bucket`` through ``relay``: shutting the relay takes the target out of
    reach (connections refused on its 127.0.0.1 port) while SeaweedFS keeps the objects."""
    set_config(cfg, storage={**s3_storage_config(server, bucket), "endpoint_url": relay.endpoint,
                             "timeout": 2})  # fmt: skip


def break_then_move_away(cfg: Path, slug: str, relay: Relay) -> None:
    """The meme's original breaks and its words change (it cannot be rendered again), its
    target goes out of reach, and the storage moves to file://public2."""
    with Library(cfg.parent / "memes") as library:
        original = library.original_path(library.get(slug))
    original.write_bytes(original.read_bytes()[:200])
    assert run(cfg, "edit", slug, "--top", "NEW WORDS").exit_code == 0
    relay.shut()
    set_config(cfg, storage={"url": "file://public2", "endpoint_url": None})


def seaweed_port(server) -> int:
    return int(server.endpoint.rsplit(":", 1)[1])


def test_a_meme_neither_rendered_again_nor_copied_stays_out_of_the_new_targets_indexes(
    tmp_path, s3_server, s3_bucket
):
    """The previous target out of reach: the live images of a meme whose new render fails
    cannot be copied, so no document of the new target names them, the run says so (exit 1),
    and the next run, with the previous target back, copies them and shows the meme."""
    cfg = make_site(tmp_path)
    with Relay(seaweed_port(s3_server)) as relay:
        behind_relay(cfg, s3_server, s3_bucket, relay)
        kept, broken = add_memes(cfg, 2)
        assert run(cfg, "publish").exit_code == 0
        live = {e["slug"]: rendition_keys(e) for e in index_entries_s3(s3_server, s3_bucket)}
        break_then_move_away(cfg, broken, relay)
        moved = run(cfg, "publish", "--json")
        assert moved.exit_code == 1, moved.output
        public2 = tmp_path / "public2"
        assert [e["slug"] for e in index_entries(public2)] == [kept]
        assert not dangling(folder_objects(public2))
        lines = [line for line in moved.stderr.splitlines() if "cannot copy" in line]
        assert len(lines) == 1, moved.stderr
        assert broken in lines[0] and f"s3://{s3_bucket}/site" in lines[0]
        assert lines[0] in {"memes: " + e for e in json.loads(moved.stdout)["errors"]}
        assert run(cfg, "verify").exit_code == 1  # says what the new target still lacks
        assert run(cfg, "verify", "--repair").exit_code == 1  # it cannot make them either
        assert not dangling(folder_objects(public2))

        relay.open()
        again = run(cfg, "publish", "--json")
        assert again.exit_code == 1  # the original is still broken: not rendered again
        assert "cannot copy" not in again.stderr
        entries = {e["slug"]: rendition_keys(e) for e in index_entries(public2)}
        assert set(entries) == {kept, broken}
        assert entries[broken] == live[broken]
        assert not dangling(folder_objects(public2))
        checked = run(cfg, "verify")
        assert checked.exit_code == 0, checked.output
    quiet = json.loads(run(cfg, "publish", "--json").stdout)  # the switch is done
    assert quiet["requests"] == 0 and quiet["errors"] == []


def test_the_images_a_sent_edition_shows_are_copied_once_the_previous_target_is_back(
    tmp_path, s3_server, s3_bucket
):
    """An edition's images, renamed since by a settings change, live only on the previous
    target; out of reach, the switch is not done: exit 1 naming the edition and the target,
    and the next run copies them."""
    cfg = make_site(tmp_path, newsletter={"every": 2})
    new_bucket = s3_server.new_bucket()
    with Relay(seaweed_port(s3_server)) as relay:
        behind_relay(cfg, s3_server, s3_bucket, relay)
        add_memes(cfg, 2)
        assert run(cfg, "publish").exit_code == 0  # edition 1 shows their renditions
        with Library(tmp_path / "memes") as library:
            [edition] = library.editions()
        renditions = yaml.safe_load(cfg.read_text())["renditions"]
        set_config(cfg, renditions={n: {**r, "quality": 61} for n, r in renditions.items()})
        assert run(cfg, "publish").exit_code == 0  # renamed: the mail keeps the old names
        relay.shut()
        set_config(cfg, storage=s3_storage_config(s3_server, new_bucket))
        moved = run(cfg, "publish", "--json")
        assert moved.exit_code == 1, moved.output
        stored = bucket_objects(s3_server, new_bucket)
        assert not dangling(stored) and "index.json" in stored
        assert not set(edition.images) & set(stored)
        lines = [line for line in moved.stderr.splitlines() if "cannot copy" in line]
        assert len(lines) == 1, moved.stderr
        assert "edition 1" in lines[0] and f"s3://{s3_bucket}/site" in lines[0]

        relay.open()
        again = run(cfg, "publish", "--json")
        assert again.exit_code == 0, again.output
        stored = bucket_objects(s3_server, new_bucket)
        assert set(edition.images) <= set(stored)
        assert not dangling(stored)
        checked = run(cfg, "verify")
        assert checked.exit_code == 0, checked.output
    quiet = json.loads(run(cfg, "publish", "--json").stdout)
    assert quiet["requests"] == 0 and quiet["errors"] == []


def test_a_due_edition_waits_while_a_meme_it_features_is_left_out(tmp_path, s3_server, s3_bucket):
    """The edition would show the images of a meme the new target lacks: it waits, and goes
    out with the run that copies them."""
    cfg = make_site(tmp_path, newsletter={"every": 2})
    outbox = tmp_path / "memes" / "outbox"
    with Relay(seaweed_port(s3_server)) as relay:
        behind_relay(cfg, s3_server, s3_bucket, relay)
        [first] = add_memes(cfg, 1)
        assert run(cfg, "publish").exit_code == 0  # not due yet: 1 of 2
        break_then_move_away(cfg, first, relay)
        [second] = add_memes(cfg, 1, start=3)
        moved = run(cfg, "publish", "--json")
        assert moved.exit_code == 1, moved.output
        summary = json.loads(moved.stdout)
        assert summary["published"] == [second]
        assert any("newsletter #1 held back" in w and first in w for w in summary["warnings"])
        assert not list(outbox.glob("*.eml"))

        relay.open()
        assert run(cfg, "publish").exit_code == 1  # the original is still broken
        [mail] = outbox.glob("*.eml")
        public2 = tmp_path / "public2"
        assert not dangling(folder_objects(public2))
        with Library(tmp_path / "memes") as library:
            [edition] = library.editions()
        assert set(edition.slugs) == {first, second}
        assert all((public2 / key).is_file() for key in edition.images)
        assert run(cfg, "verify").exit_code == 0


def index_entries_s3(server, bucket: str) -> list[dict]:
    objects = bucket_objects(server, bucket)
    entries, key = [], "index.json"
    while key:
        doc = json.loads(objects[key])
        entries += doc["memes"]
        key = doc["next"][len(BASE) :] if doc["next"] else None
    return entries

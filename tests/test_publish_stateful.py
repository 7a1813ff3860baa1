"""Issue 9's proof: whatever staff do, in whatever order, every publish leaves storage exactly
what the library says should be published.

A Hypothesis state machine drives random sequences of add, edit (overlay text, caption, alt),
remove, restore, publish, a rendition setting change, a storage target switch, a publish that
a real storage backend fails part-way, a special edition, an original that breaks (then is
repaired and retried), and on SeaweedFS a switch as the previous target goes out of reach (then
comes back). After every publish: verify is clean, the index lists exactly the published memes
with their current fields, a meme whose overlay text changed has new rendition names (unless
its render failed: then its old ones stay live), and nothing a live document or a sent edition
names is missing; while a previous target is out of reach, a meme whose images were not copied
may be left out of the documents if the run said so, and nothing a document names is missing.
Run on file:// storage (about a minute), and shorter on SeaweedFS.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from factories import png
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from seaweed import Relay

from pipeline import config as config_module
from pipeline import newsletter
from pipeline.documents import Document
from pipeline.errors import StorageError
from pipeline.ingest import MemeFields, add_files, check_edit
from pipeline.library import Library
from pipeline.publish import publish, remove, verify
from pipeline.storage import Storage, open_storage

BASE = "https://cdn.example.org/memes/"
WORDS = st.sampled_from(["HELLO", "MONDAY AGAIN", "IT WORKS", "WHY", "SHIP IT", ""])
CAPTIONS = st.sampled_from(["A cat", "Deadline", "The results are in", "Coffee", "Bugs"])


def failing_storage(config: Any, allowed: int) -> Storage:
    """The real backend for ``config`` (FileStorage or S3Storage), failing as a full disk or a
    dropped connection would once ``allowed`` more objects have gone up."""
    real = type(open_storage(config))
    lock = threading.Lock()

    class Failing(real):  # type: ignore[misc, valid-type]
        def _put_document(self, document: Document, cache_control: str) -> None:
            nonlocal allowed
            with lock:
                allowed -= 1
                fail = allowed < 0
            if fail:
                raise StorageError(f"storage {self.description}: cannot write {document.key}: "
                                   "injected failure")  # fmt: skip
            super()._put_document(document, cache_control)

    return Failing(config)


class PublishedState(RuleBasedStateMachine):
    """The model: which memes exist, their words and status; storage is checked against it."""

    storage_options: dict[str, Any] = {}  # a subclass points at S3
    newsletter_every = 3

    def __init__(self) -> None:
        super().__init__()
        self.work = Path(tempfile.mkdtemp(prefix="memes-state-"))
        self.images = itertools.count()
        self.targets = itertools.count(1)
        self.quality = 70
        self.storage_url = self.target_url(0)
        self.model: dict[str, dict[str, Any]] = {}  # slug -> status, caption, alt, top
        self.pixels_changed: dict[str, set[str]] = {}  # slug -> rendition keys before an edit
        self.damaged: dict[str, bytes] = {}  # slug -> its original's bytes, now truncated
        self.library = Library(self.work / "memes")

    def target_url(self, n: int) -> str:
        return f"file://public{n}"

    def config(self) -> Any:
        data = {
            "site": {"title": "State", "base_url": BASE},
            "storage": {"url": self.storage_url, **self.storage_options},
            "renditions": {
                "thumb": {"width": 48, "format": "webp", "quality": self.quality},
                "og": {"width": 64, "height": 40, "fit": "cover", "format": "jpeg",
                       "quality": self.quality + 10},  # a change renames what mail shows
            },
            "watermark": False,
            "publish": {"batch_size": 4, "workers": 1},
            "newsletter": {"every": self.newsletter_every},
        }
        return config_module.parse(data, root=self.work)

    def teardown(self) -> None:
        self.library.close()
        shutil.rmtree(self.work, ignore_errors=True)

    # --- helpers -----------------------------------------------------------------------

    def slugs(self, *statuses: str) -> list[str]:
        return sorted(s for s, m in self.model.items() if m["status"] in statuses)

    def rendition_keys(self, slug: str) -> set[str]:
        return {a.key for a in self.library.get(slug).renditions}

    # --- rules -------------------------------------------------------------------------

    @initialize(n=st.integers(1, 3))
    def start(self, n: int) -> None:
        for _ in range(n):
            self.add("First", "")

    @rule(caption=CAPTIONS, top=WORDS)
    def add(self, caption: str, top: str) -> None:
        seed = next(self.images)
        image = png(self.work / "in" / f"{seed}.png", 240, 180, seed=seed)
        report = add_files(self.library, self.config(),
                           [(image, MemeFields(caption=caption, top_text=top))])  # fmt: skip
        assert report.ok, report.rejected
        [meme] = report.added
        self.model[meme.slug] = {"status": "queued", "caption": caption, "top": top,
                                 "alt": meme.alt, "explicit": False}  # fmt: skip

    @precondition(lambda self: self.slugs("queued", "published"))
    @rule(data=st.data(), top=WORDS)
    def edit_overlay(self, data: st.DataObject, top: str) -> None:
        slug = data.draw(st.sampled_from(self.slugs("queued", "published")))
        if top == self.model[slug]["top"]:
            return
        if self.model[slug]["status"] == "published" and slug not in self.pixels_changed:
            self.pixels_changed[slug] = (self.rendition_keys(slug), self.model[slug]["top"])
        self.library.edit(slug, **check_edit(self.library, self.config(), slug, top_text=top))
        self.model[slug]["top"] = top
        self.model[slug]["alt"] = self.library.get(slug).alt

    @precondition(lambda self: self.slugs("queued", "published"))
    @rule(data=st.data(), caption=CAPTIONS)
    def edit_caption(self, data: st.DataObject, caption: str) -> None:
        slug = data.draw(st.sampled_from(self.slugs("queued", "published")))
        self.library.edit(slug, **check_edit(self.library, self.config(), slug, caption=caption))
        meme = self.library.get(slug)
        if not self.model[slug]["explicit"]:  # an alt never typed follows the words
            expected = f"{self.model[slug]['top']} — {caption}" if self.model[slug]["top"] \
                else caption  # fmt: skip
            assert meme.alt == expected
        self.model[slug].update(caption=caption, alt=meme.alt)

    @precondition(lambda self: self.slugs("queued", "published"))
    @rule(data=st.data(), alt=st.sampled_from(["A drawing of a cat", "Screenshot", ""]))
    def edit_alt(self, data: st.DataObject, alt: str) -> None:
        slug = data.draw(st.sampled_from(self.slugs("queued", "published")))
        self.library.edit(slug, **check_edit(self.library, self.config(), slug, alt=alt))
        self.model[slug]["explicit"] = bool(alt)
        self.model[slug]["alt"] = self.library.get(slug).alt

    @precondition(lambda self: self.slugs("queued", "published"))
    @rule(data=st.data(), purge=st.booleans())
    def take_down(self, data: st.DataObject, purge: bool) -> None:
        slug = data.draw(st.sampled_from(self.slugs("queued", "published")))
        remove(self.library, self.config(), slug, purge=purge)
        self.model[slug]["status"] = "purged" if purge else "removed"
        self.pixels_changed.pop(slug, None)
        if purge:
            self.damaged.pop(slug, None)  # its original is gone, broken or not

    @precondition(lambda self: self.slugs("removed"))
    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        slug = data.draw(st.sampled_from(self.slugs("removed")))
        self.library.restore(slug)
        self.model[slug]["status"] = "queued"

    @precondition(lambda self: set(self.slugs("queued", "published")) - set(self.damaged))
    @rule(data=st.data())
    def damage_original(self, data: st.DataObject) -> None:
        """The original breaks: a render it needs (a new meme, new text, new settings) fails,
        one the render cache holds does not."""
        slug = data.draw(st.sampled_from(sorted(set(self.slugs("queued", "published"))
                                                - set(self.damaged))))  # fmt: skip
        original = self.library.original_path(self.library.get(slug))
        self.damaged[slug] = original.read_bytes()
        original.write_bytes(self.damaged[slug][:200])

    @precondition(lambda self: self.damaged)
    @rule(data=st.data())
    def repair_and_retry(self, data: st.DataObject) -> None:
        slug = data.draw(st.sampled_from(sorted(self.damaged)))
        meme = self.library.get(slug)
        self.library.original_path(meme).write_bytes(self.damaged.pop(slug))
        if meme.status == "failed" or (meme.status == "published" and meme.failure):
            assert self.library.retry(slug).failure == ""
        if self.model[slug]["status"] == "failed":
            self.model[slug]["status"] = "queued"

    @rule()
    def change_renditions(self) -> None:
        self.quality = 71 if self.quality == 70 else 70

    @rule()
    def switch_storage(self) -> None:
        self.storage_url = self.target_url(next(self.targets))

    @rule(allowed=st.integers(0, 6))
    def publish_fails_part_way(self, allowed: int) -> None:
        config = self.config()
        storage = failing_storage(config.storage, allowed)
        try:
            report = publish(self.library, config, storage=storage)
        except StorageError:
            self.sync_failed()
            return  # the next publish finishes it
        self.published(report)

    @rule()
    def publish_due(self) -> None:
        self.published(publish(self.library, self.config()))

    @precondition(lambda self: self.slugs("published"))
    @rule(data=st.data())
    def special_edition(self, data: st.DataObject) -> None:
        slug = data.draw(st.sampled_from(self.slugs("published")))
        newsletter.send_special(self.library, self.config(), subject="Special", body="Look",
                                slugs=[slug])  # fmt: skip

    # --- what every publish must leave ---------------------------------------------------

    def sync_failed(self) -> None:
        """A render that failed marked its meme, whether or not the run finished."""
        for slug in self.damaged:
            if self.library.get(slug).status == "failed":
                self.model[slug]["status"] = "failed"

    def published(self, report: Any) -> None:
        # Only a damaged original fails a render: a new meme is marked failed, a published
        # one keeps its live renditions and is marked with the reason.
        assert {s for s, _ in report.failed + report.not_updated} <= set(self.damaged), \
            report.as_dict()  # fmt: skip
        for slug, _ in report.not_updated:
            assert self.library.get(slug).failure, slug
        self.sync_failed()
        # Images that cannot be made again, not copied from a previous target out of reach:
        # the memes are up, but such a meme is left out of every document until the copy.
        behind = [e for e in report.errors if "not on this target" in e]
        assert all("cannot copy from" in e for e in behind), behind
        archive = [e for e in report.errors if e not in behind]
        assert all("archive upload failed" in e for e in archive), report.errors
        for slug in report.published:  # they are up, whatever the archive page did
            self.model[slug]["status"] = "published"
        if not archive:  # else an edition's archive page is not up yet: the next publish
            self.check_storage(left_out=behind)

    def check_storage(self, left_out: list[str] | None = None) -> None:
        """Storage is what the library says; with ``left_out`` (error lines of a copy from a
        previous target out of reach), a published meme may be missing from the documents
        if a line names it, and verify may name what the target still lacks."""
        config = self.config()
        checked = verify(self.library, config)
        assert left_out or checked.problems == [], checked.problems
        storage = open_storage(config.storage)
        entries, key = [], "index.json"
        published = self.slugs("published")
        while key:
            raw = storage.get(key)
            if raw is None:  # a library that never published writes no index
                assert not published and key == "index.json"
                break
            doc = json.loads(raw)
            entries += doc["memes"]
            key = doc["next"][len(BASE) :] if doc["next"] else None
        listed = sorted(e["slug"] for e in entries)
        if left_out:
            assert set(listed) <= set(published), listed
            for slug in set(published) - set(listed):
                assert any(line.startswith(f"{slug}: left out") for line in left_out), slug
        else:
            assert listed == published
        for entry in entries:
            model = self.model[entry["slug"]]
            assert (entry["caption"], entry["alt"]) == (model["caption"], model["alt"])
            keys = {r["url"][len(BASE) :] for r in entry["renditions"].values()}
            if entry["slug"] in self.pixels_changed:
                before, top = self.pixels_changed.pop(entry["slug"])
                if self.library.get(entry["slug"]).failure:  # not rendered: the old ones live
                    assert keys == before
                    self.pixels_changed[entry["slug"]] = (before, top)
                elif top != model["top"]:  # new pixels, new names
                    assert not keys & before
            for named in keys:
                assert storage.head(named) is not None, named
        for named in [] if left_out else newsletter.emailed_keys(self.library):
            slug = named.split("/")[1]
            if self.model.get(slug, {}).get("status") != "purged":
                assert storage.head(named) is not None, named

    @invariant()
    def only_a_damaged_original_fails(self) -> None:
        assert {m.slug for m in self.library.memes("failed")} <= set(self.damaged)


def run_machine(machine: type[RuleBasedStateMachine], examples: int, steps: int) -> None:
    test = machine.TestCase
    test.settings = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        phases=[Phase.generate] if os.environ.get("STATE_NO_SHRINK") else list(Phase),
        print_blob=True,
    )
    test().runTest()


def test_published_state_never_drifts_on_file_storage() -> None:
    run_machine(PublishedState, examples=int(os.environ.get("STATE_EXAMPLES", "40")), steps=25)


def test_published_state_never_drifts_on_seaweedfs(s3_server) -> None:
    bucket = s3_server.new_bucket()
    runs = itertools.count()

    port = int(s3_server.endpoint.rsplit(":", 1)[1])

    class OnSeaweed(PublishedState):
        """Each target is reached through one of two 127.0.0.1 relays to the same SeaweedFS,
        so a previous target can go out of reach (its relay shut) and come back."""

        newsletter_every = 1  # mail at every publish: images only a previous target holds

        def __init__(self) -> None:
            self.run = next(runs)  # each example its own prefixes: one library, one prefix
            self.relays = (Relay(port), Relay(port))
            self.shut: int | None = None  # the relay shut now, never the current target's
            self.relay_of: dict[str, int] = {}  # target url -> its relay
            super().__init__()

        def target_url(self, n: int) -> str:
            url = f"s3://{bucket}/run{self.run}/t{n}"
            self.relay_of[url] = n % 2 if self.shut is None else 1 - self.shut
            return url

        @property
        def storage_options(self) -> dict[str, Any]:  # type: ignore[override]
            relay = self.relays[self.relay_of[self.storage_url]]
            return {"endpoint_url": relay.endpoint, "region": s3_server.region, "timeout": 2}

        def teardown(self) -> None:
            for relay in self.relays:
                relay.shut()
            super().teardown()

        @precondition(lambda self: self.shut is None)
        @rule()
        def switch_storage_as_the_previous_goes_out_of_reach(self) -> None:
            """A new target and new rendition settings at once (what sent mail shows is then
            only on the previous target), as the previous target goes out of reach."""
            self.shut = self.relay_of[self.storage_url]
            self.change_renditions()
            self.switch_storage()  # to a new target behind the other relay
            self.relays[self.shut].shut()

        @precondition(lambda self: self.shut is not None)
        @rule()
        def previous_target_back(self) -> None:
            assert self.shut is not None
            self.relays[self.shut].open()
            self.shut = None

    run_machine(OnSeaweed, examples=3, steps=15)

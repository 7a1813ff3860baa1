"""The CLI and the studio on one library at once: `memes publish` processes run again and
again while the studio queues and edits memes. Nothing is lost, nothing is published twice,
and every edit reaches the site."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from factories import jpeg_bytes
from studio_helpers import make_users, new_app, sign_in, studio_config, token

from pipeline.library import Library
from pipeline.studio import accounts

MEMES = Path(sys.executable).with_name("memes")
COUNT = 10


@pytest.fixture(autouse=True)
def _quick_hashes(monkeypatch):
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                            parallelism=1))  # fmt: skip


def test_cli_publish_while_the_studio_queues_and_edits(tmp_path):
    config = studio_config(tmp_path, publish={"batch_size": 3, "workers": 1})
    make_users(config)
    client = sign_in(new_app(config), "ed")
    env = {**os.environ, "MEMES_CONFIG": str(tmp_path / "config.yaml")}
    done = threading.Event()
    codes: list[int] = []
    errors: list[str] = []

    def publish_again_and_again() -> None:
        while not done.is_set():
            run = subprocess.run([MEMES, "publish", "--wait", "30", "--json"], env=env,
                                 capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
            codes.append(run.returncode)
            if run.returncode not in (0, 75):
                errors.append(run.stderr)

    cron = threading.Thread(target=publish_again_and_again)
    cron.start()
    try:
        for i in range(COUNT):
            response = client.post("/make", data={
                "csrf_token": token(client, "/make"), "caption": f"Meme {i}", "title": f"m{i}",
                "files": (io.BytesIO(jpeg_bytes(320, 240, seed=100 + i)), f"m{i}.jpg"),
            }, content_type="multipart/form-data")  # fmt: skip
            assert response.status_code == 303, response.get_data(as_text=True)
            # an edit right after: queued or just published, it must not be lost
            edit = client.post(f"/memes/m{i}", data={
                "csrf_token": token(client, f"/memes/m{i}"), "caption": f"Edited {i}",
                "title": f"m{i}", "category": "funny", "tags": f"t{i}", "alt": "", "credit": "",
                "top": "", "bottom": "", "publish_at": ""})  # fmt: skip
            assert edit.status_code == 303, edit.get_data(as_text=True)
    finally:
        done.set()
        cron.join(300)
    assert errors == [] and codes, errors
    final = subprocess.run([MEMES, "publish", "--limit", "100", "--json"], env=env,
                           capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert final.returncode == 0, final.stderr

    with Library(config.library) as library:
        memes = library.memes()
        runs = library._db.execute("SELECT slugs FROM publish_runs").fetchall()
    assert sorted(m.slug for m in memes) == sorted(f"m{i}" for i in range(COUNT))
    assert {m.status for m in memes} == {"published"}
    assert {m.slug: m.caption for m in memes} == {f"m{i}": f"Edited {i}" for i in range(COUNT)}
    taken = [slug for row in runs for slug in json.loads(row["slugs"])]
    busy = [row for row in runs if json.loads(row["slugs"])]
    assert len(busy) >= 2, "the publishes did not overlap the studio's work"
    assert sorted(taken) == sorted(set(taken)), "a meme was taken by two publish runs"
    index = json.loads((tmp_path / "public" / "index.json").read_text())
    slugs = [m["slug"] for m in index["memes"]]
    assert sorted(slugs) == sorted(f"m{i}" for i in range(COUNT))  # each once
    assert {m["slug"]: m["caption"] for m in index["memes"]} == {
        f"m{i}": f"Edited {i}" for i in range(COUNT)}  # fmt: skip

"""Shared set-up for the studio tests: a config on tmp_path, accounts, a signed-in client."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from flask import Flask
from flask.testing import FlaskClient

from pipeline import config as configuration
from pipeline.config import Config
from pipeline.library import Library
from pipeline.studio import accounts, create_app

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def studio_config(root: Path, **overrides: object) -> Config:
    data = {
        "site": {"title": "Desk", "base_url": "http://127.0.0.1:8080/gallery/"},
        "library": "memes",
        "storage": {"url": "file://public"},
        "renditions": {
            "thumb": {"width": 320, "format": "webp", "quality": 80, "watermark": False},
            "social": {"width": 1080, "height": 1080, "fit": "pad", "format": "jpeg"},
        },
        "publish": {"batch_size": 12, "workers": 1},
        "newsletter": {"outbox": "memes/outbox", "every": 2},
        "limits": {"max_bytes": 400_000, "max_pixels": 64_000_000},
    }
    data.update(overrides)
    (root / "config.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return configuration.load(root / "config.yaml")


def make_users(config: Config) -> None:
    with Library(config.library) as library:
        accounts.add_user(library, "ada", PASSWORD, "admin")
        accounts.add_user(library, "ed", PASSWORD, "editor")


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def token(client: FlaskClient, path: str = "/login") -> str:
    return csrf_of(client.get(path).get_data(as_text=True))


def sign_in(app: Flask, name: str = "ada") -> FlaskClient:
    client = app.test_client()
    response = client.post("/login", data={"username": name, "password": PASSWORD,
                                           "csrf_token": token(client)})  # fmt: skip
    assert response.status_code == 303, response.get_data(as_text=True)
    return client


def new_app(config: Config) -> Flask:
    app = create_app(config)
    app.config["TESTING"] = True
    return app

"""The studio's templates (pipeline/studio/templates_desk.py, and the template parts of the
Make and edit pages) through Flask's test client, on a real library in tmp_path: the list and
its pictures, adding and removing (admins only, CSRF, the same checks as `memes template
add|remove`), making a meme from a template like `memes add --template`, and editing its box
texts like `memes edit --text N=...`."""

from __future__ import annotations

import io
import re

import pytest
from argon2 import PasswordHasher
from factories import jpeg_bytes
from PIL import Image
from studio_helpers import make_users, new_app, sign_in, studio_config, token

from pipeline import meme_templates
from pipeline.library import Library
from pipeline.studio import accounts

EVIL = ['<script>alert(1)</script>', '"><img src=x onerror=alert(2)>']
YELLOW = (255, 214, 0)


@pytest.fixture(autouse=True)
def _quick_hashes(monkeypatch):
    quick = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(accounts, "_hasher", quick)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", quick.hash("not a password"))


@pytest.fixture
def config(tmp_path):
    config = studio_config(tmp_path)
    make_users(config)
    return config


@pytest.fixture
def app(config):
    return new_app(config)


def templates_of(config) -> dict[str, meme_templates.Template]:
    with Library(config.library) as library:
        return {t.name: t for t in library.templates() if not t.bundled}


def add_form(client, **fields) -> dict:
    data = {
        "csrf_token": token(client, "/templates"),
        "name": "two-boxes",
        "image": (io.BytesIO(jpeg_bytes(800, 600, 7)), "base.jpg"),
        "box_x": ["5%", "0.5"], "box_y": ["10%", "0.6"],
        "box_width": ["40%", "0.45"], "box_height": ["20%", "0.3"],
        "box_align": ["left", "right"], "box_valign": ["top", "bottom"],
        "box_max_font_size": ["", "80"],
        "licence": "CC0", "credit": "Photo: the desk",
    }  # fmt: skip
    data.update(fields)
    return data


def post_template(client, **fields):
    return client.post("/templates", data=add_form(client, **fields),
                       content_type="multipart/form-data")  # fmt: skip


# --- the list --------------------------------------------------------------------------------


def test_templates_page_lists_every_template_with_its_numbered_boxes(app, config):
    client = sign_in(app, "ed")
    html = client.get("/templates").get_data(as_text=True)
    for starter in meme_templates.starters():
        assert f'data-name="{starter.name}"' in html
        assert starter.licence in html
    assert "2 boxes" in html and "1 box ·" in html
    src = re.search(r'src="(/templates/cat-verdict/picture\?v=[0-9a-f]+)"', html).group(1)
    picture = client.get(src)
    assert picture.status_code == 200 and picture.content_type == "image/jpeg"
    cat = meme_templates.starter("cat-verdict")
    with Image.open(io.BytesIO(picture.data)) as im:
        assert im.size == (cat.width, cat.height)  # narrower than 720 px: not scaled
        rgb = im.convert("RGB")
        box = cat.boxes[0]
        corner = (round(box.x * im.width) + 1, round(box.y * im.height) + 1)
        near = [rgb.getpixel((corner[0] + dx, corner[1] + dy)) for dx in range(-3, 4)
                for dy in range(-3, 4)]  # fmt: skip
        assert any(all(abs(a - b) < 60 for a, b in zip(p, YELLOW, strict=True)) for p in near)
    assert client.get("/templates/no-such/picture").status_code == 404


def test_signed_out_template_routes_redirect_to_login(app):
    client = app.test_client()
    for url in ("/templates", "/templates/cat-verdict/picture", "/templates/cat-verdict/preview",
                f"/uploads/{'0' * 32}/picture"):  # fmt: skip
        response = client.get(url)
        assert response.status_code in (302, 303) and "/login" in response.headers["Location"]
    for url in ("/templates", "/templates/cat-verdict/remove"):
        response = client.post(url, data={"csrf_token": token(client)})
        assert response.status_code in (302, 303) and "/login" in response.headers["Location"]


def test_template_posts_without_csrf_are_400_and_change_nothing(app, config):
    client = sign_in(app, "ada")
    assert post_template(client).status_code == 303
    for csrf in (None, "forged"):
        data = add_form(client, name="other")
        data.pop("csrf_token")
        if csrf:
            data["csrf_token"] = csrf
        assert client.post("/templates", data=data,
                           content_type="multipart/form-data").status_code == 400  # fmt: skip
        extra = {"csrf_token": csrf} if csrf else {}
        assert client.post("/templates/two-boxes/remove", data=extra).status_code == 400
    assert set(templates_of(config)) == {"two-boxes"}


def test_editors_see_templates_but_cannot_add_or_remove(app, config):
    post_template(sign_in(app, "ada"))
    client = sign_in(app, "ed")
    html = client.get("/templates").get_data(as_text=True)
    assert 'data-name="two-boxes"' in html
    assert 'id="template-form"' not in html and "/templates/two-boxes/remove" not in html
    assert post_template(client, name="mine").status_code == 403
    response = client.post("/templates/two-boxes/remove",
                           data={"csrf_token": token(client, "/templates")})  # fmt: skip
    assert response.status_code == 403
    assert set(templates_of(config)) == {"two-boxes"}


# --- adding ----------------------------------------------------------------------------------


def test_admin_adds_a_template_with_boxes_typed_as_percentages_or_fractions(app, config):
    client = sign_in(app, "ada")
    response = post_template(client)
    assert response.status_code == 303 and response.headers["Location"].endswith("#t-two-boxes")
    made = templates_of(config)["two-boxes"]
    same = meme_templates.parse_boxes([
        {"x": 0.05, "y": 0.1, "width": 0.4, "height": 0.2, "align": "left", "valign": "top"},
        {"x": 0.5, "y": 0.6, "width": 0.45, "height": 0.3, "align": "right", "valign": "bottom",
         "max_font_size": 80},
    ], "boxes")  # fmt: skip
    assert made.boxes == same
    assert (made.width, made.height, made.licence, made.credit) == (800, 600, "CC0",
                                                                     "Photo: the desk")
    html = client.get("/templates").get_data(as_text=True)
    assert "Added template two-boxes (2 boxes)" in html and 'data-name="two-boxes"' in html
    assert not list((config.library / "studio-uploads").iterdir())  # the upload was used up


def test_a_template_without_boxes_gets_the_classic_layout_like_the_cli(app, config):
    client = sign_in(app, "ada")
    fields = {f"box_{k}": [] for k in ("x", "y", "width", "height", "align", "valign",
                                       "max_font_size")}  # fmt: skip
    assert post_template(client, name="classic", **fields).status_code == 303
    from pipeline.overlay import CLASSIC_BOXES

    assert templates_of(config)["classic"].boxes == CLASSIC_BOXES


def test_the_page_staged_upload_is_used_by_token(app, config):
    client = sign_in(app, "ada")
    upload = client.post("/uploads", data={"file": (io.BytesIO(jpeg_bytes(500, 400, 3)), "t.jpg")},
                         headers={"X-CSRFToken": token(client, "/templates")})  # fmt: skip
    staged = upload.get_json()["token"]
    picture = client.get(f"/uploads/{staged}/picture")
    assert picture.status_code == 200 and picture.data[:3] == b"\xff\xd8\xff"
    data = add_form(client, name="by-token")
    data.pop("image")
    data["upload"] = staged
    response = client.post("/templates", data=data, content_type="multipart/form-data")
    assert response.status_code == 303
    assert templates_of(config)["by-token"].width == 500


@pytest.mark.parametrize(("fields", "where", "message"), [
    ({"image": (io.BytesIO(b"not an image at all"), "notes.jpg")}, "image",
     "notes.jpg: not an image"),
    ({"name": "Two Boxes"}, "name", "template name 'Two Boxes': use 1 to 60 lower-case"),
    ({"name": "cat-verdict"}, "name", "template 'cat-verdict': that is a bundled"),
    ({"box_x": ["5%", "0.7"]}, "boxes", "box 2: the box reaches outside the image"),
    ({"box_y": ["ten", "0.6"]}, "boxes", "box 1 y: expected a fraction (0.25) or a percentage"),
    ({"box_align": ["left", "justify"]}, "boxes", "box 2 align: expected one of left"),
    ({"box_max_font_size": ["0", ""]}, "boxes", "box 1 max_font_size: expected px from 1"),
    ({"credit": "a\x1bb"}, "credit", "credit: contains a control character"),
])  # fmt: skip
def test_a_bad_template_shows_the_error_by_its_field_and_changes_nothing(app, config, fields,
                                                                          where, message):
    client = sign_in(app, "ada")
    before = sorted(p.name for p in (config.library / "originals").rglob("*")) if (
        config.library / "originals").exists() else []  # fmt: skip
    response = post_template(client, **fields)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message.replace("'", "&#39;") in html, html[html.index("<main>"):]
    if where == "image":
        assert re.search(r'class="error" role="alert" id="image-error">notes\.jpg', html)
    elif where == "boxes":
        assert re.search(r"<legend>.*</legend>\s*<p class=\"error\" role=\"alert\">box", html)
    else:
        assert re.search(rf'name="{where}"[^>]*>\s*(<small>[^<]*</small>\s*)?'
                         rf'<span class="error" role="alert">', html)  # fmt: skip
    assert templates_of(config) == {}
    after = sorted(p.name for p in (config.library / "originals").rglob("*")) if (
        config.library / "originals").exists() else []  # fmt: skip
    assert after == before
    if where != "image":  # what was typed stays, and the image need not be picked again
        assert re.search(r'<input type="hidden" name="upload" value="[0-9a-f]{32}">', html)


def test_an_existing_name_is_refused_like_the_cli(app, config):
    client = sign_in(app, "ada")
    assert post_template(client).status_code == 303
    response = post_template(client, image=(io.BytesIO(jpeg_bytes(300, 300, 9)), "other.jpg"))
    assert response.status_code == 422
    assert "template &#39;two-boxes&#39;: already exists" in response.get_data(as_text=True)
    assert templates_of(config)["two-boxes"].width == 800


def test_an_oversized_template_upload_gets_413(app, config):
    client = sign_in(app, "ada")
    big = b"\xff\xd8\xff" + b"0" * config.limits.max_bytes
    assert post_template(client, image=(io.BytesIO(big), "big.jpg")).status_code == 413
    assert templates_of(config) == {}


@pytest.mark.parametrize("evil", EVIL)
def test_markup_in_template_fields_is_shown_as_text(app, config, evil):
    client = sign_in(app, "ada")
    refused = post_template(client, name=evil).get_data(as_text=True)
    assert post_template(client, name="marked", licence=evil, credit=evil).status_code == 303
    for html in (refused, client.get("/templates").get_data(as_text=True)):
        assert evil not in html and "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;" in html or "&lt;img src=x" in html


# --- removing --------------------------------------------------------------------------------


def test_remove_follows_the_cli_rule(app, config):
    client = sign_in(app, "ada")
    post_template(client)
    post_template(client, name="unused")
    with Library(config.library) as library:
        from pipeline import ingest

        fields = ingest.validate_fields(ingest.MemeFields(caption="Uses it", template="two-boxes",
                                                          texts=("A",)), config)  # fmt: skip
        from pathlib import Path

        report = ingest.add_files(library, config, [(Path(), fields)])
        assert report.ok
    html = client.get("/templates").get_data(as_text=True)
    assert "/templates/unused/remove" in html and "/templates/two-boxes/remove" not in html
    csrf = token(client, "/templates")
    used = client.post("/templates/two-boxes/remove", data={"csrf_token": csrf},
                       follow_redirects=True).get_data(as_text=True)  # fmt: skip
    assert "template &#39;two-boxes&#39;: still used by" in used
    starter = client.post("/templates/cat-verdict/remove", data={"csrf_token": csrf},
                          follow_redirects=True).get_data(as_text=True)  # fmt: skip
    assert "a bundled template cannot be removed" in starter
    done = client.post("/templates/unused/remove", data={"csrf_token": csrf},
                       follow_redirects=True).get_data(as_text=True)  # fmt: skip
    assert "Removed template unused" in done
    assert set(templates_of(config)) == {"two-boxes"}

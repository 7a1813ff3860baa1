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


LIMITS = {"max_bytes": 1_000_000, "max_pixels": 64_000_000}  # the starters' photos fit


@pytest.fixture
def config(tmp_path):
    config = studio_config(tmp_path, limits=LIMITS)
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


def box_data_of_the_form() -> list[dict]:
    """The boxes add_form types, as a --boxes file would hold them."""
    return [
        {"x": 0.05, "y": 0.1, "width": 0.4, "height": 0.2, "align": "left", "valign": "top"},
        {"x": 0.5, "y": 0.6, "width": 0.45, "height": 0.3, "align": "right", "valign": "bottom",
         "max_font_size": 80},
    ]  # fmt: skip


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
    same = meme_templates.parse_boxes(box_data_of_the_form(), "boxes")
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
    assert "/templates/unused/remove" in html
    assert re.search(r'/templates/two-boxes/remove"[^<]*>\s*<input[^>]*>\s*<small>in use by '
                     r'[^<]*</small>\s*<input type="hidden" name="keep_copies" value="1">', html)
    csrf = token(client, "/templates")
    used = client.post("/templates/two-boxes/remove", data={"csrf_token": csrf},
                       follow_redirects=True).get_data(as_text=True)  # fmt: skip
    assert "template &#39;two-boxes&#39;: still used by uses-it" in used
    starter = client.post("/templates/cat-verdict/remove", data={"csrf_token": csrf},
                          follow_redirects=True).get_data(as_text=True)  # fmt: skip
    assert "a bundled template cannot be removed" in starter
    done = client.post("/templates/unused/remove", data={"csrf_token": csrf},
                       follow_redirects=True).get_data(as_text=True)  # fmt: skip
    assert "Removed template unused" in done
    assert set(templates_of(config)) == {"two-boxes"}
    kept = client.post("/templates/two-boxes/remove", data={"csrf_token": csrf, "keep_copies": "1"},
                       follow_redirects=True).get_data(as_text=True)  # fmt: skip
    assert "Removed template two-boxes; 1 meme(s) keep their own copy of its boxes" in kept
    assert templates_of(config) == {}
    with Library(config.library) as library:
        (meme,) = library.memes()
        assert library.boxes_of(meme) == meme_templates.parse_boxes(
            box_data_of_the_form(), "boxes")  # fmt: skip
    edit = client.get(f"/memes/{meme.slug}").get_data(as_text=True)  # its own boxes, still
    assert re.findall(r'for="f-text-(\d)">Box \1', edit) == ["1", "2"]
    assert client.get(f"/memes/{meme.slug}/preview?text=B&text=C").status_code == 200


# --- making a meme from a template, and editing its boxes ------------------------------------


def cli_meme(tmp_path, name: str, texts: tuple[str, ...], caption: str):
    """The same meme made by `memes add --template` in a library of its own."""
    from click.testing import CliRunner

    from pipeline import config as configuration
    from pipeline.cli import cli

    root = tmp_path / "cli"
    root.mkdir()
    studio_config(root, limits=LIMITS)
    args = ["--config", str(root / "config.yaml"), "add", "--template", name, "--caption", caption]
    for text in texts:
        args += ["--text", text]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return configuration.load(root / "config.yaml")


def only_meme(config):
    with Library(config.library) as library:
        (meme,) = library.memes()
        return meme


def rendered(config, meme) -> dict[str, bytes]:
    from pipeline import publish

    with Library(config.library) as library:
        results, failures = publish.render_memes(library, config, [meme])
    assert not failures
    return {r.name: r.data for r in results[0].renditions}


def make_from_template(client, name="cat-verdict", texts=("WHEN TESTS PASS", "SHIP IT"), **more):
    data = {"csrf_token": token(client, "/make"), "caption": "A cat decides", "category": "funny",
            "template": name, "text": list(texts), "top": "ignored", "bottom": "", **more}
    return client.post("/make", data=data, content_type="multipart/form-data")


def test_make_page_offers_every_template_and_its_boxes(app):
    client = sign_in(app, "ed")
    html = client.get("/make").get_data(as_text=True)
    for starter in meme_templates.starters():
        assert f'<option value="{starter.name}" data-boxes="{len(starter.boxes)}"' in html
    assert re.search(r'<div id="box-texts" hidden>\s*</div>', html)
    chosen = client.get("/make?template=coffee-labels").get_data(as_text=True)
    assert re.findall(r'<label class="field" for="f-text-(\d)">Box \1', chosen) == ["1", "2", "3"]
    assert 'value="coffee-labels"' in chosen and re.search(r'value="coffee-labels"[^>]*\s+selected',
                                                           chosen)  # fmt: skip
    assert '<div id="classic-texts" hidden>' in chosen


def test_template_preview_follows_the_box_texts(app):
    client = sign_in(app, "ed")
    empty = client.get("/templates/cat-verdict/preview")
    one = client.get("/templates/cat-verdict/preview", query_string={"text": ["HELLO"]})
    two = client.get("/templates/cat-verdict/preview", query_string={"text": ["HELLO", "CAT"]})
    for response in (empty, one, two):
        assert response.status_code == 200 and response.data[:3] == b"\xff\xd8\xff"
    assert len({empty.data, one.data, two.data}) == 3
    too_many = client.get("/templates/cat-verdict/preview", query_string={"text": ["a", "b", "c"]})
    assert too_many.status_code == 422 and "3 texts for 2 text boxes" in too_many.text
    too_long = client.get("/templates/cat-verdict/preview", query_string={"text": ["WORD " * 400]})
    assert too_long.status_code == 422 and "text 1 does not fit" in too_long.text
    assert client.get("/templates/nope/preview").status_code == 404


def test_a_meme_made_from_a_template_in_the_studio_is_the_cli_one(app, config, tmp_path):
    client = sign_in(app, "ed")
    response = make_from_template(client)
    assert response.status_code == 303, response.get_data(as_text=True)
    studio = only_meme(config)
    other = cli_meme(tmp_path, "cat-verdict", ("WHEN TESTS PASS", "SHIP IT"), "A cat decides")
    cli = only_meme(other)
    for key in ("slug", "template", "texts", "top_text", "bottom_text", "sha256", "alt",
                "caption", "width", "height", "category"):  # fmt: skip
        assert getattr(studio, key) == getattr(cli, key), key
    assert studio.texts == ("WHEN TESTS PASS", "SHIP IT") and studio.template == "cat-verdict"
    assert rendered(config, studio) == rendered(other, cli)
    queue = client.get("/queue").get_data(as_text=True)
    thumb = re.search(r'src="(/memes/a-cat-decides/preview\?[^"]+)"', queue).group(1)
    assert "text=WHEN+TESTS+PASS&amp;text=SHIP+IT" in thumb
    assert client.get(thumb.replace("&amp;", "&")).status_code == 200


@pytest.mark.parametrize(("texts", "fields", "where", "message"), [
    (("a", "b", "c"), {}, "template", "template &#39;cat-verdict&#39; has 2 text boxes; 3 texts"),
    (("ok", "W" * 300), {"template": "coffee-labels"}, "text2", "text 2 does not fit"),
    (("ok", "a\x07b"), {}, "text2", "text 2: contains a control character"),
    (("ok",), {"template": "no-such"}, "template", "template &#39;no-such&#39;: no such"),
    (("ok",), {"upload": "0" * 32}, "files", "A template brings its image"),
    (("ok",), {"caption": " "}, "caption", "caption: must not be empty"),
])  # fmt: skip
def test_a_bad_template_meme_shows_the_error_and_queues_nothing(app, config, texts, fields,
                                                                 where, message):
    client = sign_in(app, "ed")
    response = make_from_template(client, texts=texts, **fields)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in html, html[html.index("<main>"):]
    if where.startswith("text"):
        n = where[4:]
        assert re.search(rf'for="f-text-{n}">Box {n}\s*<input[^>]*>\s*<span class="error"', html)
    with Library(config.library) as library:
        assert library.memes() == []


def test_the_same_template_meme_twice_says_already_added(app, config):
    client = sign_in(app, "ed")
    assert make_from_template(client).status_code == 303
    again = make_from_template(client)
    assert again.status_code == 422 and "already added as a-cat-decides" in again.text


def test_editing_box_texts_goes_through_memes_edit(app, config):
    client = sign_in(app, "ed")
    make_from_template(client, name="coffee-labels", texts=("Monday", "me"))
    meme = only_meme(config)
    page = client.get(f"/memes/{meme.slug}").get_data(as_text=True)
    boxes = re.findall(r'for="f-text-(\d)">Box \1\s*<input id="f-text-\1" name="text" '
                       r'value="([^"]*)"', page)  # fmt: skip
    assert boxes == [("1", "Monday"), ("2", "me"), ("3", "")]
    assert '<div id="classic-texts" hidden>' in page
    assert re.search(r'id="preview" [^>]*src="/memes/[^"]+/preview\?text=Monday&amp;text=me"', page)
    form = {"csrf_token": token(client, f"/memes/{meme.slug}"), "caption": meme.caption,
            "title": meme.title, "category": meme.category, "tags": "", "alt": meme.alt,
            "credit": "", "text": ["Tuesday", "me", "the 4th coffee"],
            "publish_at": re.search(r'name="publish_at" type="datetime-local" value="([^"]*)"',
                                    page).group(1)}  # fmt: skip
    response = client.post(f"/memes/{meme.slug}", data=form)
    assert response.status_code == 303, response.get_data(as_text=True)
    edited = only_meme(config)
    assert edited.texts == ("Tuesday", "me", "the 4th coffee")
    from pipeline import ingest

    assert edited.alt == ingest.default_alt(ingest.MemeFields(
        caption=meme.caption, template="coffee-labels", texts=edited.texts))  # fmt: skip
    assert edited.alt.startswith("Tuesday / me / the 4th coffee")  # it follows the texts
    preview = client.get(f"/memes/{meme.slug}/preview", query_string={"text": ["X", "Y"]})
    assert preview.status_code == 200
    assert preview.data != client.get(f"/memes/{meme.slug}/preview").data
    form["text"] = ["ok", "W" * 300, ""]
    form["csrf_token"] = token(client, f"/memes/{meme.slug}")
    refused = client.post(f"/memes/{meme.slug}", data=form)
    assert refused.status_code == 422
    assert re.search(r'for="f-text-2">Box 2\s*<input[^>]*value="W+">\s*'
                     r'<span class="error" role="alert">text 2 does not fit', refused.text)
    assert only_meme(config).texts == edited.texts


def test_box_texts_edited_in_the_studio_equal_memes_edit(app, config, tmp_path):
    from click.testing import CliRunner

    from pipeline.cli import cli

    client = sign_in(app, "ed")
    make_from_template(client)
    meme = only_meme(config)
    page = client.get(f"/memes/{meme.slug}").get_data(as_text=True)
    form = {"csrf_token": token(client, f"/memes/{meme.slug}"), "caption": meme.caption,
            "title": meme.title, "category": meme.category, "tags": "", "alt": meme.alt,
            "credit": "", "text": ["NEW TOP", ""],
            "publish_at": re.search(r'name="publish_at" type="datetime-local" value="([^"]*)"',
                                    page).group(1)}  # fmt: skip
    assert client.post(f"/memes/{meme.slug}", data=form).status_code == 303
    other = cli_meme(tmp_path, "cat-verdict", ("WHEN TESTS PASS", "SHIP IT"), "A cat decides")
    result = CliRunner().invoke(cli, ["--config", str(other.library.parent / "config.yaml"),
                                      "edit", meme.slug, "--text", "1=NEW TOP", "--text", "2="])
    assert result.exit_code == 0, result.output
    studio, by_cli = only_meme(config), only_meme(other)
    assert (studio.texts, studio.alt, studio.alt_explicit) == (by_cli.texts, by_cli.alt,
                                                               by_cli.alt_explicit)
    assert rendered(config, studio) == rendered(other, by_cli)


def test_published_search_finds_a_template_memes_box_texts(app, config):
    client = sign_in(app, "ada")
    make_from_template(client, texts=("PURRFECT VERDICT", "GUILTY"), alt="A cat in a box")
    client.post("/publish", data={"csrf_token": token(client, "/publish")})
    found = client.get("/published", query_string={"q": "purrfect guilty"}).text
    assert 'data-slug="a-cat-decides"' in found
    assert 'data-slug="a-cat-decides"' not in client.get("/published?q=innocent").text


@pytest.mark.parametrize("evil", EVIL)
def test_markup_in_box_texts_is_shown_as_text(app, config, evil):
    client = sign_in(app, "ed")
    assert make_from_template(client, texts=(evil, evil)).status_code == 303
    meme = only_meme(config)
    assert meme.texts == (evil, evil)
    pages = [client.get(url).text for url in ("/queue", f"/memes/{meme.slug}")]
    pages.append(make_from_template(client, texts=(evil, evil, evil)).text)  # refused, shown
    for html in pages:
        assert evil not in html and "<script>alert" not in html and "<img src=x" not in html
    assert all("&lt;" in html or "%3C" in html for html in pages)

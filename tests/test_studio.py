"""The studio (`memes serve`) through Flask's test client, on a real library in tmp_path:
the sign-in gate, CSRF, roles, throttling, headers, uploads, and hostile text shown as text."""

from __future__ import annotations

import io
import json
import re
import stat

import pytest
from argon2 import PasswordHasher
from factories import jpeg_bytes
from studio_helpers import PASSWORD, make_users, new_app, sign_in, studio_config, token

from pipeline.library import Library
from pipeline.studio import accounts

EVIL = ['<script>alert(1)</script>', '"><img src=x onerror=alert(2)>']


@pytest.fixture(autouse=True)
def _quick_hashes(monkeypatch):
    """argon2id at its smallest cost: these tests sign in dozens of times on 2 cores."""
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


def sample_urls(app, methods: set[str]) -> list[str]:
    """One concrete URL for every route of the app answering one of these methods."""
    urls = []
    for rule in app.url_map.iter_rules():
        if not (rule.methods & methods) or rule.endpoint == "static":
            continue
        values = {arg: {"key": "index.html", "token": "0" * 32}.get(arg, "some-meme")
                  for arg in rule.arguments}  # fmt: skip
        url = rule.build(values, append_unknown=False)[1]
        urls.append(url)
    return sorted(set(urls))


def snapshot(config) -> tuple:
    with Library(config.library) as library:
        memes = [(m.slug, m.status, m.caption, m.updated_at) for m in library.memes()]
        users = [(u.name, u.role, u.password_hash) for u in library.users()]
        return memes, users, library.editions()


def add_meme(client, *, caption="A caption", seed=1, **fields) -> str:
    data = {"csrf_token": token(client, "/make"), "caption": caption, "category": "funny",
            "files": (io.BytesIO(jpeg_bytes(640, 480, seed)), f"photo{seed}.jpg"), **fields}
    response = client.post("/make", data=data, content_type="multipart/form-data")
    assert response.status_code == 303, response.get_data(as_text=True)
    return response


# --- the gate --------------------------------------------------------------------------------


def test_signed_out_every_page_redirects_to_login(app):
    client = app.test_client()
    response = client.get("/")
    assert response.status_code in (302, 303)
    assert response.headers["Location"].startswith("/login")
    urls = sample_urls(app, {"GET"})
    assert len(urls) >= 12
    for url in urls:
        if url == "/login":
            continue
        response = client.get(url)
        assert response.status_code in (302, 303), url
        assert response.headers["Location"].startswith("/login"), url


def test_signed_out_posts_change_nothing(app, config):
    client = app.test_client()
    before = snapshot(config)
    for url in sample_urls(app, {"POST"}):
        if url == "/login":
            continue
        response = client.post(url, data={"csrf_token": token(client)})
        assert response.status_code in (302, 303), url
        assert response.headers["Location"].startswith("/login"), url
    assert snapshot(config) == before


def test_login_page_contract(app):
    html = app.test_client().get("/login").get_data(as_text=True)
    assert 'name="username"' in html and 'name="password"' in html
    assert re.search(r'<input type="hidden" name="csrf_token" value="[^"]+"', html)


def test_every_post_without_csrf_is_400_and_changes_nothing(app, config):
    client = sign_in(app, "ada")
    add_meme(client)
    before = snapshot(config)
    urls = sample_urls(app, {"POST"})
    assert "/publish" in urls and "/make" in urls and "/logout" in urls
    for url in urls:
        response = client.post(url, data={"caption": "changed", "subject": "x"})
        assert response.status_code == 400, url
        bad = client.post(url, data={"caption": "changed", "csrf_token": "forged"})
        assert bad.status_code == 400, url
    assert snapshot(config) == before
    assert client.get("/queue").status_code == 200  # still signed in: logout was refused too


def test_login_without_csrf_is_400_and_signs_nobody_in(app):
    client = app.test_client()
    client.get("/login")
    response = client.post("/login", data={"username": "ada", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/queue").status_code == 302


def test_login_sets_a_safe_session_cookie_and_logout_ends_it(app):
    client = app.test_client()
    response = client.post("/login", data={"username": "ada", "password": PASSWORD,
                                           "csrf_token": token(client)})  # fmt: skip
    assert response.status_code == 303
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert client.get("/queue").status_code == 200
    response = client.post("/logout", data={"csrf_token": token(client, "/queue")})
    assert response.status_code == 303
    assert client.get("/queue").status_code == 302


def test_login_redirects_only_to_this_site(app):
    client = app.test_client()
    for target, expected in (("/published?q=x", "/published?q=x"), ("//evil.example/", "/make"),
                             ("https://evil.example/", "/make")):  # fmt: skip
        response = client.post(f"/login?next={target}", data={
            "username": "ada", "password": PASSWORD, "csrf_token": token(client)})  # fmt: skip
        assert response.headers["Location"] == expected


@pytest.mark.parametrize(("secure", "trust", "proto", "expected"), [
    (True, False, None, True),
    (False, True, "https", True),
    (False, False, "https", False),  # a forged header is ignored without trust_proxy
    (False, True, None, False),
])  # fmt: skip
def test_secure_cookie_from_config_or_a_trusted_proxy(tmp_path, secure, trust, proto, expected):
    config = studio_config(tmp_path, studio={"secure_cookies": secure, "trust_proxy": trust})
    make_users(config)
    client = new_app(config).test_client()
    headers = {"X-Forwarded-Proto": proto} if proto else {}
    page = client.get("/login", headers=headers)
    assert ("Secure" in page.headers["Set-Cookie"]) is expected


def test_removed_user_is_signed_out(app, config):
    client = sign_in(app, "ed")
    with Library(config.library) as library:
        library.remove_user("ed")
    assert client.get("/queue").status_code == 302


def test_session_key_made_once_with_mode_0600(config):
    new_app(config)
    key_file = config.library / "studio.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    first = key_file.read_bytes()
    new_app(config)
    assert key_file.read_bytes() == first and len(first) == 32


# --- throttling ------------------------------------------------------------------------------


def test_five_failed_logins_for_a_user_answer_429(app):
    client = app.test_client()
    for _ in range(5):
        wrong = client.post("/login", data={"username": "ada", "password": "wrong password!",
                                            "csrf_token": token(client)})  # fmt: skip
        assert wrong.status_code == 401
    right = client.post("/login", data={"username": "ada", "password": PASSWORD,
                                        "csrf_token": token(client)})  # fmt: skip
    assert right.status_code == 429
    assert client.get("/queue").status_code == 302
    # another address may still sign in as someone else
    other = app.test_client()
    response = other.post("/login", data={"username": "ed", "password": PASSWORD,
                                          "csrf_token": token(other)},
                          environ_base={"REMOTE_ADDR": "10.0.0.9"})  # fmt: skip
    assert response.status_code == 303


def test_five_failed_logins_from_an_address_answer_429(app):
    client = app.test_client()
    for name in ("x1", "x2", "x3", "x4", "x5"):
        client.post("/login", data={"username": name, "password": "nope nope nope",
                                    "csrf_token": token(client)})  # fmt: skip
    response = client.post("/login", data={"username": "ed", "password": PASSWORD,
                                           "csrf_token": token(client)})  # fmt: skip
    assert response.status_code == 429


# --- headers ---------------------------------------------------------------------------------


def test_security_headers_on_every_response(app):
    client = sign_in(app)
    for url in ["/login", "/static/studio.js", "/", "/queue", "/nope", "/memes/none",
                *sample_urls(app, {"GET"})]:  # fmt: skip
        response = client.get(url)
        csp = response.headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in csp, url
        assert "unsafe-inline" not in csp.split("script-src", 1)[-1].split(";")[0], url
        assert response.headers["X-Content-Type-Options"] == "nosniff", url
        assert response.headers["X-Frame-Options"] == "DENY", url
        assert response.headers["Referrer-Policy"], url


def test_no_inline_script_in_any_page(app):
    client = sign_in(app)
    add_meme(client)
    for url in sample_urls(app, {"GET"}):
        html = client.get(url).get_data(as_text=True)
        for tag in re.findall(r"<script[^>]*>", html):
            assert "src=" in tag, (url, tag)
        assert not re.search(r"\son[a-z]+=", html), url


# --- roles -----------------------------------------------------------------------------------


def test_editors_cannot_publish_send_or_take_down(app, config):
    admin = sign_in(app, "ada")
    add_meme(admin)
    admin.post("/publish", data={"csrf_token": token(admin, "/publish")})
    editor = sign_in(app, "ed")
    published = snapshot(config)
    slug = published[0][0][0]
    for url, data in (("/publish", {}), ("/newsletter/special", {"subject": "Hi"}),
                      ("/newsletter/resume", {}),
                      ("/newsletter/confirm", {"kind": "regular", "number": "1"}),
                      (f"/memes/{slug}/remove", {})):  # fmt: skip
        response = editor.post(url, data={**data, "csrf_token": token(editor, "/queue")})
        assert response.status_code == 403, url
    assert snapshot(config) == published
    assert b"Publish now</button>" not in editor.get("/publish").data


def test_editor_removes_a_queued_meme(app, config):
    editor = sign_in(app, "ed")
    add_meme(editor)
    slug = snapshot(config)[0][0][0]
    response = editor.post(f"/memes/{slug}/remove", data={"csrf_token": token(editor, "/queue")})
    assert response.status_code == 303
    assert snapshot(config)[0][0][1] == "removed"


def _publish(client) -> None:
    response = client.post("/publish", data={"csrf_token": token(client, "/publish")})
    assert b"Published" in response.data, response.get_data(as_text=True)


def _removed_list(client) -> str:
    html = client.get("/queue").get_data(as_text=True)
    assert 'id="removed-list"' in html, html
    return html.split('id="removed-list"', 1)[1]


def test_editor_restores_a_meme_removed_from_the_queue(app, config):
    editor = sign_in(app, "ed")
    add_meme(editor, title="Back again")
    editor.post("/memes/back-again/remove", data={"csrf_token": token(editor, "/queue")})
    listing = _removed_list(editor)
    assert "back-again" in listing and "Restore</button>" in listing
    forged = editor.post("/memes/back-again/restore", data={"csrf_token": "forged"})
    assert forged.status_code == 400
    assert snapshot(config)[0][0][1] == "removed"
    response = editor.post("/memes/back-again/restore",
                           data={"csrf_token": token(editor, "/queue")})  # fmt: skip
    assert response.status_code == 303 and response.headers["Location"].endswith("/queue")
    assert snapshot(config)[0][0][1] == "queued"
    html = editor.get("/queue").get_data(as_text=True)
    assert 'data-slug="back-again"' in html.split('id="queue-list"', 1)[1]
    assert "Restored back-again" in html and 'id="removed-list"' not in html
    again = editor.post("/memes/back-again/restore", data={"csrf_token": token(editor, "/queue")})
    assert again.status_code == 303 and snapshot(config)[0][0][1] == "queued"
    assert "not removed" in editor.get("/queue").get_data(as_text=True)


def test_restore_is_refused_signed_out(app, config):
    editor = sign_in(app, "ed")
    add_meme(editor, title="Gone")
    editor.post("/memes/gone/remove", data={"csrf_token": token(editor, "/queue")})
    stranger = app.test_client()
    response = stranger.post("/memes/gone/restore", data={"csrf_token": token(stranger)})
    assert response.status_code in (302, 303) and "/login" in response.headers["Location"]
    assert snapshot(config)[0][0][1] == "removed"


def test_only_an_admin_restores_a_meme_taken_down_from_the_site(app, config):
    admin = sign_in(app, "ada")
    add_meme(admin, title="First", seed=1)
    _publish(admin)
    add_meme(admin, title="Second", seed=2)
    _publish(admin)
    with Library(config.library) as library:
        first_at = library.get("first").published_at
    admin.post("/memes/first/remove", data={"csrf_token": token(admin, "/published")})
    assert not (config.storage.local_path / "m" / "first.html").exists()
    editor = sign_in(app, "ed")
    listing = _removed_list(editor)
    assert "first" in listing and "Restore</button>" not in listing  # shown, not offered
    refused = editor.post("/memes/first/restore", data={"csrf_token": token(editor, "/queue")})
    assert refused.status_code == 403
    assert dict((s, st) for s, st, *_ in snapshot(config)[0])["first"] == "removed"
    assert "Restore</button>" in _removed_list(admin)
    response = admin.post("/memes/first/restore", data={"csrf_token": token(admin, "/queue")})
    assert response.status_code == 303
    assert dict((s, st) for s, st, *_ in snapshot(config)[0])["first"] == "queued"
    _publish(admin)
    with Library(config.library) as library:
        assert [m.slug for m in library.published()] == ["first", "second"]  # its old place
        assert library.get("first").published_at == first_at
    index = json.loads(admin.get("/gallery/index.json").data)
    assert [m["slug"] for m in index["memes"]] == ["second", "first"]


@pytest.mark.parametrize("evil", EVIL)
def test_removed_list_shows_markup_as_text(app, config, evil):
    client = sign_in(app, "ed")
    add_meme(client, caption=evil, alt="An alt")
    with Library(config.library) as library:
        (meme,) = library.memes()
    client.post(f"/memes/{meme.slug}/remove", data={"csrf_token": token(client, "/queue")})
    listing = _removed_list(client)
    assert evil not in listing and "<script>alert" not in listing and "<img src=x" not in listing
    assert "&lt;script&gt;" in listing or "&lt;img src=x" in listing


# --- make, uploads, preview ------------------------------------------------------------------


def test_make_queues_with_every_field_in_the_site_zone(app, config):
    client = sign_in(app, "ed")
    add_meme(client, caption="The caption", title="Cats at work", tags="Cats, office",
             alt="A cat typing", credit="Desk", top="TOP", bottom="BOTTOM",
             publish_at="2031-05-01T09:30")  # fmt: skip
    with Library(config.library) as library:
        (meme,) = library.memes()
    assert (meme.slug, meme.title, meme.caption, meme.tags, meme.alt, meme.credit,
            meme.top_text, meme.bottom_text, meme.original_name) == (
        "cats-at-work", "Cats at work", "The caption", ("cats", "office"), "A cat typing",
        "Desk", "TOP", "BOTTOM", "photo1.jpg")  # fmt: skip
    assert meme.publish_at.isoformat() == "2031-05-01T09:30:00+00:00"  # site.timezone: UTC
    queue = client.get("/queue").get_data(as_text=True)
    assert "cats-at-work" in queue and "2031-05-01 09:30 UTC" in queue
    assert not list((config.library / "studio-uploads").iterdir())  # the upload was taken


def test_times_are_typed_and_shown_in_site_timezone(tmp_path):
    config = studio_config(tmp_path, site={"title": "Desk", "base_url": "http://x.test/",
                                           "timezone": "Europe/Berlin"})  # fmt: skip
    make_users(config)
    client = sign_in(new_app(config), "ed")
    add_meme(client, title="Berlin", publish_at="2031-05-01T09:30")
    with Library(config.library) as library:
        meme = library.get("berlin")
    assert meme.publish_at.isoformat() == "2031-05-01T07:30:00+00:00"
    assert "2031-05-01 09:30 CEST" in client.get("/queue").get_data(as_text=True)
    form = client.get("/memes/berlin").get_data(as_text=True)
    assert 'value="2031-05-01T09:30"' in form and "Publish at (Europe/Berlin)" in form


def test_drop_zone_upload_then_queue_two_files(app, config):
    client = sign_in(app, "ed")
    tokens = []
    for seed in (3, 4):
        response = client.post("/uploads", data={
            "file": (io.BytesIO(jpeg_bytes(400, 300, seed)), f"drop{seed}.jpg"),
        }, headers={"X-CSRFToken": token(client, "/make")}, content_type="multipart/form-data")
        assert response.status_code == 200, response.data
        body = response.get_json()
        assert (body["width"], body["height"]) == (400, 300)
        preview = client.get(body["preview"] + "?top=HELLO&bottom=WORLD")
        assert preview.status_code == 200 and preview.data[:3] == b"\xff\xd8\xff"
        tokens.append(body["token"])
    response = client.post("/make", data={"csrf_token": token(client, "/make"),
                                          "caption": "Two at once", "upload": tokens})
    assert response.status_code == 303
    with Library(config.library) as library:
        assert sorted(m.original_name for m in library.memes()) == ["drop3.jpg", "drop4.jpg"]


def test_a_bad_upload_shows_the_ingest_error_and_changes_nothing(app, config):
    client = sign_in(app, "ed")
    before = snapshot(config)
    response = client.post("/make", data={
        "csrf_token": token(client, "/make"), "caption": "x",
        "files": (io.BytesIO(b"not an image at all"), "notes.jpg"),
    }, content_type="multipart/form-data")  # fmt: skip
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert re.search(r"notes\.jpg</span>\s*<span class=\"error\"[^>]*>not an image", html)
    upload = client.post("/uploads", data={"file": (io.BytesIO(b"GIF89a broken"), "b.gif")},
                         headers={"X-CSRFToken": token(client, "/make")})  # fmt: skip
    assert upload.status_code == 422 and "not an image" in upload.get_json()["error"]
    assert snapshot(config) == before


def test_a_field_error_shows_next_to_its_field(app, config):
    client = sign_in(app, "ed")
    response = client.post("/make", data={
        "csrf_token": token(client, "/make"), "caption": "  ",
        "files": (io.BytesIO(jpeg_bytes(200, 200)), "a.jpg"),
    }, content_type="multipart/form-data")  # fmt: skip
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    field_then_error = r'name="caption"[^<]*</textarea>\s*<span class="error"[^>]*>caption: must'
    assert re.search(field_then_error, html)
    assert snapshot(config)[0] == []


def test_an_oversized_upload_gets_413_and_changes_nothing(app, config):
    client = sign_in(app, "ed")
    big = b"\xff\xd8\xff" + b"0" * (config.limits.max_bytes + 300_000)
    for url, field in (("/uploads", "file"), ("/make", "files")):
        response = client.post(url, data={"csrf_token": token(client, "/make"), "caption": "x",
                                          field: (io.BytesIO(big), "big.jpg")},
                               content_type="multipart/form-data")  # fmt: skip
        assert response.status_code == 413, url
    just_over = b"\xff\xd8\xff" + b"0" * config.limits.max_bytes
    response = client.post("/uploads", data={"file": (io.BytesIO(just_over), "big.jpg")},
                           headers={"X-CSRFToken": token(client, "/make")})  # fmt: skip
    assert response.status_code == 413
    assert snapshot(config)[0] == []
    assert not (config.library / "studio-uploads").exists() or not list(
        (config.library / "studio-uploads").iterdir())


def test_preview_that_does_not_fit_says_why(app, config):
    client = sign_in(app, "ed")
    add_meme(client)
    slug = snapshot(config)[0][0][0]
    response = client.get(f"/memes/{slug}/preview", query_string={"top": "WORD " * 400})
    assert response.status_code == 422
    assert "top text" in response.get_data(as_text=True)


def test_upload_tokens_name_no_path(app):
    client = sign_in(app, "ed")
    for bad in ("..", "..%2f..%2fcatalog.sqlite", "0" * 32, "g" * 32):
        assert client.get(f"/uploads/{bad}/preview").status_code == 404


# --- queue, edit, renditions, publish, published, newsletter, gallery ------------------------


def test_edit_reschedule_and_see_every_rendition(app, config):
    client = sign_in(app, "ed")
    add_meme(client, title="Edit me")
    response = client.post("/memes/edit-me", data={
        "csrf_token": token(client, "/memes/edit-me"), "caption": "New words", "title": "T",
        "category": "tech", "tags": "a, b", "alt": "", "credit": "", "top": "UP",
        "bottom": "", "publish_at": "2030-01-02T03:04"})  # fmt: skip
    assert response.status_code == 303
    with Library(config.library) as library:
        meme = library.get("edit-me")
    assert (meme.caption, meme.category, meme.tags, meme.top_text) == ("New words", "tech",
                                                                       ("a", "b"), "UP")
    assert meme.alt == "UP — New words"
    assert meme.publish_at.isoformat() == "2030-01-02T03:04:00+00:00"
    page = client.get("/memes/edit-me/renditions").get_data(as_text=True)
    for name in ("thumb", "social"):
        assert f"/memes/edit-me/renditions/{name}" in page
    assert '<a href="/memes/edit-me">Edit it</a>' in page  # and back to the queue
    assert '<a href="/queue">' in page.split("</nav>", 1)[1]
    social = client.get("/memes/edit-me/renditions/social?download=1")
    assert social.status_code == 200 and social.content_type == "image/jpeg"
    assert "attachment" in social.headers["Content-Disposition"]
    assert client.get("/memes/edit-me/renditions/nope").status_code == 404


def test_a_refused_edit_previews_the_texts_as_typed(app, config):
    """The edit page shown again with an error previews the texts in its fields, not the
    stored ones (the picture and the fields would disagree)."""
    client = sign_in(app, "ed")
    add_meme(client, title="Typed", top="STORED TOP")
    response = client.post("/memes/typed", data={
        "csrf_token": token(client, "/memes/typed"), "caption": " ", "title": "Typed",
        "category": "funny", "tags": "", "alt": "", "credit": "", "top": "TYPED TOP",
        "bottom": "", "publish_at": ""})  # fmt: skip
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    source = re.search(r'<img id="preview"[^>]* src="([^"]+)"', html).group(1)
    assert "top=TYPED+TOP" in source and "STORED" not in source
    assert client.get(source.replace("&amp;", "&")).status_code == 200


def test_published_search_takes_a_tag_as_shown(app, config):
    """The list shows tags as #tag; searching for '#launch' or 'Launch' finds them."""
    client = sign_in(app, "ada")
    add_meme(client, title="Tagged", tags="launch")
    _publish(client)
    for typed in ("launch", "#launch", "Launch", " #launch "):
        listing = client.get("/published", query_string={"tag": typed}).get_data(as_text=True)
        assert 'data-slug="tagged"' in listing, typed
    assert 'data-slug="tagged"' not in client.get(
        "/published", query_string={"tag": "#other"}).get_data(as_text=True)  # fmt: skip
    # a meme's tags and category are links to the memes that share them
    listing = client.get("/published").get_data(as_text=True)
    assert '<a href="/published?tag=launch">#launch</a>' in listing
    assert '<a href="/published?category=funny">funny</a>' in listing


def test_edit_page_says_when_a_queued_meme_goes_out(app, config):
    """A meme due already goes out at the next run (not 'at' a time that has passed); a
    scheduled one at its time, in the site's zone."""
    client = sign_in(app, "ed")
    add_meme(client, title="Due now")
    add_meme(client, title="Later", seed=2, publish_at="2031-05-06T07:08")
    due = client.get("/memes/due-now").get_data(as_text=True)
    assert "Due: it goes out at the next publish run." in due and "Goes out at" not in due
    later = client.get("/memes/later").get_data(as_text=True)
    assert "Goes out at 2031-05-06 07:08 UTC." in later


def test_the_page_shown_is_marked_in_the_menu(app):
    client = sign_in(app, "ed")
    for path in ("/make", "/queue", "/publish", "/published", "/newsletter", "/templates"):
        html = client.get(path).get_data(as_text=True)
        assert re.findall(r'<a href="([^"]+)" aria-current="page"', html) == [path], path


def test_publish_now_shows_the_report_and_the_meme_everywhere(app, config):
    client = sign_in(app, "ada")
    add_meme(client, title="Going out", tags="launch")
    page = client.post("/publish", data={"csrf_token": token(client, "/publish")})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Published 1" in html and "going-out" in html
    listing = client.get("/published", query_string={"tag": "launch"}).get_data(as_text=True)
    assert "going-out" in listing
    assert "going-out" not in client.get("/published", query_string={"q": "zebra"}).get_data(
        as_text=True)
    with Library(config.library) as library:
        social = next(a for a in library.get("going-out").renditions if a.name == "social")
    served = client.get("/memes/going-out/renditions/social")
    assert served.data == (config.storage.local_path / social.key).read_bytes()  # not rendered
    index = client.get("/gallery/index.json")
    assert index.status_code == 200
    assert json.loads(index.data)["memes"][0]["slug"] == "going-out"
    gallery = client.get("/gallery/")
    assert gallery.status_code == 200 and b"gallery.js" in gallery.data
    assert "connect-src 'self'" in gallery.headers["Content-Security-Policy"]
    assert client.get("/gallery/../memes/catalog.sqlite").status_code == 404


def test_gallery_documents_name_the_studio_whatever_the_base_url(app, config):
    """base_url is another origin (config: http://127.0.0.1:8080/gallery/, the test client is
    http://localhost/): /gallery/ serves the documents with the studio's own prefix, the files
    in storage keep base_url, and images are the stored bytes."""
    client = sign_in(app, "ada")
    add_meme(client, title="Rebased", caption="Look", seed=3)
    add_meme(client, title="Second", caption="Two", seed=4)
    _publish(client)
    public = config.storage.local_path
    here = "http://localhost/gallery/"
    index = client.get("/gallery/index.json")
    assert index.mimetype == "application/json"
    memes = json.loads(index.data)["memes"]
    assert {m["page_url"] for m in memes} == {here + "m/rebased.html", here + "m/second.html"}
    assert all(r["url"].startswith(here + "i/") for m in memes for r in m["renditions"].values())
    assert b"127.0.0.1:8080" in (public / "index.json").read_bytes()  # storage unchanged
    for key in ("", "m/rebased.html", "m/rebased.json", "feed.xml", "feed.json",
                "sitemap.xml", "robots.txt", "newsletter/1.html", "newsletter/index.json"):
        response = client.get("/gallery/" + key)
        assert response.status_code == 200, key
        assert b"127.0.0.1:8080" not in response.data, key
        assert b"127.0.0.1:8080" in (public / (key or "index.html")).read_bytes() or not key, key
    page = client.get("/gallery/m/rebased.html").get_data(as_text=True)
    assert f'<link rel="canonical" href="{here}m/rebased.html">' in page
    image = memes[0]["renditions"]["thumb"]["url"].removeprefix(here)
    assert client.get("/gallery/" + image).data == (public / image).read_bytes()
    archive = client.get("/gallery/newsletter/1.html")
    assert "style-src 'unsafe-inline'" in archive.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in archive.headers["Content-Security-Policy"]
    etag = index.headers["ETag"]
    assert client.get("/gallery/index.json", headers={"If-None-Match": etag}).status_code == 304
    for bad in ("../memes/catalog.sqlite", "%2e%2e/config.yaml", "nope.json"):
        assert client.get("/gallery/" + bad).status_code == 404, bad


def test_newsletter_preview_shows_its_images_from_the_studio(app, config):
    """file:// storage: the preview's images and links under site.base_url (another origin
    here, as http.server's in the bundled config) come from the studio's /gallery/, so the
    preview shows its pictures; the edition itself is not changed."""
    client = sign_in(app, "ada")
    add_meme(client, title="Pictured", seed=7)
    _publish(client)  # every: 2, so one meme is pending
    response = client.get("/newsletter/preview")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "127.0.0.1:8080" not in html
    images = re.findall(r'<img[^>]* src="([^"]+)"', html)
    assert images and all(src.startswith("http://localhost/gallery/i/") for src in images)
    for src in images:
        assert client.get(src.removeprefix("http://localhost")).status_code == 200
    assert 'href="http://localhost/gallery/m/pictured.html"' in html
    with Library(config.library) as library:
        from pipeline import newsletter

        assert "http://127.0.0.1:8080/gallery/i/" in newsletter.preview(library, config)


def test_before_the_first_publish_the_gallery_and_published_say_so(app):
    """A fresh library (the README's desk section before any `memes publish`): the Gallery
    link and the Published page say nothing is published yet, not 'URL not found'."""
    client = sign_in(app, "ed")
    gallery = client.get("/gallery/")
    assert gallery.status_code == 404
    html = gallery.get_data(as_text=True)
    assert "Nothing is published yet" in html and "requested URL" not in html
    assert "Nothing is published yet" in client.get("/published").get_data(as_text=True)
    add_meme(client, title="Queued only")
    assert "Nothing is published yet" in client.get("/published").get_data(as_text=True)


def test_publish_page_says_when_a_publish_runs(app, config):
    from pipeline.publish import publish_lock

    client = sign_in(app, "ada")
    with Library(config.library) as library, publish_lock(library):
        html = client.get("/publish").get_data(as_text=True)
        assert "A publish is running" in html and "disabled" in html
        assert client.get("/publish/status").get_json() == {"running": True}
        refused = client.post("/publish", data={"csrf_token": token(client, "/publish")})
        assert refused.status_code == 409
    assert client.get("/publish/status").get_json() == {"running": False}


def test_newsletter_page_and_preview(app, config):
    client = sign_in(app, "ada")
    add_meme(client, title="One", seed=5)
    add_meme(client, title="Two", seed=6)
    assert b"Published 2" in client.post("/publish", data={
        "csrf_token": token(client, "/publish")}).data  # fmt: skip
    html = client.get("/newsletter").get_data(as_text=True)
    assert "regular" in html and "sent" in html  # every: 2 -> the edition went to the outbox
    response = client.post("/newsletter/special", data={
        "csrf_token": token(client, "/newsletter"), "subject": "Special <b>news</b>",
        "body": "Hello", "slugs": "one"})  # fmt: skip
    assert response.status_code == 303
    html = client.get("/newsletter").get_data(as_text=True)
    assert "Special &lt;b&gt;news&lt;/b&gt;" in html
    assert client.get("/newsletter/preview").status_code == 404  # nothing new since


# --- hostile text ----------------------------------------------------------------------------


@pytest.mark.parametrize("evil", EVIL)
def test_markup_in_every_field_is_shown_as_text(app, config, evil):
    client = sign_in(app, "ada")
    fields = {"caption": evil, "title": evil, "alt": evil, "credit": evil, "top": "TOP",
              "bottom": "BOTTOM", "tags": evil}  # fmt: skip
    add_meme(client, **fields)
    with Library(config.library) as library:
        (meme,) = library.memes()
    client.post("/publish", data={"csrf_token": token(client, "/publish")})
    pages = [client.get(url).get_data(as_text=True) for url in (
        "/queue", f"/memes/{meme.slug}", f"/memes/{meme.slug}/renditions", "/published",
        "/newsletter", "/published?q=" + evil)]  # fmt: skip
    # a failed form shows what was typed, escaped
    pages.append(client.post("/make", data={"csrf_token": token(client, "/make"),
                                            "caption": evil, "title": evil,
                                            "category": evil}).get_data(as_text=True))
    pages.append(client.post("/login?next=/", data={"username": evil, "password": evil,
                                                    "csrf_token": token(client)}
                             ).get_data(as_text=True))  # fmt: skip
    for html in pages:
        assert evil not in html
        assert "<img src=x" not in html and "<script>alert" not in html
    assert any("&lt;script&gt;" in html or "&lt;img src=x" in html for html in pages)


# --- the CLI: memes user ... -----------------------------------------------------------------


def test_cli_user_commands(tmp_path):
    from click.testing import CliRunner

    from pipeline.cli import cli

    studio_config(tmp_path)
    base = ["--config", str(tmp_path / "config.yaml"), "user"]
    run = CliRunner().invoke
    added = run(cli, [*base, "add", "ada", "--role", "admin", "--password-stdin"],
                input=PASSWORD + "\n")  # fmt: skip
    assert added.exit_code == 0 and added.output == "ada\tadmin\n"
    added = run(cli, [*base, "add", "ed", "--password-stdin"], input=PASSWORD + "\n")
    assert added.exit_code == 0 and added.output == "ed\teditor\n"  # prompted: a test below
    listed = run(cli, [*base, "list"])
    assert [line.split("\t")[:2] for line in listed.output.splitlines()] == [
        ["ada", "admin"], ["ed", "editor"]]  # fmt: skip
    for args, stdin, message in (
        (["add", "ada", "--password-stdin"], PASSWORD, "user 'ada': already exists"),
        (["add", "bob", "--password-stdin"], "short", "password: at least 10 characters"),
        (["add", "Bob Smith", "--password-stdin"], PASSWORD, "user name 'Bob Smith'"),
        (["add", "bob", "--role", "root", "--password-stdin"], PASSWORD, "'root'"),
        (["remove", "nobody"], "", "user 'nobody': no such user"),
        (["passwd", "nobody", "--password-stdin"], PASSWORD, "user 'nobody': no such user"),
    ):  # fmt: skip
        result = run(cli, [*base, *args], input=stdin + "\n")
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
    with Library(tmp_path / "memes") as library:
        old = library.user("ed").password_hash
    assert run(cli, [*base, "passwd", "ed", "--password-stdin"],
               input="another good one\n").exit_code == 0  # fmt: skip
    with Library(tmp_path / "memes") as library:
        assert library.user("ed").password_hash != old
        assert accounts.authenticate(library, "ed", "another good one") is not None
        assert library.user("ed").password_hash.startswith("$argon2id$")
    assert run(cli, [*base, "remove", "ed"]).exit_code == 0
    assert run(cli, [*base, "list"]).output.count("\n") == 1


def _on_a_terminal(args: list[str], env: dict[str, str], cwd, typed: list[str]) -> tuple[int, str]:
    """Run `memes ARGS` with a pseudo-terminal as its stdin and stdout (a person at a
    terminal), typing each of `typed` when a prompt appears; (exit code, what it showed)."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time
    from pathlib import Path

    main, side = pty.openpty()
    memes = Path(sys.executable).with_name("memes")
    process = subprocess.Popen([memes, *args], stdin=side, stdout=side, stderr=side, env=env,
                               cwd=cwd, close_fds=True)  # fmt: skip
    os.close(side)
    shown, deadline = b"", time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        if select.select([main], [], [], 0.2)[0]:
            try:
                shown += os.read(main, 4096)
            except OSError:
                break
            if typed and shown.endswith(b": "):  # a prompt waits (not yet answered)
                os.write(main, typed.pop(0).encode() + b"\n")
    code = process.wait(30)
    os.close(main)
    return code, shown.decode(errors="replace")


def test_user_add_prompts_on_a_terminal_and_says_so_without_one(tmp_path):
    """`memes user add NAME` asks for the password twice on a terminal; with no terminal
    (cron, a pipe) it says in one line to use --password-stdin, stores nothing, exit 2."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    studio_config(tmp_path)
    env = {**os.environ, "MEMES_CONFIG": str(tmp_path / "config.yaml")}
    memes = Path(sys.executable).with_name("memes")
    for stdin in (subprocess.DEVNULL, PASSWORD + "\n"):
        piped = subprocess.run([memes, "user", "add", "ed"], env=env, cwd=tmp_path, text=True,
                               capture_output=True,
                               **({"input": stdin} if isinstance(stdin, str) else {"stdin": stdin}))
        assert piped.returncode == 2, piped.stderr
        assert piped.stderr.splitlines() == [
            "memes: password: no terminal to ask it on; give it on stdin with --password-stdin"]
        assert piped.stdout == "" and PASSWORD not in piped.stderr
    with Library(tmp_path / "memes") as library:
        assert library.user("ed") is None
    code, shown = _on_a_terminal(["user", "add", "ed"], env, tmp_path, [PASSWORD, PASSWORD])
    assert code == 0, shown
    assert "Password (10+ characters):" in shown  # the rule before typing, not after
    assert "ed\teditor" in shown and PASSWORD not in shown
    with Library(tmp_path / "memes") as library:
        assert accounts.authenticate(library, "ed", PASSWORD) is not None


def test_serve_on_a_busy_port_names_the_address(tmp_path):
    """Another program holds the port: one line naming the address and what to do, exit 1."""
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    studio_config(tmp_path)
    env = {**os.environ, "MEMES_CONFIG": str(tmp_path / "config.yaml")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([Path(sys.executable).with_name("memes"), "serve", "--port",
                                 str(port)], env=env, cwd=tmp_path, capture_output=True,
                                text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"memes: serve: 127.0.0.1:{port}: address already in use (another studio running? "
        "stop it, or give another --port)"]  # fmt: skip


def test_published_list_pages(app, config, monkeypatch):
    from pipeline.studio import desk

    monkeypatch.setattr(desk, "PAGE_SIZE", 1)
    client = sign_in(app, "ada")
    add_meme(client, title="Older one", seed=8)
    client.post("/publish", data={"csrf_token": token(client, "/publish")})
    add_meme(client, title="Newer one", seed=9)
    client.post("/publish", data={"csrf_token": token(client, "/publish")})
    first = client.get("/published").get_data(as_text=True)
    assert "newer-one" in first and "older-one" not in first and "page 1 of 2" in first
    second = client.get("/published?page=2").get_data(as_text=True)
    assert "older-one" in second and "newer-one" not in second


@pytest.mark.parametrize("trust", [True, False])
def test_throttle_counts_the_proxy_address_only_when_trusted(tmp_path, trust):
    config = studio_config(tmp_path, studio={"secure_cookies": False, "trust_proxy": trust})
    make_users(config)
    client = new_app(config).test_client()
    for name in ("x1", "x2", "x3", "x4", "x5"):
        client.post("/login", data={"username": name, "password": "nope nope nope",
                                    "csrf_token": token(client)},
                    headers={"X-Forwarded-For": "203.0.113.7"})  # fmt: skip
    response = client.post("/login", data={"username": "ed", "password": PASSWORD,
                                           "csrf_token": token(client)},
                           headers={"X-Forwarded-For": "198.51.100.2"})  # fmt: skip
    # trusted: another client behind the proxy may sign in; untrusted: one address for all
    assert response.status_code == (303 if trust else 429)


@pytest.mark.parametrize("trust", [True, False])
def test_waitress_passes_the_proxy_headers_only_when_trusted(tmp_path, trust):
    """Under the real server (`memes serve`, its own process): a proxy's X-Forwarded-Proto:
    https makes the cookie Secure only with studio.trust_proxy. (Run in a thread of the test
    process, waitress's shutdown raced its select loop: EBADF, one run in a few hundred.)"""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    studio_config(tmp_path, studio={"secure_cookies": False, "trust_proxy": trust})
    env = {**os.environ, "MEMES_CONFIG": str(tmp_path / "config.yaml")}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([Path(sys.executable).with_name("memes"), "serve", "--port",
                               str(port)], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    request = urllib.request.Request(f"http://127.0.0.1:{port}/login",
                                     headers={"X-Forwarded-Proto": "https"})  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    cookie = response.headers["Set-Cookie"]
                    assert response.headers["X-Frame-Options"] == "DENY"
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "no studio"
                time.sleep(0.2)
    finally:
        server.send_signal(signal.SIGTERM)
        _, errors = server.communicate(timeout=20)
    assert "Traceback" not in errors, errors
    assert ("Secure" in cookie) is trust

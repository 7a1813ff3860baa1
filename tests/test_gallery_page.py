"""The reference gallery page in a real headless Chromium, over a real HTTP server.

The built documents and real image files (Pillow-made, at their rendition keys) are served
from a tmp folder on 127.0.0.1; site.base_url points at that server. A second server on
another port serves the same folder to show the page works wherever it is served from.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from chromium import require_browser, start_chromium
from PIL import Image, ImageDraw, ImageStat

from pipeline import config as configuration
from pipeline import gallery
from pipeline.library import Meme, RenditionAsset

pytestmark = pytest.mark.browser

EVIL_CAPTION = "<script>window.__pwned=1</script>"
EVIL_TITLE = '<img src=x onerror="window.__pwned=2">'
RTL_CAPTION = "مرحبا بالعالم 😂"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
COUNT = 12
PAGE_SIZE = 5  # head: memes 11..5 (7 shown), pages/1.json: memes 4..0
COLORS = ["#e4572e", "#29335c", "#f3a712", "#a8c686", "#669bbc", "#8e5572"]


def category_of(i: int) -> str:
    return "funny" if i % 3 else "tech"  # funny: 8 memes, tech: 4


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


@dataclass
class Server:
    httpd: ThreadingHTTPServer
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def serve(folder: Path) -> Server:
    handler = functools.partial(_QuietHandler, directory=str(folder))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)  # a free port picked by the OS
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return Server(httpd, thread)


def write_image(path: Path, size: tuple[int, int], color: str, label: str, fmt: str) -> int:
    """A small real picture: a colour field with a stripe and a label. Returns its size."""
    image = Image.new("RGB", size, color)
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.rectangle((0, int(h * 0.7), w, int(h * 0.8)), fill="#ffffff")
    draw.text((w // 10, h // 10), label, fill="#ffffff", font_size=max(10, w // 6))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt, quality=80)
    return path.stat().st_size


def make_memes(folder: Path) -> list[Meme]:
    memes = []
    for i in range(COUNT):
        slug = f"meme-{i}"
        color = COLORS[i % len(COLORS)]
        renditions = []
        # thumb, phone and large keep the 3:4 original's shape; og is cropped to 1200x630
        for name, size, fmt, ext in (
            ("thumb", (240, 320), "WEBP", "webp"),
            ("phone", (360, 480), "JPEG", "jpg"),
            ("large", (480, 640), "WEBP", "webp"),
            ("og", (240, 126), "JPEG", "jpg"),
        ):
            key = f"i/{slug}/{name}.{hashlib.sha1(f'{slug}{name}'.encode()).hexdigest()[:10]}.{ext}"
            size_bytes = write_image(folder / key, size, color, f"#{i}", fmt)
            renditions.append(
                RenditionAsset(name, key, size[0], size[1], f"image/{fmt.lower()}", size_bytes)
            )
        title, caption = f"Meme number {i}", f"A caption for meme {i}\nwith a second line"
        if i == 0:
            title, caption = EVIL_TITLE, EVIL_CAPTION
        if i == 9:
            caption = RTL_CAPTION
        memes.append(
            Meme(
                id=i + 1, slug=slug, title=title, caption=caption, alt=f"Picture of meme {i}",
                category=category_of(i), tags=("cats",) if i % 2 else (), credit="",
                top_text="", bottom_text="", original_name=f"{slug}.png", sha256=f"{i:064x}",
                phash="", ext="png", width=1200, height=1600, format="PNG", frames=1,
                added_at=T0, publish_at=T0 + timedelta(minutes=i), status="published",
                published_at=T0 + timedelta(minutes=i), updated_at=T0,
                placeholder_color=color, blurhash="LEHV6nWB2yk8pyo0adR*.7kCMdnj",
                renditions=tuple(renditions),
            )
        )  # fmt: skip
    return memes


@dataclass
class Site:
    folder: Path
    server: Server
    other: Server  # same files, another port
    memes: list[Meme]

    @property
    def url(self) -> str:
        return self.server.base_url + "index.html"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    require_browser()
    folder = tmp_path_factory.mktemp("public")
    server, other = serve(folder), serve(folder)
    try:
        cfg = configuration.parse(
            {
                "site": {"title": "Browser Memes", "base_url": server.base_url},
                "gallery": {"page_size": PAGE_SIZE, "feed_size": 10},
            },
            root=folder,
        )
        memes = make_memes(folder)
        for doc in gallery.build_documents(memes, cfg):
            path = folder / doc.key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(doc.data)
        yield Site(folder, server, other, memes)
    finally:
        server.stop()
        other.stop()


@pytest.fixture(scope="module")
def browser(site, tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    driver = start_chromium(profile)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser):
    """The browser, with its console checked for errors after each test."""
    browser.get_log("browser")  # drop what earlier tests left
    yield browser
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe


def wait(driver, condition, timeout: float = 10):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # The page replaces its cards when a route changes: an element gone mid-poll means "not yet".
    return WebDriverWait(
        driver, timeout, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
    ).until(condition)


def cards(driver):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#grid figure.card")


def open_gallery(driver, url: str) -> None:
    driver.get("about:blank")  # a fresh document, even when only the hash differs
    driver.get(url)
    wait(driver, lambda d: len(cards(d)) > 0)


def shown_slugs(driver) -> list[str]:
    # One script reads them all, so a re-render between find and read cannot split the answer.
    return driver.execute_script(
        "return [...document.querySelectorAll('#grid figure.card')].map(c => c.dataset.slug)"
    )


def newest_first(site: Site, category: str | None = None) -> list[str]:
    return [m.slug for m in reversed(site.memes) if category in (None, m.category)]


# --- tests ---------------------------------------------------------------------------------


def test_grid_shows_the_head_page_with_alt_text_srcset_and_loaded_images(site, page, tmp_path):
    open_gallery(page, site.url)
    assert page.title == "Browser Memes"
    assert shown_slugs(page) == newest_first(site)[: COUNT - PAGE_SIZE]  # head: 7 of 12
    images = page.execute_script(
        "return [...document.querySelectorAll('#grid img')].map(i => ({alt: i.alt,"
        " srcset: i.srcset, loading: i.loading, bg: i.parentElement.style.backgroundColor}))"
    )
    assert len(images) == COUNT - PAGE_SIZE
    for image in images:
        assert image["alt"].strip()
        assert image["loading"] == "lazy"
        # every width of the whole-image renditions (thumb, phone, large), not the cropped og
        widths = [s.rsplit(" ", 1)[1] for s in image["srcset"].split(", ")]
        assert widths == ["240w", "360w", "480w"]
        assert image["bg"].startswith("rgb(")  # the placeholder colour while loading
    wait(
        page,
        lambda d: d.execute_script(
            "const i = document.querySelector('#grid img'); return i.complete"
            " && i.naturalWidth > 0 && i.parentElement.classList.contains('loaded')"
        ),
    )
    wait(page, lambda d: d.execute_script(
        "return getComputedStyle(document.querySelector('#grid img')).opacity === '1'"
    ))  # fmt: skip
    shot = Path(os.environ.get("MEMES_SCREENSHOT_DIR", tmp_path)) / "gallery.png"
    page.save_screenshot(str(shot))
    # On screen, the first card shows the picture, not its flat placeholder colour: its pixels
    # vary as the rendition's do.
    box = page.execute_script(
        "const r = document.querySelector('#grid img').getBoundingClientRect();"
        " const k = window.devicePixelRatio;"
        " return [r.left * k, r.top * k, r.right * k, r.bottom * k].map(Math.round)"
    )
    with Image.open(shot) as screen:
        card = screen.convert("L").crop(tuple(box))
    assert card.size[0] > 50 and card.size[1] > 50
    assert ImageStat.Stat(card).stddev[0] > 20


def test_scrolling_to_the_end_follows_next_until_every_meme_is_shown(site, page):
    open_gallery(page, site.url)
    assert len(cards(page)) == COUNT - PAGE_SIZE
    page.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    wait(page, lambda d: len(cards(d)) == COUNT)
    assert shown_slugs(page) == newest_first(site)
    wait(page, lambda d: "12 memes" in d.find_element("id", "status").text)


def test_category_filter_shows_only_that_category(site, page):
    from selenium.webdriver.common.by import By

    open_gallery(page, site.url)
    page.find_element(By.CSS_SELECTOR, '#filters a[data-route="c/tech"]').click()
    wait(page, lambda d: shown_slugs(d) == newest_first(site, "tech"))
    chips = page.find_elements(By.CSS_SELECTOR, "#grid .meta .chip")
    assert {c.text for c in chips} == {"tech"}
    current = page.find_element(By.CSS_SELECTOR, '#filters a[aria-current="page"]')
    assert current.get_attribute("data-route") == "c/tech"
    page.find_element(By.CSS_SELECTOR, '#filters a[data-route="c/funny"]').click()
    wait(page, lambda d: shown_slugs(d) == newest_first(site, "funny"))  # 8 on one head
    page.find_element(By.CSS_SELECTOR, '#filters a[data-route="all"]').click()
    wait(page, lambda d: shown_slugs(d) == newest_first(site)[: COUNT - PAGE_SIZE])


def test_permalink_view_shows_one_meme_and_back_returns_to_the_grid(site, page):
    from selenium.webdriver.common.by import By

    open_gallery(page, site.url)
    page.find_element(By.CSS_SELECTOR, '#grid figure[data-slug="meme-9"] a.thumb').click()
    wait(page, lambda d: d.find_element(By.ID, "single").is_displayed())
    figures = page.find_elements(By.CSS_SELECTOR, "#single figure")
    assert [f.get_attribute("data-slug") for f in figures] == ["meme-9"]
    assert not page.find_element(By.ID, "grid").is_displayed()
    assert page.find_element(By.CSS_SELECTOR, "#single .caption").text == RTL_CAPTION
    assert page.find_element(By.CSS_SELECTOR, "#single img").get_attribute("alt") == (
        "Picture of meme 9"
    )
    assert page.title.startswith("Meme number 9")
    page.find_element(By.CSS_SELECTOR, "#single a.back").click()
    wait(page, lambda d: d.find_element(By.ID, "grid").is_displayed())
    assert len(cards(page)) == COUNT - PAGE_SIZE


def test_direct_permalink_url_opens_the_single_view(site, page):
    from selenium.webdriver.common.by import By

    page.get("about:blank")
    page.get(site.url + "#/m/meme-7")
    wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#single figure"))
    assert page.find_element(By.CSS_SELECTOR, "#single .title").text == "Meme number 7"
    wait(page, lambda d: d.execute_script(
        "const i = document.querySelector('#single img'); return i.complete && i.naturalWidth"
    ))  # fmt: skip


def test_script_in_a_caption_or_title_shows_as_text_and_runs_nothing(site, page):
    from selenium.webdriver.common.by import By

    open_gallery(page, site.url)
    page.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    wait(page, lambda d: len(cards(d)) == COUNT)
    evil = page.find_element(By.CSS_SELECTOR, '#grid figure[data-slug="meme-0"]')
    assert evil.find_element(By.CSS_SELECTOR, ".caption").text == EVIL_CAPTION
    assert evil.find_element(By.CSS_SELECTOR, ".title").text == EVIL_TITLE
    assert evil.find_elements(By.CSS_SELECTOR, "figcaption script, figcaption img") == []
    page.get(site.url + "#/m/meme-0")
    page.refresh()
    wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#single .caption"))
    assert page.find_element(By.CSS_SELECTOR, "#single .caption").text == EVIL_CAPTION
    assert page.execute_script("return typeof window.__pwned") == "undefined"


def test_the_same_files_work_from_another_port(site, page):
    """Documents and images under site.base_url are fetched from where the page was served."""
    other = site.other.base_url
    open_gallery(page, other + "index.html")
    assert len(cards(page)) == COUNT - PAGE_SIZE
    wait(page, lambda d: d.execute_script(
        "const i = document.querySelector('#grid img'); return i.complete && i.naturalWidth"
    ))  # fmt: skip
    src = page.execute_script("return document.querySelector('#grid img').currentSrc")
    assert src.startswith(other)


def test_permalink_view_links_to_the_share_page(site, page):
    from selenium.webdriver.common.by import By

    page.get("about:blank")
    page.get(site.url + "#/m/meme-4")
    link = wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#single a.share-link"))[0]
    assert link.get_attribute("href") == site.server.base_url + "m/meme-4.html"
    link.click()
    wait(page, lambda d: d.current_url.endswith("/m/meme-4.html"))
    assert page.find_element(By.CSS_SELECTOR, "figure.card").get_attribute("data-slug") == "meme-4"


@pytest.mark.parametrize(("name", "size"), [("desktop", (1280, 900)), ("phone", (390, 844))])
def test_share_page_shows_the_meme_whole_at_desktop_and_phone_widths(site, page, tmp_path, name,
                                                                     size):  # fmt: skip
    """The static share page: the stylesheet applies, the image loads from srcset, nothing
    overflows a phone's width, the JSON-LD block trips no CSP error (the console is checked
    by the fixture), and a screenshot is kept to look at."""
    from selenium.webdriver.common.by import By

    page.set_window_size(*size)
    try:
        page.get(site.server.base_url + "m/meme-9.html")
        wait(page, lambda d: d.execute_script(
            "const i = document.querySelector('img.meme'); return i.complete && i.naturalWidth > 0"
        ))  # fmt: skip
        assert page.title == "Meme number 9 · Browser Memes"
        assert page.find_element(By.CSS_SELECTOR, ".caption").text == RTL_CAPTION
        layout = page.execute_script(
            "const i = document.querySelector('img.meme'), p = document.querySelector('img.ph');"
            "const r = i.getBoundingClientRect(), q = p.getBoundingClientRect();"
            "return {display: getComputedStyle(document.querySelector('.neighbours')).display,"
            " overflow: document.documentElement.scrollWidth - window.innerWidth,"
            " width: r.width, height: r.height, ph: [q.left - r.left, q.top - r.top, q.width,"
            " q.height], current: i.currentSrc, inner: window.innerWidth}"
        )
        assert layout["display"] == "flex"  # gallery.css applied
        assert layout["overflow"] <= 0  # no sideways scrolling on a phone
        assert layout["ph"] == [0, 0, layout["width"], layout["height"]]  # under the image
        assert 0 < layout["width"] <= layout["inner"]
        assert layout["current"].startswith(site.server.base_url + "i/meme-9/")
        links = {a.get_attribute("class"): a.get_attribute("href")
                 for a in page.find_elements(By.CSS_SELECTOR, "nav.neighbours a")}  # fmt: skip
        assert links["newer"].endswith("/m/meme-10.html")
        assert links["older"].endswith("/m/meme-8.html")
        assert links["gallery"].endswith("/index.html#/m/meme-9")
        shot = Path(os.environ.get("MEMES_SCREENSHOT_DIR", tmp_path)) / f"share-{name}.png"
        page.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
    finally:
        page.set_window_size(1000, 700)


@pytest.mark.parametrize("route", ["#/m/%E0%A4%A", "#/c/%", "#/t/%ZZ", "#/%E0%A4%A/x"])
def test_a_malformed_route_shows_the_grid_without_a_script_error(site, page, route):
    open_gallery(page, site.url + route)  # the page fixture fails on any console error
    assert shown_slugs(page) == newest_first(site)[: COUNT - PAGE_SIZE]
    assert "Loading" not in page.find_element("id", "status").text

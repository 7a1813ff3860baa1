"""The studio end to end: `memes serve` under waitress as a real process on a free 127.0.0.1
port, driven by Debian's headless Chromium (selenium) at desktop and phone widths.

Signs in, drops a file on the page, types two text boxes and sees the server-rendered preview
change, schedules and queues the meme, publishes now, and finds it in the published list and
in the /gallery/ page; the browser console stays free of errors throughout. Screenshots go to
$STUDIO_SCREENSHOTS (default: the test's tmp folder)."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from chromium import require_browser, start_chromium
from factories import jpeg
from studio_helpers import PASSWORD, studio_config

pytestmark = pytest.mark.browser
MEMES = Path(sys.executable).with_name("memes")
SIZES = {"desktop": (1280, 900), "phone": (390, 844)}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving(root: Path, base_url: str | None = None, *, port: int | None = None):
    """A library with an admin, and `memes serve` running on it; ``base_url`` is the site's
    (default: the studio's own /gallery/). Yields the studio's base URL and the env."""
    port = port or free_port()
    base_url = base_url or f"http://127.0.0.1:{port}/gallery/"
    studio_config(root, site={"title": "Desk", "base_url": base_url})
    env = {**os.environ, "MEMES_CONFIG": str(root / "config.yaml")}
    subprocess.run([MEMES, "user", "add", "ada", "--role", "admin", "--password-stdin"],
                   input=PASSWORD + "\n", text=True, env=env, check=True, cwd=root)  # fmt: skip
    log = (root / "serve.log").open("w")
    server = subprocess.Popen([MEMES, "serve", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/login", timeout=2).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("memes serve did not start: " + (root / "serve.log").read_text())
            time.sleep(0.2)
    try:
        yield base, env
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(20)
        log.close()
        text = (root / "serve.log").read_text()
        assert code == 143 or code == 0, text
        assert "Traceback" not in text, text
        assert '"POST /login" 303' in text  # one log line per request
        assert text.rstrip().endswith("memes studio: stopped"), text[-300:]  # SIGTERM: cleanly


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    root = tmp_path_factory.mktemp("studio")
    with serving(root) as (base, _env):
        yield base, root


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    require_browser()
    profile = tmp_path_factory.mktemp("chromium-profile")
    driver = start_chromium(profile, "1280,900", page_load_timeout=30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver, condition, timeout: float = 20):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("STUDIO_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def drop_file(driver, target_id: str, path: Path) -> None:
    """What a person dragging a file from the desktop does: a drop event with a File."""
    data = base64.b64encode(path.read_bytes()).decode()
    driver.execute_script(
        """
        const [id, name, b64] = arguments;
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, {type: "image/jpeg"}));
        const target = document.getElementById(id);
        for (const type of ["dragenter", "dragover", "drop"]) {
          target.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true,
                                                    dataTransfer: transfer}));
        }
        """,
        target_id, path.name, data,
    )


def sign_in(driver, base: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(base + "/")
    assert driver.current_url.startswith(base + "/login")
    driver.find_element(By.NAME, "username").send_keys("ada")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#login button").click()
    wait(driver, lambda d: "/make" in d.current_url)


def new_session(driver, base: str, size: str) -> None:
    """The shared browser at `size`, signed out of any earlier test, its console emptied,
    then signed in as the admin."""
    driver.set_window_size(*SIZES[size])
    driver.get(base + "/login")  # a page with nothing left loading that could set a cookie
    driver.delete_all_cookies()
    driver.get_log("browser")
    sign_in(driver, base)


@pytest.mark.parametrize("size", list(SIZES))
def test_make_queue_publish_and_see_it_in_the_gallery(studio, browser, size, tmp_path):
    from selenium.webdriver.common.by import By

    base, root = studio
    folder = shots(tmp_path)
    driver = browser
    new_session(driver, base, size)
    title = f"Studio {size} meme"

    image = jpeg(tmp_path / f"{size}.jpg", 1080, 1080, seed=len(size))
    drop_file(driver, "drop", image)
    preview = driver.find_element(By.ID, "preview")
    wait(driver, lambda d: preview.get_attribute("data-rendered"))
    wait(driver, lambda d: d.execute_script("return arguments[0].naturalWidth", preview) > 0)
    before = preview.screenshot_as_png
    first = preview.get_attribute("data-rendered")
    driver.find_element(By.NAME, "top").send_keys("WHEN THE BUILD")
    driver.find_element(By.NAME, "bottom").send_keys("IS GREEN")
    wait(driver, lambda d: preview.get_attribute("data-rendered") != first
         and "Preview" in d.find_element(By.ID, "preview-status").text)  # fmt: skip
    time.sleep(0.3)  # the new image decodes
    after = preview.screenshot_as_png
    assert after != before, "the preview did not change with the text"
    driver.find_element(By.NAME, "caption").send_keys(f"Caption of the {size} meme")
    driver.find_element(By.NAME, "title").send_keys(title)
    driver.find_element(By.NAME, "tags").send_keys("browser, e2e")
    when = (datetime.now(UTC) - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M")
    driver.execute_script("arguments[0].value = arguments[1]",
                          driver.find_element(By.NAME, "publish_at"), when)  # fmt: skip
    driver.save_screenshot(str(folder / f"{size}-1-make.png"))
    driver.find_element(By.ID, "queue").click()

    wait(driver, lambda d: "/queue" in d.current_url)
    slug = f"studio-{size}-meme"
    row = driver.find_element(By.CSS_SELECTOR, f'tr[data-slug="{slug}"]')
    assert "the next run" in row.text and when.replace("T", " ") in row.text
    wait(driver, lambda d: d.execute_script(
        "return arguments[0].querySelector('img').naturalWidth", row) > 0)  # fmt: skip
    driver.save_screenshot(str(folder / f"{size}-2-queue.png"))

    driver.get(base + "/publish")
    driver.find_element(By.ID, "publish-now").click()
    report = wait(driver, lambda d: d.find_elements(By.ID, "report"), 120)[0]
    assert slug in report.text and "Published 1" in report.text
    driver.save_screenshot(str(folder / f"{size}-3-published-report.png"))

    driver.get(base + "/published?q=" + size)
    card = driver.find_element(By.CSS_SELECTOR, f'article[data-slug="{slug}"]')
    assert title in card.text
    wait(driver, lambda d: d.execute_script(
        "return arguments[0].querySelector('img').naturalWidth", card) > 0)  # fmt: skip
    card.find_element(By.TAG_NAME, "summary").click()  # the share kit
    links = card.find_elements(By.CSS_SELECTOR, "details a[href*='download=1']")
    assert len(links) == 2 and card.find_element(By.CSS_SELECTOR, "button.copy").is_displayed()
    driver.save_screenshot(str(folder / f"{size}-4-published.png"))

    driver.get(base + "/gallery/")
    wait(driver, lambda d: title in d.find_element(By.TAG_NAME, "body").text)
    wait(driver, lambda d: d.execute_script(
        "return [...document.images].some(i => i.complete && i.naturalWidth > 0)"))  # fmt: skip
    time.sleep(0.8)  # the page fades its images in
    driver.save_screenshot(str(folder / f"{size}-5-gallery.png"))

    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe


def test_the_gallery_shows_its_images_whatever_the_base_url(browser, tmp_path):
    """The site's base_url is another origin (the bundled config's http.server, say): the
    studio's /gallery/ still shows the published memes' images, on the gallery page and on a
    share page, with nothing loaded from that origin. Then a meme taken down from the site is
    restored from the Queue page's Removed list."""
    from selenium.webdriver.common.by import By

    root = tmp_path / "elsewhere"
    root.mkdir()
    port = free_port()
    nowhere = f"http://127.0.0.1:{free_port()}/site/"  # nothing listens there
    with serving(root, nowhere, port=port) as (base, env):
        for seed, title in ((7, "Far away"), (8, "Near by")):  # two: an edition goes out
            jpeg(root / f"{seed}.jpg", 800, 600, seed=seed)
            subprocess.run([MEMES, "add", str(root / f"{seed}.jpg"), "--caption", "From afar",
                            "--title", title], env=env, check=True, cwd=root,
                           capture_output=True)  # fmt: skip
        subprocess.run([MEMES, "publish"], env=env, check=True, cwd=root, capture_output=True)
        driver = browser
        new_session(driver, base, "desktop")
        for page in ("/gallery/", "/gallery/m/far-away.html", "/gallery/newsletter/1.html"):
            driver.get(base + page)
            wait(driver, lambda d: "Far away" in d.find_element(By.TAG_NAME, "body").text)
            wait(driver, lambda d: d.execute_script(
                "return document.images.length > 0 && [...document.images].every("
                "i => i.complete && i.naturalWidth > 0)"))  # fmt: skip
            sources = driver.execute_script("return [...document.images].map(i => i.currentSrc)")
            assert all(src.startswith((base + "/gallery/", "data:")) for src in sources), sources
            name = page.strip("/").replace("/", "-")
            driver.save_screenshot(str(shots(tmp_path) / f"elsewhere-{name}.png"))
        # taken down from the site, then restored from the Queue page's Removed list
        subprocess.run([MEMES, "remove", "far-away"], env=env, check=True, cwd=root,
                       capture_output=True)  # fmt: skip
        driver.get(base + "/queue")
        row = driver.find_element(By.CSS_SELECTOR, '#removed-list tr[data-slug="far-away"]')
        assert "published" in row.text
        row.find_element(By.CSS_SELECTOR, "button").click()
        wait(driver, lambda d: "Restored far-away" in d.find_element(By.TAG_NAME, "body").text)
        driver.find_element(By.CSS_SELECTOR, '#queue-list tr[data-slug="far-away"]')
        assert not driver.find_elements(By.ID, "removed-list")
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == [], severe


def draw_box(driver, surface, start: tuple[float, float], end: tuple[float, float],
             touch: bool) -> None:
    """Drag from start to end (fractions of the surface) with the mouse, or a finger."""
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    size = surface.size
    half_w, half_h = size["width"] / 2, size["height"] / 2
    points = [(round(x * size["width"] - half_w), round(y * size["height"] - half_h))
              for x, y in (start, ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2), end)]
    kind = interaction.POINTER_TOUCH if touch else interaction.POINTER_MOUSE
    actions = ActionBuilder(driver, mouse=PointerInput(kind, "finger" if touch else "mouse"))
    pointer = actions.pointer_action
    pointer.move_to(surface, *points[0]).pointer_down()
    for x, y in points[1:]:
        pointer.move_to(surface, x, y)
    pointer.pointer_up()
    actions.perform()


def too_wide(driver) -> list[str]:
    """The elements wider than the window (a page that scrolls sideways on a phone)."""
    return driver.execute_script(
        "const w = document.documentElement.clientWidth;"
        " return [...document.querySelectorAll('body *')]"
        " .filter(e => e.getBoundingClientRect().right > w + 1)"
        " .map(e => `${e.tagName}.${e.className}: ${e.textContent.slice(0, 40)}`);")  # fmt: skip


def pixels(driver, image) -> str:
    """What an <img> shows, as a PNG data URL (drawn on a canvas: the page's CSP lets no
    script fetch a blob: URL)."""
    return driver.execute_script(
        "const [img] = arguments; const c = document.createElement('canvas');"
        " c.width = img.naturalWidth; c.height = img.naturalHeight;"
        " c.getContext('2d').drawImage(img, 0, 0); return c.toDataURL();", image)  # fmt: skip


@pytest.mark.parametrize("size", list(SIZES))
def test_draw_a_template_then_make_a_meme_of_it(studio, browser, size, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base, root = studio
    driver = browser
    new_session(driver, base, size)
    name = f"drawn-{size}"

    driver.get(base + "/templates")
    drop_file(driver, "template-drop", jpeg(tmp_path / f"template-{size}.jpg", 1080, 810, seed=9))
    surface = driver.find_element(By.ID, "canvas")
    wait(driver, lambda d: surface.is_displayed() and d.execute_script(
        "return document.getElementById('canvas-image').naturalWidth") > 0)  # fmt: skip
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", surface)
    touch = size == "phone"  # a finger on the phone, the mouse on the desktop
    draw_box(driver, surface, (0.05, 0.05), (0.95, 0.3), touch)
    draw_box(driver, surface, (0.5, 0.6), (0.95, 0.95), touch)
    driver.save_screenshot(f"/tmp/tpl-{size}-0-boxes.png")
    rows = driver.find_elements(By.CSS_SELECTOR, "#box-rows li")
    assert len(rows) == 2 and len(driver.find_elements(By.CSS_SELECTOR, "#canvas .rect")) == 2
    typed = [[float(row.find_element(By.NAME, f"box_{k}").get_attribute("value").rstrip("%"))
              for k in ("x", "y", "width", "height")] for row in rows]  # fmt: skip
    for got, want in zip(typed, ([5, 5, 90, 25], [50, 60, 45, 35]), strict=True):
        assert all(abs(g - w) < 3 for g, w in zip(got, want, strict=True)), typed
    # typing a number moves its rectangle
    second = driver.find_elements(By.CSS_SELECTOR, "#canvas .rect")[1]
    left = second.rect["x"]
    field = rows[1].find_element(By.NAME, "box_x")
    field.clear()
    field.send_keys("40%")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#canvas .rect")[1].rect["x"] < left)
    field.clear()
    field.send_keys("0.5")
    driver.find_element(By.NAME, "name").send_keys(name)
    driver.find_element(By.NAME, "credit").send_keys("Photo: the test")
    assert too_wide(driver) == []
    driver.save_screenshot(f"/tmp/tpl-{size}-1-drawn.png")
    driver.find_element(By.ID, "save-template").click()
    card = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR,
                                                  f'article[data-name="{name}"]'))[0]  # fmt: skip
    assert "2 boxes" in card.text and "Photo: the test" in card.text
    driver.execute_script("arguments[0].scrollIntoView()", card)
    wait(driver, lambda d: d.execute_script(
        "return arguments[0].querySelector('img').naturalWidth", card) > 0)  # fmt: skip
    driver.save_screenshot(f"/tmp/tpl-{size}-2-listed.png")

    driver.get(base + "/make")
    Select(driver.find_element(By.ID, "f-template")).select_by_value(name)
    preview = driver.find_element(By.ID, "preview")
    wait(driver, lambda d: preview.get_attribute("data-rendered")
         and d.execute_script("return arguments[0].naturalWidth", preview) > 0)  # fmt: skip
    labels = [e.text.strip() for e in driver.find_elements(By.CSS_SELECTOR, "#box-texts label")]
    assert labels == ["Box 1", "Box 2"]
    assert not driver.find_element(By.NAME, "top").is_displayed()
    before_src = preview.get_attribute("src")
    before = pixels(driver, preview)
    driver.find_element(By.ID, "f-text-1").send_keys("DRAWN WITH A MOUSE")
    driver.find_element(By.ID, "f-text-2").send_keys("TYPED IN BOX TWO")
    # the preview settles on the server's render of both texts (debounced, newest wins)
    wanted = f"/templates/{name}/preview?text=DRAWN+WITH+A+MOUSE&text=TYPED+IN+BOX+TWO"
    wait(driver, lambda d: preview.get_attribute("data-source") == wanted
         and d.execute_script("return arguments[0].complete", preview))  # fmt: skip
    assert "Preview" in driver.find_element(By.ID, "preview-status").text
    assert preview.get_attribute("src") != before_src and pixels(driver, preview) != before
    driver.find_element(By.NAME, "caption").send_keys(f"Made of the {size} template")
    assert too_wide(driver) == []
    driver.save_screenshot(f"/tmp/tpl-{size}-3-make.png")
    driver.find_element(By.ID, "queue").click()
    wait(driver, lambda d: "/queue" in d.current_url)
    row = driver.find_element(By.CSS_SELECTOR, f'tr[data-slug="made-of-the-{size}-template"]')
    wait(driver, lambda d: d.execute_script(
        "return arguments[0].querySelector('img').naturalWidth", row) > 0)  # fmt: skip
    driver.save_screenshot(f"/tmp/tpl-{size}-4-queued.png")

    # its edit page: the box texts prefilled, the preview follows, saving changes the texts
    row.find_element(By.LINK_TEXT, "Edit").click()
    box2 = wait(driver, lambda d: d.find_elements(By.ID, "f-text-2"))[0]
    assert driver.find_element(By.ID, "f-text-1").get_attribute("value") == "DRAWN WITH A MOUSE"
    assert box2.get_attribute("value") == "TYPED IN BOX TWO"
    assert not driver.find_element(By.NAME, "top").is_displayed()
    preview = driver.find_element(By.ID, "preview")
    wait(driver, lambda d: d.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", preview) > 0)  # fmt: skip
    before = pixels(driver, preview)
    box2.clear()
    box2.send_keys("EDITED IN THE STUDIO")
    wait(driver, lambda d: (preview.get_attribute("data-source") or "").endswith(
        "text=DRAWN+WITH+A+MOUSE&text=EDITED+IN+THE+STUDIO")
         and d.execute_script("return arguments[0].complete", preview))  # fmt: skip
    assert pixels(driver, preview) != before
    driver.save_screenshot(f"/tmp/tpl-{size}-5-edit.png")
    driver.find_element(By.CSS_SELECTOR, "#edit button[type=submit]").click()
    wait(driver, lambda d: "/queue" in d.current_url)
    driver.get(f"{base}/memes/made-of-the-{size}-template")
    assert driver.find_element(By.ID, "f-text-2").get_attribute("value") == "EDITED IN THE STUDIO"
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe


def line_count(driver, element) -> int:
    """How many lines the text of `element` is laid out on."""
    return driver.execute_script(
        "const r = document.createRange(); r.selectNodeContents(arguments[0]);"
        "return new Set([...r.getClientRects()].map(c => Math.round(c.top))).size", element)


def test_a_phone_shows_only_what_a_page_means_to_show(browser, tmp_path):
    """At phone width: the Make page shows no broken template picture before a template is
    picked (a hidden element stays hidden), a table's text is not squeezed into the queue's
    thumbnail column ("None yet." on one line, a removed meme's title as wide as the page),
    the next edition's preview shows its pictures, and renditions use the page's width (no
    figure indent)."""
    from selenium.webdriver.common.by import By

    root = tmp_path / "phone"
    root.mkdir()
    with serving(root) as (base, env):
        image = jpeg(tmp_path / "one.jpg", 800, 600, seed=4)
        for args in (["add", str(image), "--caption", "A phone check", "--title", "Kept",
                      "--publish-at", "2031-01-01T00:00"],
                     ["add", str(jpeg(tmp_path / "two.jpg", 640, 480, seed=5)), "--caption",
                      "Taken out", "--title", "A removed meme with a long title"],
                     ["remove", "a-removed-meme-with-a-long-title"],
                     ["add", str(jpeg(tmp_path / "three.jpg", 640, 480, seed=6)), "--caption",
                      "Out now", "--title", "Sent soon"],
                     ["publish"]):  # fmt: skip
            subprocess.run([MEMES, *args], env=env, cwd=root, check=True, capture_output=True)
        driver = browser
        new_session(driver, base, "phone")
        width = driver.execute_script("return document.querySelector('main').clientWidth")

        assert not driver.find_element(By.ID, "template-picture").is_displayed()
        assert not driver.find_element(By.ID, "box-texts").is_displayed()

        driver.get(base + "/newsletter")
        empty = driver.find_element(By.XPATH, "//td[normalize-space()='None yet.']")
        assert line_count(driver, empty) == 1

        # the preview of the next edition shows its pictures (sandboxed, it still sends the
        # session cookie for them)
        driver.get(base + "/newsletter/preview")
        wait(driver, lambda d: d.execute_script(
            "return document.images.length > 0 && [...document.images].every(i => i.complete)"))
        assert driver.execute_script(
            "return [...document.images].map(i => i.naturalWidth)")[0] > 0  # fmt: skip

        driver.get(base + "/queue")
        title = driver.find_element(By.CSS_SELECTOR, '#removed-list tr[data-slug] td')
        assert title.size["width"] > width * 0.6, (title.size, width)
        assert too_wide(driver) == []

        driver.get(base + "/memes/kept/renditions")
        # Measured once the pictures are in (the page's scrollbar comes with them) and both in
        # one layout: read apart, a scrollbar between the reads made them differ by its width.
        wait(driver, lambda d: d.execute_script(
            "return [...document.images].every(i => i.complete)"))
        figure, grid = driver.execute_script(
            "return ['figure.rendition', '.grid'].map(s => {"
            " const r = document.querySelector(s).getBoundingClientRect();"
            " return {x: r.x, width: r.width}; })")  # fmt: skip
        assert abs(figure["x"] - grid["x"]) < 1
        assert abs(figure["width"] - grid["width"]) < 1
        driver.save_screenshot(str(shots(tmp_path) / "phone-renditions.png"))
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == [], severe


def test_a_dropped_file_can_be_taken_off_before_queueing(studio, browser, tmp_path):
    """Drop two files, take the first (the previewed one) off the list: the preview moves to
    the other, and Queue queues only that one."""
    from selenium.webdriver.common.by import By

    base, root = studio
    driver = browser
    new_session(driver, base, "desktop")
    drop_file(driver, "drop", jpeg(tmp_path / "wrong.jpg", 700, 500, seed=21))
    drop_file(driver, "drop", jpeg(tmp_path / "right.jpg", 700, 500, seed=22))
    rows = wait(driver, lambda d: [r for r in d.find_elements(By.CSS_SELECTOR, "#uploads li")
                                   if r.get_attribute("data-token")][1:] and
                d.find_elements(By.CSS_SELECTOR, "#uploads li"))  # fmt: skip
    names = [r.find_element(By.CLASS_NAME, "name").text for r in rows]
    assert names == ["wrong.jpg", "right.jpg"]
    right = rows[1].get_attribute("data-token")
    preview = driver.find_element(By.ID, "preview")
    wait(driver, lambda d: preview.get_attribute("data-rendered"))
    rows[0].find_element(By.CSS_SELECTOR, "button.remove-upload").click()
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#uploads li")) == 1)
    wait(driver, lambda d: right in (preview.get_attribute("data-source") or ""))
    driver.find_element(By.NAME, "caption").send_keys("Only the right one")
    driver.find_element(By.NAME, "title").send_keys("Taken off")
    driver.find_element(By.ID, "queue").click()
    wait(driver, lambda d: "/queue" in d.current_url)
    queued = [r.get_attribute("data-slug")
              for r in driver.find_elements(By.CSS_SELECTOR, "#queue-list tr[data-slug]")]
    assert [s for s in queued if s.startswith("taken-off")] == ["taken-off"], queued
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe

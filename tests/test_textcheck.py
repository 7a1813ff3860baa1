"""Text staff type: one limit per field kind, no control characters, invisible text is empty.

Issue 10 items 2 and 12: these were accepted (and printed raw) before pipeline.textcheck.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from datetime import timedelta
from xml.etree import ElementTree

import pytest
import yaml
from click.testing import CliRunner
from factories import jpeg
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pipeline import textcheck
from pipeline.cli import cli
from pipeline.library import Library
from pipeline.textcheck import TextError


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "config.yaml").write_text("library: memes\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MEMES_CONFIG", raising=False)
    return tmp_path


def memes(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize(
    ("check", "field", "maximum"),
    [
        (textcheck.title, "title", 200),
        (textcheck.caption, "caption", 2000),
        (textcheck.alt, "alt", 2000),
        (textcheck.credit, "credit", 200),
        (lambda text: textcheck.overlay_text(text, "top"), "top", 300),
    ],
)
def test_each_field_kind_has_a_maximum_named_in_the_refusal(check, field, maximum):
    assert check("x" * maximum) == "x" * maximum
    with pytest.raises(TextError) as refused:
        check("x" * (maximum + 1))
    assert str(refused.value) == (
        f"{field}: {maximum + 1:,} characters, over the maximum of {maximum:,}"
    )


def test_tags_have_a_length_and_a_count_limit():
    assert textcheck.tags([" Cats ", "cats", "\u200b", "dogs"]) == ("cats", "dogs")
    with pytest.raises(TextError, match=r"^tags: 51 characters"):
        textcheck.tags(["x" * 51])
    with pytest.raises(TextError, match=r"^tags: 31 tags, over the maximum of 30"):
        textcheck.tags([f"t{n}" for n in range(31)])


@pytest.mark.parametrize(
    "text", ["\u200b\u200b\u200b", "\u200d\ufeff\u2060", " \u3164 \u00ad\u200e ", "\u2800\ufe0f"]
)
def test_text_of_invisible_characters_only_is_empty(text):
    assert textcheck.is_blank(text)
    assert textcheck.title(text) == ""
    with pytest.raises(TextError, match="^caption: must not be empty$"):
        textcheck.caption(text)


def test_visible_text_with_joiners_is_not_blank():
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert not textcheck.is_blank(family)
    assert textcheck.title(family) == family


@pytest.mark.parametrize(
    "text", ["a\x00b", "a\x1b[2Jb", "a\x1b]8;;http://evil.example/\x1b\\b", "a\x9bb", "a\x7f",
             "a\tb", "a\rb"],
)  # fmt: skip
def test_control_characters_are_refused_in_every_field(text):
    for check in (textcheck.title, textcheck.caption, textcheck.alt, textcheck.credit):
        with pytest.raises(TextError, match="contains a control character"):
            check(text)
    with pytest.raises(TextError, match="^top: contains a control character"):
        textcheck.overlay_text(text, "top")


def test_a_caption_may_hold_line_breaks_other_fields_may_not():
    assert textcheck.caption("one\r\ntwo\nthree") == "one\ntwo\nthree"
    with pytest.raises(TextError, match=r"^title: contains a control character \(a line break\)"):
        textcheck.title("innocent\nceo-resigns")


def test_a_mapping_where_text_is_expected_is_refused():
    assert textcheck.as_text(2024, "title") == "2024"
    with pytest.raises(TextError, match="^title: expected text, got a mapping$"):
        textcheck.as_text({"x": 1}, "title")


# --- through the commands ----------------------------------------------------------------


def test_add_refuses_a_10000_character_title_and_an_invisible_caption(workdir):
    img = str(jpeg(workdir / "a.jpg"))
    result = memes("add", img, "--caption", "ok", "--title", "T" * 10_000)
    assert result.exit_code == 2
    assert result.stderr == "memes: title: 10,000 characters, over the maximum of 200\n"
    result = memes("add", img, "--caption", "\u200b\u200b")
    assert (result.exit_code, result.stderr) == (2, "memes: caption: must not be empty\n")
    result = memes("add", img, "--caption", "hi\x1b[2J")
    assert result.exit_code == 2 and "caption: contains a control character (U+001B)" in (
        result.stderr
    )
    assert not (workdir / "memes" / "originals").exists() or not any(
        (workdir / "memes" / "originals").rglob("*.jpg")
    )


def test_import_refuses_bad_text_per_row_and_adds_the_rest(workdir):
    for n in range(4):
        jpeg(workdir / f"{n}.jpg", seed=n)
    rows = [
        {"file": "0.jpg", "caption": "fine"},
        {"file": "1.jpg", "caption": "c" * 2001},
        {"file": "2.jpg", "caption": "x", "title": {"x": 1}},
        {"file": "3.jpg", "caption": "x", "top": "W" * 10_000},
    ]
    (workdir / "m.yaml").write_text(yaml.safe_dump(rows), encoding="utf-8")
    result = memes("import", "m.yaml", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["added"] == ["fine"]
    reasons = {r["file"]: r["reason"] for r in report["rejected"]}
    assert reasons["m.yaml row 3"] == "title: expected text, got a mapping"
    assert any(r.startswith("caption: 2,001 characters") for r in reasons.values())
    assert any(r.startswith("top: 10,000 characters") for r in reasons.values())
    with Library(workdir / "memes") as library:
        assert [m.title for m in library.memes()] == [""]


def test_edit_refuses_long_and_control_text(workdir):
    memes("add", str(jpeg(workdir / "a.jpg")), "--caption", "Monday")
    result = memes("edit", "monday", "--title", "innocent\nceo-resigns\tpublished")
    assert result.exit_code == 2
    assert result.stderr == (
        "memes: title: contains a control character (a line break), which is not allowed\n"
    )
    result = memes("edit", "monday", "--bottom", "B" * 301)
    assert result.stderr == "memes: bottom: 301 characters, over the maximum of 300\n"
    with Library(workdir / "memes") as library:
        meme = library.get("monday")
    assert (meme.title, meme.bottom_text) == ("", "")


# --- property: arbitrary text through add, import and edit -----------------------------------

RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
NASTY = [
    "\x00", "\r\n", "\r", "\n", "\t", "\x1b[2J", "\x1b]8;;http://evil.example/\x1b\\", "\x9b",
    "\u202e", "\u2066", "\u200b", "\u200d", "\ufeff", "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "\U0001f3f3\ufe0f\u200d\U0001f308", "\u0645\u0631\u062d\u0628\u0627", "e\u0301", "\u2028",
    "W" * 301, "W" * 2001, "x " * 150,
]  # fmt: skip


def hostile_text() -> st.SearchStrategy[str]:
    pieces = st.one_of(
        st.sampled_from(NASTY),
        st.text(st.characters(codec="utf-8"), max_size=20),
        st.builds(lambda c, n: c * n, st.sampled_from("Wm\u00e9\u4e00"), st.integers(1, 400)),
    )
    return st.lists(pieces, max_size=5).map("".join)


def test_arbitrary_text_through_add_import_and_edit_stays_bounded_and_clean(tmp_path, monkeypatch):
    """Whatever staff type or a manifest holds: each command ends (hypothesis' deadline),
    nothing printed for a person holds a raw control character, and after a publish the
    documents parse and the mail's headers hold no CR, LF or NUL."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MEMES_CONFIG", raising=False)
    (tmp_path / "config.yaml").write_text(
        "library: memes\nrenditions: {thumb: {width: 64, format: jpeg, watermark: false}}\n"
        "newsletter: {every: 1}\nsite: {base_url: 'https://memes.example/'}\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    seeds = iter(range(10_000))

    def run(*args: str):
        result = runner.invoke(cli, list(args), color=True)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert result.exit_code in (0, 1, 2), result.output
        for stream in (result.stdout, result.stderr):
            assert not RAW_CONTROL.search(stream.replace("\t", " ")), repr(stream)
        if args[0] == "list":  # tabs only between the five fields of each row
            assert all(row.count("\t") == 4 for row in result.stdout.splitlines())
        else:
            assert "\t" not in result.stdout + result.stderr
        return result

    first = jpeg(tmp_path / "first.jpg", 320, 240, seed=99_999)
    assert run("add", str(first), "--caption", "edit me").exit_code == 0

    @settings(max_examples=30, deadline=timedelta(seconds=20), derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate],  # shrinking 5 commands takes minutes
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(caption=hostile_text(), title=hostile_text(), top=hostile_text(), tag=hostile_text())
    def one(caption: str, title: str, top: str, tag: str) -> None:
        picture = str(jpeg(tmp_path / "in" / f"{next(seeds)}.jpg", 320, 240, seed=next(seeds)))
        run("add", picture, "--caption", caption, "--title", title, "--top", top, "--tag", tag)
        row = {"file": str(jpeg(tmp_path / "in" / f"{next(seeds)}.jpg", 320, 240,
                                seed=next(seeds))),
               "caption": caption, "title": title, "bottom": top, "tags": [tag]}  # fmt: skip
        manifest = tmp_path / "m.yaml"
        manifest.write_text(yaml.safe_dump([row], allow_unicode=True), encoding="utf-8")
        run("import", str(manifest))
        run("edit", "edit-me", "--title", title, "--caption", caption or "x", "--bottom", top)
        run("list")
        run("show", "edit-me")

    one()
    assert run("publish").exit_code == 0
    public = tmp_path / "public"
    json.loads((public / "index.json").read_text(encoding="utf-8"))
    json.loads((public / "feed.json").read_text(encoding="utf-8"))
    ElementTree.fromstring((public / "feed.xml").read_bytes())
    mails = list((tmp_path / "memes" / "outbox").rglob("*.eml"))
    assert mails
    for mail in mails:
        message = email.message_from_bytes(mail.read_bytes(), policy=email.policy.default)
        for name, value in message.items():
            assert not re.search("[\r\n\x00]", str(value)), (name, value)

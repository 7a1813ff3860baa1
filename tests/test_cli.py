"""The command line: the README's reference stays true, and errors are one line, no traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from factories import jpeg

from pipeline.cli import cli

README = Path(__file__).parent.parent / "README.md"


def readme_command_rows() -> list[tuple[list[str], list[str]]]:
    """(command words, options) for every `memes ...` usage in the README's command table."""
    rows = []
    for line in README.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `memes "):
            continue
        cell = line.split(" | ")[0]
        for usage in re.findall(r"`memes ([^`]+)`", cell):
            words = [w for w in usage.split() if re.fullmatch(r"[a-z]+", w)]
            options = re.findall(r"--[a-z][a-z-]*", usage)
            rows.append((words, options))
    return rows


@pytest.mark.parametrize(("words", "options"), readme_command_rows())
def test_readme_command_reference_matches_the_cli(words, options):
    result = CliRunner().invoke(cli, [*words, "--help"])
    assert result.exit_code == 0, f"memes {' '.join(words)}: {result.output}"
    for option in options:
        assert option in result.output, f"memes {' '.join(words)} has no {option}"


def _leaf_commands(command=cli, words=()):
    """(command words, click command) for every command that does something."""
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _leaf_commands(sub, (*words, name))
    else:
        yield words, command


def test_every_option_is_in_the_readme_and_says_what_it_does():
    """The reverse of the check above: each option a command takes is in its README row, and
    its --help line says what it is for (not a bare `--caption TEXT`)."""
    documented: dict[str, set[str]] = {}
    for words, options in readme_command_rows():
        documented.setdefault(" ".join(words), set()).update(options)
    for words, command in _leaf_commands():
        name = " ".join(words)
        for param in command.params:
            if not isinstance(param, click.Option) or "--help" in param.opts:
                continue
            option = next(o for o in param.opts if o.startswith("--"))
            assert any(option in documented.get(" ".join(words[:n]), ())
                       for n in range(len(words), 0, -1)), f"README: memes {name} {option}"
            assert param.help, f"memes {name} --help: {option} says nothing"


def test_every_command_is_in_the_readme():
    groups = {name for name, command in cli.commands.items() if hasattr(command, "commands")}
    documented = {" ".join(words[:2] if words[0] in groups else words[:1])
                  for words, _ in readme_command_rows()}  # fmt: skip
    for name, command in cli.commands.items():
        if hasattr(command, "commands"):
            for sub in command.commands:
                assert f"{name} {sub}" in documented
        else:
            assert name in documented


def test_a_config_error_is_one_line_exit_2_without_traceback(tmp_path):
    (tmp_path / "config.yaml").write_text("renditions: {thumb: {width: abc}}\n")
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "list"], cwd=tmp_path,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "memes: config.yaml: renditions.thumb.width: expected a positive integer, got 'abc'"
    )


@pytest.mark.parametrize(("args", "names"), [
    (["list", "--status", "bogus"], "list: Invalid value for '--status': 'bogus'"),
    (["add", "a.jpg"], "add: Missing option '--caption'"),
    (["add", "a.jpg", "--caption", "x", "--publish-at", "tomorrow"], "add: Invalid value for "
     "'--publish-at': expected an ISO 8601 date-time, got 'tomorrow'"),
    (["publish", "--limit", "0", "--json"], "publish: Invalid value for '--limit'"),
    (["gc", "--grace-days", "inf", "--json"], "gc: Invalid value for '--grace-days'"),
    (["gc", "--grace-days", "nan"], "gc: Invalid value for '--grace-days'"),
    (["gc", "--grace-days", "1e300"], "gc: Invalid value for '--grace-days'"),
    (["publish", "--wait", "nan"], "publish: Invalid value for '--wait'"),
    (["publish", "--wait", "inf"], "publish: Invalid value for '--wait'"),
    (["lsit"], "No such command 'lsit'"),
    (["--bogus"], "No such option '--bogus'"),
    (["template", "show"], "template show: Missing argument 'NAME'"),
    (["user", "add", "ed", "--role", "root"], "user add: Invalid value for '--role'"),
])  # fmt: skip
def test_a_usage_error_is_one_line(tmp_path, monkeypatch, args, names):
    """What click finds wrong on the command line is one line too (README: errors are one
    line naming the thing and the reason), exit 2; a --json command also prints the JSON."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("memes: " + names), line
    if "--json" in args:
        assert json.loads(result.stdout) == {"error": line.removeprefix("memes: "), "exit": 2}
    else:
        assert result.stdout == ""


def test_memes_alone_shows_the_help(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, [])
    assert "Commands:" in result.output and "publish" in result.output


def test_output_to_a_reader_that_went_away_is_not_an_error_message(tmp_path):
    """`memes list | head -1`: the reader closes the pipe; memes stops without a 'memes:
    Broken pipe' line on the terminal (exit 1, as click does for --help)."""
    (tmp_path / "config.yaml").write_text("")
    memes = Path(sys.executable).with_name("memes")
    subprocess.run([memes, "add", str(jpeg(tmp_path / "a.jpg")), "--caption", "Piped"],
                   cwd=tmp_path, check=True, capture_output=True)  # fmt: skip
    for args in (["list"], ["list", "--json"], ["show", "piped"], ["--help"]):
        process = subprocess.Popen([memes, *args], cwd=tmp_path, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)  # fmt: skip
        process.stdout.close()  # before memes writes: every write meets a closed pipe
        errors = process.stderr.read()
        process.stderr.close()
        assert process.wait(60) == 1, args
        assert errors == b"", (args, errors)


def test_unknown_slug_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("")
    result = CliRunner().invoke(cli, ["show", "no-such-meme"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "memes: meme 'no-such-meme': no such slug"


# --- site.timezone: what people type and read is in the site's zone; JSON stays UTC -------------


@pytest.fixture
def new_york(tmp_path, monkeypatch):
    """A library whose site is in New York; TZ says Tokyo, which nothing must read."""
    (tmp_path / "config.yaml").write_text("site: {timezone: America/New_York}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MEMES_CONFIG", raising=False)
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    jpeg(tmp_path / "a.jpg")
    return tmp_path


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_a_time_without_offset_is_read_in_the_site_timezone(new_york):
    result = invoke("add", "a.jpg", "--caption", "Winter", "--publish-at", "2026-12-03T09:00")
    assert result.exit_code == 0, result.output
    shown = json.loads(invoke("show", "winter", "--json").stdout)
    assert shown["publish_at"] == "2026-12-03T14:00:00Z"  # 09:00 EST is 14:00 UTC
    # the same wall-clock time in July is daylight saving time (EDT, UTC-4)
    invoke("edit", "winter", "--publish-at", "2026-07-03T09:00")
    assert json.loads(invoke("list", "--json").stdout)[0]["publish_at"] == "2026-07-03T13:00:00Z"
    # an explicit offset wins over the site's zone
    invoke("edit", "winter", "--publish-at", "2026-12-03T09:00+01:00")
    assert json.loads(invoke("show", "winter", "--json").stdout)["publish_at"] == (
        "2026-12-03T08:00:00Z"
    )


def test_people_see_times_in_the_site_timezone_with_the_zone(new_york):
    invoke("add", "a.jpg", "--caption", "Winter", "--publish-at", "2026-12-03T14:00:00Z")
    [line] = invoke("list").stdout.splitlines()
    assert line.split("\t")[:3] == ["winter", "queued", "2026-12-03 09:00 EST"]
    shown = invoke("show", "winter").stdout.splitlines()
    assert "publish_at: 2026-12-03 09:00 EST" in shown


def test_an_import_row_without_offset_is_read_in_the_site_timezone(new_york):
    (new_york / "m.yaml").write_text(
        "- {file: a.jpg, caption: Unquoted, publish_at: 2026-12-03T09:00:00}\n"
    )
    assert invoke("import", "m.yaml").exit_code == 0
    assert json.loads(invoke("show", "unquoted", "--json").stdout)["publish_at"] == (
        "2026-12-03T14:00:00Z"
    )


def test_without_site_timezone_times_are_utc_whatever_tz_says(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TZ", "America/New_York")
    (tmp_path / "config.yaml").write_text("")
    jpeg(tmp_path / "a.jpg")
    invoke("add", "a.jpg", "--caption", "Plain", "--publish-at", "2026-12-03T09:00")
    assert json.loads(invoke("show", "plain", "--json").stdout)["publish_at"] == (
        "2026-12-03T09:00:00Z"
    )
    assert invoke("list").stdout.split("\t")[2] == "2026-12-03 09:00 UTC"


# --- usage errors are exit 2 and name the option; good work is done, bad items named -----------


@pytest.fixture
def desk(tmp_path, monkeypatch):
    """A folder with the embedded default config and one queued meme, 'monday-again'."""
    (tmp_path / "config.yaml").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MEMES_CONFIG", raising=False)
    for n in range(3):
        jpeg(tmp_path / f"{n}.jpg", seed=n)
    assert invoke("add", "0.jpg", "--caption", "Monday again").exit_code == 0
    return tmp_path


def test_an_unknown_category_is_a_usage_error_in_add_and_in_edit(desk):
    unknown = "memes: --category: unknown category 'nonsense' (known: funny, informative, tech)"
    added = invoke("add", "1.jpg", "--caption", "x", "--category", "nonsense")
    assert (added.exit_code, added.stderr.strip(), added.stdout) == (2, unknown, "")
    edited = invoke("edit", "monday-again", "--category", "nonsense")
    assert (edited.exit_code, edited.stderr.strip()) == (2, unknown)
    assert [m["slug"] for m in json.loads(invoke("list", "--json").stdout)] == ["monday-again"]


def test_an_import_row_with_an_unknown_category_is_a_rejected_row(desk):
    (desk / "m.csv").write_text("file,caption,category\n1.jpg,Good row,tech\n2.jpg,Bad,nonsense\n")
    result = invoke("import", "m.csv")
    assert result.exit_code == 1
    assert "unknown category 'nonsense'" in result.stderr
    assert result.stdout.split() == ["good-row"]


def test_categories_match_without_regard_to_case(desk):
    assert invoke("add", "1.jpg", "--caption", "Shout", "--category", "Funny").exit_code == 0
    assert json.loads(invoke("show", "shout", "--json").stdout)["category"] == "funny"
    assert invoke("edit", "shout", "--category", "TECH").exit_code == 0
    assert json.loads(invoke("show", "shout", "--json").stdout)["category"] == "tech"
    (desk / "m.yaml").write_text("- {file: 2.jpg, caption: Row, category: Informative}\n")
    assert invoke("import", "m.yaml").exit_code == 0
    assert json.loads(invoke("show", "row", "--json").stdout)["category"] == "informative"


def test_a_wrong_slug_suggests_the_closest_ones(desk):
    invoke("add", "1.jpg", "--caption", "Monday again and again")
    result = invoke("show", "monday-agian")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "memes: meme 'monday-agian': no such slug "
        "(did you mean 'monday-again', 'monday-again-and-again'?)"
    )
    far = invoke("edit", "zzz", "--title", "x")
    assert far.stderr.strip() == "memes: meme 'zzz': no such slug"


def test_edit_without_an_option_is_a_usage_error(desk):
    result = invoke("edit", "monday-again")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "memes: edit: nothing to change; give at least one option (memes edit --help)"
    )


def test_help_says_required_once_and_the_command_list_is_not_cut(desk):
    add_help = invoke("add", "--help").stdout
    assert "[required]" in add_help and "(required)" not in add_help
    listing = " ".join(invoke("--help").stdout.split("Commands:")[1].split())
    assert "..." not in listing
    for name in ("add", "edit", "publish", "remove", "render", "verify", "newsletter"):
        summary = " ".join(cli.commands[name].help.split("\n\n")[0].split())
        assert f"{name} {summary}" in listing


def test_renders_is_ignored_by_git():
    ignored = (README.parent / ".gitignore").read_text().splitlines()
    assert "/renders/" in ignored


# --- hostile data on a terminal (issue 10 item 2) and --json errors (item 8) ---------------

HOSTILE_TITLE = "innocent\nceo-resigns\tpublished\t2026-01-01 00:00\tfunny\tCEO resigns"
HOSTILE_CAPTION = "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\ \x1b[2J\x9b31m\u202eevil"
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
def hostile_library(tmp_path, monkeypatch):
    """A library holding a meme whose stored words are terminal escapes and a fake row (as an
    older version, or a direct catalog edit, could have left them)."""
    from factories import jpeg

    from pipeline.library import Library

    (tmp_path / "config.yaml").write_text("library: memes\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MEMES_CONFIG", raising=False)
    result = CliRunner().invoke(cli, ["add", str(jpeg(tmp_path / "a.jpg")), "--caption", "x"])
    assert result.exit_code == 0, result.output
    with Library(tmp_path / "memes") as library:
        library.edit("x", title=HOSTILE_TITLE, caption=HOSTILE_CAPTION, credit="\x1b[1A\x1b[K")
    return tmp_path


@pytest.mark.parametrize("command", [["list"], ["show", "x"], ["list", "--json"],
                                     ["show", "x", "--json"]])  # fmt: skip
def test_stored_control_characters_never_reach_the_terminal_raw(hostile_library, command):
    result = CliRunner().invoke(cli, command, color=True)  # color: click would strip some ANSI
    assert result.exit_code == 0, result.output
    assert not RAW_CONTROL.search(result.stdout), repr(result.stdout)
    if command == ["list"]:
        [row] = result.stdout.splitlines()  # no fake second row
        assert row.count("\t") == 4
        assert row.endswith(HOSTILE_TITLE.replace("\n", "\\n").replace("\t", "\\t"))
    if "--json" in command:
        data = json.loads(result.stdout)  # escaped, still the same JSON
        record = data[0] if isinstance(data, list) else data
        assert (record["title"], record["caption"]) == (HOSTILE_TITLE, HOSTILE_CAPTION)


def test_a_file_name_with_escapes_is_shown_escaped_in_a_rejection(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("library: memes\n", encoding="utf-8")
    evil = tmp_path / "x\x1b[2J\x1b]8;;https:evil\x1b\\\n0\tqueued.png"
    evil.write_text("not an image")
    result = CliRunner().invoke(cli, ["add", str(evil), "--caption", "c"], color=True)
    assert result.exit_code == 1
    assert not RAW_CONTROL.search(result.stderr), repr(result.stderr)
    assert "x\\x1b[2J\\x1b]8;;https:evil\\x1b\\\\n0\\tqueued.png: not an image" in result.stderr


@pytest.mark.parametrize(
    ("command", "code"),
    [(["show", "nope", "--json"], 2), (["list", "--json"], 2), (["verify", "--json"], 2)],
)
def test_a_failing_json_command_prints_an_error_object_on_stdout(tmp_path, command, code):
    (tmp_path / "config.yaml").write_text(
        "library: memes\n" if command[0] == "show" else "renditions: {thumb: {width: abc}}\n"
    )
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", *command], cwd=tmp_path,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == code
    [line] = result.stderr.splitlines()
    assert json.loads(result.stdout) == {"error": line.removeprefix("memes: "), "exit": code}
    plain = subprocess.run([sys.executable, "-m", "pipeline.cli", *command[:-1]], cwd=tmp_path,
                           capture_output=True, text=True)  # fmt: skip
    assert plain.returncode == code and plain.stdout == ""


def test_a_command_that_draws_nothing_starts_without_pillow_or_font_tools(tmp_path):
    """Start-up is paid by every command (bench/startup.py): `memes list` reads the config
    and the catalog, and loads neither Pillow, fontTools nor ICU, which only drawing needs."""
    (tmp_path / "config.yaml").write_text("library: memes\n", encoding="utf-8")
    probe = ("import sys\nfrom pipeline.cli import cli\n"
             "try:\n    cli(['list'])\nexcept SystemExit as done:\n    assert not done.code\n"
             "loaded = {m.split('.')[0] for m in sys.modules}\n"
             "print(sorted(loaded & {'PIL', 'fontTools', 'icu'}))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("command", [["newsletter", "preview"],
                                     ["newsletter", "send", "--special", "--subject", "S"]])
@pytest.mark.parametrize(("name", "complaint"), [
    ("/dev/zero", "/dev/zero: {option} file cannot be read (not a regular file)"),
    ("latin1.txt", "latin1.txt: {option} file is not UTF-8 text (byte 4)"),
    ("huge.txt", "huge.txt: {option} file is 2,000,000 bytes, over 1,048,576"),
])  # fmt: skip
def test_a_newsletter_text_file_that_cannot_be_text_is_one_line(tmp_path, monkeypatch, command,
                                                                name, complaint):
    """--extra and --body are read capped: a device is never read (it would fill the memory),
    a file that is not UTF-8 or too big is one line, exit 2, never a traceback."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("")
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9".encode("latin-1"))
    (tmp_path / "huge.txt").write_text("x" * 2_000_000)
    option = "--body" if "--special" in command else "--extra"
    result = CliRunner().invoke(cli, [*command, option, name])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line == "memes: " + complaint.format(option=option)


@pytest.mark.parametrize(("stdin", "complaint"), [
    (b"\xff\xfe not UTF-8 at all\n", "memes: password: not UTF-8 text"),
    (b"x" * 5000 + b"\n", "memes: password: at most 1024 characters"),
    (b"\xc3\xa9" * 1500 + b"\n", "memes: password: at most 1024 characters"),
])  # fmt: skip
def test_a_password_on_stdin_that_cannot_be_one_is_one_line(tmp_path, stdin, complaint):
    """`memes user add --password-stdin` in a script (no UTF-8 locale, so Python reads stdin
    with surrogate escapes): bytes that are not UTF-8 and a line too long are one line, exit 2,
    never a traceback or a password cut short."""
    (tmp_path / "config.yaml").write_text("")
    env = {k: v for k, v in os.environ.items() if k not in ("LANG", "LC_ALL", "LC_CTYPE")}
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "user", "add", "bob", "--password-stdin"],
        input=stdin, capture_output=True, cwd=tmp_path, env={**env, "LC_ALL": "C"}, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.decode().splitlines() == [complaint]

"""The command line: the README's reference stays true, and errors are one line, no traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

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


def test_unknown_slug_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("")
    result = CliRunner().invoke(cli, ["show", "no-such-meme"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "memes: meme 'no-such-meme': no such slug"

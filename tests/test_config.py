"""config.yaml -> typed frozen objects; every error names the file and the key path."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tracemalloc
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from test_safeyaml import BOMB

from pipeline import config
from pipeline.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_empty_file_gives_every_default(tmp_path):
    cfg = config.load(write(tmp_path, ""))
    assert cfg.site.base_url.endswith("/")
    assert cfg.storage.url == f"file://{tmp_path / 'public'}"
    assert cfg.library == tmp_path / "memes"
    assert [s.name for s in cfg.renditions][:4] == ["thumb", "phone", "large", "social"]
    phone = cfg.rendition("phone")  # phones' srcset width between 320 and 1200; the email's
    assert (phone.width, phone.height, phone.fit, phone.format) == (640, None, "contain", "jpeg")
    assert cfg.rendition("social").height == 1080 and cfg.rendition("social").fit == "pad"
    assert cfg.newsletter.every == 12 and cfg.newsletter.smtp is None
    assert cfg.publish.batch_size == 12
    assert cfg.categories == ("funny", "informative", "tech")


def test_the_repository_config_is_valid():
    cfg = config.load(Path(__file__).parent.parent / "config.yaml")
    assert {"thumb", "phone", "large", "social", "portrait", "landscape", "og"} <= {
        s.name for s in cfg.renditions
    }


def test_a_parsed_config_cannot_be_changed_anywhere_inside(tmp_path):
    """Commands, worker processes and cache keys share one parsed config: no part of it, down
    to the last list, may change under them."""
    cfg = config.load(write(tmp_path, "newsletter: {smtp: {host: mail.example.org}}\n"))

    def parts(value, where="config"):
        yield where, value
        if dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                yield from parts(getattr(value, f.name), f"{where}.{f.name}")
        elif isinstance(value, tuple):
            for i, item in enumerate(value):
                yield from parts(item, f"{where}[{i}]")

    seen = dict(parts(cfg))
    assert "config.newsletter.smtp.host" in seen and "config.renditions[5].width" in seen
    for where, value in seen.items():
        assert not isinstance(value, list | dict | set), f"{where} is a mutable {type(value)}"
        if dataclasses.is_dataclass(value):
            name = dataclasses.fields(value)[0].name
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(value, name, None)


def test_relative_paths_are_relative_to_the_config_folder(tmp_path, monkeypatch):
    sub = tmp_path / "conf"
    sub.mkdir()
    monkeypatch.chdir(tmp_path)
    cfg = config.load(write(sub, "library: lib\nstorage: {url: 'file://out'}\n"))
    assert cfg.library == sub / "lib"
    assert cfg.storage.local_path == sub / "out"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("renditions: {thumb: {width: abc}}",
         "config.yaml: renditions.thumb.width: expected a positive integer, got 'abc'"),
        ("renditions: {thumb: {width: 0}}",
         "renditions.thumb.width: expected a positive integer, got 0"),
        ("renditions: {thumb: {width: 10, format: bmp}}",
         "renditions.thumb.format: expected one of webp, jpeg, png, gif, avif, got 'bmp'"),
        ("renditions: {thumb: {width: 10, fit: stretch}}", "renditions.thumb.fit: expected one of"),
        ("renditions: {thumb: {height: 10}}", "renditions.thumb.width: missing"),
        ("site: {base_url: 'ftp://x'}", "site.base_url: expected an http(s) URL"),
        ("storage: {url: 'gs://bucket'}", "storage.url: expected file://PATH or s3://BUCKET"),
        ("storage: {colour: red}", "storage.colour: unknown key"),
        ("storage: {lock_ttl: 1000000000000000}",
         "storage.lock_ttl: expected an integer from 1 to 2592000, got 1000000000000000"),
        ("storage: {gc_grace_days: 10000000000}",
         "storage.gc_grace_days: expected an integer from 0 to 36500, got 10000000000"),
        ("nonsense: 1", "nonsense: unknown key"),
        ("watermark: {opacity: 2}", "watermark.opacity: expected a number from 0.05 to 1, got 2"),
        ("watermark: {position: middle}", "watermark.position: expected one of"),
        ("watermark: {image: missing.png}", "watermark.image: file not found"),
        ("limits: {max_pixels: -5}", "limits.max_pixels: expected a positive integer"),
        ("newsletter: {every: '12'}", "newsletter.every: expected a positive integer, got '12'"),
        ("newsletter: {smtp: {port: x}}", "newsletter.smtp.port: expected a positive integer"),
        ("newsletter: {smtp: {starttls: true, tls: true}}", "newsletter.smtp: starttls and tls"),
        ("newsletter: {recipients: []}", "newsletter.recipients: expected a non-empty list"),
        ("newsletter: {subject: 'Memes {nope}'}", "newsletter.subject: expected a template"),
        ("categories: [Funny Stuff]", "categories[0]: expected lowercase letters"),
        ("background: white", "background: expected a colour like '#ffffff'"),
        ("[1, 2", "invalid YAML (line"),
        ("storage: {url: 'file://a'}\nsite: {}\nstorage: {url: 'file://b'}",
         "invalid YAML (line 3, column 1): the key 'storage' is given twice in one mapping"),
        ("- a\n- b", "expected a mapping"),
    ],
)  # fmt: skip
def test_bad_values_name_the_file_and_key_path(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        config.load(write(tmp_path, text))
    assert message in str(caught.value)
    assert str(caught.value).startswith(str(tmp_path / "config.yaml"))
    assert "\n" not in str(caught.value)


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "nope.yaml")


def test_config_is_found_by_flag_then_env_then_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(config.CONFIG_ENV, raising=False)
    assert config.find_config_path() == Path("config.yaml")
    monkeypatch.setenv(config.CONFIG_ENV, "/etc/memes.yaml")
    assert config.find_config_path() == Path("/etc/memes.yaml")
    assert config.find_config_path("x.yaml") == Path("x.yaml")


def test_s3_url_parts(tmp_path):
    cfg = config.load(write(tmp_path, "storage: {url: 's3://bucket/some/prefix/'}"))
    assert (cfg.storage.bucket, cfg.storage.prefix, cfg.storage.is_s3) == (
        "bucket", "some/prefix/", True
    )  # fmt: skip


def test_smtp_password_comes_from_the_environment_only(tmp_path, monkeypatch):
    monkeypatch.setenv(config.SMTP_PASSWORD_ENV, "hunter2")
    cfg = config.load(write(tmp_path, "newsletter: {smtp: {host: 127.0.0.1, username: u}}"))
    assert cfg.newsletter.smtp.password == "hunter2"
    assert "hunter2" not in repr(cfg)
    with pytest.raises(ConfigError, match="newsletter.smtp.password: unknown key"):
        config.load(write(tmp_path, "newsletter: {smtp: {password: x}}"))


def test_site_timezone_is_an_iana_name_defaulting_to_utc():
    assert config.parse({}).site.timezone == "UTC"
    zone = config.parse({"site": {"timezone": "Europe/Berlin"}}).site.zone
    assert datetime(2026, 7, 1, 12, tzinfo=zone).utcoffset() == timedelta(hours=2)
    with pytest.raises(ConfigError, match=r"site.timezone: expected an IANA time zone name"):
        config.parse({"site": {"timezone": "Mars/Olympus"}})


@pytest.mark.parametrize("bad", ["a\r\nBcc: x@example.org", "a\nb", "a\0b"])
@pytest.mark.parametrize(
    ("key", "value"),
    [("sender", "Memes <memes@example.org>{}"), ("recipients", ["x@example.org{}"]),
     ("list_id", "Memes <memes.example.org>{}"), ("unsubscribe_url", "https://e.org/u{}"),
     ("unsubscribe_mailto", "u@example.org{}"), ("subject", "Memes #{{number}}{}")],
)  # fmt: skip
def test_a_value_that_goes_into_a_mail_header_refuses_cr_lf_and_nul(tmp_path, key, value, bad):
    """Issue 10, item 6: CRLF in newsletter.sender passed config, then every publish broke."""
    value = [value[0].format(bad)] if isinstance(value, list) else value.format(bad)
    path = write(tmp_path, "newsletter: " + json.dumps({key: value}))
    with pytest.raises(ConfigError) as refused:
        config.load(path)
    shown = key + ("[0]" if key == "recipients" else "")
    assert f"config.yaml: newsletter.{shown}: expected one line" in str(refused.value)
    assert "\n" not in str(refused.value) and "\r" not in str(refused.value)


def test_the_readme_config_reference_is_the_one_generated_from_the_settings():
    """Every key, default and note in the README comes from config.py's declarations
    (`python -m pipeline.config` prints the block)."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("Every key and its default:\n\n```yaml\n", 1)[1].split("```", 1)[0]
    assert block == config.reference()
    # and the block, read as a config, is exactly what an empty config gives
    assert config.parse(yaml.safe_load(block)) == config.parse({})


# --- hostile files (issue 10 items 3 and 8) ---------------------------------------------------


def memes_list(tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "list"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (BOMB.encode() + b"site: {title: *i}\n",
         "config.yaml: invalid YAML: more than 100,000 values once its aliases are expanded"),
        (b"site: " + b"[" * 50_000 + b"]" * 50_000 + b"\n",
         "config.yaml: invalid YAML: nested more than 50 levels deep"),
        ("site: {title: Gr\u00fc\u00dfe}\n".encode("latin-1"),
         "config.yaml: config file is not UTF-8 text (byte 17)"),
        (b"# " + b"x" * 2_000_000 + b"\n",
         "config.yaml: config file is 2,000,003 bytes, over 1,048,576"),
    ],
    ids=["alias-bomb", "nested", "latin-1", "huge"],
)
def test_a_hostile_config_is_one_line_in_bounded_memory(tmp_path, content, message):
    (tmp_path / "config.yaml").write_bytes(content)
    result = memes_list(tmp_path)
    assert (result.returncode, result.stderr, result.stdout) == (2, f"memes: {message}\n", "")
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError):
            config.load(tmp_path / "config.yaml")
        assert tracemalloc.get_traced_memory()[1] < 100 * 2**20  # peak, in this process
    finally:
        tracemalloc.stop()


def test_a_wrong_value_is_named_in_a_few_words_however_big_it_is(tmp_path):
    text = "site: {title: [" + ", ".join(["a" * 100] * 1000) + "]}\n"
    with pytest.raises(ConfigError) as refused:
        config.load(write(tmp_path, text))
    assert len(str(refused.value).split("config.yaml: ", 1)[1]) < 300


def test_storage_timeout_defaults_to_30_seconds_and_is_checked(tmp_path):
    assert config.load(write(tmp_path, "")).storage.timeout == 30
    assert config.load(write(tmp_path, "storage: {timeout: 2.5}")).storage.timeout == 2.5
    with pytest.raises(ConfigError, match=r"storage.timeout: expected a number from 0.1 to 600"):
        config.load(write(tmp_path, "storage: {timeout: 0}"))


def test_userinfo_in_endpoint_url_is_refused_without_echoing_it(tmp_path):
    with pytest.raises(ConfigError) as refused:
        config.load(write(tmp_path, "storage: {endpoint_url: 'https://me:hunter2@s3.example'}"))
    assert "storage.endpoint_url: must not hold a user name or password" in str(refused.value)
    assert "hunter2" not in str(refused.value)

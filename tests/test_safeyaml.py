"""YAML from people is read with bounded work: alias bombs and deep nesting refused at once."""

from __future__ import annotations

import pytest
import yaml

from pipeline import safeyaml

# 9 levels of 9 aliases: a few hundred bytes that expand to 9**9 (387 million) strings
BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)


def test_an_alias_bomb_is_refused_while_it_is_read():
    assert len(BOMB) < 500
    with pytest.raises(safeyaml.YamlLimitError, match="more than 1,000,000 values"):
        safeyaml.load(BOMB)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, "{a: " * 100_000 + "}" * 100_000,
                                  "".join(f"{'  ' * n}k{n}:\n" for n in range(60))])  # fmt: skip
def test_deep_nesting_is_refused_not_a_recursion_error(text):
    with pytest.raises(safeyaml.YamlLimitError, match="nested more than 50 levels deep"):
        safeyaml.load(text)


def test_ordinary_yaml_with_anchors_and_merge_keys_loads_as_safe_load_does():
    text = "base: &base {category: tech, tags: [a, b]}\nrows:\n- {<<: *base, file: 1.jpg}\n" * 1
    assert safeyaml.load(text) == yaml.safe_load(text)
    rows = "d: &d {x: 1}\nrows:\n" + "- {<<: *d, y: 2}\n" * 5000  # an alias per row is fine
    assert len(safeyaml.load(rows)["rows"]) == 5000


def test_the_caps_are_the_callers_to_choose():
    with pytest.raises(safeyaml.YamlLimitError):
        safeyaml.load("[1, 2, 3, 4]", max_nodes=4)
    assert safeyaml.load("[1, 2, 3, 4]", max_nodes=5) == [1, 2, 3, 4]


@pytest.mark.parametrize("text", ["2030-02-30", "2030-01-01T10:00:00+25:00", "2030-13-01 10:00"])
def test_a_timestamp_that_is_no_date_is_read_as_the_text_typed_not_a_value_error(text):
    """PyYAML raises a bare ValueError (a traceback in `memes import`) for a date-shaped scalar
    that is no date; read as text, the caller's own check names it."""
    assert safeyaml.load(f"- {{publish_at: {text}}}") == [{"publish_at": text}]
    assert safeyaml.load("when: 2030-01-01") == {"when": yaml.safe_load("when: 2030-01-01")["when"]}


@pytest.mark.parametrize("text", ["storage: {url: 'file://a'}\nsite: {}\nstorage: {url: 'file://b'}\n",
                                  "- {file: a.png, caption: One, caption: Two}\n"])  # fmt: skip
def test_a_key_given_twice_in_one_mapping_is_refused_not_silently_the_last(text):
    """A second `storage:` block in config.yaml (or a row with `caption` twice) would silently
    throw the first away; it is refused, naming the key (and, as the mark, its line)."""
    with pytest.raises(yaml.YAMLError) as caught:
        safeyaml.load(text)
    assert caught.value.problem.startswith("the key '") and "given twice" in caught.value.problem


def test_merge_keys_may_still_override_what_they_bring():
    merged = safeyaml.load("base: &b {x: 1, y: 2}\nmine: {<<: *b, x: 3}\n")["mine"]
    assert merged == {"x": 3, "y": 2}

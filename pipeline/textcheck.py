"""The one place that judges text staff type: length limits, control characters, blankness.

Every text field of a meme goes through one function here at add, import and edit (and any
other text a meme carries, e.g. a template's box texts, goes through `overlay_text`), so a
limit or a rule is stated once. Each returns the text as stored (trimmed) or raises
TextError, whose message names the field: ``title: 250 characters, over the maximum of 200``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from pipeline.errors import UsageError

# Maximum length of each kind of text, in characters (README "Limits").
MAX_TITLE = 200
MAX_CAPTION = 2_000
MAX_OVERLAY = 300  # one text drawn on the image (top, bottom, a template's box)
MAX_ALT = 2_000
MAX_CREDIT = 200
MAX_TAG = 50
MAX_TAGS = 30

# C0 controls, DEL and C1 controls: never part of text a person typed on purpose.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")

# Characters that draw nothing although they are not Unicode whitespace or format characters.
_BLANK_EXTRA = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180e\u2800\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10)))  # variation selectors
)


class TextError(UsageError):
    """A text field was refused; the message starts with the field's name."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def is_blank(text: str) -> bool:
    """True if the text would show nothing: only whitespace, zero-width and format characters
    (ZERO WIDTH SPACE, joiners, bidi marks, BOM, soft hyphen), fillers or variation selectors."""
    return all(
        ch.isspace() or ch in _BLANK_EXTRA or unicodedata.category(ch) in ("Cf", "Mn", "Cc")
        for ch in text
    )


def as_text(value: Any, field: str) -> str:
    """A value read from a manifest as text: strings and plain scalars (a number, a date) are
    taken as written; a mapping or a list where text is expected is refused."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float | date | datetime):
        return str(value)
    kind = "a mapping" if isinstance(value, dict) else f"a {type(value).__name__}"
    raise TextError(field, f"expected text, got {kind}")


def check_text(
    value: str, field: str, maximum: int, *, required: bool = False, newlines: bool = False
) -> str:
    """The text as stored (trimmed), after the checks every text field shares."""
    text = value.replace("\r\n", "\n") if newlines else value
    pattern = _CONTROL_BUT_NEWLINE if newlines else _CONTROL
    if match := pattern.search(text):
        where = "a line break" if match.group() in "\r\n" else f"U+{ord(match.group()):04X}"
        raise TextError(field, f"contains a control character ({where}), which is not allowed")
    text = text.strip()
    if is_blank(text):
        if required:
            raise TextError(field, "must not be empty")
        return ""
    if len(text) > maximum:
        raise TextError(field, f"{len(text):,} characters, over the maximum of {maximum:,}")
    return text


def caption(value: str, field: str = "caption") -> str:
    """Required; may hold line breaks."""
    return check_text(value, field, MAX_CAPTION, required=True, newlines=True)


def title(value: str, field: str = "title") -> str:
    return check_text(value, field, MAX_TITLE)


def alt(value: str, field: str = "alt") -> str:
    return check_text(value, field, MAX_ALT)


def credit(value: str, field: str = "credit") -> str:
    return check_text(value, field, MAX_CREDIT)


def overlay_text(value: str, field: str) -> str:
    """A text drawn on the image: top, bottom, or one box of a template."""
    return check_text(value, field, MAX_OVERLAY)


def tags(values: Iterable[str], field: str = "tags") -> tuple[str, ...]:
    """Tags as stored: trimmed, lower case, each once, in the order given; blanks dropped."""
    checked = (check_text(value, field, MAX_TAG).lower() for value in values)
    result = tuple(dict.fromkeys(tag for tag in checked if tag))
    if len(result) > MAX_TAGS:
        raise TextError(field, f"{len(result)} tags, over the maximum of {MAX_TAGS}")
    return result

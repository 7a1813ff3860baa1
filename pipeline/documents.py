"""The one shape every published file takes on its way to storage."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Document:
    """A file to publish: its storage key (relative to the storage root), bytes and type.

    ``immutable`` marks content-hashed assets (renditions), which storage serves with
    ``Cache-Control: public, max-age=31536000, immutable``; everything else (index, pages,
    feeds, the gallery page) gets the short, configurable max-age.

    ``source`` is a digest of what the document was made from (share pages), recorded in the
    manifest with it, so a later build can leave out a document whose inputs have not changed.
    """

    key: str
    data: bytes
    content_type: str
    immutable: bool = False
    source: str = ""

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)
